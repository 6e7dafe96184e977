//! Dates and timestamps as PostgreSQL writes them in text (ISO DateStyle): `2024-01-31`,
//! `2024-01-31 10:00:00.5`, `0044-03-15 BC`. Shared by the encoder and by text casts.

/// Days since 1970-01-01 as PostgreSQL's ISO text (`YYYY-MM-DD`), without a format-string parse
/// per value (chrono's strftime path was a sixth of the time of a date-heavy result).
pub fn iso_date(days: i32, out: &mut String) {
    // Civil-from-days (H. Hinnant), valid for the whole i32 range.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    use std::fmt::Write;
    if (1..=9999).contains(&y) {
        let _ = write!(out, "{y:04}-{m:02}-{d:02}");
    } else if y < 1 {
        let _ = write!(out, "{:04}-{m:02}-{d:02} BC", 1 - y);
    } else {
        let _ = write!(out, "{y}-{m:02}-{d:02}");
    }
}

/// A timestamp in microseconds as PostgreSQL's text: `YYYY-MM-DD HH:MM:SS[.ffffff]`, trailing
/// zeros of the fraction trimmed (PostgreSQL prints `13:14:15`, not `13:14:15.000000`).
pub fn iso_timestamp(micros: i64, out: &mut String) {
    use std::fmt::Write;
    let days = micros.div_euclid(86_400_000_000);
    let rem = micros.rem_euclid(86_400_000_000);
    let (secs, frac) = (rem / 1_000_000, rem % 1_000_000);
    let mut date = String::with_capacity(16);
    iso_date(days as i32, &mut date);
    let (date, bc) = match date.strip_suffix(" BC") {
        Some(d) => (d.to_string(), true),
        None => (date, false),
    };
    let _ = write!(out, "{date} {:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if frac != 0 {
        let digits = format!("{frac:06}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    if bc {
        out.push_str(" BC");
    }
}

/// A value in `unit` as microseconds.
pub fn to_micros(v: i64, unit: &datafusion::arrow::datatypes::TimeUnit) -> i64 {
    use datafusion::arrow::datatypes::TimeUnit;
    match unit {
        TimeUnit::Second => v.saturating_mul(1_000_000),
        TimeUnit::Millisecond => v.saturating_mul(1_000),
        TimeUnit::Microsecond => v,
        TimeUnit::Nanosecond => v.div_euclid(1_000),
    }
}

