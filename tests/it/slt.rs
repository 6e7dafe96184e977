//! DataFusion's PostgreSQL-compatibility sqllogictest files (`../shared/corpora/slt/pg_compat/*.slt`)
//! run through the wire, once over the simple query protocol and once over the extended protocol
//! (binary results), with the `sqllogictest` crate driving tokio-postgres as user `admin`.
//!
//! How the records are split:
//! - lalo is read-only over the wire, so setup statements — any SQL that starts with `CREATE`,
//!   `DROP`, `INSERT` or `COPY` (case-insensitive) — do not go through the wire. They run
//!   out-of-band on `Engine::setup_context()`, an ungoverned DataFusion `SessionContext` over
//!   lalo's shared catalog; the tables it creates land in `lalo.public`, which every connection
//!   sees. The corpus's relative `LOCATION '../../testing/data/csv/aggregate_test_100.csv'` is
//!   rewritten to the absolute path of the CSV shipped beside the `.slt` files.
//! - Every other record (all the queries) goes through the wire. The simple run sends it with
//!   `simple_query` and reads text; tokio-postgres 0.7 does not expose the RowDescription types
//!   of a simple query, so the runner asks the server for them with a Parse/Describe
//!   (`prepare`, nothing executed) to know which columns are booleans, floats, timestamps.
//!   The extended run prepares the statement and executes it with `query`, which asks for
//!   binary results, and decodes each value by its type.
//!
//! Values are rendered the way DataFusion's own sqllogictest runner renders them (its
//! `engines/conversion.rs` and postgres engine): NULL -> `NULL`, empty string -> `(empty)`,
//! booleans `true`/`false`, floats and numerics through BigDecimal rounded to 12 places and
//! normalized (`NaN`, `Infinity`, `-Infinity` spelled out), timestamps as `2018-01-01T12:00:00`.
//! Result column types are checked strictly against the record's type string (as DataFusion's
//! runner does), mapping PostgreSQL types to DataFusion's sqllogictest column types, with one
//! concession: a NUMERIC column also matches `I`, because the wire has no unsigned 64-bit
//! integer and DataFusion's UInt64 results (BIGINT UNSIGNED, row_number(), rank()) arrive as
//! NUMERIC (their values are still compared exactly). Values are compared with sqllogictest's
//! `default_validator`/`default_normalizer`; `rowsort`/`valuesort` are applied by the crate.
//! We are DataFusion, not PostgreSQL: `onlyif postgres` records are skipped, `skipif postgres`
//! records run.
//!
//! Records that cannot pass are listed in [`ALLOWLIST`] with the reason; any other failure, or
//! an allowlisted record that passes, fails the test.

use std::path::PathBuf;
use std::str::FromStr;

use async_trait::async_trait;
use bigdecimal::BigDecimal;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use datafusion::prelude::SessionContext;
use postgres_types::Type;
use sqllogictest::{AsyncDB, ColumnType, DBOutput, MakeConnection, Record, RecordOutput, Runner};
use tokio_postgres::{Client, Row, SimpleQueryMessage};

use crate::common;

/// The corpus folder, beside the repository.
fn corpus_dir() -> PathBuf {
    common::repo().join("../shared/corpora/slt/pg_compat")
}

/// The relative CSV path the corpus uses (DataFusion's repository layout).
const CSV_REL: &str = "../../testing/data/csv/aggregate_test_100.csv";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Simple,
    Extended,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Simple => "simple",
            Protocol::Extended => "extended",
        })
    }
}

/// A record that is known not to pass, and why.
struct Expected {
    /// The .slt file name.
    file: &'static str,
    /// A substring of the record's SQL.
    sql: &'static str,
    /// Only in this protocol (None: both).
    protocol: Option<Protocol>,
    reason: &'static str,
}

/// Records that cannot pass through the wire. Keep this short, and say why.
const ALLOWLIST: &[Expected] = &[
    // Empty: every record passes in both protocols. (TINYINT columns used to fail in binary
    // format; lalo now sends Int8 as a two-byte int2.)
];

