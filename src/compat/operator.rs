//! `a OPERATOR(pg_catalog.=) b` is PostgreSQL's spelling of a built-in operator with its schema
//! (psqlODBC writes every catalog comparison this way, so search_path cannot redirect it);
//! DataFusion knows no custom operators. A built-in operator of `pg_catalog` (or unqualified)
//! becomes the plain operator; any other stays and is refused by the planner.

use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr};

pub fn rewrite(e: &mut Expr) {
    let Expr::BinaryOp { op: BinaryOperator::PGCustomBinaryOperator(path), .. } = e else { return };
    let symbol = match path.as_slice() {
        [schema, symbol] if schema.eq_ignore_ascii_case("pg_catalog") => symbol,
        [symbol] => symbol,
        _ => return,
    };
    let plain = match symbol.as_str() {
        "=" => BinaryOperator::Eq,
        "<>" | "!=" => BinaryOperator::NotEq,
        "<" => BinaryOperator::Lt,
        ">" => BinaryOperator::Gt,
        "<=" => BinaryOperator::LtEq,
        ">=" => BinaryOperator::GtEq,
        "+" => BinaryOperator::Plus,
        "-" => BinaryOperator::Minus,
        "*" => BinaryOperator::Multiply,
        "/" => BinaryOperator::Divide,
        "%" => BinaryOperator::Modulo,
        "||" => BinaryOperator::StringConcat,
        "~" => BinaryOperator::PGRegexMatch,
        "~*" => BinaryOperator::PGRegexIMatch,
        "!~" => BinaryOperator::PGRegexNotMatch,
        "!~*" => BinaryOperator::PGRegexNotIMatch,
        "@>" => BinaryOperator::AtArrow,
        "<@" => BinaryOperator::ArrowAt,
        _ => return,
    };
    if let Expr::BinaryOp { op, .. } = e {
        *op = plain;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn catalog_operators_become_plain() {
        use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
        use datafusion::sql::sqlparser::parser::Parser;
        let mut s = Parser::parse_sql(&PostgreSqlDialect {}, "SELECT 1 WHERE a OPERATOR(pg_catalog.=) b AND c OPERATOR(pg_catalog.~) 'x' AND d OPERATOR(myschema.=) e")
            .expect("parses")
            .remove(0);
        super::super::rewrite_ast(&mut s);
        assert_eq!(s.to_string(), "SELECT 1 WHERE a = b AND c ~ 'x' AND d OPERATOR(myschema.=) e");
    }
}
