//! The execution engine: DataFusion's catalog of embedded tables (and upstreams), and the
//! per-session contexts that plan against a caller's view of it.

pub mod dialect;
pub mod docs;
pub mod functions;
pub mod info_keys;
pub mod info_schema;
pub mod info_shapes;
pub mod interrupt;
pub mod keys;
pub mod live_table;
pub mod mask_fn;
pub mod memory_cache;
mod join_filter_gate;
mod memory_scan;
mod recursive_columns;
mod table_stats;
mod estimates;
mod decimal_arith;
pub(crate) mod dense_and;
mod null_safe_filters;
mod filter_names;
mod topk_groups;
mod join_settings;
mod key_order;
mod unnest_order;
pub mod overflow;
pub mod pg_age;
pub mod pg_date_part;
pub mod pg_date_trunc;
pub mod pg_descriptions;
pub mod pg_exact;
pub mod pg_expandarray;
pub mod pg_int4;
pub mod pg_series;
pub mod pg_trunc;
pub mod pg_numeric;
pub mod pinned_first;
pub mod pg_json;
pub mod pg_literals;
pub mod pg_text;
pub mod pg_keys;
pub mod search_path;
pub mod sources;
pub mod subquery_null;
pub mod tpch;
pub mod upstream;
pub mod views;

use std::sync::Arc;

use datafusion::catalog::{CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemorySchemaProvider};
use datafusion::catalog::{MemoryCatalogProviderList, SchemaProvider};
use datafusion::catalog::information_schema::InformationSchemaProvider;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionConfig, SessionContext};
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::pg_catalog::{PgCatalogSchemaProvider, PgCatalogStaticTables};
use parking_lot::RwLock;

use crate::config::Config;
use crate::error::LaloError;
use docs::Docs;
use sources::Sources;
use views::{ViewCatalogList, ViewMode, Visibility};

/// The database name of the embedded catalog.
pub const EMBEDDED_DB: &str = "lalo";
/// lalo's own tables about governance (classified personal data, budgets): admins read them.
pub const GOVERNANCE_SCHEMA: &str = "lalo_governance";

