//! The planner: pairs intent cues with linked schema mentions and decides the query's shape
//! (listing, aggregate, grouped aggregate, ranking), its filters, order and limit.

use super::cues;
use super::index::Index;
use super::link::{is_function_word, link, Mention, Target};
use super::sql::{column, contains_pattern, literal, number, Query};
use super::text::{tokenize, Kind, Token};

/// A drafted statement, or why there is none.
pub type Planned = Result<(String, Vec<String>, f32, String), String>;

/// What a measure expression is over.
#[derive(Debug, Clone)]
pub(super) struct Measure {
    pub sql: String,
    pub table: usize,
    /// A count of rows of `table` (rendered as COUNT(DISTINCT key) once joins are known).
    pub count: bool,
}

/// The planner's working state for one question.
pub(super) struct Ctx<'a> {
    pub ix: &'a Index,
    pub tokens: Vec<Token>,
    pub mentions: Vec<Mention>,
    /// Mentions already used by a clause (filters, measures, grouping).
    pub used: Vec<bool>,
    pub q: Query,
    pub notes: Vec<String>,
    /// Tables the question names.
    pub mentioned: Vec<usize>,
    /// Filter conditions found so far, by position; `build` places them (WHERE, or a ratio's sides).
    pub conds: Vec<Cond>,
    /// How text filters are written, as instructions with the question say.
    pub matching: super::instruct::Matching,
}

/// One filter condition and where the question states it.
#[derive(Debug, Clone)]
pub(super) struct Cond {
    pub at: usize,
    pub col: String,
    pub sql: String,
    /// For `col = value`: the literal, so several values on one column become `IN (...)`.
    pub eq: Option<String>,
    /// A comparison on a measure worth showing in a listing ("orders with total price above 300000").
    pub show: bool,
}

/// WHERE terms for `conds`: equalities on one column merged into `IN (...)`.
pub(super) fn where_terms(conds: &[Cond]) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    let mut merged: Vec<(String, Vec<String>)> = vec![];
    for c in conds {
        match &c.eq {
            Some(v) => match merged.iter_mut().find(|(col, _)| *col == c.col) {
                Some((_, list)) => list.push(v.clone()),
                None => merged.push((c.col.clone(), vec![v.clone()])),
            },
            None => out.push(c.sql.clone()),
        }
    }
    for (col, list) in merged {
        if list.len() == 1 {
            out.insert(0, format!("{col} = {}", list[0]));
        } else {
            out.insert(0, format!("{col} IN ({})", list.join(", ")));
        }
    }
    out
}

pub fn plan(question: &str, ix: &Index) -> Planned {
    // Instructions that came with the question say how to match text; their words are not
    // the question's.
    let (asked, told) = super::instruct::split(question);
    let matching = super::instruct::matching(&told);
    let tokens = tokenize(&asked);
    let mentions = link(&tokens, ix);
    let unknown = unknown_words(&tokens, &mentions, ix);
    if !unknown.is_empty() {
        return Err(format!("the schema has nothing about: {}", unknown.join(", ")));
    }
    let subject = subject(&mentions, ix).ok_or_else(|| "no table or column of the schema matches the question".to_string())?;
    let used = vec![false; mentions.len()];
    let mentioned = mentions.iter().filter_map(|m| match m.best() {
        Target::Table(t) => Some(*t),
        _ => None,
    }).collect();
    let mut c = Ctx { ix, tokens, mentions, used, q: Query { root: subject, tables: vec![subject], ..Query::default() }, notes: vec![], mentioned, conds: vec![], matching };
    c.notes.push(format!("about {}", ix.tables[subject].name));
    if !told.is_empty() {
        c.notes.push(format!("instructions: {}", told.join(" ")));
    }
    c.filters();
    c.shape()?;
    let (sql, tables) = c.q.render(ix).ok_or_else(|| "the tables the question needs are not connected by any key".to_string())?;
    let confidence = if unknown.is_empty() { 0.8 } else { 0.5 };
    Ok((sql, tables, confidence, c.notes.join("; ")))
}

