//! `date_part` and `EXTRACT` with PostgreSQL's result types and fractions.
//!
//! DataFusion answers both with one function that returns `Int32` for most fields: the seconds
//! of `12:00:12.5` come back as `12`, a silent wrong answer. PostgreSQL's `date_part(text, x)`
//! returns `double precision` (`12.5`), and `EXTRACT(field FROM x)` returns `numeric` whose
//! scale is fixed by the field: 6 for seconds and an epoch of a timestamp, time or interval
//! (`12.500000`), 3 for milliseconds, 0 otherwise. Both are exact here: seconds, milliseconds
//! and an epoch are computed from whole microseconds; an interval's epoch counts a year as
//! 365.25 days and a month as 30, as PostgreSQL does. Other fields are DataFusion's.
//!
//! The compatibility parser turns `EXTRACT(f FROM x)` into a call of `extract('f', x)` (the
//! SQL planner would otherwise make it `date_part`); the unparser writes it back as `EXTRACT`
//! for an upstream, which answers the same.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Array, Float64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Field, FieldRef, Int32Type, Int64Type, IntervalMonthDayNanoType, IntervalUnit, TimeUnit,
};
use datafusion::common::{exec_err, not_impl_err, Result, ScalarValue};
use datafusion::functions::datetime::date_part::DatePartFunc;
use datafusion::logical_expr::{ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature};

/// A field whose value lalo computes from microseconds; the rest are DataFusion's.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Part {
    Second,
    Millisecond,
    Microsecond,
    Epoch,
    Other,
}

fn part_of(name: &str) -> Part {
    match name.trim().trim_matches(|c| c == '\'' || c == '"').to_ascii_lowercase().as_str() {
        "second" | "seconds" | "sec" | "secs" | "s" => Part::Second,
        "millisecond" | "milliseconds" | "ms" | "msec" | "msecs" | "msecond" | "mseconds" => Part::Millisecond,
        "microsecond" | "microseconds" | "us" | "usec" | "usecs" | "usecond" | "useconds" => Part::Microsecond,
        "epoch" => Part::Epoch,
        _ => Part::Other,
    }
}

/// Fields of the time of day, which PostgreSQL does not extract from a date.
fn time_of_day(name: &str) -> bool {
    let n = name.trim().trim_matches(|c| c == '\'' || c == '"').to_ascii_lowercase();
    part_of(&n) != Part::Other && part_of(&n) != Part::Epoch || matches!(n.as_str(), "hour" | "hours" | "h" | "hr" | "hrs" | "minute" | "minutes" | "m" | "min" | "mins")
}

/// `date_part` (double precision) or `extract` (numeric).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgDatePart {
    inner: DatePartFunc,
    numeric: bool,
}

impl PgDatePart {
    pub fn date_part() -> Self {
        PgDatePart { inner: DatePartFunc::new(), numeric: false }
    }

    pub fn extract() -> Self {
        PgDatePart { inner: DatePartFunc::new(), numeric: true }
    }

    /// The numeric result's scale for a field of a value of this type.
    fn scale(part: Part, arg: &DataType) -> i8 {
        match (part, arg) {
            (Part::Epoch, DataType::Date32 | DataType::Date64) => 0,
            (Part::Second | Part::Epoch, _) => 6,
            (Part::Millisecond, _) => 3,
            _ => 0,
        }
    }
}

const NUMERIC_PRECISION: u8 = 38;

impl ScalarUDFImpl for PgDatePart {
    fn name(&self) -> &str {
        if self.numeric {
            "extract"
        } else {
            "date_part"
        }
    }

