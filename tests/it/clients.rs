//! The client compatibility suite (tests/clients/): JDBC, psycopg 3, psycopg2, asyncpg,
//! SQLAlchemy, pandas, node-postgres, pgcli and Npgsql-style traffic against a running lalo.

use crate::common;

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
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
}
