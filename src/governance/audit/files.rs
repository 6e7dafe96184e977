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

/// Open the head record's file and lock it for this writer. Two writers on one trail would
/// interleave their chains and rotate each other's segments away; the lock is released when
/// the writer closes or its process dies (a crash leaves nothing to clean up).
pub fn open_head(log: &Path) -> Result<std::fs::File, LaloError> {
    let path = head_path(log);
    let head = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| LaloError::Config(format!("audit head {}: {e}", path.display())))?;
    match head.try_lock() {
        Ok(()) => Ok(head),
        Err(std::fs::TryLockError::WouldBlock) => Err(LaloError::Config(format!(
            "audit log {} is in use by another lalo (its head {} is locked)",
            log.display(),
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(LaloError::Config(format!("audit head {}: lock: {e}", path.display()))),
    }
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

/// The head: how many lines the trail held at its last durable write and the chain value of
/// the last; the MAC covers every field.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Head {
    pub lines: u64,
    pub last: String,
    /// Rotated segments before the current one.
    pub segment: u64,
    /// The first line written with the key (0: the trail is not keyed). Lines before it may be
    /// unkeyed (written before the key was configured); none after it.
    #[serde(default)]
    pub keyed_from: u64,
    pub time: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub chain: String,
    pub mac: String,
}

/// Fixed size of the head file: one write of one block replaces it whole.
const HEAD_BYTES: usize = 512;

impl Head {
    fn text(&self) -> String {
        format!("lalo-audit-head|{}|{}|{}|{}|{}", self.lines, self.segment, self.last, self.keyed_from, self.time)
    }

    pub fn new(lines: u64, segment: u64, last: &str, keyed_from: u64, key: &Key) -> Head {
        let mut head = Head {
            lines,
            last: last.to_string(),
            segment,
            keyed_from,
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            chain: if key.is_set() { KEYED.into() } else { String::new() },
            mac: String::new(),
        };
        head.mac = key.value(head.text().as_bytes());
        head
    }

    /// Whether the head's MAC holds: `None` when it is keyed and no key was given.
    pub fn valid(&self, key: &Key) -> Option<bool> {
        key.value_as(self.chain == KEYED, self.text().as_bytes()).map(|v| v == self.mac)
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

    /// Replace the head in a file of one block: one write at offset 0. The file's length is
    /// left alone (a truncate per write would update the inode on every statement), so the file
    /// must already be one block long: [`Head::replace`] makes it so when the trail opens.
    pub fn write(&self, file: &std::fs::File) -> std::io::Result<()> {
        let bytes = self.bytes();
        file.write_all_at(&bytes, 0)?;
        if bytes.len() != HEAD_BYTES {
            // A record longer than a block (never with lalo's fields): cut what the next,
            // shorter one would leave behind.
            file.set_len(bytes.len() as u64)?;
        }
        Ok(())
    }

    /// Write the head and cut the file to it: whatever the file held before (an older, longer
    /// record, or text appended to it) is not part of the head.
    pub fn replace(&self, file: &std::fs::File) -> std::io::Result<()> {
        let bytes = self.bytes();
        file.write_all_at(&bytes, 0)?;
        file.set_len(bytes.len() as u64)
    }

    /// The head beside `log`: `Ok(None)` when there is no file; an error when it cannot be read.
    pub fn read(log: &Path) -> Result<Option<Head>, String> {
        let bytes = match std::fs::read(head_path(log)) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("unreadable head record: {e}")),
        };
        // An empty head is one a writer created (to lock it) and had not written yet, or one cut
        // to nothing: either way no head, which a trail with numbered lines reports as missing.
        if bytes.is_empty() {
            return Ok(None);
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| "the head record is not UTF-8 (edited head)".to_string())?;
        let first = text.lines().next().unwrap_or("").trim();
        serde_json::from_str(first).map(Some).map_err(|e| format!("unreadable head record: {e}"))
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
    /// The first keyed line, as the head recorded it (0: not known or not keyed).
    pub keyed_from: u64,
    /// A torn last line cut from the current segment: its length and where its bytes were kept.
    pub cut: Option<(u64, PathBuf)>,
    /// What does not add up (lines missing since the head was written, a missing or edited
    /// head, a last line that is not a record): recorded as an alarm that `verify` reports.
    pub alarm: Option<String>,
}

/// Keep bytes cut from the trail beside it, so a repair never destroys what was there.
fn keep_aside(log: &Path, bytes: &[u8]) -> Result<PathBuf, LaloError> {
    let mut name = log.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".cut-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ")));
    let to = log.with_file_name(name);
    std::fs::write(&to, bytes).map_err(|e| LaloError::Config(format!("audit log {}: {e}", to.display())))?;
    Ok(to)
}

/// Whether `line` is a whole record whose chain value holds and that links to `prev`.
fn whole(line: &str, prev: &str, key: &Key) -> bool {
    let Some((body, hash)) = split_line(line) else { return false };
    let Ok(rec) = serde_json::from_str::<AuditRecord>(&body) else { return false };
    rec.prev_hash == prev && key.value_as(rec.chain == KEYED, body.as_bytes()).is_some_and(|v| v == hash)
}

