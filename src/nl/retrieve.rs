//! Retrieval and schema linking for one question: rank the caller's tables by the retrieval
//! index's fused, entitlement-filtered hits (nl/index) — or, before the index is ready, by names
//! and docs in memory (search.rs) — plus sample values the question quotes, and pick what the
//! drafter gets.

use std::collections::{BTreeSet, HashMap};

use crate::engine::dialect::Example;
use crate::nl::catalog::Built;
use crate::nl::index::documents::Kind;
use crate::nl::index::{Hit, Searched};
use crate::nl::{Drafter, SchemaContext};

/// Above this many tables the drafter gets the top-ranked ones (and their key neighbours).
pub const WHOLE_SCHEMA_MAX: usize = 40;
/// How many ranked tables a large schema is cut to.
const TOP_TABLES: usize = 12;
/// Fused scores are 1/(60 + rank) per list: scaled so a first-ranked hit counts about 1.
const FUSED_SCALE: f64 = 60.0;
/// Retrieved documents kept for the drafter and the trace.
pub const DOCUMENTS_KEPT: usize = 20;

/// One linked table: why it was retrieved.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Link {
    /// `schema.table`
    pub table: String,
    pub score: f64,
    /// Columns whose names or docs share a word with the question.
    pub columns: Vec<String>,
    /// `column = value` for sample values the question quotes.
    pub values: Vec<String>,
}

/// What retrieval hands on: the ranked links and, for large schemas, the cut-down context.
#[derive(Debug)]
pub struct Retrieved {
    pub links: Vec<Link>,
    /// `Some` when the schema was cut to the top tables (a drafter built for this question).
    pub subset: Option<(SchemaContext, Drafter)>,
    /// The index's hits the caller may read (not examples), best first; empty without the index.
    pub documents: Vec<Hit>,
    /// Verified examples the index found and the caller may run.
    pub examples: Vec<Example>,
    /// Whether the index ranked the tables (else the in-memory ranking did).
    pub via_index: bool,
}

impl Retrieved {
    /// The tables the drafter sees (`schema.table`).
    pub fn given_tables(&self, built: &Built) -> Vec<String> {
        match &self.subset {
            Some((ctx, _)) => ctx.tables.iter().map(|t| t.qualified()).collect(),
            None => built.context.tables.iter().map(|t| t.qualified()).collect(),
        }
    }

    /// The context the drafter sees.
    pub fn context<'a>(&'a self, built: &'a Built) -> &'a SchemaContext {
        match &self.subset {
            Some((ctx, _)) => ctx,
            None => &built.context,
        }
    }

    /// The drafter to use.
    pub fn drafter<'a>(&'a self, built: &'a Built) -> &'a Drafter {
        match &self.subset {
            Some((_, d)) => d,
            None => &built.drafter,
        }
    }
}

/// Rank the caller's tables for `question`: by the index's hits when there are some (`searched`),
/// else in memory.
pub fn retrieve(built: &Built, question: &str, searched: Option<&Searched>) -> Retrieved {
    let (mut links, documents, examples, via_index) = match searched {
        Some(s) => {
            let (links, documents, examples) = from_hits(built, &s.hits);
            (links, documents, examples, true)
        }
        None => (in_memory(built, question), vec![], vec![], false),
    };
    // Sample values the question quotes word for word link their tables in either case.
    let lower = format!(" {} ", question.to_lowercase());
    for t in &built.context.tables {
        let name = t.qualified();
        let mut values = vec![];
        for c in &t.columns {
            for v in &c.samples {
                if v.chars().count() >= 3 && quotes(&lower, &v.to_lowercase()) {
                    values.push(format!("{} = '{}'", c.name, v));
                }
            }
        }
        if values.is_empty() {
            continue;
        }
        let link = match links.iter_mut().position(|l| l.table.eq_ignore_ascii_case(&name)) {
            Some(i) => &mut links[i],
            None => {
                links.push(Link { table: name, score: 0.0, columns: vec![], values: vec![] });
                let last = links.len() - 1;
                &mut links[last]
            }
        };
        link.score += 2.0 * values.len() as f64;
        for v in values {
            if !link.values.contains(&v) {
                link.values.push(v);
            }
        }
    }
    links.retain(|l| l.score > 0.0);
    links.sort_by(|a, b| b.score.partial_cmp(&a.score).unwrap_or(std::cmp::Ordering::Equal));
    let subset = (built.context.tables.len() > WHOLE_SCHEMA_MAX).then(|| cut(built, &links));
    Retrieved { links, subset, documents, examples, via_index }
}

