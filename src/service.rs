//! The one service every entry point calls: open a session, then route, plan, govern, execute
//! and audit each statement. pgwire, MCP and the CLI differ only in how they encode results.

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;

use crate::config::Config;
use crate::engine::views::SeeAll;
use crate::engine::Engine;
use crate::error::LaloError;
use crate::execution::{self, GuardOptions, RowStream};
use crate::governance::audit::{AuditLog, AuditRecord};
use crate::governance::{GovernedPlan, Governance};
use crate::router::{self, Route};
use crate::session::auth::Users;
use crate::session::settings::Settings;
use crate::session::{EntryPoint, Session};

/// The running gateway's shared state.
pub struct Lalo {
    pub config: Config,
    pub engine: Arc<Engine>,
    pub governance: Arc<Governance>,
    pub audit: Arc<AuditLog>,
    pub users: Users,
    users_source: Arc<Users>,
    parser: PostgresCompatibilityParser,
}

impl std::fmt::Debug for Lalo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lalo").finish_non_exhaustive()
    }
}

/// The result of one statement.
pub enum Outcome {
    /// Rows, streamed.
    Rows { schema: SchemaRef, rows: RowStream },
    /// A command with its tag; `changed` lists settings to report (ParameterStatus).
    Command { tag: String, changed: Vec<(String, String)> },
    Begin,
    Commit,
    Empty,
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Rows { schema, .. } => write!(f, "Rows({} columns)", schema.fields().len()),
            Outcome::Command { tag, .. } => write!(f, "Command({tag})"),
            Outcome::Begin => write!(f, "Begin"),
            Outcome::Commit => write!(f, "Commit"),
            Outcome::Empty => write!(f, "Empty"),
        }
    }
}

/// What the audit record of a statement starts from.
#[derive(Debug, Clone, Default)]
pub struct AuditStart {
    pub input: String,
    pub question: Option<String>,
    pub sql: Option<String>,
}

impl Lalo {
    /// Load config, policies and catalog; open the audit log.
    pub async fn start(config: Config) -> Result<Arc<Lalo>, LaloError> {
        crate::metrics::install();
        let engine = Arc::new(Engine::build(&config).await?);
        let governance = Arc::new(Governance::load(&config).await?);
        let audit_path = config.resolve(&config.governance.audit_log);
        let audit = Arc::new(AuditLog::open(&audit_path)?);
        engine.register_audit_table(&audit_path).await?;
        let users = Users::from_config(&config.users)?;
        let users_source = Arc::new(users.clone());
        Ok(Arc::new(Lalo { config, engine, governance, audit, users, users_source, parser: PostgresCompatibilityParser::new() }))
    }

    /// The password source SCRAM authenticates against.
    pub fn users_source(&self) -> Arc<Users> {
        self.users_source.clone()
    }

    /// Open a session for an authenticated user on database `db` (empty: the embedded one).
    pub fn open_session(&self, user: &str, db: &str, client: &str, entry: EntryPoint) -> Result<Session, LaloError> {
        self.open_session_with(user, db, client, entry, &[])
    }

    /// Open a session, applying settings sent at connection start (startup parameters and
    /// `options=-c name=value`). A parameter that would change identity is refused (42501).
    pub fn open_session_with(
        &self,
        user: &str,
        db: &str,
        client: &str,
        entry: EntryPoint,
        startup: &[(String, String)],
    ) -> Result<Session, LaloError> {
        let entry_user = self.users.get(user).ok_or_else(|| LaloError::UnknownUser(user.to_string()))?;
        let db = if db.is_empty() || db == user && !self.engine.has_database(db) { crate::engine::EMBEDDED_DB } else { db };
        if !self.engine.has_database(db) {
            return Err(LaloError::NoAccess(format!("database \"{db}\" does not exist")));
        }
        let subject = self.governance.subject(user, &entry_user.attributes);
        let vis = if self.governance.enabled() { self.governance.visibility(user) } else { Arc::new(SeeAll) };
        let mut settings = Settings::default();
        if self.config.server.statement_timeout_ms > 0 {
            let _ = settings.set("statement_timeout", &self.config.server.statement_timeout_ms.to_string());
        }
        for (k, v) in startup_settings(startup)? {
            // Unknown startup parameters are ignored, as PostgreSQL ignores unknown GUCs from drivers.
            match settings.set(&k, &v) {
                Err(e @ LaloError::PermissionDenied { .. }) => return Err(e),
                _ => {}
            }
        }
        let settings = Arc::new(parking_lot::RwLock::new(settings));
        let ctx = self.engine.session_context(db, user, vis, settings.clone())?;
        Ok(Session::new(subject, db.to_string(), client.to_string(), entry, settings, ctx))
    }

    /// Split text into routed statements.
    pub fn route(&self, session: &Session, text: &str) -> Result<Vec<Route>, LaloError> {
        let mode = session.settings.read().input_mode();
        router::route_text(&self.parser, text, &mode)
    }

