//! Describe (extended protocol) tells a statement's parameters and columns only when governance
//! would let the statement run: a statement the caller's policies refuse is refused at Describe
//! too, so its row description can neither list the columns behind `*` nor confirm that a table
//! the caller cannot see exists.

use datafusion::arrow::datatypes::DataType;
use pgwire::api::portal::Portal;
use pgwire::api::results::{DescribePortalResponse, DescribeStatementResponse};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::{ClientInfo, Type};
use pgwire::error::PgWireResult;

use super::extended::{LaloParser, Prepared};
use super::session_of;
use crate::error::LaloError;
use crate::router::Route;
use crate::service::{Lalo, Request};

/// Govern the statement as its execution would; a refusal is audited as Execute would audit it
/// (the Execute that follows in the same exchange never runs). With a bound portal the governed
/// plan goes to the session's plan cache, so that Execute reuses it instead of governing again.
async fn admit<C: ClientInfo>(lalo: &Lalo, client: &C, prepared: &Prepared, portal: Option<&Portal<Prepared>>) -> Result<(), LaloError> {
    // Questions are governed while they are drafted (Parse); other routes read no tables.
    let Some(Route::Query(stmt)) = &prepared.route else { return Ok(()) };
    let session = session_of(lalo, client)?;
    let began = std::time::Instant::now();
    let checked = async {
        let plan = match &prepared.plan {
            Some(p) if prepared.epoch == session.epoch() => p.clone(),
            _ => lalo.plan(&session, stmt).await?,
        };
        if let Some(portal) = portal.filter(|_| prepared.epoch == session.epoch()) {
            let types: Vec<Option<&DataType>> = prepared.param_types.iter().map(|t| t.as_ref()).collect();
            if let Ok(params) = arrow_pg::datatypes::df::deserialize_parameters(portal, &types) {
                if lalo.cached_prepared(&session, &prepared.text, &plan, &params).await.is_some() {
                    return Ok(());
                }
            }
        }
        lalo.govern(&session, plan).await.map(|_| ())
    }
    .await;
    if let Err(e) = &checked {
        let start = Request {
            input: prepared.text.clone(),
            sql: Some(prepared.sql.clone().unwrap_or_else(|| stmt.to_string())),
            names: prepared.names.clone(),
            ..Default::default()
        };
        lalo.audit_failure(&session, &start, e, began).await;
    }
    checked
}

/// Describe statement: parameter types (the client's where it gave them) and result columns.
pub async fn statement<C: ClientInfo>(
    lalo: &Lalo,
    parser: &LaloParser,
    client: &C,
    target: &StoredStatement<Prepared>,
) -> PgWireResult<DescribeStatementResponse> {
    admit(lalo, client, &target.statement, None).await?;
    let server_types = parser.get_parameter_types(&target.statement)?;
    let fields = parser.get_result_schema(&target.statement, None)?;
    let n = target.parameter_types.len().max(server_types.len());
    let types = (0..n)
        .map(|i| {
            target
                .parameter_types
                .get(i)
                .cloned()
                .flatten()
                .or_else(|| server_types.get(i).cloned())
                .unwrap_or(Type::UNKNOWN)
        })
        .collect();
    Ok(DescribeStatementResponse::new(types, fields))
}

/// Describe portal: the result columns in the portal's result formats.
pub async fn portal<C: ClientInfo>(
    lalo: &Lalo,
    parser: &LaloParser,
    client: &C,
    target: &Portal<Prepared>,
) -> PgWireResult<DescribePortalResponse> {
    admit(lalo, client, &target.statement.statement, Some(target)).await?;
    let fields = parser.get_result_schema(&target.statement.statement, Some(&target.result_column_format))?;
    Ok(DescribePortalResponse::new(fields))
}
