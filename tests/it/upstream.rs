//! Upstream PostgreSQL databases through lalo: the defog databases served as lalo databases,
//! results identical to PostgreSQL's, push-down visible in EXPLAIN, joins with the embedded
//! catalog, refresh, and the down-at-start / killed-mid-query / comes-back cases.

use std::time::Duration;

use tokio_postgres::SimpleQueryMessage;

use crate::common::{self, sqlstate, TestServer};
use crate::pgcluster::{self, PgCluster, DEFOG_DBS};

/// A `catalog/` directory whose sources.toml lists `upstreams` as (name, url).
pub fn catalog_with(upstreams: &[(String, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("catalog dir");
    let mut toml = String::new();
    for (name, url) in upstreams {
        toml.push_str(&format!("[[upstream]]\nname = \"{name}\"\nkind = \"postgres\"\nurl = \"{url}\"\nschemas = [\"public\"]\n\n"));
    }
    std::fs::write(dir.path().join("sources.toml"), toml).expect("sources.toml");
    dir
}

/// lalo with upstreams, returning the server and the catalog dir (kept alive with it).
pub async fn start_with_upstreams(upstreams: &[(String, String)]) -> (TestServer, tempfile::TempDir) {
    let catalog = catalog_with(upstreams);
    let path = catalog.path().to_path_buf();
    let server = common::start_with(move |cfg| cfg.catalog.dir = path).await;
    (server, catalog)
}

/// lalo serving every defog database from the shared cluster.
async fn defog_lalo() -> (TestServer, tempfile::TempDir, &'static PgCluster) {
    let pg = pgcluster::defog().await;
    let ups: Vec<(String, String)> = DEFOG_DBS.iter().map(|db| (db.to_string(), pg.url(db))).collect();
    let (s, c) = start_with_upstreams(&ups).await;
    (s, c, pg)
}

type Rows = Vec<Vec<Option<String>>>;

async fn rows(client: &tokio_postgres::Client, sql: &str) -> Result<Rows, tokio_postgres::Error> {
    let msgs = client.simple_query(sql).await?;
    Ok(msgs
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect()),
            _ => None,
        })
        .collect())
}

/// Values are equal when their text is, or when both are numbers that agree to 1e-9 relative
/// (lalo and PostgreSQL may print a different number of trailing zeros for NUMERIC).
fn same_value(a: &Option<String>, b: &Option<String>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) if x == y => true,
        (Some(x), Some(y)) => match (x.parse::<f64>(), y.parse::<f64>()) {
            (Ok(p), Ok(q)) => (p - q).abs() <= 1e-9 * p.abs().max(q.abs()).max(1.0),
            _ => false,
        },
        _ => false,
    }
}

fn same_rows(a: &Rows, b: &Rows, ordered: bool) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let key = |r: &Vec<Option<String>>| format!("{r:?}");
    let (mut a, mut b) = (a.clone(), b.clone());
    if !ordered {
        a.sort_by_key(key);
        b.sort_by_key(key);
    }
    a.iter().zip(b.iter()).all(|(x, y)| x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| same_value(p, q)))
}

/// A defog gold query as one runnable statement: its first query with every braced column
/// alternative taken in full (the longest of the corpus expansions).
pub fn full_gold(gold: &str) -> String {
    let first = gold.split(';').map(str::trim).find(|q| !q.is_empty()).unwrap_or("");
    lalo::eval::corpus::expand_gold(first).into_iter().max_by_key(|q| q.len()).unwrap_or_default()
}

fn ordered(sql: &str) -> bool {
    sql.to_ascii_lowercase().contains("order by")
}

/// Hand-written queries per database: joins, aggregates, date arithmetic, ORDER BY/LIMIT.
const HAND_QUERIES: &[(&str, &str)] = &[
    ("academic", "SELECT a.name, count(*) AS n FROM author a JOIN writes w ON a.aid = w.aid GROUP BY a.name ORDER BY n DESC, a.name LIMIT 5"),
    ("academic", "SELECT p.year, sum(p.citation_num) AS c, avg(p.reference_num) AS r FROM publication p GROUP BY p.year ORDER BY p.year"),
    ("academic", "SELECT d.name, count(DISTINCT da.aid) FROM domain d LEFT JOIN domain_author da ON d.did = da.did GROUP BY d.name ORDER BY 1"),
    ("academic", "SELECT title FROM publication WHERE year BETWEEN 2015 AND 2020 AND title ILIKE '%learning%' ORDER BY title"),
    ("restaurants", "SELECT r.food_type, count(*), avg(r.rating) FROM restaurant r GROUP BY r.food_type ORDER BY 2 DESC, 1"),
    ("restaurants", "SELECT r.name, l.street_name FROM restaurant r JOIN location l ON r.id = l.restaurant_id WHERE r.rating > 4 ORDER BY r.name"),
    ("restaurants", "SELECT city_name, max(rating) FROM restaurant GROUP BY city_name HAVING count(*) > 1 ORDER BY city_name"),
    ("geography", "SELECT state_name, population / area AS density FROM state ORDER BY density DESC LIMIT 3"),
    ("geography", "SELECT s.state_name, count(c.city_name) FROM state s JOIN city c ON s.state_name = c.state_name GROUP BY s.state_name ORDER BY 2 DESC, 1 LIMIT 5"),
    ("yelp", "SELECT b.name, count(r.rid) AS reviews FROM business b JOIN review r ON b.business_id = r.business_id GROUP BY b.name ORDER BY reviews DESC, b.name LIMIT 5"),
    ("yelp", "SELECT r.year, r.month, count(*) FROM review r GROUP BY r.year, r.month ORDER BY 1, 2"),
    ("scholar", "SELECT v.venuename, count(p.paperid) FROM venue v JOIN paper p ON v.venueid = p.venueid GROUP BY v.venuename ORDER BY 2 DESC, 1"),
    ("advising", "SELECT s.lastname, s.total_credit FROM student s WHERE s.total_credit > 50 ORDER BY s.total_credit DESC, s.lastname LIMIT 10"),
    ("advising", "SELECT student_id, age(DATE '2024-06-30', admit_term), date_part('year', admit_term) FROM student ORDER BY student_id"),
    ("atis", "SELECT f.airline_code, count(*) FROM flight f GROUP BY f.airline_code ORDER BY 2 DESC, 1"),
];

