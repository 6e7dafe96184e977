//! The deployment files: docker-compose.yml validated against the Compose Specification schema
//! (no Docker engine runs here), plus the structure users rely on (tests/deploy/check_compose.py);
//! the Helm chart rendered by Helm and validated against the Kubernetes schemas (no cluster runs
//! here either; tests/deploy/check_helm.py).

use crate::common;

#[tokio::test]
async fn compose_file_is_valid_and_complete() {
    let stdout = common::run_ok(
        tokio::process::Command::new("python3").arg(common::repo().join("tests/deploy/check_compose.py")),
    )
    .await;
    assert!(stdout.contains("rejected: services.lalo.ports as a number"), "{stdout}");
}

#[tokio::test]
async fn helm_chart_renders_valid_manifests() {
    let stdout = common::run_ok(
        tokio::process::Command::new("python3").arg(common::repo().join("tests/deploy/check_helm.py")),
    )
    .await;
    assert!(stdout.contains("rejected: misspelt 'readinesProbe' (strict)"), "{stdout}");
}
