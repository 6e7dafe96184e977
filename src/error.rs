//! lalo's error type and the one table that maps errors to SQLSTATEs.

use datafusion::error::DataFusionError;
use pgwire::error::{ErrorInfo, PgWireError};

/// Every error a client can see. The message never carries secrets or connection strings.
/// How a lost upstream connection's message begins (engine/upstream/pool.rs writes it, and an
/// error that reaches lalo through DataFusion is recognized by it as 08006).
pub const UPSTREAM_LOST_PREFIX: &str = "upstream connection lost";

#[derive(Debug, Clone, thiserror::Error)]
pub enum LaloError {
    #[error("password authentication failed for user \"{0}\"")]
    BadPassword(String),
    #[error("role \"{0}\" does not exist")]
    UnknownUser(String),
    #[error("{0}")]
    NoAccess(String),
    #[error("syntax error: {0}")]
    Syntax(String),
    #[error("{0}")]
    UnknownTable(String),
    #[error("{0}")]
    UnknownColumn(String),
    /// A table the caller may not read at all, answered as PostgreSQL answers a missing one so
    /// that a refusal cannot tell a hidden table from an absent one. `object` (the full name) is
    /// kept for the audit record only.
    #[error("relation \"{relation}\" does not exist")]
    HiddenRelation { relation: String, object: String },
    #[error("permission denied for {object}")]
    PermissionDenied { object: String, hint: Option<String> },
    #[error("{message}")]
    NotAnswerable { message: String, hint: Option<String> },
    #[error("{0}")]
    LimitExceeded(String),
    #[error("{0}")]
    RateLimited(String),
    /// A statement whose pre-flight estimate is over the caller's scan budget (54000), the
    /// estimate in the hint.
    #[error("{message}")]
    OverBudget { message: String, hint: Option<String> },
    #[error("canceling statement due to statement timeout")]
    Timeout,
    #[error("canceling statement due to user request")]
    Canceled,
    /// The gateway is shutting down and the statement's grace period is over.
    #[error("terminating connection due to administrator command")]
    AdminShutdown,
    /// A wait other than the statement timeout ran out (e.g. the `llm` drafter's call).
    #[error("{0}")]
    TimedOut(String),
    #[error("{message}")]
    UpstreamLost { upstream: String, message: String },
    /// The distributed engine's scheduler could not be reached.
    #[error("{0}")]
    ClusterLost(String),
    #[error("{0}")]
    NotSupported(String),
    #[error("unrecognized configuration parameter \"{0}\"")]
    UnknownSetting(String),
    #[error("invalid value for parameter \"{name}\": \"{value}\"")]
    InvalidSetting { name: String, value: String },
    #[error("prepared statement \"{0}\" does not exist")]
    InvalidStatementName(String),
    #[error("cursor \"{0}\" does not exist")]
    InvalidCursor(String),
    #[error("configuration error: {0}")]
    Config(String),
    /// A frontend message that breaks the wire protocol (bad length, layout or counts).
    #[error("{0}")]
    ProtocolViolation(String),
    #[error("{0}")]
    Query(String),
    /// A data exception the engine raised, with PostgreSQL's SQLSTATE for it (22012 division by
    /// zero, 22003 out of range, 22P02 invalid input).
    #[error("{message}")]
    Data { code: &'static str, message: String },
    /// An upstream's own error on a statement lalo sent it, with the upstream's SQLSTATE.
    #[error("{message}")]
    Upstream { code: String, message: String },
    #[error("internal error: {0}")]
    Internal(String),
}

impl LaloError {
    /// The SQLSTATE a client receives for this error (DESIGN.md §4, SQLSTATEs).
    pub fn sqlstate(&self) -> &str {
        match self {
            // PostgreSQL's own code, as a client talking to it directly would see it.
            LaloError::Upstream { code, .. } if code.len() == 5 && code.bytes().all(|b| b.is_ascii_alphanumeric()) => code,
            LaloError::Upstream { .. } => "XX000",
            LaloError::BadPassword(_) => "28P01",
            LaloError::UnknownUser(_) | LaloError::NoAccess(_) => "28000",
            LaloError::Syntax(_) => "42601",
            LaloError::UnknownTable(_) | LaloError::HiddenRelation { .. } => "42P01",
            LaloError::UnknownColumn(_) => "42703",
            LaloError::PermissionDenied { .. } => "42501",
            LaloError::NotAnswerable { .. } => "42000",
            LaloError::LimitExceeded(_) => "53400",
            LaloError::RateLimited(_) | LaloError::OverBudget { .. } => "54000",
            LaloError::Timeout | LaloError::Canceled | LaloError::TimedOut(_) => "57014",
            LaloError::AdminShutdown => "57P01",
            LaloError::UpstreamLost { .. } | LaloError::ClusterLost(_) => "08006",
            LaloError::NotSupported(_) => "0A000",
            LaloError::UnknownSetting(_) => "42704",
            LaloError::InvalidSetting { .. } => "22023",
            LaloError::Query(_) => "22000",
            LaloError::Data { code, .. } => code,
            LaloError::InvalidCursor(_) => "34000",
            LaloError::InvalidStatementName(_) => "26000",
            LaloError::ProtocolViolation(_) => "08P01",
            LaloError::Config(_) | LaloError::Internal(_) => "XX000",
        }
    }