/// Every hand query and every defog gold query that lalo plans returns what PostgreSQL returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defog_queries_match_postgres() {
    let (s, _c, pg) = defog_lalo().await;
    let mut clients = std::collections::HashMap::new();
    for db in DEFOG_DBS {
        clients.insert(*db, (s.connect_db("admin", db).await, pg.client(db).await));
    }
    for (db, sql) in HAND_QUERIES {
        let (via_lalo, direct) = &clients[db];
        let want = rows(direct, sql).await.unwrap_or_else(|e| panic!("{db}: {sql}: upstream: {e}"));
        let got = rows(via_lalo, sql).await.unwrap_or_else(|e| panic!("{db}: {sql}: lalo: {e}"));
        assert!(same_rows(&got, &want, ordered(sql)), "{db}: {sql}\nlalo: {got:?}\npostgres: {want:?}");
    }

    let (mut same, mut differ, mut failed) = (0, Vec::new(), Vec::new());
    let questions = lalo::eval::corpus::read_questions(&pgcluster::corpora().join("defog/questions.csv"), true)
        .expect("questions.csv");
    for q in &questions {
        let db = &q.db;
        let Some((via_lalo, direct)) = clients.get(db.as_str()) else { continue };
        let sql = full_gold(&q.gold);
        let Ok(want) = rows(direct, &sql).await else { continue };
        match rows(via_lalo, &sql).await {
            Ok(got) if same_rows(&got, &want, ordered(&sql)) => same += 1,
            Ok(got) => differ.push(format!("{db}: {sql}\n  lalo: {:?}\n  pg:   {:?}", &got[..got.len().min(3)], &want[..want.len().min(3)])),
            Err(e) => failed.push(format!("{db} [{}]: {} :: {sql}", sqlstate(&e), e.as_db_error().map(|d| d.message().replace('\n', " ")).unwrap_or_default())),
        }
    }
    println!("defog gold queries through lalo: {same} identical, {} different, {} not run, of {}", differ.len(), failed.len(), questions.len());
    for d in &differ {
        println!("DIFFERENT {d}");
    }
    for f in &failed {
        println!("NOT RUN {f}");
    }
    assert!(differ.is_empty(), "results differ from PostgreSQL:\n{}", differ.join("\n"));
    // Known: avg(interval) and to_char(time) do not plan in DataFusion 54, and one SELECT DISTINCT
    // with a column alias unparses into SQL PostgreSQL rejects. Anything more is a regression.
    assert!(failed.len() <= 3, "{} gold queries did not run through lalo:\n{}", failed.len(), failed.join("\n"));
}

/// Joins inside one upstream go upstream as one statement; EXPLAIN shows the SQL sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_push_down_and_explain_shows_the_upstream_sql() {
    let (s, _c, _pg) = defog_lalo().await;
    let c = s.connect_db("admin", "academic").await;
    let plan = rows(&c, "EXPLAIN SELECT a.name, count(*) FROM author a JOIN writes w ON a.aid = w.aid WHERE a.aid < 100 GROUP BY a.name LIMIT 3")
        .await
        .expect("explain");
    let text: String = plan.iter().flatten().flatten().cloned().collect::<Vec<_>>().join("\n");
    assert!(text.contains("VirtualExecutionPlan"), "{text}");
    let upstream_sql = text.lines().find(|l| l.contains("sql=")).unwrap_or_default().to_ascii_uppercase();
    for part in ["JOIN", "GROUP BY", "LIMIT 3", "< 100"] {
        assert!(upstream_sql.contains(part), "{part} not pushed down: {text}");
    }
}

