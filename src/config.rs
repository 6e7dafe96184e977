//! `lalo.toml`: the gateway's configuration, with defaults and `LALO_*` environment overrides.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::LaloError;

/// The demo configuration compiled into the binary, used when no config file is given or found.
pub const DEMO_CONFIG: &str = include_str!("../lalo.toml");

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Default, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub users: Vec<UserConfig>,
    pub catalog: CatalogConfig,
    pub planner: PlannerConfig,
    pub governance: GovernanceConfig,
    pub mcp: McpConfig,
    pub engine: EngineConfig,
    /// Directory the config file was read from; relative paths resolve against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// True for the compiled-in demo config (no config file given or found): only then may the
    /// compiled-in demo policies stand in for a missing policy directory.
    #[serde(skip)]
    pub builtin: bool,
}

/// `[server]`: listeners, TLS and per-connection limits.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: String,
    pub http_listen: String,
    /// Arrow Flight SQL (src/flight/); off when unset.
    pub flight_listen: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Refuse connections that did not negotiate TLS.
    pub tls_required: bool,
    pub max_connections: usize,
    /// 0 means no timeout.
    pub statement_timeout_ms: u64,
    /// On SIGTERM/SIGINT, how long statements in flight may finish before they end with 57P01.
    pub shutdown_grace_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:6432".into(),
            http_listen: "127.0.0.1:6480".into(),
            flight_listen: None,
            tls_cert: None,
            tls_key: None,
            tls_required: false,
            max_connections: 256,
            statement_timeout_ms: 0,
            shutdown_grace_ms: 30_000,
        }
    }
}

/// `[[users]]`: who may connect, and the attributes row filters refer to.
#[derive(Debug, Clone, Deserialize, Default, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    /// Plain password (demo configs only: prefer `password_env`).
    pub password: Option<String>,
    /// Name of the environment variable holding the password.
    pub password_env: Option<String>,
    /// Attributes substituted into row filters as `${user.<key>}`.
    pub attributes: BTreeMap<String, String>,
}

/// `[catalog]`: where sources.toml, the docs and generated data live.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CatalogConfig {
    pub dir: PathBuf,
    pub data_dir: PathBuf,
    /// TPC-H scale factor of the embedded demo schema `tpch`; 0 disables it.
    pub tpch_scale: f64,
    /// Connections per upstream database.
    pub upstream_pool_size: u32,
    /// Pipelined connections per upstream for lookups by primary key (several clients' lookups
    /// queued on one connection); unset: one per CPU; 0: none, every lookup gets a connection
    /// of its own.
    pub upstream_pipelined_connections: Option<u32>,
    /// The PostgreSQL lane: SELECTs over one upstream PostgreSQL run there as written, each
    /// relation replaced by its governed derived table (PostgreSQL's exact answers). Off: every
    /// statement is planned by the engine.
    pub postgres_lane: bool,
    /// Megabytes of embedded file tables (the demo TPC-H schema, sources.toml tables) held in
    /// memory as Arrow batches, loaded at start, smallest first until the budget is spent;
    /// 0: every statement reads the files.
    pub memory_cache_mb: u64,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        Self {
            dir: "catalog".into(),
            data_dir: "data".into(),
            tpch_scale: 0.01,
            upstream_pool_size: 16,
            upstream_pipelined_connections: None,
            postgres_lane: true,
            memory_cache_mb: 0,
        }
    }
}

/// Which drafter turns questions into SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DrafterKind {
    /// The built-in rule-based drafter (no model).
    #[default]
    Rules,
    /// An OpenAI-compatible chat-completions endpoint (nl/llm.rs).
    Llm,
}

impl DrafterKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DrafterKind::Rules => "rules",
            DrafterKind::Llm => "llm",
        }
    }
}

/// `[planner]`: how questions become SQL.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PlannerConfig {
    pub drafter: DrafterKind,
    pub llm_base_url: Option<String>,
    pub llm_model: Option<String>,
    pub llm_api_key_env: Option<String>,
    pub embeddings_base_url: Option<String>,
    pub embeddings_model: Option<String>,
    pub max_repairs: u32,
    /// Build and use the retrieval index (lancedb) for questions; off, questions rank tables in memory.
    pub retrieval_index: bool,
    /// Where the retrieval index lives; default `<catalog.data_dir>/retrieval`.
    pub retrieval_dir: Option<PathBuf>,
    /// `llm` drafter: how long one chat completion may take.
    pub llm_timeout_ms: u64,
    /// `llm` drafter: tokens (`usage.total_tokens`) one user may spend per hour; 0 means unlimited.
    pub llm_token_budget_per_hour: u64,
    /// Sample values in model prompts: `non_pii` (default: none from columns classified as
    /// personal data, whatever `[governance] pii` masks), `all`, or `none`.
    pub prompt_samples: String,
}

