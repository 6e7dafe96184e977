//! Expressions: NUMERIC operators and functions replaced by PostgreSQL's (division, `sqrt`,
//! `exp`, `ln`, `log`, `power`, a row-scaled value cast to text, `round` to more places than
//! the value has), and the display scale ([`Ds`]) each NUMERIC expression has, fixed or per row.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, ExprSchema, Result, ScalarValue};
use datafusion::logical_expr::expr::{Cast, ScalarFunction};
use datafusion::logical_expr::{lit, BinaryExpr, Expr, ExprSchemable, Operator, ScalarUDF};

use super::scalar::{as_decimal, row_scaled, Op, PgNumericFn, PgNumericText, TRIMMED_SCALE, UNKNOWN_SCALE};

/// Prefix of the column carrying another column's per-row display scale.
pub const COMPANION: &str = "__lalo_dscale:";

pub fn companion_name(name: &str) -> String {
    format!("{COMPANION}{name}")
}

/// The companion of column `c` in `schema`, if it has one.
pub fn companion_of(schema: &DFSchema, c: &Column) -> Option<Column> {
    let name = companion_name(&c.name);
    schema.field_with_name(c.relation.as_ref(), &name).ok().map(|_| Column::new(c.relation.clone(), name))
}

/// A NUMERIC expression's display scale.
#[derive(Clone, Debug)]
pub enum Ds {
    /// The same for every row: places, [`TRIMMED_SCALE`] or [`UNKNOWN_SCALE`].
    Fixed(i32),
    /// Per row, computed by this Int32 expression.
    Row(Expr),
}

impl Ds {
    /// As an argument of a function taking an operand's display scale.
    pub fn arg(&self) -> Expr {
        match self {
            Ds::Fixed(k) => lit(*k),
            Ds::Row(e) => e.clone(),
        }
    }

    fn unknown(&self) -> bool {
        matches!(self, Ds::Fixed(k) if *k == TRIMMED_SCALE || *k >= UNKNOWN_SCALE)
    }

    /// The display scale of a sum (`max`) or product (`add`) of two NUMERIC values.
    fn combine(a: Ds, b: Ds, add: bool) -> Ds {
        if a.unknown() || b.unknown() {
            return Ds::Fixed(UNKNOWN_SCALE);
        }
        match (a, b) {
            (Ds::Fixed(x), Ds::Fixed(y)) => Ds::Fixed(if add { x + y } else { x.max(y) }),
            (x, y) => {
                let (x, y) = (x.arg(), y.arg());
                // `greatest` names each operand once: a CASE naming each twice doubled the
                // expression at every level of a nested sum.
                Ds::Row(if add { x + y } else { datafusion::functions::core::expr_fn::greatest(vec![x, y]) })
            }
        }
    }
}

/// The display scale values of this type have: its scale, or each value's own for NUMERIC
/// without a declared scale.
fn by_type(t: &DataType) -> Option<Ds> {
    if crate::pgtypes::numeric::is_unconstrained(t) {
        return Some(Ds::Fixed(TRIMMED_SCALE));
    }
    as_decimal(t).filter(|_| !matches!(t, DataType::Null)).map(|(_, s)| Ds::Fixed(s as i32))
}

fn udf(f: &ScalarFunction) -> Option<&PgNumericFn> {
    f.func.inner().downcast_ref::<PgNumericFn>()
}

