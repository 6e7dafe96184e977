//! The request path. Every entry point (pgwire simple and extended, MCP, the CLI, eval) hands
//! each statement to [`Lalo::run`], which reads top to bottom:
//!
//! 1. **audit scope** (audit.rs): a record opens for the statement and closes exactly once on
//!    every exit path: success, error, cancel, disconnect;
//! 2. **dispatch by kind**: session commands (commands.rs), cursors (cursors.rs), SQL-level
//!    prepared statements (prepared.rs), questions (question.rs), upstream refresh (catalog.rs);
//! 3. **SQL** (sql.rs): the shape index skips parsing for repeats ([`Lalo::run_shaped`]); the one
//!    statement cache maps the statement to its executor, computed on a miss from one plan and
//!    one governance ([`crate::governance`] is the only maker of the plans executors take);
//! 4. **admission** under the caller's limits, once per statement (execute.rs);
//! 5. **executor**: direct upstream (direct.rs) | embedded cached plan | planned (execute.rs),
//!    streaming under the guard (timeout, cancel, row cap) that closes the audit scope;
//! 6. **outcome**: protocol-free rows or a command tag, which each entry point encodes.
//!
//! Before all of this, a SELECT over the session's upstream PostgreSQL may take the
//! **PostgreSQL lane** (postgres.rs): PostgreSQL's own grammar reads it, governance replaces each
//! relation by its governed derived table, and the upstream runs the client's statement as
//! written, under the same audit scope, admission and guard.

mod audit;
mod catalog;
mod commands;
mod cursors;
mod direct;
mod disclosure;
mod execute;
mod host;
mod outcome;
mod params;
mod pii;
mod postgres;
mod preflight;
mod prepared;
mod question;
mod sql;
mod state;

use std::sync::Arc;
use std::time::Instant;

use datafusion::common::{ParamValues, ScalarValue};
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::Statement;

use crate::error::LaloError;
use crate::router::Route;
use crate::session::Session;

pub use audit::{record, AuditScope};
pub use outcome::{rename, Delivery, Outcome, Request};
pub use params::param_types;
pub use postgres::LaneStatement;
pub use question::{explain_plan, Answer, Drafted};
pub use state::{startup_settings, Lalo, Readiness, StageCounts, UpstreamStatus};

use sql::{Source, Sql};

/// One statement as an entry point hands it over.
pub enum Input<'a> {
    /// A routed statement; `text` is what the client sent for it (the audit record's input).
    Routed { route: Route, text: &'a str },
    /// A statement the extended protocol parsed and bound.
    Bound(Bound<'a>),
}

/// A parsed and bound SQL statement (extended protocol).
pub struct Bound<'a> {
    /// The text the client sent in Parse.
    pub text: &'a str,
    pub statement: &'a Statement,
    /// Its plan with placeholders; `None` when it was parsed under other settings.
    pub plan: Option<&'a LogicalPlan>,
    /// The parameter types of that plan, as Parse decided them (part of the cache key).
    pub param_types: &'a [Option<datafusion::arrow::datatypes::DataType>],
    /// Its statement-cache key, made once at Parse ([`Bound::cache_key`]).
    pub key: &'a str,
    pub params: ParamValues,
    /// The statement as lalo prints it, and PostgreSQL's names for its columns.
    pub sql: Option<String>,
    pub names: Option<Vec<Option<String>>>,
}

impl Bound<'_> {
    /// The statement-cache key of a parsed statement: the same text parsed with other parameter
    /// types is another plan.
    pub fn cache_key(text: &str, param_types: &[Option<datafusion::arrow::datatypes::DataType>]) -> String {
        format!("prepared:{param_types:?}:{text}")
    }
}

impl Lalo {
    /// Run one statement.
    pub async fn run(&self, session: &Session, input: Input<'_>, delivery: Delivery<'_>) -> Result<Outcome, LaloError> {
        match input {
            Input::Routed { route, text } => self.run_route(session, route, text, delivery).await,
            Input::Bound(bound) => self.run_bound(session, bound, delivery).await,
        }
    }

