//! The PostgreSQL lane: a SELECT whose relations all live in the session's upstream PostgreSQL
//! database runs there as the client wrote it, so PostgreSQL's own semantics, functions, types
//! and column names hold exactly. Each relation reference is replaced by the governed derived
//! table governance made for it (governance/postgres.rs); the rows come back as the upstream
//! encoded them, described as the upstream describes them.
//!
//! A statement the lane does not take (another database's tables, lalo's catalog, a function
//! not known to read only its arguments, a session function lalo answers itself, more than one
//! statement) goes on to the engine, which plans and governs it under its own rules; the choice
//! is remembered per statement text and stamp, like every executor.

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use tokio_postgres::types::Type;

use crate::engine::upstream::direct::RawParams;
use crate::engine::upstream::wire::WireField;
use crate::error::LaloError;
use crate::execution;
use crate::governance::postgres::{GovernedSql, RelationPart};
use crate::plan_cache::Executor;
use crate::session::Session;

use super::direct::direct_error as upstream_error;
use super::{AuditScope, Delivery, Lalo, Outcome, Request};

/// Settings that change how PostgreSQL writes values: the upstream writes them as the session has them.
const OUTPUT_SETTINGS: &[(&str, &str)] = &[
    ("timezone", "TimeZone"),
    ("datestyle", "DateStyle"),
    ("intervalstyle", "IntervalStyle"),
    ("extra_float_digits", "extra_float_digits"),
    ("bytea_output", "bytea_output"),
];

/// A statement the lane prepared for the extended protocol: its text, the parameter types the
/// client declared, and the parameters and columns the upstream described.
#[derive(Debug)]
pub struct LaneStatement {
    pub text: String,
    pub types: Vec<u32>,
    pub params: Vec<u32>,
    pub fields: Vec<WireField>,
    /// The governed statement made at Parse and the stamp it was made under: executions under
    /// the same stamp take it as it is.
    governed: (Arc<GovernedSql>, String),
    stamp: crate::plan_cache::Stamp,
}

impl Lalo {
    /// Run `text` on the session's upstream PostgreSQL when the lane takes it (simple protocol);
    /// `None` means "route it to the engine".
    pub async fn run_postgres(&self, session: &Session, text: &str, delivery: &mut Delivery<'_>) -> Option<Result<Outcome, LaloError>> {
        delivery.wire?;
        let found = self.lane_statement(session, text).await?;
        let delivery = std::mem::take(delivery);
        Some(self.run_lane(session, text, found, &RawParams::default(), true, delivery).await)
    }

    /// Prepare `text` in the lane (extended protocol Parse) with the client's parameter types;
    /// `None` means "parse it for the engine". A refusal is audited.
    pub async fn prepare_postgres(&self, session: &Session, text: &str, types: &[u32]) -> Option<Result<LaneStatement, LaloError>> {
        // Declared parameter types are PostgreSQL's built-in ones, and none that reads names from
        // the catalog (`regclass` and kin); anything else takes the engine.
        let plain = |oid: &u32| *oid == 0 || Type::from_oid(*oid).is_some_and(|t| !t.name().trim_start_matches('_').starts_with("reg"));
        if !types.iter().all(plain) {
            return None;
        }
        let found = self.lane_statement(session, text).await?;
        let stamp = self.stamp(session);
        let described = async {
            let (governed, sql) = found?;
            let pool = self.engine.upstreams().get(&session.database).and_then(|u| u.direct());
            let pool = pool.ok_or_else(|| LaloError::Internal("the upstream has no connections".into()))?;
            let (params, fields) = pool.describe_typed(&sql, types, &output_settings(session)).await.map_err(|e| upstream_error(&session.database, e))?;
            Ok(LaneStatement { text: text.to_string(), types: types.to_vec(), params, fields, governed: (governed, sql), stamp })
        }
        .await;
        Some(match described {
            Ok(s) => Ok(s),
            Err(e) => Err(self.refuse(session, text, e).await),
        })
    }

