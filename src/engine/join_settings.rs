//! Session defaults for the local engine's hash joins: how a join is built on few cores, and when
//! its build side's keys are held in an array instead of a hash table. `[engine] datafusion`
//! overrides either: the first runs before the configured options, the second after them and
//! not at all where they set its bound.

use datafusion::prelude::SessionConfig;

/// The option [`array_keys`] raises.
const ARRAY_OPTION: &str = "datafusion.execution.perfect_hash_join_small_build_threshold";

/// On a machine with few cores, a hash join whose build side takes up to 32 MB (4 M rows) is
/// built once and shared by every partition of its probe side (DataFusion's CollectLeft) instead
/// of both sides being repartitioned by key to build in parallel: with two cores the shuffle of
/// the probe side and the per-row routing of the join's filter cost more than the parallel build
/// saves (TPC-H SF1 on 2 cores: lalo/DuckDB 2.96 -> 2.30-2.53, Q17 0.22 -> 0.09 s, Q10 0.18 ->
/// 0.10 s). DataFusion's own thresholds (1 MB, 128 K rows) stay where there are more cores to
/// build with, and `[engine] datafusion` overrides either.
pub(super) fn few_core_joins(config: &mut SessionConfig) {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    if cores <= 4 {
        let optimizer = &mut config.options_mut().optimizer;
        optimizer.hash_join_single_partition_threshold = 32 << 20;
        optimizer.hash_join_single_partition_threshold_rows = 4_000_000;
    }
}

/// What the key arrays of one join (DataFusion's ArrayMap) take together at most, whatever the
/// density of the build side's keys in their range. A join on one integer key whose build side
/// spans few enough values looks each probe row up by its offset in the range, both in the join
/// and in the join's filter that its probe side's scan applies: no hash, no hash table, no
/// comparison of keys. DataFusion's own rule takes the array only when the build side's rows
/// number more than 15 % of the values in their key range, or the range is under 1 024 values; a
/// few hundred parts or suppliers picked by a WHERE out of a key range of 10 000 to 200 000 fall
/// outside both and were hashed, the probe side's scan computing a hash and probing a table for
/// every row of a large table (in TPC-H Q07 and Q17 on SF1, a third to two fifths of the
/// statement's CPU). A join split by key builds one array per partition, each spanning about the
/// whole range, so the budget is divided among the partitions: 1 M slots of `u32` (4 MB) on 2. A
/// join built once for all partitions (the usual one on few cores) takes one such array. Wider
/// ranges keep the density rule.
const ARRAY_BYTES_PER_JOIN: usize = 8 << 20;

