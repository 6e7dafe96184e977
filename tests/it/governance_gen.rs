//! Generated statements over the TPC-H demo. A seeded generator composes SQL from a grammar of
//! constructs (subqueries of every kind, quantified comparisons, outer references, LATERAL, CTEs
//! plain, nested and recursive, set operations, windows, VALUES joins, derived tables, CASE,
//! aggregate FILTER, GROUP BY / HAVING / ORDER BY) and checks two properties whatever the
//! composition:
//!
//! - the intern, denied `tpch.customer.c_acctbal`, never gets a statement accepted that reads it
//!   (simple and extended protocol, and MCP's `query` tool), while the same statement with an
//!   allowed column in its place is not refused;
//! - the analyst's row filter on `tpch.orders` gives exactly the rows the admin gets from the
//!   same statement with the filter written out as a derived table.
//!
//! Every violation is collected and reported with its statement, grouped by construct, so one
//! run names every construct class that misbehaves. `LALO_GEN_SEED` picks another seed.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rmcp::model::CallToolRequestParams;
use rmcp::ServiceExt;
use serde_json::json;
use tokio_postgres::Client;

use crate::common::{self, sqlstate};

const SEED: u64 = 0x00c0_ffee_1a10;

/// How many statements each grammar entry contributes, and how many wrappers each gets: the
/// bare construct first, then the construct inside one and two others.
const WRAP_DEPTHS: [usize; 5] = [0, 1, 1, 2, 2];

/// The analyst's row filter on orders, written out (analyst's nation attribute is 7).
const FILTERED_ORDERS: &str =
    "(SELECT * FROM tpch.orders WHERE o_custkey IN (SELECT c_custkey FROM tpch.customer WHERE c_nationkey = 7))";

const MCP_TOKEN_VAR: &str = "LALO_TEST_MCP_TOKEN_GEN";
const MCP_TOKEN: &str = "s3cret-gen";