    /// Execute a statement the lane prepared, with the client's parameters as it bound them.
    pub async fn run_postgres_bound(
        &self,
        session: &Session,
        lane: &LaneStatement,
        values: Vec<Option<bytes::Bytes>>,
        formats: Vec<i16>,
        delivery: Delivery<'_>,
    ) -> Result<Outcome, LaloError> {
        // Governed again only when the stamp moved since Parse (a policy reload, say).
        let found = if self.stamp(session) == lane.stamp { Some(Ok(lane.governed.clone())) } else { self.lane_statement(session, &lane.text).await };
        let Some(found) = found else {
            let e = LaloError::NotSupported("cached plan must not change result type: prepare the statement again".into());
            return Err(self.refuse(session, &lane.text, e).await);
        };
        let params = RawParams { types: lane.types.clone(), values, formats };
        self.run_lane(session, &lane.text, found, &params, false, delivery).await
    }

    /// The governed statement for `text` and the SQL the upstream runs for it, from the session's
    /// statement cache by shape, or governed now; `None` when the lane does not take it.
    async fn lane_statement(&self, session: &Session, text: &str) -> Option<Result<(Arc<GovernedSql>, String), LaloError>> {
        if !self.config.catalog.postgres_lane || self.has_scan_budget(session) {
            return None;
        }
        let upstream = self.engine.upstreams().get(&session.database)?.clone();
        // A down upstream is the engine's to report (and a statement without tables, a pool's
        // `SELECT 1`, still answers there).
        if !upstream.is_up() || upstream.direct().is_none() {
            return None;
        }
        // The lane reads text as PostgreSQL does with standard-conforming strings (pinned upstream).
        if session.settings.read().get("standard_conforming_strings").is_some_and(|v| v != "on") {
            return None;
        }
        // Statements that differ only in constants share one decision (see pgsql/splice.rs).
        let shape = crate::pgsql::splice::shape(text).ok()?;
        let stamp = self.stamp(session);
        let key = format!("postgres:{}", shape.key);
        let cached = session.statements.lock().get(stamp, &key);
        Some(match cached {
            Some(Some(e)) => match e.as_ref() {
                Executor::Postgres(g) => g.render(text, &shape).map(|sql| (g.clone(), sql)),
                _ => return None,
            },
            // Known not to take this lane.
            Some(None) => return None,
            None => match self.govern_postgres(session, text, &shape).await {
                Ok(Some(g)) => {
                    let g = Arc::new(g);
                    session.statements.lock().put(stamp, key, Some(Arc::new(Executor::Postgres(g.clone()))));
                    let sql = g.sql.clone();
                    Ok((g, sql))
                }
                Ok(None) => {
                    session.statements.lock().put(stamp, key, None);
                    return None;
                }
                // A refusal is audited by the caller and not remembered.
                Err(e) => Err(e),
            },
        })
    }