    fn aliases(&self) -> &[String] {
        if self.numeric {
            &[]
        } else {
            self.inner.aliases()
        }
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        datafusion::common::internal_err!("return_field_from_args should be called instead")
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let name = match args.scalar_arguments.first() {
            Some(Some(v)) => v.try_as_str().flatten().unwrap_or_default().to_string(),
            _ => return exec_err!("{}: the field must be a constant string", self.name()),
        };
        let arg = args.arg_fields.get(1).map(|f| f.data_type().clone()).unwrap_or(DataType::Null);
        if self.numeric && matches!(arg, DataType::Date32 | DataType::Date64) && time_of_day(&name) {
            return not_impl_err!("unit \"{}\" not supported for type date", name.to_ascii_lowercase());
        }
        // DataFusion's own check of the field (an unknown field is refused here, at planning).
        self.inner.return_field_from_args(args)?;
        let nullable = true;
        let t = if self.numeric {
            DataType::Decimal128(NUMERIC_PRECISION, Self::scale(part_of(&name), &arg))
        } else {
            DataType::Float64
        };
        Ok(Arc::new(Field::new(self.name(), t, nullable)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = match &args.args[0] {
            ColumnarValue::Scalar(s) => s.try_as_str().flatten().unwrap_or_default().to_string(),
            _ => return exec_err!("{}: the field must be a constant string", self.name()),
        };
        let scalar = matches!(args.args[1], ColumnarValue::Scalar(_));
        let value = args.args[1].to_array(args.number_rows)?;
        let part = part_of(&name);
        // (whole units, how many of them make one of the result): microseconds for the fields
        // computed here, DataFusion's integer otherwise.
        let (units, per_one): (Vec<Option<i128>>, i128) = match part {
            Part::Other => {
                let out = self.inner.invoke_with_args(args)?.to_array(value.len())?;
                (whole(&out)?, 1)
            }
            Part::Epoch => epoch(&value)?,
            // An interval's seconds are those of its time within the minute, fraction kept.
            _ if matches!(value.data_type(), DataType::Interval(_)) => {
                let mdn = cast(&value, &DataType::Interval(IntervalUnit::MonthDayNano))?;
                let micros = mdn.as_primitive::<IntervalMonthDayNanoType>().iter();
                let micros = micros.map(|v| v.map(|v| (v.nanoseconds / 1_000 % 60_000_000) as i128)).collect();
                (micros, per_unit(part))
            }
            _ => {
                let field = ScalarValue::Utf8(Some("microsecond".into()));
                let micro = ScalarFunctionArgs {
                    args: vec![ColumnarValue::Scalar(field), ColumnarValue::Array(value.clone())],
                    arg_fields: args.arg_fields.clone(),
                    number_rows: value.len(),
                    return_field: Arc::new(Field::new("date_part", DataType::Int32, true)),
                    config_options: args.config_options.clone(),
                };
                let out = self.inner.invoke_with_args(micro)?.to_array(value.len())?;
                (whole(&out)?, per_unit(part))
            }
        };
        let out: ArrayRef = if self.numeric {
            // The units at the field's scale: microseconds are 10^6 per second, so at scale 6
            // they are the digits as they are; an epoch of a date counts whole seconds.
            let scale = Self::scale(part, value.data_type());
            let rescale = 10i128.pow(scale as u32);
            let digits = units.iter().map(|u| u.map(|u| u * rescale / per_one));
            Arc::new(Decimal128Array::from_iter(digits).with_precision_and_scale(NUMERIC_PRECISION, scale)?)
        } else {
            Arc::new(Float64Array::from_iter(units.iter().map(|u| u.map(|u| u as f64 / per_one as f64))))
        };
        Ok(if scalar { ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?) } else { ColumnarValue::Array(out) })
    }
}

/// Microseconds in one unit of the field.
fn per_unit(part: Part) -> i128 {
    match part {
        Part::Second => 1_000_000,
        Part::Millisecond => 1_000,
        _ => 1,
    }
}

/// DataFusion's integer answer as i128 values.
fn whole(a: &ArrayRef) -> Result<Vec<Option<i128>>> {
    Ok(match a.data_type() {
        DataType::Int32 => a.as_primitive::<Int32Type>().iter().map(|v| v.map(i128::from)).collect(),
        DataType::Int64 => a.as_primitive::<Int64Type>().iter().map(|v| v.map(i128::from)).collect(),
        other => return exec_err!("date_part: unexpected result type {other}"),
    })
}

/// Seconds since 1970-01-01 (a timestamp), since midnight (a time) or in all (an interval), as
/// (whole units, units per second): microseconds, or whole seconds for a date.
fn epoch(a: &ArrayRef) -> Result<(Vec<Option<i128>>, i128)> {
    const MICROS_PER_DAY: i128 = 86_400_000_000;
    Ok(match a.data_type() {
        DataType::Timestamp(_, tz) => {
            let micros = cast(a, &DataType::Timestamp(TimeUnit::Microsecond, tz.clone()))?;
            let micros = cast(&micros, &DataType::Int64)?;
            (micros.as_primitive::<Int64Type>().iter().map(|v| v.map(i128::from)).collect(), 1_000_000)
        }
        DataType::Date32 => (a.as_primitive::<Date32Type>().iter().map(|d| d.map(|d| d as i128 * 86_400)).collect(), 1),
        DataType::Date64 | DataType::Time32(_) | DataType::Time64(_) => {
            let micros = match a.data_type() {
                DataType::Date64 => cast(a, &DataType::Int64)?,
                _ => cast(&cast(a, &DataType::Time64(TimeUnit::Microsecond))?, &DataType::Int64)?,
            };
            let factor = if matches!(a.data_type(), DataType::Date64) { 1_000 } else { 1 };
            (micros.as_primitive::<Int64Type>().iter().map(|v| v.map(|v| v as i128 * factor)).collect(), 1_000_000)
        }
        DataType::Interval(_) => {
            let mdn = cast(a, &DataType::Interval(IntervalUnit::MonthDayNano))?;
            let values = mdn.as_primitive::<IntervalMonthDayNanoType>().iter().map(|v| {
                v.map(|v| {
                    // A year is 365.25 days and a month 30 (PostgreSQL's interval_part).
                    let (years, months) = (v.months as i128 / 12, v.months as i128 % 12);
                    let quarter_days = 1461 * years + 120 * months + 4 * v.days as i128;
                    quarter_days * MICROS_PER_DAY / 4 + v.nanoseconds as i128 / 1_000
                })
            });
            (values.collect(), 1_000_000)
        }
        other => return exec_err!("date_part: no epoch for type {other}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_as_postgresql_spells_them() {
        assert_eq!(part_of("SECONDS"), Part::Second);
        assert_eq!(part_of("'msec'"), Part::Millisecond);
        assert_eq!(part_of("epoch"), Part::Epoch);
        assert_eq!(part_of("dow"), Part::Other);
        assert!(time_of_day("hour") && time_of_day("second") && !time_of_day("epoch") && !time_of_day("doy"));
    }
}
