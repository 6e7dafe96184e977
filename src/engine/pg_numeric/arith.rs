//! PostgreSQL's NUMERIC arithmetic where the result's scale depends on the values
//! (`numeric.c`: `select_div_scale`, `div_var` with rounding, `sqrt_var`,
//! `numeric_stddev_internal`), computed exactly on big integers.
//!
//! A value is `m / 10^scale` shown with `dscale` places: `scale` is where lalo stores it (an
//! Arrow decimal's one scale per column), `dscale` is PostgreSQL's display scale of this value,
//! which the result scale of the next division depends on.

use num_bigint::BigInt;
use num_integer::Integer;
use num_traits::{One, Signed, ToPrimitive, Zero};

/// NUMERIC_MIN_SIG_DIGITS: a quotient gets at least this many significant digits.
const MIN_SIG_DIGITS: i64 = 16;
/// NUMERIC_MAX_DISPLAY_SCALE.
pub const MAX_DISPLAY_SCALE: i64 = 1000;

/// Why a value cannot be computed: PostgreSQL's errors for the same inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArithError {
    DivisionByZero,
    NegativeSqrt,
    LnZero,
    LnNegative,
    Overflow,
    ZeroToNegative,
    FractionalExponent,
}

/// A NUMERIC value: `m / 10^scale`, displayed with `dscale` places.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Num {
    pub m: BigInt,
    pub scale: u32,
    pub dscale: u32,
}

pub fn pow10(n: u32) -> BigInt {
    BigInt::from(10u8).pow(n)
}

/// `n / d` rounded half away from zero, as PostgreSQL rounds NUMERIC.
pub fn round_div(n: &BigInt, d: &BigInt) -> BigInt {
    let (q, r) = n.div_rem(d);
    if r.is_zero() || r.abs() * 2u8 < d.abs() {
        return q;
    }
    if n.is_negative() == d.is_negative() {
        q + 1
    } else {
        q - 1
    }
}

impl Num {
    pub fn new(m: impl Into<BigInt>, scale: u32, dscale: u32) -> Num {
        Num { m: m.into(), scale, dscale }
    }

    /// An integer count.
    pub fn int(n: i64) -> Num {
        Num::new(n, 0, 0)
    }

    /// The mantissa at `scale` places, rounded half away from zero when places are dropped.
    pub fn at(&self, scale: u32) -> BigInt {
        if scale >= self.scale {
            &self.m * pow10(scale - self.scale)
        } else {
            round_div(&self.m, &pow10(self.scale - scale))
        }
    }

    /// Weight and first digit of the value in base 10000, normalized (no leading zero
    /// digit), as `select_div_scale` reads them; zero has weight 0 and first digit 0.
    fn weight_first(&self) -> (i64, i64) {
        if self.m.is_zero() {
            return (0, 0);
        }
        let a = self.m.abs();
        let e10 = a.to_string().len() as i64 - 1 - self.scale as i64;
        let w = e10.div_euclid(4);
        let shift = self.scale as i64 + 4 * w;
        let first = if shift >= 0 { a / pow10(shift as u32) } else { a * pow10((-shift) as u32) };
        (w, first.to_i64().unwrap_or(0))
    }

    /// The base-10000 weight of the value (0 for zero).
    fn weight(&self) -> i64 {
        self.weight_first().0
    }
}

/// `select_div_scale`: the scale PostgreSQL gives `a / b`.
pub fn div_scale(a: &Num, b: &Num) -> u32 {
    let (w1, f1) = a.weight_first();
    let (w2, f2) = b.weight_first();
    let mut qweight = w1 - w2;
    if f1 <= f2 {
        qweight -= 1;
    }
    let r = (MIN_SIG_DIGITS - qweight * 4).max(a.dscale as i64).max(b.dscale as i64).max(0);
    r.min(MAX_DISPLAY_SCALE) as u32
}

/// `a / b` rounded to `rscale` places.
pub fn div_at(a: &Num, b: &Num, rscale: u32) -> Result<Num, ArithError> {
    if b.m.is_zero() {
        return Err(ArithError::DivisionByZero);
    }
    // a / b = (ma / 10^sa) / (mb / 10^sb); at rscale places: ma * 10^(sb + rscale - sa) / mb.
    let e = b.scale as i64 + rscale as i64 - a.scale as i64;
    let (n, d) = if e >= 0 { (&a.m * pow10(e as u32), b.m.clone()) } else { (a.m.clone(), &b.m * pow10((-e) as u32)) };
    Ok(Num::new(round_div(&n, &d), rscale, rscale))
}

/// PostgreSQL's `a / b` for NUMERIC.
pub fn div(a: &Num, b: &Num) -> Result<Num, ArithError> {
    div_at(a, b, div_scale(a, b))
}

/// The scale PostgreSQL's `sqrt(numeric)` gives: at least 16 significant digits, never fewer
/// places than the input shows.
pub fn sqrt_scale(x: &Num) -> u32 {
    let sweight = (x.weight() + 1) * 4 / 2 - 1;
    let r = (MIN_SIG_DIGITS - sweight).max(x.dscale as i64).max(0);
    r.min(MAX_DISPLAY_SCALE) as u32
}

