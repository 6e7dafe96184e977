//! Governance that cannot be walked around: every relation and column a statement reads is
//! checked wherever it appears (quantified comparisons, outer references, LATERAL), sessions
//! cannot change each other's upstream results, policy changes reach open sessions, a broken
//! policy directory stops lalo instead of opening it, and names match policies however they
//! are spelled.

use std::time::Duration;

use crate::common::{self, sqlstate};
use crate::pgcluster;
use crate::policy::policy_copy;

/// Statements that read the intern's denied column `tpch.customer.c_acctbal` (or the analyst's
/// denied table `lalo_audit.events`) through constructs the access check once missed.
const READS_DENIED: &[(&str, &str)] = &[
    ("intern", "SELECT n_name FROM tpch.nation WHERE n_nationkey < ALL (SELECT c_acctbal FROM tpch.customer)"),
    ("intern", "SELECT n_name FROM tpch.nation WHERE n_nationkey > ANY (SELECT c_acctbal FROM tpch.customer)"),
    ("intern", "SELECT n_name FROM tpch.nation WHERE n_nationkey = ALL (SELECT c_acctbal FROM tpch.customer WHERE c_custkey = 1)"),
    ("intern", "SELECT n_name FROM tpch.nation WHERE n_nationkey <> SOME (SELECT c_acctbal FROM tpch.customer)"),
    ("intern", "SELECT n_name FROM tpch.nation WHERE NOT (n_nationkey >= ALL (SELECT c_acctbal FROM tpch.customer))"),
    // The denied column only in the outer query, read from inside a correlated subquery.
    (
        "intern",
        "SELECT c_name FROM tpch.customer c WHERE EXISTS (SELECT 1 FROM tpch.nation n WHERE n.n_nationkey = c.c_nationkey AND c.c_acctbal > 9000)",
    ),
    (
        "intern",
        "SELECT c_name FROM tpch.customer c WHERE NOT EXISTS (SELECT 1 FROM tpch.nation n WHERE c.c_acctbal < 0 AND n.n_nationkey = 1)",
    ),
    (
        "intern",
        "SELECT c_name, (SELECT n_name FROM tpch.nation n WHERE n.n_nationkey = c.c_nationkey AND c.c_acctbal > 5000) FROM tpch.customer c",
    ),
    (
        "intern",
        "SELECT c_name FROM tpch.customer c WHERE c.c_nationkey IN (SELECT n_nationkey FROM tpch.nation WHERE n_nationkey < c.c_acctbal)",
    ),
    (
        "intern",
        "SELECT c_name FROM tpch.customer c WHERE 1 < ALL (SELECT n_nationkey FROM tpch.nation n WHERE n.n_regionkey = c.c_acctbal)",
    ),
    ("intern", "SELECT c.c_name, x.v FROM tpch.customer c, LATERAL (SELECT c.c_acctbal AS v) x"),
    (
        "intern",
        "SELECT n_name FROM tpch.nation n WHERE EXISTS (SELECT 1 FROM tpch.region r WHERE EXISTS (SELECT 1 FROM tpch.customer c WHERE c.c_nationkey = n.n_nationkey AND c.c_acctbal > r.r_regionkey))",
    ),
    // A denied table reached only through a quantified comparison.
    ("analyst", "SELECT n_name FROM tpch.nation WHERE n_nationkey <> ALL (SELECT 1 FROM lalo_audit.events)"),
    ("analyst", "SELECT n_name FROM tpch.nation WHERE 'x' = ANY (SELECT \"user\" FROM lalo.lalo_audit.events)"),
];

fn refused(e: &tokio_postgres::Error) -> bool {
    matches!(sqlstate(e).as_str(), "42501" | "42P01")
}

