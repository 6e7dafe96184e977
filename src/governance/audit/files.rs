//! The audit trail's files: the current segment (the configured path), rotated segments beside it
//! (`audit.log.000001`, …, oldest first), and the head record (`audit.log.head`: line count and
//! last chain value, keyed) that lets `verify` notice lines cut from the end.

use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::LaloError;

use super::chain::{split_line, Key, GENESIS, KEYED};
use super::AuditRecord;

/// The head record's file beside the log.
pub fn head_path(log: &Path) -> PathBuf {
    let mut name = log.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".head");
    log.with_file_name(name)
}

/// Rotated segment `n` (1-based) of the log.
pub fn segment_path(log: &Path, n: u64) -> PathBuf {
    let mut name = log.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".{n:06}"));
    log.with_file_name(name)
}

/// The rotated segments present, oldest first, with their numbers.
pub fn rotated(log: &Path) -> Vec<(u64, PathBuf)> {
    let Some(base) = log.file_name().and_then(|n| n.to_str()) else { return Vec::new() };
    let dir = match log.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut out: Vec<(u64, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let digits = name.strip_prefix(base)?.strip_prefix('.')?;
            if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some((digits.parse().ok()?, e.path()))
        })
        .collect();
    out.sort();
    out
}

/// The head: how many lines the trail held at its last write and the chain value of the last.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Head {
    pub lines: u64,
    pub last: String,
    /// Rotated segments before the current one.
    pub segment: u64,
    pub time: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub chain: String,
    pub mac: String,
}

/// Fixed size of the head file: one write of one block replaces it whole.
const HEAD_BYTES: usize = 512;

impl Head {
    fn text(lines: u64, segment: u64, last: &str) -> String {
        format!("lalo-audit-head|{lines}|{segment}|{last}")
    }

    pub fn new(lines: u64, segment: u64, last: &str, key: &Key) -> Head {
        Head {
            lines,
            last: last.to_string(),
            segment,
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            chain: if key.is_set() { KEYED.into() } else { String::new() },
            mac: key.value(Head::text(lines, segment, last).as_bytes()),
        }
    }

    /// Whether the head's MAC holds: `None` when it is keyed and no key was given.
    pub fn valid(&self, key: &Key) -> Option<bool> {
        key.value_as(self.chain == KEYED, Head::text(self.lines, self.segment, &self.last).as_bytes())
            .map(|v| v == self.mac)
    }

    /// The head as written: JSON padded to one block, so each update is a single write at
    /// offset 0 that replaces the whole record.
    pub fn bytes(&self) -> Vec<u8> {
        let mut text = serde_json::to_string(self).unwrap_or_default();
        while text.len() < HEAD_BYTES - 1 {
            text.push(' ');
        }
        text.push('\n');
        text.into_bytes()
    }

    pub fn write(&self, file: &std::fs::File) -> std::io::Result<()> {
        file.write_all_at(&self.bytes(), 0)
    }

    pub fn read(log: &Path) -> Result<Option<Head>, String> {
        let Ok(text) = std::fs::read_to_string(head_path(log)) else { return Ok(None) };
        serde_json::from_str(text.trim()).map(Some).map_err(|e| format!("unreadable head record: {e}"))
    }
}

/// Where the chain stands in the files at start, and what had to be repaired.
#[derive(Debug)]
pub struct Tail {
    pub last_hash: String,
    /// Lines in the whole trail (every segment).
    pub lines: u64,
    /// Rotated segments before the current one.
    pub segment: u64,
    /// Bytes of a torn last line cut from the current segment.
    pub cut: u64,
    /// The head record disagrees with the files (lines missing since it was written).
    pub head_mismatch: Option<String>,
}

/// Read the trail's end, cut a torn last line (a crash mid-write leaves one without its
/// newline) and compare with the head.
pub fn recover(log: &Path, key: &Key) -> Result<Tail, LaloError> {
    let io = |e: std::io::Error| LaloError::Config(format!("audit log {}: {e}", log.display()));
    let segments = rotated(log);
    let segment = segments.last().map(|(n, _)| *n).unwrap_or(0);
    let mut bytes = Vec::new();
    if let Ok(mut f) = std::fs::File::open(log) {
        f.read_to_end(&mut bytes).map_err(io)?;
    }
    let keep = bytes.iter().rposition(|b| *b == b'\n').map(|i| i + 1).unwrap_or(0);
    let cut = (bytes.len() - keep) as u64;
    if cut > 0 {
        let f = std::fs::OpenOptions::new().write(true).open(log).map_err(io)?;
        f.set_len(keep as u64).map_err(io)?;
        f.sync_all().map_err(io)?;
        bytes.truncate(keep);
    }
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if text.trim().is_empty() {
        // A fresh segment: the chain goes on from the last rotated one.
        if let Some((_, p)) = segments.last() {
            text = std::fs::read_to_string(p).map_err(io)?;
        }
    }
    let last_line = text.lines().rev().find(|l| !l.trim().is_empty());
    let (last_hash, last_seq) = match last_line.and_then(split_line) {
        Some((body, hash)) => {
            let seq = serde_json::from_str::<AuditRecord>(&body).map(|r| r.seq).unwrap_or(0);
            (hash.to_string(), seq)
        }
        None => (GENESIS.to_string(), 0),
    };
    let lines = if last_seq > 0 || last_line.is_none() { last_seq } else { count_lines(log, &segments) };
    let head_mismatch = match Head::read(log) {
        Ok(Some(h)) if h.lines > lines => Some(format!(
            "the head recorded {} lines ending in {}, the log holds {lines}: lines are missing",
            h.lines, h.last
        )),
        Ok(Some(h)) if h.valid(key) == Some(false) => Some("the head record's MAC does not match".into()),
        Ok(_) => None,
        Err(e) => Some(e),
    };
    Ok(Tail { last_hash, lines, segment, cut, head_mismatch })
}

/// Lines of a trail written before lines carried their number.
fn count_lines(log: &Path, segments: &[(u64, PathBuf)]) -> u64 {
    segments
        .iter()
        .map(|(_, p)| p.clone())
        .chain(std::iter::once(log.to_path_buf()))
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|t| t.lines().filter(|l| !l.trim().is_empty()).count() as u64)
        .sum()
}
