//! The wire connection's side of the PostgreSQL lane: the session's output settings on the
//! connection, and Bind with the client's own parameter bytes.

use postgres_protocol::message::frontend;

use super::{error_fields, lost, row_fields, WireConn, WireError, WireField, WireStatement};

impl WireConn {
    /// Send `sql` as one simple Query (no statement left prepared on the connection, results in
    /// text, as the client's own simple query would get them) and read up to its
    /// RowDescription; the rows follow through [`WireConn::next_rows`].
    pub async fn start_simple(&mut self, sql: &str) -> Result<Vec<WireField>, WireError> {
        frontend::query(sql, &mut self.wbuf).map_err(lost)?;
        self.busy = true;
        self.flush().await?;
        let mut failed = None;
        loop {
            let (tag, mut body) = self.frame().await?;
            match tag {
                b'T' if failed.is_none() => return row_fields(&mut body),
                b'E' => {
                    let (code, message) = error_fields(&body);
                    failed = Some(WireError::Upstream { code, message });
                }
                b'Z' => {
                    self.busy = false;
                    return match failed {
                        Some(e) => Err(e),
                        None => Ok(Vec::new()),
                    };
                }
                _ => {} // CommandComplete, EmptyQueryResponse, notices.
            }
        }
    }

    /// Bring the connection's output settings (TimeZone, DateStyle, …) to `wanted`, which
    /// statements of the PostgreSQL lane ask for as their session has them; an empty `wanted` is
    /// the upstream's defaults, which the direct lane's statements need. One round trip, only
    /// when they differ from what the connection has.
    pub async fn settle(&mut self, wanted: &[(String, String)]) -> Result<(), WireError> {
        if self.settings == wanted {
            return Ok(());
        }
        let mut sql = String::new();
        for (name, value) in wanted {
            // Names are lalo's own constants; values are quoted as literals.
            sql.push_str(&format!("SET {name} TO '{}';", value.replace('\'', "''")));
        }
        for (name, _) in &self.settings {
            if !wanted.iter().any(|(n, _)| n == name) {
                sql.push_str(&format!("RESET {name};"));
            }
        }
        frontend::query(&sql, &mut self.wbuf).map_err(lost)?;
        self.busy = true;
        self.flush().await?;
        let mut failed = None;
        loop {
            let (tag, body) = self.frame().await?;
            match tag {
                b'E' => {
                    let (code, message) = error_fields(&body);
                    failed = Some(WireError::Upstream { code, message });
                }
                b'Z' => break,
                _ => {}
            }
        }
        self.busy = false;
        match failed {
            // The statements of one Query message are one transaction: none applied.
            Some(e) => Err(e),
            None => {
                self.settings = wanted.to_vec();
                Ok(())
            }
        }
    }

    /// Send Bind (parameters as the client sent them, in `param_formats`), Execute and Sync.
    pub async fn start_raw(&mut self, stmt: &WireStatement, values: &[Option<bytes::Bytes>], param_formats: &[i16], formats: &[i16]) -> Result<(), WireError> {
        super::encode_raw_execute(&mut self.wbuf, &stmt.name, values, param_formats, formats)?;
        self.busy = true;
        self.flush().await
    }

}