/// Statements that place a column of `tpch.customer` somewhere; each yields one column `k`.
///
/// `{C}` is the customer table as the FROM clause names it (with or without an alias), `{Q}` the
/// qualifier its columns take from inside a subquery, `{X}` the column (denied `c_acctbal` or
/// allowed `c_nationkey`, spelled and wrapped variously), `{STAR}` a wildcard (or, allowed, an
/// explicit column list), `{OP}` / `{QUANT}` / `{SETOP}` a comparison, ALL/ANY/SOME and a set
/// operation.
const CUSTOMER_CORES: &[(&str, &str)] = &[
    ("select list", "SELECT CAST({X} AS BIGINT) AS k FROM {C}"),
    ("where", "SELECT c_custkey AS k FROM {C} WHERE {X} > 0"),
    ("order by", "SELECT c_custkey AS k FROM {C} ORDER BY {X} DESC, c_custkey LIMIT 5"),
    ("group by", "SELECT count(*) AS k FROM {C} GROUP BY {X}"),
    ("having", "SELECT c_nationkey AS k FROM {C} GROUP BY c_nationkey HAVING max({X}) > 0"),
    ("aggregate filter", "SELECT count(*) FILTER (WHERE {X} > 0) AS k FROM {C}"),
    ("aggregate argument", "SELECT CAST(sum({X}) AS BIGINT) AS k FROM {C}"),
    ("case", "SELECT CASE WHEN {X} > 0 THEN c_custkey ELSE 0 END AS k FROM {C}"),
    ("case in where", "SELECT c_custkey AS k FROM {C} WHERE CASE WHEN c_custkey > 10 THEN {X} ELSE 0 END > 0"),
    ("window partition by", "SELECT CAST(rank() OVER (PARTITION BY {X} ORDER BY c_custkey) AS BIGINT) AS k FROM {C}"),
    (
        "window order by",
        "SELECT CAST(row_number() OVER (PARTITION BY c_nationkey ORDER BY {X}, c_custkey) AS BIGINT) AS k FROM {C}",
    ),
    ("window argument", "SELECT CAST(sum({X}) OVER (PARTITION BY c_nationkey) AS BIGINT) AS k FROM {C}"),
    ("join on", "SELECT n.n_nationkey AS k FROM tpch.nation n JOIN {C} ON c_nationkey = n.n_nationkey AND {X} > 0"),
    ("values join", "SELECT v.k FROM (VALUES (1), (2), (3)) v(k) JOIN {C} ON c_custkey = v.k WHERE {X} > 0"),
    ("derived table, column unused", "SELECT d.k FROM (SELECT c_custkey AS k, {X} AS b FROM {C}) d"),
    ("derived table", "SELECT d.k FROM (SELECT c_custkey AS k, {X} AS b FROM {C}) d WHERE d.b > 0"),
    (
        "nested derived tables",
        "SELECT e.k FROM (SELECT d.k FROM (SELECT c_custkey AS k, {X} AS b FROM {C}) d WHERE d.b > 0) e",
    ),
    ("cte", "WITH w AS (SELECT c_custkey AS k, {X} AS b FROM {C}) SELECT k FROM w WHERE b > 0"),
    ("cte, column unused", "WITH w AS (SELECT c_custkey AS k, {X} AS b FROM {C}) SELECT k FROM w"),
    ("cte, unused", "WITH w AS (SELECT {X} AS b FROM {C}) SELECT n_nationkey AS k FROM tpch.nation"),
    (
        "nested ctes",
        "WITH a AS (SELECT c_custkey AS k, {X} AS b FROM {C}), a2 AS (SELECT k, b FROM a WHERE k < 100) \
         SELECT k FROM a2 WHERE b > 0",
    ),
    (
        "cte inside cte",
        "WITH a AS (WITH i AS (SELECT c_custkey AS k, {X} AS b FROM {C}) SELECT k FROM i WHERE b > 0) SELECT k FROM a",
    ),
    (
        "recursive cte, anchor",
        "WITH RECURSIVE r(k, b) AS (SELECT c_custkey, {X} FROM {C} WHERE c_custkey = 1 \
         UNION ALL SELECT k + 1, b FROM r WHERE k < 5) SELECT k FROM r",
    ),
    (
        "recursive cte, recursive term",
        "WITH RECURSIVE r(k) AS (SELECT CAST(1 AS BIGINT) UNION ALL SELECT r.k + 1 FROM r \
         JOIN {C} ON c_custkey = r.k + 1 WHERE {X} > -100000 AND r.k < 5) SELECT k FROM r",
    ),
    ("scalar subquery", "SELECT n_nationkey AS k FROM tpch.nation WHERE n_nationkey < (SELECT max({X}) FROM {C})"),
    ("scalar subquery in select list", "SELECT (SELECT CAST(max({X}) AS BIGINT) FROM {C}) AS k"),
    (
        "correlated scalar subquery",
        "SELECT (SELECT count(*) FROM {C} WHERE c_nationkey = n.n_nationkey AND {X} > 0) AS k FROM tpch.nation n",
    ),
    (
        "in subquery",
        "SELECT n_nationkey AS k FROM tpch.nation WHERE n_nationkey IN (SELECT c_nationkey FROM {C} WHERE {X} > 0)",
    ),
    (
        "in subquery, select list",
        "SELECT n_nationkey AS k FROM tpch.nation WHERE n_nationkey IN (SELECT CAST({X} AS BIGINT) FROM {C})",
    ),
    (
        "not in subquery",
        "SELECT n_nationkey AS k FROM tpch.nation WHERE n_nationkey NOT IN (SELECT c_nationkey FROM {C} WHERE {X} > 5000)",
    ),
    (
        "exists",
        "SELECT n.n_nationkey AS k FROM tpch.nation n WHERE EXISTS \
         (SELECT 1 FROM {C} WHERE c_nationkey = n.n_nationkey AND {X} > 0)",
    ),
    (
        "not exists",
        "SELECT n.n_nationkey AS k FROM tpch.nation n WHERE NOT EXISTS \
         (SELECT 1 FROM {C} WHERE c_nationkey = n.n_nationkey AND {X} > 9000)",
    ),
    (
        "quantified, subquery select list",
        "SELECT n_nationkey AS k FROM tpch.nation WHERE n_nationkey {OP} {QUANT} (SELECT {X} FROM {C} WHERE c_custkey < 20)",
    ),
    (
        "quantified, subquery where",
        "SELECT n_nationkey AS k FROM tpch.nation WHERE n_nationkey {OP} {QUANT} (SELECT c_nationkey FROM {C} WHERE {X} > 0)",
    ),
    ("quantified, left operand", "SELECT c_custkey AS k FROM {C} WHERE {X} {OP} {QUANT} (SELECT n_nationkey FROM tpch.nation)"),
    (
        "lateral subquery",
        "SELECT l.k FROM tpch.nation n, LATERAL (SELECT count(*) AS k FROM {C} WHERE c_nationkey = n.n_nationkey AND {X} > 0) l",
    ),
    ("set operation, left branch", "SELECT c_custkey AS k FROM {C} WHERE {X} > 0 {SETOP} SELECT n_nationkey FROM tpch.nation"),
    ("set operation, right branch", "SELECT n_nationkey AS k FROM tpch.nation {SETOP} SELECT c_custkey FROM {C} WHERE {X} > 0"),
    ("set operation, select list", "SELECT n_nationkey AS k FROM tpch.nation {SETOP} SELECT CAST({X} AS BIGINT) FROM {C}"),
    (
        "outer reference in exists",
        "SELECT c_custkey AS k FROM {C} WHERE EXISTS \
         (SELECT 1 FROM tpch.orders o WHERE o.o_custkey = {Q}c_custkey AND o.o_totalprice > {X})",
    ),
    (
        "outer reference in not exists",
        "SELECT c_custkey AS k FROM {C} WHERE NOT EXISTS \
         (SELECT 1 FROM tpch.orders o WHERE o.o_custkey = {Q}c_custkey AND o.o_totalprice < {X})",
    ),
    (
        "outer reference in scalar subquery",
        "SELECT (SELECT count(*) FROM tpch.orders o WHERE o.o_custkey = {Q}c_custkey AND o.o_totalprice < {X}) AS k FROM {C}",
    ),
    (
        "outer reference in in-subquery",
        "SELECT c_custkey AS k FROM {C} WHERE c_nationkey IN (SELECT n_nationkey FROM tpch.nation WHERE n_regionkey < {X})",
    ),
    (
        "outer reference in quantified subquery",
        "SELECT c_custkey AS k FROM {C} WHERE c_nationkey {OP} {QUANT} \
         (SELECT n_nationkey FROM tpch.nation WHERE n_regionkey < {X})",
    ),
    (
        "outer reference in lateral subquery",
        "SELECT l.k FROM {C}, LATERAL (SELECT count(*) AS k FROM tpch.orders o \
         WHERE o.o_custkey = {Q}c_custkey AND o.o_totalprice > {X}) l",
    ),
    (
        "outer reference two levels up",
        "SELECT c_custkey AS k FROM {C} WHERE EXISTS (SELECT 1 FROM tpch.nation n WHERE n.n_nationkey = {Q}c_nationkey \
         AND EXISTS (SELECT 1 FROM tpch.region r WHERE r.r_regionkey = n.n_regionkey AND {X} > 0))",
    ),
    (
        "outer reference in select-list subquery",
        "SELECT (SELECT max(n_nationkey) FROM tpch.nation WHERE n_nationkey < {X}) AS k FROM {C}",
    ),
    ("wildcard in derived table", "SELECT d.c_custkey AS k FROM (SELECT {STAR} FROM {C}) d"),
    ("wildcard in cte", "WITH w AS (SELECT {STAR} FROM {C}) SELECT c_custkey AS k FROM w"),
    (
        "wildcard in exists",
        "SELECT n.n_nationkey AS k FROM tpch.nation n WHERE EXISTS (SELECT {STAR} FROM {C} WHERE c_nationkey = n.n_nationkey)",
    ),
];

