//! Conditions never vanish into an upstream's part of a plan.
//!
//! datafusion-federation's `VirtualExecutionPlan` answers DataFusion's physical filter pushdown
//! with "pushed down" for every filter offered to it, and its SQL executor then ignores them:
//! a FilterExec that DataFusion keeps above an upstream's part (a statement joining an upstream
//! table with an embedded one, say, or a row filter whose subquery reads another source) was
//! removed and its condition never applied. lalo puts a boundary above each such node before
//! filter pushdown runs; the boundary takes no filters (the default of `ExecutionPlan`), so each
//! condition stays where DataFusion evaluates it. Upstream SQL is unchanged: what the upstream
//! should evaluate is already in the statement federation wrote.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::Result;
use datafusion::config::ConfigOptions;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion_federation::sql::VirtualExecutionPlan;

/// Passes its input through; accepts no filter pushed from above.
#[derive(Debug)]
pub struct Boundary {
    input: Arc<dyn ExecutionPlan>,
}

impl DisplayAs for Boundary {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "UpstreamBoundary")
    }
}

impl ExecutionPlan for Boundary {
    fn name(&self) -> &str {
        "UpstreamBoundary"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        match children.into_iter().next() {
            Some(input) => Ok(Arc::new(Boundary { input })),
            None => datafusion::common::internal_err!("UpstreamBoundary takes one input"),
        }
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }
}

/// Puts a [`Boundary`] above every upstream part of a physical plan.
#[derive(Debug, Default)]
pub struct Boundaries;

impl PhysicalOptimizerRule for Boundaries {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if node.is::<VirtualExecutionPlan>() {
                return Ok(Transformed::yes(Arc::new(Boundary { input: node }) as Arc<dyn ExecutionPlan>));
            }
            Ok(Transformed::no(node))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "lalo_upstream_boundaries"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
