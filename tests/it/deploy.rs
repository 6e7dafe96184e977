//! The deployment files: docker-compose.yml validated against the Compose Specification schema
//! (no Docker engine runs here), plus the structure users rely on (tests/deploy/check_compose.py).

use crate::common;

#[tokio::test]
async fn compose_file_is_valid_and_complete() {
    let out = tokio::process::Command::new("python3")
        .arg(common::repo().join("tests/deploy/check_compose.py"))
        .current_dir(common::repo())
        .output()
        .await
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("rejected: services.lalo.ports as a number"), "{stdout}");
}
