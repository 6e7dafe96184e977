//! `lalo ask "question"`: one question through the same pipeline as `ASK`, printed for a terminal.

use std::process::ExitCode;
use std::time::Duration;

use futures::StreamExt;
use lalo::pipeline::Outcome;
use lalo::session::EntryPoint;

/// Answer `question` as `user` in `database` and print the SQL, decisions and rows.
pub async fn run(cfg: lalo::Config, user: Option<String>, database: &str, question: &str) -> anyhow::Result<ExitCode> {
    let user = match user.or_else(|| cfg.users.first().map(|u| u.name.clone())) {
        Some(u) => u,
        None => anyhow::bail!("no users in the config; pass --user"),
    };
    let lalo = lalo::Lalo::start(cfg).await?;
    // Upstreams are discovered in the background: give them a moment before reading the schema.
    for _ in 0..40 {
        if lalo.readiness().ready {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The retrieval index builds in the background; one question is worth waiting for it briefly.
    if lalo.config.planner.retrieval_index {
        lalo.retrieval.wait_for_update(0, Duration::from_secs(30)).await;
    }
    let session = lalo.open_session(&user, database, "cli", EntryPoint::Cli)?;
    let input = format!("ASK {question}");
    match lalo.answer(&session, question, &input, Default::default()).await {
        Ok(a) => {
            println!("SQL: {}", a.sql);
            println!("decision: {}", a.decision);
            for r in &a.rules {
                println!("policy applied: {r}");
            }
            let Outcome::Rows { mut rows, .. } = a.outcome else { return Ok(ExitCode::SUCCESS) };
            let mut batches = vec![];
            while let Some(b) = rows.next().await {
                batches.push(b?);
            }
            let n: usize = batches.iter().map(|b| b.num_rows()).sum();
            println!("{}", datafusion::arrow::util::pretty::pretty_format_batches(&batches)?);
            println!("({n} row{})", if n == 1 { "" } else { "s" });
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("ERROR {}: {e}", e.sqlstate());
            if let Some(h) = e.hint() {
                println!("HINT: {h}");
            }
            Ok(ExitCode::FAILURE)
        }
    }
}
