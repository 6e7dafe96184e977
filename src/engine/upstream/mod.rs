//! Upstream PostgreSQL databases served as lalo databases of their own, with push-down
//! through datafusion-federation, discovery of tables/comments/keys, and failure handling.
//!
//! Each `[[upstream]]` is a DataFusion catalog named after it. Its tables are
//! datafusion-table-providers `SqlTable`s behind lalo's guarded pool, wrapped for federation
//! so that whole subtrees over one upstream become one SQL statement there. lalo starts when an
//! upstream is down: its catalog answers 08006 until a background task connects and discovers
//! it, and the circuit breaker keeps a dead upstream from stalling clients.

pub mod boundary;
pub mod breaker;
pub mod direct;
pub mod discover;
pub mod pool;
pub mod shared;
pub mod unparse_fix;
pub mod wire;


/// Settings every upstream connection starts with, whichever session uses it next: the schema
/// bare names resolve in, and read-only transactions (lalo never writes upstream; a statement
/// that tried would fail there too). Sessions cannot change them: SET is answered by lalo and
/// functions with session effects never run upstream (`governance::local_fns`).
/// `standard_conforming_strings` is pinned too: the PostgreSQL lane reads statements as
/// PostgreSQL's grammar does with it on, so the upstream must read them the same way.
pub const PINNED_OPTIONS: &str = "-c search_path=public -c default_transaction_read_only=on -c standard_conforming_strings=on";

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::error::DataFusionError;
use datafusion::sql::TableReference;
use datafusion_table_providers::sql::db_connection_pool::postgrespool::PostgresConnectionPool;
use datafusion_table_providers::sql::sql_provider_datafusion::SqlTable;
use datafusion_table_providers::util::secrets::to_secret_map;
use parking_lot::RwLock;

use super::dialect::{DialectProfile, ProfiledPostgres};
use super::docs::Docs;
use super::sources::UpstreamSource;
use crate::error::LaloError;
use breaker::Breaker;
use pool::{DynPool, GuardedPool};

/// How often a down upstream is probed for recovery.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How long connecting for discovery or a probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Default)]
struct State {
    /// The library's pool (discovery and probes go to it directly, around the breaker).
    raw: Option<Arc<PostgresConnectionPool>>,
    /// The guarded pool every table scans through.
    pool: Option<Arc<DynPool>>,
    tables: HashMap<(String, String), Arc<dyn TableProvider>>,
    discovered: bool,
}

