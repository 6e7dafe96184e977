//! Whether a statement is a lookup: one table, read by columns compared equal to values, with
//! nothing in it that could make PostgreSQL do more than fetch the matching rows. With the
//! table's primary key among those columns, it returns at most one row found by index, and may
//! queue behind other statements on a pipelined upstream connection without holding them up.
//!
//! The rules are deliberately narrow: a construct that is cheap on one row in most cases but
//! not all (a function call, a subquery, a cast on the value side that PostgreSQL applies to the
//! column instead, a numeric literal compared with an integer key) keeps the statement off the
//! pipelined connections; it then runs as any other statement does.

use pg_query::protobuf::{self, node::Node, AExprKind, BoolExprType, SetOperation};

/// The columns a single-table SELECT compares equal to a constant or a parameter in its WHERE
/// (a conjunction), when every other part of it is plain (see the module docs); `None` when the
/// statement is not such a lookup.
pub fn equal_columns(select: &protobuf::SelectStmt) -> Option<Vec<String>> {
    let plain_shape = select.op == SetOperation::SetopNone as i32
        && select.with_clause.is_none()
        && select.into_clause.is_none()
        && select.distinct_clause.is_empty()
        && select.group_clause.is_empty()
        && select.having_clause.is_none()
        && select.window_clause.is_empty()
        && select.values_lists.is_empty()
        && select.locking_clause.is_empty();
    if !plain_shape {
        return None;
    }
    // One table, named: no join, no function, no subquery in FROM.
    let [from] = select.from_clause.as_slice() else { return None };
    // Columns renamed by the alias (`t AS t(x, id)`) would put the key under another name.
    let Some(Node::RangeVar(table)) = &from.node else { return None };
    if table.alias.as_ref().is_some_and(|a| !a.colnames.is_empty()) {
        return None;
    }
    let targets_plain = select.target_list.iter().all(|t| match &t.node {
        Some(Node::ResTarget(r)) => r.indirection.is_empty() && r.val.as_deref().is_some_and(plain),
        _ => false,
    });
    let sorts_plain = select.sort_clause.iter().all(|s| match &s.node {
        Some(Node::SortBy(b)) => b.use_op.is_empty() && b.node.as_deref().is_some_and(plain),
        _ => false,
    });
    let limits_plain = [&select.limit_count, &select.limit_offset].iter().all(|l| l.as_deref().is_none_or(plain));
    if !(targets_plain && sorts_plain && limits_plain) {
        return None;
    }
    let mut equal = Vec::new();
    let mut conjuncts = Vec::new();
    conjunction(select.where_clause.as_deref()?, &mut conjuncts);
    for c in conjuncts {
        if !plain(c) {
            return None;
        }
        if let Some(column) = column_equals_value(c) {
            equal.push(column);
        }
    }
    (!equal.is_empty()).then_some(equal)
}

/// The terms of an AND (nested ANDs flattened).
fn conjunction<'a>(n: &'a protobuf::Node, out: &mut Vec<&'a protobuf::Node>) {
    match &n.node {
        Some(Node::BoolExpr(b)) if b.boolop == BoolExprType::AndExpr as i32 => b.args.iter().for_each(|a| conjunction(a, out)),
        _ => out.push(n),
    }
}

/// `column = value` or `value = column`: the column's name as PostgreSQL folds it.
fn column_equals_value(n: &protobuf::Node) -> Option<String> {
    let Some(Node::AExpr(e)) = &n.node else { return None };
    if e.kind != AExprKind::AexprOp as i32 || operator(&e.name)? != "=" {
        return None;
    }
    let (l, r) = (e.lexpr.as_deref()?, e.rexpr.as_deref()?);
    let (col, _) = [(l, r), (r, l)].into_iter().find(|(c, v)| is_value(v) && matches!(c.node, Some(Node::ColumnRef(_))))?;
    let Some(Node::ColumnRef(c)) = &col.node else { return None };
    match &c.fields.last()?.node {
        Some(Node::String(s)) => Some(s.sval.clone()),
        _ => None,
    }
}

