//! `lalo check`: load everything a gateway needs and list every problem found.

use std::path::Path;

use crate::config::Config;
use crate::engine::Engine;
use crate::governance::Governance;

/// Every problem found, one line each; empty when all is well.
pub async fn check(config_path: Option<&Path>) -> Vec<String> {
    let mut problems = Vec::new();
    let cfg = match Config::load(config_path) {
        Ok(c) => c,
        Err(e) => return vec![e.to_string()],
    };
    if let Err(e) = crate::session::auth::Users::from_config(&cfg.users) {
        problems.push(e.to_string());
    }
    problems.extend(planner_problems(&cfg.planner));
    problems.extend(tls_problems(&cfg));
    problems.extend(mcp_problems(&cfg, |v| std::env::var(v).ok()));
    if let Err(e) = crate::distributed::Mode::parse(&cfg.engine.distributed) {
        problems.push(e.to_string());
    }
    match crate::engine::sources::Sources::load(&cfg.resolve(&cfg.catalog.dir)) {
        Ok(sources) => problems.extend(upstream_problems(&sources, |v| std::env::var(v).ok())),
        Err(e) => problems.push(e.to_string()),
    }
    let gov = match Governance::load(&cfg).await {
        Ok(g) => Some(g),
        Err(e) => {
            problems.push(e.to_string());
            None
        }
    };
    match Engine::build(&cfg, crate::governance::plan_rules()).await {
        Ok(engine) => {
            if let Some(g) = gov {
                problems.extend(crate::governance::lint::lint(&g, &engine, &cfg).await);
            }
        }
        Err(e) => problems.push(e.to_string()),
    }
    problems
}

/// `[server]`: TLS needs both files, readable, and a key that fits the certificate.
fn tls_problems(cfg: &Config) -> Vec<String> {
    let (cert, key) = match (&cfg.server.tls_cert, &cfg.server.tls_key) {
        (None, None) => {
            return if cfg.server.tls_required {
                vec!["server: tls_required = true needs tls_cert and tls_key".to_string()]
            } else {
                vec![]
            };
        }
        (Some(c), Some(k)) => (cfg.resolve(c), cfg.resolve(k)),
        _ => return vec!["server: give both tls_cert and tls_key, or neither".to_string()],
    };
    let mut out = Vec::new();
    for (what, path) in [("tls_cert", &cert), ("tls_key", &key)] {
        if let Err(e) = std::fs::read(path) {
            out.push(format!("server: {what} {} cannot be read: {e}", path.display()));
        }
    }
    if out.is_empty() {
        if let Err(e) = crate::server::tls_acceptor(&cert, &key) {
            out.push(format!("server: tls_cert/tls_key: {e}"));
        }
    }
    out
}

/// `[mcp] tokens`: each names a variable that is set and a user lalo knows.
fn mcp_problems(cfg: &Config, env: impl Fn(&str) -> Option<String>) -> Vec<String> {
    let mut out = Vec::new();
    for t in &cfg.mcp.tokens {
        if !cfg.users.iter().any(|u| u.name == t.user) {
            out.push(format!("mcp: token {} acts as user {:?}, who is not in [[users]]", t.token_env, t.user));
        }
        if env(&t.token_env).is_none_or(|v| v.is_empty()) {
            out.push(format!("mcp: token_env names {}, which is not set: that token is disabled", t.token_env));
        }
    }
    out
}

/// `catalog/sources.toml`: every upstream's `url_env` is set (lalo would start, and every
/// statement on that database would fail).
fn upstream_problems(sources: &crate::engine::sources::Sources, env: impl Fn(&str) -> Option<String>) -> Vec<String> {
    let mut out = Vec::new();
    for u in &sources.upstreams {
        if let Some(var) = &u.url_env {
            if env(var).is_none_or(|v| v.is_empty()) {
                out.push(format!("upstream {}: url_env names {var}, which is not set", u.name));
            }
        }
    }
    out
}

/// `[planner]`: a drafter lalo knows, and what the llm drafter needs to reach its endpoint.
fn planner_problems(p: &crate::config::PlannerConfig) -> Vec<String> {
    let mut out = Vec::new();
    match p.drafter {
        crate::config::DrafterKind::Rules => {}
        crate::config::DrafterKind::Llm => {
            if p.llm_base_url.as_deref().unwrap_or("").is_empty() {
                out.push("planner: drafter = \"llm\" needs llm_base_url".to_string());
            }
            if p.llm_model.as_deref().unwrap_or("").is_empty() {
                out.push("planner: drafter = \"llm\" needs llm_model".to_string());
            }
            if let Some(var) = p.llm_api_key_env.as_deref() {
                if std::env::var(var).is_err() {
                    out.push(format!("planner: llm_api_key_env names {var}, which is not set"));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planner_settings_are_checked() {
        let mut p = crate::config::PlannerConfig::default();
        assert!(planner_problems(&p).is_empty());
        p.drafter = crate::config::DrafterKind::Llm;
        assert_eq!(planner_problems(&p).len(), 2);
        p.llm_base_url = Some("http://127.0.0.1:11434/v1".into());
        p.llm_model = Some("m".into());
        p.llm_api_key_env = Some("LALO_TEST_SURELY_UNSET_KEY".into());
        assert_eq!(planner_problems(&p), vec!["planner: llm_api_key_env names LALO_TEST_SURELY_UNSET_KEY, which is not set"]);
        // A drafter lalo does not know is refused when the config is read, naming the choices.
        let e = crate::config::Config::from_toml("[planner]\ndrafter = \"magic\"\n", ".".into(), |_| None).unwrap_err();
        assert!(e.to_string().contains("unknown variant `magic`, expected `rules` or `llm`"), "{e}");
    }

    #[test]
    fn tokens_upstreams_and_tls_files_are_checked() {
        let cfg = Config::from_toml(
            "[[users]]\nname = \"ana\"\npassword = \"x\"\n[server]\ntls_cert = \"/nonexistent/cert.pem\"\ntls_key = \"/nonexistent/key.pem\"\n[mcp]\ntokens = [{ token_env = \"TOK_A\", user = \"ana\" }, { token_env = \"TOK_B\", user = \"bob\" }]\n",
            ".".into(),
            |_| None,
        )
        .unwrap();
        let mcp = mcp_problems(&cfg, |v| (v == "TOK_A" || v == "TOK_B").then(|| "t".to_string()));
        assert_eq!(mcp, vec!["mcp: token TOK_B acts as user \"bob\", who is not in [[users]]"]);
        assert_eq!(mcp_problems(&cfg, |_| None).len(), 3);
        let tls = tls_problems(&cfg);
        assert_eq!(tls.len(), 2, "{tls:?}");
        assert!(tls[0].contains("tls_cert /nonexistent/cert.pem cannot be read"), "{tls:?}");
        let sources: crate::engine::sources::Sources =
            toml::from_str("[[upstream]]\nname = \"sales\"\nkind = \"postgres\"\nurl_env = \"SALES_URL\"\n").unwrap();
        assert_eq!(upstream_problems(&sources, |_| None), vec!["upstream sales: url_env names SALES_URL, which is not set"]);
        assert!(upstream_problems(&sources, |_| Some("postgres://x".into())).is_empty());
    }
}
