//! The direct executor: a statement that runs wholly on one upstream goes there as a prepared
//! statement with this execution's values, under the same admission, guard and audit as the
//! engine's statements. When the upstream's rows can be forwarded as they are, they reach the
//! client without decoding; when the upstream cannot take the statement as prepared, it falls
//! out to the engine with the decision already made (no second governance, no second admission).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use datafusion::common::ScalarValue;
use pgwire::messages::data::DataRow;

use crate::engine::upstream::direct::DirectError;
use crate::error::LaloError;
use crate::execution;
use crate::governance::limits::Slot;
use crate::passthrough::{DirectPlan, FORWARD_NO, FORWARD_YES};
use crate::plan_cache::{Executor, Stamp};
use crate::session::Session;

use super::{rename, AuditScope, Delivery, Lalo, Outcome, Request};

/// What the direct executor did.
pub(super) enum Direct<'a> {
    /// It ran the statement (or failed it): the scope is closed or handed to the guard.
    Done(Result<Outcome, LaloError>),
    /// The statement runs on the engine instead, already admitted when `slot` is set.
    FellOut { scope: AuditScope, slot: Option<Slot>, delivery: Delivery<'a> },
}

impl Lalo {
    /// Run `dp` upstream with `values`.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn run_direct<'a>(
        &self,
        session: &Session,
        dp: &Arc<DirectPlan>,
        values: Vec<ScalarValue>,
        mut scope: AuditScope,
        start: &Request,
        mut delivery: Delivery<'a>,
        cached: (Stamp, &str),
    ) -> Direct<'a> {
        let Some(pool) = self.engine.upstreams().get(&dp.upstream).and_then(|u| u.direct()) else {
            return Direct::FellOut { scope, slot: None, delivery };
        };
        if values.len() != dp.param_types.len() {
            return Direct::FellOut { scope, slot: None, delivery };
        }
        let Ok(values) = values.iter().zip(&dp.param_types).map(|(v, t)| v.cast_to(t)).collect::<Result<Vec<_>, _>>() else {
            return Direct::FellOut { scope, slot: None, delivery };
        };
        let governed = &dp.governed;
        scope.governed(governed);
        scope.lane("direct");
        let slot = match self.admit(session, &governed.limits) {
            Ok(s) => s,
            Err(e) => return Direct::Done(Err(scope.fail(e).await)),
        };
        let schema = rename(&dp.schema, start.names.as_deref());
        // Pass-through: rows forwarded as the upstream encoded them, when lalo would encode
        // every column the same way (decided once per plan).
        if let (Some(codes), None) = (delivery.wire, delivery.cap) {
            if dp.forward.load(Ordering::Relaxed) != FORWARD_NO {
                // The description and its type OIDs, once per plan and format (the plan's stamp
                // includes the settings they depend on); `None` when a column has no PostgreSQL type.
                let described = dp.described.get_or_try_insert(codes, || {
                    let fields = crate::pgtypes::fields::wire_fields(&schema, codes, &session.derived().format);
                    Ok::<_, std::convert::Infallible>(fields.map(|f| {
                        let oids: Arc<[u32]> = f.iter().map(|i| i.type_oid).collect();
                        (Arc::new(f), oids)
                    }))
                });
                if let Ok(Some((columns, expect))) = described {
                    // Lookups by primary key share pipelined connections (see `shared`) and come
                    // back whole.
                    let rows = if dp.key_lookup && pool.pipelines() {
                        // A start line's sync overlaps the lookup when no sync runs (see `whole`).
                        if self.audit.sync_idle() {
                            scope.start();
                        }
                        upstream_call(&dp.upstream, &dp.sql, pool.query_shared(&dp.sql, &values, &expect, codes))
                            .await
                            .map(Answer::Whole)
                    } else {
                        upstream_call(&dp.upstream, &dp.sql, pool.query_wire(&dp.sql, &values, &expect, codes))
                            .await
                            .map(Answer::Streamed)
                    };
                    match rows {
                        Ok(answer) => {
                            dp.forward.store(FORWARD_YES, Ordering::Relaxed);
                            crate::metrics::direct_statement();
                            crate::metrics::forwarded_statement();
                            let rows = match answer {
                                Answer::Whole(rows) => {
                                    let max_rows = self.max_rows(&governed.limits);
                                    return Direct::Done(whole(scope, slot, max_rows, schema, columns, rows).await);
                                }
                                Answer::Streamed(rows) => rows,
                            };
                            let upstream = dp.upstream.clone();
                            let rows = futures::StreamExt::boxed(futures::StreamExt::map(rows, move |r| {
                                r.map_err(|e| direct_error(&upstream, e))
                            }));
                            let opts = self.guard_options(session, &governed.limits, scope, slot, delivery);
                            let rows = execution::guard_items(rows, opts);
                            return Direct::Done(Ok(Outcome::Wire { schema, columns, rows }));
                        }
                        Err(DirectError::Unsupported(why)) => {
                            tracing::debug!(why, "rows are decoded, not forwarded");
                            dp.forward.store(FORWARD_NO, Ordering::Relaxed);
                        }
                        Err(e) => return Direct::Done(Err(scope.fail(direct_error(&dp.upstream, e)).await)),
                    }
                }
            }
        }
        let stream = match upstream_call(&dp.upstream, &dp.sql, pool.query(&dp.sql, &values, dp.schema.clone())).await {
            Ok(s) => s,
            Err(DirectError::Unsupported(why)) => {
                tracing::debug!(why, "statement leaves the direct lane");
                let (stamp, key) = cached;
                session.statements.lock().put(stamp, key.to_string(), Some(Arc::new(Executor::planned())));
                delivery.wire = None;
                scope.lane("engine");
                return Direct::FellOut { scope, slot: Some(slot), delivery };
            }
            Err(e) => return Direct::Done(Err(scope.fail(direct_error(&dp.upstream, e)).await)),
        };
        crate::metrics::direct_statement();
        let opts = self.guard_options(session, &governed.limits, scope, slot, delivery);
        Direct::Done(Ok(Outcome::Rows { schema, rows: execution::guard(stream, opts) }))
    }
}

