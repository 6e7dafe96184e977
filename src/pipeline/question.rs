//! Questions: `ASK` drafts SQL with the planner graph (nl/) and runs the governed plan like any
//! statement, under one audit scope that carries the question, the drafted SQL and the trace
//! (the SQL and policy rewrites also go to the client as NOTICEs); `EXPLAIN ASK` returns the SQL,
//! the context and the trace as rows and runs nothing. A question the extended protocol drafted
//! at Parse runs that draft at Execute ([`Drafted`]): one draft per question, and the described
//! columns are the rows' columns.

use std::sync::Arc;

use datafusion::arrow::array::StringArray;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::DFSchema;
use datafusion::logical_expr::{EmptyRelation, LogicalPlan};
use futures::StreamExt;

use crate::error::LaloError;
use crate::nl::answer::{explain_lines, explain_schema};
use crate::nl::graph::{self, Planned, Trace};
use crate::plan_cache::Stamp;
use crate::session::Session;

use super::{AuditScope, Delivery, Lalo, Outcome, Request};

/// A question answered: the SQL that ran, what governance did, the rows, and the trace.
pub struct Answer {
    pub sql: String,
    pub decision: crate::governance::Decision,
    pub rules: Vec<String>,
    pub trace: Trace,
    pub outcome: Outcome,
}

/// A question drafted ahead of its execution (the extended protocol's Parse), valid while the
/// session's settings, the policies and the catalog stay as they were.
#[derive(Clone)]
pub struct Drafted {
    planned: Arc<Planned>,
    stamp: Stamp,
    /// When it was drafted: a row filter's evaluated subquery inside it holds for
    /// `rewrite::FILTER_TTL`, as in the statement cache.
    made: std::time::Instant,
}

impl std::fmt::Debug for Drafted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Drafted").field("sql", &self.planned.sql).finish()
    }
}

impl Drafted {
    /// The governed plan the rows will come from.
    pub fn plan(&self) -> &LogicalPlan {
        self.planned.governed.plan()
    }

    /// PostgreSQL's names for its columns.
    pub fn names(&self) -> Option<Vec<Option<String>>> {
        crate::naming::pg_names(&self.planned.statement)
    }
}

impl Lalo {
    /// `ASK` / `EXPLAIN ASK` as a statement.
    pub(super) async fn ask(
        &self,
        session: &Session,
        question: &str,
        explain: bool,
        drafted: Option<&Drafted>,
        start: Request,
        delivery: Delivery<'_>,
    ) -> Result<Outcome, LaloError> {
        if explain {
            let planned = self.explain_question(session, question, &start.input).await?;
            return Ok(explain_rows(&planned));
        }
        let answer = self.answer_drafted(session, question, drafted, start, delivery).await?;
        session.notice(format!("SQL: {}", answer.sql));
        for rule in &answer.rules {
            session.notice(format!("policy applied: {rule}"));
        }
        Ok(answer.outcome)
    }

    /// Draft a question and run it (MCP's ask tool, `lalo ask`, eval).
    pub async fn answer(&self, session: &Session, question: &str, input: &str, delivery: Delivery<'_>) -> Result<Answer, LaloError> {
        let start = Request { input: input.to_string(), ..Default::default() };
        self.answer_drafted(session, question, None, start, delivery).await
    }