/// A value the key column is compared with as it is: a parameter (typed by the column when the
/// client left its type open), an integer, a string or a boolean literal. A numeric literal is
/// not one: against an integer key PostgreSQL casts the column, and no index applies.
fn is_value(n: &protobuf::Node) -> bool {
    match &n.node {
        Some(Node::ParamRef(_)) => true,
        Some(Node::AConst(c)) => {
            use protobuf::a_const::Val;
            !c.isnull && matches!(c.val, Some(Val::Ival(_) | Val::Sval(_) | Val::Boolval(_)))
        }
        _ => false,
    }
}

/// The operator's name when it is unqualified.
fn operator(name: &[protobuf::Node]) -> Option<&str> {
    match name {
        [n] => match &n.node {
            Some(Node::String(s)) => Some(s.sval.as_str()),
            _ => None,
        },
        _ => None,
    }
}

/// An expression that costs next to nothing on one row: columns, constants, parameters, and
/// comparisons, arithmetic, AND/OR/NOT and IS [NOT] NULL over them. No function call (any can
/// be slow), no subquery, no cast (a cast to a type with a typmod can be a function too).
fn plain(n: &protobuf::Node) -> bool {
    const OPERATORS: &[&str] = &["=", "<>", "!=", "<", ">", "<=", ">=", "+", "-", "*", "/", "%"];
    match &n.node {
        Some(Node::ColumnRef(c)) => c.fields.iter().all(|f| matches!(f.node, Some(Node::String(_) | Node::AStar(_)))),
        Some(Node::AConst(_)) | Some(Node::ParamRef(_)) => true,
        Some(Node::AExpr(e)) => {
            e.kind == AExprKind::AexprOp as i32
                && operator(&e.name).is_some_and(|o| OPERATORS.contains(&o))
                && e.lexpr.as_deref().is_none_or(plain)
                && e.rexpr.as_deref().is_some_and(plain)
        }
        Some(Node::BoolExpr(b)) => b.args.iter().all(plain),
        Some(Node::NullTest(t)) => t.arg.as_deref().is_some_and(plain),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(sql: &str) -> Option<Vec<String>> {
        let parsed = pg_query::parse(sql, 0).expect("parses");
        let stmt = parsed.protobuf.stmts[0].stmt.as_ref().expect("a statement");
        match stmt.node.as_ref() {
            Some(Node::SelectStmt(s)) => equal_columns(s),
            _ => None,
        }
    }

    #[test]
    fn plain_lookups_name_their_equal_columns() {
        assert_eq!(columns("SELECT abalance FROM pgbench_accounts WHERE aid = $1"), Some(vec!["aid".into()]));
        assert_eq!(columns("select a.x, a.y + 1 from s.t a where 7 = a.id and a.k = 'v' order by x limit 1"), Some(vec!["id".into(), "k".into()]));
        assert_eq!(columns("SELECT * FROM t WHERE (id = 1 AND b IS NOT NULL) AND c > 2"), Some(vec!["id".into()]));
    }

    #[test]
    fn anything_that_can_cost_more_is_no_lookup() {
        for sql in [
            "SELECT count(*) FROM t WHERE id = 1",
            "SELECT repeat(x, 1000000) FROM t WHERE id = 1",
            "SELECT generate_series(1, 100000000) FROM t WHERE id = 1",
            "SELECT x FROM t WHERE id = 1.5",
            "SELECT x FROM t WHERE id = $1::numeric",
            "SELECT x FROM t WHERE id::numeric = $1",
            "SELECT x FROM t WHERE id = 1 OR y = 2",
            "SELECT x FROM t WHERE id = (SELECT max(id) FROM t)",
            "SELECT x FROM t WHERE id = 1 AND x ~ '(a+)+b'",
            "SELECT x FROM t, u WHERE t.id = 1",
            "SELECT x FROM t JOIN u ON true WHERE t.id = 1",
            "SELECT x FROM generate_series(1, 10) g(x) WHERE x = 1",
            "SELECT DISTINCT x FROM t WHERE id = 1",
            "SELECT x FROM t WHERE id = 1 UNION SELECT x FROM t WHERE id = 2",
            "WITH c AS (SELECT 1) SELECT x FROM t WHERE id = 1",
            "SELECT x FROM t WHERE id = 1 FOR UPDATE",
            "SELECT x FROM t",
            "SELECT x FROM t WHERE id = 1 LIMIT (SELECT 1)",
            "SELECT * FROM t AS t(id, x) WHERE id = 1",
        ] {
            assert_eq!(columns(sql), None, "{sql}");
        }
    }
}
