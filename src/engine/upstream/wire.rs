//! A plain PostgreSQL frontend connection for the direct lane's pass-through: the client's own
//! task writes Bind/Execute/Sync and hands the upstream's DataRow bytes to the client unchanged.
//!
//! tokio-postgres drives each connection from a task of its own (two task wake-ups per
//! statement) and decodes every row into Rust values, which lalo then turned into Arrow and back
//! into PostgreSQL text. For statements whose result columns lalo would send with the very types
//! the upstream sends, none of that work changes a byte, so this connection skips it. Messages
//! are built with `postgres-protocol` (the crate under tokio-postgres); only framing and the
//! few fields lalo reads are decoded here.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use pgwire::messages::data::DataRow;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod lane;

/// Why a wire exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The upstream cannot be spoken to this way (TLS, an auth method lalo does not speak here).
    #[error("{0}")]
    Unsupported(String),
    /// The connection is gone or the upstream broke the protocol.
    #[error("{0}")]
    Lost(String),
    /// The upstream answered with an error; the connection stays usable.
    #[error("{message}")]
    Upstream { code: String, message: String },
}

/// A statement prepared on one connection.
#[derive(Debug)]
pub struct WireStatement {
    pub(super) name: String,
    /// Parameter type OIDs as the upstream inferred them.
    pub params: Vec<u32>,
    /// Result column type OIDs.
    pub columns: Vec<u32>,
    /// The result's columns as the upstream describes them.
    pub fields: Vec<WireField>,
}

pub use crate::pgtypes::fields::WireField;

/// Statements one connection keeps prepared at most.
const MAX_STATEMENTS: usize = 256;

pub struct WireConn {
    stream: TcpStream,
    rbuf: BytesMut,
    wbuf: BytesMut,
    statements: HashMap<String, Arc<WireStatement>>,
    /// An exchange is under way (Bind sent, ReadyForQuery not yet read).
    busy: bool,
    /// Settings changed from the upstream's defaults on this connection (see `settle`).
    settings: Vec<(String, String)>,
}

/// Connection settings taken from the upstream's URL.
#[derive(Clone, Debug)]
pub struct WireTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<Vec<u8>>,
    pub dbname: String,
}

impl WireTarget {
    /// The target of a tokio-postgres config, when it is plain TCP to one host.
    pub fn from_config(cfg: &tokio_postgres::Config) -> Option<WireTarget> {
        use tokio_postgres::config::{Host, SslMode};
        if matches!(cfg.get_ssl_mode(), SslMode::Require) {
            return None;
        }
        let host = match cfg.get_hosts() {
            [Host::Tcp(h)] => h.clone(),
            _ => return None,
        };
        let port = cfg.get_ports().first().copied().unwrap_or(5432);
        let user = cfg.get_user()?.to_string();
        Some(WireTarget {
            host,
            port,
            dbname: cfg.get_dbname().map(str::to_string).unwrap_or_else(|| user.clone()),
            user,
            password: cfg.get_password().map(<[u8]>::to_vec),
        })
    }
}

impl WireConn {
    /// Connect, authenticate (trust, cleartext, md5 or SCRAM-SHA-256) and wait for ReadyForQuery.
    pub async fn connect(t: &WireTarget, timeout: Duration) -> Result<WireConn, WireError> {
        match tokio::time::timeout(timeout, Self::connect_inner(t)).await {
            Ok(r) => r,
            Err(_) => Err(WireError::Lost("connect timed out".into())),
        }
    }

