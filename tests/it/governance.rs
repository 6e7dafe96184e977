//! Governance with the demo policies: admin sees all; analyst has a row filter on orders and a
//! last4 mask on customer.c_phone; intern is denied customer.c_acctbal.

use crate::common::{self, psql, sqlstate};

const TABLES: [&str; 8] = ["customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"];

#[tokio::test]
async fn select_star_on_every_table_per_user() {
    let s = common::start().await;
    for user in ["admin", "analyst", "intern"] {
        let c = s.connect(user).await;
        for t in TABLES {
            let r = c.query(&format!("SELECT * FROM tpch.{t} LIMIT 5"), &[]).await;
            if user == "intern" && t == "customer" {
                let e = r.unwrap_err();
                assert_eq!(sqlstate(&e), "42501", "{user} {t}");
                let msg = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_default();
                assert!(msg.contains("c_acctbal"), "{msg}");
            } else {
                let rows = r.unwrap_or_else(|e| panic!("{user} {t}: {e:?}"));
                assert_eq!(rows.len(), 5, "{user} {t}");
            }
        }
    }
}

#[tokio::test]
async fn denied_column_is_refused_however_it_is_reached() {
    let s = common::start().await;
    let c = s.connect("intern").await;
    let attempts = [
        "SELECT c_acctbal FROM tpch.customer",
        "WITH x AS (SELECT c_custkey, c_acctbal FROM tpch.customer) SELECT c_custkey FROM x",
        "WITH x AS (SELECT c_acctbal FROM tpch.customer) SELECT count(*) FROM x",
        "SELECT c_name FROM tpch.customer WHERE c_custkey IN (SELECT c_custkey FROM tpch.customer WHERE c_acctbal > 0)",
        "SELECT c_name FROM tpch.customer UNION SELECT CAST(c_acctbal AS VARCHAR) FROM tpch.customer",
        "SELECT n_name FROM tpch.nation n WHERE EXISTS (SELECT 1 FROM tpch.customer c WHERE c.c_nationkey = n.n_nationkey AND c.c_acctbal > 9000)",
        "SELECT max(c_acctbal) FROM tpch.customer",
        "SELECT c_name FROM tpch.customer ORDER BY c_acctbal DESC LIMIT 1",
        "SELECT c_name FROM tpch.customer WHERE \"c_acctbal\" > 0",
        "SELECT c_name FROM TPCH.CUSTOMER WHERE C_ACCTBAL > 0",
        "SELECT c_name /* c_phone */ FROM tpch.customer WHERE c_acctbal -- hidden\n > 0",
        "SELECT c_mktsegment, count(*) FROM tpch.customer GROUP BY c_mktsegment HAVING sum(c_acctbal) > 0",
        "SELECT c_name FROM tpch.customer JOIN tpch.nation ON c_nationkey = n_nationkey AND c_acctbal > 0",
        "SELECT abs(c_acctbal) FROM tpch.customer",
        "SELECT c_name FROM lalo.tpch.customer WHERE c_acctbal > 0",
    ];
    for sql in attempts {
        let e = c.simple_query(sql).await.expect_err(sql);
        assert_eq!(sqlstate(&e), "42501", "{sql}: {e}");
        // The same statement through Parse/Bind/Execute.
        let e = c.query(sql, &[]).await.expect_err(sql);
        assert_eq!(sqlstate(&e), "42501", "extended: {sql}: {e}");
    }
    // Two statements in one message: the denied one is refused, the allowed one ran.
    let e = c.simple_query("SELECT c_name FROM tpch.customer LIMIT 1; SELECT c_acctbal FROM tpch.customer").await.unwrap_err();
    assert_eq!(sqlstate(&e), "42501");
    // Allowed columns still work, and the session goes on.
    let rows = c.query("SELECT c_name FROM tpch.customer ORDER BY c_custkey LIMIT 2", &[]).await.unwrap();
    assert_eq!(rows.len(), 2);
}

