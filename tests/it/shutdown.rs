//! Stopping lalo as `docker stop` and Kubernetes do, with SIGTERM: a statement in flight
//! finishes within the grace period, a longer one ends with 57P01, idle connections close with
//! 57P01, no new connection is accepted, the process exits 0 and its audit trail verifies.

use std::time::Duration;

use crate::audit::{connect, free_port, records, spawn_lalo_with, verify, wait_ready};
use crate::common;

/// Send SIGTERM and wait until lalo has begun to drain (it accepts no connection any more).
async fn sigterm(child: &tokio::process::Child, port: u16) {
    let pid = child.id().expect("the child runs");
    let ok = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill");
    assert!(ok.success());
    for _ in 0..100 {
        // Refused at once: the listener is closed. A connection attempt that timed out (a busy
        // machine) says nothing about the drain.
        let began = std::time::Instant::now();
        if connect(port, "admin").await.is_none() && began.elapsed() < Duration::from_secs(2) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("lalo still accepts connections after SIGTERM");
}

async fn exits_zero(child: &mut tokio::process::Child, within: Duration) {
    let status = tokio::time::timeout(within, child.wait()).await.expect("lalo exits after SIGTERM").expect("wait");
    assert!(status.success(), "lalo exits 0 after SIGTERM: {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_statements_in_flight_finish() {
    drop(common::start().await);
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit.log");
    let port = free_port();
    let mut child = spawn_lalo_with(&audit, port, &[("LALO_SERVER_SHUTDOWN_GRACE_MS", "60000")]);
    wait_ready(port).await;
    let busy = connect(port, "admin").await.expect("connects");
    let idle = connect(port, "admin").await.expect("connects");
    let sql = "SELECT count(*) FROM generate_series(1, 100000000)";
    let running = tokio::spawn(async move { busy.simple_query(sql).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    sigterm(&child, port).await;
    // The statement in flight completes with its answer.
    let rows = running.await.expect("join").expect("the statement in flight finishes");
    assert_eq!(common::text_rows(&rows), vec![vec!["100000000".to_string()]]);
    // The idle connection was closed, and nobody new gets in.
    assert!(idle.simple_query("SELECT 1").await.is_err(), "an idle connection is closed on shutdown");
    exits_zero(&mut child, Duration::from_secs(30)).await;
    let (ok, said) = verify(&audit, true);
    assert!(ok, "the trail verifies after a graceful stop: {said}");
    let ends = records(&audit).iter().filter(|r| r["input"].as_str() == Some(sql) && r["kind"].as_str() == Some("end")).count();
    assert_eq!(ends, 1, "the statement's end line is in the trail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_statements_past_the_grace_period_with_57p01() {
    drop(common::start().await);
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit.log");
    let port = free_port();
    let mut child = spawn_lalo_with(&audit, port, &[("LALO_SERVER_SHUTDOWN_GRACE_MS", "500")]);
    wait_ready(port).await;
    let busy = connect(port, "admin").await.expect("connects");
    // Far longer than the grace period.
    let sql = "SELECT count(*) FROM generate_series(1, 100000000000)";
    let running = tokio::spawn(async move { busy.simple_query(sql).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    sigterm(&child, port).await;
    let e = running.await.expect("join").expect_err("the long statement is ended");
    assert_eq!(common::sqlstate(&e), "57P01", "{e:?}");
    exits_zero(&mut child, Duration::from_secs(20)).await;
    let (ok, said) = verify(&audit, true);
    assert!(ok, "the trail verifies: {said}");
    let end = records(&audit).into_iter().find(|r| r["input"].as_str() == Some(sql) && r["kind"].as_str() == Some("end"));
    let end = end.expect("the ended statement has its end line");
    assert!(end.to_string().contains("57P01"), "the end line says why: {end}");
}
