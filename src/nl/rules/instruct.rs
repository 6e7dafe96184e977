//! Instructions that come with a question ("Always filter names using ILIKE", "Match strings
//! case-insensitively", "To get X you need to join A and B"): told apart from the question so
//! their words neither link nor count as unknown, and read for how text is to be matched.

/// How text filters are written.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Matching {
    /// Case-insensitively (ILIKE).
    pub ilike: bool,
    /// Anywhere in the text (`%value%`).
    pub contains: bool,
    /// The text exactly (`=`), even for a name lalo would otherwise search for.
    pub exact: bool,
}

/// Openers of a sentence that tells how to answer rather than what to answer.
const OPENERS: &[&str] = &["always", "use", "filter", "match", "to", "note", "make", "assume", "when", "if", "do", "don't", "never", "remember", "please", "treat", "consider"];

/// Split `question` into the question and its instructions: from the first sentence after the
/// first whose first word is an opener above, or which names a way of matching (ILIKE, LIKE,
/// case-insensitive), every sentence is an instruction.
pub fn split(question: &str) -> (String, Vec<String>) {
    let mut sentences = vec![];
    let mut cur = String::new();
    let chars: Vec<char> = question.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        cur.push(c);
        let end = matches!(c, '?' | '!' | '\n') || (c == '.' && chars.get(i + 1).is_none_or(|n| n.is_whitespace()));
        if end && !cur.trim().is_empty() {
            sentences.push(std::mem::take(&mut cur));
        }
    }
    if !cur.trim().is_empty() {
        sentences.push(cur);
    }
    let mut asked = String::new();
    let mut told = vec![];
    for (i, s) in sentences.into_iter().enumerate() {
        let lower = s.trim().to_lowercase();
        let first = lower.split(|c: char| !c.is_alphanumeric() && c != '\'').next().unwrap_or("");
        let sql_words = lower.contains("ilike") || lower.contains(" like ") || lower.contains("case-insensitiv") || lower.contains("case insensitiv");
        // Instructions follow the question: from the first one on, every sentence is one.
        if !told.is_empty() || i > 0 && (OPENERS.contains(&first) || sql_words) {
            told.push(s.trim().to_string());
        } else {
            asked.push_str(&s);
        }
    }
    (asked.trim().to_string(), told)
}

/// How the instructions say text is to be matched.
pub fn matching(instructions: &[String]) -> Matching {
    let mut m = Matching::default();
    for i in instructions {
        let l = i.to_lowercase();
        if l.contains("ilike") || l.contains("case-insensitiv") || l.contains("case insensitiv") || l.contains("ignoring case") {
            m.ilike = true;
        }
        if l.contains("wildcard") || l.contains("percent") || l.contains('%') || l.contains("partial") || l.contains("substring") {
            m.contains = true;
        }
        if l.contains("exact match") || l.contains("exactly") || l.contains("exact string") {
            m.exact = true;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_are_told_apart_and_read() {
        let (q, i) = split("Which authors belong to the same domain as Martin? Always filter names using ILIKE with percent sign wildcards");
        assert_eq!(q, "Which authors belong to the same domain as Martin?");
        assert_eq!(matching(&i), Matching { ilike: true, contains: true, exact: false });
        let (q, i) = split("List the courses. Order them by name. Match strings case-insensitively.");
        assert_eq!(q, "List the courses. Order them by name.", "a second sentence of the question stays");
        assert_eq!(matching(&i), Matching { ilike: true, contains: false, exact: false });
        let (_, i) = split("How many papers are in \"Nature\"? Always filter names using an exact match");
        assert_eq!(matching(&i), Matching { ilike: false, contains: false, exact: true });
        assert_eq!(split("How many orders in 1995").1, Vec::<String>::new());
        let (q, i) = split("Which papers? To get them, join a and b first. Then you must join c.");
        assert_eq!((q.as_str(), i.len()), ("Which papers?", 2), "{i:?}");
    }
}
