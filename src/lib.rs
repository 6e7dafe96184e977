//! lalo: a PostgreSQL-wire data gateway. Clients send SQL (or questions) over the PostgreSQL
//! protocol; lalo plans them with Apache DataFusion, governs every plan against the caller's
//! policies, runs it over the embedded catalog or upstream databases, and audits every statement.
//!
//! The path of a statement: [`server`] (pgwire) → [`router`] → [`service::Lalo`] plans with the
//! session's [`engine`] context → [`governance`] checks and rewrites the plan into a
//! [`governance::GovernedPlan`] → [`execution`] streams the rows and writes the audit record.

pub mod check;
pub mod compat;
pub mod config;
pub mod disclosure;
pub mod engine;
pub mod error;
pub mod execution;
pub mod governance;
pub mod http;
pub mod metrics;
pub mod naming;
pub mod passthrough;
pub mod pgtypes;
pub mod plan_cache;
pub mod router;
pub mod server;
pub mod service;
pub mod shapes;
pub mod session;
pub mod runtime;
pub mod search;
pub mod nl;
pub mod eval;
pub mod pgcluster;
pub mod mcp;

pub use config::Config;
pub use error::LaloError;
pub use service::Lalo;
