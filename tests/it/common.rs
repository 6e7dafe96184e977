//! Shared test harness: start lalo in-process on 127.0.0.1:0 with the demo config and connect
//! real clients to it.

use std::path::{Path, PathBuf};

use lalo::config::{Config, DEMO_CONFIG};
use lalo::runtime::Running;
use tokio_postgres::{Client, NoTls};

/// The repository root (policies/, catalog/).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Generated TPC-H data shared by every test in this binary.
pub fn shared_data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("lalo-test-data")
}

/// A gateway running for one test, with its own audit log.
pub struct TestServer {
    pub running: Running,
    pub dir: tempfile::TempDir,
}

impl TestServer {
    pub fn port(&self) -> u16 {
        self.running.pg_addr.port()
    }

    pub fn audit_path(&self) -> PathBuf {
        self.dir.path().join("audit.log")
    }

    /// A connection string for `user` (password = user name in the demo config).
    pub fn conn_str(&self, user: &str) -> String {
        self.conn_str_db(user, "lalo")
    }

    /// [`TestServer::conn_str`] for database `db`.
    pub fn conn_str_db(&self, user: &str, db: &str) -> String {
        format!("host=127.0.0.1 port={} user={user} password={user} dbname={db}", self.port())
    }

    /// Connect with tokio-postgres as `user`.
    pub async fn connect(&self, user: &str) -> Client {
        self.connect_db(user, "lalo").await
    }

    /// Connect with tokio-postgres as `user` to database `db`.
    pub async fn connect_db(&self, user: &str, db: &str) -> Client {
        let (client, conn) = tokio_postgres::connect(&self.conn_str_db(user, db), NoTls).await.expect("connect");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client
    }
}

/// The demo config, pointed at a temp dir for the audit log and the shared data dir.
pub fn test_config(dir: &Path) -> Config {
    let mut cfg = Config::from_toml(DEMO_CONFIG, repo(), |_| None).expect("demo config");
    cfg.server.listen = "127.0.0.1:0".into();
    cfg.server.http_listen = "127.0.0.1:0".into();
    cfg.catalog.data_dir = shared_data_dir();
    cfg.governance.audit_log = dir.join("audit.log");
    // Each gateway its own retrieval index (the data dir is shared by every test).
    cfg.planner.retrieval_dir = Some(dir.join("retrieval"));
    cfg
}

/// Start lalo with the demo config, changed by `tweak`.
pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = test_config(dir.path());
    tweak(&mut cfg);
    let running = lalo::runtime::start(cfg).await.expect("lalo starts");
    TestServer { running, dir }
}

/// Start lalo with the demo config.
pub async fn start() -> TestServer {
    start_with(|_| {}).await
}

/// The data rows of a simple-query reply, NULL as "".
pub fn text_rows(msgs: &[tokio_postgres::SimpleQueryMessage]) -> Vec<Vec<String>> {
    msgs.iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some((0..r.len()).map(|i| r.get(i).unwrap_or("").to_string()).collect()),
            _ => None,
        })
        .collect()
}

/// The SQLSTATE of a failed statement.
pub fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.as_db_error().map(|d| d.code().code().to_string()).unwrap_or_else(|| format!("no db error: {e}"))
}

/// Run a psql command against the server and return (success, stdout, stderr).
/// (Async: the gateway under test runs on this test's runtime.)
pub async fn psql(server: &TestServer, user: &str, args: &[&str]) -> (bool, String, String) {
    psql_db(server, user, "lalo", args).await
}

/// [`psql`] connected to database `db` (an upstream, say).
pub async fn psql_db(server: &TestServer, user: &str, db: &str, args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new("psql")
        .args(["-X", "-h", "127.0.0.1", "-p", &server.port().to_string(), "-U", user, "-d", db, "-v", "ON_ERROR_STOP=1"])
        .args(args)
        .env("PGPASSWORD", user)
        // Generous: on a loaded 2-core machine many servers share the one test binary.
        .env("PGCONNECT_TIMEOUT", "30")
        .output()
        .await
        .expect("psql is installed (the test command installs postgresql-client)");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Run a program to completion, print its output, and return stdout if it succeeded.
pub async fn run_ok(cmd: &mut tokio::process::Command) -> String {
    let out = cmd.current_dir(repo()).output().await.expect("the program runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{stdout}");
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// The 22 TPC-H statements of `bench/tpch/queries`, as (name, SQL), in name order.
pub fn tpch_queries() -> Vec<(String, String)> {
    let dir = repo().join("bench/tpch/queries");
    let mut names: Vec<_> = std::fs::read_dir(&dir).expect("bench/tpch/queries").filter_map(|e| e.ok()).map(|e| e.path()).collect();
    names.sort();
    names
        .into_iter()
        .map(|p| (p.file_stem().unwrap_or_default().to_string_lossy().into_owned(), std::fs::read_to_string(&p).expect("query")))
        .collect()
}

/// A simple-protocol statement's rows, or its SQLSTATE and message: two servers' answers to
/// compare, errors included.
pub async fn rows_or_error(client: &tokio_postgres::Client, sql: &str) -> Result<Vec<Vec<String>>, String> {
    client
        .simple_query(sql)
        .await
        .map(|m| text_rows(&m))
        .map_err(|e| format!("{} {}", sqlstate(&e), e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string())))
}
