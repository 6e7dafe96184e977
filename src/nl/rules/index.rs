//! The per-schema index the drafter builds once: word stems for every table and column (names
//! split into words, abbreviations expanded, synonyms from descriptions), sample values, derived
//! measures ("revenue is computed as ...") and the join graph.

use std::collections::{HashMap, HashSet};

use super::joins::Graph;
use super::text::{expand_abbreviation, stem, tokenize, Kind};
use crate::nl::context::{ColumnInfo, SchemaContext, TableInfo};

/// Words too common in column names to identify one on their own.
pub const GENERIC: &[&str] = &["id", "name", "number", "has", "is", "the", "of", "total", "count", "code", "type", "key", "value"];

/// One table, indexed.
#[derive(Debug, Clone)]
pub struct TableIx {
    /// `schema.table` as written into SQL.
    pub qualified: String,
    /// Bare name, also the alias in drafted SQL.
    pub name: String,
    /// The name as words ("domain_author" → domain, author).
    pub words: Vec<String>,
    /// Other names for the table, from the parenthesised lists in its description.
    pub synonyms: Vec<Vec<String>>,
    pub columns: Vec<ColIx>,
    /// The identifying column (primary key by convention).
    pub key: Option<usize>,
    /// Columns that name a row for people (name, title).
    pub labels: Vec<usize>,
}

/// One column, indexed.
#[derive(Debug, Clone)]
pub struct ColIx {
    pub name: String,
    /// Name words, prefix stripped, abbreviations expanded.
    pub words: Vec<String>,
    /// Content words of the description.
    pub desc: HashSet<String>,
    pub numeric: bool,
    pub text: bool,
    pub temporal: bool,
    pub boolean: bool,
    pub samples: Vec<String>,
    /// How many of `words` the name spells (the rest are what abbreviations stand for).
    pub written: usize,
    /// The name's own words run together, its table's lead words dropped (`pubYear` → `year`).
    pub bare: String,
}

/// A named computation a description defines ("revenue is usually computed as a * (1 - b)").
#[derive(Debug, Clone)]
pub struct Measure {
    pub word: String,
    pub table: usize,
    /// SQL over the table's columns, columns qualified with the table alias.
    pub sql: String,
}

/// The whole index.
#[derive(Debug, Clone)]
pub struct Index {
    pub tables: Vec<TableIx>,
    /// Every stem the schema knows (names, synonyms, descriptions): words outside it are unknown to the data.
    pub known: HashSet<String>,
    pub measures: Vec<Measure>,
    pub graph: Graph,
    /// Six-letter prefixes of `known` words.
    pub prefixes: HashSet<String>,
}

impl Index {
    /// Shares its first six letters with a schema word ("enrollment" / "enrolled").
    pub fn known_prefix(&self, word: &str) -> bool {
        word.len() >= 6 && word.is_char_boundary(6) && self.prefixes.contains(&word[..6])
    }

    pub fn new(ctx: &SchemaContext) -> Index {
        let mut vocab: HashSet<String> = BASE_WORDS.iter().map(|w| w.to_string()).collect();
        for t in &ctx.tables {
            vocab.extend(split_identifier(&t.name).into_iter().filter(|w| w.len() > 2));
            for text in t.description.iter().chain(t.columns.iter().filter_map(|c| c.description.as_ref())) {
                vocab.extend(text.split(|c: char| !c.is_alphanumeric()).filter(|w| w.len() > 2).map(str::to_lowercase));
            }
        }
        // Words as such (general ones, table names, descriptions), before column names' parts
        // join them: a column word outside it may be clipped.
        let dictionary = vocab.clone();
        for t in &ctx.tables {
            for c in &t.columns {
                vocab.extend(split_identifier(&c.name).into_iter().filter(|w| w.len() > 2 && w.contains(char::is_alphabetic)));
            }
        }
        let mut names: Vec<Vec<String>> = ctx.tables.iter().map(|t| identifier_words(&t.name, &vocab)).collect();
        strip_shared_table_prefix(&mut names);
        let mut tables: Vec<TableIx> = ctx.tables.iter().zip(names).map(|(t, words)| table_ix(t, words, &vocab, &dictionary)).collect();
        // Stop words of descriptions must not make a question word "known".
        let mut known: HashSet<String> = HashSet::new();
        for (t, info) in tables.iter_mut().zip(&ctx.tables) {
            known.extend(t.words.iter().cloned());
            known.extend(t.synonyms.iter().flatten().cloned());
            if let Some(d) = &info.description {
                known.extend(content_words(d));
            }
            known.insert(t.name.to_lowercase());
            for c in &t.columns {
                known.insert(c.name.to_lowercase());
                known.insert(stem(&c.name.to_lowercase().replace('_', "")));
                known.extend(c.words.iter().cloned());
                known.extend(c.desc.iter().cloned());
            }
        }
        let measures = measures(ctx, &tables);
        let graph = Graph::new(ctx, &tables);
        let prefixes = known.iter().filter(|w| w.len() >= 6 && w.is_char_boundary(6)).map(|w| w[..6].to_string()).collect();
        Index { tables, known, measures, graph, prefixes }
    }
}

