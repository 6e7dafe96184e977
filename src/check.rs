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
    let gov = match Governance::load(&cfg).await {
        Ok(g) => Some(g),
        Err(e) => {
            problems.push(e.to_string());
            None
        }
    };
    match Engine::build(&cfg).await {
        Ok(engine) => {
            if let Some(g) = gov {
                problems.extend(crate::governance::lint::lint(&g, &engine, &cfg).await);
            }
        }
        Err(e) => problems.push(e.to_string()),
    }
    problems
}
