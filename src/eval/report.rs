//! One scored question (a JSON line of `--out`) and the summary `lalo eval` prints: execution
//! accuracy overall, per category and per database, schema-linking recall, the decline rate on
//! unanswerable questions, and latency percentiles of the pipeline.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::eval::corpus::Question;

/// The outcome of one question.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Scored {
    pub db: String,
    pub category: String,
    pub question: String,
    pub answerable: bool,
    pub sql: Option<String>,
    /// SQL drafted for a question that then failed (did not plan, or was refused).
    pub drafted: Option<String>,
    pub draft_error: Option<String>,
    pub correct: bool,
    pub declined: bool,
    pub sqlstate: Option<String>,
    pub error: Option<String>,
    pub gold_error: Option<String>,
    /// Time from the question to a governed plan (retrieve → govern).
    pub pipeline_ms: f64,
    /// Time including execution and reading every row.
    pub total_ms: f64,
    /// Gold tables and columns, and how many of them the drafter was given.
    pub gold_tables: usize,
    pub given_gold_tables: usize,
    pub gold_columns: usize,
    pub given_gold_columns: usize,
    pub given_tables: Vec<String>,
}

impl Scored {
    pub fn new(q: &Question) -> Scored {
        Scored {
            db: q.db.clone(),
            category: q.category.clone(),
            question: q.question.clone(),
            answerable: q.answerable,
            sql: None,
            drafted: None,
            draft_error: None,
            correct: false,
            declined: false,
            sqlstate: None,
            error: None,
            gold_error: None,
            pipeline_ms: 0.0,
            total_ms: 0.0,
            gold_tables: 0,
            given_gold_tables: 0,
            gold_columns: 0,
            given_gold_columns: 0,
            given_tables: vec![],
        }
    }

    /// Schema-linking recall: the upstream tables and columns the gold SQL names, and how many of
    /// them were in the context given to the drafter (`schema.table.column` entries).
    pub fn recall(&mut self, schema: &BTreeMap<String, Vec<String>>, gold: &str, given: &[String]) {
        let words: BTreeSet<String> = gold
            .to_lowercase()
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect();
        let given: BTreeSet<(String, String)> = given
            .iter()
            .filter_map(|g| {
                let mut parts = g.rsplitn(3, '.');
                let col = parts.next()?.to_lowercase();
                let table = parts.next()?.to_lowercase();
                Some((table, col))
            })
            .collect();
        let given_tables: BTreeSet<&String> = given.iter().map(|(t, _)| t).collect();
        let (mut gt, mut gtg, mut gc, mut gcg) = (0, 0, 0, 0);
        for (table, cols) in schema {
            if !words.contains(table) {
                continue;
            }
            gt += 1;
            gtg += given_tables.contains(table) as usize;
            for c in cols.iter().filter(|c| words.contains(*c)) {
                gc += 1;
                gcg += given.contains(&(table.clone(), c.clone())) as usize;
            }
        }
        (self.gold_tables, self.given_gold_tables, self.gold_columns, self.given_gold_columns) = (gt, gtg, gc, gcg);
    }
}

/// Everything `lalo eval` prints.
#[derive(Debug, Default)]
pub struct Report {
    pub scored: Vec<Scored>,
    /// Time to build each database's context (samples read through lalo), ms.
    pub context_ms: Vec<(String, f64)>,
    /// Databases held out from development: reported apart from the seen ones.
    pub holdout: BTreeSet<String>,
    /// The held-out databases were asked as renamed copies (`--holdout-restyle`).
    pub restyled: bool,
}

fn pct(n: usize, d: usize) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 / d as f64
    }
}

fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

impl Report {
    pub fn add(&mut self, s: Scored) {
        self.scored.push(s);
    }

    fn answerable(&self) -> impl Iterator<Item = &Scored> {
        self.scored.iter().filter(|s| s.answerable)
    }

    /// Share of answerable questions answered correctly.
    pub fn accuracy(&self) -> f64 {
        pct(self.answerable().filter(|s| s.correct).count(), self.answerable().count())
    }

    /// Share of unanswerable questions declined (42000).
    pub fn decline_rate(&self) -> f64 {
        let un: Vec<_> = self.scored.iter().filter(|s| !s.answerable).collect();
        pct(un.iter().filter(|s| s.declined).count(), un.len())
    }

