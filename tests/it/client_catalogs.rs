//! Catalog queries of client drivers and tools lalo was not tuned on, taken from their sources
//! (`tests/clients/catalog_queries.json`: pgjdbc — DataGrip, DBeaver, Tableau, Looker, Metabase
//! connect through it —, Npgsql — Power BI —, psqlODBC — Excel and ODBC tools —, SQLAlchemy —
//! Superset, pandas —, Grafana, DBeaver's navigator), sent to lalo in a database served from
//! an upstream and directly to that PostgreSQL database. Every statement PostgreSQL answers,
//! lalo answers, with PostgreSQL's column names. lalo's catalog is its own (its OIDs, only the
//! objects it serves), so rows are not compared. The statements lalo does not answer yet are
//! listed in [`KNOWN`] with the reason; any other failure fails the test, and so does a listed
//! one that passes (the list only shrinks).

use tokio_postgres::SimpleQueryMessage;

use crate::pgcluster;

/// A small shop: keys, an index, a view, a comment.
const SHOP: &str = "CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (id integer PRIMARY KEY, customer_id integer REFERENCES customers(id), amount numeric(10,2));
CREATE INDEX orders_customer ON orders(customer_id);
CREATE VIEW order_totals AS SELECT customer_id, sum(amount) AS total FROM orders GROUP BY customer_id;
COMMENT ON TABLE orders IS 'Orders placed by customers';
INSERT INTO customers VALUES (1, 'Ada');
INSERT INTO orders VALUES (1, 1, 9.50);";

/// (client, what the entry says it is, why lalo does not answer it as PostgreSQL yet).
const KNOWN: &[(&str, &str, &str)] = &[
    ("pgjdbc", "getFunctions(null, \"public\", \"%\")", "pg_get_function_result() is not in lalo's catalog"),
    ("pgjdbc", "getTablePrivileges(null, \"public\", \"orders\")", "pg_class has no relacl (lalo's privileges are its policies, not ACLs)"),
    ("pgjdbc", "getColumnPrivileges(null, \"public\", \"orders\", \"%\")", "pg_class has no relacl (lalo's privileges are its policies, not ACLs)"),
    ("pgjdbc", "Connection.getCatalog() (first call, used by every DatabaseMetaData method)", "column name: the compatibility parser turns current_catalog into current_database()"),
    ("npgsql", "conn.GetSchema(\"Schemata\")  (note: any restriction makes Npgsql append WHERE schema_name = $1, which fails on PG because the subquery exposes nspname, not schema_name)", "column name: the compatibility parser rewrites current_database() before lalo names columns"),
    ("npgsql", "NpgsqlDataReader.GetSchemaTable()/GetColumnSchema() after SELECT id, customer_id, amount FROM public.orders (orders oid 16396; RowDescription table OIDs/attnums inlined by the driver)", "pg_column_is_updatable() is not in lalo's catalog"),
    ("psqlodbc", "SQLTablePrivileges(NULL, \"public\", \"orders\")", "pg_class has no relacl (lalo's privileges are its policies, not ACLs)"),
    ("dbeaver", "connect: read database list (defaults: hide templates/unavailable; connection database 'postgres')", "columns: n.oid beside n.* is renamed __alias_oid by the compatibility parser; lalo's pg_database has other columns than PostgreSQL 15's"),
    ("dbeaver", "navigator: list schemas (no schema filter)", "columns: n.oid beside n.* is renamed __alias_oid by the compatibility parser; pg_namespace has an extra column"),
    ("dbeaver", "navigator: list tables/views of schema public (relnamespace 2200)", "columns: c.oid beside c.* is renamed __alias_oid by the compatibility parser; pg_class's columns differ"),
];

fn columns(msgs: &[SimpleQueryMessage]) -> Vec<String> {
    msgs.iter()
        .find_map(|m| match m {
            SimpleQueryMessage::RowDescription(cols) => Some(cols.iter().map(|c| c.name().to_string()).collect()),
            _ => None,
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_catalog_queries_answer_with_postgres_columns() {
    let pg = pgcluster::defog().await;
    pg.psql("postgres", "DROP DATABASE IF EXISTS shop").await;
    pg.psql("postgres", "CREATE DATABASE shop").await;
    pg.psql("shop", SHOP).await;
    let (s, _catalog) = crate::upstream::start_with_upstreams(&[("shop".into(), pg.url("shop"))]).await;
    let via = s.connect_db("admin", "shop").await;
    let direct = pg.client("shop").await;
    let corpus: serde_json::Value = serde_json::from_str(include_str!("../clients/catalog_queries.json")).expect("corpus");
    let (mut answered, mut failed, mut known_passed) = (0, Vec::new(), Vec::new());
    for (client, entries) in corpus.as_object().expect("clients") {
        for entry in entries.as_array().expect("entries") {
            let (what, sql) = (entry["what"].as_str().unwrap_or(""), entry["sql"].as_str().unwrap_or(""));
            let Ok(want) = direct.simple_query(sql).await else { continue };
            let outcome = match via.simple_query(sql).await {
                Ok(got) if columns(&got) == columns(&want) => Ok(()),
                Ok(got) => Err(format!("columns {:?}, PostgreSQL's {:?}", columns(&got), columns(&want))),
                Err(e) => Err(e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string())),
            };
            let known = KNOWN.iter().any(|(c, w, _)| c == client && *w == what);
            match (outcome, known) {
                (Ok(()), false) => answered += 1,
                (Ok(()), true) => known_passed.push(format!("{client}: {what}")),
                (Err(_), true) => {}
                (Err(why), false) => failed.push(format!("{client}: {what}: {why}")),
            }
        }
    }
    println!("client catalog queries: {answered} answered with PostgreSQL's columns, {} known not to be", KNOWN.len());
    for f in &failed {
        println!("FAILED {f}");
    }
    assert!(failed.is_empty(), "{} client catalog queries failed through lalo", failed.len());
    assert!(known_passed.is_empty(), "listed as failing but answered now: {known_passed:?}");
}