/// Content words linked to nothing and unknown to every name and description.
fn unknown_words(tokens: &[Token], mentions: &[Mention], ix: &Index) -> Vec<String> {
    let covered = |i: usize| mentions.iter().any(|m| m.start <= i && i < m.end);
    tokens
        .iter()
        .enumerate()
        .filter(|(i, t)| t.kind == Kind::Word && !covered(*i) && !is_function_word(t) && t.lower.len() > 2)
        .filter(|(_, t)| !ix.known.contains(&t.stem) && !super::vocab::COMMON.contains(&t.stem.as_str()) && !ix.known_prefix(&t.stem))
        .map(|(_, t)| t.lower.clone())
        .collect()
}

/// The table the question is about: its first table mention, else the table most of its column
/// and value mentions can come from ("account balance by market segment" → customer).
fn subject(mentions: &[Mention], ix: &Index) -> Option<usize> {
    let first_table = mentions.iter().find_map(|m| match m.best() {
        Target::Table(t) => Some(*t),
        _ => None,
    });
    if first_table.is_some() {
        return first_table;
    }
    let table_of = |t: &Target| match t {
        Target::Table(t) | Target::Column(t, _) | Target::Value(t, _, _) => Some(*t),
        Target::Measure(mi) => Some(ix.measures[*mi].table),
        Target::Literal(_) => None,
    };
    let mut votes = vec![0usize; ix.tables.len()];
    for m in mentions {
        let top = m.cands[0].1;
        let mut seen = vec![];
        for (t, s) in &m.cands {
            if let Some(t) = table_of(t).filter(|t| *s >= top - 0.35 && !seen.contains(t)) {
                seen.push(t);
                votes[t] += 1;
            }
        }
    }
    let first = mentions.iter().find_map(|m| table_of(m.best()))?;
    let best = votes.iter().copied().max().unwrap_or(0);
    if votes[first] == best {
        return Some(first);
    }
    votes.iter().position(|v| *v == best)
}