impl Default for PlannerConfig {
    fn default() -> Self {
        Self {
            drafter: DrafterKind::Rules,
            llm_base_url: None,
            llm_model: None,
            llm_api_key_env: None,
            embeddings_base_url: None,
            embeddings_model: None,
            max_repairs: 2,
            retrieval_index: true,
            retrieval_dir: None,
            llm_timeout_ms: 20_000,
            llm_token_budget_per_hour: 0,
            prompt_samples: "non_pii".into(),
        }
    }
}

/// `[governance]`: policies, audit trail and global limits.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct GovernanceConfig {
    /// Turn policy checks off entirely (benchmarks only): every user may read everything.
    pub enabled: bool,
    pub policies: PathBuf,
    pub audit_log: PathBuf,
    /// The environment variable holding the audit key: when set, the chain is HMAC-SHA-256 and
    /// nobody without the key can recompute it.
    pub audit_key_env: String,
    /// `always` (a statement's line is synced before its first row), `batch_ms:N`, `off`.
    pub audit_sync: String,
    /// Rotate the audit log into numbered segments at this size (0: never).
    pub audit_rotate_bytes: u64,
    /// Rotate the audit log into numbered segments at this age in seconds (0: never).
    pub audit_rotate_secs: u64,
    /// Emit every audit head update to the structured log (an external copy of the anchor).
    pub audit_head_log: bool,
    /// 0 means unlimited.
    pub max_rows: u64,
    /// 0 means unlimited.
    pub rate_limit_per_minute: u32,
    /// Personal data: `off`, `report` (classify columns, list them to admins and in the audit)
    /// or `mask` (also mask confidently classified columns for callers no mask rule names).
    pub pii: String,
    /// Rows sampled per table to classify its columns.
    pub pii_sample_rows: u32,
}

impl Default for GovernanceConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            policies: "policies".into(),
            audit_log: "data/audit.log".into(),
            audit_key_env: String::new(),
            audit_sync: "always".into(),
            audit_rotate_bytes: 0,
            audit_rotate_secs: 0,
            audit_head_log: false,
            max_rows: 0,
            rate_limit_per_minute: 0,
            pii: "off".into(),
            pii_sample_rows: 200,
        }
    }
}

/// `[engine]`: where governed plans over embedded tables run.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// `off` (the local engine), `standalone` (a Ballista scheduler and executors inside this
    /// process, over loopback gRPC) or `df://host:port` (an external Ballista scheduler).
    pub distributed: String,
    /// When the scheduler cannot be reached, run the statement on the local engine instead of
    /// answering 08006.
    pub distributed_fallback: bool,
    /// Executors `standalone` starts.
    pub distributed_executors: u32,
    /// Tasks each standalone executor runs at once; 0: the machine's cores over the executors.
    pub distributed_tasks: u32,
    /// DataFusion session options for every statement the local engine plans, by DataFusion's
    /// names (`"datafusion.execution.batch_size" = "16384"`). lalo's own parser, catalog and
    /// time-zone settings cannot be changed here.
    pub datafusion: std::collections::BTreeMap<String, String>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            distributed: "off".into(),
            distributed_fallback: false,
            distributed_executors: 2,
            distributed_tasks: 0,
            datafusion: Default::default(),
        }
    }
}

/// `[mcp]`: bearer tokens for the HTTP MCP endpoint.
#[derive(Debug, Clone, Deserialize, Default, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct McpConfig {
    pub tokens: Vec<McpToken>,
}

/// One bearer token (read from the environment) and the lalo user it acts as.
#[derive(Debug, Clone, Deserialize, Default, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct McpToken {
    pub token_env: String,
    pub user: String,
}

