//! Integer constants typed as PostgreSQL types them, and constant integer arithmetic checked.
//!
//! PostgreSQL gives an integer constant the type `integer` (int4) when it fits, `bigint`
//! otherwise; DataFusion makes every one Int64. The difference is silent in text but not in
//! what a client is told: `SELECT 1`, `VALUES (1)`, `array[1,2]` came back as int8 where
//! PostgreSQL says int4 (a binary-format client decodes eight bytes, JDBC returns a Long, a
//! dataframe gets another dtype), and `1/2`, `7 % -3` likewise. So constants that fit are made
//! Int32 right after planning, before type coercion: `1 + 2` is int4 arithmetic, a constant
//! beside a bigint column widens to bigint as in PostgreSQL, and an int4 overflow is an error.
//!
//! Constants are folded by DataFusion's simplifier with wrapping arithmetic, so
//! `2147483647 + 1` would silently become -2147483648: integer `+`, `-` and `*` between
//! constants are computed here first, checked, and raise 22003 on overflow as PostgreSQL does.
//!
//! Left as they are: LIMIT and OFFSET (DataFusion reads them as Int64) and recursive queries
//! (the work table's type is fixed when the query is planned). A correlated subquery's outer
//! reference carries the type its column had when planned: it is given the column's new type
//! afterwards ([`retype_outer_references`]).

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, DataFusionError, ExprSchema, Result, ScalarValue};
use datafusion::logical_expr::expr::BinaryExpr;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, Operator, Subquery, Union};

/// Type the plan's integer constants as PostgreSQL does (see the module documentation).
pub fn int4_constants(plan: LogicalPlan) -> Result<LogicalPlan> {
    let Some(correlated) = applies(&plan)? else {
        return Ok(plan);
    };
    let plan = plan.transform_up_with_subqueries(|node| {
        match node {
            LogicalPlan::Limit(_) => Ok(Transformed::no(node)),
            // A union's columns were typed when it was planned: taken from its inputs again
            // (the first input's, as planned; the analyzer then coerces all to a common type).
            LogicalPlan::Union(u) => Ok(Transformed::yes(LogicalPlan::Union(Union::try_new_with_loose_types(u.inputs)?))),
            LogicalPlan::Values(v) => {
                // VALUES infers its columns' types from its rows: built again from the new ones
                // (a NULL written in a row was given the column's old type: it is untyped again).
                let untyped = |e: Expr| match e {
                    Expr::Literal(v, meta) if v.is_null() => Expr::Literal(ScalarValue::Null, meta),
                    e => e,
                };
                let rows = v
                    .values
                    .into_iter()
                    .map(|row| row.into_iter().map(|e| narrow(untyped(e)).map(|t| t.data)).collect::<Result<Vec<_>>>())
                    .collect::<Result<Vec<_>>>()?;
                Ok(Transformed::yes(LogicalPlanBuilder::values(rows)?.build()?))
            }
            node => {
                let names = NamePreserver::new(&node);
                let t = node.map_expressions(|e| {
                    let saved = names.save(&e);
                    Ok(narrow(e)?.update_data(|e| saved.restore(e)))
                })?;
                // An input's columns may have changed type even when these expressions did not.
                Ok(Transformed::yes(t.data.recompute_schema()?))
            }
        }
    })?
    .data;
    if correlated {
        return retype_outer_references(plan);
    }
    Ok(plan)
}

/// Each correlated subquery's outer references typed as the columns they name now are: the
/// node holding the subquery reads them from its inputs.
fn retype_outer_references(plan: LogicalPlan) -> Result<LogicalPlan> {
    plan.transform_down_with_subqueries(|node| {
        let mut outer = DFSchema::empty();
        for input in node.inputs() {
            outer.merge(input.schema());
        }
        let t = node.map_expressions(|e| {
            e.transform(|e| {
                Ok(match e {
                    Expr::ScalarSubquery(s) => Transformed::yes(Expr::ScalarSubquery(retarget(s, &outer)?)),
                    Expr::Exists(mut x) => {
                        x.subquery = retarget(x.subquery, &outer)?;
                        Transformed::yes(Expr::Exists(x))
                    }
                    Expr::InSubquery(mut x) => {
                        x.subquery = retarget(x.subquery, &outer)?;
                        Transformed::yes(Expr::InSubquery(x))
                    }
                    e => Transformed::no(e),
                })
            })
        })?;
        Ok(Transformed::yes(t.data.recompute_schema()?))
    })
    .map(|t| t.data)
}

