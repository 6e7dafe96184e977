//! Nothing discloses what the caller cannot see: error messages, Describe of a statement that will
//! be refused, `EXPLAIN ASK` traces and failed logins, through the simple and the extended
//! protocol and MCP. The demo user `intern` is denied `lalo.tpch.customer.c_acctbal` and cannot
//! read `lalo.lalo_audit.events` at all.

use std::time::Duration;

use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{self, sqlstate, TestServer};

/// The message, detail and hint of a failed statement, as one text.
fn said(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{} {} {}", d.message(), d.detail().unwrap_or(""), d.hint().unwrap_or("")),
        None => e.to_string(),
    }
}

/// A gateway whose MCP endpoint answers as `user` for the bearer token in `var`.
async fn with_mcp(var: &str, user: &str) -> TestServer {
    std::env::set_var(var, format!("token-{var}"));
    let (var, user) = (var.to_string(), user.to_string());
    common::start_with(move |cfg| {
        cfg.mcp.tokens = vec![lalo::config::McpToken { token_env: var, user }];
    })
    .await
}

async fn mcp_client(s: &TestServer, var: &str) -> RunningService<RoleClient, ()> {
    // The HTTP client is built without a crypto provider of its own.
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let url = format!("http://{}/mcp", s.running.http_addr);
    let config = rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(url)
        .auth_header(format!("token-{var}"));
    let transport = rmcp::transport::StreamableHttpClientTransport::from_config(config);
    ().serve(transport).await.expect("initialize over HTTP")
}

async fn call(client: &RunningService<RoleClient, ()>, tool: &'static str, args: Value) -> (bool, Value) {
    let params = CallToolRequestParams::new(tool).with_arguments(args.as_object().cloned().unwrap_or_default());
    let r = client.call_tool(params).await.expect("tool call answered");
    (r.is_error.unwrap_or(false), r.structured_content.unwrap_or(Value::Null))
}

/// Statements that fail to plan, whose DataFusion errors list the fields of `tpch.customer`.
const UNKNOWN_COLUMNS: [&str; 5] = [
    "SELECT nope FROM tpch.customer",
    "SELECT c_acctbl FROM tpch.customer",
    "SELECT c.nope FROM tpch.customer c",
    "SELECT x.nope FROM (SELECT * FROM tpch.customer) x",
    "SELECT nope FROM tpch.customer JOIN tpch.nation ON c_nationkey = n_nationkey",
];

#[tokio::test]
async fn errors_never_name_a_denied_column() {
    let s = with_mcp("LALO_TEST_MCP_TOKEN_DISCLOSE_COLS", "intern").await;
    let c = s.connect("intern").await;
    for sql in UNKNOWN_COLUMNS {
        let e = c.simple_query(sql).await.expect_err(sql);
        assert_eq!(sqlstate(&e), "42703", "{sql}: {e:?}");
        assert!(!said(&e).to_lowercase().contains("c_acctbal"), "simple: {sql}: {}", said(&e));
        let e = c.query(sql, &[]).await.expect_err(sql);
        assert_eq!(sqlstate(&e), "42703", "{sql}: {e:?}");
        assert!(!said(&e).to_lowercase().contains("c_acctbal"), "extended: {sql}: {}", said(&e));
    }
    // The columns the caller may read are still offered.
    let e = c.simple_query(UNKNOWN_COLUMNS[0]).await.unwrap_err();
    assert!(said(&e).contains("c_name"), "{}", said(&e));
    // An admin still gets the whole list.
    let admin = s.connect("admin").await;
    let e = admin.simple_query(UNKNOWN_COLUMNS[0]).await.unwrap_err();
    assert!(said(&e).contains("c_acctbal"), "{}", said(&e));

    let mcp = mcp_client(&s, "LALO_TEST_MCP_TOKEN_DISCLOSE_COLS").await;
    for sql in UNKNOWN_COLUMNS {
        let (err, v) = call(&mcp, "query", json!({ "sql": sql })).await;
        assert!(err, "{v}");
        assert_eq!(v["sqlstate"], "42703", "{v}");
        assert!(!v.to_string().to_lowercase().contains("c_acctbal"), "mcp query: {sql}: {v}");
        let (err, v) = call(&mcp, "explain", json!({ "input": sql })).await;
        assert!(err, "{v}");
        assert!(!v.to_string().to_lowercase().contains("c_acctbal"), "mcp explain: {sql}: {v}");
    }
    mcp.cancel().await.unwrap();
}