/// A word every table name starts with (`sb` in `sbCustomer`, `sbTransaction`; `tbl_`) says
/// nothing about any one table: it is dropped from their words.
fn strip_shared_table_prefix(names: &mut [Vec<String>]) {
    if names.len() < 2 || names.iter().any(|w| w.len() < 2) {
        return;
    }
    let first = names[0][0].clone();
    if names.iter().all(|w| w[0] == first) {
        for w in names.iter_mut() {
            w.remove(0);
        }
    }
}

/// One table's index entry; `words` are its name's words, a shared prefix dropped.
fn table_ix(t: &TableInfo, words: Vec<String>, vocab: &HashSet<String>, dictionary: &HashSet<String>) -> TableIx {
    let synonyms = t.description.as_deref().map(synonyms).unwrap_or_default();
    let names: Vec<Vec<String>> = t.columns.iter().map(|c| identifier_words(&c.name, vocab)).collect();
    let shared = shared_leading_words(&names);
    let columns: Vec<ColIx> = t.columns.iter().zip(names).map(|(c, w)| col_ix(c, w[shared..].to_vec(), &words, dictionary)).collect();
    let key = columns
        .iter()
        .position(|c| c.words == ["id"])
        .or_else(|| columns.iter().position(|c| c.words.iter().any(|w| w == "id" || w == "key" || w == "code") && words.iter().any(|tw| c.words.contains(tw))))
        .or_else(|| {
            // "aid" in author, "pid" in publication (`revRid` in `dwReview`): one short word
            // ending in id and starting with the table's initial.
            let initial = words.first().and_then(|w| w.chars().next()).unwrap_or('_');
            columns.iter().position(|c| matches!(c.words.as_slice(), [w] if w.len() <= 4 && w.ends_with("id") && w.starts_with(initial)))
        })
        .or_else(|| columns.iter().position(|c| c.words.last().is_some_and(|w| w == "id")));
    let mut labels: Vec<usize> = columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.text && c.words.last().is_some_and(|w| w == "name" || w == "title"))
        .map(|(i, _)| i)
        .collect();
    // "name" alone (or the table's own name) first: author.name before author.homepage_name,
    // mountain.mountain_name before mountain.country_name. Words counted as written.
    labels.sort_by_key(|&i| (columns[i].written, !columns[i].words.iter().any(|w| words.contains(w))));
    labels.truncate(1);
    TableIx { qualified: t.qualified(), name: t.name.clone(), words, synonyms, columns, key, labels }
}

fn col_ix(c: &ColumnInfo, words: Vec<String>, table_words: &[String], dictionary: &HashSet<String>) -> ColIx {
    let desc = c.description.as_deref().map(content_words).unwrap_or_default();
    // Each word followed by what it abbreviates, so the last word stays the name's last idea.
    let mut out: Vec<String> = Vec::with_capacity(words.len() * 2);
    for w in &words {
        out.push(w.clone());
        let long = expand_abbreviation(w).map(str::to_string).or_else(|| clipped(w, &desc, table_words, dictionary));
        if let Some(e) = long.filter(|e| !words.contains(e) && !out.contains(e)) {
            out.push(e);
        }
    }
    ColIx {
        name: c.name.clone(),
        written: words.len(),
        bare: words.concat(),
        words: out,
        desc,
        numeric: c.is_numeric(),
        text: c.is_text(),
        temporal: c.is_temporal(),
        boolean: c.is_boolean(),
        samples: c.samples.clone(),
    }
}

