//! Ratios: "ratio of C1 to C2 [for each X]" divides two columns row by row; "ratio of X with A
//! to X with B" divides two conditional counts, conditions read from each side of "to".

use super::link::Target;
use super::plan::{where_terms, Cond, Ctx};

impl Ctx<'_> {
    /// Build a ratio query if the question asks for one; `Ok(false)` leaves the query to other shapes.
    pub(super) fn ratio(&mut self) -> Result<bool, String> {
        let Some(r) = (0..self.tokens.len()).find(|&i| matches!(self.word(i), "ratio" | "proportion") && self.word(i + 1) == "of") else {
            return Ok(false);
        };
        let a = r + 2;
        let Some(to) = (a..self.tokens.len()).find(|&i| matches!(self.word(i), "to" | "versus" | "vs" | "over") || self.word(i) == "out" && self.word(i + 1) == "of") else {
            return Ok(false);
        };
        let numeric = |c: &Ctx, from: usize, to: usize| {
            (0..c.mentions.len()).filter(|&m| c.mentions[m].start >= from && c.mentions[m].start < to).find_map(|m| match c.resolve(m) {
                Target::Column(t, col) if c.ix.tables[t].columns[col].numeric && c.ix.tables[t].key != Some(col) => Some((m, t, col)),
                _ => None,
            })
        };
        let side_b_end = (to + 1..self.tokens.len()).find(|&i| matches!(self.word(i), "for" | "in" | "per" | "across" | "by") && !self.conds.iter().any(|c| c.at == i + 1 || c.at == i + 2)).unwrap_or(self.tokens.len());
        let first = numeric(self, a, to);
        let second = numeric(self, to, side_b_end);
        let group = self.ratio_group();
        if let (Some((ma, ta, ca)), Some((mb, tb, cb))) = (first, second) {
            if (ta, ca) != (tb, cb) && !self.conds.iter().any(|c| c.at >= a && c.at < side_b_end && c.eq.is_none()) {
                self.used[ma] = true;
                self.used[mb] = true;
                let (x, y) = (self.col(ta, ca), self.col(tb, cb));
                let expr = format!("CAST({x} AS DOUBLE PRECISION) / NULLIF({y}, 0)");
                let average = (0..r).any(|i| matches!(self.word(i), "average" | "mean"));
                let keys = match group {
                    Some(keys) => keys,
                    None => self.entity_columns(ta),
                };
                self.q.filters = where_terms(&self.conds);
                self.q.select = keys.clone();
                if average {
                    self.q.select.push(format!("AVG({expr}) AS ratio"));
                    self.q.group_by = keys;
                } else {
                    self.q.select.push(format!("{expr} AS ratio"));
                }
                self.notes.push("ratio of two columns".into());
                return Ok(true);
            }
        }
        // Conditional counts: conditions on one column split by side; the rest filter everything.
        let side = |c: &Cond| if c.at >= a && c.at < to { 1 } else if c.at >= to && c.at < side_b_end { 2 } else { 0 };
        let conds = self.conds.clone();
        let split_cols: Vec<String> = conds.iter().filter(|c| side(c) == 1).map(|c| c.col.clone()).filter(|col| conds.iter().any(|d| side(d) == 2 && d.col == *col)).collect();
        let (mut num, mut den, mut rest) = (vec![], vec![], vec![]);
        for c in &conds {
            match side(c) {
                1 if split_cols.contains(&c.col) || !conds.iter().any(|d| side(d) == 2) => num.push(c.sql.clone()),
                2 if split_cols.contains(&c.col) => den.push(c.sql.clone()),
                _ => rest.push(c.clone()),
            }
        }
        if num.is_empty() {
            return Err("the ratio's two sides could not be told apart".into());
        }
        let root = self.q.root;
        let counted = self.ix.tables[root].key.map(|k| self.col(root, k));
        let count = |conds: &[String]| {
            let what = counted.clone().unwrap_or_else(|| "1".into());
            if conds.is_empty() {
                match &counted {
                    Some(k) => format!("COUNT(DISTINCT {k})"),
                    None => "COUNT(*)".into(),
                }
            } else {
                format!("COUNT(DISTINCT CASE WHEN {} THEN {what} END)", conds.join(" AND "))
            }
        };
        let expr = format!("CAST({} AS DOUBLE PRECISION) / NULLIF({}, 0)", count(&num), count(&den));
        self.q.filters = where_terms(&rest);
        match group {
            Some(keys) => {
                self.q.select = keys.clone();
                self.q.select.push(format!("{expr} AS ratio"));
                self.q.group_by = keys;
            }
            None => self.q.select = vec![format!("{expr} AS ratio")],
        }
        self.notes.push("ratio of two conditional counts".into());
        Ok(true)
    }

    /// "for each X" / "per X" / "by X" / "across X" in a ratio question.
    fn ratio_group(&mut self) -> Option<Vec<String>> {
        let i = (0..self.tokens.len()).find(|&i| matches!(self.word(i), "each" | "per" | "every" | "across" | "by"))?;
        let m = self.next_mention(i + 1, 1)?;
        self.used[m] = true;
        Some(match self.resolve(m) {
            Target::Column(t, c) => vec![self.col(t, c)],
            Target::Table(t) => self.entity_columns(t),
            _ => return None,
        })
    }
}