fn allowlisted(file: &str, sql: &str, protocol: Protocol) -> Option<usize> {
    ALLOWLIST
        .iter()
        .position(|e| e.file == file && sql.contains(e.sql) && e.protocol.is_none_or(|p| p == protocol))
}

// ---------------------------------------------------------------------------------------------
// Column types: DataFusion's sqllogictest column types (B D I P R T ?).

#[derive(Debug, Clone, PartialEq, Eq)]
enum DfType {
    Boolean,
    DateTime,
    Integer,
    Timestamp,
    Float,
    Text,
    Another,
    /// PostgreSQL NUMERIC. Renders as `R`, but the column validator also accepts it where the
    /// record says `I`: the wire has no unsigned 64-bit integer, so DataFusion's UInt64 results
    /// (BIGINT UNSIGNED columns, row_number(), rank(), dense_rank()) arrive as NUMERIC.
    Numeric,
}

impl ColumnType for DfType {
    fn from_char(value: char) -> Option<Self> {
        Some(match value {
            'B' => DfType::Boolean,
            'D' => DfType::DateTime,
            'I' => DfType::Integer,
            'P' => DfType::Timestamp,
            'R' => DfType::Float,
            'T' => DfType::Text,
            _ => DfType::Another,
        })
    }

    fn to_char(&self) -> char {
        match self {
            DfType::Boolean => 'B',
            DfType::DateTime => 'D',
            DfType::Integer => 'I',
            DfType::Timestamp => 'P',
            DfType::Float => 'R',
            DfType::Text => 'T',
            DfType::Another => '?',
            DfType::Numeric => 'R',
        }
    }
}

/// The sqllogictest column type of a PostgreSQL result type (as DataFusion's postgres engine maps it).
fn df_type(t: &Type) -> DfType {
    match *t {
        Type::BOOL => DfType::Boolean,
        Type::INT2 | Type::INT4 | Type::INT8 => DfType::Integer,
        Type::BPCHAR | Type::VARCHAR | Type::TEXT | Type::NAME => DfType::Text,
        Type::FLOAT4 | Type::FLOAT8 => DfType::Float,
        Type::NUMERIC => DfType::Numeric,
        Type::DATE | Type::TIME => DfType::DateTime,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => DfType::Timestamp,
        _ => DfType::Another,
    }
}

/// DataFusion's strict column validator, except that a NUMERIC column also stands for `I`
/// (see [`DfType::Numeric`]); the values themselves are still compared exactly.
#[allow(clippy::ptr_arg)]
fn column_types_match(actual: &Vec<DfType>, expected: &Vec<DfType>) -> bool {
    actual.len() == expected.len()
        && actual.iter().zip(expected).all(|(a, e)| {
            a == e || (*a == DfType::Numeric && matches!(e, DfType::Float | DfType::Integer))
        })
}

// ---------------------------------------------------------------------------------------------
// Value rendering, as DataFusion's sqllogictest `engines/conversion.rs` does it.

const NULL_STR: &str = "NULL";

fn bool_to_str(v: bool) -> String {
    if v { "true" } else { "false" }.to_string()
}

fn varchar_to_str(v: &str) -> String {
    if v.is_empty() {
        "(empty)".to_string()
    } else {
        v.trim_end_matches('\n').replace('\u{0000}', "\\0")
    }
}

fn big_decimal_to_str(v: BigDecimal) -> String {
    v.round(12).normalized().to_plain_string()
}

fn f64_to_str(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "Infinity".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Infinity".to_string()
    } else {
        big_decimal_to_str(BigDecimal::from_str(&v.to_string()).expect("finite float"))
    }
}

fn f32_to_str(v: f32) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f32::INFINITY {
        "Infinity".to_string()
    } else if v == f32::NEG_INFINITY {
        "-Infinity".to_string()
    } else {
        big_decimal_to_str(BigDecimal::from_str(&v.to_string()).expect("finite float"))
    }
}

