//! Row filters and masks, inserted directly above each TableScan of the user's plan, beneath
//! the user's own predicates, so WHERE/GROUP BY/JOIN only ever see filtered rows and masked values.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, TableReference};
use datafusion::logical_expr::{Expr, ExprSchemable, Filter, LogicalPlan, Projection};
use datafusion::prelude::SessionContext;

use super::rules::{mask_sql, Rules, Subject};
use crate::error::LaloError;

/// Planned row filters and mask expressions, keyed by their SQL; planning them once per policy
/// version keeps governance off the per-statement path. Dropped with the policies on reload.
#[derive(Debug, Default)]
pub struct RewriteCache {
    /// Planned filters, with when they were planned: a filter whose subquery was evaluated into a
    /// value list is re-planned after [`FILTER_TTL`], so data changes show within that time.
    filters: parking_lot::RwLock<std::collections::HashMap<(String, String), (Expr, std::time::Instant)>>,
    masks: parking_lot::RwLock<std::collections::HashMap<(String, String), Expr>>,
}

/// What a rewrite applied, for the audit record and NOTICEs.
#[derive(Debug, Default, Clone)]
pub struct Applied {
    pub filters: Vec<String>,
    pub masks: Vec<String>,
}

/// Resolve a scan's table reference against the session's default database and schema.
pub fn full_name(t: &TableReference, db: &str, schema: &str) -> String {
    let r = t.clone().resolve(db, schema);
    format!("{}.{}.{}", r.catalog, r.schema, r.table).to_ascii_lowercase()
}

/// True for the schemas every caller may read (already filtered to what they may see).
pub fn is_system_schema(full: &str) -> bool {
    let mut parts = full.split('.');
    let _db = parts.next();
    matches!(parts.next(), Some("pg_catalog" | "information_schema"))
}

/// Insert the caller's row filters and masks above every scan they apply to.
pub async fn apply(
    ctx: &SessionContext,
    plan: LogicalPlan,
    rules: &Rules,
    pii: &std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    subject: &Subject,
    db: &str,
    schema: &str,
    cache: &RewriteCache,
) -> Result<(LogicalPlan, Applied), LaloError> {
    // Collect the scans that need rewriting first (planning filters is async; transform is not).
    // (reference, embedded: not a federated upstream table)
    let mut work: Vec<(TableReference, bool)> = Vec::new();
    let mut applied = Applied::default();
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let full = full_name(&scan.table_name, db, schema);
            if !is_system_schema(&full) && !work.iter().any(|(t, _)| t == &scan.table_name) {
                let upstream = datafusion_federation::get_table_source(&scan.source).ok().flatten().is_some();
                work.push((scan.table_name.clone(), !upstream));
            }
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    })?;
    let mut prepared = Vec::new();
    // Embedded tables whose row filter stays a subquery: a barrier above them (barrier.rs).
    let mut barred: Vec<TableReference> = Vec::new();
    // Upstream tables with a row filter: a fence PostgreSQL does not see through (barrier.rs).
    let mut fenced: Vec<TableReference> = Vec::new();
    for (tref, embedded) in work {
        let full = full_name(&tref, db, schema);
        let filters = rules.filters_for(subject, &full)?;
        let masks = rules.masks_with(subject, &full, pii.get(&full.to_ascii_lowercase()));
        if filters.is_empty() && masks.is_empty() {
            continue;
        }
        let mut preds = Vec::new();
        for f in &filters {
            let pred = plan_filter(ctx, &full, f, &tref, embedded, cache).await?;
            // An upstream table's filter whose subquery reads another database is evaluated
            // here, beside the upstream's part: the barrier keeps the caller's predicates above it.
            let beyond = !embedded && reads_beyond(&pred, full.split('.').next().unwrap_or_default(), db, schema);
            if (embedded || beyond) && super::leakproof::has_subquery(&pred) && !barred.contains(&tref) {
                barred.push(tref.clone());
            }
            preds.push(pred);
            applied.filters.push(format!("{full}: {f}"));
        }
        if !embedded && !preds.is_empty() {
            fenced.push(tref.clone());
        }
        let masks: Vec<(String, String)> = masks.into_iter().collect();
        for (c, k) in &masks {
            applied.masks.push(format!("{full}.{c}: {k}"));
        }
        prepared.push((tref, preds, masks));
    }
    if prepared.is_empty() {
        return Ok((plan, applied));
    }
    let out = plan
        .transform_up_with_subqueries(|node| {
            let LogicalPlan::TableScan(scan) = &node else { return Ok(Transformed::no(node)) };
            let Some((_, preds, masks)) = prepared.iter().find(|(t, _, _)| t == &scan.table_name) else {
                return Ok(Transformed::no(node));
            };
            let mut new = node.clone();
            for p in preds {
                new = LogicalPlan::Filter(Filter::try_new(p.clone(), Arc::new(new))?);
            }
            if !masks.is_empty() {
                new = mask_projection(ctx, new, masks, cache)?;
            }
            if fenced.contains(&scan.table_name) {
                new = super::barrier::fence(new, scan.table_name.clone())?;
            }
            if barred.contains(&scan.table_name) {
                new = super::barrier::above(new)?;
            }
            Ok(Transformed::yes(new))
        })?
        .data;
    Ok((out, applied))
}

