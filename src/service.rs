//! The one service every entry point calls: open a session, then route, plan, govern, execute
//! and audit each statement. pgwire, MCP and the CLI differ only in how they encode results.

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{ParamValues, ScalarValue};
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
    /// Per-caller schema contexts for questions (nl/catalog.rs).
    pub questions: crate::nl::catalog::ContextCache,
    /// The `llm` drafter, built on first use (nl/llm.rs).
    pub llm: crate::nl::llm::LlmState,
    /// The retrieval index over the catalog, built in the background (nl/index).
    pub retrieval: crate::nl::index::RetrievalIndex,
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
    /// Rows forwarded from an upstream as it encoded them, in the format the caller asked for
    /// (only for callers that asked for wire delivery).
    Wire { schema: SchemaRef, fields: Arc<Vec<pgwire::api::results::FieldInfo>>, rows: execution::WireRowStream },
    /// A command with its tag; `changed` lists settings to report (ParameterStatus).
    Command { tag: String, changed: Vec<(String, String)> },
    /// Rows to send as COPY data (COPY ... TO STDOUT).
    CopyOut { schema: SchemaRef, rows: RowStream, csv: bool, header: bool },
    Begin,
    Commit,
    Empty,
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Rows { schema, .. } => write!(f, "Rows({} columns)", schema.fields().len()),
            Outcome::Wire { schema, .. } => write!(f, "Wire({} columns)", schema.fields().len()),
            Outcome::Command { tag, .. } => write!(f, "Command({tag})"),
            Outcome::CopyOut { .. } => write!(f, "CopyOut"),
            Outcome::Begin => write!(f, "Begin"),
            Outcome::Commit => write!(f, "Commit"),
            Outcome::Empty => write!(f, "Empty"),
        }
    }
}

