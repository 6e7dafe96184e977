//! The differential harness: read statements replayed through lalo over an upstream and
//! directly against the same PostgreSQL, in the simple protocol (text) and the extended protocol
//! (binary), each classified as *same* (names, types and values identical), *error* (PostgreSQL
//! answers, lalo refuses or fails: visible to the user, never silent) or *different* (lalo
//! answers otherwise: a silent wrong answer). `different` must be zero.
//!
//! The corpus: the PostgreSQL side of DataFusion's `pg_compat` sqllogictest files (their
//! `onlyif postgres` setup loads the same table into PostgreSQL), every defog gold query over the
//! seven defog databases, and statements written for constructs where an engine's semantics
//! drift from PostgreSQL's (numeric arithmetic, set operations, JSON, set-returning functions,
//! NaN, names).

use std::collections::BTreeMap;

use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::pgcluster::{self, DEFOG_DBS};

/// A value as its bytes on the wire, whatever its type.
struct Raw(Option<Vec<u8>>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(Some(raw.to_vec())))
    }
    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(None))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

type Table = (Vec<String>, Vec<Vec<Option<Vec<u8>>>>);

async fn simple(c: &Client, sql: &str) -> Result<Table, tokio_postgres::Error> {
    let mut names = Vec::new();
    let mut rows = Vec::new();
    for m in c.simple_query(sql).await? {
        match m {
            SimpleQueryMessage::RowDescription(cols) => names = cols.iter().map(|c| c.name().to_string()).collect(),
            SimpleQueryMessage::Row(r) => rows.push((0..r.len()).map(|i| r.get(i).map(|v| v.as_bytes().to_vec())).collect()),
            _ => {}
        }
    }
    Ok((names, rows))
}

async fn extended(c: &Client, sql: &str) -> Result<Table, tokio_postgres::Error> {
    let stmt = c.prepare(sql).await?;
    let names = stmt.columns().iter().map(|c| format!("{} {}", c.name(), c.type_().oid())).collect();
    let rows = c.query(&stmt, &[]).await?;
    Ok((names, rows.iter().map(|r| (0..r.len()).map(|i| r.get::<_, Raw>(i).0).collect()).collect()))
}

/// Equal as PostgreSQL would return them; rows compared in order only when the statement orders them.
fn same(a: &Table, b: &Table, ordered: bool) -> bool {
    let (mut x, mut y) = (a.1.clone(), b.1.clone());
    if !ordered {
        x.sort();
        y.sort();
    }
    a.0 == b.0 && x == y
}

#[derive(Default)]
struct Tally {
    same: usize,
    error: Vec<String>,
    different: Vec<String>,
}

impl Tally {
    fn report(&self, what: &str) -> String {
        format!("{what}: {} same, {} error, {} different", self.same, self.error.len(), self.different.len())
    }
}

/// Replay one statement both ways in one protocol; statements PostgreSQL itself rejects are not
/// part of the corpus.
async fn replay(tally: &mut Tally, lalo: &Client, pg: &Client, db: &str, sql: &str, binary: bool) {
    let run = |c| async move { if binary { extended(c, sql).await } else { simple(c, sql).await } };
    let Ok(want) = run(pg).await else { return };
    let ordered = sql.to_ascii_lowercase().contains("order by");
    match run(lalo).await {
        Ok(got) if same(&got, &want, ordered) => tally.same += 1,
        Ok(got) => tally.different.push(format!(
            "{db}: {sql}\n  lalo: {:?} {:?}\n  pg:   {:?} {:?}",
            got.0,
            got.1.iter().take(2).collect::<Vec<_>>(),
            want.0,
            want.1.iter().take(2).collect::<Vec<_>>()
        )),
        Err(e) => tally.error.push(format!("{db}: {} :: {sql}", e.as_db_error().map(|d| d.message().to_string()).unwrap_or_default())),
    }
}

/// The records of a sqllogictest file: (conditions, kind line, SQL).
fn slt_records(text: &str) -> Vec<(Vec<String>, String, String)> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut conds = Vec::new();
        let mut kind = None;
        let mut sql = Vec::new();
        for line in block.lines() {
            if line.starts_with('#') && kind.is_none() {
                continue;
            }
            if kind.is_none() && (line.starts_with("onlyif") || line.starts_with("skipif")) {
                conds.push(line.to_string());
            } else if kind.is_none() && (line.starts_with("query") || line.starts_with("statement")) {
                kind = Some(line.to_string());
            } else if kind.is_some() {
                if line == "----" {
                    break;
                }
                sql.push(line);
            }
        }
        if let Some(k) = kind {
            out.push((conds, k, sql.join("\n")));
        }
    }
    out
}