/// Shared, immutable-after-start engine state.
pub struct Engine {
    base: Arc<MemoryCatalogProviderList>,
    docs: Arc<RwLock<Docs>>,
    template: SessionState,
    pg_static: Arc<PgCatalogStaticTables>,
    upstreams: Arc<upstream::Upstreams>,
    /// Sessions plan without dynamic filters ([`PlanRules::distributed`]).
    distributed: bool,
    /// `[engine] datafusion`, applied to every session's config.
    datafusion_options: Vec<(String, String)>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

fn session_config(db: &str) -> SessionConfig {
    let mut cfg = SessionConfig::new()
        .with_default_catalog_and_schema(db, "public")
        .with_create_default_catalog_and_schema(false)
        // lalo registers its own governed information_schema per session.
        .with_information_schema(false);
    // PostgreSQL identifiers fold to lower case; so does lalo.
    cfg.options_mut().sql_parser.enable_ident_normalization = true;
    cfg.options_mut().sql_parser.dialect = datafusion::config::Dialect::PostgreSQL;
    // 12.34 is NUMERIC in PostgreSQL, not double precision.
    cfg.options_mut().sql_parser.parse_float_as_decimal = true;
    // TIMESTAMPTZ values and now() carry a zone, as in PostgreSQL; sessions start in UTC.
    cfg.options_mut().execution.time_zone = Some("+00:00".into());
    // Join sides are sized with distinct counts and per-conjunct selectivities (estimates.rs).
    cfg.options_mut().optimizer.use_statistics_registry = true;
    cfg
}

/// `[engine] datafusion`: DataFusion session options, checked against DataFusion's own list.
/// The parser's, the catalog's and the time zone's are lalo's: PostgreSQL's identifier
/// folding, its literal types and lalo's catalogs depend on them.
fn datafusion_options(options: &std::collections::BTreeMap<String, String>) -> Result<Vec<(String, String)>, LaloError> {
    let mut probe = session_config(EMBEDDED_DB);
    let mut out = Vec::new();
    for (key, value) in options {
        let reserved = ["datafusion.sql_parser.", "datafusion.catalog."].iter().any(|p| key.starts_with(p)) || key == "datafusion.execution.time_zone";
        if reserved {
            return Err(LaloError::Config(format!("[engine] datafusion: {key} is set by lalo and cannot be changed")));
        }
        probe.options_mut().set(key, value).map_err(|e| LaloError::Config(format!("[engine] datafusion: {key} = {value:?}: {e}")))?;
        out.push((key.clone(), value.clone()));
    }
    Ok(out)
}

/// A context with lalo's functions (PostgreSQL's catalog functions and lalo's own): the template
/// of every session, and what Ballista's scheduler and executors decode plans with.
pub fn function_context(runtime: Arc<RuntimeEnv>) -> Result<SessionContext, LaloError> {
    let ctx = SessionContext::new_with_config_rt(SessionConfig::new().with_default_catalog_and_schema("datafusion", "public"), runtime);
    datafusion_pg_catalog::setup_pg_catalog(&ctx, "datafusion", EmptyContextProvider).map_err(|e| LaloError::Internal(e.to_string()))?;
    functions::register_static(&ctx);
    Ok(ctx)
}

/// Optimizer rules the layers above the engine add to its planner (governance's): some run
/// before federation cuts upstream subtrees out, so they shape the SQL sent upstream too.
#[derive(Default)]
pub struct PlanRules {
    pub before_federation: Vec<Arc<dyn datafusion::optimizer::OptimizerRule + Send + Sync>>,
    pub last: Vec<Arc<dyn datafusion::optimizer::OptimizerRule + Send + Sync>>,
    /// Physical rules run after all of lalo's own.
    pub physical_last: Vec<Arc<dyn datafusion::physical_optimizer::PhysicalOptimizerRule + Send + Sync>>,
    /// Plans may leave for a distributed engine: no dynamic filters (a join's build side
    /// narrowing its probe side's scan at run time), which do not survive being cut into stages.
    pub distributed: bool,
}

impl Engine {
    /// Build the catalog from the config: demo TPC-H, sources.toml tables, docs.
    pub async fn build(config: &Config, rules: PlanRules) -> Result<Engine, LaloError> {
        let base = Arc::new(MemoryCatalogProviderList::new());
        let lalo = Arc::new(MemoryCatalogProvider::new());
        lalo.register_schema("public", Arc::new(MemorySchemaProvider::new()))?;
        base.register_catalog(EMBEDDED_DB.to_string(), lalo.clone());

        let datafusion_options = datafusion_options(&config.engine.datafusion)?;
        let mut loader_config = session_config(EMBEDDED_DB);
        for (key, value) in &datafusion_options {
            loader_config.options_mut().set(key, value)?;
        }
        let runtime = Arc::new(RuntimeEnv::default());
        let loader_state = SessionStateBuilder::new()
            .with_config(loader_config)
            .with_runtime_env(runtime.clone())
            .with_catalog_list(base.clone() as Arc<dyn CatalogProviderList>)
            .with_default_features()
            .build();
        let loader = SessionContext::new_with_state(loader_state);

        let mut files = Vec::new();
        let data_dir = config.resolve(&config.catalog.data_dir);
        if config.catalog.tpch_scale > 0.0 {
            let dir = tpch::ensure_generated(&data_dir, config.catalog.tpch_scale).await?;
            ensure_schema(&lalo, "tpch")?;
            for t in tpch::TABLES {
                let path = dir.join(format!("{t}.parquet"));
                loader
                    .register_parquet(format!("{EMBEDDED_DB}.tpch.{t}"), path.to_string_lossy().as_ref(), ParquetReadOptions::default())
                    .await?;
                files.push(memory_cache::FileTable { schema: "tpch".into(), name: t.to_string(), path });
            }
        }

        let catalog_dir = config.resolve(&config.catalog.dir);
        let sources = Sources::load(&catalog_dir)?;
        for t in &sources.tables {
            ensure_schema(&lalo, &t.schema)?;
            let path = catalog_dir.join(&t.path);
            let name = format!("{EMBEDDED_DB}.{}.{}", t.schema, t.name);
            let p = path.to_string_lossy();
            match t.format()? {
                "csv" => loader.register_csv(name, p.as_ref(), CsvReadOptions::new().has_header(t.has_header)).await?,
                _ => loader.register_parquet(name, p.as_ref(), ParquetReadOptions::default()).await?,
            }
            files.push(memory_cache::FileTable { schema: t.schema.clone(), name: t.name.clone(), path });
        }
        // A distributed engine's executors read the files themselves: nothing to hold here.
        if config.catalog.memory_cache_mb > 0 && !rules.distributed {
            let partitions = loader.state().config().target_partitions();
            let catalog: Arc<dyn datafusion::catalog::CatalogProvider> = lalo.clone();
            let budget = config.catalog.memory_cache_mb.saturating_mul(1 << 20);
            memory_cache::load(&loader, &catalog, EMBEDDED_DB, &files, budget, partitions).await?;
        }

        let mut docs = Docs::embedded();
        docs.load_dir(&catalog_dir.join("docs"))?;
        let docs = Arc::new(RwLock::new(docs));

        let mut ups = Vec::new();
        for src in &sources.upstreams {
            let profile = dialect::DialectProfile::load(&config.resolve(std::path::Path::new("dialects")), &src.kind)?;
            let up = upstream::Upstream::new(src, docs.clone(), &config.catalog, profile)?;
            if up.name == EMBEDDED_DB || base.catalog(&up.name).is_some() {
                return Err(LaloError::Config(format!("upstream name '{}' is already a database", up.name)));
            }
            base.register_catalog(up.name.clone(), Arc::new(upstream::UpstreamCatalog::new(up.clone())));
            ups.push(up);
        }
        // Connect to all upstreams at once; one that is down does not hold up the start.
        let attempts = ups.iter().map(|u| {
            let u = u.clone();
            async move {
                if let Err(e) = u.refresh().await {
                    tracing::warn!(upstream = %u.name, error = %e, "upstream unavailable at start; retrying in the background");
                }
            }
        });
        futures::future::join_all(attempts).await;
        for u in &ups {
            u.spawn_monitor();
        }
        let upstreams = Arc::new(upstream::Upstreams::new(ups));

        // One template state holds every function and planner extension; sessions clone it.
        let template_ctx = function_context(runtime)?;
        // Federation: subtrees over one upstream are cut out and sent there as one statement.
        // Where the library puts its rule (early, right after scalar subqueries become joins),
        // with lalo's unparse fix-up just before it; later DataFusion rules (e.g. rewriting
        // COUNT(DISTINCT) into nested aggregates) would produce plans the unparser cannot render.
        let mut optimizer = datafusion::optimizer::Optimizer::new().rules;
        // An outer join under a condition that no row of its NULL-extended side passes is an
        // inner join (DataFusion's eliminate_outer_join), but that rule runs before
        // push_down_filter, which is what brings a WHERE written above other joins down to the
        // outer join; and on the next pass optimize_projections has put a projection between
        // them, which the rule does not look through. Run it again right after the pushdown:
        // `c RIGHT JOIN c2 … JOIN n … WHERE c.k < 300` then joins inner and narrows c in its scan.
        if let Some(at) = optimizer.iter().position(|r| r.name() == "push_down_filter") {
            optimizer.insert(at + 1, Arc::new(datafusion::optimizer::eliminate_outer_join::EliminateOuterJoin::new()));
        }
        // Column pruning that keeps what recursive queries read from their working table.
        for r in optimizer.iter_mut().filter(|r| r.name() == "optimize_projections") {
            *r = Arc::new(recursive_columns::KeepRecursiveColumns::default());
        }
        let at = optimizer.iter().position(|r| r.name() == "scalar_subquery_to_join").map(|p| p + 1).unwrap_or(optimizer.len());
        optimizer.insert(at, Arc::new(datafusion_federation::FederationOptimizerRule::new()));
        optimizer.insert(at, Arc::new(upstream::unparse_fix::UnparseFriendly));
        for r in rules.before_federation.into_iter().rev() {
            optimizer.insert(at, r);
        }
        // NUMERIC averages from the sums and counts beside them, after governance saw the avg.
        optimizer.push(Arc::new(pg_numeric::avg_sums::AvgSums));
        // A small table pinned by a constant joins the table its keys meet first (pinned_first.rs).
        optimizer.push(Arc::new(pinned_first::PinnedFirst));
        optimizer.extend(rules.last);
        // Before any physical rule: conditions above an upstream's part stay (upstream/boundary.rs).
        let mut physical = datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new().rules;
        physical.insert(0, Arc::new(upstream::boundary::Boundaries));
        // An unnest over two columns of one name claims no order (unnest_order.rs).
        physical.insert(1, Arc::new(unnest_order::UnnestOrder));
        // Grouping keys are never reordered to a join's by name (key_order.rs).
        for r in physical.iter_mut().filter(|r| r.name() == "EnforceDistribution") {
            *r = Arc::new(key_order::KeyOrderSafe(r.clone()));
        }
        // Top-k groups follow the sorted column by position, not by name (topk_groups.rs).
        for r in physical.iter_mut().filter(|r| r.name() == "LimitAggregation") {
            *r = Arc::new(topk_groups::TopKGroups);
        }
        // Filters move down by name only where a name means one column (filter_names.rs).
        for r in physical.iter_mut().filter(|r| r.name().starts_with("FilterPushdown")) {
            *r = Arc::new(filter_names::NameSafe(r.clone()));
        }
        // Last: arithmetic in the final projections and filters is checked (overflow.rs).
        physical.push(Arc::new(overflow::CheckedArithmetic));
        // Then conjunctions ending in cheap comparisons are evaluated densely (dense_and.rs).
        physical.push(Arc::new(dense_and::DenseConjunctions));
        // And no join filter where NULL keys decide the answer (null_safe_filters.rs).
        physical.push(Arc::new(null_safe_filters::NullSafeJoinFilters));
        // Then scans in memory wait for their joins' filters (join_filter_gate.rs).
        physical.push(Arc::new(join_filter_gate::JoinFilterGate));
        // Then the layers above's (a distributed engine's: what can run there is wrapped to).
        physical.extend(rules.physical_last);
        let distributed = rules.distributed;
        let state = template_ctx.state();
        let view = state.config_options().sql_parser.map_string_types_to_utf8view;
        let mut builder = SessionStateBuilder::new_from_existing(state);
        // VARCHAR casts keep their name for the row description; other types go to the
        // pg_catalog planner setup_pg_catalog installed.
        let types = crate::pgtypes::varchar::VarcharTypePlanner::new(builder.type_planner().clone(), view);
        let template = builder
            .with_type_planner(Arc::new(types))
            .with_optimizer_rules(optimizer)
            .with_physical_optimizer_rules(physical)
            .with_query_planner(Arc::new(datafusion_federation::FederatedQueryPlanner::new()))
            .with_statistics_registry(estimates::registry())
            .build();
        let pg_static = Arc::new(PgCatalogStaticTables::try_new()?);
        Ok(Engine { base, docs, template, pg_static, upstreams, distributed, datafusion_options })
    }