/// One subquery with its references to `outer`'s columns typed as `outer` types them.
fn retarget(s: Subquery, outer: &DFSchema) -> Result<Subquery> {
    let fix = |e: Expr| {
        e.transform(|e| match e {
            Expr::OuterReferenceColumn(f, c) => match outer.field_from_column(&c) {
                Ok(now) if now.data_type() != f.data_type() => {
                    let field = f.as_ref().clone().with_data_type(now.data_type().clone());
                    Ok(Transformed::yes(Expr::OuterReferenceColumn(Arc::new(field), c)))
                }
                _ => Ok(Transformed::no(Expr::OuterReferenceColumn(f, c))),
            },
            e => Ok(Transformed::no(e)),
        })
    };
    let plan = Arc::unwrap_or_clone(s.subquery)
        .transform_up_with_subqueries(|n| {
            let t = n.map_expressions(|e| fix(e))?;
            Ok(Transformed::yes(t.data.recompute_schema()?))
        })?
        .data;
    let outer_ref_columns = s.outer_ref_columns.into_iter().map(|e| fix(e).map(|t| t.data)).collect::<Result<_>>()?;
    Ok(Subquery { subquery: Arc::new(plan), outer_ref_columns, spans: s.spans })
}

/// `Some(correlated)` when the plan has a constant to narrow and nothing that pins the old
/// types; `correlated` when it has outer references to retype afterwards.
fn applies(plan: &LogicalPlan) -> Result<Option<bool>> {
    let (mut narrowable, mut pinned, mut correlated) = (false, false, false);
    plan.apply_with_subqueries(|node| {
        if matches!(node, LogicalPlan::RecursiveQuery(_)) {
            pinned = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        node.apply_expressions(|e| {
            e.apply(|e| {
                match e {
                    Expr::OuterReferenceColumn(..) => correlated = true,
                    Expr::Literal(ScalarValue::Int64(Some(v)), _) if i32::try_from(*v).is_ok() => narrowable = true,
                    _ => {}
                }
                Ok(if pinned { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
            })
        })?;
        Ok(if pinned { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    })?;
    Ok((narrowable && !pinned).then_some(correlated))
}

/// Int64 constants that fit made Int32; `+`, `-`, `*` between integer constants computed.
fn narrow(e: Expr) -> Result<Transformed<Expr>> {
    e.transform_up(|e| match e {
        Expr::Literal(ScalarValue::Int64(Some(v)), meta) if i32::try_from(v).is_ok() => {
            Ok(Transformed::yes(Expr::Literal(ScalarValue::Int32(Some(v as i32)), meta)))
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match (left.as_ref(), right.as_ref()) {
            (Expr::Literal(a, None), Expr::Literal(b, None)) => match fold(a, op, b)? {
                Some(v) => Ok(Transformed::yes(Expr::Literal(v, None))),
                None => Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr { left, op, right }))),
            },
            _ => Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr { left, op, right }))),
        },
        // A series of integer constants is int4 too (generate_series in a select list).
        Expr::ScalarFunction(f)
            if f.name() == "generate_series"
                && !f.args.is_empty()
                && f.args.iter().all(|a| matches!(a, Expr::Literal(ScalarValue::Int32(_), _))) =>
        {
            let int4_list = DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true)));
            Ok(Transformed::yes(datafusion::logical_expr::cast(Expr::ScalarFunction(f), int4_list)))
        }
        e => Ok(Transformed::no(e)),
    })
}

/// `a op b` for two integer constants, in the wider of their types; an error when it overflows.
fn fold(a: &ScalarValue, op: Operator, b: &ScalarValue) -> Result<Option<ScalarValue>> {
    let apply = |x: i64, y: i64| match op {
        Operator::Plus => Some(x.checked_add(y)),
        Operator::Minus => Some(x.checked_sub(y)),
        Operator::Multiply => Some(x.checked_mul(y)),
        _ => None,
    };
    let (x, y, int4) = match (a, b) {
        (ScalarValue::Int32(Some(x)), ScalarValue::Int32(Some(y))) => (*x as i64, *y as i64, true),
        (ScalarValue::Int32(Some(x)), ScalarValue::Int64(Some(y))) => (*x as i64, *y, false),
        (ScalarValue::Int64(Some(x)), ScalarValue::Int32(Some(y))) => (*x, *y as i64, false),
        (ScalarValue::Int64(Some(x)), ScalarValue::Int64(Some(y))) => (*x, *y, false),
        _ => return Ok(None),
    };
    let Some(result) = apply(x, y) else { return Ok(None) };
    let out_of_range = || {
        let kind = if int4 { "integer" } else { "bigint" };
        DataFusionError::Execution(format!("Arithmetic overflow: {kind} out of range"))
    };
    let v = result.ok_or_else(out_of_range)?;
    if int4 {
        return i32::try_from(v).map(|v| Some(ScalarValue::Int32(Some(v)))).map_err(|_| out_of_range());
    }
    Ok(Some(ScalarValue::Int64(Some(v))))
}
