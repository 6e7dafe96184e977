//! Schema linking: which spans of the question name a table, a column, a sample value, a
//! derived measure, or a literal to filter on (quoted text, capitalised names).

use super::index::{Index, GENERIC};
use super::text::{stem, Kind, Token};

/// What a span of the question refers to.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Table(usize),
    Column(usize, usize),
    /// A known value of a column (from its samples), spelled as stored.
    Value(usize, usize, String),
    Measure(usize),
    /// A quoted or capitalised phrase the samples don't know: filter a name column with it.
    Literal(String),
}

/// A linked span `[start, end)` of tokens with its candidate targets, best first.
#[derive(Debug, Clone)]
pub struct Mention {
    pub start: usize,
    pub end: usize,
    pub cands: Vec<(Target, f32)>,
}

impl Mention {
    pub fn best(&self) -> &Target {
        &self.cands[0].0
    }
}

/// Words that carry the question's intent or are filler, never schema links on their own.
pub const FUNCTION_WORDS: &[&str] = &[
    "the", "a", "an", "of", "in", "on", "at", "for", "to", "and", "or", "by", "with", "from", "is", "are", "was", "were", "be",
    "been", "what", "which", "who", "whom", "whose", "how", "many", "much", "me", "show", "list", "give", "find", "get", "return",
    "display", "tell", "that", "this", "these", "those", "there", "their", "they", "it", "its", "do", "doe", "does", "did", "have",
    "ha", "has", "had", "all", "each", "every", "per", "any", "some", "as", "than", "more", "less", "most", "least", "top",
    "bottom", "highest", "lowest", "largest", "smallest", "biggest", "greatest", "maximum", "minimum", "max", "min", "average",
    "avg", "mean", "sum", "total", "count", "number", "ordered", "order", "sorted", "sort", "descending", "ascending", "desc",
    "asc", "alphabetically", "alphabetical", "between", "after", "before", "since", "during", "above", "below", "over", "under",
    "greater", "fewer", "least", "exceeding", "equal", "not", "no", "only", "also", "both", "distinct", "unique", "different",
    "i", "we", "you", "please", "can", "could", "would", "should", "will", "along", "together", "name", "named", "called",
    "year", "month", "day", "first", "last", "then", "where", "when", "while", "into", "out", "up", "down", "one", "ones",
    "result", "results", "answer", "database", "data", "table", "record", "entry", "whole", "overall", "corresponding",
    "respective", "them", "him", "her", "his", "he", "she", "other", "such", "like", "via", "including", "included",
    "located", "associated", "related", "belong", "belonging", "belongs", "within", "across", "vary", "varies", "compare",
    "ratio", "proportion", "percentage", "percent", "rate", "fraction", "longest", "shortest", "earliest", "latest", "oldest",
    "newest", "best", "worst", "rank", "ranked", "ranking", "along", "there", "exist", "exists", "currently", "current",
    "value", "values", "amount", "information", "details", "detail", "info", "id", "ids", "identifier", "well", "so", "if",
];

pub fn is_function_word(t: &Token) -> bool {
    FUNCTION_WORDS.contains(&t.lower.as_str()) || FUNCTION_WORDS.contains(&t.stem.as_str())
}

/// Link every span of `tokens` against the index, longest and best spans first, no overlaps.
pub fn link(tokens: &[Token], ix: &Index) -> Vec<Mention> {
    let mut found: Vec<Mention> = vec![];
    let n = tokens.len();
    let mut taken = vec![false; n];
    // Values first: a literal name is the strongest signal ("Machine Learning", "CA").
    for len in (1..=5).rev() {
        for start in 0..n.saturating_sub(len - 1) {
            if taken[start..start + len].iter().any(|t| *t) {
                continue;
            }
            let cands = values(&tokens[start..start + len], ix);
            if !cands.is_empty() {
                taken[start..start + len].iter_mut().for_each(|t| *t = true);
                found.push(Mention { start, end: start + len, cands });
            }
        }
    }
    for (i, t) in tokens.iter().enumerate() {
        if t.kind == Kind::Quoted && !taken[i] {
            taken[i] = true;
            found.push(Mention { start: i, end: i + 1, cands: vec![(Target::Literal(t.raw.clone()), 0.5)] });
        }
    }
    // Tables, columns, measures: spans of up to four words.
    for len in (1..=4).rev() {
        for start in 0..n.saturating_sub(len - 1) {
            if taken[start..start + len].iter().any(|t| *t) {
                continue;
            }
            let span = &tokens[start..start + len];
            if span.iter().any(|t| t.kind != Kind::Word) || span.first().is_some_and(is_stop) || span.last().is_some_and(is_stop) {
                continue;
            }
            let cands = schema(span, ix);
            if !cands.is_empty() {
                taken[start..start + len].iter_mut().for_each(|t| *t = true);
                found.push(Mention { start, end: start + len, cands });
            }
        }
    }
    // Capitalised names nobody claimed ("Martin", "San Francisco"): literals.
    let mut i = 0;
    while i < n {
        if !taken[i] && tokens[i].capital && tokens[i].kind == Kind::Word && !is_function_word(&tokens[i]) && !ix.known.contains(&tokens[i].stem) {
            let start = i;
            while i < n && !taken[i] && tokens[i].capital && tokens[i].kind == Kind::Word {
                i += 1;
            }
            let text: Vec<&str> = tokens[start..i].iter().map(|t| t.raw.as_str()).collect();
            found.push(Mention { start, end: i, cands: vec![(Target::Literal(text.join(" ")), 0.3)] });
        } else {
            i += 1;
        }
    }
    found.sort_by_key(|m| m.start);
    compounds(found)
}

