//! `lalo pii scan`'s output: the classified columns as a table, and the `[[mask]]` rules a DBA
//! would start from (subject `*`: every caller, to be narrowed).

use std::fmt::Write;

use super::Classification;

/// The report: one line per column, most confident first, then the suggested rules.
pub fn render(columns: &[Classification]) -> String {
    let mut cs: Vec<&Classification> = columns.iter().collect();
    cs.sort_by(|a, b| b.confidence.total_cmp(&a.confidence).then_with(|| (&a.table, &a.column).cmp(&(&b.table, &b.column))));
    let mut s = String::new();
    if cs.is_empty() {
        s.push_str("no personal data found\n");
        return s;
    }
    let w = cs.iter().map(|c| c.table.len() + c.column.len() + 1).max().unwrap_or(6).max(6);
    let _ = writeln!(s, "{:<w$}  {:<13}  {:>10}  {:<7}  evidence", "column", "kind", "confidence", "mask");
    for c in &cs {
        let _ = writeln!(
            s,
            "{:<w$}  {:<13}  {:>10.2}  {:<7}  {}",
            format!("{}.{}", c.table, c.column),
            c.kind.as_str(),
            c.confidence,
            c.mask,
            c.evidence
        );
    }
    let _ = writeln!(
        s,
        "\n# Suggested masks for policies/rules.toml (confidence >= {:.2}; `pii = \"mask\"` applies them by default).\n# Narrow `subject`, or add `kind = \"clear\"` rules for roles that may see the values.",
        super::MASK_THRESHOLD
    );
    for c in cs.iter().filter(|c| c.masks()) {
        let _ = writeln!(
            s,
            "[[mask]]\ntable = \"{}\"\ncolumn = \"{}\"\nsubject = \"*\"\nkind = \"{}\"   # {} {:.2}\n",
            c.table,
            c.column,
            c.mask,
            c.kind.as_str(),
            c.confidence
        );
    }
    s
}
