//! The chain value of one audit line: SHA-256 of the line's text, or with a key an HMAC-SHA-256
//! that nobody without the key can recompute after editing a line.

use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::error::LaloError;

use super::AuditRecord;

/// The chain value before the first line.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What a keyed line says in its `chain` field.
pub const KEYED: &str = "hmac-sha256";

/// The secret a keyed chain is computed with (never printed).
#[derive(Clone, Default)]
pub struct Key(Option<Vec<u8>>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Key(set)" } else { "Key(none)" })
    }
}

impl Key {
    pub fn new(secret: Option<Vec<u8>>) -> Key {
        Key(secret.filter(|s| !s.is_empty()))
    }

    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }

    /// The chain value of `text`: HMAC-SHA-256 with the key, SHA-256 without.
    pub fn value(&self, text: &[u8]) -> String {
        match &self.0 {
            Some(k) => keyed(k, text),
            None => hex::encode(Sha256::digest(text)),
        }
    }

    /// The value of a line that says which chain it is on (`keyed`), if this key can compute it.
    pub fn value_as(&self, keyed_line: bool, text: &[u8]) -> Option<String> {
        match (&self.0, keyed_line) {
            (Some(k), true) => Some(keyed(k, text)),
            (_, false) => Some(hex::encode(Sha256::digest(text))),
            (None, true) => None,
        }
    }
}

fn keyed(key: &[u8], text: &[u8]) -> String {
    // HMAC takes keys of any length; new_from_slice cannot fail for it.
    match hmac::Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(text);
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => hex::encode(Sha256::digest(text)),
    }
}

/// The line for a record: its JSON without `hash`, then `"hash"` = the chain value of that JSON
/// text. Hashing the exact bytes written (not a re-serialisation) makes any one-byte edit
/// detectable.
pub fn line_for(rec: &mut AuditRecord, key: &Key) -> Result<(String, String), LaloError> {
    rec.hash.clear();
    rec.chain = if key.is_set() { KEYED.into() } else { String::new() };
    let body = serde_json::to_string(rec).map_err(|e| LaloError::Internal(e.to_string()))?;
    let hash = key.value(body.as_bytes());
    let line = format!("{},\"hash\":\"{hash}\"}}", &body[..body.len() - 1]);
    Ok((line, hash))
}

/// Split a line into (body as hashed, stated hash).
pub fn split_line(line: &str) -> Option<(String, &str)> {
    let idx = line.rfind(",\"hash\":\"")?;
    let tail = &line[idx + 9..];
    let hash = tail.strip_suffix("\"}")?;
    Some((format!("{}}}", &line[..idx]), hash))
}
