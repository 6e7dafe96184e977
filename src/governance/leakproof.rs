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
//! and parameters. Everything else keeps its place after the row filter, and runs only on the
//! rows the conjuncts before it kept: DataFusion evaluates the right side of an AND on the whole
//! batch when the left keeps many rows, so a division or cast placed after a row filter could
//! still fail on a hidden row and reveal it by its error. Such conjuncts are wrapped in
//! `CASE WHEN <earlier conjuncts> THEN <conjunct> ELSE false END`, which evaluates its THEN only
//! on the selected rows (a security barrier, as PostgreSQL's row-level security has).

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::Result;
use datafusion::logical_expr::logical_plan::Filter;
use datafusion::logical_expr::utils::{conjunction, split_conjunction_owned};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::expr::Case;
use datafusion::logical_expr::{lit, BinaryExpr, Expr, LogicalPlan, Operator};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

use super::member_set::RowFilterIn;

#[derive(Debug, Default)]
pub struct LeakproofFirst;

/// An expression that cannot raise an error or run a function, whatever row it sees.
pub fn leakproof(e: &Expr) -> bool {
    match e {
        // A correlated subquery's reference to the outer row is a column too (and the optimizer
        // must still find `inner = outer` unwrapped to decorrelate the subquery).
        Expr::Column(_) | Expr::OuterReferenceColumn(..) | Expr::Literal(..) | Expr::Placeholder(_) => true,
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
        // A row filter's value set: a hash lookup, cannot fail.
        Expr::ScalarFunction(f) if f.func.inner().is::<RowFilterIn>() => f.args.iter().all(leakproof),
        _ => false,
    }
}

/// True when `e` holds a subquery (which must stay where the optimizer can make it a join).
pub fn has_subquery(e: &Expr) -> bool {
    e.exists(|x| Ok(matches!(x, Expr::Exists(_) | Expr::InSubquery(_) | Expr::SetComparison(_) | Expr::ScalarSubquery(_)))).unwrap_or(true)
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
        // One hash lookup, but more than a comparison: comparisons go first.
        Expr::ScalarFunction(f) => 2 + f.args.iter().map(cost).sum::<usize>(),
        _ => 0,
    }
}

/// Conjuncts reordered: leakproof ones first, cheapest first; the others after them in their
/// original order, each evaluated only on rows every conjunct before it kept (see [`guard`]).
/// `None` when the predicate already has that form.
fn reordered(predicate: &Expr) -> Option<Expr> {
    let mut parts = Vec::new();
    flatten(predicate.clone(), &mut parts);
    let mut keyed: Vec<(usize, Expr)> =
        parts.into_iter().map(|e| (if leakproof(&e) { cost(&e) } else { usize::MAX }, e)).collect();
    keyed.sort_by_key(|(k, _)| *k); // stable: equal keys keep their order
    // A subquery the optimizer could not turn into a join cannot run inside a CASE either.
    if keyed.iter().any(|(_, e)| has_subquery(e)) {
        return None;
    }
    let split = keyed.iter().position(|(k, _)| *k == usize::MAX).unwrap_or(keyed.len());
    let mut exprs = keyed.into_iter().map(|(_, e)| e);
    let safe: Vec<Expr> = exprs.by_ref().take(split).collect();
    let risky: Vec<Expr> = exprs.collect();
    let out = match (conjunction(safe), chain(risky)) {
        (Some(s), Some(r)) => s.clone().and(guard(s, r)),
        (Some(s), None) => s,
        (None, Some(r)) => r,
        (None, None) => return None,
    };
    (&out != predicate).then_some(out)
}

/// `CASE WHEN cond THEN then ELSE false END`: in a filter the same rows as `cond AND then`, but
/// DataFusion evaluates `then` only on the rows `cond` keeps, where an AND may evaluate its right
/// side on the whole batch. So a predicate that can fail (a division, a cast, a function) never
/// sees a row a row filter hid, and its error cannot tell the caller the row exists: the
/// security barrier PostgreSQL puts around row-level security.
pub fn guard(cond: Expr, then: Expr) -> Expr {
    Expr::Case(Case::new(None, vec![(Box::new(cond), Box::new(then))], Some(Box::new(lit(false)))))
}

