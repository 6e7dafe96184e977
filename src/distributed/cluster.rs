//! lalo's side of a Ballista cluster: where its scheduler is, starting the standalone one, and
//! sending a plan there (or, when the scheduler cannot be reached and `distributed_fallback`
//! allows, running it here).

use std::sync::Arc;

use ballista_core::config::BallistaConfig;
use ballista_core::execution_plans::execute_physical_plan;
use ballista_core::extension::SessionConfigExt;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::ExecutionPlan;
use futures::StreamExt;
use datafusion_proto::physical_plan::PhysicalExtensionCodec;
use datafusion_proto::protobuf::PhysicalPlanNode;
use parking_lot::Mutex;

use super::codec;
use super::{processes, Mode};
use crate::config::EngineConfig;
use crate::error::LaloError;

/// A Ballista cluster lalo sends plans to.
pub struct Cluster {
    /// The scheduler's gRPC address (`http://host:port`).
    url: String,
    /// How `EXPLAIN` names it: `standalone` or the configured `df://` URL.
    shown: String,
    fallback: bool,
    codec: Arc<dyn PhysicalExtensionCodec>,
    /// One scheduler session for this gateway (each statement sends its settings along).
    session_id: String,
    /// Stops the standalone scheduler.
    stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("scheduler", &self.shown).finish_non_exhaustive()
    }
}

impl Cluster {
    /// The cluster `[engine] distributed` names, started when it is `standalone`; `None` for off.
    pub async fn start(cfg: &EngineConfig) -> Result<Option<Arc<Cluster>>, LaloError> {
        let mode = Mode::parse(&cfg.distributed)?;
        let session_id = format!("lalo-{:016x}", rand::random::<u64>());
        if mode == Mode::Off {
            return Ok(None);
        }
        // What plans are encoded with here and decoded with there: lalo's functions.
        let state = processes::worker_state()?;
        let codec = state.config().ballista_physical_extension_codec();
        let cluster = |url: String, shown: String, stop| Cluster {
            url,
            shown,
            fallback: cfg.distributed_fallback,
            codec: codec.clone(),
            session_id: session_id.clone(),
            stop: Mutex::new(stop),
        };
        match mode {
            Mode::Off => Ok(None),
            Mode::Remote(url) => {
                tracing::info!(scheduler = %url, "distributed execution on a Ballista cluster");
                Ok(Some(Arc::new(cluster(url, cfg.distributed.trim().to_string(), None))))
            }
            Mode::Standalone => {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| LaloError::Config(format!("ballista scheduler: {e}")))?;
                let addr = listener.local_addr().map_err(|e| LaloError::Config(format!("ballista scheduler: {e}")))?;
                let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                processes::serve_scheduler(listener, state.clone(), async move {
                    let _ = rx.await;
                })
                .await?;
                let url = format!("http://{addr}");
                let executors = cfg.distributed_executors.max(1) as usize;
                let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
                let tasks = if cfg.distributed_tasks > 0 { cfg.distributed_tasks as usize } else { (cores / executors).max(1) };
                for _ in 0..executors {
                    processes::standalone_executor(&url, &state, tasks).await?;
                }
                tracing::info!(scheduler = %url, executors, tasks, "standalone Ballista cluster started");
                Ok(Some(Arc::new(cluster(url, "standalone".into(), Some(tx)))))
            }
        }
    }

    /// Stop the standalone scheduler (its executors stay, finding nobody to pull from).
    /// Returns false for an external cluster or one already stopped.
    pub fn stop_scheduler(&self) -> bool {
        match self.stop.lock().take() {
            Some(tx) => tx.send(()).is_ok(),
            None => false,
        }
    }

    pub(super) fn shown(&self) -> &str {
        &self.shown
    }

    pub(super) fn codec(&self) -> &dyn PhysicalExtensionCodec {
        self.codec.as_ref()
    }

    /// Run `plan` on the cluster; when the scheduler cannot take it and fallback is on, here.
    pub(super) async fn run(&self, plan: Arc<dyn ExecutionPlan>, ctx: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let wire = codec::for_the_wire(plan.clone())?;
        let config = ctx.session_config().clone().upgrade_for_ballista().with_ballista_physical_extension_codec(self.codec.clone());
        let submitted = execute_physical_plan::<PhysicalPlanNode>(
            self.url.clone(),
            &BallistaConfig::default(),
            wire,
            self.codec.as_ref(),
            self.session_id.clone(),
            config,
        )
        .await;
        // A job that fails (or that the scheduler cannot plan) runs again here: the statement's
        // own errors (division by zero, overflow) come back as the local engine words them, and
        // a plan the cluster could not run (a limitation of its stage planner) still gets its
        // answer. (Only SELECTs run here: running one twice changes nothing.) The scheduler
        // itself unreachable is the one case that is not the statement's: 08006, or the local
        // engine when `distributed_fallback` says so.
        let rows = match submitted {
            Ok(rows) => rows,
            Err(e) if !unreachable(&e) => return self.rerun(plan, ctx, &e),
            Err(e) if self.fallback => {
                tracing::warn!(scheduler = %self.shown, error = %e, "the scheduler cannot be reached; running the statement on the local engine");
                crate::metrics::distributed("fallback");
                return datafusion::physical_plan::execute_stream(plan, ctx);
            }
            Err(_) => {
                crate::metrics::distributed("error");
                return Err(LaloError::ClusterLost(format!(
                    "the distributed engine's scheduler ({}) cannot be reached; set [engine] distributed_fallback = true to run such statements on the local engine",
                    self.shown
                ))
                .into());
            }
        };
        let mut rows = rows;
        let schema = rows.schema();
        let mut first = rows.next().await;
        // (Empty batches carry no row: the first row is what counts.)
        while matches!(&first, Some(Ok(b)) if b.num_rows() == 0) {
            first = rows.next().await;
        }
        match first {
            Some(Err(e)) => self.rerun(plan, ctx, &e),
            first => {
                crate::metrics::distributed("cluster");
                Ok(Box::pin(RecordBatchStreamAdapter::new(schema, futures::stream::iter(first).chain(rows))))
            }
        }
    }

    fn rerun(&self, plan: Arc<dyn ExecutionPlan>, ctx: Arc<TaskContext>, e: &DataFusionError) -> Result<SendableRecordBatchStream> {
        tracing::warn!(scheduler = %self.shown, error = %e, "the cluster did not answer the statement; running it on the local engine");
        crate::metrics::distributed("rerun");
        datafusion::physical_plan::execute_stream(plan, ctx)
    }
}

/// Whether a submission failed because the scheduler could not be reached at all.
fn unreachable(e: &DataFusionError) -> bool {
    let lower = e.to_string().to_ascii_lowercase();
    ["transport error", "connection refused", "error trying to connect", "dns error", "tcp connect", "broken pipe", "connection reset"]
        .iter()
        .any(|w| lower.contains(w))
}