/// "customer country", "order date": a table named right before one of its columns is that
/// column (English puts the owner first in a noun compound).
fn compounds(found: Vec<Mention>) -> Vec<Mention> {
    let mut out: Vec<Mention> = Vec::with_capacity(found.len());
    for m in found {
        if let Some(prev) = out.last_mut() {
            if let (Target::Table(t), true) = (prev.best().clone(), prev.end == m.start) {
                // The column by its name's words, not a word only its description has.
                let owned = m.cands.first().filter(|(c, s)| matches!(c, Target::Column(ct, _) if *ct == t) && *s >= 1.0).cloned();
                if let Some((col, score)) = owned {
                    *prev = Mention { start: prev.start, end: m.end, cands: vec![(col, score + 0.5)] };
                    continue;
                }
            }
        }
        out.push(m);
    }
    out
}

fn is_stop(t: &Token) -> bool {
    matches!(t.lower.as_str(), "the" | "of" | "a" | "an" | "in" | "and" | "or" | "to" | "for" | "with" | "by" | "on" | "at" | "from" | "is" | "are")
}

/// Sample values spelled by `span` (case-insensitively), and US state names for state codes.
fn values(span: &[Token], ix: &Index) -> Vec<(Target, f32)> {
    let quoted = span.len() == 1 && span[0].kind == Kind::Quoted;
    let text: Vec<&str> = span.iter().map(|t| t.lower.as_str()).collect();
    let text = text.join(" ");
    let single = span.len() == 1 && !quoted;
    if single && (is_function_word(&span[0]) || span[0].lower.len() < 2 && !span[0].capital) {
        return vec![];
    }
    let code = super::states::code(&text);
    let mut out = vec![];
    for (ti, t) in ix.tables.iter().enumerate() {
        for (ci, c) in t.columns.iter().enumerate() {
            for v in &c.samples {
                let lv = v.to_lowercase();
                let hit = lv == text || lv.trim_end_matches('.') == text;
                // One short lower-case word matching a value is weak ("first" vs 'First'): need a capital or length.
                let weak = single && !span[0].capital && (lv.len() < 4 || ix.known.contains(&span[0].stem));
                if hit && !weak {
                    out.push((Target::Value(ti, ci, v.clone()), 1.5 + span.len() as f32 * 0.1));
                } else if code.is_some_and(|c| c == v) {
                    out.push((Target::Value(ti, ci, v.clone()), 1.2));
                }
            }
        }
    }
    out
}

/// Tables, columns and measures whose words `span` spells.
fn schema(span: &[Token], ix: &Index) -> Vec<(Target, f32)> {
    let stems: Vec<&str> = span.iter().filter(|t| !is_stop(t)).map(|t| t.stem.as_str()).collect();
    if span.len() == 1 {
        // A column written by its exact name ("firstname", `course_id`), or by its own words
        // once its table's lead words are dropped (`year` for `pubYear`).
        let exact: Vec<(Target, f32)> = ix
            .tables
            .iter()
            .enumerate()
            .flat_map(|(ti, t)| t.columns.iter().enumerate().filter(|(_, c)| (c.name.eq_ignore_ascii_case(&span[0].raw) || c.bare == span[0].lower) && c.name.len() > 3).map(move |(ci, _)| (Target::Column(ti, ci), 2.5)))
            .collect();
        if !exact.is_empty() {
            return exact;
        }
    }
    // A lone intent word ("order", "total") may name a table, never a column.
    let tables_only = span.len() == 1 && is_function_word(&span[0]);
    let joined = stem(&span.iter().map(|t| t.lower.as_str()).collect::<String>());
    let mut out: Vec<(Target, f32)> = vec![];
    for (ti, t) in ix.tables.iter().enumerate() {
        let table_words = |words: &[String]| words.len() == stems.len() && words.iter().zip(&stems).all(|(a, b)| a == b);
        let glued = span.len() == 2 && t.words.len() == 1 && t.words[0] == joined;
        if table_words(&t.words) || glued || t.synonyms.iter().any(|s| table_words(s)) {
            out.push((Target::Table(ti), 2.0 + stems.len() as f32 * 0.2));
        }
        for (ci, c) in t.columns.iter().enumerate().filter(|_| !tables_only) {
            let all_in = stems.iter().all(|s| c.words.iter().any(|w| w == s));
            let glued = span.len() == 2 && c.words.len() == 1 && c.words[0] == joined;
            if !(all_in || glued) {
                continue;
            }
            let specific = stems.iter().any(|s| !GENERIC.contains(s));
            let distinct: Vec<&String> = c.words.iter().filter(|w| crate::nl::rules::text::expand_abbreviation(w).is_none()).collect();
            let recall = stems.len() as f32 / distinct.len().max(1) as f32;
            if !(specific || recall >= 1.0) && !glued {
                continue;
            }
            out.push((Target::Column(ti, ci), recall.min(1.0) + stems.len() as f32 * 0.3));
        }
    }
    for (mi, m) in ix.measures.iter().enumerate() {
        if stems.len() == 1 && stems[0] == m.word {
            out.push((Target::Measure(mi), 2.5));
        }
    }
    if out.is_empty() && span.len() == 1 && !is_function_word(&span[0]) && !GENERIC.contains(&stems[0]) {
        // A word only a description uses: a weak pointer to that column.
        for (ti, t) in ix.tables.iter().enumerate() {
            for (ci, c) in t.columns.iter().enumerate() {
                if c.desc.contains(stems[0]) {
                    out.push((Target::Column(ti, ci), 0.2));
                }
            }
        }
        if out.len() > 3 {
            out.clear();
        }
    }
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}
