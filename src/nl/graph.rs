//! The planner graph for one question: follow-up → retrieve → link → draft → validate → govern, with a
//! bounded repair loop, as explicit state passed through named nodes. Every run leaves a
//! [`Trace`] that `EXPLAIN ASK` shows; a policy refusal ends the run, it is never worked around.

use crate::nl::Host;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use datafusion::sql::sqlparser::ast::Statement;
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;

use crate::error::LaloError;
use crate::governance::GovernedPlan;
use crate::nl::catalog::Built;
use crate::nl::retrieve::{self, Link, Retrieved};
use crate::nl::followup::{self, Reading};
use crate::nl::Drafted;
use crate::router::{self, Route};
use crate::session::Session;

/// Drafted SQL goes through the same compatibility rewrites as SQL a client sends.
static PARSER: LazyLock<PostgresCompatibilityParser> = LazyLock::new(PostgresCompatibilityParser::new);

/// One node visit.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Step {
    pub node: &'static str,
    pub ms: f64,
    pub note: String,
}

/// One draft and what became of it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Draft {
    pub sql: Option<String>,
    pub confidence: Option<f32>,
    pub explanation: String,
    pub error: Option<String>,
}

/// What a run did, for EXPLAIN ASK, the MCP explain tool and `lalo eval`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Trace {
    pub drafter: String,
    pub steps: Vec<Step>,
    /// Ranked tables with the columns and values that linked them.
    pub retrieved: Vec<Link>,
    /// The retrieval index's documents handed on (already cut to what the caller may read).
    pub documents: Vec<crate::nl::index::Hit>,
    /// The tables the drafter was given (`schema.table`).
    pub given_tables: Vec<String>,
    /// `schema.table.column` of every column the drafter was given.
    pub given_columns: Vec<String>,
    pub context_cached: bool,
    pub drafts: Vec<Draft>,
    pub repairs: u32,
    /// The session's last question this one was read against (a follow-up), and how it read.
    pub follows: Option<String>,
    pub reading: Option<String>,
}

impl Trace {
    fn step(&mut self, node: &'static str, since: Instant, note: impl Into<String>) {
        self.steps.push(Step { node, ms: since.elapsed().as_secs_f64() * 1000.0, note: note.into() });
    }

    /// Total time across nodes, in milliseconds.
    pub fn total_ms(&self) -> f64 {
        self.steps.iter().map(|s| s.ms).sum()
    }
}

/// A question turned into a governed plan, ready to run.
#[derive(Debug)]
pub struct Planned {
    /// The question as drafted: a follow-up's combined reading.
    pub asked: String,
    pub sql: String,
    pub statement: Box<Statement>,
    pub governed: GovernedPlan,
    pub trace: Trace,
    pub context: Arc<Built>,
}

/// A run that ended without a plan: the error a client sees, and how far it got.
#[derive(Debug)]
pub struct Failed {
    pub error: LaloError,
    /// The last drafted SQL, if any (for the audit record).
    pub sql: Option<String>,
    pub trace: Trace,
}

