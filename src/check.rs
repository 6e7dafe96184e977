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
}
