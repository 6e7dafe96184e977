//! Broken frontend messages over real sockets: bad lengths (under 4, negative, huge), damaged
//! startup packets, flipped and truncated messages of every type. The gateway answers 08P01 and
//! closes where it must, never panics, and keeps serving other clients. Also Bind with the wrong
//! number of values, and a role's statement timeout.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, BytesMut};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{self, sqlstate};

/// How long one exchange may take before the test gives up on it.
const EXCHANGE: Duration = Duration::from_secs(10);

/// What the server sent back before it closed or went quiet.
#[derive(Debug, Default)]
struct Reply {
    codes: Vec<String>,
    messages: Vec<String>,
    ready: usize,
    closed: bool,
}

/// One backend message from the front of `buf`: its type and body.
fn backend(buf: &mut BytesMut) -> Option<(u8, BytesMut)> {
    if buf.len() < 5 {
        return None;
    }
    let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if buf.len() < 1 + len {
        return None;
    }
    let ty = buf[0];
    buf.advance(5);
    Some((ty, buf.split_to(len - 4)))
}

/// Read backend messages until the server closes, `readies` ReadyForQuery arrived, or `quiet`.
async fn read_reply(sock: &mut TcpStream, readies: usize, quiet: Duration) -> Reply {
    let mut reply = Reply::default();
    let mut buf = BytesMut::new();
    loop {
        while let Some((ty, body)) = backend(&mut buf) {
            match ty {
                b'E' => {
                    for field in body[..].split(|b| *b == 0).filter(|f| !f.is_empty()) {
                        let value = String::from_utf8_lossy(&field[1..]).into_owned();
                        match field[0] {
                            b'C' => reply.codes.push(value),
                            b'M' => reply.messages.push(value),
                            _ => {}
                        }
                    }
                }
                b'Z' => reply.ready += 1,
                _ => {}
            }
        }
        if readies > 0 && reply.ready >= readies {
            return reply;
        }
        match tokio::time::timeout(quiet, sock.read_buf(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                reply.closed = true;
                return reply;
            }
            Ok(Ok(_)) => {}
            Err(_) => return reply,
        }
    }
}

/// A raw connection, authenticated with SCRAM as `user` (password = name), ready for queries.
async fn authed(port: u16, user: &str) -> TcpStream {
    let mut sock = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let mut out = BytesMut::new();
    frontend::startup_message([("user", user), ("database", "lalo")], &mut out).unwrap();
    sock.write_all(&out).await.unwrap();
    let mut buf = BytesMut::new();
    let mut scram: Option<ScramSha256> = None;
    loop {
        let (ty, mut body) = loop {
            if let Some(m) = backend(&mut buf) {
                break m;
            }
            let n = sock.read_buf(&mut buf).await.expect("read");
            assert!(n > 0, "closed during authentication");
        };
        let mut out = BytesMut::new();
        match (ty, if ty == b'R' { body.get_i32() } else { -1 }) {
            (b'R', 10) => {
                let s = ScramSha256::new(user.as_bytes(), ChannelBinding::unsupported());
                frontend::sasl_initial_response(SCRAM_SHA_256, s.message(), &mut out).unwrap();
                scram = Some(s);
            }
            (b'R', 11) => {
                let s = scram.as_mut().expect("SASL started");
                s.update(&body).expect("server-first");
                frontend::sasl_response(s.message(), &mut out).unwrap();
            }
            (b'Z', _) => return sock,
            (b'E', _) => panic!("authentication failed: {body:?}"),
            _ => {}
        }
        if !out.is_empty() {
            sock.write_all(&out).await.unwrap();
        }
    }
}

/// A typed message with a body.
fn typed(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![ty];
    m.put_i32(body.len() as i32 + 4);
    m.extend_from_slice(body);
    m
}

/// One valid message of each frontend type that follows authentication.
fn samples() -> Vec<Vec<u8>> {
    let mut out = vec![];
    let mut b = BytesMut::new();
    frontend::query("SELECT 1", &mut b).unwrap();
    out.push(b.split().to_vec());
    frontend::parse("s1", "SELECT $1::int", [23], &mut b).unwrap();
    out.push(b.split().to_vec());
    frontend::describe(b'S', "s1", &mut b).unwrap();
    out.push(b.split().to_vec());
    frontend::execute("", 0, &mut b).unwrap();
    out.push(b.split().to_vec());
    frontend::close(b'P', "", &mut b).unwrap();
    out.push(b.split().to_vec());
    frontend::flush(&mut b);
    out.push(b.split().to_vec());
    frontend::sync(&mut b);
    out.push(b.split().to_vec());
    frontend::copy_done(&mut b);
    out.push(b.split().to_vec());
    frontend::copy_fail("stop", &mut b).unwrap();
    out.push(b.split().to_vec());
    out.push(typed(b'd', b"1\n"));
    out.push(typed(b'p', b"c=biws"));
    // Bind "s1" with one text value.
    let mut body = vec![];
    body.extend_from_slice(b"\0s1\0");
    body.put_u16(0);
    body.put_u16(1);
    body.put_i32(1);
    body.push(b'7');
    body.put_u16(0);
    out.push(typed(b'B', &body));
    out
}

