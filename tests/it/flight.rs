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

/// With the server's certificate configured, Flight SQL is served over TLS (ADBC over
/// `grpc+tls://`), and a plaintext client is not answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flight_sql_over_tls_with_the_servers_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (c, k) = (certs.path().join("server.crt"), certs.path().join("server.key"));
    std::fs::write(&c, cert.cert.pem()).unwrap();
    std::fs::write(&k, cert.signing_key.serialize_pem()).unwrap();
    let s = common::start_with(|cfg| {
        cfg.server.flight_listen = Some("127.0.0.1:0".into());
        cfg.server.tls_cert = Some(c.clone());
        cfg.server.tls_key = Some(k.clone());
    })
    .await;
    let addr = s.running.flight_addr.expect("Flight SQL listens");
    let script = r#"
import sys, warnings
import adbc_driver_flightsql.dbapi as flightsql
warnings.simplefilter("ignore")
addr = sys.argv[1]
opts = {"username": "analyst", "password": "analyst", "adbc.flight.sql.client_option.tls_skip_verify": "true"}
with flightsql.connect(f"grpc+tls://{addr}", db_kwargs=opts) as conn, conn.cursor() as cur:
    cur.execute("SELECT count(*) AS n FROM tpch.nation")
    print("ok tls", cur.fetch_arrow_table().column("n")[0].as_py())
try:
    flightsql.connect(f"grpc://{addr}", db_kwargs={"username": "analyst", "password": "analyst", "adbc.flight.sql.rpc.timeout_seconds.fetch": "5"})
    print("plaintext connected")
except Exception:
    print("ok plaintext refused")
"#;
    let stdout = common::run_ok(tokio::process::Command::new("python3").args(["-c", script, &addr.to_string()])).await;
    assert!(stdout.contains("ok tls 25"), "{stdout}");
    assert!(stdout.contains("ok plaintext refused"), "{stdout}");
}
