//! Arrow Flight SQL (`[server] flight_listen`) through real clients: ADBC's Flight SQL driver
//! and pyarrow.flight (tests/clients/flight_client.py), asserting rows, a row filter, a mask, a
//! parameter, the catalog, a 42501 denial and a refused login; every call is audited as `flight`.

use crate::common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adbc_and_pyarrow_query_over_flight_sql_under_governance() {
    let s = common::start_with(|cfg| cfg.server.flight_listen = Some("127.0.0.1:0".into())).await;
    let addr = s.running.flight_addr.expect("Flight SQL listens");
    let stdout = common::run_ok(
        tokio::process::Command::new("python3")
            .arg(common::repo().join("tests/clients/flight_client.py"))
            .args(["--uri", &format!("grpc://{addr}")]),
    )
    .await;
    for check in [
        "adbc-flightsql: row filter",
        "adbc-flightsql: prepared statement with a parameter, masked column",
        "adbc-flightsql: catalog objects",
        "adbc-flightsql: denied column gives 42501",
        "adbc-flightsql: table schema without the denied column",
        "adbc-flightsql: wrong password refused",
        "pyarrow.flight: statement through a handshake token",
    ] {
        assert!(stdout.contains(&format!("ok {check}")), "{check}: {stdout}");
    }
    let audit = std::fs::read_to_string(s.audit_path()).unwrap();
    let flight: Vec<&str> = audit.lines().filter(|l| l.contains("\"entry\":\"flight\"")).collect();
    assert!(flight.iter().any(|l| l.contains("\"user\":\"intern\"") && l.contains("\"decision\":\"denied\"")), "{audit}");
    assert!(flight.iter().any(|l| l.contains("\"kind\":\"login\"") && l.contains("wrong password")), "{audit}");
    assert!(flight.iter().any(|l| l.contains("\"user\":\"analyst\"") && l.contains("c_custkey < $1")), "{audit}");
}
