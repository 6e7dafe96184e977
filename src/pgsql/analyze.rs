//! What a statement reads, as PostgreSQL's own grammar (libpg_query) parses it: every relation
//! reference with its place in the text, every column reference, and the first construct the
//! PostgreSQL lane does not take.
//!
//! The walk is over the parse tree serialized to JSON, visiting every field of every node, so a
//! node kind added by a later grammar is walked like the others rather than skipped: a relation
//! or function inside it is still found. Only the nodes that bind names (WITH lists) or name
//! things (relations, columns, functions, operators, types) are looked at by kind.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::functions;

/// A relation reference that is not a CTE: what the lane replaces with a governed derived table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub catalog: Option<String>,
    pub schema: Option<String>,
    /// As PostgreSQL resolves it: unquoted names folded to lower case, quoted ones exact.
    pub name: String,
    /// Byte offset of the name in the statement's text.
    pub location: usize,
    /// Whether the reference has an alias of its own (`FROM t AS x`).
    pub aliased: bool,
    /// Column aliases (`FROM t AS x(a, b)`), which rename the table's columns by position.
    pub renames_columns: bool,
}

/// The walk's findings.
#[derive(Debug, Default)]
pub struct Analysis {
    pub relations: Vec<Relation>,
    /// The last name of every column reference (`t.col` → `col`), as PostgreSQL folds it.
    pub columns: BTreeSet<String>,
    /// Some column reference is a star (`*`, `t.*`).
    pub star: bool,
    /// The last names of qualified column references (`t.col` → `col`). PostgreSQL reads `t.f`
    /// as the call `f(t)` when `t` has no column `f`, so each must name a column the statement
    /// has (see [`Analysis::defined`]); the lane checks that once it knows the tables' columns.
    pub qualified: BTreeSet<String>,
    /// Column names the statement itself defines: output names (`AS x`), column aliases of
    /// relations, subqueries and CTEs.
    pub defined: BTreeSet<String>,
    /// The first construct this lane does not run (the statement then takes the engine).
    pub declined: Option<String>,
    /// Where a name refers to a CTE rather than a relation.
    pub cte_refs: Vec<usize>,
    /// For a plain single-table SELECT, the columns it compares equal to values (see
    /// [`super::lookup`]): a lookup when the table's primary key is among them.
    pub lookup: Option<Vec<String>>,
}

/// The relations `text` reads and where it names CTEs, whatever kind of statement it is.
pub fn analyze_relations(text: &str) -> Result<(Vec<Relation>, Vec<usize>), String> {
    let parsed = pg_query::parse(text, 0).map_err(|e| e.to_string())?;
    let tree = serde_json::to_value(&parsed.protobuf.stmts).map_err(|e| e.to_string())?;
    let mut walk = Walk { out: Analysis::default(), scopes: Vec::new() };
    walk.walk(&tree);
    Ok((walk.out.relations, walk.out.cte_refs))
}

/// Parse `text` with PostgreSQL's grammar and walk it. `Err` is PostgreSQL's own syntax error.
pub fn analyze(text: &str) -> Result<Analysis, String> {
    let parsed = pg_query::parse(text, 0).map_err(|e| e.to_string())?;
    let mut out = Analysis::default();
    let stmts = &parsed.protobuf.stmts;
    let [raw] = stmts.as_slice() else {
        out.declined = Some("more than one statement".into());
        return Ok(out);
    };
    if let Some(pg_query::protobuf::node::Node::SelectStmt(s)) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) {
        out.lookup = super::lookup::equal_columns(s);
    }
    let tree = serde_json::to_value(raw).map_err(|e| e.to_string())?;
    let Some(select) = tree.get("stmt").and_then(|s| s.get("node")).and_then(|n| n.get("SelectStmt")) else {
        out.declined = Some("not a SELECT".into());
        return Ok(out);
    };
    let mut walk = Walk { out, scopes: Vec::new() };
    walk.select(select);
    Ok(walk.out)
}

struct Walk {
    out: Analysis,
    /// CTE names visible at this point, innermost last.
    scopes: Vec<Vec<String>>,
}

fn text<'a>(o: &'a Map<String, Value>, key: &str) -> &'a str {
    o.get(key).and_then(Value::as_str).unwrap_or("")
}

fn list<'a>(o: &'a Map<String, Value>, key: &str) -> &'a [Value] {
    o.get(key).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

