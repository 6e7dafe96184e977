//! The retrieval index (lancedb): sample values find their columns across the defog databases,
//! hits are cut to what the caller may read before a prompt or EXPLAIN ASK sees them, the
//! embeddings endpoint adds remote vectors, and doc edits and REFRESH UPSTREAM update the index
//! incrementally.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lalo::nl::index::documents::Kind;
use lalo::nl::index::Hit;
use lalo::session::EntryPoint;
use lalo::Lalo;

use crate::common::{self, text_rows as rows};
use crate::pgcluster::{self, PgCluster, DEFOG_DBS};

/// Long enough for a first build over every defog database on a busy machine.
const BUILD: Duration = Duration::from_secs(600);

/// Wait for the index's first finished update and check it is in use.
async fn built(lalo: &Lalo) {
    assert!(lalo.retrieval.wait_for_update(0, BUILD).await, "the retrieval index builds");
    assert!(lalo.retrieval.is_ready(), "the retrieval index is in use");
}

/// The hits `user` gets for `question` in `db`.
async fn search(lalo: &Arc<Lalo>, user: &str, db: &str, question: &str) -> Vec<Hit> {
    let session = lalo.open_session(user, db, "test", EntryPoint::Cli).expect("session");
    let (context, _) = lalo.questions.get(lalo.as_ref(), &session).await.expect("context");
    lalo.retrieval.search(lalo.as_ref(), &session, &context, question).await.expect("the index answers").hits
}

fn names(hits: &[Hit]) -> Vec<String> {
    hits.iter().map(|h| format!("{} {}.{} {}", h.doc.kind.as_str(), h.doc.table, h.doc.column, h.doc.detail)).collect()
}

/// Known cases: a question naming a value (never the column) ranks that column's value document
/// among the first five hits, in each database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_values_find_their_columns_across_defog_databases() {
    let pg = pgcluster::defog().await;
    let ups: Vec<(String, String)> = DEFOG_DBS.iter().map(|db| (db.to_string(), pg.url(db))).collect();
    let (s, _catalog) = crate::upstream::start_with_upstreams(&ups).await;
    let lalo = s.running.lalo.clone();
    built(&lalo).await;
    let cases = [
        ("restaurants", "Which restaurants serve Mexican food?", "restaurant", "food_type"),
        ("atis", "Which flights are operated by Delta Air Lines?", "airline", "airline_name"),
        ("atis", "How many aircraft were made by Boeing?", "aircraft", "manufacturer"),
        ("scholar", "How many papers appeared at the Social Media Analysis Workshop?", "venue", "venuename"),
    ];
    let mut found = 0;
    for (db, question, table, column) in cases {
        let hits = search(&lalo, "admin", db, question).await;
        let top: Vec<&Hit> = hits.iter().take(5).collect();
        let hit = top.iter().any(|h| h.doc.kind == Kind::Value && h.doc.table == table && h.doc.column == column);
        assert!(hit, "{db}: {question} → {table}.{column} in {:?}", names(&hits[..hits.len().min(8)]));
        found += 1;
    }
    assert_eq!(found, cases.len());
    // The fused ranking decides which tables lead: the restaurant table for the Mexican question.
    let c = s.connect_db("admin", "restaurants").await;
    let got = rows(&c.simple_query("EXPLAIN ASK Which restaurants serve Mexican food?").await.expect("explain ask"));
    let docs: Vec<&String> = got.iter().filter(|r| r[0] == "document").map(|r| &r[1]).collect();
    assert!(docs.iter().any(|d| d.contains("restaurants.public.restaurant.food_type = 'Mexican'")), "{got:?}");
    let retrieved = got.iter().find(|r| r[0] == "retrieved").expect("a ranked table");
    assert!(retrieved[1].starts_with("public.restaurant "), "{got:?}");
}

/// Policies of the demo plus a redaction of the part's container for analysts.
fn policies_with_masked_container(dir: &Path) {
    std::fs::create_dir_all(dir).expect("policies dir");
    for f in ["model.conf", "policy.csv", "rules.toml"] {
        std::fs::copy(common::repo().join("policies").join(f), dir.join(f)).expect("copy policy file");
    }
    let mut rules = std::fs::read_to_string(dir.join("rules.toml")).expect("rules");
    rules.push_str("\n[[mask]]\ntable = \"lalo.tpch.part\"\ncolumn = \"p_container\"\nsubject = \"analysts\"\nkind = \"redact\"\n");
    std::fs::write(dir.join("rules.toml"), rules).expect("rules");
}

