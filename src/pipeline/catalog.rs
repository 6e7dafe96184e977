//! What a caller may see of the catalog (MCP's list and describe tools, questions' context) and
//! the admin command that re-reads an upstream's catalog.

use std::sync::Arc;

use crate::engine::views::SeeAll;
use crate::error::LaloError;
use crate::session::Session;

use super::{AuditScope, Lalo, Outcome, Request};

impl Lalo {
    /// REFRESH UPSTREAM [name], audited with the number of tables the upstreams now serve.
    pub(super) async fn refresh(&self, session: &Session, name: Option<&str>, scope: AuditScope) -> Result<Outcome, LaloError> {
        match self.refresh_upstreams(session, name).await {
            Ok(n) => {
                scope.finish(n as u64).await?;
                Ok(Outcome::command("REFRESH UPSTREAM"))
            }
            Err(e) => Err(scope.fail(e).await),
        }
    }

    /// Record a catalog tool call (MCP list/describe/search) that reads no table rows.
    pub async fn audit_tool(&self, session: &Session, tool: &str, input: &str, rows: u64) {
        let scope = AuditScope::open(self.audit.clone(), session, &Request { input: format!("{tool}: {input}"), ..Default::default() });
        if let Err(e) = scope.finish(rows).await {
            tracing::error!(error = %e, "audit write failed");
        }
    }

    /// Re-read the catalog of one upstream (or all); returns how many tables they serve.
    /// Needs the `refresh` action on the upstream's database in policy.csv (admins have `*`).
    async fn refresh_upstreams(&self, session: &Session, name: Option<&str>) -> Result<usize, LaloError> {
        let ups = self.engine.upstreams();
        let targets: Vec<_> = match name {
            Some(n) => vec![ups.get(n).cloned().ok_or_else(|| LaloError::UnknownTable(format!("upstream \"{n}\" does not exist")))?],
            None => ups.iter().cloned().collect(),
        };
        let mut total = 0;
        for up in targets {
            if !self.governance.may(&session.user, &up.name, "refresh") {
                return Err(LaloError::PermissionDenied {
                    object: up.name.clone(),
                    hint: Some("refreshing an upstream needs the refresh action on its database in policy.csv".into()),
                });
            }
            total += up.refresh().await?;
        }
        // New or changed tables are classified before anyone reads them.
        self.refresh_pii().await?;
        Ok(total)
    }

    /// Every table the session's caller may read, with visible columns and their docs.
    pub async fn visible_tables(&self, session: &Session) -> Result<Vec<crate::search::TableEntry>, LaloError> {
        let vis: Arc<dyn crate::engine::views::Visibility> =
            if self.governance.enabled() { self.governance.visibility(&session.user) } else { Arc::new(SeeAll) };
        self.tables_seen_by(vis).await
    }

    /// Every table `vis` lets through, with the columns it lets through and their docs.
    pub async fn tables_seen_by(
        &self,
        vis: Arc<dyn crate::engine::views::Visibility>,
    ) -> Result<Vec<crate::search::TableEntry>, LaloError> {
        use crate::search::{ColumnEntry, TableEntry};
        let docs = self.engine.docs();
        let catalogs = self.engine.catalogs();
        let mut out = Vec::new();
        for db in catalogs.catalog_names() {
            let Some(cat) = catalogs.catalog(&db) else { continue };
            for schema in cat.schema_names() {
                if matches!(schema.as_str(), "pg_catalog" | "information_schema") {
                    continue;
                }
                let Some(sp) = cat.schema(&schema) else { continue };
                let mut names = sp.table_names();
                names.sort();
                for table in names {
                    if !vis.table_visible(&db, &schema, &table) {
                        continue;
                    }
                    let Some(provider) = sp.table(&table).await? else { continue };
                    let doc = docs.read().table(&db, &schema, &table).cloned().unwrap_or_default();
                    let columns = provider
                        .schema()
                        .fields()
                        .iter()
                        .filter(|f| vis.column_visible(&db, &schema, &table, f.name()))
                        .map(|f| ColumnEntry {
                            name: f.name().clone(),
                            data_type: crate::engine::info_schema::pg_type_name(&f.data_type().to_string()),
                            description: doc.columns.get(&f.name().to_ascii_lowercase()).cloned().unwrap_or_default(),
                        })
                        .collect();
                    out.push(TableEntry { database: db.clone(), schema: schema.clone(), table, description: doc.description, columns });
                }
            }
        }
        Ok(out)
    }

    /// Masks that apply to the session's caller on a table (column → kind).
    pub fn masks_for(&self, session: &Session, table: &str) -> std::collections::BTreeMap<String, String> {
        if !self.governance.enabled() {
            return Default::default();
        }
        self.governance.masks_for(&self.subject(session), table)
    }
}


impl Lalo {
    /// A statement refused before it could run (it did not route, or a tool does not take it):
    /// audited, and the error handed back.
    pub async fn refuse(&self, session: &Session, text: &str, e: LaloError) -> LaloError {
        let start = Request { input: text.to_string(), ..Default::default() };
        AuditScope::open(self.audit.clone(), session, &start).fail(e).await
    }

    /// Plan and govern a statement without running it (MCP's explain tool), audited like EXPLAIN.
    pub async fn explain_sql(
        &self,
        session: &Session,
        stmt: &datafusion::sql::sqlparser::ast::Statement,
        start: &Request,
    ) -> Result<crate::governance::GovernedPlan, LaloError> {
        let mut scope = AuditScope::open(self.audit.clone(), session, start);
        let governed = async {
            let plan = self.plan(session, stmt).await?;
            self.govern(session, plan).await
        }
        .await;
        match governed {
            Ok(g) => {
                scope.governed(&g);
                scope.finish(0).await?;
                Ok(g)
            }
            Err(e) => Err(scope.fail(e).await),
        }
    }
}