/// Load the PostgreSQL side of the pg_compat files into `db`; returns their queries.
async fn load_pg_compat(pg: &Client) -> Vec<String> {
    let dir = pgcluster::corpora().join("slt/pg_compat");
    let csv = std::fs::read(dir.join("aggregate_test_100.csv")).expect("csv");
    let mut queries = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir).expect("pg_compat").flatten().map(|e| e.path()).collect();
    files.sort();
    for f in files.iter().filter(|f| f.extension().is_some_and(|e| e == "slt")) {
        for (conds, kind, sql) in slt_records(&std::fs::read_to_string(f).expect("slt")) {
            if conds.iter().any(|c| c == "skipif postgres" || (c.starts_with("onlyif") && c != "onlyif postgres")) {
                continue;
            }
            if kind.starts_with("query") {
                queries.push(sql);
                continue;
            }
            // Setup: every file makes its tables afresh.
            let upper = sql.trim_start().to_ascii_uppercase();
            if upper.starts_with("COPY") {
                let table = sql.split_whitespace().nth(1).unwrap_or_default();
                let sink = pg.copy_in(&format!("COPY {table} FROM STDIN DELIMITER ',' CSV HEADER")).await.expect("copy");
                futures::pin_mut!(sink);
                futures::SinkExt::send(&mut sink, bytes::Bytes::from(csv.clone())).await.expect("copy data");
                sink.finish().await.expect("copy done");
            } else if upper.starts_with("CREATE TABLE") {
                let name = sql.split_whitespace().nth(2).unwrap_or_default().trim_matches('(');
                pg.batch_execute(&format!("DROP TABLE IF EXISTS {name}")).await.expect("drop");
                pg.batch_execute(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            } else if !upper.starts_with("DROP") {
                let _ = pg.batch_execute(&sql).await;
            }
        }
    }
    queries
}

/// Constructs where an engine's semantics drift from PostgreSQL's.
const DRIFT: &[&str] = &[
    "SELECT c1, c2 * 1.5, c3::numeric / 7, c12 * 2 FROM aggregate_test_100_by_sql ORDER BY c1, c2, c3 LIMIT 5",
    "SELECT 1.1 * 3, 10::numeric / 4, 7 / 2, -7 / 2, 5 % -3, 2 ^ 0.5, round(2.5), round(2.5::float8)",
    "SELECT c1 FROM aggregate_test_100_by_sql INTERSECT ALL SELECT c1 FROM aggregate_test_100_by_sql ORDER BY 1",
    "SELECT c1 FROM aggregate_test_100_by_sql EXCEPT ALL SELECT 'a' ORDER BY 1",
    "SELECT c2 FROM aggregate_test_100_by_sql INTERSECT SELECT c2 + 1 FROM aggregate_test_100_by_sql ORDER BY 1",
    "SELECT count(t.*), count(*) FROM (SELECT 1 AS k) k LEFT JOIN aggregate_test_100_by_sql t ON t.c2 = k.k + 100",
    "SELECT generate_series(1, 3) AS g, c1 FROM aggregate_test_100_by_sql WHERE c3 = 1",
    "SELECT 'a_b' LIKE 'a!_b' ESCAPE '!', 'abc' SIMILAR TO 'a%', 'abc' ~ '^a'",
    "SELECT '{\"a\": {\"b\": [1, 2]}}'::jsonb #> '{a,b}', '[1,2,3]'::json -> 1, jsonb_build_object('k', 1)",
    "SELECT c1, count(*), max(c13) FROM aggregate_test_100_by_sql GROUP BY c1 ORDER BY c1",
    "SELECT 'NaN'::float8 + 1, avg(x), sum(x), max(x) FROM (VALUES ('NaN'::float8), (1)) v(x)",
    "SELECT interval '1 day 2 hours' * 2, date '2024-02-29' + 1, '2024-01-01 12:00:00+00'::timestamptz",
    "SELECT array_agg(c2 ORDER BY c2, c3) FILTER (WHERE c2 < 3), string_agg(c1, ',' ORDER BY c3) FROM aggregate_test_100_by_sql",
    "SELECT upper(C1) AS \"Mixed\", c2 AS Unquoted FROM aggregate_test_100_by_sql ORDER BY 2, 1 LIMIT 3",
    "SELECT a.c1, b.c2 FROM aggregate_test_100_by_sql a FULL JOIN aggregate_test_100_by_sql b USING (c3) ORDER BY 1, 2 LIMIT 5",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 4) SELECT sum(n), avg(n) FROM r",
    "SELECT c1, c2, rank() OVER (PARTITION BY c1 ORDER BY c2), sum(c3) OVER (ORDER BY c2, c3 ROWS 2 PRECEDING) FROM aggregate_test_100_by_sql ORDER BY c2, c3",
    "SELECT c11, c11::numeric(10,3), c12::real, c9::text FROM aggregate_test_100_by_sql ORDER BY c9 LIMIT 5",
    "SELECT DISTINCT ON (c1) c1, c2 FROM aggregate_test_100_by_sql ORDER BY c1, c2 DESC",
    "SELECT c1, c2 FROM aggregate_test_100_by_sql ORDER BY c2 DESC NULLS LAST, c1 FETCH FIRST 3 ROWS WITH TIES",
    "SELECT '1 year 2 mons'::interval, '2024-01-31'::date + interval '1 month', 'abc'::bytea, '00000000-0000-0000-0000-000000000001'::uuid, '10.0.0.1/8'::inet",
    "SELECT ARRAY[1, 2] || 3, (ARRAY[[1, 2], [3, 4]])[2][1], cardinality(ARRAY[1, 2, 3]), unnest(ARRAY['x', 'y'])",
];