/// Three-part names join an upstream table with the embedded TPC-H catalog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_joins_embedded_tpch() {
    let (s, _c, pg) = defog_lalo().await;
    let c = s.connect("admin").await;
    let got = rows(
        &c,
        "SELECT a.aid, a.name, n.n_name FROM academic.public.author a JOIN lalo.tpch.nation n ON a.aid = n.n_nationkey ORDER BY a.aid",
    )
    .await
    .expect("cross-database join");
    let direct = pg.client("academic").await;
    let want = rows(&direct, "SELECT aid, name FROM author WHERE aid BETWEEN 0 AND 24 ORDER BY aid").await.expect("pg");
    assert!(!want.is_empty());
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want.iter()) {
        assert_eq!(&g[..2], &w[..]);
        assert!(g[2].is_some(), "nation name joined: {g:?}");
    }
    // \l lists the upstreams as databases, and -d picks the default database.
    let dbs = rows(&c, "SELECT datname FROM pg_catalog.pg_database ORDER BY 1").await.expect("pg_database");
    let names: Vec<_> = dbs.iter().filter_map(|r| r[0].clone()).collect();
    for db in ["academic", "lalo", "yelp"] {
        assert!(names.iter().any(|n| n == db), "{db} in {names:?}");
    }
}

/// Upstream comments and types reach the catalog: `\d` and information_schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_comments_and_types_are_in_the_catalog() {
    let (s, _c, _pg) = defog_lalo().await;
    let c = s.connect_db("admin", "academic").await;
    let desc = rows(&c, "SELECT col_description('public.author'::regclass, 1)").await;
    let cols = rows(
        &c,
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'publication' ORDER BY ordinal_position",
    )
    .await
    .expect("information_schema");
    assert!(cols.iter().any(|r| r[0].as_deref() == Some("title") && r[1].as_deref() == Some("text")), "{cols:?}");
    assert!(cols.iter().any(|r| r[0].as_deref() == Some("year") && r[1].as_deref() == Some("bigint")), "{cols:?}");
    let _ = desc;
    let (ok, out, err) = common::psql_db(&s, "admin", "academic", &["-c", "\\d+ author"]).await;
    assert!(ok, "{err}");
    assert!(out.to_lowercase().contains("unique id"), "column comment from COMMENT ON shown: {out}");
}

/// A table created upstream appears after REFRESH UPSTREAM, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_picks_up_new_upstream_tables() {
    let pg = PgCluster::start().await;
    pg.psql("postgres", "CREATE DATABASE shop").await;
    pg.psql("shop", "CREATE TABLE item (id int PRIMARY KEY, price numeric(10,2), tags text[], made date, seen timestamptz, data jsonb, uid uuid, flag boolean, blob bytea, wait interval)").await;
    pg.psql("shop", "INSERT INTO item VALUES (1, 12.50, '{a,b}', '2024-02-29', '2024-03-01 10:00:00+00', '{\"k\": 1}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', true, '\\x0102', '1 day 02:00:00')").await;
    let (s, _c) = start_with_upstreams(&[("shop".into(), pg.url("shop"))]).await;
    let c = s.connect_db("admin", "shop").await;
    // Arrays arrive as arrays (PostgreSQL's text form on the wire).
    assert_eq!(rows(&c, "SELECT tags FROM item").await.expect("array"), vec![vec![Some("{a,b}".to_string())]]);
    let got = rows(&c, "SELECT id, price, made, seen, data, uid, flag, wait FROM item").await.expect("item");
    assert_eq!(
        got[0],
        ["1", "12.50", "2024-02-29", "2024-03-01 10:00:00+00", "{\"k\": 1}", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "t", "1 day 02:00:00"]
            .iter()
            .map(|v| Some(v.to_string()))
            .collect::<Vec<_>>()
    );
    let err = c.simple_query("SELECT * FROM later").await.expect_err("not there yet");
    assert_eq!(sqlstate(&err), "42P01");
    pg.psql("shop", "CREATE TABLE later (x int); INSERT INTO later VALUES (42)").await;
    c.simple_query("REFRESH UPSTREAM shop").await.expect("refresh");
    assert_eq!(rows(&c, "SELECT x FROM later").await.expect("later"), vec![vec![Some("42".to_string())]]);
}

