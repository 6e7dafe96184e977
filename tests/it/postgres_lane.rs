//! The PostgreSQL lane: SELECTs over one upstream PostgreSQL database run there as written, so
//! they answer exactly as PostgreSQL does (names, numeric arithmetic, set operations, JSON, time
//! zones), while every relation is read through its governed derived table: denied columns are
//! refused however they are reached, functions that read the database are never sent, a
//! client's CTE cannot stand in for a table of a row filter, and a predicate that fails on a
//! hidden row never sees it (the division-by-zero oracle).

use tokio_postgres::SimpleQueryMessage;

use crate::common::{self, sqlstate};
use crate::pgcluster;

/// Column names and text rows of a simple-query reply.
fn named_rows(msgs: &[SimpleQueryMessage]) -> (Vec<String>, Vec<Vec<Option<String>>>) {
    let mut names = Vec::new();
    let mut rows = Vec::new();
    for m in msgs {
        match m {
            SimpleQueryMessage::RowDescription(cols) => names = cols.iter().map(|c| c.name().to_string()).collect(),
            SimpleQueryMessage::Row(r) => {
                if names.is_empty() {
                    names = r.columns().iter().map(|c| c.name().to_string()).collect();
                }
                rows.push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect());
            }
            _ => {}
        }
    }
    (names, rows)
}

/// A database `lane` on the shared upstream, served under its own name, with policies: the
/// analyst reads staff of open departments only (a row filter that is a subquery over another
/// table) with names redacted; the intern may not read `staff."Salary"` nor `"Payroll"`.
async fn lane(db: &str) -> (common::TestServer, tempfile::TempDir, tempfile::TempDir, &'static pgcluster::PgCluster) {
    served(db, true).await
}

/// `lane(db)`, with the PostgreSQL lane on or off (off, every statement takes the engine).
async fn served(db: &str, postgres_lane: bool) -> (common::TestServer, tempfile::TempDir, tempfile::TempDir, &'static pgcluster::PgCluster) {
    let pg = pgcluster::defog().await;
    pg.psql("postgres", &format!("DROP DATABASE IF EXISTS {db}")).await;
    pg.psql("postgres", &format!("CREATE DATABASE {db}")).await;
    pg.psql(
        db,
        "CREATE TABLE depts (dept text PRIMARY KEY, open boolean);\
         INSERT INTO depts VALUES ('eng', true), ('ops', false), ('art', true);\
         CREATE TABLE staff (id int PRIMARY KEY, name text, dept text, \"Salary\" int, bonus numeric(10,2));\
         INSERT INTO staff VALUES (1, 'ann', 'eng', 100, 1.10), (2, 'bob', 'ops', 0, 2.20), (3, 'cy', 'eng', 300, 3.35), (4, 'di', 'art', 50, NULL);\
         CREATE TABLE \"Payroll\" (id int PRIMARY KEY, amount int); INSERT INTO \"Payroll\" VALUES (1, 7777), (2, 8888);\
         CREATE FUNCTION payroll_total(depts) RETURNS bigint LANGUAGE sql AS 'SELECT sum(amount) FROM \"Payroll\"';",
    )
    .await;
    let pol = tempfile::tempdir().unwrap();
    std::fs::copy(common::repo().join("policies/model.conf"), pol.path().join("model.conf")).unwrap();
    std::fs::write(
        pol.path().join("policy.csv"),
        format!(
            "g, admin, admins\ng, analyst, analysts\ng, intern, interns\ng, auditor, auditors\n\
         p, admins, *, *, allow\n\
         p, auditors, {db}.public.*, select, allow\n\
         p, analysts, {db}.public.*, select, allow\n\
         p, interns, {db}.public.*, select, allow\n\
         p, interns, {db}.public.payroll, select, deny\n\
         p, interns, {db}.public.staff.salary, select, deny\n"
        ),
    )
    .unwrap();
    std::fs::write(
        pol.path().join("rules.toml"),
        format!(
            "[[row_filter]]\ntable = \"{db}.public.staff\"\nsubject = \"analysts\"\nfilter = \"dept IN (SELECT dept FROM {db}.public.depts WHERE open)\"\n\n\
             [[mask]]\ntable = \"{db}.public.staff\"\ncolumn = \"name\"\nsubject = \"analysts\"\nkind = \"redact\"\n\n\
             [[row_filter]]\ntable = \"{db}.public.staff\"\nsubject = \"auditors\"\nfilter = \"dept IN (SELECT dept FROM {db}.public.depts WHERE open) OR id < 0\"\n"
        ),
    )
    .unwrap();
    let catalog = crate::upstream::catalog_with(&[(db.to_string(), pg.url(db))]);
    let (c, p) = (catalog.path().to_path_buf(), pol.path().to_path_buf());
    let s = common::start_with(move |cfg| {
        cfg.catalog.dir = c;
        cfg.governance.policies = p;
        cfg.catalog.postgres_lane = postgres_lane;
        cfg.users.push(lalo::config::UserConfig { name: "auditor".into(), password: Some("auditor".into()), ..Default::default() });
    })
    .await;
    (s, catalog, pol, pg)
}

