//! One audit scope per statement: opened when the statement arrives, closed exactly once on
//! every exit path. A success or failure closes it with one line, durable before the client
//! hears of it; a result stream takes it over: its `start` line is written (and synced) while the
//! first batch computes, the guard holds the first row until it is durable, and an `end` line
//! completes it when the stream ends (execution.rs); a scope dropped open (the client left or the
//! connection's task ended mid-statement) still writes its record, marked as interrupted.

use std::sync::Arc;
use std::time::Instant;

use crate::error::LaloError;
use crate::execution::GuardOptions;
use crate::governance::audit::{AuditLog, AuditRecord, Wait};
use crate::governance::limits::Slot;
use crate::governance::GovernedPlan;
use crate::session::Session;

use super::outcome::Request;

/// The audit record of one statement while it runs.
pub struct AuditScope {
    log: Arc<AuditLog>,
    /// `None` once closed.
    record: Option<AuditRecord>,
    began: Instant,
    entry: &'static str,
    /// Which lane answers: `engine`, `direct`, `postgres`, `ask`, `command` (for the metrics).
    lane: &'static str,
    /// The `start` line being written, once [`AuditScope::start`] sent it: the line number it got.
    admission: Option<tokio::task::JoinHandle<Result<u64, LaloError>>>,
}

/// The record a statement starts with: who, from where, what they sent, what governance decided.
pub fn record(session: &Session, start: &Request, governed: Option<&GovernedPlan>) -> AuditRecord {
    AuditRecord {
        time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        user: session.user.clone(),
        client: session.client.clone(),
        entry: session.entry.as_str().into(),
        input: start.input.clone(),
        question: start.question.clone(),
        sql: start.sql.clone(),
        objects: governed.map(|g| g.objects.clone()).unwrap_or_default(),
        decision: governed.map(|g| g.decision.as_str()).unwrap_or("allowed").into(),
        rules: governed.map(|g| g.rules.clone()).unwrap_or_default(),
        trace: start.trace.clone(),
        trace_id: crate::telemetry::trace_id(),
        ..Default::default()
    }
}

impl AuditScope {
    /// Open the scope of a statement that arrived at `start.began` (now when unset).
    pub fn open(log: Arc<AuditLog>, session: &Session, start: &Request) -> AuditScope {
        let began = start.began.unwrap_or_else(Instant::now);
        AuditScope { log, record: Some(record(session, start, None)), began, entry: session.entry.as_str(), lane: "engine", admission: None }
    }

    /// The scope of a read lalo makes on the caller's behalf (`why`: samples for a question's
    /// context), audited under the caller's entry point with input `internal <why>: <sql>`.
    pub fn internal(log: Arc<AuditLog>, session: &Session, start: &Request, why: &str) -> AuditScope {
        let mut scope = AuditScope::open(log, session, start);
        if let Some(rec) = scope.record.as_mut() {
            rec.input = format!("internal {why}: {}", rec.input);
        }
        scope.entry = "internal";
        scope
    }

    /// The lane that answers the statement (`engine` unless said otherwise).
    pub fn lane(&mut self, lane: &'static str) {
        self.lane = lane;
        crate::telemetry::record_lane(lane);
    }

    /// When the statement arrived: its statement timeout counts from here.
    pub fn began(&self) -> Instant {
        self.began
    }

    /// What is known of the statement now (its SQL once drafted or printed, its trace).
    pub fn describe(&mut self, start: &Request) {
        if let Some(rec) = self.record.as_mut() {
            rec.question = start.question.clone();
            rec.sql = start.sql.clone();
            rec.trace = start.trace.clone();
        }
    }

    /// Governance's decision: what the statement reads and which rules applied.
    pub fn governed(&mut self, g: &GovernedPlan) {
        self.decided(&g.objects, g.decision, &g.rules);
    }

    /// The same for a decision of any lane: what it reads, the decision, the rules applied.
    pub fn decided(&mut self, objects: &[String], decision: crate::governance::Decision, rules: &[String]) {
        if let Some(rec) = self.record.as_mut() {
            rec.objects = objects.to_vec();
            rec.decision = decision.as_str().into();
            rec.rules = rules.to_vec();
        }
    }

    /// Write the statement's `start` line now, before it is sent to run (governance has decided):
    /// the sync then overlaps the statement's execution instead of following it. The scope then
    /// closes with an `end` line that completes it.
    pub fn start(&mut self) {
        let Some(rec) = self.record.as_ref() else { return };
        if self.admission.is_some() {
            return;
        }
        let mut start = rec.clone();
        start.kind = "start".into();
        let log = self.log.clone();
        self.admission = Some(crate::telemetry::spawn(async move { log.append(start, Wait::Durable).await }));
    }

