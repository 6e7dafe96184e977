//! The PostgreSQL lane's language side: statements read with PostgreSQL's own grammar
//! (libpg_query), what they reference, which functions may run upstream, and the upstream
//! statement with every relation replaced by its governed text. It knows nothing of policies:
//! governance decides what each relation's text is (see `governance::postgres`).

pub mod analyze;
pub mod functions;
pub mod lookup;
pub mod splice;

pub use analyze::{analyze, Analysis, Relation};
