//! An optimizer rule that shapes plans over upstream tables so DataFusion's unparser turns them
//! into SQL PostgreSQL accepts.
//!
//! DataFusion 54's unparser renders a column-only Projection directly beneath an Aggregate as a
//! derived table (`FROM (SELECT a.name ...) AS derived_projection`) while the outer query still
//! names `a.name`, which PostgreSQL rejects ("missing FROM-clause entry"). Such a projection
//! only prunes columns, so over upstream tables lalo removes it before federation cuts the plan.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::Result;
use datafusion::logical_expr::{Aggregate, Expr, LogicalPlan};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

#[derive(Debug, Default)]
pub struct UnparseFriendly;

fn reads_upstream(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            if matches!(datafusion_federation::get_table_source(&scan.source), Ok(Some(_))) {
                found = true;
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

impl OptimizerRule for UnparseFriendly {
    fn name(&self) -> &str {
        "lalo_unparse_friendly"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        if !reads_upstream(&plan) {
            return Ok(Transformed::no(plan));
        }
        plan.transform_up(|node| {
            let LogicalPlan::Aggregate(agg) = &node else { return Ok(Transformed::no(node)) };
            let LogicalPlan::Projection(proj) = agg.input.as_ref() else { return Ok(Transformed::no(node)) };
            if !proj.expr.iter().all(|e| matches!(e, Expr::Column(_))) || !reads_upstream(&proj.input) {
                return Ok(Transformed::no(node));
            }
            let rebuilt = Aggregate::try_new(Arc::clone(&proj.input), agg.group_expr.clone(), agg.aggr_expr.clone())?;
            if rebuilt.schema.as_ref() != agg.schema.as_ref() {
                return Ok(Transformed::no(node));
            }
            Ok(Transformed::yes(LogicalPlan::Aggregate(rebuilt)))
        })
    }
}