/// One statement as received: what its audit record starts from, and how to name its columns.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub input: String,
    pub question: Option<String>,
    pub sql: Option<String>,
    /// PostgreSQL names for the result columns (naming.rs); None keeps DataFusion's.
    pub names: Option<Vec<Option<String>>>,
    /// The planner trace of a question (JSON), kept in the audit record.
    pub trace: Option<String>,
    /// When the statement arrived: its statement timeout counts from here, planning included.
    pub began: Option<Instant>,
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
        let lalo = Arc::new(Lalo {
            config,
            engine,
            governance,
            audit,
            users,
            users_source,
            parser: PostgresCompatibilityParser::new(),
            questions: Default::default(),
            llm: Default::default(),
            retrieval: Default::default(),
        });
        crate::nl::index::RetrievalIndex::spawn(&lalo);
        Ok(lalo)
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
        let plan = match state.statement_to_plan(DfStatement::Statement(Box::new(stmt.clone()))).await {
            Ok(p) => p,
            // DataFusion's messages can list columns the caller may not read (disclosure.rs).
            Err(e) => return Err(crate::disclosure::plan_error(self, session, stmt, e).await),
        };
        Ok(crate::pgtypes::varchar::tag_casts(plan)?)
    }

    /// Plan a `PREPARE name AS statement`: the statement's plan, placeholders typed.
    async fn plan_prepared(&self, session: &Session, stmt: &Statement) -> Result<LogicalPlan, LaloError> {
        Ok(match self.plan(session, stmt).await? {
            LogicalPlan::Statement(datafusion::logical_expr::Statement::Prepare(p)) => p.input.as_ref().clone(),
            other => other,
        })
    }

    /// The session's caller as the policies in force see them (roles re-read after a reload).
    pub fn subject(&self, session: &Session) -> Arc<crate::governance::rules::Subject> {
        let gov = &self.governance;
        session.subject(gov.version(), |old| gov.subject(&old.name, &old.attributes))
    }

    /// Govern a plan for this session's caller.
    pub async fn govern(&self, session: &Session, plan: LogicalPlan) -> Result<GovernedPlan, LaloError> {
        let subject = self.subject(session);
        let governed = self.governance.govern(&session.ctx, plan, &subject, &session.database).await;
        governed.map_err(|e| crate::disclosure::hide_relation(self, session, e))
    }

    /// Run a governed plan: admit under limits, execute, and stream rows through the guard
    /// (timeout, cancel, row cap, audit on completion).
    pub async fn execute(
        &self,
        session: &Session,
        governed: GovernedPlan,
        params: Option<ParamValues>,
        start: Request,
        cancel: Option<execution::CancelArm>,
    ) -> Result<Outcome, LaloError> {
        self.execute_capped(session, governed, params, start, cancel, None).await
    }

    /// [`Lalo::execute`], stopping cleanly after `truncate_at` rows.
    pub async fn execute_capped(
        &self,
        session: &Session,
        governed: GovernedPlan,
        params: Option<ParamValues>,
        start: Request,
        cancel: Option<execution::CancelArm>,
        truncate_at: Option<u64>,
    ) -> Result<Outcome, LaloError> {
        // The statement timeout counts from the statement's arrival, planning included.
        let began = start.began.unwrap_or_else(Instant::now);
        let slot = self.governance.limits.admit(
            &session.user,
            &governed.limits,
            self.config.governance.rate_limit_per_minute,
        )?;
        let mut plan = governed.plan().clone();
        if let Some(p) = params {
            plan = plan.replace_params_with_values(&p)?;
        }
        let schema: SchemaRef = rename(plan.schema().as_arrow(), start.names.as_deref());
        let optimized = governed.is_optimized();
        let stream = match async {
            let physical = if optimized {
                // Optimized already (a cached plan): physical planning only.
                let state = session.ctx.state();
                state.query_planner().create_physical_plan(&plan, &state).await?
            } else {
                session.ctx.execute_logical_plan(plan).await?.create_physical_plan().await?
            };
            // Executed apart from the connections, so the guard's deadline is never starved.
            execution::execute_apart(physical, session.ctx.task_ctx())
        }
        .await
        {
            Ok(s) => s,
            Err(e) => {
                let e = LaloError::from(e);
                self.audit_failure(session, &start, &e, began).await;
                return Err(e);
            }
        };
        let rows = self.guarded(session, &governed, stream, &start, began, cancel, slot, truncate_at);
        Ok(Outcome::Rows { schema, rows })
    }

    /// A result stream under the caller's limits (statement timeout, row cap), cancel, and the
    /// audit record written when it ends: the same for planned and direct-lane statements.
    #[allow(clippy::too_many_arguments)]
    fn guarded(
        &self,
        session: &Session,
        governed: &GovernedPlan,
        stream: datafusion::execution::SendableRecordBatchStream,
        start: &Request,
        began: Instant,
        cancel: Option<execution::CancelArm>,
        slot: crate::governance::limits::Slot,
        truncate_at: Option<u64>,
    ) -> RowStream {
        execution::guard(stream, self.guard_options(session, governed, start, began, cancel, slot, truncate_at))
    }

    /// [`Lalo::guarded`] for rows forwarded from an upstream without decoding.
    #[allow(clippy::too_many_arguments)]
    fn guarded_wire(
        &self,
        session: &Session,
        governed: &GovernedPlan,
        rows: execution::WireRowStream,
        start: &Request,
        began: Instant,
        cancel: Option<execution::CancelArm>,
        slot: crate::governance::limits::Slot,
    ) -> execution::WireRowStream {
        execution::guard_items(rows, self.guard_options(session, governed, start, began, cancel, slot, None))
    }

    #[allow(clippy::too_many_arguments)]
    fn guard_options(
        &self,
        session: &Session,
        governed: &GovernedPlan,
        start: &Request,
        began: Instant,
        cancel: Option<execution::CancelArm>,
        slot: crate::governance::limits::Slot,
        truncate_at: Option<u64>,
    ) -> GuardOptions {
        let timeout_ms = [
            session.derived().statement_timeout_ms,
            governed.limits.statement_timeout_ms.unwrap_or(0),
        ]
        .into_iter()
        .filter(|v| *v > 0)
        .min();
        let max_rows = [self.config.governance.max_rows, governed.limits.max_rows.unwrap_or(0)]
            .into_iter()
            .filter(|v| *v > 0)
            .min();
        let record = self.record(session, start, Some(governed));
        GuardOptions { timeout_ms, max_rows, cancel, audit: self.audit.clone(), record, began, entry: session.entry.as_str(), slot: Some(slot), truncate_at }
    }

    /// [`Lalo::run_route`] for callers that read at most `cap` rows (MCP).
    pub async fn run_route_capped(&self, session: &Session, route: Route, input: &str, cap: Option<u64>) -> Result<Outcome, LaloError> {
        self.run_route_inner(session, route, input, None, cap, None).await
    }

    /// Route, plan, govern and run one routed statement (simple-protocol path and CLI).
    pub async fn run_route(
        &self,
        session: &Session,
        route: Route,
        input: &str,
        cancel: Option<execution::CancelArm>,
    ) -> Result<Outcome, LaloError> {
        self.run_route_inner(session, route, input, cancel, None, None).await
    }

    /// [`Lalo::run_route`] for the wire protocol's simple Query: rows a statement reads wholly
    /// from an upstream may come back as [`Outcome::Wire`], forwarded without decoding.
    pub async fn run_route_wire(
        &self,
        session: &Session,
        route: Route,
        input: &str,
        cancel: Option<execution::CancelArm>,
    ) -> Result<Outcome, LaloError> {
        self.run_route_inner(session, route, input, cancel, None, Some(&pgwire::api::portal::Format::UnifiedText)).await
    }

    async fn run_route_inner(
        &self,
        session: &Session,
        route: Route,
        input: &str,
        cancel: Option<execution::CancelArm>,
        cap: Option<u64>,
        wire: Option<&pgwire::api::portal::Format>,
    ) -> Result<Outcome, LaloError> {
        let start = Request { input: input.to_string(), ..Default::default() };
        match route {
            Route::Query(stmt) => {
                let began = Instant::now();
                let sql = stmt.to_string();
                let start = Request { sql: Some(sql), names: crate::naming::pg_names(&stmt), began: Some(began), ..start };
                let mut cancel = cancel;
                let (lifted, values) = crate::passthrough::parameterize(&stmt);
                let key = lifted.to_string();
                if let Some(done) = self.try_direct_query(session, &lifted, &key, &values, &start, &mut cancel, cap, wire).await {
                    if wire.is_some() && done.is_ok() {
                        self.learn_shape(session, input, &values, &key, start.names.clone());
                    }
                    return done;
                }
                if let Some(governed) = self.cached_plan(session, &lifted, &key, &values).await {
                    return self.execute_capped(session, governed, None, start, cancel, cap).await;
                }
                let result = async {
                    let plan = self.plan(session, &stmt).await?;
                    self.govern(session, plan).await
                }
                .await;
                match result {
                    Ok(governed) => self.execute_capped(session, governed, None, start, cancel, cap).await,
                    Err(e) => {
                        self.audit_failure(session, &start, &e, began).await;
                        Err(e)
                    }
                }
            }
            Route::Ask { question, explain } => {
                crate::nl::answer::run(self, session, &question, explain, input, cancel, cap).await
            }
            Route::RefreshUpstream(name) => {
                let began = Instant::now();
                let result = self.refresh_upstreams(session, name.as_deref()).await;
                match result {
                    Ok(n) => {
                        let mut rec = self.record(session, &start, None);
                        rec.rows = n as u64;
                        rec.duration_ms = began.elapsed().as_secs_f64() * 1000.0;
                        self.audit.append(rec).await?;
                        Ok(Outcome::Command { tag: "REFRESH UPSTREAM".into(), changed: vec![] })
                    }
                    Err(e) => {
                        self.audit_failure(session, &start, &e, began).await;
                        Err(e)
                    }
                }
            }
            Route::Declare { name, query } => {
                let began = Instant::now();
                let start = Request { sql: Some(query.to_string()), names: crate::naming::pg_names(&query), ..start };
                let result = async {
                    let plan = self.plan(session, &query).await?;
                    let governed = self.govern(session, plan).await?;
                    self.execute(session, governed, None, start.clone(), None).await
                }
                .await;
                match result {
                    Ok(Outcome::Rows { schema, rows }) => {
                        session.cursors.lock().await.insert(name, crate::session::Cursor { schema, rows, pending: None });
                        Ok(Outcome::Command { tag: "DECLARE CURSOR".into(), changed: vec![] })
                    }
                    Ok(other) => Ok(other),
                    Err(e) => {
                        self.audit_failure(session, &start, &e, began).await;
                        Err(e)
                    }
                }
            }
            Route::Fetch { name, count } => self.fetch(session, &name, count).await,
            Route::CopyOut { query, csv, header } => {
                match Box::pin(self.run_route_inner(session, Route::Query(query), input, cancel, cap, None)).await? {
                    Outcome::Rows { schema, rows } => Ok(Outcome::CopyOut { schema, rows, csv, header }),
                    other => Ok(other),
                }
            }
            Route::Prepare { name, statement } => {
                let began = Instant::now();
                let start = Request { sql: Some(statement.to_string()), ..start };
                // Plan and govern now, so a PREPARE of something denied fails at once.
                let checked = async {
                    let plan = self.plan_prepared(session, &statement).await?;
                    self.govern(session, plan).await
                }
                .await;
                match checked {
                    Ok(_) => {
                        session.prepared.lock().insert(name, statement);
                        self.session_command(session, Route::Noop("PREPARE"), &start).await
                    }
                    Err(e) => {
                        self.audit_failure(session, &start, &e, began).await;
                        Err(e)
                    }
                }
            }
            Route::Execute { name, params } => {
                let began = Instant::now();
                let statement = session.prepared.lock().get(&name).cloned();
                let Some(statement) = statement else {
                    let e = LaloError::InvalidStatementName(name);
                    self.audit_failure(session, &start, &e, began).await;
                    return Err(e);
                };
                let inner_names = match statement.as_ref() {
                    Statement::Prepare { statement: inner, .. } => crate::naming::pg_names(inner),
                    _ => None,
                };
                let start = Request { sql: Some(statement.to_string()), names: inner_names, ..start };
                let result = async {
                    let plan = self.plan_prepared(session, &statement).await?;
                    let values = literal_params(session, &params)?;
                    let plan = plan.replace_params_with_values(&ParamValues::from(values))?;
                    self.govern(session, plan).await
                }
                .await;
                match result {
                    Ok(governed) => self.execute_capped(session, governed, None, start, cancel, cap).await,
                    Err(e) => {
                        self.audit_failure(session, &start, &e, began).await;
                        Err(e)
                    }
                }
            }
            Route::Deallocate(name) => {
                match &name {
                    None => session.prepared.lock().clear(),
                    Some(n) => {
                        if session.prepared.lock().remove(n).is_none() {
                            let e = LaloError::InvalidStatementName(n.clone());
                            self.audit_failure(session, &start, &e, Instant::now()).await;
                            return Err(e);
                        }
                    }
                }
                let tag = if name.is_none() { "DEALLOCATE ALL" } else { "DEALLOCATE" };
                self.session_command(session, Route::Noop(tag), &start).await
            }
            Route::Close(name) => {
                let mut cursors = session.cursors.lock().await;
                match name {
                    None => cursors.clear(),
                    Some(n) => {
                        if cursors.remove(&n).is_none() {
                            return Err(LaloError::InvalidCursor(n));
                        }
                    }
                }
                Ok(Outcome::Command { tag: "CLOSE CURSOR".into(), changed: vec![] })
            }
            other => self.session_command(session, other, &start).await,
        }
    }

    /// FETCH from an open cursor: up to `count` rows (all when None).
    async fn fetch(&self, session: &Session, name: &str, count: Option<u64>) -> Result<Outcome, LaloError> {
        use futures::StreamExt;
        let mut cursors = session.cursors.lock().await;
        let cursor = cursors.get_mut(name).ok_or_else(|| LaloError::InvalidCursor(name.to_string()))?;
        let mut want = count.unwrap_or(u64::MAX);
        let mut out = Vec::new();
        while want > 0 {
            let batch = match cursor.pending.take() {
                Some(b) => b,
                None => match cursor.rows.next().await {
                    Some(b) => b?,
                    None => break,
                },
            };
            let n = batch.num_rows() as u64;
            if n > want {
                out.push(batch.slice(0, want as usize));
                cursor.pending = Some(batch.slice(want as usize, (n - want) as usize));
                want = 0;
            } else {
                want -= n;
                out.push(batch);
            }
        }
        let schema = cursor.schema.clone();
        let rows = futures::stream::iter(out.into_iter().map(Ok)).boxed();
        Ok(Outcome::Rows { schema, rows })
    }

    /// SET/SHOW/RESET/transactions/DISCARD.
    pub async fn session_command(&self, session: &Session, route: Route, start: &Request) -> Result<Outcome, LaloError> {
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
            _ => Err(LaloError::Internal("not a session command".into())),
        }
    }

    /// The audit record a statement starts with.
    pub fn record(&self, session: &Session, start: &Request, governed: Option<&GovernedPlan>) -> AuditRecord {
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
            trace: start.trace.clone(),
            ..Default::default()
        }
    }

    /// Record a catalog tool call (MCP list/describe/search) that reads no table rows.
    pub async fn audit_tool(&self, session: &Session, tool: &str, input: &str, rows: u64) {
        let mut rec = self.record(session, &Request { input: format!("{tool}: {input}"), ..Default::default() }, None);
        rec.rows = rows;
        if let Err(e) = self.audit.append(rec).await {
            tracing::error!(error = %e, "audit write failed");
        }
    }

    /// Record a statement that failed before it produced rows.
    pub async fn audit_failure(&self, session: &Session, start: &Request, e: &LaloError, began: Instant) {
        let mut rec = self.record(session, start, None);
        rec.decision = if e.is_refusal() { "denied".into() } else { "failed".into() };
        rec.error = Some(e.audit_text());
        rec.duration_ms = began.elapsed().as_secs_f64() * 1000.0;
        let outcome = if rec.decision == "denied" { "denied" } else { "error" };
        crate::metrics::statement(outcome, session.entry.as_str(), began.elapsed().as_secs_f64());
        if let Err(err) = self.audit.append(rec).await {
            tracing::error!(error = %err, "audit write failed");
        }
    }
}