    async fn connect_inner(t: &WireTarget) -> Result<WireConn, WireError> {
        let stream = TcpStream::connect((t.host.as_str(), t.port)).await.map_err(lost)?;
        let _ = stream.set_nodelay(true);
        let mut c = WireConn {
            stream,
            rbuf: BytesMut::with_capacity(8192),
            wbuf: BytesMut::with_capacity(1024),
            statements: HashMap::new(),
            settings: Vec::new(),
            busy: false,
        };
        let params = [
            ("user", t.user.as_str()),
            ("database", t.dbname.as_str()),
            ("application_name", "lalo"),
            ("options", super::PINNED_OPTIONS),
            ("client_encoding", "UTF8"),
            ("DateStyle", "ISO, MDY"),
            ("TimeZone", "UTC"),
        ];
        frontend::startup_message(params, &mut c.wbuf).map_err(lost)?;
        c.flush().await?;
        let mut scram: Option<ScramSha256> = None;
        loop {
            let (tag, mut body) = c.frame().await?;
            match tag {
                b'R' => {
                    let kind = body.get_i32();
                    let password = || {
                        t.password.clone().ok_or_else(|| WireError::Unsupported("the upstream wants a password".into()))
                    };
                    match kind {
                        0 => {}
                        3 => {
                            frontend::password_message(&password()?, &mut c.wbuf).map_err(lost)?;
                            c.flush().await?;
                        }
                        5 => {
                            let salt = [body[0], body[1], body[2], body[3]];
                            let hash = postgres_protocol::authentication::md5_hash(t.user.as_bytes(), &password()?, salt);
                            frontend::password_message(hash.as_bytes(), &mut c.wbuf).map_err(lost)?;
                            c.flush().await?;
                        }
                        10 => {
                            let mechanisms = String::from_utf8_lossy(&body);
                            if !mechanisms.split('\0').any(|m| m == "SCRAM-SHA-256") {
                                return Err(WireError::Unsupported(format!("SASL mechanisms {mechanisms}")));
                            }
                            let s = ScramSha256::new(&password()?, ChannelBinding::unsupported());
                            frontend::sasl_initial_response("SCRAM-SHA-256", s.message(), &mut c.wbuf).map_err(lost)?;
                            c.flush().await?;
                            scram = Some(s);
                        }
                        11 => {
                            let s = scram.as_mut().ok_or_else(|| WireError::Lost("SASL continue without a start".into()))?;
                            s.update(&body).map_err(lost)?;
                            frontend::sasl_response(s.message(), &mut c.wbuf).map_err(lost)?;
                            c.flush().await?;
                        }
                        12 => {
                            let s = scram.as_mut().ok_or_else(|| WireError::Lost("SASL final without a start".into()))?;
                            s.finish(&body).map_err(lost)?;
                        }
                        other => return Err(WireError::Unsupported(format!("authentication method {other}"))),
                    }
                }
                b'E' => {
                    let (code, message) = error_fields(&body);
                    // Refused at startup (unknown database, bad password): not a transport failure.
                    return Err(WireError::Unsupported(format!("{message} (SQLSTATE {code})")));
                }
                b'Z' => return Ok(c),
                _ => {} // ParameterStatus, BackendKeyData, notices.
            }
        }
    }

    /// The connection's prepared statement for `sql`, preparing it on first use.
    pub async fn prepare(&mut self, sql: &str) -> Result<Arc<WireStatement>, WireError> {
        self.prepare_typed(sql, &[]).await
    }

    /// [`WireConn::prepare`] with parameter types given as the client gave them (0: unspecified).
    pub async fn prepare_typed(&mut self, sql: &str, types: &[u32]) -> Result<Arc<WireStatement>, WireError> {
        let key = if types.is_empty() { std::borrow::Cow::Borrowed(sql) } else { std::borrow::Cow::Owned(format!("{types:?}\0{sql}")) };
        if let Some(s) = self.statements.get(key.as_ref()) {
            return Ok(s.clone());
        }
        // Clients of the extended protocol may prepare a new text for every execution: past a
        // bound, the connection forgets its statements (upstream too) and starts over.
        if self.statements.len() >= MAX_STATEMENTS {
            frontend::query("DEALLOCATE ALL", &mut self.wbuf).map_err(lost)?;
            self.busy = true;
            self.flush().await?;
            while self.frame().await?.0 != b'Z' {}
            self.busy = false;
            self.statements.clear();
        }
        let name = format!("lalo_w{}", self.statements.len() + 1);
        frontend::parse(&name, sql, types.iter().copied(), &mut self.wbuf).map_err(lost)?;
        frontend::describe(b'S', &name, &mut self.wbuf).map_err(lost)?;
        frontend::sync(&mut self.wbuf);
        self.busy = true;
        self.flush().await?;
        let mut params = Vec::new();
        let mut fields = Vec::new();
        let mut failed = None;
        loop {
            let (tag, mut body) = self.frame().await?;
            match tag {
                b't' => params = param_oids(&mut body)?,
                b'T' => fields = row_fields(&mut body)?,
                b'E' => {
                    let (code, message) = error_fields(&body);
                    failed = Some(WireError::Upstream { code, message });
                }
                b'Z' => break,
                _ => {} // ParseComplete, NoData, notices.
            }
        }
        self.busy = false;
        if let Some(e) = failed {
            return Err(e);
        }
        let columns = fields.iter().map(|f| f.type_oid).collect();
        let stmt = Arc::new(WireStatement { name, params, columns, fields });
        self.statements.insert(key.into_owned(), stmt.clone());
        Ok(stmt)
    }

