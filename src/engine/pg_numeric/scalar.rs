//! The scalar functions: NUMERIC division and `sqrt` with PostgreSQL's values, the display
//! scale each row gets from them, and the text a value is shown with at that scale.
//!
//! Each value function has a twin answering the row's display scale (`scale_only`): the
//! value is stored at one scale per column, the scale PostgreSQL shows travels beside it
//! (see [`super::scales`]).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Array, Int32Array, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Field, FieldRef, Int32Type};
use datafusion::common::{exec_err, plan_err, DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};
use num_bigint::BigInt;
use num_traits::{ToPrimitive, Zero};

use super::arith::{self, ArithError, Num};
use super::transcendental;
use crate::error::LaloError;

/// Field metadata marking a NUMERIC whose display scale PostgreSQL chooses per row.
pub const ROW_SCALE_KEY: &str = "lalo.numeric_scale";

pub fn row_scale_metadata() -> HashMap<String, String> {
    HashMap::from([(ROW_SCALE_KEY.to_string(), "row".to_string())])
}

/// Whether a field holds a NUMERIC with a per-row display scale.
pub fn row_scaled(f: &Field) -> bool {
    f.metadata().contains_key(ROW_SCALE_KEY)
}

/// A display scale no row has (PostgreSQL shows at most 1000 places): "not known here",
/// shown with trailing zeros dropped.
pub const UNKNOWN_SCALE: i32 = 10_000;
/// The display scale of a NUMERIC without a declared scale (`Decimal128(38, 10)`): each
/// value's own places, trailing zeros dropped.
pub const TRIMMED_SCALE: i32 = -1;

/// The decimal type lalo computes a NUMERIC operand in; integers are NUMERIC with scale 0.
pub fn as_decimal(t: &DataType) -> Option<(u8, i8)> {
    Some(match t {
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s) if *p <= 38 && *s >= 0 => (*p, *s),
        DataType::Int8 | DataType::UInt8 => (3, 0),
        DataType::Int16 | DataType::UInt16 => (5, 0),
        DataType::Int32 | DataType::UInt32 => (10, 0),
        DataType::Int64 => (19, 0),
        DataType::UInt64 => (20, 0),
        DataType::Null => (1, 0),
        _ => return None,
    })
}

fn coerce(t: &DataType) -> Result<DataType> {
    match as_decimal(t) {
        Some((p, s)) => Ok(DataType::Decimal128(p, s)),
        None => plan_err!("expected a numeric argument, got {t}"),
    }
}

/// The scale a result of `int_digits` integer digits is stored at: `floor` places (what
/// PostgreSQL shows for most values) and up to four more where 38 digits leave room; not
/// more, so that arithmetic on the result (`x / y * 100`) keeps integer digits to work with.
pub fn storage_scale(int_digits: i32, floor: i32) -> i8 {
    let floor = floor.clamp(0, 38);
    (38 - int_digits).min(floor + 4).max(floor).clamp(0, 38) as i8
}