/// Down at start: lalo serves everything else, reports the upstream in /readyz, answers 08006
/// naming it, and picks it up when it comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_at_start_then_back() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/ghost?sslmode=disable");
    let (s, _c) = start_with_upstreams(&[("ghost".into(), url)]).await;
    let c = s.connect("admin").await;
    let err = c.simple_query("SELECT * FROM ghost.public.t").await.expect_err("upstream is down");
    assert_eq!(sqlstate(&err), "08006", "{err:?}");
    assert!(err.as_db_error().map(|d| d.message().contains("ghost")).unwrap_or(false), "{err:?}");
    // Everything else keeps working, on the same connection.
    assert_eq!(rows(&c, "SELECT count(*) FROM lalo.tpch.region").await.expect("embedded"), vec![vec![Some("5".into())]]);
    let (code, body) = crate::protocol::http_get(&s.running.http_addr, "/readyz").await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("ghost"), "{body}");

    let pg = PgCluster::start_on(port).await;
    // The table comes with the database (from template1), so lalo never sees ghost without it.
    pg.psql("template1", "CREATE TABLE t (x int); INSERT INTO t VALUES (7)").await;
    pg.psql("postgres", "CREATE DATABASE ghost").await;
    let mut last = String::new();
    for _ in 0..60 {
        match rows(&c, "SELECT x FROM ghost.public.t").await {
            Ok(r) => {
                assert_eq!(r, vec![vec![Some("7".into())]]);
                let (code, body) = crate::protocol::http_get(&s.running.http_addr, "/readyz").await;
                assert_eq!(code, 200, "{body}");
                return;
            }
            Err(e) => last = format!("{e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("lalo did not recover the upstream: {last}");
}

/// Killed in the middle of a result: the client gets 08006 and its connection stays usable;
/// when the upstream is back, queries on it work again without restarting lalo.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_killed_mid_query_then_back() {
    let pg = PgCluster::start().await;
    pg.psql("postgres", "CREATE DATABASE slow").await;
    pg.psql(
        "slow",
        "CREATE FUNCTION crawl(i int) RETURNS int LANGUAGE sql AS 'SELECT pg_sleep(0.01); SELECT i'; \
         CREATE VIEW ticks AS SELECT crawl(g) AS g FROM generate_series(1, 3000) g; \
         CREATE TABLE one (x int); INSERT INTO one VALUES (1)",
    )
    .await;
    let (s, _c) = start_with_upstreams(&[("slow".into(), pg.url("slow"))]).await;
    let c = std::sync::Arc::new(s.connect_db("admin", "slow").await);
    assert_eq!(rows(&c, "SELECT x FROM one").await.expect("one"), vec![vec![Some("1".into())]]);
    let running = {
        let c = c.clone();
        tokio::spawn(async move { c.simple_query("SELECT g FROM ticks").await })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    pg.kill().await;
    let err = running.await.expect("task").expect_err("the upstream died mid-result");
    assert_eq!(sqlstate(&err), "08006", "{err:?}");
    // The client's connection to lalo is still good.
    assert_eq!(rows(&c, "SELECT 1").await.expect("connection usable"), vec![vec![Some("1".into())]]);
    let err = c.simple_query("SELECT x FROM one").await.expect_err("still down");
    assert_eq!(sqlstate(&err), "08006", "{err:?}");

    pg.resume().await;
    let mut last = String::new();
    for _ in 0..60 {
        match rows(&c, "SELECT x FROM one").await {
            Ok(r) => {
                assert_eq!(r, vec![vec![Some("1".into())]]);
                return;
            }
            Err(e) => last = format!("{e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("lalo did not recover the upstream: {last}");
}


/// Policies for upstream governance tests: analysts read restaurants with a row filter (New
/// York only) and a redacted street name; interns may not read restaurant.rating.
fn upstream_policies() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("policies");
    std::fs::copy(common::repo().join("policies/model.conf"), dir.path().join("model.conf")).expect("model.conf");
    std::fs::write(
        dir.path().join("policy.csv"),
        "g, admin, admins\ng, analyst, analysts\ng, intern, interns\n\
         p, admins, *, *, allow\n\
         p, analysts, restaurants.public.*, select, allow\n\
         p, interns, restaurants.public.*, select, allow\n\
         p, interns, restaurants.public.restaurant.rating, select, deny\n",
    )
    .expect("policy.csv");
    std::fs::write(
        dir.path().join("rules.toml"),
        "[[row_filter]]\ntable = \"restaurants.public.restaurant\"\nsubject = \"analysts\"\nfilter = \"city_name = 'New York'\"\n\n\
         [[mask]]\ntable = \"restaurants.public.location\"\ncolumn = \"street_name\"\nsubject = \"analysts\"\nkind = \"redact\"\n\n\
         [[mask]]\ntable = \"restaurants.public.geographic\"\ncolumn = \"county\"\nsubject = \"analysts\"\nkind = \"last4\"\n",
    )
    .expect("rules.toml");
    dir
}

/// lalo serving the defog `restaurants` database under the given policies, with `users` more
/// users (each with their name as password).
async fn serve_restaurants(pg: &pgcluster::PgCluster, policies: &tempfile::TempDir, users: &[&str]) -> (common::TestServer, tempfile::TempDir) {
    let catalog = catalog_with(&[("restaurants".into(), pg.url("restaurants"))]);
    let (p, c) = (policies.path().to_path_buf(), catalog.path().to_path_buf());
    let users: Vec<String> = users.iter().map(|u| u.to_string()).collect();
    let s = common::start_with(move |cfg| {
        cfg.governance.policies = p;
        cfg.catalog.dir = c;
        for u in users {
            cfg.users.push(lalo::config::UserConfig { name: u.clone(), password: Some(u), ..Default::default() });
        }
    })
    .await;
    (s, catalog)
}

/// Row filters and masks apply to upstream tables, are pushed down with the query, and hold
/// for repeated statements (simple and prepared) that take the direct lane.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_tables_are_governed_and_filters_push_down() {
    let pg = pgcluster::defog().await;
    let policies = upstream_policies();
    let (s, _catalog) = serve_restaurants(pg, &policies, &[]).await;
    let direct = pg.client("restaurants").await;
    let analyst = s.connect_db("analyst", "restaurants").await;
    let want = rows(&direct, "SELECT count(*) FROM restaurant WHERE city_name = 'New York'").await.expect("pg");
    assert_eq!(rows(&analyst, "SELECT count(*) FROM restaurant").await.expect("count"), want);
    // A Los Angeles restaurant is outside the analyst's rows, however it is asked for.
    for _ in 0..3 {
        assert!(rows(&analyst, "SELECT name FROM restaurant WHERE id = 1").await.expect("simple").is_empty());
        let got = analyst.query("SELECT name FROM restaurant WHERE id = $1", &[&1i64]).await.expect("prepared");
        assert!(got.is_empty());
        let got = analyst.query("SELECT name FROM restaurant WHERE id = $1", &[&4i64]).await.expect("prepared");
        assert_eq!(got.len(), 1, "a New York restaurant is visible");
        let got: String = got[0].get(0);
        assert_eq!(got, "The Pizza Place");
    }
    // The filter runs upstream, inside the one statement sent there.
    let plan = rows(&analyst, "EXPLAIN SELECT name FROM restaurant WHERE rating > 4").await.expect("explain");
    let text: String = plan.iter().flatten().flatten().cloned().collect::<Vec<_>>().join("\n");
    assert!(text.contains("New York"), "row filter pushed down: {text}");
    // A predicate that fails on a hidden row never sees it: no error tells the analyst that the
    // Los Angeles restaurant (id 1) exists, where PostgreSQL itself raises division by zero.
    let risky = "SELECT count(*) FROM restaurant WHERE 10 / (id - 1) > -100";
    assert!(direct.simple_query(risky).await.is_err(), "the hidden row fails the predicate");
    for _ in 0..2 {
        assert_eq!(rows(&analyst, risky).await.expect("guarded"), want);
    }
    let plan = rows(&analyst, &format!("EXPLAIN {risky}")).await.expect("explain");
    let text: String = plan.iter().flatten().flatten().cloned().collect::<Vec<_>>().join("\n");
    // The row-filtered table is a fence PostgreSQL does not see through; the caller's leakproof
    // conditions go inside it (so a key reaches the index), a failing one stays outside.
    assert!(text.contains("OFFSET 0) AS \"restaurant\" WHERE ((10 /"), "the predicate stays outside the fence: {text}");
    let plan = rows(&analyst, "EXPLAIN SELECT name FROM restaurant WHERE id = 4").await.expect("explain");
    let text: String = plan.iter().flatten().flatten().cloned().collect::<Vec<_>>().join("\n");
    assert!(text.contains("WHERE (\"restaurant\".\"id\" = 4) AND"), "the lookup goes inside the fence: {text}");
    // Masked values are masked, and a predicate on the real value finds nothing.
    let streets = rows(&analyst, "SELECT DISTINCT street_name FROM location").await.expect("mask");
    assert_eq!(streets, vec![vec![Some("***".to_string())]]);
    let real = rows(&direct, "SELECT street_name FROM location LIMIT 1").await.expect("pg")[0][0].clone().expect("street");
    let sql = format!("SELECT count(*) FROM location WHERE street_name = '{}'", real.replace('\'', "''"));
    assert_eq!(rows(&analyst, &sql).await.expect("masked predicate"), vec![vec![Some("0".into())]]);
    // A last4 mask runs upstream as PostgreSQL's own expression and gives what it would.
    let sql = "SELECT city_name, county FROM geographic ORDER BY city_name";
    let masked = "SELECT city_name, repeat('*', greatest(char_length(county) - 4, 0)) || right(county, 4) FROM geographic ORDER BY city_name";
    assert_eq!(rows(&analyst, sql).await.expect("last4"), rows(&direct, masked).await.expect("pg"));
    let plan = rows(&analyst, &format!("EXPLAIN {sql}")).await.expect("explain");
    let text: String = plan.iter().flatten().flatten().cloned().collect::<Vec<_>>().join("\n");
    assert!(text.contains("repeat(") && text.contains("base_sql"), "mask pushed down: {text}");
    // The intern's denied column is refused however it is reached, simple or prepared.
    let intern = s.connect_db("intern", "restaurants").await;
    for sql in ["SELECT rating FROM restaurant WHERE id = 1", "SELECT name FROM restaurant WHERE rating > 4", "SELECT name FROM restaurant ORDER BY RATING"] {
        let e = intern.simple_query(sql).await.expect_err("denied column");
        assert_eq!(sqlstate(&e), "42501", "{sql}: {e:?}");
    }
    let e = intern.query("SELECT rating FROM restaurant WHERE id = $1", &[&1i64]).await.expect_err("denied column, prepared");
    assert_eq!(sqlstate(&e), "42501");
    assert_eq!(rows(&intern, "SELECT count(name) FROM restaurant").await.expect("allowed"), rows(&direct, "SELECT count(name) FROM restaurant").await.expect("pg"));
    // The analyst sees no other upstream table than restaurants'; admins see all. A table the
    // analyst may not read at all answers as a missing one (the audit says denied).
    let e = analyst.simple_query("SELECT * FROM lalo.tpch.customer").await.expect_err("not granted");
    assert_eq!(sqlstate(&e), "42P01");
    // Every statement is in the audit trail, denied ones too.
    let audit = std::fs::read_to_string(s.audit_path()).expect("audit");
    let lookups = audit.lines().filter(|l| l.contains("SELECT name FROM restaurant WHERE id = ")).count();
    assert!(lookups >= 9, "every lookup audited, simple and prepared ({lookups})");
    assert!(audit.lines().any(|l| l.contains("\"denied\"") || l.contains("42501")));
}

/// Point lookups repeated with different literals or parameters return the upstream's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_point_lookups_match_postgres() {
    let (s, _c, pg) = defog_lalo().await;
    let via = s.connect_db("admin", "academic").await;
    let direct = pg.client("academic").await;
    for aid in [1i64, 2, 3, 999_999, 5, 1] {
        let sql = format!("SELECT name, homepage FROM author WHERE aid = {aid}");
        assert_eq!(rows(&via, &sql).await.expect("simple"), rows(&direct, &sql).await.expect("pg"), "{sql}");
        let got = via.query("SELECT name FROM author WHERE aid = $1", &[&aid]).await.expect("prepared");
        let want = direct.query("SELECT name FROM author WHERE aid = $1", &[&aid]).await.expect("pg");
        assert_eq!(got.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>(), want.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>());
    }
    let sql = "SELECT title FROM publication WHERE year BETWEEN 2010 AND 2020 AND title <> 'x' ORDER BY title";
    assert_eq!(rows(&via, sql).await.expect("range"), rows(&direct, sql).await.expect("pg"));
    // Repeated lookups ran upstream as one statement each, without planning (the PostgreSQL lane).
    let lane = crate::protocol::counter(&s, "lalo_postgres_statements_total").await;
    assert!(lane >= 10.0, "PostgreSQL lane used: {lane}");
    // Their rows were forwarded as the upstream encoded them (text and binary results).
    let forwarded = crate::protocol::counter(&s, "lalo_forwarded_statements_total").await;
    assert!(forwarded >= 10.0, "rows forwarded: {forwarded}");
}

/// Forwarded rows carry every type the pass-through forwards (NULLs, numerics with their scale,
/// dates, booleans) exactly as PostgreSQL prints them, in text and in binary; an upstream error
/// in the middle of a repeated statement reaches the client, and the next statement still runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_rows_are_the_upstreams() {
    let (s, _c, pg) = defog_lalo().await;
    let via = s.connect_db("admin", "academic").await;
    let direct = pg.client("academic").await;
    let typed = "SELECT aid, name, homepage, aid::numeric(10,2) / 3 AS third, aid % 2 = 0 AS even, \
                 DATE '2020-02-28' AS day, NULL::text AS nothing FROM author WHERE aid = ";
    let before = crate::protocol::counter(&s, "lalo_forwarded_statements_total").await;
    for aid in [1, 2, 3, 4, 1, 999_999] {
        let sql = format!("{typed}{aid}");
        assert_eq!(rows(&via, &sql).await.expect("simple"), rows(&direct, &sql).await.expect("pg"), "{sql}");
        // Binary results (tokio-postgres asks for them) decode to the same values.
        let ps = format!("{typed}$1");
        let got = via.query(&ps, &[&(aid as i64)]).await.expect("prepared");
        let want = direct.query(&ps, &[&(aid as i64)]).await.expect("pg prepared");
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.get::<_, Option<String>>(1), w.get::<_, Option<String>>(1));
            assert_eq!(g.get::<_, rust_decimal::Decimal>(3), w.get::<_, rust_decimal::Decimal>(3));
            assert_eq!(g.get::<_, bool>(4), w.get::<_, bool>(4));
            assert_eq!(g.get::<_, chrono::NaiveDate>(5), w.get::<_, chrono::NaiveDate>(5));
            assert_eq!(g.get::<_, Option<String>>(6), None);
        }
    }
    let after = crate::protocol::counter(&s, "lalo_forwarded_statements_total").await;
    assert!(after - before >= 8.0, "forwarded: {before} -> {after}");
    // An error raised upstream while a forwarded statement runs.
    let e = via.simple_query("SELECT aid / (aid - 3) FROM author WHERE aid = 3").await.expect_err("division by zero");
    assert!(e.to_string().contains("division by zero") || format!("{e:?}").contains("division by zero"), "{e:?}");
    // With the upstream's own SQLSTATE, as PostgreSQL itself would report it.
    assert_eq!(e.code(), Some(&tokio_postgres::error::SqlState::DIVISION_BY_ZERO), "{e:?}");
    let again = rows(&via, "SELECT aid / (aid - 3) FROM author WHERE aid = 5").await.expect("next statement");
    assert_eq!(again, rows(&direct, "SELECT aid / (aid - 3) FROM author WHERE aid = 5").await.expect("pg"));
}

