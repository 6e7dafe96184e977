//! SQL statements: one statement-cache lookup; on a miss one plan and one governance, which
//! choose the executor (direct upstream | embedded cached plan | planned each time) for every
//! later execution under the same stamp; then that executor runs the statement.

use std::sync::Arc;

use datafusion::common::{ParamValues, ScalarValue};
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::Statement;

use crate::error::LaloError;
use crate::governance::GovernedPlan;
use crate::plan_cache::{self, Executor};
use crate::session::Session;

use super::direct::Direct;
use super::{AuditScope, Delivery, Lalo, Outcome, Request};

/// Where a SQL statement's plan comes from.
pub enum Source<'a> {
    /// Text: the statement as sent, and the same with its comparison literals lifted into
    /// parameters (the cache's form of it).
    Text { original: &'a Statement, lifted: Statement },
    /// A statement the extended protocol parsed: its plan with placeholders, `None` when it was
    /// parsed under other settings and is planned again.
    Bound { statement: &'a Statement, plan: Option<&'a LogicalPlan> },
}

/// A SQL statement ready for the cache: where its plan comes from, its cache key, and the values
/// that fill its parameters in this execution.
pub struct Sql<'a> {
    pub source: Source<'a>,
    pub key: std::borrow::Cow<'a, str>,
    pub values: Vec<ScalarValue>,
}

impl Lalo {
    /// Run one SQL statement under `scope`.
    pub(super) async fn run_sql(
        &self,
        session: &Session,
        sql: Sql<'_>,
        scope: AuditScope,
        start: &Request,
        delivery: Delivery<'_>,
    ) -> Result<Outcome, LaloError> {
        let stamp = self.stamp(session);
        // The executor chosen when the statement was first seen under this stamp; on a miss, its
        // one plan and one governance (`ready`: that governed plan with this execution's values).
        let (executor, fresh) = match self.executor(session, &sql, stamp).await {
            Ok(found) => found,
            Err(e) => return Err(scope.fail(e).await),
        };
        let ready = fresh.and_then(|g| bind(&g, &sql.values));
        let (scope, slot, delivery, ready) = match executor.as_ref() {
            Executor::Direct(dp) => {
                match self.run_direct(session, dp, sql.values.clone(), scope, start, delivery, (stamp, &sql.key)).await {
                    Direct::Done(result) => return result,
                    // Ran on the engine with the decision already made.
                    Direct::FellOut { scope, slot, delivery } => {
                        let ready = ready.or_else(|| bind(&dp.governed, &sql.values));
                        (scope, slot, delivery, ready)
                    }
                }
            }
            Executor::Embedded(cached) => match cached.bind(&sql.values) {
                Some(g) => {
                    crate::metrics::cached_plan();
                    return self.run_governed(session, g, scope, start, delivery, None).await;
                }
                None => (scope, None, delivery, ready),
            },
            // The PostgreSQL lane keeps its entries under keys of its own; never one of these.
            Executor::Postgres(_) => (scope, None, delivery, ready),
            Executor::Planned(checked) => {
                // A decision made ahead of this execution (Describe) is taken once.
                let ahead = checked.take();
                let ready = ready.or_else(|| ahead.and_then(|g| bind(&g, &sql.values)));
                (scope, None, delivery, ready)
            }
        };
        let governed = match ready {
            Some(g) => g,
            None => match self.plan_afresh(session, &sql).await {
                Ok(g) => g,
                Err(e) => return Err(scope.fail(e).await),
            },
        };
        self.run_governed(session, governed, scope, start, delivery, slot).await
    }

