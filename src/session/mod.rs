//! A session: who the caller is (fixed at connect), which database they named, their settings,
//! and the DataFusion context that plans against their view of the catalog.

pub mod auth;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use datafusion::prelude::SessionContext;
use parking_lot::RwLock;

use crate::governance::rules::Subject;
use crate::settings::Settings;

/// Where a statement came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryPoint {
    Pgwire,
    Mcp,
    Cli,
    Http,
    Flight,
}

impl EntryPoint {
    pub fn as_str(&self) -> &'static str {
        match self {
            EntryPoint::Pgwire => "pgwire",
            EntryPoint::Mcp => "mcp",
            EntryPoint::Cli => "cli",
            EntryPoint::Http => "http",
            EntryPoint::Flight => "flight",
        }
    }
}

/// One connected caller.
pub struct Session {
    pub user: String,
    /// Who the caller is for the policies: name, roles, attributes, with the policy version the
    /// roles were read at. Roles are read again after a policy reload, so a changed `g` line
    /// applies from the next statement of every open session.
    subject: parking_lot::Mutex<(u64, Arc<Subject>)>,
    pub database: String,
    pub client: String,
    pub entry: EntryPoint,
    pub settings: Arc<RwLock<Settings>>,
    /// Plans against the caller's view of the catalog. Crate-private: the pipeline plans and
    /// executes with it, and only plans that governance produced run (pipeline/execute.rs).
    pub(crate) ctx: SessionContext,
    /// Bumped whenever a setting changes, so prepared plans made under old settings are re-planned.
    epoch: AtomicU64,
    /// Open cursors (DECLARE ... CURSOR), by name.
    pub cursors: tokio::sync::Mutex<std::collections::HashMap<String, Cursor>>,
    /// SQL-level prepared statements (PREPARE name AS ...), by name.
    pub prepared: parking_lot::Mutex<std::collections::HashMap<String, Box<datafusion::sql::sqlparser::ast::Statement>>>,
    /// The statement cache: each statement's executor, chosen once from its governed plan.
    pub statements: parking_lot::Mutex<crate::plan_cache::StatementCache>,
    /// Token shapes of repeated simple-protocol statements that take the direct lane.
    pub shapes: parking_lot::Mutex<crate::shapes::ShapeCache>,
    /// NOTICEs queued for the client (sent before the next result).
    notices: parking_lot::Mutex<Vec<String>>,
    /// Values derived from the settings that every statement needs, with the epoch they were
    /// derived at (reading them from the settings map each time cost a few percent per statement).
    derived: parking_lot::Mutex<Option<(u64, Arc<Derived>)>>,
    /// The last question answered in this session, for follow-ups (nl/followup.rs).
    pub conversation: parking_lot::Mutex<Option<crate::nl::followup::Turn>>,
}

/// Settings-derived values for one settings epoch.
#[derive(Debug)]
pub struct Derived {
    /// How values are written as text (DateStyle, IntervalStyle, bytea_output, TimeZone, ...).
    pub format: crate::pgtypes::fields::TextFormat,
    /// `statement_timeout` in milliseconds, 0 for none.
    pub statement_timeout_ms: u64,
}

/// An open cursor: the rest of a governed, running result.
pub struct Cursor {
    pub schema: datafusion::arrow::datatypes::SchemaRef,
    pub rows: crate::execution::RowStream,
    /// Rows read from the stream but not yet fetched.
    pub pending: Option<datafusion::arrow::array::RecordBatch>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("user", &self.user).field("database", &self.database).finish()
    }
}

impl Session {
    pub fn new(
        subject: Subject,
        database: String,
        client: String,
        entry: EntryPoint,
        settings: Arc<RwLock<Settings>>,
        ctx: SessionContext,
    ) -> Session {
        crate::metrics::session(1.0);
        Session {
            user: subject.name.clone(),
            subject: parking_lot::Mutex::new((u64::MAX, Arc::new(subject))),
            database,
            client,
            entry,
            settings,
            ctx,
            epoch: AtomicU64::new(0),
            cursors: Default::default(),
            prepared: Default::default(),
            statements: Default::default(),
            shapes: Default::default(),
            notices: Default::default(),
            derived: Default::default(),
            conversation: Default::default(),
        }
    }

    /// The settings-derived values in force (recomputed after a setting changes).
    pub fn derived(&self) -> Arc<Derived> {
        let epoch = self.epoch();
        let mut slot = self.derived.lock();
        if let Some((at, d)) = slot.as_ref() {
            if *at == epoch {
                return d.clone();
            }
        }
        let d = {
            let s = self.settings.read();
            Arc::new(Derived {
                format: crate::pgtypes::fields::TextFormat::from_settings(&s),
                statement_timeout_ms: s.statement_timeout_ms(),
            })
        };
        *slot = Some((epoch, d.clone()));
        d
    }

    /// The caller's subject under policy version `version`; `refresh` reads the roles again
    /// when the policies changed since they were last read.
    pub fn subject(&self, version: u64, refresh: impl FnOnce(&Subject) -> Subject) -> Arc<Subject> {
        let mut slot = self.subject.lock();
        if slot.0 != version {
            let fresh = Arc::new(refresh(&slot.1));
            *slot = (version, fresh);
        }
        slot.1.clone()
    }

    /// Advances whenever a setting changes, by a command or by `set_config()` inside a statement.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire) + self.settings.read().changes()
    }

    /// Queue a NOTICE for the client.
    pub fn notice(&self, text: impl Into<String>) {
        self.notices.lock().push(text.into());
    }

    /// Take the queued NOTICEs.
    pub fn take_notices(&self) -> Vec<String> {
        std::mem::take(&mut *self.notices.lock())
    }

    pub fn bump_epoch(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        crate::metrics::session(-1.0);
    }
}