/// Lookups by primary key from many clients share one pipelined upstream connection: every
/// client gets its own row (text and binary, simple and prepared), an upstream error in one
/// lookup reaches only its client, lookups without a key keep connections to themselves, and an
/// upstream killed under the queued lookups fails them with 08006 and comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_lookups_share_pipelined_connections() {
    let pg = PgCluster::start().await;
    pg.psql("postgres", "CREATE DATABASE shop").await;
    pg.psql(
        "shop",
        "CREATE TABLE item (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2)); \
         INSERT INTO item SELECT g, 'item-' || g, g / 4.0 FROM generate_series(1, 1000) g; \
         CREATE TABLE loose (id int, name text); INSERT INTO loose SELECT g, 'loose-' || g FROM generate_series(1, 100) g",
    )
    .await;
    let catalog = catalog_with(&[("shop".into(), pg.url("shop"))]);
    let path = catalog.path().to_path_buf();
    let s = std::sync::Arc::new(
        common::start_with(move |cfg| {
            cfg.catalog.dir = path;
            // One connection for every client's lookups: they have to queue on it.
            cfg.catalog.upstream_pipelined_connections = Some(1);
            // Lookups planned by the engine (the PostgreSQL lane sends each on a connection of its own).
            cfg.catalog.postgres_lane = false;
        })
        .await,
    );
    let before = crate::protocol::counter(&s, "lalo_pipelined_statements_total").await;
    let clients: Vec<_> = (0..12)
        .map(|k| {
            let s = s.clone();
            tokio::spawn(async move {
                let c = s.connect_db("admin", "shop").await;
                for i in 0..40i32 {
                    let id = 1 + (k * 83 + i * 37) % 1000;
                    if i % 4 == 0 {
                        let sql = format!("SELECT id, name, price FROM item WHERE id = {id}");
                        let r = rows(&c, &sql).await.expect("simple lookup");
                        let price = format!("{:.2}", id as f64 / 4.0);
                        assert_eq!(r, vec![vec![Some(id.to_string()), Some(format!("item-{id}")), Some(price)]], "{sql}");
                    } else if i % 13 == 0 {
                        // An upstream error in the middle of everyone's lookups reaches this client only.
                        let e = c
                            .query("SELECT 10 / (id - $1) FROM item WHERE id = $1", &[&id])
                            .await
                            .expect_err("division by zero");
                        assert_eq!(e.code(), Some(&tokio_postgres::error::SqlState::DIVISION_BY_ZERO), "{e:?}");
                    } else {
                        let r = c.query("SELECT name, id FROM item WHERE id = $1", &[&id]).await.expect("prepared lookup");
                        assert_eq!(r.len(), 1);
                        assert_eq!(r[0].get::<_, String>(0), format!("item-{id}"));
                        assert_eq!(r[0].get::<_, i32>(1), id);
                    }
                }
                let none = c.query("SELECT name FROM item WHERE id = $1", &[&5000i32]).await.expect("missing key");
                assert!(none.is_empty());
            })
        })
        .collect();
    for c in clients {
        c.await.expect("client");
    }
    let after = crate::protocol::counter(&s, "lalo_pipelined_statements_total").await;
    assert!(after - before >= 12.0 * 36.0, "lookups pipelined: {before} -> {after}");
    // Each lookup is recorded with its row: one durable line once it came back whole, or, when
    // no sync was running to share, a start line overlapping the lookup and an end line.
    let recs = crate::audit::records(&s.audit_path());
    let lookups: Vec<_> = recs.iter().filter(|r| r["input"] == "SELECT name, id FROM item WHERE id = $1" && r["kind"] != "start").collect();
    assert!(lookups.len() >= 12 * 25, "every prepared lookup is recorded: {}", lookups.len());
    for r in &lookups {
        assert!(r["kind"] == "statement" || r["kind"] == "end", "{r}");
        assert_eq!((&r["rows"], &r["decision"]), (&1.into(), &"allowed".into()), "{r}");
    }
    assert!(lookups.iter().any(|r| r["kind"] == "statement"), "lookups arriving while a sync ran share it: one line each");
    let failed: Vec<_> = recs.iter().filter(|r| r["input"] == "SELECT 10 / (id - $1) FROM item WHERE id = $1" && r["kind"] != "start").collect();
    let bad: Vec<_> = failed.iter().filter(|r| !(r["error"].as_str().is_some_and(|e| e.starts_with("22012")) && r["decision"] == "failed")).collect();
    assert!(!failed.is_empty() && bad.is_empty(), "{bad:?}");
    let (ok, said) = crate::audit::verify(&s.audit_path(), false);
    assert!(ok, "{said}");
    // A table without a primary key is not a key lookup: its statements are not pipelined.
    let c = s.connect_db("admin", "shop").await;
    for id in 1..5i32 {
        let r = c.query("SELECT name FROM loose WHERE id = $1", &[&id]).await.expect("loose");
        assert_eq!(r[0].get::<_, String>(0), format!("loose-{id}"));
    }
    assert_eq!(crate::protocol::counter(&s, "lalo_pipelined_statements_total").await, after, "no key, no pipeline");
    // An aggregate the engine sends upstream comes back in PostgreSQL's type (sum(bigint) is
    // numeric) and is cast to the plan's: the answer, not a crashed task.
    for (sql, want) in [
        ("SELECT sum(id::bigint), count(*) FROM item", vec![vec![Some("500500".to_string()), Some("1000".to_string())]]),
        (
            "SELECT id % 2 AS odd, sum(id::bigint) FROM item GROUP BY 1 ORDER BY 1",
            vec![vec![Some("0".to_string()), Some("250500".to_string())], vec![Some("1".to_string()), Some("250000".to_string())]],
        ),
    ] {
        assert_eq!(rows(&c, sql).await.expect(sql), want, "{sql}");
    }

    // The upstream dies under queued lookups: every client hears 08006 (none hangs) and keeps
    // its connection to lalo.
    let busy: Vec<_> = (0..6)
        .map(|k| {
            let s = s.clone();
            tokio::spawn(async move {
                let c = s.connect_db("admin", "shop").await;
                for i in 0..100_000i32 {
                    let id = 1 + (k * 7 + i) % 1000;
                    if let Err(e) = c.query("SELECT name FROM item WHERE id = $1", &[&id]).await {
                        assert_eq!(sqlstate(&e), "08006", "{e:?}");
                        let one = c.simple_query("SELECT 1").await.expect("connection usable");
                        assert!(!one.is_empty());
                        return;
                    }
                }
                panic!("the upstream never went away");
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    pg.kill().await;
    for b in busy {
        tokio::time::timeout(Duration::from_secs(30), b).await.expect("no client hangs").expect("client");
    }
    pg.resume().await;
    let mut last = String::new();
    for _ in 0..60 {
        match c.query("SELECT name FROM item WHERE id = $1", &[&7i32]).await {
            Ok(r) => {
                assert_eq!(r[0].get::<_, String>(0), "item-7");
                return;
            }
            Err(e) => last = format!("{e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("lalo did not recover the upstream: {last}");
}

/// A statement over an upstream and an embedded table: conditions DataFusion keeps above the
/// upstream's part hold (none is dropped on the way), for the caller's own filters and for the
/// row filter alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditions_above_an_upstream_part_hold_in_mixed_statements() {
    let pg = pgcluster::defog().await;
    let policies = upstream_policies();
    let csv = policies.path().join("policy.csv");
    let mut rules = std::fs::read_to_string(&csv).expect("policy.csv");
    rules.push_str("p, analysts, lalo.tpch.region, select, allow\ng, auditor, auditors\n");
    rules.push_str("p, auditors, restaurants.public.*, select, allow\np, auditors, lalo.tpch.region, select, allow\n");
    std::fs::write(&csv, rules).expect("policy.csv");
    // The auditor's row filter reads lalo's own tables and stays a subquery (`IN (…) OR …`).
    let toml = policies.path().join("rules.toml");
    let mut filters = std::fs::read_to_string(&toml).expect("rules.toml");
    filters.push_str(
        "\n[[row_filter]]\ntable = \"restaurants.public.restaurant\"\nsubject = \"auditors\"\n\
         filter = \"id IN (SELECT r_regionkey FROM lalo.tpch.region) OR id < 0\"\n",
    );
    std::fs::write(&toml, filters).expect("rules.toml");
    let (s, _catalog) = serve_restaurants(pg, &policies, &["auditor"]).await;
    let direct = pg.client("restaurants").await;
    let admin = s.connect_db("admin", "lalo").await;
    // The upstream's rows with rating above 4, joined to an embedded table on an expression
    // DataFusion must compute itself.
    let want = rows(&direct, "SELECT count(*) FROM restaurant WHERE rating > 4 AND id % 5 BETWEEN 0 AND 4").await.expect("pg");
    let sql = "SELECT count(*) FROM restaurants.public.restaurant r JOIN tpch.region g ON r.id % 5 = g.r_regionkey WHERE r.rating > 4";
    assert_eq!(rows(&admin, sql).await.expect("mixed"), want, "a condition above the upstream was dropped");
    let analyst = s.connect_db("analyst", "lalo").await;
    let want = rows(&direct, "SELECT count(*) FROM restaurant WHERE city_name = 'New York' AND rating > 4").await.expect("pg");
    assert_eq!(rows(&analyst, sql).await.expect("mixed, filtered"), want, "the row filter or a condition was dropped");
    // A failing predicate never meets a row that filter hides (restaurant 5 is hidden; PostgreSQL
    // itself fails on it), through a WHERE and a join alike.
    let auditor = s.connect_db("auditor", "restaurants").await;
    let risky = "SELECT count(*) FROM restaurant WHERE 10 / (id - 5) > -100";
    assert!(direct.simple_query(risky).await.is_err(), "the hidden row fails the predicate");
    let want = rows(&direct, "SELECT count(*) FROM restaurant WHERE id IN (0, 1, 2, 3, 4)").await.expect("pg");
    for sql in [risky, "SELECT count(*) FROM restaurant r JOIN location l ON l.restaurant_id = r.id OR true WHERE 10 / (r.id - 5) > -100 AND l.restaurant_id = r.id"] {
        match rows(&auditor, sql).await {
            Ok(got) if sql == risky => assert_eq!(got, want, "{sql}"),
            Ok(_) => {}
            Err(e) => assert!(!format!("{e:?}").contains("22012") && !format!("{e:?}").contains("division"), "{sql}: {e:?}"),
        }
    }
}
