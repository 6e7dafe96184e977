//! Statement shapes: a token-level key for simple-protocol statements that repeat with other
//! literals, so a repeat finds its cached direct plan without being parsed again.
//!
//! The direct lane keys its plans by the parsed statement with comparison literals lifted into
//! parameters (`passthrough::parameterize`). Parsing and printing a statement to get that key
//! costs more than running a point lookup upstream, so the first time a statement takes the
//! direct lane lalo also remembers its *shape*: its tokens with every literal replaced by a slot,
//! which slots were lifted (and in which parameter order) and the text of the others. A later
//! statement with the same shape and the same unlifted literals is the same parsed statement with
//! other parameter values. A shape whose lifted values cannot be told apart by value (the same
//! value twice) is not remembered, so the slot order never rests on a guess.

use datafusion::common::ScalarValue;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

/// A statement's shape and its literals, in text order.
#[derive(Debug, PartialEq)]
pub struct Shaped {
    pub key: String,
    pub literals: Vec<Literal>,
}

/// A literal token.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Number(String),
    Text(String),
}

impl Literal {
    /// The value `parameterize` lifts this literal to, if it lifts it.
    fn value(&self) -> Option<ScalarValue> {
        match self {
            Literal::Number(n) => n.parse::<i64>().ok().map(|i| ScalarValue::Int64(Some(i))),
            Literal::Text(s) => Some(ScalarValue::Utf8(Some(s.clone()))),
        }
    }
}

/// What a remembered shape stands for.
#[derive(Debug)]
pub struct Shape {
    /// The direct lane's key (the lifted statement's text).
    pub direct_key: String,
    /// For each parameter, `$1` first, the index of the literal it comes from.
    pub lifted: Vec<usize>,
    /// The literals that stay in the statement, which a repeat must spell the same.
    pub fixed: Vec<(usize, Literal)>,
    /// PostgreSQL names of the result columns.
    pub names: Option<Vec<Option<String>>>,
}

/// Shapes of a session's statements, per cache stamp.
pub type ShapeCache = crate::plan_cache::StampedCache<Shape>;

/// Tokenize `text` into its shape; `None` when it does not tokenize or holds a placeholder.
pub fn shape(text: &str) -> Option<Shaped> {
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, text).tokenize().ok()?;
    let mut key = String::with_capacity(text.len());
    let mut literals = Vec::new();
    for t in tokens {
        match t {
            Token::Whitespace(Whitespace::Space | Whitespace::Newline | Whitespace::Tab) => continue,
            // Comments are not part of the statement; they still make their own shape (the
            // audit record keeps the text as sent).
            Token::Whitespace(w) => key.push_str(&w.to_string()),
            Token::Number(n, _) => {
                key.push_str("\u{1}n");
                literals.push(Literal::Number(n));
            }
            Token::SingleQuotedString(s) => {
                key.push_str("\u{1}s");
                literals.push(Literal::Text(s));
            }
            Token::Placeholder(_) => return None,
            // Every other token is written unambiguously (Rust's escaping): printed as SQL,
            // `"x"" ""y"` (one identifier) and `"x" "y"` (two) would give the same key.
            Token::Word(w) if w.quote_style.is_none() => key.push_str(&w.value),
            other => {
                use std::fmt::Write;
                let _ = write!(key, "{other:?}");
            }
        }
        key.push(' ');
    }
    Some(Shaped { key, literals })
}

/// The shape to remember for a statement that took the direct lane with `values` lifted, or
/// `None` when the lifted values cannot be matched to literals one to one.
pub fn learn(shaped: &Shaped, values: &[ScalarValue], direct_key: &str, names: Option<Vec<Option<String>>>) -> Option<Shape> {
    let as_values: Vec<Option<ScalarValue>> = shaped.literals.iter().map(Literal::value).collect();
    let mut lifted = Vec::with_capacity(values.len());
    for v in values {
        let mut hits = as_values.iter().enumerate().filter(|(_, x)| x.as_ref() == Some(v));
        let (i, _) = hits.next()?;
        if hits.next().is_some() {
            return None;
        }
        lifted.push(i);
    }
    let fixed = (0..shaped.literals.len())
        .filter(|i| !lifted.contains(i))
        .map(|i| (i, shaped.literals[i].clone()))
        .collect();
    Some(Shape { direct_key: direct_key.to_string(), lifted, fixed, names })
}

