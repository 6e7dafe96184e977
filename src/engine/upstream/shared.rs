//! Pipelined upstream connections for primary-key lookups: many clients' statements share a
//! few connections, each written behind the ones before it without waiting for their replies.
//!
//! A pooler that gives every client statement a connection of its own pays, per statement, a
//! wake-up of an idle PostgreSQL backend and a `recv` on each side. Under load most of that cost
//! is waiting, not work: when statements from several clients are queued on one connection,
//! the backend reads them in one `recv` and answers them without sleeping in between, and
//! lalo's reads collect several answers at once. Pipelining is safe only for statements that
//! cannot hold up the ones queued behind them, so the direct lane sends here only lookups by a
//! table's whole primary key (at most one row, found by index); everything else keeps a
//! connection to itself.
//!
//! Statements write their own Bind/Execute/Sync (several at a time when they arrive together)
//! and read for each other: whichever waiting statement holds the read side reads until its own
//! reply is complete, handing every earlier reply (all messages up to its ReadyForQuery) to the
//! statement that asked, in the order they were sent. No task of its own sits between the
//! socket and the statements, so a lone client pays no extra wake-up. A statement whose client
//! goes away leaves its reply to be read and dropped by the next reader; the connection stays
//! in use.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::BytesMut;
use parking_lot::Mutex;
use pgwire::messages::data::DataRow;
use postgres_protocol::message::frontend;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::oneshot;

use super::wire::{encode_execute, encode_raw_bind, encode_raw_execute, error_fields, lost, param_oids, row_fields, take_frame, WireConn, WireError, WireField, WireStatement};

/// Statements a pipelined connection keeps prepared; past this, statements are parsed with
/// each execution (a client that writes its constants into the text makes a new one each time).
const MAX_STATEMENTS: usize = 256;

/// The statement cache's key for `sql` prepared with `types`.
fn statement_key<'a>(sql: &'a str, types: &[u32]) -> std::borrow::Cow<'a, str> {
    if types.is_empty() {
        std::borrow::Cow::Borrowed(sql)
    } else {
        std::borrow::Cow::Owned(format!("{types:?}\0{sql}"))
    }
}

/// What the upstream answered to one request (everything up to its ReadyForQuery).
#[derive(Default)]
pub struct Reply {
    pub rows: Vec<DataRow>,
    pub params: Vec<u32>,
    pub columns: Vec<u32>,
    pub fields: Vec<WireField>,
    pub error: Option<WireError>,
}

/// One pipelined connection.
pub struct SharedConn {
    state: Mutex<State>,
    /// The output settings (`TimeZone`, `DateStyle`, …) the connection was given at start: only
    /// statements of sessions with the same settings share it.
    settings: Vec<(String, String)>,
    writer: OwnedWriteHalf,
    /// The read side, held by the statement reading for everyone.
    reader: tokio::sync::Mutex<Reader>,
}

/// The read side and what has been read but not yet handed out.
struct Reader {
    read: OwnedReadHalf,
    rbuf: BytesMut,
    /// The reply being read (for the first request waiting).
    reply: Reply,
}

struct State {
    /// Bytes queued and not yet written.
    out: BytesMut,
    /// A statement is writing `out` (others only queue).
    writing: bool,
    /// Requests sent or queued, in order; the reader answers the first.
    waiting: VecDeque<oneshot::Sender<Reply>>,
    statements: HashMap<String, Arc<WireStatement>>,
    /// Set when the connection broke: every later request fails with it.
    dead: Option<String>,
    /// Statements prepared or being prepared (names are never reused).
    named: u64,
}

impl SharedConn {
    /// Take over an authenticated connection and start its reader.
    pub fn start(conn: WireConn, settings: Vec<(String, String)>) -> Arc<SharedConn> {
        let (stream, rbuf) = conn.into_parts();
        let (read, writer) = stream.into_split();
        Arc::new(SharedConn {
            state: Mutex::new(State {
                out: BytesMut::with_capacity(1024),
                writing: false,
                waiting: VecDeque::new(),
                statements: HashMap::new(),
                dead: None,
                named: 0,
            }),
            settings,
            writer,
            reader: tokio::sync::Mutex::new(Reader { read, rbuf, reply: Reply::default() }),
        })
    }