    async fn answer_drafted(
        &self,
        session: &Session,
        question: &str,
        drafted: Option<&Drafted>,
        start: Request,
        delivery: Delivery<'_>,
    ) -> Result<Answer, LaloError> {
        let start = Request { question: Some(question.to_string()), ..start };
        let mut scope = AuditScope::open(self.audit.clone(), session, &start);
        scope.lane("ask");
        let stamp = self.stamp(session);
        let fresh = |d: &&Drafted| d.stamp == stamp && d.made.elapsed() < crate::governance::rewrite::FILTER_TTL;
        let planned = match drafted.filter(fresh) {
            Some(d) => d.planned.clone(),
            None => match self.draft(session, question, &start, &mut scope).await {
                Ok(p) => Arc::new(p),
                Err(e) => return Err(scope.fail(e).await),
            },
        };
        // The turn a follow-up in this session builds on.
        *session.conversation.lock() =
            Some(crate::nl::followup::Turn { database: session.database.clone(), question: planned.asked.clone(), sql: planned.sql.clone() });
        let start = Request {
            sql: Some(planned.sql.clone()),
            names: crate::naming::pg_names(&planned.statement),
            trace: serde_json::to_string(&planned.trace).ok(),
            ..start
        };
        scope.describe(&start);
        let governed = planned.governed.clone();
        let (decision, rules) = (governed.decision, governed.rules.clone());
        let outcome = self.run_governed(session, governed, scope, &start, delivery, None).await?;
        Ok(Answer { sql: planned.sql.clone(), decision, rules, trace: planned.trace.clone(), outcome })
    }

    /// Run the planner graph; a failure's drafted SQL and trace go into the scope's record.
    async fn draft(&self, session: &Session, question: &str, start: &Request, scope: &mut AuditScope) -> Result<Planned, LaloError> {
        match graph::run(self, session, question).await {
            Ok(p) => Ok(p),
            Err(failed) => {
                let start = Request { sql: failed.sql.clone(), trace: serde_json::to_string(&failed.trace).ok(), ..start.clone() };
                scope.describe(&start);
                Err(failed.error)
            }
        }
    }

    /// Plan a question without running it, audited like EXPLAIN (MCP's explain tool, EXPLAIN ASK).
    pub async fn explain_question(&self, session: &Session, question: &str, input: &str) -> Result<Planned, LaloError> {
        let start = Request { input: input.to_string(), question: Some(question.to_string()), ..Default::default() };
        let mut scope = AuditScope::open(self.audit.clone(), session, &start);
        scope.lane("ask");
        let planned = match self.draft(session, question, &start, &mut scope).await {
            Ok(p) => p,
            Err(e) => return Err(scope.fail(e).await),
        };
        let start = Request { sql: Some(planned.sql.clone()), trace: serde_json::to_string(&planned.trace).ok(), ..start };
        scope.describe(&start);
        scope.governed(&planned.governed);
        scope.finish(0).await?;
        Ok(planned)
    }

    /// For the extended protocol's Parse: the question drafted now, so Describe can tell its
    /// columns and Execute runs this draft. `EXPLAIN ASK` drafts at Execute (its columns are fixed).
    pub async fn draft_ahead(&self, session: &Session, question: &str, explain: bool) -> Result<Option<Drafted>, LaloError> {
        if explain {
            return Ok(None);
        }
        let stamp = self.stamp(session);
        let planned = graph::run(self, session, question).await.map_err(|f| f.error)?;
        Ok(Some(Drafted { planned: Arc::new(planned), stamp, made: std::time::Instant::now() }))
    }
}

/// The plan whose columns `EXPLAIN ASK` returns.
pub fn explain_plan() -> Result<LogicalPlan, LaloError> {
    let schema = DFSchema::try_from(explain_schema().as_ref().clone())?;
    Ok(LogicalPlan::EmptyRelation(EmptyRelation { produce_one_row: false, schema: Arc::new(schema) }))
}

/// `EXPLAIN ASK`'s rows: one (section, detail) line each.
fn explain_rows(planned: &Planned) -> Outcome {
    let (sections, details): (Vec<String>, Vec<String>) = explain_lines(planned).into_iter().unzip();
    let schema = explain_schema();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(StringArray::from(sections)), Arc::new(StringArray::from(details))],
    )
    .map_err(|e| LaloError::Internal(e.to_string()));
    Outcome::Rows { schema, rows: futures::stream::iter(vec![batch]).boxed() }
}
