//! `exp`, `ln` and `log` of NUMERIC as PostgreSQL computes them: the result scale of
//! `numeric_exp`, `numeric_ln` and `numeric_log` (at least 16 significant digits, estimated
//! from the argument as PostgreSQL estimates it), the value correct to that many places.
//!
//! Computed in fixed point on big integers with guard digits well past the result's places
//! and then rounded, so the last place is PostgreSQL's (both are correctly rounded; only a
//! value within 10^-25 of a rounding boundary could round apart).

use num_bigint::BigInt;
use num_traits::{One, Signed, ToPrimitive, Zero};

use super::arith::{pow10, round_div, ArithError, Num, MAX_DISPLAY_SCALE};

/// NUMERIC_MIN_SIG_DIGITS.
const MIN_SIG: i64 = 16;
/// Guard places carried beyond the result's.
const GUARD: u32 = 25;

fn clamp_scale(r: i64, dscales: &[u32]) -> u32 {
    let r = dscales.iter().fold(r, |r, d| r.max(*d as i64)).max(0);
    r.min(MAX_DISPLAY_SCALE) as u32
}

fn to_f64(x: &Num) -> f64 {
    x.m.to_f64().unwrap_or(f64::MAX) / 10f64.powi(x.scale as i32)
}

/// `x` in fixed point with `p` places.
fn fixed(x: &Num, p: u32) -> BigInt {
    x.at(p)
}

/// `estimate_ln_dweight`: the decimal weight of ln(x), estimated as PostgreSQL does.
fn ln_dweight(x: &Num) -> i64 {
    if !x.m.is_positive() {
        return 0;
    }
    let p = x.scale.max(2);
    let v = fixed(x, p);
    let (lo, hi) = (pow10(p) * 9u8 / 10u8, pow10(p) * 11u8 / 10u8);
    if v >= lo && v <= hi {
        // ln(1 + d) ~ d: the weight of d's first digit.
        let d = Num::new(&x.m - pow10(x.scale), x.scale, x.scale);
        if d.m.is_zero() {
            return 0;
        }
        let digits = d.m.abs().to_string().len() as i64;
        return digits - 1 - d.scale as i64;
    }
    // The first eight significant digits, as PostgreSQL's first two base-10000 digits give.
    let s = x.m.to_string();
    let e10 = s.len() as i64 - 1 - x.scale as i64;
    let w = e10.div_euclid(4);
    // Digits from base-10000 weight w down to w - 1.
    let shift = x.scale as i64 + 4 * (w - 1);
    let digits = if shift >= 0 { &x.m / pow10(shift as u32) } else { &x.m * pow10((-shift) as u32) };
    let digits = digits.to_f64().unwrap_or(1.0);
    let ln = digits.ln() + (4 * (w - 1)) as f64 * std::f64::consts::LN_10;
    let ln = ln.abs().log10();
    if ln.is_finite() {
        ln as i64
    } else {
        0
    }
}

/// The scale PostgreSQL gives `exp(x)`.
pub fn exp_scale(x: &Num) -> u32 {
    let val = (to_f64(x) * 0.434294481903252).clamp(-2000.0, 2000.0);
    clamp_scale(MIN_SIG - val as i64, &[x.dscale])
}

/// The scale PostgreSQL gives `ln(x)`.
pub fn ln_scale(x: &Num) -> u32 {
    clamp_scale(MIN_SIG - ln_dweight(x), &[x.dscale])
}

/// The scale PostgreSQL gives `log(b, x)`.
pub fn log_scale(b: &Num, x: &Num) -> u32 {
    let w = ln_dweight(x) - ln_dweight(b);
    clamp_scale(MIN_SIG - w, &[b.dscale, x.dscale])
}

/// exp(v / 10^p) in fixed point with `p` places.
fn exp_fixed(v: &BigInt, p: u32) -> BigInt {
    let one = pow10(p);
    // Halve until |y| < 0.01, sum the series, square back.
    let mut k = 0u32;
    let mut y = v.clone();
    let limit = &one / 100u8;
    while y.abs() >= limit {
        y = round_div(&y, &BigInt::from(2));
        k += 1;
    }
    let mut sum = one.clone();
    let mut term = one.clone();
    let mut n = 1u32;
    loop {
        term = round_div(&(&term * &y), &(&one * BigInt::from(n)));
        if term.is_zero() {
            break;
        }
        sum += &term;
        n += 1;
    }
    for _ in 0..k {
        sum = round_div(&(&sum * &sum), &one);
    }
    sum
}