    /// A policy refusal, whatever the client was told (a hidden table answers 42P01).
    pub fn is_refusal(&self) -> bool {
        self.sqlstate() == "42501" || matches!(self, LaloError::HiddenRelation { .. })
    }

    /// For a refusal, the reason counted in `lalo_denials_total` (`None`: counted as an error).
    pub fn denial_reason(&self) -> Option<&'static str> {
        match self {
            // The client was told the relation does not exist; so are the metrics.
            LaloError::HiddenRelation { .. } => None,
            LaloError::PermissionDenied { .. } => Some("access"),
            LaloError::NoAccess(_) => Some("login"),
            // The upstream's own privileges refused it.
            LaloError::Upstream { code, .. } if code == "42501" => Some("upstream"),
            _ if self.sqlstate() == "42501" => Some("policy"),
            _ => None,
        }
    }

    /// The error as the audit record keeps it: the real reason, hidden objects named.
    pub fn audit_text(&self) -> String {
        match self {
            LaloError::HiddenRelation { object, .. } => format!("42501: permission denied for {object}"),
            e => format!("{}: {e}", e.sqlstate()),
        }
    }

    /// A hint shown to the client, where one helps.
    pub fn hint(&self) -> Option<String> {
        match self {
            LaloError::PermissionDenied { hint, .. }
            | LaloError::NotAnswerable { hint, .. }
            | LaloError::OverBudget { hint, .. } => {
                hint.clone()
            }
            _ => None,
        }
    }

    /// Classify a DataFusion error into the SQLSTATE family a PostgreSQL client expects.
    pub fn from_datafusion(e: DataFusionError) -> LaloError {
        match e.find_root() {
            DataFusionError::SQL(p, _) => LaloError::Syntax(strip_df_prefix(&p.to_string())),
            DataFusionError::NotImplemented(m) => LaloError::NotSupported(m.to_string()),
            DataFusionError::ResourcesExhausted(m) => LaloError::LimitExceeded(m.to_string()),
            DataFusionError::External(inner) => match inner.downcast_ref::<LaloError>() {
                Some(lalo) => lalo.clone(),
                None => LaloError::Query(inner.to_string()),
            },
            other => classify_message(&other.to_string()),
        }
    }

    /// Convert to the pgwire error sent on the wire.
    pub fn to_pgwire(&self) -> PgWireError {
        // A shutdown ends the connection, as PostgreSQL's FATAL 57P01 does.
        let severity = if matches!(self, LaloError::AdminShutdown) { "FATAL" } else { "ERROR" };
        PgWireError::UserError(Box::new(self.error_info(severity)))
    }

    /// The ErrorInfo (severity, code, message, hint) for this error.
    pub fn error_info(&self, severity: &str) -> ErrorInfo {
        let mut info = ErrorInfo::new(severity.to_string(), self.sqlstate().to_string(), self.to_string());
        info.hint = self.hint();
        info
    }
}

