//! Ballista's scheduler and executors with lalo's functions and codec: inside lalo's process
//! (`distributed = "standalone"`) or as their own processes (`lalo ballista scheduler`,
//! `lalo ballista executor`). Both are Ballista's published crates; lalo only supplies the
//! session they decode plans with, so a plan that calls lalo's PostgreSQL functions (or its
//! masks) finds them on every executor.

use std::future::Future;
use std::sync::Arc;

use ballista_core::config::TaskSchedulingPolicy;
use ballista_core::extension::SessionConfigExt;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_core::serde::protobuf::scheduler_grpc_server::SchedulerGrpcServer;
use ballista_core::serde::{BallistaCodec, BallistaLogicalExtensionCodec};
use ballista_core::utils::{create_grpc_server, GrpcServerConfig};
use ballista_core::{ConfigProducer, RuntimeProducer};
use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::create_scheduler;
use ballista_scheduler::scheduler_server::SessionBuilder;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::prelude::SessionConfig;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
use tokio::net::TcpListener;

use super::codec::LaloCodec;
use crate::error::LaloError;

fn ballista_error(e: impl std::fmt::Display) -> LaloError {
    LaloError::Config(format!("ballista: {e}"))
}

/// The session Ballista's processes decode and run plans with: lalo's functions, its codec.
pub fn worker_state() -> Result<SessionState, LaloError> {
    let ctx = crate::engine::function_context(Arc::new(RuntimeEnv::default()))?;
    let state = ctx.state();
    let codec = Arc::new(LaloCodec::new(&state));
    let config = state.config().clone().upgrade_for_ballista().with_ballista_physical_extension_codec(codec);
    Ok(SessionStateBuilder::new_from_existing(state).with_config(config).build())
}

/// Serve a scheduler on `listener` until `shutdown` completes. Executors pull their tasks, so
/// the scheduler never needs to reach them.
pub async fn serve_scheduler(
    listener: TcpListener,
    state: SessionState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<tokio::task::JoinHandle<()>, LaloError> {
    let addr = listener.local_addr().map_err(ballista_error)?;
    let base = state.clone();
    let session_builder: SessionBuilder = Arc::new(move |cfg: SessionConfig| Ok(SessionStateBuilder::new_from_existing(base.clone()).with_config(cfg).build()));
    let producer = state.config().clone();
    let config_producer: ConfigProducer = Arc::new(move || producer.clone());
    let mut config = SchedulerConfig::default()
        .with_scheduler_policy(TaskSchedulingPolicy::PullStaged)
        .with_override_session_builder(session_builder.clone())
        .with_override_config_producer(config_producer.clone());
    config.override_physical_codec = Some(state.config().ballista_physical_extension_codec());
    let max_message = config.grpc_server_max_decoding_message_size as usize;
    let cluster = BallistaCluster::new_memory(addr.to_string(), session_builder, config_producer);
    let scheduler = create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, Arc::new(config)).await.map_err(ballista_error)?;
    let service = SchedulerGrpcServer::new(scheduler).max_decoding_message_size(max_message).max_encoding_message_size(max_message);
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let serve = create_grpc_server(&GrpcServerConfig::default()).add_service(service).serve_with_incoming_shutdown(incoming, shutdown);
    Ok(tokio::spawn(async move {
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "ballista scheduler stopped");
        }
    }))
}

/// Producers of the executors' session config and runtime, from `state`.
fn producers(state: &SessionState) -> (ConfigProducer, RuntimeProducer) {
    let config = state.config().clone();
    let runtime = state.runtime_env().clone();
    (Arc::new(move || config.clone()), Arc::new(move |_| Ok(runtime.clone())))
}

/// An executor inside this process (loopback, a free port), pulling tasks from `scheduler_url`.
pub async fn standalone_executor(scheduler_url: &str, state: &SessionState, tasks: usize) -> Result<(), LaloError> {
    let client = SchedulerGrpcClient::connect(scheduler_url.to_string()).await.map_err(ballista_error)?;
    let (config, runtime) = producers(state);
    let codec = BallistaCodec::new(Arc::new(BallistaLogicalExtensionCodec::default()), state.config().ballista_physical_extension_codec());
    ballista_executor::new_standalone_executor_from_builder(client, tasks, config, runtime, codec, state.into()).await.map_err(ballista_error)
}

/// Where an executor process listens and which scheduler it serves (`lalo ballista executor`).
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    pub scheduler_host: String,
    pub scheduler_port: u16,
    pub bind_host: String,
    /// The name other executors and lalo reach this one by (its Flight port serves results).
    pub external_host: Option<String>,
    pub port: u16,
    pub grpc_port: u16,
    pub tasks: usize,
    pub work_dir: Option<String>,
}

/// Run an executor process until it is told to stop (SIGTERM, Ctrl-C).
pub async fn run_executor(opts: ExecutorOptions) -> Result<(), LaloError> {
    let state = worker_state()?;
    let (config, runtime) = producers(&state);
    let process = ExecutorProcessConfig {
        bind_host: opts.bind_host,
        external_host: opts.external_host,
        port: opts.port,
        grpc_port: opts.grpc_port,
        scheduler_host: opts.scheduler_host,
        scheduler_port: opts.scheduler_port,
        // Started beside its scheduler (compose, a test), it keeps trying for a minute.
        scheduler_connect_timeout_seconds: 60,
        concurrent_tasks: opts.tasks.max(1),
        task_scheduling_policy: TaskSchedulingPolicy::PullStaged,
        work_dir: opts.work_dir,
        override_function_registry: Some(Arc::new((&state).into())),
        override_physical_codec: Some(state.config().ballista_physical_extension_codec()),
        override_config_producer: Some(config),
        override_runtime_producer: Some(runtime),
        ..ExecutorProcessConfig::default()
    };
    start_executor_process(Arc::new(process)).await.map_err(ballista_error)
}

/// Run a scheduler process on `bind` until Ctrl-C or SIGTERM (`lalo ballista scheduler`).
pub async fn run_scheduler(bind: &str) -> Result<(), LaloError> {
    let listener = TcpListener::bind(bind).await.map_err(|e| LaloError::Config(format!("cannot listen on {bind}: {e}")))?;
    tracing::info!(listen = %bind, "ballista scheduler with lalo's functions");
    let stop = async {
        let _ = crate::shutdown::signalled().await;
    };
    let handle = serve_scheduler(listener, worker_state()?, stop).await?;
    handle.await.map_err(ballista_error)
}