/// A deterministic generator (xorshift), so a failing round can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// `msg` damaged: a byte flipped, cut short, extra bytes, or its length word replaced.
fn mutate(rng: &mut Rng, msg: &[u8], len_at: usize) -> Vec<u8> {
    let mut m = msg.to_vec();
    match rng.below(4) {
        0 => {
            let i = rng.below(m.len());
            m[i] ^= 1 << rng.below(8);
        }
        1 => m.truncate(len_at + 4 + rng.below(m.len().saturating_sub(len_at + 4))),
        2 => m.extend((0..1 + rng.below(6)).map(|_| rng.next() as u8)),
        _ => {
            let len = [0, 1, 2, 3, -1, i32::MIN, i32::MAX, 0x4000_0000][rng.below(8)];
            m[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
        }
    }
    m
}

/// Counts panics on this test's thread: the in-process gateway's connection tasks run on it.
fn count_panics() -> Arc<AtomicUsize> {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let me = std::thread::current().id();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() == me {
            seen.fetch_add(1, Ordering::SeqCst);
        }
        previous(info);
    }));
    count
}

#[tokio::test]
async fn broken_messages_get_08p01_and_never_panic() {
    let panics = count_panics();
    let s = common::start().await;
    let port = s.port();
    let bystander = s.connect("analyst").await;

    // Every message type with a length word under 4, negative or huge: 08P01, then closed.
    for sample in samples() {
        for len in [0i32, 1, 2, 3, -1, -5, i32::MIN, 0x4000_0000, i32::MAX] {
            let mut sock = authed(port, "admin").await;
            let mut m = sample.clone();
            m[1..5].copy_from_slice(&len.to_be_bytes());
            sock.write_all(&m).await.unwrap();
            let reply = read_reply(&mut sock, 0, EXCHANGE).await;
            let ty = sample[0] as char;
            assert_eq!(reply.codes, vec!["08P01".to_string()], "type {ty} length {len}: {reply:?}");
            assert!(reply.closed, "type {ty} length {len}: {reply:?}");
        }
    }

    // Broken startup packets: refused with 08P01 (or simply closed), never a panic.
    for len in [0i32, 3, 4, 7, 8, -1, i32::MIN, 10_001] {
        let mut sock = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut m = len.to_be_bytes().to_vec();
        m.extend_from_slice(&196_608i32.to_be_bytes());
        m.extend_from_slice(b"user\0admin\0\0");
        sock.write_all(&m).await.unwrap();
        let reply = read_reply(&mut sock, 0, EXCHANGE).await;
        assert!(reply.closed, "startup length {len}: {reply:?}");
        assert!(reply.codes.iter().all(|c| c == "08P01"), "startup length {len}: {reply:?}");
    }

    // Random damage, bounded in time: before startup, in the SASL exchange, and after login.
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let all = samples();
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut rounds = 0;
    while Instant::now() < deadline && rounds < 150 {
        rounds += 1;
        let mut sock = match rounds % 3 {
            0 => TcpStream::connect(("127.0.0.1", port)).await.unwrap(),
            _ => authed(port, "admin").await,
        };
        let mut stream = vec![];
        if rounds % 3 == 0 {
            let mut b = BytesMut::new();
            frontend::startup_message([("user", "admin"), ("database", "lalo")], &mut b).unwrap();
            stream.extend(mutate(&mut rng, &b, 0));
        } else {
            for _ in 0..1 + rng.below(3) {
                let m = &all[rng.below(all.len())];
                stream.extend(if rng.below(3) == 0 { m.clone() } else { mutate(&mut rng, m, 1) });
            }
            let mut b = BytesMut::new();
            frontend::sync(&mut b);
            stream.extend_from_slice(&b);
        }
        sock.write_all(&stream).await.unwrap();
        // The client is done: whatever the server still waits for will not come.
        let _ = sock.shutdown().await;
        let reply = read_reply(&mut sock, 0, EXCHANGE).await;
        assert!(reply.closed, "round {rounds}: the server neither answered nor closed: {reply:?}");
    }

    // Other clients were served throughout, and new ones are.
    let n: i64 = bystander.query_one("SELECT count(*) FROM tpch.nation", &[]).await.unwrap().get(0);
    assert_eq!(n, 25);
    let fresh = s.connect("admin").await;
    let n: i64 = fresh.query_one("SELECT count(*) FROM tpch.region", &[]).await.unwrap().get(0);
    assert_eq!(n, 5);
    assert_eq!(panics.load(Ordering::SeqCst), 0, "a connection task panicked");
}

