//! The `llm` drafter (`[planner] drafter = "llm"`): asks any OpenAI-compatible chat-completions
//! endpoint for `{"sql": ..}` or `{"cannot_answer": ..}` given the caller's entitled context
//! (prompt.rs). Replies are untrusted: they go through validate and govern like every draft, a
//! reply that is not the JSON asked for is a decline, and a client never sees the reply's text.
//! Each call has a timeout and one retry on transport errors; tokens count against a per-user
//! hourly budget.

use crate::nl::Host;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::middleware::ReqwestService;
use async_openai::Client;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::config::PlannerConfig;
use crate::engine::dialect::{DialectProfile, Example};
use crate::error::LaloError;
use crate::nl::prompt::{self, Reply};
use crate::nl::retrieve::Retrieved;
use crate::nl::{Drafted, SchemaContext};
use crate::session::Session;

/// The budget window.
const HOUR: Duration = Duration::from_secs(3600);
/// Few-shot examples per prompt.
const MAX_EXAMPLES: usize = 3;
/// Pause before the one retry after a transport error.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// The gateway's `llm` drafter, built on first use from `[planner]`.
#[derive(Default)]
pub struct LlmState {
    drafter: OnceLock<Result<Arc<LlmDrafter>, LaloError>>,
}

impl std::fmt::Debug for LlmState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmState").finish_non_exhaustive()
    }
}

impl LlmState {
    /// Tokens each user spent this hour (empty when the drafter was never built).
    pub fn usage(&self) -> Vec<(String, u64)> {
        match self.drafter.get() {
            Some(Ok(d)) => d.usage(),
            _ => vec![],
        }
    }

    /// The drafter for `cfg` (a configuration error is kept and returned on every use).
    pub fn get(&self, cfg: &PlannerConfig, dialects: &std::path::Path) -> Result<Arc<LlmDrafter>, LaloError> {
        self.drafter.get_or_init(|| LlmDrafter::new(cfg, dialects).map(Arc::new)).clone()
    }
}

/// A chat-completions client with its model, limits and the tokens each user spent this hour.
pub struct LlmDrafter {
    client: Client<OpenAIConfig>,
    model: String,
    timeout: Duration,
    budget_per_hour: u64,
    /// user → (start of the current window, tokens spent in it)
    spent: Mutex<HashMap<String, (Instant, u64)>>,
    /// The PostgreSQL profile, for databases that are not an upstream with a profile of their own.
    postgres: DialectProfile,
}

impl LlmDrafter {
    /// Build the client: the base URL and model are required, the API key is optional (local servers).
    pub fn new(cfg: &PlannerConfig, dialects: &std::path::Path) -> Result<LlmDrafter, LaloError> {
        let base = cfg.llm_base_url.as_deref().filter(|u| !u.trim().is_empty());
        let base = base.ok_or_else(|| LaloError::Config("[planner] drafter = \"llm\" needs llm_base_url".into()))?;
        let model = cfg.llm_model.clone().filter(|m| !m.trim().is_empty());
        let model = model.ok_or_else(|| LaloError::Config("[planner] drafter = \"llm\" needs llm_model".into()))?;
        let key = match cfg.llm_api_key_env.as_deref().filter(|v| !v.is_empty()) {
            Some(var) => std::env::var(var)
                .map_err(|_| LaloError::Config(format!("[planner] llm_api_key_env names {var}, which is not set")))?,
            None => String::new(),
        };
        // reqwest's rustls needs a process-wide crypto provider: the same ring provider pgwire TLS uses.
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
        let config = OpenAIConfig::new().with_api_base(base.trim_end_matches('/')).with_api_key(key);
        // No retry layer underneath: lalo retries transport errors once, itself, within its timeout.
        let client = Client::with_config(config).with_http_service(ReqwestService::default());
        Ok(LlmDrafter {
            client,
            model,
            timeout: Duration::from_millis(cfg.llm_timeout_ms.max(1)),
            budget_per_hour: cfg.llm_token_budget_per_hour,
            spent: Mutex::new(HashMap::new()),
            postgres: DialectProfile::load(dialects, "postgres")?,
        })
    }

    /// Refuse (54000) when `user` has used up this hour's tokens.
    fn check_budget(&self, user: &str) -> Result<(), LaloError> {
        if self.budget_per_hour == 0 {
            return Ok(());
        }
        let mut spent = self.spent.lock();
        let entry = spent.entry(user.to_string()).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= HOUR {
            *entry = (Instant::now(), 0);
        }
        if entry.1 >= self.budget_per_hour {
            return Err(LaloError::RateLimited(format!(
                "question budget exceeded: user \"{user}\" used {} of {} language-model tokens this hour",
                entry.1, self.budget_per_hour
            )));
        }
        Ok(())
    }