/// PostgreSQL's text spelling of special float values, else Rust's parser.
fn parse_pg_float<T: FromStr + From<f32>>(s: &str) -> Result<T, String> {
    match s {
        "NaN" => Ok(T::from(f32::NAN)),
        "Infinity" => Ok(T::from(f32::INFINITY)),
        "-Infinity" => Ok(T::from(f32::NEG_INFINITY)),
        _ => s.parse::<T>().map_err(|_| format!("not a float: {s:?}")),
    }
}

/// A text-format value (simple protocol) rendered for sqllogictest.
fn text_cell(ty: Option<&Type>, v: Option<&str>) -> Result<String, String> {
    let Some(v) = v else { return Ok(NULL_STR.to_string()) };
    let Some(ty) = ty else { return Ok(varchar_to_str(v)) };
    Ok(match *ty {
        Type::BOOL => match v {
            "t" => bool_to_str(true),
            "f" => bool_to_str(false),
            _ => return Err(format!("not a boolean in text format: {v:?}")),
        },
        Type::FLOAT4 => f32_to_str(parse_pg_float::<f32>(v)?),
        Type::FLOAT8 => f64_to_str(parse_pg_float::<f64>(v)?),
        Type::NUMERIC => match v {
            "NaN" => "NaN".to_string(),
            _ => big_decimal_to_str(BigDecimal::from_str(v).map_err(|e| format!("not a numeric: {v:?}: {e}"))?),
        },
        Type::DATE => NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|e| format!("not a date: {v:?}: {e}"))?.to_string(),
        Type::TIME => NaiveTime::parse_from_str(v, "%H:%M:%S%.f").map_err(|e| format!("not a time: {v:?}: {e}"))?.to_string(),
        Type::TIMESTAMP => {
            let ts = NaiveDateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S%.f").map_err(|e| format!("not a timestamp: {v:?}: {e}"))?;
            format!("{ts:?}")
        }
        Type::TIMESTAMPTZ => {
            let ts = DateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S%.f%#z").map_err(|e| format!("not a timestamptz: {v:?}: {e}"))?;
            format!("{:?}", ts.with_timezone(&Utc))
        }
        _ => varchar_to_str(v),
    })
}

/// A binary-format value (extended protocol) rendered for sqllogictest.
fn binary_cell(row: &Row, idx: usize) -> Result<String, String> {
    fn get<'a, T: postgres_types::FromSql<'a>>(row: &'a Row, idx: usize) -> Result<Option<T>, String> {
        row.try_get::<_, Option<T>>(idx).map_err(|e| {
            let ty = row.columns()[idx].type_();
            let cause = std::error::Error::source(&e).map(|c| format!(": {c}")).unwrap_or_default();
            format!("column {idx} ({ty}, binary): {e}{cause}")
        })
    }
    fn show<T>(v: Option<T>, f: impl FnOnce(T) -> String) -> String {
        v.map(f).unwrap_or_else(|| NULL_STR.to_string())
    }
    let ty = row.columns()[idx].type_().clone();
    Ok(match ty {
        Type::BOOL => show(get::<bool>(row, idx)?, bool_to_str),
        Type::CHAR => show(get::<i8>(row, idx)?, |v| v.to_string()),
        Type::INT2 => show(get::<i16>(row, idx)?, |v| v.to_string()),
        Type::INT4 => show(get::<i32>(row, idx)?, |v| v.to_string()),
        Type::INT8 => show(get::<i64>(row, idx)?, |v| v.to_string()),
        Type::OID => show(get::<u32>(row, idx)?, |v| v.to_string()),
        Type::FLOAT4 => show(get::<f32>(row, idx)?, f32_to_str),
        Type::FLOAT8 => show(get::<f64>(row, idx)?, f64_to_str),
        Type::NUMERIC => show(get::<rust_decimal::Decimal>(row, idx)?, |v| {
            big_decimal_to_str(BigDecimal::from_str(&v.to_string()).expect("decimal"))
        }),
        Type::DATE => show(get::<NaiveDate>(row, idx)?, |v| v.to_string()),
        Type::TIME => show(get::<NaiveTime>(row, idx)?, |v| v.to_string()),
        Type::TIMESTAMP => show(get::<NaiveDateTime>(row, idx)?, |v| format!("{v:?}")),
        Type::TIMESTAMPTZ => show(get::<DateTime<Utc>>(row, idx)?, |v| format!("{v:?}")),
        Type::BPCHAR | Type::VARCHAR | Type::TEXT | Type::NAME | Type::UNKNOWN => {
            show(get::<&str>(row, idx)?, varchar_to_str)
        }
        other => return Err(format!("column {idx}: result type {other} is not rendered by this runner")),
    })
}