#[tokio::test]
async fn every_subquery_kind_and_outer_reference_is_checked() {
    let s = common::start().await;
    for user in ["intern", "analyst"] {
        let c = s.connect(user).await;
        for (who, sql) in READS_DENIED.iter().filter(|(u, _)| *u == user) {
            // A denied column is refused by name; a denied table is not even visible (42P01).
            let e = c.simple_query(sql).await.expect_err(sql);
            assert!(refused(&e), "{who}, simple: {sql}: {e}");
            let e = c.query(*sql, &[]).await.expect_err(sql);
            assert!(refused(&e), "{who}, extended: {sql}: {e}");
        }
        // The same shapes over allowed columns still run.
        let ok = [
            "SELECT n_name FROM tpch.nation WHERE n_nationkey < ALL (SELECT c_nationkey + 100 FROM tpch.customer)",
            "SELECT count(*) FROM tpch.customer c WHERE EXISTS (SELECT 1 FROM tpch.nation n WHERE n.n_nationkey = c.c_nationkey)",
        ];
        for sql in ok {
            c.simple_query(sql).await.unwrap_or_else(|e| panic!("{user}: {sql}: {e}"));
        }
    }
}

#[tokio::test]
async fn audit_lists_what_subqueries_read() {
    let s = common::start().await;
    let admin = s.connect("admin").await;
    admin
        .simple_query(
            "SELECT n_name FROM tpch.nation n WHERE n_nationkey < ALL (SELECT c_acctbal FROM tpch.customer c WHERE c.c_mktsegment = 'NONE') \
             AND EXISTS (SELECT 1 FROM tpch.region r WHERE r.r_regionkey = n.n_regionkey AND r.r_comment <> n.n_comment)",
        )
        .await
        .unwrap();
    let audit = std::fs::read_to_string(s.audit_path()).unwrap();
    let line = audit.lines().rev().find(|l| l.contains("< ALL")).expect("audit line");
    let rec: serde_json::Value = serde_json::from_str(line).unwrap();
    let objects: Vec<&str> = rec["objects"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    for o in [
        "lalo.tpch.customer",
        "lalo.tpch.customer.c_acctbal",
        "lalo.tpch.customer.c_mktsegment",
        "lalo.tpch.region",
        "lalo.tpch.region.r_comment",
        "lalo.tpch.nation.n_comment",
    ] {
        assert!(objects.contains(&o), "{o} missing from {objects:?}");
    }
}

#[tokio::test]
async fn role_changes_reach_open_sessions() {
    let pol = policy_copy();
    let p = pol.path().to_path_buf();
    let s = common::start_with(move |cfg| cfg.governance.policies = p).await;
    let admin = s.connect("admin").await;
    let phone: String = admin.query_one("SELECT c_phone FROM tpch.customer WHERE c_custkey = 1", &[]).await.unwrap().get(0);
    let intern = s.connect("intern").await;
    let stmt = intern.prepare("SELECT c_phone FROM tpch.customer WHERE c_custkey = 1").await.unwrap();
    let seen: String = intern.query_one(&stmt, &[]).await.unwrap().get(0);
    assert_eq!(seen, phone);
    // The intern joins the analysts' role, whose mask hides all but the last four digits.
    let mut policy = std::fs::read_to_string(pol.path().join("policy.csv")).unwrap();
    policy.push_str("g, intern, analysts\n");
    std::fs::write(pol.path().join("policy.csv"), policy).unwrap();
    let mut masked = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let simple: String = intern.query_one("SELECT c_phone FROM tpch.customer WHERE c_custkey = 1", &[]).await.unwrap().get(0);
        if simple != phone {
            assert!(simple.starts_with('*') && simple.ends_with(&phone[phone.len() - 4..]), "{simple}");
            // The prepared statement of the open session is masked too.
            let prepared: String = intern.query_one(&stmt, &[]).await.unwrap().get(0);
            assert_eq!(prepared, simple);
            masked = true;
            break;
        }
    }
    assert!(masked, "the role's mask did not reach the open session");
}