/// Every statement of the corpus through lalo and directly, both protocols: zero different.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lalo_answers_as_postgres_does() {
    let pg = pgcluster::defog().await;
    pg.psql("postgres", "DROP DATABASE IF EXISTS pgcompat").await;
    pg.psql("postgres", "CREATE DATABASE pgcompat").await;
    let compat = pg.client("pgcompat").await;
    let slt = load_pg_compat(&compat).await;
    let mut ups: Vec<(String, String)> = DEFOG_DBS.iter().map(|db| (db.to_string(), pg.url(db))).collect();
    ups.push(("pgcompat".into(), pg.url("pgcompat")));
    let (s, _c) = crate::upstream::start_with_upstreams(&ups).await;
    let mut corpus: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    corpus.entry("pgcompat").or_default().extend(slt);
    corpus.entry("pgcompat").or_default().extend(DRIFT.iter().map(|s| s.to_string()));
    let questions = lalo::eval::corpus::read_questions(&pgcluster::corpora().join("defog/questions.csv"), true).expect("questions");
    for q in &questions {
        if let Some(db) = DEFOG_DBS.iter().find(|d| **d == q.db) {
            corpus.entry(db).or_default().push(crate::upstream::full_gold(&q.gold));
        }
    }
    let (mut text, mut binary) = (Tally::default(), Tally::default());
    for (db, statements) in &corpus {
        let via = s.connect_db("admin", db).await;
        let direct = pg.client(db).await;
        for sql in statements {
            replay(&mut text, &via, &direct, db, sql, false).await;
            replay(&mut binary, &via, &direct, db, sql, true).await;
        }
    }
    println!("{}\n{}", text.report("simple protocol, text"), binary.report("extended protocol, binary"));
    for e in text.error.iter().chain(&binary.error) {
        println!("ERROR {e}");
    }
    let different: Vec<&String> = text.different.iter().chain(&binary.different).collect();
    for d in &different {
        println!("DIFFERENT {d}");
    }
    assert!(different.is_empty(), "{} statements answered differently from PostgreSQL", different.len());
    // Over an upstream, the simple protocol answers every statement PostgreSQL answers.
    assert!(text.error.is_empty(), "{} statements failed through lalo", text.error.len());
}