// ---------------------------------------------------------------------------------------------
// The database under test.

#[derive(Debug)]
struct SltError {
    message: String,
    sqlstate: Option<String>,
}

impl std::fmt::Display for SltError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.sqlstate {
            Some(code) => write!(f, "{} (SQLSTATE {code})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for SltError {}

impl From<tokio_postgres::Error> for SltError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => SltError { message: db.message().to_string(), sqlstate: Some(db.code().code().to_string()) },
            None => SltError { message: e.to_string(), sqlstate: None },
        }
    }
}

fn err(message: impl Into<String>) -> SltError {
    SltError { message: message.into(), sqlstate: None }
}

/// One wire connection plus the out-of-band setup context.
struct Wire {
    client: Client,
    setup: SessionContext,
    protocol: Protocol,
    csv: String,
}

/// DDL and data loading, which lalo refuses over the wire.
fn is_setup(sql: &str) -> bool {
    let first = sql.trim_start().split(|c: char| !c.is_ascii_alphabetic()).next().unwrap_or("");
    ["CREATE", "DROP", "INSERT", "COPY"].iter().any(|k| first.eq_ignore_ascii_case(k))
}

impl Wire {
    async fn run_setup(&mut self, sql: &str) -> Result<DBOutput<DfType>, SltError> {
        let sql = sql.replace(CSV_REL, &self.csv);
        let df = self.setup.sql(&sql).await.map_err(|e| err(format!("setup (out-of-band): {e}")))?;
        df.collect().await.map_err(|e| err(format!("setup (out-of-band): {e}")))?;
        Ok(DBOutput::StatementComplete(0))
    }

    async fn run_simple(&mut self, sql: &str) -> Result<DBOutput<DfType>, SltError> {
        let msgs = self.client.simple_query(sql).await?;
        let mut described = false;
        let mut text_rows: Vec<Vec<Option<String>>> = Vec::new();
        let mut count = 0;
        for m in &msgs {
            match m {
                SimpleQueryMessage::RowDescription(_) => described = true,
                SimpleQueryMessage::Row(r) => {
                    described = true;
                    text_rows.push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect());
                }
                SimpleQueryMessage::CommandComplete(n) => count = *n,
                _ => {}
            }
        }
        if !described {
            return Ok(DBOutput::StatementComplete(count));
        }
        // The column types: a Parse/Describe of the same text (tokio-postgres 0.7 keeps the
        // simple protocol's RowDescription types to itself).
        let pg_types: Vec<Type> = self
            .client
            .prepare(sql)
            .await
            .map_err(|e| err(format!("describing the result types with Parse/Describe failed: {}", SltError::from(e))))?
            .columns()
            .iter()
            .map(|c| c.type_().clone())
            .collect();
        let mut rows = Vec::with_capacity(text_rows.len());
        for r in text_rows {
            if r.len() != pg_types.len() {
                return Err(err(format!("{} values in a row but {} described columns", r.len(), pg_types.len())));
            }
            rows.push(
                r.iter().zip(&pg_types).map(|(v, t)| text_cell(Some(t), v.as_deref())).collect::<Result<Vec<_>, _>>().map_err(err)?,
            );
        }
        Ok(DBOutput::Rows { types: pg_types.iter().map(df_type).collect(), rows })
    }

    async fn run_extended(&mut self, sql: &str) -> Result<DBOutput<DfType>, SltError> {
        let stmt = self.client.prepare(sql).await?;
        if stmt.columns().is_empty() {
            let n = self.client.execute(&stmt, &[]).await?;
            return Ok(DBOutput::StatementComplete(n));
        }
        let types = stmt.columns().iter().map(|c| df_type(c.type_())).collect();
        let rows = self.client.query(&stmt, &[]).await?;
        let rows = rows
            .iter()
            .map(|row| (0..row.len()).map(|i| binary_cell(row, i)).collect::<Result<Vec<_>, _>>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        Ok(DBOutput::Rows { types, rows })
    }
}