/// EXECUTE parameters: literals only (a subquery here would escape governance).
fn literal_params(
    session: &Session,
    params: &[datafusion::sql::sqlparser::ast::Expr],
) -> Result<Vec<datafusion::scalar::ScalarValue>, LaloError> {
    use datafusion::sql::sqlparser::ast::Expr as E;
    let empty = datafusion::common::DFSchema::empty();
    params
        .iter()
        .map(|p| {
            let ok = match p {
                E::Value(_) | E::TypedString(_) => true,
                E::UnaryOp { expr, .. } => matches!(expr.as_ref(), E::Value(_)),
                E::Cast { expr, .. } => matches!(expr.as_ref(), E::Value(_)),
                _ => false,
            };
            if !ok {
                return Err(LaloError::NotSupported("EXECUTE parameters must be literals".into()));
            }
            let e = session.ctx.parse_sql_expr(&p.to_string(), &empty)?;
            let simplified = datafusion::optimizer::simplify_expressions::ExprSimplifier::new(
                datafusion::optimizer::simplify_expressions::SimplifyContext::default(),
            )
            .simplify(e)?;
            match simplified {
                datafusion::logical_expr::Expr::Literal(v, _) => Ok(v),
                _ => Err(LaloError::NotSupported("EXECUTE parameters must be literals".into())),
            }
        })
        .collect()
}