pub(super) fn lalo_err(e: LaloError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

pub(super) fn arith_err(e: ArithError) -> DataFusionError {
    lalo_err(match e {
        ArithError::DivisionByZero => LaloError::Data { code: "22012", message: "division by zero".into() },
        ArithError::NegativeSqrt => LaloError::Data { code: "2201F", message: "cannot take square root of a negative number".into() },
        ArithError::LnZero => LaloError::Data { code: "2201E", message: "cannot take logarithm of zero".into() },
        ArithError::LnNegative => LaloError::Data { code: "2201E", message: "cannot take logarithm of a negative number".into() },
        ArithError::Overflow => LaloError::Data { code: "22003", message: "value overflows numeric format".into() },
        ArithError::ZeroToNegative => LaloError::Data { code: "2201F", message: "zero raised to a negative power is undefined".into() },
        ArithError::FractionalExponent => LaloError::NotSupported(
            "power() of NUMERIC with a fractional exponent: lalo's engine computes it in double precision only (cast an argument to double precision)".into(),
        ),
    })
}

/// A computed value as stored at `scale` in a `Decimal128(38, scale)` column.
pub(super) fn stored(v: &Num, scale: i8) -> Result<i128> {
    let scale = scale.max(0) as u32;
    if v.dscale > scale {
        return Err(lalo_err(LaloError::NotSupported(format!(
            "a NUMERIC result with {} places after the point: lalo's engine holds {scale} here (round it or cast it to numeric(p,s))",
            v.dscale
        ))));
    }
    let m = v.at(scale);
    match m.to_i128() {
        Some(x) if x.unsigned_abs() < 10u128.pow(38) => Ok(x),
        _ => Err(lalo_err(LaloError::Data { code: "22003", message: "value overflows numeric in lalo's engine (38 digits)".into() })),
    }
}

/// An operand: its stored value and its display scale (`TRIMMED_SCALE`, `UNKNOWN_SCALE` or places).
pub(super) fn operand(v: i128, scale: i8, dscale: i32) -> Num {
    let scale = scale.max(0) as u32;
    // Not known (or no declared scale): the value's own places, as it is shown.
    let d = if dscale < 0 || dscale as i64 > arith::MAX_DISPLAY_SCALE {
        arith::trimmed_scale(v, scale)
    } else {
        dscale as u32
    };
    Num::new(BigInt::from(v), scale, d)
}

fn decimals(a: &ColumnarValue, n: usize) -> Result<(ArrayRef, i8)> {
    let arr = a.to_array(n)?;
    let DataType::Decimal128(_, s) = *arr.data_type() else { return exec_err!("expected a decimal argument, got {}", arr.data_type()) };
    Ok((arr, s))
}

fn scales(a: &ColumnarValue, n: usize) -> Result<ArrayRef> {
    Ok(cast(&a.to_array(n)?, &DataType::Int32)?)
}

fn finish(out: ArrayRef, scalar: bool) -> Result<ColumnarValue> {
    Ok(if scalar { ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?) } else { ColumnarValue::Array(out) })
}

/// An exponent that is a whole number (`3`, `2.0`), as PostgreSQL raises by multiplying.
fn integer(e: &Num) -> Result<i64, ArithError> {
    let p = arith::pow10(e.scale);
    if !(&e.m % &p).is_zero() {
        return Err(ArithError::FractionalExponent);
    }
    (&e.m / &p).to_i64().filter(|v| v.unsigned_abs() <= i32::MAX as u64).ok_or(ArithError::Overflow)
}

/// Which value the function computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Div,
    Sqrt,
    Exp,
    Ln,
    /// `log(b, x)`.
    Log,
    /// `power(x, n)` for an integer `n`.
    Pow,
}

/// `a / b` or `sqrt(x)` on NUMERIC (`scale_only`: the row's display scale instead). Arguments:
/// the operands, then each operand's display scale.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgNumericFn {
    op: Op,
    scale_only: bool,
    /// The other names PostgreSQL has for the function (`pow`, `log10`): rules on functions
    /// hold whichever the statement wrote.
    aliases: Vec<String>,
    signature: Signature,
}

impl PgNumericFn {
    pub fn new(op: Op, scale_only: bool) -> Self {
        let aliases = match op {
            Op::Pow => vec!["pow".to_string()],
            Op::Log => vec!["log10".to_string()],
            _ => vec![],
        };
        PgNumericFn { op, scale_only, aliases, signature: Signature::user_defined(Volatility::Immutable) }
    }

    /// Stands for an operator the statement wrote (`/`) or for a display scale lalo tracks,
    /// not for a function the statement called.
    pub fn is_operator(&self) -> bool {
        self.op == Op::Div || self.scale_only
    }

    /// The function answering this value's display scale (`None` for a scale function).
    pub fn scale_twin(&self) -> Option<PgNumericFn> {
        (!self.scale_only).then(|| PgNumericFn::new(self.op, true))
    }