/// The strings of a name list (`[{"String": {"sval": "pg_catalog"}}, …]`).
fn names(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .filter_map(|n| n.get("node").unwrap_or(n).get("String").and_then(|s| s.get("sval")).and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

/// An object that is a `SelectStmt` written inline (set operations' `larg`/`rarg`).
fn is_select(o: &Map<String, Value>) -> bool {
    o.contains_key("target_list") && o.contains_key("larg") && o.contains_key("op")
}

/// An object that is a `RangeVar` written inline (not wrapped in a `Node`).
fn is_range_var(o: &Map<String, Value>) -> bool {
    o.contains_key("relname") && o.contains_key("relpersistence")
}

impl Walk {
    fn decline(&mut self, why: impl Into<String>) {
        if self.out.declined.is_none() {
            self.out.declined = Some(why.into());
        }
    }

    fn is_cte(&self, name: &str) -> bool {
        self.scopes.iter().any(|s| s.iter().any(|c| c == name))
    }

    /// A SELECT: its WITH list binds names for its body (and, when recursive, for the list).
    fn select(&mut self, v: &Value) {
        let Some(o) = v.as_object() else { return };
        if o.get("into_clause").is_some_and(|x| !x.is_null()) {
            self.decline("SELECT INTO");
        }
        if !list(o, "locking_clause").is_empty() {
            self.decline("a locking clause");
        }
        let with = o.get("with_clause").and_then(Value::as_object);
        let pushed = if let Some(w) = with {
            let recursive = w.get("recursive").and_then(Value::as_bool).unwrap_or(false);
            let ctes: Vec<&Map<String, Value>> =
                list(w, "ctes").iter().filter_map(|c| c.get("node").unwrap_or(c).get("CommonTableExpr")?.as_object()).collect();
            let all: Vec<String> = ctes.iter().map(|c| text(c, "ctename").to_string()).collect();
            for (i, cte) in ctes.iter().enumerate() {
                // A CTE sees the ones before it; a recursive list sees all of them.
                let visible = if recursive { all.clone() } else { all[..i].to_vec() };
                self.scopes.push(visible);
                for (k, x) in cte.iter() {
                    if k != "ctename" {
                        self.walk(x);
                    }
                }
                self.scopes.pop();
            }
            self.scopes.push(all);
            true
        } else {
            false
        };
        for (k, x) in o {
            match k.as_str() {
                "with_clause" => {}
                "larg" | "rarg" => self.select(x),
                _ => self.walk(x),
            }
        }
        if pushed {
            self.scopes.pop();
        }
    }

    fn walk(&mut self, v: &Value) {
        match v {
            Value::Array(items) => items.iter().for_each(|x| self.walk(x)),
            Value::Object(o) => self.node(o),
            _ => {}
        }
    }

    fn node(&mut self, o: &Map<String, Value>) {
        if is_select(o) {
            return self.select(&Value::Object(o.clone()));
        }
        if is_range_var(o) {
            return self.range_var(o);
        }
        if o.contains_key("aliasname") && o.contains_key("colnames") {
            self.out.defined.extend(names(list(o, "colnames")));
        }
        if o.contains_key("ctename") && o.contains_key("aliascolnames") {
            self.out.defined.extend(names(list(o, "aliascolnames")));
        }
        // A wrapped node: `{"Kind": {fields}}`.
        if o.len() == 1 {
            if let Some((kind, inner)) = o.iter().next() {
                if let Some(fields) = inner.as_object() {
                    if kind.ends_with("Stmt") && kind != "SelectStmt" {
                        self.decline(format!("a {kind} inside the statement"));
                    }
                    match kind.as_str() {
                        "SelectStmt" => return self.select(inner),
                        "RangeVar" => return self.range_var(fields),
                        "ColumnRef" => self.column_ref(fields),
                        "FuncCall" => self.func_call(fields),
                        "AExpr" => {
                            // BETWEEN and its kin name no operator (kinds 11 to 14).
                            let kind = fields.get("kind").and_then(Value::as_i64).unwrap_or(0);
                            if !(11..=14).contains(&kind) {
                                self.operator(list(fields, "name"));
                            }
                        }
                        // `(expr).name` is also the call `name(expr)`, which no allowlist sees.
                        "AIndirection" => {
                            if list(fields, "indirection").iter().any(|i| i.get("node").unwrap_or(i).get("String").is_some()) {
                                self.decline("a field selection");
                            }
                        }
                        "ResTarget" => {
                            let name = text(fields, "name");
                            if !name.is_empty() {
                                self.out.defined.insert(name.to_string());
                            }
                        }
                        "Alias" => self.out.defined.extend(names(list(fields, "colnames"))),
                        "CommonTableExpr" => self.out.defined.extend(names(list(fields, "aliascolnames"))),
                        "SubLink" => self.operator(list(fields, "oper_name")),
                        "TypeName" => self.type_name(fields),
                        "SqlvalueFunction" => self.value_function(fields),
                        "RangeTableSample" => self.sample(fields),
                        "CurrentOfExpr" | "Param" | "Var" => self.decline(format!("{kind}")),
                        // SQL/JSON syntax of newer PostgreSQL releases is a plain function call,
                        // resolved by search path, on older upstreams.
                        k if k.starts_with("Json") || k == "MergeSupportFunc" => self.decline(format!("{kind}")),
                        _ => {}
                    }
                }
            }
        }
        // Typed (unwrapped) fields that name things.
        if let Some(t) = o.get("type_name").and_then(Value::as_object) {
            self.type_name(t);
        }
        for (k, x) in o {
            if k != "type_name" {
                self.walk(x);
            }
        }
    }

    fn range_var(&mut self, o: &Map<String, Value>) {
        let name = text(o, "relname").to_string();
        let schema = Some(text(o, "schemaname")).filter(|s| !s.is_empty()).map(str::to_string);
        let catalog = Some(text(o, "catalogname")).filter(|s| !s.is_empty()).map(str::to_string);
        let location = o.get("location").and_then(Value::as_i64).unwrap_or(-1);
        if schema.is_none() && catalog.is_none() && self.is_cte(&name) {
            if let Ok(at) = usize::try_from(location) {
                self.out.cte_refs.push(at);
            }
            return;
        }
        if !o.get("inh").and_then(Value::as_bool).unwrap_or(true) {
            self.decline("ONLY");
        }
        // A reference without a position cannot be replaced; it stays in the list (at a place
        // no governed text covers) so that the check after splicing refuses it too.
        let location = usize::try_from(location).unwrap_or_else(|_| {
            self.decline("a relation without a position");
            usize::MAX
        });
        let alias = o.get("alias").and_then(Value::as_object);
        self.out.relations.push(Relation {
            catalog,
            schema,
            name,
            location,
            aliased: alias.is_some_and(|a| !text(a, "aliasname").is_empty()),
            renames_columns: alias.is_some_and(|a| !list(a, "colnames").is_empty()),
        });
    }

    fn column_ref(&mut self, o: &Map<String, Value>) {
        for f in list(o, "fields") {
            let f = f.get("node").unwrap_or(f);
            if f.get("AStar").is_some() {
                self.out.star = true;
            }
        }
        let fields = list(o, "fields");
        // The name of the last field, unless it is a star (`t.*`).
        let last = fields.last().map(std::slice::from_ref).map(names).and_then(|mut n| n.pop());
        if let Some(last) = last {
            self.out.columns.insert(last.clone());
            if fields.len() > 1 {
                self.out.qualified.insert(last);
            }
        }
    }

    fn func_call(&mut self, o: &Map<String, Value>) {
        let name = names(list(o, "funcname"));
        let allowed = match name.as_slice() {
            [f] => functions::allowed(f),
            [schema, f] => schema == "pg_catalog" && functions::allowed(f),
            _ => false,
        };
        if !allowed {
            self.decline(format!("function {}", name.join(".")));
        }
    }

    fn operator(&mut self, name: &[Value]) {
        let name = names(name);
        let allowed = match name.as_slice() {
            [] => true, // IN, BETWEEN, LIKE … name no operator of their own here
            [op] => functions::operator(op),
            [schema, op] => schema == "pg_catalog" && functions::operator(op),
            _ => false,
        };
        if !allowed {
            self.decline(format!("operator {}", name.join(".")));
        }
    }

    /// Casts to the `reg*` types look names up in the upstream's catalog.
    fn type_name(&mut self, o: &Map<String, Value>) {
        if o.get("pct_type").and_then(Value::as_bool).unwrap_or(false) {
            self.decline("%TYPE");
        }
        if let Some(last) = names(list(o, "names")).pop() {
            // `_regclass` is the array of `regclass`: its elements are read the same way.
            let element = last.trim_start_matches('_');
            if element.starts_with("reg") && element != "real" {
                self.decline(format!("type {last}"));
            }
        }
    }

    /// Date and time keywords run upstream; the session's own (user, database, schema) are
    /// lalo's to answer.
    fn value_function(&mut self, o: &Map<String, Value>) {
        let op = o.get("op").and_then(Value::as_i64).unwrap_or(0);
        if !(1..=9).contains(&op) {
            self.decline("a session value function");
        }
    }

    fn sample(&mut self, o: &Map<String, Value>) {
        let method = names(list(o, "method"));
        if !matches!(method.as_slice(), [m] if m == "bernoulli" || m == "system") {
            self.decline("a sampling method");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_relations_columns_and_what_it_declines() {
        let a = analyze("SELECT dept FROM staff EXCEPT SELECT 'ops' ORDER BY 1").unwrap();
        assert_eq!(a.declined, None);
        assert_eq!(a.relations.len(), 1);
        let a = analyze("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 4) SELECT sum(n) FROM r, staff").unwrap();
        assert_eq!(a.declined, None);
        assert_eq!(a.relations.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["staff"]);
        let a = analyze("WITH x AS (SELECT * FROM x) SELECT * FROM x").unwrap();
        assert_eq!(a.relations.len(), 1, "a non-recursive CTE does not see itself");
        let a = analyze("SELECT d FROM staff AS s(a, b, c, d)").unwrap();
        assert!(a.relations[0].renames_columns && a.relations[0].aliased);
        assert!(a.columns.contains("d"));
        for declined in [
            "SELECT query_to_xml('select 1', true, false, '')",
            "SELECT * FROM t FOR UPDATE",
            "SELECT * INTO x FROM t",
            "SELECT current_user",
            "SELECT 'pg_class'::regclass",
            "SELECT 1; SELECT 2",
            "INSERT INTO t VALUES (1)",
            "SELECT * FROM ONLY t",
            "SELECT 1 OPERATOR(public.===) 2",
        ] {
            assert!(analyze(declined).unwrap().declined.is_some(), "{declined}");
        }
    }
}