/// Statements lalo's own engine answers (constants and VALUES in the embedded database, no
/// upstream): each comes back as PostgreSQL answers it, in both protocols. Among them the
/// constructs DataFusion answers otherwise by itself: `EXCEPT ALL`/`INTERSECT ALL` duplicate
/// counts, fractional values cast to integers (rounded, floats half to even), floats written
/// as PostgreSQL writes them (`1`, `1e+20`, `Infinity`), `generate_series` in a select list
/// (one row per value), `json_build_object`'s text, timestamps cast to text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_answers_as_postgres_does() {
    let pg = pgcluster::defog().await;
    let s = crate::common::start().await;
    let via = s.connect("admin").await;
    let direct = pg.client("postgres").await;
    let (mut text, mut binary) = (Tally::default(), Tally::default());
    let corpus = include_str!("engine_pg.sql");
    for sql in corpus.lines().filter(|l| !l.trim().is_empty() && !l.starts_with("--")) {
        replay(&mut text, &via, &direct, "lalo", sql, false).await;
        replay(&mut binary, &via, &direct, "lalo", sql, true).await;
    }
    println!("{}\n{}", text.report("engine, simple protocol, text"), binary.report("engine, extended protocol, binary"));
    for f in binary.error.iter().chain(&binary.different) {
        println!("BINARY {f}");
    }
    let failed: Vec<&String> = text.error.iter().chain(&text.different).chain(&binary.different).collect();
    for f in &failed {
        println!("FAILED {f}");
    }
    assert!(failed.is_empty(), "{} statements were not answered as PostgreSQL answers them", failed.len());
    // Where PostgreSQL raises an error, so does lalo, with its SQLSTATE: an overflow is not a
    // wrapped value.
    for (sql, code) in [
        ("select x + 1 from (values (9223372036854775807)) t(x)", "22003"),
        ("select x * 2 from (values (5000000000000000000)) t(x)", "22003"),
        ("select x from (values (1), (2)) t(x) where x * 9223372036854775807 > 0", "22003"),
        // ... also inside an aggregate's argument
        ("select sum(x * 2) from (values (5000000000000000000)) t(x)", "22003"),
        ("select max(x + 1) from (values (2147483647)) t(x)", "22003"),
        ("select 1 / x from (values (0)) t(x)", "22012"),
        // NUMERIC nested past what carrying a display scale per level can plan quickly is
        // refused at once (it grew as 2^depth, and a nested scalar subquery was planned twice
        // per level: a 400-byte statement held the server for minutes).
        ("select (((((((((((((((x/3)/3)/3)/3)/3)/3)/3)/3)/3)/3)/3)/3)/3)/3)/3) from (values (1.0)) t(x)", "0A000"),
        ("select (select (select (select (select x/3 from (values (1.0)) t(x))/3)/3)/3)/3", "0A000"),
        // a scalar subquery with two rows is an error, not its first row
        ("select (select x from (values (1), (2)) t(x))", "21000"),
        ("select (select x from (values (1), (2)) t(x)) as a", "21000"),
        // integer (int4) arithmetic overflows at int4's bounds, constants folded or not.
        ("select x + 1 from (values (2147483647)) t(x)", "22003"),
        ("select 2147483647 + 1", "22003"),
        ("select 2 * (9223372036854775807 - 1)", "22003"),
        // NUMERIC division and square roots raise PostgreSQL's errors.
        ("select 1 / x from (values (0.0)) t(x)", "22012"),
        ("select avg(x) / 0 from (values (1.5)) t(x)", "22012"),
        ("select sqrt(x) from (values (-1.0)) t(x)", "2201F"),
        ("select ln(x) from (values (0.0)) t(x)", "2201E"),
        ("select x from (values (1)) t(x) limit -1", "2201W"),
        ("select x from (values (1)) t(x) offset -1", "2201X"),
    ] {
        let e = via.simple_query(sql).await.expect_err(sql);
        assert_eq!(crate::common::sqlstate(&e), code, "{sql}: {e}");
    }
    // NUMERIC functions lalo's engine has only in double precision are refused by name, not
    // answered in another type; in double precision they run.
    let e = via.simple_query("select power(x, 0.5) from (values (1.5)) t(x)").await.expect_err("power(numeric)");
    assert_eq!(crate::common::sqlstate(&e), "0A000", "{e}");
    let message = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_default();
    assert!(message.contains("power()"), "{message}");
    // NUMERIC division where lalo cannot keep PostgreSQL's scale (a recursive query's terms
    // keep one type) is refused, not answered at another scale.
    let e = via
        .simple_query("with recursive r(n, q) as (select 1, 1 / 3.0 union all select n + 1, q / 2 from r where n < 3) select * from r")
        .await
        .expect_err("recursive NUMERIC division");
    assert_eq!(crate::common::sqlstate(&e), "0A000", "{e:?}");
    let rows = via.simple_query("select round(power(x::float8, 0.5)::numeric, 4) from (values (1.5)) t(x)").await.unwrap();
    assert_eq!(crate::common::text_rows(&rows), vec![vec!["1.2247".to_string()]]);
    limit_and_offset_as_parameters(&via, &direct).await;
}