    /// (table recall, column recall) over answerable questions.
    pub fn recall(&self) -> (f64, f64) {
        let (mut gt, mut gtg, mut gc, mut gcg) = (0, 0, 0, 0);
        for s in self.answerable() {
            gt += s.gold_tables;
            gtg += s.given_gold_tables;
            gc += s.gold_columns;
            gcg += s.given_gold_columns;
        }
        (pct(gtg, gt), pct(gcg, gc))
    }

    /// p50 and p95 of the pipeline time (question → governed plan), ms.
    pub fn pipeline_latency(&self) -> (f64, f64) {
        let v: Vec<f64> = self.scored.iter().map(|s| s.pipeline_ms).collect();
        (percentile(&v, 0.5), percentile(&v, 0.95))
    }

    /// p50 and p95 of the time including execution, ms.
    pub fn total_latency(&self) -> (f64, f64) {
        let v: Vec<f64> = self.scored.iter().map(|s| s.total_ms).collect();
        (percentile(&v, 0.5), percentile(&v, 0.95))
    }

    fn group(&self, key: impl Fn(&Scored) -> String) -> BTreeMap<String, (usize, usize, usize)> {
        let mut m: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
        for s in self.answerable() {
            let e = m.entry(key(s)).or_default();
            e.0 += s.correct as usize;
            e.1 += s.sql.is_some() as usize;
            e.2 += 1;
        }
        m
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.answerable().count();
        let correct = self.answerable().filter(|s| s.correct).count();
        let drafted = self.answerable().filter(|s| s.sql.is_some()).count();
        writeln!(f, "execution accuracy: {correct}/{total} = {:.1}% (answered {drafted})", 100.0 * self.accuracy())?;
        if !self.holdout.is_empty() {
            // Generalization: the same measures on databases the drafter was not developed on.
            for (label, held) in [("seen", false), ("held-out", true)] {
                let part: Vec<&Scored> = self.scored.iter().filter(|s| self.holdout.contains(&s.db) == held).collect();
                let ans: Vec<&&Scored> = part.iter().filter(|s| s.answerable).collect();
                let un: Vec<&&Scored> = part.iter().filter(|s| !s.answerable).collect();
                let (c, d) = (ans.iter().filter(|s| s.correct).count(), un.iter().filter(|s| s.declined).count());
                let mut dbs: BTreeSet<String> = part.iter().map(|s| s.db.clone()).collect();
                if held && self.restyled {
                    dbs = dbs.into_iter().map(|d| format!("{d} renamed")).collect();
                }
                writeln!(
                    f,
                    "  {label:9} {c:3}/{:3} = {:5.1}%  unanswerable declined {d}/{} = {:5.1}%  ({})",
                    ans.len(),
                    100.0 * pct(c, ans.len()),
                    un.len(),
                    100.0 * pct(d, un.len()),
                    dbs.into_iter().collect::<Vec<_>>().join(", ")
                )?;
            }
        }
        writeln!(f, "per category:")?;
        for (k, (c, d, t)) in self.group(|s| s.category.clone()) {
            writeln!(f, "  {k:16} {c:3}/{t:3} = {:5.1}%  answered {d}", 100.0 * pct(c, t))?;
        }
        writeln!(f, "per database:")?;
        for (k, (c, d, t)) in self.group(|s| s.db.clone()) {
            writeln!(f, "  {k:16} {c:3}/{t:3} = {:5.1}%  answered {d}", 100.0 * pct(c, t))?;
        }
        let (tr, cr) = self.recall();
        writeln!(f, "schema-linking recall: tables {tr:.3}, columns {cr:.3}")?;
        let un: Vec<_> = self.scored.iter().filter(|s| !s.answerable).collect();
        if !un.is_empty() {
            let declined = un.iter().filter(|s| s.declined).count();
            writeln!(f, "unanswerable declined: {declined}/{} = {:.1}%", un.len(), 100.0 * self.decline_rate())?;
        }
        let (p50, p95) = self.pipeline_latency();
        let (t50, t95) = self.total_latency();
        writeln!(f, "latency ms: pipeline p50 {p50:.2} p95 {p95:.2}; with execution p50 {t50:.2} p95 {t95:.2}")?;
        let ctx: Vec<String> = self.context_ms.iter().map(|(d, ms)| format!("{d} {ms:.0}")).collect();
        write!(f, "context build ms (once per database, cached after): {}", ctx.join(", "))
    }
}
