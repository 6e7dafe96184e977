//! Join filters that cannot be trusted with NULLs are never filled in. A hash join hands its
//! probe side's scans the keys of its build side as a filter (DataFusion's dynamic filters):
//! bounds and a membership test that a NULL key fails. That is right when NULL joins nothing,
//! and wrong for joins where NULL meets NULL (INTERSECT, EXCEPT, `IS NOT DISTINCT FROM`) and for
//! NOT IN, whose answer depends on whether the subquery holds a NULL or any row at all: the
//! scans drop the very rows those joins decide by (DataFusion 54 issues #22964, #23103, #23126).
//! After every other rule, such a join is rebuilt without its filter, so the filter its scans
//! hold stays `true`. (Aggregate min/max filters have issues of the same kind, #24816 and
//! #25147: they are switched off in the session options, engine/mod.rs.)
//!
//! The same goes for a join whose probe side holds two columns of one key's name anywhere below
//! it (two copies of a table, `n1.n_regionkey` and `n2.n_regionkey`): DataFusion 54.1 routes the
//! filter down by column name (`FilterRemapper::try_remap`, apache/datafusion#25296), so it can
//! narrow the other copy. `FROM supplier, nation n2, customer, nation n1, orders, region` with
//! `n1.n_regionkey = r_regionkey AND r_name LIKE 'A%'` and n2 pinned to GERMANY (region 3) lost
//! every row.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{NullEquality, Result};
use datafusion::config::ConfigOptions;
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::joins::HashJoinExec;
use datafusion::physical_plan::ExecutionPlan;

#[derive(Debug)]
pub struct NullSafeJoinFilters;

/// Whether a node of the join's probe side has two columns named like a column of its keys.
fn ambiguous(join: &HashJoinExec) -> bool {
    let names: HashSet<String> =
        join.on().iter().flat_map(|(_, probe)| collect_columns(probe)).map(|c| c.name().to_string()).collect();
    let mut twice = false;
    let _ = join.right().apply(|n| {
        let schema = n.schema();
        twice = names.iter().any(|k| schema.fields().iter().filter(|f| f.name() == k).count() > 1);
        Ok(if twice { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    });
    twice
}

impl PhysicalOptimizerRule for NullSafeJoinFilters {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(join) = node.downcast_ref::<HashJoinExec>() else { return Ok(Transformed::no(node)) };
            if join.null_aware || join.null_equality() == NullEquality::NullEqualsNull || ambiguous(join) {
                return Ok(Transformed::yes(node.reset_state()?));
            }
            Ok(Transformed::no(node))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "lalo_null_safe_join_filters"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
