//! Join keys are put in the order of a grouping's keys, never the other way round, where a
//! grouping has two keys of one name.
//!
//! DataFusion's EnforceDistribution, in its default top-down mode, reorders the keys of a
//! grouping to the order a partitioned join above it wants, and then rebuilds the grouping's
//! output with `Schema::index_of(name)`, the first column of that name. A grouping by
//! `l1.l_suppkey, l2.l_suppkey` (two copies of one table) came out as
//! `[l_suppkey@0 as k1, l_suppkey@0 as k2]`: every group with k1 = k2, and a join of that
//! grouping to itself on the swapped keys answered 199 001 matches instead of 195 379. For a plan
//! holding such a grouping, the rule runs bottom-up instead (`top_down_join_key_reordering =
//! false`): the join's keys are ordered after its inputs, and no grouping is rebuilt.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::common::tree_node::TreeNode;
use datafusion::common::Result;
use datafusion::config::ConfigOptions;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion::physical_plan::ExecutionPlan;

/// Runs DataFusion's EnforceDistribution bottom-up for plans with a grouping of two keys of one
/// name, as it is configured for every other plan.
#[derive(Debug)]
pub struct KeyOrderSafe(pub Arc<dyn PhysicalOptimizerRule + Send + Sync>);

/// Whether some grouping in the plan has two output columns of one name.
fn repeated_group_names(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.exists(|node| {
        let Some(aggr) = node.downcast_ref::<AggregateExec>() else { return Ok(false) };
        let mut seen = HashSet::new();
        Ok(aggr.schema().fields().iter().any(|f| !seen.insert(f.name().clone())))
    })
    .unwrap_or(true)
}

impl PhysicalOptimizerRule for KeyOrderSafe {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        if !config.optimizer.top_down_join_key_reordering || !repeated_group_names(&plan) {
            return self.0.optimize(plan, config);
        }
        let mut bottom_up = config.clone();
        bottom_up.optimizer.top_down_join_key_reordering = false;
        self.0.optimize(plan, &bottom_up)
    }

    fn name(&self) -> &str {
        self.0.name()
    }

    fn schema_check(&self) -> bool {
        self.0.schema_check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::datasource::MemTable;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::prelude::{SessionConfig, SessionContext};

    /// `l(o, n, s)`: 500 orders of 4 lines, each line from one of 23 suppliers; joins always
    /// partitioned (no side is small enough to be collected).
    fn context(wrapped: bool, top_down: bool) -> Result<SessionContext> {
        let mut cfg = SessionConfig::new().with_target_partitions(2);
        let o = &mut cfg.options_mut().optimizer;
        o.hash_join_single_partition_threshold = 0;
        o.hash_join_single_partition_threshold_rows = 0;
        o.top_down_join_key_reordering = top_down;
        let mut rules = datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new().rules;
        for r in rules.iter_mut().filter(|r| wrapped && r.name() == "EnforceDistribution") {
            *r = Arc::new(KeyOrderSafe(r.clone()));
        }
        let ctx = SessionContext::new_with_state(SessionStateBuilder::new().with_default_features().with_config(cfg).with_physical_optimizer_rules(rules).build());
        let schema = Arc::new(Schema::new(["o", "n", "s"].map(|n| Field::new(n, DataType::Int64, false)).to_vec()));
        let rows: Vec<i64> = (0..2000).collect();
        let col = |f: &dyn Fn(i64) -> i64| Arc::new(Int64Array::from(rows.iter().map(|&i| f(i)).collect::<Vec<_>>())) as _;
        let batch = RecordBatch::try_new(schema.clone(), vec![col(&|i| i / 4), col(&|i| i % 4), col(&|i| (i * i * 7 + i * 3) % 23)])?;
        ctx.register_table("l", Arc::new(MemTable::try_new(schema, vec![vec![batch.slice(0, 1000)], vec![batch.slice(1000, 1000)]])?))?;
        Ok(ctx)
    }

    #[tokio::test]
    async fn a_grouping_by_two_copies_keys_keeps_both_under_a_join_on_them_swapped() -> Result<()> {
        let sql = "WITH g AS (SELECT l1.s AS k1, l2.s AS k2 FROM l l1 JOIN l l2 ON l2.o = l1.o AND l2.n = l1.n + 1 GROUP BY l1.s, l2.s) \
                   SELECT count(*), count(*) FILTER (WHERE ga.k1 = ga.k2) FROM g ga JOIN g gb ON gb.k1 = ga.k2 AND gb.k2 = ga.k1";
        let run = |ctx: SessionContext| async move {
            let out = ctx.sql(sql).await?.collect().await?;
            let cell = |c: usize| out[0].column(c).as_any().downcast_ref::<Int64Array>().map(|a| a.value(0));
            Ok::<_, datafusion::error::DataFusionError>((cell(0), cell(1)))
        };
        // 23 pairs of suppliers on consecutive lines, each also found the other way round; one
        // of them a supplier with itself.
        assert_eq!(run(context(false, false)?).await?, (Some(23), Some(1)));
        assert_eq!(run(context(true, true)?).await?, (Some(23), Some(1)));
        Ok(())
    }
}