    /// The cached executor for `sql`, or the one its first plan and governance choose (then
    /// remembered) with that governed plan. A refusal is not remembered: the next execution is
    /// governed again.
    pub(super) async fn executor(
        &self,
        session: &Session,
        sql: &Sql<'_>,
        stamp: plan_cache::Stamp,
    ) -> Result<(Arc<Executor>, Option<GovernedPlan>), LaloError> {
        let found = crate::telemetry::traced_sync("cache", None, || session.statements.lock().get(stamp, &sql.key));
        crate::metrics::plan_cache(matches!(found, Some(Some(_))));
        if let Some(Some(hit)) = found {
            return Ok((hit, None));
        }
        let plan = match &sql.source {
            Source::Text { original, lifted } => match self.plan(session, lifted).await {
                Ok(p) => p,
                // Lifting the literals changed what plans: the statement is planned as sent, each
                // time (its own error, if it has one, is the client's).
                Err(_) => {
                    let governed = self.govern(session, self.plan(session, original).await?).await?;
                    let executor = self.remember(session, stamp, &sql.key, Executor::planned());
                    return Ok((executor, Some(governed)));
                }
            },
            Source::Bound { plan: Some(plan), .. } => (*plan).clone(),
            // Parsed under other settings: planned again for this execution, not cached.
            Source::Bound { plan: None, .. } => return Ok((Arc::new(Executor::planned()), None)),
        };
        let governed = self.govern(session, plan).await?;
        let executor = self.choose(session, sql, &governed).await;
        let executor = self.remember(session, stamp, &sql.key, executor);
        Ok((executor, Some(governed)))
    }

    fn remember(&self, session: &Session, stamp: plan_cache::Stamp, key: &str, executor: Executor) -> Arc<Executor> {
        let executor = Arc::new(executor);
        session.statements.lock().put(stamp, key.to_string(), Some(executor.clone()));
        executor
    }

    /// The executor for a governed plan: wholly on one upstream when it can be, else the
    /// engine from a cached optimized plan when the plan means the same at any time, else
    /// planned each time.
    async fn choose(&self, session: &Session, sql: &Sql<'_>, governed: &GovernedPlan) -> Executor {
        let ups = self.engine.upstreams();
        // A caller with a scan budget runs on the engine, which estimates every statement first.
        if ups.get(&session.database).is_some() && !self.has_scan_budget(session) {
            let docs = self.engine.docs();
            let primary_key =
                |db: &str, schema: &str, table: &str| crate::engine::keys::declared(&docs.read(), db, schema, table).primary_key;
            let derived = crate::passthrough::derive(&session.ctx.state(), governed, |db| ups.get(db).is_some(), primary_key).await;
            if let Some(dp) = derived {
                return Executor::Direct(Arc::new(dp));
            }
        }
        if let Source::Text { lifted, .. } = &sql.source {
            if !matches!(lifted, Statement::Query(_)) {
                return Executor::planned();
            }
        }
        match plan_cache::build(&session.ctx.state(), governed) {
            Some(cached) => Executor::Embedded(Arc::new(cached)),
            None => Executor::planned(),
        }
    }

    /// Plan and govern the statement for this execution alone.
    async fn plan_afresh(&self, session: &Session, sql: &Sql<'_>) -> Result<GovernedPlan, LaloError> {
        let plan = match &sql.source {
            Source::Text { original, .. } => self.plan(session, original).await?,
            Source::Bound { statement, plan } => {
                let plan = match plan {
                    Some(p) => (*p).clone(),
                    None => self.plan(session, statement).await?,
                };
                plan.replace_params_with_values(&ParamValues::from(sql.values.clone()))?
            }
        };
        self.govern(session, plan).await
    }
}

/// `values` bound into a governed plan with placeholders, each cast to its parameter's type;
/// `None` when one does not convert (the statement is then planned as sent, which reports the
/// error PostgreSQL would).
pub(super) fn bind(governed: &GovernedPlan, values: &[ScalarValue]) -> Option<GovernedPlan> {
    let types = crate::passthrough::param_types(governed.plan())?;
    // A plan without placeholders is complete (a statement planned as sent: its lifted values
    // are in it already).
    if types.is_empty() {
        return Some(governed.clone());
    }
    if types.len() != values.len() {
        return None;
    }
    let typed: Vec<ScalarValue> = values.iter().zip(&types).map(|(v, t)| v.cast_to(t)).collect::<Result<_, _>>().ok()?;
    governed.bind(&ParamValues::from(typed)).ok()
}
