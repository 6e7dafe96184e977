//! SQL cursors: DECLARE runs the governed statement and keeps its stream; FETCH reads from it;
//! CLOSE drops it. Every one of them is audited, an unknown cursor's FETCH or CLOSE included.

use futures::StreamExt;

use crate::error::LaloError;
use crate::session::{Cursor, Session};

use super::{AuditScope, Delivery, Lalo, Outcome, Request};
use datafusion::sql::sqlparser::ast::Statement;

impl Lalo {
    /// DECLARE name CURSOR FOR query: the query's governed result, kept open under `name`. Its
    /// record closes when the cursor's rows end or the cursor is closed.
    pub(super) async fn declare(
        &self,
        session: &Session,
        name: String,
        query: &Statement,
        start: Request,
    ) -> Result<Outcome, LaloError> {
        let scope = AuditScope::open(self.audit.clone(), session, &start);
        let plan = match self.plan(session, query).await {
            Ok(p) => p,
            Err(e) => return Err(scope.fail(e).await),
        };
        let governed = match self.govern(session, plan).await {
            Ok(g) => g,
            Err(e) => return Err(scope.fail(e).await),
        };
        match self.run_governed(session, governed, scope, &start, Delivery::default(), None).await? {
            Outcome::Rows { schema, mut rows } => {
                // The first batch is read now: the guard yields it only once the statement's
                // audit line is durable, so DECLARE does not complete before its record exists.
                let pending = match futures::StreamExt::next(&mut rows).await {
                    Some(Ok(batch)) => Some(batch),
                    Some(Err(e)) => return Err(e),
                    None => None,
                };
                session.cursors.lock().await.insert(name, Cursor { schema, rows, pending });
                Ok(Outcome::command("DECLARE CURSOR"))
            }
            other => Ok(other),
        }
    }

    /// FETCH [count] FROM name: up to `count` rows (all when None).
    pub(super) async fn fetch(&self, session: &Session, name: &str, count: Option<u64>, scope: AuditScope) -> Result<Outcome, LaloError> {
        match self.read_cursor(session, name, count).await {
            Ok((outcome, rows)) => {
                scope.finish(rows).await?;
                Ok(outcome)
            }
            Err(e) => Err(scope.fail(e).await),
        }
    }

    async fn read_cursor(&self, session: &Session, name: &str, count: Option<u64>) -> Result<(Outcome, u64), LaloError> {
        let mut cursors = session.cursors.lock().await;
        let cursor = cursors.get_mut(name).ok_or_else(|| LaloError::InvalidCursor(name.to_string()))?;
        let mut want = count.unwrap_or(u64::MAX);
        let mut out = Vec::new();
        let mut read = 0;
        while want > 0 {
            let batch = match cursor.pending.take() {
                Some(b) => b,
                None => match cursor.rows.next().await {
                    Some(b) => b?,
                    None => break,
                },
            };
            let n = batch.num_rows() as u64;
            if n > want {
                out.push(batch.slice(0, want as usize));
                cursor.pending = Some(batch.slice(want as usize, (n - want) as usize));
                read += want;
                want = 0;
            } else {
                want -= n;
                read += n;
                out.push(batch);
            }
        }
        let schema = cursor.schema.clone();
        let rows = futures::stream::iter(out.into_iter().map(Ok)).boxed();
        Ok((Outcome::Rows { schema, rows }, read))
    }

    /// CLOSE name | CLOSE ALL.
    pub(super) async fn close(&self, session: &Session, name: Option<String>, scope: AuditScope) -> Result<Outcome, LaloError> {
        let closed = {
            let mut cursors = session.cursors.lock().await;
            match name {
                None => {
                    cursors.clear();
                    Ok(())
                }
                Some(n) => match cursors.remove(&n) {
                    Some(_) => Ok(()),
                    None => Err(LaloError::InvalidCursor(n)),
                },
            }
        };
        match closed {
            Ok(()) => {
                scope.finish(0).await?;
                Ok(Outcome::command("CLOSE CURSOR"))
            }
            Err(e) => Err(scope.fail(e).await),
        }
    }
}
