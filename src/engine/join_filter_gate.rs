//! Scans in memory wait for the join filters of their own plan before their first row. A hash
//! join fills in its probe side's filter once its build side is collected, but operators that
//! drive their inputs from tasks of their own (the partition merge above a build side, a
//! repartition) start every scan of the plan at once: in a chain of joins the scan of a
//! build side deep in the probe side of a selective join had read all its rows before the
//! filter that would have kept 1 in 12 of them was known (TPC-H Q07: 10 000 suppliers instead
//! of 800, so 1.8 M lineitem rows through three joins instead of 146 K).
//!
//! Why the wait ends: a filter is waited for only when its join is in this plan (a join rebuilt
//! without its filter, `null_safe_filters.rs`, leaves an orphan that is never waited for; so
//! does every round of a recursive query, whose terms are left alone), and
//! the join completes it once each of its partitions has collected its build side, which never
//! depends on its probe side, where the waiting scan is. DataFusion's join already holds every
//! partition's probe until that moment, so all of them must be driven anyway; a scan that waits
//! only stops reading ahead of it. Top-k filters (updated while their own input runs) are never
//! waited for. Should a filter still never complete, the scan reads on after
//! [`super::memory_scan::GATE_LIMIT`] as it did before it waited.

use std::sync::Arc;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::Result;
use datafusion::config::ConfigOptions;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::joins::HashJoinExec;
use datafusion::physical_plan::recursive_query::RecursiveQueryExec;
use datafusion::physical_plan::ExecutionPlan;

#[derive(Debug)]
pub struct JoinFilterGate;

impl PhysicalOptimizerRule for JoinFilterGate {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        // A recursive query rebuilds its recursive term for every round, and its joins without
        // their filters: a filter its scans hold would never be completed. Nothing under one is
        // gated (neither joins nor scans are looked at there).
        let mut joins = vec![];
        plan.apply(|node| {
            if node.downcast_ref::<RecursiveQueryExec>().is_some() {
                return Ok(TreeNodeRecursion::Jump);
            }
            if let Some(f) = node.downcast_ref::<HashJoinExec>().and_then(|j| j.dynamic_filter_expr()) {
                joins.push(f.inner().expression_id);
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        if joins.is_empty() {
            return Ok(plan);
        }
        plan.apply(|node| {
            if node.downcast_ref::<RecursiveQueryExec>().is_some() {
                return Ok(TreeNodeRecursion::Jump);
            }
            super::memory_scan::gate_scan(node, &joins);
            Ok(TreeNodeRecursion::Continue)
        })?;
        Ok(plan)
    }

    fn name(&self) -> &str {
        "lalo_join_filter_gate"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