/// The result schema with PostgreSQL's column names (duplicates allowed, as on the wire).
pub fn rename(schema: &datafusion::arrow::datatypes::Schema, names: Option<&[Option<String>]>) -> SchemaRef {
    match names {
        Some(names) if names.len() == schema.fields().len() => {
            let fields: Vec<_> = schema
                .fields()
                .iter()
                .zip(names)
                .map(|(f, n)| match n {
                    Some(n) => Arc::new(f.as_ref().clone().with_name(n)),
                    None => f.clone(),
                })
                .collect();
            Arc::new(datafusion::arrow::datatypes::Schema::new(fields))
        }
        _ => Arc::new(schema.clone()),
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
        let upstreams: Vec<UpstreamStatus> = self
            .engine
            .upstreams()
            .iter()
            .map(|u| {
                let up = u.is_up();
                UpstreamStatus { name: u.name.clone(), up, error: if up { None } else { u.last_error() } }
            })
            .collect();
        // Ready means every configured database answers; the body says which one does not.
        let ready = upstreams.iter().all(|u| u.up);
        Readiness { ready, databases: self.engine.catalogs().catalog_names(), upstreams }
    }
}

impl Lalo {
    fn direct_stamp(&self, session: &Session) -> crate::passthrough::Stamp {
        (session.epoch(), self.governance.version(), self.engine.upstreams().generation())
    }

