//! Running a governed plan on the engine: one admission under the caller's limits, physical
//! planning, execution apart from the connections, and the guard (statement timeout, cancel,
//! row cap) that closes the statement's audit scope when the stream ends.

use datafusion::arrow::datatypes::SchemaRef;

use crate::error::LaloError;
use crate::execution::{self, GuardOptions};
use crate::governance::limits::Slot;
use crate::governance::rules::EffectiveLimits;
use crate::governance::GovernedPlan;
use crate::session::Session;

use super::{rename, AuditScope, Delivery, Lalo, Outcome, Request};

impl Lalo {
    /// Admit the statement (unless an executor before this one did: `slot`), plan it
    /// physically and stream its rows through the guard.
    pub(super) async fn run_governed(
        &self,
        session: &Session,
        governed: GovernedPlan,
        mut scope: AuditScope,
        start: &Request,
        delivery: Delivery<'_>,
        slot: Option<Slot>,
    ) -> Result<Outcome, LaloError> {
        let governed = match self.preflight(session, governed).await {
            Ok(g) => g,
            Err(e) => return Err(scope.fail(e).await),
        };
        scope.governed(&governed);
        let slot = match slot {
            Some(s) => s,
            None => match self.admit(session, &governed.limits) {
                Ok(s) => s,
                Err(e) => return Err(scope.fail(e).await),
            },
        };
        // The start line's sync overlaps physical planning and the first batch.
        scope.start();
        let plan = governed.plan().clone();
        let schema: SchemaRef = rename(plan.schema().as_arrow(), start.names.as_deref());
        let optimized = governed.is_optimized();
        let stream = async {
            let physical = if optimized {
                // Optimized already (a cached plan): physical planning only.
                let state = session.ctx.state();
                state.query_planner().create_physical_plan(&plan, &state).await?
            } else {
                session.ctx.execute_logical_plan(plan).await?.create_physical_plan().await?
            };
            // Executed apart from the connections, so the guard's deadline is never starved; a
            // caller's scan budget holds while it runs too (what no estimate saw coming).
            let budget = governed.limits.max_scan_rows.filter(|_| self.governance.enabled()).map(crate::engine::interrupt::RowBudget::new);
            // A budget counts rows at the operators that read them: those run here.
            let physical = if budget.is_some() { crate::distributed::local(physical)? } else { physical };
            execution::execute_budgeted(physical, session.ctx.task_ctx(), budget)
        }
        .await;
        let stream = match stream {
            Ok(s) => s,
            Err(e) => return Err(scope.fail(LaloError::from(e)).await),
        };
        let opts = self.guard_options(session, &governed.limits, scope, slot, delivery);
        Ok(Outcome::Rows { schema, rows: execution::guard(stream, opts) })
    }

    /// A read lalo makes on the caller's behalf (a question's sample values): planned and
    /// governed as the caller's own statement, audited as internal, not counted against the
    /// caller's rate. Returns every batch (callers read a few rows).
    pub async fn read_internal(
        &self,
        session: &Session,
        stmt: &datafusion::sql::sqlparser::ast::Statement,
        why: &str,
    ) -> Result<Vec<datafusion::arrow::array::RecordBatch>, LaloError> {
        let start = Request { input: stmt.to_string(), sql: Some(stmt.to_string()), ..Default::default() };
        let mut scope = AuditScope::internal(self.audit.clone(), session, &start, why);
        let read = async {
            let plan = self.plan(session, stmt).await?;
            let governed = self.govern(session, plan).await?;
            scope.governed(&governed);
            let batches = session.ctx.execute_logical_plan(governed.plan().clone()).await?.collect().await?;
            Ok::<_, LaloError>(batches)
        }
        .await;
        match read {
            Ok(batches) => {
                scope.finish(batches.iter().map(|b| b.num_rows() as u64).sum()).await?;
                Ok(batches)
            }
            Err(e) => Err(scope.fail(e).await),
        }
    }

    /// Admit one statement under the caller's limits (rate, concurrency): once per statement.
    pub(super) fn admit(&self, session: &Session, limits: &EffectiveLimits) -> Result<Slot, LaloError> {
        let slot = self.governance.limits.admit(&session.user, limits, self.config.governance.rate_limit_per_minute)?;
        self.stages.admitted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(slot)
    }

    /// What the guard enforces for this statement: the tighter of the session's and the role's
    /// statement timeout, the tighter row limit, the client's cancel and cap; it takes over the
    /// audit scope.
    pub(super) fn guard_options(
        &self,
        session: &Session,
        limits: &EffectiveLimits,
        scope: AuditScope,
        slot: Slot,
        delivery: Delivery<'_>,
    ) -> GuardOptions {
        let timeout_ms = [session.derived().statement_timeout_ms, limits.statement_timeout_ms.unwrap_or(0)]
            .into_iter()
            .filter(|v| *v > 0)
            .min();
        GuardOptions {
            timeout_ms,
            max_rows: self.max_rows(limits),
            cancel: delivery.cancel,
            truncate_at: delivery.cap,
            shutdown: Some(self.shutdown.terminate.clone()),
            ..scope.into_guard(Some(slot))
        }
    }

    /// The row limit a result is held to: the gateway's and the caller's, the lower (`None`: none).
    pub(super) fn max_rows(&self, limits: &EffectiveLimits) -> Option<u64> {
        [self.config.governance.max_rows, limits.max_rows.unwrap_or(0)].into_iter().filter(|v| *v > 0).min()
    }
}
