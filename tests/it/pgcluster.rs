//! Throwaway PostgreSQL clusters for upstream tests: initdb into a temp directory, a port of
//! their own, run as the `postgres` system user when the tests run as root (PostgreSQL refuses
//! root), and stopped by a watchdog when the test process exits.
//!
//! `defog()` is one cluster shared by every test in the binary, with the seven defog databases
//! of `../shared/corpora/defog/data/` loaded and their descriptions applied as `COMMENT ON`.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;
use tokio::sync::OnceCell;

/// The defog databases, as `../shared/corpora/defog/data/<db>/<db>.sql`.
pub const DEFOG_DBS: &[&str] = &["academic", "advising", "atis", "geography", "restaurants", "scholar", "yelp"];

pub fn corpora() -> PathBuf {
    crate::common::repo().join("../shared/corpora")
}

/// A running PostgreSQL cluster on 127.0.0.1:`port`, trust authentication, superuser `postgres`.
pub struct PgCluster {
    pub port: u16,
    bin: PathBuf,
    dir: PathBuf,
}

fn pg_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).filter(|p| p.join("initdb").exists()).collect())
        .unwrap_or_default();
    found.sort();
    found.pop().expect(
        "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: \
         scripts/test installs them (Debian package postgresql)",
    )
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

async fn must(cmd: &mut Command, what: &str) -> String {
    let out = cmd.stdin(Stdio::null()).output().await.unwrap_or_else(|e| panic!("{what}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{what} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

impl PgCluster {
    /// initdb and start a new cluster.
    pub async fn start() -> PgCluster {
        Self::start_on(free_port()).await
    }

    /// initdb and start a new cluster on a given port.
    pub async fn start_on(port: u16) -> PgCluster {
        let bin = pg_bin();
        let dir = std::env::temp_dir().join(format!("lalo-pg-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("cluster dir");
        if is_root() {
            must(Command::new("chown").args(["postgres:postgres"]).arg(&dir), "chown cluster dir").await;
        }
        let data = dir.join("data");
        must(
            as_pg_user(&bin.join("initdb"))
                .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "-D"])
                .arg(&data),
            "initdb",
        )
        .await;
        // A watchdog stops the cluster and removes its files when this test process ends.
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
            .expect("watchdog");
        let cluster = PgCluster { port, bin, dir };
        cluster.resume().await;
        cluster
    }

    /// Start (again) the postmaster of this cluster on its port.
    pub async fn resume(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        must(
            as_pg_user(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.dir.join("data"))
                .arg("-l")
                .arg(self.dir.join("log"))
                .args(["-w", "-o", &opts, "start"]),
            "pg_ctl start",
        )
        .await;
    }

    /// Kill the postmaster and its backends at once (clients see their connections drop).
    pub async fn kill(&self) {
        must(
            as_pg_user(&self.bin.join("pg_ctl")).arg("-D").arg(self.dir.join("data")).args(["-m", "immediate", "stop"]),
            "pg_ctl stop",
        )
        .await;
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}?sslmode=disable", self.port)
    }

    /// Run SQL with psql against `db` and return its unaligned output.
    pub async fn psql(&self, db: &str, sql: &str) -> String {
        must(
            Command::new("psql")
                .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres"])
                .args(["-p", &self.port.to_string(), "-d", db, "-c", sql]),
            &format!("psql -d {db} -c {sql}"),
        )
        .await
    }

    /// Run a SQL file with psql against `db`.
    pub async fn psql_file(&self, db: &str, file: &Path) {
        must(
            Command::new("psql")
                .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres"])
                .args(["-p", &self.port.to_string(), "-d", db, "-f"])
                .arg(file),
            &format!("loading {}", file.display()),
        )
        .await;
    }

    /// A tokio-postgres client straight to the upstream (for comparing results).
    pub async fn client(&self, db: &str) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(
            &format!("host=127.0.0.1 port={} user=postgres dbname={db}", self.port),
            tokio_postgres::NoTls,
        )
        .await
        .expect("connect to the upstream");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client
    }

    /// Create `db` and load a defog database into it, with its descriptions as comments.
    pub async fn load_defog(&self, db: &str) {
        let dir = corpora().join("defog/data").join(db);
        self.psql("postgres", &format!("CREATE DATABASE {db}")).await;
        self.psql_file(db, &dir.join(format!("{db}.sql"))).await;
        let comments = defog_comments(&dir.join(format!("{db}.json")));
        if !comments.is_empty() {
            let file = self.dir.join(format!("{db}-comments.sql"));
            std::fs::write(&file, comments).expect("comments file");
            self.psql_file(db, &file).await;
        }
    }
}

/// `COMMENT ON COLUMN` statements from a defog `<db>.json` (table_metadata → column descriptions).
pub fn defog_comments(path: &Path) -> String {
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

static DEFOG: OnceCell<PgCluster> = OnceCell::const_new();

/// The shared cluster with every defog database loaded.
pub async fn defog() -> &'static PgCluster {
    DEFOG
        .get_or_init(|| async {
            let cluster = PgCluster::start().await;
            for db in DEFOG_DBS {
                cluster.load_defog(db).await;
            }
            cluster
        })
        .await
}
