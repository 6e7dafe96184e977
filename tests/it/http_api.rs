//! The HTTP query API (`/v1/sql`, `/v1/ask`, `/v1/explain`) through real clients: curl, and
//! Python's urllib, requests and pyarrow (tests/clients/http_client.py). Each asserts rows, a
//! row filter, a mask and a 42501 denial; every request is audited with entry `http`.

use crate::common;

fn curl(args: &[&str]) -> (String, String) {
    let out = std::process::Command::new("curl").args(["-s", "-w", "\n%{http_code}"]).args(args).output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or((&text, ""));
    (body.to_string(), code.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_and_python_clients_query_over_http_under_governance() {
    std::env::set_var("LALO_TEST_HTTP_TOKEN", "s3cret-http");
    let s = common::start_with(|cfg| {
        cfg.mcp.tokens = vec![lalo::config::McpToken { token_env: "LALO_TEST_HTTP_TOKEN".into(), user: "analyst".into() }];
    })
    .await;
    let url = format!("http://{}", s.running.http_addr);
    let post = |user: &str, body: &str, path: &str| {
        let auth = format!("{user}:{user}");
        curl(&["-u", &auth, "-H", "content-type: application/json", "-d", body, &format!("{url}{path}")])
    };

    // curl: a masked column, a denial, the description.
    let (body, code) = post("analyst", r#"{"sql":"SELECT c_custkey, c_phone FROM tpch.customer ORDER BY 1 LIMIT 2"}"#, "/v1/sql");
    assert_eq!(code, "200", "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["columns"][0], serde_json::json!({"name": "c_custkey", "type": "int8"}), "{v}");
    assert_eq!(v["row_count"], 2, "{v}");
    assert!(v["rows"][0][1].as_str().unwrap().starts_with('*'), "{v}");
    let (body, code) = post("intern", r#"{"sql":"SELECT c_acctbal FROM tpch.customer"}"#, "/v1/sql");
    assert_eq!(code, "403", "{body}");
    assert!(body.contains("\"sqlstate\":\"42501\""), "{body}");
    let (body, code) = post("analyst", r#"{"sql":"SET statement_timeout = 1"}"#, "/v1/sql");
    assert_eq!(code, "400", "session commands have no session over HTTP: {body}");
    let (body, code) = post("analyst", r#"{"question":"how many orders are there?"}"#, "/v1/explain");
    assert!(code == "200" || code == "422", "{code} {body}");
    // A follow-up over HTTP: the client sends back the last answer's `conversation`.
    let (body, code) = post("admin", r#"{"question":"how many orders in 1995"}"#, "/v1/ask");
    assert_eq!(code, "200", "{body}");
    let first: serde_json::Value = serde_json::from_str(&body).unwrap();
    let follow = serde_json::json!({ "question": "and in 1996?", "previous": first["conversation"] }).to_string();
    let (body, code) = post("admin", &follow, "/v1/ask");
    assert_eq!(code, "200", "{body}");
    let second: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(second["sql"].as_str().unwrap().contains("1996") && second["conversation"]["question"].as_str().unwrap().contains("1996"), "{second}");
    assert_ne!(second["rows"], first["rows"], "{second}");
    let (body, code) = post("admin", r#"{"question":"and in 1996?"}"#, "/v1/ask");
    assert_eq!(code, "422", "without the previous turn it stands alone: {body}");
    let (body, code) = post("analyst", r#"{"sql":"SELECT 1","database":"nosuch"}"#, "/v1/sql");
    assert_eq!(code, "404", "{body}");
    assert!(body.contains("3D000"), "{body}");
    // A wrong password and an unknown name answer alike.
    let (wrong, code) = curl(&["-u", "analyst:nope", "-H", "content-type: application/json", "-d", r#"{"sql":"SELECT 1"}"#, &format!("{url}/v1/sql")]);
    assert_eq!(code, "401");
    let (unknown, _) = curl(&["-u", "nobody:nope", "-H", "content-type: application/json", "-d", r#"{"sql":"SELECT 1"}"#, &format!("{url}/v1/sql")]);
    assert_eq!(wrong, unknown);
    // Parameters are cast only after governance: a denied column's type is not told.
    let (body, code) = post("intern", r#"{"sql":"SELECT 1 FROM tpch.customer WHERE c_acctbal = $1","params":[99999999999999999]}"#, "/v1/sql");
    assert_eq!(code, "403", "{body}");
    assert!(!body.contains("Decimal"), "{body}");
    let (body, code) = curl(&[&format!("{url}/v1/openapi.json")]);
    assert_eq!(code, "200");
    assert!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["paths"]["/v1/sql"].is_object());

    // Python: urllib, requests (bearer token), pyarrow.
    let stdout = common::run_ok(
        tokio::process::Command::new("python3")
            .arg(common::repo().join("tests/clients/http_client.py"))
            .args(["--url", &url, "--token", "s3cret-http"]),
    )
    .await;
    for check in ["urllib: row filter", "urllib: masked column", "urllib: denied column gives 403 42501", "requests: bearer token", "requests: NDJSON", "pyarrow: Arrow stream"] {
        assert!(stdout.contains(&format!("ok {check}")), "{check}: {stdout}");
    }

    // Every request was audited as `http`, the denial and the failed logins included.
    let audit = std::fs::read_to_string(s.audit_path()).unwrap();
    let http: Vec<&str> = audit.lines().filter(|l| l.contains("\"entry\":\"http\"")).collect();
    assert!(http.iter().any(|l| l.contains("\"user\":\"intern\"") && l.contains("\"decision\":\"denied\"")), "{audit}");
    assert!(http.iter().any(|l| l.contains("\"kind\":\"login\"") && l.contains("wrong password")), "{audit}");
    assert!(http.iter().any(|l| l.contains("\"user\":\"analyst\"") && l.contains("tpch.orders")), "{audit}");
    assert!(http.iter().any(|l| l.contains("3D000")), "the refused database is audited: {audit}");
    assert!(http.iter().any(|l| l.contains("\"user\":\"intern\"") && l.contains("c_acctbal = $1") && l.contains("denied")), "{audit}");
}
