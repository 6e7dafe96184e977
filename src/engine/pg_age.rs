//! PostgreSQL's `age(timestamp, timestamp)` and `age(timestamp)`: the difference as a symbolic
//! interval of years, months and days (`age('2001-04-10', '1957-06-13')` = `43 years 9 mons 27 days`),
//! which DataFusion lacks. Over upstream tables it is pushed down by name.

use std::sync::Arc;

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, IntervalMonthDayNanoBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, IntervalMonthDayNano, IntervalUnit, TimeUnit, TimestampNanosecondType};
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgAge {
    signature: Signature,
}

impl PgAge {
    pub fn new() -> Self {
        let ts = |tz: Option<Arc<str>>| DataType::Timestamp(TimeUnit::Nanosecond, tz);
        let utc: Option<Arc<str>> = Some("+00:00".into());
        let mut sigs = Vec::new();
        for a in [ts(None), ts(utc.clone()), DataType::Date32] {
            sigs.push(TypeSignature::Exact(vec![a.clone()]));
            for b in [ts(None), ts(utc.clone()), DataType::Date32] {
                sigs.push(TypeSignature::Exact(vec![a.clone(), b]));
            }
        }
        Self { signature: Signature::one_of(sigs, Volatility::Stable) }
    }
}

fn days_in_month(year: i32, month: u32) -> i64 {
    let (ny, nm) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    match (NaiveDate::from_ymd_opt(ny, nm, 1), NaiveDate::from_ymd_opt(year, month, 1)) {
        (Some(a), Some(b)) => (a - b).num_days(),
        _ => 30,
    }
}

/// PostgreSQL's field-wise subtraction with borrowing (timestamp_age).
pub fn age(a: NaiveDateTime, b: NaiveDateTime) -> IntervalMonthDayNano {
    if a < b {
        let r = age(b, a);
        return IntervalMonthDayNano::new(-r.months, -r.days, -r.nanoseconds);
    }
    let mut nanos = a.nanosecond() as i64 - b.nanosecond() as i64;
    let mut sec = a.second() as i64 - b.second() as i64;
    let mut min = a.minute() as i64 - b.minute() as i64;
    let mut hour = a.hour() as i64 - b.hour() as i64;
    let mut day = a.day() as i64 - b.day() as i64;
    let mut mon = a.month() as i64 - b.month() as i64;
    let mut year = (a.year() - b.year()) as i64;
    if nanos < 0 {
        nanos += 1_000_000_000;
        sec -= 1;
    }
    if sec < 0 {
        sec += 60;
        min -= 1;
    }
    if min < 0 {
        min += 60;
        hour -= 1;
    }
    if hour < 0 {
        hour += 24;
        day -= 1;
    }
    while day < 0 {
        // Borrow the length of the earlier timestamp's month, as PostgreSQL does.
        day += days_in_month(b.year(), b.month());
        mon -= 1;
    }
    while mon < 0 {
        mon += 12;
        year -= 1;
    }
    let time = ((hour * 60 + min) * 60 + sec) * 1_000_000_000 + nanos;
    IntervalMonthDayNano::new((year * 12 + mon) as i32, day as i32, time)
}

fn to_naive(array: &ArrayRef) -> Result<Vec<Option<NaiveDateTime>>> {
    let ts = cast(array, &DataType::Timestamp(TimeUnit::Nanosecond, None))?;
    let ts = ts.as_primitive::<TimestampNanosecondType>();
    Ok((0..ts.len())
        .map(|i| if ts.is_null(i) { None } else { chrono::DateTime::from_timestamp_nanos(ts.value(i)).naive_utc().into() })
        .collect())
}

impl ScalarUDFImpl for PgAge {
    fn name(&self) -> &str {
        "age"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Interval(IntervalUnit::MonthDayNano))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let (a, b) = match arrays.as_slice() {
            [b] => {
                // age(x) is measured from today's midnight.
                let today = chrono::Utc::now().date_naive().and_hms_opt(0, 0, 0);
                (vec![today; b.len()], to_naive(b)?)
            }
            [a, b] => (to_naive(a)?, to_naive(b)?),
            _ => return exec_err!("age takes one or two timestamps"),
        };
        let mut out = IntervalMonthDayNanoBuilder::with_capacity(n);
        for (x, y) in a.into_iter().zip(b) {
            match (x, y) {
                (Some(x), Some(y)) => out.append_value(age(x, y)),
                _ => out.append_null(),
            }
        }
        let result: ArrayRef = Arc::new(out.finish());
        if args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&result, 0)?));
        }
        Ok(ColumnarValue::Array(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn matches_postgresql() {
        // Days borrow the length of the second argument's month (January: 31): 1 year 1 mon 17 days.
        assert_eq!(age(at("2024-03-01 00:00:00"), at("2023-01-15 00:00:00")), IntervalMonthDayNano::new(13, 17, 0));
        // SELECT age('2001-04-10', '1957-06-13') → 43 years 9 mons 27 days (PostgreSQL docs)
        assert_eq!(age(at("2001-04-10 00:00:00"), at("1957-06-13 00:00:00")), IntervalMonthDayNano::new(43 * 12 + 9, 27, 0));
        assert_eq!(age(at("2020-01-01 00:00:00"), at("2020-01-02 12:00:00")), IntervalMonthDayNano::new(0, -1, -12 * 3_600_000_000_000));
    }
}