/// True when a subquery of `pred` reads a table outside database `home` (names resolved
/// against the session's `db` and `schema`).
fn reads_beyond(pred: &Expr, home: &str, db: &str, schema: &str) -> bool {
    use datafusion::common::tree_node::TreeNodeRecursion;
    let mut beyond = false;
    let _ = pred.apply(|e| {
        let sub = match e {
            Expr::Exists(x) => Some(&x.subquery),
            Expr::InSubquery(x) => Some(&x.subquery),
            Expr::SetComparison(x) => Some(&x.subquery),
            Expr::ScalarSubquery(x) => Some(x),
            _ => None,
        };
        if let Some(sq) = sub {
            let _ = sq.subquery.apply_with_subqueries(|n| {
                if let LogicalPlan::TableScan(scan) = n {
                    if full_name(&scan.table_name, db, schema).split('.').next() != Some(home) {
                        beyond = true;
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            });
        }
        Ok(TreeNodeRecursion::Continue)
    });
    beyond
}

/// Plan `filter` against the table and return its predicate, requalified to the user's reference.
async fn plan_filter(
    ctx: &SessionContext,
    full: &str,
    filter: &str,
    tref: &TableReference,
    embedded: bool,
    cache: &RewriteCache,
) -> Result<Expr, LaloError> {
    let key = (full.to_string(), filter.to_string());
    let cached = cache.filters.read().get(&key).filter(|(_, at)| at.elapsed() < FILTER_TTL).map(|(e, _)| e.clone());
    let pred = match cached {
        Some(p) => p,
        None => {
            let (p, schema) = plan_filter_uncached(ctx, full, filter).await?;
            let p = inline_subqueries(ctx, p, &schema, embedded).await?;
            cache.filters.write().insert(key, (p.clone(), std::time::Instant::now()));
            p
        }
    };
    let full_ref = TableReference::parse_str(full);
    let requalified = pred
        .transform(|e| match e {
            Expr::Column(c) if c.relation.as_ref().is_some_and(|r| r.resolved_eq(&full_ref)) => {
                Ok(Transformed::yes(Expr::Column(Column::new(Some(tref.clone()), c.name))))
            }
            other => Ok(Transformed::no(other)),
        })?
        .data;
    Ok(requalified)
}

/// Plan `filter` against the table, with columns qualified by the table's full name; with the
/// schema it reads.
async fn plan_filter_uncached(
    ctx: &SessionContext,
    full: &str,
    filter: &str,
) -> Result<(Expr, datafusion::common::DFSchemaRef), LaloError> {
    let sql = format!("SELECT * FROM {full} WHERE {filter}");
    let plan = ctx.state().create_logical_plan(&sql).await.map_err(|e| {
        LaloError::Config(format!("row filter on {full} does not plan: {e}"))
    })?;
    let mut found = None;
    plan.apply(|n| {
        if let LogicalPlan::Filter(f) = n {
            found = Some((f.predicate.clone(), f.input.schema().clone()));
            return Ok(datafusion::common::tree_node::TreeNodeRecursion::Stop);
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    })?;
    found.ok_or_else(|| LaloError::Config(format!("row filter on {full} has no predicate")))
}

/// How long a row filter's evaluated subquery stays in force before it is evaluated again.
pub const FILTER_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// The most values an evaluated `IN (subquery)` may inline; larger sets stay a subquery.
const MAX_INLINE_VALUES: usize = 10_000;

/// `col IN (SELECT …)` with an uncorrelated subquery, as in the demo filter, becomes
/// `col IN (v1, v2, …)`: evaluated once instead of a semi-join on every statement. Over an
/// embedded table the values become one set-membership node (`member_set.rs`), cheaper to plan
/// on every statement than a literal per value; upstream tables keep the list, which pushes down.
async fn inline_subqueries(
    ctx: &SessionContext,
    pred: Expr,
    schema: &DFSchema,
    embedded: bool,
) -> Result<Expr, LaloError> {
    use datafusion::logical_expr::expr::InList;
    let Expr::InSubquery(ins) = &pred else { return Ok(pred) };
    if !ins.subquery.outer_ref_columns.is_empty() {
        return Ok(pred);
    }
    let plan = ins.subquery.subquery.as_ref().clone();
    let batches = ctx.execute_logical_plan(plan).await?.collect().await?;
    if batches.iter().any(|b| b.num_columns() != 1) {
        return Ok(pred);
    }
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    if rows > MAX_INLINE_VALUES {
        return Ok(pred);
    }
    if rows > 0 && embedded {
        let expr_type = ins.expr.get_type(schema)?;
        let arrays: Vec<&dyn datafusion::arrow::array::Array> = batches.iter().map(|b| b.column(0).as_ref()).collect();
        let values = datafusion::arrow::compute::concat(&arrays).map_err(datafusion::error::DataFusionError::from)?;
        if values.data_type() == &expr_type {
            return Ok(super::member_set::RowFilterIn::call(ins.expr.as_ref().clone(), values, ins.negated)?);
        }
    }
    let mut values = Vec::new();
    for b in &batches {
        for i in 0..b.num_rows() {
            values.push(Expr::Literal(datafusion::scalar::ScalarValue::try_from_array(b.column(0), i)?, None));
            if values.len() > MAX_INLINE_VALUES {
                return Ok(pred);
            }
        }
    }
    if values.is_empty() {
        // Nothing matches: the filter admits no rows (NOT IN of nothing admits all).
        return Ok(Expr::Literal(datafusion::scalar::ScalarValue::Boolean(Some(ins.negated)), None));
    }
    Ok(Expr::InList(InList::new(ins.expr.clone(), values, ins.negated)))
}

/// A projection that passes every column through, masking the listed ones, keeping qualifiers.
fn mask_projection(
    ctx: &SessionContext,
    input: LogicalPlan,
    masks: &[(String, String)],
    cache: &RewriteCache,
) -> datafusion::error::Result<LogicalPlan> {
    let schema: &DFSchema = input.schema();
    let mut exprs = Vec::with_capacity(schema.fields().len());
    for (q, f) in schema.iter() {
        let col = Expr::Column(Column::new(q.cloned(), f.name()));
        match masks.iter().find(|(c, _)| c.eq_ignore_ascii_case(f.name())) {
            None => exprs.push(col),
            Some((_, kind)) => {
                let quoted = format!("\"{}\"", f.name().replace('"', "\"\""));
                let sql = mask_sql(kind, &quoted, f.data_type())
                    .map_err(datafusion::error::DataFusionError::Plan)?;
                // Unqualified column references: the same expression serves every alias of the table.
                let key = (sql.clone(), f.data_type().to_string());
                let cached = cache.masks.read().get(&key).cloned();
                let e = match cached {
                    Some(e) => e,
                    None => {
                        let bare = DFSchema::from_unqualified_fields(
                            vec![f.as_ref().clone()].into(),
                            Default::default(),
                        )?;
                        let e = ctx.parse_sql_expr(&sql, &bare)?.cast_to(f.data_type(), &bare)?;
                        cache.masks.write().insert(key, e.clone());
                        e
                    }
                };
                let e = e
                    .transform(|x| match x {
                        Expr::Column(c) if c.relation.is_none() => {
                            Ok(Transformed::yes(Expr::Column(Column::new(q.cloned(), c.name))))
                        }
                        other => Ok(Transformed::no(other)),
                    })?
                    .data;
                exprs.push(e.alias_qualified(q.cloned(), f.name()));
            }
        }
    }
    Ok(LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(input))?))
}