/// The BM25-style ranking over names and docs (search.rs), used until the index is ready.
fn in_memory(built: &Built, question: &str) -> Vec<Link> {
    let hits = crate::search::rank(&built.entries, question, built.entries.len().max(1));
    hits.into_iter()
        .filter(|h| built.context.table(&h.table).is_some())
        .map(|h| Link { table: h.table, score: h.score, columns: h.matching_columns, values: vec![] })
        .collect()
}

/// Table links from fused hits: each hit adds its score to the table it documents (a join to
/// both of its tables, half each); columns and values are recorded on their table.
fn from_hits(built: &Built, hits: &[Hit]) -> (Vec<Link>, Vec<Hit>, Vec<Example>) {
    let mut links: Vec<Link> = vec![];
    let mut at: HashMap<String, usize> = HashMap::new();
    let mut link = |table: String, score: f64| -> usize {
        let i = *at.entry(table.to_ascii_lowercase()).or_insert_with(|| {
            links.push(Link { table: table.clone(), score: 0.0, columns: vec![], values: vec![] });
            links.len() - 1
        });
        links[i].score += score;
        i
    };
    let mut touched: Vec<(usize, Kind, String)> = vec![];
    let (mut documents, mut examples) = (vec![], vec![]);
    for h in hits {
        let score = h.score * FUSED_SCALE;
        // The caller's own spelling of the table (the context is what the drafter writes).
        let table = built.context.table(&h.doc.qualified_table()).map(|t| t.qualified()).unwrap_or_else(|| h.doc.qualified_table());
        match h.doc.kind {
            Kind::Example => {
                examples.push(Example { question: h.doc.text.clone(), sql: h.doc.detail.clone() });
                continue;
            }
            Kind::Table => {
                link(table, score);
            }
            Kind::Column => {
                let i = link(table, score);
                touched.push((i, Kind::Column, h.doc.column.clone()));
            }
            Kind::Value => {
                let i = link(table, score);
                touched.push((i, Kind::Value, format!("{} = '{}'", h.doc.column, h.doc.detail)));
            }
            Kind::Join => {
                link(table, score / 2.0);
                if let Some((target, _)) = h.doc.detail.split_once('(') {
                    let target = built.context.table(target).map(|t| t.qualified()).unwrap_or_else(|| target.to_string());
                    link(target, score / 2.0);
                }
            }
        }
        if documents.len() < DOCUMENTS_KEPT {
            documents.push(h.clone());
        }
    }
    for (i, kind, what) in touched {
        let list = if kind == Kind::Column { &mut links[i].columns } else { &mut links[i].values };
        if !list.contains(&what) {
            list.push(what);
        }
    }
    (links, documents, examples)
}

/// Whether `text` (padded with spaces) holds `value` as whole words.
fn quotes(text: &str, value: &str) -> bool {
    let mut from = 0;
    while let Some(i) = text[from..].find(value) {
        let at = from + i;
        let before = text[..at].chars().next_back().is_none_or(|c| !c.is_alphanumeric());
        let after = text[at + value.len()..].chars().next().is_none_or(|c| !c.is_alphanumeric());
        if before && after {
            return true;
        }
        from = at + value.len().max(1);
    }
    false
}

/// The top-ranked tables plus the tables their foreign keys reach (join paths need them).
fn cut(built: &Built, links: &[Link]) -> (SchemaContext, Drafter) {
    let mut keep: BTreeSet<String> = links.iter().take(TOP_TABLES).map(|l| l.table.to_ascii_lowercase()).collect();
    let top = keep.clone();
    for fk in &built.context.foreign_keys {
        let (from, to) = (fk.from_table.to_ascii_lowercase(), fk.to_table.to_ascii_lowercase());
        if top.contains(&from) {
            keep.insert(to);
        } else if top.contains(&to) {
            keep.insert(from);
        }
    }
    let tables: Vec<_> =
        built.context.tables.iter().filter(|t| keep.contains(&t.qualified().to_ascii_lowercase())).cloned().collect();
    let foreign_keys = built
        .context
        .foreign_keys
        .iter()
        .filter(|fk| keep.contains(&fk.from_table.to_ascii_lowercase()) && keep.contains(&fk.to_table.to_ascii_lowercase()))
        .cloned()
        .collect();
    let ctx = SchemaContext { tables, foreign_keys };
    let drafter = Drafter::new(&ctx);
    (ctx, drafter)
}

#[cfg(test)]
mod tests {
    use super::quotes;

    #[test]
    fn quotes_whole_words_only() {
        assert!(quotes(" customers in germany ", "germany"));
        assert!(quotes(" in new york? ", "new york"));
        assert!(!quotes(" germanys ", "germany"));
    }
}
