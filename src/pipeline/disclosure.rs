//! What a refusal or an error may tell the caller: never the name of a table or column they
//! cannot read, and never whether a table they cannot see exists.
//!
//! Planning sees every column of a table (so that naming a denied column is refused with 42501
//! rather than looking like a typo), which means DataFusion's own errors can list denied columns
//! ("Valid fields are …", "Did you mean …?"). Planning errors are cut here, once, before any entry
//! point (pgwire, MCP, the CLI, a drafter's repair loop) sees them.
//!
//! A table the caller may not read at all is absent from every listing they get, so a statement
//! naming it is answered as PostgreSQL answers a missing table (42P01 `relation "x" does not
//! exist`), not with 42501 that would confirm it exists. A column of a table the caller can see
//! keeps its documented 42501. The audit record keeps the real reason.

use std::collections::HashSet;

use datafusion::common::{Column, SchemaError};
use datafusion::error::DataFusionError;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement;

use crate::error::LaloError;
use crate::pipeline::Lalo;
use crate::session::Session;

/// A planning error as the caller may see it: field lists and suggestions cut to columns the
/// caller may read, and the whole message replaced when it would still name a hidden one.
pub async fn plan_error(lalo: &Lalo, session: &Session, stmt: &Statement, e: DataFusionError) -> LaloError {
    if !lalo.governance.enabled() {
        return LaloError::from_datafusion(e);
    }
    let hidden = hidden_columns(lalo, session, stmt).await;
    if hidden.is_empty() {
        return LaloError::from_datafusion(e);
    }
    let cut = match e.find_root() {
        DataFusionError::SchemaError(inner, _) => match inner.as_ref() {
            SchemaError::FieldNotFound { field, valid_fields } => {
                // DataFusion derives "Did you mean" from the same list, so cutting the list cuts both.
                let kept: Vec<Column> =
                    valid_fields.iter().filter(|c| !hidden.contains(&c.name.to_ascii_lowercase())).cloned().collect();
                Some(DataFusionError::SchemaError(
                    Box::new(SchemaError::FieldNotFound { field: field.clone(), valid_fields: kept }),
                    Box::new(None),
                ))
            }
            _ => None,
        },
        _ => None,
    };
    let e = cut.unwrap_or(e);
    let err = LaloError::from_datafusion(e);
    // Any other message (ambiguous or duplicate names, …) that names a hidden column the
    // statement itself does not name is replaced whole.
    let typed = words(&stmt.to_string());
    let leaks = words(&err.to_string()).into_iter().any(|w| hidden.contains(&w) && !typed.contains(&w));
    if leaks {
        return generic(&err);
    }
    err
}

/// A refusal of a table the caller cannot see, answered like a missing table (see the module
/// comment); every other error unchanged.
pub fn hide_relation(lalo: &Lalo, session: &Session, e: LaloError) -> LaloError {
    let LaloError::PermissionDenied { object, .. } = &e else { return e };
    // Only `db.schema.table[.column]` names a relation ("function f" and the like do not).
    if object.contains(char::is_whitespace) {
        return e;
    }
    let parts: Vec<&str> = object.splitn(4, '.').collect();
    let [db, schema, table, ..] = parts.as_slice() else { return e };
    if !lalo.governance.enabled() || lalo.governance.visibility(&session.user).table_visible(db, schema, table) {
        return e;
    }
    LaloError::HiddenRelation { relation: table.to_string(), object: object.clone() }
}

/// Lowercase names of the columns the caller may not read in the tables the statement refers
/// to (every column of a table they may not read at all). Names, not qualified names: a field
/// list qualifies by alias as often as by table, so a hidden name is cut wherever it appears.
async fn hidden_columns(lalo: &Lalo, session: &Session, stmt: &Statement) -> HashSet<String> {
    let mut hidden = HashSet::new();
    let state = session.ctx.state();
    let Ok(refs) = state.resolve_table_references(&DfStatement::Statement(Box::new(stmt.clone()))) else {
        return hidden;
    };
    let options = state.config_options();
    let (catalog, schema) = (&options.catalog.default_catalog, &options.catalog.default_schema);
    let vis = lalo.governance.visibility(&session.user);
    for r in refs {
        let t = r.resolve(catalog, schema);
        let Some(provider) = state.catalog_list().catalog(&t.catalog).and_then(|c| c.schema(&t.schema)) else { continue };
        // A table that does not resolve has nothing to list.
        let Ok(Some(table)) = provider.table(&t.table).await else { continue };
        let whole = !vis.table_visible(&t.catalog, &t.schema, &t.table);
        for f in table.schema().fields() {
            if whole || !vis.column_visible(&t.catalog, &t.schema, &t.table, f.name()) {
                hidden.insert(f.name().to_ascii_lowercase());
            }
        }
    }
    hidden
}

/// Identifier-like words of a text, lowercased.
fn words(text: &str) -> HashSet<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|w| !w.is_empty()).map(|w| w.to_lowercase()).collect()
}

/// The same kind of error with a message that names nothing.
fn generic(e: &LaloError) -> LaloError {
    match e {
        LaloError::UnknownColumn(_) => {
            LaloError::UnknownColumn("a column this statement refers to does not exist or is ambiguous".into())
        }
        LaloError::UnknownTable(_) => LaloError::UnknownTable("a relation this statement refers to does not exist".into()),
        LaloError::Syntax(_) => LaloError::Syntax("the statement cannot be planned".into()),
        LaloError::NotSupported(_) => LaloError::NotSupported("the statement uses something lalo does not support".into()),
        _ => LaloError::Query("the statement cannot be planned: it refers to columns that do not exist or are ambiguous".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_qualified_and_quoted_names() {
        let w = words("No field named \"x\". Valid fields are tpch.customer.c_acctbal, c.\"C_Name\".");
        assert!(w.contains("c_acctbal") && w.contains("c_name") && w.contains("customer"));
    }

    #[test]
    fn generic_keeps_the_sqlstate() {
        for e in [LaloError::UnknownColumn("a".into()), LaloError::Query("b".into()), LaloError::Syntax("c".into())] {
            assert_eq!(generic(&e).sqlstate(), e.sqlstate());
        }
    }
}
