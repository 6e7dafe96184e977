//! `lalo audit verify`: walk every segment in order, check each line's chain value and its link
//! to the line before, then hold the trail against its head record.
//!
//! What it proves: without the key nobody can edit, insert, reorder or delete a line, cut lines
//! off the end (the head, keyed, records how many there were), or remove a segment, without
//! `verify` naming the first line that breaks; an alarm a restart recorded (a missing or edited
//! head, lines missing) stays reported. What it cannot prove: that an attacker who holds the key
//! and can write both the log and the head did not rewrite them consistently; that the trail and
//! its head were not both rolled back to copies taken earlier (compare an outside copy of the
//! head); nor, without a key, more than that the files agree (anyone can recompute SHA-256).

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::LaloError;

use super::chain::{split_line, Key, GENESIS, KEYED};
use super::files::{rotated, Head};
use super::AuditRecord;

/// Result of verifying the trail.
#[derive(Debug, PartialEq)]
pub enum Verification {
    /// Every line and the head hold; `notes` says what was not proven (no key, no head, lines
    /// written after the head's last update).
    Intact { lines: usize, segments: usize, notes: Vec<String> },
    /// The first line (counted over all segments, 1-based) that breaks, with its file.
    Broken { line: usize, file: PathBuf, reason: String },
}

fn broken(line: usize, file: &Path, reason: impl Into<String>) -> Result<Verification, LaloError> {
    Ok(Verification::Broken { line, file: file.to_path_buf(), reason: reason.into() })
}

/// Check the trail at `log` (its rotated segments first) with `key` when the trail is keyed.
pub fn verify(log: &Path, key: &Key) -> Result<Verification, LaloError> {
    let mut files: Vec<PathBuf> = rotated(log).into_iter().map(|(_, p)| p).collect();
    if log.exists() || files.is_empty() {
        files.push(log.to_path_buf());
    }
    // The head first: it says from which line on every line must be keyed.
    let head = Head::read(log);
    let keyed_from = match &head {
        Ok(Some(h)) if key.is_set() && h.chain == KEYED && h.valid(key) == Some(true) => h.keyed_from.max(1) as usize,
        _ => 1,
    };
    let mut prev = GENESIS.to_string();
    let (mut n, mut keyed_seen, mut unkeyed) = (0usize, false, 0usize);
    let mut notes = Vec::new();
    let mut hashes: Vec<String> = Vec::new();
    for (fi, file) in files.iter().enumerate() {
        let mut bytes = Vec::new();
        std::fs::File::open(file)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| LaloError::Config(format!("{}: {e}", file.display())))?;
        let Ok(text) = std::str::from_utf8(&bytes) else {
            return broken(n + 1, file, "the segment is not UTF-8 (edited bytes)");
        };
        let last_file = fi + 1 == files.len();
        let mut rest: &str = text;
        while !rest.is_empty() {
            let (line, terminated) = match rest.find('\n') {
                Some(i) => (&rest[..i], true),
                None => (rest, false),
            };
            rest = if terminated { &rest[line.len() + 1..] } else { "" };
            if line.trim().is_empty() {
                continue;
            }
            n += 1;
            if !terminated {
                let why = if last_file {
                    "torn last line (a crash while writing it; lalo cuts it when it next starts)"
                } else {
                    "a segment ends in half a line"
                };
                return broken(n, file, why);
            }
            let Some((body, hash)) = split_line(line) else {
                return broken(n, file, "no chain value at the end of the line (edited line)");
            };
            let rec: AuditRecord = match serde_json::from_str(&body) {
                Ok(r) => r,
                Err(e) => return broken(n, file, format!("not a record: {e}")),
            };
            let is_keyed = rec.chain == KEYED;
            if key.is_set() && !is_keyed {
                if keyed_seen || n >= keyed_from {
                    return broken(n, file, "an unkeyed line where the trail is keyed (a chain recomputed without the key)");
                }
                unkeyed += 1;
            }
            keyed_seen |= is_keyed;
            let Some(value) = key.value_as(is_keyed, body.as_bytes()) else {
                return Err(LaloError::Config(
                    "the audit trail is keyed: set the key's environment variable ([governance] audit_key_env, or --key-env) to verify it".into(),
                ));
            };
            if value != hash {
                let why = if is_keyed {
                    "the chain value does not match the content (edited line, or a different key)"
                } else {
                    "hash does not match the content (edited line)"
                };
                return broken(n, file, why);
            }
            if n == 1 && rec.seq > 1 {
                return broken(n, file, format!("the trail starts at line {}: earlier segments are missing", rec.seq));
            }
            if rec.prev_hash != prev {
                return broken(n, file, "prev_hash does not match the line before (deleted or reordered lines)");
            }
            if rec.seq != 0 && rec.seq as usize != n {
                return broken(n, file, format!("line number {} where {n} belongs (deleted or reordered lines)", rec.seq));
            }
            if rec.kind == "recovery" && rec.decision == "alarm" {
                let what = rec.error.unwrap_or_default();
                return broken(n, file, format!("at a restart lalo found the trail did not add up: {what}"));
            }
            prev = hash.to_string();
            hashes.push(prev.clone());
        }
    }
    if unkeyed > 0 {
        notes.push(format!("the first {unkeyed} lines predate the key: only their links are checked"));
    }
    match head {
        Err(e) => return broken(n, log, e),
        Ok(None) if key.is_set() => return broken(n, log, "no head record beside the log (deleted?)"),
        Ok(None) => notes.push("no head record: lines cut from the end cannot be detected".into()),
        Ok(Some(head)) => {
            match head.valid(key) {
                Some(true) => {}
                Some(false) => return broken(n, log, "the head record's MAC does not match (edited head)"),
                None => notes.push("the head is keyed: without the key its count is not proven".into()),
            }
            if key.is_set() && head.chain != KEYED {
                return broken(n, log, "the head record is not keyed (recomputed without the key)");
            }
            let h = head.lines as usize;
            if h > n {
                return broken(n + 1, log, format!("lines cut from the end: the head records {h} lines, the log holds {n}"));
            }
            if h > 0 && hashes.get(h - 1) != Some(&head.last) {
                return broken(h, log, format!("the head's last chain value is not line {h}'s (lines replaced)"));
            }
            if n > h {
                notes.push(format!("{} lines after the head's last update (written just before a crash)", n - h));
            }
        }
    }
    if !key.is_set() {
        notes.push("no key: the chain shows accidental edits; anyone can recompute an unkeyed chain".into());
    }
    Ok(Verification::Intact { lines: n, segments: files.len(), notes })
}
