//! The one pipeline: every statement is planned, governed, admitted and audited once, whichever
//! executor runs it and whichever protocol brought it; and the pipeline runs without a socket.

use futures::StreamExt;
use lalo::pipeline::{Delivery, Input, Outcome};
use lalo::router::Route;
use lalo::session::EntryPoint;

use crate::common::{self, sqlstate};
use crate::pgcluster;

/// Audit lines of `user` whose input contains `needle`, one per statement: a result's start line
/// (its end line repeats who and what, with the rows) is left out.
fn audited(s: &common::TestServer, user: &str, needle: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(s.audit_path()).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] != "start")
        .filter(|v| v["user"] == user && v["input"].as_str().is_some_and(|i| i.contains(needle)))
        .collect()
}

/// Audit lines are written when a statement ends; give a spawned write a moment.
async fn settle() {
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
}

#[tokio::test]
async fn upstream_statements_are_governed_once_and_audited_once() {
    let pg = pgcluster::defog().await;
    let catalog = crate::upstream::catalog_with(&[("restaurants".into(), pg.url("restaurants"))]);
    // Analysts may read the restaurant table of the upstream, but not its ratings.
    let pol = crate::policy::policy_copy();
    let mut csv = std::fs::read_to_string(pol.path().join("policy.csv")).expect("policy.csv");
    csv.push_str("p, analysts, restaurants.public.restaurant, select, allow\n");
    csv.push_str("p, analysts, restaurants.public.restaurant.rating, select, deny\n");
    std::fs::write(pol.path().join("policy.csv"), csv).expect("write policy.csv");
    let (dir, policies) = (catalog.path().to_path_buf(), pol.path().to_path_buf());
    let s = common::start_with(move |cfg| {
        cfg.catalog.dir = dir;
        cfg.governance.policies = policies;
    })
    .await;
    let stages = &s.running.lalo.stages;

    // A statement the caller may not run, on its first execution over an upstream database.
    let analyst = s.connect_db("analyst", "restaurants").await;
    let (_, governed0, _) = stages.read();
    let e = analyst.simple_query("SELECT name FROM restaurant WHERE rating > 4").await.unwrap_err();
    assert_eq!(sqlstate(&e), "42501", "{e:?}");
    let (_, governed1, _) = stages.read();
    assert_eq!(governed1 - governed0, 1, "a refused statement is governed once");
    settle().await;
    let lines = audited(&s, "analyst", "FROM restaurant WHERE rating > 4");
    assert_eq!(lines.len(), 1, "one record for one refused statement: {lines:?}");
    assert_eq!(lines[0]["decision"], "denied");
    // The allowed columns are readable, on the direct lane.
    let names = common::text_rows(&analyst.simple_query("SELECT count(name) FROM restaurant").await.expect("allowed"));
    assert_eq!(names.len(), 1);

    // An allowed one: planned, governed and admitted once on its first execution, and its
    // repeats (other literals) neither planned nor governed again.
    let admin = s.connect_db("admin", "restaurants").await;
    let before = stages.read();
    let first = common::text_rows(&admin.simple_query("SELECT count(*) FROM restaurant WHERE rating > 4").await.expect("first"));
    let after = stages.read();
    assert_eq!((after.0 - before.0, after.1 - before.1, after.2 - before.2), (1, 1, 1), "first execution: {before:?} -> {after:?}");
    for r in [3, 2, 1] {
        admin.simple_query(&format!("SELECT count(*) FROM restaurant WHERE rating > {r}")).await.expect("repeat");
    }
    let repeated = stages.read();
    assert_eq!((repeated.0, repeated.1), (after.0, after.1), "repeats reuse the executor");
    assert_eq!(repeated.2 - after.2, 3, "each repeat is admitted once");
    assert!(!first.is_empty());

    // A repeat whose value the cached plan's parameter cannot take is planned as sent and
    // answers as PostgreSQL does (no row has an int4 id of three billion).
    admin.simple_query("SELECT name FROM restaurant WHERE id = 1").await.expect("learn the shape");
    admin.simple_query("SELECT name FROM restaurant WHERE id = 2").await.expect("shaped repeat");
    let none = admin.simple_query("SELECT name FROM restaurant WHERE id = 3000000000").await.expect("out of range");
    assert!(common::text_rows(&none).is_empty());

    // The extended protocol: Describe governs, Execute reuses that decision.
    let before = stages.read();
    let rows = admin.query("SELECT name FROM restaurant WHERE rating > $1::float8", &[&4.0f64]).await.expect("prepared");
    let after = stages.read();
    assert_eq!(after.1 - before.1, 1, "Parse/Describe/Bind/Execute govern once: {before:?} -> {after:?}");
    assert_eq!(after.2 - before.2, 1, "and admit once");
    let _ = rows;
}

