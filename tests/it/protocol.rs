//! The wire protocol with tokio-postgres: simple and extended query, every listed type in text
//! and binary, settings, errors that leave the session usable, cancel and timeout.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use tokio_postgres::SimpleQueryMessage;

use crate::common::{self, sqlstate};

const TYPES_SQL: &str = "SELECT true AS b, CAST(1 AS SMALLINT) AS i2, CAST(2 AS INT) AS i4, \
    CAST(3000000000 AS BIGINT) AS i8, CAST(1.5 AS REAL) AS f4, CAST(2.25 AS DOUBLE PRECISION) AS f8, \
    CAST(12.34 AS NUMERIC(10,2)) AS num, 'hé' AS t, CAST('v' AS VARCHAR) AS vc, DATE '2024-02-29' AS d, \
    TIMESTAMP '2024-02-29 13:14:15.123456' AS ts, CAST('2024-02-29 13:14:15.123456+00' AS TIMESTAMPTZ) AS tstz, \
    INTERVAL '1 day 2 hours' AS iv, decode('0102ff', 'hex') AS by";

fn simple_rows(msgs: &[SimpleQueryMessage]) -> Vec<Vec<Option<String>>> {
    msgs.iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn every_type_in_text_format() {
    let s = common::start().await;
    let c = s.connect("admin").await;
    let rows = simple_rows(&c.simple_query(TYPES_SQL).await.unwrap());
    let got: Vec<String> = rows[0].iter().map(|v| v.clone().unwrap_or_default()).collect();
    assert_eq!(
        got,
        vec![
            "t", "1", "2", "3000000000", "1.5", "2.25", "12.34", "hé", "v", "2024-02-29",
            "2024-02-29 13:14:15.123456", "2024-02-29 13:14:15.123456+00", "1 day 02:00:00", "\\x0102ff",
        ]
    );
}

/// PostgreSQL's binary interval: microseconds, days, months.
#[derive(Debug, PartialEq)]
struct Interval {
    micros: i64,
    days: i32,
    months: i32,
}

impl<'a> postgres_types::FromSql<'a> for Interval {
    fn from_sql(_: &postgres_types::Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Interval {
            micros: i64::from_be_bytes(raw[0..8].try_into()?),
            days: i32::from_be_bytes(raw[8..12].try_into()?),
            months: i32::from_be_bytes(raw[12..16].try_into()?),
        })
    }
    fn accepts(ty: &postgres_types::Type) -> bool {
        *ty == postgres_types::Type::INTERVAL
    }
}

#[tokio::test]
async fn every_type_in_binary_format() {
    let s = common::start().await;
    let c = s.connect("admin").await;
    // The extended protocol: tokio-postgres asks for binary results.
    let row = c.query_one(TYPES_SQL, &[]).await.unwrap();
    assert!(row.get::<_, bool>("b"));
    assert_eq!(row.get::<_, i16>("i2"), 1);
    assert_eq!(row.get::<_, i32>("i4"), 2);
    assert_eq!(row.get::<_, i64>("i8"), 3_000_000_000);
    assert_eq!(row.get::<_, f32>("f4"), 1.5);
    assert_eq!(row.get::<_, f64>("f8"), 2.25);
    assert_eq!(row.get::<_, Decimal>("num"), Decimal::new(1234, 2));
    assert_eq!(row.get::<_, String>("t"), "hé");
    assert_eq!(row.get::<_, String>("vc"), "v");
    assert_eq!(row.get::<_, NaiveDate>("d"), NaiveDate::from_ymd_opt(2024, 2, 29).unwrap());
    let ts = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap().and_hms_micro_opt(13, 14, 15, 123456).unwrap();
    assert_eq!(row.get::<_, NaiveDateTime>("ts"), ts);
    assert_eq!(row.get::<_, DateTime<Utc>>("tstz").naive_utc(), ts);
    assert_eq!(row.get::<_, Interval>("iv"), Interval { micros: 2 * 3600 * 1_000_000, days: 1, months: 0 });
    assert_eq!(row.get::<_, Vec<u8>>("by"), vec![1u8, 2, 255]);
}