impl From<DataFusionError> for LaloError {
    fn from(e: DataFusionError) -> Self {
        LaloError::from_datafusion(e)
    }
}

impl From<LaloError> for PgWireError {
    fn from(e: LaloError) -> Self {
        e.to_pgwire()
    }
}

impl From<LaloError> for DataFusionError {
    fn from(e: LaloError) -> Self {
        DataFusionError::External(Box::new(e))
    }
}

fn strip_df_prefix(m: &str) -> String {
    m.trim_start_matches("sql parser error: ").trim_start_matches("SQL error: ").to_string()
}

/// DataFusion reports planning errors as text; recognise the ones clients branch on.
fn classify_message(m: &str) -> LaloError {
    let msg = m
        .trim_start_matches("Error during planning: ")
        .trim_start_matches("Schema error: ")
        .to_string();
    let lower = msg.to_ascii_lowercase();
    if let Some(at) = msg.find(UPSTREAM_LOST_PREFIX) {
        // Upstream failures reach here as text through datafusion-table-providers.
        let text = &msg[at..];
        let upstream = text.split('"').nth(1).unwrap_or("").to_string();
        return LaloError::UpstreamLost { upstream, message: text.lines().next().unwrap_or(text).to_string() };
    }
    if lower.contains("table '") && lower.contains("not found") {
        LaloError::UnknownTable(pg_table_message(&msg))
    } else if lower.contains("no field named") || lower.contains("column") && lower.contains("not found") {
        LaloError::UnknownColumn(msg)
    } else if lower.contains("sql parser error") || lower.contains("expected:") {
        LaloError::Syntax(strip_df_prefix(&msg))
    } else if lower.contains("divide by zero") {
        LaloError::Data { code: "22012", message: "division by zero".into() }
    } else if lower.contains("scalar subquery returned more than one row") {
        LaloError::Data { code: "21000", message: "more than one row returned by a subquery used as an expression".into() }
    } else if msg.starts_with("LIMIT must be >= 0, '") {
        // DataFusion's words for a negative LIMIT or OFFSET, matched whole (not any message
        // that quotes them, such as a cast of a value holding that text).
        LaloError::Data { code: "2201W", message: "LIMIT must not be negative".into() }
    } else if msg.starts_with("OFFSET must be >=0, '") {
        LaloError::Data { code: "2201X", message: "OFFSET must not be negative".into() }
    } else if lower.contains("overflow") {
        // Not the operands: they may come from a row filter or mask evaluated on rows the
        // caller cannot see.
        LaloError::Data { code: "22003", message: "integer out of range".into() }
    } else if lower.contains("cast error: cannot cast string") {
        LaloError::Data { code: "22P02", message: format!("invalid input syntax: {}", strip_df_prefix(&msg)) }
    } else if lower.contains("invalid function") || lower.contains("not implemented") || lower.contains("unsupported") {
        LaloError::NotSupported(msg)
    } else {
        LaloError::Query(msg)
    }
}

/// "table 'lalo.tpch.x' not found" → PostgreSQL's wording `relation "x" does not exist`.
fn pg_table_message(msg: &str) -> String {
    let name = msg.split('\'').nth(1).unwrap_or("");
    let short = name.rsplit('.').next().unwrap_or(name);
    format!("relation \"{short}\" does not exist")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_follow_the_design_table() {
        assert_eq!(LaloError::BadPassword("a".into()).sqlstate(), "28P01");
        assert_eq!(
            LaloError::PermissionDenied { object: "x".into(), hint: None }.sqlstate(),
            "42501"
        );
        assert_eq!(LaloError::Timeout.sqlstate(), "57014");
    }

    #[test]
    fn unknown_table_maps_to_42p01() {
        let e = classify_message("Error during planning: table 'lalo.tpch.nope' not found");
        assert_eq!(e.sqlstate(), "42P01");
        assert_eq!(e.to_string(), "relation \"nope\" does not exist");
    }
}