impl Config {
    /// Load `path`, or `./lalo.toml` if it exists, or the compiled-in demo config.
    pub fn load(path: Option<&Path>) -> Result<Config, LaloError> {
        let (text, base_dir) = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| LaloError::Config(format!("cannot read {}: {e}", p.display())))?;
                (text, p.parent().map(Path::to_path_buf).unwrap_or_default())
            }
            None if Path::new("lalo.toml").is_file() => {
                let text = std::fs::read_to_string("lalo.toml")
                    .map_err(|e| LaloError::Config(format!("cannot read lalo.toml: {e}")))?;
                (text, PathBuf::from("."))
            }
            None => {
                let mut cfg = Self::from_toml(DEMO_CONFIG, PathBuf::from("."), |k| std::env::var(k).ok())?;
                cfg.builtin = true;
                return Ok(cfg);
            }
        };
        Self::from_toml(&text, base_dir, |k| std::env::var(k).ok())
    }

    /// Parse TOML text and apply `LALO_*` overrides looked up through `env`.
    pub fn from_toml(
        text: &str,
        base_dir: PathBuf,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, LaloError> {
        let mut value: toml::Table =
            toml::from_str(text).map_err(|e| LaloError::Config(format!("lalo.toml: {e}")))?;
        apply_env_overrides(&mut value, &env)?;
        let mut cfg: Config = toml::Value::Table(value)
            .try_into()
            .map_err(|e| LaloError::Config(format!("lalo.toml: {e}")))?;
        cfg.base_dir = base_dir;
        Ok(cfg)
    }

    /// Resolve a configured path against the config file's directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() { p.to_path_buf() } else { self.base_dir.join(p) }
    }
}

/// How an override's text becomes a TOML value: by the type of the field it sets.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Bool,
    Integer,
    /// An integer field of an unsigned type (its schema's `minimum` is 0).
    Unsigned,
    Float,
    Text,
}

/// The scalar keys `LALO_<SECTION>_<KEY>` may override, each with its field's type, read off
/// the config structs' JSON schema, so that a field is overridable the day it is added.
fn overridable() -> &'static [(String, String, Kind)] {
    static KEYS: std::sync::OnceLock<Vec<(String, String, Kind)>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let root = schemars::schema_for!(Config).to_value();
        let mut keys = Vec::new();
        let Some(sections) = root.get("properties").and_then(|p| p.as_object()) else { return keys };
        for (section, schema) in sections {
            let schema = resolve(&root, schema);
            let Some(fields) = schema.get("properties").and_then(|p| p.as_object()) else { continue };
            for (key, field) in fields {
                if let Some(kind) = scalar_kind(&root, field) {
                    keys.push((section.clone(), key.clone(), kind));
                }
            }
        }
        keys
    })
}

/// Follow a `$ref` into the schema's `$defs`.
fn resolve<'a>(root: &'a serde_json::Value, schema: &'a serde_json::Value) -> &'a serde_json::Value {
    match schema.get("$ref").and_then(|r| r.as_str()).and_then(|r| r.strip_prefix("#/$defs/")) {
        Some(name) => root.get("$defs").and_then(|d| d.get(name)).unwrap_or(schema),
        None => schema,
    }
}

/// The type of a scalar field (optional or not), or `None` for lists, tables and maps.
fn scalar_kind(root: &serde_json::Value, field: &serde_json::Value) -> Option<Kind> {
    let field = resolve(root, field);
    if field.get("enum").is_some() {
        return Some(Kind::Text);
    }
    // `Option<T>` is `"type": ["T", "null"]`, or a `oneOf`/`anyOf` with a null member.
    for alternatives in ["oneOf", "anyOf"] {
        if let Some(list) = field.get(alternatives).and_then(|l| l.as_array()) {
            let kinds: Vec<Kind> = list.iter().filter(|m| m.get("type").and_then(|t| t.as_str()) != Some("null")).filter_map(|m| scalar_kind(root, m)).collect();
            return kinds.first().copied().filter(|k| kinds.iter().all(|o| o == k));
        }
    }
    let types: Vec<&str> = match field.get("type")? {
        serde_json::Value::String(t) => vec![t.as_str()],
        serde_json::Value::Array(ts) => ts.iter().filter_map(|t| t.as_str()).filter(|t| *t != "null").collect(),
        _ => return None,
    };
    match types.as_slice() {
        ["boolean"] => Some(Kind::Bool),
        ["integer"] if field.get("minimum").and_then(|m| m.as_f64()).is_some_and(|m| m >= 0.0) => Some(Kind::Unsigned),
        ["integer"] => Some(Kind::Integer),
        ["number"] => Some(Kind::Float),
        ["string"] => Some(Kind::Text),
        _ => None,
    }
}

