//! A statement that is dropped (timed out, canceled, its client gone) stops computing at its
//! operators' next batch or join-filter evaluation instead of running to the end.
//!
//! Dropping a statement aborts the task that drives its plan, but tokio can stop a task only when
//! it yields, and DataFusion's operators can compute for a long time inside one poll: a
//! nested-loop join whose filter matches nothing probes the whole cross product without producing
//! a batch, and a parent that is always handed a ready batch (an aggregate over a cross join)
//! never returns Pending. Such a statement answered 57014 on time and then kept every core busy
//! for as long as it would have run, slowing every statement after it. So each operator of an
//! executing plan is wrapped in a check of the statement's flag, and so is the filter of each
//! nested-loop join (the one operator that loops over its input without yielding a batch).

use std::fmt;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{FieldRef, Schema, SchemaRef};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::ColumnarValue;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::analyze::AnalyzeExec;
use datafusion::physical_plan::joins::utils::JoinFilter;
use datafusion::physical_plan::joins::{NestedLoopJoinExec, NestedLoopJoinExecBuilder};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::Stream;

/// One executing statement's stop flag, and the row budget its scans and joins draw on.
#[derive(Clone, Default)]
pub struct Interrupt(Arc<AtomicBool>, Option<Arc<RowBudget>>);

/// Rows a statement's scans and joins may produce while it runs (a caller's `max_scan_rows`):
/// the pre-flight estimate's backstop, for work no estimate saw coming.
#[derive(Debug)]
pub struct RowBudget {
    limit: u64,
    used: AtomicU64,
}

impl RowBudget {
    pub fn new(limit: u64) -> Arc<RowBudget> {
        Arc::new(RowBudget { limit, used: AtomicU64::new(0) })
    }

    fn spend(&self, rows: usize) -> Result<()> {
        let used = self.used.fetch_add(rows as u64, Ordering::Relaxed) + rows as u64;
        if used > self.limit {
            return Err(self.error());
        }
        Ok(())
    }

    fn exceeded(&self) -> bool {
        self.used.load(Ordering::Relaxed) > self.limit
    }

    fn error(&self) -> DataFusionError {
        {
            let e = crate::error::LaloError::OverBudget {
                message: format!(
                    "statement stopped: scan budget exceeded while running (more than {} rows read or produced by scans and joins)",
                    self.limit
                ),
                hint: Some("narrow the statement (filters on keys, join conditions) or ask an administrator for a larger max_scan_rows".into()),
            };
            DataFusionError::External(Box::new(e))
        }
    }
}

/// Operators whose output counts against a [`RowBudget`]: what reads rows (every leaf) and what
/// multiplies them (joins, unnest, recursion).
fn counted(node: &Arc<dyn ExecutionPlan>) -> bool {
    let name = node.name();
    node.children().is_empty() || name.contains("Join") || name == "UnnestExec" || name == "RecursiveQueryExec"
}

impl Interrupt {
    /// A flag whose statement also draws on `budget`.
    pub fn with_budget(budget: Option<Arc<RowBudget>>) -> Interrupt {
        Interrupt(Arc::default(), budget)
    }

    /// Stop the statement's operators at their next check.
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn check(&self) -> Result<()> {
        if self.0.load(Ordering::Relaxed) {
            // Every operator stopped by a spent budget says so (whichever error reaches the client).
            if let Some(b) = self.1.as_ref().filter(|b| b.exceeded()) {
                return Err(b.error());
            }
            return Err(DataFusionError::Execution("the statement was stopped".into()));
        }
        Ok(())
    }

    /// `plan` with every operator (and every nested-loop join's filter) checking this flag.
    /// (EXPLAIN ANALYZE prints the plan it ran, so there only the join filters check: a
    /// wrapper would show as an operator of the user's plan.)
    pub fn arm(&self, plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
        let wrap = !plan.is::<AnalyzeExec>();
        plan.transform_up(|node| {
            let node = self.arm_join_filter(node)?;
            if !wrap {
                return Ok(Transformed::yes(node));
            }
            let budget = self.1.clone().filter(|_| counted(&node));
            Ok(Transformed::yes(Arc::new(Checked { input: node, flag: self.clone(), budget }) as Arc<dyn ExecutionPlan>))
        })
        .map(|t| t.data)
    }

    fn arm_join_filter(&self, node: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(join) = node.downcast_ref::<NestedLoopJoinExec>() else { return Ok(node) };
        let Some(filter) = join.filter() else { return Ok(node) };
        let expr = Arc::new(CheckedExpr { inner: filter.expression().clone(), flag: self.clone() });
        let filter = JoinFilter::new(expr, filter.column_indices().to_vec(), filter.schema().clone());
        Ok(Arc::new(NestedLoopJoinExecBuilder::from(join).with_filter(Some(filter)).build()?))
    }
}

/// Passes its input through, ending with an error once the statement is stopped.
#[derive(Debug)]
struct Checked {
    input: Arc<dyn ExecutionPlan>,
    flag: Interrupt,
    /// The statement's row budget, when this operator's rows count against it.
    budget: Option<Arc<RowBudget>>,
}

