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
fn line_for(rec: &mut AuditRecord) -> Result<(String, String), LaloError> {
    rec.hash.clear();
    let body = serde_json::to_string(rec).map_err(|e| LaloError::Internal(e.to_string()))?;
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
    /// The chain: lines get their place (and previous hash) here, in order.
    chain: parking_lot::Mutex<Chain>,
    /// The file and its length; whoever holds it writes every line queued so far (group commit).
    file: Mutex<(std::fs::File, u64)>,
}

/// Lines chained but not yet written, and how far writing has got.
struct Chain {
    last_hash: String,
    /// Sequence number of the last line chained.
    seq: u64,
    /// Chained lines not yet written, in chain order.
    pending: String,
    /// Lines up to this number are in the file.
    written: u64,
    /// Lines up to this number were lost to a failed write (their statements fail).
    failed: u64,
    /// Hash of the last line in the file: the chain goes on from here after a failed write, so
    /// the lines that did not reach the file leave no gap in it.
    written_hash: String,
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
        let chain =
            Chain { written_hash: last.clone(), last_hash: last, seq: 0, pending: String::new(), written: 0, failed: 0 };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(AuditLog { path: path.to_path_buf(), chain: parking_lot::Mutex::new(chain), file: Mutex::new((file, len)) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Chain, append and flush one record to the operating system.
    /// Append one record and return once its line is in the file. Concurrent statements share
    /// writes: each line is chained in order under a short lock, and whichever statement holds
    /// the file writes every line chained so far in one `write` (one system call for many
    /// statements under load, the same order and hashes as one at a time).
    pub async fn append(&self, mut rec: AuditRecord) -> Result<(), LaloError> {
        let seq = {
            let mut chain = self.chain.lock();
            rec.prev_hash = chain.last_hash.clone();
            let (line, hash) = line_for(&mut rec)?;
            chain.last_hash = hash;
            chain.seq += 1;
            chain.pending.push_str(&line);
            chain.pending.push('\n');
            chain.seq
        };
        let mut guard = self.file.lock().await;
        let (file, len) = &mut *guard;
        let (batch, upto, batch_hash) = {
            let mut chain = self.chain.lock();
            if chain.written >= seq {
                return Ok(()); // written by another statement's write
            }
            if chain.failed >= seq {
                return Err(LaloError::Internal("audit log write failed".into()));
            }
            // The batch ends at the last line chained; its hash is the chain's head now.
            (std::mem::take(&mut chain.pending), chain.seq, chain.last_hash.clone())
        };
        let result = file.write_all(batch.as_bytes()).and_then(|_| file.flush());
        if result.is_err() {
            // A partly written batch would leave half a line: cut the file back (best effort).
            let _ = file.set_len(*len);
        } else {
            *len += batch.len() as u64;
        }
        let mut chain = self.chain.lock();
        match result {
            Ok(()) => {
                chain.written = upto;
                chain.written_hash = batch_hash;
                Ok(())
            }
            Err(e) => {
                // Every line chained so far hangs on the lost ones: their statements fail too,
                // and the chain restarts from the last line in the file.
                chain.failed = chain.seq;
                chain.pending.clear();
                chain.last_hash = chain.written_hash.clone();
                Err(LaloError::Internal(format!("audit log write failed: {e}")))
            }
        }
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

    /// Statements appending at once share writes; every line lands once, chained in order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_keep_one_unbroken_chain() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.log");
        let log = std::sync::Arc::new(AuditLog::open(&p).unwrap());
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let log = log.clone();
                tokio::spawn(async move { log.append(rec(i)).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(verify(&p).unwrap(), Verification::Intact { lines: 200 });
        let text = std::fs::read_to_string(&p).unwrap();
        for i in 0..200 {
            assert_eq!(text.matches(&format!("\"select {i}\"")).count(), 1, "line {i} once");
        }
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

    /// A failed write fails its statement and leaves no gap: the next line chains on from the
    /// last line in the file, and the whole file still verifies.
    #[tokio::test]
    async fn failed_write_leaves_the_chain_whole() {
        let dir = std::env::temp_dir().join(format!("lalo-audit-fail-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("audit.log");
        let log = AuditLog::open(&path).expect("open");
        log.append(rec(1)).await.expect("first");
        log.append(rec(2)).await.expect("second");
        let writable = {
            let mut g = log.file.lock().await;
            let read_only = std::fs::File::open(&path).expect("read-only handle");
            std::mem::replace(&mut g.0, read_only)
        };
        assert!(log.append(rec(3)).await.is_err(), "a line that cannot be written fails its statement");
        log.file.lock().await.0 = writable;
        log.append(rec(4)).await.expect("after the failure");
        assert_eq!(verify(&path).expect("verify"), Verification::Intact { lines: 3 });
        let _ = std::fs::remove_dir_all(&dir);
    }
}
