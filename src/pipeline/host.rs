//! The gateway as the question planner's host (`nl::Host`): the same planning, governance and
//! internal reads every statement gets.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::Statement;

use super::Lalo;
use crate::config::Config;
use crate::engine::Engine;
use crate::error::LaloError;
use crate::governance::{Governance, GovernedPlan};
use crate::session::Session;

#[async_trait::async_trait]
impl crate::nl::Host for Lalo {
    fn config(&self) -> &Config {
        &self.config
    }

    fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    fn governance(&self) -> &Arc<Governance> {
        &self.governance
    }

    fn questions(&self) -> &crate::nl::catalog::ContextCache {
        &self.questions
    }

    fn llm(&self) -> &crate::nl::llm::LlmState {
        &self.llm
    }

    fn retrieval(&self) -> &crate::nl::index::RetrievalIndex {
        &self.retrieval
    }

    async fn plan(&self, session: &Session, stmt: &Statement) -> Result<LogicalPlan, LaloError> {
        Lalo::plan(self, session, stmt).await
    }

    async fn govern(&self, session: &Session, plan: LogicalPlan) -> Result<GovernedPlan, LaloError> {
        Lalo::govern(self, session, plan).await
    }

    async fn visible_tables(&self, session: &Session) -> Result<Vec<crate::search::TableEntry>, LaloError> {
        Lalo::visible_tables(self, session).await
    }

    fn masks_for(&self, session: &Session, table: &str) -> BTreeMap<String, String> {
        Lalo::masks_for(self, session, table)
    }

    async fn read_internal(&self, session: &Session, stmt: &Statement, why: &str) -> Result<Vec<RecordBatch>, LaloError> {
        Lalo::read_internal(self, session, stmt, why).await
    }
}
