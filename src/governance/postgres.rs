//! Governance of the PostgreSQL lane: a statement that reads only one upstream PostgreSQL
//! database runs there as written, each relation reference replaced by a governed derived table.
//!
//! Each relation's text comes from a [`GovernedPlan`] of reading that table's permitted
//! columns: the row filter and masks are the ones governance put into that plan, unparsed for
//! the upstream. Columns the caller may not read are left out of it, so even a reference the
//! checks here missed finds no such column upstream. A row-filtered table's derived table ends in
//! `OFFSET 0`: PostgreSQL neither pulls a subquery with OFFSET up into the outer query nor pushes
//! the outer query's predicates into it (`is_simple_subquery` and `subquery_is_pushdown_safe` in
//! its planner), so the caller's predicates, which may fail (`1/(x-5)`), run only on rows the
//! filter kept, and see masked values: the security barrier PostgreSQL's own views offer. Tables
//! read in full keep their plain name, and PostgreSQL plans them as it would have. `t.f` is also
//! the call `f(t)` in PostgreSQL when `t` has no column `f`; the lane takes only statements whose
//! qualified names are columns (pipeline/postgres.rs), so no function is reached that way.

use std::collections::BTreeSet;

use super::{denied, Decision, GovernedPlan, Governance};
use crate::error::LaloError;
use crate::governance::rules::{EffectiveLimits, Subject};
use crate::pgsql::splice::{quote_ident, splice, token_at, verify, Shape};
use crate::pgsql::{Analysis, Relation};

/// A statement of the PostgreSQL lane that governance produced. Its constructor is private to
/// governance: the lane runs nothing else.
#[derive(Debug, Clone)]
pub struct GovernedSql {
    /// The upstream it runs on.
    pub upstream: String,
    /// The statement the upstream runs, for the text it was made from.
    pub sql: String,
    /// Each relation's first token and the governed text that replaces its name: the same for
    /// every text of the statement's shape.
    replacements: Vec<(usize, String)>,
    /// Tables and columns the statement reads (`db.schema.table[.column]`).
    pub objects: Vec<String>,
    pub decision: Decision,
    pub rules: Vec<String>,
    pub limits: EffectiveLimits,
    /// It reads one table by its whole primary key (at most one row, found by index): it may
    /// share a pipelined upstream connection. Set by the lane, which knows the table's keys.
    pub key_lookup: bool,
}

/// One relation reference, resolved and governed by the caller of [`Governance::govern_postgres`].
pub struct RelationPart<'a> {
    pub relation: &'a Relation,
    /// lalo's name of the table, `db.schema.table`.
    pub table: &'a str,
    /// The upstream's own schema and table names.
    pub remote: (&'a str, &'a str),
    /// Every column of the table, in order, and those the caller may not read.
    pub columns: &'a [String],
    pub denied: &'a [String],
    /// Governance of reading the permitted columns, and the upstream SQL that plan runs as.
    pub governed: &'a GovernedPlan,
    pub upstream_sql: &'a str,
}

impl Governance {
    /// The governed upstream statement for `text` (analyzed as `analysis`) whose relations are
    /// `parts`, or the refusal governance would give the same statement on the engine.
    pub fn govern_postgres(
        &self,
        subject: &Subject,
        upstream: &str,
        text: &str,
        shape: &Shape,
        analysis: &Analysis,
        parts: &[RelationPart<'_>],
    ) -> Result<GovernedSql, LaloError> {
        let named = |c: &str| analysis.columns.iter().any(|r| r.eq_ignore_ascii_case(c));
        for p in parts {
            // A denied column named anywhere in the statement (under any qualifier or alias) is
            // refused, as is a star or a column list renaming the table's columns by position.
            if let Some(c) = p.denied.iter().find(|c| named(c)) {
                return Err(denied(&format!("{}.{}", p.table, c.to_lowercase())));
            }
            if let Some(c) = p.denied.first() {
                if analysis.star || p.relation.renames_columns {
                    return Err(denied(&format!("{}.{}", p.table, c.to_lowercase())));
                }
            }
        }
        let mut replacements = Vec::with_capacity(parts.len());
        let mut objects = BTreeSet::new();
        let (mut filtered, mut masked) = (false, false);
        let mut rules = Vec::new();
        for p in parts {
            let (f, m) = p.governed.decision.parts();
            filtered |= f;
            masked |= m;
            // A table read in full keeps its name (a derived table in its place, pulled up, would
            // change what `count(t.*)` counts over an outer join); the others read as PostgreSQL
            // reads a view with their definition.
            let text = if !f && !m && p.denied.is_empty() {
                format!("{}.{}", quote_ident(p.remote.0), quote_ident(p.remote.1))
            } else if f {
                format!("({} OFFSET 0)", p.upstream_sql)
            } else {
                format!("({})", p.upstream_sql)
            };
            let token = token_at(&shape.tokens, p.relation.location).ok_or_else(|| {
                LaloError::Internal(format!("PostgreSQL lane: no token at relation {}", p.relation.name))
            })?;
            let mut text = text;
            if !p.relation.aliased {
                // Qualified references (`staff.id`) keep working through the alias.
                text.push_str(" AS ");
                text.push_str(&quote_ident(&p.relation.name));
            }
            replacements.push((token, text));
            objects.insert(p.table.to_string());
            for c in p.columns.iter().filter(|c| named(c)) {
                objects.insert(format!("{}.{}", p.table, c.to_lowercase()));
            }
            for r in &p.governed.rules {
                if !rules.contains(r) {
                    rules.push(r.clone());
                }
            }
        }
        let lane = |why: String| LaloError::Internal(format!("PostgreSQL lane: {why}"));
        let (sql, governed) = splice(text, &shape.tokens, &replacements).map_err(lane)?;
        verify(&sql, &governed).map_err(lane)?;
        Ok(GovernedSql {
            upstream: upstream.to_string(),
            sql,
            replacements,
            objects: objects.into_iter().collect(),
            decision: Decision::of(filtered, masked),
            rules,
            limits: self.limits_for(subject),
            key_lookup: false,
        })
    }
}

impl GovernedSql {
    /// The statement for `text`, a statement of the same shape as the one this was made for
    /// (only its constants differ): the same replacements at the same tokens. The shape fixes
    /// the parse tree but for constant values, so the check made for the first text holds.
    pub fn render(&self, text: &str, shape: &Shape) -> Result<String, LaloError> {
        splice(text, &shape.tokens, &self.replacements)
            .map(|(sql, _)| sql)
            .map_err(|why| LaloError::Internal(format!("PostgreSQL lane: {why}")))
    }
}
