//! Plain-language questions to SQL: the schema context a caller may see (`catalog`), retrieval
//! and linking (`retrieve`), the planner graph (`graph`), its entry points (`answer`), and the
//! built-in `rules` drafter (a small semantic parser over table/column names, docs and samples),
//! and the `llm` drafter for OpenAI-compatible endpoints (`llm`, `prompt`); `index` is the
//! lancedb retrieval index whose fused, entitlement-filtered hits drive retrieval; `followup`
//! reads a question against the session's last one; `firewall` keeps instructions hidden in
//! the data out of model prompts.

pub mod answer;
pub mod catalog;
pub mod context;
pub mod firewall;
pub mod followup;
pub mod graph;
pub mod host;
pub mod index;
pub mod llm;
pub mod prompt;
pub mod retrieve;
pub mod rules;

pub use host::Host;
pub use context::{ColumnInfo, ForeignKey, SchemaContext, TableInfo};
pub use rules::{draft, Drafted, Drafter};
