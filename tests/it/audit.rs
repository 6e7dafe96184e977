//! The audit trail as a DBA relies on it: a lalo process killed with SIGKILL under concurrent
//! clients leaves a line for every statement any client saw complete, the keyed trail verifies,
//! and `lalo audit verify` reports truncation, a chain recomputed without the key, a reordered
//! pair and a deleted line.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common;

const KEY_VAR: &str = "LALO_TEST_AUDIT_KEY_KILL";
const KEY: &str = "a key the attacker does not hold";

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn spawn_lalo(audit: &Path, port: u16) -> tokio::process::Child {
    spawn_lalo_with(audit, port, &[])
}

/// A `lalo serve` child process on `port` writing its trail to `audit`, with more settings.
pub(crate) fn spawn_lalo_with(audit: &Path, port: u16, env: &[(&str, &str)]) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_lalo"))
        .args(["serve", "--config"])
        .arg(common::repo().join("lalo.toml"))
        .env("LALO_SERVER_LISTEN", format!("127.0.0.1:{port}"))
        .env("LALO_SERVER_HTTP_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("LALO_CATALOG_DATA_DIR", common::shared_data_dir())
        .env("LALO_GOVERNANCE_AUDIT_LOG", audit)
        .env("LALO_GOVERNANCE_AUDIT_KEY_ENV", KEY_VAR)
        .env(KEY_VAR, KEY)
        .env("LALO_PLANNER_RETRIEVAL_INDEX", "false")
        .env("LALO_LOG", "warn")
        // The caller's settings last: they may replace the ones above.
        .envs(env.iter().copied())
        .kill_on_drop(true)
        .spawn()
        .expect("lalo starts")
}

pub(crate) async fn connect(port: u16, user: &str) -> Option<tokio_postgres::Client> {
    let conn = format!("host=127.0.0.1 port={port} user={user} password={user} dbname=lalo connect_timeout=5");
    let (client, conn) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await.ok()?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Some(client)
}

pub(crate) async fn wait_ready(port: u16) {
    for _ in 0..240 {
        if let Some(c) = connect(port, "admin").await {
            if c.simple_query("SELECT 1").await.is_ok() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("lalo did not come up on port {port}");
}

/// `lalo audit verify` on `log` with the key: (passed, what it printed).
pub(crate) fn verify(log: &Path, with_key: bool) -> (bool, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_lalo"));
    cmd.args(["audit", "verify", "--log"]).arg(log);
    if with_key {
        cmd.args(["--key-env", KEY_VAR]).env(KEY_VAR, KEY);
    }
    let out = cmd.output().expect("lalo audit verify");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), said)
}