/// The square root of `x` rounded (half away from zero) to `rscale` places.
pub fn sqrt_at(x: &Num, rscale: u32) -> Result<Num, ArithError> {
    if x.m.is_negative() {
        return Err(ArithError::NegativeSqrt);
    }
    // sqrt(m / 10^s) * 10^r = sqrt(m * 10^(2r - s)); extra places t keep that an integer.
    let t = (x.scale as i64 - 2 * rscale as i64).max(0) as u32;
    let t = t.div_ceil(2);
    let big = &x.m * pow10(2 * (rscale + t) - x.scale);
    let root = big.sqrt();
    let unit = pow10(t);
    let q = &root / &unit;
    // Round up when sqrt(big) >= (q + 1/2) * unit, i.e. 4 * big >= ((2q + 1) * unit)^2.
    let half = (&q * 2u8 + BigInt::one()) * &unit;
    let q = if &big * 4u8 >= &half * &half { q + 1 } else { q };
    Ok(Num::new(q, rscale, rscale))
}

/// PostgreSQL's `sqrt(numeric)`.
pub fn sqrt(x: &Num) -> Result<Num, ArithError> {
    sqrt_at(x, sqrt_scale(x))
}

/// The result scale PostgreSQL 15's `power(numeric, numeric)` gives an integer exponent:
/// 16 places, or the base's if it shows more.
pub fn power_int_scale(base: &Num) -> u32 {
    (MIN_SIG_DIGITS.max(base.dscale as i64)).min(MAX_DISPLAY_SCALE) as u32
}

/// PostgreSQL's `base ^ exp` for an integer exponent, exact and rounded to its scale.
pub fn power_int(base: &Num, exp: i64, exp_dscale: u32) -> Result<Num, ArithError> {
    if base.m.is_zero() && exp < 0 {
        return Err(ArithError::ZeroToNegative);
    }
    let _ = exp_dscale;
    let rscale = power_int_scale(base);
    // Past what any NUMERIC holds (the result is stored in 38 digits anyway).
    let digits = base.m.abs().to_string().len() as f64;
    if exp.unsigned_abs() > 100_000 || (exp.abs() as f64) * digits > 20_000.0 {
        return Err(ArithError::Overflow);
    }
    let e = exp.unsigned_abs() as u32;
    let m = base.m.pow(e);
    let exact = Num::new(m, base.scale * e, base.scale * e);
    if exp >= 0 {
        return Ok(Num::new(exact.at(rscale), rscale, rscale));
    }
    div_at(&Num::int(1), &exact, rscale)
}

/// What an aggregate of NUMERIC values computes at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stat {
    Avg,
    VarSamp,
    VarPop,
    StddevSamp,
    StddevPop,
}

/// Sums over a group: Σx (at `scale`), Σx² (at `2 * scale`), the count and the largest display
/// scale of the inputs (PostgreSQL's sums show that many places).
#[derive(Clone, Debug, Default)]
pub struct Sums {
    pub sum: BigInt,
    pub sum2: BigInt,
    pub n: i64,
    pub dscale: u32,
}

/// The statistic over `sums` of values stored at `scale`; `None` where PostgreSQL answers NULL.
pub fn finish(stat: Stat, sums: &Sums, scale: u32) -> Result<Option<Num>, ArithError> {
    let n = sums.n;
    if n == 0 {
        return Ok(None);
    }
    let sum = Num::new(sums.sum.clone(), scale, sums.dscale);
    if stat == Stat::Avg {
        return div(&sum, &Num::int(n)).map(Some);
    }
    let sample = matches!(stat, Stat::VarSamp | Stat::StddevSamp);
    if sample && n <= 1 {
        return Ok(None);
    }
    // numeric_stddev_internal: (N * Σx² - (Σx)²) / (N * (N - 1)) (or N * N), at select_div_scale.
    let d2 = 2 * sums.dscale;
    let numerator = BigInt::from(n) * &sums.sum2 - &sums.sum * &sums.sum;
    if !numerator.is_positive() {
        return Ok(Some(Num::new(0, 0, 0)));
    }
    let numerator = Num::new(numerator, 2 * scale, d2);
    let denominator = if sample { BigInt::from(n) * BigInt::from(n - 1) } else { BigInt::from(n) * BigInt::from(n) };
    let denominator = Num::new(denominator, 0, 0);
    let rscale = div_scale(&numerator, &denominator);
    let variance = div_at(&numerator, &denominator, rscale)?;
    Ok(Some(match stat {
        Stat::VarSamp | Stat::VarPop => variance,
        _ => sqrt_at(&variance, rscale)?,
    }))
}

