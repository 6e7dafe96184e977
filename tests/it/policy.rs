//! Policy files at work: limits, reload without dropping connections, `lalo check`, the audit
//! table, and settings smuggled in at connection start.

use std::time::Duration;

use crate::common::{self, sqlstate};

/// A private copy of the demo policies that a test may edit.
pub fn policy_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["model.conf", "policy.csv", "rules.toml"] {
        std::fs::copy(common::repo().join("policies").join(f), dir.path().join(f)).unwrap();
    }
    dir
}

#[tokio::test]
async fn row_and_rate_limits_per_role() {
    let pol = policy_copy();
    let mut rules = std::fs::read_to_string(pol.path().join("rules.toml")).unwrap();
    rules.push_str("\n[[limit]]\nsubject = \"analysts\"\nmax_rows = 10\nrate_per_minute = 6\n");
    std::fs::write(pol.path().join("rules.toml"), rules).unwrap();
    let p = pol.path().to_path_buf();
    let s = common::start_with(move |cfg| cfg.governance.policies = p).await;
    let c = s.connect("analyst").await;
    let rows = c.query("SELECT n_name FROM tpch.nation LIMIT 10", &[]).await.unwrap();
    assert_eq!(rows.len(), 10);
    let e = c.query("SELECT n_name FROM tpch.nation", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&e), "53400", "{e:?}");
    // Two statements so far; the sixth in the minute is the last one allowed.
    for _ in 0..4 {
        c.simple_query("SELECT 1").await.unwrap();
    }
    let e = c.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(sqlstate(&e), "54000", "{e:?}");
    // Other users are not limited.
    let admin = s.connect("admin").await;
    assert_eq!(admin.query("SELECT * FROM tpch.nation", &[]).await.unwrap().len(), 25);
}

#[tokio::test]
async fn policies_reload_on_change_without_dropping_connections() {
    let pol = policy_copy();
    let p = pol.path().to_path_buf();
    let s = common::start_with(move |cfg| cfg.governance.policies = p).await;
    let c = s.connect("intern").await;
    let sql = "SELECT max(c_acctbal) FROM tpch.customer";
    // Denied: Describe refuses the statement as Execute would (tests/it/disclosure.rs).
    assert_eq!(sqlstate(&c.prepare(sql).await.unwrap_err()), "42501");
    // Lift the deny: the same connection now prepares and runs it.
    let policy = std::fs::read_to_string(pol.path().join("policy.csv")).unwrap();
    let lifted: String = policy.lines().filter(|l| !l.contains("c_acctbal")).map(|l| format!("{l}\n")).collect();
    std::fs::write(pol.path().join("policy.csv"), lifted).unwrap();
    let mut ok = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(stmt) = c.prepare(sql).await {
            if c.query(&stmt, &[]).await.is_ok() {
                ok = true;
                break;
            }
        }
    }
    assert!(ok, "the deny was not lifted after a reload");
    let nation = c.prepare("SELECT count(*) FROM tpch.nation").await.unwrap();
    // Put it back, stricter: the intern loses tpch entirely.
    std::fs::write(pol.path().join("policy.csv"), "g, intern, interns\np, interns, lalo.tpch.region, select, allow\n").unwrap();
    let mut denied = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The statement prepared while allowed is governed again when it runs; a table the
        // intern may no longer read at all answers as a missing one.
        if let Err(e) = c.query(&nation, &[]).await {
            assert_eq!(sqlstate(&e), "42P01", "{e:?}");
            denied = true;
            break;
        }
    }
    assert!(denied, "the stricter policy was not applied");
    assert_eq!(c.query("SELECT * FROM tpch.region", &[]).await.unwrap().len(), 5);
}

#[tokio::test]
async fn lalo_check_names_file_and_line_of_bad_rules() {
    let dir = tempfile::tempdir().unwrap();
    let pol = policy_copy();
    let mut rules = std::fs::read_to_string(pol.path().join("rules.toml")).unwrap();
    let good_lines = rules.lines().count();
    rules.push_str("\n[[mask]]\ntable = \"lalo.tpch.customer\"\ncolumn = \"c_nope\"\nsubject = \"analysts\"\nkind = \"last4\"\n");
    rules.push_str("\n[[row_filter]]\ntable = \"lalo.tpch.nowhere\"\nsubject = \"analysts\"\nfilter = \"1 = 1\"\n");
    rules.push_str("\n[[row_filter]]\ntable = \"lalo.tpch.orders\"\nsubject = \"interns\"\nfilter = \"o_nope > ${user.nation}\"\n");
    std::fs::write(pol.path().join("rules.toml"), &rules).unwrap();
    let config = format!(
        "[server]\ntls_cert = \"/nonexistent/lalo.crt\"\ntls_key = \"/nonexistent/lalo.key\"\n[catalog]\ndir = \"{}\"\ndata_dir = \"{}\"\n[governance]\npolicies = \"{}\"\naudit_log = \"{}\"\n[[users]]\nname = \"admin\"\npassword = \"x\"\n[[mcp.tokens]]\ntoken_env = \"LALO_TEST_CHECK_TOKEN\"\nuser = \"nobody\"\n",
        common::repo().join("catalog").display(),
        common::shared_data_dir().display(),
        pol.path().display(),
        dir.path().join("audit.log").display()
    );
    let cfg_path = dir.path().join("lalo.toml");
    std::fs::write(&cfg_path, config).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_lalo"))
        .args(["check", "--config"])
        .arg(&cfg_path)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains(&format!("rules.toml:{}", good_lines + 2)) && text.contains("c_nope"), "{text}");
    assert!(text.contains("lalo.tpch.nowhere"), "{text}");
    assert!(text.contains("o_nope"), "{text}");
    // Settings that would fail only once used: unreadable TLS files, a token for nobody.
    assert!(text.contains("tls_cert /nonexistent/lalo.crt cannot be read"), "{text}");
    assert!(text.contains("acts as user \"nobody\", who is not in [[users]]"), "{text}");
    assert!(text.contains("token_env names LALO_TEST_CHECK_TOKEN, which is not set"), "{text}");
    // The shipped policies are clean.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_lalo"))
        .current_dir(common::repo())
        .env("LALO_CATALOG_DATA_DIR", common::shared_data_dir())
        .env("LALO_GOVERNANCE_AUDIT_LOG", dir.path().join("audit2.log"))
        .arg("check")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[tokio::test]
