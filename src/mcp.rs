//! lalo as an MCP server: tools for AI agents (list_tables, describe_table, search_schema,
//! query, ask, explain), over stdio (`lalo mcp --user NAME`) and streamable HTTP at `/mcp`
//! (bearer token → user). Every call runs through the same session, governance and audit path
//! as a SQL client; tool errors carry the SQLSTATE.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use futures::StreamExt;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{schemars, tool, tool_handler, tool_router, ErrorData, RoleServer, ServerHandler};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::LaloError;
use crate::router::Route;
use crate::pipeline::{Lalo, Outcome, Request};
use crate::session::{EntryPoint, Session};

/// The user an HTTP request was authenticated as (set by the bearer-token layer).
#[derive(Debug, Clone)]
pub struct McpUser(pub String);

/// The MCP server for one connection.
#[derive(Clone)]
pub struct LaloMcp {
    lalo: Arc<Lalo>,
    /// The user for stdio; HTTP requests carry theirs.
    fixed_user: Option<String>,
    tool_router: ToolRouter<Self>,
    /// The last question answered in this MCP session and whose it was: each tool call opens a
    /// lalo session of its own, so the conversation lives here (one instance per MCP session).
    conversation: Arc<parking_lot::Mutex<Option<(String, crate::nl::followup::Turn)>>>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ListTablesArgs {
    /// Only tables in this schema (e.g. "tpch"); all schemas when omitted.
    pub schema: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct DescribeArgs {
    /// The table, as "schema.table" or "database.schema.table" (e.g. "tpch.orders").
    pub table: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SearchArgs {
    /// A question or keywords, e.g. "customer phone numbers by nation".
    pub question: String,
    /// How many tables to return (default 5).
    pub limit: Option<usize>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct QueryArgs {
    /// One read-only SQL statement (PostgreSQL dialect), e.g. "SELECT n_name FROM tpch.nation LIMIT 5".
    pub sql: String,
    /// Maximum rows to return (default 100, at most 10000); `truncated` tells if there were more.
    pub max_rows: Option<u64>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct AskArgs {
    /// A question in plain language about the data. It may refer to the previous question of
    /// this MCP session ("and in 1996?", "only for Germany", "show more columns").
    pub question: String,
    /// Maximum rows to return (default 100).
    pub max_rows: Option<u64>,
    /// true: the question stands alone, the previous one is forgotten.
    pub new_conversation: Option<bool>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ExplainArgs {
    /// A SQL statement, or a question in plain language; nothing is executed.
    pub input: String,
}

fn tool_error(e: &LaloError) -> CallToolResult {
    let mut v = json!({ "sqlstate": e.sqlstate(), "message": e.to_string() });
    if let Some(h) = e.hint() {
        v["hint"] = json!(h);
    }
    CallToolResult::structured_error(v)
}

/// A tool's answer: structured content, or a tool error carrying the SQLSTATE.
fn reply(result: Result<Value, LaloError>) -> CallToolResult {
    match result {
        Ok(v) => CallToolResult::structured(v),
        Err(e) => tool_error(&e),
    }
}

/// Rows as JSON objects (column name → value).
fn batches_to_json(batches: &[RecordBatch]) -> Result<Vec<Value>, LaloError> {
    let mut buf = Vec::new();
    {
        let mut w = datafusion::arrow::json::ArrayWriter::new(&mut buf);
        for b in batches {
            w.write(b).map_err(|e| LaloError::Internal(e.to_string()))?;
        }
        w.finish().map_err(|e| LaloError::Internal(e.to_string()))?;
    }
    if buf.is_empty() {
        return Ok(vec![]);
    }
    serde_json::from_slice(&buf).map_err(|e| LaloError::Internal(e.to_string()))
}

/// Rows of an outcome as JSON objects, at most `cap`, with the SQL that produced them.
async fn rows_json(outcome: Outcome, cap: u64, sql: Option<String>) -> Result<Value, LaloError> {
    let Outcome::Rows { schema, mut rows } = outcome else {
        return Err(LaloError::NotSupported("only statements that return rows can run here".into()));
    };
    let mut batches = Vec::new();
    while let Some(b) = rows.next().await {
        batches.push(b?);
    }
    let mut values = batches_to_json(&batches)?;
    let truncated = values.len() as u64 > cap;
    values.truncate(cap as usize);
    let columns: Vec<Value> = schema
        .fields()
        .iter()
        .map(|f| json!({ "name": f.name(), "type": crate::engine::info_schema::pg_type_name(&f.data_type().to_string()) }))
        .collect();
    Ok(json!({ "sql": sql, "columns": columns, "rows": values, "row_count": values.len(), "truncated": truncated }))
}

#[tool_router]
impl LaloMcp {
    pub fn new(lalo: Arc<Lalo>, fixed_user: Option<String>) -> Self {
        Self { lalo, fixed_user, tool_router: Self::tool_router(), conversation: Default::default() }
    }

    fn session(&self, ctx: &RequestContext<RoleServer>) -> Result<Session, LaloError> {
        let user = match &self.fixed_user {
            Some(u) => u.clone(),
            None => ctx
                .extensions
                .get::<axum::http::request::Parts>()
                .and_then(|p| p.extensions.get::<McpUser>())
                .map(|u| u.0.clone())
                .ok_or_else(|| LaloError::NoAccess("no authenticated user for this MCP request".into()))?,
        };
        let client = if self.fixed_user.is_some() { "mcp:stdio" } else { "mcp:http" };
        self.lalo.open_session(&user, "", client, EntryPoint::Mcp)
    }

    /// The span of one tool call's statement, in the caller's trace when its HTTP request carried
    /// a W3C `traceparent`.
    fn span(&self, ctx: &RequestContext<RoleServer>, text: &str) -> tracing::Span {
        if !crate::telemetry::enabled() {
            return tracing::Span::none();
        }
        let parts = ctx.extensions.get::<axum::http::request::Parts>();
        let user = match &self.fixed_user {
            Some(u) => u.clone(),
            None => parts.and_then(|p| p.extensions.get::<McpUser>()).map(|u| u.0.clone()).unwrap_or_default(),
        };
        crate::telemetry::statement_span("mcp", &user, text, parts.map(|p| &p.headers))
    }

    /// Run one SQL statement (or question) through the governed pipeline, capped.
    async fn run(&self, session: &Session, route: Route, input: &str, cap: u64) -> Result<Value, LaloError> {
        let sql = match &route {
            Route::Query(s) => Some(s.to_string()),
            _ => None,
        };
        let delivery = crate::pipeline::Delivery { cap: Some(cap + 1), ..Default::default() };
        let outcome = self.lalo.run(session, crate::pipeline::Input::Routed { route, text: input }, delivery).await?;
        rows_json(outcome, cap, sql).await
    }

    fn single_statement(&self, session: &Session, sql: &str) -> Result<Route, LaloError> {
        let mut routes = self.lalo.route(session, sql)?;
        if routes.len() != 1 {
            return Err(LaloError::NotSupported("send exactly one SQL statement".into()));
        }
        let route = routes.remove(0);
        match route {
            Route::Query(_) | Route::Ask { .. } => Ok(route),
            _ => Err(LaloError::NotSupported("session commands (SET, BEGIN, cursors) are not available as tools".into())),
        }
    }

    #[tool(
        description = "List the tables you may read: database, schema, table and a one-line description. Start here to see what data exists.",
        annotations(title = "List tables", read_only_hint = true, open_world_hint = false)
    )]
    async fn list_tables(&self, Parameters(args): Parameters<ListTablesArgs>, ctx: RequestContext<RoleServer>) -> Result<CallToolResult, ErrorData> {
        let result = async {
            let session = self.session(&ctx)?;
            let tables = self.lalo.visible_tables(&session).await?;
            let list: Vec<Value> = tables
                .iter()
                .filter(|t| args.schema.as_deref().is_none_or(|s| s.eq_ignore_ascii_case(&t.schema)))
                .map(|t| json!({ "database": t.database, "schema": t.schema, "table": t.table, "description": t.description }))
                .collect();
            self.lalo.audit_tool(&session, "list_tables", &args.schema.clone().unwrap_or_default(), list.len() as u64).await;
            Ok::<_, LaloError>(json!({ "tables": list }))
        }
        .await;
        Ok(reply(result))
    }

    #[tool(
        description = "Describe one table: its columns with PostgreSQL types and descriptions, and which columns are masked for you. Columns you may not read are not listed.",
        annotations(title = "Describe a table", read_only_hint = true, open_world_hint = false)
    )]
    async fn describe_table(&self, Parameters(args): Parameters<DescribeArgs>, ctx: RequestContext<RoleServer>) -> Result<CallToolResult, ErrorData> {
        let result = async {
            let session = self.session(&ctx)?;
            let tables = self.lalo.visible_tables(&session).await?;
            let want = args.table.to_ascii_lowercase();
            let t = tables
                .iter()
                .find(|t| {
                    want == format!("{}.{}", t.schema, t.table) || want == format!("{}.{}.{}", t.database, t.schema, t.table)
                        || (want == t.table && t.database == session.database)
                })
                .ok_or_else(|| LaloError::UnknownTable(format!("relation \"{}\" does not exist", args.table)))?;
            let full = format!("{}.{}.{}", t.database, t.schema, t.table);
            let masks = self.lalo.masks_for(&session, &full);
            let columns: Vec<Value> = t
                .columns
                .iter()
                .map(|c| {
                    json!({ "name": c.name, "type": c.data_type, "description": c.description,
                            "masked": masks.get(&c.name.to_ascii_lowercase()) })
                })
                .collect();
            self.lalo.audit_tool(&session, "describe_table", &args.table, columns.len() as u64).await;
            Ok::<_, LaloError>(json!({ "table": full, "description": t.description, "columns": columns }))
        }
        .await;
        Ok(reply(result))
    }

    #[tool(
        description = "Search the schema with a question or keywords; returns the most relevant tables you may read, with the columns that matched. Use before writing SQL.",
        annotations(title = "Search the schema", read_only_hint = true, open_world_hint = false)
    )]
    async fn search_schema(&self, Parameters(args): Parameters<SearchArgs>, ctx: RequestContext<RoleServer>) -> Result<CallToolResult, ErrorData> {
        let result = async {
            let session = self.session(&ctx)?;
            let tables = self.lalo.visible_tables(&session).await?;
            let hits = crate::search::rank(&tables, &args.question, args.limit.unwrap_or(5).clamp(1, 50));
            self.lalo.audit_tool(&session, "search_schema", &args.question, hits.len() as u64).await;
            Ok::<_, LaloError>(json!({ "results": hits }))
        }
        .await;
        Ok(reply(result))
    }

