//! Session settings: what SET/SHOW/RESET, current_setting() and set_config() read and write.

use std::collections::BTreeMap;

use crate::error::LaloError;

/// Settings a client may change, with their defaults, as PostgreSQL names them.
const DEFAULTS: &[(&str, &str)] = &[
    ("application_name", ""),
    ("client_encoding", "UTF8"),
    ("client_min_messages", "notice"),
    ("datestyle", "ISO, MDY"),
    ("default_transaction_isolation", "read committed"),
    ("default_transaction_read_only", "on"),
    ("extra_float_digits", "1"),
    ("intervalstyle", "postgres"),
    ("lalo.input", "sql"),
    ("lc_messages", "C"),
    ("lc_monetary", "C"),
    ("lc_numeric", "C"),
    ("lc_time", "C"),
    ("search_path", "\"$user\", public"),
    ("server_encoding", "UTF8"),
    ("server_version", "16.6"),
    ("server_version_num", "160006"),
    ("standard_conforming_strings", "on"),
    ("statement_timeout", "0"),
    ("timezone", "UTC"),
    ("transaction_isolation", "read committed"),
    ("transaction_read_only", "on"),
    ("bytea_output", "hex"),
    ("integer_datetimes", "on"),
    ("max_identifier_length", "63"),
    ("is_superuser", "off"),
    ("lock_timeout", "0"),
    ("idle_in_transaction_session_timeout", "0"),
    ("geqo", "on"),
    ("jit", "off"),
    ("join_collapse_limit", "8"),
];

/// Settings that fix who the caller is; no statement may change them.
const IDENTITY: &[&str] = &["role", "session_authorization", "lalo.user", "is_superuser", "server_version", "server_version_num", "server_encoding", "lalo.role"];

/// Settings whose change is reported to the client with a ParameterStatus message.
pub const REPORTED: &[(&str, &str)] = &[
    ("application_name", "application_name"),
    ("client_encoding", "client_encoding"),
    ("datestyle", "DateStyle"),
    ("intervalstyle", "IntervalStyle"),
    ("timezone", "TimeZone"),
    ("standard_conforming_strings", "standard_conforming_strings"),
    ("search_path", "search_path"),
    ("extra_float_digits", "extra_float_digits"),
    ("bytea_output", "bytea_output"),
];

/// One session's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    values: BTreeMap<String, String>,
    /// How many changes were made, however made (SET, RESET, `set_config()` in any statement):
    /// part of the session's epoch, so what was derived from older settings is derived again.
    changes: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self { values: DEFAULTS.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), changes: 0 }
    }
}

/// A setting's name as PostgreSQL spells it (`SHOW datestyle` answers a column `DateStyle`).
pub fn display_name(canonical: &str) -> &str {
    REPORTED.iter().find(|(k, _)| *k == canonical).map(|(_, shown)| *shown).unwrap_or(canonical)
}

/// Lower-case a setting name and map aliases ("time zone" → timezone).
pub fn canonical(name: &str) -> String {
    let n = name.trim().trim_matches('"').to_ascii_lowercase();
    match n.as_str() {
        "time zone" | "time_zone" => "timezone".into(),
        "names" => "client_encoding".into(),
        "session authorization" => "session_authorization".into(),
        "transaction isolation level" => "transaction_isolation".into(),
        _ => n,
    }
}

impl Settings {
    pub fn get(&self, name: &str) -> Option<String> {
        self.values.get(&canonical(name)).cloned()
    }

    /// Change a setting. Identity settings are refused (42501); unknown names without a dot are 42704.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), LaloError> {
        let name = canonical(name);
        if IDENTITY.contains(&name.as_str()) {
            return Err(LaloError::PermissionDenied {
                object: format!("parameter \"{name}\""),
                hint: Some("the session's identity is fixed when it connects".into()),
            });
        }
        if !self.values.contains_key(&name) && !name.contains('.') {
            return Err(LaloError::UnknownSetting(name));
        }
        let value = normalize(&name, value)?;
        self.values.insert(name, value);
        self.changes += 1;
        Ok(())
    }

    /// Every setting with its value and its default (`None` for a custom `x.y` setting).
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str, Option<&'static str>)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str(), DEFAULTS.iter().find(|(d, _)| d == k).map(|(_, d)| *d)))
    }

    /// The number of changes made so far.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Restore a setting (or all with `None`) to its default.
    pub fn reset(&mut self, name: Option<&str>) -> Result<(), LaloError> {
        self.changes += 1;
        match name {
            None => {
                self.values = Settings::default().values;
                Ok(())
            }
            Some(n) => {
                let n = canonical(n);
                match DEFAULTS.iter().find(|(k, _)| *k == n) {
                    Some((_, v)) => {
                        self.values.insert(n, v.to_string());
                        Ok(())
                    }
                    None if n.contains('.') => {
                        self.values.remove(&n);
                        Ok(())
                    }
                    None => Err(LaloError::UnknownSetting(n)),
                }
            }
        }
    }

    /// statement_timeout in milliseconds (0 = none).
    pub fn statement_timeout_ms(&self) -> u64 {
        self.get("statement_timeout").map(|v| parse_duration_ms(&v).unwrap_or(0)).unwrap_or(0)
    }

    /// The `lalo.input` mode: sql, nl or auto.
    pub fn input_mode(&self) -> String {
        self.get("lalo.input").unwrap_or_else(|| "sql".into())
    }
}

fn normalize(name: &str, value: &str) -> Result<String, LaloError> {
    let v = value.trim().trim_matches('\'').to_string();
    match name {
        "statement_timeout" => parse_duration_ms(&v)
            .map(|ms| ms.to_string())
            .ok_or_else(|| LaloError::InvalidSetting { name: name.into(), value: v.clone() }),
        "lalo.input" => match v.to_ascii_lowercase().as_str() {
            m @ ("sql" | "nl" | "auto") => Ok(m.to_string()),
            _ => Err(LaloError::InvalidSetting { name: name.into(), value: v }),
        },
        "client_encoding" => match v.to_ascii_uppercase().replace('-', "").as_str() {
            "UTF8" | "UNICODE" => Ok("UTF8".into()),
            _ => Err(LaloError::InvalidSetting { name: name.into(), value: v }),
        },
        "timezone" if v.eq_ignore_ascii_case("local") || v.eq_ignore_ascii_case("default") => Ok("UTC".into()),
        _ => Ok(v),
    }
}

/// Parse a PostgreSQL duration ("5000", "5s", "250ms", "1min") into milliseconds.
pub fn parse_duration_ms(v: &str) -> Option<u64> {
    let v = v.trim().trim_matches('\'').to_ascii_lowercase();
    let split = v.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: f64 = num.parse().ok()?;
    let factor = match unit.trim() {
        "" | "ms" => 1.0,
        "s" => 1000.0,
        "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        "us" => 0.001,
        _ => return None,
    };
    Some((n * factor) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("5000"), Some(5000));
        assert_eq!(parse_duration_ms("'2s'"), Some(2000));
        assert_eq!(parse_duration_ms("1min"), Some(60000));
        assert_eq!(parse_duration_ms("abc"), None);
    }

    #[test]
    fn identity_cannot_change() {
        let mut s = Settings::default();
        assert_eq!(s.set("role", "admin").unwrap_err().sqlstate(), "42501");
        assert_eq!(s.set("SESSION AUTHORIZATION", "admin").unwrap_err().sqlstate(), "42501");
        assert_eq!(s.set("nonsense", "1").unwrap_err().sqlstate(), "42704");
        s.set("my.custom", "x").unwrap();
        assert_eq!(s.get("my.custom").as_deref(), Some("x"));
    }
}