    /// A simple-protocol statement whose token shape took the direct lane before: straight to
    /// its direct plan with this statement's values, without parsing. `None` means "route it".
    pub async fn run_shaped(
        &self,
        session: &Session,
        text: &str,
        cancel: &mut Option<execution::CancelArm>,
    ) -> Option<Result<Outcome, LaloError>> {
        self.engine.upstreams().get(&session.database)?;
        let shaped = crate::shapes::shape(text)?;
        let stamp = self.direct_stamp(session);
        let shape = session.shapes.lock().get(stamp, &shaped.key)??;
        let values = crate::shapes::bind(&shape, &shaped)?;
        let dp = session.direct.lock().get(stamp, &shape.direct_key)??;
        let start = Request { input: text.to_string(), sql: Some(text.to_string()), names: shape.names.clone(), ..Default::default() };
        let format = pgwire::api::portal::Format::UnifiedText;
        self.execute_direct(session, &dp, values, &start, cancel, None, stamp, &shape.direct_key, Some(&format)).await
    }

    /// Remember the token shape of `text`, which took the direct lane as `key` with `values`.
    fn learn_shape(&self, session: &Session, text: &str, values: &[ScalarValue], key: &str, names: Option<Vec<Option<String>>>) {
        let Some(shaped) = crate::shapes::shape(text) else { return };
        let learned = crate::shapes::learn(&shaped, values, key, names).map(Arc::new);
        session.shapes.lock().put(self.direct_stamp(session), shaped.key, learned);
    }

