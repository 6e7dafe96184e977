//! The pre-flight budget check (governance/scan_budget.rs) on the engine's path: the governed
//! plan optimized, the tables it scans measured once (row counts, cached), the estimate checked
//! against the caller's `max_scan_rows` / `max_scan_bytes` and counted in their hour's usage.
//! Callers without such limits pay nothing here.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::views::SeeAll;
use crate::error::LaloError;
use crate::governance::scan_budget;
use crate::governance::GovernedPlan;
use crate::session::Session;

use super::Lalo;

/// How long measuring one table's size may take before it counts as unknown.
const MEASURE_TIMEOUT: Duration = Duration::from_secs(10);

impl Lalo {
    /// Whether statements of this session's caller are estimated before they run.
    pub(super) fn has_scan_budget(&self, session: &Session) -> bool {
        if !self.governance.enabled() {
            return false;
        }
        let l = self.governance.limits_for(&self.subject(session));
        l.max_scan_rows.is_some() || l.max_scan_bytes.is_some()
    }

    /// Estimate `governed` and refuse it over the caller's scan budget; the estimate joins the
    /// statement's rules (so the audit record carries it). Returns the plan optimized.
    pub(super) async fn preflight(&self, session: &Session, governed: GovernedPlan) -> Result<GovernedPlan, LaloError> {
        let limits = governed.limits;
        if !self.governance.enabled() || (limits.max_scan_rows.is_none() && limits.max_scan_bytes.is_none()) {
            return Ok(governed);
        }
        let mut governed = governed.optimize(&session.ctx.state())?;
        let (db, schema) = (session.database.as_str(), "public");
        let (needed, unknown) = scan_budget::needed(governed.plan(), db, schema);
        // What has no size at all is refused before anything is measured for it.
        if !unknown.is_empty() {
            let est = scan_budget::Estimate { unknown, ..Default::default() };
            self.governance.usage.record(&session.user, &est, true);
            return Err(scan_budget::check(&est, &limits).err().unwrap_or_else(|| LaloError::Internal("unchecked estimate".into())));
        }
        let sizes = &self.governance.sizes;
        for table in &needed.tables {
            if sizes.get(table).is_none() {
                if let Some(rows) = self.measure(session, table, None).await {
                    sizes.set(table, rows);
                }
            }
        }
        for (table, column) in &needed.keys {
            if sizes.distinct(table, column).is_none() {
                if let Some(n) = self.measure(session, table, Some(column)).await {
                    sizes.set_distinct(table, column, n);
                }
            }
        }
        let lookup = scan_budget::Lookup {
            db,
            schema,
            rows: &|t| sizes.get(t),
            distinct: &|t, c| sizes.distinct(t, c),
        };
        let est = scan_budget::estimate(governed.plan(), &lookup);
        let verdict = scan_budget::check(&est, &limits);
        self.governance.usage.record(&session.user, &est, verdict.is_err());
        verdict?;
        governed.rules.push(format!("scan estimate: {}", est.describe()));
        Ok(governed)
    }

    /// Rows in `table` (`db.schema.table`), or distinct values of one of its columns, counted
    /// by lalo itself (not the caller: a row filter does not make a scan read fewer rows).
    async fn measure(&self, session: &Session, table: &str, column: Option<&str>) -> Option<u64> {
        let mut parts = table.splitn(3, '.');
        let (d, s, t) = (parts.next()?, parts.next()?, parts.next()?);
        let q = |i: &str| format!("\"{}\"", i.replace('"', "\"\""));
        let what = match column {
            Some(c) => format!("count(DISTINCT {})", q(c)),
            None => "count(*)".into(),
        };
        let sql = format!("SELECT {what} FROM {}.{}.{}", q(d), q(s), q(t));
        let ctx = self.engine.session_context(d, &session.user, Arc::new(SeeAll), session.settings.clone()).ok()?;
        let count = async {
            let batches = ctx.sql(&sql).await?.collect().await?;
            let col = batches.first().map(|b| b.column(0).clone());
            let n = col.and_then(|c| c.as_any().downcast_ref::<datafusion::arrow::array::Int64Array>().map(|a| a.value(0)));
            Ok::<_, datafusion::error::DataFusionError>(n)
        };
        match tokio::time::timeout(MEASURE_TIMEOUT, count).await {
            Ok(Ok(n)) => n.map(|n| n.max(0) as u64),
            Ok(Err(e)) => {
                tracing::warn!(table, error = %e, "table size for the scan budget not measured");
                None
            }
            Err(_) => None,
        }
    }
}
