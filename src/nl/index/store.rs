//! The lancedb table holding the documents under `<data_dir>/retrieval`: one row per document
//! with its names, text, content hash and vectors; a full-text index on the text; writes by id
//! (delete + add of what changed) and the two searches retrieval fuses.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Array, FixedSizeListArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Float32Type, Schema, SchemaRef};
use futures::TryStreamExt;
use lancedb::index::scalar::{FtsIndexBuilder, FullTextSearchQuery};
use lancedb::index::Index;
use lancedb::query::{ExecutableQuery, QueryBase, Select};
use lancedb::{DistanceType, Table};

use crate::nl::index::documents::{Doc, Kind};
use crate::nl::index::embed::LOCAL_DIM;
use crate::nl::index::IndexError;

/// The columns a search returns (no vectors: they are large and not needed after ranking).
const OUT: [&str; 8] = ["id", "kind", "database", "schema_name", "table_name", "column_name", "detail", "text"];
/// The searches' columns: the documents' plus the score lance computes anyway (naming it keeps
/// lance from warning that it will stop adding it by itself).
fn selected(score: &str) -> Select {
    Select::Columns(OUT.iter().map(|s| s.to_string()).chain([score.to_string()]).collect())
}

/// Ids per delete predicate.
const DELETE_CHUNK: usize = 500;

/// The documents table.
#[derive(Clone)]
pub struct Store {
    table: Table,
    schema: SchemaRef,
    remote_dim: Option<usize>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("remote_dim", &self.remote_dim).finish_non_exhaustive()
    }
}

fn vector_field(name: &str, dim: usize) -> Field {
    Field::new(name, DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, true)), dim as i32), false)
}

fn schema(remote_dim: Option<usize>) -> SchemaRef {
    let text = |n: &str| Field::new(n, DataType::Utf8, false);
    let mut fields = vec![
        text("id"),
        text("kind"),
        text("database"),
        text("schema_name"),
        text("table_name"),
        text("column_name"),
        text("detail"),
        text("text"),
        text("hash"),
        vector_field("vector", LOCAL_DIM),
    ];
    if let Some(d) = remote_dim {
        fields.push(vector_field("remote", d));
    }
    Arc::new(Schema::new(fields))
}

