//! The scan of a table held in memory (`memory_cache.rs`) that applies the filters a join or a
//! top-k computes while the statement runs (DataFusion's dynamic filters). A hash join pushes
//! the keys of its build side into its probe side's scan; the Parquet scan drops rows outside
//! them while decoding, and so must the memory scan, or a table moved into memory reads every
//! row into joins and aggregates the file scan would have skipped (TPC-H Q17 groups all of
//! `lineitem` by part before the join keeps 0.1 % of it). DataFusion's own memory scan accepts
//! no filters, so this one wraps it: everything else (partitions, projection, statistics,
//! ordering, EXPLAIN) is the wrapped scan's.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, BooleanArray};
use datafusion::arrow::compute::{and, filter_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{MemTable, Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::{Constraints, Result, ScalarValue, Statistics};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::source::{DataSource, DataSourceExec};
use datafusion::datasource::TableType;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::expressions::{DynamicFilterPhysicalExpr, Literal};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_expr_common::physical_expr::{snapshot_generation, snapshot_physical_expr};
use datafusion::physical_plan::filter_pushdown::{FilterPushdownPropagation, PushedDown};
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion::physical_plan::projection::ProjectionExprs;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayFormatType, ExecutionPlan, Partitioning};
use datafusion::config::ConfigOptions;
use futures::StreamExt;

/// A table held in memory whose scans take dynamic filters.
#[derive(Debug)]
pub struct CachedTable {
    inner: Arc<MemTable>,
    /// The whole table's statistics, ranges and distinct counts included (`table_stats.rs`).
    stats: Arc<Statistics>,
}

impl CachedTable {
    pub fn new(inner: Arc<MemTable>, stats: Statistics) -> CachedTable {
        CachedTable { inner, stats: Arc::new(stats) }
    }
}

#[async_trait]
impl TableProvider for CachedTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn constraints(&self) -> Option<&Constraints> {
        self.inner.constraints()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// For logical rules that size a table before planning (`pinned_first.rs`).
    fn statistics(&self) -> Option<Statistics> {
        Some(self.stats.as_ref().clone())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = self.inner.scan(state, projection, filters, limit).await?;
        // MemTable scans are a DataSourceExec over a MemorySourceConfig; anything else is
        // passed on as it is (it only misses the dynamic filters).
        let Some(memory) = memory_source(&plan) else { return Ok(plan) };
        Ok(DataSourceExec::from_data_source(FilteredMemory { inner: memory, filters: vec![], gated: Arc::default(), table: self.stats.clone() }))
    }

    async fn insert_into(&self, state: &dyn Session, input: Arc<dyn ExecutionPlan>, op: InsertOp) -> Result<Arc<dyn ExecutionPlan>> {
        self.inner.insert_into(state, input, op).await
    }
}

fn memory_source(plan: &Arc<dyn ExecutionPlan>) -> Option<MemorySourceConfig> {
    let exec = (plan.as_ref() as &dyn Any).downcast_ref::<DataSourceExec>()?;
    (exec.data_source().as_ref() as &dyn Any).downcast_ref::<MemorySourceConfig>().cloned()
}

/// DataFusion's memory scan plus the dynamic filters pushed into it.
#[derive(Debug, Clone)]
struct FilteredMemory {
    inner: MemorySourceConfig,
    /// Dynamic filters only, in terms of this scan's output columns.
    filters: Vec<Arc<dyn PhysicalExpr>>,
    /// Filters (by `expression_id`) a hash join of this plan fills in from its build side: the
    /// scan waits until they are complete before its first row (`join_filter_gate.rs`). Set in
    /// place once the plan is final: rebuilding the plan's nodes for it would recompute every
    /// operator above the scan.
    gated: Arc<parking_lot::Mutex<Vec<u64>>>,
    /// The whole table's statistics, by the table's column order (the scan may project).
    table: Arc<Statistics>,
}

impl FilteredMemory {
    /// The same filters over another memory scan (repartitioned, projected, limited) of this one.
    fn wrap(&self, other: Arc<dyn DataSource>, keep_filters: bool) -> Arc<dyn DataSource> {
        match (other.as_ref() as &dyn Any).downcast_ref::<MemorySourceConfig>() {
            Some(m) => Arc::new(if keep_filters {
                FilteredMemory {
                    inner: m.clone(),
                    filters: self.filters.clone(),
                    gated: Arc::new(parking_lot::Mutex::new(self.gated.lock().clone())),
                    table: self.table.clone(),
                }
            } else {
                FilteredMemory { inner: m.clone(), filters: vec![], gated: Arc::default(), table: self.table.clone() }
            }),
            None => other,
        }
    }
}

/// How long a scan waits for its joins' filters at most: most builds take milliseconds; a large
/// one, or a filter that never completes (a case the gate's rule does not know), costs at most
/// this and not the statement.
pub(crate) const GATE_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// When `plan` is a memory scan taking dynamic filters: gate (wait for before its first row)
/// those of its filters whose expression ids are in `joins`.
pub(crate) fn gate_scan(plan: &Arc<dyn ExecutionPlan>, joins: &[u64]) {
    let Some(exec) = (plan.as_ref() as &dyn Any).downcast_ref::<DataSourceExec>() else { return };
    let Some(scan) = (exec.data_source().as_ref() as &dyn Any).downcast_ref::<FilteredMemory>() else { return };
    *scan.gated.lock() = scan.filters.iter().filter_map(filter_id).filter(|id| joins.contains(id)).collect();
}

/// The id a dynamic filter keeps through every copy of it (remapped columns share it).
pub(crate) fn filter_id(f: &Arc<dyn PhysicalExpr>) -> Option<u64> {
    (f.as_ref() as &dyn Any).downcast_ref::<DynamicFilterPhysicalExpr>().map(|d| d.inner().expression_id)
}

impl DataSource for FilteredMemory {
    fn open(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let stream = self.inner.open(partition, context)?;
        if self.filters.is_empty() {
            return Ok(stream);
        }
        let schema = stream.schema();
        let mut filters = Snapshots::new(self.filters.clone());
        let filtered = stream.filter_map(move |batch| std::future::ready(batch.and_then(|b| filters.apply(b)).transpose()));
        let gated = self.gated.lock().clone();
        let gates: Vec<Arc<dyn PhysicalExpr>> =
            self.filters.iter().filter(|f| filter_id(f).is_some_and(|id| gated.contains(&id))).cloned().collect();
        if gates.is_empty() {
            return Ok(Box::pin(RecordBatchStreamAdapter::new(schema, filtered)));
        }
        // Rows read before the join's build side is known pass unfiltered into the joins above
        // (an operator that drives its inputs from tasks of their own starts this scan at once):
        // wait for the filter first. The join probes only after the same moment, so nothing
        // above waits longer; see join_filter_gate.rs for why this cannot wait forever.
        let wait = futures::stream::once(async move {
            let all = async {
                for g in gates {
                    if let Some(d) = (g.as_ref() as &dyn Any).downcast_ref::<DynamicFilterPhysicalExpr>() {
                        d.wait_complete().await;
                    }
                }
            };
            if tokio::time::timeout(GATE_LIMIT, all).await.is_err() {
                // A large build side takes this long; the scan reads on as it did before it waited.
                tracing::debug!("a join filter was not complete after {GATE_LIMIT:?}: the scan reads on");
            }
        })
        .filter_map(|()| std::future::ready(None::<Result<RecordBatch>>));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, wait.chain(filtered))))
    }

    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        self.inner.fmt_as(t, f)?;
        if !self.filters.is_empty() {
            let shown: Vec<String> = self.filters.iter().map(|e| e.to_string()).collect();
            write!(f, ", dynamic_filters=[{}]", shown.join(", "))?;
        }
        Ok(())
    }

    fn repartitioned(
        &self,
        target_partitions: usize,
        repartition_file_min_size: usize,
        output_ordering: Option<datafusion::physical_expr::LexOrdering>,
    ) -> Result<Option<Arc<dyn DataSource>>> {
        let re = self.inner.repartitioned(target_partitions, repartition_file_min_size, output_ordering)?;
        Ok(re.map(|r| self.wrap(r, true)))
    }

    fn output_partitioning(&self) -> Partitioning {
        self.inner.output_partitioning()
    }

    fn eq_properties(&self) -> EquivalenceProperties {
        self.inner.eq_properties()
    }

    fn scheduling_type(&self) -> datafusion::physical_plan::execution_plan::SchedulingType {
        self.inner.scheduling_type()
    }

    fn partition_statistics(&self, partition: Option<usize>) -> Result<Arc<Statistics>> {
        let width = self.inner.original_schema().fields().len();
        let taken: Vec<usize> = self.inner.projection().clone().unwrap_or_else(|| (0..width).collect());
        let rows: usize = self.inner.partitions().iter().flatten().map(|b| b.num_rows()).sum();
        let mut stats = if partition.is_none() && self.inner.fetch().is_none() && self.table.num_rows == Precision::Exact(rows) {
            // The whole table through the scan's projection, without a walk over its batches.
            let mut stats = self.table.as_ref().clone().project(Some(&taken));
            let bytes = stats.column_statistics.iter().map(|c| c.byte_size.get_value().copied()).sum::<Option<usize>>();
            stats.total_byte_size = bytes.map_or(Precision::Absent, Precision::Exact);
            stats
        } else {
            // A partition: DataFusion's figures, with the table's ranges and distinct counts,
            // which bound any partition's.
            let mut stats = self.inner.partition_statistics(partition)?.as_ref().clone();
            if taken.len() == stats.column_statistics.len() {
                for (s, at) in stats.column_statistics.iter_mut().zip(taken) {
                    if let Some(c) = self.table.column_statistics.get(at) {
                        s.min_value = c.min_value.clone();
                        s.max_value = c.max_value.clone();
                        s.distinct_count = c.distinct_count;
                    }
                }
            }
            stats
        };
        // With filters the counts are upper bounds: nothing may take them as exact.
        if !self.filters.is_empty() {
            stats = stats.to_inexact();
        }
        Ok(Arc::new(stats))
    }

    fn with_fetch(&self, limit: Option<usize>) -> Option<Arc<dyn DataSource>> {
        // The wrapped scan stops after `limit` rows before the filters see them: a limited scan
        // drops its dynamic filters (they only ever save work, never change a result).
        self.inner.with_fetch(limit).map(|l| self.wrap(l, limit.is_none()))
    }

    fn fetch(&self) -> Option<usize> {
        self.inner.fetch()
    }

    fn metrics(&self) -> ExecutionPlanMetricsSet {
        self.inner.metrics()
    }

    fn try_swapping_with_projection(&self, projection: &ProjectionExprs) -> Result<Option<Arc<dyn DataSource>>> {
        // The filters name this scan's output columns; a projection renumbers them, so the
        // projected scan starts without filters (none are pushed before projections settle).
        Ok(self.inner.try_swapping_with_projection(projection)?.map(|p| self.wrap(p, false)))
    }

    fn try_pushdown_filters(
        &self,
        filters: Vec<Arc<dyn PhysicalExpr>>,
        _config: &ConfigOptions,
    ) -> Result<FilterPushdownPropagation<Arc<dyn DataSource>>> {
        // Every filter stays with the operator above as well (`No`): the scan applies only the
        // dynamic ones, which no operator above applies, and only when no limit cuts it first.
        let answer = vec![PushedDown::No; filters.len()];
        let dynamic: Vec<_> = filters.into_iter().filter(|f| (f.as_ref() as &dyn Any).is::<DynamicFilterPhysicalExpr>()).collect();
        if dynamic.is_empty() || self.inner.fetch().is_some() {
            return Ok(FilterPushdownPropagation::with_parent_pushdown_result(answer));
        }
        let mut next = self.clone();
        next.filters.extend(dynamic);
        Ok(FilterPushdownPropagation::with_parent_pushdown_result(answer).with_updated_node(Arc::new(next) as Arc<dyn DataSource>))
    }
}

