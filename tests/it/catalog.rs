//! The catalog: CSV and Parquet files from sources.toml, docs shown as descriptions, the
//! TPC-H scale setting.

use crate::common::{self, psql};

#[tokio::test]
async fn sources_toml_registers_csv_and_parquet_with_docs() {
    let cat = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(cat.path().join("docs")).unwrap();
    std::fs::write(cat.path().join("targets.csv"), "region,target\nEUROPE,100.5\nASIA,200.25\n").unwrap();
    std::fs::write(
        cat.path().join("sources.toml"),
        "[[table]]\nschema = \"sales\"\nname = \"targets\"\npath = \"targets.csv\"\n\n\
         [[table]]\nschema = \"sales\"\nname = \"nations\"\npath = \"nation.parquet\"\n",
    )
    .unwrap();
    // Tests run in parallel on a fresh checkout: make sure the demo data exists before copying from it.
    let tpch = lalo::engine::tpch::ensure_generated(&common::shared_data_dir(), 0.01).await.unwrap();
    std::fs::copy(tpch.join("nation.parquet"), cat.path().join("nation.parquet")).unwrap();
    std::fs::write(
        cat.path().join("docs/sales.targets.md"),
        "# sales.targets\n\nSales targets per region for the year.\n\n- region: region name\n- target: target in millions of dollars\n",
    )
    .unwrap();
    let dir = cat.path().to_path_buf();
    let s = common::start_with(move |cfg| cfg.catalog.dir = dir).await;
    let c = s.connect("admin").await;
    let rows = c.query("SELECT region, target FROM sales.targets ORDER BY target DESC", &[]).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].get::<_, String>(0), "ASIA");
    let n: i64 = c.query_one("SELECT count(*) FROM sales.nations", &[]).await.unwrap().get(0);
    assert_eq!(n, 25);
    let (ok, out, err) = psql(&s, "admin", &["-c", "\\dt+ sales.*"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("Sales targets per region for the year."), "{out}");
    let (ok, out, err) = psql(&s, "admin", &["-c", "\\d+ sales.targets"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("target in millions of dollars"), "{out}");
    // The demo docs describe every TPC-H table.
    let (ok, out, err) = psql(&s, "admin", &["-At", "-c", "SELECT count(*) FROM pg_catalog.pg_description WHERE objsubid = 0"]).await;
    assert!(ok, "{err}");
    assert!(out.trim().parse::<i64>().unwrap() >= 9, "{out}");
}

/// pg_settings lists the session's own settings with PostgreSQL's columns (`boot_val`,
/// `reset_val`, `source`): a SET shows in the next statement, as SHOW and current_setting() say.
#[tokio::test]
async fn pg_settings_shows_the_sessions_settings() {
    let s = common::start().await;
    let c = s.connect("analyst").await;
    let row = |sql: &'static str| {
        let c = &c;
        async move { common::text_rows(&c.simple_query(sql).await.expect(sql)) }
    };
    let q = "SELECT setting, boot_val, reset_val, source, vartype FROM pg_catalog.pg_settings WHERE name = 'TimeZone'";
    assert_eq!(row(q).await, vec![vec!["UTC", "UTC", "UTC", "default", "string"]]);
    c.simple_query("SET TimeZone = 'Europe/Berlin'").await.expect("set");
    assert_eq!(row(q).await, vec![vec!["Europe/Berlin", "UTC", "UTC", "session", "string"]]);
    let sc = "SELECT setting, vartype FROM pg_settings WHERE name = 'standard_conforming_strings'";
    assert_eq!(row(sc).await, vec![vec!["on", "bool"]]);
}