#[tokio::test]
async fn a_table_the_caller_cannot_see_answers_like_a_missing_one() {
    let s = with_mcp("LALO_TEST_MCP_TOKEN_DISCLOSE_TABLES", "intern").await;
    let c = s.connect("intern").await;
    let hidden = "SELECT * FROM lalo_audit.events";
    let missing = "SELECT * FROM lalo_audit.no_such_table";
    let same = |a: &str, b: &str| a.replace("events", "T") == b.replace("no_such_table", "T");
    let (h, m) = (c.simple_query(hidden).await.unwrap_err(), c.simple_query(missing).await.unwrap_err());
    assert_eq!((sqlstate(&h), sqlstate(&m)), ("42P01".into(), "42P01".into()), "{h:?} {m:?}");
    assert!(same(&said(&h), &said(&m)), "simple: {} / {}", said(&h), said(&m));
    let (h, m) = (c.query(hidden, &[]).await.unwrap_err(), c.query(missing, &[]).await.unwrap_err());
    assert_eq!((sqlstate(&h), sqlstate(&m)), ("42P01".into(), "42P01".into()), "{h:?} {m:?}");
    assert!(same(&said(&h), &said(&m)), "extended: {} / {}", said(&h), said(&m));

    let mcp = mcp_client(&s, "LALO_TEST_MCP_TOKEN_DISCLOSE_TABLES").await;
    let (_, h) = call(&mcp, "query", json!({ "sql": hidden })).await;
    let (_, m) = call(&mcp, "query", json!({ "sql": missing })).await;
    assert_eq!(h["sqlstate"], "42P01", "{h}");
    assert!(same(&h.to_string(), &m.to_string()), "mcp: {h} / {m}");
    mcp.cancel().await.unwrap();

    // The audit trail keeps the real reason.
    let audit = std::fs::read_to_string(s.audit_path()).unwrap();
    let line = audit.lines().find(|l| l.contains("lalo_audit.events") && l.contains("\"user\":\"intern\"")).expect("audited");
    assert!(line.contains("\"decision\":\"denied\"") && line.contains("42501"), "{line}");
}

#[tokio::test]
async fn describe_of_a_statement_that_will_be_refused_is_refused() {
    let s = common::start().await;
    let c = s.connect("intern").await;
    // tokio-postgres prepares with Parse + Describe statement.
    for sql in ["SELECT c_acctbal FROM tpch.customer", "SELECT * FROM tpch.customer WHERE c_custkey = $1"] {
        let e = c.prepare(sql).await.expect_err(sql);
        assert_eq!(sqlstate(&e), "42501", "{sql}: {e:?}");
    }
    let e = c.prepare("SELECT * FROM lalo_audit.events").await.unwrap_err();
    assert_eq!(sqlstate(&e), "42P01", "{e:?}");
    let ok = c.prepare("SELECT c_name FROM tpch.customer WHERE c_custkey = $1").await.unwrap();
    assert_eq!(ok.columns()[0].name(), "c_name");

    // Describe portal and Describe statement on the wire: an error, never a RowDescription.
    let mut w = Wire::login(&s, "intern", "intern").await.expect("intern logs in");
    for target in [b'S', b'P'] {
        let got = w.describe("SELECT c_acctbal FROM tpch.customer", target).await;
        assert!(!got.iter().any(|(t, _)| *t == b'T'), "{}: a row description was sent", target as char);
        let code = got.iter().find(|(t, _)| *t == b'E').map(|(_, b)| error_code(b));
        assert_eq!(code.as_deref(), Some("42501"), "{}", target as char);
    }
    let got = w.describe("SELECT c_name FROM tpch.customer", b'P').await;
    assert!(got.iter().any(|(t, _)| *t == b'T'), "an allowed statement is described");
}

/// Every count in the retrieval note of an EXPLAIN ASK trace (`index: fts 3, local 5 (6
/// readable) in 1.2 ms`) is at most the number of hits the caller may read.
fn assert_counts_readable(note: &str) {
    let Some(at) = note.find("index:") else { return };
    let inside = &note[at..];
    let inside = inside.rsplit_once(" in ").map(|(a, _)| a).unwrap_or(inside);
    let numbers: Vec<usize> = inside.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect();
    let words: Vec<&str> = inside.split_whitespace().collect();
    let readable = words
        .windows(2)
        .find(|w| w[1].trim_end_matches(')') == "readable")
        .and_then(|w| w[0].trim_start_matches('(').parse::<usize>().ok())
        .expect("the note counts readable hits");
    assert!(numbers.iter().all(|n| *n <= readable), "counts beyond what the caller reads: {note}");
}