/// The guard's parts, when `e` is one.
fn as_guard(e: &Expr) -> Option<(&Expr, &Expr)> {
    match e {
        Expr::Case(Case { expr: None, when_then_expr, else_expr: Some(else_expr) })
            if when_then_expr.len() == 1 && matches!(else_expr.as_ref(), Expr::Literal(ScalarValue::Boolean(Some(false)), _)) =>
        {
            Some((when_then_expr[0].0.as_ref(), when_then_expr[0].1.as_ref()))
        }
        _ => None,
    }
}

/// The conjuncts of `e` in evaluation order, guards taken apart (their condition first).
fn flatten(e: Expr, out: &mut Vec<Expr>) {
    for part in split_conjunction_owned(e) {
        match as_guard(&part) {
            Some((cond, then)) => {
                let (cond, then) = (cond.clone(), then.clone());
                // A guard's condition repeats conjuncts already in the list; keep each once.
                let mut inner = Vec::new();
                flatten(cond, &mut inner);
                flatten(then, &mut inner);
                for x in inner {
                    if !out.contains(&x) {
                        out.push(x);
                    }
                }
            }
            None => {
                // `x IS TRUE` after `x` adds nothing in a filter (the simplifier spells a guard's
                // condition so when it turns the guard back into an AND).
                let implied = matches!(&part, Expr::IsTrue(x) if out.contains(x.as_ref()));
                if !implied && !out.contains(&part) {
                    out.push(part)
                }
            }
        }
    }
}

/// Non-leakproof conjuncts, each guarded by the ones before it.
fn chain(parts: Vec<Expr>) -> Option<Expr> {
    parts.into_iter().rev().reduce(|acc, e| guard(e, acc))
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
        // A function call is not leakproof: it goes after the others, guarded by them.
        let call = datafusion::functions::string::expr_fn::upper(col("c_name")).eq(lit("X"));
        let p = call.clone().and(lookup.clone());
        let expected = lookup.clone().and(guard(lookup.clone(), call.clone()));
        assert_eq!(reordered(&p), Some(expected.clone()));
        assert_eq!(reordered(&expected), None, "the guarded form is stable");
        // Division can fail on a hidden row: it runs only where the row filter and the
        // conjuncts before it kept the row, and the order among such conjuncts stays.
        let risky = (col("a") / col("b")).gt(lit(1i64));
        let p = call.clone().and(risky.clone());
        assert_eq!(reordered(&p), Some(guard(call.clone(), risky.clone())));
        let p = risky.clone().and(call.clone()).and(row_filter.clone());
        let expected = row_filter.clone().and(guard(row_filter.clone(), guard(risky.clone(), call.clone())));
        assert_eq!(reordered(&p), Some(expected.clone()));
        assert_eq!(reordered(&expected), None);
        // What DataFusion's simplifier makes of a guard comes back to the same form.
        let simplified = row_filter.clone().and(row_filter.clone().is_true().and(guard(risky.clone(), call.clone())));
        assert_eq!(reordered(&simplified), Some(expected));
    }

    /// A division that fails only on a row the row filter hides: with the barrier it never
    /// sees that row; without it DataFusion evaluates it on the whole batch (the filter keeps
    /// most rows) and the error reveals the row.
    #[tokio::test]
    async fn failing_predicates_never_see_hidden_rows() -> Result<()> {
        use datafusion::arrow::array::{Int64Array, RecordBatch};
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        use datafusion::prelude::SessionContext;
        use std::sync::Arc;
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)])),
            vec![Arc::new(Int64Array::from((1..=1000).collect::<Vec<i64>>()))],
        )?;
        let query = |ctx: SessionContext| {
            let batch = batch.clone();
            async move {
                // The row filter hides k = 1; the user's predicate divides by (k - 1).
                ctx.read_batch(batch)?
                    .filter(col("k").not_eq(lit(1i64)))?
                    .filter((lit(1i64) / (col("k") - lit(1i64))).gt(lit(-1000i64)))?
                    .count()
                    .await
            }
        };
        assert!(query(SessionContext::new()).await.is_err(), "without the barrier the hidden row is reached");
        let guarded = SessionContext::new();
        guarded.add_optimizer_rule(Arc::new(LeakproofFirst));
        assert_eq!(query(guarded).await?, 999);
        Ok(())
    }
}
