//! The built-in `rules` drafter: a semantic parser without a model. It links the question's words
//! to tables, columns and sample values, reads its intent (counts, aggregates, grouping, ranking,
//! comparisons, dates), joins along the key graph and writes one PostgreSQL SELECT, or declines.

mod cues;
#[cfg(test)]
mod habits_tests;
mod index;
pub(crate) mod instruct;
mod joins;
mod link;
mod plan;
mod ratio;
mod shape;
mod sql;
mod states;
pub(crate) mod text;
mod vocab;

use crate::nl::context::SchemaContext;

/// The drafter's answer to one question.
#[derive(Debug, Clone, PartialEq)]
pub enum Drafted {
    /// One SELECT over the context's tables (`schema.table` names).
    Sql { sql: String, tables: Vec<String>, confidence: f32, explanation: String },
    /// No confident reading; `reason` says what was missing.
    Declined { reason: String },
}

/// A drafter with its per-schema index built once; `draft` is cheap per question.
#[derive(Debug, Clone)]
pub struct Drafter {
    index: index::Index,
}

impl Drafter {
    /// Index `ctx`: word stems of names and descriptions, sample values, the join graph.
    pub fn new(ctx: &SchemaContext) -> Drafter {
        Drafter { index: index::Index::new(ctx) }
    }

    /// Draft SQL for `question`, or decline.
    pub fn draft(&self, question: &str) -> Drafted {
        if self.index.tables.is_empty() {
            return Drafted::Declined { reason: "no tables are visible".into() };
        }
        match plan::plan(question, &self.index) {
            Ok((sql, tables, confidence, explanation)) => Drafted::Sql { sql, tables, confidence, explanation },
            Err(reason) => Drafted::Declined { reason },
        }
    }
}

/// Draft SQL for `question` over `ctx` (indexes the schema each call; keep a [`Drafter`] to reuse it).
pub fn draft(question: &str, ctx: &SchemaContext) -> Drafted {
    Drafter::new(ctx).draft(question)
}