/// The word a clipped one stands for (`alti` → altitude, `popu` → population): the shortest
/// word of the column's description that starts with it, else of its table's name, else the
/// one word of the schema's dictionary (general words, table names, descriptions) that does.
/// Only short words that are not words of that dictionary themselves are read as clipped.
fn clipped(w: &str, desc: &HashSet<String>, table_words: &[String], dictionary: &HashSet<String>) -> Option<String> {
    if !(3..=6).contains(&w.len()) || desc.contains(w) || dictionary.contains(w) || !w.chars().all(char::is_alphabetic) {
        return None;
    }
    let longer = |c: &&String| c.len() >= w.len() + 2 && c.starts_with(w);
    let shortest = |it: Vec<&String>| it.into_iter().min_by_key(|c| (c.len(), c.to_string())).cloned();
    shortest(desc.iter().filter(longer).collect())
        .or_else(|| shortest(table_words.iter().filter(longer).collect()))
        .or_else(|| {
            let mut found = dictionary.iter().filter(longer).map(|v| stem(v));
            let first = found.next()?;
            found.all(|x| x == first).then_some(first)
        })
}

/// How many leading words every column of a table shares (`c` in `c_custkey`, `c_name`;
/// `cust` in `custId`, `custName`): one at most (a second is as likely the start of the
/// table's own name: `keyKeyphraseId`), and never a column's last word.
fn shared_leading_words(names: &[Vec<String>]) -> usize {
    let shared = names.len() >= 2 && names.iter().all(|w| w.len() > 1 && w[0] == names[0][0]);
    usize::from(shared)
}

/// An identifier's words, lower-case: split at `_` and other separators, at camelCase humps
/// (`sbCustName` → sb, cust, name; `HTTPServer` → http, server) and between letters and digits.
pub fn split_identifier(ident: &str) -> Vec<String> {
    let chars: Vec<char> = ident.chars().collect();
    let mut out = vec![];
    let mut cur = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur).to_lowercase());
            }
            continue;
        }
        if let Some(&prev) = i.checked_sub(1).and_then(|p| chars.get(p)) {
            let next = chars.get(i + 1).copied();
            let hump = prev.is_lowercase() && c.is_uppercase();
            let acronym_end = prev.is_uppercase() && c.is_uppercase() && next.is_some_and(char::is_lowercase);
            let digits = prev.is_ascii_digit() != c.is_ascii_digit() && prev.is_alphanumeric();
            if (hump || acronym_end || digits) && !cur.is_empty() {
                out.push(std::mem::take(&mut cur).to_lowercase());
            }
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur.to_lowercase());
    }
    out
}

/// Split an identifier into stemmed words: on `_`, then run-together words by the vocabulary
/// ("authorname" → author, name; "numcitedby" → num, cited, by).
pub fn identifier_words(ident: &str, vocab: &HashSet<String>) -> Vec<String> {
    let mut out = vec![];
    for part in split_identifier(ident) {
        for w in segment(&part, vocab) {
            out.push(stem(&w));
        }
    }
    out
}

fn segment(word: &str, vocab: &HashSet<String>) -> Vec<String> {
    let chars: Vec<char> = word.chars().collect();
    let n = chars.len();
    if n < 5 {
        return vec![word.to_string()];
    }
    // best[i]: best score and split for chars[..i]; parts must be vocabulary words (or short glue).
    let mut best: Vec<Option<(usize, Vec<String>)>> = vec![None; n + 1];
    best[0] = Some((0, vec![]));
    for end in 1..=n {
        for start in 0..end {
            let Some((score, parts)) = &best[start] else { continue };
            let piece: String = chars[start..end].iter().collect();
            let ok = (piece.len() >= 3 && vocab.contains(&piece) && piece != word)
                || SHORT.contains(&piece.as_str())
                || (piece.len() >= 3 && expand_abbreviation(&piece).is_some() && piece != word);
            if ok {
                let s = score + piece.len() * piece.len();
                if best[end].as_ref().is_none_or(|(b, _)| s > *b) {
                    let mut p = parts.clone();
                    p.push(piece);
                    best[end] = Some((s, p));
                }
            }
        }
    }
    match &best[n] {
        Some((_, parts)) if parts.len() > 1 => parts.clone(),
        _ => vec![word.to_string()],
    }
}

const SHORT: &[&str] = &["id", "by", "no", "in", "of", "to"];

