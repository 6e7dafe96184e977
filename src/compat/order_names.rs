//! ORDER BY and DISTINCT ON a bare name mean the result column of that name where there is one
//! (PostgreSQL's SQL92 rule, before looking at the input's columns): `SELECT x::text FROM t
//! ORDER BY x` orders the text values. DataFusion looks a name up among explicit aliases and
//! then the input's columns, so a result column PostgreSQL names after an unaliased
//! expression (`x::text` is `x`, `lower(n)` is `lower`) would be sorted by the input column of
//! that name: another order, without an error. Such a name is replaced by the column's
//! position. A query with DISTINCT ON is left as written: DataFusion reads a number there as a
//! constant, and an expression in DISTINCT ON beside a position in ORDER BY does not plan.

use datafusion::sql::sqlparser::ast::{Distinct, Expr, OrderByKind, Query, SelectItem, SetExpr, Value};

/// Order by position where a bare ORDER BY name means an unaliased, computed result column.
pub fn rewrite(q: &mut Query) {
    let SetExpr::Select(select) = q.body.as_ref() else { return };
    if matches!(select.distinct, Some(Distinct::On(_))) {
        return;
    }
    // Each result column's name, and whether DataFusion would not find it by that name (an
    // unaliased computed one). A wildcard hides the names: nothing is changed.
    let mut names: Vec<(String, bool)> = Vec::with_capacity(select.projection.len());
    for item in &select.projection {
        match item {
            SelectItem::UnnamedExpr(e) => {
                let plain = matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_));
                names.push((crate::naming::expr_name(e), !plain));
            }
            SelectItem::ExprWithAlias { alias, .. } => names.push((crate::naming::folded(alias), false)),
            _ => return,
        }
    }
    // The position of the one computed result column a bare name means.
    let computed = |e: &Expr| -> Option<usize> {
        let Expr::Identifier(id) = e else { return None };
        let name = crate::naming::folded(id);
        let mut found = names.iter().enumerate().filter(|(_, (n, _))| *n == name);
        // Two result columns of the name: PostgreSQL refuses it as ambiguous unless they are
        // one expression; left as DataFusion reads it.
        match (found.next(), found.next()) {
            (Some((i, (_, true))), None) => Some(i + 1),
            _ => None,
        }
    };
    if let Some(OrderByKind::Expressions(items)) = q.order_by.as_mut().map(|o| &mut o.kind) {
        for item in items.iter_mut() {
            if let Some(position) = computed(&item.expr) {
                item.expr = Expr::value(Value::Number(position.to_string(), false));
            }
        }
    }
}