#[tokio::test]
async fn a_broken_policy_directory_stops_lalo() {
    let dir = tempfile::tempdir().unwrap();
    // No such directory.
    let missing = dir.path().join("nowhere");
    let mut cfg = common::test_config(dir.path());
    cfg.governance.policies = missing.clone();
    let err = lalo::runtime::start(cfg).await.err().expect("lalo must not start without its policies");
    assert!(err.to_string().contains("nowhere"), "{err}");
    // A directory without one of its files.
    for gone in ["model.conf", "policy.csv", "rules.toml"] {
        let pol = policy_copy();
        std::fs::remove_file(pol.path().join(gone)).unwrap();
        let mut cfg = common::test_config(dir.path());
        cfg.governance.policies = pol.path().to_path_buf();
        let err = lalo::runtime::start(cfg).await.err().unwrap_or_else(|| panic!("started without {gone}"));
        assert!(err.to_string().contains(gone), "{err}");
    }
    // `lalo check` says so too.
    let cfg_path = dir.path().join("lalo.toml");
    let repo = common::repo();
    let text = lalo::config::DEMO_CONFIG
        .replace("policies = \"policies\"", &format!("policies = {:?}", missing.display().to_string()))
        .replace("dir = \"catalog\"", &format!("dir = {:?}", repo.join("catalog").display().to_string()))
        .replace("data_dir = \"data\"", &format!("data_dir = {:?}", common::shared_data_dir().display().to_string()));
    assert!(text.contains("nowhere"), "the demo config names its policy directory");
    std::fs::write(&cfg_path, text).unwrap();
    let problems = lalo::check::check(Some(&cfg_path)).await;
    assert!(problems.iter().any(|p| p.contains("nowhere")), "{problems:?}");
}

#[tokio::test]
async fn a_broken_reload_keeps_the_last_good_policies() {
    let pol = policy_copy();
    let p = pol.path().to_path_buf();
    let s = common::start_with(move |cfg| cfg.governance.policies = p).await;
    let intern = s.connect("intern").await;
    std::fs::remove_file(pol.path().join("policy.csv")).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Still governed by the last good set: the deny holds and the allowed part still reads.
    let e = intern.query("SELECT c_acctbal FROM tpch.customer", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&e), "42501");
    assert_eq!(intern.query("SELECT * FROM tpch.region", &[]).await.unwrap().len(), 5);
}

/// An upstream with mixed-case names, served as `walk`, and policies that deny the intern the
/// quoted table `"Payroll"` and the column `staff."Salary"` written in other cases.
async fn walk_upstream() -> (common::TestServer, tempfile::TempDir, tempfile::TempDir, String) {
    let pg = pgcluster::defog().await;
    pg.psql("postgres", "DROP DATABASE IF EXISTS walk").await;
    pg.psql("postgres", "CREATE DATABASE walk").await;
    pg.psql(
        "walk",
        "CREATE TABLE \"Payroll\" (id int PRIMARY KEY, amount int); INSERT INTO \"Payroll\" VALUES (1, 100), (2, 200);\
         CREATE TABLE staff (id int PRIMARY KEY, name text, \"Salary\" int); INSERT INTO staff VALUES (1, 'ann', 10), (2, 'bob', 20);",
    )
    .await;
    let pol = tempfile::tempdir().unwrap();
    std::fs::copy(common::repo().join("policies/model.conf"), pol.path().join("model.conf")).unwrap();
    std::fs::write(
        pol.path().join("policy.csv"),
        "g, admin, admins\ng, analyst, analysts\ng, intern, interns\n\
         p, admins, *, *, allow\n\
         p, analysts, walk.public.*, select, allow\n\
         p, interns, walk.public.*, select, allow\n\
         p, interns, walk.public.payroll, select, deny\n\
         p, interns, WALK.public.\"STAFF\".salary, select, deny\n",
    )
    .unwrap();
    std::fs::write(pol.path().join("rules.toml"), "").unwrap();
    let catalog = crate::upstream::catalog_with(&[("walk".to_string(), pg.url("walk"))]);
    let (c, p) = (catalog.path().to_path_buf(), pol.path().to_path_buf());
    let s = common::start_with(move |cfg| {
        cfg.catalog.dir = c;
        cfg.governance.policies = p;
    })
    .await;
    let port = pg.url("walk").split(':').nth(2).and_then(|x| x.split('/').next()).unwrap_or_default().to_string();
    (s, catalog, pol, port)
}

