//! The psql binary and the exact catalog queries other clients send; TLS.

use crate::common::{self, psql};

#[tokio::test]
async fn psql_meta_commands() {
    let s = common::start().await;
    let (ok, out, err) = psql(&s, "admin", &["-c", "\\dt tpch.*"]).await;
    assert!(ok, "{err}");
    for t in ["customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"] {
        assert!(out.contains(t), "\\dt lacks {t}: {out}");
    }
    let (ok, out, err) = psql(&s, "admin", &["-c", "\\d tpch.lineitem"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("l_shipdate") && out.contains("date") && out.contains("numeric"), "{out}");
    let (ok, out, err) = psql(&s, "admin", &["-c", "\\l"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("lalo"), "{out}");
    let (ok, out, err) = psql(&s, "admin", &["-c", "\\dn"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("tpch"), "{out}");
    // Descriptions from catalog/docs.
    let (ok, out, err) = psql(&s, "admin", &["-c", "\\dt+ tpch.nation"]).await;
    assert!(ok, "{err}");
    assert!(out.to_lowercase().contains("nation"), "{out}");
    let (ok, out, err) = psql(&s, "admin", &["-c", "\\d+ tpch.region"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("r_name"), "{out}");
    let (ok, out, err) = psql(&s, "admin", &[
        "-At",
        "-c",
        "SELECT obj_description('tpch.region'::regclass, 'pg_class') IS NOT NULL",
    ]).await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "t", "{out}");
}

#[tokio::test]
async fn psql_runs_a_tpch_query_with_checked_output() {
    let s = common::start().await;
    // TPC-H Q1 (pricing summary) on the demo data, unaligned output for an exact check.
    let q1 = "SELECT l_returnflag, l_linestatus, sum(l_quantity) AS sum_qty, count(*) AS count_order \
              FROM tpch.lineitem WHERE l_shipdate <= DATE '1998-12-01' - INTERVAL '90' DAY \
              GROUP BY l_returnflag, l_linestatus ORDER BY l_returnflag, l_linestatus";
    let (ok, out, err) = psql(&s, "admin", &["-At", "-F", ",", "-c", q1]).await;
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].starts_with("A,F,"), "{out}");
    assert!(lines[3].starts_with("R,F,"), "{out}");
    let total: i64 = lines.iter().map(|l| l.rsplit(',').next().unwrap().parse::<i64>().unwrap()).sum();
    let (ok, out, _) = psql(&s, "admin", &["-At", "-c", "SELECT count(*) FROM tpch.lineitem WHERE l_shipdate <= DATE '1998-09-02'"]).await;
    assert!(ok);
    assert_eq!(total, out.trim().parse::<i64>().unwrap());
}

#[tokio::test]
async fn every_client_catalog_query_answers() {
    let s = common::start().await;
    let c = s.connect("admin").await;
    let path = common::repo().join("../shared/corpora/clients/client_queries.json");
    let text = std::fs::read_to_string(&path).expect("shared corpora are beside the repository");
    let all: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
    let mut failures = Vec::new();
    let mut n = 0;
    for (client, queries) in &all {
        for q in queries.as_array().unwrap() {
            let q = q.as_str().unwrap();
            n += 1;
            if let Err(e) = c.simple_query(q).await {
                failures.push(format!("{client}: {q}\n  -> {e:?}"));
            }
        }
    }
    assert!(n >= 65);
    assert!(failures.is_empty(), "{} of {n} failed:\n{}", failures.len(), failures.join("\n"));
}

fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let c = dir.join("server.crt");
    let k = dir.join("server.key");
    std::fs::write(&c, cert.cert.pem()).unwrap();
    std::fs::write(&k, cert.signing_key.serialize_pem()).unwrap();
    (c, k)
}

#[tokio::test]
async fn tls_required_refuses_plaintext_and_accepts_sslmode_require() {
    let certs = tempfile::tempdir().unwrap();
    let (c, k) = self_signed(certs.path());
    let s = common::start_with(|cfg| {
        cfg.server.tls_cert = Some(c.clone());
        cfg.server.tls_key = Some(k.clone());
        cfg.server.tls_required = true;
    })
    .await;
    let plain = tokio::process::Command::new("psql")
        .arg(format!("host=127.0.0.1 port={} user=admin dbname=lalo sslmode=disable connect_timeout=10", s.port()))
        .args(["-X", "-At", "-c", "SELECT 1"])
        .env("PGPASSWORD", "admin")
        .output()
        .await
        .unwrap();
    assert!(!plain.status.success());
    assert!(String::from_utf8_lossy(&plain.stderr).contains("SSL"), "{}", String::from_utf8_lossy(&plain.stderr));
    let out = tokio::process::Command::new("psql")
        .arg(format!("host=127.0.0.1 port={} user=admin dbname=lalo sslmode=require connect_timeout=10", s.port()))
        .args(["-X", "-At", "-c", "SELECT n_name FROM tpch.nation WHERE n_nationkey = 7"])
        .env("PGPASSWORD", "admin")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "GERMANY");
}

#[tokio::test]
async fn copy_to_stdout_in_text_and_csv() {
    let s = common::start().await;
    let (ok, out, err) = psql(&s, "admin", &["-c", "COPY (SELECT n_nationkey, n_name, NULL AS x FROM tpch.nation ORDER BY n_nationkey LIMIT 2) TO STDOUT"]).await;
    assert!(ok, "{err}");
    assert_eq!(out, "0\tALGERIA\t\\N\n1\tARGENTINA\t\\N\n");
    let (ok, out, err) = psql(&s, "admin", &["-c", "COPY (SELECT r_name, 'a,b' AS t FROM tpch.region ORDER BY r_regionkey LIMIT 1) TO STDOUT WITH (FORMAT csv, HEADER true)"]).await;
    assert!(ok, "{err}");
    assert_eq!(out, "r_name,t\nAFRICA,\"a,b\"\n");
    let (ok, out, err) = psql(&s, "admin", &["-c", "COPY tpch.region TO STDOUT"]).await;
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 5);
    // Governance applies to COPY like to any query.
    let (ok, _, err) = psql(&s, "intern", &["-c", "COPY (SELECT c_acctbal FROM tpch.customer) TO STDOUT"]).await;
    assert!(!ok && err.contains("permission denied"), "{err}");
    let (ok, _, err) = psql(&s, "admin", &["-c", "COPY tpch.region FROM STDIN"]).await;
    assert!(!ok && err.contains("read-only"), "{err}");
}
