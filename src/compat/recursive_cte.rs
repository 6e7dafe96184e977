//! `WITH RECURSIVE name(c1, c2, ...) AS (anchor UNION [ALL] step)` with a column list.
//!
//! DataFusion 54 types the working table a recursive step reads from the anchor's own output
//! names and applies the CTE's column list only to the finished result, so a step that says
//! `name.c1` fails when the anchor did not itself name its outputs `c1` (asyncpg's type
//! introspection: "No field named tt.depth"). PostgreSQL names the working table's columns by
//! the list; lalo copies the list onto the anchor as output aliases, which means the same.

use datafusion::sql::sqlparser::ast::{
    Ident, Query, SelectItem, SetExpr, SetOperator, Statement, TableAlias, TableAliasColumnDef, TableFactor,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// Name the anchor outputs of every recursive CTE of `query` that has a column list.
pub fn name_anchor_columns(query: &mut Query) {
    let Some(with) = &mut query.with else { return };
    if !with.recursive {
        return;
    }
    for cte in &mut with.cte_tables {
        if cte.alias.columns.is_empty() {
            continue;
        }
        let names: Vec<Ident> = cte.alias.columns.iter().map(|c| c.name.clone()).collect();
        // Only `anchor UNION step` is recursive; anything else DataFusion plans as a plain CTE,
        // where it already applies the list.
        if let SetExpr::SetOperation { op: SetOperator::Union, left, .. } = cte.query.body.as_mut() {
            name_outputs(left, &names);
        }
    }
}

/// Give the outputs of `body` the names `names`, in order.
fn name_outputs(body: &mut SetExpr, names: &[Ident]) {
    match body {
        SetExpr::Select(s) if s.projection.len() == names.len() && s.projection.iter().all(is_single_expr) => {
            for (item, name) in s.projection.iter_mut().zip(names) {
                if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
                    *item = SelectItem::ExprWithAlias { expr: e.clone(), alias: name.clone() };
                }
            }
        }
        // A set operation takes its column names from its first branch.
        SetExpr::SetOperation { left, .. } => name_outputs(left, names),
        SetExpr::Query(q) if q.with.is_none() => name_outputs(&mut q.body, names),
        // Wildcards, VALUES, ...: the outputs are not spelled out, so rename them through a
        // derived table, `SELECT * FROM (anchor) AS anchor(c1, c2, ...)`.
        other => {
            if let Some(wrapped) = renamed(other.clone(), names) {
                *other = wrapped;
            }
        }
    }
}

fn is_single_expr(item: &SelectItem) -> bool {
    matches!(item, SelectItem::UnnamedExpr(_) | SelectItem::ExprWithAlias { .. })
}

/// `SELECT * FROM (body) AS __lalo_anchor(names...)`.
fn renamed(body: SetExpr, names: &[Ident]) -> Option<SetExpr> {
    let template = "SELECT * FROM (SELECT 1) AS __lalo_anchor";
    let Ok(mut stmts) = Parser::parse_sql(&PostgreSqlDialect {}, template) else { return None };
    let Some(Statement::Query(mut outer)) = stmts.pop() else { return None };
    let SetExpr::Select(select) = outer.body.as_mut() else { return None };
    let TableFactor::Derived { subquery, alias, .. } = &mut select.from.first_mut()?.relation else { return None };
    *subquery.body = body;
    *alias = Some(TableAlias {
        explicit: true,
        name: Ident::new("__lalo_anchor"),
        columns: names.iter().map(|n| TableAliasColumnDef { name: n.clone(), data_type: None }).collect(),
        at: None,
    });
    Some(*outer.body)
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::ast::Statement;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn rewritten(sql: &str) -> String {
        let mut stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0);
        if let Statement::Query(q) = &mut stmt {
            super::name_anchor_columns(q);
        }
        stmt.to_string()
    }

    #[test]
    fn anchor_takes_the_column_list() {
        let out = rewritten(
            "WITH RECURSIVE t(n, depth) AS (SELECT x, 0 FROM a UNION ALL SELECT n + 1, t.depth + 1 FROM t WHERE n < 3) SELECT * FROM t",
        );
        assert!(out.contains("SELECT x AS n, 0 AS depth FROM a UNION ALL"), "{out}");
    }

    #[test]
    fn values_and_wildcards_are_renamed_through_a_derived_table() {
        let out = rewritten("WITH RECURSIVE t(n) AS (VALUES (1) UNION ALL SELECT n + 1 FROM t WHERE n < 3) SELECT * FROM t");
        assert!(out.contains("SELECT * FROM (VALUES (1)) AS __lalo_anchor (n) UNION ALL"), "{out}");
    }

    #[test]
    fn plain_ctes_are_left_alone() {
        let sql = "WITH t(n) AS (SELECT 1) SELECT n FROM t";
        let unchanged = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0).to_string();
        assert_eq!(rewritten(sql), unchanged);
    }
}
