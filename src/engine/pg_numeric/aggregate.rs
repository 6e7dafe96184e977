//! `avg`, `var_samp`, `var_pop`, `stddev_samp`, `stddev_pop` over NUMERIC and integers, as
//! PostgreSQL computes them: exact sums, the quotient at `select_div_scale`'s places
//! (`avg(x)` of 1.50, 2.25, 3.10 is `2.2833333333333333`; DataFusion's is `2.283333`, and
//! its variance a double precision). With `scale_only`, the group's display scale instead.
//! Arguments: the value, optionally its per-row display scale (for inputs that have one).
//!
//! Sums stay in `i128` and move to big integers only when they would overflow, so the common
//! case costs about what DataFusion's own `avg` does.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Field, FieldRef, Int32Type, Int64Type};
use datafusion::common::{plan_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Signature, Volatility};
use num_bigint::BigInt;
use num_traits::{ToPrimitive, Zero};

use super::arith::{self, Stat, Sums};
use super::scalar::{as_decimal, row_scale_metadata, storage_scale, stored, UNKNOWN_SCALE};

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgStat {
    /// The name the statement called it by (`stddev`, `variance`, `avg`, ...) and its aliases.
    name: String,
    aliases: Vec<String>,
    stat: Stat,
    scale_only: bool,
    signature: Signature,
}

impl PgStat {
    pub fn new(name: &str, aliases: &[String], stat: Stat, scale_only: bool) -> Self {
        let (name, aliases) = (name.to_string(), aliases.to_vec());
        PgStat { name, aliases, stat, scale_only, signature: Signature::user_defined(Volatility::Immutable) }
    }

    /// The aggregate PostgreSQL names (DataFusion's `stddev`/`variance` are these too).
    pub fn of(name: &str) -> Option<Stat> {
        Some(match name {
            "avg" | "mean" => Stat::Avg,
            "var_samp" | "var" | "variance" | "var_sample" => Stat::VarSamp,
            "var_pop" | "var_population" => Stat::VarPop,
            "stddev_samp" | "stddev" => Stat::StddevSamp,
            "stddev_pop" => Stat::StddevPop,
            _ => return None,
        })
    }

    /// For `avg`: whether this is its display-scale twin (`None` for the other statistics).
    pub fn avg_twin(&self) -> Option<bool> {
        (self.stat == Stat::Avg).then_some(self.scale_only)
    }

    /// The scale values of `numeric(p, s)` inputs give results stored at.
    fn storage(&self, p: u8, s: i8) -> i8 {
        let (int, s) = (p as i32 - s as i32, s as i32);
        match self.stat {
            Stat::Avg => storage_scale(int, 20.max(s)),
            _ => storage_scale(2 * int, 20.max(2 * s)),
        }
    }
}

impl AggregateUDFImpl for PgStat {
    fn name(&self) -> &str {
        &self.name
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    /// Many groups at once for `avg` of values that show their type's scale (no per-row
    /// display scale argument), the shape of `avg(x) ... GROUP BY k`.
    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.stat == Stat::Avg && args.exprs.len() == 1 && !args.is_distinct
    }

    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn datafusion::logical_expr::GroupsAccumulator>> {
        let input = args.expr_fields.first().map(|f| f.data_type().clone()).unwrap_or(DataType::Null);
        let (p, s) = as_decimal(&input).unwrap_or((38, 10));
        let out = match args.return_field.data_type() {
            DataType::Decimal128(_, o) => *o,
            _ => self.storage(p, s),
        };
        Ok(Box::new(super::groups::AvgGroups::new(self.scale_only, s, out)))
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, types: &[DataType]) -> Result<Vec<DataType>> {
        let Some((p, s)) = types.first().and_then(as_decimal) else { return plan_err!("{} over NUMERIC takes a number", self.name()) };
        let mut out = vec![DataType::Decimal128(p, s)];
        if types.len() > 1 {
            out.push(DataType::Int32);
        }
        Ok(out)
    }

    fn return_type(&self, types: &[DataType]) -> Result<DataType> {
        if self.scale_only {
            return Ok(DataType::Int32);
        }
        let (p, s) = types.first().and_then(as_decimal).unwrap_or((38, 10));
        Ok(DataType::Decimal128(38, self.storage(p, s)))
    }

