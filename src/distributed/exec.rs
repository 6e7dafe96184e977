//! The operator that runs a governed plan on the Ballista cluster and streams its rows back.
//!
//! To the local engine it is a leaf: the plan it carries is not one of its children, so the
//! per-operator wrappers lalo adds at execution (engine/interrupt.rs) wrap this operator and
//! never reach the plan that crosses the wire. `EXPLAIN` prints the carried plan under it, cut
//! into the stages Ballista's planner makes of it.

use std::fmt;
use std::sync::Arc;

use ballista_core::JobId;
use ballista_scheduler::planner::{DefaultDistributedPlanner, DistributedPlanner};
use datafusion::common::Result;
use datafusion::config::ConfigOptions;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{displayable, DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning, PlanProperties};
use futures::TryStreamExt;

use super::Cluster;

/// Runs `plan` on the cluster (one output partition: the final stage's, in order).
#[derive(Debug)]
pub struct DistributedExec {
    plan: Arc<dyn ExecutionPlan>,
    cluster: Arc<Cluster>,
    props: Arc<PlanProperties>,
}

impl DistributedExec {
    pub fn new(plan: Arc<dyn ExecutionPlan>, cluster: Arc<Cluster>) -> DistributedExec {
        // Partitions come back one after another: an order holds only when there is one.
        let eq = if plan.output_partitioning().partition_count() == 1 {
            plan.equivalence_properties().clone()
        } else {
            EquivalenceProperties::new(plan.schema())
        };
        let props = PlanProperties::new(eq, Partitioning::UnknownPartitioning(1), EmissionType::Final, Boundedness::Bounded);
        DistributedExec { plan, cluster, props: Arc::new(props) }
    }

    /// The plan the cluster runs.
    pub fn inner(&self) -> &Arc<dyn ExecutionPlan> {
        &self.plan
    }
}

impl DisplayAs for DistributedExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "DistributedExec: ballista={}", self.cluster.shown())?;
        if !matches!(t, DisplayFormatType::Default | DisplayFormatType::Verbose) {
            return Ok(());
        }
        // The stages Ballista's planner cuts the plan into at its exchanges (each ends in a
        // shuffle write; later ones read earlier ones' output), as the scheduler will.
        let mut planner = DefaultDistributedPlanner::new();
        match planner.plan_query_stages(&JobId::new("explain"), self.plan.clone(), &ConfigOptions::new()) {
            Ok(stages) => {
                for (i, stage) in stages.iter().enumerate() {
                    write!(f, "\n  stage {}:", i + 1)?;
                    let plan: &dyn ExecutionPlan = stage.as_ref();
                    for line in displayable(plan).indent(false).to_string().lines() {
                        write!(f, "\n    {line}")?;
                    }
                }
            }
            Err(_) => {
                for line in displayable(self.plan.as_ref()).indent(false).to_string().lines() {
                    write!(f, "\n    {line}")?;
                }
            }
        }
        Ok(())
    }
}

impl ExecutionPlan for DistributedExec {
    fn name(&self) -> &str {
        "DistributedExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.props
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            return Ok(self);
        }
        datafusion::common::internal_err!("DistributedExec has no children")
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return datafusion::common::internal_err!("DistributedExec has one partition, not {partition}");
        }
        let cluster = self.cluster.clone();
        let plan = self.plan.clone();
        let rows = futures::stream::once(async move { cluster.run(plan, context).await }).try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema(), rows)))
    }
}
