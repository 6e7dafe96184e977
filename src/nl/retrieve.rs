//! Retrieval and schema linking for one question: rank the caller's tables by their names and
//! docs (search.rs) and by sample values the question quotes, and pick what the drafter gets.

use std::collections::BTreeSet;

use crate::nl::catalog::Built;
use crate::nl::{Drafter, SchemaContext};

/// Above this many tables the drafter gets the top-ranked ones (and their key neighbours).
pub const WHOLE_SCHEMA_MAX: usize = 40;
/// How many ranked tables a large schema is cut to.
const TOP_TABLES: usize = 12;

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

/// Rank the caller's tables for `question`.
pub fn retrieve(built: &Built, question: &str) -> Retrieved {
    let hits = crate::search::rank(&built.entries, question, built.entries.len().max(1));
    let lower = format!(" {} ", question.to_lowercase());
    let mut links: Vec<Link> = vec![];
    for t in &built.context.tables {
        let name = t.qualified();
        let hit = hits.iter().find(|h| h.table.eq_ignore_ascii_case(&name));
        let mut values = vec![];
        for c in &t.columns {
            for v in &c.samples {
                if v.chars().count() >= 3 && quotes(&lower, &v.to_lowercase()) {
                    values.push(format!("{} = '{}'", c.name, v));
                }
            }
        }
        let score = hit.map(|h| h.score).unwrap_or(0.0) + 2.0 * values.len() as f64;
        if score > 0.0 {
            links.push(Link { table: name, score, columns: hit.map(|h| h.matching_columns.clone()).unwrap_or_default(), values });
        }
    }
    links.sort_by(|a, b| b.score.partial_cmp(&a.score).unwrap_or(std::cmp::Ordering::Equal));
    let subset = (built.context.tables.len() > WHOLE_SCHEMA_MAX).then(|| cut(built, &links));
    Retrieved { links, subset }
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
