//! SQL-level prepared statements: PREPARE plans and governs at once (a statement the caller may
//! not run fails there), EXECUTE runs it through the statement cache with literal parameters,
//! DEALLOCATE forgets it.

use datafusion::sql::sqlparser::ast::{Expr, Statement};

use crate::error::LaloError;
use crate::session::Session;

use super::sql::{Source, Sql};
use super::{AuditScope, Delivery, Lalo, Outcome, Request};

impl Lalo {
    /// PREPARE name AS statement.
    pub(super) async fn prepare(&self, session: &Session, name: String, statement: Box<Statement>, scope: AuditScope) -> Result<Outcome, LaloError> {
        let checked = async {
            let plan = self.plan_prepared(session, &statement).await?;
            self.govern(session, plan).await
        }
        .await;
        match checked {
            Ok(_) => {
                session.prepared.lock().insert(name, statement);
                scope.finish(0).await?;
                Ok(Outcome::command("PREPARE"))
            }
            Err(e) => Err(scope.fail(e).await),
        }
    }

    /// EXECUTE name (params).
    pub(super) async fn execute_prepared(
        &self,
        session: &Session,
        name: String,
        params: &[Expr],
        start: Request,
        delivery: Delivery<'_>,
    ) -> Result<Outcome, LaloError> {
        let statement = session.prepared.lock().get(&name).cloned();
        let Some(statement) = statement else {
            let scope = AuditScope::open(self.audit.clone(), session, &start);
            return Err(scope.fail(LaloError::InvalidStatementName(name)).await);
        };
        let names = match statement.as_ref() {
            Statement::Prepare { statement: inner, .. } => crate::naming::pg_names(inner),
            _ => None,
        };
        let start = Request { sql: Some(statement.to_string()), names, ..start };
        let scope = AuditScope::open(self.audit.clone(), session, &start);
        let prepared = async {
            let plan = self.plan_prepared(session, &statement).await?;
            Ok::<_, LaloError>((plan, literal_params(session, params)?))
        }
        .await;
        let (plan, values) = match prepared {
            Ok(p) => p,
            Err(e) => return Err(scope.fail(e).await),
        };
        let sql = Sql { source: Source::Bound { statement: &statement, plan: Some(&plan) }, key: format!("prepare:{statement}").into(), values };
        self.run_sql(session, sql, scope, &start, delivery).await
    }

    /// DEALLOCATE name | DEALLOCATE ALL.
    pub(super) async fn deallocate(&self, session: &Session, name: Option<String>, scope: AuditScope) -> Result<Outcome, LaloError> {
        let known = match &name {
            None => {
                session.prepared.lock().clear();
                true
            }
            Some(n) => session.prepared.lock().remove(n).is_some(),
        };
        match (known, name) {
            (false, Some(n)) => Err(scope.fail(LaloError::InvalidStatementName(n)).await),
            (_, name) => {
                scope.finish(0).await?;
                Ok(Outcome::command(if name.is_none() { "DEALLOCATE ALL" } else { "DEALLOCATE" }))
            }
        }
    }
}

/// EXECUTE parameters: literals only (a subquery here would escape governance).
fn literal_params(
    session: &Session,
    params: &[Expr],
) -> Result<Vec<datafusion::scalar::ScalarValue>, LaloError> {
    use datafusion::sql::sqlparser::ast::Expr as E;
    let empty = datafusion::common::DFSchema::empty();
    params
        .iter()
        .map(|p| {
            let ok = match p {
                E::Value(_) | E::TypedString(_) => true,
                E::UnaryOp { expr, .. } => matches!(expr.as_ref(), E::Value(_)),
                E::Cast { expr, .. } => matches!(expr.as_ref(), E::Value(_)),
                _ => false,
            };
            if !ok {
                return Err(LaloError::NotSupported("EXECUTE parameters must be literals".into()));
            }
            let e = session.ctx.parse_sql_expr(&p.to_string(), &empty)?;
            let simplified = datafusion::optimizer::simplify_expressions::ExprSimplifier::new(
                datafusion::optimizer::simplify_expressions::SimplifyContext::default(),
            )
            .simplify(e)?;
            match simplified {
                datafusion::logical_expr::Expr::Literal(v, _) => Ok(v),
                _ => Err(LaloError::NotSupported("EXECUTE parameters must be literals".into())),
            }
        })
        .collect()
}

