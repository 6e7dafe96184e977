//! Integer arithmetic that overflows is an error, as in PostgreSQL (22003), not a wrapped
//! value: DataFusion's `+`, `-` and `*` wrap unless their physical expression asks for checked
//! arithmetic, and its planner never does. This rule asks for it in every projection and
//! filter, and in the arguments of aggregates (`sum(a * b)`; not yet their FILTER clauses, nor
//! GROUP BY, ORDER BY, window or join-key expressions), after federation (parts written
//! out for an upstream are PostgreSQL's to check). Constants folded while planning are still
//! computed by DataFusion's simplifier, which wraps. NUMERIC operands get lalo's form of the
//! checked operation, which skips per-value tests a batch's bounds make needless
//! (decimal_arith.rs).

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::Result;
use datafusion::arrow::datatypes::Schema;
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::expressions::BinaryExpr;
use datafusion::physical_expr::projection::ProjectionExpr;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::ExecutionPlan;

/// Sets checked arithmetic in projections and filters.
#[derive(Debug, Default)]
pub struct CheckedArithmetic;

impl PhysicalOptimizerRule for CheckedArithmetic {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        check_arithmetic(plan, &super::decimal_arith::DecimalArith::make)
    }

    fn name(&self) -> &str {
        "lalo_checked_arithmetic"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// How a checked `l op r` over rows of the given schema is made (a checked `BinaryExpr`, or
/// decimal_arith's form, here; a form that survives the wire for distributed plans,
/// distributed/codec.rs).
pub type MakeChecked<'a> = &'a dyn Fn(Arc<dyn PhysicalExpr>, Operator, Arc<dyn PhysicalExpr>, &Schema) -> Arc<dyn PhysicalExpr>;

/// `plan` with every `+`, `-` and `*` of its projections, filters and aggregate arguments made
/// by `make`.
pub fn check_arithmetic(plan: Arc<dyn ExecutionPlan>, make: MakeChecked<'_>) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        if let Some(p) = node.downcast_ref::<ProjectionExec>() {
            let mut changed = false;
            let mut exprs = Vec::with_capacity(p.expr().len());
            for pe in p.expr() {
                let t = checked(pe.expr.clone(), &p.input().schema(), make)?;
                changed |= t.transformed;
                exprs.push(ProjectionExpr { expr: t.data, alias: pe.alias.clone() });
            }
            if changed {
                let exec: Arc<dyn ExecutionPlan> = Arc::new(ProjectionExec::try_new(exprs, p.input().clone())?);
                return Ok(Transformed::yes(exec));
            }
        } else if let Some(f) = node.downcast_ref::<FilterExec>() {
            let t = checked(f.predicate().clone(), &f.input().schema(), make)?;
            if t.transformed {
                let exec: Arc<dyn ExecutionPlan> = Arc::new(FilterExecBuilder::from(f).with_predicate(t.data).build()?);
                return Ok(Transformed::yes(exec));
            }
        } else if let Some(a) = node.downcast_ref::<AggregateExec>() {
            // Only these modes evaluate the arguments; the final steps read partial states.
            if matches!(a.mode(), AggregateMode::Partial | AggregateMode::Single | AggregateMode::SinglePartitioned) {
                let schema = a.input_schema();
                let mut changed = false;
                let mut aggrs = Vec::with_capacity(a.aggr_expr().len());
                for f in a.aggr_expr() {
                    let mut args = Vec::new();
                    let mut any = false;
                    for e in f.expressions() {
                        let t = checked(e, &schema, make)?;
                        any |= t.transformed;
                        args.push(t.data);
                    }
                    let order: Vec<_> = f.order_bys().iter().map(|s| s.expr.clone()).collect();
                    // `with_new_expressions` makes the aggregate unreversed: one DataFusion turned
                    // around to share a sort with its neighbours (array_agg(.. ORDER BY c DESC)
                    // beside one ordered by c) would answer in the other order. Left as planned.
                    match (any && !f.is_reversed()).then(|| f.with_new_expressions(args, order)).flatten() {
                        Some(n) => {
                            changed = true;
                            aggrs.push(Arc::new(n));
                        }
                        None => aggrs.push(f.clone()),
                    }
                }
                if changed {
                    let exec: Arc<dyn ExecutionPlan> = Arc::new(a.with_new_aggr_exprs(aggrs));
                    return Ok(Transformed::yes(exec));
                }
            }
        }
        Ok(Transformed::no(node))
    })
    .map(|t| t.data)
}

/// `e` with every `+`, `-` and `*` checked.
fn checked(e: Arc<dyn PhysicalExpr>, schema: &Schema, make: MakeChecked<'_>) -> Result<Transformed<Arc<dyn PhysicalExpr>>> {
    e.transform_up(|e| {
        // Already in lalo's NUMERIC form (a plan made for this process, now readied for the
        // wire): made again by `make`.
        if let Some(d) = e.downcast_ref::<super::decimal_arith::DecimalArith>() {
            let (l, op, r) = d.parts();
            return Ok(Transformed::yes(make(l.clone(), op, r.clone(), schema)));
        }
        let Some(b) = e.downcast_ref::<BinaryExpr>() else { return Ok(Transformed::no(e)) };
        // (Setting it again on one already checked is harmless: the rule runs once per plan.)
        if !matches!(b.op(), Operator::Plus | Operator::Minus | Operator::Multiply) {
            return Ok(Transformed::no(e));
        }
        Ok(Transformed::yes(make(b.left().clone(), *b.op(), b.right().clone(), schema)))
    })
}