const QUESTION: &str = "which customers have the highest account balance";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_ask_traces_neither_name_nor_count_hidden_columns() {
    let s = with_mcp("LALO_TEST_MCP_TOKEN_DISCLOSE_ASK", "intern").await;
    assert!(s.running.lalo.retrieval.wait_for_update(0, Duration::from_secs(600)).await, "the retrieval index builds");
    let c = s.connect("intern").await;
    let check = |rows: Vec<(String, String)>, how: &str| {
        for (section, detail) in &rows {
            assert!(!detail.to_lowercase().contains("c_acctbal"), "{how}: {section}: {detail}");
        }
        let link = rows.iter().find(|(s, d)| s == "trace" && d.starts_with("link")).expect("a link step");
        assert_counts_readable(&link.1);
    };
    let msgs = c.simple_query(&format!("EXPLAIN ASK {QUESTION}")).await.unwrap();
    let rows = common::text_rows(&msgs).into_iter().map(|r| (r[0].clone(), r[1].clone())).collect();
    check(rows, "simple");
    let rows = c.query(&format!("EXPLAIN ASK {QUESTION}"), &[]).await.unwrap();
    let rows = rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, Option<String>>(1).unwrap_or_default())).collect();
    check(rows, "extended");

    let mcp = mcp_client(&s, "LALO_TEST_MCP_TOKEN_DISCLOSE_ASK").await;
    let (_, v) = call(&mcp, "explain", json!({ "input": format!("ASK {QUESTION}") })).await;
    assert!(!v.to_string().to_lowercase().contains("c_acctbal"), "{v}");
    let steps = v["trace"]["steps"].as_array().cloned().unwrap_or_default();
    let link = steps.iter().find(|s| s["node"] == "link").expect("a link step");
    assert_counts_readable(link["note"].as_str().unwrap_or(""));
    mcp.cancel().await.unwrap();
}

#[tokio::test]
async fn failed_logins_answer_alike_and_are_audited() {
    let s = common::start().await;
    let attempt = |user: &str, password: &str| {
        format!("host=127.0.0.1 port={} user={user} password={password} dbname=lalo", s.port())
    };
    let wrong = tokio_postgres::connect(&attempt("admin", "nope"), tokio_postgres::NoTls).await.err().expect("refused");
    let unknown = tokio_postgres::connect(&attempt("mallory", "nope"), tokio_postgres::NoTls).await.err().expect("refused");
    assert_eq!(sqlstate(&wrong), "28P01", "{wrong:?}");
    assert_eq!(sqlstate(&unknown), "28P01", "{unknown:?}");
    assert_eq!(said(&wrong), said(&unknown).replace("mallory", "admin"));
    assert!(said(&unknown).contains("password authentication failed for user \"mallory\""), "{}", said(&unknown));

    // An unknown user gets a SCRAM exchange too, with a salt as stable as a real user's.
    let first = Wire::server_first(&s, "mallory").await;
    let again = Wire::server_first(&s, "mallory").await;
    let salt = |m: &str| m.split(',').find(|p| p.starts_with("s=")).map(str::to_string);
    assert!(salt(&first).is_some(), "{first}");
    assert_eq!(salt(&first), salt(&again));
    assert!(Wire::login(&s, "mallory", "x").await.is_err());

    let audit = std::fs::read_to_string(s.audit_path()).unwrap();
    for user in ["admin", "mallory"] {
        let line = audit.lines().find(|l| l.contains(&format!("\"user\":\"{user}\"")) && l.contains("28P01"));
        let line = line.unwrap_or_else(|| panic!("no audit line for {user}'s failed login:\n{audit}"));
        assert!(line.contains("\"client\":\"127.0.0.1:"), "{line}");
        assert!(line.contains("\"decision\":\"denied\""), "{line}");
    }
    // The server keeps serving.
    s.connect("admin").await.simple_query("SELECT 1").await.unwrap();
}

/// The SQLSTATE of an ErrorResponse body.
fn error_code(body: &[u8]) -> String {
    let mut fields = body.split(|b| *b == 0);
    fields.find(|f| f.first() == Some(&b'C')).map(|f| String::from_utf8_lossy(&f[1..]).into_owned()).unwrap_or_default()
}

/// A bare protocol connection: enough of the frontend to log in with SCRAM-SHA-256 and send
/// Parse/Bind/Describe/Sync, which no client library here exposes one by one.
struct Wire {
    sock: TcpStream,
}

