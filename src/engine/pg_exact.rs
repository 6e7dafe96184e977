//! Where DataFusion's semantics differ from PostgreSQL's on the engine path: made equal where
//! lalo can, refused with 0A000 naming the construct where it cannot, never answered
//! differently without a word. (A statement on one upstream database takes the PostgreSQL
//! lane instead and has PostgreSQL's semantics exactly.)
//!
//! - `EXCEPT ALL` / `INTERSECT ALL`: DataFusion plans them as anti/semi joins that keep or drop
//!   every left duplicate (`{1,1,2} EXCEPT ALL {1}` gives `{2}`; PostgreSQL subtracts counts
//!   and gives `{1,2}`). Each side's rows are numbered within their duplicates and the number
//!   joins too, so the k-th copy on the left meets the k-th on the right: `max(m - n, 0)` and
//!   `min(m, n)` copies, as in PostgreSQL.
//! - A fractional value cast to an integer: DataFusion truncates (`2.5::int` is 2), PostgreSQL
//!   rounds, numerics half away from zero (3) and floats half to even (`2.5::float8::int` is
//!   2). The cast's input is rounded first (`round`, or `pg_rint` for floats), which is what
//!   PostgreSQL's own `round` does, so the plan reads the same written out for an upstream.
//! - Floats and timestamps cast to text: written as PostgreSQL writes them ([`super::pg_text`]).

use std::ops::ControlFlow;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, NullEquality, Result};
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::{ExprFunctionExt, JoinType, LogicalPlanBuilder};
use datafusion::logical_expr::expr::Cast;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan};
use datafusion::sql::sqlparser::ast::{SetExpr, SetOperator, SetQuantifier, Statement, Visit, Visitor};