    #[tool(
        description = "Run one read-only SQL statement (PostgreSQL dialect) and get rows as JSON objects. Results are capped at max_rows (default 100); `truncated` is true when more rows exist. Your access rules, row filters and masks apply.",
        annotations(title = "Query with SQL", read_only_hint = true, open_world_hint = false)
    )]
    async fn query(&self, Parameters(args): Parameters<QueryArgs>, ctx: RequestContext<RoleServer>) -> Result<CallToolResult, ErrorData> {
        let cap = args.max_rows.unwrap_or(100).clamp(1, 10_000);
        let result = async {
            let session = self.session(&ctx)?;
            let route = match self.single_statement(&session, &args.sql) {
                Ok(Route::Ask { .. }) => return Err(LaloError::Syntax("query takes SQL; use the ask tool for questions".into())),
                Ok(r) => r,
                Err(e) => return Err(self.lalo.refuse(&session, &args.sql, e).await),
            };
            self.run(&session, route, &args.sql, cap).await
        };
        let result = tracing::Instrument::instrument(result, self.span(&ctx, &args.sql)).await;
        Ok(reply(result))
    }

    #[tool(
        description = "Ask a question in plain language. lalo writes the SQL from the schema you may read, checks it against your policies, runs it and returns the SQL with the rows. Questions it cannot answer confidently are declined with SQLSTATE 42000.",
        annotations(title = "Ask a question", read_only_hint = true, open_world_hint = false)
    )]
    async fn ask(&self, Parameters(args): Parameters<AskArgs>, ctx: RequestContext<RoleServer>) -> Result<CallToolResult, ErrorData> {
        let cap = args.max_rows.unwrap_or(100).clamp(1, 10_000);
        let result = async {
            let session = self.session(&ctx)?;
            // A follow-up reads against this MCP session's last question, the same user's only.
            if args.new_conversation == Some(true) {
                self.conversation.lock().take();
            }
            let last = self.conversation.lock().clone().filter(|(u, _)| *u == session.user).map(|(_, t)| t);
            *session.conversation.lock() = last;
            let input = format!("ASK {}", args.question);
            let delivery = crate::pipeline::Delivery { cap: Some(cap + 1), ..Default::default() };
            let a = self.lalo.answer(&session, &args.question, &input, delivery).await?;
            if let Some(turn) = session.conversation.lock().clone() {
                *self.conversation.lock() = Some((session.user.clone(), turn));
            }
            let mut v = rows_json(a.outcome, cap, Some(a.sql)).await?;
            v["decision"] = json!(a.decision);
            v["rules"] = json!(a.rules);
            Ok(v)
        };
        let result = tracing::Instrument::instrument(result, self.span(&ctx, &args.question)).await;
        Ok(reply(result))
    }

    #[tool(
        description = "Explain a SQL statement or a question without running it: the SQL, the plan after your policies are applied (row filters, masks) and the rules that apply.",
        annotations(title = "Explain", read_only_hint = true, open_world_hint = false)
    )]
    async fn explain(&self, Parameters(args): Parameters<ExplainArgs>, ctx: RequestContext<RoleServer>) -> Result<CallToolResult, ErrorData> {
        let result = async {
            let session = self.session(&ctx)?;
            // Plain text that reads like a question is explained as one (no ASK prefix needed).
            let route = match self.single_statement(&session, &args.input) {
                Err(LaloError::Syntax(_)) if crate::router::reads_like_question(&args.input) => {
                    Route::Ask { question: args.input.clone(), explain: true }
                }
                r => r?,
            };
            let stmt = match route {
                Route::Query(stmt) => stmt,
                Route::Ask { question, .. } => {
                    let p = self.lalo.explain_question(&session, &question, &format!("EXPLAIN ASK {question}")).await?;
                    return Ok(json!({
                        "question": question,
                        "sql": p.sql,
                        "plan": format!("{}", p.governed.plan().display_indent()),
                        "decision": p.governed.decision,
                        "rules": p.governed.rules,
                        "objects": p.governed.objects,
                        "context": p.trace.given_tables,
                        "trace": p.trace,
                    }));
                }
                _ => return Err(LaloError::NotSupported("explain takes one SQL statement or ASK question".into())),
            };
            let start = Request { input: format!("EXPLAIN {}", args.input), sql: Some(stmt.to_string()), ..Default::default() };
            let g = self.lalo.explain_sql(&session, &stmt, &start).await?;
            Ok(json!({
                "sql": stmt.to_string(),
                "plan": format!("{}", g.plan().display_indent()),
                "decision": g.decision,
                "rules": g.rules,
                "objects": g.objects,
            }))
        }
        .await;
        Ok(reply(result))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for LaloMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_instructions(
            "lalo is a governed SQL gateway. Use list_tables or search_schema to find data, describe_table for \
             columns, then query (SQL) or ask (plain language). Everything is read-only and runs with the rights \
             of the lalo user you act for; denied objects return SQLSTATE 42501.",
        )
    }
}

/// Bearer tokens from the environment, mapped to users (`[mcp] tokens`).
pub fn token_map(lalo: &Lalo) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for t in &lalo.config.mcp.tokens {
        match std::env::var(&t.token_env) {
            Ok(tok) if !tok.is_empty() => {
                out.insert(tok, t.user.clone());
            }
            _ => tracing::warn!(env = %t.token_env, user = %t.user, "MCP token variable is not set; that token is disabled"),
        }
    }
    out
}
