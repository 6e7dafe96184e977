//! The `lalo` command line: serve, check, mcp, ask, eval, audit verify.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod ask;

#[derive(Parser)]
#[command(name = "lalo", version, about = "PostgreSQL-wire data gateway: SQL and questions, governed and audited")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the gateway (pgwire and HTTP).
    Serve {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Load config, policies and catalog; report every problem.
    Check {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// MCP server on stdio, acting as one lalo user.
    Mcp {
        #[arg(long)]
        config: Option<PathBuf>,
        /// The lalo user whose rights the agent gets.
        #[arg(long)]
        user: String,
    },
    /// Ask one question: print the SQL, the policy decisions and the rows.
    Ask {
        #[arg(long)]
        config: Option<PathBuf>,
        /// The lalo user whose rights apply (default: the first user of the config).
        #[arg(long)]
        user: Option<String>,
        /// The database to ask about (default: the embedded one).
        #[arg(long, default_value = "")]
        database: String,
        question: String,
    },
    /// Score the NL pipeline on a question corpus (defog format) against PostgreSQL.
    Eval {
        /// Questions CSV: question, query (gold SQL), db_name, query_category.
        #[arg(long)]
        questions: PathBuf,
        /// Corpus data: DIR/<db>/<db>.sql and DIR/<db>/<db>.json.
        #[arg(long)]
        data: PathBuf,
        /// Questions the schema cannot answer (should be declined).
        #[arg(long)]
        unanswerable: Option<PathBuf>,
        /// A PostgreSQL server to load into; without it a throwaway cluster is started.
        #[arg(long)]
        pg_url: Option<String>,
        /// rules (built in) or llm (the OpenAI-compatible endpoint below).
        #[arg(long, default_value = "rules")]
        drafter: String,
        /// For --drafter llm: the endpoint's base URL (…/v1), model and API key variable.
        #[arg(long)]
        llm_base_url: Option<String>,
        #[arg(long)]
        llm_model: Option<String>,
        #[arg(long)]
        llm_api_key_env: Option<String>,
        /// The HTML report (default: next to --out, .html).
        #[arg(long)]
        html: Option<PathBuf>,
        /// Per-question results as JSON lines.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Databases held out from development, reported apart from the others (a,b,c).
        #[arg(long, value_delimiter = ',')]
        holdout_dbs: Vec<String>,
        /// Ask the held-out databases' questions of renamed copies (other naming habits, schema app).
        #[arg(long)]
        holdout_restyle: bool,
    },
    /// Audit trail tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Personal data tools.
    Pii {
        #[command(subcommand)]
        command: PiiCommand,
    },
    /// A Ballista scheduler or executor with lalo's functions, for `[engine] distributed = "df://..."`.
    Ballista {
        #[command(subcommand)]
        command: BallistaCommand,
    },
}

#[derive(Subcommand)]
enum BallistaCommand {
    /// The scheduler lalo sends governed plans to; executors pull their tasks from it.
    Scheduler {
        #[arg(long, default_value = "0.0.0.0:50050")]
        bind: String,
    },
    /// An executor: runs the scheduler's tasks, serves their results over Arrow Flight.
    Executor {
        /// The scheduler, host:port.
        #[arg(long, default_value = "localhost:50050")]
        scheduler: String,
        #[arg(long, default_value = "0.0.0.0")]
        bind_host: String,
        /// The name lalo and the other executors reach this one by (default: its hostname).
        #[arg(long)]
        external_host: Option<String>,
        /// Arrow Flight port (results and shuffle reads).
        #[arg(long, default_value_t = 50051)]
        port: u16,
        #[arg(long, default_value_t = 50052)]
        grpc_port: u16,
        /// Tasks at once (default: the machine's cores).
        #[arg(long, default_value_t = 0)]
        tasks: usize,
        /// Where shuffle files go (default: a temporary directory).
        #[arg(long)]
        work_dir: Option<String>,
    },
}

#[derive(Subcommand)]
enum PiiCommand {
    /// Sample every table (embedded and upstream), classify its columns (email, phone, national
    /// ids, payment cards, IBANs, IP addresses, dates of birth, person names) and print them with
    /// suggested mask rules.
    Scan {
        #[arg(long)]
        config: Option<PathBuf>,
        /// JSON lines instead of the table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify the audit trail (every segment, in order, and its head); names the first broken
    /// line. A keyed trail needs its key: from the config's `audit_key_env`, or `--key-env`.
    Verify {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Audit log path (default: from the config).
        #[arg(long)]
        log: Option<PathBuf>,
        /// The environment variable holding the audit key (default: the config's audit_key_env).
        #[arg(long)]
        key_env: Option<String>,
    },
}

/// mimalloc instead of glibc's allocator: a statement on the direct lane makes a few dozen small
/// allocations, and under many clients glibc's (arena locks, consolidation) showed as a tenth of
/// lalo's own time in profiles of `bench/pgbench`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_decommits` in mimalloc.h (the same place in its v2 and v3 enums).
const MI_OPTION_PURGE_DECOMMITS: std::os::raw::c_int = 5;

/// Memory a statement frees goes back to the kernel with MADV_FREE rather than MADV_DONTNEED.
/// mimalloc's default gives freed memory back a second after a statement ends; the next
/// statement faults the same pages in again and the kernel zeroes each one: in profiles of
/// `bench/tpch`, page zeroing took an eighth of lalo's CPU, and the suite's CPU fell by a tenth
/// without it. MADV_FREE leaves the pages mapped: reused at no cost, and still taken back by the
/// kernel when it runs short of memory (so lalo's resident size stays at its peak until the
/// kernel wants the pages: not a leak). MIMALLOC_PURGE_DECOMMITS in the environment still wins.
fn tune_allocator() {
    // mimalloc reads its options' names in any case, and this one also by its former name.
    let named = |k: &std::ffi::OsStr| k.to_str().is_some_and(|k| ["MIMALLOC_PURGE_DECOMMITS", "MIMALLOC_RESET_DECOMMITS"].iter().any(|n| k.eq_ignore_ascii_case(n)));
    if !std::env::vars_os().any(|(k, _)| named(&k)) {
        // SAFETY: sets one integer option, before any other thread exists.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DECOMMITS, 0) };
    }
}

fn main() -> ExitCode {
    // Before the runtime's threads start: mimalloc's option setters are not thread safe.
    tune_allocator();
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(serve_cli()),
        Err(e) => {
            eprintln!("lalo: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve_cli() -> ExitCode {
    // Logs go to stderr (stdout carries the MCP protocol in `lalo mcp`); spans over OTLP when
    // OTEL_EXPORTER_OTLP_ENDPOINT is set.
    let telemetry = lalo::telemetry::init();
    let cli = Cli::parse();
    let code = match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lalo: {e:#}");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown().await;
    code
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve { config } => {
            let cfg = lalo::Config::load(config.as_deref())?;
            let running = lalo::runtime::start(cfg).await?;
            println!("lalo listening on {} (pgwire) and {} (http)", running.pg_addr, running.http_addr);
            let signal = lalo::shutdown::signalled().await?;
            let grace = std::time::Duration::from_millis(running.lalo.config.server.shutdown_grace_ms);
            tracing::info!(signal, ?grace, "shutting down");
            running.shutdown(grace).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Mcp { config, user } => {
            use rmcp::ServiceExt;
            let cfg = lalo::Config::load(config.as_deref())?;
            let lalo = lalo::Lalo::start(cfg).await?;
            if lalo.users.get(&user).is_none() {
                anyhow::bail!("unknown user {user}");
            }
            let server = lalo::mcp::LaloMcp::new(lalo, Some(user)).serve(rmcp::transport::stdio()).await?;
            server.waiting().await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ask { config, user, database, question } => {
            let cfg = lalo::Config::load(config.as_deref())?;
            ask::run(cfg, user, &database, &question).await
        }
        Command::Eval { questions, data, unanswerable, pg_url, drafter, llm_base_url, llm_model, llm_api_key_env, html, out, holdout_dbs, holdout_restyle } => {
            let opts = lalo::eval::EvalOptions {
                questions,
                data,
                unanswerable,
                pg_url,
                drafter,
                out,
                holdout: holdout_dbs,
                restyle: holdout_restyle,
                html,
                llm_base_url,
                llm_model,
                llm_api_key_env,
            };
            let report = lalo::eval::run(&opts).await?;
            println!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { config } => {
            let problems = lalo::check::check(config.as_deref()).await;
            if problems.is_empty() {
                println!("ok: config, policies, dialects and catalog load cleanly");
                Ok(ExitCode::SUCCESS)
            } else {
                for p in &problems {
                    println!("{p}");
                }
                println!("{} problem(s)", problems.len());
                Ok(ExitCode::FAILURE)
            }
        }
        Command::Pii { command: PiiCommand::Scan { config, json } } => {
            let cfg = lalo::Config::load(config.as_deref())?;
            let lalo = lalo::Lalo::start(cfg).await?;
            let columns = lalo.classify_pii().await?;
            if json {
                for c in &columns {
                    println!("{}", serde_json::to_string(c)?);
                }
            } else {
                print!("{}", lalo::governance::pii::report::render(&columns));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Ballista { command: BallistaCommand::Scheduler { bind } } => {
            lalo::distributed::processes::run_scheduler(&bind).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ballista { command: BallistaCommand::Executor { scheduler, bind_host, external_host, port, grpc_port, tasks, work_dir } } => {
            let (host, sport) = scheduler.rsplit_once(':').ok_or_else(|| anyhow::anyhow!("--scheduler wants host:port"))?;
            let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            let opts = lalo::distributed::processes::ExecutorOptions {
                scheduler_host: host.to_string(),
                scheduler_port: sport.parse()?,
                bind_host,
                external_host,
                port,
                grpc_port,
                tasks: if tasks == 0 { cores } else { tasks },
                work_dir,
            };
            lalo::distributed::processes::run_executor(opts).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit { command: AuditCommand::Verify { config, log, key_env } } => {
            use lalo::governance::audit::{verify, Key, Verification};
            // The config gives the log's path and the key's variable unless both are given.
            let cfg = if config.is_some() || log.is_none() { Some(lalo::Config::load(config.as_deref())?) } else { None };
            let path = match (log, &cfg) {
                (Some(p), _) => p,
                (None, Some(cfg)) => cfg.resolve(&cfg.governance.audit_log),
                (None, None) => return Err(lalo::LaloError::Config("no audit log: give --log or --config".into()).into()),
            };
            let env = key_env.or_else(|| cfg.as_ref().map(|c| c.governance.audit_key_env.clone())).unwrap_or_default();
            let key = match env.as_str() {
                "" => Key::default(),
                name => match std::env::var(name) {
                    Ok(v) if !v.is_empty() => Key::new(Some(v.into_bytes())),
                    _ => {
                        println!("the audit key's variable {name} is not set");
                        return Ok(ExitCode::FAILURE);
                    }
                },
            };
            match verify(&path, &key)? {
                Verification::Intact { lines, segments, notes } => {
                    println!("ok: {lines} audit records in {segments} segment(s), chain intact ({})", path.display());
                    for n in notes {
                        println!("note: {n}");
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Verification::Broken { line, file, reason } => {
                    println!("broken at line {line}: {reason} ({})", file.display());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