/// Run the graph for `question` in the caller's session.
pub async fn run(lalo: &dyn Host, session: &Session, question: &str) -> Result<Planned, Box<Failed>> {
    let llm = lalo.config().planner.drafter == crate::config::DrafterKind::Llm;
    let mut trace = Trace { drafter: lalo.config().planner.drafter.as_str().into(), ..Default::default() };
    let fail = |error: LaloError, sql: Option<String>, trace: Trace| Box::new(Failed { error, sql, trace });

    // follow-up: read the question against the session's last one.
    let t = Instant::now();
    let last = session.conversation.lock().clone();
    let mut reading = followup::read(last.as_ref(), &session.database, question);
    // A short question that does not say it continues may stand alone: the rules drafter tries
    // it alone first; a model is not asked twice, so for it such a question is fresh.
    let mut alone_first = None;
    if let Reading::Builds { opener: false, .. } = reading {
        if llm {
            reading = Reading::Fresh;
        } else {
            alone_first = Some(question.to_string());
        }
    }
    let mut widened = None;
    let asked: String = match &reading {
        Reading::Fresh => question.to_string(),
        Reading::Builds { question, .. } => question.clone(),
        Reading::MoreColumns(sql) => {
            widened = Some(sql.clone());
            last.as_ref().map(|l| l.question.clone()).unwrap_or_else(|| question.to_string())
        }
    };
    if reading != Reading::Fresh {
        trace.follows = last.as_ref().map(|l| l.question.clone());
        trace.reading = Some(asked.clone());
        let note = match &reading {
            Reading::MoreColumns(_) => "the last answer with all its columns".to_string(),
            _ => format!("read as: {asked}"),
        };
        trace.step("follow-up", t, note);
    }
    let question = asked.as_str();
    // The question the SQL answers (the session's next turn builds on it).
    let mut answered = asked.clone();

    // retrieve: the caller's entitled context (cached per user, database, policies, catalog).
    let t = Instant::now();
    let (built, cached) = match lalo.questions().get(lalo, session).await {
        Ok(b) => b,
        Err(e) => {
            trace.step("retrieve", t, format!("failed: {e}"));
            return Err(fail(e, None, trace));
        }
    };
    trace.context_cached = cached;
    trace.step(
        "retrieve",
        t,
        format!(
            "{} tables in {} ({}{})",
            built.context.tables.len(),
            session.database,
            if cached { "cached" } else { "built" },
            if cached { String::new() } else { format!(" in {:.1} ms", built.built_in.as_secs_f64() * 1000.0) }
        ),
    );

    // link: rank tables by the index's fused hits (filtered for the caller), or in memory until
    // the index is ready, plus quoted sample values; cut large schemas.
    let t = Instant::now();
    let searched = crate::telemetry::stage("retrieval", None, lalo.retrieval().search(lalo, session, &built, question)).await;
    let retrieved: Retrieved = retrieve::retrieve(&built, question, searched.as_ref());
    trace.documents = retrieved.documents.clone();
    trace.given_tables = retrieved.given_tables(&built);
    trace.given_columns = retrieved
        .context(&built)
        .tables
        .iter()
        .flat_map(|t| t.columns.iter().map(move |c| format!("{}.{}", t.qualified(), c.name)))
        .collect();
    trace.retrieved = retrieved.links.iter().take(10).cloned().collect();
    trace.step(
        "link",
        t,
        format!(
            "{} ranked ({}); drafter given {} of {} tables",
            retrieved.links.len(),
            searched.as_ref().map(|s| s.note.as_str()).unwrap_or("in memory: the retrieval index is not ready"),
            trace.given_tables.len(),
            built.context.tables.len()
        ),
    );

    let max_repairs = lalo.config().planner.max_repairs;
    let mut feedback: Option<String> = None;
    loop {
        // draft
        let t = Instant::now();
        let drafted = if let Some(last_sql) = widened.take() {
            // Only the columns the caller's context holds: what they may read.
            let ctx = &built.context;
            let readable = |table: &str| ctx.tables.iter().find(|t| t.qualified().eq_ignore_ascii_case(table)).map(|t| t.columns.iter().map(|c| c.name.clone()).collect());
            match followup::more_columns(&last_sql, readable) {
                Some(sql) => Drafted::Sql { sql, tables: vec![], confidence: 1.0, explanation: "the last answer's rows with all their columns".into() },
                None => Drafted::Declined { reason: "the last answer groups or aggregates rows: it has no more columns to show".into() },
            }
        } else if llm {
            // A repair sends the last draft back with the error it met.
            let previous = trace.drafts.last().and_then(|d| Some((d.sql.as_deref()?, feedback.as_deref()?)));
            match crate::nl::llm::draft(lalo, session, &retrieved, retrieved.context(&built), question, previous).await {
                Ok((d, removed)) => {
                    if !removed.is_empty() {
                        // What the firewall kept out of the prompt: where and why, never the text.
                        trace.step("firewall", t, format!("removed from the prompt: {}", removed.join("; ")));
                    }
                    d
                }
                Err(e) => {
                    trace.step("draft", t, format!("failed: {e}"));
                    let last = trace.drafts.iter().rev().find_map(|d| d.sql.clone());
                    return Err(fail(e, last, trace));
                }
            }
        } else {
            let alone = alone_first.take().map(|q| (draft(&retrieved, &built, &q, None), q)).filter(|(d, _)| matches!(d, Drafted::Sql { .. }));
            match alone {
                Some((d, q)) => {
                    answered = q;
                    trace.follows = None;
                    trace.reading = None;
                    trace.step("follow-up", t, "stands alone");
                    d
                }
                None => draft(&retrieved, &built, question, feedback.as_deref()),
            }
        };
        let sql = match drafted {
            Drafted::Sql { sql, confidence, explanation, .. } => {
                let note = if llm { explanation.clone() } else { format!("confidence {confidence:.2}") };
                let confidence = (!llm).then_some(confidence);
                trace.drafts.push(Draft { sql: Some(sql.clone()), confidence, explanation, error: None });
                trace.step("draft", t, note);
                sql
            }
            Drafted::Declined { reason } => {
                trace.drafts.push(Draft { sql: None, confidence: None, explanation: reason.clone(), error: None });
                trace.step("draft", t, format!("declined: {reason}"));
                let hint = decline_hint(&retrieved);
                let last = trace.drafts.iter().rev().find_map(|d| d.sql.clone());
                let error = LaloError::NotAnswerable { message: format!("cannot answer this question: {reason}"), hint: Some(hint) };
                return Err(fail(error, last, trace));
            }
        };

        // validate: the draft must be one read-only statement DataFusion plans in this session.
        let t = Instant::now();
        let error = match validate(lalo, session, &sql).await {
            Ok((statement, plan)) => {
                trace.step("validate", t, "planned");
                // govern: the caller's policies, exactly as for SQL they send.
                let t = Instant::now();
                match lalo.govern(session, plan).await {
                    Ok(governed) => {
                        let note = format!("{} {}", governed.decision, governed.rules.join("; "));
                        trace.step("govern", t, note.trim());
                        return Ok(Planned { asked: answered, sql, statement, governed, trace, context: built });
                    }
                    Err(e @ LaloError::PermissionDenied { .. }) => {
                        trace.step("govern", t, format!("refused: {e}"));
                        return Err(fail(e, Some(sql), trace));
                    }
                    Err(e) => {
                        trace.step("govern", t, format!("failed: {e}"));
                        e
                    }
                }
            }
            Err(e) => {
                trace.step("validate", t, format!("failed: {e}"));
                e
            }
        };

        // repair: bounded; the rules drafter has no second reading, so its repair is to decline.
        if let Some(d) = trace.drafts.last_mut() {
            d.error = Some(error.to_string());
        }
        let t = Instant::now();
        if trace.repairs >= max_repairs || !can_repair(&trace.drafter) {
            trace.step("repair", t, "declined: the drafted SQL does not plan");
            let hint = format!("rephrase the question, or send SQL ({})", first_line(&error.to_string()));
            let error = LaloError::NotAnswerable {
                message: "cannot answer this question: the SQL drafted for it does not run here".into(),
                hint: Some(hint),
            };
            return Err(fail(error, Some(sql), trace));
        }
        trace.repairs += 1;
        feedback = Some(error.to_string());
        trace.step("repair", t, format!("attempt {}", trace.repairs));
    }
}

