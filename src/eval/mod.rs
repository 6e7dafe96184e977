//! `lalo eval`: the NL-to-SQL evaluation harness. Loads each corpus database into PostgreSQL
//! (a server given by URL, or a throwaway cluster), serves them as lalo upstreams, asks every
//! question through the same pipeline as `ASK` (as a user allowed everything), runs the gold SQL
//! on PostgreSQL and scores by the corpus rules.

pub mod corpus;
pub mod html;
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
    /// The HTML report; by default next to `out` (`eval.jsonl` → `eval.html`).
    pub html: Option<PathBuf>,
    /// For `--drafter llm`: the OpenAI-compatible endpoint, model and API key variable
    /// (`LALO_PLANNER_LLM_*` when not given).
    pub llm_base_url: Option<String>,
    pub llm_model: Option<String>,
    pub llm_api_key_env: Option<String>,
}

/// The user questions are asked as: the demo policies give admins everything.
const EVAL_USER: &str = "admin";
/// Longest a gold or predicted query may run.
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Run the evaluation and return its report (also written as JSON lines to `out`).
pub async fn run(opts: &EvalOptions) -> Result<Report, LaloError> {
    let drafter = match opts.drafter.as_str() {
        "rules" => crate::config::DrafterKind::Rules,
        "llm" => crate::config::DrafterKind::Llm,
        other => return Err(LaloError::Config(format!("drafter \"{other}\" is not known: rules or llm"))),
    };
    if drafter == crate::config::DrafterKind::Llm && llm_setting(&opts.llm_base_url, "LALO_PLANNER_LLM_BASE_URL").is_none() {
        return Err(LaloError::Config("--drafter llm needs --llm-base-url (or LALO_PLANNER_LLM_BASE_URL)".into()));
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
    let result = evaluate(opts, drafter, &questions, &urls, &served, &scratch).await;
    if let Ok(report) = &result {
        let html = opts.html.clone().or_else(|| opts.out.as_ref().map(|o| o.with_extension("html")));
        if let Some(path) = html {
            std::fs::write(&path, html::render(report, &opts.drafter)).map_err(|e| LaloError::Config(format!("{}: {e}", path.display())))?;
        }
    }
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
    drafter: crate::config::DrafterKind,
    questions: &[Question],
    urls: &BTreeMap<String, String>,
    served: &BTreeMap<String, Served>,
    scratch: &std::path::Path,
) -> Result<Report, LaloError> {
    let lalo = start_lalo(served, scratch, opts, drafter).await?;
    let mut progress = Progress::new(questions.len());
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
            progress.step(db, scored.correct);
            if let Some(w) = out.as_mut() {
                use std::io::Write;
                let line = serde_json::to_string(&scored).map_err(|e| LaloError::Internal(e.to_string()))?;
                writeln!(w, "{line}").map_err(|e| LaloError::Internal(e.to_string()))?;
            }
            report.add(scored);
        }
    }
    progress.done();
    if let Some(mut w) = out {
        use std::io::Write;
        w.flush().map_err(|e| LaloError::Internal(e.to_string()))?;
    }
    Ok(report)
}

/// lalo with one upstream per database, demo policies, no TPC-H, audit in the scratch dir.
async fn start_lalo(
    served: &BTreeMap<String, Served>,
    scratch: &std::path::Path,
    opts: &EvalOptions,
    drafter: crate::config::DrafterKind,
) -> Result<Arc<Lalo>, LaloError> {
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
    cfg.planner.drafter = drafter;
    if drafter == crate::config::DrafterKind::Llm {
        cfg.planner.llm_base_url = llm_setting(&opts.llm_base_url, "LALO_PLANNER_LLM_BASE_URL");
        cfg.planner.llm_model = llm_setting(&opts.llm_model, "LALO_PLANNER_LLM_MODEL").or(cfg.planner.llm_model.take());
        cfg.planner.llm_api_key_env = llm_setting(&opts.llm_api_key_env, "LALO_PLANNER_LLM_API_KEY_ENV").or(cfg.planner.llm_api_key_env.take());
        // An evaluation asks hundreds of questions as one user: no hourly budget.
        cfg.planner.llm_token_budget_per_hour = 0;
    }
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
    // Corpus questions stand alone: none is a follow-up of the one before.
    session.conversation.lock().take();
    let began = Instant::now();
    let question = q.asked();
    let input = format!("ASK {question}");
    let asked = tokio::time::timeout(QUERY_TIMEOUT, async {
        let a = lalo.answer(session, &question, &input, Default::default()).await?;
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
            // What was drafted before it failed (the rules drafter is deterministic: run it again
            // to see; a model would be asked, and billed, twice).
            let rules = lalo.config.planner.drafter == crate::config::DrafterKind::Rules;
            if rules {
                if let Err(failed) = crate::nl::graph::run(lalo.as_ref(), session, &question).await {
                    s.drafted = failed.sql;
                    s.draft_error = failed.trace.drafts.iter().rev().find_map(|d| d.error.clone());
                }
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

/// A flag's value, else the variable's.
fn llm_setting(flag: &Option<String>, var: &str) -> Option<String> {
    flag.clone().or_else(|| std::env::var(var).ok().filter(|v| !v.is_empty()))
}

/// A one-line progress bar on stderr while questions run, redrawn in place; nothing when
/// stderr is not a terminal (CI logs stay clean). A line redrawn with `\r` needs no library.
struct Progress {
    total: usize,
    done: usize,
    correct: usize,
    began: Instant,
    shown: bool,
}

impl Progress {
    fn new(total: usize) -> Progress {
        use std::io::IsTerminal;
        Progress { total, done: 0, correct: 0, began: Instant::now(), shown: std::io::stderr().is_terminal() }
    }

    fn step(&mut self, db: &str, correct: bool) {
        self.done += 1;
        self.correct += correct as usize;
        if !self.shown {
            return;
        }
        let width = 30;
        let filled = width * self.done / self.total.max(1);
        eprint!(
            "\r[{}{}] {}/{} {:<14} correct {} {:.0}s ",
            "#".repeat(filled),
            ".".repeat(width - filled),
            self.done,
            self.total,
            db,
            self.correct,
            self.began.elapsed().as_secs_f64()
        );
    }

    fn done(&self) {
        if self.shown {
            eprintln!();
        }
    }
}
