//! Tests of the top-k grouping: answers equal to grouping everything, and the limit still kept
//! where the order is the grouping's own.

use super::*;
use datafusion::arrow::array::Int64Array;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::datasource::MemTable;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

/// `t(k, v)`: keys 0..1000 four times each, `v = k * 3 % 1000`, dealt to two partitions.
fn context(top_k: bool) -> Result<SessionContext> {
    let mut cfg = SessionConfig::new().with_target_partitions(2).with_batch_size(512);
    cfg.options_mut().optimizer.enable_topk_aggregation = top_k;
    let mut rules = datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new().rules;
    for r in rules.iter_mut().filter(|r| r.name() == "LimitAggregation") {
        *r = Arc::new(TopKGroups);
    }
    let ctx = SessionContext::new_with_state(SessionStateBuilder::new().with_default_features().with_config(cfg).with_physical_optimizer_rules(rules).build());
    let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false), Field::new("v", DataType::Int64, false)]));
    let part = |from: i64| -> Result<Vec<RecordBatch>> {
        let keys: Vec<i64> = (from..from + 2000).map(|i| i % 1000).collect();
        let vals: Vec<i64> = keys.iter().map(|k| k * 3 % 1000).collect();
        Ok(vec![RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(keys)), Arc::new(Int64Array::from(vals))])?])
    };
    ctx.register_table("t", Arc::new(MemTable::try_new(schema.clone(), vec![part(0)?, part(7)?])?))?;
    Ok(ctx)
}

async fn answer(ctx: &SessionContext, sql: &str) -> Result<String> {
    Ok(pretty_format_batches(&ctx.sql(sql).await?.collect().await?)?.to_string())
}

async fn plan(ctx: &SessionContext, sql: &str) -> Result<String> {
    answer(ctx, &format!("EXPLAIN {sql}")).await
}

#[tokio::test]
async fn a_column_computed_under_the_key_name_is_sorted_after_grouping() -> Result<()> {
    let (with, without) = (context(true)?, context(false)?);
    for sql in [
        // The five lowest negations are those of the five highest keys.
        "SELECT -k AS k FROM (SELECT DISTINCT k FROM t) s ORDER BY k LIMIT 5",
        "SELECT 2000 - k AS k FROM (SELECT DISTINCT k FROM t) s ORDER BY k DESC LIMIT 3",
        "SELECT k % 7 AS k FROM t GROUP BY k ORDER BY 1 LIMIT 5",
        // Names swapped on the way: c is the negation, b the key.
        "SELECT b AS c, a AS b FROM (SELECT a, -a AS b FROM (SELECT DISTINCT k AS a FROM t) x) y ORDER BY c LIMIT 5",
    ] {
        assert_eq!(answer(&with, sql).await?, answer(&without, sql).await?, "{sql}\n{}", plan(&with, sql).await?);
    }
    Ok(())
}

#[tokio::test]
async fn the_grouping_keeps_its_first_groups_when_sorted_by_its_own_key() -> Result<()> {
    let (with, without) = (context(true)?, context(false)?);
    for sql in [
        "SELECT k FROM t GROUP BY k ORDER BY k DESC LIMIT 5",
        "SELECT DISTINCT k AS key FROM t ORDER BY key LIMIT 5",
        "SELECT k, max(v) AS m FROM t GROUP BY k ORDER BY m DESC LIMIT 3",
    ] {
        assert_eq!(answer(&with, sql).await?, answer(&without, sql).await?, "{sql}");
        let planned = plan(&with, sql).await?;
        assert!(planned.contains("lim=["), "no limit on the grouping of {sql}:\n{planned}");
    }
    Ok(())
}