/// LIMIT and OFFSET bound as parameters of whichever integer type the client declares (JDBC's
/// `setInt` sends int4, `setShort` int2): the rows PostgreSQL returns, NULL as no limit, and
/// PostgreSQL's errors for negative values.
async fn limit_and_offset_as_parameters(via: &Client, direct: &Client) {
    let sql = "select x::int4 from (values (3), (1), (2), (5)) t(x) order by x limit $1 offset $2";
    async fn run<A, B>(c: &Client, sql: &str, types: &[Type], a: A, b: B) -> Result<Vec<i32>, tokio_postgres::Error>
    where
        A: tokio_postgres::types::ToSql + Sync,
        B: tokio_postgres::types::ToSql + Sync,
    {
        let st = c.prepare_typed(sql, types).await?;
        Ok(c.query(&st, &[&a, &b]).await?.iter().map(|r| r.get::<_, i32>(0)).collect())
    }
    let (int2, int4, int8) = (Type::INT2, Type::INT4, Type::INT8);
    for (limit, offset) in [(Some(2i16), 1i32), (None, 2), (Some(0), 0), (Some(9), 3)] {
        let types = [int2.clone(), int4.clone()];
        let want = run(direct, sql, &types, limit, offset).await.expect(sql);
        assert_eq!(run(via, sql, &types, limit, offset).await.expect(sql), want, "limit {limit:?} offset {offset}");
    }
    for (limit, offset) in [(2i64, Some(1i16)), (1, None)] {
        let types = [int8.clone(), int2.clone()];
        let want = run(direct, sql, &types, limit, offset).await.expect(sql);
        assert_eq!(run(via, sql, &types, limit, offset).await.expect(sql), want, "limit {limit} offset {offset:?}");
    }
    for (limit, offset, code) in [(-1i32, 0i32, "2201W"), (1, -2, "2201X")] {
        let types = [int4.clone(), int4.clone()];
        let e = run(via, sql, &types, limit, offset).await.expect_err(sql);
        assert_eq!(crate::common::sqlstate(&e), code, "limit {limit} offset {offset}: {e}");
        let e = run(direct, sql, &types, limit, offset).await.expect_err(sql);
        assert_eq!(crate::common::sqlstate(&e), code, "PostgreSQL: {e}");
    }
}

/// `COPY ... TO STDOUT` with PostgreSQL's options writes the bytes PostgreSQL writes: text with
/// another delimiter and NULL, CSV with quoting, escapes, forced quotes and a header, and binary
/// (what ADBC's PostgreSQL driver and bulk loaders read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_writes_what_postgres_writes() {
    use futures::{pin_mut, TryStreamExt};
    let pg = pgcluster::defog().await;
    let s = crate::common::start().await;
    let via = s.connect("admin").await;
    let direct = pg.client("postgres").await;
    let rows = "SELECT * FROM (VALUES (1, 'x,y', 1.5::numeric(10,2), date '2024-01-01', true), (2, null, null, null, null), \
                (3, 'he said \"hi\"', -2::numeric(10,2), date '1999-12-31', false), (4, E'tab\\there|pipe\\\\', 0::numeric(10,2), date '2000-02-29', true), \
                (5, '', 12345678.9::numeric(10,2), date '0044-03-15', null)) v(a, b, c, d, e)";
    async fn copy(c: &tokio_postgres::Client, sql: &str) -> Vec<u8> {
        let stream = c.copy_out(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        pin_mut!(stream);
        let mut out = Vec::new();
        while let Some(chunk) = stream.try_next().await.unwrap() {
            out.extend_from_slice(&chunk);
        }
        out
    }
    for options in [
        "",
        "(FORMAT csv)",
        "(FORMAT csv, HEADER)",
        "(FORMAT csv, DELIMITER ';', NULL 'NULL', QUOTE '''', FORCE_QUOTE (b, c))",
        "(FORMAT csv, FORCE_QUOTE (b), ESCAPE '\\')",
        "(FORMAT csv, FORCE_QUOTE *)",
        "CSV FORCE QUOTE *",
        "(DELIMITER '|', NULL '-')",
        "(FORMAT text, HEADER)",
        "CSV HEADER",
        "(FORMAT binary)",
        "BINARY",
    ] {
        let sql = format!("COPY ({rows}) TO STDOUT {options}");
        assert_eq!(copy(&via, &sql).await, copy(&direct, &sql).await, "{options}");
    }
    // Options PostgreSQL rejects are rejected.
    for bad in ["(FORMAT binary, HEADER)", "(QUOTE '''')", "(FORMAT csv, DELIMITER '\"')", "(FORMAT xml)"] {
        let sql = format!("COPY ({rows}) TO STDOUT {bad}");
        assert!(via.copy_out(sql.as_str()).await.is_err(), "{bad}");
    }
}
