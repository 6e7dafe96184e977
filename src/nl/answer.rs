//! Questions on every entry point: `ASK` runs the planner graph and then the governed plan like
//! any statement (the SQL and policy rewrites go to the client as NOTICEs); `EXPLAIN ASK` returns
//! the SQL, the context and the trace as rows and runs nothing. pgwire, MCP and the CLI call here.

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::StringArray;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::DFSchema;
use datafusion::logical_expr::{EmptyRelation, LogicalPlan};
use futures::StreamExt;

use crate::error::LaloError;
use crate::execution::CancelArm;
use crate::nl::graph::{self, Planned, Trace};
use crate::service::{Lalo, Outcome, Request};
use crate::session::Session;

/// A question answered: the SQL that ran, what governance did, the rows, and the trace.
pub struct Answer {
    pub sql: String,
    pub decision: String,
    pub rules: Vec<String>,
    pub trace: Trace,
    pub outcome: Outcome,
}

/// `ASK` / `EXPLAIN ASK` as a routed statement (the `Route::Ask` arm of the service).
pub async fn run(
    lalo: &Lalo,
    session: &Session,
    question: &str,
    explain: bool,
    input: &str,
    cancel: Option<CancelArm>,
    cap: Option<u64>,
) -> Result<Outcome, LaloError> {
    if explain {
        return explain_rows(lalo, session, question, input).await;
    }
    let answer = answer(lalo, session, question, input, cancel, cap).await?;
    session.notice(format!("SQL: {}", answer.sql));
    for rule in &answer.rules {
        session.notice(format!("policy applied: {rule}"));
    }
    Ok(answer.outcome)
}

/// Plan a question and run it; failures are audited with the question and any drafted SQL.
pub async fn answer(
    lalo: &Lalo,
    session: &Session,
    question: &str,
    input: &str,
    cancel: Option<CancelArm>,
    cap: Option<u64>,
) -> Result<Answer, LaloError> {
    let began = Instant::now();
    let start = Request { input: input.to_string(), question: Some(question.to_string()), ..Default::default() };
    let planned = plan(lalo, session, question, &start, began).await?;
    let Planned { sql, statement, governed, trace, .. } = planned;
    let (decision, rules) = (governed.decision.clone(), governed.rules.clone());
    let start = Request {
        sql: Some(sql.clone()),
        names: crate::naming::pg_names(&statement),
        trace: serde_json::to_string(&trace).ok(),
        ..start
    };
    let outcome = lalo.execute_capped(session, governed, None, start, cancel, cap).await?;
    Ok(Answer { sql, decision, rules, trace, outcome })
}

/// Run the planner graph, auditing a failure.
async fn plan(lalo: &Lalo, session: &Session, question: &str, start: &Request, began: Instant) -> Result<Planned, LaloError> {
    match graph::run(lalo, session, question).await {
        Ok(p) => Ok(p),
        Err(failed) => {
            let start =
                Request { sql: failed.sql.clone(), trace: serde_json::to_string(&failed.trace).ok(), ..start.clone() };
            lalo.audit_failure(session, &start, &failed.error, began).await;
            Err(failed.error)
        }
    }
}

/// The columns of `EXPLAIN ASK`.
pub fn explain_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("section", DataType::Utf8, false), Field::new("detail", DataType::Utf8, true)]))
}

/// `EXPLAIN ASK`: the SQL, the governed plan's decision, the context given to the drafter and the
/// trace, one line per row. Executes nothing; audited like EXPLAIN.
async fn explain_rows(lalo: &Lalo, session: &Session, question: &str, input: &str) -> Result<Outcome, LaloError> {
    let planned = explain(lalo, session, question, input).await?;
    let rows = explain_lines(&planned);
    let schema = explain_schema();
    let (sections, details): (Vec<String>, Vec<String>) = rows.into_iter().unzip();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(StringArray::from(sections)), Arc::new(StringArray::from(details))],
    )
    .map_err(|e| LaloError::Internal(e.to_string()));
    Ok(Outcome::Rows { schema, rows: futures::stream::iter(vec![batch]).boxed() })
}

