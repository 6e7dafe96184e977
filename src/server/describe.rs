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
use crate::pipeline::Lalo;

/// Govern the statement as its execution would, through the statement cache, so the Execute
/// that follows finds the decision made (one governance per statement); a refusal is audited as
/// Execute would audit it (the Execute that follows in the same exchange never runs).
async fn admit<C: ClientInfo>(lalo: &Lalo, client: &C, prepared: &Prepared, portal: Option<&Portal<Prepared>>) -> Result<(), LaloError> {
    // Questions are governed while they are drafted (Parse); other routes read no tables.
    let Some(Route::Query(stmt)) = &prepared.route else { return Ok(()) };
    let session = session_of(lalo, client)?;
    let types: Vec<Option<&DataType>> = prepared.param_types.iter().map(|t| t.as_ref()).collect();
    let params = portal
        .and_then(|p| arrow_pg::datatypes::df::deserialize_parameters(p, &types).ok())
        .unwrap_or_else(|| datafusion::common::ParamValues::List(vec![]));
    lalo.check(&session, super::extended::bound(prepared, stmt, params, session.epoch())).await
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
