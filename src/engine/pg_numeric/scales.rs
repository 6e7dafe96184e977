//! The plan: NUMERIC expressions rewritten in every node ([`values`]), aggregates replaced
//! ([`super::aggregate`]), and each per-row display scale carried up beside its value.
//!
//! An Arrow decimal column has one scale; PostgreSQL shows each quotient, average or square
//! root with its own (`5/5.0` is `1.00000000000000000000`, `6/5.0` is `1.2000000000000000`).
//! So a column holding such values gets a companion Int32 column, `__lalo_dscale:<name>`,
//! computed where the value is and passed along by the nodes that pass columns along
//! (filters, sorts, limits, joins, windows, aliases); UNION, DISTINCT and scalar subqueries
//! carry it too ([`super::carry`]). Other nodes get their input without companions; a value
//! read back above them is shown with trailing zeros dropped, its display scale not being
//! known there. At the top the value is written as PostgreSQL's text and the companions dropped.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, Result};
use datafusion::functions_aggregate::expr_fn::max;
use datafusion::logical_expr::expr::{AggregateFunction, ScalarFunction, WindowFunction};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{
    lit, Aggregate, AggregateUDF, Expr, ExprSchemable, LogicalPlan, Projection, ScalarUDF, Window, WindowFunctionDefinition,
};

use super::aggregate::PgStat;
use super::scalar::{row_scale_metadata, PgNumericText, UNKNOWN_SCALE};
use super::values::{self, companion_name, companion_of, Ds, COMPANION};

/// Rewrite a query plan (its subqueries included) and show row-scaled values at the top.
pub fn plan(plan: LogicalPlan) -> Result<LogicalPlan> {
    let plan = walk(plan)?;
    render(plan)
}

pub(super) fn is_companion(name: &str) -> bool {
    name.starts_with(COMPANION)
}

fn has_companions(schema: &DFSchema) -> bool {
    schema.fields().iter().any(|f| is_companion(f.name()))
}

/// The plan without its companion columns.
pub(super) fn strip(plan: LogicalPlan) -> Result<LogicalPlan> {
    if !has_companions(plan.schema()) {
        return Ok(plan);
    }
    let cols: Vec<Expr> =
        plan.schema().iter().filter(|(_, f)| !is_companion(f.name())).map(|(q, f)| Expr::Column(Column::from((q, f)))).collect();
    Ok(LogicalPlan::Projection(Projection::try_new(cols, Arc::new(plan))?))
}

/// Row-scaled values written as text with their display scale; companions dropped.
fn render(plan: LogicalPlan) -> Result<LogicalPlan> {
    let schema = plan.schema().clone();
    let mut changed = false;
    let mut cols = Vec::new();
    for (q, f) in schema.iter() {
        if is_companion(f.name()) {
            changed = true;
            continue;
        }
        let col = Column::from((q, f));
        let decimal = matches!(f.data_type(), DataType::Decimal128(..));
        let scale = match companion_of(&schema, &col) {
            Some(c) if decimal => Some(Expr::Column(c)),
            _ if decimal && super::scalar::row_scaled(f) => Some(lit(UNKNOWN_SCALE)),
            _ => None,
        };
        let e = Expr::Column(col);
        cols.push(match scale {
            Some(s) => {
                changed = true;
                let text = ScalarFunction::new_udf(Arc::new(ScalarUDF::new_from_impl(PgNumericText::shown())), vec![e, s]);
                Expr::ScalarFunction(text).alias_qualified(q.cloned(), f.name())
            }
            None => e,
        });
    }
    if !changed {
        return Ok(plan);
    }
    Ok(LogicalPlan::Projection(Projection::try_new(cols, Arc::new(plan))?))
}

