//! Display scales carried through the nodes that would otherwise treat a companion as data:
//! UNION, DISTINCT, DISTINCT ON and scalar subqueries. Without them a quotient read back
//! above a UNION was shown with its trailing zeros dropped (`1.2` where PostgreSQL shows
//! `1.2000000000000000`): a silent difference.
//!
//! - UNION [ALL]: every input gets a companion for each column that has one in any input
//!   (an input's own scale otherwise: its type's, or 0 for an integer), so the rows keep
//!   theirs. The companion of the first input's column names the output's.
//! - DISTINCT (and so UNION, INTERSECT, EXCEPT): rows are grouped by their values, not their
//!   scales, as PostgreSQL compares NUMERIC (`1.20 = 1.2`), and each group shows the scale of
//!   the first row it saw, as PostgreSQL's hashed DISTINCT does (`SELECT 1.20 UNION SELECT
//!   6/5.0` is `1.20`).
//! - DISTINCT ON: the companions ride along in the kept row.
//! - A scalar subquery becomes `lalo_scaled(value, scale)`: the same subquery twice, once for
//!   its value and once for its value's display scale.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{internal_err, Column, DFSchema, ExprSchema, Result};
use datafusion::functions_aggregate::first_last::first_value_udaf;
use datafusion::logical_expr::expr::{AggregateFunction, Exists, InSubquery, ScalarFunction, SetComparison};
use datafusion::logical_expr::{
    lit, Aggregate, ColumnarValue, Distinct, DistinctOn, Expr, LogicalPlan, Projection, ReturnFieldArgs, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Subquery, Union, Volatility,
};

use super::scales::{companion_for, is_companion, strip, walk};
use super::values::{companion_name, companion_of, ds};

/// The value columns of a schema (its companions left out), in order.
fn values(schema: &DFSchema) -> Vec<Column> {
    schema.iter().filter(|(_, f)| !is_companion(f.name())).map(|(q, f)| Column::from((q, f))).collect()
}

/// A column's display scale as an Int32 expression: its companion, or what its type says.
fn scale_of(schema: &DFSchema, c: &Column) -> Expr {
    ds(&Expr::Column(c.clone()), schema).map(|d| d.arg()).unwrap_or_else(|| lit(0))
}

/// UNION over inputs already rewritten (companions in place).
pub(super) fn union(u: Union) -> Result<LogicalPlan> {
    let cols: Vec<Vec<Column>> = u.inputs.iter().map(|i| values(i.schema())).collect();
    let width = cols.first().map_or(0, Vec::len);
    let carried: Vec<usize> = (0..width)
        .filter(|&j| {
            u.inputs.iter().zip(&cols).any(|(i, c)| {
                c.get(j).is_some_and(|c| {
                    companion_of(i.schema(), c).is_some()
                        || i.schema().field_from_column(c).is_ok_and(|f| super::scalar::row_scaled(f))
                })
            })
        })
        .collect();
    if carried.is_empty() || cols.iter().any(|c| c.len() != width) {
        let inputs = u.inputs.into_iter().map(|i| strip(Arc::unwrap_or_clone(i)).map(Arc::new)).collect::<Result<_>>()?;
        return Ok(LogicalPlan::Union(Union::try_new_with_loose_types(inputs)?));
    }
    let names: Vec<String> = cols[0].iter().map(|c| companion_name(&c.name)).collect();
    let mut inputs = Vec::with_capacity(u.inputs.len());
    for (input, c) in u.inputs.into_iter().zip(&cols) {
        let schema = input.schema().clone();
        let mut exprs: Vec<Expr> = c.iter().cloned().map(Expr::Column).collect();
        exprs.extend(carried.iter().map(|&j| scale_of(&schema, &c[j]).alias(names[j].clone())));
        inputs.push(Arc::new(LogicalPlan::Projection(Projection::try_new(exprs, input)?)));
    }
    Ok(LogicalPlan::Union(Union::try_new_with_loose_types(inputs)?))
}

/// DISTINCT and DISTINCT ON over an input already rewritten.
pub(super) fn distinct(d: Distinct) -> Result<LogicalPlan> {
    match d {
        Distinct::All(input) => {
            let schema = input.schema().clone();
            let comps: Vec<(Column, Column)> = values(&schema).into_iter().filter_map(|c| companion_of(&schema, &c).map(|k| (c, k))).collect();
            if comps.is_empty() {
                return Ok(LogicalPlan::Distinct(Distinct::All(Arc::new(strip(Arc::unwrap_or_clone(input))?))));
            }
            let group = values(&schema).into_iter().map(Expr::Column).collect();
            let firsts = comps
                .into_iter()
                .map(|(_, k)| {
                    let first = Expr::AggregateFunction(AggregateFunction::new_udf(first_value_udaf(), vec![Expr::Column(k.clone())], false, None, vec![], None));
                    first.alias_qualified(k.relation.clone(), k.name.clone())
                })
                .collect();
            Ok(LogicalPlan::Aggregate(Aggregate::try_new(input, group, firsts)?))
        }
        Distinct::On(on) => {
            let schema = on.input.schema().clone();
            let mut select = on.select_expr.clone();
            for (e, (q, f)) in on.select_expr.iter().zip(on.schema.iter()) {
                if let Some(s) = companion_for(e, &schema) {
                    select.push(s.alias_qualified(q.cloned(), companion_name(f.name())));
                }
            }
            Ok(LogicalPlan::Distinct(Distinct::On(DistinctOn::try_new(on.on_expr, select, on.sort_expr, on.input)?)))
        }
    }
}

