//! information_schema's key views: `table_constraints`, `key_column_usage`,
//! `referential_constraints` and `constraint_column_usage`, which BI tools and ORMs (DBeaver,
//! Metabase, Power BI, Hibernate's and SQLAlchemy's reflection) read to learn primary and foreign
//! keys. DataFusion's information_schema has none of them; lalo builds them when scanned from the
//! keys pg_constraint shows (`pg_keys::named`), so both catalogs always agree.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::{MemTable, TableType};
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use super::pg_keys::{KeyedPgCatalog, NamedKey};

/// The views, by name.
pub const VIEWS: &[&str] = &["table_constraints", "key_column_usage", "referential_constraints", "constraint_column_usage"];

/// One of the views over the keys of what the caller may see.
#[derive(Debug)]
pub struct KeyView {
    name: &'static str,
    keys: Arc<KeyedPgCatalog>,
}

impl KeyView {
    pub fn named(name: &str, keys: Arc<KeyedPgCatalog>) -> Option<KeyView> {
        let name = VIEWS.iter().copied().find(|v| v.eq_ignore_ascii_case(name))?;
        Some(KeyView { name, keys })
    }
}

/// Text columns, then integer columns (PostgreSQL's `cardinal_number`).
fn columns(name: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match name {
        "table_constraints" => (
            &[
                "constraint_catalog", "constraint_schema", "constraint_name", "table_catalog", "table_schema", "table_name",
                "constraint_type", "is_deferrable", "initially_deferred", "enforced", "nulls_distinct",
            ],
            &[],
        ),
        "key_column_usage" => (
            &["constraint_catalog", "constraint_schema", "constraint_name", "table_catalog", "table_schema", "table_name", "column_name"],
            &["ordinal_position", "position_in_unique_constraint"],
        ),
        "referential_constraints" => (
            &[
                "constraint_catalog", "constraint_schema", "constraint_name", "unique_constraint_catalog",
                "unique_constraint_schema", "unique_constraint_name", "match_option", "update_rule", "delete_rule",
            ],
            &[],
        ),
        _ => (&["table_catalog", "table_schema", "table_name", "column_name", "constraint_catalog", "constraint_schema", "constraint_name"], &[]),
    }
}

type Row = (Vec<Option<String>>, Vec<Option<i32>>);

fn rows(name: &str, keys: &[NamedKey]) -> Vec<Row> {
    let s = |v: &str| Some(v.to_string());
    let mut out = Vec::new();
    for k in keys {
        let (db, schema, table, cname) = (k.database.as_str(), k.schema.as_str(), k.table.as_str(), k.name.as_str());
        match name {
            "table_constraints" => {
                let kind = if k.references.is_some() { "FOREIGN KEY" } else { "PRIMARY KEY" };
                let nulls = if k.references.is_some() { None } else { s("YES") };
                out.push((vec![s(db), s(schema), s(cname), s(db), s(schema), s(table), s(kind), s("NO"), s("NO"), s("YES"), nulls], vec![]));
            }
            "key_column_usage" => {
                for (i, c) in k.columns.iter().enumerate() {
                    let pos = i as i32 + 1;
                    let in_unique = k.references.as_ref().map(|_| pos);
                    out.push((vec![s(db), s(schema), s(cname), s(db), s(schema), s(table), s(c)], vec![Some(pos), in_unique]));
                }
            }
            "referential_constraints" => {
                if let Some((ref_schema, _, _, unique)) = &k.references {
                    let (us, un) = match unique {
                        Some(u) => (s(ref_schema), s(u)),
                        None => (None, None),
                    };
                    let uc = un.as_ref().map(|_| db.to_string());
                    out.push((vec![s(db), s(schema), s(cname), uc, us, un, s("NONE"), s("NO ACTION"), s("NO ACTION")], vec![]));
                }
            }
            _ => match &k.references {
                // A foreign key uses the referenced columns; a primary key its own.
                Some((ref_schema, ref_table, ref_cols, _)) => {
                    for c in ref_cols {
                        out.push((vec![s(db), s(ref_schema), s(ref_table), s(c), s(db), s(schema), s(cname)], vec![]));
                    }
                }
                None => {
                    for c in &k.columns {
                        out.push((vec![s(db), s(schema), s(table), s(c), s(db), s(schema), s(cname)], vec![]));
                    }
                }
            },
        }
    }
    out
}

#[async_trait]
impl TableProvider for KeyView {
    fn schema(&self) -> SchemaRef {
        let (text, ints) = columns(self.name);
        let fields: Vec<Field> = text
            .iter()
            .map(|c| Field::new(*c, DataType::Utf8, true))
            .chain(ints.iter().map(|c| Field::new(*c, DataType::Int32, true)))
            .collect();
        Arc::new(Schema::new(fields))
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let keys = self.keys.named_keys(state).await?;
        let rows = rows(self.name, &keys);
        let (text, ints) = columns(self.name);
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(text.len() + ints.len());
        for i in 0..text.len() {
            cols.push(Arc::new(rows.iter().map(|r| r.0[i].clone()).collect::<StringArray>()));
        }
        for i in 0..ints.len() {
            cols.push(Arc::new(rows.iter().map(|r| r.1[i]).collect::<Int32Array>()));
        }
        let schema = self.schema();
        let batch = RecordBatch::try_new(schema.clone(), cols)?;
        MemTable::try_new(schema, vec![vec![batch]])?.scan(state, projection, filters, limit).await
    }
}