/// Every TPC-H container except the two the column's doc names as examples (docs are not data).
fn containers() -> Vec<String> {
    let mut out = vec![];
    for size in ["SM", "LG", "MED", "JUMBO", "WRAP"] {
        for kind in ["CASE", "BOX", "BAG", "JAR", "PKG", "PACK", "CAN", "DRUM"] {
            let v = format!("{size} {kind}");
            if v != "SM CASE" && v != "MED BOX" {
                out.push(v);
            }
        }
    }
    out
}

/// A denied column and a masked column's values are found for admins but never reach another
/// caller's prompt or EXPLAIN ASK: the filter runs before anything else sees a hit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_columns_and_masked_values_never_reach_a_prompt_or_explain() {
    let (script, base) = crate::llm::scripted().await;
    let pol = tempfile::tempdir().expect("policies");
    policies_with_masked_container(pol.path());
    let policies = pol.path().to_path_buf();
    let s = common::start_with(move |cfg| {
        cfg.planner.drafter = lalo::config::DrafterKind::Llm;
        cfg.planner.llm_base_url = Some(base);
        cfg.planner.llm_model = Some("scripted".into());
        cfg.planner.llm_api_key_env = None;
        cfg.governance.policies = policies;
    })
    .await;
    let lalo = s.running.lalo.clone();
    built(&lalo).await;

    // What the index holds: admins get the balance column and the container values.
    let balance = "What is the average account balance of customers?";
    let container = "How many parts are shipped in each kind of container?";
    let admin = names(&search(&lalo, "admin", "lalo", balance).await).join(" | ");
    assert!(admin.contains("c_acctbal"), "{admin}");
    let admin = search(&lalo, "admin", "lalo", container).await;
    assert!(admin.iter().any(|h| h.doc.kind == Kind::Value && h.doc.column == "p_container"), "{:?}", names(&admin));
    // Interns may not read the balance; analysts see the container masked.
    let intern = names(&search(&lalo, "intern", "lalo", balance).await).join(" | ");
    assert!(!intern.contains("c_acctbal"), "{intern}");
    let analyst = search(&lalo, "analyst", "lalo", container).await;
    assert!(!analyst.iter().any(|h| h.doc.kind == Kind::Value && h.doc.column == "p_container"), "{:?}", names(&analyst));

    // The prompts sent to the model.
    for (user, question, banned) in [("intern", balance, vec!["c_acctbal".to_string()]), ("analyst", container, containers())] {
        script.push(crate::llm::completion(r#"{"cannot_answer": "not in the schema"}"#));
        let c = s.connect(user).await;
        let e = c.simple_query(&format!("ASK {question}")).await.expect_err("declined");
        assert_eq!(common::sqlstate(&e), "42000", "{e:?}");
        let last = script.requests().pop().expect("a prompt was sent");
        let sent = crate::llm::messages(&last).join("\n");
        assert!(sent.contains("Retrieved for this question"), "retrieval reached the prompt: {sent}");
        for b in &banned {
            assert!(!sent.contains(b.as_str()), "{user}: {b} reached the prompt:\n{sent}");
        }
        // EXPLAIN ASK: the model answers with SQL the caller may run; no row mentions what is banned.
        script.push(crate::llm::completion(r#"{"sql": "SELECT count(*) FROM lalo.tpch.customer"}"#));
        let got = rows(&c.simple_query(&format!("EXPLAIN ASK {question}")).await.expect("explain ask"));
        assert!(got.iter().any(|r| r[0] == "document"), "documents shown: {got:?}");
        for r in &got {
            for b in &banned {
                assert!(!r[1].contains(b.as_str()), "{user}: {b} in EXPLAIN ASK: {r:?}");
            }
        }
    }
}

/// With an embeddings endpoint configured, documents and questions are embedded there too and
/// the remote vectors take part in the fusion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embeddings_endpoint_adds_remote_vectors() {
    let (script, base) = crate::llm::scripted().await;
    let s = common::start_with(move |cfg| {
        cfg.planner.embeddings_base_url = Some(base);
        cfg.planner.embeddings_model = Some("scripted-embed".into());
    })
    .await;
    let lalo = s.running.lalo.clone();
    built(&lalo).await;
    let before = script.embedded.lock().expect("lock").len();
    assert!(before > 100, "the documents were embedded remotely: {before}");
    let hits = search(&lalo, "admin", "lalo", "nations of the world").await;
    assert!(script.embedded.lock().expect("lock").len() > before, "the question was embedded remotely");
    assert!(hits.iter().any(|h| h.found_by.contains("remote")), "{:?}", hits.iter().map(|h| &h.found_by).collect::<Vec<_>>());
    assert!(hits.iter().take(5).any(|h| h.doc.table == "nation"), "{:?}", names(&hits));
}

/// A doc file edited while lalo runs is re-read and only its documents are rewritten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doc_edit_updates_only_its_documents() {
    let catalog = tempfile::tempdir().expect("catalog");
    std::fs::write(catalog.path().join("sources.toml"), "").expect("sources.toml");
    let docs = catalog.path().join("docs");
    std::fs::create_dir_all(&docs).expect("docs dir");
    let dir = catalog.path().to_path_buf();
    let s = common::start_with(move |cfg| cfg.catalog.dir = dir).await;
    let lalo = s.running.lalo.clone();
    built(&lalo).await;
    let word = "zanzibarian";
    // Vector search always returns neighbours; no document holds the word yet.
    assert!(!search(&lalo, "admin", "lalo", word).await.iter().any(|h| h.doc.text.contains(word)));
    let n = lalo.retrieval.updates();
    std::fs::write(
        docs.join("tpch.nation.md"),
        format!("# tpch.nation\n\nNations.\n\n- n_comment: {word} remarks about the nation\nQ: how many nations are there?\nSQL: SELECT count(*) FROM lalo.tpch.nation\n"),
    )
    .expect("doc edit");
    assert!(lalo.retrieval.wait_for_update(n, Duration::from_secs(60)).await, "the edit was picked up");
    let stats = lalo.retrieval.last_stats().expect("stats");
    // The nation table and its columns' descriptions changed (the file replaced the built-in
    // doc), plus the new example: a handful of documents, not the whole catalog.
    assert!(stats.written > 0 && stats.written < 10, "{stats:?}");
    assert!(stats.documents > 50, "{stats:?}");
    let hits = search(&lalo, "admin", "lalo", &format!("{word} remarks")).await;
    assert!(hits.first().is_some_and(|h| h.doc.column == "n_comment" && h.doc.text.contains(word)), "{:?}", names(&hits));
    let hits = search(&lalo, "admin", "lalo", "how many nations are there").await;
    assert!(hits.iter().any(|h| h.doc.kind == Kind::Example), "{:?}", names(&hits));
}

/// A table created upstream is indexed, with its values, after REFRESH UPSTREAM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_upstream_indexes_new_tables_and_values() {
    let pg = PgCluster::start().await;
    pg.psql("postgres", "CREATE DATABASE depot").await;
    pg.psql("depot", "CREATE TABLE item (id int, kind text); INSERT INTO item VALUES (1, 'gadget')").await;
    let (s, _c) = crate::upstream::start_with_upstreams(&[("depot".into(), pg.url("depot"))]).await;
    let lalo = s.running.lalo.clone();
    built(&lalo).await;
    assert!(!search(&lalo, "admin", "depot", "sprocket").await.iter().any(|h| h.doc.text.contains("sprocket")));
    pg.psql("depot", "CREATE TABLE part (id int, shape text); INSERT INTO part VALUES (1, 'sprocket'), (2, 'washer')").await;
    let n = lalo.retrieval.updates();
    let c = s.connect_db("admin", "depot").await;
    c.simple_query("REFRESH UPSTREAM depot").await.expect("refresh");
    assert!(lalo.retrieval.wait_for_update(n, Duration::from_secs(60)).await, "the refresh was picked up");
    let hits = search(&lalo, "admin", "depot", "which parts are sprocket shaped").await;
    assert!(
        hits.iter().take(3).any(|h| h.doc.kind == Kind::Value && h.doc.table == "part" && h.doc.detail == "sprocket"),
        "{:?}",
        names(&hits)
    );
    let stats = lalo.retrieval.last_stats().expect("stats");
    assert!(stats.written <= 6, "only the new table's documents were written: {stats:?}");
}