/// Parse `sql` as the unnamed statement, then Bind it with `values` text values and Sync.
async fn bind_with(sock: &mut TcpStream, sql: &str, values: usize) -> Reply {
    let mut b = BytesMut::new();
    frontend::parse("", sql, [], &mut b).unwrap();
    let mut body = vec![0u8, 0u8];
    body.put_u16(0);
    body.put_u16(values as u16);
    for _ in 0..values {
        body.put_i32(1);
        body.push(b'7');
    }
    body.put_u16(0);
    b.extend_from_slice(&typed(b'B', &body));
    frontend::execute("", 0, &mut b).unwrap();
    frontend::sync(&mut b);
    sock.write_all(&b).await.unwrap();
    read_reply(sock, 1, EXCHANGE).await
}

#[tokio::test]
async fn bind_with_the_wrong_number_of_values_is_08p01() {
    let s = common::start().await;
    let mut sock = authed(s.port(), "admin").await;
    for supplied in [0usize, 2, 3] {
        let reply = bind_with(&mut sock, "SELECT $1::int + 1", supplied).await;
        assert_eq!(reply.codes, vec!["08P01".to_string()], "{supplied}: {reply:?}");
        let want = format!("bind message supplies {supplied} parameters, but prepared statement \"\" requires 1");
        assert_eq!(reply.messages, vec![want]);
        assert_eq!(reply.ready, 1, "{reply:?}");
    }
    // A gap in the numbering still counts up to the highest parameter, as PostgreSQL does.
    let reply = bind_with(&mut sock, "SELECT $1::int + $3::int", 2).await;
    assert_eq!(reply.codes, vec!["08P01".to_string()], "{reply:?}");
    // The same connection goes on: the right count runs.
    let reply = bind_with(&mut sock, "SELECT $1::int + 1", 1).await;
    assert!(reply.codes.is_empty(), "{reply:?}");
    let reply = bind_with(&mut sock, "SELECT $1::int + $3::int", 3).await;
    assert!(reply.codes.is_empty(), "{reply:?}");
    // And through tokio-postgres as well.
    let c = s.connect("admin").await;
    let v: i32 = c.query_one("SELECT $1::int + 1", &[&41i32]).await.unwrap().get(0);
    assert_eq!(v, 42);
}

/// A statement that would run for minutes: a cross join of lineitem with itself.
const SLOW_SQL: &str = "SELECT count(*) FROM tpch.lineitem a, tpch.lineitem b WHERE a.l_orderkey + b.l_orderkey < 0";

#[tokio::test]
async fn role_statement_timeout_fires_on_time() {
    let pol = tempfile::tempdir().unwrap();
    for f in ["model.conf", "policy.csv", "rules.toml"] {
        std::fs::copy(common::repo().join("policies").join(f), pol.path().join(f)).unwrap();
    }
    let mut rules = std::fs::read_to_string(pol.path().join("rules.toml")).unwrap();
    rules.push_str("\n[[limit]]\nsubject = \"admins\"\nstatement_timeout_ms = 1000\n");
    std::fs::write(pol.path().join("rules.toml"), rules).unwrap();
    let p = pol.path().to_path_buf();
    let s = common::start_with(move |cfg| cfg.governance.policies = p).await;
    let c = s.connect("admin").await;
    let limit = Duration::from_millis(1000);
    // Simple and extended protocol alike; generous bounds, the point is "not several times late".
    for extended in [false, true] {
        let began = Instant::now();
        let e = if extended {
            c.query(SLOW_SQL, &[]).await.map(|_| ()).unwrap_err()
        } else {
            c.simple_query(SLOW_SQL).await.map(|_| ()).unwrap_err()
        };
        let took = began.elapsed();
        assert_eq!(sqlstate(&e), "57014", "{e:?}");
        assert!(took >= limit - Duration::from_millis(50), "fired early: {took:?}");
        assert!(took < limit * 5, "fired late: {took:?} for a {limit:?} limit (extended: {extended})");
        // The connection goes on.
        assert_eq!(common::text_rows(&c.simple_query("SELECT 1").await.unwrap()), vec![vec!["1".to_string()]]);
    }
    // Other users go on as before.
    let other = s.connect("analyst").await;
    let n: i64 = other.query_one("SELECT count(*) FROM tpch.nation", &[]).await.unwrap().get(0);
    assert_eq!(n, 25);
}