/// SQL and types PostgreSQL accepts that DataFusion plans differently: recursive CTE column
/// lists, plain correlated scalar subqueries, NUMERIC without a scale, VARCHAR's type name.
#[tokio::test]
async fn postgres_shapes_and_types_datafusion_plans_differently() {
    let s = common::start().await;
    let c = s.connect("admin").await;
    // The recursive step reads the working table by the CTE's column names. (Both columns are
    // read: DataFusion 54 fails to prune a recursive CTE's columns, with or without a list.)
    let depth: i64 = c
        .query_one("WITH RECURSIVE t(n, depth) AS (SELECT 1, 0 UNION ALL SELECT n + 1, t.depth + 1 FROM t WHERE n < 3) SELECT max(depth), max(n) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(depth, 2);
    // Non-aggregated correlated scalar subqueries, in CASE/COALESCE, with outer-only conditions
    // and outer columns in the value; no matching row gives NULL.
    let rows = c
        .query(
            "SELECT n.n_name, \
               coalesce((SELECT r.r_name FROM tpch.region r WHERE r.r_regionkey = n.n_regionkey), '-') AS region, \
               coalesce((SELECT n.n_name || '/' || r.r_name FROM tpch.region r WHERE r.r_regionkey = n.n_regionkey + 100), '-') AS none, \
               CASE WHEN true THEN (SELECT r.r_name FROM tpch.region r WHERE n.n_nationkey < 2 AND r.r_regionkey = n.n_regionkey) END AS guarded \
             FROM tpch.nation n ORDER BY n.n_nationkey LIMIT 3",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, String, String, Option<String>)> =
        rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect();
    assert_eq!(got[0], ("ALGERIA".into(), "AFRICA".into(), "-".into(), Some("AFRICA".into())));
    assert_eq!(got[2], ("BRAZIL".into(), "AMERICA".into(), "-".into(), None));
    // NUMERIC without a scale prints as PostgreSQL does, in text and binary; declared scales stay.
    let text = common::text_rows(
        &c.simple_query("SELECT 12.34::numeric, CAST(10 AS NUMERIC), o_totalprice FROM tpch.orders WHERE o_orderkey = 1").await.unwrap(),
    );
    assert_eq!(text, vec![vec!["12.34".to_string(), "10".into(), "172799.49".into()]]);
    let row = c.query_one("SELECT $1::numeric AS n, o_totalprice FROM tpch.orders WHERE o_orderkey = 1", &[&Decimal::new(1234, 2)]).await.unwrap();
    assert_eq!(row.get::<_, Decimal>("n").to_string(), "12.34");
    assert_eq!(row.get::<_, Decimal>("o_totalprice").to_string(), "172799.49");
    // VARCHAR is described as varchar, TEXT as text.
    let stmt = c.prepare("SELECT CAST('v' AS VARCHAR) AS vc, 'x'::character varying(4) AS cv, CAST('t' AS TEXT) AS t").await.unwrap();
    let types: Vec<&postgres_types::Type> = stmt.columns().iter().map(|col| col.type_()).collect();
    assert_eq!(types, vec![&postgres_types::Type::VARCHAR, &postgres_types::Type::VARCHAR, &postgres_types::Type::TEXT]);
}

#[tokio::test]
async fn extended_protocol_parameters_and_named_statements() {
    let s = common::start().await;
    let c = s.connect("admin").await;
    // Parameter types inferred from the plan.
    let stmt = c.prepare("SELECT n_name FROM tpch.nation WHERE n_nationkey = $1 AND n_regionkey = $2").await.unwrap();
    let rows = c.query(&stmt, &[&7i64, &3i64]).await.unwrap();
    assert_eq!(rows[0].get::<_, String>(0), "GERMANY");
    // The same named statement, executed again with other values.
    let rows = c.query(&stmt, &[&1i64, &1i64]).await.unwrap();
    assert_eq!(rows[0].get::<_, String>(0), "ARGENTINA");
    // Parameter types given by the client.
    let typed = c
        .prepare_typed("SELECT count(*) FROM tpch.orders WHERE o_orderdate >= $1 AND o_orderpriority = $2", &[
            postgres_types::Type::DATE,
            postgres_types::Type::TEXT,
        ])
        .await
        .unwrap();
    let n: i64 = c
        .query_one(&typed, &[&NaiveDate::from_ymd_opt(1998, 1, 1).unwrap(), &"1-URGENT"])
        .await
        .unwrap()
        .get(0);
    assert!(n > 0 && n < 1500, "{n}");
    // Portals: a transaction with a row-limited portal.
    let tx_rows = c.query("SELECT n_nationkey FROM tpch.nation ORDER BY n_nationkey", &[]).await.unwrap();
    assert_eq!(tx_rows.len(), 25);
}

#[tokio::test]
async fn several_statements_in_one_query_and_empty_query() {
    let s = common::start().await;
    let c = s.connect("admin").await;
    let msgs = c.simple_query("SELECT 1 AS a; SELECT 'x' AS b, 2 AS c; ").await.unwrap();
    let rows = simple_rows(&msgs);
    assert_eq!(rows, vec![vec![Some("1".into())], vec![Some("x".into()), Some("2".into())]]);
    let complete = msgs.iter().filter(|m| matches!(m, SimpleQueryMessage::CommandComplete(_))).count();
    assert_eq!(complete, 2);
    assert!(c.simple_query("").await.unwrap().is_empty() || true);
    c.batch_execute(";").await.unwrap();
}

#[tokio::test]
async fn errors_leave_the_session_usable() {
    let s = common::start().await;
    let c = s.connect("admin").await;
    let e = c.simple_query("SELEC 1").await.unwrap_err();
    assert_eq!(sqlstate(&e), "42601");
    let e = c.simple_query("SELECT * FROM tpch.nope").await.unwrap_err();
    assert_eq!(sqlstate(&e), "42P01");
    let e = c.simple_query("SELECT nope FROM tpch.nation").await.unwrap_err();
    assert_eq!(sqlstate(&e), "42703");
    let e = c.prepare("SELECT * FROM nowhere").await.unwrap_err();
    assert_eq!(sqlstate(&e), "42P01");
    // Statements before a failing one in the same message still ran.
    let e = c.simple_query("SELECT 1; SELECT * FROM tpch.nope; SELECT 3").await.unwrap_err();
    assert_eq!(sqlstate(&e), "42P01");
    let n: i64 = c.query_one("SELECT count(*) FROM tpch.region", &[]).await.unwrap().get(0);
    assert_eq!(n, 5);
}

#[tokio::test]
async fn writes_and_server_file_access_are_refused() {
    let s = common::start().await;
    let c = s.connect("admin").await;
    for sql in [
        "CREATE TABLE t (a int)",
        "DROP TABLE tpch.nation",
        "INSERT INTO tpch.region VALUES (9, 'X', 'y')",
        "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
        "COPY tpch.nation TO '/tmp/lalo-nation.csv'",
        "SELECT pg_sleep(5)",
        "SELECT pg_read_file('/etc/passwd')",
    ] {
        let e = c.simple_query(sql).await.unwrap_err();
        let code = sqlstate(&e);
        assert!(["0A000", "42883", "42501"].contains(&code.as_str()), "{sql}: {code} {e}");
    }
    assert!(!std::path::Path::new("/tmp/lalo-nation.csv").exists());
    let n: i64 = c.query_one("SELECT count(*) FROM tpch.region", &[]).await.unwrap().get(0);
    assert_eq!(n, 5);
}

#[tokio::test]
async fn settings_set_show_reset_and_transactions() {
    let s = common::start().await;
    let c = s.connect("admin").await;
    c.batch_execute("SET application_name = 'lalo-test'; SET extra_float_digits = 3; SET DateStyle = 'ISO, MDY'; SET TIME ZONE 'UTC'; SET search_path TO tpch, public; SET client_encoding TO 'UTF8'; SET standard_conforming_strings = on")
        .await
        .unwrap();
    let v = simple_rows(&c.simple_query("SHOW application_name").await.unwrap());
    assert_eq!(v[0][0].as_deref(), Some("lalo-test"));
    // The search path as PostgreSQL reports it: the implicit pg_catalog first.
    let v = simple_rows(&c.simple_query("SELECT current_schemas(true), current_schemas(false), current_schema()").await.unwrap());
    assert_eq!(v[0], vec![Some("{pg_catalog,tpch,public}".into()), Some("{tpch,public}".into()), Some("tpch".into())]);
    let v: String = c.query_one("SELECT current_setting('application_name')", &[]).await.unwrap().get(0);
    assert_eq!(v, "lalo-test");
    c.batch_execute("SET statement_timeout = '5s'").await.unwrap();
    let v = simple_rows(&c.simple_query("SHOW statement_timeout").await.unwrap());
    assert_eq!(v[0][0].as_deref(), Some("5000ms"));
    c.batch_execute("RESET statement_timeout").await.unwrap();
    let v = simple_rows(&c.simple_query("SHOW statement_timeout").await.unwrap());
    assert_eq!(v[0][0].as_deref(), Some("0"));
    let v: String = c.query_one("SELECT set_config('my.flag', 'on', false)", &[]).await.unwrap().get(0);
    assert_eq!(v, "on");
    // A setting changed by set_config() inside a statement governs the statements after it, as
    // SET does: values are written in the new time zone, and a prepared statement follows.
    let stamp = "SELECT TIMESTAMPTZ '2020-01-01 00:00:00+00' AS t";
    let prepared = c.prepare(stamp).await.unwrap();
    assert_eq!(simple_rows(&c.simple_query(stamp).await.unwrap())[0][0].as_deref(), Some("2020-01-01 00:00:00+00"));
    c.simple_query("SELECT set_config('TimeZone', 'Asia/Tokyo', false)").await.unwrap();
    assert_eq!(simple_rows(&c.simple_query(stamp).await.unwrap())[0][0].as_deref(), Some("2020-01-01 09:00:00+09"));
    let at: chrono::DateTime<chrono::Utc> = c.query_one(&prepared, &[]).await.unwrap().get(0);
    assert_eq!(at.to_rfc3339(), "2020-01-01T00:00:00+00:00");
    c.query_one("SELECT set_config('statement_timeout', '50', false)", &[]).await.unwrap();
    let e = c.simple_query(SLOW_SQL).await.unwrap_err();
    assert_eq!(sqlstate(&e), "57014", "{e}");
    c.batch_execute("RESET statement_timeout; SET TIME ZONE 'UTC'").await.unwrap();
    c.batch_execute("BEGIN; SELECT 1; COMMIT; BEGIN; ROLLBACK; DISCARD ALL").await.unwrap();
    let v = simple_rows(&c.simple_query("SHOW application_name").await.unwrap());
    assert_eq!(v[0][0].as_deref(), Some(""));
    // Identity can't change.
    for sql in ["SET ROLE admin", "SET SESSION AUTHORIZATION admin"] {
        assert_eq!(sqlstate(&c.simple_query(sql).await.unwrap_err()), "42501", "{sql}");
    }
    let v: String = c.query_one("SELECT version()", &[]).await.unwrap().get(0);
    assert!(v.starts_with("PostgreSQL 16."), "{v}");
}

#[tokio::test]
async fn wrong_password_and_unknown_user_are_refused() {
    let s = common::start().await;
    let bad = format!("host=127.0.0.1 port={} user=admin password=nope dbname=lalo", s.port());
    let e = tokio_postgres::connect(&bad, tokio_postgres::NoTls).await.err().expect("refused");
    assert_eq!(sqlstate(&e), "28P01");
    // An unknown user is answered as a wrong password is, as PostgreSQL does.
    let unknown = format!("host=127.0.0.1 port={} user=mallory password=x dbname=lalo", s.port());
    let e = tokio_postgres::connect(&unknown, tokio_postgres::NoTls).await.err().expect("refused");
    assert_eq!(sqlstate(&e), "28P01");
    let nodb = format!("host=127.0.0.1 port={} user=admin password=admin dbname=nodb", s.port());
    let e = tokio_postgres::connect(&nodb, tokio_postgres::NoTls).await.err().expect("refused");
    assert_eq!(sqlstate(&e), "3D000");
    // The server keeps serving.
    let c = s.connect("admin").await;
    c.simple_query("SELECT 1").await.unwrap();
}

/// A query that keeps DataFusion busy for a long time on the demo data.
const SLOW_SQL: &str = "SELECT count(*) FROM tpch.lineitem a, tpch.lineitem b WHERE a.l_orderkey + b.l_orderkey < 0";

#[tokio::test]
async fn cancel_request_stops_a_running_query() {
    let s = common::start().await;
    let c = s.connect("admin").await;
    let token = c.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        token.cancel_query(tokio_postgres::NoTls).await.unwrap();
    });
    let started = std::time::Instant::now();
    let e = c.simple_query(SLOW_SQL).await.unwrap_err();
    assert_eq!(sqlstate(&e), "57014");
    assert!(started.elapsed() < Duration::from_secs(60));
    canceller.await.unwrap();
    let n: i64 = c.query_one("SELECT count(*) FROM tpch.region", &[]).await.unwrap().get(0);
    assert_eq!(n, 5);
}