    /// Whether the connection broke (the pool then drops it).
    pub fn is_dead(&self) -> bool {
        self.state.lock().dead.is_some()
    }

    pub fn settings(&self) -> &[(String, String)] {
        &self.settings
    }

    /// Requests sent and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.state.lock().waiting.len()
    }

    /// The connection's prepared statement for `sql`, preparing it on first use.
    pub async fn prepare(self: &Arc<Self>, sql: &str) -> Result<Arc<WireStatement>, WireError> {
        self.prepare_typed(sql, &[], true).await?.ok_or_else(|| WireError::Lost("no statement prepared".into()))
    }

    /// Drop the connection's statement for `sql` (prepared before its table changed): the next
    /// execution prepares it again. The old one stays upstream, unused.
    pub fn forget(&self, sql: &str, types: &[u32]) {
        self.state.lock().statements.remove(&statement_key(sql, types).into_owned());
    }

    /// [`SharedConn::prepare`] with parameter types as a client declared them (0: unspecified).
    /// `None` when the connection keeps as many statements as it may and `always` is not set.
    pub async fn prepare_typed(self: &Arc<Self>, sql: &str, types: &[u32], always: bool) -> Result<Option<Arc<WireStatement>>, WireError> {
        let key = statement_key(sql, types);
        let name = {
            let mut st = self.state.lock();
            if let Some(s) = st.statements.get(key.as_ref()) {
                return Ok(Some(s.clone()));
            }
            if !always && st.statements.len() >= MAX_STATEMENTS {
                return Ok(None);
            }
            st.named += 1;
            format!("lalo_p{}", st.named)
        };
        let reply = self
            .request(|buf| {
                frontend::parse(&name, sql, types.iter().copied(), buf).map_err(lost)?;
                frontend::describe(b'S', &name, buf).map_err(lost)?;
                frontend::sync(buf);
                Ok(())
            })
            .await?;
        if let Some(e) = reply.error {
            return Err(e);
        }
        let stmt = Arc::new(WireStatement { name, params: reply.params, columns: reply.columns, fields: reply.fields });
        // Two statements preparing the same text at once both succeed; the first one is kept.
        Ok(Some(self.state.lock().statements.entry(key.into_owned()).or_insert(stmt).clone()))
    }

    /// Run a prepared statement with parameters as a client sent them; its rows in `formats`.
    pub async fn execute_raw(
        self: &Arc<Self>,
        stmt: &WireStatement,
        values: &[Option<bytes::Bytes>],
        param_formats: &[i16],
        formats: &[i16],
    ) -> Result<Vec<DataRow>, WireError> {
        let reply = self.request(|buf| encode_raw_execute(buf, &stmt.name, values, param_formats, formats)).await?;
        match reply.error {
            Some(e) => Err(e),
            None => Ok(reply.rows),
        }
    }

    /// Parse, bind, describe and run `sql` once (the unnamed statement: nothing stays prepared),
    /// with parameters as a client sent them: the upstream's description of the result and
    /// its rows in `formats`. A request's messages are queued as one, so no other request comes
    /// between its Parse and its Execute.
    pub async fn run_once(
        self: &Arc<Self>,
        sql: &str,
        types: &[u32],
        values: &[Option<bytes::Bytes>],
        param_formats: &[i16],
        formats: &[i16],
    ) -> Result<(Vec<WireField>, Vec<DataRow>), WireError> {
        let reply = self
            .request(|buf| {
                frontend::parse("", sql, types.iter().copied(), buf).map_err(lost)?;
                encode_raw_bind(buf, "", values, param_formats, formats)?;
                frontend::describe(b'P', "", buf).map_err(lost)?;
                frontend::execute("", 0, buf).map_err(lost)?;
                frontend::sync(buf);
                Ok(())
            })
            .await?;
        match reply.error {
            Some(e) => Err(e),
            None => Ok((reply.fields, reply.rows)),
        }
    }

    /// Run `sql` as one simple Query (text results, nothing left prepared): the upstream's
    /// description of the result and its rows. The caller sends one statement only: a Query of
    /// several would answer with several replies.
    pub async fn run_simple(self: &Arc<Self>, sql: &str) -> Result<(Vec<WireField>, Vec<DataRow>), WireError> {
        let reply = self.request(|buf| frontend::query(sql, buf).map_err(lost)).await?;
        match reply.error {
            Some(e) => Err(e),
            None => Ok((reply.fields, reply.rows)),
        }
    }

    /// Run a prepared statement with text `values`; its rows in the result `formats`.
    pub async fn execute(self: &Arc<Self>, stmt: &WireStatement, values: &[Option<String>], formats: &[i16]) -> Result<Vec<DataRow>, WireError> {
        let reply = self.request(|buf| encode_execute(buf, stmt, values, formats)).await?;
        match reply.error {
            Some(e) => Err(e),
            None => Ok(reply.rows),
        }
    }

    /// Queue one request (its messages end with Sync), write what is queued, await the reply.
    async fn request(self: &Arc<Self>, encode: impl FnOnce(&mut BytesMut) -> Result<(), WireError>) -> Result<Reply, WireError> {
        let (tx, mut rx) = oneshot::channel();
        // Encoded apart first: a message that fails half way never reaches the shared stream.
        let mut msg = BytesMut::with_capacity(128);
        encode(&mut msg)?;
        let (write, others) = {
            let mut st = self.state.lock();
            if let Some(why) = &st.dead {
                return Err(WireError::Lost(why.clone()));
            }
            st.out.extend_from_slice(&msg);
            st.waiting.push_back(tx);
            (!std::mem::replace(&mut st.writing, true), st.waiting.len() > 1)
        };
        if write {
            // With other requests in flight, more are likely on their way: let the statements
            // this thread has ready queue theirs first, so that one write carries them all and
            // the backend reads them at once. A lone request goes at once (a turn of the
            // scheduler is a fair part of its round trip). Should this statement go away
            // while it yields, the write it owes the others is handed to a task.
            if others {
                let mut owed = OwedWrite(Some(self.clone()));
                tokio::task::yield_now().await;
                owed.0 = None;
            }
            self.write_queued().await;
        }
        loop {
            // The read side is free: read without waiting on `rx`. A waker left on `rx` would
            // have the reply this statement hands itself wake its own task, a spurious turn
            // that makes the scheduler wake an idle worker for every lookup of a lone client.
            match rx.try_recv() {
                Ok(reply) => return Ok(reply),
                Err(oneshot::error::TryRecvError::Closed) => {
                    return Err(WireError::Lost(self.state.lock().dead.clone().unwrap_or_else(|| "the connection closed".into())));
                }
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            if let Ok(mut reader) = self.reader.try_lock() {
                if let Err(why) = self.read_until_answered(&mut reader, &mut rx).await {
                    self.fail(&why);
                }
                continue;
            }
            tokio::select! {
                biased;
                reply = &mut rx => {
                    return reply.map_err(|_| {
                        WireError::Lost(self.state.lock().dead.clone().unwrap_or_else(|| "the connection closed".into()))
                    });
                }
                mut reader = self.reader.lock() => {
                    // Read for everyone until this request's own reply has been handed over.
                    if let Err(why) = self.read_until_answered(&mut reader, &mut rx).await {
                        self.fail(&why);
                    }
                }
            }
        }
    }

    /// Read replies and hand them out until `mine` has its answer (or the connection fails).
    /// Cancel-safe: what was read stays in the reader for the next statement to go on with.
    async fn read_until_answered(&self, r: &mut Reader, mine: &mut oneshot::Receiver<Reply>) -> Result<(), String> {
        loop {
            while let Some((tag, mut body)) = take_frame(&mut r.rbuf).map_err(|e| e.to_string())? {
                match tag {
                    b'D' if body.len() >= 2 => {
                        let n = i16::from_be_bytes([body[0], body[1]]);
                        bytes::Buf::advance(&mut body, 2);
                        r.reply.rows.push(DataRow::new(body, n));
                    }
                    b't' => match param_oids(&mut body) {
                        Ok(p) => r.reply.params = p,
                        Err(e) => r.reply.error = Some(e),
                    },
                    b'T' => match row_fields(&mut body) {
                        Ok(f) => {
                            r.reply.columns = f.iter().map(|f| f.type_oid).collect();
                            r.reply.fields = f;
                        }
                        Err(e) => r.reply.error = Some(e),
                    },
                    b'E' => {
                        let (code, message) = error_fields(&body);
                        r.reply.error = Some(WireError::Upstream { code, message });
                    }
                    b'Z' => {
                        let waiter = self.state.lock().waiting.pop_front();
                        let reply = std::mem::take(&mut r.reply);
                        if let Some(tx) = waiter {
                            // A request whose statement went away: its reply is dropped here.
                            let _ = tx.send(reply);
                        }
                    }
                    _ => {} // ParseComplete, BindComplete, CommandComplete, notices.
                }
            }
            if !mine.is_empty() || mine.is_terminated() || self.is_dead() {
                return Ok(());
            }
            if r.rbuf.capacity() - r.rbuf.len() < 4096 {
                r.rbuf.reserve(8192);
            }
            match r.read.read_buf(&mut r.rbuf).await {
                Ok(0) => return Err("the upstream closed the connection".into()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// Write everything queued, including what other statements queue meanwhile. Writes are
    /// non-blocking: only when the socket is full does this wait (a dropped waiter leaves the
    /// rest to the next statement, so the stream never ends mid-message).
    async fn write_queued(&self) {
        loop {
            let chunk = {
                let mut st = self.state.lock();
                if st.out.is_empty() || st.dead.is_some() {
                    st.writing = false;
                    return;
                }
                st.out.split()
            };
            let mut sent = 0;
            while sent < chunk.len() {
                match self.writer.try_write(&chunk[sent..]) {
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        // Put the rest back in front, then wait for room. If this statement is
                        // dropped while waiting, `writing` stays set with bytes queued: the
                        // guard hands the job on.
                        {
                            let mut st = self.state.lock();
                            let mut rest = BytesMut::from(&chunk[sent..]);
                            rest.extend_from_slice(&st.out);
                            st.out = rest;
                        }
                        let guard = WriterGuard(self);
                        let _ = self.writer.writable().await;
                        std::mem::forget(guard);
                        break;
                    }
                    Err(e) => {
                        self.fail(&e.to_string());
                        return;
                    }
                }
            }
        }
    }

    /// Mark the connection broken, fail every request still waiting and shut the socket (a
    /// statement reading for the others then sees the end instead of waiting on).
    fn fail(&self, why: &str) {
        let mut st = self.state.lock();
        if st.dead.is_none() {
            st.dead = Some(why.to_string());
            let _ = socket2::SockRef::from(self.writer.as_ref()).shutdown(std::net::Shutdown::Both);
        }
        st.waiting.clear();
        st.writing = false;
    }
}

/// The write a statement owes the requests queued behind its own, if it is dropped first.
struct OwedWrite(Option<Arc<SharedConn>>);

impl Drop for OwedWrite {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            tokio::spawn(async move { conn.write_queued().await });
        }
    }
}

/// Held while a writer waits for socket room: if that statement is dropped, the connection can
/// no longer promise its queued bytes go out in order, so it is retired.
struct WriterGuard<'a>(&'a SharedConn);

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        self.0.fail("a write to the upstream was abandoned");
    }
}
