//! The audit trail: one SHA-256 hash-chained JSON line per statement, flushed before the
//! client sees the statement complete; `lalo audit verify` finds the first broken line.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::error::LaloError;

/// One audited statement.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct AuditRecord {
    pub time: String,
    pub user: String,
    pub client: String,
    pub entry: String,
    pub input: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    #[serde(default)]
    pub objects: Vec<String>,
    pub decision: String,
    #[serde(default)]
    pub rules: Vec<String>,
    pub rows: u64,
    pub duration_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For questions: the planner trace (nodes, retrieved context, drafts, repairs) as JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    #[serde(default)]
    pub prev_hash: String,
    /// SHA-256 of the line's text before this field; always written last.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hash: String,
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The line for a record: its JSON without `hash`, then `"hash"` = SHA-256 of that JSON text.
/// Hashing the exact bytes written (not a re-serialisation) makes any one-byte edit detectable.
fn line_for(rec: &AuditRecord) -> Result<(String, String), LaloError> {
    let mut r = rec.clone();
    r.hash = String::new();
    let body = serde_json::to_string(&r).map_err(|e| LaloError::Internal(e.to_string()))?;
    let hash = hex::encode(Sha256::digest(body.as_bytes()));
    let line = format!("{},\"hash\":\"{hash}\"}}", &body[..body.len() - 1]);
    Ok((line, hash))
}

/// Split a line into (body as hashed, stated hash).
fn split_line(line: &str) -> Option<(String, &str)> {
    let idx = line.rfind(",\"hash\":\"")?;
    let tail = &line[idx + 9..];
    let hash = tail.strip_suffix("\"}")?;
    Some((format!("{}}}", &line[..idx]), hash))
}

/// The append-only log file and the hash of its last line.
pub struct AuditLog {
    path: PathBuf,
    state: Mutex<(std::fs::File, String)>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditLog({})", self.path.display())
    }
}

impl AuditLog {
    /// Open (or create) the log and continue its chain.
    pub fn open(path: &Path) -> Result<AuditLog, LaloError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| LaloError::Config(format!("audit log dir {}: {e}", dir.display())))?;
        }
        let last = last_hash(path)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| LaloError::Config(format!("audit log {}: {e}", path.display())))?;
        Ok(AuditLog { path: path.to_path_buf(), state: Mutex::new((file, last)) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Chain, append and flush one record to the operating system.
    pub async fn append(&self, mut rec: AuditRecord) -> Result<(), LaloError> {
        let mut guard = self.state.lock().await;
        rec.prev_hash = guard.1.clone();
        let (mut line, hash) = line_for(&rec)?;
        rec.hash = hash;
        line.push('\n');
        let file = &mut guard.0;
        // One write(2) per record: the line is in the kernel before the client sees completion.
        file.write_all(line.as_bytes())
            .and_then(|_| file.flush())
            .map_err(|e| LaloError::Internal(format!("audit log write failed: {e}")))?;
        guard.1 = rec.hash;
        Ok(())
    }
}

fn last_hash(path: &Path) -> Result<String, LaloError> {
    let Ok(f) = std::fs::File::open(path) else { return Ok(GENESIS.to_string()) };
    let mut last = GENESIS.to_string();
    for line in std::io::BufReader::new(f).lines() {
        let line = line.map_err(|e| LaloError::Config(format!("audit log: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        if let Ok(r) = serde_json::from_str::<AuditRecord>(&line) {
            last = r.hash;
        }
    }
    Ok(last)
}

/// Result of verifying the chain.
#[derive(Debug, PartialEq)]
pub enum Verification {
    Intact { lines: usize },
    Broken { line: usize, reason: String },
}

/// Check every line's hash and link; report the first line (1-based) that breaks the chain.
pub fn verify(path: &Path) -> Result<Verification, LaloError> {
    let f = std::fs::File::open(path).map_err(|e| LaloError::Config(format!("{}: {e}", path.display())))?;
    let mut prev = GENESIS.to_string();
    let mut n = 0;
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = match line {
            Ok(l) => l,
            Err(e) => return Ok(Verification::Broken { line: i + 1, reason: format!("unreadable: {e}") }),
        };
        n = i + 1;
        let Some((body, hash)) = split_line(&line) else {
            return Ok(Verification::Broken { line: n, reason: "no hash at the end of the line (edited line)".into() });
        };
        if hex::encode(Sha256::digest(body.as_bytes())) != hash {
            return Ok(Verification::Broken { line: n, reason: "hash does not match the content (edited line)".into() });
        }
        let rec: AuditRecord = match serde_json::from_str(&body) {
            Ok(r) => r,
            Err(e) => return Ok(Verification::Broken { line: n, reason: format!("not a record: {e}") }),
        };
        if rec.prev_hash != prev {
            return Ok(Verification::Broken { line: n, reason: "prev_hash does not match the line before (deleted or reordered lines)".into() });
        }
        prev = hash.to_string();
    }
    Ok(Verification::Intact { lines: n })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: u64) -> AuditRecord {
        AuditRecord { user: "u".into(), input: format!("select {i}"), decision: "allowed".into(), rows: i, ..Default::default() }
    }

    #[tokio::test]
    async fn chain_verifies_and_detects_edits() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.log");
        let log = AuditLog::open(&p).unwrap();
        for i in 0..3 {
            log.append(rec(i)).await.unwrap();
        }
        drop(log);
        // Reopening continues the chain.
        let log = AuditLog::open(&p).unwrap();
        log.append(rec(3)).await.unwrap();
        assert_eq!(verify(&p).unwrap(), Verification::Intact { lines: 4 });

        let text = std::fs::read_to_string(&p).unwrap();
        let edited = text.replacen("select 1", "select 9", 1);
        std::fs::write(&p, edited).unwrap();
        assert!(matches!(verify(&p).unwrap(), Verification::Broken { line: 2, .. }));

        let mut lines: Vec<&str> = text.lines().collect();
        lines.remove(1);
        std::fs::write(&p, lines.join("\n") + "\n").unwrap();
        assert!(matches!(verify(&p).unwrap(), Verification::Broken { line: 2, .. }));
    }
}