/// Statements over `tpch.orders`; each yields one column `k`. `{O}` is orders without an alias,
/// `{OA}` orders followed by an alias.
const ORDERS_CORES: &[(&str, &str)] = &[
    ("plain", "SELECT o_custkey AS k FROM {O}"),
    ("unaliased, qualified columns", "SELECT orders.o_custkey AS k FROM {O} WHERE orders.o_orderkey < 20000"),
    ("where", "SELECT o.o_custkey AS k FROM {OA} o WHERE o.o_orderstatus = 'F'"),
    ("count", "SELECT count(*) AS k FROM {O}"),
    ("sum", "SELECT CAST(sum(o_totalprice) AS BIGINT) AS k FROM {O}"),
    ("group by, having", "SELECT o_custkey AS k FROM {O} GROUP BY o_custkey HAVING count(*) > 10"),
    ("aggregate filter", "SELECT count(*) FILTER (WHERE o_orderpriority = '1-URGENT') AS k FROM {O}"),
    ("case", "SELECT CASE WHEN o_totalprice > 100000 THEN 1 ELSE 0 END AS k FROM {O}"),
    ("window order by", "SELECT CAST(row_number() OVER (ORDER BY o_orderkey) AS BIGINT) AS k FROM {O} WHERE o_orderkey < 3000"),
    (
        "window partition by",
        "SELECT CAST(rank() OVER (PARTITION BY o_custkey ORDER BY o_totalprice DESC) AS BIGINT) AS k FROM {O}",
    ),
    ("window aggregate", "SELECT CAST(count(*) OVER () AS BIGINT) AS k FROM {O} WHERE o_orderkey < 500"),
    ("derived table", "SELECT d.k FROM (SELECT o_custkey AS k FROM {O}) d"),
    (
        "exists",
        "SELECT c.c_custkey AS k FROM tpch.customer c WHERE EXISTS (SELECT 1 FROM {OA} o WHERE o.o_custkey = c.c_custkey)",
    ),
    (
        "not exists",
        "SELECT c.c_custkey AS k FROM tpch.customer c WHERE NOT EXISTS (SELECT 1 FROM {OA} o WHERE o.o_custkey = c.c_custkey)",
    ),
    ("in subquery", "SELECT c_custkey AS k FROM tpch.customer WHERE c_custkey IN (SELECT o_custkey FROM {O})"),
    ("not in subquery", "SELECT c_custkey AS k FROM tpch.customer WHERE c_custkey NOT IN (SELECT o_custkey FROM {O})"),
    (
        "correlated scalar subquery",
        "SELECT (SELECT count(*) FROM {OA} o WHERE o.o_custkey = c.c_custkey) AS k FROM tpch.customer c WHERE c.c_custkey < 300",
    ),
    ("scalar subquery", "SELECT n_nationkey AS k FROM tpch.nation WHERE n_nationkey * 1000 < (SELECT count(*) FROM {O})"),
    (
        "quantified",
        "SELECT c_custkey AS k FROM tpch.customer WHERE c_custkey {OP} {QUANT} (SELECT o_custkey FROM {O} WHERE o_orderkey < 2000)",
    ),
    (
        "quantified, correlated",
        "SELECT c.c_custkey AS k FROM tpch.customer c WHERE c.c_custkey < 500 AND c.c_nationkey * 10000 {OP} {QUANT} \
         (SELECT o.o_totalprice FROM {OA} o WHERE o.o_custkey = c.c_custkey)",
    ),
    (
        "lateral",
        "SELECT l.k FROM tpch.customer c, LATERAL (SELECT count(*) AS k FROM {OA} o WHERE o.o_custkey = c.c_custkey) l \
         WHERE c.c_custkey < 300",
    ),
    ("cte", "WITH x AS (SELECT o_custkey, count(*) AS n FROM {O} GROUP BY o_custkey) SELECT n AS k FROM x"),
    (
        "nested ctes",
        "WITH a AS (SELECT o_custkey FROM {O}), b AS (SELECT o_custkey AS k FROM a WHERE o_custkey % 2 = 0) SELECT k FROM b",
    ),
    (
        "recursive cte, anchor",
        "WITH RECURSIVE r(k, d) AS (SELECT o_custkey, 0 FROM {O} WHERE o_orderkey < 500 \
         UNION ALL SELECT k, d + 1 FROM r WHERE d < 2) SELECT k FROM r",
    ),
    (
        "recursive cte, recursive term",
        "WITH RECURSIVE r(k) AS (SELECT min(o_custkey) FROM {O} UNION ALL SELECT r.k + 1 FROM r \
         JOIN (SELECT DISTINCT o_custkey FROM {O}) o ON o.o_custkey = r.k + 1 WHERE r.k < 1500) SELECT k FROM r",
    ),
    ("set operation, left", "SELECT o_custkey AS k FROM {O} {SETOP} SELECT c_custkey FROM tpch.customer WHERE c_custkey < 100"),
    ("set operation, right", "SELECT c_custkey AS k FROM tpch.customer WHERE c_custkey < 400 {SETOP} SELECT o_custkey FROM {O}"),
    (
        "set operation, both",
        "SELECT o1.o_custkey AS k FROM {OA} o1 WHERE o1.o_orderstatus = 'F' {SETOP} \
         SELECT o2.o_custkey FROM {OA} o2 WHERE o2.o_orderstatus = 'O'",
    ),
    ("join", "SELECT c.c_nationkey AS k FROM {OA} o JOIN tpch.customer c ON c.c_custkey = o.o_custkey"),
    (
        "self join",
        "SELECT o1.o_orderkey AS k FROM {OA} o1 JOIN {OA} o2 ON o1.o_custkey = o2.o_custkey \
         AND o1.o_orderkey < o2.o_orderkey WHERE o1.o_orderkey < 3000",
    ),
    (
        "left join",
        "SELECT c.c_custkey AS k FROM tpch.customer c LEFT JOIN {OA} o ON o.o_custkey = c.c_custkey WHERE o.o_orderkey IS NULL",
    ),
    (
        "values join",
        "SELECT count(o.o_orderkey) AS k FROM (VALUES ('F'), ('O'), ('P')) v(s) LEFT JOIN {OA} o ON o.o_orderstatus = v.s GROUP BY v.s",
    ),
];