    /// The direct lane for a simple-protocol statement: `None` means "take the planned path".
    /// `lifted` is the statement with its literals lifted into parameters (`values`), `key` its text.
    #[allow(clippy::too_many_arguments)]
    async fn try_direct_query(
        &self,
        session: &Session,
        lifted: &Statement,
        key: &str,
        values: &[ScalarValue],
        start: &Request,
        cancel: &mut Option<execution::CancelArm>,
        cap: Option<u64>,
        wire: Option<&pgwire::api::portal::Format>,
    ) -> Option<Result<Outcome, LaloError>> {
        let ups = self.engine.upstreams();
        ups.get(&session.database)?;
        let stamp = self.direct_stamp(session);
        let dp = self
            .direct_plan(session, stamp, key, Box::pin(async {
                let plan = self.plan(session, lifted).await.ok()?;
                self.govern(session, plan).await.ok()
            }))
            .await?;
        self.execute_direct(session, &dp, values.to_vec(), start, cancel, cap, stamp, key, wire).await
    }

    /// The session's cached governed plan for a simple-protocol statement (literals lifted into
    /// parameters), bound to this execution's values; `None` means "plan it afresh".
    async fn cached_plan(
        &self,
        session: &Session,
        lifted: &Statement,
        key: &str,
        values: &[ScalarValue],
    ) -> Option<GovernedPlan> {
        if !matches!(lifted, Statement::Query(_)) {
            return None;
        }
        let cached = self
            .plan_entry(session, key, Box::pin(async {
                let plan = self.plan(session, lifted).await.ok()?;
                self.govern(session, plan).await.ok()
            }))
            .await?;
        cached.bind(values)
    }

    /// A prepared statement's cached governed plan, bound to `params`; `None` means "govern the
    /// statement's plan afresh".
    pub async fn cached_prepared(
        &self,
        session: &Session,
        text: &str,
        plan: &LogicalPlan,
        params: &ParamValues,
    ) -> Option<GovernedPlan> {
        let ParamValues::List(list) = params else { return None };
        let values: Vec<ScalarValue> = list.iter().map(|v| v.value.clone()).collect();
        // The same text parsed with other declared parameter types is another plan.
        let types: Vec<_> = values.iter().map(|v| v.data_type()).collect();
        let key = format!("prepared:{types:?}:{text}");
        let cached = self.plan_entry(session, &key, Box::pin(async { self.govern(session, plan.clone()).await.ok() })).await?;
        cached.bind(&values)
    }