pub(super) fn walk(plan: LogicalPlan) -> Result<LogicalPlan> {
    // Inputs first, then the subqueries inside this node's expressions (their results must
    // stay one column each: no companions leave them; a scalar subquery's scale is carried
    // by a second one).
    let plan = plan.map_children(|c| walk(c).map(Transformed::yes))?.data;
    let plan = super::carry::subqueries(plan)?;
    match plan {
        LogicalPlan::Projection(p) => project(p),
        LogicalPlan::Aggregate(a) => aggregate(a),
        LogicalPlan::Window(w) => window(w),
        LogicalPlan::Filter(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::Join(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Repartition(_) => rewrite_exprs(plan)?.recompute_schema(),
        LogicalPlan::Union(u) => super::carry::union(u),
        LogicalPlan::Distinct(d) => match rewrite_exprs(LogicalPlan::Distinct(d))? {
            LogicalPlan::Distinct(d) => super::carry::distinct(d),
            other => Ok(other),
        },
        other => {
            // Everything else sees its inputs as they were written.
            let other = other.map_children(|c| strip(c).map(Transformed::yes))?.data;
            rewrite_exprs(other.recompute_schema()?)
        }
    }
}

/// The node's own expressions rewritten, their names kept.
fn rewrite_exprs(node: LogicalPlan) -> Result<LogicalPlan> {
    let mut schema = DFSchema::empty();
    for input in node.inputs() {
        schema.merge(input.schema());
    }
    let names = NamePreserver::new(&node);
    Ok(node
        .map_expressions(|e| {
            let saved = names.save(&e);
            Ok(values::rewrite(e, &schema)?.update_data(|e| saved.restore(e)))
        })?
        .data)
}

/// `e` named `q.name` (one alias, not an alias of an alias).
fn named(e: Expr, q: Option<&datafusion::common::TableReference>, name: &str) -> Expr {
    let mut e = e;
    while let Expr::Alias(a) = e {
        e = *a.expr;
    }
    e.alias_qualified(q.cloned(), name)
}

pub(super) fn unaliased(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => unaliased(&a.expr),
        other => other,
    }
}

/// The companion a projected (rewritten) expression needs: its per-row display scale, or a
/// fixed one its type does not say.
pub(super) fn companion_for(e: &Expr, schema: &DFSchema) -> Option<Expr> {
    // A value marked row-scaled whose scale is fixed here (`avg(x)::numeric(10,2)`: a cast
    // keeps its input's field metadata) gets its fixed scale as companion.
    let marked = e.to_field(schema).is_ok_and(|(_, f)| super::scalar::row_scaled(&f));
    match e.get_type(schema) {
        Ok(DataType::Decimal128(_, s)) => values::ds(e, schema).and_then(|d| match d {
            Ds::Row(x) => Some(x),
            Ds::Fixed(k) if k >= UNKNOWN_SCALE => Some(lit(UNKNOWN_SCALE)),
            Ds::Fixed(k) if k >= 0 && (k != s as i32 || marked) => Some(lit(k)),
            Ds::Fixed(_) => None,
        }),
        _ => None,
    }
}

fn project(p: Projection) -> Result<LogicalPlan> {
    let schema = p.input.schema().clone();
    let mut exprs = Vec::with_capacity(p.expr.len());
    let mut companions = Vec::new();
    for (e, (q, f)) in p.expr.into_iter().zip(p.schema.iter()) {
        let rewritten = values::rewrite(e.clone(), &schema)?;
        let e = if rewritten.transformed { named(rewritten.data, q, f.name()) } else { e };
        match companion_for(&e, &schema) {
            Some(x) => {
                companions.push(x.alias_qualified(q.cloned(), companion_name(f.name())));
                let marked = match e {
                    Expr::Column(_) => e,
                    Expr::Alias(a) => a.expr.alias_qualified_with_metadata(q.cloned(), f.name(), Some(row_scale_metadata().into())),
                    other => other.alias_qualified_with_metadata(q.cloned(), f.name(), Some(row_scale_metadata().into())),
                };
                exprs.push(marked);
            }
            None => exprs.push(e),
        }
    }
    exprs.extend(companions);
    Ok(LogicalPlan::Projection(Projection::try_new(exprs, p.input)?))
}

/// The replacement of `avg`/`var*`/`stddev*` over NUMERIC or integers, its companion, and
/// `sum` of bigint as NUMERIC (PostgreSQL's type for it).
fn stat_args(f: &AggregateFunction, schema: &DFSchema) -> Option<(PgStat, PgStat, Vec<Expr>)> {
    let stat = PgStat::of(f.func.name())?;
    if f.params.distinct || f.params.args.len() != 1 {
        return None;
    }
    let x = f.params.args[0].clone();
    let t = x.get_type(schema).ok()?;
    if !(t.is_integer() || matches!(t, DataType::Decimal128(..) | DataType::Decimal64(..) | DataType::Decimal32(..))) {
        return None;
    }
    let mut args = vec![x.clone()];
    match values::ds(&x, schema)? {
        Ds::Fixed(k) if as_scale(&t) == Some(k) => {}
        d => args.push(d.arg()),
    }
    let (name, aliases) = (f.func.name(), f.func.aliases());
    Some((PgStat::new(name, aliases, stat, false), PgStat::new(name, aliases, stat, true), args))
}

fn as_scale(t: &DataType) -> Option<i32> {
    if crate::pgtypes::numeric::is_unconstrained(t) {
        return None;
    }
    super::scalar::as_decimal(t).map(|(_, s)| s as i32)
}

fn udaf(f: PgStat) -> Arc<AggregateUDF> {
    Arc::new(AggregateUDF::new_from_impl(f))
}

fn aggregate(a: Aggregate) -> Result<LogicalPlan> {
    let schema = a.input.schema().clone();
    let out = a.schema.clone();
    // The grouping's output columns: under grouping sets one per distinct key, and the
    // grouping id after them (one GroupingSet expression stands for them all).
    let n_group = a.group_expr_len()?;
    let mut aggr = Vec::with_capacity(a.aggr_expr.len());
    let mut companions = Vec::new();
    // Group keys holding row-scaled values: the group's largest display scale.
    let mut group = Vec::with_capacity(n_group);
    for (g, (q, f)) in a.group_expr.into_iter().zip(out.iter()) {
        let rewritten = values::rewrite(g, &schema)?;
        let set = matches!(rewritten.data, Expr::GroupingSet(_));
        let g = if rewritten.transformed && !set { named(rewritten.data, q, f.name()) } else { rewritten.data };
        if let Some(Ds::Row(x)) = values::ds(&g, &schema) {
            companions.push(max(x).alias_qualified(q.cloned(), companion_name(f.name())));
        }
        group.push(g);
    }
    for (e, (q, f)) in a.aggr_expr.into_iter().zip(out.iter().skip(n_group)) {
        let rewritten = values::rewrite(e, &schema)?;
        let e = if rewritten.transformed { named(rewritten.data, q, f.name()) } else { rewritten.data };
        let inner = unaliased(&e);
        let Expr::AggregateFunction(func) = inner else {
            aggr.push(e);
            continue;
        };
        if let Some((value, scale, args)) = stat_args(func, &schema) {
            let mut params = func.params.clone();
            params.args = args;
            let v = Expr::AggregateFunction(AggregateFunction { func: udaf(value), params: params.clone() });
            let s = Expr::AggregateFunction(AggregateFunction { func: udaf(scale), params });
            aggr.push(v.alias_qualified(q.cloned(), f.name()));
            companions.push(s.alias_qualified(q.cloned(), companion_name(f.name())));
            continue;
        }
        let name = func.func.name();
        let arg = func.params.args.first();
        // sum(bigint) is NUMERIC in PostgreSQL (it cannot overflow); DataFusion's is bigint.
        if name == "sum" && arg.and_then(|x| x.get_type(&schema).ok()) == Some(DataType::Int64) {
            let mut func = func.clone();
            func.params.args[0] = datafusion::logical_expr::cast(func.params.args[0].clone(), DataType::Decimal128(38, 0));
            aggr.push(Expr::AggregateFunction(func).alias_qualified(q.cloned(), f.name()));
            continue;
        }
        // Row-scaled values: a sum shows the largest display scale in the group, min and max
        // the display scale of the value they pick.
        if matches!(name, "sum" | "min" | "max") && !func.params.distinct {
            if let (Some(v), Some(Ds::Row(x))) = (arg, arg.and_then(|x| values::ds(x, &schema))) {
                let mut comp = func.clone();
                comp.params.args = vec![x];
                if name == "sum" {
                    comp.func = datafusion::functions_aggregate::min_max::max_udaf();
                } else {
                    comp.func = datafusion::functions_aggregate::first_last::first_value_udaf();
                    comp.params.order_by = vec![v.clone().sort(name == "min", false)];
                }
                companions.push(Expr::AggregateFunction(comp).alias_qualified(q.cloned(), companion_name(f.name())));
            }
        }
        aggr.push(e);
    }
    aggr.extend(companions);
    Ok(LogicalPlan::Aggregate(Aggregate::try_new(a.input, group, aggr)?))
}

fn window(w: Window) -> Result<LogicalPlan> {
    let schema = w.input.schema().clone();
    let out = w.schema.clone();
    // The window's values follow its input's columns as they were before companions joined them.
    let n_in = out.fields().len() - w.window_expr.len();
    let mut exprs = Vec::with_capacity(w.window_expr.len());
    let mut companions = Vec::new();
    for (e, (q, f)) in w.window_expr.into_iter().zip(out.iter().skip(n_in)) {
        let rewritten = values::rewrite(e, &schema)?;
        let e = if rewritten.transformed { named(rewritten.data, q, f.name()) } else { rewritten.data };
        let inner = unaliased(&e);
        if let Expr::WindowFunction(wf) = inner {
            if let WindowFunctionDefinition::AggregateUDF(func) = &wf.fun {
                let as_agg = AggregateFunction { func: func.clone(), params: aggregate_params(wf) };
                if let Some((value, scale, args)) = stat_args(&as_agg, &schema) {
                    let with = |f: PgStat| {
                        let mut x = wf.as_ref().clone();
                        x.fun = WindowFunctionDefinition::AggregateUDF(udaf(f));
                        x.params.args = args.clone();
                        Expr::WindowFunction(Box::new(x))
                    };
                    exprs.push(with(value).alias_qualified(q.cloned(), f.name()));
                    companions.push(with(scale).alias_qualified(q.cloned(), companion_name(f.name())));
                    continue;
                }
            }
        }
        exprs.push(e);
    }
    exprs.extend(companions);
    Ok(LogicalPlan::Window(Window::try_new(exprs, w.input)?))
}

fn aggregate_params(wf: &WindowFunction) -> datafusion::logical_expr::expr::AggregateFunctionParams {
    datafusion::logical_expr::expr::AggregateFunctionParams {
        args: wf.params.args.clone(),
        distinct: wf.params.distinct,
        filter: wf.params.filter.clone(),
        order_by: vec![],
        null_treatment: wf.params.null_treatment,
    }
}
