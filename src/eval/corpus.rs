//! The defog question files and the corpus' gold rules: CSV reading, gold expansion (`;`
//! alternatives times non-empty subsets of `{a, b}` columns), and which questions ask for order.

use std::path::Path;

use crate::error::LaloError;

/// One question of a corpus file.
#[derive(Debug, Clone)]
pub struct Question {
    pub question: String,
    /// Gold SQL (empty for unanswerable questions).
    pub gold: String,
    pub db: String,
    pub category: String,
    pub answerable: bool,
    /// How to answer, given with the question ("Always filter names using ILIKE"); may be empty.
    pub instructions: String,
}

impl Question {
    /// What a user types: the question, then its instructions on a line of their own.
    pub fn asked(&self) -> String {
        match self.instructions.trim() {
            "" => self.question.clone(),
            i => format!("{}\n{i}", self.question.trim()),
        }
    }
}

/// Read a questions CSV (`question, query, db_name, query_category, ...`, header by name).
pub fn read_questions(path: &Path, answerable: bool) -> Result<Vec<Question>, LaloError> {
    let text = std::fs::read_to_string(path).map_err(|e| LaloError::Config(format!("{}: {e}", path.display())))?;
    let rows = parse_csv(&text);
    let Some(header) = rows.first() else { return Ok(vec![]) };
    let col = |name: &str| header.iter().position(|h| h.trim() == name);
    let (Some(q), Some(db)) = (col("question"), col("db_name")) else {
        return Err(LaloError::Config(format!("{}: needs columns question and db_name", path.display())));
    };
    let (gold, cat, told) = (col("query"), col("query_category"), col("instructions"));
    let cell = |r: &[String], i: Option<usize>| i.and_then(|i| r.get(i)).cloned().unwrap_or_default();
    Ok(rows
        .iter()
        .skip(1)
        .filter(|r| r.len() > q.max(db))
        .map(|r| Question {
            question: r[q].clone(),
            gold: cell(r, gold),
            db: r[db].clone(),
            category: if answerable { cell(r, cat) } else { "unanswerable".into() },
            answerable,
            instructions: cell(r, told),
        })
        .collect())
}

/// A small RFC 4180 reader (quoted fields, doubled quotes, newlines inside quotes).
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, '\r') => {}
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// Every query a gold field stands for: `;`-separated queries times the non-empty subsets of
/// the first braced column list (`GROUP BY {}` takes the chosen columns).
pub fn expand_gold(gold: &str) -> Vec<String> {
    let mut out = vec![];
    for q in gold.split(';').map(str::trim).filter(|q| !q.is_empty()) {
        let Some(alt) = first_alternative(q) else {
            out.push(q.to_string());
            continue;
        };
        let cols: Vec<&str> = alt.split(',').map(str::trim).collect();
        let braced = format!("{{{alt}}}");
        // Subsets in order of size, as defog's harness does; capped so a long list stays cheap.
        for mask in subsets(cols.len()).into_iter().take(64) {
            let chosen: Vec<&str> = cols.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, c)| *c).collect();
            let text = chosen.join(", ");
            out.push(q.replace(&braced, &text).replace("{}", &text));
        }
    }
    out
}

/// The text inside the first non-empty `{...}`.
fn first_alternative(q: &str) -> Option<String> {
    let mut rest = q;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}')? + open;
        let inner = &rest[open + 1..close];
        if !inner.trim().is_empty() {
            return Some(inner.to_string());
        }
        rest = &rest[close + 1..];
    }
    None
}

/// Bit masks of the non-empty subsets of `n` items, smallest subsets first.
fn subsets(n: usize) -> Vec<u32> {
    let n = n.min(16);
    let mut all: Vec<u32> = (1..(1u32 << n)).collect();
    all.sort_by_key(|m| (m.count_ones(), *m));
    all
}

/// The corpus rule: rows are compared in order when the question asks for one.
pub fn asks_order(question: &str) -> bool {
    const WORDS: &[&str] =
        &["order", "ordered", "sort", "sorted", "arrange", "arranged", "rank", "ranked", "top", "highest", "lowest"];
    question.to_lowercase().split(|c: char| !c.is_alphanumeric()).any(|w| WORDS.contains(&w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_column_alternatives_and_alternatives() {
        let g = expand_gold("SELECT {a.x, a.y}, count(*) FROM a GROUP BY {};SELECT 1");
        assert_eq!(
            g,
            vec![
                "SELECT a.x, count(*) FROM a GROUP BY a.x",
                "SELECT a.y, count(*) FROM a GROUP BY a.y",
                "SELECT a.x, a.y, count(*) FROM a GROUP BY a.x, a.y",
                "SELECT 1"
            ]
        );
    }

    #[test]
    fn reads_quoted_csv_and_order_words() {
        let rows = parse_csv("question,db_name\n\"a, \"\"b\"\"\",x\n");
        assert_eq!(rows[1], vec!["a, \"b\"", "x"]);
        assert!(asks_order("Which are the top 3?"));
        assert!(!asks_order("How many orders?"));
    }
}
