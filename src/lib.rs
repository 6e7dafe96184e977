//! lalo: a PostgreSQL-wire data gateway. Clients send SQL (or questions) over the PostgreSQL
//! protocol; lalo plans them with Apache DataFusion, governs every plan against the caller's
//! policies, runs it over the embedded catalog or upstream databases, and audits every statement.
//!
//! The path of a statement, stage by stage:
//!
//! - [`server`] (pgwire: socket, startup, simple and extended handlers), [`mcp`], [`http`], the
//!   CLI (`ask`, [`eval`]): entry points; each hands statements to [`pipeline::Lalo::run`] and
//!   encodes the protocol-free [`pipeline::Outcome`] its own way;
//! - [`router`] and [`compat`]: text → routed statements, client-quirk rewrites;
//! - [`pipeline`]: the request path, top to bottom — audit scope, commands / cursors / prepared
//!   statements / questions, the shape index ([`shapes`]) and the one statement cache
//!   ([`plan_cache`]: each statement's executor, chosen once from its governed plan), admission
//!   under limits, the executor (direct upstream via [`passthrough`] | embedded cached plan |
//!   planned) under the guard of [`execution`];
//! - [`engine`]: DataFusion catalogs and session contexts, pg_catalog, upstream federation and
//!   pools, and PostgreSQL's semantics where DataFusion's differ (`engine::pg_exact`: set
//!   operations, casts; `engine::overflow`; `engine::pg_text`), so the engine answers as
//!   PostgreSQL would or refuses;
//! - [`governance`]: access on every scan, column lineage, row filters and masks, limits, the audit
//!   chain; the only maker of [`governance::GovernedPlan`], which every executor runs;
//! - [`nl`]: questions — retrieval, context, the planner graph and its drafters; it reaches the
//!   gateway only through [`nl::Host`] (plan and govern a draft as the caller's, internal reads),
//!   which the pipeline implements;
//! - [`session`]: identity, per-session caches; [`settings`]: the session settings;
//!   [`pgtypes`]: Arrow ⇄ PostgreSQL types, row descriptions and PostgreSQL's text for values;
//!   [`naming`]: result column names as PostgreSQL figures them.
//!
//! No import cycle joins two top-level modules. From the top: the entry points, [`pipeline`],
//! [`nl`], [`session`], [`shapes`], [`plan_cache`], [`passthrough`] and [`execution`],
//! [`governance`], [`pgsql`], [`engine`], [`pgtypes`], [`settings`]; each of these imports only
//! from those after it and from self-contained modules ([`config`], [`error`], [`router`], ...).

pub mod check;
pub mod compat;
pub mod copy;
pub mod config;
pub mod distributed;
pub mod engine;
pub mod error;
pub mod execution;
pub mod flight;
pub mod governance;
pub mod http;
pub mod metrics;
pub mod naming;
pub mod passthrough;
pub mod pgtypes;
pub mod pipeline;
pub mod plan_cache;
pub mod router;
pub mod server;
pub mod shapes;
pub mod session;
pub mod settings;
pub mod runtime;
pub mod shutdown;
pub mod telemetry;
pub mod search;
pub mod nl;
pub mod eval;
pub mod pgcluster;
pub mod pgsql;
pub mod mcp;

pub use config::Config;
pub use error::LaloError;
pub use pipeline::Lalo;
