//! Streams results batch by batch under a guard: statement timeout, client cancel, row cap, the
//! statement's audit line durable before its first row leaves, and the completing line written
//! when the stream ends (before the client sees completion).
//! Plans execute on a runtime of their own ([`execute_apart`]), so the guard's deadline fires on
//! time however long an operator computes between yields.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;
use tracing::Instrument;

use crate::engine::interrupt::Interrupt;
use crate::error::LaloError;
use crate::governance::audit::{AuditLog, AuditRecord, Wait};
use crate::governance::limits::Slot;

/// A stream of result batches.
pub type RowStream = BoxStream<'static, Result<RecordBatch, LaloError>>;

/// Called on the first poll; resolves when the client cancels the statement.
pub type CancelArm = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

/// What the guard enforces and records.
pub struct GuardOptions {
    pub timeout_ms: Option<u64>,
    pub max_rows: Option<u64>,
    pub cancel: Option<CancelArm>,
    pub audit: Arc<AuditLog>,
    /// The statement's start line being written; nothing is delivered until it is durable.
    pub admission: Option<tokio::task::JoinHandle<Result<u64, LaloError>>>,
    /// The line that completes the statement when the stream ends.
    pub record: AuditRecord,
    pub began: Instant,
    pub entry: &'static str,
    /// The lane that answers (for the metrics).
    pub lane: &'static str,
    /// The statement's span (disabled unless tracing): the stream runs after the entry point's
    /// span has closed, so its end and its audit line are recorded under this one.
    pub span: tracing::Span,
    pub slot: Option<Slot>,
    /// Stop cleanly after this many rows (callers that cap their result, e.g. MCP).
    pub truncate_at: Option<u64>,
    /// Set when the gateway's shutdown grace is over: the statement ends with 57P01.
    pub shutdown: Option<tokio_util::sync::CancellationToken>,
}

/// What the guard counts rows in: Arrow batches, or rows forwarded from an upstream as is.
pub trait Counted: Send + 'static {
    fn count(&self) -> usize;
    /// The first `n` rows.
    fn keep(self, n: usize) -> Self;
}

impl Counted for RecordBatch {
    fn count(&self) -> usize {
        self.num_rows()
    }
    fn keep(self, n: usize) -> Self {
        self.slice(0, n)
    }
}

impl Counted for Vec<pgwire::messages::data::DataRow> {
    fn count(&self) -> usize {
        self.len()
    }
    fn keep(mut self, n: usize) -> Self {
        self.truncate(n);
        self
    }
}

/// Rows forwarded from an upstream without decoding (the direct lane's pass-through).
pub type WireRowStream = BoxStream<'static, Result<Vec<pgwire::messages::data::DataRow>, LaloError>>;

struct State<T> {
    inner: BoxStream<'static, Result<T, LaloError>>,
    deadline: Option<tokio::time::Instant>,
    cancel: Option<BoxFuture<'static, ()>>,
    arm: Option<CancelArm>,
    rows: u64,
    opts: GuardOptions,
    done: bool,
}

/// Wrap an executing stream with the guard.
pub fn guard(inner: SendableRecordBatchStream, opts: GuardOptions) -> RowStream {
    guard_items(inner.map(|b| b.map_err(LaloError::from)).boxed(), opts)
}

