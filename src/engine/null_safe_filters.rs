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
//! (A join whose probe side holds two columns of one key's name, two copies of a table, had its
//! filter reset here too, since DataFusion routes it down by name; the filter now moves only
//! where its names are unambiguous, filter_names.rs.)

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{NullEquality, Result};
use datafusion::config::ConfigOptions;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::joins::HashJoinExec;
use datafusion::physical_plan::ExecutionPlan;

#[derive(Debug)]
pub struct NullSafeJoinFilters;

impl PhysicalOptimizerRule for NullSafeJoinFilters {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(join) = node.downcast_ref::<HashJoinExec>() else { return Ok(Transformed::no(node)) };
            if join.null_aware || join.null_equality() == NullEquality::NullEqualsNull {
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