    /// Resolve one SQL statement into a logical plan (parameters stay placeholders).
    pub async fn plan(&self, session: &Session, stmt: &Statement) -> Result<LogicalPlan, LaloError> {
        let state = session.ctx.state();
        let plan = state.statement_to_plan(DfStatement::Statement(Box::new(stmt.clone()))).await?;
        Ok(plan)
    }

    /// Govern a plan for this session's caller.
    pub async fn govern(&self, session: &Session, plan: LogicalPlan) -> Result<GovernedPlan, LaloError> {
        self.governance.govern(&session.ctx, plan, &session.subject, &session.database).await
    }

    /// Run a governed plan: admit under limits, execute, and stream rows through the guard
    /// (timeout, cancel, row cap, audit on completion).
    pub async fn execute(
        &self,
        session: &Session,
        governed: GovernedPlan,
        params: Option<ParamValues>,
        start: AuditStart,
        cancel: Option<execution::CancelArm>,
    ) -> Result<Outcome, LaloError> {
        let began = Instant::now();
        let slot = self.governance.limits.admit(
            &session.user,
            &governed.limits,
            self.config.governance.rate_limit_per_minute,
        )?;
        let mut plan = governed.plan().clone();
        if let Some(p) = params {
            plan = plan.replace_params_with_values(&p)?;
        }
        let schema: SchemaRef = Arc::new(plan.schema().as_arrow().clone());
        let df = session.ctx.execute_logical_plan(plan).await?;
        let stream = df.execute_stream().await?;
        let timeout_ms = [
            session.settings.read().statement_timeout_ms(),
            governed.limits.statement_timeout_ms.unwrap_or(0),
        ]
        .into_iter()
        .filter(|v| *v > 0)
        .min();
        let max_rows = [self.config.governance.max_rows, governed.limits.max_rows.unwrap_or(0)]
            .into_iter()
            .filter(|v| *v > 0)
            .min();
        let record = self.record(session, &start, Some(&governed));
        let rows = execution::guard(
            stream,
            GuardOptions { timeout_ms, max_rows, cancel, audit: self.audit.clone(), record, began, entry: session.entry.as_str(), slot: Some(slot) },
        );
        Ok(Outcome::Rows { schema, rows })
    }

    /// Route, plan, govern and run one routed statement (simple-protocol path and CLI).
    pub async fn run_route(
        &self,
        session: &Session,
        route: Route,
        input: &str,
        cancel: Option<execution::CancelArm>,
    ) -> Result<Outcome, LaloError> {
        let start = AuditStart { input: input.to_string(), ..Default::default() };
        match route {
            Route::Query(stmt) => {
                let began = Instant::now();
                let sql = stmt.to_string();
                let start = AuditStart { sql: Some(sql), ..start };
                let result = async {
                    let plan = self.plan(session, &stmt).await?;
                    self.govern(session, plan).await
                }
                .await;
                match result {
                    Ok(governed) => self.execute(session, governed, None, start, cancel).await,
                    Err(e) => {
                        self.audit_failure(session, &start, &e, began).await;
                        Err(e)
                    }
                }
            }
            Route::Ask { .. } => {
                let e = LaloError::NotAnswerable {
                    message: "natural-language questions need the planner, which this build does not include yet".into(),
                    hint: Some("send SQL instead".into()),
                };
                self.audit_failure(session, &start, &e, Instant::now()).await;
                Err(e)
            }
            other => self.session_command(session, other, &start).await,
        }
    }

    /// SET/SHOW/RESET/transactions/DISCARD.
    pub async fn session_command(&self, session: &Session, route: Route, start: &AuditStart) -> Result<Outcome, LaloError> {
        let began = Instant::now();
        let result = self.session_command_inner(session, route);
        match &result {
            Ok(_) => {
                let mut rec = self.record(session, start, None);
                rec.decision = "allowed".into();
                rec.duration_ms = began.elapsed().as_secs_f64() * 1000.0;
                self.audit.append(rec).await?;
                crate::metrics::statement("ok", session.entry.as_str(), began.elapsed().as_secs_f64());
            }
            Err(e) => self.audit_failure(session, start, e, began).await,
        }
        result
    }