/// PostgreSQL's text for a value with `dscale` places: `0.50000000000000000000`, `-3`, `12.5`.
pub fn text(m: &BigInt, scale: u32, dscale: u32) -> String {
    let v = Num::new(m.clone(), scale, dscale).at(dscale);
    crate::pgtypes::numeric::with_point(v.is_negative(), &v.abs().to_string(), dscale as usize)
}

/// The fewest places that show `m / 10^scale` exactly (its trailing fractional zeros dropped).
pub fn trimmed_scale(m: i128, scale: u32) -> u32 {
    let mut m = m.unsigned_abs();
    let mut s = scale;
    while s > 0 && m % 10 == 0 {
        m /= 10;
        s -= 1;
    }
    if m == 0 {
        0
    } else {
        s
    }
}

/// Values written as literals and results as PostgreSQL prints them, for tests.
#[cfg(test)]
pub(super) mod testing {
    use super::*;

    /// `m / 10^scale`, shown with `scale` places.
    pub fn n(m: i64, scale: u32) -> Num {
        Num::new(m, scale, scale)
    }

    pub fn shown(x: Num) -> String {
        text(&x.m, x.scale, x.dscale)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{n, shown};
    use super::*;

    /// Each expected text is what PostgreSQL 15 prints.
    #[test]
    fn division_as_postgres_divides() {
        assert_eq!(shown(div(&n(1, 0), &n(30, 1)).unwrap()), "0.33333333333333333333");
        assert_eq!(shown(div(&n(5, 0), &n(5, 0)).unwrap()), "1.00000000000000000000");
        assert_eq!(shown(div(&n(6, 0), &n(5, 0)).unwrap()), "1.2000000000000000");
        assert_eq!(shown(div(&n(105, 1), &n(2, 0)).unwrap()), "5.2500000000000000");
        assert_eq!(shown(div(&n(10, 1), &n(7, 0)).unwrap()), "0.14285714285714285714");
        assert_eq!(shown(div(&n(-2, 0), &n(3, 0)).unwrap()), "-0.66666666666666666667");
        assert_eq!(shown(div(&n(0, 0), &n(3, 0)).unwrap()), "0.00000000000000000000");
        assert_eq!(shown(div(&n(1, 0), &n(30000, 0)).unwrap()), "0.000033333333333333333333");
        assert_eq!(shown(div(&n(123456789, 2), &n(7, 0)).unwrap()), "176366.841428571429");
        assert_eq!(div(&n(1, 0), &n(0, 2)), Err(ArithError::DivisionByZero));
    }

    #[test]
    fn square_roots_as_postgres_takes_them() {
        assert_eq!(shown(sqrt(&n(2, 0)).unwrap()), "1.414213562373095");
        assert_eq!(shown(sqrt(&n(0, 0)).unwrap()), "0.000000000000000");
        assert_eq!(shown(sqrt(&n(1000000, 0)).unwrap()), "1000.0000000000000");
        assert_eq!(shown(sqrt(&n(2, 4)).unwrap()), "0.01414213562373095");
        assert_eq!(sqrt(&n(-1, 0)), Err(ArithError::NegativeSqrt));
    }

    #[test]
    fn integer_powers_as_postgres_raises_them() {
        assert_eq!(shown(power_int(&n(20, 1), 3, 0).unwrap()), "8.0000000000000000");
        assert_eq!(shown(power_int(&n(15, 1), 2, 0).unwrap()), "2.2500000000000000");
        assert_eq!(shown(power_int(&n(2, 0), -2, 0).unwrap()), "0.2500000000000000");
        assert_eq!(shown(power_int(&n(123456789, 4), 3, 0).unwrap()), "1881676371789.1548608970690000");
        assert_eq!(shown(power_int(&n(5, 0), 0, 0).unwrap()), "1.0000000000000000");
        assert_eq!(shown(power_int(&n(-3, 1), 3, 1).unwrap()), "-0.0270000000000000");
        assert_eq!(power_int(&n(0, 0), -1, 0), Err(ArithError::ZeroToNegative));
    }

    #[test]
    fn statistics_as_postgres_aggregates() {
        // Values 1.50, 2.25, 3.10 (scale 2).
        let xs = [150i64, 225, 310];
        let sums = Sums {
            sum: xs.iter().map(|x| BigInt::from(*x)).sum(),
            sum2: xs.iter().map(|x| BigInt::from(x * x)).sum(),
            n: 3,
            dscale: 2,
        };
        let get = |s| shown(finish(s, &sums, 2).unwrap().unwrap());
        assert_eq!(get(Stat::Avg), "2.2833333333333333");
        assert_eq!(get(Stat::VarSamp), "0.64083333333333333333");
        assert_eq!(get(Stat::StddevSamp), "0.80052066390152186585");
        assert_eq!(get(Stat::VarPop), "0.42722222222222222222");
        let one = Sums { sum: BigInt::from(5), sum2: BigInt::from(25), n: 1, dscale: 0 };
        assert_eq!(finish(Stat::VarSamp, &one, 0).unwrap(), None);
        assert_eq!(shown(finish(Stat::VarPop, &one, 0).unwrap().unwrap()), "0");
    }
}
