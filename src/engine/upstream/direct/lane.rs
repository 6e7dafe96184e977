//! The direct pool's side of the PostgreSQL lane: statements prepared upstream as the client
//! wrote them, described by the upstream, and run with the client's own parameter bytes under
//! the session's output settings.

use std::sync::Arc;

use super::{DirectError, DirectPool, WireRows};

/// Parameters as a client bound them: the types it declared at Parse (0: unspecified), the
/// values' bytes and their format codes, forwarded unchanged.
#[derive(Debug, Clone, Default)]
pub struct RawParams {
    pub types: Vec<u32>,
    pub values: Vec<Option<bytes::Bytes>>,
    pub formats: Vec<i16>,
}

impl DirectPool {
    /// The parameter types and result columns the upstream gives `sql` (parameters typed as
    /// `types` where nonzero), under the session's output `settings`.
    pub async fn describe_typed(
        self: &Arc<Self>,
        sql: &str,
        types: &[u32],
        settings: &[(String, String)],
    ) -> Result<(Vec<u32>, Vec<super::super::wire::WireField>), DirectError> {
        let mut lease = self.wire_lease().await?;
        let conn = lease.conn.as_mut().ok_or_else(|| DirectError::Unsupported("no connection".into()))?;
        conn.settle(settings).await.map_err(|e| self.wire_error(e))?;
        let stmt = conn.prepare_typed(sql, types).await.map_err(|e| self.wire_error(e))?;
        Ok((stmt.params.clone(), stmt.fields.clone()))
    }

    /// Run a statement of the PostgreSQL lane without parameters as one simple Query under the
    /// session's output `settings`: one round trip, nothing left prepared upstream, rows in text.
    pub async fn query_simple(
        self: &Arc<Self>,
        sql: &str,
        settings: &[(String, String)],
    ) -> Result<(Vec<super::super::wire::WireField>, WireRows), DirectError> {
        let mut lease = self.wire_lease().await?;
        let conn = lease.conn.as_mut().ok_or_else(|| DirectError::Unsupported("no connection".into()))?;
        conn.settle(settings).await.map_err(|e| self.wire_error(e))?;
        let fields = conn.start_simple(sql).await.map_err(|e| self.wire_error(e))?;
        Ok((fields, self.clone().rows(lease)))
    }

    /// Run a statement of the PostgreSQL lane under the session's output `settings` and forward
    /// its rows as the upstream encodes them in `formats`, with the upstream's own description
    /// of the result (names, types, modifiers). Parameters go as the client sent them.
    pub async fn query_described(
        self: &Arc<Self>,
        sql: &str,
        params: &RawParams,
        formats: &[i16],
        settings: &[(String, String)],
    ) -> Result<(Vec<super::super::wire::WireField>, WireRows), DirectError> {
        let mut lease = self.wire_lease().await?;
        let conn = lease.conn.as_mut().ok_or_else(|| DirectError::Unsupported("no connection".into()))?;
        conn.settle(settings).await.map_err(|e| self.wire_error(e))?;
        let stmt = conn.prepare_typed(sql, &params.types).await.map_err(|e| self.wire_error(e))?;
        if stmt.params.len() != params.values.len() {
            return Err(super::pipelined::param_count(params.values.len(), stmt.params.len()));
        }
        let fields = stmt.fields.clone();
        conn.start_raw(&stmt, &params.values, &params.formats, formats).await.map_err(|e| self.wire_error(e))?;
        Ok((fields, self.clone().rows(lease)))
    }

}