/// Contexts a statement yielding `k` is placed in; `{S}` is that statement, `{i}` a fresh number.
const WRAPPERS: &[(&str, &str)] = &[
    ("derived table", "SELECT d{i}.k FROM ({S}) d{i}"),
    ("cte", "WITH w{i} AS ({S}) SELECT k FROM w{i}"),
    ("unused cte", "WITH w{i} AS ({S}) SELECT n_nationkey AS k FROM tpch.nation"),
    ("nested ctes", "WITH a{i} AS ({S}), b{i} AS (SELECT k FROM a{i}) SELECT k FROM b{i}"),
    ("in subquery", "SELECT n_nationkey AS k FROM tpch.nation WHERE n_nationkey IN ({S})"),
    ("not in subquery", "SELECT n_nationkey AS k FROM tpch.nation WHERE n_nationkey NOT IN ({S})"),
    ("exists", "SELECT n_nationkey AS k FROM tpch.nation WHERE EXISTS ({S})"),
    ("not exists", "SELECT n_nationkey AS k FROM tpch.nation WHERE NOT EXISTS ({S})"),
    (
        "correlated exists",
        "SELECT n{i}.n_nationkey AS k FROM tpch.nation n{i} WHERE EXISTS (SELECT 1 FROM ({S}) s{i} WHERE s{i}.k = n{i}.n_nationkey)",
    ),
    ("scalar subquery", "SELECT n_nationkey AS k FROM tpch.nation WHERE n_nationkey < (SELECT max(s{i}.k) FROM ({S}) s{i})"),
    ("scalar subquery in select list", "SELECT (SELECT count(*) FROM ({S}) s{i}) AS k"),
    ("quantified comparison", "SELECT n_nationkey AS k FROM tpch.nation WHERE n_nationkey {OP} {QUANT} ({S})"),
    ("set operation, left", "({S}) {SETOP} (SELECT n_nationkey FROM tpch.nation)"),
    ("set operation, right", "SELECT n_nationkey AS k FROM tpch.nation {SETOP} ({S})"),
    (
        "lateral",
        "SELECT l{i}.k FROM tpch.nation n{i}, LATERAL (SELECT s{i}.k FROM ({S}) s{i} WHERE s{i}.k = n{i}.n_nationkey) l{i}",
    ),
    ("values join", "SELECT v{i}.k FROM (VALUES (1), (2), (3)) v{i}(k) JOIN ({S}) s{i} ON s{i}.k = v{i}.k"),
    ("window", "SELECT CAST(rank() OVER (PARTITION BY s{i}.k ORDER BY s{i}.k) AS BIGINT) AS k FROM ({S}) s{i}"),
    (
        "case",
        "SELECT CASE WHEN n_nationkey < (SELECT count(*) FROM ({S}) s{i}) THEN 1 ELSE 0 END AS k FROM tpch.nation",
    ),
    ("aggregate filter", "SELECT count(*) FILTER (WHERE s{i}.k > 0) AS k FROM ({S}) s{i}"),
    (
        "group by, having, order by",
        "SELECT s{i}.k FROM ({S}) s{i} GROUP BY s{i}.k HAVING count(*) > 0 ORDER BY s{i}.k",
    ),
    (
        "left join",
        "SELECT n{i}.n_nationkey AS k FROM tpch.nation n{i} LEFT JOIN ({S}) s{i} ON s{i}.k = n{i}.n_nationkey",
    ),
];