    /// Count tokens against the user's hour (kept with no budget too: the budgets view shows them).
    fn spend(&self, user: &str, tokens: u64) {
        if tokens == 0 {
            return;
        }
        let mut spent = self.spent.lock();
        let entry = spent.entry(user.to_string()).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= HOUR {
            *entry = (Instant::now(), 0);
        }
        entry.1 = entry.1.saturating_add(tokens);
    }

    /// Tokens each user spent in their current hour.
    pub fn usage(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> =
            self.spent.lock().iter().filter(|(_, (at, _))| at.elapsed() < HOUR).map(|(u, (_, n))| (u.clone(), *n)).collect();
        v.sort();
        v
    }

    /// One chat completion within the timeout; a transport error is retried once.
    async fn complete(&self, body: &Value) -> Result<Value, LaloError> {
        let mut retried = false;
        loop {
            let chat = self.client.chat();
            match tokio::time::timeout(self.timeout, chat.create_byot::<_, Value>(body.clone())).await {
                Err(_) => {
                    return Err(LaloError::TimedOut(format!(
                        "the language model did not answer within {} ms",
                        self.timeout.as_millis()
                    )))
                }
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(OpenAIError::Reqwest(e))) if !retried => {
                    tracing::warn!(error = %e, "language model request failed; retrying once");
                    retried = true;
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "language model request failed");
                    let message = match e {
                        OpenAIError::Reqwest(_) => "the language model service could not be reached",
                        OpenAIError::ApiError(_) => "the language model service answered with an error",
                        OpenAIError::JSONDeserialize(..) => "the language model service answered with something other than JSON",
                        _ => "the language model request failed",
                    };
                    return Err(LaloError::UpstreamLost { upstream: "llm".into(), message: message.into() });
                }
            }
        }
    }
}

/// Draft SQL for `question` over the caller's context `ctx`. `previous` is the last draft's SQL
/// and the error it met, for a repair. Errors are the call's (timeout, transport, budget).
pub async fn draft(
    lalo: &dyn Host,
    session: &Session,
    retrieved: &Retrieved,
    ctx: &SchemaContext,
    question: &str,
    previous: Option<(&str, &str)>,
) -> Result<(Drafted, Vec<String>), LaloError> {
    let dialects = lalo.config().resolve(std::path::Path::new("dialects"));
    let llm = lalo.llm().get(&lalo.config().planner, &dialects)?;
    llm.check_budget(&session.user)?;

    let upstreams = lalo.engine().upstreams();
    let profile = upstreams.get(&session.database).map(|u| &u.profile).unwrap_or(&llm.postgres);
    // The index's examples first (found for this question, already checked as the caller), then
    // the dialect's own that the caller may run, up to a few.
    let mut examples: Vec<&Example> = retrieved.examples.iter().take(MAX_EXAMPLES).collect();
    if examples.len() < MAX_EXAMPLES {
        for e in entitled_examples(lalo, session, &profile.examples).await {
            if examples.len() < MAX_EXAMPLES && !examples.iter().any(|x| x.sql == e.sql) {
                examples.push(e);
            }
        }
    }
    let mut firewall = crate::nl::firewall::Report::default();
    let samples = prompt::Samples::parse(&lalo.config().planner.prompt_samples);
    let user = prompt::user(question, &session.database, ctx, &retrieved.documents, &examples, samples, &mut firewall);
    let mut messages = vec![
        json!({"role": "system", "content": prompt::system(&profile.prompt_hints)}),
        json!({"role": "user", "content": user}),
    ];
    if let Some((sql, error)) = previous {
        messages.push(json!({"role": "assistant", "content": json!({"sql": sql}).to_string()}));
        messages.push(json!({"role": "user", "content": prompt::repair(error, &mut firewall)}));
    }
    let body = json!({
        "model": llm.model,
        "messages": messages,
        "temperature": 0,
        "response_format": {"type": "json_object"},
        "stream": false,
    });
    let began = std::time::Instant::now();
    let reply = crate::telemetry::stage("llm", Some(&llm.model), async {
        let reply = llm.complete(&body).await;
        let usage = |k: &str| reply.as_ref().ok().and_then(|r| r.pointer(&format!("/usage/{k}"))).and_then(Value::as_u64).unwrap_or(0);
        let (prompt, completion) = (usage("prompt_tokens"), usage("completion_tokens"));
        crate::telemetry::record_tokens(prompt, completion);
        crate::metrics::llm_call(reply.is_ok(), began.elapsed().as_secs_f64(), prompt, completion);
        reply
    })
    .await?;
    let tokens = reply.pointer("/usage/total_tokens").and_then(Value::as_u64).unwrap_or(0);
    llm.spend(&session.user, tokens);

    let removed = firewall.removed;
    let Some(content) = reply.pointer("/choices/0/message/content").and_then(Value::as_str) else {
        return Ok((Drafted::Declined { reason: "the language model's reply held no message".into() }, removed));
    };
    let drafted = match prompt::parse(content) {
        Reply::Sql { sql, tables } => match one_query(&sql) {
            Ok(()) => Drafted::Sql { sql, tables, confidence: 0.0, explanation: format!("model {}, {tokens} tokens", llm.model) },
            Err(reason) => Drafted::Declined { reason: reason.into() },
        },
        Reply::CannotAnswer(reason) => {
            // The model's words stay in the log; the client hears lalo's.
            tracing::debug!(%reason, "the language model declined");
            Drafted::Declined { reason: "the language model found no way to answer it from the tables you can read".into() }
        }
        Reply::Invalid(why) => Drafted::Declined { reason: format!("the language model's reply was unusable ({why})") },
    };
    Ok((drafted, removed))
}

