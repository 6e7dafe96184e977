//! Execution accuracy by the defog rules: results compared as sets of rows after dropping
//! duplicates, column names and order ignored, extra predicted columns allowed, rows in order
//! only when the question asks for an order. Values are compared as normalized text.

use datafusion::arrow::array::Array;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::error::LaloError;

/// One value: `None` for NULL, else normalized text (numbers rounded to 4 places).
pub type Value = Option<String>;
pub type Row = Vec<Value>;

/// Normalize one value's text so PostgreSQL's and lalo's renderings compare equal.
pub fn normalize(text: &str) -> String {
    let t = text.trim();
    match t {
        "t" | "true" => return "1".into(),
        "f" | "false" => return "0".into(),
        _ => {}
    }
    if let Ok(f) = t.parse::<f64>() {
        if f.is_finite() {
            let r = if f.abs() < 1e12 { (f * 1e4).round() / 1e4 } else { f };
            // -0 and 0 are the same answer.
            return format!("{}", if r == 0.0 { 0.0 } else { r });
        }
    }
    // Timestamps: lalo's Arrow text uses 'T' where PostgreSQL uses a space.
    if t.len() >= 19 && t.as_bytes().get(10) == Some(&b'T') && t[..4].chars().all(|c| c.is_ascii_digit()) {
        return t.replacen('T', " ", 1);
    }
    t.to_string()
}

/// Rows of Arrow batches, normalized.
pub fn batch_rows(batches: &[RecordBatch]) -> Result<Vec<Row>, LaloError> {
    let opts = FormatOptions::default();
    let mut out = vec![];
    for b in batches {
        let fmts: Vec<ArrayFormatter> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
            .collect::<Result<_, _>>()
            .map_err(|e| LaloError::Internal(e.to_string()))?;
        for i in 0..b.num_rows() {
            out.push(
                b.columns()
                    .iter()
                    .zip(&fmts)
                    .map(|(c, f)| if c.is_null(i) { None } else { Some(normalize(&f.value(i).to_string())) })
                    .collect(),
            );
        }
    }
    Ok(out)
}

/// Rows of a simple-protocol result (PostgreSQL's text), normalized.
pub fn text_rows(msgs: &[tokio_postgres::SimpleQueryMessage]) -> Vec<Row> {
    msgs.iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some((0..r.len()).map(|i| r.get(i).map(normalize)).collect()),
            _ => None,
        })
        .collect()
}

fn dedupe(rows: &[Row]) -> Vec<Row> {
    let mut seen = std::collections::HashSet::new();
    rows.iter().filter(|r| seen.insert((*r).clone())).cloned().collect()
}

/// Sort key: numbers by value, then text, NULLs last (the harness' ordering).
fn key(v: &Value) -> (u8, f64, String) {
    match v {
        None => (2, 0.0, String::new()),
        Some(s) => match s.parse::<f64>() {
            Ok(f) => (0, f, String::new()),
            Err(_) => (1, 0.0, s.clone()),
        },
    }
}

fn cmp_values(a: &Value, b: &Value) -> std::cmp::Ordering {
    let (ka, kb) = (key(a), key(b));
    ka.0.cmp(&kb.0).then(ka.1.partial_cmp(&kb.1).unwrap_or(std::cmp::Ordering::Equal)).then(ka.2.cmp(&kb.2))
}

fn cmp_rows(a: &Row, b: &Row) -> std::cmp::Ordering {
    a.iter().zip(b).map(|(x, y)| cmp_values(x, y)).find(|o| o.is_ne()).unwrap_or(a.len().cmp(&b.len()))
}

/// defog's rule: every gold column has a distinct predicted column with the same values, and
/// the predicted rows projected on those columns equal the gold rows.
pub fn matches(gold: &[Row], pred: &[Row], ordered: bool) -> bool {
    if gold.is_empty() || gold[0].is_empty() {
        return pred.is_empty();
    }
    let g = dedupe(gold);
    let p = dedupe(pred);
    if p.is_empty() {
        return false;
    }
    let (ng, np) = (g[0].len(), p[0].len());
    let column = |rows: &[Row], i: usize| {
        let mut c: Vec<Value> = rows.iter().map(|r| r.get(i).cloned().flatten()).collect();
        c.sort_by(cmp_values);
        c
    };
    let gcols: Vec<Vec<Value>> = (0..ng).map(|i| column(&g, i)).collect();
    let pcols: Vec<Vec<Value>> = (0..np).map(|j| column(&p, j)).collect();
    let candidates: Vec<Vec<usize>> = gcols.iter().map(|gc| (0..np).filter(|&j| pcols[j] == *gc).collect()).collect();
    if candidates.iter().any(|c| c.is_empty()) {
        return false;
    }
    let mut gold_sorted = g.clone();
    gold_sorted.sort_by(cmp_rows);
    let mut assign = vec![0usize; ng];
    let mut tried = 0;
    // Depth-first over column assignments; small in practice, bounded anyway.
    fn walk(
        i: usize,
        candidates: &[Vec<usize>],
        assign: &mut Vec<usize>,
        check: &mut dyn FnMut(&[usize]) -> bool,
        tried: &mut usize,
    ) -> bool {
        if *tried > 10_000 {
            return false;
        }
        if i == candidates.len() {
            *tried += 1;
            return check(assign);
        }
        for &j in &candidates[i] {
            if assign[..i].contains(&j) {
                continue;
            }
            assign[i] = j;
            if walk(i + 1, candidates, assign, check, tried) {
                return true;
            }
        }
        false
    }
    let mut check = |a: &[usize]| {
        let proj: Vec<Row> = dedupe(&p.iter().map(|r| a.iter().map(|&j| r.get(j).cloned().flatten()).collect()).collect::<Vec<_>>());
        if ordered {
            proj == g
        } else {
            let mut s = proj;
            s.sort_by(cmp_rows);
            s == gold_sorted
        }
    };
    walk(0, &candidates, &mut assign, &mut check, &mut tried)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(v: &[&[&str]]) -> Vec<Row> {
        v.iter().map(|r| r.iter().map(|s| Some(normalize(s))).collect()).collect()
    }

    #[test]
    fn extra_columns_and_order() {
        let gold = rows(&[&["a", "1"], &["b", "2"]]);
        let pred = rows(&[&["2", "b", "x"], &["1.0000", "a", "y"]]);
        assert!(matches(&gold, &pred, false));
        assert!(!matches(&gold, &pred, true));
        assert!(!matches(&gold, &rows(&[&["a", "1"]]), false));
        assert_eq!(normalize("2024-01-02T03:04:05"), "2024-01-02 03:04:05");
        assert_eq!(normalize("t"), "1");
    }
}
