//! lalo as an MCP server, driven by real MCP clients: the rmcp client over stdio and streamable
//! HTTP, and the official Python SDK over both.

use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{json, Value};

use crate::common;

const TOOLS: [&str; 6] = ["ask", "describe_table", "explain", "list_tables", "query", "search_schema"];

async fn call(client: &RunningService<RoleClient, ()>, tool: &'static str, args: Value) -> (bool, Value) {
    let params = CallToolRequestParams::new(tool).with_arguments(args.as_object().cloned().unwrap_or_default());
    let r = client.call_tool(params).await.expect("tool call answered");
    (r.is_error.unwrap_or(false), r.structured_content.unwrap_or(Value::Null))
}

/// Every tool through one client, as the intern (denied customer.c_acctbal).
async fn exercise(client: &RunningService<RoleClient, ()>) {
    let tools = client.list_tools(Default::default()).await.unwrap();
    let mut names: Vec<String> = tools.tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    assert_eq!(names, TOOLS);
    for t in &tools.tools {
        assert_eq!(t.annotations.as_ref().and_then(|a| a.read_only_hint), Some(true), "{}", t.name);
        assert!(t.description.as_deref().unwrap_or("").len() > 40, "{} needs a useful description", t.name);
    }

    let (err, v) = call(client, "list_tables", json!({ "schema": "tpch" })).await;
    assert!(!err, "{v}");
    assert_eq!(v["tables"].as_array().unwrap().len(), 8, "{v}");

    let (err, v) = call(client, "describe_table", json!({ "table": "tpch.customer" })).await;
    assert!(!err, "{v}");
    let cols: Vec<&str> = v["columns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert!(cols.contains(&"c_name") && !cols.contains(&"c_acctbal"), "{cols:?}");

    let (err, v) = call(client, "search_schema", json!({ "question": "which nation is each supplier in?" })).await;
    assert!(!err, "{v}");
    let top: Vec<&str> = v["results"].as_array().unwrap().iter().take(3).map(|h| h["table"].as_str().unwrap()).collect();
    assert!(top.contains(&"tpch.supplier") && top.contains(&"tpch.nation"), "{top:?}");

    let (err, v) = call(client, "query", json!({ "sql": "SELECT n_name FROM tpch.nation ORDER BY n_nationkey", "max_rows": 3 })).await;
    assert!(!err, "{v}");
    assert_eq!(v["rows"], json!([{ "n_name": "ALGERIA" }, { "n_name": "ARGENTINA" }, { "n_name": "BRAZIL" }]));
    assert_eq!(v["truncated"], json!(true));

    let (err, v) = call(client, "query", json!({ "sql": "SELECT max(c_acctbal) FROM tpch.customer" })).await;
    assert!(err, "{v}");
    assert_eq!(v["sqlstate"], "42501", "{v}");

    let (err, v) = call(client, "query", json!({ "sql": "DROP TABLE tpch.nation" })).await;
    assert!(err, "{v}");

    let (err, v) = call(client, "explain", json!({ "input": "SELECT count(*) FROM tpch.orders" })).await;
    assert!(!err, "{v}");
    assert!(v["plan"].as_str().unwrap().contains("TableScan"), "{v}");

    let (err, v) = call(client, "ask", json!({ "question": "how many orders are there?" })).await;
    assert!(!err, "{v}");
    assert!(v["sql"].as_str().unwrap_or("").contains("COUNT"), "the SQL that ran: {v}");
    assert_eq!(v["row_count"], json!(1), "{v}");

    let (err, v) = call(client, "explain", json!({ "input": "ASK how many orders are there?" })).await;
    assert!(!err, "{v}");
    assert!(v["sql"].as_str().unwrap_or("").contains("COUNT") && v["trace"]["steps"].is_array(), "{v}");

    let (err, v) = call(client, "ask", json!({ "question": "what is the purpose of life?" })).await;
    assert!(err, "{v}");
    assert_eq!(v["sqlstate"], "42000", "{v}");

    // A follow-up reads against this MCP session's last question; asked anew it stands alone.
    let (err, first) = call(client, "ask", json!({ "question": "how many orders in 1995" })).await;
    assert!(!err, "{first}");
    let (err, v) = call(client, "ask", json!({ "question": "and in 1996?" })).await;
    assert!(!err, "{v}");
    assert!(v["sql"].as_str().unwrap_or("").contains("1996"), "built on the last question: {v}");
    assert_ne!(v["rows"], first["rows"], "another year, another count: {v}");
    let (err, v) = call(client, "ask", json!({ "question": "and in 1996?", "new_conversation": true })).await;
    assert!(err, "{v}");
    assert_eq!(v["sqlstate"], "42000", "{v}");
}

#[tokio::test]
async fn rmcp_client_over_stdio() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.log");
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_lalo"));
    cmd.args(["mcp", "--user", "intern"])
        .current_dir(common::repo())
        .env("LALO_CATALOG_DATA_DIR", common::shared_data_dir())
        .env("LALO_GOVERNANCE_AUDIT_LOG", &audit)
        .env("LALO_LOG", "warn");
    let transport = rmcp::transport::TokioChildProcess::new(cmd).unwrap();
    let client = ().serve(transport).await.expect("initialize");
    exercise(&client).await;
    client.cancel().await.unwrap();
    let text = std::fs::read_to_string(&audit).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.iter().all(|l| l["entry"] == "mcp" && l["user"] == "intern"));
    assert!(lines.iter().any(|l| l["decision"] == "denied"));
    assert!(lines.len() >= 7, "{} audit lines", lines.len());
}