    fn return_field(&self, fields: &[FieldRef]) -> Result<FieldRef> {
        let types: Vec<DataType> = fields.iter().map(|f| f.data_type().clone()).collect();
        let f = Field::new(self.name(), self.return_type(&types)?, true);
        Ok(Arc::new(if self.scale_only { f } else { f.with_metadata(row_scale_metadata()) }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let f = |n: &str, t: DataType| Arc::new(Field::new(format!("{}[{n}]", args.name), t, true));
        Ok(vec![f("sum", DataType::Binary), f("sum2", DataType::Binary), f("count", DataType::Int64), f("dscale", DataType::Int32)])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let input = args.expr_fields.first().map(|f| f.data_type().clone()).unwrap_or(DataType::Null);
        let (p, s) = as_decimal(&input).unwrap_or((38, 10));
        let out = match args.return_field.data_type() {
            DataType::Decimal128(_, o) => *o,
            _ => self.storage(p, s),
        };
        Ok(Box::new(StatAcc { stat: self.stat, scale_only: self.scale_only, scale: s, out, sums: Wide::default() }))
    }
}

/// Σx, Σx², count and display scale, in `i128` until a sum would overflow it.
#[derive(Debug, Default)]
struct Wide {
    sum: i128,
    sum2: i128,
    big: Option<(BigInt, BigInt)>,
    n: i64,
    dscale: u32,
}

impl Wide {
    fn add(&mut self, v: i128, sign: i64, squares: bool) {
        self.n += sign;
        if self.big.is_none() {
            let sq = if squares { v.checked_mul(v) } else { Some(0) };
            let next = sq.and_then(|sq| {
                if sign > 0 {
                    Some((self.sum.checked_add(v)?, self.sum2.checked_add(sq)?))
                } else {
                    Some((self.sum.checked_sub(v)?, self.sum2.checked_sub(sq)?))
                }
            });
            if let Some((a, b)) = next {
                self.sum = a;
                self.sum2 = b;
                return;
            }
            self.big = Some((BigInt::from(self.sum), BigInt::from(self.sum2)));
        }
        if let Some((s, s2)) = self.big.as_mut() {
            let b = BigInt::from(v);
            let sq = if squares { &b * &b } else { BigInt::zero() };
            if sign > 0 {
                *s += b;
                *s2 += sq;
            } else {
                *s -= b;
                *s2 -= sq;
            }
        }
    }

    fn sums(&self) -> Sums {
        let (sum, sum2) = match &self.big {
            Some((a, b)) => (a.clone(), b.clone()),
            None => (BigInt::from(self.sum), BigInt::from(self.sum2)),
        };
        Sums { sum, sum2, n: self.n, dscale: self.dscale }
    }

    fn merge(&mut self, other: Sums) {
        let mine = self.sums();
        let sum = mine.sum + other.sum;
        let sum2 = mine.sum2 + other.sum2;
        match (sum.to_i128(), sum2.to_i128()) {
            (Some(a), Some(b)) => {
                self.sum = a;
                self.sum2 = b;
                self.big = None;
            }
            _ => self.big = Some((sum, sum2)),
        }
        self.n += other.n;
        self.dscale = self.dscale.max(other.dscale);
    }
}

#[derive(Debug)]
struct StatAcc {
    stat: Stat,
    scale_only: bool,
    /// Scale of the input values.
    scale: i8,
    /// Scale the result is stored at.
    out: i8,
    sums: Wide,
}

impl StatAcc {
    fn apply(&mut self, values: &[ArrayRef], sign: i64) -> Result<()> {
        let Some(v) = values.first() else { return Ok(()) };
        let v = v.as_primitive::<Decimal128Type>();
        let ds = match values.get(1) {
            Some(d) => Some(cast(d, &DataType::Int32)?),
            None => None,
        };
        let ds = ds.as_ref().map(|d| d.as_primitive::<Int32Type>());
        let squares = self.stat != Stat::Avg;
        for r in 0..v.len() {
            if v.is_null(r) {
                continue;
            }
            let x = v.value(r);
            self.sums.add(x, sign, squares);
            // A row's own display scale, where it has one (the input's scale otherwise).
            if let (Some(d), true) = (ds, sign > 0) {
                let d = if d.is_null(r) { UNKNOWN_SCALE } else { d.value(r) };
                let d = if (0..=arith::MAX_DISPLAY_SCALE as i32).contains(&d) { d as u32 } else { arith::trimmed_scale(x, self.scale.max(0) as u32) };
                self.sums.dscale = self.sums.dscale.max(d);
            }
        }
        if ds.is_none() && sign > 0 && v.null_count() < v.len() {
            self.sums.dscale = self.sums.dscale.max(self.scale.max(0) as u32);
        }
        Ok(())
    }
}

impl Accumulator for StatAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.apply(values, 1)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.apply(values, -1)
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let value = arith::finish(self.stat, &self.sums.sums(), self.scale.max(0) as u32).map_err(super::scalar::arith_err)?;
        Ok(match (value, self.scale_only) {
            (None, true) => ScalarValue::Int32(None),
            (None, false) => ScalarValue::Decimal128(None, 38, self.out),
            (Some(v), true) => ScalarValue::Int32(Some(v.dscale as i32)),
            (Some(v), false) => ScalarValue::Decimal128(Some(stored(&v, self.out)?), 38, self.out),
        })
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.sums.big.as_ref().map_or(0, |(a, b)| (a.bits() + b.bits()) as usize / 8)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let s = self.sums.sums();
        Ok(vec![
            ScalarValue::Binary(Some(s.sum.to_signed_bytes_le())),
            ScalarValue::Binary(Some(s.sum2.to_signed_bytes_le())),
            ScalarValue::Int64(Some(s.n)),
            ScalarValue::Int32(Some(s.dscale as i32)),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [sum, sum2, n, d] = states else { return Ok(()) };
        let (sum, sum2) = (sum.as_binary::<i32>(), sum2.as_binary::<i32>());
        let (n, d) = (n.as_primitive::<Int64Type>(), d.as_primitive::<Int32Type>());
        for r in 0..n.len() {
            if n.is_null(r) {
                continue;
            }
            self.sums.merge(Sums {
                sum: BigInt::from_signed_bytes_le(sum.value(r)),
                sum2: BigInt::from_signed_bytes_le(sum2.value(r)),
                n: n.value(r),
                dscale: d.value(r).max(0) as u32,
            });
        }
        Ok(())
    }
}
