//! `+`, `-` and `*` of NUMERIC (Decimal128) values without a per-value overflow test when the
//! operands' magnitudes in a batch show that none can overflow. Arrow's decimal kernels rescale
//! and check every value (`mul_checked` then `add_checked`, one fallible closure per row); in
//! TPC-H Q01 `1 - l_discount`, `1 + l_tax` and their products took two fifths of the query's CPU.
//! The answer and its type are arrow's; a batch whose bounds do not prove safety goes through
//! arrow's checked kernel and raises its overflow error as before.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Array, RecordBatch};
use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::datatypes::{DataType, Decimal128Type, FieldRef, Schema, DECIMAL128_MAX_PRECISION, DECIMAL128_MAX_SCALE};
use datafusion::common::{internal_err, Result, ScalarValue};
use datafusion::logical_expr::interval_arithmetic::Interval;
use datafusion::logical_expr::sort_properties::ExprProperties;
use datafusion::logical_expr::{ColumnarValue, Operator};
use datafusion::physical_expr::expressions::BinaryExpr;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr_common::datum::apply;

/// A checked `l op r` over two Decimal128 operands (`op` is `+`, `-` or `*`).
#[derive(Debug)]
pub struct DecimalArith {
    /// The same operation as DataFusion plans it (checked): its type, display and estimates,
    /// and the children.
    inner: Arc<BinaryExpr>,
}

impl DecimalArith {
    /// `l op r`, checked; the fast form when both operands are Decimal128 in `schema`.
    pub fn make(l: Arc<dyn PhysicalExpr>, op: Operator, r: Arc<dyn PhysicalExpr>, schema: &Schema) -> Arc<dyn PhysicalExpr> {
        let inner = Arc::new(BinaryExpr::new(l, op, r).with_fail_on_overflow(true));
        let decimal = |e: &Arc<dyn PhysicalExpr>| matches!(e.data_type(schema), Ok(DataType::Decimal128(_, _)));
        if matches!(op, Operator::Plus | Operator::Minus | Operator::Multiply) && decimal(inner.left()) && decimal(inner.right()) {
            Arc::new(DecimalArith { inner })
        } else {
            inner
        }
    }

    /// The operands and operator, for rules that re-make the expression in another form.
    pub fn parts(&self) -> (&Arc<dyn PhysicalExpr>, Operator, &Arc<dyn PhysicalExpr>) {
        (self.inner.left(), *self.inner.op(), self.inner.right())
    }
}

/// One operand: its values (one for a scalar), whether it is a scalar, precision and scale.
struct Side<'a> {
    values: &'a [i128],
    scalar: Option<i128>,
    precision: u8,
    scale: i8,
}

impl<'a> Side<'a> {
    fn of(v: &'a ColumnarValue) -> Option<Self> {
        match v {
            ColumnarValue::Array(a) => {
                let DataType::Decimal128(p, s) = a.data_type() else { return None };
                let d = a.as_primitive::<Decimal128Type>();
                Some(Side { values: d.values(), scalar: None, precision: *p, scale: *s })
            }
            // A NULL constant gives an all-NULL answer: arrow's kernel handles it.
            ColumnarValue::Scalar(ScalarValue::Decimal128(Some(x), p, s)) => {
                Some(Side { values: &[], scalar: Some(*x), precision: *p, scale: *s })
            }
            _ => None,
        }
    }

    /// A bound on the values' magnitudes (NULL slots included: they are computed too).
    fn max_abs(&self) -> Option<u128> {
        match self.scalar {
            Some(x) => Some(x.unsigned_abs()),
            None => magnitude_bound(self.values),
        }
    }
}

/// A power of two at least every value's magnitude, `None` past 2^126. One pass of OR over
/// each value's bits with its sign folded away (`x ^ (x >> 127)` is |x| - 1 for a negative x),
/// which the compiler vectorizes; a maximum of magnitudes would compare 128-bit values one by
/// one.
pub fn magnitude_bound(values: &[i128]) -> Option<u128> {
    let bits = values.iter().fold(0u128, |m, &x| m | (x ^ (x >> 127)) as u128);
    let width = 128 - bits.leading_zeros();
    (width <= 126).then(|| 1u128 << width)
}