fn http_server_tokens(var: &str, token: &str) {
    // Each test uses its own variable, so tests running in parallel don't interfere.
    std::env::set_var(var, token);
}

#[tokio::test]
async fn rmcp_client_over_http_with_bearer_token() {
    // The client's reqwest is built without a default crypto provider: this process's is ring.
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    http_server_tokens("LALO_TEST_MCP_TOKEN_RMCP", "s3cret-rmcp");
    let s = common::start_with(|cfg| {
        cfg.mcp.tokens = vec![lalo::config::McpToken { token_env: "LALO_TEST_MCP_TOKEN_RMCP".into(), user: "intern".into() }];
    })
    .await;
    let url = format!("http://{}/mcp", s.running.http_addr);
    let config = rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(url.clone())
        .auth_header("s3cret-rmcp");
    let transport = rmcp::transport::StreamableHttpClientTransport::from_config(config);
    let client = ().serve(transport).await.expect("initialize over HTTP");
    exercise(&client).await;
    client.cancel().await.unwrap();
    let audit = std::fs::read_to_string(s.audit_path()).unwrap();
    assert!(audit.lines().any(|l| l.contains("\"entry\":\"mcp\"") && l.contains("\"user\":\"intern\"")));
}

#[tokio::test]
async fn http_endpoint_needs_a_valid_token_and_a_local_origin() {
    http_server_tokens("LALO_TEST_MCP_TOKEN_401", "s3cret-401");
    let s = common::start_with(|cfg| {
        cfg.mcp.tokens = vec![lalo::config::McpToken { token_env: "LALO_TEST_MCP_TOKEN_401".into(), user: "analyst".into() }];
    })
    .await;
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    for auth in [None, Some("Bearer wrong")] {
        let (code, head) = post(&s.running.http_addr, auth, None, init).await;
        assert_eq!(code, 401, "{head}");
        assert!(head.to_ascii_lowercase().contains("www-authenticate: bearer"), "{head}");
    }
    let (code, head) = post(&s.running.http_addr, Some("Bearer s3cret-401"), Some("http://evil.example.com"), init).await;
    assert_eq!(code, 403, "{head}");
    let (code, head) = post(&s.running.http_addr, Some("Bearer s3cret-401"), None, init).await;
    assert_eq!(code, 200, "{head}");
}

async fn post(addr: &std::net::SocketAddr, auth: Option<&str>, origin: Option<&str>, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(a) = auth {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    if let Some(o) = origin {
        req.push_str(&format!("Origin: {o}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    sock.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), sock.read(&mut buf)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, text)
}

#[tokio::test]
async fn python_mcp_sdk_over_stdio_and_http() {
    http_server_tokens("LALO_TEST_MCP_TOKEN_PY", "s3cret-py");
    let s = common::start_with(|cfg| {
        cfg.mcp.tokens = vec![lalo::config::McpToken { token_env: "LALO_TEST_MCP_TOKEN_PY".into(), user: "intern".into() }];
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let stdout = common::run_ok(
        tokio::process::Command::new("python3")
            .arg(common::repo().join("tests/clients/mcp_client.py"))
            .args(["--lalo", env!("CARGO_BIN_EXE_lalo"), "--user", "intern"])
            .arg("--url")
            .arg(format!("http://{}/mcp", s.running.http_addr))
            .args(["--token", "s3cret-py"])
            .env("LALO_CATALOG_DATA_DIR", common::shared_data_dir())
            .env("LALO_GOVERNANCE_AUDIT_LOG", dir.path().join("audit.log"))
            .env("LALO_LOG", "warn"),
    )
    .await;
    for transport in ["stdio", "http"] {
        assert!(stdout.contains(&format!("ok {transport}: denied column gives 42501")), "{stdout}");
    }
}
