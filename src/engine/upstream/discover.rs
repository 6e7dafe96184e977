//! Reading an upstream's catalog: its tables and views, their Arrow schemas, comments and
//! primary and foreign keys, in a handful of catalog queries.

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::sql::TableReference;
use datafusion_table_providers::sql::db_connection_pool::dbconnection::postgresconn::PostgresConnection;
use datafusion_table_providers::sql::db_connection_pool::dbconnection::AsyncDbConnection;

use crate::engine::docs::{ForeignKeyDoc, TableDoc};

/// One discovered table: where it lives, its schema as DataFusion sees it, and its docs.
#[derive(Debug, Clone)]
pub struct Discovered {
    pub schema: String,
    pub name: String,
    pub arrow: SchemaRef,
    pub doc: TableDoc,
}

/// Schemas that are PostgreSQL's own, never served as upstream data.
const SYSTEM_SCHEMAS: &[&str] = &["pg_catalog", "information_schema", "pg_toast"];

const TABLES_SQL: &str = "
SELECT n.nspname::text, c.relname::text, coalesce(obj_description(c.oid, 'pg_class'), '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f')
  AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
  AND (cardinality($1::text[]) = 0 OR n.nspname = ANY($1::text[]))
  AND has_table_privilege(c.oid, 'SELECT')
ORDER BY 1, 2";

const COLUMN_COMMENTS_SQL: &str = "
SELECT n.nspname::text, c.relname::text, a.attname::text, col_description(c.oid, a.attnum)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE a.attnum > 0 AND NOT a.attisdropped AND col_description(c.oid, a.attnum) IS NOT NULL
  AND (cardinality($1::text[]) = 0 OR n.nspname = ANY($1::text[]))";

const FOREIGN_KEYS_SQL: &str = "
SELECT sn.nspname::text, sc.relname::text, tn.nspname::text, tc.relname::text,
  ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, i)
        JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.i),
  ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, i)
        JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.i)
FROM pg_constraint con
JOIN pg_class sc ON sc.oid = con.conrelid JOIN pg_namespace sn ON sn.oid = sc.relnamespace
JOIN pg_class tc ON tc.oid = con.confrelid JOIN pg_namespace tn ON tn.oid = tc.relnamespace
WHERE con.contype = 'f' AND (cardinality($1::text[]) = 0 OR sn.nspname = ANY($1::text[]))";

const PRIMARY_KEYS_SQL: &str = "
SELECT n.nspname::text, c.relname::text,
  ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, i)
        JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.i)
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE con.contype = 'p' AND (cardinality($1::text[]) = 0 OR n.nspname = ANY($1::text[]))";

/// Discover every readable table in `schemas` (all non-system schemas when empty).
pub async fn discover(conn: &PostgresConnection, schemas: &[String]) -> Result<Vec<Discovered>, String> {
    let client = &conn.conn;
    let schemas: Vec<String> = schemas.iter().filter(|s| !SYSTEM_SCHEMAS.contains(&s.as_str())).cloned().collect();
    let rows = client.query(TABLES_SQL, &[&schemas]).await.map_err(|e| e.to_string())?;
    let mut docs: BTreeMap<(String, String), TableDoc> = BTreeMap::new();
    for r in &rows {
        let (s, t, d): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        docs.insert((s, t), TableDoc { description: d.trim().to_string(), ..Default::default() });
    }
    for r in client.query(COLUMN_COMMENTS_SQL, &[&schemas]).await.map_err(|e| e.to_string())? {
        let (s, t, c, d): (String, String, String, String) = (r.get(0), r.get(1), r.get(2), r.get(3));
        if let Some(doc) = docs.get_mut(&(s, t)) {
            doc.columns.insert(c.to_ascii_lowercase(), d.trim().to_string());
        }
    }
    for r in client.query(FOREIGN_KEYS_SQL, &[&schemas]).await.map_err(|e| e.to_string())? {
        let (s, t, rs, rt): (String, String, String, String) = (r.get(0), r.get(1), r.get(2), r.get(3));
        let (cols, ref_cols): (Vec<String>, Vec<String>) = (r.get(4), r.get(5));
        if let Some(doc) = docs.get_mut(&(s, t)) {
            doc.foreign_keys.push(ForeignKeyDoc { columns: cols, ref_schema: rs, ref_table: rt, ref_columns: ref_cols });
        }
    }
    // Primary keys let lalo's pg_catalog describe the upstream's tables as PostgreSQL does.
    for r in client.query(PRIMARY_KEYS_SQL, &[&schemas]).await.map_err(|e| e.to_string())? {
        let (s, t, cols): (String, String, Vec<String>) = (r.get(0), r.get(1), r.get(2));
        if let Some(doc) = docs.get_mut(&(s, t)) {
            doc.primary_key = cols;
        }
    }
    let mut out = Vec::with_capacity(docs.len());
    for ((schema, name), doc) in docs {
        let reference = TableReference::partial(schema.clone(), name.clone());
        match conn.get_schema(&reference).await {
            Ok(arrow) => out.push(Discovered { schema, name, arrow, doc }),
            // A table with no column lalo can represent is skipped, not fatal for the rest.
            Err(e) => tracing::warn!(table = %format!("{schema}.{name}"), error = %e, "upstream table skipped"),
        }
    }
    Ok(out)
}