    /// The session's plan cache entry for `key`, or one built from the governed plan `build`
    /// yields (remembered either way, "not reusable" included).
    async fn plan_entry(
        &self,
        session: &Session,
        key: &str,
        build: impl std::future::Future<Output = Option<GovernedPlan>>,
    ) -> Option<Arc<crate::plan_cache::CachedPlan>> {
        let stamp = self.direct_stamp(session);
        if let Some(cached) = session.plans.lock().get(stamp, key) {
            if cached.is_some() {
                crate::metrics::cached_plan();
            }
            return cached;
        }
        let built = match build.await {
            Some(governed) => crate::plan_cache::build(&session.ctx.state(), &governed).map(Arc::new),
            None => None,
        };
        session.plans.lock().put(stamp, key.to_string(), built.clone());
        built
    }

    /// The direct lane for a prepared statement (extended protocol): `plan` is its plan with
    /// placeholders, `params` the bound values.
    pub async fn try_direct_prepared(
        &self,
        session: &Session,
        text: &str,
        plan: &LogicalPlan,
        params: &ParamValues,
        start: &Request,
        cancel: &mut Option<execution::CancelArm>,
        wire: Option<&pgwire::api::portal::Format>,
    ) -> Option<Result<Outcome, LaloError>> {
        let ups = self.engine.upstreams();
        ups.get(&session.database)?;
        let ParamValues::List(list) = params else { return None };
        let values: Vec<ScalarValue> = list.iter().map(|v| v.value.clone()).collect();
        let stamp = self.direct_stamp(session);
        let key = format!("prepared:{text}");
        let dp = self.direct_plan(session, stamp, &key, Box::pin(async { self.govern(session, plan.clone()).await.ok() })).await?;
        self.execute_direct(session, &dp, values, start, cancel, None, stamp, &key, wire).await
    }

    /// The session's cached direct plan for `key`, or one derived from the governed plan `build`
    /// yields (and remembered either way, "not direct" included).
    async fn direct_plan(
        &self,
        session: &Session,
        stamp: crate::passthrough::Stamp,
        key: &str,
        build: impl std::future::Future<Output = Option<GovernedPlan>>,
    ) -> Option<Arc<crate::passthrough::DirectPlan>> {
        if let Some(cached) = session.direct.lock().get(stamp, key) {
            return cached;
        }
        let ups = self.engine.upstreams();
        let built = match build.await {
            Some(governed) => {
                let docs = self.engine.docs();
                let primary_key =
                    |db: &str, schema: &str, table: &str| crate::engine::keys::declared(&docs.read(), db, schema, table).primary_key;
                crate::passthrough::derive(&session.ctx.state(), &governed, |db| ups.get(db).is_some(), primary_key)
                    .await
                    .map(Arc::new)
            }
            None => None,
        };
        session.direct.lock().put(stamp, key.to_string(), built.clone());
        built
    }