const OPS: [&str; 6] = ["=", "<>", "<", ">", "<=", ">="];
const QUANTS: [&str; 3] = ["ALL", "ANY", "SOME"];
const SETOPS: [&str; 6] = ["UNION", "UNION ALL", "INTERSECT", "INTERSECT ALL", "EXCEPT", "EXCEPT ALL"];
/// Expressions the column is used through.
const COLUMN_EXPRS: [&str; 6] = ["{}", "{}", "abs({})", "({} + 0)", "coalesce({}, 0)", "CAST({} AS DOUBLE)"];
const ORDERS_NAMES: [&str; 4] = ["tpch.orders", "lalo.tpch.orders", "TPCH.ORDERS", "\"tpch\".\"orders\""];

struct Gen {
    rng: StdRng,
    fresh: usize,
}

impl Gen {
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.rng.random_range(0..v.len())]
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    /// Fill `{OP}`, `{QUANT}`, `{SETOP}` and `{i}`.
    fn choose(&mut self, t: &str) -> String {
        self.fresh += 1;
        let op = self.pick(&OPS);
        let quant = self.pick(&QUANTS);
        let setop = self.pick(&SETOPS);
        t.replace("{OP}", op).replace("{QUANT}", quant).replace("{SETOP}", setop).replace("{i}", &self.fresh.to_string())
    }

    /// Up to `depth` wrappers around the pair, innermost first; their names.
    fn wrap(&mut self, depth: usize, pair: (String, String)) -> (Vec<&'static str>, String, String) {
        let (mut a, mut b) = pair;
        let mut names = Vec::new();
        for _ in 0..depth {
            let (name, t) = self.pick(WRAPPERS);
            let t = self.choose(t);
            a = t.replace("{S}", &a);
            b = t.replace("{S}", &b);
            names.push(name);
        }
        (names, a, b)
    }
}

/// One way to name the customer table and its columns.
struct Customer {
    from: String,
    qualifier: String,
    /// What a wildcard may be qualified with: DataFusion takes only the alias (`c.*`), not a
    /// partial table name (`customer.*` for `lalo.tpch.customer`).
    star_qualifier: String,
    /// The column spelled in this style: `col` is the lower-case name.
    spell: Box<dyn Fn(&str) -> String>,
}

fn customer(g: &mut Gen) -> Customer {
    let table = g.pick(&["tpch.customer", "lalo.tpch.customer", "TPCH.CUSTOMER", "\"tpch\".\"customer\""]);
    if g.chance(0.6) {
        let alias = g.pick(&["c", "cu", "cst"]);
        let style = g.rng.random_range(0..5);
        Customer {
            from: format!("{table} {alias}"),
            qualifier: format!("{alias}."),
            star_qualifier: format!("{alias}."),
            spell: Box::new(move |col| match style {
                0 => format!("{alias}.{col}"),
                1 => col.to_string(),
                2 => format!("\"{col}\""),
                3 => format!("{}.{}", alias.to_uppercase(), col.to_uppercase()),
                _ => format!("{alias}.\"{col}\""),
            }),
        }
    } else {
        let style = g.rng.random_range(0..4);
        Customer {
            from: table.to_string(),
            qualifier: "customer.".into(),
            star_qualifier: String::new(),
            spell: Box::new(move |col| match style {
                0 => col.to_string(),
                1 => format!("customer.{col}"),
                2 => col.to_uppercase(),
                _ => format!("tpch.customer.{col}"),
            }),
        }
    }
}

/// A statement that reads the denied column, and its twin with an allowed column in its place.
struct DenialCase {
    class: String,
    wrappers: Vec<&'static str>,
    denied: String,
    allowed: String,
}

