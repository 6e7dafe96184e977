//! The deployment files: docker-compose.yml validated against the Compose Specification schema
//! (no Docker engine runs here), plus the structure users rely on (tests/deploy/check_compose.py).

use crate::common;

#[tokio::test]
async fn compose_file_is_valid_and_complete() {
    let stdout = common::run_ok(
        tokio::process::Command::new("python3").arg(common::repo().join("tests/deploy/check_compose.py")),
    )
    .await;
    assert!(stdout.contains("rejected: services.lalo.ports as a number"), "{stdout}");
}
