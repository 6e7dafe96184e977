//! Pipelined connections of the direct pool (see `shared`): lookups by primary key, of the
//! direct lane and of the PostgreSQL lane, share a few connections per set of output settings.

use std::sync::Arc;

use datafusion::common::ScalarValue;
use pgwire::messages::data::DataRow;

use super::super::shared::SharedConn;
use super::super::wire::WireField;
use super::{DirectError, DirectPool, RawParams};

/// Sets of output settings that may have pipelined connections of their own (sessions keep
/// PostgreSQL's defaults but for a few zones and styles); the direct lane's own, the server's
/// defaults, always may.
const SETTINGS_SETS: usize = 4;

impl DirectPool {
    /// A pipelined connection under the output `settings`: the least busy, or a new one while
    /// all are busy and there is room. `None` when there is none for these settings and no room
    /// for another set (the statement then takes a connection of its own).
    async fn shared_conn(self: &Arc<Self>, settings: &[(String, String)]) -> Result<Option<Arc<SharedConn>>, DirectError> {
        self.wire_ready()?;
        {
            let mut conns = self.shared.lock();
            conns.retain(|c| !c.is_dead());
            let alike = conns.iter().filter(|c| c.settings() == settings).count();
            if let Some(best) = conns.iter().filter(|c| c.settings() == settings).min_by_key(|c| c.in_flight()) {
                if best.in_flight() == 0 || alike >= self.pipelined {
                    return Ok(Some(best.clone()));
                }
            } else if !settings.is_empty() && conns.len() >= self.pipelined * SETTINGS_SETS {
                return Ok(None);
            }
        }
        let mut conn = self.connect_wire().await?;
        conn.settle(settings).await.map_err(|e| self.wire_error(e))?;
        let conn = SharedConn::start(conn, settings.to_vec());
        let mut conns = self.shared.lock();
        if conns.iter().filter(|c| c.settings() == settings).count() < self.pipelined {
            conns.push(conn.clone());
        }
        Ok(Some(conn))
    }

    /// Whether lookups by primary key are pipelined (see `shared`).
    pub fn pipelines(&self) -> bool {
        self.pipelined > 0 && self.wire_target.is_some()
    }

    /// [`DirectPool::query_wire`] for a lookup by primary key, on a pipelined connection: the
    /// whole answer (at most one row), as the upstream encoded it.
    pub async fn query_shared(
        self: &Arc<Self>,
        sql: &str,
        params: &[ScalarValue],
        expect: &[u32],
        formats: &[i16],
    ) -> Result<Vec<pgwire::messages::data::DataRow>, DirectError> {
        let values = Self::forwarded_values(params, expect)?;
        let conn = self.shared_conn(&[]).await?.ok_or_else(|| DirectError::Lost("no pipelined connection".into()))?;
        let stmt = conn.prepare(sql).await.map_err(|e| self.wire_error(e))?;
        Self::same_columns(&stmt, expect)?;
        let rows = conn.execute(&stmt, &values, formats).await.map_err(|e| self.wire_error(e))?;
        self.breaker.success();
        crate::metrics::pipelined_statement();
        Ok(rows)
    }
}


impl DirectPool {
    /// A lookup of the PostgreSQL lane on a pipelined connection under the session's output
    /// `settings`, with the client's parameters as it bound them (none for the simple
    /// protocol): the upstream's description of the result and the whole answer, in `formats`.
    /// `None` when no pipelined connection may serve these settings.
    pub async fn lookup_shared(
        self: &Arc<Self>,
        sql: &str,
        params: &RawParams,
        formats: &[i16],
        settings: &[(String, String)],
    ) -> Result<Option<(Vec<WireField>, Vec<DataRow>)>, DirectError> {
        let Some(conn) = self.shared_conn(settings).await? else { return Ok(None) };
        // The simple protocol's texts carry their constants (a new text each time): they are
        // parsed with each execution, as the simple protocol does; so are texts past the bound.
        let stmt = if params.values.is_empty() && params.types.is_empty() {
            None
        } else {
            conn.prepare_typed(sql, &params.types, false).await.map_err(|e| self.wire_error(e))?
        };
        let answer = match stmt {
            // A text-only statement without parameters (the simple protocol's) goes as a simple
            // Query, as the client sent it: PostgreSQL's cheapest path for a new text.
            None if params.values.is_empty() && formats.iter().all(|f| *f == 0) => conn.run_simple(sql).await,
            Some(stmt) => {
                if stmt.params.len() != params.values.len() {
                    return Err(param_count(params.values.len(), stmt.params.len()));
                }
                let rows = conn.execute_raw(&stmt, &params.values, &params.formats, formats).await;
                rows.map(|rows| (stmt.fields.clone(), rows))
            }
            None => conn.run_once(sql, &params.types, &params.values, &params.formats, formats).await,
        };
        let answer = answer.map_err(|e| self.wire_error(e))?;
        self.breaker.success();
        crate::metrics::pipelined_statement();
        Ok(Some(answer))
    }
}

/// PostgreSQL's error for a Bind with the wrong number of parameters.
pub(super) fn param_count(given: usize, wanted: usize) -> DirectError {
    DirectError::Upstream {
        code: "08P01".into(),
        message: format!("bind message supplies {given} parameters, but prepared statement requires {wanted}"),
    }
}
