//! `[catalog] memory_cache_mb`: embedded file tables held in memory as Arrow batches, so a
//! statement over them skips reading and decoding Parquet or CSV pages. Tables are loaded once
//! at start, smallest first, until the budget is spent; a table that does not fit keeps reading
//! its files. The cached table has the file table's schema, so plans, governance (row filters,
//! masks, access) and the catalog see the same table; only the scan underneath changes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{CatalogProvider, MemTable};
use datafusion::prelude::SessionContext;

use crate::error::LaloError;

/// One file table registered in the embedded database.
pub struct FileTable {
    pub schema: String,
    pub name: String,
    pub path: PathBuf,
}

/// What [`load`] held in memory and what it left on files.
#[derive(Debug, Default)]
pub struct Loaded {
    pub tables: Vec<(String, u64)>,
    pub skipped: Vec<String>,
    pub bytes: u64,
}

/// The bytes a table will take in memory, estimated before reading it: a Parquet file's
/// uncompressed row-group sizes (from its footer), a CSV file's length.
fn estimate(path: &Path) -> u64 {
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    let file_len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(u64::MAX);
    if path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
        return file_len;
    }
    std::fs::File::open(path)
        .ok()
        .and_then(|f| SerializedFileReader::new(f).ok())
        .map(|r| r.metadata().row_groups().iter().map(|g| g.total_byte_size().max(0) as u64).sum())
        .unwrap_or(file_len)
}

/// Deal `batches` to `n` partitions in contiguous runs of about equal rows, so each partition
/// keeps the file's row order (a file written sorted stays sorted within each).
fn partition(batches: Vec<RecordBatch>, n: usize) -> Vec<Vec<RecordBatch>> {
    let n = n.max(1);
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    let per = total.div_ceil(n).max(1);
    let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); n];
    let mut rows = 0usize;
    for b in batches {
        let at = (rows / per).min(n - 1);
        rows += b.num_rows();
        parts[at].push(b);
    }
    parts
}

/// Replace each of `tables` (registered in `catalog` through `ctx`) by an in-memory copy while
/// the budget lasts. `partitions`: how many partitions each copy is scanned as.
pub async fn load(
    ctx: &SessionContext,
    catalog: &Arc<dyn CatalogProvider>,
    db: &str,
    tables: &[FileTable],
    budget: u64,
    partitions: usize,
) -> Result<Loaded, LaloError> {
    let mut sized: Vec<(u64, &FileTable)> = tables.iter().map(|t| (estimate(&t.path), t)).collect();
    // Smallest first: the budget holds as many tables as it can, and the join partners of a
    // large fact table (dimensions) are the small ones.
    sized.sort_by_key(|(size, _)| *size);
    let mut loaded = Loaded::default();
    for (estimated, t) in sized {
        let qualified = format!("{db}.{}.{}", t.schema, t.name);
        if loaded.bytes.saturating_add(estimated) > budget {
            loaded.skipped.push(qualified);
            continue;
        }
        let began = Instant::now();
        let provider = ctx.table_provider(qualified.as_str()).await?;
        let schema = provider.schema();
        let batches = ctx.table(qualified.as_str()).await?.collect().await?;
        let bytes: u64 = batches.iter().map(|b| b.get_array_memory_size() as u64).sum();
        if loaded.bytes.saturating_add(bytes) > budget {
            loaded.skipped.push(qualified);
            continue;
        }
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let parts = partition(batches, partitions);
        let table = Arc::new(MemTable::try_new(schema.clone(), parts.clone())?);
        // Statistics only steer plans: a table whose columns cannot be summarized is held all
        // the same, with DataFusion's row and null counts.
        let columns = super::table_stats::compute(ctx, table.clone()).await.unwrap_or_else(|e| {
            tracing::warn!(table = %qualified, error = %e, "column statistics not computed");
            schema.fields().iter().map(|_| datafusion::common::ColumnStatistics::new_unknown()).collect()
        });
        let stats = super::table_stats::whole(&parts, &schema, columns);
        let Some(holder) = catalog.schema(&t.schema) else {
            return Err(LaloError::Internal(format!("schema {} vanished while caching {qualified}", t.schema)));
        };
        holder.deregister_table(&t.name)?;
        holder.register_table(t.name.clone(), Arc::new(super::memory_scan::CachedTable::new(table, stats)))?;
        tracing::info!(table = %qualified, rows, bytes, ms = began.elapsed().as_millis() as u64, "table held in memory");
        loaded.bytes += bytes;
        loaded.tables.push((qualified, bytes));
    }
    for t in &loaded.skipped {
        tracing::info!(table = %t, budget, "table left on its files: memory_cache_mb is spent");
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    fn batch(from: i64, n: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(from..from + n))]).unwrap()
    }

    #[test]
    fn partitions_keep_row_order_and_balance() {
        let batches: Vec<RecordBatch> = (0..10).map(|i| batch(i * 100, 100)).collect();
        let parts = partition(batches, 2);
        let firsts: Vec<Vec<i64>> = parts
            .iter()
            .map(|p| p.iter().map(|b| b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0)).collect())
            .collect();
        assert_eq!(firsts, vec![vec![0, 100, 200, 300, 400], vec![500, 600, 700, 800, 900]]);
        assert_eq!(partition(vec![batch(0, 5)], 4).iter().filter(|p| !p.is_empty()).count(), 1);
    }
}