    async fn run_route(&self, session: &Session, route: Route, text: &str, delivery: Delivery<'_>) -> Result<Outcome, LaloError> {
        let start = Request { input: text.to_string(), began: Some(Instant::now()), ..Default::default() };
        match route {
            Route::Query(stmt) => {
                let start = Request { sql: Some(stmt.to_string()), names: crate::naming::pg_names(&stmt), ..start };
                let scope = AuditScope::open(self.audit.clone(), session, &start);
                let (lifted, values) = crate::passthrough::parameterize(&stmt);
                let key = std::borrow::Cow::Owned(lifted.to_string());
                let wire = delivery.wire.is_some();
                let sql = Sql { source: Source::Text { original: &stmt, lifted }, key, values };
                let (key, values) = (sql.key.clone(), sql.values.clone());
                let done = self.run_sql(session, sql, scope, &start, delivery).await;
                // A statement that took the direct lane: its shape leads the next repeat there.
                if wire && done.is_ok() && self.is_direct(session, &key) {
                    self.learn_shape(session, text, &values, &key, start.names.clone());
                }
                done
            }
            Route::CopyOut { query, options } => {
                match Box::pin(self.run_route(session, Route::Query(query), text, Delivery { wire: None, ..delivery })).await? {
                    Outcome::Rows { schema, rows } => Ok(Outcome::CopyOut { schema, rows, options }),
                    other => Ok(other),
                }
            }
            Route::Ask { question, explain } => self.ask(session, &question, explain, None, start, delivery).await,
            Route::Declare { name, query } => {
                let start = Request { sql: Some(query.to_string()), names: crate::naming::pg_names(&query), ..start };
                self.declare(session, name, &query, start).await
            }
            Route::Execute { name, params } => self.execute_prepared(session, name, &params, start, delivery).await,
            Route::Prepare { name, statement } => {
                let start = Request { sql: Some(statement.to_string()), ..start };
                let mut scope = AuditScope::open(self.audit.clone(), session, &start);
                scope.lane("command");
                self.prepare(session, name, statement, scope).await
            }
            other => {
                let mut scope = AuditScope::open(self.audit.clone(), session, &start);
                scope.lane("command");
                match other {
                    Route::Fetch { name, count } => self.fetch(session, &name, count, scope).await,
                    Route::Close(name) => self.close(session, name, scope).await,
                    Route::Deallocate(name) => self.deallocate(session, name, scope).await,
                    Route::RefreshUpstream(name) => self.refresh(session, name.as_deref(), scope).await,
                    command => self.command(session, command, scope).await,
                }
            }
        }
    }

    async fn run_bound(&self, session: &Session, bound: Bound<'_>, delivery: Delivery<'_>) -> Result<Outcome, LaloError> {
        let start = Request { input: bound.text.to_string(), sql: bound.sql.clone(), names: bound.names.clone(), began: Some(Instant::now()), ..Default::default() };
        let scope = AuditScope::open(self.audit.clone(), session, &start);
        let values: Vec<ScalarValue> = match &bound.params {
            ParamValues::List(list) => list.iter().map(|v| v.value.clone()).collect(),
            ParamValues::Map(_) => vec![],
        };
        let key = std::borrow::Cow::Borrowed(bound.key);
        let sql = Sql { source: Source::Bound { statement: bound.statement, plan: bound.plan }, key, values };
        self.run_sql(session, sql, scope, &start, delivery).await
    }

    /// Run a question the extended protocol parsed (drafted at Parse when `drafted` is set).
    pub async fn run_question(
        &self,
        session: &Session,
        question: &str,
        explain: bool,
        text: &str,
        drafted: Option<&Drafted>,
        delivery: Delivery<'_>,
    ) -> Result<Outcome, LaloError> {
        let start = Request { input: text.to_string(), began: Some(Instant::now()), ..Default::default() };
        self.ask(session, question, explain, drafted, start, delivery).await
    }