    /// Run the governed statement upstream under one audit scope, one admission and the guard.
    async fn run_lane(
        &self,
        session: &Session,
        text: &str,
        found: Result<(Arc<GovernedSql>, String), LaloError>,
        params: &RawParams,
        simple: bool,
        delivery: Delivery<'_>,
    ) -> Result<Outcome, LaloError> {
        let start = Request { input: text.to_string(), sql: Some(text.to_string()), began: Some(Instant::now()), ..Default::default() };
        let mut scope = AuditScope::open(self.audit.clone(), session, &start);
        scope.lane("postgres");
        let (governed, sql) = match found {
            Ok(g) => g,
            Err(e) => return Err(scope.fail(e).await),
        };
        scope.decided(&governed.objects, governed.decision, &governed.rules);
        let slot = match self.admit(session, &governed.limits) {
            Ok(s) => s,
            Err(e) => return Err(scope.fail(e).await),
        };
        let Some(pool) = self.engine.upstreams().get(&governed.upstream).and_then(|u| u.direct()) else {
            return Err(scope.fail(LaloError::Internal("the upstream has no connections".into())).await);
        };
        let codes: &[i16] = delivery.wire.unwrap_or_default();
        let settings = output_settings(session);
        // A lookup by whole primary key shares a pipelined connection and comes back whole:
        // one audit line, durable before its row leaves (see `direct::whole`). When no sync is
        // running the line's own sync would follow the lookup: a start line sent now overlaps
        // it instead (a single client's latency), and the end line follows.
        if governed.key_lookup && pool.pipelines() && delivery.cap.is_none() {
            if self.audit.sync_idle() {
                scope.start();
            }
            let call = pool.lookup_shared(&sql, params, codes, &settings, simple);
            match super::direct::upstream_call(&governed.upstream, &sql, call).await {
                Ok(Some((fields, rows))) => {
                    crate::metrics::postgres_statement();
                    crate::metrics::forwarded_statement();
                    let max_rows = self.max_rows(&governed.limits);
                    return super::direct::whole(scope, slot, max_rows, text_schema(&fields), Arc::new(fields), rows).await;
                }
                Ok(None) => {}
                Err(e) => return Err(scope.fail(upstream_error(&governed.upstream, e)).await),
            }
        }
        // The start line's sync overlaps the upstream's answer.
        scope.start();
        // The simple protocol's statements go as one simple Query (its constants differ every
        // time: nothing is worth preparing); the extended protocol's as prepared statements.
        let ran = if simple {
            super::direct::upstream_call(&governed.upstream, &sql, pool.query_simple(&sql, &settings)).await
        } else {
            super::direct::upstream_call(&governed.upstream, &sql, pool.query_described(&sql, params, codes, &settings)).await
        };
        let (fields, rows) = match ran {
            Ok(found) => found,
            Err(e) => return Err(scope.fail(upstream_error(&governed.upstream, e)).await),
        };
        crate::metrics::postgres_statement();
        crate::metrics::forwarded_statement();
        let schema = text_schema(&fields);
        let columns = Arc::new(fields);
        let name = governed.upstream.clone();
        let rows = futures::StreamExt::boxed(futures::StreamExt::map(rows, move |r| r.map_err(|e| upstream_error(&name, e))));
        let opts = self.guard_options(session, &governed.limits, scope, slot, delivery);
        Ok(Outcome::Wire { schema, columns, rows: execution::guard_items(rows, opts) })
    }

