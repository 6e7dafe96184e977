//! The `llm` drafter against a scripted OpenAI-compatible server on 127.0.0.1: repair with the
//! error fed back, prose replies (42000), denied columns (42501, never retried around), a server
//! that never answers (timeout; lalo keeps serving), the token budget (54000), and a prompt that
//! holds only what the caller may read.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::common::{self, sqlstate, TestServer};

/// One scripted answer.
pub enum Canned {
    Reply(Value),
    /// Accept the request and never answer.
    Hang,
}

/// The scripted server: answers from a queue and keeps every request body it received.
#[derive(Default)]
pub struct Script {
    replies: Mutex<VecDeque<Canned>>,
    requests: Mutex<Vec<Value>>,
    /// Texts the embeddings route was asked to embed.
    pub embedded: Mutex<Vec<String>>,
}

impl Script {
    pub fn push(&self, c: Canned) {
        self.replies.lock().expect("script lock").push_back(c);
    }

    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().expect("script lock").clone()
    }
}

async fn chat(State(script): State<Arc<Script>>, Json(body): Json<Value>) -> Response {
    script.requests.lock().expect("script lock").push(body);
    let next = script.replies.lock().expect("script lock").pop_front();
    match next {
        Some(Canned::Reply(v)) => Json(v).into_response(),
        Some(Canned::Hang) => std::future::pending::<Response>().await,
        None => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "no reply queued").into_response(),
    }
}

/// An embeddings endpoint: a deterministic 16-dimensional vector per input (letters counted
/// into buckets), so related texts are near and the remote path of retrieval is exercised.
async fn embeddings(State(script): State<Arc<Script>>, Json(body): Json<Value>) -> Response {
    let inputs: Vec<String> = match &body["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().map(|v| v.as_str().unwrap_or("").to_string()).collect(),
        _ => vec![],
    };
    script.embedded.lock().expect("script lock").extend(inputs.iter().cloned());
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut v = [0.0f32; 16];
            for c in t.to_lowercase().chars().filter(|c| c.is_alphanumeric()) {
                v[(c as usize) % 16] += 1.0;
            }
            v[0] += 0.001;
            json!({"object": "embedding", "index": i, "embedding": v.to_vec()})
        })
        .collect();
    Json(json!({"object": "list", "data": data, "model": "scripted-embed", "usage": {"prompt_tokens": 1, "total_tokens": 1}}))
        .into_response()
}

/// Start the scripted server; returns its `/v1` base URL.
pub async fn scripted() -> (Arc<Script>, String) {
    let script = Arc::new(Script::default());
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/embeddings", post(embeddings))
        .with_state(script.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (script, format!("http://{addr}/v1"))
}

/// A chat completion whose message is `content`, using 15 tokens.
pub fn completion(content: &str) -> Canned {
    Canned::Reply(json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "scripted",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    }))
}

pub fn sql_reply(sql: &str) -> Canned {
    completion(&json!({"sql": sql, "tables": ["lalo.tpch.nation"]}).to_string())
}

pub async fn start_llm(base: &str, timeout_ms: u64, budget: u64) -> TestServer {
    let base = base.to_string();
    common::start_with(move |cfg| {
        cfg.planner.drafter = lalo::config::DrafterKind::Llm;
        cfg.planner.llm_base_url = Some(base);
        cfg.planner.llm_model = Some("scripted".into());
        cfg.planner.llm_api_key_env = None;
        cfg.planner.llm_timeout_ms = timeout_ms;
        cfg.planner.llm_token_budget_per_hour = budget;
    })
    .await
}

use crate::common::text_rows as rows;