/// A stream's view of its dynamic filters: each one's expression as of its latest update. A
/// dynamic filter evaluated directly rebuilds its expression (and an IN list's set) for every
/// batch; the snapshot is taken again only when the filter changed.
struct Snapshots {
    filters: Vec<Arc<dyn PhysicalExpr>>,
    taken: Vec<Option<Taken>>,
}

/// One filter as a stream applies it.
#[derive(Clone)]
struct Taken {
    /// The filter's generation when snapshotted.
    generation: u64,
    /// The expression then; `None`: it keeps every row, or keeps so many that testing each row
    /// costs more than the rows it drops save (a join whose build side holds most keys).
    expr: Option<Arc<dyn PhysicalExpr>>,
    /// Rows tested and rows kept since the snapshot.
    seen: usize,
    kept: usize,
}

/// Rows a filter is tried on before it may be judged not worth testing.
const TRIAL_ROWS: usize = 64 * 1024;

impl Snapshots {
    fn new(filters: Vec<Arc<dyn PhysicalExpr>>) -> Snapshots {
        let taken = vec![None; filters.len()];
        Snapshots { filters, taken }
    }

    /// The rows of `batch` every filter keeps (as it stands now: a filter still being built
    /// keeps all); `None` when none are kept.
    fn apply(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        let mut mask: Option<BooleanArray> = None;
        for (f, taken) in self.filters.iter().zip(self.taken.iter_mut()) {
            let generation = snapshot_generation(f);
            if taken.as_ref().is_none_or(|t| t.generation != generation) {
                let now = snapshot_physical_expr(f.clone())?;
                let keeps_all = (now.as_ref() as &dyn Any)
                    .downcast_ref::<Literal>()
                    .is_some_and(|l| l.value() == &ScalarValue::Boolean(Some(true)));
                *taken = Some(Taken { generation, expr: (!keeps_all).then_some(now), seen: 0, kept: 0 });
            }
            let Some(t) = taken.as_mut() else { continue };
            let Some(expr) = t.expr.as_ref() else { continue };
            let keep = expr.evaluate(&batch)?.into_array(batch.num_rows())?;
            let Some(keep) = keep.as_any().downcast_ref::<BooleanArray>().cloned() else { continue };
            t.seen += batch.num_rows();
            t.kept += keep.true_count();
            // Keeping over three rows in four, the test costs about what the operators above
            // spend on the rows it drops: stop testing (the filter only ever saved work).
            if t.seen >= TRIAL_ROWS && t.kept.saturating_mul(4) > t.seen.saturating_mul(3) {
                t.expr = None;
            }
            mask = Some(match mask {
                Some(m) => and(&m, &keep)?,
                None => keep,
            });
        }
        let Some(mask) = mask else { return Ok(Some(batch)) };
        // A null is not a match (SQL's WHERE).
        let kept = mask.true_count();
        if kept == batch.num_rows() {
            return Ok(Some(batch));
        }
        if kept == 0 {
            return Ok(None);
        }
        Ok(Some(filter_record_batch(&batch, &mask)?))
    }
}
