//! Query shapes: a grouped aggregate ("average X per Y"), an entity ranking ("which X has the most
//! Y"), a plain aggregate ("how many X"), an ordered listing ("top 5 X by Z") or a listing.

use super::cues::{self, Agg};
use super::link::Target;
use super::plan::{Ctx, Measure};
use super::sql::column;
use super::text::is_plural;

/// What rows are grouped or ranked by.
#[derive(Debug, Clone, Copy)]
enum Key {
    Entity(usize),
    Column(usize, usize),
}

/// How rows are ranked: by a measure, or by a count of related rows.
#[derive(Debug, Clone)]
struct Rank {
    desc: bool,
    measure: Measure,
    /// The measure counts related rows ("most papers") rather than reading a column.
    counted: bool,
}

impl Ctx<'_> {
    pub(super) fn build(&mut self) -> Result<(), String> {
        if self.ratio()? {
            return Ok(());
        }
        self.q.filters = super::plan::where_terms(&self.conds);
        let aggs = cues::aggregates(&self.tokens);
        let limit = cues::limit(&self.tokens);
        let direction = cues::order_direction(&self.tokens);
        let group = self.group_key();
        let measure = aggs.iter().find_map(|a| self.measure(a.agg, a.from).map(|m| (a.agg, m)));
        let rank = self.rank();
        let entity = self.entity();
        let order_key = self.explicit_order();

        if let Some(key) = group {
            let cols = self.key_columns(key);
            let m = match (&measure, &rank) {
                (Some((_, m)), _) => m.clone(),
                (None, Some(r)) => r.measure.clone(),
                (None, None) => self.count_of(self.q.root),
            };
            let expr = self.measure_sql(&m);
            self.notes.push(format!("grouped by {}", cols.join(", ")));
            self.q.select = cols.clone();
            self.q.select.push(format!("{expr} AS value"));
            self.q.group_by = cols;
            if let Some(r) = &rank {
                self.q.order_by.push(format!("value {}", if r.desc { "DESC" } else { "ASC" }));
                self.q.limit = limit.or(if self.singular_entity() { Some(1) } else { None });
            } else if direction.is_some() || order_key.is_some() {
                // A grouped query can only order by its groups or its measure.
                let key = order_key.filter(|k| self.q.group_by.contains(k)).unwrap_or_else(|| "value".to_string());
                self.q.order_by.push(format!("{key} {}", if direction.unwrap_or(false) { "DESC" } else { "ASC" }));
            }
            return Ok(());
        }
        if let (Some(r), Some(e)) = (&rank, entity) {
            if r.counted || measure.is_none() && self.entity_differs(e, &r.measure) {
                // "Which authors have the most papers": count per entity, highest first.
                let cols = self.key_columns(e);
                let expr = if r.counted { self.measure_sql(&r.measure) } else { format!("{}({})", if r.desc { "MAX" } else { "MIN" }, r.measure.sql) };
                self.q.select = cols.clone();
                self.q.select.push(format!("{expr} AS value"));
                self.q.group_by = cols;
                self.q.order_by.push(format!("value {}", if r.desc { "DESC" } else { "ASC" }));
                self.q.limit = limit.or(if self.singular_entity() { Some(1) } else { None });
                self.notes.push("ranked by a count per entity".into());
                return Ok(());
            }
        }
        if let Some((agg, m)) = &measure {
            let expr = if *agg == Agg::Count { self.measure_sql(m) } else { m.sql.clone() };
            self.q.select = vec![format!("{expr} AS value")];
            self.notes.push(format!("{} over {}", agg.sql(), self.ix.tables[m.table].name));
            return Ok(());
        }
        // A listing: the entity's name and key, plus the columns the question names.
        let mut cols = match entity {
            Some(e) => self.key_columns(e),
            None => self.entity_columns(self.q.root),
        };
        for m in 0..self.mentions.len() {
            if self.used[m] {
                continue;
            }
            if let Target::Column(t, c) = self.resolve(m) {
                let col = self.col(t, c);
                if !cols.contains(&col) {
                    cols.push(col);
                }
            }
        }
        for c in self.conds.iter().filter(|c| c.show) {
            if !cols.contains(&c.col) {
                cols.push(c.col.clone());
            }
        }
        if let Some(r) = rank.as_ref().filter(|r| !r.counted) {
            if !cols.contains(&r.measure.sql) {
                cols.push(r.measure.sql.clone());
            }
            self.q.order_by.push(format!("{} {}", r.measure.sql, if r.desc { "DESC" } else { "ASC" }));
            self.q.limit = limit.or(if self.singular_entity() { Some(1) } else { None });
        } else if let Some(key) = order_key {
            let d = direction.unwrap_or(false);
            self.q.order_by.push(format!("{key} {}", if d { "DESC" } else { "ASC" }));
            self.q.limit = limit;
        } else if let Some(d) = direction {
            if let Some(first) = cols.first().cloned() {
                self.q.order_by.push(format!("{first} {}", if d { "DESC" } else { "ASC" }));
            }
            self.q.limit = limit;
        }
        self.q.distinct = self.q.tables.len() > 1;
        self.q.select = cols;
        Ok(())
    }

    /// "per X", "for each X", "in each X", "by X" (not "ordered by"), "across X".
    fn group_key(&mut self) -> Option<Key> {
        for i in 0..self.tokens.len() {
            let w = self.word(i);
            let cue = match w {
                "per" | "each" | "every" | "across" => true,
                "by" => !matches!(if i > 0 { self.word(i - 1) } else { "" }, "ordered" | "sorted" | "order" | "sort" | "ranked" | "arranged" | "rank" | "written" | "cited" | "received" | "published" | "taught" | "posted" | "made" | "owned" | "served" | "offered" | "given"),
                _ => false,
            };
            if !cue {
                continue;
            }
            let Some(m) = self.next_mention(i + 1, 1) else { continue };
            if self.used[m] {
                continue;
            }
            let key = match self.resolve(m) {
                Target::Table(t) => Key::Entity(t),
                Target::Column(t, c) => {
                    // "top customers by balance" ranks, it does not group.
                    if w == "by" && self.ix.tables[t].columns[c].numeric && !self.ix.tables[t].columns[c].words.iter().any(|x| x == "year" || x == "id") {
                        continue;
                    }
                    Key::Column(t, c)
                }
                _ => continue,
            };
            self.used[m] = true;
            return Some(key);
        }
        None
    }

    /// Columns for a group or entity key; an entity whose name the root table repeats is read from the root.
    fn key_columns(&mut self, key: Key) -> Vec<String> {
        match key {
            Key::Column(t, c) => vec![self.col(t, c)],
            Key::Entity(t) => {
                let root = self.q.root;
                if t != root {
                    let label = self.ix.tables[t].labels.first().map(|&l| &self.ix.tables[t].columns[l]);
                    if let Some(rc) = label.and_then(|l| self.ix.tables[root].columns.iter().position(|c| super::joins::same_name(c, l))) {
                        return vec![self.col(root, rc)];
                    }
                }
                self.entity_columns(t)
            }
        }
    }

    /// The argument of an aggregate cue.
    fn measure(&mut self, agg: Agg, from: usize) -> Option<Measure> {
        let m = self.next_mention(from, 3)?;
        let target = self.resolve(m);
        let found = match target {
            Target::Column(t, c) => {
                let col = &self.ix.tables[t].columns[c];
                let sql = column(&self.ix.tables[t].name, &col.name);
                if agg == Agg::Count {
                    if col.numeric && col.words.iter().any(|w| w == "number" || w == "count") {
                        Some(Measure { sql: format!("SUM({sql})"), table: t, count: false })
                    } else if col.numeric || col.text {
                        Some(Measure { sql: format!("COUNT(DISTINCT {sql})"), table: t, count: false })
                    } else {
                        None
                    }
                } else if col.numeric {
                    Some(Measure { sql: format!("{}({sql})", agg.sql()), table: t, count: false })
                } else {
                    None
                }
            }
            Target::Measure(mi) => {
                let measure = &self.ix.measures[mi];
                Some(Measure { sql: format!("{}({})", if agg == Agg::Count { "SUM" } else { agg.sql() }, measure.sql), table: measure.table, count: false })
            }
            Target::Table(t) if agg == Agg::Count => Some(self.count_of(t)),
            _ => None,
        }?;
        self.used[m] = true;
        self.q.use_table(found.table);
        Some(found)
    }

    /// Counting rows of `t`: a stored per-row count column is summed (check-ins), else rows are counted.
    fn count_of(&mut self, t: usize) -> Measure {
        self.q.use_table(t);
        let table = &self.ix.tables[t];
        if let Some(c) = table.columns.iter().find(|c| c.numeric && c.words == ["count"]) {
            return Measure { sql: format!("SUM({})", column(&table.name, &c.name)), table: t, count: false };
        }
        Measure { sql: String::new(), table: t, count: true }
    }

    /// SQL of a measure now that the query's tables are known.
    fn measure_sql(&mut self, m: &Measure) -> String {
        if !m.count {
            return m.sql.clone();
        }
        let t = m.table;
        match self.ix.tables[t].key {
            Some(k) => {
                let col = self.col(t, k);
                format!("COUNT(DISTINCT {col})")
            }
            None => "COUNT(*)".to_string(),
        }
    }

    /// A superlative and what it ranks by: "highest rating", "most papers", "top 5 ... by balance".
    fn rank(&mut self) -> Option<Rank> {
        for i in 0..self.tokens.len() {
            let Some(desc) = cues::superlative(self.word(i)) else { continue };
            let mut from = i + 1;
            if self.word(from) == "number" && self.word(from + 1) == "of" {
                from += 2;
            }
            if self.word(i) == "top" || self.word(i) == "bottom" {
                // "top 5 customers by account balance" / "top 3 businesses in terms of review count".
                let by = (i..self.tokens.len()).find(|&k| self.word(k) == "by" || (self.word(k) == "of" && self.word(k.saturating_sub(1)) == "terms"));
                match by {
                    Some(k) => from = k + 1,
                    None => continue,
                }
            }
            let Some(m) = self.next_mention(from, 2) else { continue };
            let counted_phrase = from == i + 3;
            let r = match self.resolve(m) {
                Target::Column(t, c) if self.ix.tables[t].columns[c].numeric => {
                    let sql = self.col(t, c);
                    Rank { desc, measure: Measure { sql, table: t, count: false }, counted: false }
                }
                Target::Measure(mi) => {
                    let me = &self.ix.measures[mi];
                    self.q.use_table(me.table);
                    Rank { desc, measure: Measure { sql: format!("SUM({})", me.sql), table: me.table, count: false }, counted: true }
                }
                Target::Table(t) => match self.adjective_column(self.word(i), t) {
                    // "the longest rivers": rank rivers by their length, not by a count.
                    Some(c) if !counted_phrase => {
                        let sql = self.col(t, c);
                        self.used[m] = false;
                        return Some(Rank { desc, measure: Measure { sql, table: t, count: false }, counted: false });
                    }
                    _ => Rank { desc, measure: self.count_of(t), counted: true },
                },
                _ => continue,
            };
            self.used[m] = true;
            return Some(r);
        }
        None
    }

    /// The column a superlative adjective measures on `t`: longest → length, highest → altitude...
    fn adjective_column(&self, adjective: &str, t: usize) -> Option<usize> {
        let words: &[&str] = match adjective {
            "longest" | "shortest" => &["length", "duration"],
            "highest" | "tallest" | "lowest" => &["altitude", "elevation", "height", "rating", "score"],
            "largest" | "biggest" | "smallest" => &["area", "size", "population", "capacity"],
            "oldest" | "newest" | "latest" | "earliest" => &["year", "date", "age"],
            "best" | "worst" => &["rating", "score", "star"],
            "busiest" => &["count"],
            "richest" => &["balance", "income"],
            _ => &[],
        };
        let cols = &self.ix.tables[t].columns;
        words.iter().find_map(|w| cols.iter().position(|c| c.numeric && c.words.iter().any(|x| x == w)))
    }

    /// The first unused table or column mention: what the question lists or ranks.
    fn entity(&mut self) -> Option<Key> {
        for m in 0..self.mentions.len() {
            if self.used[m] {
                continue;
            }
            let key = match self.resolve(m) {
                Target::Table(t) => Key::Entity(t),
                Target::Column(t, c) if !self.ix.tables[t].columns[c].numeric || self.ix.tables[t].key == Some(c) => Key::Column(t, c),
                _ => continue,
            };
            self.used[m] = true;
            return Some(key);
        }
        None
    }

    /// A ranking measure read from another table than the entity's ("which city has the highest-rated restaurant").
    fn entity_differs(&self, e: Key, m: &Measure) -> bool {
        match e {
            Key::Entity(t) => t != m.table,
            // A column entity (a street, a city) is always grouped.
            Key::Column(..) => true,
        }
    }

    /// The entity is asked for in the singular ("which author", "the city that").
    fn singular_entity(&self) -> bool {
        let first = self.mentions.iter().find(|m| matches!(m.best(), Target::Table(_) | Target::Column(..)));
        match first {
            Some(m) => !is_plural(&self.tokens[m.end - 1]),
            None => false,
        }
    }

    /// "ordered by X", "sorted by X": the column to order by.
    fn explicit_order(&mut self) -> Option<String> {
        for i in 0..self.tokens.len() {
            if !matches!(self.word(i), "ordered" | "sorted" | "order" | "sort" | "arranged" | "ranked") || self.word(i + 1) != "by" {
                continue;
            }
            if self.word(i + 2) == "the" && self.word(i + 3) == "number" || self.word(i + 2) == "number" {
                return Some("value".into());
            }
            let m = self.next_mention(i + 2, 1)?;
            if let Target::Column(t, c) = self.resolve(m) {
                self.used[m] = true;
                return Some(self.col(t, c));
            }
        }
        if cues::order_direction(&self.tokens) == Some(false) && self.tokens.iter().any(|t| t.lower.starts_with("alphabetic")) {
            let root = self.q.root;
            let l = self.ix.tables[root].labels.first().copied()?;
            return Some(self.col(root, l));
        }
        None
    }
}
