//! `ORDER BY … LIMIT n` over a grouping keeps only the first n groups while it groups, and only
//! when the order is the grouping's own key (or its one MIN/MAX).
//!
//! This is DataFusion's `TopKAggregation` rule ("LimitAggregation"), which lalo replaces because
//! it follows the sorted column down to the aggregate by *name*: a projection that computes a
//! new column under the old name (`SELECT -k AS k … GROUP BY k ORDER BY k LIMIT 5`,
//! `o_custkey % 1000 AS o_custkey`) left the name unchanged, so the aggregate kept the five
//! lowest keys, and the sort then ordered their negations: the five highest values came back
//! as the lowest, without an error. Here the column is followed by position: through a
//! projection only where it passes a column on, through other nodes only where they keep
//! every row and the column's place, and never past anything else.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::Result;
use datafusion::config::ConfigOptions;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{topk_types_supported, AggregateExec, AggregateMode, LimitOptions};
use datafusion::physical_plan::execution_plan::CardinalityEffect;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::ExecutionPlan;

#[derive(Debug, Default)]
pub struct TopKGroups;

impl PhysicalOptimizerRule for TopKGroups {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        if !config.optimizer.enable_topk_aggregation {
            return Ok(plan);
        }
        plan.transform_down(|node| {
            let Some(sort) = node.downcast_ref::<SortExec>() else { return Ok(Transformed::no(node)) };
            let (Some(limit), [order]) = (sort.fetch(), sort.expr().as_ref()) else { return Ok(Transformed::no(node)) };
            let Some(col) = order.expr.downcast_ref::<Column>() else { return Ok(Transformed::no(node)) };
            let Some(input) = limited(sort.input(), col.index(), order.options.descending, limit) else { return Ok(Transformed::no(node)) };
            Ok(Transformed::yes(Arc::clone(&node).with_new_children(vec![input])?))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "LimitAggregation"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `node` with the first aggregate below it that groups by the column at `at` (or takes its one
/// MIN/MAX there) limited to `limit` groups; `None` when the column cannot be followed there.
fn limited(node: &Arc<dyn ExecutionPlan>, at: usize, descending: bool, limit: usize) -> Option<Arc<dyn ExecutionPlan>> {
    if let Some(aggr) = node.downcast_ref::<AggregateExec>() {
        let limited: Arc<dyn ExecutionPlan> = Arc::new(limit_aggregate(aggr, at, descending, limit)?);
        // A final aggregate's input is its partial one, with the same columns in the same
        // places: it keeps its first groups too.
        if !matches!(aggr.mode(), AggregateMode::Final | AggregateMode::FinalPartitioned) {
            return Some(limited);
        }
        let [child] = aggr.children()[..] else { return Some(limited) };
        return match limited_through(child, at, descending, limit) {
            Some(partial) => limited.with_new_children(vec![partial]).ok(),
            None => Some(limited),
        };
    }
    let [child] = node.children()[..] else { return None };
    let below = if let Some(p) = node.downcast_ref::<ProjectionExec>() {
        p.expr().get(at)?.expr.downcast_ref::<Column>()?.index()
    } else {
        keeps_place(node, child, at)?
    };
    let child = limited(child, below, descending, limit)?;
    Arc::clone(node).with_new_children(vec![child]).ok()
}

/// Below a final aggregate: through the nodes that move its partial aggregate's rows (a
/// repartition, a merge) to that aggregate.
fn limited_through(node: &Arc<dyn ExecutionPlan>, at: usize, descending: bool, limit: usize) -> Option<Arc<dyn ExecutionPlan>> {
    if let Some(aggr) = node.downcast_ref::<AggregateExec>() {
        return matches!(aggr.mode(), AggregateMode::Partial).then(|| limit_aggregate(aggr, at, descending, limit)).flatten().map(|a| Arc::new(a) as _);
    }
    let [child] = node.children()[..] else { return None };
    let below = keeps_place(node, child, at)?;
    let child = limited_through(child, below, descending, limit)?;
    Arc::clone(node).with_new_children(vec![child]).ok()
}

/// `at` when `node` passes every row of `child` on and keeps the column at `at` where it was.
fn keeps_place(node: &Arc<dyn ExecutionPlan>, child: &Arc<dyn ExecutionPlan>, at: usize) -> Option<usize> {
    if !matches!(node.cardinality_effect(), CardinalityEffect::Equal | CardinalityEffect::GreaterEqual) {
        return None;
    }
    let (out, inp) = (node.schema(), child.schema());
    let same = at < out.fields().len() && at < inp.fields().len() && out.field(at).name() == inp.field(at).name() && out.field(at).data_type() == inp.field(at).data_type();
    same.then_some(at)
}

/// The aggregate keeping its first `limit` groups by the column at `at`, when that column is
/// its only group key (and it computes nothing else) or its only aggregate, a MIN or MAX in the
/// order's direction.
fn limit_aggregate(aggr: &AggregateExec, at: usize, descending: bool, limit: usize) -> Option<AggregateExec> {
    let group = aggr.group_expr();
    let [(key, _)] = group.expr() else { return None };
    if !group.is_single() || aggr.filter_expr().iter().any(|e| e.is_some()) {
        return None;
    }
    let key_type = key.data_type(&aggr.input().schema()).ok()?;
    let value_type = match aggr.get_minmax_desc() {
        // The aggregate's value (or, in a partial aggregate, its one state column) follows its
        // one group key.
        Some((field, desc)) if desc == descending && at == 1 => field.data_type().clone(),
        Some(_) => return None,
        None if aggr.aggr_expr().is_empty() && at == 0 => key_type.clone(),
        None => return None,
    };
    if !topk_types_supported(&key_type, &value_type) {
        return None;
    }
    Some(aggr.with_new_limit_options(Some(LimitOptions::new_with_order(limit, descending))))
}

#[cfg(test)]
#[path = "topk_groups_tests.rs"]
mod tests;