/// After the configured options: the partitions they set size the array; a bound they set stays.
pub(super) fn array_keys(config: &mut SessionConfig, options: &[(String, String)]) {
    if options.iter().any(|(key, _)| key == ARRAY_OPTION) {
        return;
    }
    let slots = ARRAY_BYTES_PER_JOIN / std::mem::size_of::<u32>() / config.target_partitions().max(1);
    let execution = &mut config.options_mut().execution;
    execution.perfect_hash_join_small_build_threshold = execution.perfect_hash_join_small_build_threshold.max(slots);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Array, Int64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::error::Result;
    use datafusion::prelude::{SessionConfig, SessionContext};

    /// `b(k, v)`: seven build rows whose keys (a NULL, a duplicate, negatives) span 900 000 values,
    /// far too sparse for DataFusion's density rule; `p(k, w)`: 20 000 probe rows, some NULL.
    fn context(array_keys: bool) -> Result<SessionContext> {
        let mut cfg = SessionConfig::new().with_target_partitions(2);
        // One shared build side, as on a machine of few cores: the array needs its key range.
        cfg.options_mut().optimizer.hash_join_single_partition_threshold = 32 << 20;
        cfg.options_mut().optimizer.hash_join_single_partition_threshold_rows = 4_000_000;
        if array_keys {
            super::array_keys(&mut cfg, &[]);
        }
        let ctx = SessionContext::new_with_config(cfg);
        let schema = |v: &str| Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true), Field::new(v, DataType::Int64, false)]));
        let keys = Int64Array::from(vec![Some(-400_000), Some(-3), Some(7), Some(7), None, Some(250_000), Some(499_999)]);
        let b = RecordBatch::try_new(schema("v"), vec![Arc::new(keys), Arc::new(Int64Array::from((1..=7).collect::<Vec<i64>>()))])?;
        let built = [-400_000, -3, 7, 250_000, 499_999];
        let spread = |i: i64| (i * 7919) % 1_000_003 - 500_000;
        let mut probe: Vec<Option<i64>> = (0..20_000i64).map(|i| Some(spread(i)).filter(|k| i % 101 != 0 && !built.contains(k))).collect();
        // Each built key but 250 000 once, and one key just past the range.
        probe.extend([Some(-400_000), Some(-3), Some(7), Some(499_999), Some(500_000)]);
        let n = probe.len() as i64;
        let p = RecordBatch::try_new(schema("w"), vec![Arc::new(Int64Array::from(probe)), Arc::new(Int64Array::from((0..n).collect::<Vec<i64>>()))])?;
        ctx.register_table("b", Arc::new(MemTable::try_new(b.schema(), vec![vec![b]])?))?;
        let half = p.num_rows() / 2;
        ctx.register_table("p", Arc::new(MemTable::try_new(p.schema(), vec![vec![p.slice(0, half)], vec![p.slice(half, p.num_rows() - half)]])?))?;
        Ok(ctx)
    }

    async fn answer(ctx: &SessionContext, sql: &str) -> Result<String> {
        Ok(pretty_format_batches(&ctx.sql(sql).await?.collect().await?)?.to_string())
    }

    #[tokio::test]
    async fn joins_on_sparse_integer_keys_answer_alike_through_the_array() -> Result<()> {
        let statements = [
            "SELECT count(*), sum(b.v), sum(p.w) FROM b JOIN p ON b.k = p.k",
            "SELECT count(*), sum(p.w) FROM p WHERE p.k IN (SELECT k FROM b)",
            "SELECT count(*), sum(p.w) FROM p WHERE NOT EXISTS (SELECT 1 FROM b WHERE b.k = p.k)",
            "SELECT count(*), count(p.w), sum(b.v) FROM b LEFT JOIN p ON b.k = p.k",
            "SELECT b.k, b.v, p.w FROM b JOIN p ON b.k = p.k ORDER BY b.v, p.w",
            "SELECT count(*), count(b.v), count(p.w) FROM b FULL JOIN p ON b.k = p.k",
            "SELECT count(*), count(b.v), sum(p.w) FROM b RIGHT JOIN p ON b.k = p.k",
            "SELECT count(*), sum(p.w) FROM b JOIN p ON b.k = p.k AND p.w > b.v * 2000",
            "SELECT count(*) FROM p WHERE p.k NOT IN (SELECT k FROM b WHERE k IS NOT NULL)",
            "SELECT count(*) FROM b JOIN p ON b.k IS NOT DISTINCT FROM p.k",
            "SELECT count(*) FROM b JOIN p ON CAST(b.k AS INT) = CAST(p.k AS INT)",
        ];
        let (hashed, arrayed) = (context(false)?, context(true)?);
        for sql in statements {
            assert_eq!(answer(&arrayed, sql).await?, answer(&hashed, sql).await?, "{sql}");
        }
        // The duplicate 7 meets its one probe row twice; NULL meets nothing.
        let rows = arrayed.sql(statements[4]).await?.collect().await?;
        let n: usize = rows.iter().map(|r| r.num_rows()).sum();
        assert_eq!(n, 5, "{}", pretty_format_batches(&rows)?);
        let v: Vec<i64> = rows.iter().flat_map(|r| r.column(1).as_any().downcast_ref::<Int64Array>().map(|a| a.values().to_vec()).unwrap_or_default()).collect();
        assert_eq!(v, vec![1, 2, 3, 4, 7]);
        // The join above took the array: the test covers the path the setting opens.
        let explain = answer(&arrayed, &format!("EXPLAIN ANALYZE {}", statements[0])).await?;
        assert!(explain.contains("array_map_created_count=1"), "{explain}");
        let explain = answer(&hashed, &format!("EXPLAIN ANALYZE {}", statements[0])).await?;
        assert!(explain.contains("array_map_created_count=0"), "{explain}");
        Ok(())
    }

    #[test]
    fn a_bound_set_in_the_options_stays() {
        let option = (super::ARRAY_OPTION.to_string(), "0".to_string());
        let mut cfg = SessionConfig::new().with_target_partitions(2);
        cfg.options_mut().execution.perfect_hash_join_small_build_threshold = 0;
        super::array_keys(&mut cfg, &[option]);
        assert_eq!(cfg.options().execution.perfect_hash_join_small_build_threshold, 0);
        // Otherwise the budget is shared by the partitions.
        let mut cfg = SessionConfig::new().with_target_partitions(16);
        super::array_keys(&mut cfg, &[]);
        assert_eq!(cfg.options().execution.perfect_hash_join_small_build_threshold, (8 << 20) / 4 / 16);
    }
}