    /// A simple-protocol statement whose token shape took the direct lane before: straight to
    /// its executor with this statement's values, without parsing. `None` means "route it".
    pub async fn run_shaped(&self, session: &Session, text: &str, delivery: &mut Delivery<'_>) -> Option<Result<Outcome, LaloError>> {
        self.engine.upstreams().get(&session.database)?;
        let shaped = crate::shapes::shape(text)?;
        let stamp = self.stamp(session);
        let shape = session.shapes.lock().get(stamp, &shaped.key)??;
        let values = crate::shapes::bind(&shape, &shaped)?;
        let executor = session.statements.lock().get(stamp, &shape.direct_key)??;
        let crate::plan_cache::Executor::Direct(dp) = executor.as_ref() else { return None };
        // Values the plan's parameters cannot take (an out-of-range number, say) are routed and
        // planned as sent, which answers as PostgreSQL does.
        if values.len() != dp.param_types.len() || values.iter().zip(&dp.param_types).any(|(v, t)| v.cast_to(t).is_err()) {
            return None;
        }
        let start = Request {
            input: text.to_string(),
            sql: Some(text.to_string()),
            names: shape.names.clone(),
            began: Some(Instant::now()),
            ..Default::default()
        };
        let scope = AuditScope::open(self.audit.clone(), session, &start);
        let delivery = std::mem::take(delivery);
        match self.run_direct(session, dp, values.clone(), scope, &start, delivery, (stamp, &shape.direct_key)).await {
            direct::Direct::Done(done) => Some(done),
            direct::Direct::FellOut { scope, slot, delivery } => {
                let governed = match sql_bind(&dp.governed, &values) {
                    Some(g) => Ok(g),
                    None => self.plan_text(session, text).await,
                };
                Some(match governed {
                    Ok(g) => self.run_governed(session, g, scope, &start, delivery, slot).await,
                    Err(e) => Err(scope.fail(e).await),
                })
            }
        }
    }

    /// Plan and govern one statement's text as sent.
    async fn plan_text(&self, session: &Session, text: &str) -> Result<crate::governance::GovernedPlan, LaloError> {
        match self.route(session, text)?.pop() {
            Some(Route::Query(stmt)) => self.govern(session, self.plan(session, &stmt).await?).await,
            _ => Err(LaloError::Internal("a shaped statement did not route as a query".into())),
        }
    }

    fn is_direct(&self, session: &Session, key: &str) -> bool {
        let stamp = self.stamp(session);
        matches!(session.statements.lock().get(stamp, key), Some(Some(e)) if matches!(*e, crate::plan_cache::Executor::Direct(_)))
    }

    /// Remember the token shape of `text`, which took the direct lane as `key` with `values`.
    fn learn_shape(&self, session: &Session, text: &str, values: &[ScalarValue], key: &str, names: Option<Vec<Option<String>>>) {
        let Some(shaped) = crate::shapes::shape(text) else { return };
        let learned = crate::shapes::learn(&shaped, values, key, names).map(Arc::new);
        session.shapes.lock().put(self.stamp(session), shaped.key, learned);
    }
}

use sql::bind as sql_bind;

impl Lalo {
    /// Govern a bound statement as its execution would, without running it (the extended
    /// protocol's Describe): the decision goes to the statement cache, where Execute finds it; a
    /// refusal is audited.
    pub async fn check(&self, session: &Session, bound: Bound<'_>) -> Result<(), LaloError> {
        let start = Request { input: bound.text.to_string(), sql: bound.sql.clone(), names: bound.names.clone(), ..Default::default() };
        let stale = bound.plan.is_none();
        let key = std::borrow::Cow::Borrowed(bound.key);
        let sql = Sql { source: Source::Bound { statement: bound.statement, plan: bound.plan }, key, values: vec![] };
        let checked = async {
            if stale {
                // Parsed under other settings: governed from a fresh plan.
                let plan = self.plan(session, bound.statement).await?;
                return self.govern(session, plan).await.map(|_| ());
            }
            let (executor, fresh) = self.executor(session, &sql, self.stamp(session)).await?;
            if let (crate::plan_cache::Executor::Planned(checked), Some(governed)) = (executor.as_ref(), fresh) {
                // Governed now, for the execution that follows: it takes this decision.
                checked.put(governed);
            }
            Ok(())
        }
        .await;
        match checked {
            Ok(()) => Ok(()),
            Err(e) => Err(AuditScope::open(self.audit.clone(), session, &start).fail(e).await),
        }
    }
}
