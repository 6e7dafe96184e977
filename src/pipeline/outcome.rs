//! What the pipeline takes in besides the statement (who asked, how to name the columns) and
//! what it gives back: protocol-free outcomes each entry point encodes its own way.

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::datatypes::SchemaRef;

use crate::execution::{self, RowStream};
use crate::pgtypes::fields::WireField;

/// The result of one statement.
pub enum Outcome {
    /// Rows, streamed.
    Rows { schema: SchemaRef, rows: RowStream },
    /// Rows forwarded from an upstream as it encoded them, in the format codes the caller asked
    /// for (only for callers that asked for wire delivery); `columns` describes them.
    Wire { schema: SchemaRef, columns: Arc<Vec<WireField>>, rows: execution::WireRowStream },
    /// A command with its tag; `changed` lists settings to report (ParameterStatus).
    Command { tag: String, changed: Vec<(String, String)> },
    /// Rows to send as COPY data (COPY ... TO STDOUT).
    CopyOut { schema: SchemaRef, rows: RowStream, options: crate::copy::CopyOptions },
    Begin,
    Commit,
    Empty,
}

impl Outcome {
    /// A command's outcome: its tag, no settings changed.
    pub fn command(tag: &str) -> Outcome {
        Outcome::Command { tag: tag.into(), changed: vec![] }
    }
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

/// How the caller takes the result.
#[derive(Default)]
pub struct Delivery<'a> {
    /// Resolves when the client cancels the statement.
    pub cancel: Option<execution::CancelArm>,
    /// Stop cleanly after this many rows (callers that cap their result, e.g. MCP).
    pub cap: Option<u64>,
    /// Rows read wholly from an upstream may be forwarded as the upstream encoded them, in these
    /// result format codes (PostgreSQL's, as in Bind: none = all text), for the wire protocol only.
    pub wire: Option<&'a [i16]>,
}

/// The result schema with PostgreSQL's column names (duplicates allowed, as on the wire).
/// Without a PostgreSQL name (a `*` in the select list), a column the compatibility parser
/// aliased `__alias_<name>` to sit beside the `*` (DBeaver's `n.oid, n.*`) is `<name>` again.
pub fn rename(schema: &datafusion::arrow::datatypes::Schema, names: Option<&[Option<String>]>) -> SchemaRef {
    let names = names.filter(|n| n.len() == schema.fields().len());
    let unaliased = |f: &datafusion::arrow::datatypes::FieldRef| f.name().strip_prefix("__alias_").map(str::to_string);
    if names.is_none() && !schema.fields().iter().any(|f| unaliased(f).is_some()) {
        return Arc::new(schema.clone());
    }
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| match names.and_then(|n| n[i].clone()).or_else(|| unaliased(f)) {
            Some(n) => Arc::new(f.as_ref().clone().with_name(n)),
            None => f.clone(),
        })
        .collect();
    Arc::new(datafusion::arrow::datatypes::Schema::new(fields))
}