#[tokio::test]
async fn upstream_names_sessions_and_settings() {
    let (s, _catalog, _pol, upstream_port) = walk_upstream().await;

    // Deny rules hold however the statement or the policy spells the name.
    let intern = s.connect_db("intern", "walk").await;
    for sql in [
        "SELECT * FROM \"Payroll\"",
        "SELECT count(*) FROM public.\"Payroll\"",
        "SELECT count(*) FROM walk.public.\"Payroll\"",
        "SELECT \"Salary\" FROM staff",
        "SELECT name FROM staff WHERE \"Salary\" > 0",
        "SELECT * FROM staff",
    ] {
        let e = intern.simple_query(sql).await.expect_err(sql);
        assert!(refused(&e), "{sql}: {e}");
        let e = intern.query(sql, &[]).await.expect_err(sql);
        assert!(refused(&e), "extended {sql}: {e}");
    }
    assert_eq!(intern.query("SELECT name FROM staff ORDER BY id", &[]).await.unwrap().len(), 2);

    // One session cannot change what the upstream connections answer others.
    let a = s.connect_db("analyst", "walk").await;
    let b = s.connect_db("analyst", "walk").await;
    let before = common::text_rows(&b.simple_query("SELECT name FROM staff ORDER BY id").await.unwrap());
    for sql in [
        "SELECT set_config('search_path', 'pg_catalog', false) AS s, count(*) FROM staff",
        "SELECT count(*) FROM staff WHERE set_config('search_path', 'pg_catalog', false) IS NOT NULL",
        "SELECT name FROM staff WHERE id IN (SELECT length(set_config('search_path', 'x', false)) FROM staff)",
    ] {
        let e = a.simple_query(sql).await.expect_err(sql);
        assert_eq!(sqlstate(&e), "0A000", "{sql}: {e}");
        let e = a.query(sql, &[]).await.expect_err(sql);
        assert_eq!(sqlstate(&e), "0A000", "extended {sql}: {e}");
    }
    let e = a.query("SELECT set_config($1, 'x', false), count(*) FROM staff", &[&"search_path"]).await.unwrap_err();
    assert_eq!(sqlstate(&e), "0A000", "{e}");
    for _ in 0..4 {
        let after = common::text_rows(&b.simple_query("SELECT name FROM staff ORDER BY id").await.unwrap());
        assert_eq!(after, before);
        let after = common::text_rows(&a.simple_query("SELECT name FROM staff ORDER BY id").await.unwrap());
        assert_eq!(after, before);
    }

    // Session functions answer from lalo, never from the upstream server.
    let row = a.query_one("SELECT current_user, current_database(), count(*) FROM staff", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "analyst");
    assert_eq!(row.get::<_, String>(1), "walk");
    match a.simple_query("SELECT current_setting('port') AS p, count(*) FROM staff").await {
        Ok(msgs) => {
            let rows = common::text_rows(&msgs);
            assert_ne!(rows[0][0], upstream_port, "the upstream's port leaked");
        }
        Err(e) => assert_eq!(sqlstate(&e), "42704", "{e}"),
    }
    for name in ["data_directory", "config_file", "hba_file"] {
        let sql = format!("SELECT current_setting('{name}') AS v, count(*) FROM staff");
        if let Ok(msgs) = a.simple_query(&sql).await {
            let v = &common::text_rows(&msgs)[0][0];
            assert!(!v.contains('/'), "{name} leaked the upstream's path: {v}");
        }
    }
    // A lalo setting still reads in an upstream statement.
    a.simple_query("SET application_name = 'walker'").await.unwrap();
    let msgs = a.simple_query("SELECT current_setting('application_name') AS t, count(*) FROM staff").await.unwrap();
    assert_eq!(common::text_rows(&msgs)[0][0], "walker");
}
