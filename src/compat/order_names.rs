//! ORDER BY a bare name sorts by the result column of that name where there is one
//! (PostgreSQL's SQL92 rule, before looking at the input's columns): `SELECT x::text FROM t
//! ORDER BY x` orders the text values. DataFusion looks a name up among explicit aliases and
//! then the input's columns, so a result column PostgreSQL names after an unaliased
//! expression (`x::text` is `x`, `lower(n)` is `lower`) would be sorted by the input column of
//! that name: another order, without an error. Such a name is replaced by the column's
//! position, which both read alike.

use datafusion::sql::sqlparser::ast::{Expr, OrderByKind, Query, SelectItem, SetExpr, Value};

/// Order by position where a bare ORDER BY name means an unaliased, computed result column.
pub fn rewrite(q: &mut Query) {
    let SetExpr::Select(select) = q.body.as_ref() else { return };
    let Some(order_by) = q.order_by.as_mut() else { return };
    let OrderByKind::Expressions(items) = &mut order_by.kind else { return };
    // Each result column's name, and whether DataFusion finds it by that name already (an
    // alias, or a plain column). A wildcard hides the names: nothing is changed.
    let mut names = Vec::with_capacity(select.projection.len());
    for item in &select.projection {
        match item {
            SelectItem::UnnamedExpr(e) => {
                let plain = matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_));
                names.push((crate::naming::expr_name(e), plain));
            }
            SelectItem::ExprWithAlias { alias, .. } => names.push((crate::naming::folded(alias), true)),
            _ => return,
        }
    }
    for item in items.iter_mut() {
        let Expr::Identifier(id) = &item.expr else { continue };
        let name = crate::naming::folded(id);
        let mut found = names.iter().enumerate().filter(|(_, (n, _))| *n == name);
        // Two result columns of the name: PostgreSQL refuses it as ambiguous unless they are
        // one expression; left as DataFusion reads it.
        if let (Some((i, (_, false))), None) = (found.next(), found.next()) {
            item.expr = Expr::value(Value::Number((i + 1).to_string(), false));
        }
    }
}
