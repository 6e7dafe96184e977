//! Schema search: rank the tables and columns a caller may read against a question, by term
//! overlap with names, descriptions and column docs (a BM25-style score over the catalog docs).

use std::collections::{BTreeMap, HashMap};

/// One searchable table as the caller sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableEntry {
    pub database: String,
    pub schema: String,
    pub table: String,
    pub description: String,
    pub columns: Vec<ColumnEntry>,
}

/// One visible column.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ColumnEntry {
    pub name: String,
    pub data_type: String,
    pub description: String,
}

/// A ranked hit.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Hit {
    pub table: String,
    pub score: f64,
    pub description: String,
    pub matching_columns: Vec<String>,
}

/// Lower-case word stems: "customers'" and "Customer" both give "customer".
pub fn terms(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 1)
        .map(|w| {
            let w = w.to_ascii_lowercase();
            let w = w.strip_suffix("ies").map(|s| format!("{s}y")).unwrap_or(w);
            match w.strip_suffix('s') {
                Some(s) if s.len() > 2 && !s.ends_with('s') => s.to_string(),
                _ => w,
            }
        })
        .filter(|w| !STOP.contains(&w.as_str()))
        .collect()
}

const STOP: &[&str] = &[
    "the", "of", "in", "for", "and", "or", "a", "an", "to", "by", "on", "with", "what", "which", "who", "how", "many",
    "much", "is", "are", "was", "were", "each", "per", "all", "me", "show", "list", "give", "find", "from", "that", "this",
    "their", "there", "do", "does", "have", "ha",
];

/// Rank `tables` for `question`; returns at most `limit` hits with a positive score.
pub fn rank(tables: &[TableEntry], question: &str, limit: usize) -> Vec<Hit> {
    let q = terms(question);
    if q.is_empty() {
        return vec![];
    }
    // Document frequency per term over tables, for IDF.
    let docs: Vec<(String, Vec<String>, BTreeMap<String, Vec<String>>)> = tables
        .iter()
        .map(|t| {
            let mut words = terms(&t.table);
            words.extend(terms(&t.description));
            let mut cols = BTreeMap::new();
            for c in &t.columns {
                let mut cw = terms(&c.name.replace('_', " "));
                cw.extend(terms(&c.description));
                words.extend(cw.iter().cloned());
                cols.insert(c.name.clone(), cw);
            }
            (format!("{}.{}", t.schema, t.table), words, cols)
        })
        .collect();
    let n = docs.len().max(1) as f64;
    let mut df: HashMap<&str, f64> = HashMap::new();
    for term in &q {
        let count = docs.iter().filter(|(_, w, _)| w.contains(term)).count() as f64;
        df.insert(term.as_str(), count);
    }
    let mut hits: Vec<Hit> = docs
        .iter()
        .zip(tables)
        .map(|((name, words, cols), t)| {
            let len = words.len().max(1) as f64;
            let mut score = 0.0;
            for term in &q {
                let tf = words.iter().filter(|w| *w == term).count() as f64;
                if tf == 0.0 {
                    continue;
                }
                let idf = ((n - df[term.as_str()] + 0.5) / (df[term.as_str()] + 0.5) + 1.0).ln();
                score += idf * (tf * 2.2) / (tf + 1.2 * (0.25 + 0.75 * len / 60.0));
                // A term naming the table itself counts most.
                if terms(&t.table).contains(term) {
                    score += 2.0 * idf;
                }
            }
            let matching_columns: Vec<String> =
                cols.iter().filter(|(_, cw)| q.iter().any(|t| cw.contains(t))).map(|(c, _)| c.clone()).collect();
            Hit { table: name.clone(), score, description: t.description.clone(), matching_columns }
        })
        .filter(|h| h.score > 0.0)
        .collect();
    hits.sort_by(|a, b| b.score.partial_cmp(&a.score).unwrap_or(std::cmp::Ordering::Equal));
    hits.truncate(limit);
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_by_names_and_docs() {
        let t = |name: &str, desc: &str, cols: &[(&str, &str)]| TableEntry {
            database: "lalo".into(),
            schema: "tpch".into(),
            table: name.into(),
            description: desc.into(),
            columns: cols
                .iter()
                .map(|(c, d)| ColumnEntry { name: c.to_string(), data_type: "text".into(), description: d.to_string() })
                .collect(),
        };
        let tables = vec![
            t("customer", "Customers who buy", &[("c_phone", "phone number"), ("c_acctbal", "account balance")]),
            t("orders", "Orders placed by customers", &[("o_orderdate", "date the order was placed")]),
            t("region", "World regions", &[("r_name", "region name")]),
        ];
        let hits = rank(&tables, "What is the phone number of each customer?", 5);
        assert_eq!(hits[0].table, "tpch.customer");
        assert_eq!(hits[0].matching_columns, vec!["c_phone"]);
        assert!(rank(&tables, "the of and", 5).is_empty());
    }
}