    /// The governed statement for `text`, `Ok(None)` when the lane does not take it.
    async fn govern_postgres(
        &self,
        session: &Session,
        text: &str,
        shape: &crate::pgsql::splice::Shape,
    ) -> Result<Option<GovernedSql>, LaloError> {
        let Ok(analysis) = crate::pgsql::analyze(text) else { return Ok(None) };
        if let Some(why) = &analysis.declined {
            tracing::debug!(why, "statement takes the engine");
            return Ok(None);
        }
        let db = session.database.clone();
        let Some(catalog) = session.ctx.catalog(&db) else { return Ok(None) };
        // Each distinct table once: its governed plan and upstream text.
        let mut tables: Vec<Resolved> = Vec::new();
        let mut index = Vec::with_capacity(analysis.relations.len());
        for rel in &analysis.relations {
            if rel.catalog.as_deref().is_some_and(|c| c != db) {
                return Ok(None);
            }
            let schema = rel.schema.clone().unwrap_or_else(|| "public".into());
            if let Some(i) = tables.iter().position(|t| t.schema == schema && t.name == rel.name) {
                index.push(i);
                continue;
            }
            let Some(schema_provider) = catalog.schema(&schema) else { return Ok(None) };
            let Ok(Some(provider)) = schema_provider.table(&rel.name).await else { return Ok(None) };
            let table = format!("{db}.{schema}.{}", rel.name).to_lowercase();
            let columns: Vec<String> = provider.schema().fields().iter().map(|f| f.name().clone()).collect();
            let denied: Vec<String> =
                columns.iter().filter(|c| !self.governance.may_read_column(&session.user, &table, c)).cloned().collect();
            let permitted: Vec<&String> = columns.iter().filter(|c| !denied.contains(c)).collect();
            // No column at all: governing the whole table gives governance's own refusal.
            let read = if permitted.is_empty() { columns.iter().collect() } else { permitted };
            let list: Vec<String> = read.iter().map(|c| crate::pgsql::splice::quote_ident(c)).collect();
            let q = crate::pgsql::splice::quote_ident;
            // Named as the upstream's connections name it (the session's database is the
            // upstream's catalog, `public` their search path), so the federated scan keeps it.
            let from = if schema == "public" { q(&rel.name) } else { format!("{}.{}", q(&schema), q(&rel.name)) };
            let sql = format!("SELECT {} FROM {from}", list.join(", "));
            let governed = self.plan_text(session, &sql).await?;
            let ups = self.engine.upstreams();
            let Some(direct) = crate::passthrough::derive(&session.ctx.state(), &governed, |d| ups.get(d).is_some(), |_, _, _| vec![]).await
            else {
                return Ok(None);
            };
            if direct.upstream != db || !direct.param_types.is_empty() {
                return Ok(None);
            }
            // Every name in it schema-qualified, so no CTE of the client's can stand in for one.
            let Ok(upstream_sql) = crate::pgsql::splice::qualify(&direct.sql, "public") else { return Ok(None) };
            index.push(tables.len());
            tables.push(Resolved { schema, name: rel.name.clone(), table, columns, denied, governed, upstream_sql });
        }
        // `t.f` is the call `f(t)` when `t` has no column `f`: every qualified name must be a
        // column of a table here or one the statement defines, so no function is called that way.
        let known = |n: &String| analysis.defined.contains(n) || tables.iter().any(|t| t.columns.contains(n));
        if !analysis.qualified.iter().all(known) {
            tracing::debug!("a qualified name that is no column: the engine takes the statement");
            return Ok(None);
        }
        let parts: Vec<RelationPart<'_>> = analysis
            .relations
            .iter()
            .zip(&index)
            .map(|(rel, &i)| {
                let t = &tables[i];
                RelationPart {
                    relation: rel,
                    table: &t.table,
                    remote: (&t.schema, &t.name),
                    columns: &t.columns,
                    denied: &t.denied,
                    governed: &t.governed,
                    upstream_sql: &t.upstream_sql,
                }
            })
            .collect();
        let subject = self.subject(session);
        let mut governed = self.governance.govern_postgres(&subject, &db, text, shape, &analysis, &parts)?;
        // A row-filtered table is read through a derived table PostgreSQL may not push the key
        // into (`OFFSET 0`, so no predicate runs on hidden rows): that is no index lookup.
        let filtered = governed.decision.parts().0;
        governed.key_lookup = match (&analysis.lookup, tables.as_slice()) {
            (Some(equal), [t]) if analysis.relations.len() == 1 && !filtered => {
                let key = crate::engine::keys::declared(&self.engine.docs().read(), &db, &t.schema, &t.name).primary_key;
                !key.is_empty() && key.iter().all(|k| equal.contains(k))
            }
            _ => false,
        };
        Ok(Some(governed))
    }
}

/// A table a statement of the lane reads, resolved in lalo's catalog and governed.
struct Resolved {
    schema: String,
    name: String,
    /// lalo's name of it, `db.schema.table`, as policies name it.
    table: String,
    columns: Vec<String>,
    denied: Vec<String>,
    governed: crate::governance::GovernedPlan,
    upstream_sql: String,
}

/// The schema the lane's rows are described by to lalo's own layers (the client sees the
/// upstream's description).
fn text_schema(fields: &[WireField]) -> datafusion::arrow::datatypes::SchemaRef {
    Arc::new(Schema::new(fields.iter().map(|f| Field::new(&f.name, DataType::Utf8, true)).collect::<Vec<_>>()))
}

/// The session's output settings, as the upstream names them.
fn output_settings(session: &Session) -> Vec<(String, String)> {
    let settings = session.settings.read();
    OUTPUT_SETTINGS.iter().filter_map(|(k, pg)| settings.get(k).map(|v| (pg.to_string(), v))).collect()
}

