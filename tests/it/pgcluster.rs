//! Throwaway PostgreSQL clusters for upstream tests (lalo::pgcluster), with panicking helpers.
//!
//! `defog()` is one cluster shared by every test in the binary, with the seven defog databases
//! of `../shared/corpora/defog/data/` loaded and their descriptions applied as `COMMENT ON`.

use std::path::{Path, PathBuf};

use lalo::pgcluster as pg;
use tokio::sync::OnceCell;

/// The defog databases, as `../shared/corpora/defog/data/<db>/<db>.sql`.
pub const DEFOG_DBS: &[&str] = &["academic", "advising", "atis", "geography", "restaurants", "scholar", "yelp"];

pub fn corpora() -> PathBuf {
    crate::common::repo().join("../shared/corpora")
}

/// A running PostgreSQL cluster on 127.0.0.1:`port`, trust authentication, superuser `postgres`.
pub struct PgCluster {
    inner: pg::PgCluster,
}

impl PgCluster {
    /// initdb and start a new cluster.
    pub async fn start() -> PgCluster {
        let inner = pg::PgCluster::start().await.expect("a throwaway PostgreSQL cluster");
        PgCluster { inner }
    }

    /// initdb and start a new cluster on a given port.
    pub async fn start_on(port: u16) -> PgCluster {
        let inner = pg::PgCluster::start_on(port).await.expect("a throwaway PostgreSQL cluster");
        PgCluster { inner }
    }

    /// Start (again) the postmaster of this cluster on its port.
    pub async fn resume(&self) {
        self.inner.resume().await.expect("pg_ctl start");
    }

    /// Kill the postmaster and its backends at once (clients see their connections drop).
    pub async fn kill(&self) {
        self.inner.kill().await.expect("pg_ctl stop");
    }

    pub fn url(&self, db: &str) -> String {
        self.inner.url(db)
    }

    /// Run SQL with psql against `db` and return its unaligned output.
    pub async fn psql(&self, db: &str, sql: &str) -> String {
        pg::psql(&self.url(db), sql).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// Run a SQL file with psql against `db`.
    #[allow(dead_code)]
    pub async fn psql_file(&self, db: &str, file: &Path) {
        pg::psql_file(&self.url(db), file).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// The server log so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.inner.scratch().join("log")).unwrap_or_default()
    }

    /// A tokio-postgres client straight to the upstream (for comparing results).
    pub async fn client(&self, db: &str) -> tokio_postgres::Client {
        pg::client(&self.url(db)).await.expect("connect to the upstream")
    }

    /// Create `db` and load a defog database into it, with its descriptions as comments.
    pub async fn load_defog(&self, db: &str) {
        let dir = corpora().join("defog/data").join(db);
        pg::load_corpus_db(&self.url("postgres"), db, &dir, db, self.inner.scratch()).await.unwrap_or_else(|e| panic!("{e}"));
    }
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
