//! Pre-flight budgets: before a governed statement runs for a caller with `max_scan_rows` or
//! `max_scan_bytes`, estimate from its optimized plan and the tables' sizes how many rows it
//! reads — every table scan (subqueries included) plus, for each join without equality keys
//! (a cross join, a nested loop over a range condition), the pairs it must examine — and how
//! many bytes (rows × the widths of the columns read). Over a limit, the statement is refused
//! with 54000 and the estimate in the hint, before any row is read.

mod estimate;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::RwLock;

use super::rules::EffectiveLimits;
use crate::error::LaloError;

/// Table sizes are data: re-read after this long.
const SIZE_TTL: Duration = Duration::from_secs(600);
/// How long the per-user usage window is.
const HOUR: Duration = Duration::from_secs(3600);

/// Row counts per table (`db.schema.table`) and distinct counts per join key column
/// (`db.schema.table.column`), measured once and kept for [`SIZE_TTL`].
#[derive(Debug, Default)]
pub struct Sizes {
    rows: RwLock<HashMap<String, (u64, Instant)>>,
    distinct: RwLock<HashMap<String, (u64, Instant)>>,
}

impl Sizes {
    pub fn get(&self, table: &str) -> Option<u64> {
        self.rows.read().get(table).filter(|(_, at)| at.elapsed() < SIZE_TTL).map(|(n, _)| *n)
    }

    pub fn set(&self, table: &str, rows: u64) {
        self.rows.write().insert(table.to_string(), (rows, Instant::now()));
    }

    /// Distinct values of `table`'s `column`.
    pub fn distinct(&self, table: &str, column: &str) -> Option<u64> {
        self.distinct.read().get(&format!("{table}.{column}")).filter(|(_, at)| at.elapsed() < SIZE_TTL).map(|(n, _)| *n)
    }

    pub fn set_distinct(&self, table: &str, column: &str, n: u64) {
        self.distinct.write().insert(format!("{table}.{column}"), (n, Instant::now()));
    }
}

/// A statement's estimate.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Estimate {
    /// Rows read by scans plus rows joins produce (for a join without keys, every pair).
    pub rows: u64,
    pub bytes: u64,
    /// The share of `rows` that joins produce.
    pub join_pairs: u64,
    /// What could not be sized: tables whose size is not known (table functions among them),
    /// recursive queries.
    pub unknown: Vec<String>,
}

impl Estimate {
    /// The estimate as a person reads it.
    pub fn describe(&self) -> String {
        let mut s = format!("estimated {} rows and {} read", self.rows, human_bytes(self.bytes));
        if self.join_pairs > 0 {
            s.push_str(&format!(", of which {} rows produced by joins", self.join_pairs));
        }
        s
    }
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "kB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{b} bytes") } else { format!("{v:.1} {}", UNITS[u]) }
}

pub use estimate::{estimate, needed, Lookup, Needed};

/// Refuse (54000) an estimate over the caller's scan limits, or one that could not be made
/// (a table function, a recursive query, a table whose size could not be read): for a caller
/// with a budget, what cannot be estimated does not run.
pub fn check(est: &Estimate, limits: &EffectiveLimits) -> Result<(), LaloError> {
    if limits.max_scan_rows.is_none() && limits.max_scan_bytes.is_none() {
        return Ok(());
    }
    if !est.unknown.is_empty() {
        return Err(LaloError::OverBudget {
            message: "statement refused before it ran: its scan cannot be estimated under your scan budget".into(),
            hint: Some(format!(
                "no size is known for {}; read tables of the catalog instead, or ask an administrator to lift max_scan_rows / max_scan_bytes",
                est.unknown.join(", ")
            )),
        });
    }
    let over = match (limits.max_scan_rows, limits.max_scan_bytes) {
        (Some(max), _) if est.rows > max => Some(format!("{} rows estimated, over the limit of {max} rows", est.rows)),
        (_, Some(max)) if est.bytes > max => {
            Some(format!("{} estimated, over the limit of {}", human_bytes(est.bytes), human_bytes(max)))
        }
        _ => None,
    };
    match over {
        None => Ok(()),
        Some(why) => Err(LaloError::OverBudget {
            message: format!("statement refused before it ran: scan budget exceeded ({why})"),
            hint: Some(format!(
                "{}; narrow the statement (filters on keys, a join condition, fewer columns) or ask an administrator for a larger max_scan_rows / max_scan_bytes",
                est.describe()
            )),
        }),
    }
}

/// Per-user totals of what was estimated and admitted in the current hour.
#[derive(Debug, Default)]
pub struct Usage {
    users: RwLock<HashMap<String, UserUsage>>,
}

/// One user's hour.
#[derive(Debug, Clone)]
pub struct UserUsage {
    pub since: Instant,
    pub statements: u64,
    pub refused: u64,
    pub rows: u64,
    pub bytes: u64,
}

impl Usage {
    /// Count one estimated statement (`refused` when it was over budget).
    pub fn record(&self, user: &str, est: &Estimate, refused: bool) {
        let mut map = self.users.write();
        let u = map.entry(user.to_string()).or_insert_with(|| UserUsage { since: Instant::now(), statements: 0, refused: 0, rows: 0, bytes: 0 });
        if u.since.elapsed() >= HOUR {
            *u = UserUsage { since: Instant::now(), statements: 0, refused: 0, rows: 0, bytes: 0 };
        }
        if refused {
            u.refused += 1;
        } else {
            u.statements += 1;
            u.rows = u.rows.saturating_add(est.rows);
            u.bytes = u.bytes.saturating_add(est.bytes);
        }
    }

    /// Every user's current hour.
    pub fn snapshot(&self) -> Vec<(String, UserUsage)> {
        let mut v: Vec<(String, UserUsage)> =
            self.users.read().iter().filter(|(_, u)| u.since.elapsed() < HOUR).map(|(k, u)| (k.clone(), u.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_names_the_estimate() {
        let est = Estimate { rows: 2_000_000, bytes: 64 << 20, join_pairs: 1_000_000, unknown: vec![] };
        let limits = EffectiveLimits { max_scan_rows: Some(1_000_000), ..Default::default() };
        let e = check(&est, &limits).unwrap_err();
        assert_eq!(e.sqlstate(), "54000");
        let hint = e.hint().unwrap();
        assert!(hint.contains("2000000 rows") && hint.contains("64.0 MB") && hint.contains("produced by joins"), "{hint}");
        assert!(check(&est, &EffectiveLimits { max_scan_rows: Some(3_000_000), ..Default::default() }).is_ok());
        assert!(check(&est, &EffectiveLimits { max_scan_bytes: Some(1 << 20), ..Default::default() }).is_err());
        let unknown = Estimate { unknown: vec!["lalo.public.generate_series()".into()], ..Default::default() };
        let e = check(&unknown, &limits).unwrap_err();
        assert!(e.hint().unwrap().contains("generate_series"), "{e:?}");
        assert!(check(&unknown, &EffectiveLimits::default()).is_ok(), "no budget, no estimate needed");
    }
}