/// Drafters that can use error feedback. The rules drafter is deterministic: same input, same SQL.
fn can_repair(drafter: &str) -> bool {
    drafter != "rules"
}

fn draft(retrieved: &Retrieved, built: &Built, question: &str, _feedback: Option<&str>) -> Drafted {
    retrieved.drafter(built).draft(question)
}

/// Parse and plan drafted SQL in the caller's session.
async fn validate(lalo: &dyn Host, session: &Session, sql: &str) -> Result<(Box<Statement>, datafusion::logical_expr::LogicalPlan), LaloError> {
    let mut routes = router::route_text(&PARSER, sql, "sql")?;
    let stmt = match (routes.len(), routes.pop()) {
        (1, Some(Route::Query(stmt))) => stmt,
        _ => return Err(LaloError::NotSupported("the drafted text is not one query".into())),
    };
    let plan = lalo.plan(session, &stmt).await?;
    Ok((stmt, plan))
}

fn decline_hint(retrieved: &Retrieved) -> String {
    let names: Vec<&str> = retrieved.links.iter().take(3).map(|l| l.table.as_str()).collect();
    if names.is_empty() {
        "name a table or column you can read, or send SQL".into()
    } else {
        format!("rephrase with the table and column names (closest tables: {}), or send SQL", names.join(", "))
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}