    fn operands(&self) -> usize {
        match self.op {
            Op::Div | Op::Log | Op::Pow => 2,
            Op::Sqrt | Op::Exp | Op::Ln => 1,
        }
    }

    /// The scale the value is stored at for operands of these types.
    fn storage(&self, types: &[(u8, i8)]) -> i8 {
        match (self.op, types) {
            // A quotient is at most |a| / 10^-s2: (p1 - s1) + s2 integer digits.
            (Op::Div, [(p1, s1), (_, s2)]) => {
                storage_scale((*p1 as i32 - *s1 as i32) + *s2 as i32, 20.max(*s1 as i32).max(*s2 as i32))
            }
            (Op::Sqrt, [(p, s)]) => storage_scale((*p as i32 - *s as i32 + 1) / 2, 20.max(*s as i32)),
            // ln and log of a numeric(p, s) have few integer digits; exp's grow with the argument
            // (a value past 38 digits is an error when it is stored).
            (Op::Ln | Op::Exp, [(_, s)]) => storage_scale(4, 20.max(*s as i32)),
            (Op::Log, [(_, s1), (_, s2)]) => storage_scale(4, 20.max(*s1 as i32).max(*s2 as i32)),
            // A square's integer digits, at least 16 places (the result scale's floor).
            (Op::Pow, [(p1, s1), _]) => storage_scale(2 * (*p1 as i32 - *s1 as i32), 16.max(*s1 as i32)),
            _ => 20,
        }
    }
}