fn denial_cases(g: &mut Gen) -> Vec<DenialCase> {
    let mut out = Vec::new();
    for (class, t) in CUSTOMER_CORES {
        for depth in WRAP_DEPTHS {
            let c = customer(g);
            let expr = g.pick(&COLUMN_EXPRS);
            let t = g.choose(t).replace("{C}", &c.from).replace("{Q}", &c.qualifier);
            let star_q = if g.chance(0.5) { c.star_qualifier.clone() } else { String::new() };
            let denied = t
                .replace("{X}", &expr.replace("{}", &(c.spell)("c_acctbal")))
                .replace("{STAR}", &format!("{star_q}*"));
            let allowed = t
                .replace("{X}", &expr.replace("{}", &(c.spell)("c_nationkey")))
                .replace("{STAR}", &format!("{star_q}c_custkey, {star_q}c_nationkey, {star_q}c_name"));
            let (wrappers, denied, allowed) = g.wrap(depth, (denied, allowed));
            out.push(DenialCase { class: class.to_string(), wrappers, denied, allowed });
        }
    }
    // Every context around the plainest read of the column, so a leak is traced to its context.
    for (name, t) in WRAPPERS {
        let t = g.choose(t);
        let core = |col: &str| format!("SELECT c_custkey AS k FROM tpch.customer WHERE {col} > 0");
        out.push(DenialCase {
            class: "where".into(),
            wrappers: vec![*name],
            denied: t.replace("{S}", &core("c_acctbal")),
            allowed: t.replace("{S}", &core("c_nationkey")),
        });
    }
    out
}

/// A statement over orders as the analyst sends it, and as the admin sends it with the analyst's
/// row filter written out.
struct FilterCase {
    class: String,
    wrappers: Vec<&'static str>,
    analyst: String,
    admin: String,
}

fn filter_cases(g: &mut Gen) -> Vec<FilterCase> {
    let mut out = Vec::new();
    for (class, t) in ORDERS_CORES {
        for depth in WRAP_DEPTHS {
            let name = g.pick(&ORDERS_NAMES);
            let t = g.choose(t);
            let analyst = t.replace("{OA}", name).replace("{O}", name);
            let admin = t.replace("{OA}", FILTERED_ORDERS).replace("{O}", &format!("{FILTERED_ORDERS} AS orders"));
            let (wrappers, analyst, admin) = g.wrap(depth, (analyst, admin));
            out.push(FilterCase { class: class.to_string(), wrappers, analyst, admin });
        }
    }
    for (name, t) in WRAPPERS {
        let t = g.choose(t);
        let core = |o: &str| format!("SELECT o_custkey AS k FROM {o} WHERE o_orderkey < 30000");
        out.push(FilterCase {
            class: "plain".into(),
            wrappers: vec![*name],
            analyst: t.replace("{S}", &core("tpch.orders")),
            admin: t.replace("{S}", &core(&format!("{FILTERED_ORDERS} AS orders"))),
        });
    }
    out
}

#[derive(Debug, Clone)]
enum Got {
    Rows(Vec<Vec<String>>),
    Denied(String),
    Failed(String, String),
}

impl Got {
    fn show(&self) -> String {
        match self {
            Got::Rows(r) => format!("accepted, {} rows", r.len()),
            Got::Denied(m) => format!("42501 {m}"),
            Got::Failed(code, m) => format!("{code} {m}"),
        }
    }
}

fn failed(e: &tokio_postgres::Error) -> Got {
    let code = sqlstate(e);
    let msg = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string());
    let msg: String = msg.chars().take(300).collect();
    if code == "42501" {
        Got::Denied(msg)
    } else {
        Got::Failed(code, msg)
    }
}

async fn simple(c: &Client, sql: &str) -> Got {
    match c.simple_query(sql).await {
        Ok(m) => Got::Rows(common::text_rows(&m)),
        Err(e) => failed(&e),
    }
}

/// At least one row came back and every value in it is NULL.
async fn all_null(c: &Client, sql: &str) -> bool {
    matches!(simple(c, sql).await, Got::Rows(r) if !r.is_empty() && r.iter().flatten().all(|v| v.is_empty()))
}

async fn extended(c: &Client, sql: &str) -> Got {
    match c.query(sql, &[]).await {
        Ok(rows) => Got::Rows(vec![Vec::new(); rows.len()]),
        Err(e) => failed(&e),
    }
}

/// Violations, grouped by what went wrong and the construct, each with its statement.
#[derive(Default)]
struct Report {
    failures: BTreeMap<(String, String), Vec<(String, String)>>,
    notes: BTreeMap<String, usize>,
}

impl Report {
    fn fail(&mut self, what: &str, construct: &str, sql: &str, got: String) {
        self.failures.entry((what.to_string(), construct.to_string())).or_default().push((sql.to_string(), got));
    }

    fn note(&mut self, what: impl Into<String>) {
        *self.notes.entry(what.into()).or_default() += 1;
    }

    fn text(&self) -> String {
        let mut s = String::new();
        for ((what, construct), v) in &self.failures {
            let (sql, got) = &v[0];
            let _ = writeln!(s, "\n[{what}] {construct}: {} statement(s), e.g.\n    {sql}\n    -> {got}", v.len());
        }
        s
    }
}

