//! `lalo eval`: the NL-to-SQL evaluation harness. Loads each corpus database into PostgreSQL
//! (a server given by URL, or a throwaway cluster), serves them as lalo upstreams, asks every
//! question through the same pipeline as `ASK` (as a user allowed everything), runs the gold SQL
//! on PostgreSQL and scores by the corpus rules.

pub mod corpus;
pub mod report;
pub mod restyle;
pub mod score;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::config::{Config, DEMO_CONFIG};
use crate::error::LaloError;
use crate::pgcluster::{self, PgCluster};
use crate::pipeline::{Lalo, Outcome};
use crate::session::EntryPoint;
use corpus::Question;
use report::{Report, Scored};

/// What `lalo eval` was asked to do.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub questions: PathBuf,
    pub data: PathBuf,
    pub unanswerable: Option<PathBuf>,
    /// A PostgreSQL server to load into (fresh databases are created and dropped); `None`
    /// starts a throwaway cluster.
    pub pg_url: Option<String>,
    pub drafter: String,
    pub out: Option<PathBuf>,
    /// Databases reported apart as held out from development (`--holdout-dbs`).
    pub holdout: Vec<String>,
    /// Ask the held-out databases' questions of renamed copies ([`restyle`]).
    pub restyle: bool,
}

/// The user questions are asked as: the demo policies give admins everything.
const EVAL_USER: &str = "admin";
/// Longest a gold or predicted query may run.
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Run the evaluation and return its report (also written as JSON lines to `out`).
pub async fn run(opts: &EvalOptions) -> Result<Report, LaloError> {
    if opts.drafter != "rules" {
        return Err(LaloError::Config(format!("drafter \"{}\" is not available in this build (rules)", opts.drafter)));
    }
    let mut questions = corpus::read_questions(&opts.questions, true)?;
    if let Some(u) = &opts.unanswerable {
        questions.extend(corpus::read_questions(u, false)?);
    }
    let dbs: BTreeSet<String> = questions.iter().map(|q| q.db.clone()).collect();
    let scratch = std::env::temp_dir().join(format!("lalo-eval-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| LaloError::Internal(format!("scratch dir: {e}")))?;

    // PostgreSQL: the given server, or a cluster of our own.
    let (cluster, server) = match &opts.pg_url {
        Some(url) => (None, url.clone()),
        None => {
            let c = PgCluster::start().await?;
            let url = c.url("postgres");
            (Some(c), url)
        }
    };
    let prefix = if cluster.is_some() { String::new() } else { format!("lalo_eval_{}_", std::process::id()) };
    let mut urls = BTreeMap::new();
    let mut served = BTreeMap::new();
    let mut loaded = vec![];
    for db in &dbs {
        let dir = opts.data.join(db);
        let name = format!("{prefix}{db}");
        let url = pgcluster::load_corpus_db(&server, &name, &dir, db, &scratch).await?;
        loaded.push(name);
        urls.insert(db.clone(), url.clone());
        if opts.restyle && opts.holdout.contains(db) {
            let name = format!("{prefix}{db}_restyled");
            let copy = pgcluster::load_corpus_db(&server, &name, &dir, db, &scratch).await?;
            loaded.push(name);
            restyle::restyle(&copy).await?;
            served.insert(db.clone(), Served { url: copy, schema: restyle::SCHEMA.into(), restyled: true });
        } else {
            served.insert(db.clone(), Served { url, schema: "public".into(), restyled: false });
        }
    }
    let result = evaluate(opts, &questions, &urls, &served, &scratch).await;
    if cluster.is_none() {
        for name in &loaded {
            let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
            if let Err(e) = pgcluster::psql(&pgcluster::with_database(&server, "postgres"), &drop).await {
                tracing::warn!(error = %e, "could not drop an eval database");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    drop(cluster);
    result
}

/// What lalo serves as one corpus database.
struct Served {
    url: String,
    /// The schema its tables are in.
    schema: String,
    /// A renamed copy ([`restyle`]): the gold names say nothing about its columns.
    restyled: bool,
}

/// Start lalo over the loaded databases and score every question; gold SQL runs on `urls`.
async fn evaluate(
    opts: &EvalOptions,
    questions: &[Question],
    urls: &BTreeMap<String, String>,
    served: &BTreeMap<String, Served>,
    scratch: &std::path::Path,
) -> Result<Report, LaloError> {
    let lalo = start_lalo(served, scratch).await?;
    let mut report = Report { holdout: opts.holdout.iter().cloned().collect(), restyled: opts.restyle, ..Report::default() };
    let mut out = match &opts.out {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| LaloError::Config(format!("{}: {e}", p.display())))?,
        )),
        None => None,
    };
    for (db, url) in urls {
        let pg = pgcluster::client(url).await?;
        // Linking recall compares the gold's names with the context's: not on a renamed copy.
        let schema = if served.get(db).is_some_and(|s| s.restyled) { BTreeMap::new() } else { upstream_schema(&pg).await? };
        let session = lalo.open_session(EVAL_USER, db, "eval", EntryPoint::Cli)?;
        // Build the context once before timing: questions are timed on the steady (cached) path.
        let began = Instant::now();
        lalo.questions.get(lalo.as_ref(), &session).await?;
        report.context_ms.push((db.clone(), began.elapsed().as_secs_f64() * 1000.0));
        for q in questions.iter().filter(|q| &q.db == db) {
            let scored = ask_one(&lalo, &session, &pg, &schema, q).await;
            if let Some(w) = out.as_mut() {
                use std::io::Write;
                let line = serde_json::to_string(&scored).map_err(|e| LaloError::Internal(e.to_string()))?;
                writeln!(w, "{line}").map_err(|e| LaloError::Internal(e.to_string()))?;
            }
            report.add(scored);
        }
    }
    if let Some(mut w) = out {
        use std::io::Write;
        w.flush().map_err(|e| LaloError::Internal(e.to_string()))?;
    }
    Ok(report)
}

/// lalo with one upstream per database, demo policies, no TPC-H, audit in the scratch dir.
async fn start_lalo(served: &BTreeMap<String, Served>, scratch: &std::path::Path) -> Result<Arc<Lalo>, LaloError> {
    let catalog = scratch.join("catalog");
    std::fs::create_dir_all(&catalog).map_err(|e| LaloError::Internal(format!("catalog dir: {e}")))?;
    let mut sources = String::new();
    for (db, s) in served {
        let (url, schema) = (&s.url, &s.schema);
        sources.push_str(&format!("[[upstream]]\nname = \"{db}\"\nkind = \"postgres\"\nurl = \"{url}\"\nschemas = [\"{schema}\"]\n\n"));
    }
    std::fs::write(catalog.join("sources.toml"), sources).map_err(|e| LaloError::Internal(format!("sources.toml: {e}")))?;
    let mut cfg = Config::from_toml(DEMO_CONFIG, scratch.to_path_buf(), |_| None)?;
    cfg.catalog.dir = catalog;
    cfg.catalog.tpch_scale = 0.0;
    cfg.catalog.data_dir = scratch.join("data");
    // The compiled-in demo policies (admins read everything): this config is lalo's own, so it
    // may use them, through a directory that does not exist.
    cfg.builtin = true;
    cfg.governance.policies = scratch.join("demo-policies");
    cfg.governance.audit_log = scratch.join("audit.log");
    let lalo = Lalo::start(cfg).await?;
    // Upstreams are discovered in the background; wait until every one answers.
    for _ in 0..120 {
        if lalo.readiness().ready {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Score retrieval as served, not the fallback: wait for the index's first build.
    if lalo.config.planner.retrieval_index && !lalo.retrieval.wait_for_update(0, Duration::from_secs(900)).await {
        tracing::warn!("the retrieval index did not finish building; questions use the in-memory ranking");
    }
    Ok(lalo)
}

/// `table → columns` of the upstream's public schema, as PostgreSQL has them (for recall).
async fn upstream_schema(pg: &tokio_postgres::Client) -> Result<BTreeMap<String, Vec<String>>, LaloError> {
    let rows = pg
        .query("SELECT table_name::text, column_name::text FROM information_schema.columns WHERE table_schema = 'public'", &[])
        .await
        .map_err(|e| LaloError::Internal(format!("information_schema: {e}")))?;
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in rows {
        out.entry(r.get::<_, String>(0).to_lowercase()).or_default().push(r.get::<_, String>(1).to_lowercase());
    }
    Ok(out)
}

/// Ask one question through the pipeline, run the gold on PostgreSQL, score.
async fn ask_one(
    lalo: &Arc<Lalo>,
    session: &crate::session::Session,
    pg: &tokio_postgres::Client,
    schema: &BTreeMap<String, Vec<String>>,
    q: &Question,
) -> Scored {
    let mut s = Scored::new(q);
    let began = Instant::now();
    let input = format!("ASK {}", q.question);
    let asked = tokio::time::timeout(QUERY_TIMEOUT, async {
        let a = lalo.answer(session, &q.question, &input, Default::default()).await?;
        let pipeline_ms = a.trace.total_ms();
        let Outcome::Rows { mut rows, .. } = a.outcome else {
            return Err(LaloError::Internal("a question returned no rows".into()));
        };
        let mut batches = vec![];
        while let Some(b) = rows.next().await {
            batches.push(b?);
        }
        Ok::<_, LaloError>((a.sql, a.trace, pipeline_ms, batches))
    })
    .await
    .unwrap_or(Err(LaloError::Timeout));
    s.total_ms = began.elapsed().as_secs_f64() * 1000.0;
    let pred = match asked {
        Ok((sql, trace, pipeline_ms, batches)) => {
            s.sql = Some(sql);
            s.pipeline_ms = pipeline_ms;
            s.recall(schema, &q.gold, &trace.given_columns);
            s.given_tables = trace.given_tables;
            score::batch_rows(&batches).ok()
        }
        Err(e) => {
            s.sqlstate = Some(e.sqlstate().to_string());
            s.error = Some(e.to_string());
            s.declined = e.sqlstate() == "42000";
            // A failure comes before execution: its whole time is pipeline time.
            s.pipeline_ms = s.total_ms;
            // What was drafted before it failed (the graph is deterministic: run it again to see).
            if let Err(failed) = crate::nl::graph::run(lalo.as_ref(), session, &q.question).await {
                s.drafted = failed.sql;
                s.draft_error = failed.trace.drafts.iter().rev().find_map(|d| d.error.clone());
            }
            // Declined questions still had a context: recall is about what retrieval handed on.
            if let Ok((built, _)) = lalo.questions.get(lalo.as_ref(), session).await {
                let given: Vec<String> = built
                    .context
                    .tables
                    .iter()
                    .flat_map(|t| t.columns.iter().map(move |c| format!("{}.{}", t.qualified(), c.name)))
                    .collect();
                s.recall(schema, &q.gold, &given);
            }
            None
        }
    };
    if !q.answerable {
        return s;
    }
    let Some(pred) = pred else { return s };
    let ordered = corpus::asks_order(&q.question);
    for gold in corpus::expand_gold(&q.gold) {
        match tokio::time::timeout(QUERY_TIMEOUT, pg.simple_query(&gold)).await {
            Ok(Ok(msgs)) => {
                if score::matches(&score::text_rows(&msgs), &pred, ordered) {
                    s.correct = true;
                    break;
                }
            }
            Ok(Err(e)) => s.gold_error = Some(e.to_string()),
            Err(_) => s.gold_error = Some("gold query timed out".into()),
        }
    }
    if !s.correct && s.error.is_none() {
        s.error = Some(format!("different rows (first: {:?})", pred.iter().take(2).collect::<Vec<_>>()));
    }
    s
}
