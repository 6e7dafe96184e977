//! NUMERIC as PostgreSQL computes it, in the embedded engine. DataFusion divides decimals at
//! a scale fixed by the operand types (`1.0/7*7` was `0.99995`; PostgreSQL's is
//! `0.99999999999999999998`), averages them at the input's scale plus four, and computes
//! `avg` of integers, variances and `sqrt` of NUMERIC in double precision: values and types
//! PostgreSQL does not give. Here division, `sqrt`, `exp`, `ln`, `log`, `avg`, `var_*`,
//! `stddev_*` of NUMERIC and integers are PostgreSQL's, digit for digit ([`arith`],
//! [`transcendental`]); each value is shown with the display scale PostgreSQL gives that row
//! ([`scales`]); `sum(bigint)` is NUMERIC; `power` of NUMERIC, which lalo has only in double
//! precision, is refused with 0A000 rather than answered in another type.
//!
//! Statements that read an upstream table keep DataFusion's arithmetic: their upstream parts
//! are PostgreSQL's own, and a statement on one upstream database takes the PostgreSQL lane.
//! `avg(DISTINCT x)` keeps DataFusion's too.

pub mod aggregate;
pub mod arith;
pub mod scalar;
pub mod scales;
pub mod transcendental;
pub mod values;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::Result;
use datafusion::logical_expr::{Expr, LogicalPlan, Operator};

/// The plan with PostgreSQL's NUMERIC arithmetic (unchanged when it has none).
pub fn exact(plan: LogicalPlan) -> Result<LogicalPlan> {
    if !involved(&plan) || crate::governance::local_fns::reads_upstream(&plan) {
        return Ok(plan);
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