/// Statements whose answers the embedded engine once gave differently from PostgreSQL.
const EXACT: &[&str] = &[
    "SELECT bonus * 3, bonus / 3, sum(bonus) OVER () FROM staff ORDER BY id",
    "SELECT 1.1 * 3, 10::numeric / 4, 7 / 2",
    "SELECT dept FROM staff INTERSECT ALL SELECT dept FROM staff ORDER BY 1",
    "SELECT dept FROM staff EXCEPT SELECT 'ops' ORDER BY 1",
    "SELECT count(s.*), count(*) FROM depts d LEFT JOIN staff s ON s.dept = d.dept AND s.id > 2",
    "SELECT generate_series(1, 3) AS g, id FROM staff WHERE id = 1",
    "SELECT 'a_b' LIKE 'a!_b' ESCAPE '!', 'abc' SIMILAR TO 'a%', 'abc' ~ '^a'",
    "SELECT '{\"a\": {\"b\": [1, 2]}}'::jsonb #> '{a,b}', '[1,2,3]'::json -> 1, jsonb_build_object('k', id) FROM staff WHERE id = 1",
    "SELECT id, count(*), max(name) FROM staff GROUP BY id ORDER BY id",
    "SELECT 'NaN'::float8 + 1, avg(x), sum(x) FROM (VALUES ('NaN'::float8), (1)) v(x)",
    "SELECT interval '1 day 2 hours' * 2, date '2024-02-29' + 1, '2024-01-01 12:00:00+00'::timestamptz",
    "SELECT array_agg(id ORDER BY id), string_agg(dept, ',' ORDER BY id) FROM staff",
    "SELECT upper(NAME) AS \"Mixed\", id AS Unquoted FROM staff ORDER BY 2",
    "SELECT s.id, d.open FROM staff s FULL JOIN depts d USING (dept) ORDER BY 1, 2",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 4) SELECT sum(n) FROM r",
    "SELECT d.dept, x.c FROM depts d, LATERAL (SELECT count(*) AS c FROM staff s WHERE s.dept = d.dept) x ORDER BY 1",
    "SELECT id FROM staff WHERE bonus IS NOT DISTINCT FROM NULL",
    "SELECT 2 ^ 0.5, round(2.5), round(2.5::float8), 5 % -3, -7 / 2",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_statements_answer_as_postgres_does() {
    let (s, _catalog, _pol, pg) = lane("lane_exact").await;
    let direct = pg.client("lane_exact").await;
    let admin = s.connect_db("admin", "lane_exact").await;
    for sql in EXACT {
        let want = named_rows(&direct.simple_query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}")));
        let got = named_rows(&admin.simple_query(sql).await.unwrap_or_else(|e| panic!("through lalo: {sql}: {e:?}")));
        assert_eq!(got, want, "{sql}");
    }
    // Values written as the session's own settings say.
    for c in [&direct, &admin] {
        c.simple_query("SET TimeZone = 'America/New_York'").await.unwrap();
        c.simple_query("SET IntervalStyle = 'iso_8601'").await.unwrap();
    }
    let sql = "SELECT '2024-01-01 12:00:00+00'::timestamptz, interval '1 day 2 hours', count(*) FROM staff";
    let want = named_rows(&direct.simple_query(sql).await.unwrap());
    assert_eq!(named_rows(&admin.simple_query(sql).await.unwrap()), want);
    assert!(want.1[0][0].as_deref().unwrap_or("").ends_with("-05"), "{want:?}");
    // Another session on the same upstream connections still gets the defaults.
    let other = s.connect_db("admin", "lane_exact").await;
    let got = named_rows(&other.simple_query(sql).await.unwrap());
    assert!(got.1[0][0].as_deref().unwrap_or("").ends_with("+00"), "{got:?}");
    // PostgreSQL's own errors, with its SQLSTATE.
    let e = admin.simple_query("SELECT 1 / (id - id) FROM staff").await.unwrap_err();
    assert_eq!(sqlstate(&e), "22012", "{e}");
    // The catalogs of an upstream database list its own tables only (not lalo's embedded ones).
    let listed = |sql: &'static str| {
        let admin = &admin;
        async move { common::text_rows(&admin.simple_query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"))) }
    };
    let tables = listed("SELECT table_catalog, table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 2").await;
    let names: Vec<&str> = tables.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(names, ["Payroll", "depts", "staff"], "{tables:?}");
    assert!(tables.iter().all(|r| r[0] == "lane_exact"), "{tables:?}");
    let others = listed("SELECT count(*) FROM pg_catalog.pg_class WHERE relname IN ('lineitem', 'orders', 'nation')").await;
    assert_eq!(others[0][0], "0", "another database's tables are listed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lane_cannot_be_walked_around() {
    let (s, _catalog, _pol, pg) = lane("lane_walk").await;
    let direct = pg.client("lane_walk").await;
    let intern = s.connect_db("intern", "lane_walk").await;
    // The denied column, however it is named or reached.
    for sql in [
        "SELECT \"Salary\" FROM staff",
        "SELECT * FROM staff",
        "SELECT s.* FROM staff s",
        "SELECT id FROM staff WHERE \"Salary\" > 10",
        "SELECT d FROM staff AS s(a, b, c, d)",
        "SELECT id FROM staff s ORDER BY s.\"Salary\"",
        "SELECT (SELECT max(\"Salary\") FROM staff)",
        "WITH x AS (SELECT \"Salary\" AS pay FROM staff) SELECT pay FROM x",
        "SELECT 1 FROM depts d WHERE EXISTS (SELECT 1 FROM staff s WHERE s.dept = d.dept AND s.\"Salary\" > 200)",
        "SELECT * FROM \"Payroll\"",
        "SELECT (SELECT max(amount) FROM \"Payroll\")",
        "WITH p AS (SELECT amount FROM public.\"Payroll\") SELECT count(*) FROM depts",
        "SELECT count(*) FROM depts WHERE dept IN (SELECT 'x' FROM \"Payroll\")",
    ] {
        let e = intern.simple_query(sql).await.expect_err(sql);
        assert!(matches!(sqlstate(&e).as_str(), "42501" | "42P01" | "42703"), "{sql}: {e}");
        let e = intern.query(sql, &[]).await.expect_err(sql);
        assert!(matches!(sqlstate(&e).as_str(), "42501" | "42P01" | "42703"), "extended {sql}: {e}");
    }
    // A whole-row reference carries the permitted columns only.
    let (_, rows) = named_rows(&intern.simple_query("SELECT s FROM staff s WHERE id = 1").await.unwrap());
    let row = rows[0][0].clone().unwrap_or_default();
    assert!(!row.contains("100"), "the denied column reached the caller: {row}");
    // Functions that read the database or the server are never sent upstream.
    for sql in [
        "SELECT query_to_xml('select * from \"Payroll\"', true, false, '')",
        "SELECT table_to_xml('\"Payroll\"', true, false, '')",
        "SELECT ts_stat('select to_tsvector(amount::text) from \"Payroll\"')",
        "SELECT pg_read_file('postmaster.pid')",
        "SELECT current_setting('data_directory')",
        "SELECT id FROM staff WHERE id = (SELECT count(*) FROM pg_catalog.pg_authid)",
        // Functions reached without a call: attribute notation, a "computed column".
        "SELECT ('select to_tsvector(amount::text) from \"Payroll\"').ts_stat",
        "SELECT ('data_directory').current_setting",
        "SELECT d.payroll_total FROM depts d",
        "SELECT (42::bigint).pg_advisory_lock",
        // Catalog names through arrays of reg* types, roles through ACL functions.
        "SELECT string_agg(('{' || g || '}')::_regclass::text, ',') FROM generate_series(16000, 30000) g",
        "SELECT acldefault('r', 10)",
        // A unicode escape character primes the statement cache with one meaning, then another.
        "WITH U&\"!0050ayroll\" UESCAPE '!' AS (SELECT 1 AS id, 1 AS amount) SELECT * FROM \"Payroll\"",
        "WITH U&\"!0050ayroll\" UESCAPE '#' AS (SELECT 1 AS id, 1 AS amount) SELECT * FROM \"Payroll\"",
    ] {
        for extended in [false, true] {
            let text = if extended {
                intern.query(sql, &[]).await.map(|rows| format!("{:?}", rows.iter().map(|r| format!("{r:?}")).collect::<Vec<_>>()))
            } else {
                intern.simple_query(sql).await.map(|m| format!("{:?}", common::text_rows(&m)))
            };
            if let Ok(text) = text {
                for leak in ["7777", "16665", "/", "Payroll", "postgres="] {
                    assert!(!text.contains(leak), "{sql}: {text}");
                }
            }
        }
    }
    let locks = direct.simple_query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").await.unwrap();
    assert_eq!(common::text_rows(&locks)[0][0], "0", "an advisory lock was taken upstream");
    let audit = std::fs::read_to_string(s.audit_path()).unwrap();
    assert!(!audit.lines().any(|l| l.contains("query_to_xml") && l.contains("\"allowed\"")), "a reading function was allowed");

    // The analyst: open departments only, names redacted.
    let analyst = s.connect_db("analyst", "lane_walk").await;
    let count = |msgs: &[SimpleQueryMessage]| common::text_rows(msgs)[0][0].clone();
    let want = direct.simple_query("SELECT count(*) FROM staff WHERE dept IN (SELECT dept FROM depts WHERE open)").await.unwrap();
    assert_eq!(count(&analyst.simple_query("SELECT count(*) FROM staff").await.unwrap()), count(&want));
    // A client's CTE named like the row filter's table does not stand in for it.
    let capture = "WITH depts AS (SELECT 'ops'::text AS dept, true AS open) SELECT count(*) FROM staff";
    match analyst.simple_query(capture).await {
        Ok(msgs) => assert_eq!(count(&msgs), count(&want), "the CTE replaced the row filter's table"),
        Err(e) => assert!(!sqlstate(&e).is_empty(), "{e}"),
    }
    assert!(common::text_rows(&analyst.simple_query("SELECT id FROM staff WHERE dept = 'ops'").await.unwrap()).is_empty());
    // The oracle: bob (ops, hidden) earns 0, so PostgreSQL itself fails the predicate on him.
    let risky = [
        "SELECT count(*) FROM staff WHERE 1000 / \"Salary\" > 0",
        "SELECT count(*) FROM depts d JOIN staff s ON s.dept = d.dept WHERE 1000 / s.\"Salary\" > 0",
        "SELECT (SELECT count(*) FROM staff WHERE 1000 / \"Salary\" > 0)",
        "SELECT count(*) FROM (SELECT * FROM staff) t WHERE 1000 / t.\"Salary\" > 0",
        "WITH t AS (SELECT \"Salary\" AS pay FROM staff) SELECT count(*) FROM t WHERE 1000 / pay > 0",
    ];
    assert!(direct.simple_query(risky[0]).await.is_err(), "the hidden row fails the predicate");
    for sql in risky {
        let got = analyst.simple_query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(count(&got), count(&want), "{sql}");
        let got: i64 = analyst.query_one(sql, &[]).await.unwrap_or_else(|e| panic!("extended {sql}: {e}")).get(0);
        assert_eq!(got.to_string(), count(&want), "extended {sql}");
    }
    // The same with the dividend as a parameter, bound in binary.
    let sql = "SELECT count(*) FROM staff WHERE $1::int / \"Salary\" > 0";
    for _ in 0..2 {
        let got: i64 = analyst.query_one(sql, &[&1000i32]).await.expect("bound").get(0);
        assert_eq!(got.to_string(), count(&want));
    }
    let got: Vec<String> = analyst.query("SELECT name FROM staff WHERE id = $1", &[&1i32]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert!(got.len() == 1 && got[0] != "ann", "{got:?}");
    // Masked values, and predicates see them masked.
    let names = common::text_rows(&analyst.simple_query("SELECT DISTINCT name FROM staff").await.unwrap());
    assert_eq!(names.len(), 1, "{names:?}");
    assert_ne!(names[0][0], "ann");
    assert_eq!(count(&analyst.simple_query("SELECT count(*) FROM staff WHERE name = 'ann'").await.unwrap()), "0");
    // The audit record of a lane statement names what it read and what governance did.
    let audit = std::fs::read_to_string(s.audit_path()).unwrap();
    let line = audit.lines().rev().find(|l| l.contains("WHERE name = 'ann'")).expect("audited");
    assert!(line.contains("lane_walk.public.staff") && line.contains("filtered+masked"), "{line}");
}

/// The engine's path to an upstream (the lane off, or a statement it leaves) unparses its own
/// SQL; a row-filtered table there is a derived table PostgreSQL neither flattens nor pushes the
/// caller's predicates into, so a predicate that fails on a hidden row never runs on it, through
/// joins, subqueries and derived tables alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_rows_never_reach_failing_predicates_on_the_engine_path() {
    let (s, _catalog, _pol, pg) = served("engine_oracle", false).await;
    let direct = pg.client("engine_oracle").await;
    let want = direct.simple_query("SELECT count(*) FROM staff WHERE dept IN (SELECT dept FROM depts WHERE open)").await.unwrap();
    let want = common::text_rows(&want)[0][0].clone();
    let risky = [
        "SELECT count(*) FROM staff WHERE 1000 / \"Salary\" > 0",
        "SELECT count(*) FROM depts d JOIN staff s ON s.dept = d.dept WHERE 1000 / s.\"Salary\" > 0",
        "SELECT count(*) FROM staff s JOIN depts d ON s.dept = d.dept AND 1000 / s.\"Salary\" > 0",
        "SELECT (SELECT count(*) FROM staff WHERE 1000 / \"Salary\" > 0)",
        "SELECT count(*) FROM (SELECT * FROM staff) t WHERE 1000 / t.\"Salary\" > 0",
        "WITH t AS (SELECT \"Salary\" AS pay FROM staff) SELECT count(*) FROM t WHERE 1000 / pay > 0",
        "SELECT count(*) FROM staff WHERE id IN (SELECT id FROM staff WHERE 1000 / \"Salary\" > 0)",
        "SELECT count(*) FROM staff WHERE id < 100 AND 1000 / \"Salary\" > 0",
    ];
    assert!(direct.simple_query(risky[1]).await.is_err(), "the hidden row fails the predicate");
    // The analyst's row filter becomes a value list; the auditor's stays a subquery.
    for user in ["analyst", "auditor"] {
        let client = s.connect_db(user, "engine_oracle").await;
        for sql in risky {
            for extended in [false, true] {
                let got = if extended {
                    client.query(sql, &[]).await.map(|r| r.first().map(|r| r.get::<_, i64>(0).to_string()))
                } else {
                    client.simple_query(sql).await.map(|m| common::text_rows(&m).first().map(|r| r[0].clone()))
                };
                match got {
                    Ok(n) => assert_eq!(n.as_deref(), Some(want.as_str()), "{user}: {sql} (extended: {extended})"),
                    Err(e) => {
                        let log = pg.log();
                        let tail: Vec<&str> = log.lines().rev().take(6).collect();
                        panic!("{user}: {sql} (extended: {extended}): a hidden row reached the predicate: {e:?}\n{tail:#?}")
                    }
                }
            }
        }
        let hidden = client.simple_query("SELECT id FROM staff WHERE dept = 'ops'").await.unwrap();
        assert!(common::text_rows(&hidden).is_empty(), "{user}");
        // A correlated EXISTS whose decorrelation drops every Limit in it: the fence holds.
        let exists = "SELECT count(*) FROM depts d WHERE EXISTS (SELECT 1 FROM (SELECT s2.id AS sid FROM staff s2 \
                      WHERE s2.dept = d.dept) x, staff WHERE staff.id = x.sid AND 1000 / staff.\"Salary\" > 0)";
        let got = client.simple_query(exists).await.map(|m| common::text_rows(&m));
        match got {
            Ok(rows) => assert_eq!(rows, vec![vec!["2".to_string()]], "{user}: {exists}"),
            Err(e) => assert_ne!(sqlstate(&e), "22012", "{user}: a hidden row reached the predicate: {e:?}"),
        }
    }
    // The analyst's names are masked: a comparison sees the masked value, however the table is
    // named (from lalo's own database the statement takes the engine with a three-part name).
    let home = s.connect_db("analyst", "lalo").await;
    for (c, sql) in [
        (&home, "SELECT count(*) FROM engine_oracle.public.staff WHERE name = 'ann'"),
        (&home, "SELECT count(*) FROM engine_oracle.public.staff WHERE name >= 'a' AND name < 'b' AND id < 100"),
        (&home, "SELECT count(*) FROM engine_oracle.public.staff s WHERE s.name = 'ann' AND s.id = 1"),
    ] {
        let got = c.simple_query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        assert_eq!(common::text_rows(&got), vec![vec!["0".to_string()]], "{sql}: the real value was compared");
    }
}

/// Casts lalo computes as PostgreSQL does (floats to text, fractions rounded to integers) also
/// hold on the engine path over an upstream, where they are written out for PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn casts_over_an_upstream_on_the_engine_path_answer_as_postgres_does() {
    let (s, _catalog, _pol, pg) = served("engine_casts", false).await;
    let direct = pg.client("engine_casts").await;
    let admin = s.connect_db("admin", "engine_casts").await;
    for sql in [
        "SELECT id, bonus::float8::text, (bonus::float8 + 0.4)::int, (\"Salary\" / 200.0)::int FROM staff ORDER BY id",
        "SELECT s.id, (s.bonus::float8 * 10)::text FROM staff s JOIN depts d ON d.dept = s.dept WHERE d.open ORDER BY 1",
    ] {
        let want = common::text_rows(&direct.simple_query(sql).await.expect(sql));
        let got = common::text_rows(&admin.simple_query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}")));
        assert_eq!(got, want, "{sql}");
    }
}

/// Lookups by whole primary key that the lane takes share pipelined upstream connections and
/// come back whole: governed as every statement of the lane is (a hidden row is not found, a
/// masked column is masked, a denied column refused), answering as the same statement written
/// so that it is no lookup answers, in the session's own output settings, each recorded by one
/// durable audit line with its rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_lookups_of_the_lane_share_pipelined_connections() {
    let (s, _catalog, _pol, pg) = lane("lane_lookup").await;
    pg.psql("lane_lookup", "CREATE TABLE ev (id int PRIMARY KEY, at timestamptz); INSERT INTO ev VALUES (1, '2024-01-01 12:00:00+00')").await;
    let admin = s.connect_db("admin", "lane_lookup").await;
    admin.simple_query("REFRESH UPSTREAM lane_lookup").await.expect("refresh");
    let analyst = s.connect_db("analyst", "lane_lookup").await;
    // `id + 0 = $1` is no lookup: it takes a connection of its own, and is the answer to match.
    let (lookup, plain) = ("SELECT id, name, bonus FROM staff WHERE id = $1", "SELECT id, name, bonus FROM staff WHERE id + 0 = $1");
    for id in 1..=4i32 {
        let got = analyst.query(lookup, &[&id]).await.expect("lookup");
        let want = analyst.query(plain, &[&id]).await.expect("no lookup");
        let text = |rows: &[tokio_postgres::Row]| -> Vec<(i32, Option<String>, Option<String>)> {
            rows.iter().map(|r| (r.get(0), r.get(1), r.get::<_, Option<rust_decimal::Decimal>>(2).map(|d| d.to_string()))).collect()
        };
        assert_eq!(text(&got), text(&want), "id {id}");
        // ops (id 2) is a closed department: hidden from the analyst, names redacted.
        assert_eq!(got.len(), usize::from(id != 2), "id {id}");
        assert!(got.iter().all(|r| r.get::<_, Option<String>>(1).as_deref() != Some("ann")), "masked");
    }
    let simple = |sql: &'static str| {
        let analyst = &analyst;
        async move { named_rows(&analyst.simple_query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"))) }
    };
    assert_eq!(simple("SELECT name, id FROM staff WHERE id = 3").await, simple("SELECT name, id FROM staff WHERE id + 0 = 3").await);
    assert!(simple("SELECT name, id FROM staff WHERE id = 2").await.1.is_empty(), "a hidden row is not found");
    // The analyst's rows are filtered: read through a derived table PostgreSQL does not push
    // the key into, that is no index lookup, and it keeps a connection to itself. The intern's
    // lookups (columns denied, rows not filtered) and the admin's are pipelined.
    let before = crate::protocol::counter(&s, "lalo_pipelined_statements_total").await;
    let intern = s.connect_db("intern", "lane_lookup").await;
    for id in 1..=4i32 {
        let r = intern.query("SELECT id, name FROM staff WHERE id = $1", &[&id]).await.expect("intern lookup");
        assert_eq!((r[0].get::<_, i32>(0), r[0].get::<_, Option<String>>(1).is_some()), (id, true));
        let r = named_rows(&admin.simple_query(&format!("SELECT name FROM staff WHERE id = {id}")).await.expect("admin lookup"));
        assert_eq!(r.1.len(), 1);
    }
    let pipelined = crate::protocol::counter(&s, "lalo_pipelined_statements_total").await;
    assert!(pipelined - before >= 8.0, "lookups pipelined: {before} -> {pipelined}");
    // A denied column is refused as on any other path.
    let e = intern.query("SELECT \"Salary\" FROM staff WHERE id = $1", &[&1i32]).await.expect_err("denied");
    assert_eq!(sqlstate(&e), "42501", "{e}");
    // Values in the session's own output settings; other sessions keep theirs.
    let zoned = s.connect_db("admin", "lane_lookup").await;
    zoned.simple_query("SET TimeZone = 'America/New_York'").await.expect("set");
    for (c, zone) in [(&zoned, "-05"), (&admin, "+00"), (&zoned, "-05")] {
        let r = named_rows(&c.simple_query("SELECT at FROM ev WHERE id = 1").await.expect("zoned lookup"));
        assert!(r.1[0][0].as_deref().unwrap_or("").ends_with(zone), "{zone}: {r:?}");
    }
    let at: chrono::DateTime<chrono::Utc> = zoned.query_one("SELECT at FROM ev WHERE id = $1", &[&1i32]).await.expect("binary lookup").get(0);
    assert_eq!(at.to_rfc3339(), "2024-01-01T12:00:00+00:00");
    // Every lookup recorded once with its rows (one line, or a start line that overlapped the
    // lookup and its end line); the trail verifies.
    let recs = crate::audit::records(&s.audit_path());
    let lines: Vec<_> = recs.iter().filter(|r| r["input"] == lookup && r["kind"] != "start").collect();
    let rows: Vec<_> = lines.iter().map(|r| (r["kind"].as_str().unwrap_or(""), r["rows"].as_u64().unwrap_or(0))).collect();
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert!(rows.iter().all(|(k, _)| ["statement", "end"].contains(k)), "{rows:?}");
    assert_eq!(rows.iter().map(|(_, n)| n).sum::<u64>(), 3, "{rows:?}");
    let (ok, said) = crate::audit::verify(&s.audit_path(), false);
    assert!(ok, "{said}");

    // A lookup that waits (a lock held on its table) is stopped on the pipelined connection and
    // answered on a connection of its own once the lock is gone, not failed; lookups of other
    // tables answer meanwhile.
    let direct = pg.client("lane_lookup").await;
    direct.batch_execute("BEGIN; LOCK TABLE ev IN ACCESS EXCLUSIVE MODE").await.expect("lock");
    let waiting = {
        let c = s.connect_db("admin", "lane_lookup").await;
        tokio::spawn(async move { c.query("SELECT id, at FROM ev WHERE id = $1", &[&1i32]).await.map(|r| r.len()) })
    };
    let other = async {
        for id in 1..=4i32 {
            assert_eq!(admin.query("SELECT id FROM staff WHERE id = $1", &[&id]).await.expect("meanwhile").len(), 1);
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), other).await.expect("lookups of other tables are not held up");
    // Long enough for the pipelined connection to give up on it (see LOOKUP_TIMEOUT).
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "the lookup waits for the lock");
    direct.batch_execute("COMMIT").await.expect("unlock");
    assert_eq!(waiting.await.expect("task").expect("answered once the lock is gone, not failed"), 1);
}