/// `10^k` as i128, if it fits.
fn pow10(k: i8) -> Option<i128> {
    u32::try_from(k).ok().and_then(|k| 10i128.checked_pow(k))
}

/// The answer without per-value checks, or `None` when this batch's bounds do not prove that
/// no value overflows (or the shapes are not two Decimal128 operands, one of them an array).
fn fast(l: &ColumnarValue, op: Operator, r: &ColumnarValue) -> Option<ArrayRef> {
    let (a, b) = (Side::of(l)?, Side::of(r)?);
    if a.scalar.is_some() && b.scalar.is_some() {
        return None;
    }
    let (am, bm) = (a.max_abs()?, b.max_abs()?);
    // Arrow's result types (Hive's rules), so the answer is the kernel's to the bit.
    let (precision, scale, lm, rm) = match op {
        Operator::Plus | Operator::Minus => {
            let scale = a.scale.max(b.scale);
            let whole = (a.precision as i8 - a.scale).max(b.precision as i8 - b.scale);
            let precision = (scale.saturating_add(whole) as u8).saturating_add(1).min(DECIMAL128_MAX_PRECISION);
            let (lm, rm) = (pow10(scale - a.scale)?, pow10(scale - b.scale)?);
            // |a·lm ± b·rm| ≤ am·lm + bm·rm must stay within i128.
            let bound = am.checked_mul(lm as u128)?.checked_add(bm.checked_mul(rm as u128)?)?;
            if bound > i128::MAX as u128 {
                return None;
            }
            (precision, scale, lm, rm)
        }
        Operator::Multiply => {
            let scale = a.scale.checked_add(b.scale)?;
            // Arrow refuses a product's scale past the maximum: its kernel raises that error.
            if scale > DECIMAL128_MAX_SCALE {
                return None;
            }
            let precision = a.precision.saturating_add(b.precision + 1).min(DECIMAL128_MAX_PRECISION);
            if am.checked_mul(bm)? > i128::MAX as u128 {
                return None;
            }
            (precision, scale, 1, 1)
        }
        _ => return None,
    };
    // Within the bounds no operation below wraps; wrapping forms keep a debug build from
    // asserting on what the bounds already exclude. A constant is rescaled once, and each
    // shape gets its own loop (no test of the operator or a multiplication by 1 per value).
    let (l, r) = (Operand::of(l, &a, lm)?, Operand::of(r, &b, rm)?);
    let out = match (op, lm == 1 || l.is_scalar(), rm == 1 || r.is_scalar()) {
        (Operator::Plus, true, true) => run(l, r, |x, y| x.wrapping_add(y)),
        (Operator::Plus, false, true) => run(l, r, move |x, y| x.wrapping_mul(lm).wrapping_add(y)),
        (Operator::Plus, true, false) => run(l, r, move |x, y| x.wrapping_add(y.wrapping_mul(rm))),
        (Operator::Plus, false, false) => run(l, r, move |x, y| x.wrapping_mul(lm).wrapping_add(y.wrapping_mul(rm))),
        (Operator::Minus, true, true) => run(l, r, |x, y| x.wrapping_sub(y)),
        (Operator::Minus, false, true) => run(l, r, move |x, y| x.wrapping_mul(lm).wrapping_sub(y)),
        (Operator::Minus, true, false) => run(l, r, move |x, y| x.wrapping_sub(y.wrapping_mul(rm))),
        (Operator::Minus, false, false) => run(l, r, move |x, y| x.wrapping_mul(lm).wrapping_sub(y.wrapping_mul(rm))),
        _ => run(l, r, |x, y| x.wrapping_mul(y)),
    }?;
    out.with_precision_and_scale(precision, scale).ok().map(|a| Arc::new(a) as ArrayRef)
}

/// One operand of the loop: an array, or a constant already multiplied by its rescale factor.
enum Operand<'a> {
    Array(&'a Decimal128Array),
    Scalar(i128),
}

