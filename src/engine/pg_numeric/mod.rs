//! NUMERIC as PostgreSQL computes it, in the embedded engine. DataFusion divides decimals at
//! a scale fixed by the operand types (`1.0/7*7` was `0.99995`; PostgreSQL's is
//! `0.99999999999999999998`), averages them at the input's scale plus four, and computes
//! `avg` of integers, variances and `sqrt` of NUMERIC in double precision: values and types
//! PostgreSQL does not give. Here division, `sqrt`, `exp`, `ln`, `log`, `power` with a whole
//! exponent, `avg`, `var_*`, `stddev_*` of NUMERIC and integers are PostgreSQL's, digit for
//! digit ([`arith`], [`transcendental`]); each value is shown with the display scale
//! PostgreSQL gives that row ([`scales`]); `sum(bigint)` is NUMERIC. What lalo cannot
//! compute so is refused with 0A000 naming it, never answered in another type: `power` of
//! NUMERIC with a fractional exponent, a result needing more places than the 38 digits of its
//! column leave (`1/3e10`), NUMERIC division in a recursive query.
//!
//! Statements that read an upstream table keep DataFusion's arithmetic: their upstream parts
//! are PostgreSQL's own, and a statement on one upstream database takes the PostgreSQL lane.
//! `avg(DISTINCT x)` keeps DataFusion's too.

pub mod aggregate;
pub mod avg_sums;
pub mod arith;
pub mod carry;
pub mod groups;
pub mod scalar;
pub mod scales;
pub mod transcendental;
pub mod values;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::Result;
use datafusion::logical_expr::{Expr, LogicalPlan, Operator};

/// The plan with PostgreSQL's NUMERIC arithmetic (unchanged when it has none).
pub fn exact(plan: LogicalPlan) -> Result<LogicalPlan> {
    reserved_names(&plan)?;
    if !involved(&plan) || crate::governance::local_fns::reads_upstream(&plan) {
        return Ok(plan);
    }
    if recursive(&plan) {
        return refuse_division(plan);
    }
    match plan {
        LogicalPlan::Statement(datafusion::logical_expr::Statement::Prepare(mut p)) => {
            p.input = std::sync::Arc::new(scales::plan(p.input.as_ref().clone())?);
            Ok(LogicalPlan::Statement(datafusion::logical_expr::Statement::Prepare(p)))
        }
        LogicalPlan::Statement(_) | LogicalPlan::Explain(_) | LogicalPlan::Analyze(_) | LogicalPlan::Dml(_) | LogicalPlan::Ddl(_) => Ok(plan),
        other => scales::plan(other),
    }
}

/// Names of lalo's display-scale columns are not the statement's to use: a column so named
/// would be read as another's display scale (and governance skips what they compute).
fn reserved_names(plan: &LogicalPlan) -> Result<()> {
    let mut bad = None;
    plan.apply_with_subqueries(|n| {
        if let Some(f) = n.schema().fields().iter().find(|f| f.name().starts_with(values::COMPANION)) {
            bad = Some(f.name().clone());
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    match bad {
        Some(name) => Err(crate::error::LaloError::Data {
            code: "42939",
            message: format!("column name \"{name}\" is reserved: names beginning with \"{}\" are lalo's", values::COMPANION),
        }
        .into()),
        None => Ok(()),
    }
}

/// A recursive query's terms must keep the type its first term has, which a NUMERIC result's
/// storage scale would change: there NUMERIC division is refused rather than answered at
/// DataFusion's fixed scale.
fn refuse_division(plan: LogicalPlan) -> Result<LogicalPlan> {
    let mut found = false;
    plan.apply_with_subqueries(|n| {
        let mut schema = datafusion::common::DFSchema::empty();
        for input in n.inputs() {
            schema.merge(input.schema());
        }
        for e in n.expressions() {
            e.apply(|x| {
                if let Expr::BinaryExpr(b) = x {
                    let decimal = |e: &Expr| matches!(datafusion::logical_expr::ExprSchemable::get_type(e, &schema), Ok(t) if t.is_decimal());
                    found |= b.op == Operator::Divide && (decimal(&b.left) || decimal(&b.right));
                }
                Ok(TreeNodeRecursion::Continue)
            })?;
        }
        Ok(if found { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    })?;
    if found {
        return Err(crate::error::LaloError::NotSupported(
            "NUMERIC division in a recursive query: lalo's engine would answer it at a fixed scale, not PostgreSQL's".into(),
        )
        .into());
    }
    Ok(plan)
}

/// Whether the plan has a recursive query.
fn recursive(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply_with_subqueries(|n| {
        found |= matches!(n, LogicalPlan::RecursiveQuery(_));
        Ok(if found { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    });
    found
}

/// Whether the plan divides, averages or calls a NUMERIC function anywhere.
fn involved(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply_with_subqueries(|n| {
        for e in n.expressions() {
            let _ = e.apply(|x| {
                found |= match x {
                    Expr::BinaryExpr(b) => b.op == Operator::Divide,
                    Expr::ScalarFunction(f) => matches!(f.name(), "sqrt" | "round" | "ln" | "log" | "log10" | "exp" | "power" | "pow"),
                    Expr::AggregateFunction(f) => f.func.name() == "sum" || aggregate::PgStat::of(f.func.name()).is_some(),
                    Expr::WindowFunction(f) => aggregate::PgStat::of(f.fun.name()).is_some(),
                    _ => false,
                };
                Ok(if found { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
            });
        }
        Ok(if found { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    });
    found
}
