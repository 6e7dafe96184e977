//! Leakproof predicates first: an optimizer rule that orders each filter's conjuncts so the
//! ones that can neither fail nor call a function run before the rest (row filters included).
//!
//! Row filters sit directly above each scan, beneath the user's predicates, and DataFusion merges
//! the two into one conjunction with the row filter first, so a policy's `IN` list of many values
//! was evaluated on every row before a user's `key = 42` narrowed them to a handful (DataFusion
//! evaluates the right side of an AND only on the rows the left side kept, when it keeps few).
//! Evaluating a user's predicate on rows the policy hides is safe only when it cannot reveal
//! anything about them: no error, no function with effects. PostgreSQL calls such predicates
//! *leakproof* and lets them pass a security barrier for the same reason; lalo moves only
//! comparisons, `IN` lists, `BETWEEN`, null tests and boolean combinations of columns, literals
//! and parameters. Everything else keeps its place after the row filter.

use datafusion::common::tree_node::Transformed;
use datafusion::common::Result;
use datafusion::logical_expr::logical_plan::Filter;
use datafusion::logical_expr::utils::{conjunction, split_conjunction_owned};
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

#[derive(Debug, Default)]
pub struct LeakproofFirst;

/// An expression that cannot raise an error or run a function, whatever row it sees.
pub fn leakproof(e: &Expr) -> bool {
    match e {
        Expr::Column(_) | Expr::Literal(..) | Expr::Placeholder(_) => true,
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            matches!(
                op,
                Operator::Eq
                    | Operator::NotEq
                    | Operator::Lt
                    | Operator::LtEq
                    | Operator::Gt
                    | Operator::GtEq
                    | Operator::And
                    | Operator::Or
                    | Operator::IsDistinctFrom
                    | Operator::IsNotDistinctFrom
            ) && leakproof(left)
                && leakproof(right)
        }
        Expr::Not(x) | Expr::IsNull(x) | Expr::IsNotNull(x) | Expr::IsTrue(x) | Expr::IsFalse(x) | Expr::IsNotTrue(x) | Expr::IsNotFalse(x) => {
            leakproof(x)
        }
        Expr::InList(l) => leakproof(&l.expr) && l.list.iter().all(leakproof),
        Expr::Between(b) => leakproof(&b.expr) && leakproof(&b.low) && leakproof(&b.high),
        _ => false,
    }
}

/// A rough count of the comparisons a leakproof expression makes per row.
fn cost(e: &Expr) -> usize {
    match e {
        Expr::BinaryExpr(b) => 1 + cost(&b.left) + cost(&b.right),
        Expr::Not(x) | Expr::IsNull(x) | Expr::IsNotNull(x) | Expr::IsTrue(x) | Expr::IsFalse(x) | Expr::IsNotTrue(x) | Expr::IsNotFalse(x) => {
            1 + cost(x)
        }
        Expr::InList(l) => 1 + l.list.len() + cost(&l.expr),
        Expr::Between(b) => 2 + cost(&b.expr),
        _ => 0,
    }
}

/// Conjuncts reordered: leakproof ones first, cheapest first; the others after them in their
/// original order. `None` when that is the order they are in.
fn reordered(predicate: &Expr) -> Option<Expr> {
    let parts = split_conjunction_owned(predicate.clone());
    let mut keyed: Vec<(usize, Expr)> =
        parts.into_iter().map(|e| (if leakproof(&e) { cost(&e) } else { usize::MAX }, e)).collect();
    if keyed.windows(2).all(|w| w[0].0 <= w[1].0) {
        return None;
    }
    keyed.sort_by_key(|(k, _)| *k); // stable: equal keys keep their order
    conjunction(keyed.into_iter().map(|(_, e)| e))
}

impl OptimizerRule for LeakproofFirst {
    fn name(&self) -> &str {
        "lalo_leakproof_first"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Filter(f) = plan else { return Ok(Transformed::no(plan)) };
        match reordered(&f.predicate) {
            Some(predicate) => Ok(Transformed::yes(LogicalPlan::Filter(Filter::try_new(predicate, f.input)?))),
            None => Ok(Transformed::no(LogicalPlan::Filter(f))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    #[test]
    fn user_comparisons_move_before_row_filters() {
        let row_filter = col("o_custkey").in_list(vec![lit(1i64), lit(2i64)], false);
        let lookup = col("o_custkey").eq(lit(7i64));
        let p = row_filter.clone().and(lookup.clone());
        assert_eq!(reordered(&p), Some(lookup.clone().and(row_filter.clone())));
        assert_eq!(reordered(&lookup.clone().and(row_filter.clone())), None);
        // A function call is not leakproof: it stays after the others.
        let call = datafusion::functions::string::expr_fn::upper(col("c_name")).eq(lit("X"));
        let p = call.clone().and(lookup.clone());
        assert_eq!(reordered(&p), Some(lookup.clone().and(call.clone())));
        // Division can fail on a hidden row: it stays behind the row filter.
        let risky = (col("a") / col("b")).gt(lit(1i64));
        let p = call.clone().and(risky.clone());
        assert_eq!(reordered(&p), None);
        let p = risky.clone().and(call.clone()).and(row_filter.clone());
        assert_eq!(reordered(&p), Some(row_filter.clone().and(risky).and(call)));
    }
}
