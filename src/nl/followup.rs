//! Follow-up questions: a question that refers to the one before it in the same session
//! ("and in 1996?", "only for Germany", "now per month", "show more columns").
//!
//! The session keeps its last answered turn (question, SQL, tables). A question that opens with
//! a continuation ("and", "what about", "only", "now", ...) or is too short to stand alone is
//! read against it: a new year replaces the old one, a new name replaces the one name the last
//! question had, anything else (a grouping, a condition) is added to it. The drafter then drafts
//! the combined question; "more columns" widens the last SQL's select list. Either way the SQL
//! is validated and governed on its own, like any draft: a follow-up carries words, never
//! permissions. `RESET lalo.conversation` (or a new session) forgets the last turn.

use datafusion::sql::sqlparser::ast::{SelectItem, SetExpr, Statement};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::nl::rules::text::{tokenize, Kind, Token};

/// One answered question of a session.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Turn {
    pub database: String,
    /// The question as it was drafted (a follow-up's combined reading).
    pub question: String,
    pub sql: String,
}

/// How a question reads against the last turn.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// It stands alone.
    Fresh,
    /// The combined question to draft; `opener`: the question said it continues ("and ...").
    /// Without one it was only short, and may still stand alone (the drafter tries that first).
    Builds { question: String, opener: bool },
    /// The last SQL with every column of its tables.
    MoreColumns(String),
}

/// Words that open a question continuing the last one.
const OPENERS: &[&str] = &["and", "what about", "how about", "now", "only", "just", "also", "but", "then", "instead", "same", "again"];
/// Prepositions that lead what a follow-up adds.
const PREPOSITIONS: &[&str] = &["in", "for", "of", "at", "from", "with", "during", "on"];
/// Words that carry no content of their own in a follow-up's remainder.
const FILLER: &[&str] = &["and", "what", "about", "how", "now", "only", "just", "also", "but", "then", "instead", "same", "again", "please", "the", "for", "in", "of", "?"];

fn starts_with_word(text: &str, phrase: &str) -> bool {
    text.strip_prefix(phrase).is_some_and(|rest| rest.is_empty() || rest.starts_with(|c: char| !c.is_alphanumeric()))
}

/// Read `question` against the session's last turn in `database`.
pub fn read(last: Option<&Turn>, database: &str, question: &str) -> Reading {
    let Some(last) = last.filter(|t| t.database == database) else { return Reading::Fresh };
    let text = question.trim().to_lowercase();
    let tokens = tokenize(question);
    let opener = OPENERS.iter().find(|o| starts_with_word(&text, o));
    let words = tokens.iter().filter(|t| t.kind == Kind::Word).count();
    if opener.is_none() && tokens.len() > 4 {
        return Reading::Fresh;
    }
    if words > 0 && (text.contains("more columns") || text.contains("all columns") || text.contains("more details")) {
        return Reading::MoreColumns(last.sql.clone());
    }
    // The follow-up without its opener, and the preposition that led what it adds ("in the").
    let skipped = tokens.iter().take_while(|t| t.kind == Kind::Word && FILLER.contains(&t.lower.as_str())).count();
    let rest: Vec<&Token> = tokens.iter().skip(skipped).collect();
    if rest.is_empty() {
        return Reading::Fresh;
    }
    let lead: Vec<&str> = {
        let run = &tokens[..skipped];
        let from = run.iter().position(|t| PREPOSITIONS.contains(&t.lower.as_str())).unwrap_or(run.len());
        run[from..].iter().map(|t| t.lower.as_str()).filter(|w| *w != "?").collect()
    };
    // The last question's own words; its instructions (if any) stay at the end.
    let (last_question, instructions) = crate::nl::rules::instruct::split(&last.question);
    let mut base = last_question.trim().trim_end_matches(['?', '.', '!']).to_string();
    let mut added: Vec<String> = vec![];
    let year = rest.iter().find_map(|t| t.year());
    let names = names(&rest);
    let old_names = names_in(&last_question);
    let mut consumed = vec![false; rest.len()];
    if let Some(y) = year {
        let old_years: Vec<String> = tokenize(&base).iter().filter(|t| t.year().is_some()).map(|t| t.raw.clone()).collect();
        if old_years.is_empty() {
            added.push(format!("in {y}"));
        } else {
            for o in old_years {
                base = replace_word(&base, &o, &y.to_string());
            }
        }
        for (i, t) in rest.iter().enumerate() {
            if t.year() == Some(y) {
                consumed[i] = true;
            }
        }
    }
    if let (Some((span, text)), [old]) = (names.first(), old_names.as_slice()) {
        base = replace_word(&base, old, text);
        for i in span.clone() {
            consumed[i] = true;
        }
    }
    let remainder: Vec<String> = rest
        .iter()
        .zip(&consumed)
        .filter(|(t, c)| !**c && !(t.kind == Kind::Word && FILLER.contains(&t.lower.as_str())))
        .map(|(t, _)| if t.kind == Kind::Quoted { format!("\"{}\"", t.raw) } else { t.raw.clone() })
        .collect();
    if !remainder.is_empty() {
        // Keep the preposition that led the remainder ("per month", "in the BUILDING segment").
        let joined = remainder.join(" ");
        if lead.is_empty() {
            added.push(joined);
        } else {
            added.push(format!("{} {joined}", lead.join(" ")));
        }
    }
    let mut combined = std::iter::once(base).chain(added).collect::<Vec<_>>().join(" ");
    for i in instructions {
        combined.push('\n');
        combined.push_str(&i);
    }
    Reading::Builds { question: combined, opener: opener.is_some() }
}