/// The `LALO_*` variables lalo reads, with the TOML key each sets.
pub fn override_variables() -> Vec<(String, String)> {
    overridable().iter().map(|(s, k, _)| (env_name(s, k), format!("[{s}] {k}"))).collect()
}

fn env_name(section: &str, key: &str) -> String {
    format!("LALO_{}_{}", section.to_uppercase(), key.to_uppercase())
}

fn apply_env_overrides(
    table: &mut toml::Table,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<(), LaloError> {
    for (section, key, kind) in overridable() {
        let var = env_name(section, key);
        let Some(raw) = env(&var) else { continue };
        let bad = |what: &str| LaloError::Config(format!("{var}={raw:?}: [{section}] {key} takes {what}"));
        let value = match kind {
            Kind::Bool => match raw.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => toml::Value::Boolean(true),
                "false" | "0" | "no" | "off" => toml::Value::Boolean(false),
                _ => return Err(bad("true or false")),
            },
            Kind::Integer => toml::Value::Integer(raw.trim().parse().map_err(|_| bad("a whole number"))?),
            Kind::Unsigned => match raw.trim().parse::<i64>() {
                Ok(n) if n >= 0 => toml::Value::Integer(n),
                _ => return Err(bad("a whole number, 0 or more")),
            },
            Kind::Float => toml::Value::Float(raw.trim().parse().map_err(|_| bad("a number"))?),
            Kind::Text => toml::Value::String(raw),
        };
        let entry = table
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(t) = entry else {
            return Err(LaloError::Config(format!("[{section}] must be a table")));
        };
        t.insert(key.to_string(), value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_config_parses() {
        let cfg = Config::from_toml(DEMO_CONFIG, ".".into(), |_| None).unwrap();
        assert!(!cfg.users.is_empty());
        assert_eq!(cfg.server.listen, "127.0.0.1:6432");
    }

    #[test]
    fn env_overrides_keep_types() {
        let cfg = Config::from_toml("", ".".into(), |k| match k {
            "LALO_SERVER_LISTEN" => Some("127.0.0.1:7000".into()),
            "LALO_GOVERNANCE_MAX_ROWS" => Some("10".into()),
            "LALO_CATALOG_TPCH_SCALE" => Some("0.1".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(cfg.server.listen, "127.0.0.1:7000");
        assert_eq!(cfg.governance.max_rows, 10);
        assert_eq!(cfg.catalog.tpch_scale, 0.1);
    }

    #[test]
    fn every_scalar_key_is_overridable_by_its_type() {
        let vars: Vec<String> = override_variables().into_iter().map(|(v, _)| v).collect();
        for v in ["LALO_SERVER_SHUTDOWN_GRACE_MS", "LALO_CATALOG_POSTGRES_LANE", "LALO_CATALOG_UPSTREAM_PIPELINED_CONNECTIONS", "LALO_PLANNER_DRAFTER", "LALO_SERVER_TLS_CERT"] {
            assert!(vars.iter().any(|x| x == v), "{v} missing from {vars:?}");
        }
        assert!(!vars.iter().any(|v| v.starts_with("LALO_USERS") || v.starts_with("LALO_MCP")), "{vars:?}");
        // A text field stays text even when it looks like a number; a number field refuses text.
        let cfg = Config::from_toml("", ".".into(), |k| match k {
            "LALO_GOVERNANCE_AUDIT_KEY_ENV" => Some("1234".into()),
            "LALO_CATALOG_POSTGRES_LANE" => Some("off".into()),
            "LALO_PLANNER_DRAFTER" => Some("llm".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(cfg.governance.audit_key_env, "1234");
        assert!(!cfg.catalog.postgres_lane);
        assert_eq!(cfg.planner.drafter, DrafterKind::Llm);
        let err = Config::from_toml("", ".".into(), |k| (k == "LALO_SERVER_MAX_CONNECTIONS").then(|| "many".to_string())).unwrap_err();
        assert!(err.to_string().contains("LALO_SERVER_MAX_CONNECTIONS") && err.to_string().contains("whole number"), "{err}");
        let err = Config::from_toml("", ".".into(), |k| (k == "LALO_GOVERNANCE_MAX_ROWS").then(|| "-5".to_string())).unwrap_err();
        assert!(err.to_string().contains("LALO_GOVERNANCE_MAX_ROWS") && err.to_string().contains("0 or more"), "{err}");
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(Config::from_toml("[server]\nlisten_typo = 1", ".".into(), |_| None).is_err());
    }
}
