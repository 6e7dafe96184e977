//! What the question planner needs from the gateway around it: the catalog and governance to
//! plan and check drafts as the caller's own statements, its own state (schema contexts, the
//! `llm` drafter, the retrieval index), and reads made on the caller's behalf. The pipeline
//! implements it; `nl` never reaches into the pipeline, so questions and statements stay two
//! layers rather than one knot.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::Statement;

use crate::config::Config;
use crate::engine::Engine;
use crate::error::LaloError;
use crate::governance::{Governance, GovernedPlan};
use crate::session::Session;

#[async_trait::async_trait]
pub trait Host: Send + Sync {
    fn config(&self) -> &Config;
    fn engine(&self) -> &Arc<Engine>;
    fn governance(&self) -> &Arc<Governance>;
    /// Per-caller schema contexts for questions.
    fn questions(&self) -> &super::catalog::ContextCache;
    /// The `llm` drafter, built on first use.
    fn llm(&self) -> &super::llm::LlmState;
    /// The retrieval index over the catalog.
    fn retrieval(&self) -> &super::index::RetrievalIndex;
    /// Plan a statement as the caller's (not yet governed).
    async fn plan(&self, session: &Session, stmt: &Statement) -> Result<LogicalPlan, LaloError>;
    /// Govern a plan as the caller's: what it may run, or why not.
    async fn govern(&self, session: &Session, plan: LogicalPlan) -> Result<GovernedPlan, LaloError>;
    /// The tables the caller may see.
    async fn visible_tables(&self, session: &Session) -> Result<Vec<crate::search::TableEntry>, LaloError>;
    /// The masks on a table's columns for the caller.
    fn masks_for(&self, session: &Session, table: &str) -> BTreeMap<String, String>;
    /// A read made on the caller's behalf: governed as theirs, audited as internal (`why`).
    async fn read_internal(&self, session: &Session, stmt: &Statement, why: &str) -> Result<Vec<RecordBatch>, LaloError>;
}