/// Quoted phrases and runs of capitalised words (names) with their token spans.
fn names(tokens: &[&Token]) -> Vec<(std::ops::Range<usize>, String)> {
    let mut out = vec![];
    let mut i = 0;
    while i < tokens.len() {
        let t = tokens[i];
        if t.kind == Kind::Quoted {
            out.push((i..i + 1, format!("\"{}\"", t.raw)));
            i += 1;
            continue;
        }
        if t.kind == Kind::Word && t.raw.chars().next().is_some_and(char::is_uppercase) {
            let start = i;
            while i < tokens.len() && tokens[i].kind == Kind::Word && tokens[i].raw.chars().next().is_some_and(char::is_uppercase) {
                i += 1;
            }
            out.push((start..i, tokens[start..i].iter().map(|t| t.raw.as_str()).collect::<Vec<_>>().join(" ")));
            continue;
        }
        i += 1;
    }
    out
}

/// The names a question has (its first word aside: a capital there is only the sentence's).
fn names_in(question: &str) -> Vec<String> {
    let tokens = tokenize(question);
    let refs: Vec<&Token> = tokens.iter().skip(1).collect();
    names(&refs).into_iter().map(|(_, n)| n).collect()
}

/// `text` with the whole-word occurrences of `old` replaced (quotes around `old` included).
fn replace_word(text: &str, old: &str, new: &str) -> String {
    for quoted in [format!("\"{old}\""), format!("'{old}'")] {
        if text.contains(&quoted) {
            return text.replace(&quoted, new);
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(old) {
        let before = rest[..at].chars().last();
        let after = rest[at + old.len()..].chars().next();
        let whole = !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric);
        out.push_str(&rest[..at]);
        out.push_str(if whole { new } else { old });
        rest = &rest[at + old.len()..];
    }
    out.push_str(rest);
    out
}

/// The last SQL listing every column `readable` gives for each of its tables (`schema.table`
/// → column names: what the caller may read), when it lists rows (no grouping, no aggregate,
/// no DISTINCT): "show more columns" of the same rows. `None` otherwise.
pub fn more_columns(sql: &str, readable: impl Fn(&str) -> Option<Vec<String>>) -> Option<String> {
    use datafusion::sql::sqlparser::ast::{Expr, Ident, TableFactor};
    let mut stmts = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
    let Some(Statement::Query(q)) = stmts.first_mut() else { return None };
    let SetExpr::Select(select) = q.body.as_mut() else { return None };
    let grouped = !matches!(&select.group_by, datafusion::sql::sqlparser::ast::GroupByExpr::Expressions(e, _) if e.is_empty());
    let text = sql.to_ascii_uppercase();
    let aggregated = ["COUNT(", "SUM(", "AVG(", "MIN(", "MAX("].iter().any(|f| text.contains(f));
    if grouped || aggregated || select.distinct.is_some() {
        return None;
    }
    let mut items = vec![];
    for twj in &select.from {
        for tf in std::iter::once(&twj.relation).chain(twj.joins.iter().map(|j| &j.relation)) {
            let TableFactor::Table { name, alias, .. } = tf else { return None };
            let qualified = name.0.iter().map(|p| p.as_ident().map(|i| i.value.clone()).unwrap_or_default()).collect::<Vec<_>>().join(".");
            let qualifier = alias.as_ref().map(|a| a.name.clone()).or_else(|| name.0.last().and_then(|p| p.as_ident().cloned()))?;
            for c in readable(&qualified)? {
                items.push(SelectItem::UnnamedExpr(Expr::CompoundIdentifier(vec![qualifier.clone(), Ident::with_quote('"', c)])));
            }
        }
    }
    if items.is_empty() {
        return None;
    }
    select.projection = items;
    Some(stmts[0].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(q: &str) -> Turn {
        Turn { database: "db".into(), question: q.into(), sql: "SELECT c.name FROM s.c AS c WHERE c.y = 1995".into() }
    }

    fn built(last: &str, q: &str) -> String {
        match read(Some(&turn(last)), "db", q) {
            Reading::Builds { question, .. } => question,
            other => panic!("{q}: {other:?}"),
        }
    }

    #[test]
    fn follow_ups_replace_or_add_to_the_last_question() {
        assert_eq!(built("How many orders were placed in 1995?", "and in 1996?"), "How many orders were placed in 1996");
        assert_eq!(built("How many customers are in France?", "only for Germany"), "How many customers are in Germany");
        assert_eq!(built("How many orders are there?", "now per month"), "How many orders are there per month");
        assert_eq!(built("How many orders are there?", "what about 1997?"), "How many orders are there in 1997");
        assert_eq!(built("Which papers cite \"Deep Learning\"?", "and \"Graph Theory\"?"), "Which papers cite \"Graph Theory\"");
        // Instructions that came with the last question stay after the combined one.
        assert_eq!(
            built("How many customers are there? Always filter names using ILIKE", "only in the BUILDING segment"),
            "How many customers are there in the BUILDING segment\nAlways filter names using ILIKE"
        );
    }

    #[test]
    fn questions_that_stand_alone_are_fresh() {
        let last = turn("How many orders were placed in 1995?");
        assert_eq!(read(Some(&last), "db", "How many customers are in the BUILDING segment?"), Reading::Fresh);
        assert_eq!(read(Some(&last), "other", "and in 1996?"), Reading::Fresh, "another database");
        assert_eq!(read(None, "db", "and in 1996?"), Reading::Fresh);
    }

    #[test]
    fn more_columns_widen_a_listing_only() {
        assert_eq!(read(Some(&turn("list customers")), "db", "show more columns"), Reading::MoreColumns(turn("").sql));
        let readable = |t: &str| (t == "s.c").then(|| vec!["name".to_string(), "y".to_string()]);
        assert_eq!(
            more_columns("SELECT c.name FROM s.c AS c WHERE c.y = 1995 LIMIT 5", readable).as_deref(),
            Some("SELECT c.\"name\", c.\"y\" FROM s.c AS c WHERE c.y = 1995 LIMIT 5")
        );
        assert_eq!(more_columns("SELECT c.k, COUNT(*) FROM s.c AS c GROUP BY c.k", readable), None);
    }
}
