//! An optimizer rule that shapes plans over upstream tables so DataFusion's unparser turns them
//! into SQL PostgreSQL accepts.
//!
//! DataFusion 54's unparser renders a column-only Projection directly beneath an Aggregate as a
//! derived table (`FROM (SELECT a.name ...) AS derived_projection`) while the outer query still
//! names `a.name`, which PostgreSQL rejects ("missing FROM-clause entry"). Such a projection
//! only prunes columns, so over upstream tables lalo removes it before federation cuts the plan.
//! A projection that computes (a governance mask, say) cannot go; lalo names its derived table
//! after the one table its columns come from (`AS "location"`), so the outer references resolve.
//! The same naming serves a column-only projection beneath a WHERE or a join (a subquery row
//! filter decorrelated into a mark join, which unparses as `EXISTS (… FROM (SELECT q.dept …)
//! WHERE t.dept = q.dept)`; an unaliased derived table): there the unparser also derives a
//! table, and the condition names its columns.
//! Subqueries are shaped as well: their plans are unparsed into the same statement.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNodeRecursion};
use datafusion::common::Result;
use datafusion::common::TableReference;
use datafusion::logical_expr::{Aggregate, Expr, LogicalPlan, SubqueryAlias};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

#[derive(Debug, Default)]
pub struct UnparseFriendly;

fn reads_upstream(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply_with_subqueries(|node| {
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
        plan.transform_up_with_subqueries(|node| {
            if let LogicalPlan::Aggregate(agg) = &node {
                if let LogicalPlan::Projection(proj) = agg.input.as_ref() {
                    if proj.expr.iter().all(|e| matches!(e, Expr::Column(_))) && reads_upstream(&proj.input) {
                        let rebuilt =
                            Aggregate::try_new(Arc::clone(&proj.input), agg.group_expr.clone(), agg.aggr_expr.clone())?;
                        if rebuilt.schema.as_ref() == agg.schema.as_ref() {
                            return Ok(Transformed::yes(LogicalPlan::Aggregate(rebuilt)));
                        }
                    }
                }
            }
            name_derived_projections(node)
        })
    }
}

/// The one bare table name all of a projection's columns are qualified with, if any.
fn single_bare_qualifier(plan: &LogicalPlan) -> Option<String> {
    let mut name: Option<String> = None;
    for (q, _) in plan.schema().iter() {
        match q {
            Some(TableReference::Bare { table }) => match &name {
                Some(n) if n.as_str() != table.as_ref() => return None,
                Some(_) => {}
                None => name = Some(table.to_string()),
            },
            _ => return None,
        }
    }
    name
}

/// Wrap computing projections beneath other nodes in a subquery alias named after their table.
fn name_derived_projections(node: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    if matches!(node, LogicalPlan::SubqueryAlias(_) | LogicalPlan::Extension(_)) {
        return Ok(Transformed::no(node));
    }
    let inputs = node.inputs();
    let beneath_where = matches!(node, LogicalPlan::Filter(_) | LogicalPlan::Join(_));
    let wrap: Vec<Option<String>> = inputs
        .iter()
        .map(|i| match i {
            // Projections that compute something (a mask, say), and any beneath a WHERE or a
            // join: elsewhere column-only projections unparse into the enclosing SELECT.
            LogicalPlan::Projection(p)
                if reads_upstream(&p.input)
                    && (beneath_where || !p.expr.iter().all(|e| matches!(e, Expr::Column(_)))) =>
            {
                single_bare_qualifier(i)
            }
            _ => None,
        })
        .collect();
    if wrap.iter().all(Option::is_none) {
        return Ok(Transformed::no(node));
    }
    let new_inputs = inputs
        .into_iter()
        .zip(wrap)
        .map(|(i, w)| match w {
            Some(q) => SubqueryAlias::try_new(Arc::new(i.clone()), q).map(LogicalPlan::SubqueryAlias),
            None => Ok(i.clone()),
        })
        .collect::<Result<Vec<_>>>()?;
    let rebuilt = node.with_new_exprs(node.expressions(), new_inputs)?;
    if rebuilt.schema() != node.schema() {
        return Ok(Transformed::no(node));
    }
    Ok(Transformed::yes(rebuilt))
}
