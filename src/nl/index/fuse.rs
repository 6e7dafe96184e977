//! Reciprocal-rank fusion: several ranked lists of document ids (full-text, local vectors, remote
//! vectors) become one ranking without comparing their incomparable scores.

use std::collections::HashMap;

/// The constant of Cormack et al.: large enough that the first few ranks of one list do not
/// drown out agreement between lists.
pub const K: f64 = 60.0;

/// Fuse ranked lists of ids (best first) into one list of (id, score), best first. An id's score
/// is the sum over lists of `1 / (K + rank)`, rank counted from 1. Ties keep first-seen order,
/// so the result is deterministic.
pub fn rrf(lists: &[Vec<String>]) -> Vec<(String, f64)> {
    let mut scores: HashMap<&str, (f64, usize)> = HashMap::new();
    let mut order = 0usize;
    for list in lists {
        for (rank, id) in list.iter().enumerate() {
            let entry = scores.entry(id.as_str()).or_insert_with(|| {
                order += 1;
                (0.0, order)
            });
            entry.0 += 1.0 / (K + (rank + 1) as f64);
        }
    }
    let mut out: Vec<(&str, (f64, usize))> = scores.into_iter().collect();
    out.sort_by(|a, b| b.1 .0.partial_cmp(&a.1 .0).unwrap_or(std::cmp::Ordering::Equal).then(a.1 .1.cmp(&b.1 .1)));
    out.into_iter().map(|(id, (s, _))| (id.to_string(), s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn agreement_between_lists_wins() {
        // "b" is second in both lists; "a" and "c" are first in one list only and absent in the other.
        let fused = rrf(&[ids(&["a", "b"]), ids(&["c", "b"])]);
        assert_eq!(fused[0].0, "b");
        let b = 2.0 / (K + 2.0);
        assert!((fused[0].1 - b).abs() < 1e-12);
        assert_eq!(fused.len(), 3);
    }

    #[test]
    fn scores_follow_the_formula_and_ties_keep_first_seen_order() {
        let fused = rrf(&[ids(&["x", "y"]), ids(&["y", "x"])]);
        // Same score for both (1/61 + 1/62); x was seen first.
        assert_eq!(fused[0].0, "x");
        assert!((fused[0].1 - fused[1].1).abs() < 1e-12);
        assert!((fused[0].1 - (1.0 / 61.0 + 1.0 / 62.0)).abs() < 1e-12);
        assert!(rrf(&[]).is_empty());
        assert_eq!(rrf(&[ids(&["only"])]), vec![("only".to_string(), 1.0 / 61.0)]);
    }
}