impl fmt::Debug for Interrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Interrupt({})", self.0.load(Ordering::Relaxed))
    }
}

impl DisplayAs for Checked {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "Interruptible")
    }
}

impl ExecutionPlan for Checked {
    fn name(&self) -> &str {
        "Interruptible"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    // Transparent to code that inspects an operator's kind.
    fn downcast_delegate(&self) -> Option<&dyn ExecutionPlan> {
        Some(self.input.as_ref())
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        match children.into_iter().next() {
            Some(input) => Ok(Arc::new(Checked { input, flag: self.flag.clone(), budget: self.budget.clone() })),
            None => datafusion::common::internal_err!("Interruptible takes one input"),
        }
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        self.flag.check()?;
        let inner = self.input.execute(partition, context)?;
        Ok(Box::pin(CheckedStream { inner, flag: self.flag.clone(), budget: self.budget.clone() }))
    }
}

struct CheckedStream {
    inner: SendableRecordBatchStream,
    flag: Interrupt,
    budget: Option<Arc<RowBudget>>,
}

impl Stream for CheckedStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Err(e) = self.flag.check() {
            return Poll::Ready(Some(Err(e)));
        }
        let next = self.inner.as_mut().poll_next(cx);
        if let (Poll::Ready(Some(Ok(batch))), Some(budget)) = (&next, &self.budget) {
            if let Err(e) = budget.spend(batch.num_rows()) {
                // The rest of the statement stops at its next check too.
                self.flag.stop();
                return Poll::Ready(Some(Err(e)));
            }
        }
        next
    }
}

impl RecordBatchStream for CheckedStream {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

/// A join filter that fails once the statement is stopped.
#[derive(Debug)]
struct CheckedExpr {
    inner: Arc<dyn PhysicalExpr>,
    flag: Interrupt,
}

impl PartialEq for CheckedExpr {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.flag.0, &other.flag.0) && self.inner.as_ref() == other.inner.as_ref()
    }
}

impl Eq for CheckedExpr {}

impl Hash for CheckedExpr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.hash(state);
    }
}

impl fmt::Display for CheckedExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl PhysicalExpr for CheckedExpr {
    fn return_field(&self, input_schema: &Schema) -> Result<FieldRef> {
        self.inner.return_field(input_schema)
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        self.flag.check()?;
        self.inner.evaluate(batch)
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![&self.inner]
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn PhysicalExpr>>) -> Result<Arc<dyn PhysicalExpr>> {
        match children.into_iter().next() {
            Some(inner) => Ok(Arc::new(CheckedExpr { inner, flag: self.flag.clone() })),
            None => datafusion::common::internal_err!("a checked filter takes one expression"),
        }
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt_sql(f)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use datafusion::prelude::SessionContext;
    use futures::StreamExt;

    use super::*;

    /// A nested-loop join whose filter never matches runs for minutes in one poll; stopped, it
    /// ends with an error at once instead of answering when it is done.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stopped_join_ends_without_finishing() {
        let ctx = SessionContext::new();
        let sql = "SELECT count(*) FROM generate_series(1, 300000) a(x), generate_series(1, 300000) b(y) \
                   WHERE a.x + b.y < 0";
        let plan = ctx.sql(sql).await.unwrap().create_physical_plan().await.unwrap();
        let interrupt = Interrupt::default();
        let armed = interrupt.arm(plan).unwrap();
        let task = ctx.task_ctx();
        let run = tokio::spawn(async move {
            let mut stream = datafusion::physical_plan::execute_stream(armed, task)?;
            while let Some(batch) = stream.next().await {
                batch?;
            }
            Ok::<_, DataFusionError>(())
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        interrupt.stop();
        let ended = tokio::time::timeout(Duration::from_secs(60), run).await;
        let outcome = ended.expect("the stopped statement ends").unwrap();
        let err = outcome.expect_err("the statement was stopped, not finished");
        assert!(err.to_string().contains("stopped"), "{err}");
    }

    /// Armed plans answer as before.
    #[tokio::test]
    async fn an_armed_plan_answers_as_before() {
        let ctx = SessionContext::new();
        let sql = "SELECT count(*) FROM generate_series(1, 300) a(x), generate_series(1, 300) b(y) WHERE a.x < b.y";
        let plan = ctx.sql(sql).await.unwrap().create_physical_plan().await.unwrap();
        let armed = Interrupt::default().arm(plan).unwrap();
        let batches = datafusion::physical_plan::collect(armed, ctx.task_ctx()).await.unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string();
        assert!(text.contains("44850"), "{text}");
        // EXPLAIN ANALYZE shows the user's plan, not the checks.
        let plan = ctx.sql(&format!("EXPLAIN ANALYZE {sql}")).await.unwrap().create_physical_plan().await.unwrap();
        let armed = Interrupt::default().arm(plan).unwrap();
        let batches = datafusion::physical_plan::collect(armed, ctx.task_ctx()).await.unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string();
        assert!(text.contains("NestedLoopJoinExec") && !text.contains("Interruptible"), "{text}");
    }
}