/// The parameter values of a statement of `shape`, or `None` when its unlifted literals differ.
pub fn bind(shape: &Shape, shaped: &Shaped) -> Option<Vec<ScalarValue>> {
    for (i, lit) in &shape.fixed {
        if shaped.literals.get(*i) != Some(lit) {
            return None;
        }
    }
    shape.lifted.iter().map(|i| shaped.literals.get(*i).and_then(Literal::value)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lifted(sql: &str) -> (String, Vec<ScalarValue>) {
        let stmt = datafusion::sql::sqlparser::parser::Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0);
        let (l, v) = crate::passthrough::parameterize(&stmt);
        (l.to_string(), v)
    }

    #[test]
    fn a_repeat_with_other_values_binds_them() {
        let first = "SELECT abalance FROM pgbench_accounts WHERE aid = 42 AND bid = 'x';";
        let (key, values) = lifted(first);
        let learned = learn(&shape_of(first), &values, &key, None).unwrap();
        let again = shape_of("SELECT abalance FROM pgbench_accounts\n  WHERE aid =  7 AND bid = 'y';");
        assert_eq!(shape_of(first).key, again.key);
        assert_eq!(bind(&learned, &again), Some(vec![ScalarValue::Int64(Some(7)), ScalarValue::Utf8(Some("y".into()))]));
    }

    fn shape_of(s: &str) -> Shaped {
        shape(s).unwrap()
    }

    #[test]
    fn unlifted_literals_must_match() {
        let first = "SELECT 1, a FROM t WHERE b = 5 LIMIT 10";
        let (key, values) = lifted(first);
        let shape = learn(&shape_of(first), &values, &key, None).unwrap();
        assert_eq!(bind(&shape, &shape_of("SELECT 1, a FROM t WHERE b = 6 LIMIT 10")), Some(vec![ScalarValue::Int64(Some(6))]));
        assert_eq!(bind(&shape, &shape_of("SELECT 2, a FROM t WHERE b = 6 LIMIT 10")), None);
        assert_eq!(bind(&shape, &shape_of("SELECT 1, a FROM t WHERE b = 6 LIMIT 11")), None);
    }

    #[test]
    fn ambiguous_values_are_not_learned() {
        let first = "SELECT a FROM t WHERE b = 5 AND c > 5";
        let (key, values) = lifted(first);
        assert!(learn(&shape_of(first), &values, &key, None).is_none());
        // A literal spelled like a lifted one but kept in place is ambiguous too.
        let first = "SELECT 5, a FROM t WHERE b = 5";
        let (key, values) = lifted(first);
        assert!(learn(&shape_of(first), &values, &key, None).is_none());
    }

    #[test]
    fn identifiers_and_keywords_stay_in_the_key() {
        assert_ne!(shape_of("SELECT a FROM t WHERE b = 1").key, shape_of("SELECT a FROM u WHERE b = 1").key);
        assert_ne!(shape_of("SELECT a FROM t WHERE b = 1").key, shape_of("SELECT a FROM t WHERE b < 1").key);
        assert_ne!(shape_of("SELECT a FROM t WHERE b = 1").key, shape_of("SELECT \"A\" FROM t WHERE b = 1").key);
        assert!(shape("SELECT a FROM t WHERE b = $1").is_none());
        // One quoted identifier that spells two when printed, and strings that do the same.
        assert_ne!(shape_of("SELECT \"x\" \"y\" FROM t").key, shape_of("SELECT \"x\"\" \"\"y\" FROM t").key);
        assert_ne!(shape_of("SELECT E'a' || E'b'").key, shape_of("SELECT E'a\\' || E\\'b'").key);
        assert_ne!(shape_of("SELECT $$a$$, $$b$$").key, shape_of("SELECT $x$a$$, $$b$x$").key);
    }
}
