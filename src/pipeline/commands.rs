//! Session commands: SET, RESET, SHOW, DISCARD ALL, transaction control and the commands
//! lalo answers as no-ops. Each is audited through the statement's scope.

use crate::error::LaloError;
use crate::execution;
use crate::router::Route;
use crate::settings::{canonical, Settings, REPORTED};
use crate::session::Session;

use super::{AuditScope, Lalo, Outcome};

impl Lalo {
    /// Run a session command and close its scope.
    pub(super) async fn command(&self, session: &Session, route: Route, mut scope: AuditScope) -> Result<Outcome, LaloError> {
        scope.lane("command");
        match self.apply_command(session, route) {
            Ok(outcome) => {
                scope.finish(0).await?;
                Ok(outcome)
            }
            Err(e) => Err(scope.fail(e).await),
        }
    }

    fn apply_command(&self, session: &Session, route: Route) -> Result<Outcome, LaloError> {
        let reported = |name: &str, s: &Settings| -> Vec<(String, String)> {
            REPORTED
                .iter()
                .filter(|(k, _)| *k == canonical(name))
                .filter_map(|(k, wire)| s.get(k).map(|v| (wire.to_string(), v)))
                .collect()
        };
        match route {
            Route::Set { name, value } => {
                let mut s = session.settings.write();
                s.set(&name, &value)?;
                session.bump_epoch();
                Ok(Outcome::Command { tag: "SET".into(), changed: reported(&name, &s) })
            }
            Route::Reset(name) => {
                let mut s = session.settings.write();
                s.reset(name.as_deref())?;
                // RESET lalo.conversation (or ALL): the next question stands alone.
                if name.as_deref().is_none_or(|n| crate::settings::canonical(n) == "lalo.conversation") {
                    session.conversation.lock().take();
                }
                if name.is_none() {
                    self.default_timeout(&mut s);
                }
                session.bump_epoch();
                let changed = match &name {
                    Some(n) => reported(n, &s),
                    None => REPORTED.iter().filter_map(|(k, w)| s.get(k).map(|v| (w.to_string(), v))).collect(),
                };
                Ok(Outcome::Command { tag: "RESET".into(), changed })
            }
            Route::DiscardAll => {
                session.conversation.lock().take();
                let mut s = session.settings.write();
                s.reset(None)?;
                self.default_timeout(&mut s);
                session.bump_epoch();
                Ok(Outcome::command("DISCARD ALL"))
            }
            Route::Show(name) => {
                let lname = canonical(&name);
                let value = match lname.as_str() {
                    "all" => return Err(LaloError::NotSupported("SHOW ALL is not supported; query pg_settings".into())),
                    "statement_timeout" => {
                        let ms = session.settings.read().statement_timeout_ms();
                        if ms == 0 { "0".into() } else { format!("{ms}ms") }
                    }
                    _ => session.settings.read().get(&lname).ok_or_else(|| LaloError::UnknownSetting(lname.clone()))?,
                };
                let (schema, rows) = execution::single_text(crate::settings::display_name(&lname), &value);
                Ok(Outcome::Rows { schema, rows })
            }
            Route::Begin => Ok(Outcome::Begin),
            Route::Commit | Route::Rollback => Ok(Outcome::Commit),
            Route::Noop(tag) => Ok(Outcome::command(tag)),
            _ => Err(LaloError::Internal("not a session command".into())),
        }
    }

    /// The server's statement timeout, which RESET ALL and DISCARD ALL return to.
    fn default_timeout(&self, s: &mut Settings) {
        if self.config.server.statement_timeout_ms > 0 {
            let _ = s.set("statement_timeout", &self.config.server.statement_timeout_ms.to_string());
        }
    }
}