fn construct(class: &str, wrappers: &[&str]) -> String {
    let mut s = class.to_string();
    for w in wrappers {
        s.push_str(" <- ");
        s.push_str(w);
    }
    s
}

/// The policies of the demo with the intern's rate limit lifted: the generated statements would
/// otherwise exceed 600 a minute, and the limit is not what this test is about.
fn policies_without_rate_limit(dir: &std::path::Path) {
    for f in ["model.conf", "policy.csv", "rules.toml"] {
        let text = std::fs::read_to_string(common::repo().join("policies").join(f)).expect("demo policy file");
        let text = if f == "rules.toml" { text.replace("rate_per_minute = 600", "rate_per_minute = 1000000") } else { text };
        std::fs::write(dir.join(f), text).expect("write policy file");
    }
}

#[tokio::test]
async fn generated_statements_never_read_denied_columns_and_filter_rows_exactly() {
    let seed = std::env::var("LALO_GEN_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(SEED);
    let policies = tempfile::tempdir().expect("tempdir");
    policies_without_rate_limit(policies.path());
    std::env::set_var(MCP_TOKEN_VAR, MCP_TOKEN);
    let s = common::start_with(|cfg| {
        cfg.governance.policies = policies.path().to_path_buf();
        cfg.mcp.tokens = vec![lalo::config::McpToken { token_env: MCP_TOKEN_VAR.into(), user: "intern".into() }];
    })
    .await;
    let intern = s.connect("intern").await;
    let admin = s.connect("admin").await;
    let analyst = s.connect("analyst").await;
    for c in [&intern, &admin, &analyst] {
        c.simple_query("SET statement_timeout = '10s'").await.expect("timeout set");
    }
    let mut g = Gen { rng: StdRng::seed_from_u64(seed), fresh: 0 };
    let denials = denial_cases(&mut g);
    let filters = filter_cases(&mut g);
    let mut report = Report::default();
    let began = std::time::Instant::now();

    // The intern: the denied column is refused with 42501 wherever it is, the allowed twin is not.
    let (mut allowed_ran, mut allowed_failed) = (0usize, 0usize);
    let mut unplannable: BTreeMap<String, (usize, String, String)> = BTreeMap::new();
    for case in &denials {
        let name = construct(&case.class, &case.wrappers);
        for (proto, run) in [("simple", 0), ("extended", 1)] {
            let (allowed, denied) = if run == 0 {
                (simple(&intern, &case.allowed).await, simple(&intern, &case.denied).await)
            } else {
                (extended(&intern, &case.allowed).await, extended(&intern, &case.denied).await)
            };
            match &allowed {
                Got::Rows(_) => allowed_ran += 1,
                Got::Denied(_) => report.fail(&format!("allowed twin refused ({proto})"), &name, &case.allowed, allowed.show()),
                Got::Failed(..) => {
                    allowed_failed += 1;
                    let e = unplannable.entry(name.clone()).or_insert((0, case.allowed.clone(), allowed.show()));
                    e.0 += 1;
                }
            }
            match (&denied, &allowed) {
                (Got::Denied(_), _) => {}
                // An unused CTE is dropped while the statement is planned: nothing reads it.
                (Got::Rows(_), _) if name.contains("unused cte") || name.contains("cte, unused") => {
                    report.note(format!("unused CTE, never planned ({proto})"))
                }
                // A select-list subquery the SQL rewrite replaced by NULL before planning reads
                // nothing either (its twin comes back NULL as well). That is a wrong answer of its
                // own, not a read of the column.
                (Got::Rows(_), _) if all_null(&intern, &case.denied).await && all_null(&intern, &case.allowed).await => {
                    report.note(format!("select-list subquery replaced by NULL before planning ({proto})"))
                }
                (Got::Rows(_), _) => report.fail(&format!("LEAK: denied column accepted ({proto})"), &name, &case.denied, denied.show()),
                // Neither plans: nothing ran, whatever the governance would have said.
                // Physical planning runs after governance: the statement was accepted.
                (Got::Failed(_, m), _) if m.contains("Physical plan does not support") => report.fail(
                    &format!("denied column passed governance, stopped only by physical planning ({proto})"),
                    &name,
                    &case.denied,
                    denied.show(),
                ),
                (Got::Failed(..), Got::Failed(..)) => report.note(format!("denied statement unplannable ({proto})")),
                (Got::Failed(..), _) => {
                    report.fail(&format!("denied column refused without 42501 ({proto})"), &name, &case.denied, denied.show())
                }
            }
        }
    }
    let denial_time = began.elapsed();

    // The analyst: the row filter gives what the admin gets with the filter written out.
    let (mut compared, mut filter_mattered, mut both_failed) = (0usize, 0usize, 0usize);
    for case in &filters {
        let name = construct(&case.class, &case.wrappers);
        let mine = simple(&analyst, &case.analyst).await;
        let want = simple(&admin, &case.admin).await;
        match (mine, want) {
            (Got::Rows(mut a), Got::Rows(mut b)) => {
                compared += 1;
                a.sort();
                b.sort();
                if a != b {
                    let extra: Vec<_> = a.iter().filter(|r| !b.contains(r)).take(3).collect();
                    let missing: Vec<_> = b.iter().filter(|r| !a.contains(r)).take(3).collect();
                    report.fail(
                        "analyst's rows differ from the written-out filter",
                        &name,
                        &case.analyst,
                        format!("analyst {} rows, admin with filter {} rows; analyst-only {extra:?}, admin-only {missing:?}", a.len(), b.len()),
                    );
                } else if let Got::Rows(mut all) = simple(&admin, &case.analyst).await {
                    all.sort();
                    if all != a {
                        filter_mattered += 1;
                    }
                }
            }
            (Got::Failed(_, m), Got::Failed(..)) | (Got::Denied(m), Got::Denied(_)) => {
                both_failed += 1;
                unplannable.entry(format!("orders: {name}")).or_insert((0, case.analyst.clone(), m)).0 += 1;
            }
            (mine, want) => report.fail(
                "analyst and written-out filter disagree on success",
                &name,
                &case.analyst,
                format!("analyst: {}; admin with filter: {}", mine.show(), want.show()),
            ),
        }
    }
    let filter_time = began.elapsed() - denial_time;

    // MCP's query tool, as the intern: one denied statement of each construct, and its twin.
    // The HTTP client is built without a crypto provider of its own.
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let url = format!("http://{}/mcp", s.running.http_addr);
    let config = rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(url).auth_header(MCP_TOKEN);
    let client = ().serve(rmcp::transport::StreamableHttpClientTransport::from_config(config)).await.expect("MCP initialize");
    let mut mcp_calls = 0usize;
    for case in denials.iter().step_by(WRAP_DEPTHS.len()).chain(denials.iter().skip(3).step_by(WRAP_DEPTHS.len() * 4)) {
        let mut allowed_ran = true;
        for (sql, deny) in [(&case.allowed, false), (&case.denied, true)] {
            let args = json!({ "sql": sql, "max_rows": 1 });
            let params = CallToolRequestParams::new("query").with_arguments(args.as_object().cloned().unwrap_or_default());
            let r = client.call_tool(params).await.expect("tool call answered");
            mcp_calls += 1;
            let is_error = r.is_error.unwrap_or(false);
            let v = r.structured_content.unwrap_or_default();
            let code = v["sqlstate"].as_str().unwrap_or("").to_string();
            let name = construct(&case.class, &case.wrappers);
            if !deny {
                allowed_ran = !is_error;
                if is_error && code == "42501" {
                    report.fail("allowed twin refused (MCP)", &name, sql, v.to_string());
                }
            } else if !is_error && (name.contains("unused cte") || name.contains("cte, unused")) {
                // An unused CTE is dropped while the statement is planned: nothing reads it.
                report.note("unused CTE, never planned (MCP)");
            } else if !is_error {
                report.fail("LEAK: denied column accepted (MCP)", &name, sql, format!("accepted: {v}"));
            } else if code != "42501" && allowed_ran {
                report.fail("denied column refused without 42501 (MCP)", &name, sql, v.to_string());
            }
        }
    }
    client.cancel().await.expect("MCP client closes");

    println!(
        "seed {seed}: {} denial pairs ({} constructs x {} wrap depths) through simple and extended protocol in {:.1?}; \
         {} row-filter statements in {:.1?}; {mcp_calls} MCP calls",
        denials.len(),
        CUSTOMER_CORES.len(),
        WRAP_DEPTHS.len(),
        denial_time,
        filters.len(),
        filter_time,
    );
    println!("allowed twins: {allowed_ran} ran, {allowed_failed} failed to plan or run (not 42501):");
    for (name, (n, sql, got)) in &unplannable {
        let got: String = got.lines().next().unwrap_or("").chars().take(160).collect();
        println!("  {n} x {name}\n      {sql}\n      -> {got}");
    }
    println!("row filter: {compared} compared, {filter_mattered} where the filter changed the result, {both_failed} unplannable");
    for (what, n) in &report.notes {
        println!("  {n} x {what}");
    }
    let mut by_core: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_wrapper: BTreeMap<&str, usize> = BTreeMap::new();
    for ((what, name), v) in &report.failures {
        if what.starts_with("LEAK") {
            let mut parts = name.split(" <- ");
            *by_core.entry(parts.next().unwrap_or_default().to_string()).or_default() += v.len();
            for w in parts {
                *by_wrapper.entry(w).or_default() += v.len();
            }
        }
    }
    println!("leaks by innermost construct: {by_core:?}");
    println!("leaks by enclosing context: {by_wrapper:?}");
    let text = report.text();
    println!("{text}");

    // The allowed twins must mostly run, or "everything refused" would pass.
    assert!(allowed_ran * 10 >= (allowed_ran + allowed_failed) * 8, "too few allowed statements ran: {allowed_ran} of {}", allowed_ran + allowed_failed);
    assert!(compared * 10 >= filters.len() * 8, "too few row-filter statements compared: {compared} of {}", filters.len());
    assert!(filter_mattered * 3 >= compared, "the row filter changed too few results: {filter_mattered} of {compared}");
    assert!(report.failures.is_empty(), "{} kinds of violation:{text}", report.failures.len());
}
