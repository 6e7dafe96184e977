//! Per-upstream SQL dialect profiles (`dialects/<name>.toml`): the unparser used to write SQL for
//! the upstream, function renames applied while unparsing, and hints and verified examples for
//! question drafting.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::sql::sqlparser::ast;
use datafusion::sql::unparser::dialect::{Dialect, IntervalStyle, PostgreSqlDialect};
use datafusion::sql::unparser::Unparser;
use serde::Deserialize;

use crate::error::LaloError;

/// A verified question and its SQL.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    pub question: String,
    pub sql: String,
}

/// One dialect profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialectProfile {
    pub name: String,
    pub unparser: String,
    #[serde(default)]
    pub prompt_hints: Vec<String>,
    #[serde(default)]
    pub function_renames: BTreeMap<String, String>,
    #[serde(default)]
    pub examples: Vec<Example>,
}

/// The profile compiled in for PostgreSQL, used when `dialects/postgres.toml` is absent.
const POSTGRES: &str = include_str!("../../dialects/postgres.toml");

impl DialectProfile {
    pub fn parse(text: &str, origin: &str) -> Result<DialectProfile, LaloError> {
        let p: DialectProfile = toml::from_str(text).map_err(|e| LaloError::Config(format!("{origin}: {e}")))?;
        if p.unparser != "postgres" {
            return Err(LaloError::Config(format!("{origin}: unparser '{}' is not supported (postgres)", p.unparser)));
        }
        Ok(p)
    }

    /// `dir/<name>.toml`, else the compiled-in profile of that name.
    pub fn load(dir: &Path, name: &str) -> Result<DialectProfile, LaloError> {
        let path = dir.join(format!("{name}.toml"));
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text, &path.display().to_string()),
            Err(_) if name == "postgres" => Self::parse(POSTGRES, "dialects/postgres.toml (built in)"),
            Err(e) => Err(LaloError::Config(format!("{}: {e}", path.display()))),
        }
    }

    /// The unparser dialect for SQL sent to this upstream.
    pub fn unparser(&self) -> Arc<ProfiledPostgres> {
        Arc::new(ProfiledPostgres { renames: self.function_renames.clone() })
    }
}

/// DataFusion's PostgreSQL unparser with the profile's function renames.
#[derive(Debug)]
pub struct ProfiledPostgres {
    renames: BTreeMap<String, String>,
}

impl Dialect for ProfiledPostgres {
    fn use_array_keyword_for_array_literals(&self) -> bool {
        PostgreSqlDialect {}.use_array_keyword_for_array_literals()
    }
    fn supports_qualify(&self) -> bool {
        PostgreSqlDialect {}.supports_qualify()
    }
    fn requires_derived_table_alias(&self) -> bool {
        PostgreSqlDialect {}.requires_derived_table_alias()
    }
    fn supports_empty_select_list(&self) -> bool {
        PostgreSqlDialect {}.supports_empty_select_list()
    }
    fn identifier_quote_style(&self, id: &str) -> Option<char> {
        PostgreSqlDialect {}.identifier_quote_style(id)
    }
    fn interval_style(&self) -> IntervalStyle {
        PostgreSqlDialect {}.interval_style()
    }
    fn float64_ast_dtype(&self) -> ast::DataType {
        PostgreSqlDialect {}.float64_ast_dtype()
    }
    fn int8_cast_dtype(&self) -> ast::DataType {
        PostgreSqlDialect {}.int8_cast_dtype()
    }
    fn scalar_function_to_sql_overrides(
        &self,
        unparser: &Unparser,
        func_name: &str,
        args: &[Expr],
    ) -> Result<Option<ast::Expr>> {
        if let Some(to) = self.renames.get(func_name) {
            let args = args
                .iter()
                .map(|a| Ok(ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(unparser.expr_to_sql(a)?))))
                .collect::<Result<Vec<_>>>()?;
            return Ok(Some(ast::Expr::Function(ast::Function {
                name: ast::ObjectName::from(vec![ast::Ident::new(to)]),
                uses_odbc_syntax: false,
                parameters: ast::FunctionArguments::None,
                args: ast::FunctionArguments::List(ast::FunctionArgumentList {
                    duplicate_treatment: None,
                    args,
                    clauses: vec![],
                }),
                filter: None,
                null_treatment: None,
                over: None,
                within_group: vec![],
            })));
        }
        // lalo's PostgreSQL-exact text cast (pg_text.rs) is PostgreSQL's own cast upstream.
        if let ("pg_text", [arg]) = (func_name, args) {
            return Ok(Some(ast::Expr::Cast {
                kind: ast::CastKind::DoubleColon,
                expr: Box::new(ast::Expr::Nested(Box::new(unparser.expr_to_sql(arg)?))),
                data_type: ast::DataType::Text,
                array: false,
                format: None,
            }));
        }
        // lalo's `extract` (pg_date_part.rs) is PostgreSQL's EXTRACT, numeric alike.
        if let ("extract", [Expr::Literal(field, _), arg]) = (func_name, args) {
            if let Some(Some(field)) = field.try_as_str() {
                return Ok(Some(ast::Expr::Extract {
                    field: ast::DateTimeField::Custom(ast::Ident::new(field)),
                    syntax: ast::ExtractSyntax::From,
                    expr: Box::new(unparser.expr_to_sql(arg)?),
                }));
            }
        }
        // PostgreSQL's round(double precision) is half to even, as lalo's pg_rint.
        if let ("pg_rint", [arg]) = (func_name, args) {
            return Ok(Some(ast::Expr::Function(ast::Function {
                name: ast::ObjectName::from(vec![ast::Ident::new("round")]),
                uses_odbc_syntax: false,
                parameters: ast::FunctionArguments::None,
                args: ast::FunctionArguments::List(ast::FunctionArgumentList {
                    duplicate_treatment: None,
                    args: vec![ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(unparser.expr_to_sql(arg)?))],
                    clauses: vec![],
                }),
                filter: None,
                null_treatment: None,
                over: None,
                within_group: vec![],
            })));
        }
        // Masks run upstream as the PostgreSQL expression they stand for.
        if let [arg] = args {
            let col = unparser.expr_to_sql(arg)?.to_string();
            if let Some(sql) = super::mask_fn::MaskFn::postgres_sql(func_name, &col) {
                let parsed = datafusion::sql::sqlparser::parser::Parser::new(&datafusion::sql::sqlparser::dialect::PostgreSqlDialect {})
                    .try_with_sql(&sql)
                    .and_then(|mut p| p.parse_expr())
                    .map_err(|e| datafusion::error::DataFusionError::Plan(format!("mask for upstream: {e}")))?;
                return Ok(Some(parsed));
            }
        }
        PostgreSqlDialect {}.scalar_function_to_sql_overrides(unparser, func_name, args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_profile_loads_and_renames() {
        let p = DialectProfile::parse(POSTGRES, "postgres.toml").unwrap();
        assert_eq!(p.function_renames.get("nvl").map(String::as_str), Some("coalesce"));
        assert!(!p.examples.is_empty());
        let dialect = p.unparser();
        let unparser = Unparser::new(dialect.as_ref());
        let e = datafusion::functions::core::expr_fn::nvl(datafusion::prelude::col("a"), datafusion::prelude::lit(1));
        assert_eq!(unparser.expr_to_sql(&e).unwrap().to_string(), "coalesce(\"a\", 1)");
    }
}