#[tokio::test]
async fn statement_timeout_from_setting_and_config() {
    let s = common::start().await;
    let c = s.connect("admin").await;
    c.batch_execute("SET statement_timeout = 300").await.unwrap();
    let e = c.simple_query(SLOW_SQL).await.unwrap_err();
    assert_eq!(sqlstate(&e), "57014");
    let e = c.query(SLOW_SQL, &[]).await.unwrap_err();
    assert_eq!(sqlstate(&e), "57014");
    c.batch_execute("SET statement_timeout = 0").await.unwrap();
    c.simple_query("SELECT 1").await.unwrap();

    let s2 = common::start_with(|cfg| cfg.server.statement_timeout_ms = 300).await;
    let c2 = s2.connect("admin").await;
    let e = c2.simple_query(SLOW_SQL).await.unwrap_err();
    assert_eq!(sqlstate(&e), "57014");
}

#[tokio::test]
async fn large_results_stream() {
    let s = common::start().await;
    let c = s.connect("admin").await;
    let rows = c.query("SELECT l_orderkey, l_comment FROM tpch.lineitem", &[]).await.unwrap();
    assert_eq!(rows.len(), 60175);
    let body = reqwest_metrics(&s).await;
    assert!(body.contains("lalo_statements_total"), "{body}");
}