/// Whether the statement has an `EXCEPT ALL` or `INTERSECT ALL` ([`set_all`] then applies).
pub fn has_set_all(stmt: &Statement) -> bool {
    struct Find(bool);
    impl Visitor for Find {
        type Break = ();
        fn pre_visit_query(&mut self, q: &datafusion::sql::sqlparser::ast::Query) -> ControlFlow<()> {
            if set_all_in(&q.body).is_some() {
                self.0 = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    let mut f = Find(false);
    let _ = stmt.visit(&mut f);
    f.0
}

/// The multiset joins of `EXCEPT ALL` / `INTERSECT ALL` as PostgreSQL counts them. The joins
/// DataFusion plans for them are recognized by their shape: semi or anti, every left column
/// paired with the right column at its position, NULLs equal, no other condition.
pub fn set_all(plan: LogicalPlan) -> Result<LogicalPlan> {
    plan.transform_up_with_subqueries(|node| {
        let LogicalPlan::Join(j) = &node else { return Ok(Transformed::no(node)) };
        let (lf, rf) = (j.left.schema().columns(), j.right.schema().columns());
        let shaped = matches!(j.join_type, JoinType::LeftAnti | JoinType::LeftSemi)
            && j.filter.is_none()
            && j.null_equality == NullEquality::NullEqualsNull
            && j.on.len() == lf.len()
            && lf.len() == rf.len()
            && j.on.iter().zip(lf.iter().zip(&rf)).all(|((l, r), (lc, rc))| {
                matches!((l, r), (Expr::Column(a), Expr::Column(b)) if a == lc && b == rc)
            });
        if !shaped {
            return Ok(Transformed::no(node));
        }
        let number = |input: &LogicalPlan, cols: &[Column], name: &str| -> Result<LogicalPlan> {
            let partition = cols.iter().map(|c| Expr::Column(c.clone())).collect();
            let n = row_number().partition_by(partition).build()?.alias(name);
            LogicalPlanBuilder::from(input.clone()).window(vec![n])?.build()
        };
        let left = number(&j.left, &lf, "__lalo_copy")?;
        let right = number(&j.right, &rf, "__lalo_copy_right")?;
        let mut lk = lf.clone();
        lk.push(Column::from_name("__lalo_copy"));
        let mut rk = rf.clone();
        rk.push(Column::from_name("__lalo_copy_right"));
        let joined = LogicalPlanBuilder::from(left)
            .join_detailed(right, j.join_type, (lk, rk), None, NullEquality::NullEqualsNull)?
            .project(lf.into_iter().map(Expr::Column))?
            .build()?;
        Ok(Transformed::yes(joined))
    })
    .map(|t| t.data)
}

/// The first `EXCEPT ALL` or `INTERSECT ALL` in a query body (nested set operations included).
fn set_all_in(body: &SetExpr) -> Option<String> {
    match body {
        SetExpr::SetOperation { op, set_quantifier, left, right } => {
            let all = matches!(set_quantifier, SetQuantifier::All | SetQuantifier::AllByName);
            match op {
                SetOperator::Except | SetOperator::Minus if all => Some("EXCEPT ALL".into()),
                SetOperator::Intersect if all => Some("INTERSECT ALL".into()),
                _ => set_all_in(left).or_else(|| set_all_in(right)),
            }
        }
        _ => None,
    }
}

/// Casts as PostgreSQL makes them: fractional values rounded before a cast to an integer type,
/// floats and timestamps cast to text in PostgreSQL's text.
pub fn pg_casts(plan: LogicalPlan) -> Result<LogicalPlan> {
    let retyped = std::cell::Cell::new(false);
    let plan = plan.transform_up_with_subqueries(|node| {
        let mut schema = DFSchema::empty();
        for input in node.inputs() {
            schema.merge(input.schema());
        }
        // Result columns keep their names (a projection's schema names its expressions).
        let names = NamePreserver::new(&node);
        node.map_expressions(|e| {
            let saved = names.save(&e);
            let e = e.transform_up(|e| round_cast(e, &schema))?;
            let e = e.transform_data(|e| e.transform_up(|e| date_difference(e, &schema, &retyped)))?;
            Ok(e.update_data(|e| saved.restore(e)))
        })
    })?
    .data;
    if !retyped.get() {
        return Ok(plan);
    }
    // A retyped expression (a date difference) changes its node's columns and those above.
    plan.transform_up_with_subqueries(|n| Ok(Transformed::yes(n.recompute_schema()?))).map(|t| t.data)
}

/// `date - date` is a count of days, `integer` in PostgreSQL; DataFusion answers Int64.
fn date_difference(e: Expr, schema: &DFSchema, retyped: &std::cell::Cell<bool>) -> Result<Transformed<Expr>> {
    let Expr::BinaryExpr(b) = &e else { return Ok(Transformed::no(e)) };
    let date = |x: &Expr| matches!(x.get_type(schema), Ok(DataType::Date32 | DataType::Date64));
    if b.op != datafusion::logical_expr::Operator::Minus || !date(&b.left) || !date(&b.right) {
        return Ok(Transformed::no(e));
    }
    retyped.set(true);
    Ok(Transformed::yes(datafusion::logical_expr::cast(e, DataType::Int32)))
}

fn round_cast(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::Cast(Cast { expr, field }) = &e else { return Ok(Transformed::no(e)) };
    let Ok(from) = expr.get_type(schema) else { return Ok(Transformed::no(e)) };
    if matches!(field.data_type(), DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8) && super::pg_text::writes(&from) {
        let text = Expr::ScalarFunction(datafusion::logical_expr::expr::ScalarFunction::new_udf(
            std::sync::Arc::new(datafusion::logical_expr::ScalarUDF::new_from_impl(super::pg_text::PgText::default())),
            vec![expr.as_ref().clone()],
        ));
        return Ok(Transformed::yes(match field.data_type() {
            DataType::Utf8 => text,
            _ => Expr::Cast(Cast { expr: Box::new(text), field: field.clone() }),
        }));
    }
    if !field.data_type().is_integer() {
        return Ok(Transformed::no(e));
    }
    let x = expr.as_ref().clone();
    let rounded = match from {
        // numeric: half away from zero, as DataFusion's round does for decimals.
        DataType::Decimal32(..) | DataType::Decimal64(..) | DataType::Decimal128(..) | DataType::Decimal256(..) => round(x),
        // float: half to even, PostgreSQL's round(double precision) (pg_text.rs `PgRint`).
        DataType::Float16 | DataType::Float32 | DataType::Float64 => Expr::ScalarFunction(
            datafusion::logical_expr::expr::ScalarFunction::new_udf(
                std::sync::Arc::new(datafusion::logical_expr::ScalarUDF::new_from_impl(super::pg_text::PgRint::default())),
                vec![x],
            ),
        ),
        _ => return Ok(Transformed::no(e)),
    };
    Ok(Transformed::yes(Expr::Cast(Cast { expr: Box::new(rounded), field: field.clone() })))
}

fn round(x: Expr) -> Expr {
    datafusion::functions::math::expr_fn::round(vec![x])
}