/// [`guard`] for any stream of counted rows.
pub fn guard_items<T: Counted>(
    inner: BoxStream<'static, Result<T, LaloError>>,
    mut opts: GuardOptions,
) -> BoxStream<'static, Result<T, LaloError>> {
    let deadline = opts.timeout_ms.map(|ms| tokio::time::Instant::from_std(opts.began) + Duration::from_millis(ms));
    let arm = opts.cancel.take();
    let st = State { inner, deadline, cancel: None, arm, rows: 0, opts, done: false };
    futures::stream::unfold(st, |mut st| async move {
        if st.done {
            return None;
        }
        if let Some(arm) = st.arm.take() {
            st.cancel = Some(arm());
        }
        let next = {
            let sleep = async {
                match st.deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => futures::future::pending().await,
                }
            };
            let cancel = async {
                match st.cancel.as_mut() {
                    Some(c) => c.await,
                    None => futures::future::pending().await,
                }
            };
            let shutdown = async {
                match st.opts.shutdown.as_ref() {
                    Some(t) => t.cancelled().await,
                    None => futures::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = cancel => Err(LaloError::Canceled),
                _ = shutdown => Err(LaloError::AdminShutdown),
                _ = sleep => Err(LaloError::Timeout),
                b = st.inner.next() => match b {
                    Some(Ok(batch)) => Ok(Some(batch)),
                    Some(Err(e)) => Err(e),
                    None => Ok(None),
                },
            }
        };
        let next = match next {
            // Nothing leaves before the statement's audit line is durable.
            Ok(item) => match admit(&mut st).await {
                Ok(()) => Ok(item),
                Err(e) => {
                    st.done = true;
                    st.opts.slot.take();
                    record_whole(&mut st, &e).await;
                    return Some((Err(e), st));
                }
            },
            Err(e) => Err(e),
        };
        match next {
            Ok(Some(mut batch)) => {
                if let Some(cap) = st.opts.truncate_at {
                    let room = cap.saturating_sub(st.rows);
                    if (batch.count() as u64) >= room {
                        batch = batch.keep(room as usize);
                        st.rows += room;
                        finish(&mut st, None).await;
                        return Some((Ok(batch), st));
                    }
                }
                st.rows += batch.count() as u64;
                if let Some(max) = st.opts.max_rows {
                    if st.rows > max {
                        let e = row_limit_exceeded(max);
                        finish(&mut st, Some(&e)).await;
                        return Some((Err(e), st));
                    }
                }
                Some((Ok(batch), st))
            }
            Ok(None) => {
                finish(&mut st, None).await;
                None
            }
            Err(e) => {
                finish(&mut st, Some(&e)).await;
                Some((Err(e), st))
            }
        }
    })
    // Fused: a cursor may be fetched again after its result ended.
    .fuse()
    .boxed()
}

/// The error of a result with more rows than its limit allows.
pub fn row_limit_exceeded(max: u64) -> LaloError {
    LaloError::LimitExceeded(format!("result exceeds the row limit of {max} rows; add a LIMIT or aggregate"))
}

/// Wait (once) for the statement's start line; its line number is what the end line completes.
async fn admit<T>(st: &mut State<T>) -> Result<(), LaloError> {
    let Some(handle) = st.opts.admission.take() else { return Ok(()) };
    let seq = handle.await.map_err(|e| LaloError::Internal(format!("audit write: {e}")))??;
    st.opts.record.completes = Some(seq);
    Ok(())
}

impl<T> Drop for State<T> {
    fn drop(&mut self) {
        // The client went away (or stopped reading) before the end: record it anyway.
        if self.done {
            return;
        }
        let mut rec = std::mem::take(&mut self.opts.record);
        rec.rows = self.rows;
        rec.duration_ms = self.opts.began.elapsed().as_secs_f64() * 1000.0;
        rec.error = Some("08006: the client stopped reading before the result ended".into());
        crate::metrics::statement("canceled", self.opts.entry, self.opts.lane, self.opts.began.elapsed().as_secs_f64());
        self.opts.span.record("lalo.outcome", "canceled");
        let audit = self.opts.audit.clone();
        let admission = self.opts.admission.take();
        let span = self.opts.span.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Some(a) = admission {
                    match a.await {
                        Ok(Ok(seq)) => rec.completes = Some(seq),
                        _ => return, // the start line never reached the file: nothing to complete
                    }
                }
                let wait = if rec.completes.is_some() { Wait::Written } else { Wait::Durable };
                if rec.completes.is_none() {
                    rec.kind = "statement".into();
                }
                if let Err(e) = audit.append(rec, wait).await {
                    tracing::error!(error = %e, "audit write failed");
                }
            }.instrument(span));
        }
    }
}

