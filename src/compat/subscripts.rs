//! `generate_subscripts(array, dim)` in a select list, which SQLAlchemy's key and index
//! reflection pairs with `unnest(pg_index.indkey)` to number the key columns. DataFusion has
//! no such set-returning function; lalo writes it as
//! `unnest(range(1, array_length(array, dim) + 1))`, which DataFusion unnests in step with the
//! other `unnest`s of the same select list, as PostgreSQL runs set-returning functions side
//! by side. lalo's arrays start at 1, so the subscripts are 1 to the length; with
//! `reverse => true` (a third argument) they count down.

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, CastKind, DataType, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, ObjectNamePart, UnaryOperator, Value,
};

use datafusion::sql::sqlparser::ast::helpers::attached_token::AttachedToken;

use super::call;

/// Rewrite `e` if it is a call of `generate_subscripts` with two or three plain arguments.
pub fn rewrite(e: &mut Expr) {
    let Expr::Function(f) = e else { return };
    let is_it = matches!(f.name.0.last(), Some(ObjectNamePart::Identifier(i)) if i.value.eq_ignore_ascii_case("generate_subscripts"));
    if !is_it || f.over.is_some() || f.filter.is_some() {
        return;
    }
    let FunctionArguments::List(list) = &f.args else { return };
    let args: Option<Vec<Expr>> = list
        .args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => Some(x.clone()),
            _ => None,
        })
        .collect();
    let Some(args) = args else { return };
    let (array, dim, reverse) = match args.as_slice() {
        [a, d] => (a.clone(), d.clone(), None),
        [a, d, r] => (a.clone(), d.clone(), Some(r.clone())),
        _ => return,
    };
    let number = |n: &str| Expr::value(Value::Number(n.into(), false));
    // array_length counts in UInt64; range takes Int64.
    let length = Expr::Cast {
        kind: CastKind::Cast,
        expr: Box::new(call("array_length", vec![array, dim])),
        data_type: DataType::BigInt(None),
        array: false,
        format: None,
    };
    let plus_one = Expr::BinaryOp { left: Box::new(length.clone()), op: BinaryOperator::Plus, right: Box::new(number("1")) };
    let up = call("range", vec![number("1"), plus_one]);
    let subscripts = match reverse {
        None => up,
        Some(r) => {
            let minus_one = Expr::UnaryOp { op: UnaryOperator::Minus, expr: Box::new(number("1")) };
            let down = call("range", vec![length, number("0"), minus_one]);
            Expr::Case {
                case_token: AttachedToken::empty(),
                end_token: AttachedToken::empty(),
                operand: None,
                conditions: vec![datafusion::sql::sqlparser::ast::CaseWhen { condition: r, result: down }],
                else_result: Some(Box::new(up)),
            }
        }
    };
    *e = call("unnest", vec![subscripts]);
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::ast::{Expr, VisitMut, VisitorMut};
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    use std::ops::ControlFlow;

    fn rewritten(sql: &str) -> String {
        struct V;
        impl VisitorMut for V {
            type Break = ();
            fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
                super::rewrite(e);
                ControlFlow::Continue(())
            }
        }
        let mut s = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0);
        let _ = s.visit(&mut V);
        s.to_string()
    }

    #[test]
    fn subscripts_become_an_unnested_range() {
        assert_eq!(
            rewritten("SELECT unnest(indkey), generate_subscripts(indkey, 1) AS ord FROM pg_index"),
            "SELECT unnest(indkey), unnest(range(1, CAST(array_length(indkey, 1) AS BIGINT) + 1)) AS ord FROM pg_index"
        );
        assert!(rewritten("SELECT generate_subscripts(a, 1, true)").contains("range(CAST(array_length(a, 1) AS BIGINT), 0, -1)"));
    }
}