    fn session_command_inner(&self, session: &Session, route: Route) -> Result<Outcome, LaloError> {
        use crate::session::settings::{canonical, REPORTED};
        let reported = |name: &str, s: &Settings| -> Vec<(String, String)> {
            REPORTED
                .iter()
                .filter(|(k, _)| *k == canonical(name))
                .filter_map(|(k, wire)| s.get(k).map(|v| (wire.to_string(), v)))
                .collect()
        };
        match route {
            Route::Set { name, value } => {
                let mut s = session.settings.write();
                s.set(&name, &value)?;
                session.bump_epoch();
                Ok(Outcome::Command { tag: "SET".into(), changed: reported(&name, &s) })
            }
            Route::Reset(name) => {
                let mut s = session.settings.write();
                s.reset(name.as_deref())?;
                if name.is_none() && self.config.server.statement_timeout_ms > 0 {
                    let _ = s.set("statement_timeout", &self.config.server.statement_timeout_ms.to_string());
                }
                session.bump_epoch();
                let changed = match &name {
                    Some(n) => reported(n, &s),
                    None => REPORTED.iter().filter_map(|(k, w)| s.get(k).map(|v| (w.to_string(), v))).collect(),
                };
                Ok(Outcome::Command { tag: "RESET".into(), changed })
            }
            Route::DiscardAll => {
                let mut s = session.settings.write();
                s.reset(None)?;
                if self.config.server.statement_timeout_ms > 0 {
                    let _ = s.set("statement_timeout", &self.config.server.statement_timeout_ms.to_string());
                }
                session.bump_epoch();
                Ok(Outcome::Command { tag: "DISCARD ALL".into(), changed: vec![] })
            }
            Route::Show(name) => {
                let lname = canonical(&name);
                let value = match lname.as_str() {
                    "all" => return Err(LaloError::NotSupported("SHOW ALL is not supported; query pg_settings".into())),
                    "statement_timeout" => {
                        let ms = session.settings.read().statement_timeout_ms();
                        if ms == 0 { "0".into() } else { format!("{ms}ms") }
                    }
                    _ => session.settings.read().get(&lname).ok_or_else(|| LaloError::UnknownSetting(lname.clone()))?,
                };
                let (schema, rows) = execution::single_text(&lname, &value);
                Ok(Outcome::Rows { schema, rows })
            }
            Route::Begin => Ok(Outcome::Begin),
            Route::Commit | Route::Rollback => Ok(Outcome::Commit),
            Route::Noop(tag) => Ok(Outcome::Command { tag: tag.into(), changed: vec![] }),
            Route::Query(_) | Route::Ask { .. } => Err(LaloError::Internal("not a session command".into())),
        }
    }

    /// The audit record a statement starts with.
    pub fn record(&self, session: &Session, start: &AuditStart, governed: Option<&GovernedPlan>) -> AuditRecord {
        AuditRecord {
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            user: session.user.clone(),
            client: session.client.clone(),
            entry: session.entry.as_str().into(),
            input: start.input.clone(),
            question: start.question.clone(),
            sql: start.sql.clone(),
            objects: governed.map(|g| g.objects.clone()).unwrap_or_default(),
            decision: governed.map(|g| g.decision.clone()).unwrap_or_else(|| "allowed".into()),
            rules: governed.map(|g| g.rules.clone()).unwrap_or_default(),
            ..Default::default()
        }
    }

    /// Record a statement that failed before it produced rows.
    pub async fn audit_failure(&self, session: &Session, start: &AuditStart, e: &LaloError, began: Instant) {
        let mut rec = self.record(session, start, None);
        rec.decision = if e.sqlstate() == "42501" { "denied".into() } else { "failed".into() };
        rec.error = Some(format!("{}: {e}", e.sqlstate()));
        rec.duration_ms = began.elapsed().as_secs_f64() * 1000.0;
        let outcome = if rec.decision == "denied" { "denied" } else { "error" };
        crate::metrics::statement(outcome, session.entry.as_str(), began.elapsed().as_secs_f64());
        if let Err(err) = self.audit.append(rec).await {
            tracing::error!(error = %err, "audit write failed");
        }
    }
}

/// Settings carried by startup parameters: plain keys (DateStyle, TimeZone, application_name,
/// ...) and `-c name=value` / `--name=value` pairs inside `options`.
pub fn startup_settings(params: &[(String, String)]) -> Result<Vec<(String, String)>, LaloError> {
    let mut out = Vec::new();
    for (k, v) in params {
        match k.as_str() {
            "user" | "database" | "replication" => {}
            "options" => {
                let mut words = v.split_whitespace();
                while let Some(w) = words.next() {
                    let pair = if w == "-c" { words.next().unwrap_or("") } else { w.trim_start_matches("--").trim_start_matches("-c") };
                    if let Some((name, value)) = pair.split_once('=') {
                        out.push((name.replace('-', "_"), value.to_string()));
                    }
                }
            }
            _ => out.push((k.clone(), v.clone())),
        }
    }
    // Refuse identity changes before anything else is applied.
    let mut probe = Settings::default();
    for (k, v) in &out {
        if let Err(e @ LaloError::PermissionDenied { .. }) = probe.set(k, v) {
            return Err(e);
        }
    }
    Ok(out)
}

/// What `/readyz` reports.
#[derive(Debug, serde::Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub databases: Vec<String>,
    pub upstreams: Vec<UpstreamStatus>,
}

/// One upstream's health.
#[derive(Debug, serde::Serialize)]
pub struct UpstreamStatus {
    pub name: String,
    pub up: bool,
    pub error: Option<String>,
}

impl Lalo {
    /// Whether the gateway can serve: the catalog is loaded; upstream health is reported per upstream.
    pub fn readiness(&self) -> Readiness {
        Readiness { ready: true, databases: self.engine.catalogs().catalog_names(), upstreams: vec![] }
    }
}