/// The statement's start line never reached the file (a failed write): it is recorded whole, in
/// one durable line, if the trail still takes lines, so a statement that ran (upstream, say) is
/// not left without a record. Its client gets an error either way.
async fn record_whole<T>(st: &mut State<T>, e: &LaloError) {
    tracing::error!(error = %e, "audit write failed");
    let mut rec = std::mem::take(&mut st.opts.record);
    rec.kind = "statement".into();
    rec.completes = None;
    rec.rows = st.rows;
    rec.duration_ms = st.opts.began.elapsed().as_secs_f64() * 1000.0;
    rec.decision = "failed".into();
    rec.error = Some(format!("{}: {e}", e.sqlstate()));
    crate::metrics::statement("error", st.opts.entry, st.opts.lane, st.opts.began.elapsed().as_secs_f64());
    st.opts.span.record("lalo.outcome", "error");
    if let Err(e) = st.opts.audit.append(rec, Wait::Durable).instrument(st.opts.span.clone()).await {
        tracing::error!(error = %e, "audit write failed");
    }
}

async fn finish<T>(st: &mut State<T>, err: Option<&LaloError>) {
    st.done = true;
    st.opts.slot.take();
    if let Err(e) = admit(st).await {
        record_whole(st, err.unwrap_or(&e)).await;
        return;
    }
    let mut rec = std::mem::take(&mut st.opts.record);
    if rec.completes.is_none() {
        rec.kind = "statement".into();
    }
    rec.rows = st.rows;
    rec.duration_ms = st.opts.began.elapsed().as_secs_f64() * 1000.0;
    let outcome = match err {
        None => "ok",
        Some(LaloError::Timeout | LaloError::Canceled) => "canceled",
        Some(_) => "error",
    };
    if let Some(e) = err {
        rec.error = Some(format!("{}: {e}", e.sqlstate()));
        if rec.decision == "allowed" {
            rec.decision = "failed".into();
        }
    }
    if let Some(reason) = err.and_then(LaloError::denial_reason) {
        crate::metrics::denial(reason);
    }
    crate::metrics::statement(outcome, st.opts.entry, st.opts.lane, st.opts.began.elapsed().as_secs_f64());
    st.opts.span.record("lalo.outcome", outcome);
    // An end line completes a durable start line: written before the client sees completion,
    // synced with the next group. A guard without a start line writes the whole statement.
    let wait = if rec.completes.is_some() { Wait::Written } else { Wait::Durable };
    if let Err(e) = st.opts.audit.append(rec, wait).instrument(st.opts.span.clone()).await {
        tracing::error!(error = %e, "audit write failed");
    }
}

/// The runtime statements execute on, apart from the one that serves connections.
///
/// DataFusion's operators can compute for a long time inside one poll (a nested-loop join
/// probing a whole batch, a hash build, a sort) and its partitions run as tasks of their own. On
/// the connection's runtime they hold every worker thread (the only thread under a
/// current-thread runtime), so the guard's deadline and the client's cancel wait until some poll
/// ends: statement timeouts fired several times late. Executed here instead, the connection's
/// runtime stays free to fire the deadline on time and answer 57014 while the work is dropped.
fn executor() -> Option<&'static tokio::runtime::Runtime> {
    static EXECUTOR: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    EXECUTOR
        .get_or_init(|| {
            // More threads than cores: a statement that timed out or was canceled keeps its
            // workers until its operators' current polls end (they cannot be interrupted), and
            // the statements after it must still find a free worker at once.
            let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
            let threads = (cores * 4).max(4);
            match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("lalo-exec")
                .enable_all()
                .build()
            {
                Ok(rt) => Some(rt),
                Err(e) => {
                    tracing::error!(error = %e, "no separate execution runtime; statements run on the server's");
                    None
                }
            }
        })
        .as_ref()
}

/// Stops the executing statement when the result stream is dropped (timeout, cancel, client
/// gone): its operators at their next check ([`Interrupt`]), its task at its next yield.
struct AbortOnDrop(tokio::task::AbortHandle, Interrupt);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.1.stop();
        self.0.abort();
    }
}