    /// Run a direct plan upstream under the same limits, guard and audit as the planned path.
    #[allow(clippy::too_many_arguments)]
    async fn execute_direct(
        &self,
        session: &Session,
        dp: &Arc<crate::passthrough::DirectPlan>,
        values: Vec<ScalarValue>,
        start: &Request,
        cancel: &mut Option<execution::CancelArm>,
        cap: Option<u64>,
        stamp: crate::passthrough::Stamp,
        key: &str,
        wire: Option<&pgwire::api::portal::Format>,
    ) -> Option<Result<Outcome, LaloError>> {
        use crate::engine::upstream::direct::DirectError;
        let pool = self.engine.upstreams().get(&dp.upstream)?.direct()?;
        if values.len() != dp.param_types.len() {
            return None;
        }
        let values: Vec<ScalarValue> =
            values.iter().zip(&dp.param_types).map(|(v, t)| v.cast_to(t)).collect::<Result<_, _>>().ok()?;
        let began = Instant::now();
        let governed = &dp.governed;
        let slot = match self.governance.limits.admit(&session.user, &governed.limits, self.config.governance.rate_limit_per_minute) {
            Ok(s) => s,
            Err(e) => {
                self.audit_failure(session, start, &e, began).await;
                return Some(Err(e));
            }
        };
        let schema = rename(&dp.schema, start.names.as_deref());
        // Pass-through: rows forwarded as the upstream encoded them, when lalo would encode
        // every column the same way (decided once per plan).
        if let (Some(format), None) = (wire, cap) {
            if dp.forward.load(std::sync::atomic::Ordering::Relaxed) != crate::passthrough::FORWARD_NO {
                // The description and its type OIDs, once per plan and format (the plan's stamp
                // includes the settings they depend on); `None` when a column has no PostgreSQL type.
                let described = dp.described.get_or_try_insert(format, || {
                    let opts = crate::server::encode::format_options(session);
                    let fields = crate::server::encode::fields(&schema, format, opts).ok();
                    Ok::<_, std::convert::Infallible>(fields.map(|f| {
                        let oids: std::sync::Arc<[u32]> = f.iter().map(|i| i.datatype().oid()).collect();
                        (f, oids)
                    }))
                });
                let codes: Vec<i16> = match format {
                    pgwire::api::portal::Format::UnifiedText => vec![],
                    pgwire::api::portal::Format::UnifiedBinary => vec![1],
                    pgwire::api::portal::Format::Individual(v) => v.clone(),
                };
                if let Ok(Some((fields, expect))) = described {
                    // Lookups by primary key share pipelined connections (see `shared`).
                    let rows = if dp.key_lookup && pool.pipelines() {
                        pool.query_shared(&dp.sql, &values, &expect, &codes).await
                    } else {
                        pool.query_wire(&dp.sql, &values, &expect, &codes).await
                    };
                    match rows {
                        Ok(rows) => {
                            dp.forward.store(crate::passthrough::FORWARD_YES, std::sync::atomic::Ordering::Relaxed);
                            crate::metrics::direct_statement();
                            crate::metrics::forwarded_statement();
                            let upstream = dp.upstream.clone();
                            let rows = futures::StreamExt::boxed(futures::StreamExt::map(rows, move |r| {
                                r.map_err(|e| direct_error(&upstream, e))
                            }));
                            let rows = self.guarded_wire(session, governed, rows, start, began, cancel.take(), slot);
                            return Some(Ok(Outcome::Wire { schema, fields, rows }));
                        }
                        Err(DirectError::Unsupported(why)) => {
                            tracing::debug!(why, "rows are decoded, not forwarded");
                            dp.forward.store(crate::passthrough::FORWARD_NO, std::sync::atomic::Ordering::Relaxed);
                        }
                        Err(e) => {
                            let e = direct_error(&dp.upstream, e);
                            self.audit_failure(session, start, &e, began).await;
                            return Some(Err(e));
                        }
                    }
                }
            }
        }
        let stream = match pool.query(&dp.sql, &values, dp.schema.clone()).await {
            Ok(s) => s,
            Err(DirectError::Unsupported(why)) => {
                tracing::debug!(why, "statement leaves the direct lane");
                session.direct.lock().put(stamp, key.to_string(), None);
                return None;
            }
            Err(e) => {
                let e = direct_error(&dp.upstream, e);
                self.audit_failure(session, start, &e, began).await;
                return Some(Err(e));
            }
        };
        crate::metrics::direct_statement();
        let rows = self.guarded(session, governed, stream, start, began, cancel.take(), slot, cap);
        Some(Ok(Outcome::Rows { schema, rows }))
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
        Ok(total)
    }

    /// Every table the session's caller may read, with visible columns and their docs.
    pub async fn visible_tables(&self, session: &Session) -> Result<Vec<crate::search::TableEntry>, LaloError> {
        use crate::search::{ColumnEntry, TableEntry};
        let vis: Arc<dyn crate::engine::views::Visibility> =
            if self.governance.enabled() { self.governance.visibility(&session.user) } else { Arc::new(SeeAll) };
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

/// The client's error for a direct-lane failure (a lost upstream is 08006).
fn direct_error(upstream: &str, e: crate::engine::upstream::direct::DirectError) -> LaloError {
    match e {
        crate::engine::upstream::direct::DirectError::Lost(message) => {
            LaloError::UpstreamLost { upstream: upstream.to_string(), message }
        }
        crate::engine::upstream::direct::DirectError::Upstream { code, message } => LaloError::Upstream { code, message },
        other => LaloError::Query(other.to_string()),
    }
}
