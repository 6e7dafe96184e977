//! `[catalog] memory_cache_mb` and `[engine] datafusion`: embedded tables held in memory give
//! the same rows as the files for all 22 TPC-H statements and for a row-filtered, masked user;
//! EXPLAIN shows the scan in memory, narrowed by the joins above it (a pinned nation joined first); a budget too small for a table leaves it on its file; bad
//! DataFusion options keep lalo from starting.

use crate::common::{self, rows_or_error as rows, tpch_queries};

async fn plan(client: &tokio_postgres::Client, sql: &str) -> String {
    rows(client, &format!("EXPLAIN {sql}")).await.expect("explain").into_iter().flatten().collect::<Vec<_>>().join("\n")
}

/// `output_rows=` of an EXPLAIN ANALYZE line (`1234`, `5.92 K`, `1.83 M`).
fn output_rows(line: &str) -> Option<f64> {
    metric(line, "output_rows")
}

/// A row-count metric of an EXPLAIN ANALYZE line, by name.
fn metric(line: &str, name: &str) -> Option<f64> {
    let key = format!("{name}=");
    // The name itself, not the end of a longer one (`input_rows` in `build_input_rows`).
    let at = line.match_indices(&key).map(|(i, _)| i).find(|&i| !line[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_'))?;
    let rest = &line[at + key.len()..];
    let field = rest.split([',', ']']).next()?.trim();
    let (number, scale) = match field.split_once(' ') {
        Some((n, "K")) => (n, 1e3),
        Some((n, "M")) => (n, 1e6),
        Some((n, "B")) => (n, 1e9),
        _ => (field, 1.0),
    };
    number.parse::<f64>().ok().map(|n| n * scale)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cached_tables_answer_as_their_files() {
    let files = common::start_with(|cfg| cfg.catalog.memory_cache_mb = 0).await;
    let cached = common::start_with(|cfg| {
        cfg.catalog.memory_cache_mb = 256;
        // Small batches: every table spans several, dealt to both partitions.
        cfg.engine.datafusion.insert("datafusion.execution.batch_size".into(), "1024".into());
        cfg.engine.datafusion.insert("datafusion.execution.target_partitions".into(), "2".into());
    })
    .await;
    let (f_admin, c_admin) = (files.connect("admin").await, cached.connect("admin").await);
    let mut mismatches = Vec::new();
    let mut answered = 0;
    for (name, sql) in tpch_queries() {
        let want = rows(&f_admin, &sql).await;
        let got = rows(&c_admin, &sql).await;
        answered += want.is_ok() as usize;
        if want != got {
            mismatches.push(format!("{name}: files {want:?}\n memory {got:?}"));
        }
    }
    assert!(mismatches.is_empty(), "rows differ:\n{}", mismatches.join("\n"));
    assert!(answered >= 20, "{answered} of 22 answered");

    // Governance works on the cached table as on the file: the analyst's row filter and mask.
    let (f_an, c_an) = (files.connect("analyst").await, cached.connect("analyst").await);
    for sql in [
        "SELECT o_orderpriority, count(*), sum(o_totalprice) FROM tpch.orders GROUP BY 1 ORDER BY 1",
        "SELECT c_custkey, c_phone, c_nationkey FROM tpch.customer ORDER BY c_custkey LIMIT 20",
        "SELECT c_phone, count(*) FROM tpch.customer JOIN tpch.orders ON o_custkey = c_custkey GROUP BY c_phone ORDER BY 2 DESC, 1 LIMIT 5",
    ] {
        let want = rows(&f_an, sql).await.expect("files");
        let got = rows(&c_an, sql).await.expect("memory");
        assert_eq!(want, got, "{sql}");
    }
    let all = rows(&c_admin, "SELECT count(*) FROM tpch.orders").await.expect("count");
    let seen = rows(&c_an, "SELECT count(*) FROM tpch.orders").await.expect("count");
    assert_ne!(all, seen, "the analyst's row filter applies to the cached table");

    let sql = "SELECT l_returnflag, count(*) FROM tpch.lineitem GROUP BY 1";
    let on_file = plan(&f_admin, sql).await;
    let in_memory = plan(&c_admin, sql).await;
    assert!(on_file.contains("lineitem.parquet"), "{on_file}");
    assert!(!in_memory.contains(".parquet") && in_memory.contains("partition_sizes"), "{in_memory}");

    // A join's build side narrows the scan of a table in memory as it narrows a file's: Q17's
    // 0.1 % of parts reach the scans of lineitem; the rows are the same with a top-k below the
    // join (its own dynamic filter reaches the scan, the join's must not pass it) and a semi join.
    let q17 = tpch_queries().into_iter().find(|(n, _)| n == "q17").map(|(_, q)| q).expect("q17");
    let analyzed = plan(&c_admin, &format!("ANALYZE {q17}")).await;
    assert!(analyzed.matches("dynamic_filters=[DynamicFilter").count() >= 2, "{analyzed}");
    for sql in [
        // A recursive query's joins are rebuilt every round: their scans wait for nothing.
        "WITH RECURSIVE r(n) AS (SELECT 1::bigint UNION ALL SELECT s_suppkey FROM tpch.supplier JOIN r ON s_suppkey = r.n * 2 WHERE r.n < 50) SELECT count(*), max(n) FROM r",
        "SELECT count(*), sum(l_quantity) FROM (SELECT * FROM tpch.lineitem ORDER BY l_orderkey DESC, l_linenumber LIMIT 500) l JOIN tpch.part ON p_partkey = l_partkey WHERE p_size < 10",
        "SELECT p_brand, count(*) FROM tpch.part WHERE p_partkey IN (SELECT l_partkey FROM tpch.lineitem WHERE l_quantity > 49) GROUP BY 1 ORDER BY 1",
    ] {
        assert_eq!(rows(&f_admin, sql).await, rows(&c_admin, sql).await, "{sql}");
    }

    // A scan in memory reads only after the join filters of its own plan are known, wherever
    // it sits: in Q07 the suppliers join lineitem already narrowed to France and Germany by the
    // nation join above them (its scan starts with the rest of the plan), so that join passes on
    // only those suppliers' lines instead of every line of the two years.
    let q07 = tpch_queries().into_iter().find(|(n, _)| n == "q07").map(|(_, q)| q).expect("q07");
    let analyzed = plan(&c_admin, &format!("ANALYZE {q07}")).await;
    let joined = analyzed
        .lines()
        .find(|l| l.contains("HashJoinExec") && l.contains("s_suppkey@") && l.contains("l_suppkey@"))
        .and_then(output_rows)
        .unwrap_or_else(|| panic!("no supplier-lineitem join in\n{analyzed}"));
    let count = |sql: &'static str| {
        let c = &c_admin;
        async move { rows(c, sql).await.expect("count")[0][0].parse::<f64>().expect("a number") }
    };
    let two_years = count("SELECT count(*) FROM tpch.lineitem WHERE l_shipdate BETWEEN DATE '1995-01-01' AND DATE '1996-12-31'").await;
    let theirs = count(
        "SELECT count(*) FROM tpch.lineitem JOIN tpch.supplier ON l_suppkey = s_suppkey JOIN tpch.nation ON s_nationkey = n_nationkey \
         WHERE n_name IN ('FRANCE', 'GERMANY') AND l_shipdate BETWEEN DATE '1995-01-01' AND DATE '1996-12-31'",
    )
    .await;
    assert!(theirs < two_years / 4.0, "the data narrows: {theirs} of {two_years}");
    assert!(joined <= theirs * 1.01, "{joined} lines joined, {theirs} from French and German suppliers:\n{analyzed}");

    // Joins build their hash tables from the side the table's statistics (ranges, distinct
    // counts) show smaller. Q18: from the orders whose lines add up to over 300, not from the
    // join of customers, orders and lines they filter. Q17: from the lines of the parts its
    // brand and container keep, whose keys then narrow the average per part to those parts,
    // instead of averaging every part's lines to build from.
    let query = |n: &str| tpch_queries().into_iter().find(|(name, _)| name == n).map(|(_, q)| q).expect("query");
    let analyzed = plan(&c_admin, &format!("ANALYZE {}", query("q18"))).await;
    let semi = analyzed.lines().find(|l| l.contains("HashJoinExec") && l.contains("Semi")).unwrap_or_else(|| panic!("no semi join in\n{analyzed}"));
    let built = metric(semi, "build_input_rows").expect("build rows");
    let large = count("SELECT count(*) FROM (SELECT l_orderkey FROM tpch.lineitem GROUP BY 1 HAVING sum(l_quantity) > 300) x").await;
    assert!(built <= large, "the semi join built from {built} rows, {large} orders qualify:\n{analyzed}");
    let analyzed = plan(&c_admin, &format!("ANALYZE {}", query("q17"))).await;
    let averaged = analyzed
        .lines()
        .find(|l| l.contains("AggregateExec: mode=FinalPartitioned") && l.contains("avg("))
        .and_then(output_rows)
        .unwrap_or_else(|| panic!("no average per part in\n{analyzed}"));
    let parts = count("SELECT count(*) FROM tpch.part WHERE p_brand = 'Brand#23' AND p_container = 'MED BOX'").await;
    assert!(averaged <= parts, "{averaged} parts averaged, {parts} kept by the filter:\n{analyzed}");

    // A small table pinned by a constant joins the table its keys meet first (pinned_first.rs):
    // Q21's one nation narrows the suppliers before they meet the late lines, so that join passes
    // on only the late lines of that nation's suppliers.
    let analyzed = plan(&c_admin, &format!("ANALYZE {}", query("q21"))).await;
    let joined = analyzed
        .lines()
        .find(|l| l.contains("HashJoinExec") && l.contains("s_suppkey@") && l.contains("l_suppkey@"))
        .and_then(output_rows)
        .unwrap_or_else(|| panic!("no supplier-lineitem join in\n{analyzed}"));
    let late = count("SELECT count(*) FROM tpch.lineitem WHERE l_receiptdate > l_commitdate").await;
    let theirs = count(
        "SELECT count(*) FROM tpch.lineitem JOIN tpch.supplier ON l_suppkey = s_suppkey JOIN tpch.nation ON s_nationkey = n_nationkey \
         WHERE n_name = 'SAUDI ARABIA' AND l_receiptdate > l_commitdate",
    )
    .await;
    assert!(theirs < late / 4.0, "the data narrows: {theirs} of {late}");
    assert!(joined <= theirs * 1.01, "{joined} late lines joined, {theirs} from Saudi suppliers:\n{analyzed}");
    // Two copies of nation, one pinned, every column read: a join's filter must narrow the copy
    // its key names, though both have columns of that name (null_safe_filters.rs), and no move
    // of the pinned copy may put its columns ahead of the other's (pinned_first.rs). Whatever
    // the FROM order, the rows are the ones counted without reading the copies' columns.
    let filter = "s_suppkey = c_custkey % 100 + 1 AND c_nationkey = n1.n_nationkey AND o_custkey = c_custkey \
                  AND s_nationkey = n2.n_nationkey AND n2.n_name = 'GERMANY' AND n1.n_regionkey = r_regionkey AND r_name LIKE 'A%'";
    let from = "tpch.supplier, tpch.customer, tpch.nation n1, tpch.orders, tpch.nation n2, tpch.region";
    let n = rows(&c_admin, &format!("SELECT count(o_orderkey) FROM {from} WHERE {filter}")).await.expect("count")[0][0].parse::<usize>().expect("a number");
    assert!(n > 0, "the copies' filters leave rows");
    for from in [from, "tpch.supplier, tpch.nation n2, tpch.customer, tpch.nation n1, tpch.orders, tpch.region"] {
        let sql = format!("SELECT * FROM {from} WHERE {filter} ORDER BY o_orderkey LIMIT 10");
        for (server, client) in [("files", &f_admin), ("memory", &c_admin)] {
            assert_eq!(rows(client, &sql).await.expect("rows").len(), n.min(10), "{server}: {sql}");
        }
    }

    // A condition on one copy of a table kept above an outer join to the other copy, whose key
    // has the same name: it must narrow its own copy, not the first column of that name
    // (filter_names.rs). The WHERE leaves only matched rows, so each region's answer is the
    // sum over its nations of the two copies' counts multiplied.
    let products = rows(
        &c_admin,
        "SELECT sum(a.k * b.k) FROM (SELECT c_nationkey, count(*) k FROM tpch.customer WHERE c_custkey < 30 GROUP BY 1) a \
         JOIN (SELECT c_nationkey, count(*) k FROM tpch.customer WHERE c_custkey < 200 GROUP BY 1) b USING (c_nationkey) \
         JOIN tpch.nation n ON n.n_nationkey = a.c_nationkey JOIN tpch.region r ON r.r_regionkey = n.n_regionkey WHERE r.r_name = 'AFRICA'",
    )
    .await
    .expect("products")[0][0]
        .parse::<usize>()
        .expect("a number");
    assert!(products > 0, "the copies' conditions leave rows");
    let tail = "JOIN tpch.nation n ON n.n_nationkey = c2.c_nationkey JOIN tpch.region r ON r.r_regionkey = n.n_regionkey \
                WHERE c.c_custkey < 30 AND c2.c_custkey < 200 AND r.r_name = 'AFRICA'";
    for join in [
        "tpch.customer c RIGHT JOIN tpch.customer c2 ON c.c_nationkey = c2.c_nationkey",
        "tpch.customer c2 LEFT JOIN tpch.customer c ON c.c_nationkey = c2.c_nationkey",
        "tpch.customer c FULL JOIN tpch.customer c2 ON c.c_nationkey = c2.c_nationkey",
    ] {
        let sql = format!("SELECT c.c_custkey, c2.c_custkey AS k2 FROM {join} {tail}");
        for (server, client) in [("files", &f_admin), ("memory", &c_admin)] {
            assert_eq!(rows(client, &sql).await.expect("rows").len(), products, "{server}: {sql}");
        }
        // No NULL-extended row passes the WHERE, so the join is planned inner, and each
        // copy's condition narrows its own scan.
        let planned = plan(&c_admin, &sql).await;
        assert!(!["join_type=Left", "join_type=Right", "join_type=Full"].iter().any(|j| planned.contains(j)), "{sql}:\n{planned}");
    }

    // A column computed under the grouping key's name is sorted as computed: the grouping may
    // keep only its first groups when the order is its own key's (topk_groups.rs).
    let want = rows(&c_admin, "SELECT -o_custkey FROM tpch.orders GROUP BY o_custkey ORDER BY o_custkey DESC LIMIT 5").await.expect("rows");
    for sql in [
        "SELECT -k AS k FROM (SELECT DISTINCT o_custkey AS k FROM tpch.orders) t ORDER BY k LIMIT 5",
        "SELECT -o_custkey AS o_custkey FROM tpch.orders GROUP BY o_custkey ORDER BY 1 LIMIT 5",
    ] {
        for (server, client) in [("files", &f_admin), ("memory", &c_admin)] {
            assert_eq!(rows(client, sql).await.expect("rows"), want, "{server}: {sql}");
        }
    }

    // Joins where NULL meets NULL, and NOT IN, must not have their probe side narrowed by the
    // build side's keys (a NULL key falls outside any bounds; an emptied subquery turns NOT IN
    // true for NULL), nor min/max by the aggregate's own running bounds. Answers known exactly.
    let all_null_safe = [
        // INTERSECT matches NULL with NULL: NULL, 1, 2, 3, 4.
        ("SELECT count(*) FROM (SELECT NULLIF(n_regionkey, 0) FROM tpch.nation INTERSECT SELECT NULLIF(r_regionkey, 0) FROM tpch.region) x", "5"),
        // EXCEPT removes the NULL the other side has too.
        ("SELECT count(*) FROM (SELECT NULLIF(n_nationkey, 0) FROM tpch.nation EXCEPT SELECT NULLIF(r_regionkey, 0) FROM tpch.region) x", "20"),
        ("SELECT count(*) FROM tpch.nation a JOIN tpch.region b ON NULLIF(a.n_regionkey, 0) IS NOT DISTINCT FROM NULLIF(b.r_regionkey, 0)", "25"),
        // No key is among 101..104, but the subquery's NULL leaves every NOT IN unknown.
        ("SELECT count(*) FROM tpch.nation WHERE NULLIF(n_nationkey, 0) NOT IN (SELECT NULLIF(r_regionkey, 0) + 100 FROM tpch.region)", "0"),
        // 24 keys are not among 100..104; the NULL key's NOT IN is unknown, so it is left out.
        ("SELECT count(*) FROM tpch.nation WHERE NULLIF(n_nationkey, 0) NOT IN (SELECT r_regionkey + 100 FROM tpch.region)", "24"),
        // The same, correlated: every nation's subquery has its region's row.
        ("SELECT count(*) FROM tpch.nation n WHERE NULLIF(n_nationkey, 0) NOT IN (SELECT r_regionkey + 100 FROM tpch.region r WHERE r.r_regionkey = n.n_regionkey)", "24"),
        // Unless the subquery has no row: then NOT IN holds for NULL too.
        ("SELECT count(*) FROM tpch.nation WHERE NULLIF(n_nationkey, 0) NOT IN (SELECT r_regionkey FROM tpch.region WHERE r_regionkey > 10)", "25"),
        // A NULL in the subquery makes every NOT IN unknown.
        ("SELECT count(*) FROM tpch.nation WHERE n_nationkey NOT IN (SELECT NULLIF(r_regionkey, 2) FROM tpch.region)", "0"),
        ("SELECT min(n_nationkey), max(n_regionkey + 1) FROM tpch.nation", "0|5"),
        // A recursive join over a table, counted (the outer query reads none of its columns).
        ("WITH RECURSIVE r(n) AS (SELECT 0::bigint UNION ALL SELECT n_nationkey FROM tpch.nation JOIN r ON n_nationkey = r.n + 1 WHERE r.n < 24) SELECT count(*) FROM r", "25"),
    ];
    for (sql, want) in all_null_safe {
        for (server, client) in [("files", &f_admin), ("memory", &c_admin)] {
            let got = rows(client, sql).await.map(|r| r.into_iter().map(|row| row.join("|")).collect::<Vec<_>>().join(","));
            assert_eq!(got.as_deref(), Ok(want), "{server}: {sql}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_the_budget_cannot_hold_stays_on_its_file() {
    // One megabyte holds the small tables of the demo schema, not lineitem.
    let server = common::start_with(|cfg| cfg.catalog.memory_cache_mb = 1).await;
    let admin = server.connect("admin").await;
    let lineitem = plan(&admin, "SELECT count(*) FROM tpch.lineitem WHERE l_quantity > 10").await;
    assert!(lineitem.contains("lineitem.parquet"), "{lineitem}");
    let nation = plan(&admin, "SELECT n_name FROM tpch.nation WHERE n_regionkey = 1").await;
    assert!(!nation.contains("nation.parquet") && nation.contains("partition_sizes"), "{nation}");
    let n = rows(&admin, "SELECT count(*) FROM tpch.nation").await.expect("nation");
    assert_eq!(n, vec![vec!["25".to_string()]]);
}

#[tokio::test]
async fn unknown_or_reserved_datafusion_options_stop_the_start() {
    for (key, value, says) in [
        ("datafusion.execution.no_such_option", "1", "no_such_option"),
        ("datafusion.execution.batch_size", "many", "batch_size"),
        ("datafusion.sql_parser.enable_ident_normalization", "false", "set by lalo"),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = common::test_config(dir.path());
        cfg.engine.datafusion.insert(key.into(), value.into());
        let err = lalo::runtime::start(cfg).await.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains(says), "{key} = {value}: {err:?}");
    }
}