/// Read the trail's end, cut a torn last line (a crash mid-write leaves one without its
/// newline; its bytes are kept beside the log) and hold the trail against its head.
pub fn recover(log: &Path, key: &Key) -> Result<Tail, LaloError> {
    let io = |e: std::io::Error| LaloError::Config(format!("audit log {}: {e}", log.display()));
    let segments = rotated(log);
    let segment = segments.last().map(|(n, _)| *n).unwrap_or(0);
    let mut bytes = Vec::new();
    if let Ok(mut f) = std::fs::File::open(log) {
        f.read_to_end(&mut bytes).map_err(io)?;
    }
    let mut alarm = Vec::new();
    let keep = bytes.iter().rposition(|b| *b == b'\n').map(|i| i + 1).unwrap_or(0);
    let mut cut = None;
    if keep < bytes.len() {
        let tail = String::from_utf8_lossy(&bytes[keep..]).into_owned();
        let before = String::from_utf8_lossy(&bytes[..keep]).into_owned();
        let prev = before.lines().rev().find(|l| !l.trim().is_empty()).and_then(split_line).map(|(_, h)| h.to_string());
        let f = std::fs::OpenOptions::new().append(true).open(log).map_err(io)?;
        if whole(&tail, prev.as_deref().unwrap_or(GENESIS), key) {
            // Only the newline is missing: the line is whole and valid, so it stays.
            std::io::Write::write_all(&mut &f, b"\n").map_err(io)?;
            bytes.push(b'\n');
        } else {
            let aside = keep_aside(log, &bytes[keep..])?;
            f.set_len(keep as u64).map_err(io)?;
            cut = Some(((bytes.len() - keep) as u64, aside));
            bytes.truncate(keep);
        }
        f.sync_all().map_err(io)?;
    }
    let mut text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(_) => {
            alarm.push("the current segment is not UTF-8 (edited)".to_string());
            String::new()
        }
    };
    if text.trim().is_empty() {
        // A fresh segment: the chain goes on from the last rotated one.
        if let Some((_, p)) = segments.last() {
            text = String::from_utf8_lossy(&std::fs::read(p).map_err(io)?).into_owned();
        }
    }
    let last_line = text.lines().rev().find(|l| !l.trim().is_empty());
    let last = last_line.and_then(split_line).and_then(|(body, hash)| {
        serde_json::from_str::<AuditRecord>(&body).ok().map(|r| (hash.to_string(), r.seq, r.chain == KEYED))
    });
    if last_line.is_some() && last.is_none() {
        alarm.push("the last line is not a record (edited, or a disk that lost a write)".into());
    }
    if last.as_ref().is_some_and(|l| l.2) && !key.is_set() {
        return Err(LaloError::Config(
            "the audit trail is keyed: set [governance] audit_key_env to the variable holding its key".into(),
        ));
    }
    let last_hash = last.as_ref().map(|l| l.0.clone()).or_else(|| last_line.and_then(split_line).map(|(_, h)| h.to_string()));
    let last_seq = last.as_ref().map(|l| l.1).unwrap_or(0);
    let lines = if last_seq > 0 || last_line.is_none() { last_seq } else { count_lines(log, &segments) };
    let mut keyed_from = 0;
    match Head::read(log) {
        Err(e) => alarm.push(e),
        // A trail whose lines carry numbers was written with a head beside it.
        Ok(None) if last_seq > 0 => alarm.push("the head record is missing (deleted)".into()),
        Ok(None) => {}
        Ok(Some(h)) => match h.valid(key) {
            Some(false) => alarm.push("the head record's MAC does not match (edited head)".into()),
            _ if key.is_set() && h.chain != KEYED && last.as_ref().is_some_and(|l| l.2) => {
                alarm.push("the head record is not keyed (recomputed without the key)".into())
            }
            _ if h.lines > lines => alarm.push(format!(
                "the head recorded {} lines ending in {}, the trail holds {lines}: lines are missing",
                h.lines, h.last
            )),
            _ => {
                keyed_from = if h.chain == KEYED { h.keyed_from } else { 0 };
                let at = text.lines().filter(|l| !l.trim().is_empty()).filter_map(split_line).find_map(|(body, hash)| {
                    let r = serde_json::from_str::<AuditRecord>(&body).ok()?;
                    (r.seq == h.lines && h.lines > 0).then(|| hash.to_string())
                });
                if at.is_some_and(|v| v != h.last) {
                    alarm.push(format!("line {} is not the line the head recorded (lines replaced)", h.lines));
                }
            }
        },
    }
    Ok(Tail {
        last_hash: last_hash.unwrap_or_else(|| GENESIS.to_string()),
        lines,
        segment,
        keyed_from,
        cut,
        alarm: (!alarm.is_empty()).then(|| alarm.join("; ")),
    })
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