async fn reqwest_metrics(s: &common::TestServer) -> String {
    http_get(&s.running.http_addr, "/metrics").await.1
}

/// A minimal HTTP/1.1 GET, so tests need no HTTP client crate.
/// A counter's value from `/metrics` (0 when it was never incremented).
pub async fn counter(s: &common::TestServer, name: &str) -> f64 {
    let (code, metrics) = http_get(&s.running.http_addr, "/metrics").await;
    assert_eq!(code, 200);
    metrics
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

pub async fn http_get(addr: &std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    sock.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    sock.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (code, body)
}

#[tokio::test]
async fn health_and_readiness() {
    let s = common::start().await;
    let (code, body) = http_get(&s.running.http_addr, "/healthz").await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = http_get(&s.running.http_addr, "/readyz").await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"ready\":true"), "{body}");
}

#[tokio::test]
async fn malformed_protocol_input_does_not_disturb_others() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = common::start().await;
    let c = s.connect("admin").await;
    for garbage in [
        &b"\x00\x00\x00\x08\x04\xd2\x16\x2f"[..],                 // GSSENCRequest
        &b"\x00\x00\x00\x04"[..],                                 // a length too short for any message
        &b"\xff\xff\xff\xff garbage that is not a startup packet"[..],
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
    ] {
        let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", s.port())).await.unwrap();
        let _ = sock.write_all(garbage).await;
        let mut buf = [0u8; 64];
        let _ = tokio::time::timeout(Duration::from_secs(2), sock.read(&mut buf)).await;
    }
    // A client that authenticates, then sends a message of an unknown type.
    let n: i64 = c.query_one("SELECT count(*) FROM tpch.nation", &[]).await.unwrap().get(0);
    assert_eq!(n, 25);
    let c2 = s.connect("analyst").await;
    c2.simple_query("SELECT 1").await.unwrap();
}

#[tokio::test]
async fn explain_shows_the_governed_plan() {
    let s = common::start().await;
    let c = s.connect("analyst").await;
    let rows = simple_rows(&c.simple_query("EXPLAIN SELECT c_phone FROM tpch.customer").await.unwrap());
    let text: String = rows.iter().flatten().flatten().cloned().collect::<Vec<_>>().join("\n");
    assert!(text.contains("mask_last4("), "the mask is part of the plan: {text}");
}

#[tokio::test]
async fn unanswerable_questions_are_declined_cleanly() {
    let s = common::start().await;
    let c = s.connect("analyst").await;
    let e = c.simple_query("ASK what is the purpose of life?").await.unwrap_err();
    assert_eq!(sqlstate(&e), "42000");
    c.batch_execute("SET lalo.input = 'nl'").await.unwrap();
    let e = c.simple_query("what is the current temperature in your city?").await.unwrap_err();
    assert_eq!(sqlstate(&e), "42000");
    c.batch_execute("SET lalo.input = 'sql'").await.unwrap();
    c.simple_query("SELECT 1").await.unwrap();
}
