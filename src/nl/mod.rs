//! Plain-language questions to SQL without a model: the schema context a drafter sees and the
//! built-in `rules` drafter (a small semantic parser over table/column names, docs and samples).

pub mod context;
pub mod rules;

pub use context::{ColumnInfo, ForeignKey, SchemaContext, TableInfo};
pub use rules::{draft, Drafted, Drafter};