impl Ctx<'_> {
    pub fn word(&self, i: usize) -> &str {
        self.tokens.get(i).map(|t| t.lower.as_str()).unwrap_or("")
    }

    /// The target of mention `m`, preferring tables the query already uses.
    pub fn resolve(&self, m: usize) -> Target {
        let cands = &self.mentions[m].cands;
        let table_of = |t: &Target| match t {
            Target::Table(t) | Target::Column(t, _) | Target::Value(t, _, _) => Some(*t),
            Target::Measure(mi) => Some(self.ix.measures[*mi].table),
            Target::Literal(_) => None,
        };
        let top = cands[0].1;
        let mut near: Vec<&(Target, f32)> = cands.iter().filter(|(_, s)| *s >= top - 0.35).collect();
        // "from LAX to ORD": the value's column is the one named by the preposition before it.
        let start = self.mentions[m].start;
        let prep = if start > 0 { self.word(start - 1) } else { "" };
        if matches!(prep, "from" | "to") {
            let named: Vec<&(Target, f32)> = near
                .iter()
                .copied()
                .filter(|(t, _)| matches!(t, Target::Value(ti, ci, _) if self.ix.tables[*ti].columns[*ci].words.iter().any(|w| w == prep)))
                .collect();
            if !named.is_empty() {
                near = named;
            }
        }
        near.iter()
            .find(|(t, _)| table_of(t) == Some(self.q.root))
            .or_else(|| near.iter().find(|(t, _)| table_of(t).is_some_and(|x| self.q.tables.contains(&x))))
            .or_else(|| near.iter().find(|(t, _)| table_of(t).is_some_and(|x| self.mentioned.contains(&x))))
            .map(|(t, _)| t.clone())
            .unwrap_or_else(|| cands[0].0.clone())
    }

    /// The first mention starting at or after token `from`, skipping only filler words.
    pub fn next_mention(&self, from: usize, max_gap: usize) -> Option<usize> {
        let m = self.mentions.iter().position(|m| m.start >= from)?;
        let gap = (from..self.mentions[m].start).filter(|&i| !matches!(self.word(i), "the" | "of" | "a" | "an" | "all" | "different" | "distinct" | "unique")).count();
        (gap <= max_gap).then_some(m)
    }

    pub fn mention_at(&self, i: usize) -> Option<usize> {
        self.mentions.iter().position(|m| m.start <= i && i < m.end)
    }

    pub fn col(&mut self, t: usize, c: usize) -> String {
        self.q.use_table(t);
        let table = &self.ix.tables[t];
        column(&table.name, &table.columns[c].name)
    }

    /// The columns that identify a row of `t` for people: its name/title, then its key.
    pub fn entity_columns(&mut self, t: usize) -> Vec<String> {
        let table = &self.ix.tables[t];
        let mut cols: Vec<usize> = table.labels.clone();
        if let Some(k) = table.key {
            if !cols.contains(&k) {
                cols.push(k);
            }
        }
        if cols.is_empty() {
            cols.push(0);
        }
        cols.into_iter().map(|c| self.col(t, c)).collect()
    }

    /// Value, literal, comparison and year filters.
    fn filters(&mut self) {
        for m in 0..self.mentions.len() {
            let at = self.mentions[m].start;
            match self.resolve(m) {
                Target::Value(t, c, v) => {
                    let col = self.col(t, c);
                    let m_ = self.matching;
                    let (sql, eq) = if m_.contains {
                        (format!("{col} ILIKE {}", contains_pattern(&v)), None)
                    } else if m_.ilike {
                        (format!("{col} ILIKE {}", literal(&v.replace('%', "\\%").replace('_', "\\_"))), None)
                    } else {
                        (format!("{col} = {}", literal(&v)), Some(literal(&v)))
                    };
                    self.conds.push(Cond { at, col, sql, eq, show: false });
                    self.used[m] = true;
                }
                Target::Column(t, c) if self.ix.tables[t].columns[c].boolean => {
                    // "courses with exams", "without a final project".
                    let start = self.mentions[m].start;
                    let negated = (start.saturating_sub(3)..start).any(|i| matches!(self.word(i), "without" | "not" | "no" | "never"));
                    let col = self.col(t, c);
                    let sql = format!("{col} = {}", if negated { "false" } else { "true" });
                    self.conds.push(Cond { at, col, sql, eq: None, show: false });
                    self.used[m] = true;
                }
                Target::Literal(text) => {
                    if let Some((t, c)) = self.literal_column(m) {
                        let col = self.col(t, c);
                        let start = self.mentions[m].start;
                        let prefix = (start.saturating_sub(4)..start).any(|i| matches!(self.word(i), "start" | "starts" | "starting" | "begin" | "begins" | "beginning"));
                        let pattern = if prefix { literal(&format!("{}%", text.replace('%', "\\%").replace('_', "\\_"))) } else { contains_pattern(&text) };
                        let m_ = self.matching;
                        let sql = if m_.exact && !prefix {
                            format!("{col} = {}", literal(&text))
                        } else if m_.ilike && !m_.contains && !prefix {
                            format!("{col} ILIKE {}", literal(&text.replace('%', "\\%").replace('_', "\\_")))
                        } else {
                            format!("{col} ILIKE {pattern}")
                        };
                        self.conds.push(Cond { at, col, sql, eq: None, show: false });
                        self.used[m] = true;
                    }
                }
                _ => {}
            }
        }
        for i in 0..self.tokens.len() {
            let Some((op, len)) = cues::comparison(&self.tokens, i) else { continue };
            let Some(n) = self.tokens.get(i + len).and_then(Token::number) else { continue };
            if let Some((m, t, c)) = self.numeric_before(i) {
                let col = self.col(t, c);
                let sql = format!("{col} {op} {}", number(n));
                self.conds.push(Cond { at: i, col, sql, eq: None, show: true });
                self.used[m] = true;
            }
        }
        self.years();
    }

    /// The numeric column mentioned just before token `i` (within a few words).
    fn numeric_before(&self, i: usize) -> Option<(usize, usize, usize)> {
        for m in (0..self.mentions.len()).rev() {
            let mention = &self.mentions[m];
            if mention.end > i {
                continue;
            }
            if i - mention.end > 3 {
                return None;
            }
            if let Target::Column(t, c) = self.resolve(m) {
                if self.ix.tables[t].columns[c].numeric {
                    return Some((m, t, c));
                }
            }
            // "a rating above 4": look for a numeric candidate among the mention's alternatives.
            if let Some((Target::Column(t, c), _)) = mention.cands.iter().find(|(x, _)| matches!(x, Target::Column(t, c) if self.ix.tables[*t].columns[*c].numeric)) {
                return Some((m, *t, *c));
            }
        }
        None
    }

    /// The text column a literal filters: the name column of the table or column mentioned just before or after it.
    fn literal_column(&self, m: usize) -> Option<(usize, usize)> {
        let near = [m.checked_sub(1), Some(m + 1)];
        for n in near.into_iter().flatten() {
            let Some(other) = self.mentions.get(n) else { continue };
            let gap = if n < m { self.mentions[m].start - other.end } else { other.start - self.mentions[m].end };
            if gap > 2 {
                continue;
            }
            match self.resolve(n) {
                Target::Column(t, c) if self.ix.tables[t].columns[c].text => return Some((t, c)),
                Target::Table(t) => {
                    if let Some(&l) = self.ix.tables[t].labels.first() {
                        return Some((t, l));
                    }
                }
                _ => {}
            }
        }
        let root = &self.ix.tables[self.q.root];
        root.labels.first().map(|&l| (self.q.root, l))
    }

    /// "in 2021", "in the year 1995", "between 1995 and 1997", "after 2020", "before 2000".
    fn years(&mut self) {
        let mut i = 0;
        while i < self.tokens.len() {
            let Some(y) = self.tokens[i].year() else {
                i += 1;
                continue;
            };
            let prev = if i > 0 { self.word(i - 1).to_string() } else { String::new() };
            let prev2 = if i > 1 { self.word(i - 2).to_string() } else { String::new() };
            let mut cond: Option<(String, String)> = None;
            if prev == "between" || prev2 == "between" {
                if let Some(y2) = self.tokens.get(i + 2).and_then(Token::year) {
                    cond = Some((">= ".into(), format!("BETWEEN {y} AND {y2}")));
                    i += 2;
                }
            }
            let cond = cond.map(|(_, c)| c).unwrap_or_else(|| match prev.as_str() {
                "after" | "since" => if prev == "since" { format!(">= {y}") } else { format!("> {y}") },
                "before" => format!("< {y}"),
                _ => format!("= {y}"),
            });
            if let Some(expr) = self.year_expr() {
                self.conds.push(Cond { at: i, col: expr.clone(), sql: format!("{expr} {cond}"), eq: None, show: false });
                if let Some(m) = self.mention_at(i - 1).filter(|&m| matches!(self.resolve(m), Target::Column(..))) {
                    self.used[m] = true;
                }
            }
            i += 1;
        }
        // "year" mentioned only as the filter's column is used up.
        for m in 0..self.mentions.len() {
            if let Target::Column(t, c) = self.resolve(m) {
                let next = self.tokens.get(self.mentions[m].end).and_then(Token::year);
                if next.is_some() && self.ix.tables[t].columns[c].words.iter().any(|w| w == "year") {
                    self.used[m] = true;
                }
            }
        }
    }

    /// A year-valued expression over the query's tables: a `year` column, else EXTRACT from a date.
    fn year_expr(&mut self) -> Option<String> {
        let order: Vec<usize> = self.q.tables.clone();
        let all: Vec<usize> = order.iter().copied().chain(0..self.ix.tables.len()).collect();
        for &t in &all {
            if let Some(c) = self.ix.tables[t].columns.iter().position(|c| c.numeric && c.words.iter().any(|w| w == "year")) {
                return Some(self.col(t, c));
            }
            if let Some(c) = self.ix.tables[t].columns.iter().position(|c| c.temporal) {
                let col = self.col(t, c);
                return Some(format!("EXTRACT(YEAR FROM {col})"));
            }
        }
        None
    }
}

impl Ctx<'_> {
    /// Decide the query's shape: grouped aggregate, ranking, plain aggregate or listing.
    fn shape(&mut self) -> Result<(), String> {
        self.build()
    }
}
