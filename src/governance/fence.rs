//! Fences over row-filtered upstream tables (`barrier::fence`) through the optimizer.
//!
//! Two things happen to a fence before federation writes the SQL, and this rule answers both:
//!
//! - **It can be lost.** DataFusion drops any Limit inside a correlated `EXISTS` subquery
//!   while decorrelating it (`PullUpCorrelatedExpr`), and the unparser then folds the row filter
//!   into the caller's WHERE. So every governed table, `SubqueryAlias(t, [mask projection]
//!   Filter… TableScan(t))` over an upstream, gets its `OFFSET 0` back here if it lost it. The
//!   shape is what the row-filter rewrite builds; a caller's own `(SELECT … WHERE …) AS t` over
//!   the same table may match too, which costs it only the fence.
//! - **It keeps out what could not leak.** A fence stops every condition, so a lookup by key
//!   would scan the whole filtered table. The caller's leakproof conditions (comparisons of
//!   columns with constants and parameters, `leakproof.rs`) on a fenced table's columns move
//!   inside the fence, as PostgreSQL lets leakproof conditions through a security barrier view;
//!   `WHERE id = $1` reaches the index. Conditions on a masked column stay outside: inside, the
//!   SQL's WHERE would read the column's real value.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, Result, ScalarValue, TableReference};
use datafusion::logical_expr::utils::{conjunction, split_conjunction_owned};
use datafusion::logical_expr::{Expr, Filter, Limit, LogicalPlan, SubqueryAlias};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

use super::leakproof::{has_subquery, leakproof};

/// Keeps fences and moves leakproof conditions into them (module docs).
#[derive(Debug, Default)]
pub struct Fences;

/// A Limit that keeps every row: `OFFSET 0` and no fetch.
fn is_offset_zero(limit: &Limit) -> bool {
    limit.fetch.is_none() && matches!(limit.skip.as_deref(), Some(Expr::Literal(ScalarValue::Int64(Some(0)), _)))
}

/// When `plan` is a governed upstream table under `alias` (an optional mask projection that keeps
/// every name, one or more filters, the scan of `alias` itself), the names of its masked columns.
fn governed(plan: &LogicalPlan, alias: &TableReference) -> Option<HashSet<String>> {
    let mut masked = HashSet::new();
    let mut node = plan;
    if let LogicalPlan::Projection(p) = node {
        for (e, (_, field)) in p.expr.iter().zip(p.schema.iter()) {
            match e {
                Expr::Column(c) if c.name == *field.name() => {}
                Expr::Alias(a) if p.input.schema().has_column_with_unqualified_name(&a.name) => {
                    masked.insert(a.name.clone());
                }
                _ => return None,
            }
        }
        node = p.input.as_ref();
    }
    let mut filters = 0;
    while let LogicalPlan::Filter(f) = node {
        filters += 1;
        node = f.input.as_ref();
    }
    let LogicalPlan::TableScan(scan) = node else { return None };
    let upstream = datafusion_federation::get_table_source(&scan.source).ok().flatten().is_some();
    (filters > 0 && upstream && scan.table_name.resolved_eq(alias)).then_some(masked)
}

/// The fence's table alias, its Limit and the caller's alias around it, if `plan` is
/// `[SubqueryAlias(user)] SubqueryAlias(t, Limit(OFFSET 0, governed))`.
fn fenced(plan: &LogicalPlan) -> Option<(Option<&TableReference>, &SubqueryAlias, &Limit, HashSet<String>)> {
    let LogicalPlan::SubqueryAlias(outer) = plan else { return None };
    let (user, fence) = match outer.input.as_ref() {
        LogicalPlan::SubqueryAlias(inner) => (Some(&outer.alias), inner),
        _ => (None, outer),
    };
    let LogicalPlan::Limit(limit) = fence.input.as_ref() else { return None };
    if !is_offset_zero(limit) {
        return None;
    }
    let masked = governed(&limit.input, &fence.alias)?;
    Some((user, fence, limit, masked))
}

impl Fences {
    /// A governed table that lost its fence gets it back.
    fn refence(alias: &SubqueryAlias) -> Result<Option<LogicalPlan>> {
        if matches!(alias.input.as_ref(), LogicalPlan::Limit(_)) || governed(&alias.input, &alias.alias).is_none() {
            return Ok(None);
        }
        let fenced = super::barrier::fence(alias.input.as_ref().clone(), alias.alias.clone())?;
        Ok(Some(fenced))
    }

    /// The caller's leakproof conditions on unmasked columns of a fenced table, moved inside.
    fn narrow(filter: &Filter) -> Result<Option<LogicalPlan>> {
        let Some((user, fence, limit, masked)) = fenced(&filter.input) else { return Ok(None) };
        let seen_as = user.unwrap_or(&fence.alias);
        let (inside, outside): (Vec<Expr>, Vec<Expr>) =
            split_conjunction_owned(filter.predicate.clone()).into_iter().partition(|p| {
                leakproof(p)
                    && !has_subquery(p)
                    && p.column_refs().iter().all(|c| c.relation.as_ref() == Some(seen_as) && !masked.contains(&c.name))
            });
        let Some(inside) = conjunction(inside) else { return Ok(None) };
        // Inside the fence the columns are the table's own.
        let inside = inside
            .transform(|e| match e {
                Expr::Column(c) => Ok(Transformed::yes(Expr::Column(Column::new(Some(fence.alias.clone()), c.name)))),
                other => Ok(Transformed::no(other)),
            })?
            .data;
        let narrowed = LogicalPlan::Filter(Filter::try_new(inside, Arc::clone(&limit.input))?);
        let limit = LogicalPlan::Limit(Limit { skip: limit.skip.clone(), fetch: None, input: Arc::new(narrowed) });
        let mut rebuilt = LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(Arc::new(limit), fence.alias.clone())?);
        if let Some(alias) = user {
            rebuilt = LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(Arc::new(rebuilt), alias.clone())?);
        }
        Ok(Some(match conjunction(outside) {
            Some(rest) => LogicalPlan::Filter(Filter::try_new(rest, Arc::new(rebuilt))?),
            None => rebuilt,
        }))
    }
}

impl OptimizerRule for Fences {
    fn name(&self) -> &str {
        "lalo_fences"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        let rebuilt = match &plan {
            LogicalPlan::SubqueryAlias(a) => Self::refence(a)?,
            LogicalPlan::Filter(f) => Self::narrow(f)?,
            _ => None,
        };
        Ok(match rebuilt {
            Some(p) => Transformed::yes(p),
            None => Transformed::no(plan),
        })
    }
}