/// The text of every message of a recorded request.
pub fn messages(req: &Value) -> Vec<String> {
    req["messages"]
        .as_array()
        .map(|a| a.iter().map(|m| m["content"].as_str().unwrap_or("").to_string()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn llm_repairs_bad_sql_with_the_error_fed_back() {
    let (script, base) = scripted().await;
    script.push(sql_reply("SELECT n_nam FROM lalo.tpch.nation WHERE n_regionkey = 1 ORDER BY n_name"));
    script.push(sql_reply("SELECT n_name FROM lalo.tpch.nation WHERE n_regionkey = 1 ORDER BY n_name"));
    let s = start_llm(&base, 20_000, 0).await;
    let c = s.connect("admin").await;
    let got = rows(&c.simple_query("ASK which nations are in region 1").await.expect("ask"));
    let want = rows(&c.simple_query("SELECT n_name FROM lalo.tpch.nation WHERE n_regionkey = 1 ORDER BY n_name").await.expect("sql"));
    assert!(!want.is_empty());
    assert_eq!(got, want);

    let reqs = script.requests();
    assert_eq!(reqs.len(), 2, "one draft and one repair");
    assert_eq!(reqs[0]["model"], "scripted");
    assert_eq!(reqs[0]["response_format"]["type"], "json_object");
    let first = messages(&reqs[0]);
    assert!(first.last().is_some_and(|m| m.contains("which nations are in region 1")), "{first:?}");
    let repair = messages(&reqs[1]);
    assert_eq!(repair.len(), 4, "system, question, the failed draft, the error: {repair:?}");
    assert!(repair[2].contains("n_nam"), "the failed draft is sent back: {repair:?}");
    // The error lalo gives for that SQL is what the model is told.
    let bad = "SELECT n_nam FROM lalo.tpch.nation WHERE n_regionkey = 1 ORDER BY n_name";
    let e = c.simple_query(bad).await.expect_err("unknown column");
    let text = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_default();
    assert!(text.contains("n_nam"), "{text}");
    assert!(repair[3].contains(text.lines().next().unwrap_or("")), "the error text is fed back: {repair:?} vs {text}");
}

#[tokio::test]
async fn llm_prose_reply_is_declined_with_42000() {
    let (script, base) = scripted().await;
    script.push(completion("Sure! To list the nations you would run SELECT * FROM nation."));
    let s = start_llm(&base, 20_000, 0).await;
    let c = s.connect("admin").await;
    let e = c.simple_query("ASK list the nations").await.expect_err("declined");
    assert_eq!(sqlstate(&e), "42000", "{e:?}");
    let msg = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_default();
    assert!(msg.contains("reply was unusable"), "{msg}");
    assert!(!msg.contains("Sure!"), "the reply's text is not echoed: {msg}");
    assert_eq!(script.requests().len(), 1, "a decline is not repaired");
}

#[tokio::test]
async fn llm_sql_reading_a_denied_column_is_refused_and_not_retried() {
    let (script, base) = scripted().await;
    script.push(sql_reply("SELECT c_name, c_acctbal FROM lalo.tpch.customer ORDER BY c_acctbal DESC LIMIT 5"));
    script.push(sql_reply("SELECT c_name FROM lalo.tpch.customer LIMIT 5"));
    let s = start_llm(&base, 20_000, 0).await;
    let c = s.connect("intern").await;
    let e = c.simple_query("ASK top customers by balance").await.expect_err("refused");
    assert_eq!(sqlstate(&e), "42501", "{e:?}");
    assert_eq!(script.requests().len(), 1, "a policy refusal is never repaired around");
}

#[tokio::test]
async fn llm_several_statements_are_refused() {
    let (script, base) = scripted().await;
    script.push(sql_reply("SELECT 1; SELECT n_name FROM lalo.tpch.nation"));
    let s = start_llm(&base, 20_000, 0).await;
    let c = s.connect("admin").await;
    let e = c.simple_query("ASK list the nations").await.expect_err("refused");
    assert_eq!(sqlstate(&e), "42000", "{e:?}");
    assert!(e.as_db_error().is_some_and(|d| d.message().contains("several statements")), "{e:?}");
}

#[tokio::test]
async fn llm_timeout_is_an_error_and_lalo_keeps_serving() {
    let (script, base) = scripted().await;
    script.push(Canned::Hang);
    script.push(sql_reply("SELECT count(*) FROM lalo.tpch.nation"));
    let s = start_llm(&base, 300, 0).await;
    let c = s.connect("admin").await;
    let e = c.simple_query("ASK how many nations are there").await.expect_err("timed out");
    assert_eq!(sqlstate(&e), "57014", "{e:?}");
    assert!(e.as_db_error().is_some_and(|d| d.message().contains("did not answer within 300 ms")), "{e:?}");
    // The same connection and a new one still work, and the next question is answered.
    assert_eq!(rows(&c.simple_query("SELECT 1").await.expect("sql after timeout")), vec![vec!["1".to_string()]]);
    let c2 = s.connect("admin").await;
    let got = rows(&c2.simple_query("ASK how many nations are there").await.expect("ask after timeout"));
    assert_eq!(got, vec![vec!["25".to_string()]]);
}

#[tokio::test]
async fn llm_token_budget_per_hour_gives_54000() {
    let (script, base) = scripted().await;
    script.push(sql_reply("SELECT count(*) FROM lalo.tpch.nation"));
    script.push(sql_reply("SELECT count(*) FROM lalo.tpch.nation"));
    let s = start_llm(&base, 20_000, 10).await;
    let c = s.connect("admin").await;
    c.simple_query("ASK how many nations are there").await.expect("within budget");
    let e = c.simple_query("ASK how many nations are there").await.expect_err("over budget");
    assert_eq!(sqlstate(&e), "54000", "{e:?}");
    assert_eq!(script.requests().len(), 1, "no call once the budget is spent");
    let other = s.connect("analyst").await;
    other.simple_query("ASK how many nations are there").await.expect("budgets are per user");
}

#[tokio::test]
async fn llm_prompt_holds_only_what_the_caller_may_read() {
    let (script, base) = scripted().await;
    script.push(completion(r#"{"cannot_answer": "the balance column is not in the schema"}"#));
    let s = start_llm(&base, 20_000, 0).await;
    let c = s.connect("intern").await;
    let e = c.simple_query("ASK what is the average account balance of customers").await.expect_err("declined");
    assert_eq!(sqlstate(&e), "42000", "{e:?}");
    let reqs = script.requests();
    assert_eq!(reqs.len(), 1);
    let sent = reqs[0].to_string();
    assert!(sent.contains("lalo.tpch.customer") && sent.contains("c_name"), "the context was sent: {sent}");
    assert!(!sent.contains("c_acctbal"), "a denied column never reaches the prompt");
    // The dialect's hints and its verified examples the caller may run are part of it.
    assert!(sent.contains("ILIKE"), "prompt hints: {sent}");
    assert!(sent.contains("How many orders were placed in 1995?"), "examples: {sent}");
}