#[tokio::test]
async fn a_rate_limited_user_is_counted_once_per_statement() {
    let pg = pgcluster::defog().await;
    let catalog = crate::upstream::catalog_with(&[("restaurants".into(), pg.url("restaurants"))]);
    let dir = catalog.path().to_path_buf();
    let s = common::start_with(move |cfg| {
        cfg.catalog.dir = dir;
        cfg.governance.rate_limit_per_minute = 4;
    })
    .await;
    let admin = s.connect_db("admin", "restaurants").await;
    // Four statements of four kinds: direct upstream, its repeat, embedded catalog, prepared.
    admin.simple_query("SELECT name FROM restaurant WHERE rating > 4").await.expect("1");
    admin.simple_query("SELECT name FROM restaurant WHERE rating > 3").await.expect("2");
    admin.simple_query("SELECT count(*) FROM pg_catalog.pg_class").await.expect("3");
    admin.query("SELECT name FROM restaurant WHERE rating > $1::float8", &[&1.0f64]).await.expect("4");
    let e = admin.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(sqlstate(&e), "54000", "the fifth statement in a minute is refused: {e:?}");
}

#[tokio::test]
async fn ask_over_the_extended_protocol_drafts_once() {
    let (script, base) = crate::llm::scripted().await;
    let s = crate::llm::start_llm(&base, 5000, 0).await;
    script.push(crate::llm::sql_reply("SELECT n_name FROM tpch.nation ORDER BY n_name LIMIT 3"));
    let c = s.connect("analyst").await;
    // tokio-postgres' query: Parse, Describe, Bind, Execute, Sync.
    let rows = c.query("ASK the first three nation names", &[]).await.expect("ask");
    assert_eq!(rows.len(), 3);
    let names: Vec<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
    assert_eq!(names, vec!["ALGERIA", "ARGENTINA", "BRAZIL"]);
    assert_eq!(script.requests().len(), 1, "one model call for one question");
    settle().await;
    let lines = audited(&s, "analyst", "the first three nation names");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["rows"], 3);
}

#[tokio::test]
async fn every_cursor_command_is_audited_even_an_unknown_cursor() {
    let s = common::start().await;
    let c = s.connect("analyst").await;
    let e = c.simple_query("CLOSE no_such_cursor").await.unwrap_err();
    assert_eq!(sqlstate(&e), "34000");
    let e = c.simple_query("FETCH 5 FROM no_such_cursor").await.unwrap_err();
    assert_eq!(sqlstate(&e), "34000");
    c.simple_query("BEGIN").await.expect("begin");
    c.simple_query("DECLARE n CURSOR FOR SELECT n_name FROM tpch.nation").await.expect("declare");
    let fetched = common::text_rows(&c.simple_query("FETCH 2 FROM n").await.expect("fetch"));
    assert_eq!(fetched.len(), 2);
    c.simple_query("CLOSE n").await.expect("close");
    c.simple_query("COMMIT").await.expect("commit");
    settle().await;
    let close = audited(&s, "analyst", "CLOSE no_such_cursor");
    assert_eq!(close.len(), 1, "{close:?}");
    assert_eq!(close[0]["decision"], "failed");
    assert!(close[0]["error"].as_str().unwrap_or("").starts_with("34000"), "{close:?}");
    assert_eq!(audited(&s, "analyst", "FETCH 5 FROM no_such_cursor").len(), 1);
    let fetch = audited(&s, "analyst", "FETCH 2 FROM n");
    assert_eq!(fetch.len(), 1);
    assert_eq!(fetch[0]["rows"], 2);
    let closed: Vec<_> = audited(&s, "analyst", "CLOSE n").into_iter().filter(|v| v["input"] == "CLOSE n").collect();
    assert_eq!(closed.len(), 1);
}

#[tokio::test]
async fn the_pipeline_runs_without_a_socket() {
    let s = common::start().await;
    let lalo = &s.running.lalo;
    let session = lalo.open_session("intern", "lalo", "test", EntryPoint::Cli).expect("session");
    let mut routes = lalo.route(&session, "SELECT count(*) FROM tpch.region").expect("route");
    let route = routes.remove(0);
    let outcome = lalo.run(&session, Input::Routed { route, text: "SELECT count(*) FROM tpch.region" }, Delivery::default()).await;
    let Ok(Outcome::Rows { mut rows, .. }) = outcome else { panic!("rows expected: {outcome:?}") };
    let batch = rows.next().await.expect("a batch").expect("ok");
    assert_eq!(batch.num_rows(), 1);
    // Governance holds here as on the wire: interns never read an account balance.
    let denied = "SELECT max(c_acctbal) FROM tpch.customer";
    let route = lalo.route(&session, denied).expect("route").remove(0);
    let e = lalo.run(&session, Input::Routed { route, text: denied }, Delivery::default()).await.unwrap_err();
    assert_eq!(e.sqlstate(), "42501");
    // Commands go through the same run.
    let set = Route::Set { name: "application_name".into(), value: "pipeline-test".into() };
    let outcome = lalo.run(&session, Input::Routed { route: set, text: "SET application_name = 'pipeline-test'" }, Delivery::default()).await;
    assert!(matches!(outcome, Ok(Outcome::Command { .. })), "{outcome:?}");
}
