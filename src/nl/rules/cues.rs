//! Intent cues: the words that ask for a count, an aggregate, a grouping, an order, a limit or a
//! comparison, found by position so the planner can pair each with the schema mention it governs.

use super::text::Token;

/// An aggregate function a question asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agg {
    Count,
    Sum,
    Avg,
    Max,
    Min,
}

impl Agg {
    pub fn sql(self) -> &'static str {
        match self {
            Agg::Count => "COUNT",
            Agg::Sum => "SUM",
            Agg::Avg => "AVG",
            Agg::Max => "MAX",
            Agg::Min => "MIN",
        }
    }
}

/// An aggregate cue; its argument is looked for from token `from` on.
#[derive(Debug, Clone, Copy)]
pub struct AggCue {
    pub agg: Agg,
    pub from: usize,
}

/// Aggregate cues in order of appearance.
pub fn aggregates(tokens: &[Token]) -> Vec<AggCue> {
    let mut out = vec![];
    let w = |i: usize| tokens.get(i).map(|t| t.lower.as_str()).unwrap_or("");
    let mut i = 0;
    while i < tokens.len() {
        let cue = match w(i) {
            "how" if w(i + 1) == "many" => Some((Agg::Count, i + 2)),
            "number" | "count" | "amount" if w(i + 1) == "of" && superlative(w(i.wrapping_sub(1))).is_none() => Some((Agg::Count, i + 2)),
            "count" | "counts" => Some((Agg::Count, i + 1)),
            "average" | "avg" | "mean" => Some((Agg::Avg, i + 1)),
            "total" | "sum" | "combined" | "overall" if w(i + 1) == "number" && w(i + 2) == "of" => Some((Agg::Count, i + 3)),
            "total" | "sum" | "combined" => Some((Agg::Sum, i + 1)),
            "maximum" | "max" => Some((Agg::Max, i + 1)),
            "minimum" | "min" => Some((Agg::Min, i + 1)),
            _ => None,
        };
        if let Some((agg, from)) = cue {
            out.push(AggCue { agg, from });
            i = from;
        } else {
            i += 1;
        }
    }
    out
}

/// Words ranking rows: `Some(true)` for descending (highest), `Some(false)` for ascending.
pub fn superlative(word: &str) -> Option<bool> {
    match word {
        "highest" | "most" | "largest" | "biggest" | "greatest" | "longest" | "top" | "best" | "latest" | "newest" | "maximum"
        | "max" | "tallest" | "busiest" | "richest" | "heaviest" | "fastest" | "oldest" => Some(true),
        "lowest" | "least" | "fewest" | "smallest" | "shortest" | "bottom" | "worst" | "earliest" | "minimum" | "min"
        | "cheapest" | "youngest" | "slowest" => Some(false),
        _ => None,
    }
}

/// Direction words of an explicit ordering ("descending", "from highest to lowest", "alphabetically").
pub fn order_direction(tokens: &[Token]) -> Option<bool> {
    let text: Vec<&str> = tokens.iter().map(|t| t.lower.as_str()).collect();
    let text = format!(" {} ", text.join(" "));
    let desc = [" desc ", " descending ", " highest to lowest ", " largest to smallest ", " most to least ", " longest to shortest ", " highest first ", " best ratings to ", " high to low ", " decreasing "];
    let asc = [" asc ", " ascending ", " lowest to highest ", " smallest to largest ", " least to most ", " shortest to longest ", " alphabetically ", " alphabetical ", " low to high ", " increasing ", " earliest to latest ", " oldest to newest "];
    if desc.iter().any(|d| text.contains(d)) {
        Some(true)
    } else if asc.iter().any(|a| text.contains(a)) {
        Some(false)
    } else {
        None
    }
}

/// A numeric comparison operator starting at token `i`, with the number of tokens it spans.
pub fn comparison(tokens: &[Token], i: usize) -> Option<(&'static str, usize)> {
    let w = |k: usize| tokens.get(i + k).map(|t| t.lower.as_str()).unwrap_or("");
    Some(match (w(0), w(1), w(2)) {
        (">", _, _) => (">", 1),
        (">=", _, _) => (">=", 1),
        ("<", _, _) => ("<", 1),
        ("<=", _, _) => ("<=", 1),
        ("=", _, _) => ("=", 1),
        ("at", "least", _) => (">=", 2),
        ("at", "most", _) => ("<=", 2),
        ("no", "more", "than") => ("<=", 3),
        ("no", "less", "than") => (">=", 3),
        ("greater" | "more" | "higher" | "larger" | "bigger" | "longer", "than", _) => (">", 2),
        ("greater" | "more" | "higher", "or", "equal") => (">=", 5),
        ("less" | "fewer" | "lower" | "smaller" | "shorter", "than", _) => ("<", 2),
        ("above" | "over" | "exceeding" | "exceeds" | "exceed", _, _) => (">", 1),
        ("below" | "under", _, _) => ("<", 1),
        ("equal" | "equals", "to", _) => ("=", 2),
        ("exactly", _, _) => ("=", 1),
        _ => return None,
    })
}

/// "top 5", "first 3", "5 highest": the row limit a question asks for.
pub fn limit(tokens: &[Token]) -> Option<u64> {
    for (i, t) in tokens.iter().enumerate() {
        if matches!(t.lower.as_str(), "top" | "first" | "bottom") {
            if let Some(n) = tokens.get(i + 1).and_then(Token::number) {
                return (n >= 1.0 && n.fract() == 0.0).then_some(n as u64);
            }
        }
        if let Some(n) = t.number() {
            if t.year().is_none() && tokens.get(i + 1).is_some_and(|x| superlative(&x.lower).is_some()) && n.fract() == 0.0 && n >= 1.0 {
                return Some(n as u64);
            }
        }
    }
    None
}