impl<'a> Operand<'a> {
    fn of(v: &'a ColumnarValue, side: &Side<'_>, factor: i128) -> Option<Self> {
        match (v, side.scalar) {
            (ColumnarValue::Array(a), _) => Some(Operand::Array(a.as_primitive::<Decimal128Type>())),
            (_, Some(x)) => Some(Operand::Scalar(x.wrapping_mul(factor))),
            _ => None,
        }
    }

    fn is_scalar(&self) -> bool {
        matches!(self, Operand::Scalar(_))
    }
}

/// `f` over the operands' values (a constant operand comes pre-rescaled: `f` must not rescale
/// it again, which the callers' shapes ensure).
fn run(l: Operand<'_>, r: Operand<'_>, f: impl Fn(i128, i128) -> i128) -> Option<Decimal128Array> {
    match (l, r) {
        (Operand::Array(x), Operand::Array(y)) => datafusion::arrow::compute::binary(x, y, f).ok(),
        (Operand::Scalar(x), Operand::Array(y)) => Some(y.unary(|v| f(x, v))),
        (Operand::Array(x), Operand::Scalar(y)) => Some(x.unary(|v| f(v, y))),
        (Operand::Scalar(_), Operand::Scalar(_)) => None,
    }
}

impl PhysicalExpr for DecimalArith {
    fn return_field(&self, input_schema: &Schema) -> Result<FieldRef> {
        self.inner.return_field(input_schema)
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        let l = self.inner.left().evaluate(batch)?;
        let r = self.inner.right().evaluate(batch)?;
        if let Some(a) = fast(&l, *self.inner.op(), &r) {
            return Ok(ColumnarValue::Array(a));
        }
        match self.inner.op() {
            Operator::Plus => apply(&l, &r, numeric::add),
            Operator::Minus => apply(&l, &r, numeric::sub),
            Operator::Multiply => apply(&l, &r, numeric::mul),
            op => internal_err!("decimal arithmetic with {op}"),
        }
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![self.inner.left(), self.inner.right()]
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn PhysicalExpr>>) -> Result<Arc<dyn PhysicalExpr>> {
        let [l, r]: [Arc<dyn PhysicalExpr>; 2] = match children.try_into() {
            Ok(c) => c,
            Err(_) => return internal_err!("decimal arithmetic takes two operands"),
        };
        let inner = Arc::new(BinaryExpr::new(l, *self.inner.op(), r).with_fail_on_overflow(true));
        Ok(Arc::new(DecimalArith { inner }))
    }

    fn evaluate_bounds(&self, children: &[&Interval]) -> Result<Interval> {
        self.inner.evaluate_bounds(children)
    }

    fn propagate_constraints(&self, interval: &Interval, children: &[&Interval]) -> Result<Option<Vec<Interval>>> {
        self.inner.propagate_constraints(interval, children)
    }

    fn get_properties(&self, children: &[ExprProperties]) -> Result<ExprProperties> {
        self.inner.get_properties(children)
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt_sql(f)
    }
}

impl fmt::Display for DecimalArith {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl PartialEq for DecimalArith {
    fn eq(&self, other: &Self) -> bool {
        self.inner.as_ref() == other.inner.as_ref()
    }
}

impl Eq for DecimalArith {}

impl Hash for DecimalArith {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::Field;
    use datafusion::physical_expr::expressions::{col, lit};

    fn batch(a: Vec<Option<i128>>, b: Vec<Option<i128>>, pa: (u8, i8), pb: (u8, i8)) -> RecordBatch {
        let x = Decimal128Array::from(a).with_precision_and_scale(pa.0, pa.1).unwrap();
        let y = Decimal128Array::from(b).with_precision_and_scale(pb.0, pb.1).unwrap();
        let schema = Schema::new(vec![Field::new("a", x.data_type().clone(), true), Field::new("b", y.data_type().clone(), true)]);
        RecordBatch::try_new(Arc::new(schema), vec![Arc::new(x), Arc::new(y)]).unwrap()
    }

