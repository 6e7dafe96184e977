//! The built-in `rules` drafter on the TPC-H demo schema: drafted SQL runs in DataFusion and
//! returns what a hand-written query returns; questions the schema cannot answer are declined.
//! The whole defog corpus is scored through the gateway by `lalo eval` (tests/it/ask.rs runs it).


use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::SessionContext;
use lalo::engine::docs::Docs;
use lalo::nl::{ColumnInfo, Drafted, Drafter, SchemaContext, TableInfo};

use crate::common;

const TABLES: &[&str] = &["region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem"];

/// Text columns with at most this many distinct values get their values as samples.
const SAMPLE_LIMIT: i64 = 30;

/// The demo schema as the planner would hand it to the drafter: columns, docs, samples.
async fn tpch_context(ctx: &SessionContext) -> SchemaContext {
    let docs = Docs::embedded();
    let schema = ctx.catalog("lalo").expect("lalo catalog").schema("tpch").expect("tpch schema");
    let mut tables = vec![];
    for name in TABLES {
        let provider = schema.table(name).await.expect("table lookup").expect("table exists");
        let doc = docs.table("lalo", "tpch", name);
        let mut columns = vec![];
        for field in provider.schema().fields() {
            let mut col = ColumnInfo::new(field.name().clone(), field.data_type().clone());
            col.description = docs.column("lalo", "tpch", name, field.name()).map(str::to_string);
            if col.is_text() {
                col.samples = samples(ctx, name, field.name()).await;
            }
            columns.push(col);
        }
        tables.push(TableInfo {
            catalog: "lalo".into(),
            schema: "tpch".into(),
            name: name.to_string(),
            description: doc.map(|d| d.description.clone()),
            columns,
        });
    }
    SchemaContext { tables, foreign_keys: vec![] }
}

async fn samples(ctx: &SessionContext, table: &str, column: &str) -> Vec<String> {
    let sql = format!("SELECT DISTINCT CAST({column} AS VARCHAR) AS v FROM lalo.tpch.{table} LIMIT {}", SAMPLE_LIMIT + 1);
    let rows = rows(ctx, &sql).await;
    if rows.len() as i64 > SAMPLE_LIMIT {
        return vec![];
    }
    rows.into_iter().map(|r| r.trim().to_string()).collect()
}

/// Result rows as sorted text lines (order-insensitive comparison).
async fn rows(ctx: &SessionContext, sql: &str) -> Vec<String> {
    let batches = ctx.sql(sql).await.unwrap_or_else(|e| panic!("plan {sql}: {e}")).collect().await.unwrap_or_else(|e| panic!("run {sql}: {e}"));
    let text = pretty_format_batches(&batches).expect("format").to_string();
    let mut lines: Vec<String> = text.lines().filter(|l| l.starts_with('|')).skip(1).map(|l| {
        l.split('|').map(str::trim).filter(|c| !c.is_empty()).collect::<Vec<_>>().join("|")
    }).collect();
    lines.sort();
    lines
}

async fn setup() -> (SessionContext, Drafter, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = common::test_config(dir.path());
    let engine = lalo::engine::Engine::build(&cfg, lalo::governance::plan_rules()).await.expect("engine");
    let ctx = engine.setup_context();
    let schema = tpch_context(&ctx).await;
    (ctx, Drafter::new(&schema), dir)
}

fn sql_of(drafter: &Drafter, question: &str) -> String {
    match drafter.draft(question) {
        Drafted::Sql { sql, .. } => sql,
        Drafted::Declined { reason } => panic!("declined {question:?}: {reason}"),
    }
}

/// Demo questions and a query giving the same rows.
const DEMO: &[(&str, &str)] = &[
    ("how many customers are there", "SELECT COUNT(*) FROM lalo.tpch.customer"),
    (
        "total revenue per region",
        // Regions reach line items through the supplier's nation: the shortest key path.
        "SELECT r.r_name, r.r_regionkey, SUM(l.l_extendedprice * (1 - l.l_discount)) FROM lalo.tpch.lineitem l \
         JOIN lalo.tpch.supplier s ON l.l_suppkey = s.s_suppkey JOIN lalo.tpch.nation n ON s.s_nationkey = n.n_nationkey \
         JOIN lalo.tpch.region r ON n.n_regionkey = r.r_regionkey GROUP BY r.r_name, r.r_regionkey",
    ),
    (
        "top 5 customers by account balance",
        "SELECT c_name, c_custkey, c_acctbal FROM lalo.tpch.customer ORDER BY c_acctbal DESC LIMIT 5",
    ),
    ("how many orders in 1995", "SELECT COUNT(*) FROM lalo.tpch.orders WHERE EXTRACT(YEAR FROM o_orderdate) = 1995"),
    (
        "average account balance by market segment",
        "SELECT c_mktsegment, AVG(c_acctbal) FROM lalo.tpch.customer GROUP BY c_mktsegment",
    ),
    (
        "customers in GERMANY",
        "SELECT c.c_name, c.c_custkey FROM lalo.tpch.customer c JOIN lalo.tpch.nation n ON c.c_nationkey = n.n_nationkey WHERE n.n_name = 'GERMANY'",
    ),
    (
        "orders with total price above 300000",
        "SELECT o_orderkey, o_totalprice FROM lalo.tpch.orders WHERE o_totalprice > 300000",
    ),
    ("how many suppliers are there per nation", "SELECT n.n_name, n.n_nationkey, COUNT(*) FROM lalo.tpch.supplier s JOIN lalo.tpch.nation n ON s.s_nationkey = n.n_nationkey GROUP BY n.n_name, n.n_nationkey"),
    ("number of orders per order status", "SELECT o_orderstatus, COUNT(*) FROM lalo.tpch.orders GROUP BY o_orderstatus"),
    ("what is the maximum account balance of customers", "SELECT MAX(c_acctbal) FROM lalo.tpch.customer"),
    ("how many customers in the AUTOMOBILE market segment", "SELECT COUNT(*) FROM lalo.tpch.customer WHERE c_mktsegment = 'AUTOMOBILE'"),
];

#[tokio::test]
async fn demo_questions_run_and_match() {
    let (ctx, drafter, _dir) = setup().await;
    for (question, expected) in DEMO {
        let sql = sql_of(&drafter, question);
        assert!(sql.contains("tpch."), "{question}: tables are schema-qualified: {sql}");
        let got = rows(&ctx, &sql).await;
        let want = rows(&ctx, expected).await;
        assert!(!want.is_empty(), "{question}: the expected query returns rows");
        assert_eq!(got, want, "{question}\n drafted: {sql}");
    }
}

#[tokio::test]
async fn unanswerable_questions_are_declined() {
    let (_ctx, drafter, _dir) = setup().await;
    for question in [
        "What is the purpose of life?",
        "What is the current temperature in your city?",
        "How many employees does each supplier have?",
        "Which customers have a loyalty card and a birthday in June?",
    ] {
        match drafter.draft(question) {
            Drafted::Declined { reason } => assert!(!reason.is_empty()),
            Drafted::Sql { sql, .. } => panic!("{question:?} should be declined, drafted {sql}"),
        }
    }
}

#[test]
fn drafting_needs_a_schema() {
    let drafted = lalo::nl::draft("how many customers are there", &SchemaContext::default());
    assert!(matches!(drafted, Drafted::Declined { .. }));
}