impl Wire {
    async fn connect(s: &TestServer, user: &str) -> Wire {
        let mut sock = TcpStream::connect(("127.0.0.1", s.port())).await.unwrap();
        let mut body = 196608i32.to_be_bytes().to_vec();
        for p in ["user", user, "database", "lalo"] {
            body.extend_from_slice(p.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut msg = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        msg.extend(body);
        sock.write_all(&msg).await.unwrap();
        Wire { sock }
    }

    async fn send(&mut self, tag: u8, body: &[u8]) {
        let mut msg = vec![tag];
        msg.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        msg.extend_from_slice(body);
        self.sock.write_all(&msg).await.unwrap();
    }

    async fn recv(&mut self) -> (u8, Vec<u8>) {
        let tag = self.sock.read_u8().await.unwrap();
        let len = self.sock.read_i32().await.unwrap() as usize;
        let mut body = vec![0; len - 4];
        self.sock.read_exact(&mut body).await.unwrap();
        (tag, body)
    }

    /// Send the SCRAM client-first message; returns the server-first message.
    async fn client_first(&mut self, nonce: &str) -> Result<String, String> {
        let (tag, body) = self.recv().await;
        if tag != b'R' || body[..4] != 10i32.to_be_bytes() {
            return Err(format!("expected AuthenticationSASL, got {}: {}", tag as char, String::from_utf8_lossy(&body)));
        }
        let first = format!("n,,n=,r={nonce}");
        let mut body = b"SCRAM-SHA-256\0".to_vec();
        body.extend_from_slice(&(first.len() as i32).to_be_bytes());
        body.extend_from_slice(first.as_bytes());
        self.send(b'p', &body).await;
        let (tag, body) = self.recv().await;
        if tag != b'R' || body[..4] != 11i32.to_be_bytes() {
            return Err(format!("expected SASLContinue, got {}: {}", tag as char, String::from_utf8_lossy(&body)));
        }
        Ok(String::from_utf8_lossy(&body[4..]).into_owned())
    }

    /// The server-first message `user` gets.
    async fn server_first(s: &TestServer, user: &str) -> String {
        Wire::connect(s, user).await.client_first("cn0nce").await.expect("a SCRAM exchange")
    }

    /// Log in; Err carries the SQLSTATE of a refusal.
    async fn login(s: &TestServer, user: &str, password: &str) -> Result<Wire, String> {
        let mut w = Wire::connect(s, user).await;
        let nonce = "rOprNGfwEbeRWgbNEkqO";
        let server_first = w.client_first(nonce).await?;
        let field = |k: &str| server_first.split(',').find_map(|p| p.strip_prefix(k)).unwrap_or("").to_string();
        let (r, salt, iters) = (field("r="), b64_decode(&field("s=")), field("i=").parse::<usize>().unwrap_or(4096));
        let salted = pgwire::api::auth::sasl::scram::gen_salted_password(password, &salt, iters);
        let client_key = hmac(&salted, b"Client Key");
        let stored = Sha256::digest(client_key);
        let without_proof = format!("c=biws,r={r}");
        let auth_message = format!("n=,r={nonce},{server_first},{without_proof}");
        let signature = hmac(&stored, auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(signature.iter()).map(|(a, b)| a ^ b).collect();
        w.send(b'p', format!("{without_proof},p={}", b64_encode(&proof)).as_bytes()).await;
        loop {
            match w.recv().await {
                (b'E', body) => return Err(error_code(&body)),
                (b'Z', _) => return Ok(w),
                _ => {}
            }
        }
    }

    /// Parse `sql` (unnamed), Bind it, Describe the statement (`S`) or the portal (`P`), Sync:
    /// every message up to ReadyForQuery.
    async fn describe(&mut self, sql: &str, target: u8) -> Vec<(u8, Vec<u8>)> {
        let mut parse = vec![0u8];
        parse.extend_from_slice(sql.as_bytes());
        parse.extend_from_slice(&[0, 0, 0]);
        self.send(b'P', &parse).await;
        self.send(b'B', &[0, 0, 0, 0, 0, 0, 0, 0]).await;
        self.send(b'D', &[target, 0]).await;
        self.send(b'S', &[]).await;
        let mut out = vec![];
        loop {
            let m = self.recv().await;
            let done = m.0 == b'Z';
            out.push(m);
            if done {
                return out;
            }
        }
    }
}

fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let inner = Sha256::new().chain_update(k.map(|b| b ^ 0x36)).chain_update(msg).finalize();
    Sha256::new().chain_update(k.map(|b| b ^ 0x5c)).chain_update(inner).finalize().into()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64_encode(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() { B64[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

fn b64_decode(text: &str) -> Vec<u8> {
    let vals: Vec<u32> = text.bytes().filter_map(|c| B64.iter().position(|b| *b == c).map(|p| p as u32)).collect();
    let mut out = vec![];
    for chunk in vals.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, v)| n | v << (18 - 6 * i));
        for i in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}
