//! The simple query protocol: one Query message, any number of statements.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{Sink, SinkExt};
use pgwire::api::portal::Format;
use pgwire::api::query::SimpleQueryHandler;
use pgwire::api::results::{Response, Tag};
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, ConnectionHandle};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::startup::ParameterStatus;
use pgwire::messages::PgWireBackendMessage;

use super::{encode, session_of};
use crate::session::Session;
use crate::execution::CancelArm;
use crate::router::Route;
use crate::pipeline::{Delivery, Input, Lalo, Outcome};

pub struct SimpleHandler {
    pub lalo: Arc<Lalo>,
}

/// A cancel hook for this connection: armed when the result starts streaming.
pub fn cancel_arm<C: ClientInfo>(client: &C) -> Option<CancelArm> {
    let handle = client.session_extensions().get::<Arc<ConnectionHandle>>()?;
    let handle: Arc<ConnectionHandle> = (*handle).clone();
    Some(Box::new(move || {
        Box::pin(async move {
            let rx = handle.start_query().await;
            if rx.await.is_err() {
                // Replaced by a later statement: this one can no longer be canceled.
                futures::future::pending::<()>().await;
            }
        })
    }))
}

/// Turn one outcome into a pgwire response, sending ParameterStatus for changed settings.
pub async fn respond<C>(client: &mut C, session: &crate::session::Session, outcome: Outcome, format: &Format, route_tag: Option<&str>) -> PgWireResult<Response>
where
    C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    // NOTICEs queued by the statement (an ASK's SQL and policy rewrites) go before its rows.
    for text in session.take_notices() {
        let info = pgwire::error::ErrorInfo::new("NOTICE".into(), "00000".into(), text);
        client.send(PgWireBackendMessage::NoticeResponse(info.into())).await?;
    }
    Ok(match outcome {
        Outcome::Rows { schema, rows } => {
            let opts = encode::format_options(session);
            let zone = encode::Zone::of(&opts.time_zone);
            let fields = encode::fields(&schema, format, opts)?;
            Response::Query(encode::response(fields, rows, zone))
        }
        Outcome::Wire { columns, rows, .. } => {
            let fields = crate::pgtypes::fields::field_infos(&columns, &crate::pgtypes::fields::codes_of(format));
            Response::Query(encode::forwarded(Arc::new(fields), rows))
        }
        Outcome::Command { tag, changed } => {
            for (k, v) in changed {
                client.send(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(k, v))).await?;
            }
            Response::Execution(Tag::new(&tag))
        }
        Outcome::CopyOut { schema, rows, options } => {
            let opts = encode::format_options(session);
            let zone = encode::Zone::of(&opts.time_zone);
            // Binary COPY carries each value in its binary wire format.
            let format = if options.format == crate::copy::CopyFormat::Binary { Format::UnifiedBinary } else { Format::UnifiedText };
            let fields = encode::fields(&schema, &format, opts)?;
            Response::CopyOut(encode::copy_response(fields, rows, options, zone))
        }
        Outcome::Begin => Response::TransactionStart(Tag::new("BEGIN")),
        Outcome::Commit => Response::TransactionEnd(Tag::new(route_tag.unwrap_or("COMMIT"))),
        Outcome::Empty => Response::EmptyQuery,
    })
}

#[async_trait]
impl SimpleQueryHandler for SimpleHandler {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session_of(&self.lalo, client)?;
        let span = crate::telemetry::statement_span("pgwire", &session.user, query, None);
        tracing::Instrument::instrument(self.query(client, session, query), span).await
    }
}

impl SimpleHandler {
    async fn query<C>(&self, client: &mut C, session: Arc<Session>, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut delivery = Delivery { cancel: cancel_arm(client), cap: None, wire: Some(&[]) };
        // A SELECT over the session's upstream PostgreSQL: run there as written, governed; else
        // a repeat of a statement that ran wholly upstream: no parsing (see shapes.rs).
        let mut done = self.lalo.run_postgres(&session, query, &mut delivery).await;
        if done.is_none() {
            done = self.lalo.run_shaped(&session, query, &mut delivery).await;
        }
        if let Some(done) = done {
            return Ok(vec![match done {
                Ok(outcome) => respond(client, &session, outcome, &Format::UnifiedText, None).await?,
                Err(e) => Response::Error(Box::new(e.error_info("ERROR"))),
            }]);
        }
        let routes = match self.lalo.route(&session, query) {
            Ok(r) => r,
            Err(e) => return Err(self.lalo.refuse(&session, query, e).await.into()),
        };
        let single = routes.len() == 1;
        let mut out = Vec::with_capacity(routes.len());
        for route in routes {
            let input = if single { query.to_string() } else { route_text(&route) };
            let tag = match &route {
                Route::Rollback => Some("ROLLBACK"),
                _ => None,
            };
            let delivery = Delivery { cancel: cancel_arm(client), cap: None, wire: Some(&[]) };
            match self.lalo.run(&session, Input::Routed { route, text: &input }, delivery).await {
                Ok(outcome) => out.push(respond(client, &session, outcome, &Format::UnifiedText, tag).await?),
                Err(e) => {
                    out.push(Response::Error(Box::new(e.error_info("ERROR"))));
                    break;
                }
            }
        }
        Ok(out)
    }
}

/// The text of one statement, for the audit record when a message held several.
pub fn route_text(route: &Route) -> String {
    match route {
        Route::Query(s) => s.to_string(),
        Route::Set { name, value } => format!("SET {name} = {value}"),
        Route::Reset(Some(n)) => format!("RESET {n}"),
        Route::Reset(None) => "RESET ALL".into(),
        Route::Show(n) => format!("SHOW {n}"),
        Route::Begin => "BEGIN".into(),
        Route::Commit => "COMMIT".into(),
        Route::Rollback => "ROLLBACK".into(),
        Route::DiscardAll => "DISCARD ALL".into(),
        Route::Ask { question, explain } => format!("{}ASK {question}", if *explain { "EXPLAIN " } else { "" }),
        Route::Noop(t) => t.to_string(),
        Route::RefreshUpstream(Some(n)) => format!("REFRESH UPSTREAM {n}"),
        Route::RefreshUpstream(None) => "REFRESH UPSTREAM".into(),
        Route::Declare { name, query } => format!("DECLARE {name} CURSOR FOR {query}"),
        Route::Fetch { name, count } => match count {
            Some(n) => format!("FETCH {n} FROM {name}"),
            None => format!("FETCH ALL FROM {name}"),
        },
        Route::Close(Some(n)) => format!("CLOSE {n}"),
        Route::Close(None) => "CLOSE ALL".into(),
        Route::Prepare { statement, .. } => statement.to_string(),
        Route::Execute { name, params } => {
            format!("EXECUTE {name}({})", params.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", "))
        }
        Route::Deallocate(Some(n)) => format!("DEALLOCATE {n}"),
        Route::Deallocate(None) => "DEALLOCATE ALL".into(),
        Route::CopyOut { query, options } => format!("COPY ({query}) TO STDOUT (FORMAT {})", format!("{:?}", options.format).to_ascii_uppercase()),
    }
}