/// Start `plan` on the execution runtime (see [`executor`]) and stream its batches back.
pub fn execute_apart(
    plan: Arc<dyn ExecutionPlan>,
    task: Arc<datafusion::execution::TaskContext>,
) -> datafusion::error::Result<SendableRecordBatchStream> {
    execute_budgeted(plan, task, None)
}

/// [`execute_apart`], its scans and joins drawing on `budget` (a caller's `max_scan_rows`).
pub fn execute_budgeted(
    plan: Arc<dyn ExecutionPlan>,
    task: Arc<datafusion::execution::TaskContext>,
    budget: Option<Arc<crate::engine::interrupt::RowBudget>>,
) -> datafusion::error::Result<SendableRecordBatchStream> {
    let interrupt = Interrupt::with_budget(budget.clone());
    let Some(rt) = executor() else {
        let plan = if budget.is_some() { interrupt.arm(plan)? } else { plan };
        return datafusion::physical_plan::execute_stream(plan, task);
    };
    let schema = plan.schema();
    let plan = interrupt.arm(plan)?;
    // Two batches in flight: execution runs ahead of the client a little, not unboundedly.
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let handle = rt.spawn(async move {
        // Started here, so the partitions it spawns run on this runtime too.
        let mut stream = match datafusion::physical_plan::execute_stream(plan, task) {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        while let Some(item) = stream.next().await {
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                return;
            }
        }
    });
    let abort = AbortOnDrop(handle.abort_handle(), interrupt);
    let batches = futures::stream::unfold((rx, abort), |(mut rx, abort)| async move {
        rx.recv().await.map(|item| (item, (rx, abort)))
    });
    Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
}

/// A one-row, one-text-column result (SHOW).
pub fn single_text(name: &str, value: &str) -> (SchemaRef, RowStream) {
    let schema = Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, true)]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(vec![value.to_string()]))]);
    let item = batch.map_err(|e| LaloError::Internal(e.to_string()));
    (schema, futures::stream::iter(vec![item]).boxed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::governance::audit::AuditOptions;

    /// A statement whose start line could not be written fails, and is still recorded: one
    /// whole durable line with the error, written once the trail takes lines again.
    #[tokio::test]
    async fn a_statement_whose_start_line_failed_is_recorded_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(&path, AuditOptions::default()).await.unwrap();
        let writable = log.swap_file(std::fs::File::open(&path).unwrap()).await;
        let record = AuditRecord { user: "u".into(), input: "select 1".into(), decision: "allowed".into(), ..Default::default() };
        let mut start = record.clone();
        start.kind = "start".into();
        let admission = {
            let log = log.clone();
            tokio::spawn(async move { log.append(start, Wait::Durable).await })
        };
        // The start line's write fails while the file is read-only.
        assert!(admission.await.unwrap().is_err(), "the start line cannot be written");
        log.restore_file(writable).await;
        // The guard is handed that failed admission.
        let failed = tokio::spawn(async { Err::<u64, LaloError>(LaloError::Internal("audit log write failed".into())) });
        let batch = RecordBatch::new_empty(Arc::new(Schema::new(vec![Field::new("x", DataType::Utf8, true)])));
        let opts = GuardOptions {
            timeout_ms: None,
            max_rows: None,
            cancel: None,
            shutdown: None,
            audit: log.clone(),
            admission: Some(failed),
            record,
            began: Instant::now(),
            entry: "pgwire",
            lane: "engine",
            span: tracing::Span::none(),
            slot: None,
            truncate_at: None,
        };
        let mut rows = guard_items(futures::stream::iter(vec![Ok(batch)]).boxed(), opts);
        assert!(rows.next().await.expect("an item").is_err(), "no row leaves without a start line");
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        assert!(lines[0].contains("\"kind\":\"statement\"") && lines[0].contains("audit log write failed"), "{text}");
    }
}
