//! DataFusion in-process on the TPC-H Parquet files lalo generated, with lalo's session settings.
//!
//! Usage: tpch-datafusion-runner --data DIR --queries DIR [--runs 3] [--warmup 1]
//!        [--results DIR] [--only q01,q05] [--serve]
//!
//! Registers `<DIR>/<table>.parquet` as `lalo.tpch.<table>` (the names lalo serves), runs every
//! `qNN.sql` in the queries directory `warmup` times untimed and `runs` times timed, each time
//! planning the SQL and collecting the whole result (`ctx.sql(..).collect()`), and prints one JSON
//! line per query: `{"query":"q01","rows":4,"times":[0.51,0.49,0.50],"error":null}` (seconds).
//! With `--results`, the last run's rows are written to `<DIR>/qNN.parquet` for the row check.
//!
//! With `--serve` it stays up like a server: it reads one query name per line on stdin, runs that
//! query once (the same context, so caches stay warm between runs, as in lalo) and answers with one
//! JSON line as above (`times` has the one run). bench/tpch/bench.py drives it this way so the engines
//! can take turns query by query.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use datafusion::catalog::MemorySchemaProvider;
use datafusion::error::{DataFusionError, Result};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

const TABLES: [&str; 8] =
    ["region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem"];

/// The settings lalo's `session_config` (src/engine/mod.rs) gives every session; everything else
/// (target partitions = number of cores, batch size, memory pool, optimizer) is DataFusion's default
/// in both.
fn session_config() -> SessionConfig {
    let mut cfg = SessionConfig::new()
        .with_default_catalog_and_schema("lalo", "public")
        .with_information_schema(false);
    cfg.options_mut().sql_parser.enable_ident_normalization = true;
    cfg.options_mut().sql_parser.dialect = datafusion::config::Dialect::PostgreSQL;
    cfg.options_mut().sql_parser.parse_float_as_decimal = true;
    cfg.options_mut().execution.time_zone = Some("+00:00".into());
    cfg
}

struct Args {
    data: PathBuf,
    queries: PathBuf,
    runs: usize,
    warmup: usize,
    results: Option<PathBuf>,
    only: Option<Vec<String>>,
    serve: bool,
}

fn parse_args() -> std::result::Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let (mut data, mut queries, mut results, mut only) = (None, None, None, None);
    let (mut runs, mut warmup, mut serve) = (3usize, 1usize, false);
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--data" => data = Some(PathBuf::from(val()?)),
            "--queries" => queries = Some(PathBuf::from(val()?)),
            "--results" => results = Some(PathBuf::from(val()?)),
            "--runs" => runs = val()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--warmup" => warmup = val()?.parse().map_err(|e| format!("--warmup: {e}"))?,
            "--only" => only = Some(val()?.split(',').map(|s| s.trim().to_string()).collect()),
            "--serve" => serve = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        data: data.ok_or("--data DIR is required")?,
        queries: queries.ok_or("--queries DIR is required")?,
        runs,
        warmup,
        results,
        only,
        serve,
    })
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

async fn run_query(
    ctx: &SessionContext,
    name: &str,
    sql: &str,
    args: &Args,
) -> Result<(usize, Vec<f64>)> {
    let mut times = Vec::with_capacity(args.runs);
    let mut rows = 0;
    for i in 0..args.warmup + args.runs {
        let t0 = Instant::now();
        let df = ctx.sql(sql).await?;
        let schema = df.schema().inner().clone();
        let batches = df.collect().await?;
        let secs = t0.elapsed().as_secs_f64();
        rows = batches.iter().map(|b| b.num_rows()).sum();
        if i >= args.warmup {
            times.push(secs);
        }
        if i + 1 == args.warmup + args.runs {
            if let Some(dir) = &args.results {
                let file = std::fs::File::create(dir.join(format!("{name}.parquet")))?;
                let mut w = ArrowWriter::try_new(file, schema, None)?;
                for b in &batches {
                    w.write(b)?;
                }
                w.close()?;
            }
        }
    }
    Ok((rows, times))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args().map_err(|e| {
        eprintln!("tpch-datafusion-runner: {e}");
        DataFusionError::Plan(e)
    })?;
    let ctx = SessionContext::new_with_config(session_config());
    let catalog = ctx.catalog("lalo").ok_or_else(|| DataFusionError::Plan("no catalog lalo".into()))?;
    catalog.register_schema("tpch", Arc::new(MemorySchemaProvider::new()))?;
    for t in TABLES {
        let path = args.data.join(format!("{t}.parquet"));
        ctx.register_parquet(format!("lalo.tpch.{t}"), path.to_string_lossy().as_ref(), ParquetReadOptions::default())
            .await?;
    }
    if let Some(dir) = &args.results {
        std::fs::create_dir_all(dir)?;
    }
    if args.serve {
        let one = Args { runs: 1, warmup: 0, ..args };
        let mut line = String::new();
        while { line.clear(); std::io::stdin().read_line(&mut line)? > 0 } {
            let name = line.trim();
            if name.is_empty() {
                continue;
            }
            let sql = std::fs::read_to_string(one.queries.join(format!("{name}.sql")))?;
            report(name, run_query(&ctx, name, &sql, &one).await);
        }
        return Ok(());
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&args.queries)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    for f in files {
        let name = f.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        if args.only.as_ref().is_some_and(|o| !o.contains(&name)) {
            continue;
        }
        let sql = std::fs::read_to_string(&f)?;
        report(&name, run_query(&ctx, &name, &sql, &args).await);
    }
    Ok(())
}

/// One JSON line per query on stdout, flushed (the serve mode's caller waits for it).
fn report(name: &str, outcome: Result<(usize, Vec<f64>)>) {
    use std::io::Write;
    let line = match outcome {
        Ok((rows, times)) => {
            let t: Vec<String> = times.iter().map(|s| format!("{s:.6}")).collect();
            format!("{{\"query\":{},\"rows\":{rows},\"times\":[{}],\"error\":null}}", json_str(name), t.join(","))
        }
        Err(e) => format!("{{\"query\":{},\"rows\":null,\"times\":[],\"error\":{}}}", json_str(name), json_str(&e.to_string())),
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
