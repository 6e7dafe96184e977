//! The connection pool lalo hands to an upstream's tables: the library's PostgreSQL pool behind
//! a circuit breaker, with errors that name the upstream.
//!
//! datafusion-table-providers reports connection failures as plain text, so lalo wraps both
//! the pool (fail fast while the upstream is down, bounded wait to connect) and each connection
//! (a stream broken mid-result opens the breaker and says which upstream was lost).

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::sql::TableReference;
use datafusion_table_providers::sql::db_connection_pool::dbconnection::postgresconn::PostgresConnection;
use datafusion_table_providers::sql::db_connection_pool::dbconnection::{
    AsyncDbConnection, DbConnection, Error as ConnError, GenericError,
};
use datafusion_table_providers::sql::db_connection_pool::postgrespool::PostgresConnectionPool;
use datafusion_table_providers::sql::db_connection_pool::{DbConnectionPool, JoinPushDown};
use datafusion_table_providers::UnsupportedTypeAction;
use futures::StreamExt;
use tokio_postgres::types::ToSql;

use super::breaker::Breaker;

pub type Pooled = datafusion_table_providers::sql::db_connection_pool::dbconnection::postgresconn::PostgresPooledConnection;
pub type Param = &'static (dyn ToSql + Sync);
pub type DynPool = dyn DbConnectionPool<Pooled, Param> + Send + Sync;

/// How long a query waits for a pooled connection before the upstream counts as down.
const CONNECT_WAIT: Duration = Duration::from_secs(5);

/// The text every "upstream lost" error starts with; `LaloError` maps it to 08006.
pub const LOST_PREFIX: &str = crate::error::UPSTREAM_LOST_PREFIX;

pub fn lost_message(upstream: &str, detail: &str) -> String {
    format!("{LOST_PREFIX}: \"{upstream}\": {detail}")
}

#[derive(Debug, thiserror::Error)]
#[error("{}", lost_message(.upstream, .detail))]
pub struct UpstreamLost {
    pub upstream: String,
    pub detail: String,
}

pub struct GuardedPool {
    name: String,
    inner: Arc<PostgresConnectionPool>,
    breaker: Arc<Breaker>,
}

impl GuardedPool {
    pub fn new(name: &str, inner: Arc<PostgresConnectionPool>, breaker: Arc<Breaker>) -> Self {
        Self { name: name.to_string(), inner, breaker }
    }

    fn lost(&self, detail: impl Into<String>) -> GenericError {
        Box::new(UpstreamLost { upstream: self.name.clone(), detail: detail.into() })
    }
}

#[async_trait]
impl DbConnectionPool<Pooled, Param> for GuardedPool {
    async fn connect(&self) -> Result<Box<dyn DbConnection<Pooled, Param>>, GenericError> {
        if let Err(last) = self.breaker.check() {
            return Err(self.lost(format!("unavailable ({last})")));
        }
        let pg = match tokio::time::timeout(CONNECT_WAIT, self.inner.connect_direct()).await {
            Ok(Ok(c)) => c.with_unsupported_type_action(UnsupportedTypeAction::String),
            Ok(Err(e)) => {
                self.breaker.failure(&e.to_string());
                return Err(self.lost(e.to_string()));
            }
            Err(_) => {
                self.breaker.failure("connect timed out");
                return Err(self.lost("connect timed out"));
            }
        };
        if pg.conn.is_closed() {
            self.breaker.failure("connection closed");
            return Err(self.lost("connection closed"));
        }
        Ok(Box::new(GuardedConnection { name: self.name.clone(), inner: pg, breaker: self.breaker.clone() }))
    }

    fn join_push_down(&self) -> JoinPushDown {
        self.inner.join_push_down()
    }
}

pub struct GuardedConnection {
    name: String,
    inner: PostgresConnection,
    breaker: Arc<Breaker>,
}

impl DbConnection<Pooled, Param> for GuardedConnection {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn as_async(&self) -> Option<&dyn AsyncDbConnection<Pooled, Param>> {
        Some(self)
    }
}

#[async_trait]
impl AsyncDbConnection<Pooled, Param> for GuardedConnection {
    fn new(conn: Pooled) -> Self {
        GuardedConnection { name: String::new(), inner: PostgresConnection::new(conn), breaker: Arc::default() }
    }

    async fn tables(&self, schema: &str) -> Result<Vec<String>, ConnError> {
        self.inner.tables(schema).await
    }

    async fn schemas(&self) -> Result<Vec<String>, ConnError> {
        self.inner.schemas().await
    }

    async fn get_schema(&self, table_reference: &TableReference) -> Result<SchemaRef, ConnError> {
        self.inner.get_schema(table_reference).await
    }

    async fn query_arrow(
        &self,
        sql: &str,
        params: &[Param],
        projected_schema: Option<SchemaRef>,
    ) -> Result<SendableRecordBatchStream, GenericError> {
        tracing::debug!(upstream = %self.name, sql, "upstream query");
        let stream = match self.inner.query_arrow(sql, params, projected_schema).await {
            Ok(s) => s,
            Err(e) => return Err(self.classify(e.to_string())),
        };
        let schema = stream.schema();
        let name = self.name.clone();
        let breaker = self.breaker.clone();
        let mapped = stream.map(move |item| {
            item.map_err(|e| {
                let text = e.to_string();
                if is_connection_failure(&text) {
                    breaker.failure(&text);
                    DataFusionError::Execution(lost_message(&name, &text))
                } else {
                    e
                }
            })
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, mapped)))
    }

    async fn execute(&self, sql: &str, params: &[Param]) -> Result<u64, GenericError> {
        self.inner.execute(sql, params).await.map_err(|e| self.classify(e.to_string()))
    }
}

impl GuardedConnection {
    fn classify(&self, text: String) -> GenericError {
        if is_connection_failure(&text) || self.inner.conn.is_closed() {
            self.breaker.failure(&text);
            Box::new(UpstreamLost { upstream: self.name.clone(), detail: text })
        } else {
            text.into()
        }
    }
}

/// tokio-postgres' wording for a connection that went away (server killed, socket reset).
fn is_connection_failure(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("connection closed")
        || t.contains("error communicating with the server")
        || t.contains("unexpected eof")
        || t.contains("connection reset")
        || t.contains("broken pipe")
        || t.contains("terminating connection due to administrator command")
}