    /// The fast form and DataFusion's checked BinaryExpr give the same array or both fail.
    fn same(batch: &RecordBatch, l: Arc<dyn PhysicalExpr>, op: Operator, r: Arc<dyn PhysicalExpr>) -> Result<ArrayRef> {
        let fast = DecimalArith::make(l.clone(), op, r.clone(), batch.schema_ref());
        assert!(fast.downcast_ref::<DecimalArith>().is_some());
        let slow = BinaryExpr::new(l, op, r).with_fail_on_overflow(true);
        let got = fast.evaluate(batch).and_then(|v| v.into_array(batch.num_rows()));
        let want = slow.evaluate(batch).and_then(|v| v.into_array(batch.num_rows()));
        match (&got, &want) {
            (Ok(g), Ok(w)) => {
                assert_eq!(g.as_ref(), w.as_ref());
                assert_eq!(g.data_type(), &fast.data_type(batch.schema_ref()).unwrap());
            }
            (Err(_), Err(_)) => {}
            _ => panic!("fast {got:?} vs checked {want:?}"),
        }
        got
    }

    #[test]
    fn answers_as_arrows_checked_kernels() {
        let b = batch(vec![Some(12345), None, Some(-99999), Some(0)], vec![Some(5), Some(7), None, Some(-100)], (15, 2), (15, 2));
        let s = b.schema();
        for op in [Operator::Plus, Operator::Minus, Operator::Multiply] {
            same(&b, col("a", &s).unwrap(), op, col("b", &s).unwrap()).unwrap();
            // 1 - l_discount: a constant at another scale on the left
            same(&b, lit(ScalarValue::Decimal128(Some(1), 10, 0)), op, col("b", &s).unwrap()).unwrap();
            same(&b, col("a", &s).unwrap(), op, lit(ScalarValue::Decimal128(Some(3), 20, 4))).unwrap();
            // a NULL constant: every answer NULL
            same(&b, col("a", &s).unwrap(), op, lit(ScalarValue::Decimal128(None, 10, 0))).unwrap();
        }
        // two arrays at different scales: either one is rescaled
        let c = batch(vec![Some(12345), Some(-7), None], vec![Some(5), Some(-123456), Some(1)], (15, 2), (12, 4));
        let s = c.schema();
        for op in [Operator::Plus, Operator::Minus, Operator::Multiply] {
            same(&c, col("a", &s).unwrap(), op, col("b", &s).unwrap()).unwrap();
            same(&c, col("b", &s).unwrap(), op, col("a", &s).unwrap()).unwrap();
        }
    }

    #[test]
    fn an_overflow_is_still_an_error() {
        let big = i128::MAX / 3;
        let b = batch(vec![Some(big), Some(1)], vec![Some(big), Some(2)], (38, 0), (38, 0));
        let s = b.schema();
        assert!(same(&b, col("a", &s).unwrap(), Operator::Multiply, col("b", &s).unwrap()).is_err());
        assert!(same(&b, col("a", &s).unwrap(), Operator::Plus, lit(ScalarValue::Decimal128(Some(i128::MAX - 1), 38, 0))).is_err());
        // rescaling is where an addition overflows: 10^37 at scale 0 plus a value at scale 2
        let c = batch(vec![Some(10i128.pow(37))], vec![Some(1)], (38, 0), (38, 2));
        let s = c.schema();
        assert!(same(&c, col("a", &s).unwrap(), Operator::Minus, col("b", &s).unwrap()).is_err());
    }

    #[test]
    fn magnitude_bounds_cover_every_value() {
        for v in [0i128, 1, -1, 99, -100, 10i128.pow(15), -(10i128.pow(15)), 1 << 100, -(1 << 100)] {
            let b = magnitude_bound(&[v]).unwrap();
            assert!(v.unsigned_abs() <= b && b <= v.unsigned_abs().max(1) * 2, "{v}: {b}");
        }
        assert_eq!(magnitude_bound(&[]), Some(1));
        assert_eq!(magnitude_bound(&[i128::MIN]), None);
        assert_eq!(magnitude_bound(&[i128::MAX / 2 + 1]), None);
    }

    #[test]
    fn other_types_keep_datafusions_expression() {
        let s = Schema::new(vec![Field::new("i", DataType::Int64, false)]);
        let e = DecimalArith::make(col("i", &s).unwrap(), Operator::Plus, lit(1i64), &s);
        assert!(e.downcast_ref::<BinaryExpr>().is_some());
    }
}