/// Refuse replies that hold several statements or something other than a query. SQL that does not
/// parse is left to validate, whose error feeds a repair.
fn one_query(sql: &str) -> Result<(), &'static str> {
    match Parser::parse_sql(&PostgreSqlDialect {}, sql) {
        Ok(stmts) if stmts.len() > 1 => Err("the language model wrote several statements; a question runs exactly one query"),
        Ok(stmts) if stmts.iter().any(|s| !matches!(s, Statement::Query(_))) => {
            Err("the language model wrote something other than a read-only query")
        }
        _ => Ok(()),
    }
}

/// The dialect's verified examples whose SQL the caller could run: each is planned and governed
/// as the caller, so an example never shows a denied table or column.
async fn entitled_examples<'a>(lalo: &dyn Host, session: &Session, examples: &'a [Example]) -> Vec<&'a Example> {
    let mut out = vec![];
    for e in examples {
        let Ok(mut stmts) = Parser::parse_sql(&PostgreSqlDialect {}, &e.sql) else { continue };
        let (Some(stmt), true) = (stmts.pop(), stmts.is_empty()) else { continue };
        let Ok(plan) = lalo.plan(session, &stmt).await else { continue };
        if lalo.govern(session, plan).await.is_ok() {
            out.push(e);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drafter(budget: u64) -> LlmDrafter {
        let cfg = PlannerConfig {
            drafter: crate::config::DrafterKind::Llm,
            llm_base_url: Some("http://127.0.0.1:9/v1".into()),
            llm_model: Some("m".into()),
            llm_token_budget_per_hour: budget,
            ..Default::default()
        };
        LlmDrafter::new(&cfg, std::path::Path::new("dialects")).expect("drafter")
    }

    #[test]
    fn the_budget_counts_tokens_per_user() {
        let d = drafter(100);
        assert!(d.check_budget("a").is_ok());
        d.spend("a", 60);
        assert!(d.check_budget("a").is_ok());
        d.spend("a", 60);
        let e = d.check_budget("a").expect_err("over budget");
        assert_eq!(e.sqlstate(), "54000");
        assert!(d.check_budget("b").is_ok(), "budgets are per user");
        let unlimited = drafter(0);
        unlimited.spend("a", 1_000_000);
        assert!(unlimited.check_budget("a").is_ok());
    }

    #[test]
    fn several_statements_or_writes_are_refused() {
        assert!(one_query("SELECT 1").is_ok());
        assert!(one_query("SELECT 1; SELECT 2").is_err());
        assert!(one_query("DELETE FROM t").is_err());
        assert!(one_query("SELEC oops").is_ok(), "left to validate and repair");
    }

    #[test]
    fn llm_needs_a_base_url_and_model() {
        let cfg = PlannerConfig { drafter: crate::config::DrafterKind::Llm, ..Default::default() };
        assert!(LlmDrafter::new(&cfg, std::path::Path::new("dialects")).is_err());
    }
}