#[async_trait]
impl AsyncDB for Wire {
    type Error = SltError;
    type ColumnType = DfType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DfType>, SltError> {
        if is_setup(sql) {
            return self.run_setup(sql).await;
        }
        match self.protocol {
            Protocol::Simple => self.run_simple(sql).await,
            Protocol::Extended => self.run_extended(sql).await,
        }
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "lalo"
    }

    async fn sleep(dur: std::time::Duration) {
        tokio::time::sleep(dur).await;
    }

    fn error_sql_state(e: &SltError) -> Option<String> {
        e.sqlstate.clone()
    }
}

// ---------------------------------------------------------------------------------------------
// The runs.

/// A sqllogictest runner on one new wire connection (as admin) to `server`.
async fn runner_for(server: &common::TestServer, protocol: Protocol, csv: &str) -> Runner<Wire, impl MakeConnection<Conn = Wire>> {
    let client = server.connect("admin").await;
    let setup = server.running.lalo.engine.setup_context();
    let mut conn = Some(Wire { client, setup, protocol, csv: csv.to_string() });
    let mut runner = Runner::new(move || {
        let c = conn.take();
        async move { c.ok_or_else(|| err("this runner opens one connection per file")) }
    });
    // We are DataFusion (behind lalo), not PostgreSQL.
    runner.add_label("DataFusion");
    runner.with_column_validator(column_types_match);
    runner
}

#[derive(Default)]
struct Tally {
    run: usize,
    /// Of `run`: setup statements executed out-of-band.
    setup: usize,
    passed: usize,
    expected_failures: usize,
    skipped: usize,
}