/// Everyday words of data models, for splitting run-together names (`homepage`, `numitems`)
/// whose schema never spells the parts out: general English, not any one database's.
const BASE_WORDS: &[&str] = &[
    "name", "num", "number", "count", "total", "key", "year", "date", "time", "type", "code", "first", "last", "min", "max",
    "avg", "sum", "start", "end", "created", "updated", "status", "price", "amount", "quantity", "rate", "balance", "account",
    "customer", "order", "product", "item", "user", "address", "city", "state", "country", "zip", "postal", "phone", "email",
    "street", "region", "category", "description", "title", "value", "score", "rating", "level", "group", "class", "owner",
    "company", "employee", "department", "manager", "salary", "age", "birth", "gender", "height", "weight", "size", "length",
    "width", "area", "population", "location", "home", "page", "link", "text", "note", "comment", "review", "active", "open",
    "close", "high", "low", "volume", "market", "trade", "payment", "fee", "tax", "discount", "cost", "revenue", "sale",
    "profit", "currency", "unit", "event", "visit", "day", "week", "month", "hour", "minute", "second", "duration",
    "distance", "source", "target", "parent", "child", "member", "person", "student", "course", "teacher", "school", "book",
    "word", "phrase", "web", "site",
];

/// Stems of the content words of a description.
pub fn content_words(text: &str) -> HashSet<String> {
    tokenize(text)
        .into_iter()
        .filter(|t| t.kind == Kind::Word && t.lower.len() > 2 && !DESC_STOP.contains(&t.lower.as_str()))
        .map(|t| t.stem)
        .collect()
}

const DESC_STOP: &[&str] = &[
    "the", "and", "for", "with", "that", "this", "from", "which", "each", "its", "are", "was", "has", "have", "been", "not",
    "unique", "identifier", "foreign", "key", "referencing", "references", "referenced", "table", "column", "row", "rows",
    "value", "values", "text", "integer", "one", "two", "given", "specific", "associated", "also", "where", "who", "what",
    "such", "some", "other", "into", "than", "any", "all", "per", "can", "may", "used", "use", "based", "being", "their",
    "there", "these", "those", "will", "would", "should", "indicates", "indicating", "represents", "whether", "form",
];

/// "Each row is a customer order (purchase, sale, transaction)": the parenthesised alternatives.
fn synonyms(description: &str) -> Vec<Vec<String>> {
    let mut out = vec![];
    let first = description.split(". ").next().unwrap_or(description);
    let mut rest = first;
    while let Some(open) = rest.find('(') {
        let Some(close) = rest[open..].find(')') else { break };
        for alt in rest[open + 1..open + close].split([',', '/']) {
            let words: Vec<String> = tokenize(alt).into_iter().filter(|t| t.kind == Kind::Word).map(|t| t.stem).collect();
            if !words.is_empty() && words.len() <= 3 {
                out.push(words);
            }
        }
        rest = &rest[open + close..];
    }
    out
}

/// Measures defined in column descriptions: "<word> is [usually] computed as <expr>".
fn measures(ctx: &SchemaContext, tables: &[TableIx]) -> Vec<Measure> {
    let mut out = vec![];
    for (ti, t) in ctx.tables.iter().enumerate() {
        let cols: HashMap<String, &str> = t.columns.iter().map(|c| (c.name.to_lowercase(), c.name.as_str())).collect();
        for c in &t.columns {
            let Some(d) = &c.description else { continue };
            let lower = d.to_lowercase();
            let Some(at) = lower.find(" computed as ") else { continue };
            let word = lower[..at].split_whitespace().filter(|w| *w != "is" && *w != "usually").last().unwrap_or("");
            let expr = lower[at + " computed as ".len()..].split([';', '.']).next().unwrap_or("").trim().to_string();
            // Only expressions over this table's own columns, numbers and arithmetic.
            let mut sql = String::new();
            let mut ok = !word.is_empty() && !expr.is_empty();
            for piece in expr.split_inclusive(|ch: char| !(ch.is_alphanumeric() || ch == '_')) {
                let (ident, tail) = piece.split_at(piece.trim_end_matches(|ch: char| !(ch.is_alphanumeric() || ch == '_')).len());
                if ident.is_empty() || ident.chars().all(|ch| ch.is_ascii_digit()) {
                    sql.push_str(piece);
                } else if let Some(name) = cols.get(ident) {
                    sql.push_str(&format!("{}.{}{}", t.name, name, tail));
                } else {
                    ok = false;
                }
                if !tail.chars().all(|ch| " *+-/()".contains(ch)) {
                    ok = false;
                }
            }
            if ok && ti < tables.len() {
                out.push(Measure { word: stem(word), table: ti, sql: sql.trim().to_string() });
            }
        }
    }
    out
}
