//! Per-session cache of governed, optimized plans, so a statement repeated with other literals
//! (or a prepared statement executed again) skips SQL planning, governance and the optimizer.
//!
//! PostgreSQL keeps plans of prepared statements; lalo does the same for the embedded engine and
//! also for simple-protocol text, whose comparison literals are lifted into parameters first
//! (`passthrough::parameterize`). An entry holds the plan after governance and optimization, with
//! `$n` placeholders still in it; each execution binds the values (cast to the types the plan
//! inferred) and goes straight to physical planning. Access decisions, row filters and masks are
//! the ones made when the entry was built; the stamp (settings epoch, policy version, catalog
//! generation) and an age limit (row filters whose subquery was evaluated into a value list are
//! re-evaluated after `rewrite::FILTER_TTL`) retire entries, so a cached plan never outlives the
//! decision it carries.
//!
//! Plans that could differ between executions are never cached: those calling a function that
//! is not immutable (`now()`, `random()`, `current_user`: the optimizer folds some of them into
//! constants) and those with a federated (upstream) part, whose SQL is fixed inside an extension
//! node that parameter binding does not reach.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan, Volatility};

use crate::governance::GovernedPlan;

/// Entries kept per session before the cache starts over (statements are usually few).
const MAX_ENTRIES: usize = 256;

/// A governed, optimized plan with its parameters' types, `$1` first.
#[derive(Debug)]
pub struct CachedPlan {
    pub governed: GovernedPlan,
    pub param_types: Vec<DataType>,
}

impl CachedPlan {
    /// The plan with `values` bound, ready for physical planning; `None` when a value does not
    /// convert to its parameter's type (the statement then takes the uncached path, which
    /// reports the error PostgreSQL would).
    pub fn bind(&self, values: &[ScalarValue]) -> Option<GovernedPlan> {
        if values.len() != self.param_types.len() {
            return None;
        }
        if values.is_empty() {
            return Some(self.governed.clone());
        }
        let typed: Vec<ScalarValue> =
            values.iter().zip(&self.param_types).map(|(v, t)| v.cast_to(t)).collect::<Result<_, _>>().ok()?;
        self.governed.bind(&ParamValues::from(typed)).ok()
    }
}

/// The cache stamp: everything besides the statement's key that can change its plan or its
/// decision. The user and the database are the session's own (caches live in the session).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stamp {
    /// Bumped by every SET/RESET/DISCARD of the session.
    pub settings_epoch: u64,
    /// Bumped by every policy reload.
    pub policy_version: u64,
    /// Bumped whenever an upstream's catalog is read again.
    pub catalog_generation: u64,
}

/// A session's statements by key (text with literals lifted), for one stamp: `Some(plan)` to
/// reuse, `None` known not to qualify. Entries older than `rewrite::FILTER_TTL` count as unknown,
/// since a row filter's evaluated subquery inside them is that old. Serves this module's plans and
/// the direct lane's (passthrough.rs).
#[derive(Debug)]
pub struct StampedCache<V> {
    stamp: Stamp,
    entries: HashMap<String, (Option<Arc<V>>, Instant)>,
}

impl<V> Default for StampedCache<V> {
    fn default() -> Self {
        StampedCache { stamp: Stamp::default(), entries: HashMap::new() }
    }
}

impl<V> StampedCache<V> {
    /// `Some(Some(plan))` to reuse, `Some(None)` known not to qualify, `None` unknown.
    pub fn get(&mut self, stamp: Stamp, key: &str) -> Option<Option<Arc<V>>> {
        if self.stamp != stamp {
            self.stamp = stamp;
            self.entries.clear();
            return None;
        }
        match self.entries.get(key) {
            Some((_, made)) if made.elapsed() >= crate::governance::rewrite::FILTER_TTL => {
                self.entries.remove(key);
                None
            }
            other => other.map(|(p, _)| p.clone()),
        }
    }

    pub fn put(&mut self, stamp: Stamp, key: String, plan: Option<Arc<V>>) {
        if self.stamp != stamp {
            self.stamp = stamp;
            self.entries.clear();
        }
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.clear();
        }
        self.entries.insert(key, (plan, Instant::now()));
    }
}

/// How a cached statement runs: the executor chosen once, from its governed plan, when the
/// statement was first seen under the current stamp.
#[derive(Debug)]
pub enum Executor {
    /// Wholly on one upstream, as a prepared statement there (passthrough.rs).
    Direct(Arc<crate::passthrough::DirectPlan>),
    /// On the embedded engine from the governed, optimized plan; each execution binds values.
    Embedded(Arc<CachedPlan>),
    /// Planned and governed afresh on every execution (volatile functions, federated parts that
    /// are not one upstream statement, or a text whose lifted form does not plan). A decision
    /// made ahead of the execution (the extended protocol's Describe) waits here for it, once.
    Planned(Checked),
    /// On one upstream PostgreSQL as the client wrote it, each relation replaced by its governed
    /// derived table (the PostgreSQL lane, pipeline/postgres.rs).
    Postgres(Arc<crate::governance::postgres::GovernedSql>),
}

impl Executor {
    pub fn planned() -> Executor {
        Executor::Planned(Checked::default())
    }
}

/// A governed plan (placeholders unbound) that the next execution takes instead of governing again.
#[derive(Debug, Default)]
pub struct Checked(parking_lot::Mutex<Option<GovernedPlan>>);

impl Checked {
    pub fn put(&self, governed: GovernedPlan) {
        *self.0.lock() = Some(governed);
    }

    pub fn take(&self) -> Option<GovernedPlan> {
        self.0.lock().take()
    }
}

/// One statement cache per session: key (text with literals lifted, or a prepared statement's
/// text with its parameter types) → executor. Shared by the simple and extended protocols.
pub type StatementCache = StampedCache<Executor>;

/// Build a cache entry from a governed plan (placeholders unbound), or `None` when the plan may
/// not be reused.
pub fn build(state: &SessionState, governed: &GovernedPlan) -> Option<CachedPlan> {
    if !reusable(governed.plan()) {
        return None;
    }
    let param_types = crate::passthrough::param_types(governed.plan())?;
    let optimized = governed.optimize(state).ok()?;
    let mut federated = false;
    let _ = optimized.plan().apply_with_subqueries(|n| {
        federated = matches!(n, LogicalPlan::Extension(_));
        Ok(if federated { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    });
    if federated {
        return None;
    }
    Some(CachedPlan { governed: optimized, param_types })
}

/// A query whose every function is immutable: its optimized plan means the same at any time.
fn reusable(plan: &LogicalPlan) -> bool {
    if matches!(plan, LogicalPlan::Explain(_) | LogicalPlan::Analyze(_) | LogicalPlan::Statement(_)) {
        return false;
    }
    let mut ok = true;
    let _ = plan.apply_with_subqueries(|n| {
        for e in n.expressions() {
            let _ = e.apply(|x| {
                let volatile = match x {
                    Expr::ScalarFunction(f) => f.func.signature().volatility != Volatility::Immutable,
                    Expr::AggregateFunction(f) => f.func.signature().volatility == Volatility::Volatile,
                    Expr::WindowFunction(_) => false,
                    _ => false,
                };
                if volatile {
                    ok = false;
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            });
        }
        Ok(if ok { TreeNodeRecursion::Continue } else { TreeNodeRecursion::Stop })
    });
    ok
}
