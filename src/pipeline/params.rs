//! A statement with `$n` parameters whose values come as typed values rather than PostgreSQL
//! text or binary (the HTTP API's JSON, Arrow Flight SQL's parameter batches): planned with its
//! placeholders and governed first, then each value cast to the type the plan gives its
//! placeholder (a cast error names a column's type, so it may only concern what the caller may
//! read), then run as the extended protocol runs a bound statement. Every refusal before the
//! run is audited.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::Statement;

use super::{Bound, Delivery, Input, Lalo, Outcome};
use crate::error::LaloError;
use crate::session::Session;

fn invalid(message: String) -> LaloError {
    LaloError::Data { code: "22P02", message }
}

/// The plan's parameter types in `$1, $2, ...` order.
pub fn param_types(plan: &LogicalPlan) -> Result<Vec<Option<DataType>>, LaloError> {
    let mut ordered: Vec<(usize, Option<DataType>)> = plan
        .get_parameter_types()?
        .into_iter()
        .filter_map(|(k, t)| k.trim_start_matches('$').parse::<usize>().ok().map(|i| (i, t)))
        .collect();
    ordered.sort_by_key(|(i, _)| *i);
    Ok(ordered.into_iter().map(|(_, t)| t).collect())
}

impl Lalo {
    /// Run `stmt` (sent as `text`) with these values for its parameters.
    pub async fn run_with_params(
        &self,
        session: &Session,
        text: &str,
        stmt: &Statement,
        values: Result<Vec<ScalarValue>, LaloError>,
        delivery: Delivery<'_>,
    ) -> Result<Outcome, LaloError> {
        let prepared = async {
            let plan = self.plan(session, stmt).await?;
            self.govern(session, plan.clone()).await?;
            let types = param_types(&plan)?;
            let values = values?;
            if types.len() != values.len() {
                return Err(invalid(format!("the statement takes {} parameters, {} were given", types.len(), values.len())));
            }
            let values = values
                .into_iter()
                .zip(&types)
                .map(|(v, t)| match t {
                    Some(t) if !v.is_null() && v.data_type() != *t => v.cast_to(t).map_err(|e| invalid(format!("parameter {v}: {e}"))),
                    _ => Ok(v),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((plan, types, values))
        };
        let (plan, types, values) = match prepared.await {
            Ok(p) => p,
            Err(e) => return Err(self.refuse(session, text, e).await),
        };
        let key = Bound::cache_key(text, &types);
        let bound = Bound {
            text,
            statement: stmt,
            plan: Some(&plan),
            param_types: &types,
            key: &key,
            params: ParamValues::List(values.into_iter().map(Into::into).collect()),
            sql: Some(stmt.to_string()),
            names: crate::naming::pg_names(stmt),
        };
        self.run(session, Input::Bound(bound), delivery).await
    }
}
