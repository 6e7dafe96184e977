//! The entitlement filter: fused hits are cut to what the caller may read before any drafter,
//! prompt or EXPLAIN ASK trace sees them. The caller's entitled context (nl/catalog.rs) is the
//! reference: a table or column is kept only if it is in it, a value only if the column is not
//! masked for the caller and the caller's own governed samples hold the value (so row filters
//! hold too), a join only if both ends are readable, an example only if its SQL plans and
//! governs as the caller.

use crate::nl::Host;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::nl::catalog::Built;
use crate::nl::index::documents::{Doc, Kind};
use crate::nl::index::Hit;
use crate::session::Session;

/// Examples checked per question (each is planned and governed; the best few are enough).
const MAX_EXAMPLES: usize = 3;

/// Whether `doc` (not an example) is readable by the caller whose context is `built`.
pub fn readable(built: &Built, database: &str, doc: &Doc) -> bool {
    if !doc.database.eq_ignore_ascii_case(database) {
        return false;
    }
    let ctx = &built.context;
    let Some(table) = ctx.tables.iter().find(|t| {
        t.catalog.eq_ignore_ascii_case(&doc.database) && t.schema.eq_ignore_ascii_case(&doc.schema) && t.name.eq_ignore_ascii_case(&doc.table)
    }) else {
        return false;
    };
    match doc.kind {
        Kind::Table => true,
        Kind::Column => table.column(&doc.column).is_some(),
        Kind::Value => {
            let full = format!("{}.{}.{}.{}", doc.database, doc.schema, doc.table, doc.column);
            let masked = built.masked.iter().any(|m| m.eq_ignore_ascii_case(&full));
            !masked && table.column(&doc.column).is_some_and(|c| c.samples.iter().any(|s| s == &doc.detail))
        }
        Kind::Join => {
            let from_ok = doc.column.split(", ").all(|c| table.column(c).is_some());
            let Some((target, cols)) = doc.detail.strip_suffix(')').and_then(|d| d.split_once('(')) else { return false };
            let to_ok = ctx.table(target).is_some_and(|t| {
                t.qualified().eq_ignore_ascii_case(target) && cols.split(", ").all(|c| t.column(c).is_some())
            });
            from_ok && to_ok
        }
        Kind::Example => false,
    }
}

/// Whether the example's SQL is one statement the caller could run: planned and governed as them.
async fn runnable(lalo: &dyn Host, session: &Session, sql: &str) -> bool {
    let Ok(mut stmts) = Parser::parse_sql(&PostgreSqlDialect {}, sql) else { return false };
    let (Some(stmt), true) = (stmts.pop(), stmts.is_empty()) else { return false };
    let Ok(plan) = lalo.plan(session, &stmt).await else { return false };
    lalo.govern(session, plan).await.is_ok()
}

/// Keep the hits the caller may see, in order.
pub async fn filter(lalo: &dyn Host, session: &Session, built: &Built, hits: Vec<Hit>) -> Vec<Hit> {
    let mut out = Vec::with_capacity(hits.len());
    let (mut examples, mut tried) = (0, 0);
    for h in hits {
        let keep = match h.doc.kind {
            Kind::Example => {
                let here = h.doc.database.is_empty() || h.doc.database.eq_ignore_ascii_case(&session.database);
                // Bounded: planning an example costs about as much as planning the answer.
                let keep = here && examples < MAX_EXAMPLES && tried < 2 * MAX_EXAMPLES && {
                    tried += 1;
                    runnable(lalo, session, &h.doc.detail).await
                };
                examples += usize::from(keep);
                keep
            }
            _ => readable(built, &session.database, &h.doc),
        };
        if keep {
            out.push(h);
        }
    }
    out
}