/// What the upstream answered on the pass-through.
enum Answer {
    /// The whole result, in hand (a key lookup on a pipelined connection).
    Whole(Vec<DataRow>),
    /// Rows as they arrive.
    Streamed(crate::engine::upstream::direct::WireRows),
}

/// Deliver a result that is whole before anything was recorded of it (a key lookup on a
/// pipelined connection, of this lane or the PostgreSQL lane): one audit line records
/// the statement with its rows and duration, durable before the rows leave, where a streamed
/// result writes a start line before its first row and an end line after its last (as does a
/// lookup whose start line was sent to overlap its sync). No deadline or cancel is left to
/// watch: the statement has run.
pub(super) async fn whole(
    scope: AuditScope,
    slot: Slot,
    max_rows: Option<u64>,
    schema: datafusion::arrow::datatypes::SchemaRef,
    columns: Arc<Vec<crate::pgtypes::fields::WireField>>,
    rows: Vec<DataRow>,
) -> Result<Outcome, LaloError> {
    if let Some(max) = max_rows.filter(|max| rows.len() as u64 > *max) {
        return Err(scope.fail(execution::row_limit_exceeded(max)).await);
    }
    scope.finish(rows.len() as u64).await?;
    drop(slot);
    let items = if rows.is_empty() { vec![] } else { vec![Ok(rows)] };
    Ok(Outcome::Wire { schema, columns, rows: futures::StreamExt::boxed(futures::stream::iter(items)) })
}

/// One round trip to an upstream (until its first answer): the `upstream` stage with the SQL
/// sent, and the upstream's latency and lost connections.
pub(super) async fn upstream_call<T>(
    upstream: &str,
    sql: &str,
    call: impl std::future::Future<Output = Result<T, DirectError>>,
) -> Result<T, DirectError> {
    let began = std::time::Instant::now();
    let out = crate::telemetry::traced("upstream", Some(sql), call).await;
    // An attempt the lane could not make (it falls back) is no round trip of the upstream's.
    if !matches!(out, Err(DirectError::Unsupported(_))) {
        crate::metrics::upstream_call(upstream, began.elapsed().as_secs_f64(), matches!(out, Err(DirectError::Lost(_))));
    }
    out
}

/// The client's error for a failure upstream, of the direct lane or the PostgreSQL lane (a lost
/// upstream is 08006).
pub(super) fn direct_error(upstream: &str, e: DirectError) -> LaloError {
    match e {
        DirectError::Lost(message) => LaloError::UpstreamLost { upstream: upstream.to_string(), message },
        DirectError::Upstream { code, message } => LaloError::Upstream { code, message },
        other => LaloError::Query(other.to_string()),
    }
}