/// The display scale of `e` over `schema` (`None`: not a NUMERIC).
pub fn ds(e: &Expr, schema: &DFSchema) -> Option<Ds> {
    let ty = e.get_type(schema).ok()?;
    if !matches!(ty, DataType::Decimal32(..) | DataType::Decimal64(..) | DataType::Decimal128(..)) && !ty.is_integer() {
        return None;
    }
    Some(match e {
        Expr::Alias(a) => return ds(&a.expr, schema),
        Expr::Column(c) => match companion_of(schema, c) {
            Some(comp) => Ds::Row(Expr::Column(comp)),
            None if schema.field_from_column(c).is_ok_and(|f| row_scaled(f)) => Ds::Fixed(UNKNOWN_SCALE),
            None => by_type(&ty)?,
        },
        Expr::ScalarFunction(f) if super::carry::is_scaled(f) => Ds::Row(f.args.get(1)?.clone()),
        Expr::ScalarFunction(f) => match udf(f).and_then(|pg| pg.scale_twin()) {
            Some(twin) => Ds::Row(call(twin, f.args.clone())),
            None if f.name() == "abs" => return f.args.first().and_then(|a| ds(a, schema)),
            // The first non-null argument's.
            None if matches!(f.name(), "coalesce" | "nvl") => {
                let branches: Vec<(Expr, Option<Ds>)> = f.args.iter().map(|a| (a.clone().is_not_null(), ds(a, schema))).collect();
                branch_scales(branches, None).or_else(|| mixed(e, &ty, schema))?
            }
            None if matches!(f.name(), "round" | "trunc") => by_type(&ty)?,
            None => mixed(e, &ty, schema)?,
        },
        Expr::BinaryExpr(b) => match b.op {
            Operator::Plus | Operator::Minus | Operator::Modulo => Ds::combine(ds(&b.left, schema)?, ds(&b.right, schema)?, false),
            Operator::Multiply => Ds::combine(ds(&b.left, schema)?, ds(&b.right, schema)?, true),
            _ => by_type(&ty)?,
        },
        Expr::Negative(x) => return ds(x, schema),
        // The branch taken's.
        Expr::Case(c) => {
            let when = |w: &Expr| match &c.expr {
                Some(base) => base.as_ref().clone().eq(w.clone()),
                None => w.clone(),
            };
            let branches = c.when_then_expr.iter().map(|(w, t)| (when(w), ds(t, schema))).collect();
            let otherwise = c.else_expr.as_ref().map(|x| ds(x, schema));
            branch_scales(branches, otherwise).or_else(|| mixed(e, &ty, schema))?
        }
        Expr::ScalarSubquery(s) if s.subquery.schema().fields().first().is_some_and(|f| row_scaled(f)) => Ds::Fixed(UNKNOWN_SCALE),
        Expr::Cast(_) | Expr::TryCast(_) | Expr::Literal(..) => by_type(&ty)?,
        _ => mixed(e, &ty, schema)?,
    })
}

/// A per-row scale choosing among branches (`None` when no branch is row-scaled); a branch
/// that is not NUMERIC (a NULL) counts as scale 0, an absent ELSE as NULL.
fn branch_scales(branches: Vec<(Expr, Option<Ds>)>, otherwise: Option<Option<Ds>>) -> Option<Ds> {
    let row = branches.iter().map(|(_, d)| d).chain(otherwise.iter()).any(|d| matches!(d, Some(Ds::Row(_))));
    if !row {
        return None;
    }
    let arg = |d: &Option<Ds>| d.as_ref().map(|d| d.arg()).unwrap_or_else(|| lit(0));
    let mut case = datafusion::logical_expr::conditional_expressions::CaseBuilder::new(None, vec![], vec![], None);
    for (w, d) in &branches {
        case = case.when(w.clone(), arg(d));
    }
    let built = match otherwise {
        Some(d) => case.otherwise(arg(&d)),
        None => case.end(),
    };
    built.ok().map(Ds::Row)
}