/// The subqueries in a node's expressions rewritten by `walk`; a scalar subquery whose value
/// has a display scale of its own keeps it through [`PgScaled`].
pub(super) fn subqueries(plan: LogicalPlan) -> Result<LogicalPlan> {
    let walked = |s: Subquery| -> Result<Subquery> {
        let inner = strip(walk(Arc::unwrap_or_clone(s.subquery))?)?;
        Ok(Subquery { subquery: Arc::new(inner), ..s })
    };
    Ok(plan
        .map_expressions(|e| {
            e.transform_down(|e| match e {
                Expr::ScalarFunction(f) if is_scaled(&f) => Ok(Transformed::new(Expr::ScalarFunction(f), false, TreeNodeRecursion::Jump)),
                // Jump: the subqueries in the replacement are rewritten already.
                Expr::ScalarSubquery(s) => Ok(Transformed::new(scalar(s)?, true, TreeNodeRecursion::Jump)),
                Expr::Exists(Exists { subquery, negated }) => Ok(Transformed::yes(Expr::Exists(Exists { subquery: walked(subquery)?, negated }))),
                // The tested expression is this node's: its own subqueries are visited next
                // (a subquery is no child of its expression).
                Expr::InSubquery(InSubquery { expr, subquery, negated }) => {
                    Ok(Transformed::yes(Expr::InSubquery(InSubquery { expr, subquery: walked(subquery)?, negated })))
                }
                Expr::SetComparison(SetComparison { expr, subquery, op, quantifier }) => {
                    Ok(Transformed::yes(Expr::SetComparison(SetComparison { expr, subquery: walked(subquery)?, op, quantifier })))
                }
                other => Ok(Transformed::no(other)),
            })
        })?
        .data)
}

/// How many scale-carrying scalar subqueries one may hold: each is planned twice, so nesting
/// doubles the plan at every level.
const MAX_NESTED_SCALED: usize = 4;

/// The `lalo_scaled` calls in a plan, its subqueries included.
fn scaled_in(plan: &LogicalPlan) -> Result<usize> {
    let mut n = 0;
    plan.apply_with_subqueries(|node| {
        for e in node.expressions() {
            e.apply(|x| {
                if matches!(x, Expr::ScalarFunction(f) if is_scaled(f)) {
                    n += 1;
                }
                Ok(TreeNodeRecursion::Continue)
            })?;
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(n)
}

/// A scalar subquery, its value's display scale kept beside it when it has one.
fn scalar(s: Subquery) -> Result<Expr> {
    let inner = walk(Arc::unwrap_or_clone(s.subquery.clone()))?;
    if scaled_in(&inner)? > MAX_NESTED_SCALED {
        return Err(crate::error::LaloError::NotSupported(
            "scalar subqueries over NUMERIC results nested this deeply are not supported (each carries its display scale); cast an inner result to a fixed scale, e.g. ::numeric(30,10)".into(),
        )
        .into());
    }
    let schema = inner.schema().clone();
    let value = values(&schema).into_iter().next();
    let comp = value.as_ref().and_then(|v| companion_of(&schema, v));
    let stripped = Arc::new(strip(inner.clone())?);
    let value_sq = Expr::ScalarSubquery(Subquery { subquery: stripped, outer_ref_columns: s.outer_ref_columns.clone(), spans: s.spans.clone() });
    let Some(comp) = comp else {
        return Ok(value_sq);
    };
    let scale_plan = LogicalPlan::Projection(Projection::try_new(vec![Expr::Column(comp)], Arc::new(inner))?);
    let scale_sq = Expr::ScalarSubquery(Subquery { subquery: Arc::new(scale_plan), outer_ref_columns: s.outer_ref_columns, spans: s.spans });
    Ok(Expr::ScalarFunction(ScalarFunction::new_udf(Arc::new(ScalarUDF::new_from_impl(PgScaled::new())), vec![value_sq, scale_sq])))
}

pub fn is_scaled(f: &ScalarFunction) -> bool {
    (f.func.inner().as_ref() as &dyn std::any::Any).downcast_ref::<PgScaled>().is_some()
}

/// `lalo_scaled(value, scale)`: the value, whose display scale is `scale` (read by
/// [`super::values::ds`]). Stands for a scalar subquery the statement wrote.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgScaled {
    signature: Signature,
}

impl PgScaled {
    pub fn new() -> Self {
        PgScaled { signature: Signature::any(2, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for PgScaled {
    fn name(&self) -> &str {
        "lalo_scaled"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, types: &[DataType]) -> Result<DataType> {
        match types.first() {
            Some(t) => Ok(t.clone()),
            None => internal_err!("lalo_scaled takes a value and its scale"),
        }
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        match args.arg_fields.first() {
            Some(f) => Ok(Arc::new(f.as_ref().clone().with_name(self.name()))),
            None => internal_err!("lalo_scaled takes a value and its scale"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match args.args.into_iter().next() {
            Some(v) => Ok(v),
            None => internal_err!("lalo_scaled takes a value and its scale"),
        }
    }
}
