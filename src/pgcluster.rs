//! Throwaway PostgreSQL clusters and loading of SQL corpora into PostgreSQL: initdb into a temp
//! directory, a port of its own, run as the `postgres` system user when lalo runs as root
//! (PostgreSQL refuses root), stopped by a watchdog when this process exits. Used by `lalo eval`
//! and by the upstream tests.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use crate::error::LaloError;

/// A running PostgreSQL cluster on 127.0.0.1:`port`, trust authentication, superuser `postgres`.
#[derive(Debug)]
pub struct PgCluster {
    pub port: u16,
    bin: PathBuf,
    dir: PathBuf,
}

fn fail(what: &str, detail: impl std::fmt::Display) -> LaloError {
    LaloError::Internal(format!("{what}: {detail}"))
}

/// The newest PostgreSQL server binaries under /usr/lib/postgresql/*/bin.
fn pg_bin() -> Result<PathBuf, LaloError> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).filter(|p| p.join("initdb").exists()).collect())
        .unwrap_or_default();
    found.sort();
    found.pop().ok_or_else(|| {
        fail("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin", "install the Debian package postgresql")
    })
}

fn is_root() -> bool {
    std::process::Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

/// A command that runs as the `postgres` system user when we are root.
fn as_pg_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// A TCP port nobody listens on right now.
pub fn free_port() -> Result<u16, LaloError> {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).map_err(|e| fail("a free port", e))
}

/// Run a command to completion; its stdout, or an error carrying its output.
async fn must(cmd: &mut Command, what: &str) -> Result<String, LaloError> {
    let out = cmd.stdin(Stdio::null()).output().await.map_err(|e| fail(what, e))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(fail(what, format!("failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr))));
    }
    Ok(stdout)
}

impl PgCluster {
    /// initdb and start a new cluster on a free port.
    pub async fn start() -> Result<PgCluster, LaloError> {
        Self::start_on(free_port()?).await
    }

    /// initdb and start a new cluster on a given port.
    pub async fn start_on(port: u16) -> Result<PgCluster, LaloError> {
        let bin = pg_bin()?;
        let dir = std::env::temp_dir().join(format!("lalo-pg-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| fail("cluster dir", e))?;
        if is_root() {
            must(Command::new("chown").args(["postgres:postgres"]).arg(&dir), "chown cluster dir").await?;
        }
        let data = dir.join("data");
        must(
            as_pg_user(&bin.join("initdb")).args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "-D"]).arg(&data),
            "initdb",
        )
        .await?;
        // A watchdog stops the cluster and removes its files when this process ends.
        let watchdog = format!(
            "while [ -d /proc/{pid} ]; do sleep 1; done; {pg_ctl} -D {data} stop -m immediate >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            pg_ctl = bin.join("pg_ctl").display(),
            data = data.display(),
            dir = dir.display(),
        );
        as_pg_user(Path::new("/bin/sh"))
            .args(["-c", &watchdog])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| fail("watchdog", e))?;
        let cluster = PgCluster { port, bin, dir };
        cluster.resume().await?;
        Ok(cluster)
    }

    /// Start (again) the postmaster of this cluster on its port.
    pub async fn resume(&self) -> Result<(), LaloError> {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let mut cmd = as_pg_user(&self.bin.join("pg_ctl"));
        cmd.arg("-D").arg(self.dir.join("data")).arg("-l").arg(self.dir.join("log")).args(["-w", "-o", &opts, "start"]);
        must(&mut cmd, "pg_ctl start").await.map(|_| ())
    }

    /// Kill the postmaster and its backends at once (clients see their connections drop).
    pub async fn kill(&self) -> Result<(), LaloError> {
        let mut cmd = as_pg_user(&self.bin.join("pg_ctl"));
        cmd.arg("-D").arg(self.dir.join("data")).args(["-m", "immediate", "stop"]);
        must(&mut cmd, "pg_ctl stop").await.map(|_| ())
    }

    /// The connection URL of database `db` in this cluster.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}?sslmode=disable", self.port)
    }

    /// Scratch directory of this cluster (removed with it).
    pub fn scratch(&self) -> &Path {
        &self.dir
    }
}

/// `url` with its database (the path) replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (before_query, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let authority = before_query.split('/').next().unwrap_or(before_query);
    match query {
        Some(q) => format!("{scheme}://{authority}/{db}?{q}"),
        None => format!("{scheme}://{authority}/{db}"),
    }
}

/// Run SQL with psql against the database at `url`; its unaligned output.
pub async fn psql(url: &str, sql: &str) -> Result<String, LaloError> {
    let mut cmd = Command::new("psql");
    cmd.args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql]);
    must(&mut cmd, &format!("psql -c {}", sql.chars().take(80).collect::<String>())).await
}

/// Run a SQL file with psql against the database at `url`.
pub async fn psql_file(url: &str, file: &Path) -> Result<(), LaloError> {
    let mut cmd = Command::new("psql");
    cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f"]).arg(file);
    must(&mut cmd, &format!("loading {}", file.display())).await.map(|_| ())
}

/// A tokio-postgres client for the database at `url`.
pub async fn client(url: &str) -> Result<tokio_postgres::Client, LaloError> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.map_err(|e| fail("connect to PostgreSQL", e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// Create database `name` on the server at `server_url` and load a defog-style corpus database
/// into it: `dir/<db>.sql`, then the descriptions of `dir/<db>.json` as `COMMENT ON COLUMN`.
/// `scratch` holds the generated comments file.
pub async fn load_corpus_db(server_url: &str, name: &str, dir: &Path, db: &str, scratch: &Path) -> Result<String, LaloError> {
    psql(&with_database(server_url, "postgres"), &format!("CREATE DATABASE \"{name}\"")).await?;
    let url = with_database(server_url, name);
    psql_file(&url, &dir.join(format!("{db}.sql"))).await?;
    let comments = corpus_comments(&dir.join(format!("{db}.json")));
    if !comments.is_empty() {
        let file = scratch.join(format!("{name}-comments.sql"));
        std::fs::write(&file, comments).map_err(|e| fail("comments file", e))?;
        psql_file(&url, &file).await?;
    }
    Ok(url)
}

/// `COMMENT ON COLUMN` statements from a defog `<db>.json` (table_metadata → column descriptions).
pub fn corpus_comments(path: &Path) -> String {
    let Ok(text) = std::fs::read_to_string(path) else { return String::new() };
    let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else { return String::new() };
    let quote = |s: &str| s.replace('\'', "''");
    let mut out = String::new();
    if let Some(tables) = json.get("table_metadata").and_then(|t| t.as_object()) {
        for (table, cols) in tables {
            for col in cols.as_array().into_iter().flatten() {
                let (Some(name), Some(desc)) = (
                    col.get("column_name").and_then(|v| v.as_str()),
                    col.get("column_description").and_then(|v| v.as_str()),
                ) else {
                    continue;
                };
                if desc.is_empty() {
                    continue;
                }
                out.push_str(&format!("COMMENT ON COLUMN \"{table}\".\"{name}\" IS '{}';\n", quote(desc)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_of_a_url() {
        assert_eq!(with_database("postgres://u@h:5/a?sslmode=disable", "b"), "postgres://u@h:5/b?sslmode=disable");
        assert_eq!(with_database("postgres://u@h:5", "b"), "postgres://u@h:5/b");
        assert_eq!(with_database("postgresql://u:p@h/x", "y"), "postgresql://u:p@h/y");
    }
}