/// ln(v / 10^p) in fixed point with `p` places, `v > 0`.
fn ln_fixed(v: &BigInt, p: u32) -> BigInt {
    let one = pow10(p);
    // Square roots until within 10^-3 of 1: ln(z) = 2^k ln(z^(1/2^k)).
    let mut z = v.clone();
    let mut k = 0u32;
    let near = &one / 1000u16;
    while (&z - &one).abs() >= near {
        z = (&z * &one).sqrt();
        k += 1;
    }
    // ln(z) = 2 atanh(t), t = (z - 1) / (z + 1).
    let t = round_div(&((&z - &one) * &one), &(&z + &one));
    let t2 = round_div(&(&t * &t), &one);
    let mut sum = BigInt::zero();
    let mut power = t.clone();
    let mut n = 1u32;
    loop {
        let term = &power / BigInt::from(n);
        if term.is_zero() {
            break;
        }
        sum += term;
        power = round_div(&(&power * &t2), &one);
        n += 2;
    }
    sum * 2u8 * (BigInt::one() << k)
}

/// Working places for a result of `rscale` places whose magnitude has `int_digits` digits.
fn working(rscale: u32, int_digits: i64) -> u32 {
    rscale + GUARD + int_digits.clamp(0, 400) as u32
}

/// PostgreSQL's `exp(x)`.
pub fn exp(x: &Num) -> Result<Num, ArithError> {
    let rscale = exp_scale(x);
    let val = to_f64(x) * 0.434294481903252;
    if val > 400.0 {
        return Err(ArithError::Overflow);
    }
    let p = working(rscale, val.ceil() as i64) + 20;
    let r = exp_fixed(&fixed(x, p), p);
    Ok(Num::new(round_div(&r, &pow10(p - rscale)), rscale, rscale))
}

/// PostgreSQL's `ln(x)`.
pub fn ln(x: &Num) -> Result<Num, ArithError> {
    if x.m.is_zero() {
        return Err(ArithError::LnZero);
    }
    if x.m.is_negative() {
        return Err(ArithError::LnNegative);
    }
    let rscale = ln_scale(x);
    let p = working(rscale, 4) + x.scale;
    let r = ln_fixed(&fixed(x, p), p);
    Ok(Num::new(round_div(&r, &pow10(p - rscale)), rscale, rscale))
}

/// PostgreSQL's `log(b, x)` (and `log(x)`, `log10(x)`: base 10).
pub fn log(b: &Num, x: &Num) -> Result<Num, ArithError> {
    for v in [b, x] {
        if v.m.is_zero() {
            return Err(ArithError::LnZero);
        }
        if v.m.is_negative() {
            return Err(ArithError::LnNegative);
        }
    }
    let rscale = log_scale(b, x);
    let p = working(rscale, 4) + x.scale.max(b.scale) + 10;
    let (lb, lx) = (ln_fixed(&fixed(b, p), p), ln_fixed(&fixed(x, p), p));
    if lb.is_zero() {
        return Err(ArithError::DivisionByZero);
    }
    // lx / lb at rscale places.
    let q = round_div(&(lx * pow10(rscale)), &lb);
    Ok(Num::new(q, rscale, rscale))
}

#[cfg(test)]
mod tests {
    use super::super::arith::testing::{n, shown};
    use super::*;

    /// Each expected text is what PostgreSQL 15 prints.
    #[test]
    fn as_postgres_computes_them() {
        assert_eq!(shown(exp(&n(20, 1)).unwrap()), "7.3890560989306502");
        assert_eq!(shown(exp(&n(0, 0)).unwrap()), "1.0000000000000000");
        assert_eq!(shown(exp(&n(-30, 1)).unwrap()), "0.04978706836786394");
        assert_eq!(shown(ln(&n(15, 1)).unwrap()), "0.4054651081081644");
        assert_eq!(shown(ln(&n(10, 0)).unwrap()), "2.3025850929940457");
        assert_eq!(shown(ln(&n(1001, 3)).unwrap()), "0.0009995003330835332");
        assert_eq!(shown(log(&n(10, 0), &n(1000, 0)).unwrap()), "3.0000000000000000");
        assert_eq!(shown(log(&n(2, 0), &n(10, 0)).unwrap()), "3.3219280948873623");
        assert_eq!(shown(exp(&n(105, 1)).unwrap()), "36315.502674246638");
        assert_eq!(shown(ln(&n(123456789, 3)).unwrap()), "11.723646487185881");
        assert_eq!(shown(ln(&n(1, 4)).unwrap()), "-9.2103403719761827");
        assert_eq!(shown(log(&n(10, 0), &n(25, 1)).unwrap()), "0.3979400086720376");
        assert_eq!(ln(&n(0, 0)), Err(ArithError::LnZero));
    }
}
