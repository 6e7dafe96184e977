//! Distributed execution on a standalone Ballista cluster (scheduler and two executors in the
//! gateway's process): the 22 TPC-H statements and a row-filtered, masked user give the same
//! rows as the local engine; overflow is still an error there; EXPLAIN shows the plan the
//! cluster runs; a stopped scheduler is 08006 without fallback and the local engine's answer
//! with it, and the gateway keeps serving.

use crate::common::{self, rows_or_error as rows, tpch_queries};

/// A gateway whose embedded statements run on a standalone cluster.
async fn clustered(fallback: bool) -> common::TestServer {
    common::start_with(move |cfg| {
        cfg.engine.distributed = "standalone".into();
        cfg.engine.distributed_executors = 2;
        cfg.engine.distributed_fallback = fallback;
    })
    .await
}

fn distributed_count(outcome: &str) -> f64 {
    let text = lalo::metrics::render();
    text.lines()
        .filter(|l| l.starts_with("lalo_distributed_statements_total") && l.contains(&format!("outcome=\"{outcome}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tpch_on_the_cluster_answers_as_the_local_engine() {
    let local = common::start().await;
    let cluster = clustered(false).await;
    let (l_admin, c_admin) = (local.connect("admin").await, cluster.connect("admin").await);
    let before = distributed_count("cluster");

    let mut mismatches = Vec::new();
    let mut answered = 0;
    for (name, sql) in tpch_queries() {
        // (A statement lalo refuses, it refuses alike with a cluster: the same error.)
        let want = rows(&l_admin, &sql).await;
        let got = rows(&c_admin, &sql).await;
        answered += want.is_ok() as usize;
        if want != got {
            mismatches.push(format!("{name}: local {want:?}\n cluster {got:?}"));
        }
    }
    assert!(mismatches.is_empty(), "rows differ:\n{}", mismatches.join("\n"));
    let sent = distributed_count("cluster") - before;
    assert!(answered >= 20, "{answered} of 22 answered");
    // Those with a scalar subquery stay local; most run there.
    assert!(sent >= 12.0, "TPC-H statements answered on the cluster: {sent}");

    // A row-filtered, masked user: governance's rewrite is what the cluster runs.
    let (l_an, c_an) = (local.connect("analyst").await, cluster.connect("analyst").await);
    for sql in [
        "SELECT o_orderpriority, count(*), sum(o_totalprice) FROM tpch.orders GROUP BY 1 ORDER BY 1",
        "SELECT c_custkey, c_phone, c_nationkey FROM tpch.customer ORDER BY c_custkey LIMIT 20",
        "SELECT c_phone, count(*) FROM tpch.customer JOIN tpch.orders ON o_custkey = c_custkey GROUP BY c_phone ORDER BY 2 DESC, 1 LIMIT 5",
    ] {
        let want = rows(&l_an, sql).await.expect("local");
        let got = rows(&c_an, sql).await.expect("cluster");
        assert_eq!(want, got, "{sql}");
    }
    let all = rows(&c_admin, "SELECT count(*) FROM tpch.orders").await.expect("count");
    let filtered = rows(&c_an, "SELECT count(*) FROM tpch.orders").await.expect("count");
    assert_ne!(all, filtered, "the analyst's row filter holds on the cluster");
    let phones = rows(&c_an, "SELECT c_phone FROM tpch.customer LIMIT 3").await.expect("phones");
    assert!(phones.iter().all(|r| r[0].starts_with('*') || r[0].chars().filter(|c| c.is_ascii_digit()).count() <= 4), "masked on the cluster: {phones:?}");

    // Checked arithmetic survives the wire: an overflow is 22003 there as here.
    let sql = "SELECT o_orderkey * 4611686018427387904 FROM tpch.orders";
    let here = rows(&l_admin, sql).await.expect_err("overflow");
    let there = rows(&c_admin, sql).await.expect_err("overflow on the cluster");
    assert!(here.starts_with("22003") && there.starts_with("22003"), "local {here}, cluster {there}");

    // EXPLAIN shows what the cluster runs; lalo's catalog stays local.
    let plan = rows(&c_admin, "EXPLAIN SELECT l_returnflag, count(*) FROM tpch.lineitem GROUP BY 1").await.expect("explain");
    let text = plan.iter().map(|r| r.join(" ")).collect::<Vec<_>>().join("\n");
    assert!(text.contains("DistributedExec: ballista=standalone") && text.contains("stage 2:") && text.contains("ShuffleWriterExec"), "{text}");
    let catalog = rows(&c_admin, "EXPLAIN SELECT count(*) FROM pg_catalog.pg_class").await.expect("explain");
    assert!(!catalog.iter().any(|r| r.join(" ").contains("DistributedExec")), "{catalog:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_scheduler_is_08006_or_the_local_answer() {
    let sql = "SELECT l_returnflag, l_linestatus, sum(l_quantity), count(*) FROM tpch.lineitem GROUP BY 1, 2 ORDER BY 1, 2";

    // Without fallback: a clear 08006, and the gateway serves everything else.
    let strict = clustered(false).await;
    let client = strict.connect("admin").await;
    let want = rows(&client, sql).await.expect("runs on the cluster");
    let cluster = strict.running.lalo.cluster.clone().expect("a cluster");
    assert!(cluster.stop_scheduler());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let err = rows(&client, sql).await.expect_err("scheduler stopped");
    assert!(err.starts_with("08006") && err.contains("distributed_fallback"), "{err}");
    assert_eq!(rows(&client, "SELECT 1").await.expect("still serving"), vec![vec!["1".to_string()]]);
    let fresh = strict.connect("admin").await;
    assert_eq!(rows(&fresh, "SELECT count(*) FROM pg_catalog.pg_namespace WHERE nspname = 'tpch'").await.expect("catalog"), vec![vec!["1".to_string()]]);

    // With fallback: the same rows from the local engine.
    let lenient = clustered(true).await;
    let client = lenient.connect("admin").await;
    assert_eq!(rows(&client, sql).await.expect("cluster"), want);
    let before = distributed_count("fallback");
    assert!(lenient.running.lalo.cluster.clone().expect("a cluster").stop_scheduler());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(rows(&client, sql).await.expect("falls back"), want);
    assert!(distributed_count("fallback") > before, "the fallback is counted");
}

#[tokio::test]
async fn distributed_modes_parse_and_bad_ones_are_refused() {
    use lalo::distributed::Mode;
    assert_eq!(Mode::parse("off").unwrap(), Mode::Off);
    assert_eq!(Mode::parse("standalone").unwrap(), Mode::Standalone);
    assert_eq!(Mode::parse("df://sched:50055").unwrap(), Mode::Remote("http://sched:50055".into()));
    assert_eq!(Mode::parse("df://sched").unwrap(), Mode::Remote("http://sched:50050".into()));
    for bad in ["local", "http://x:1", "df://", "df://a/b", "df://u@h:1"] {
        assert!(Mode::parse(bad).is_err(), "{bad}");
    }
    // A gateway does not start on a mode it does not know, and says which ones it does.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = common::test_config(dir.path());
    cfg.engine.distributed = "ballista://sched".into();
    let err = lalo::runtime::start(cfg).await.err().expect("refused");
    assert!(err.to_string().contains("df://host:port"), "{err}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Kills the child process when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn lalo_process(args: &[&str]) -> Child {
    Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_lalo"))
            .args(args)
            .env("LALO_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("lalo runs"),
    )
}

/// `df://`: a scheduler and an executor as their own processes (`lalo ballista ...`), the
/// gateway sending its governed plans there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_external_cluster_runs_what_the_gateway_sends() {
    let (sched, flight, grpc) = (free_port(), free_port(), free_port());
    let work = tempfile::tempdir().expect("tempdir");
    let _scheduler = lalo_process(&["ballista", "scheduler", "--bind", &format!("127.0.0.1:{sched}")]);
    for _ in 0..600 {
        if tokio::net::TcpStream::connect(("127.0.0.1", sched)).await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _executor = lalo_process(&[
        "ballista",
        "executor",
        "--scheduler",
        &format!("127.0.0.1:{sched}"),
        "--bind-host",
        "127.0.0.1",
        "--external-host",
        "127.0.0.1",
        "--port",
        &flight.to_string(),
        "--grpc-port",
        &grpc.to_string(),
        "--tasks",
        "2",
        "--work-dir",
        &work.path().to_string_lossy(),
    ]);
    let local = common::start().await;
    let remote = common::start_with(move |cfg| cfg.engine.distributed = format!("df://127.0.0.1:{sched}")).await;
    let before = distributed_count("cluster");
    let sql = "SELECT l_returnflag, l_linestatus, sum(l_extendedprice * (1 - l_discount)), avg(l_quantity), count(*) \
               FROM tpch.lineitem WHERE l_shipdate <= date '1998-09-02' GROUP BY 1, 2 ORDER BY 1, 2";
    let orders = "SELECT o_orderpriority, count(*), sum(o_totalprice) FROM tpch.orders GROUP BY 1 ORDER BY 1";
    // The executor registers with the scheduler once it is up: until then the gateway's
    // statements wait on the scheduler or fail over to a rerun here; give it a few seconds.
    let client = remote.connect("analyst").await;
    let want = rows(&local.connect("analyst").await, orders).await.expect("local");
    let mut got = Err(String::new());
    for _ in 0..60 {
        // (Bounded: a cluster without executors would hold the statement.)
        got = tokio::time::timeout(std::time::Duration::from_secs(30), rows(&client, orders)).await.unwrap_or_else(|_| Err("no answer in 30 s".into()));
        if got.as_ref() == Ok(&want) && distributed_count("cluster") > before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert_eq!(got, Ok(want), "the analyst's row filter, on the external cluster");
    assert!(distributed_count("cluster") > before, "answered by the cluster");
    let admin = remote.connect("admin").await;
    assert_eq!(rows(&admin, sql).await, rows(&local.connect("admin").await, sql).await);
}
