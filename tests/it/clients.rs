//! The client compatibility suite (tests/clients/): JDBC, psycopg 3, psycopg2, asyncpg,
//! SQLAlchemy, pandas, node-postgres, pgcli and Npgsql-style traffic against a running lalo.
//! Every check runs; the ones still open are listed with their reasons in
//! tests/clients/known_failures.txt, and anything else failing fails this test.

use crate::common;

fn known_failures() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(common::repo().join("tests/clients/known_failures.txt")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t').map(|(k, r)| (k.to_string(), r.to_string())))
        .collect()
}

#[tokio::test]
async fn real_drivers_work() {
    let s = common::start().await;
    let out = tokio::process::Command::new("bash")
        .arg(common::repo().join("tests/clients/run_all.sh"))
        .arg(s.port().to_string())
        .current_dir(common::repo())
        .output()
        .await
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    let known = known_failures();
    let fails: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL ")).map(|l| l.trim_start_matches("FAIL ")).collect();
    let unexpected: Vec<&&str> = fails.iter().filter(|f| !known.iter().any(|(k, _)| f.starts_with(k.as_str()))).collect();
    assert!(unexpected.is_empty(), "unexpected client failures:\n{}\n\n{}", unexpected.iter().map(|s| s.to_string()).collect::<Vec<_>>().join("\n"), String::from_utf8_lossy(&out.stderr));
    let fixed: Vec<&String> = known.iter().filter(|(k, _)| !fails.iter().any(|f| f.starts_with(k.as_str()))).map(|(k, _)| k).collect();
    assert!(fixed.is_empty(), "these now pass; remove them from known_failures.txt: {fixed:?}");
    // Every client ran to its tally.
    for client in ["jdbc", "psycopg3", "psycopg2", "asyncpg", "sqlalchemy", "pandas", "node-pg", "pgcli", "npgsql"] {
        assert!(stdout.contains(&format!("#   {client}")), "{client} did not report: {stdout}");
    }
}

/// ADBC's PostgreSQL driver reads every result with `COPY (...) TO STDOUT (FORMAT binary)`:
/// rows, a row filter, a mask, a denial and an empty result, through lalo's binary COPY.
#[tokio::test]
async fn adbc_postgres_driver_reads_through_binary_copy() {
    let s = common::start().await;
    let stdout = common::run_ok(
        tokio::process::Command::new("python3")
            .arg(common::repo().join("tests/clients/adbc_postgres.py"))
            .args(["--port", &s.port().to_string()]),
    )
    .await;
    for check in ["row filter", "masked column", "denied column gives 42501", "empty result"] {
        assert!(stdout.contains(&format!("ok adbc: {check}")), "{check}: {stdout}");
    }
    let audit = std::fs::read_to_string(s.audit_path()).unwrap();
    assert!(audit.lines().any(|l| l.contains("(FORMAT BINARY)") && l.contains("\"user\":\"analyst\"")), "{audit}");
}