impl ScalarUDFImpl for PgNumericFn {
    fn name(&self) -> &str {
        match (self.op, self.scale_only) {
            (Op::Div, false) => "pg_numeric_div",
            (Op::Div, true) => "pg_numeric_div_scale",
            (Op::Sqrt, false) => "sqrt",
            (Op::Sqrt, true) => "pg_numeric_sqrt_scale",
            (Op::Exp, false) => "exp",
            (Op::Exp, true) => "pg_numeric_exp_scale",
            (Op::Ln, false) => "ln",
            (Op::Ln, true) => "pg_numeric_ln_scale",
            (Op::Log, false) => "log",
            (Op::Log, true) => "pg_numeric_log_scale",
            (Op::Pow, false) => "power",
            (Op::Pow, true) => "pg_numeric_power_scale",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn coerce_types(&self, types: &[DataType]) -> Result<Vec<DataType>> {
        let k = self.operands();
        if types.len() != 2 * k {
            return plan_err!("{} takes {} arguments", self.name(), 2 * k);
        }
        let mut out = Vec::with_capacity(types.len());
        for t in &types[..k] {
            out.push(coerce(t)?);
        }
        out.extend(std::iter::repeat_n(DataType::Int32, k));
        Ok(out)
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        datafusion::common::internal_err!("return_field_from_args should be called instead")
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        if self.scale_only {
            return Ok(Arc::new(Field::new(self.name(), DataType::Int32, true)));
        }
        let types: Vec<(u8, i8)> = args.arg_fields[..self.operands()].iter().map(|f| as_decimal(f.data_type()).unwrap_or((38, 10))).collect();
        let t = DataType::Decimal128(38, self.storage(&types));
        Ok(Arc::new(Field::new(self.name(), t, true).with_metadata(row_scale_metadata())))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let k = self.operands();
        let scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        // All-constant arguments are one row, whatever the batch's row count.
        let n = if scalar { 1 } else { n };
        let mut values = Vec::with_capacity(k);
        let mut ds = Vec::with_capacity(k);
        for i in 0..k {
            values.push(decimals(&args.args[i], n)?);
            ds.push(scales(&args.args[k + i], n)?);
        }
        let out_scale = match args.return_field.data_type() {
            DataType::Decimal128(_, s) => *s,
            _ => 0,
        };
        let mut value_out: Vec<Option<i128>> = Vec::new();
        let mut scale_out: Vec<Option<i32>> = Vec::new();
        let len = if scalar { 1 } else { n };
        for r in 0..len {
            let mut nums = Vec::with_capacity(k);
            for i in 0..k {
                let (arr, s) = &values[i];
                let d = ds[i].as_primitive::<Int32Type>();
                if arr.is_null(r) {
                    break;
                }
                let dv = if d.is_null(r) { UNKNOWN_SCALE } else { d.value(r) };
                nums.push(operand(arr.as_primitive::<Decimal128Type>().value(r), *s, dv));
            }
            if nums.len() < k {
                value_out.push(None);
                scale_out.push(None);
                continue;
            }
            let rscale = match self.op {
                Op::Div => arith::div_scale(&nums[0], &nums[1]),
                Op::Sqrt => arith::sqrt_scale(&nums[0]),
                Op::Exp => transcendental::exp_scale(&nums[0]),
                Op::Ln => transcendental::ln_scale(&nums[0]),
                Op::Log => transcendental::log_scale(&nums[0], &nums[1]),
                Op::Pow => arith::power_int_scale(&nums[0]),
            };
            if self.scale_only {
                scale_out.push(Some(rscale as i32));
                continue;
            }
            let v = match self.op {
                Op::Div => arith::div_at(&nums[0], &nums[1], rscale),
                Op::Sqrt => arith::sqrt_at(&nums[0], rscale),
                Op::Exp => transcendental::exp(&nums[0]),
                Op::Ln => transcendental::ln(&nums[0]),
                Op::Log => transcendental::log(&nums[0], &nums[1]),
                Op::Pow => integer(&nums[1]).and_then(|e| arith::power_int(&nums[0], e, nums[1].dscale)),
            }
            .map_err(arith_err)?;
            value_out.push(Some(stored(&v, out_scale)?));
        }
        let out: ArrayRef = if self.scale_only {
            Arc::new(Int32Array::from(scale_out))
        } else {
            Arc::new(Decimal128Array::from(value_out).with_precision_and_scale(38, out_scale)?)
        };
        finish(out, scalar)
    }
}

/// A NUMERIC value as PostgreSQL writes it with the row's display scale: the text the wire,
/// COPY and the HTTP API send. Marked `pg.type = numeric` so it is described as NUMERIC.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgNumericText {
    /// A cast to text the statement wrote: the result is text, not a NUMERIC shown as text.
    cast: bool,
    signature: Signature,
}

impl PgNumericText {
    pub fn shown() -> Self {
        PgNumericText { cast: false, signature: Signature::user_defined(Volatility::Immutable) }
    }

    pub fn cast() -> Self {
        PgNumericText { cast: true, signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for PgNumericText {
    fn name(&self) -> &str {
        "pg_numeric_text"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, types: &[DataType]) -> Result<Vec<DataType>> {
        match types {
            [v, _] => Ok(vec![coerce(v)?, DataType::Int32]),
            _ => plan_err!("pg_numeric_text takes a value and its scale"),
        }
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, _: ReturnFieldArgs) -> Result<FieldRef> {
        let f = Field::new(self.name(), DataType::Utf8, true);
        Ok(Arc::new(if self.cast { f } else { f.with_metadata(crate::pgtypes::numeric::text_metadata()) }))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let n = if scalar { 1 } else { args.number_rows };
        let (values, s) = decimals(&args.args[0], n)?;
        let values = values.as_primitive::<Decimal128Type>();
        let d = scales(&args.args[1], n)?;
        let d = d.as_primitive::<Int32Type>();
        let len = if scalar { 1 } else { n };
        let mut b = StringBuilder::with_capacity(len, len * 12);
        for r in 0..len {
            if values.is_null(r) {
                b.append_null();
                continue;
            }
            let dv = if d.is_null(r) { UNKNOWN_SCALE } else { d.value(r) };
            let num = operand(values.value(r), s, dv);
            b.append_value(arith::text(&num.m, num.scale, num.dscale));
        }
        finish(Arc::new(b.finish()), scalar)
    }
}
