//! Distributed execution on Apache DataFusion Ballista (`[engine] distributed`).
//!
//! What leaves lalo is the governed physical plan: governance has already rewritten the
//! statement (row filters, masks, access checks) and lalo's optimizer has planned it; the last
//! physical rule ([`Distribute`]) hands a plan whose every leaf reads embedded Parquet/CSV files
//! to Ballista's scheduler, which cuts it into stages at its exchanges and runs them on its
//! executors. Plans that read anything else (an upstream's federated part, lalo's catalog and
//! admin tables, in-memory tables) or that do not survive the protobuf form stay on the local
//! engine, unchanged. So does every statement of a caller with a scan budget (the runtime hold
//! counts rows at the local operators).

pub mod cluster;
pub mod codec;
pub mod exec;
pub mod functions;
pub mod processes;

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::Result;
use datafusion::config::ConfigOptions;
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::analyze::AnalyzeExec;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::placeholder_row::PlaceholderRowExec;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::AsExecutionPlan;
use datafusion_proto::protobuf::PhysicalPlanNode;

use crate::error::LaloError;
pub use cluster::Cluster;
use exec::DistributedExec;

/// Where `[engine] distributed` sends plans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Off,
    /// A scheduler and executors inside this process.
    Standalone,
    /// An external scheduler, as `http://host:port`.
    Remote(String),
}

impl Mode {
    pub fn parse(text: &str) -> Result<Mode, LaloError> {
        let t = text.trim();
        if t.is_empty() || t.eq_ignore_ascii_case("off") {
            return Ok(Mode::Off);
        }
        if t.eq_ignore_ascii_case("standalone") {
            return Ok(Mode::Standalone);
        }
        let bad = || LaloError::Config(format!("[engine] distributed = \"{t}\": expected \"off\", \"standalone\" or \"df://host:port\""));
        let rest = t.strip_prefix("df://").ok_or_else(bad)?;
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains('/') || rest.contains('@') {
            return Err(bad());
        }
        // The scheduler's default port when none is given, as Ballista's own clients do.
        let hostport = if rest.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) { rest.to_string() } else { format!("{rest}:50050") };
        Ok(Mode::Remote(format!("http://{hostport}")))
    }
}

/// The last physical rule: a plan that can run on the cluster is wrapped in [`DistributedExec`].
#[derive(Debug)]
pub struct Distribute(pub Arc<Cluster>);

impl PhysicalOptimizerRule for Distribute {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        // EXPLAIN ANALYZE measures here what it runs there.
        if let Some(analyze) = plan.downcast_ref::<AnalyzeExec>() {
            let input = analyze.input().clone();
            if self.can_run(&input) {
                let wrapped: Arc<dyn ExecutionPlan> = Arc::new(DistributedExec::new(input, self.0.clone()));
                return plan.clone().with_new_children(vec![wrapped]);
            }
            return Ok(plan);
        }
        if self.can_run(&plan) {
            return Ok(Arc::new(DistributedExec::new(plan, self.0.clone())));
        }
        Ok(plan)
    }

    fn name(&self) -> &str {
        "lalo_distribute"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

impl Distribute {
    /// Every leaf reads embedded files (at least one does), and the plan survives the wire.
    fn can_run(&self, plan: &Arc<dyn ExecutionPlan>) -> bool {
        let mut files = 0usize;
        let mut other = false;
        let _ = plan.apply(|node| {
            // A scalar subquery's value is computed beside the expressions that read it, which
            // a cut into stages would put on other executors.
            if node.name() == "ScalarSubqueryExec" {
                other = true;
                return Ok(TreeNodeRecursion::Stop);
            }
            if !node.children().is_empty() {
                return Ok(TreeNodeRecursion::Continue);
            }
            let file = node.downcast_ref::<DataSourceExec>().is_some_and(|d| d.data_source().downcast_ref::<FileScanConfig>().is_some());
            if file {
                files += 1;
            } else if !(node.is::<EmptyExec>() || node.is::<PlaceholderRowExec>()) {
                other = true;
                return Ok(TreeNodeRecursion::Stop);
            }
            Ok(TreeNodeRecursion::Continue)
        });
        if other || files == 0 {
            return false;
        }
        match codec::for_the_wire(plan.clone()).and_then(|p| PhysicalPlanNode::try_from_physical_plan(p, self.0.codec())) {
            Ok(_) => true,
            Err(e) => {
                tracing::debug!(error = %e, "plan stays on the local engine: it does not cross to the cluster");
                false
            }
        }
    }
}

/// `plan` as the local engine runs it (a distributed part replaced by its inner plan).
pub fn local(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| match node.downcast_ref::<DistributedExec>() {
        Some(d) => Ok(Transformed::yes(d.inner().clone())),
        None => Ok(Transformed::no(node)),
    })
    .map(|t| t.data)
}
