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

/// How long a statement may run on a pipelined connection (PostgreSQL's `statement_timeout`
/// there). A lookup by primary key takes well under a millisecond; one that takes longer (a
/// lock it waits for, a key without an index) would hold up every lookup queued behind it, so
/// it is stopped and run again on a connection of its own, under the caller's own limits.
const LOOKUP_TIMEOUT: &str = "100ms";

/// What a pipelined connection answered: a statement stopped by [`LOOKUP_TIMEOUT`] or
/// prepared before the table changed is run again elsewhere.
fn run_elsewhere(e: &DirectError) -> bool {
    matches!(e, DirectError::Upstream { code, .. } if code == "57014" || code == "0A000" || code == "26000")
}

impl DirectPool {
    /// A pipelined connection under the output `settings`: the least busy, or a new one while
    /// all are busy and there is room. `None` when there is none for these settings and no room
    /// for another set (the statement then takes a connection of its own).
    async fn shared_conn(self: &Arc<Self>, settings: &[(String, String)]) -> Result<Option<Arc<SharedConn>>, DirectError> {
        self.wire_ready()?;
        // Another set of settings may take room while the total is below this.
        let room = |conns: &[Arc<SharedConn>], alike: usize| alike < self.pipelined && (settings.is_empty() || conns.len() < self.pipelined * SETTINGS_SETS);
        {
            let mut conns = self.shared.lock();
            conns.retain(|c| !c.is_dead());
            let alike = conns.iter().filter(|c| c.settings() == settings).count();
            let best = conns.iter().filter(|c| c.settings() == settings).min_by_key(|c| c.in_flight());
            match best {
                Some(best) if best.in_flight() == 0 || !room(&conns, alike) => return Ok(Some(best.clone())),
                None if !room(&conns, alike) => return Ok(None),
                _ => {}
            }
        }
        let mut conn = self.connect_wire().await?;
        let mut wanted = settings.to_vec();
        wanted.push(("statement_timeout".into(), LOOKUP_TIMEOUT.into()));
        conn.settle(&wanted).await.map_err(|e| self.wire_error(e))?;
        let conn = SharedConn::start(conn, settings.to_vec());
        let mut conns = self.shared.lock();
        let alike = conns.iter().filter(|c| c.settings() == settings).count();
        // Kept when there is still room (others may have made one meanwhile); else it serves
        // this statement and closes.
        if room(&conns, alike) {
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
        let rows = match conn.execute(&stmt, &values, formats).await.map_err(|e| self.wire_error(e)) {
            Err(e) if run_elsewhere(&e) => {
                conn.forget(sql, &[]);
                let rows = self.query_wire(sql, params, expect, formats).await?;
                let batches: Vec<Vec<DataRow>> = futures::TryStreamExt::try_collect(rows).await?;
                return Ok(batches.into_iter().flatten().collect());
            }
            other => other?,
        };
        self.breaker.success();
        crate::metrics::pipelined_statement();
        Ok(rows)
    }

    /// A lookup of the PostgreSQL lane on a pipelined connection under the session's output
    /// `settings`, with the client's parameters as it bound them (`simple`: the simple
    /// protocol's text, without parameters): the upstream's description of the result and the
    /// whole answer, in `formats`. `None` when no pipelined connection may serve it: no room
    /// for these settings, or it ran too long there (the caller runs it on a connection of its
    /// own).
    pub async fn lookup_shared(
        self: &Arc<Self>,
        sql: &str,
        params: &RawParams,
        formats: &[i16],
        settings: &[(String, String)],
        simple: bool,
    ) -> Result<Option<(Vec<WireField>, Vec<DataRow>)>, DirectError> {
        let Some(conn) = self.shared_conn(settings).await? else { return Ok(None) };
        let answer = if simple {
            // As the client sent it: a new text each time, PostgreSQL's cheapest path for one.
            conn.run_simple(sql).await
        } else {
            // Kept prepared on the connection, unless it keeps as many as it may.
            match conn.prepare_typed(sql, &params.types, false).await.map_err(|e| self.wire_error(e))? {
                Some(stmt) => {
                    if stmt.params.len() != params.values.len() {
                        return Err(param_count(params.values.len(), stmt.params.len()));
                    }
                    let rows = conn.execute_raw(&stmt, &params.values, &params.formats, formats).await;
                    rows.map(|rows| (stmt.fields.clone(), rows))
                }
                None => conn.run_once(sql, &params.types, &params.values, &params.formats, formats).await,
            }
        };
        match answer.map_err(|e| self.wire_error(e)) {
            Ok(answer) => {
                self.breaker.success();
                crate::metrics::pipelined_statement();
                Ok(Some(answer))
            }
            Err(e) if run_elsewhere(&e) => {
                conn.forget(sql, &params.types);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// PostgreSQL's error for a Bind with the wrong number of parameters.
pub(super) fn param_count(given: usize, wanted: usize) -> DirectError {
    DirectError::Upstream {
        code: "08P01".into(),
        message: format!("bind message supplies {given} parameters, but prepared statement requires {wanted}"),
    }
}