    /// Close the scope for a statement that failed before it produced rows; returns the error.
    pub async fn fail(mut self, e: LaloError) -> LaloError {
        let Some(mut rec) = self.record.take() else { return e };
        rec.decision = if e.is_refusal() { "denied".into() } else { "failed".into() };
        rec.error = Some(e.audit_text());
        rec.duration_ms = self.began.elapsed().as_secs_f64() * 1000.0;
        // A relation hidden from the caller counts as the missing one the client was told of:
        // `/metrics` is no oracle for what exists (the audit line keeps the truth).
        let outcome = match e.denial_reason() {
            Some(reason) => {
                crate::metrics::denial(reason);
                "denied"
            }
            None => "error",
        };
        crate::metrics::statement(outcome, self.entry, self.lane, self.began.elapsed().as_secs_f64());
        if let Err(err) = close(&self.log, rec, self.admission.take()).await {
            tracing::error!(error = %err, "audit write failed");
        }
        e
    }

    /// Close the scope for a statement that completed with `rows` rows and no result stream
    /// (commands, cursor moves, EXPLAIN ASK, a result already whole in hand: one line, durable
    /// before the client hears anything). An audit write that fails fails the statement.
    pub async fn finish(mut self, rows: u64) -> Result<(), LaloError> {
        let Some(mut rec) = self.record.take() else { return Ok(()) };
        rec.rows = rows;
        rec.duration_ms = self.began.elapsed().as_secs_f64() * 1000.0;
        crate::metrics::statement("ok", self.entry, self.lane, self.began.elapsed().as_secs_f64());
        close(&self.log, rec, self.admission.take()).await
    }

    /// Hand the scope to a result stream's guard: the statement's `start` line is written now,
    /// concurrently with the first batch; the guard waits for it before the first row leaves and
    /// writes the `end` line when the stream ends.
    pub fn into_guard(mut self, slot: Option<Slot>) -> GuardOptions {
        let mut record = self.record.take().unwrap_or_default();
        let mut start = record.clone();
        start.kind = "start".into();
        let admission = match self.admission.take() {
            Some(a) => a,
            None => {
                let log = self.log.clone();
                crate::telemetry::spawn(async move { log.append(start, Wait::Durable).await })
            }
        };
        // The end line repeats who and what (a reader need not join) but not the trace.
        record.kind = "end".into();
        record.trace = None;
        GuardOptions {
            admission: Some(admission),
            timeout_ms: None,
            max_rows: None,
            cancel: None,
            shutdown: None,
            audit: self.log.clone(),
            record,
            began: self.began,
            entry: self.entry,
            lane: self.lane,
            span: if crate::telemetry::enabled() { tracing::Span::current() } else { tracing::Span::none() },
            slot,
            truncate_at: None,
        }
    }
}

impl Drop for AuditScope {
    fn drop(&mut self) {
        // Dropped open: the statement's task ended before any exit path closed the scope.
        let Some(mut rec) = self.record.take() else { return };
        rec.decision = "failed".into();
        rec.error = Some("57014: the statement ended before it finished (canceled, or the client left)".into());
        rec.duration_ms = self.began.elapsed().as_secs_f64() * 1000.0;
        crate::metrics::statement("canceled", self.entry, self.lane, self.began.elapsed().as_secs_f64());
        let log = self.log.clone();
        let admission = self.admission.take();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(tracing::Instrument::in_current_span(async move {
                if let Err(e) = close(&log, rec, admission).await {
                    tracing::error!(error = %e, "audit write failed");
                }
            }));
        }
    }
}

/// Write a statement's closing record: an `end` line completing its durable `start` line when it
/// has one (written before the client hears of the outcome; synced with the next group), else
/// the whole statement in one durable line.
async fn close(
    log: &Arc<AuditLog>,
    mut rec: AuditRecord,
    admission: Option<tokio::task::JoinHandle<Result<u64, LaloError>>>,
) -> Result<(), LaloError> {
    if let Some(a) = admission {
        if let Ok(Ok(seq)) = a.await {
            rec.kind = "end".into();
            rec.completes = Some(seq);
            rec.trace = None;
            return log.append(rec, Wait::Written).await.map(|_| ());
        }
    }
    log.append(rec, Wait::Durable).await.map(|_| ())
}