    /// Send Bind (text parameters, the given result formats), Execute and Sync in one write.
    pub async fn start(&mut self, stmt: &WireStatement, values: &[Option<String>], formats: &[i16]) -> Result<(), WireError> {
        encode_execute(&mut self.wbuf, stmt, values, formats)?;
        self.busy = true;
        self.flush().await
    }

    /// The next rows of the running result: `Ok(None)` once the upstream is ready again.
    /// Rows come in the batches the socket delivers them in.
    pub async fn next_rows(&mut self) -> Result<Option<Vec<DataRow>>, WireError> {
        if !self.busy {
            // ReadyForQuery came with the last rows.
            return Ok(None);
        }
        let mut rows = Vec::new();
        let mut failed = None;
        loop {
            while let Some((tag, mut body)) = self.take_frame()? {
                match tag {
                    b'D' => {
                        let field_count = body.get_i16();
                        rows.push(DataRow::new(body, field_count));
                    }
                    b'E' => {
                        let (code, message) = error_fields(&body);
                        failed = Some(WireError::Upstream { code, message });
                    }
                    b'Z' => {
                        self.busy = false;
                        if let Some(e) = failed {
                            return Err(e);
                        }
                        return Ok(if rows.is_empty() { None } else { Some(rows) });
                    }
                    _ => {} // BindComplete, CommandComplete, notices, parameter changes.
                }
            }
            if !rows.is_empty() && failed.is_none() {
                return Ok(Some(rows));
            }
            self.fill().await?;
        }
    }

    /// Whether the connection can go back to the pool (no exchange left half read).
    pub fn reusable(&self) -> bool {
        !self.busy
    }

    async fn flush(&mut self) -> Result<(), WireError> {
        let out = self.wbuf.split();
        self.stream.write_all(&out).await.map_err(lost)
    }

    async fn fill(&mut self) -> Result<(), WireError> {
        if self.rbuf.capacity() - self.rbuf.len() < 4096 {
            self.rbuf.reserve(8192);
        }
        match self.stream.read_buf(&mut self.rbuf).await {
            Ok(0) => Err(WireError::Lost("the upstream closed the connection".into())),
            Ok(_) => Ok(()),
            Err(e) => Err(lost(e)),
        }
    }

    /// One whole message from the read buffer, if one is there: (type, body).
    fn take_frame(&mut self) -> Result<Option<(u8, BytesMut)>, WireError> {
        take_frame(&mut self.rbuf)
    }

    /// The socket and whatever was read past the last message, for a pipelined connection.
    pub fn into_parts(self) -> (TcpStream, BytesMut) {
        (self.stream, self.rbuf)
    }

    async fn frame(&mut self) -> Result<(u8, BytesMut), WireError> {
        loop {
            if let Some(f) = self.take_frame()? {
                return Ok(f);
            }
            self.fill().await?;
        }
    }
}

/// Bind (text parameters, the given result formats), Execute and Sync of `stmt`, appended to `buf`
/// (left as it was when the values do not fit a Bind message).
pub fn encode_execute(buf: &mut BytesMut, stmt: &WireStatement, values: &[Option<String>], formats: &[i16]) -> Result<(), WireError> {
    encode_raw_execute(buf, &stmt.name, values, &[], formats)
}

/// Bind (parameters as a client sent them, in `param_formats`; the given result formats) of
/// statement `name` to the unnamed portal, Execute and Sync, appended to `buf` (left as it was
/// when the values do not fit a Bind message).
pub fn encode_raw_execute<T: AsRef<[u8]>>(
    buf: &mut BytesMut,
    name: &str,
    values: &[Option<T>],
    param_formats: &[i16],
    formats: &[i16],
) -> Result<(), WireError> {
    encode_raw_bind(buf, name, values, param_formats, formats)?;
    frontend::execute("", 0, buf).map_err(lost)?;
    frontend::sync(buf);
    Ok(())
}