/// Another expression returning NUMERIC (CASE, COALESCE, ...): its type's scale, unless a
/// row-scaled value flows into it; then not known here.
fn mixed(e: &Expr, ty: &DataType, schema: &DFSchema) -> Option<Ds> {
    let mut row = false;
    let _ = e.apply_children(|c| {
        if ds(c, schema).is_some_and(|d| matches!(d, Ds::Row(_)) || d.unknown() && !matches!(d, Ds::Fixed(TRIMMED_SCALE))) {
            row = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    if row {
        Some(Ds::Fixed(UNKNOWN_SCALE))
    } else {
        by_type(ty)
    }
}

fn call(f: PgNumericFn, args: Vec<Expr>) -> Expr {
    Expr::ScalarFunction(ScalarFunction::new_udf(Arc::new(ScalarUDF::new_from_impl(f)), args))
}

/// The most expression nodes the operands of one NUMERIC function may have. Each operation
/// takes its operands' values and their display scales, and a scale is computed from the
/// values below it, so an expression nested d deep grows as 2^d: past this size (about a dozen
/// nested divisions) the statement is refused instead of planned for minutes.
pub const MAX_OPERAND_NODES: usize = 4096;

fn bounded(args: Vec<Expr>) -> Result<Vec<Expr>> {
    let mut n = 0usize;
    for a in &args {
        a.apply(|_| {
            n += 1;
            Ok(if n > MAX_OPERAND_NODES { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
        })?;
    }
    if n > MAX_OPERAND_NODES {
        return Err(crate::error::LaloError::NotSupported(
            "NUMERIC arithmetic nested this deeply is not supported (each level carries its display scale); cast an inner result to a fixed scale, e.g. ::numeric(30,10)".into(),
        )
        .into());
    }
    Ok(args)
}

fn is_decimal(t: &DataType) -> bool {
    matches!(t, DataType::Decimal32(..) | DataType::Decimal64(..) | DataType::Decimal128(..) | DataType::Decimal256(..))
}


/// Rewrite one expression's NUMERIC operators (bottom up, so operands are rewritten first).
pub fn rewrite(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    e.transform_up(|e| one(e, schema))
}

fn one(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let ty = |x: &Expr| x.get_type(schema).ok();
    match &e {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Divide, right }) => {
            let (Some(l), Some(r)) = (ty(left), ty(right)) else { return Ok(Transformed::no(e)) };
            // `1e10` is a decimal of negative scale: the same value at scale 0.
            if let Some((left, right)) = whole(left, &l).zip(whole(right, &r)).filter(|_| negative_scale(&l) || negative_scale(&r)) {
                return one(Expr::BinaryExpr(BinaryExpr::new(Box::new(left), Operator::Divide, Box::new(right))), schema);
            }
            let numeric = |t: &DataType| is_decimal(t) || t.is_integer();
            if !(numeric(&l) && numeric(&r) && (is_decimal(&l) || is_decimal(&r))) || as_decimal(&l).is_none() || as_decimal(&r).is_none() {
                return Ok(Transformed::no(e));
            }
            let (Some(dl), Some(dr)) = (ds(left, schema), ds(right, schema)) else { return Ok(Transformed::no(e)) };
            let args = bounded(vec![left.as_ref().clone(), right.as_ref().clone(), dl.arg(), dr.arg()])?;
            Ok(Transformed::yes(call(PgNumericFn::new(Op::Div, false), args)))
        }
        // PostgreSQL takes the NUMERIC form when an argument is NUMERIC and none is a float.
        Expr::ScalarFunction(f)
            if f.args.iter().any(|a| ty(a).is_some_and(|t| is_decimal(&t)))
                && !f.args.iter().any(|a| ty(a).is_some_and(|t| t.is_floating()))
                && udf(f).is_none() =>
        {
            let name = f.name();
            let one = match name {
                "sqrt" => Some(Op::Sqrt),
                "exp" => Some(Op::Exp),
                "ln" => Some(Op::Ln),
                _ => None,
            };
            if let (Some(op), [x]) = (one, f.args.as_slice()) {
                let Some(d) = ds(x, schema) else { return Ok(Transformed::no(e)) };
                return Ok(Transformed::yes(call(PgNumericFn::new(op, false), bounded(vec![x.clone(), d.arg()])?)));
            }
            if let ("power" | "pow", [b, x]) = (name, f.args.as_slice()) {
                let (Some(db), Some(dx)) = (ds(b, schema), ds(x, schema)) else { return Ok(Transformed::no(e)) };
                return Ok(Transformed::yes(call(PgNumericFn::new(Op::Pow, false), bounded(vec![b.clone(), x.clone(), db.arg(), dx.arg()])?)));
            }
            if matches!(name, "log" | "log10") {
                // log(x) and log10(x) are log(10, x).
                let (b, x) = match f.args.as_slice() {
                    [x] => (lit(ScalarValue::Decimal128(Some(10), 2, 0)), x.clone()),
                    [b, x] if name == "log" => (b.clone(), x.clone()),
                    _ => return Ok(Transformed::no(e)),
                };
                let (Some(db), Some(dx)) = (ds(&b, schema), ds(&x, schema)) else { return Ok(Transformed::no(e)) };
                return Ok(Transformed::yes(call(PgNumericFn::new(Op::Log, false), bounded(vec![b, x, db.arg(), dx.arg()])?)));
            }
            if name == "round" {
                return Ok(round_places(e, schema));
            }
            Ok(Transformed::no(e))
        }
        Expr::Cast(Cast { expr, field }) => {
            let Some(d) = ds(expr, schema) else { return Ok(Transformed::no(e)) };
            let row = matches!(d, Ds::Row(_)) || matches!(d, Ds::Fixed(UNKNOWN_SCALE));
            if !row || !is_decimal(&ty(expr).unwrap_or(DataType::Null)) {
                return Ok(Transformed::no(e));
            }
            match field.data_type() {
                // `::numeric` keeps a value's own scale in PostgreSQL: no cast at all.
                t if crate::pgtypes::numeric::is_unconstrained(t) => Ok(Transformed::yes(expr.as_ref().clone())),
                DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => {
                    let text = Expr::ScalarFunction(ScalarFunction::new_udf(
                        Arc::new(ScalarUDF::new_from_impl(PgNumericText::cast())),
                        vec![expr.as_ref().clone(), d.arg()],
                    ));
                    Ok(Transformed::yes(match field.data_type() {
                        DataType::Utf8 => text,
                        _ => Expr::Cast(Cast { expr: Box::new(text), field: field.clone() }),
                    }))
                }
                _ => Ok(Transformed::no(e)),
            }
        }
        _ => Ok(Transformed::no(e)),
    }
}

fn negative_scale(t: &DataType) -> bool {
    matches!(t, DataType::Decimal32(_, s) | DataType::Decimal64(_, s) | DataType::Decimal128(_, s) if *s < 0)
}

/// `x` as a decimal of scale 0 when its type has a negative scale (itself otherwise).
fn whole(x: &Expr, t: &DataType) -> Option<Expr> {
    match t {
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s) if *s < 0 => {
            let p = *p as i32 - *s as i32;
            (p <= 38).then(|| datafusion::logical_expr::cast(x.clone(), DataType::Decimal128(p as u8, 0)))
        }
        _ => Some(x.clone()),
    }
}

/// `round(x, n)` shows `n` places in PostgreSQL even where `x` has fewer (`round(1.5, 3)` is
/// `1.500`); DataFusion keeps the input's scale then.
fn round_places(e: Expr, schema: &DFSchema) -> Transformed<Expr> {
    let Expr::ScalarFunction(f) = &e else { return Transformed::no(e) };
    let places = match f.args.get(1) {
        Some(Expr::Literal(v, _)) => match v {
            ScalarValue::Int64(Some(n)) => *n,
            ScalarValue::Int32(Some(n)) => *n as i64,
            _ => return Transformed::no(e),
        },
        _ => return Transformed::no(e),
    };
    let Ok(DataType::Decimal128(p, s)) = e.get_type(schema) else { return Transformed::no(e) };
    if places <= s as i64 || places > 38 {
        return Transformed::no(e);
    }
    let n = places as i8;
    let p = ((p as i32 - s as i32) + n as i32).clamp(n as i32, 38) as u8;
    Transformed::yes(datafusion::logical_expr::cast(e, DataType::Decimal128(p.max(1), n)))
}
