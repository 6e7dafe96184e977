//! A recursive query keeps every column of its CTE when DataFusion prunes unused columns.
//!
//! DataFusion 54's `optimize_projections` hands the columns the outer query reads down into both
//! terms of a recursive query, though the recursive term reads the others from the working table:
//! `WITH RECURSIVE t(n, d) AS (SELECT 1, 0 UNION ALL SELECT n + 1, d + 1 FROM t WHERE d < 5)
//! SELECT n FROM t` lost `d` from the anchor and failed ("project index 1 out of bounds"), and
//! so did `SELECT count(*)` over any recursive CTE (upstream issue #22249, fixed after 54). The
//! rule is run here with each recursive query behind a node that needs all its input's columns;
//! the terms themselves are still pruned as subqueries are. The node exists only inside this
//! rule's run, so no later rule, planner or unparser ever sees it.

use std::fmt;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNodeRecursion};
use datafusion::common::{DFSchemaRef, Result};
use datafusion::logical_expr::{Expr, Extension, LogicalPlan, UserDefinedLogicalNodeCore};
use datafusion::optimizer::optimize_projections::OptimizeProjections;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

/// DataFusion's `optimize_projections`, keeping the columns of recursive queries.
#[derive(Debug, Default)]
pub struct KeepRecursiveColumns(OptimizeProjections);

impl OptimizerRule for KeepRecursiveColumns {
    fn name(&self) -> &str {
        // The rule it stands for (EXPLAIN VERBOSE reads as DataFusion's).
        self.0.name()
    }

    fn apply_order(&self) -> Option<datafusion::optimizer::ApplyOrder> {
        self.0.apply_order()
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(&self, plan: LogicalPlan, config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        let mut recursive = false;
        plan.apply_with_subqueries(|n| {
            recursive |= matches!(n, LogicalPlan::RecursiveQuery(_));
            Ok(if recursive { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
        })?;
        if !recursive {
            return self.0.rewrite(plan, config);
        }
        let held = plan
            .transform_up_with_subqueries(|n| {
                Ok(match n {
                    LogicalPlan::RecursiveQuery(_) => {
                        Transformed::yes(LogicalPlan::Extension(Extension { node: Arc::new(AllColumns(n)) }))
                    }
                    other => Transformed::no(other),
                })
            })?
            .data;
        let pruned = self.0.rewrite(held, config)?.data;
        let released = pruned.transform_up_with_subqueries(|n| {
            Ok(match n {
                LogicalPlan::Extension(Extension { node }) => match node.as_any().downcast_ref::<AllColumns>() {
                    Some(AllColumns(inner)) => Transformed::yes(inner.clone()),
                    None => Transformed::no(LogicalPlan::Extension(Extension { node })),
                },
                other => Transformed::no(other),
            })
        })?;
        Ok(Transformed::yes(released.data))
    }
}

/// Passes its input through and needs every one of its columns.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
struct AllColumns(LogicalPlan);

impl UserDefinedLogicalNodeCore for AllColumns {
    fn name(&self) -> &str {
        "AllColumns"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.0]
    }

    fn schema(&self) -> &DFSchemaRef {
        self.0.schema()
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "AllColumns")
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, mut inputs: Vec<LogicalPlan>) -> Result<Self> {
        match inputs.pop() {
            Some(input) if inputs.is_empty() => Ok(AllColumns(input)),
            _ => datafusion::common::internal_err!("AllColumns takes one input"),
        }
    }

    fn necessary_children_exprs(&self, _output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        // Every column, whatever the output needs.
        None
    }
}