/// Plan a question without running it, audited like EXPLAIN (MCP's explain tool, EXPLAIN ASK).
pub async fn explain(lalo: &Lalo, session: &Session, question: &str, input: &str) -> Result<Planned, LaloError> {
    let began = Instant::now();
    let start = Request { input: input.to_string(), question: Some(question.to_string()), ..Default::default() };
    let planned = plan(lalo, session, question, &start, began).await?;
    let start = Request { sql: Some(planned.sql.clone()), trace: serde_json::to_string(&planned.trace).ok(), ..start };
    let mut rec = lalo.record(session, &start, Some(&planned.governed));
    rec.duration_ms = began.elapsed().as_secs_f64() * 1000.0;
    lalo.audit.append(rec).await?;
    Ok(planned)
}

/// (section, detail) lines describing a planned question.
pub fn explain_lines(p: &Planned) -> Vec<(String, String)> {
    let mut out = vec![("sql".to_string(), p.sql.clone()), ("decision".into(), p.governed.decision.clone())];
    for r in &p.governed.rules {
        out.push(("policy".into(), r.clone()));
    }
    let ctx = &p.context.context;
    for t in ctx.tables.iter().filter(|t| p.trace.given_tables.contains(&t.qualified())) {
        let cols: Vec<String> = t
            .columns
            .iter()
            .map(|c| if c.samples.is_empty() { c.name.clone() } else { format!("{} [{} values]", c.name, c.samples.len()) })
            .collect();
        out.push(("context".into(), format!("{}({})", t.qualified(), cols.join(", "))));
    }
    for l in &p.trace.retrieved {
        let mut d = format!("{} score {:.2}", l.table, l.score);
        if !l.columns.is_empty() {
            d.push_str(&format!(" columns {}", l.columns.join(", ")));
        }
        if !l.values.is_empty() {
            d.push_str(&format!(" values {}", l.values.join(", ")));
        }
        out.push(("retrieved".into(), d));
    }
    for h in &p.trace.documents {
        let d = &h.doc;
        let name = match d.kind {
            crate::nl::index::documents::Kind::Table => format!("{}.{}.{}", d.database, d.schema, d.table),
            crate::nl::index::documents::Kind::Value => format!("{}.{}.{}.{} = '{}'", d.database, d.schema, d.table, d.column, d.detail),
            crate::nl::index::documents::Kind::Join => format!("{}.{}.{}({}) -> {}", d.database, d.schema, d.table, d.column, d.detail),
            _ => format!("{}.{}.{}.{}", d.database, d.schema, d.table, d.column),
        };
        out.push(("document".into(), format!("{} {name} score {:.4} by {}", d.kind.as_str(), h.score, h.found_by)));
    }
    for d in &p.trace.drafts {
        let text = d.sql.clone().unwrap_or_else(|| format!("declined: {}", d.explanation));
        out.push(("draft".into(), text));
        if let Some(e) = &d.error {
            out.push(("draft error".into(), e.clone()));
        }
    }
    for s in &p.trace.steps {
        out.push(("trace".into(), format!("{} {:.2} ms {}", s.node, s.ms, s.note).trim().to_string()));
    }
    out
}

/// For the extended protocol's Describe: the plan whose schema the rows will have (the governed
/// plan of the drafted SQL, or the EXPLAIN ASK columns) and PostgreSQL's column names.
pub async fn describe(
    lalo: &Lalo,
    session: &Session,
    question: &str,
    explain: bool,
) -> Result<(LogicalPlan, Option<Vec<Option<String>>>), LaloError> {
    if explain {
        let schema = DFSchema::try_from(explain_schema().as_ref().clone())?;
        let plan = LogicalPlan::EmptyRelation(EmptyRelation { produce_one_row: false, schema: Arc::new(schema) });
        return Ok((plan, None));
    }
    let planned = graph::run(lalo, session, question).await.map_err(|f| f.error)?;
    Ok((planned.governed.plan().clone(), crate::naming::pg_names(&planned.statement)))
}
