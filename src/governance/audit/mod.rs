//! The audit trail: one chained JSON line per statement event, durable before the client sees
//! the statement's first row or its completion; keyed (HMAC) when `[governance] audit_key_env`
//! names a secret, anchored by a head record, rotated into numbered segments; `lalo audit
//! verify` finds the first line that breaks.
//!
//! A statement that returns rows writes two lines: `start` (who, what, the SQL, governance's
//! decision) synced before its first row leaves, and `end` (rows, duration, error; `completes`
//! names the start line) chained after it when the result ends. The start line cannot be
//! completed in place: its chain value is already in the line after it. The start line is sent
//! before the statement runs, so a statement that then fails also closes with an `end` line.
//! Refusals, failures before execution, commands, and results the upstream answered whole
//! before anything was recorded (a lookup by primary key) are one `statement` line, synced
//! before the client hears of them.

mod chain;
mod files;
mod verify;
mod rotation;
mod syncer;
mod writer;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::GovernanceConfig;
use crate::error::LaloError;

pub use chain::Key;
pub use files::{head_path, segment_path, Head};
pub use verify::{verify, Verification};
pub use writer::AuditLog;

/// One line of the trail.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default)]
pub struct AuditRecord {
    /// The line's number in the whole trail (1-based, across segments).
    pub seq: u64,
    /// `statement` (a whole statement), `start` / `end` (a result's statement and its
    /// completion), `recovery` (what a restart repaired).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// For `end`: the `seq` of the start line it completes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completes: Option<u64>,
    pub time: String,
    pub user: String,
    pub client: String,
    pub entry: String,
    pub input: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    pub objects: Vec<String>,
    pub decision: String,
    pub rules: Vec<String>,
    pub rows: u64,
    pub duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For questions: the planner trace (nodes, retrieved context, drafts, repairs) as JSON text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    /// The W3C trace id of the statement's span, when lalo exports traces (OTLP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// `hmac-sha256` on a keyed chain; absent on a SHA-256 chain.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub chain: String,
    pub prev_hash: String,
    /// The chain value of the line's text before this field; always written last.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hash: String,
}

/// When the trail is synced to disk (`[governance] audit_sync`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum SyncMode {
    /// A statement's line is synced (fdatasync, one sync shared by every statement waiting at
    /// that moment) before the client sees its first row or its completion.
    #[default]
    Always,
    /// Lines are written before delivery and synced every N ms: a power loss can lose the last
    /// N ms of lines (a killed process loses none).
    Batch(Duration),
    /// Lines are written before delivery; the operating system decides when they reach disk.
    Off,
}

impl std::str::FromStr for SyncMode {
    type Err = LaloError;
    fn from_str(s: &str) -> Result<SyncMode, LaloError> {
        let bad = || LaloError::Config(format!("[governance] audit_sync = {s:?}: use \"always\", \"batch_ms:N\" or \"off\""));
        match s.trim() {
            "always" | "" => Ok(SyncMode::Always),
            "off" => Ok(SyncMode::Off),
            other => {
                let ms: u64 = other.strip_prefix("batch_ms:").ok_or_else(bad)?.trim().parse().map_err(|_| bad())?;
                if ms == 0 {
                    return Err(bad());
                }
                Ok(SyncMode::Batch(Duration::from_millis(ms)))
            }
        }
    }
}

/// How the trail is written.
#[derive(Debug, Clone, Default)]
pub struct AuditOptions {
    pub sync: SyncMode,
    pub key: Key,
    /// Start a new segment once the current one holds this many bytes (0: never).
    pub rotate_bytes: u64,
    /// Start a new segment once the current one is this old, at its next line (0: never).
    pub rotate_secs: u64,
    /// Emit every head update to the structured log (target `lalo::audit::head`), for an
    /// external copy of the anchor.
    pub head_log: bool,
}

impl AuditOptions {
    /// The options `[governance]` asks for; the key comes from the environment variable it names.
    pub fn from_config(g: &GovernanceConfig, env: impl Fn(&str) -> Option<String>) -> Result<AuditOptions, LaloError> {
        let key = if g.audit_key_env.is_empty() {
            Key::default()
        } else {
            let secret = env(&g.audit_key_env).filter(|v| !v.is_empty()).ok_or_else(|| {
                LaloError::Config(format!(
                    "[governance] audit_key_env names {}, which is not set: lalo will not write an unkeyed trail the config says is keyed",
                    g.audit_key_env
                ))
            })?;
            Key::new(Some(secret.into_bytes()))
        };
        Ok(AuditOptions {
            sync: g.audit_sync.parse()?,
            key,
            rotate_bytes: g.audit_rotate_bytes,
            rotate_secs: g.audit_rotate_secs,
            head_log: g.audit_head_log,
        })
    }
}

/// What an append waits for before it returns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Wait {
    /// The line is as durable as `audit_sync` promises (synced under `always`).
    Durable,
    /// The line is in the file (survives the process, synced with the next group).
    Written,
}

/// Start the periodic sync of lines written but not yet synced: every N ms under `batch_ms:N`,
/// every 100 ms under `always` (for `end` lines, which do not wait for a sync of their own).
pub(crate) fn spawn_syncer(log: &Arc<AuditLog>, mode: SyncMode) {
    let period = match mode {
        SyncMode::Always => Duration::from_millis(100),
        SyncMode::Batch(d) => d,
        SyncMode::Off => return,
    };
    let Ok(handle) = tokio::runtime::Handle::try_current() else { return };
    let weak = Arc::downgrade(log);
    handle.spawn(async move {
        loop {
            tokio::time::sleep(period).await;
            let Some(log) = weak.upgrade() else { return };
            if let Err(e) = log.sync_written().await {
                // The trail has stopped (lalo refuses statements until it restarts): said once.
                tracing::error!(error = %e, "audit sync failed");
                return;
            }
        }
    });
}
