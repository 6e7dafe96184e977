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
//!
//! The same boundary keeps governance's security barrier (governance/barrier.rs) a barrier in
//! the physical plan: DataFusion's physical filter pushdown inlines a projection's expressions
//! into the filters above it whatever their volatility, and the two filters then merge into one
//! `user_predicate AND row_filter`, evaluated on every row, so a failing predicate (a division
//! by zero) ran on a row the filter hides and revealed it by its error. A boundary above each
//! projection that calls `lalo_row_barrier` keeps the caller's predicates above it.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::Result;
use datafusion::config::ConfigOptions;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_expr::ScalarFunctionExpr;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion_federation::sql::VirtualExecutionPlan;

/// Passes its input through; accepts no filter pushed from above.
#[derive(Debug)]
pub struct Boundary {
    input: Arc<dyn ExecutionPlan>,
    /// What it stands above: `UpstreamBoundary` or `RowFilterBarrier`.
    label: &'static str,
}

impl DisplayAs for Boundary {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}", self.label)
    }
}

impl ExecutionPlan for Boundary {
    fn name(&self) -> &str {
        self.label
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    // No repartitioning under it: above an upstream's part sits federation's schema cast, which
    // turns the upstream's column types into the plan's (PostgreSQL's `sum(bigint)` is numeric
    // where the plan says bigint); a repartition between them coalesced batches of the wrong
    // type and panicked.
    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        match children.into_iter().next() {
            Some(input) => Ok(Arc::new(Boundary { input, label: self.label })),
            None => datafusion::common::internal_err!("UpstreamBoundary takes one input"),
        }
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }
}

/// Whether a physical projection passes a row-filtered table's columns through governance's
/// barrier function.
fn is_row_barrier(node: &Arc<dyn ExecutionPlan>) -> bool {
    let Some(p) = node.downcast_ref::<ProjectionExec>() else { return false };
    p.expr().iter().any(|pe| pe.expr.downcast_ref::<ScalarFunctionExpr>().is_some_and(|f| f.name() == "lalo_row_barrier"))
}

/// Puts a [`Boundary`] above every upstream part of a physical plan and above every row-filter
/// barrier.
#[derive(Debug, Default)]
pub struct Boundaries;

impl PhysicalOptimizerRule for Boundaries {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if node.is::<VirtualExecutionPlan>() {
                return Ok(Transformed::yes(Arc::new(Boundary { input: node, label: "UpstreamBoundary" }) as Arc<dyn ExecutionPlan>));
            }
            if is_row_barrier(&node) {
                return Ok(Transformed::yes(Arc::new(Boundary { input: node, label: "RowFilterBarrier" }) as Arc<dyn ExecutionPlan>));
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