async fn run_corpus(protocol: Protocol) {
    let dir = corpus_dir();
    let csv_path = dir.join("aggregate_test_100.csv");
    assert!(csv_path.exists(), "the corpus CSV is missing: {}", csv_path.display());
    let csv = std::fs::canonicalize(&csv_path).unwrap().to_string_lossy().into_owned();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the corpus {} is missing: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 6, "expected the six pg_compat files in {}", dir.display());

    // One server per protocol run: the two runs share no tables.
    let server = common::start().await;
    let mut failures: Vec<String> = Vec::new();
    let mut used = vec![false; ALLOWLIST.len()];
    let mut totals = Tally::default();

    for path in &files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut runner = runner_for(&server, protocol, &csv).await;
        let records = sqllogictest::parse_file::<DfType>(path).unwrap_or_else(|e| panic!("parse {file}: {e}"));
        let mut tally = Tally::default();
        for record in records {
            let (line, sql) = match &record {
                Record::Statement { loc, sql, .. } | Record::Query { loc, sql, .. } => (loc.line(), sql.clone()),
                _ => {
                    runner.run_async(record).await.unwrap_or_else(|e| panic!("{file}: {}", e.display(false)));
                    continue;
                }
            };
            let outcome = runner.run_async(record).await;
            let allow = allowlisted(&file, &sql, protocol);
            if !matches!(outcome, Ok(RecordOutput::Nothing)) && is_setup(&sql) {
                tally.setup += 1;
            }
            match outcome {
                Ok(RecordOutput::Nothing) => tally.skipped += 1,
                Ok(_) => {
                    tally.run += 1;
                    match allow {
                        None => tally.passed += 1,
                        Some(i) => failures.push(format!(
                            "{file}:{line} ({protocol}): allowlisted ({}) but passed; remove it from ALLOWLIST\n[SQL] {sql}",
                            ALLOWLIST[i].reason
                        )),
                    }
                }
                Err(e) => {
                    tally.run += 1;
                    match allow {
                        Some(i) => {
                            used[i] = true;
                            tally.expected_failures += 1;
                            let actual = e.to_string();
                            let actual = actual.lines().next().unwrap_or_default();
                            println!("  expected failure {file}:{line} ({protocol}): {} [got: {actual}]", ALLOWLIST[i].reason);
                        }
                        None => failures.push(format!("{file}:{line} ({protocol}):\n{}", e.display(false))),
                    }
                }
            }
        }
        println!(
            "slt pg_compat {protocol:>8} {file:<30} records run {:>3} ({} setup), passed {:>3}, expected failures {}, skipped {}",
            tally.run, tally.setup, tally.passed, tally.expected_failures, tally.skipped
        );
        totals.run += tally.run;
        totals.setup += tally.setup;
        totals.passed += tally.passed;
        totals.expected_failures += tally.expected_failures;
        totals.skipped += tally.skipped;
    }
    println!(
        "slt pg_compat {protocol:>8} {:<30} records run {:>3} ({} setup), passed {:>3}, expected failures {}, skipped {}",
        "TOTAL", totals.run, totals.setup, totals.passed, totals.expected_failures, totals.skipped
    );
    for (i, e) in ALLOWLIST.iter().enumerate() {
        if !used[i] && e.protocol.is_none_or(|p| p == protocol) && !failures.iter().any(|f| f.contains(e.sql)) {
            failures.push(format!("ALLOWLIST entry for {} matched no record ({protocol}): {:?}", e.file, e.sql));
        }
    }
    assert!(failures.is_empty(), "{} unexpected slt failure(s) over the {protocol} protocol:\n\n{}", failures.len(), failures.join("\n\n"));
    assert!(totals.passed > 0);
}

#[tokio::test]
async fn slt_pg_compat_simple_protocol() {
    run_corpus(Protocol::Simple).await;
}

#[tokio::test]
async fn slt_pg_compat_extended_protocol() {
    run_corpus(Protocol::Extended).await;
}

/// The harness is not vacuous: values are rendered as DataFusion expects, a wrong expected
/// result fails, and `onlyif postgres` is skipped — in both protocols.
#[tokio::test]
async fn slt_runner_checks_results() {
    let server = common::start().await;
    let script = "\
query TRBI
SELECT '', CAST(0.1 AS DOUBLE PRECISION) + CAST(0.2 AS DOUBLE PRECISION), CAST(NULL AS BOOLEAN), 7
----
(empty) 0.3 NULL 7

query I
SELECT 1
----
2

onlyif postgres
query I
SELECT 1
----
2
";
    for protocol in [Protocol::Simple, Protocol::Extended] {
        let mut runner = runner_for(&server, protocol, "").await;
        let outcomes: Vec<_> = {
            let mut v = Vec::new();
            for r in sqllogictest::parse::<DfType>(script).unwrap() {
                if matches!(r, Record::Query { .. }) {
                    v.push(runner.run_async(r).await);
                }
            }
            v
        };
        assert!(matches!(outcomes[0], Ok(RecordOutput::Query { .. })), "{protocol}: {:?}", outcomes[0].as_ref().err().map(|e| e.to_string()));
        let wrong = outcomes[1].as_ref().expect_err("a wrong expected result fails").to_string();
        assert!(wrong.contains("query result mismatch"), "{protocol}: {wrong}");
        assert!(matches!(outcomes[2], Ok(RecordOutput::Nothing)), "{protocol}: onlyif postgres is skipped");
    }
}

#[test]
fn setup_statements_are_recognized() {
    assert!(is_setup("\n  create external table t"));
    assert!(is_setup("DROP TABLE t"));
    assert!(is_setup("Insert into t values (1)"));
    assert!(is_setup("COPY t FROM 'x'"));
    assert!(!is_setup("SELECT 1"));
    assert!(!is_setup("createx"));
}