pub(crate) fn records(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// A copy of the trail (log and head) to tamper with.
fn copy(log: &Path, dir: &Path, name: &str) -> PathBuf {
    let to = dir.join(name);
    std::fs::copy(log, &to).expect("copy log");
    let head = |p: &Path| PathBuf::from(format!("{}.head", p.display()));
    std::fs::copy(head(log), head(&to)).expect("copy head");
    to
}

fn rewrite(log: &Path, f: impl FnOnce(&mut Vec<String>)) {
    let mut lines: Vec<String> = std::fs::read_to_string(log).expect("log").lines().map(String::from).collect();
    f(&mut lines);
    std::fs::write(log, lines.join("\n") + "\n").expect("write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_statement_a_client_saw_complete() {
    // The shared TPC-H data exists before the child process reads it.
    drop(common::start().await);
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit.log");
    let port = free_port();
    let mut child = spawn_lalo(&audit, port);
    wait_ready(port).await;

    // Four clients run statements as fast as they can; each remembers what completed.
    let completed: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut clients = Vec::new();
    for c in 0..4u32 {
        let done = completed.clone();
        let user = ["admin", "analyst", "admin", "analyst"][c as usize];
        let client = connect(port, user).await.expect("client connects");
        clients.push(tokio::spawn(async move {
            for i in 0u32.. {
                let sql = format!("SELECT count(*) FROM tpch.nation WHERE n_nationkey <> {}", c * 1_000_000 + i);
                match client.simple_query(&sql).await {
                    Ok(_) => done.lock().expect("lock").push(sql),
                    Err(_) => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.start_kill().expect("SIGKILL");
    let _ = child.wait().await;
    for c in clients {
        let _ = c.await;
    }
    let done = completed.lock().expect("lock").clone();
    assert!(done.len() > 20, "the clients ran statements before the kill: {}", done.len());

    let recs = records(&audit);
    let inputs: std::collections::HashSet<&str> = recs.iter().filter_map(|r| r["input"].as_str()).collect();
    let missing: Vec<&String> = done.iter().filter(|sql| !inputs.contains(sql.as_str())).collect();
    assert!(missing.is_empty(), "{} statements completed for a client without an audit line: {:?}", missing.len(), &missing[..missing.len().min(3)]);
    assert!(recs.iter().all(|r| r["chain"] == "hmac-sha256"), "every line is keyed");

    let (ok, said) = verify(&audit, true);
    assert!(ok, "the killed process's trail verifies: {said}");
    let (ok, said) = verify(&audit, false);
    assert!(!ok && said.contains("key"), "a keyed trail does not verify without its key: {said}");

    // A restart continues the chain; the trail still verifies.
    let port = free_port();
    let mut child = spawn_lalo(&audit, port);
    wait_ready(port).await;
    child.start_kill().expect("SIGKILL");
    let _ = child.wait().await;
    let (ok, said) = verify(&audit, true);
    assert!(ok, "after a restart: {said}");

    // What an attacker with write access but without the key tries, each reported.
    let n = records(&audit).len();
    assert!(n > 10);
    let cut = copy(&audit, dir.path(), "cut.log");
    rewrite(&cut, |l| l.truncate(n - 3));
    let (ok, said) = verify(&cut, true);
    assert!(!ok && said.contains("cut from the end"), "truncation: {said}");

    let reordered = copy(&audit, dir.path(), "reordered.log");
    rewrite(&reordered, |l| l.swap(4, 5));
    let (ok, said) = verify(&reordered, true);
    assert!(!ok && said.contains("line 5"), "reordered pair: {said}");

    let deleted = copy(&audit, dir.path(), "deleted.log");
    rewrite(&deleted, |l| {
        l.remove(6);
    });
    let (ok, said) = verify(&deleted, true);
    assert!(!ok && said.contains("line 7"), "deleted line: {said}");

    // Edit line 3 and recompute the chain after it the only way one can without the key.
    let recomputed = copy(&audit, dir.path(), "recomputed.log");
    rewrite(&recomputed, |lines| {
        let mut prev = String::new();
        for (i, line) in lines.iter_mut().enumerate() {
            let idx = line.rfind(",\"hash\":\"").expect("hash field");
            let hash = line[idx + 9..line.len() - 2].to_string();
            if i >= 2 {
                let mut rec: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(&format!("{}}}", &line[..idx])).expect("record");
                if i == 2 {
                    rec.insert("user".into(), "nobody".into());
                }
                rec.remove("chain");
                rec.insert("prev_hash".into(), prev.clone().into());
                let body = serde_json::to_string(&rec).expect("json");
                use sha2::Digest;
                let h = hex::encode(sha2::Sha256::digest(body.as_bytes()));
                *line = format!("{},\"hash\":\"{h}\"}}", &body[..body.len() - 1]);
                prev = h;
            } else {
                prev = hash;
            }
        }
    });
    let (ok, said) = verify(&recomputed, true);
    assert!(!ok && said.contains("line 3"), "recomputed chain: {said}");
}

/// The statement's line is in the trail before its first row reaches the client, not only when
/// the result ends: a client holding the first rows of a cursor's result finds it recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_is_on_record_before_its_first_row() {
    let s = common::start().await;
    let c = s.connect("admin").await;
    let sql = "SELECT l_orderkey, l_comment FROM tpch.lineitem";
    c.simple_query("BEGIN").await.expect("begin");
    c.simple_query(&format!("DECLARE c CURSOR FOR {sql}")).await.expect("declare");
    let first = common::text_rows(&c.simple_query("FETCH 5 FROM c").await.expect("fetch"));
    assert_eq!(first.len(), 5);
    let recs = records(&s.audit_path());
    let start = recs
        .iter()
        .find(|r| r["input"].as_str().is_some_and(|i| i.contains(sql)) && r["kind"] == "start")
        .unwrap_or_else(|| panic!("the cursor's statement is recorded before its rows arrive: {recs:?}"));
    assert_eq!(start["decision"], "allowed", "{start}");
    c.simple_query("CLOSE c").await.expect("close");
    c.simple_query("COMMIT").await.expect("commit");
}