#[tokio::test]
async fn analyst_sees_filtered_rows_and_masked_phones() {
    let s = common::start().await;
    let admin = s.connect("admin").await;
    let analyst = s.connect("analyst").await;
    let phone: String = admin
        .query_one("SELECT c_phone FROM tpch.customer WHERE c_custkey = 1", &[])
        .await
        .unwrap()
        .get(0);
    let masked: String = analyst
        .query_one("SELECT c_phone FROM tpch.customer WHERE c_custkey = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_ne!(masked, phone);
    assert!(masked.ends_with(&phone[phone.len() - 4..]) && masked.starts_with('*'), "{masked}");
    // The user's predicate sees the masked value: a real phone number finds nothing.
    let rows = analyst
        .query(&format!("SELECT c_custkey FROM tpch.customer WHERE c_phone = '{phone}'"), &[])
        .await
        .unwrap();
    assert!(rows.is_empty());
    let rows = analyst.query("SELECT c_custkey FROM tpch.customer WHERE c_phone = $1", &[&phone]).await.unwrap();
    assert!(rows.is_empty());
    // Row filter: only orders of customers in the analyst's nation (7).
    let all: i64 = admin.query_one("SELECT count(*) FROM tpch.orders", &[]).await.unwrap().get(0);
    let expected: i64 = admin
        .query_one(
            "SELECT count(*) FROM tpch.orders o JOIN tpch.customer c ON o.o_custkey = c.c_custkey WHERE c.c_nationkey = 7",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let seen: i64 = analyst.query_one("SELECT count(*) FROM tpch.orders", &[]).await.unwrap().get(0);
    assert_eq!(seen, expected);
    assert!(seen < all);
    // Grouping and joins see only filtered rows too.
    let nations: Vec<i64> = analyst
        .query(
            "SELECT DISTINCT c.c_nationkey FROM tpch.orders o JOIN tpch.customer c ON o.o_custkey = c.c_custkey",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(nations, vec![7]);
    // Correlated subqueries over the filtered table give the same answer however the table is
    // named, and match the same question asked by the admin with the filter spelled out.
    let count = |sql: &'static str| {
        let c = &analyst;
        async move { c.query_one(sql, &[]).await.map(|r| r.get::<_, i64>(0)) }
    };
    let rich = "SELECT count(*) FROM tpch.customer c WHERE c.c_acctbal > (SELECT avg(o_totalprice) / 100 FROM tpch.orders WHERE o_custkey = c.c_custkey)";
    let rich_aliased = "SELECT count(*) FROM tpch.customer c WHERE c.c_acctbal > (SELECT avg(o.o_totalprice) / 100 FROM tpch.orders o WHERE o.o_custkey = c.c_custkey)";
    let want: i64 = admin
        .query_one(
            "SELECT count(*) FROM tpch.customer c WHERE c.c_acctbal > (SELECT avg(o.o_totalprice) / 100 FROM tpch.orders o \
             JOIN tpch.customer oc ON o.o_custkey = oc.c_custkey WHERE oc.c_nationkey = 7 AND o.o_custkey = c.c_custkey)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(count(rich).await.expect("correlated"), want);
    assert_eq!(count(rich_aliased).await.expect("correlated, aliased"), want);
    let exists = "SELECT count(*) FROM tpch.customer c WHERE EXISTS (SELECT 1 FROM tpch.orders WHERE o_custkey = c.c_custkey)";
    let buyers: i64 = admin
        .query_one("SELECT count(DISTINCT o_custkey) FROM tpch.orders o JOIN tpch.customer c ON o.o_custkey = c.c_custkey WHERE c.c_nationkey = 7", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count(exists).await.expect("exists"), buyers);
    // A predicate that would fail on a hidden row (customer 1 is not in nation 7) is evaluated
    // only on the analyst's rows, inside a subquery too.
    let risky = "SELECT count(*) FROM tpch.customer c WHERE c_custkey IN (SELECT o_custkey FROM tpch.orders WHERE o_totalprice / (o_custkey - 1) > 0)";
    assert_eq!(count(risky).await.expect("guarded"), buyers);
}

#[tokio::test]
async fn catalogs_show_only_what_each_user_may_read() {
    let s = common::start().await;
    for (user, expect_acctbal) in [("admin", true), ("analyst", true), ("intern", false)] {
        let c = s.connect(user).await;
        let cols: Vec<String> = c
            .query(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'tpch' AND table_name = 'customer'",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(cols.contains(&"c_name".to_string()), "{user}: {cols:?}");
        assert_eq!(cols.contains(&"c_acctbal".to_string()), expect_acctbal, "{user}: {cols:?}");
        let (ok, out, err) = psql(&s, user, &["-c", "\\d tpch.customer"]).await;
        assert!(ok, "{err}");
        assert_eq!(out.contains("c_acctbal"), expect_acctbal, "{user}: {out}");
        let (ok, out, err) = psql(&s, user, &["-c", "\\dt tpch.*"]).await;
        assert!(ok, "{err}");
        assert!(out.contains("customer"), "{user}: {out}");
    }
    // The audit trail table is for admins only: others don't even see it listed.
    let c = s.connect("analyst").await;
    let n: i64 = c
        .query_one("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'lalo_audit'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn audit_trail_records_everything_and_detects_edits() {
    let s = common::start().await;
    let intern = s.connect("intern").await;
    intern.simple_query("SELECT count(*) FROM tpch.nation").await.unwrap();
    let _ = intern.simple_query("SELECT c_acctbal FROM tpch.customer").await.unwrap_err();
    let _ = intern.simple_query("SELEC oops").await.unwrap_err();
    let analyst = s.connect("analyst").await;
    analyst.query("SELECT c_phone FROM tpch.customer LIMIT 3", &[]).await.unwrap();
    let text = std::fs::read_to_string(s.audit_path()).unwrap();
    // A result's statement has a start line (durable before its first row) and an end line
    // that completes it with the rows; the end line repeats who and what.
    let lines: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).filter(|l| l["kind"] != "start").collect();
    let find = |pred: &dyn Fn(&serde_json::Value) -> bool| lines.iter().find(|l| pred(l)).cloned();
    let ok = find(&|l| l["user"] == "intern" && l["input"] == "SELECT count(*) FROM tpch.nation").expect("allowed line");
    assert_eq!(ok["decision"], "allowed");
    assert_eq!(ok["rows"], 1);
    assert_eq!(ok["entry"], "pgwire");
    let denied = find(&|l| l["user"] == "intern" && l["decision"] == "denied").expect("denied line");
    assert!(denied["error"].as_str().unwrap().starts_with("42501"));
    let failed = find(&|l| l["input"] == "SELEC oops").expect("failed line");
    assert!(failed["error"].as_str().unwrap().starts_with("42601"));
    let masked = find(&|l| l["user"] == "analyst" && l["decision"] == "masked").expect("masked line");
    assert_eq!(masked["rows"], 3);

    let bin = env!("CARGO_BIN_EXE_lalo");
    let verify = || {
        std::process::Command::new(bin)
            .args(["audit", "verify", "--log"])
            .arg(s.audit_path())
            .output()
            .unwrap()
    };
    let out = verify();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    // A one-byte edit breaks the chain at that line.
    let mut bytes = std::fs::read(s.audit_path()).unwrap();
    let second_line = bytes.iter().position(|b| *b == b'\n').unwrap() + 1;
    let pos = second_line + bytes[second_line..].windows(6).position(|w| w == b"\"rows\"").unwrap() + 7;
    bytes[pos] = if bytes[pos] == b'9' { b'8' } else { b'9' };
    std::fs::write(s.audit_path(), &bytes).unwrap();
    let out = verify();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("line 2"), "{}", String::from_utf8_lossy(&out.stdout));
}

#[tokio::test]
async fn identity_cannot_be_changed_from_inside_a_session() {
    let s = common::start().await;
    let c = s.connect("intern").await;
    for sql in ["SET ROLE admin", "SET SESSION AUTHORIZATION admin", "SELECT set_config('role', 'admin', false)"] {
        let e = c.simple_query(sql).await.unwrap_err();
        assert_eq!(sqlstate(&e), "42501", "{sql}: {e}");
    }
    let who: String = c.query_one("SELECT current_user", &[]).await.unwrap().get(0);
    assert_eq!(who, "intern");
    let e = c.simple_query("SELECT c_acctbal FROM tpch.customer").await.unwrap_err();
    assert_eq!(sqlstate(&e), "42501");
}

/// A statement repeated with other literals (simple protocol) or other parameters (extended)
/// runs on the session's cached governed plan: each execution still gets its own rows, the
/// analyst's row filter and mask still apply, and time-dependent statements are not frozen.
#[tokio::test]
async fn repeated_statements_reuse_governed_plans_with_each_literal() {
    let s = common::start().await;
    let admin = s.connect("admin").await;
    let analyst = s.connect("analyst").await;
    // A customer of nation 7 with orders: the analyst sees that customer's orders.
    let german = "SELECT min(o_custkey) FROM tpch.orders JOIN tpch.customer ON o_custkey = c_custkey WHERE c_nationkey = 7";
    let g: i64 = common::text_rows(&admin.simple_query(german).await.expect("german"))[0][0].parse().expect("key");
    for k in [1i64, g, 7, 42, 150, 1499, 1, g] {
        let sql = format!("SELECT c_name, c_phone FROM tpch.customer WHERE c_custkey = {k}");
        let mine = common::text_rows(&analyst.simple_query(&sql).await.expect("analyst"));
        let full = common::text_rows(&admin.simple_query(&sql).await.expect("admin"));
        assert_eq!(mine.len(), 1, "{sql}");
        assert_eq!(mine[0][0], full[0][0], "same customer for {k}");
        let (masked, real) = (&mine[0][1], &full[0][1]);
        assert!(masked.starts_with("*") && masked.ends_with(&real[real.len() - 4..]), "{masked} vs {real}");
        // Orders: the analyst sees those of customers in nation 7 only, in both protocols.
        let count = format!("SELECT count(*) FROM tpch.orders WHERE o_custkey = {k}");
        let own = &common::text_rows(&analyst.simple_query(&count).await.expect("count"))[0][0];
        let q = format!("SELECT c_nationkey FROM tpch.customer WHERE c_custkey = {k}");
        let nation = common::text_rows(&admin.simple_query(&q).await.expect("nation"))[0][0].clone();
        let all = &common::text_rows(&admin.simple_query(&count).await.expect("count"))[0][0];
        let want = if nation == "7" { all.clone() } else { "0".to_string() };
        assert_eq!(own, &want, "analyst's orders of customer {k} (nation {nation})");
        let prepared: i64 = analyst
            .query_one("SELECT count(*) FROM tpch.orders WHERE o_custkey = $1", &[&k])
            .await
            .expect("prepared count")
            .get(0);
        assert_eq!(prepared.to_string(), want, "prepared count for {k}");
        if k == g {
            assert_ne!(want, "0", "customer {g} has orders the analyst sees");
        }
    }
    // now() is read at each execution, not when the plan was first made.
    let t = || async { common::text_rows(&analyst.simple_query("SELECT CAST(now() AS VARCHAR)").await.expect("now"))[0][0].clone() };
    let first = t().await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_ne!(first, t().await, "now() advanced");
    let reused = crate::protocol::counter(&s, "lalo_cached_plans_total").await;
    assert!(reused >= 10.0, "cached plans used: {reused}");
}

/// A row filter that stays a subquery (`… OR EXISTS (…)`, behind the security barrier): the
/// caller's predicates that can fail run only on rows the filter kept, however DataFusion plans
/// them physically. Supplier 1 is hidden; `x / (s_suppkey - 1)` fails on it alone.
#[tokio::test]
async fn failing_predicates_never_run_on_rows_a_subquery_filter_hides() {
    let pol = crate::policy::policy_copy();
    let mut rules = std::fs::read_to_string(pol.path().join("rules.toml")).unwrap();
    rules.push_str(
        "\n[[row_filter]]\ntable = \"lalo.tpch.supplier\"\nsubject = \"analysts\"\n\
         filter = \"s_suppkey > 1 OR EXISTS (SELECT 1 FROM lalo.tpch.nation n WHERE n.n_nationkey = s_nationkey AND n.n_name = 'NOWHERE')\"\n",
    );
    std::fs::write(pol.path().join("rules.toml"), &rules).unwrap();
    let p = pol.path().to_path_buf();
    let s = common::start_with(move |cfg| cfg.governance.policies = p).await;
    let admin = s.connect("admin").await;
    let analyst = s.connect("analyst").await;
    let visible: i64 = admin.query_one("SELECT count(*) FROM tpch.supplier WHERE s_suppkey > 1", &[]).await.unwrap().get(0);
    for sql in [
        "SELECT count(*) FROM tpch.supplier WHERE 10 % (s_suppkey - 1) >= 0",
        "SELECT count(*) FROM tpch.supplier WHERE 10 / (s_suppkey - 1) >= 0",
        "SELECT count(*) FROM tpch.supplier WHERE 1 / (s_suppkey - 1.0) > 0",
        "SELECT count(*) FROM tpch.supplier s JOIN tpch.nation n ON n.n_nationkey = s.s_nationkey WHERE 10 % (s.s_suppkey - 1) >= 0",
        "SELECT count(*) FROM (SELECT * FROM tpch.supplier) s WHERE 10 % (s_suppkey - 1) >= 0",
    ] {
        let n: i64 = analyst.query_one(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e:?}")).get(0);
        assert_eq!(n, visible, "{sql}");
    }
}