async fn audit_trail_is_a_table_for_admins_only() {
    let s = common::start().await;
    let analyst = s.connect("analyst").await;
    analyst.simple_query("SELECT count(*) FROM tpch.region").await.unwrap();
    // A table the analyst may not read at all answers as a missing one; the audit says denied.
    let e = analyst.query("SELECT * FROM lalo_audit.events", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&e), "42P01");
    let admin = s.connect("admin").await;
    let n: i64 = admin
        .query_one("SELECT count(*) FROM lalo_audit.events WHERE \"user\" = 'analyst' AND decision = 'denied'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

#[tokio::test]
async fn startup_parameters_apply_settings_but_never_identity() {
    let s = common::start().await;
    let conn = format!("{} options='-c statement_timeout=1234 -c application_name=from-options'", s.conn_str("intern"));
    let (c, conn) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let v: String = c.query_one("SELECT current_setting('statement_timeout')", &[]).await.unwrap().get(0);
    assert_eq!(v, "1234");
    for bad in ["-c role=admin", "-c session_authorization=admin", "-c lalo.user=admin"] {
        let conn = format!("{} options='{bad}'", s.conn_str("intern"));
        let e = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await.err().expect(bad);
        assert_eq!(sqlstate(&e), "42501", "{bad}");
    }
}

#[tokio::test]
async fn function_allowlist_and_denylist() {
    let pol = policy_copy();
    let mut rules = std::fs::read_to_string(pol.path().join("rules.toml")).unwrap();
    rules.push_str("\n[functions]\ndeny = [\"md5\", \"sqrt\", \"ln\", \"variance\", \"log10\"]\n");
    std::fs::write(pol.path().join("rules.toml"), &rules).unwrap();
    let p = pol.path().to_path_buf();
    let s = common::start_with(move |cfg| cfg.governance.policies = p).await;
    let c = s.connect("admin").await;
    let e = c.simple_query("SELECT md5(n_name) FROM tpch.nation").await.unwrap_err();
    assert_eq!(sqlstate(&e), "42501");
    assert!(e.as_db_error().unwrap().message().contains("function md5"), "{e:?}");
    c.simple_query("SELECT upper(n_name) FROM tpch.nation").await.unwrap();
    // Functions lalo computes in PostgreSQL's NUMERIC arithmetic are still the statement's
    // functions, whatever their arguments' types.
    // A rule on a function holds under its other names too.
    for sql in [
        "SELECT sqrt(o_totalprice) FROM tpch.orders",
        "SELECT ln(o_totalprice) FROM tpch.orders",
        "SELECT sqrt(2.0::float8)",
        "SELECT variance(o_totalprice) FROM tpch.orders",
        "SELECT log10(o_totalprice) FROM tpch.orders",
        "SELECT log10(2.0::float8)",
    ] {
        let e = c.simple_query(sql).await.unwrap_err();
        assert_eq!(sqlstate(&e), "42501", "{sql}");
    }
    // Division is an operator, not a function.
    c.simple_query("SELECT o_totalprice / 3 FROM tpch.orders LIMIT 1").await.unwrap();
    // An allowlist: only the listed functions run.
    let rules = rules.replace("deny = [\"md5\", \"sqrt\", \"ln\", \"variance\", \"log10\"]", "allow = [\"count\", \"upper\"]");
    std::fs::write(pol.path().join("rules.toml"), &rules).unwrap();
    let mut switched = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Err(e) = c.simple_query("SELECT lower(n_name) FROM tpch.nation").await {
            assert_eq!(sqlstate(&e), "42501");
            switched = true;
            break;
        }
    }
    assert!(switched, "the allowlist was not applied");
    c.simple_query("SELECT count(*), upper(n_name) FROM tpch.nation GROUP BY n_name").await.unwrap();
    // A NUMERIC value's display scale is tracked without calling functions the list forbids,
    // and a column named like lalo's tracking columns cannot hide a call from the list.
    c.simple_query("SELECT count(*) FROM tpch.orders GROUP BY o_totalprice / 3").await.unwrap();
    let e = c.simple_query("SELECT lower(n_name) AS \"__lalo_dscale:x\" FROM tpch.nation").await.unwrap_err();
    assert_ne!(sqlstate(&e), "00000");
    assert!(c.simple_query("SELECT lower(n_name) AS \"__lalo_dscale:x\" FROM tpch.nation").await.is_err());
    let e = c.simple_query("SELECT max(n_name) FROM tpch.nation").await.unwrap_err();
    assert_eq!(sqlstate(&e), "42501");
    c.simple_query("SELECT count(*) FROM tpch.nation").await.unwrap();
}