/// One upstream database.
pub struct Upstream {
    pub name: String,
    /// Schemas to serve (all non-system schemas when empty).
    pub schemas: Vec<String>,
    url: Result<String, String>,
    pool_size: u32,
    breaker: Arc<Breaker>,
    state: RwLock<State>,
    docs: Arc<RwLock<Docs>>,
    /// Serialises connect/discover so a refresh and the probe do not race.
    refreshing: tokio::sync::Mutex<()>,
    /// How SQL is written for this upstream (dialects/<kind>.toml).
    pub profile: DialectProfile,
    dialect: Arc<ProfiledPostgres>,
    /// The direct lane (statements that run wholly here); None when the URL is missing.
    direct: Option<Arc<direct::DirectPool>>,
    /// Bumped on every successful refresh, so cached plans over this upstream start over.
    generation: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Upstream {
    pub fn new(
        src: &UpstreamSource,
        docs: Arc<RwLock<Docs>>,
        catalog: &crate::config::CatalogConfig,
        profile: DialectProfile,
    ) -> Result<Arc<Upstream>, LaloError> {
        if src.kind != "postgres" {
            return Err(LaloError::Config(format!(
                "upstream {}: kind '{}' is not supported (postgres)",
                src.name, src.kind
            )));
        }
        let url = match (&src.url, &src.url_env) {
            (Some(url), None) => Ok(url.clone()),
            (None, Some(var)) => {
                std::env::var(var).map_err(|_| format!("environment variable {var} (url_env) is not set"))
            }
            _ => {
                return Err(LaloError::Config(format!(
                    "upstream {}: give exactly one of url_env (recommended) or url",
                    src.name
                )))
            }
        };
        let breaker = Arc::new(Breaker::default());
        let name = src.name.to_ascii_lowercase();
        let pool_size = catalog.upstream_pool_size;
        let pipelined = catalog
            .upstream_pipelined_connections
            .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1))
            .min(pool_size.max(1)) as usize;
        let direct =
            url.as_ref().ok().map(|u| Arc::new(direct::DirectPool::new(&name, u, pool_size.max(1), pipelined, breaker.clone())));
        Ok(Arc::new(Upstream {
            dialect: profile.unparser(),
            profile,
            direct,
            generation: Default::default(),
            name,
            schemas: src.schemas.clone(),
            url,
            pool_size: pool_size.max(1),
            breaker,
            state: RwLock::new(State::default()),
            docs,
            refreshing: tokio::sync::Mutex::new(()),
        }))
    }

    /// The direct lane to this upstream, when it can have one.
    pub fn direct(&self) -> Option<Arc<direct::DirectPool>> {
        self.direct.clone().filter(|d| d.available())
    }

    /// How many times the catalog was read (each REFRESH UPSTREAM or reconnect adds one).
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether the upstream is reachable and its tables are known.
    pub fn is_up(&self) -> bool {
        self.state.read().discovered && !self.breaker.is_down()
    }

    pub fn last_error(&self) -> Option<String> {
        match &self.url {
            Err(e) => Some(e.clone()),
            Ok(_) => self.breaker.last_error(),
        }
    }

    fn lost(&self, detail: &str) -> DataFusionError {
        LaloError::UpstreamLost { upstream: self.name.clone(), message: pool::lost_message(&self.name, detail) }.into()
    }

    /// Connect (creating the pool on first success) and read the upstream's catalog.
    pub async fn refresh(&self) -> Result<usize, LaloError> {
        let _guard = self.refreshing.lock().await;
        let lost = |detail: String| LaloError::UpstreamLost {
            upstream: self.name.clone(),
            message: pool::lost_message(&self.name, &detail),
        };
        let url = self.url.clone().map_err(lost)?;
        let existing = {
            let st = self.state.read();
            st.raw.clone().zip(st.pool.clone())
        };
        let (raw, pool) = match existing {
            Some(p) => p,
            None => {
                let raw = Arc::new(connect_pool(&url, self.pool_size).await.map_err(|e| {
                    self.breaker.failure(&e);
                    lost(e)
                })?);
                let pool: Arc<DynPool> = Arc::new(GuardedPool::new(&self.name, raw.clone(), self.breaker.clone()));
                (raw, pool)
            }
        };
        let conn = match tokio::time::timeout(PROBE_TIMEOUT, raw.connect_direct()).await {
            // json/jsonb and other types without an Arrow twin are served as text.
            Ok(Ok(c)) => c.with_unsupported_type_action(datafusion_table_providers::UnsupportedTypeAction::String),
            Ok(Err(e)) => {
                self.breaker.failure(&e.to_string());
                return Err(lost(e.to_string()));
            }
            Err(_) => {
                self.breaker.failure("connect timed out");
                return Err(lost("connect timed out".into()));
            }
        };
        let found = discover::discover(&conn, &self.schemas).await.map_err(|e| {
            self.breaker.failure(&e);
            lost(e)
        })?;
        drop(conn);
        self.breaker.success();
        let mut tables = HashMap::new();
        {
            let mut docs = self.docs.write();
            for t in &found {
                // Tables in `public` are named bare upstream (the pool pins search_path to
                // public): a query that names them bare then needs no renaming before it is
                // unparsed, and datafusion-federation's renaming mishandles coerced aggregate
                // aliases (`No field named "count(CASE WHEN public.t.x ...)"`).
                let reference = if t.schema == "public" {
                    TableReference::bare(t.name.clone())
                } else {
                    TableReference::partial(t.schema.clone(), t.name.clone())
                };
                let table = SqlTable::new_with_schema("postgres", &pool, t.arrow.clone(), reference)
                    .with_dialect(self.dialect.clone());
                let provider = Arc::new(table)
                    .create_federated_table_provider()
                    .map_err(LaloError::from)?;
                tables.insert((t.schema.clone(), t.name.clone()), Arc::new(provider) as Arc<dyn TableProvider>);
                docs.merge_upstream(&self.name, &t.schema, &t.name, t.doc.clone());
            }
        }
        let n = tables.len();
        let mut st = self.state.write();
        st.raw = Some(raw);
        st.pool = Some(pool);
        st.tables = tables;
        st.discovered = true;
        self.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        tracing::info!(upstream = %self.name, tables = n, "upstream catalog loaded");
        Ok(n)
    }

    /// Keep trying to reach a down upstream; once discovered, probe it while its breaker is open
    /// so that it is back as soon as the upstream is.
    pub fn spawn_monitor(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(up) = me.upgrade() else { return };
                let needs_work = !up.state.read().discovered || up.breaker.is_down();
                if needs_work {
                    if !up.state.read().discovered {
                        if let Err(e) = up.refresh().await {
                            tracing::debug!(upstream = %up.name, error = %e, "upstream still unavailable");
                        }
                    } else {
                        up.probe().await;
                    }
                }
                drop(up);
                tokio::time::sleep(PROBE_EVERY).await;
            }
        });
    }

    /// One cheap round trip around the breaker; closes it when the upstream answers.
    async fn probe(&self) {
        let Some(raw) = self.state.read().raw.clone() else { return };
        let result = tokio::time::timeout(PROBE_TIMEOUT, async {
            let conn = raw.connect_direct().await.map_err(|e| e.to_string())?;
            conn.conn.simple_query("SELECT 1").await.map_err(|e| e.to_string())?;
            Ok::<_, String>(())
        })
        .await
        .unwrap_or_else(|_| Err("probe timed out".into()));
        match result {
            Ok(()) => {
                tracing::info!(upstream = %self.name, "upstream reachable again");
                self.breaker.success();
            }
            Err(e) => self.breaker.failure(&e),
        }
    }

    /// Schema names this upstream serves (configured ones until discovery has run).
    fn schema_names(&self) -> Vec<String> {
        let st = self.state.read();
        let mut names: BTreeSet<String> = self.schemas.iter().map(|s| s.to_ascii_lowercase()).collect();
        if st.discovered {
            names.extend(st.tables.keys().map(|(s, _)| s.clone()));
        }
        if names.is_empty() {
            names.insert("public".into());
        }
        names.into_iter().collect()
    }
}

