//! An unnest above two columns of one name claims no order and no partitioning for its rows.
//!
//! DataFusion's UnnestExec carries its input's order over to its output by mapping each column
//! it passes on to the *first* output column of that name. Above a join of a table to itself
//! (`a.c_custkey` and `b.c_custkey`), an order on `b.c_custkey` was claimed for `a.c_custkey`;
//! a top-k sort by `a.c_custkey DESC, b.c_custkey` then took its input as sorted on its first
//! key and stopped early with other rows each run. Such an unnest gets a node above it that
//! passes its rows on and declares nothing about them, so every order is established by a sort
//! of its own. (Unnests over columns of distinct names keep what they declare.)

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::Result;
use datafusion::config::ConfigOptions;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, Partitioning};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::unnest::UnnestExec;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties};

/// Puts an [`OrderUnknown`] above every unnest whose input has two columns of one name.
#[derive(Debug, Default)]
pub struct UnnestOrder;

impl PhysicalOptimizerRule for UnnestOrder {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(unnest) = node.downcast_ref::<UnnestExec>() else { return Ok(Transformed::no(node)) };
            let mut seen = HashSet::new();
            if unnest.input().schema().fields().iter().all(|f| seen.insert(f.name().clone())) {
                return Ok(Transformed::no(node));
            }
            Ok(Transformed::yes(Arc::new(OrderUnknown::new(node)) as Arc<dyn ExecutionPlan>))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "lalo_unnest_order"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Passes its input's rows on; declares no order, no equal columns and no partitioning by key.
#[derive(Debug)]
pub struct OrderUnknown {
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
}

impl OrderUnknown {
    fn new(input: Arc<dyn ExecutionPlan>) -> OrderUnknown {
        let partitions = input.output_partitioning().partition_count();
        let properties = PlanProperties::new(
            EquivalenceProperties::new(input.schema()),
            Partitioning::UnknownPartitioning(partitions),
            input.pipeline_behavior(),
            input.boundedness(),
        );
        OrderUnknown { input, properties: Arc::new(properties) }
    }
}

impl DisplayAs for OrderUnknown {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "OrderUnknown")
    }
}

impl ExecutionPlan for OrderUnknown {
    fn name(&self) -> &str {
        "OrderUnknown"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        match children.into_iter().next() {
            Some(input) => Ok(Arc::new(OrderUnknown::new(input))),
            None => datafusion::common::internal_err!("OrderUnknown takes one input"),
        }
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::prelude::{SessionConfig, SessionContext};

    #[tokio::test]
    async fn an_unnest_over_a_self_join_is_sorted_on_the_copy_named() -> Result<()> {
        let mut rules = datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new().rules;
        rules.insert(0, Arc::new(UnnestOrder));
        let cfg = SessionConfig::new().with_target_partitions(2).with_batch_size(1024);
        let ctx = SessionContext::new_with_state(SessionStateBuilder::new().with_default_features().with_config(cfg).with_physical_optimizer_rules(rules).build());
        let schema = Arc::new(Schema::new(["k", "g"].map(|n| Field::new(n, DataType::Int64, false)).to_vec()));
        let keys: Vec<i64> = (0..30000).collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from(keys.clone())), Arc::new(Int64Array::from(keys.iter().map(|k| k % 25).collect::<Vec<_>>()))],
        )?;
        ctx.register_table("t", Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))?;
        // b arrives sorted on its key, descending; the order asked for is a's key first.
        let from = "FROM (SELECT * FROM t WHERE k < 100) a JOIN (SELECT * FROM t ORDER BY k DESC LIMIT 100000) b ON a.g = b.g";
        let run = |sql: String| {
            let ctx = ctx.clone();
            async move { Ok::<_, datafusion::error::DataFusionError>(pretty_format_batches(&ctx.sql(&sql).await?.collect().await?)?.to_string()) }
        };
        let sql = format!("SELECT a.k, unnest([1, 2]) AS u, b.k {from} ORDER BY a.k DESC, b.k, u LIMIT 5");
        // b's order is not a's: the top-k may not take its input as sorted on a's key and stop
        // at the first row of a lower one (it did, at a scale where batches end mid-key).
        let planned = run(format!("EXPLAIN {sql}")).await?;
        assert!(!planned.contains("sort_prefix"), "{planned}");
        let got = run(sql).await?;
        // The same order on expressions, which no plan can take as given.
        let want = run(format!("SELECT a.k, unnest([1, 2]) AS u, b.k {from} ORDER BY a.k + 0 DESC, b.k + 0, u LIMIT 5")).await?;
        assert_eq!(got, want);
        Ok(())
    }
}