/// A string literal for a lancedb filter.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl Store {
    /// Open the table `name` in `dir`, creating it (or re-creating it when its columns are not
    /// these, e.g. after the embeddings model changed its dimension).
    pub async fn open(dir: &Path, name: &str, remote_dim: Option<usize>) -> Result<Store, IndexError> {
        std::fs::create_dir_all(dir).map_err(|e| IndexError::Io(format!("{}: {e}", dir.display())))?;
        let uri = dir.to_string_lossy().to_string();
        let db = lancedb::connect(&uri).execute().await?;
        let want = schema(remote_dim);
        let names = db.table_names().execute().await?;
        if names.iter().any(|n| n == name) {
            match db.open_table(name).execute().await {
                Ok(table) if table.schema().await.is_ok_and(|s| same_columns(&s, &want)) => {
                    return Ok(Store { table, schema: want, remote_dim });
                }
                _ => {
                    tracing::info!(table = name, "retrieval index: re-creating the documents table");
                    db.drop_table(name, &[]).await?;
                }
            }
        }
        let table = db.create_empty_table(name, want.clone()).execute().await?;
        Ok(Store { table, schema: want, remote_dim })
    }

    pub fn remote_dim(&self) -> Option<usize> {
        self.remote_dim
    }

    /// id → content hash of every stored document.
    pub async fn hashes(&self) -> Result<HashMap<String, String>, IndexError> {
        let batches: Vec<RecordBatch> = self
            .table
            .query()
            .select(Select::Columns(vec!["id".into(), "hash".into()]))
            .execute()
            .await?
            .try_collect()
            .await?;
        let mut out = HashMap::new();
        for b in &batches {
            let (ids, hashes) = (strings(b, "id")?, strings(b, "hash")?);
            for i in 0..b.num_rows() {
                out.insert(ids.value(i).to_string(), hashes.value(i).to_string());
            }
        }
        Ok(out)
    }

    /// Remove documents by id (ids are hex digests: safe inside the predicate).
    pub async fn delete(&self, ids: &[String]) -> Result<(), IndexError> {
        for chunk in ids.chunks(DELETE_CHUNK) {
            let list: Vec<String> = chunk.iter().map(|i| literal(i)).collect();
            let predicate = format!("id IN ({})", list.join(", "));
            self.table.delete(predicate.as_str()).await?;
        }
        Ok(())
    }

    /// Append documents with their vectors (`remote` when the table has that column).
    pub async fn add(&self, docs: &[&Doc], local: Vec<Vec<f32>>, remote: Option<Vec<Vec<f32>>>) -> Result<(), IndexError> {
        if docs.is_empty() {
            return Ok(());
        }
        let col = |f: fn(&Doc) -> &str| Arc::new(StringArray::from_iter_values(docs.iter().map(|d| f(d)))) as Arc<dyn Array>;
        let vectors = |v: Vec<Vec<f32>>, dim: usize| {
            Arc::new(FixedSizeListArray::from_iter_primitive::<Float32Type, _, _>(
                v.into_iter().map(|x| Some(x.into_iter().map(Some))),
                dim as i32,
            )) as Arc<dyn Array>
        };
        let mut columns = vec![
            col(|d| &d.id),
            col(|d| d.kind.as_str()),
            col(|d| &d.database),
            col(|d| &d.schema),
            col(|d| &d.table),
            col(|d| &d.column),
            col(|d| &d.detail),
            col(|d| &d.text),
            col(|d| &d.hash),
            vectors(local, LOCAL_DIM),
        ];
        match (self.remote_dim, remote) {
            (Some(dim), Some(r)) => columns.push(vectors(r, dim)),
            (None, _) => {}
            (Some(_), None) => return Err(IndexError::Embedding("remote vectors missing".into())),
        }
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        self.table.add(batch).execute().await?;
        Ok(())
    }

    /// (Re)build the full-text index over `text` (cheap at catalog sizes; keeps every row indexed).
    pub async fn index_text(&self) -> Result<(), IndexError> {
        if self.table.count_rows(None).await? == 0 {
            return Ok(());
        }
        self.table.create_index(&["text"], Index::FTS(FtsIndexBuilder::default())).replace(true).execute().await?;
        Ok(())
    }

    pub async fn count(&self) -> Result<usize, IndexError> {
        Ok(self.table.count_rows(None).await?)
    }

    /// Full-text hits for `query` among rows matching `filter`, best first.
    pub async fn full_text(&self, query: &str, filter: &str, limit: usize) -> Result<Vec<Doc>, IndexError> {
        let fts = FullTextSearchQuery::new(query.to_string())
            .with_column("text".into())
            .map_err(|e| IndexError::Corrupt(e.to_string()))?;
        let batches: Vec<RecordBatch> = self
            .table
            .query()
            .full_text_search(fts)
            .only_if(filter)
            .select(selected("_score"))
            .limit(limit)
            .execute()
            .await?
            .try_collect()
            .await?;
        read_docs(&batches)
    }

    /// Nearest neighbours of `vector` in `column` ("vector" or "remote") by cosine distance.
    pub async fn nearest(&self, column: &str, vector: &[f32], filter: &str, limit: usize) -> Result<Vec<Doc>, IndexError> {
        let batches: Vec<RecordBatch> = self
            .table
            .query()
            .nearest_to(vector)?
            .column(column)
            .distance_type(DistanceType::Cosine)
            .only_if(filter)
            .select(selected("_distance"))
            .limit(limit)
            .execute()
            .await?
            .try_collect()
            .await?;
        read_docs(&batches)
    }
}

/// Same column names and types (storage may change nullability or metadata).
fn same_columns(a: &Schema, b: &Schema) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields().iter().zip(b.fields()).all(|(x, y)| x.name() == y.name() && x.data_type().equals_datatype(y.data_type()))
}

fn strings<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a StringArray, IndexError> {
    b.column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| IndexError::Corrupt(format!("column {name} missing or not text")))
}

/// Rows back into documents, in result order.
fn read_docs(batches: &[RecordBatch]) -> Result<Vec<Doc>, IndexError> {
    let mut out = vec![];
    for b in batches {
        let cols: Vec<&StringArray> = OUT.iter().map(|n| strings(b, n)).collect::<Result<_, _>>()?;
        for i in 0..b.num_rows() {
            let Some(kind) = Kind::parse(cols[1].value(i)) else { continue };
            out.push(Doc {
                id: cols[0].value(i).to_string(),
                kind,
                database: cols[2].value(i).to_string(),
                schema: cols[3].value(i).to_string(),
                table: cols[4].value(i).to_string(),
                column: cols[5].value(i).to_string(),
                detail: cols[6].value(i).to_string(),
                text: cols[7].value(i).to_string(),
                hash: String::new(),
            });
        }
    }
    Ok(out)
}