/// Build the library's pool from a PostgreSQL URL or key=value string.
async fn connect_pool(url: &str, pool_size: u32) -> Result<PostgresConnectionPool, String> {
    use std::str::FromStr;
    let cfg = tokio_postgres::Config::from_str(url).map_err(|e| format!("bad upstream URL: {e}"))?;
    let mut params: HashMap<String, String> = HashMap::new();
    if let Some(host) = cfg.get_hosts().first() {
        match host {
            tokio_postgres::config::Host::Tcp(h) => params.insert("host".into(), h.clone()),
            tokio_postgres::config::Host::Unix(p) => params.insert("host".into(), p.to_string_lossy().into_owned()),
        };
    }
    if let Some(port) = cfg.get_ports().first() {
        params.insert("port".into(), port.to_string());
    }
    if let Some(user) = cfg.get_user() {
        params.insert("user".into(), user.to_string());
    }
    if let Some(db) = cfg.get_dbname() {
        params.insert("db".into(), db.to_string());
    }
    if let Some(pass) = cfg.get_password() {
        params.insert("pass".into(), String::from_utf8_lossy(pass).into_owned());
    }
    let ssl = match cfg.get_ssl_mode() {
        tokio_postgres::config::SslMode::Disable => "disable",
        tokio_postgres::config::SslMode::Require => "require",
        _ => "prefer",
    };
    params.insert("sslmode".into(), ssl.into());
    params.insert("connection_pool_size".into(), pool_size.to_string());
    params.insert("application_name".into(), "lalo".into());
    params.insert("options".into(), PINNED_OPTIONS.into());
    PostgresConnectionPool::new(to_secret_map(params)).await.map_err(|e| e.to_string())
}

/// All upstreams, by name.
#[derive(Debug, Default)]
pub struct Upstreams {
    list: BTreeMap<String, Arc<Upstream>>,
}

impl Upstreams {
    pub fn new(list: Vec<Arc<Upstream>>) -> Upstreams {
        Upstreams { list: list.into_iter().map(|u| (u.name.clone(), u)).collect() }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Upstream>> {
        self.list.get(&name.to_ascii_lowercase())
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Upstream>> {
        self.list.values()
    }

    /// Changes whenever any upstream's catalog is re-read.
    pub fn generation(&self) -> u64 {
        self.list.values().map(|u| u.generation.load(std::sync::atomic::Ordering::Acquire)).sum()
    }
}

/// An upstream as a DataFusion catalog.
#[derive(Debug)]
pub struct UpstreamCatalog {
    upstream: Arc<Upstream>,
}

impl UpstreamCatalog {
    pub fn new(upstream: Arc<Upstream>) -> Self {
        Self { upstream }
    }
}

impl CatalogProvider for UpstreamCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.upstream.schema_names()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        let name = name.to_string();
        if !self.upstream.schema_names().contains(&name) {
            return None;
        }
        Some(Arc::new(UpstreamSchema { upstream: self.upstream.clone(), schema: name }))
    }
}

#[derive(Debug)]
struct UpstreamSchema {
    upstream: Arc<Upstream>,
    schema: String,
}

#[async_trait]
impl SchemaProvider for UpstreamSchema {
    fn table_names(&self) -> Vec<String> {
        let st = self.upstream.state.read();
        let mut names: Vec<String> =
            st.tables.keys().filter(|(s, _)| *s == self.schema).map(|(_, t)| t.clone()).collect();
        names.sort();
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        let st = self.upstream.state.read();
        if let Some(t) = st.tables.get(&(self.schema.clone(), name.to_string())) {
            return Ok(Some(t.clone()));
        }
        if !st.discovered {
            let detail = self.upstream.last_error().unwrap_or_else(|| "not connected yet".into());
            return Err(self.upstream.lost(&format!("unavailable ({detail})")));
        }
        Ok(None)
    }

    fn table_exist(&self, name: &str) -> bool {
        self.upstream.state.read().tables.contains_key(&(self.schema.clone(), name.to_string()))
    }
}