    /// Serve the audit log as `lalo.lalo_audit.events` (policy decides who may read it).
    pub async fn register_audit_table(&self, path: &std::path::Path) -> Result<(), LaloError> {
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        use datafusion::prelude::JsonReadOptions;
        let lalo = self.base.catalog(EMBEDDED_DB).ok_or_else(|| LaloError::Internal("no embedded catalog".into()))?;
        if lalo.schema("lalo_audit").is_none() {
            lalo.register_schema("lalo_audit", Arc::new(MemorySchemaProvider::new()))?;
        }
        let text = |n: &str, null: bool| Field::new(n, DataType::Utf8, null);
        let list = |n: &str| Field::new(n, DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))), true);
        let schema = Schema::new(vec![
            text("time", false),
            text("user", false),
            text("client", true),
            text("entry", true),
            text("input", true),
            text("question", true),
            text("sql", true),
            list("objects"),
            text("decision", true),
            list("rules"),
            Field::new("rows", DataType::Int64, true),
            Field::new("duration_ms", DataType::Float64, true),
            text("error", true),
            text("trace", true),
            text("prev_hash", true),
            text("hash", true),
            Field::new("seq", DataType::Int64, true),
            text("kind", true),
            Field::new("completes", DataType::Int64, true),
            text("chain", true),
        ]);
        let ext = path.extension().and_then(|e| e.to_str()).map(|e| format!(".{e}")).unwrap_or_default();
        let loader = SessionContext::new_with_state(
            SessionStateBuilder::new()
                .with_config(session_config(EMBEDDED_DB))
                .with_catalog_list(self.base.clone() as Arc<dyn CatalogProviderList>)
                .with_default_features()
                .build(),
        );
        let mut opts = JsonReadOptions::default().schema(&schema).file_extension(&ext);
        opts.newline_delimited = true;
        loader
            .register_json(format!("{EMBEDDED_DB}.lalo_audit.events"), path.to_string_lossy().as_ref(), opts)
            .await?;
        Ok(())
    }

    /// Serve `table` in lalo's own database (schema `lalo_governance`), rows made at each scan.
    pub fn register_live_table(&self, table: &str, provider: Arc<live_table::LiveTable>) -> Result<(), LaloError> {
        let lalo = self.base.catalog(EMBEDDED_DB).ok_or_else(|| LaloError::Internal("no embedded catalog".into()))?;
        if lalo.schema(GOVERNANCE_SCHEMA).is_none() {
            lalo.register_schema(GOVERNANCE_SCHEMA, Arc::new(MemorySchemaProvider::new()))?;
        }
        let schema = lalo.schema(GOVERNANCE_SCHEMA).ok_or_else(|| LaloError::Internal("no governance schema".into()))?;
        schema.deregister_table(table)?;
        schema.register_table(table.to_string(), provider)?;
        Ok(())
    }

    /// An ungoverned context over the shared catalog that may run DDL (CREATE TABLE, CREATE
    /// EXTERNAL TABLE, DROP). For tooling and test setup only: no client can reach it.
    pub fn setup_context(&self) -> SessionContext {
        SessionContext::new_with_state(
            SessionStateBuilder::new()
                .with_config(session_config(EMBEDDED_DB))
                .with_catalog_list(self.base.clone() as Arc<dyn CatalogProviderList>)
                .with_default_features()
                .build(),
        )
    }

    /// The shared catalog list (all databases, unfiltered).
    pub fn catalogs(&self) -> Arc<dyn CatalogProviderList> {
        self.base.clone()
    }

    /// Whether a database of this name exists.
    pub fn has_database(&self, db: &str) -> bool {
        self.base.catalog(db).is_some()
    }

    /// The upstream databases.
    pub fn upstreams(&self) -> Arc<upstream::Upstreams> {
        self.upstreams.clone()
    }

    pub fn docs(&self) -> Arc<RwLock<Docs>> {
        self.docs.clone()
    }

    /// Re-read the doc files in `dir` (edited while lalo runs); a bad file keeps the old docs.
    pub fn reload_docs(&self, dir: &std::path::Path) -> Result<(), LaloError> {
        let fresh = self.docs.read().reload(dir)?;
        *self.docs.write() = fresh;
        Ok(())
    }

    /// A fresh DataFusion context for one session: `db` is the default database, `vis` what
    /// the caller may see, `settings` the session's settings for current_setting/set_config.
    pub fn session_context(
        &self,
        db: &str,
        user: &str,
        vis: Arc<dyn Visibility>,
        settings: Arc<RwLock<crate::settings::Settings>>,
    ) -> Result<SessionContext, LaloError> {
        let planning = Arc::new(ViewCatalogList::new(self.base.clone(), vis, ViewMode::Planning));
        // In an upstream database the catalogs list that database alone; lalo's own database
        // lists every database the caller may read (cross-database statements start there).
        let listing = planning.with_mode(ViewMode::Listing);
        let listing = if self.upstreams.get(db).is_some() { listing.only(db) } else { listing };
        let listing: Arc<dyn CatalogProviderList> = Arc::new(listing);
        let mut config = session_config(db);
        if !self.distributed {
            join_settings::few_core_joins(&mut config);
        }
        for (key, value) in &self.datafusion_options {
            config.options_mut().set(key, value)?;
        }
        if !self.distributed {
            // After the options: sized by the partitions they set, unless they set the bound.
            join_settings::array_keys(&mut config, &self.datafusion_options);
        }
        // min/max filters can drop rows another aggregate of the statement needs (DataFusion
        // 54 issues #24816, #25147): off, whatever the options say.
        config.options_mut().optimizer.enable_aggregate_dynamic_filter_pushdown = false;
        if self.distributed {
            // The umbrella field gates nothing by itself; each kind has its own.
            let optimizer = &mut config.options_mut().optimizer;
            optimizer.enable_dynamic_filter_pushdown = false;
            optimizer.enable_join_dynamic_filter_pushdown = false;
            optimizer.enable_topk_dynamic_filter_pushdown = false;
        }
        let state = SessionStateBuilder::new_from_existing(self.template.clone())
            .with_config(config)
            .with_catalog_list(planning.clone() as Arc<dyn CatalogProviderList>)
            .build();
        let ctx = SessionContext::new_with_state(state);
        let pg = PgCatalogSchemaProvider::try_new(listing.clone(), self.pg_static.clone(), EmptyContextProvider)?;
        let descriptions = pg_descriptions::DescriptionMap::default();
        let constraint_defs = pg_keys::Defs::default();
        let keyed = Arc::new(pg_keys::KeyedPgCatalog::new(
            Arc::new(pg),
            self.docs.clone(),
            listing.clone(),
            constraint_defs.clone(),
            settings.clone(),
        ));
        let pg: Arc<dyn SchemaProvider> = Arc::new(pg_descriptions::DescribedPgCatalog::new(
            keyed.clone(),
            self.docs.clone(),
            listing.clone(),
            db,
            descriptions.clone(),
        ));
        let info: Arc<dyn SchemaProvider> =
            Arc::new(info_schema::PgInformationSchema::new(Arc::new(InformationSchemaProvider::new(listing)), keyed, user));
        for cat in self.base.catalog_names() {
            if let Some(c) = planning.catalog(&cat) {
                c.register_schema("pg_catalog", pg.clone())?;
                c.register_schema("information_schema", info.clone())?;
            }
        }
        search_path::register(&ctx, self.base.clone(), db, user, settings.clone());
        functions::register_session(&ctx, db, user, settings, descriptions);
        pg_keys::register(&ctx, constraint_defs);
        Ok(ctx)
    }
}

fn ensure_schema(catalog: &Arc<MemoryCatalogProvider>, name: &str) -> Result<(), LaloError> {
    if catalog.schema(name).is_none() {
        catalog.register_schema(name, Arc::new(MemorySchemaProvider::new()))?;
    }
    Ok(())
}
