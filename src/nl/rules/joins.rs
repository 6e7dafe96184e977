//! The join graph: declared foreign keys plus keys inferred from column names (`writes.aid` ↔
//! `author.aid`, `paper.venueid` ↔ `venue.venueid`, `flight.from_airport` ↔ `airport.airport_code`)
//! and "references schema.table.column" in descriptions; shortest paths connect a question's tables.

use std::collections::{BTreeSet, VecDeque};


use super::index::TableIx;
use crate::nl::context::SchemaContext;

/// One join condition between two tables (indexes into the index's tables and their columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    pub a: usize,
    pub ac: usize,
    pub b: usize,
    pub bc: usize,
    /// Inferred from same-named non-key columns only: used when no key path exists.
    pub weak: bool,
}

/// Undirected join graph.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    pub edges: Vec<Edge>,
}

/// A join step: bring `table` in with `on` (table a's column = table b's column).
#[derive(Debug, Clone)]
pub struct Step {
    pub table: usize,
    pub on: Edge,
}

impl Graph {
    pub fn new(ctx: &SchemaContext, tables: &[TableIx]) -> Graph {
        let mut g = Graph::default();
        let find = |name: &str| tables.iter().position(|t| t.qualified.eq_ignore_ascii_case(name) || t.name.eq_ignore_ascii_case(name));
        let col = |t: usize, name: &str| tables[t].columns.iter().position(|c| c.name.eq_ignore_ascii_case(name));
        for fk in &ctx.foreign_keys {
            let (Some(a), Some(b)) = (find(&fk.from_table), find(&fk.to_table)) else { continue };
            for (fc, tc) in fk.from_columns.iter().zip(&fk.to_columns) {
                if let (Some(ac), Some(bc)) = (col(a, fc), col(b, tc)) {
                    g.add(Edge { a, ac, b, bc, weak: false });
                }
            }
        }
        // "references tpch.nation.n_nationkey" in a column description.
        for (a, info) in ctx.tables.iter().enumerate() {
            for (ac, c) in info.columns.iter().enumerate() {
                let Some(d) = &c.description else { continue };
                for word in d.split(|ch: char| !(ch.is_alphanumeric() || ch == '_' || ch == '.')) {
                    let word = word.trim_matches('.');
                    let Some((table, column)) = word.rsplit_once('.') else { continue };
                    if let Some(b) = find(table) {
                        if let Some(bc) = col(b, column) {
                            if b != a {
                                g.add(Edge { a, ac, b, bc, weak: false });
                            }
                        }
                    }
                }
            }
        }
        for (a, ta) in tables.iter().enumerate() {
            for (ac, ca) in ta.columns.iter().enumerate() {
                for (b, tb) in tables.iter().enumerate() {
                    if a == b {
                        continue;
                    }
                    // Same name as b's key: author.oid → organization.oid.
                    if let Some(bk) = tb.key {
                        if same_name(&tb.columns[bk], ca) && ta.key != Some(ac) {
                            g.add(Edge { a, ac, b, bc: bk, weak: false });
                            continue;
                        }
                        // Names b and ends like b's key: citingpaperid → paper.paperid, from_airport → airport.airport_code.
                        let names_b = tb.words.len() == 1 && ca.words.contains(&tb.words[0]);
                        let key_tail = tb.columns[bk].words.last();
                        let idish = ca.words.last().is_some_and(|w| matches!(w.as_str(), "id" | "key" | "code")) || ca.words.len() == 2;
                        if names_b && idish && ta.key != Some(ac) && (ca.words.last() == key_tail || ca.words.len() == 2) {
                            if ca.numeric == tb.columns[bk].numeric {
                                g.add(Edge { a, ac, b, bc: bk, weak: false });
                                continue;
                            }
                        }
                    }
                    // Same-named identifying columns: restaurant.city_name ↔ geographic.city_name.
                    if a < b {
                        if let Some(bc) = tb.columns.iter().position(|c| same_name(c, ca)) {
                            let tail = ca.words.last().map(String::as_str).unwrap_or("");
                            let idish = matches!(tail, "id" | "key" | "code") || ca.words.len() == 1 && tail.len() <= 4 && tail.ends_with("id");
                            // "name" alone is not a key, "city_name" (or `cityName`) is.
                            let named = tail == "name" && ca.words.len() >= 2;
                            if idish || named {
                                g.add(Edge { a, ac, b, bc, weak: !idish });
                            }
                        }
                    }
                }
            }
        }
        g
    }

    fn add(&mut self, e: Edge) {
        let dup = self.edges.iter().any(|x| (x.a, x.b) == (e.a, e.b) && (x.ac, x.bc) == (e.ac, e.bc) || (x.a, x.b) == (e.b, e.a) && (x.ac, x.bc) == (e.bc, e.ac));
        if !dup {
            self.edges.push(e);
        }
    }

    /// Edges touching table `t`, oriented so that `a == t`.
    fn from(&self, t: usize) -> impl Iterator<Item = Edge> + '_ {
        self.edges.iter().filter_map(move |e| {
            if e.a == t {
                Some(*e)
            } else if e.b == t {
                Some(Edge { a: e.b, ac: e.bc, b: e.a, bc: e.ac, weak: e.weak })
            } else {
                None
            }
        })
    }

    /// Join steps connecting `want` to `root` (each new table joins one already present),
    /// shortest path first; `None` when some table cannot be reached.
    pub fn connect(&self, root: usize, want: &[usize], n: usize) -> Option<Vec<Step>> {
        self.connect_with(root, want, n, false).or_else(|| self.connect_with(root, want, n, true))
    }

    fn connect_with(&self, root: usize, want: &[usize], n: usize, weak: bool) -> Option<Vec<Step>> {
        let mut have: BTreeSet<usize> = BTreeSet::from([root]);
        let mut steps = vec![];
        let mut todo: Vec<usize> = want.iter().copied().filter(|t| *t != root).collect();
        todo.dedup();
        while !todo.is_empty() {
            // BFS from everything we have; take the nearest wanted table.
            let mut prev: Vec<Option<Edge>> = vec![None; n];
            let mut seen = vec![false; n];
            let mut queue: VecDeque<usize> = have.iter().copied().collect();
            for &h in &have {
                seen[h] = true;
            }
            let mut found = None;
            while let Some(t) = queue.pop_front() {
                if todo.contains(&t) && !have.contains(&t) {
                    found = Some(t);
                    break;
                }
                for e in self.from(t) {
                    if !seen[e.b] && (weak || !e.weak) {
                        seen[e.b] = true;
                        prev[e.b] = Some(e);
                        queue.push_back(e.b);
                    }
                }
            }
            let target = found?;
            let mut path = vec![];
            let mut cur = target;
            while !have.contains(&cur) {
                let e = prev[cur]?;
                path.push(Step { table: cur, on: e });
                cur = e.a;
            }
            path.reverse();
            for s in path {
                have.insert(s.table);
                steps.push(s);
            }
            todo.retain(|t| !have.contains(t));
        }
        Some(steps)
    }
}

/// Two columns named alike: the same name, or the same words once each table's shared lead
/// words are dropped (`cheBusiId` in checkin and `busBusiId` in business are both `busi id`).
/// A lone generic word is no evidence (every table's own `id`), a lone specific one is
/// (`autAid` and `wriAid` are both `aid`).
pub(super) fn same_name(a: &super::index::ColIx, b: &super::index::ColIx) -> bool {
    let specific = a.words.len() >= 2 || a.words.first().is_some_and(|w| !super::index::GENERIC.contains(&w.as_str()));
    a.name.eq_ignore_ascii_case(&b.name) || (specific && a.words == b.words)
}
