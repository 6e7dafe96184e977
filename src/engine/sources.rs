//! `catalog/sources.toml`: embedded CSV/Parquet tables and upstream databases.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::LaloError;

/// The parsed sources file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Sources {
    #[serde(rename = "table")]
    pub tables: Vec<TableSource>,
    #[serde(rename = "upstream")]
    pub upstreams: Vec<UpstreamSource>,
}

/// `[[table]]`: a file registered as `lalo.<schema>.<name>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSource {
    pub schema: String,
    pub name: String,
    /// Path to a file or directory, relative to the catalog directory.
    pub path: PathBuf,
    /// `csv` or `parquet`; taken from the extension when absent.
    pub format: Option<String>,
    /// CSV only: whether the first line holds column names (default true).
    #[serde(default = "yes")]
    pub has_header: bool,
}

fn yes() -> bool {
    true
}

/// `[[upstream]]`: a PostgreSQL database served as its own lalo database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSource {
    pub name: String,
    pub kind: String,
    /// The environment variable holding the connection URL (the usual way: URLs carry secrets).
    #[serde(default)]
    pub url_env: Option<String>,
    /// A URL written here directly; only for upstreams that need no password (trust, peer, cert).
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub schemas: Vec<String>,
}

impl Sources {
    /// Read `dir/sources.toml`; a missing file means no extra sources.
    pub fn load(dir: &Path) -> Result<Sources, LaloError> {
        let path = dir.join("sources.toml");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Sources::default()),
            Err(e) => return Err(LaloError::Config(format!("{}: {e}", path.display()))),
        };
        toml::from_str(&text).map_err(|e| LaloError::Config(format!("{}: {e}", path.display())))
    }
}

impl TableSource {
    /// The file format, from `format` or the path's extension.
    pub fn format(&self) -> Result<&str, LaloError> {
        let f = match &self.format {
            Some(f) => f.as_str(),
            None => self.path.extension().and_then(|e| e.to_str()).unwrap_or(""),
        };
        match f {
            "csv" | "parquet" => Ok(f),
            other => Err(LaloError::Config(format!(
                "table {}.{}: unsupported format '{other}' (csv or parquet)",
                self.schema, self.name
            ))),
        }
    }
}
