//! The gateway's shared state and the stages every statement goes through once: open a
//! session, route its text, plan a statement, govern a plan.

use std::sync::Arc;

use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;

use crate::config::Config;
use crate::engine::views::SeeAll;
use crate::engine::Engine;
use crate::error::LaloError;
use crate::governance::audit::{AuditLog, AuditOptions};
use crate::governance::{GovernedPlan, Governance};
use crate::router::{self, Route};
use crate::session::auth::Users;
use crate::settings::Settings;
use crate::session::{EntryPoint, Session};

/// The running gateway's shared state.
pub struct Lalo {
    pub config: Config,
    pub engine: Arc<Engine>,
    /// The Ballista cluster governed plans over embedded files run on (`[engine] distributed`).
    pub cluster: Option<Arc<crate::distributed::Cluster>>,
    pub governance: Arc<Governance>,
    pub audit: Arc<AuditLog>,
    pub users: Users,
    parser: PostgresCompatibilityParser,
    /// Per-caller schema contexts for questions (nl/catalog.rs).
    pub questions: crate::nl::catalog::ContextCache,
    /// The `llm` drafter, built on first use (nl/llm.rs).
    pub llm: crate::nl::llm::LlmState,
    /// The retrieval index over the catalog, built in the background (nl/index).
    pub retrieval: crate::nl::index::RetrievalIndex,
    /// How often the once-per-statement stages ran in this gateway.
    pub stages: StageCounts,
    /// Draining and ending connections and statements when the process is asked to stop.
    pub shutdown: crate::shutdown::Shutdown,
}

/// Counts of the stages a statement goes through at most once (planning its SQL, governing its
/// plan, admission under limits), per gateway; the same counts go to the process's metrics.
#[derive(Debug, Default)]
pub struct StageCounts {
    pub plans_built: std::sync::atomic::AtomicU64,
    pub plans_governed: std::sync::atomic::AtomicU64,
    pub admitted: std::sync::atomic::AtomicU64,
}

impl StageCounts {
    /// (plans built, plans governed, statements admitted) so far.
    pub fn read(&self) -> (u64, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.plans_built.load(Relaxed), self.plans_governed.load(Relaxed), self.admitted.load(Relaxed))
    }
}

impl std::fmt::Debug for Lalo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lalo").finish_non_exhaustive()
    }
}

impl Lalo {
    /// Load config, policies and catalog; open the audit log.
    pub async fn start(config: Config) -> Result<Arc<Lalo>, LaloError> {
        crate::metrics::install();
        // A distributed engine first: the last physical rule sends it what it can run.
        let cluster = crate::distributed::Cluster::start(&config.engine).await?;
        let mut rules = crate::governance::plan_rules();
        if let Some(c) = &cluster {
            rules.physical_last.push(Arc::new(crate::distributed::Distribute(c.clone())));
            rules.distributed = true;
        }
        let engine = Arc::new(Engine::build(&config, rules).await?);
        let governance = Arc::new(Governance::load(&config).await?);
        let audit_path = config.resolve(&config.governance.audit_log);
        let audit_opts = AuditOptions::from_config(&config.governance, |k| std::env::var(k).ok())?;
        let audit = AuditLog::open(&audit_path, audit_opts).await?;
        engine.register_audit_table(&audit_path).await?;
        let users = Users::from_config(&config.users)?;
        let lalo = Arc::new(Lalo {
            config,
            engine,
            cluster,
            governance,
            audit,
            users,
            parser: PostgresCompatibilityParser::new(),
            questions: Default::default(),
            llm: Default::default(),
            retrieval: Default::default(),
            stages: Default::default(),
            shutdown: Default::default(),
        });
        lalo.register_governance_tables()?;
        // Classified before the first client: under `pii = "mask"` no statement runs without
        // the default masks.
        lalo.refresh_pii().await?;
        crate::nl::index::RetrievalIndex::spawn(&(lalo.clone() as Arc<dyn crate::nl::Host>));
        Ok(lalo)
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
        crate::telemetry::stage_sync("parse", None, || router::route_text(&self.parser, text, &mode))
    }

    /// Resolve one SQL statement into a logical plan (parameters stay placeholders).
    pub async fn plan(&self, session: &Session, stmt: &Statement) -> Result<LogicalPlan, LaloError> {
        crate::telemetry::stage("plan", None, self.plan_sql(session, stmt)).await
    }

    async fn plan_sql(&self, session: &Session, stmt: &Statement) -> Result<LogicalPlan, LaloError> {
        crate::metrics::plan_built();
        self.stages.plans_built.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let state = session.ctx.state();
        let mut planned = state.statement_to_plan(DfStatement::Statement(Box::new(stmt.clone()))).await;
        if matches!(&planned, Err(e) if e.to_string().contains("require unique expression names")) {
            if let Some(aliased) = crate::naming::unique_aliases(stmt) {
                planned = state.statement_to_plan(DfStatement::Statement(Box::new(aliased))).await;
            }
        }
        let plan = match planned {
            Ok(p) => p,
            // DataFusion's messages can list columns the caller may not read (disclosure.rs).
            Err(e) => return Err(super::disclosure::plan_error(self, session, stmt, e).await),
        };
        let plan = crate::engine::pg_literals::int4_constants(plan)?;
        let mut plan = plan;
        if crate::engine::pg_exact::has_set_all(stmt) {
            plan = crate::engine::pg_exact::set_all(plan)?;
        }
        // NUMERIC first: the casts below then see the types PostgreSQL gives (avg(int) is NUMERIC).
        let plan = crate::engine::pg_numeric::exact(plan)?;
        let plan = crate::engine::subquery_null::nullable(plan)?;
        let plan = crate::engine::subquery_null::not_in(plan)?;
        let plan = crate::engine::pg_exact::pg_casts(plan)?;
        Ok(crate::pgtypes::varchar::tag_casts(plan)?)
    }

    /// Plan a `PREPARE name AS statement`: the statement's plan, placeholders typed.
    pub(super) async fn plan_prepared(&self, session: &Session, stmt: &Statement) -> Result<LogicalPlan, LaloError> {
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
        crate::metrics::plan_governed();
        self.stages.plans_governed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let subject = self.subject(session);
        let governed =
            crate::telemetry::stage("govern", None, self.governance.govern(&session.ctx, plan, &subject, &session.database)).await;
        governed.map_err(|e| super::disclosure::hide_relation(self, session, e))
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
    /// What the session's cached statements were made under (cache.rs).
    pub fn stamp(&self, session: &Session) -> crate::plan_cache::Stamp {
        crate::plan_cache::Stamp {
            settings_epoch: session.epoch(),
            policy_version: self.governance.version(),
            catalog_generation: self.engine.upstreams().generation(),
        }
    }

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