/// The Bind of [`encode_raw_execute`] alone.
pub fn encode_raw_bind<T: AsRef<[u8]>>(
    buf: &mut BytesMut,
    name: &str,
    values: &[Option<T>],
    param_formats: &[i16],
    formats: &[i16],
) -> Result<(), WireError> {
    let mark = buf.len();
    let bound = frontend::bind(
        "",
        name,
        param_formats.iter().copied(),
        values.iter(),
        |v, buf| match v {
            Some(b) => {
                buf.extend_from_slice(b.as_ref());
                Ok(postgres_protocol::IsNull::No)
            }
            None => Ok(postgres_protocol::IsNull::Yes),
        },
        formats.iter().copied(),
        buf,
    );
    if bound.is_err() {
        buf.truncate(mark);
        return Err(WireError::Unsupported("parameters do not fit a Bind message".into()));
    }
    Ok(())
}

/// The type OIDs of a ParameterDescription body.
pub fn param_oids(body: &mut BytesMut) -> Result<Vec<u32>, WireError> {
    let bad = || WireError::Lost("bad ParameterDescription".into());
    if body.len() < 2 {
        return Err(bad());
    }
    let n = body.get_i16().max(0) as usize;
    if body.len() < n * 4 {
        return Err(bad());
    }
    Ok((0..n).map(|_| body.get_u32()).collect())
}

/// The column type OIDs of a RowDescription body.
pub fn column_oids(body: &mut BytesMut) -> Result<Vec<u32>, WireError> {
    Ok(row_fields(body)?.into_iter().map(|f| f.type_oid).collect())
}

/// The columns of a RowDescription body.
pub fn row_fields(body: &mut BytesMut) -> Result<Vec<WireField>, WireError> {
    let bad = || WireError::Lost("bad RowDescription".into());
    if body.len() < 2 {
        return Err(bad());
    }
    let n = body.get_i16().max(0);
    let mut columns = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let end = body.iter().position(|b| *b == 0).ok_or_else(bad)?;
        if body.len() < end + 1 + 18 {
            return Err(bad());
        }
        let name = String::from_utf8_lossy(&body[..end]).into_owned();
        body.advance(end + 1);
        body.advance(6); // table oid, column number: the upstream's, not shown to clients
        let type_oid = body.get_u32();
        let type_size = body.get_i16();
        let type_modifier = body.get_i32();
        body.advance(2); // format
        columns.push(WireField { name, type_oid, type_size, type_modifier });
    }
    Ok(columns)
}

/// One whole message from `rbuf`, if one is there: (type, body).
pub fn take_frame(rbuf: &mut BytesMut) -> Result<Option<(u8, BytesMut)>, WireError> {
    if rbuf.len() < 5 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([rbuf[1], rbuf[2], rbuf[3], rbuf[4]]);
    if len < 4 {
        return Err(WireError::Lost("malformed message from the upstream".into()));
    }
    let total = 1 + len as usize;
    if rbuf.len() < total {
        rbuf.reserve(total - rbuf.len());
        return Ok(None);
    }
    let mut frame = rbuf.split_to(total);
    let tag = frame[0];
    frame.advance(5);
    Ok(Some((tag, frame)))
}

pub(super) fn lost(e: impl std::fmt::Display) -> WireError {
    WireError::Lost(e.to_string())
}

/// SQLSTATE and message of an ErrorResponse body.
pub(super) fn error_fields(body: &[u8]) -> (String, String) {
    let mut code = String::from("XX000");
    let mut message = String::new();
    let mut rest = body;
    while let Some((&kind, tail)) = rest.split_first() {
        if kind == 0 {
            break;
        }
        let end = tail.iter().position(|b| *b == 0).unwrap_or(tail.len());
        let text = String::from_utf8_lossy(&tail[..end]).into_owned();
        match kind {
            b'C' => code = text,
            b'M' => message = text,
            _ => {}
        }
        rest = tail.get(end + 1..).unwrap_or(&[]);
    }
    (code, message)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_error_fields() {
        let body = b"SERROR\0C42P01\0Mrelation \"x\" does not exist\0\0";
        let (code, message) = super::error_fields(body);
        assert_eq!(code, "42P01");
        assert_eq!(message, "relation \"x\" does not exist");
    }
}
