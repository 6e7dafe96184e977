//! Governance: every plan passes here before it runs. Access rules (casbin) on every table and
//! column a resolved plan reads, row filters and masks above each scan, limits, and the audit trail.
//! Only this module can construct a [`GovernedPlan`], so nothing executes ungoverned.

pub mod access;
pub mod audit;
mod bound_limits;
pub mod limits;
pub mod leakproof;
pub mod lineage;
pub mod local_fns;

pub mod member_set;
pub mod pii;
pub mod postgres;
pub mod rewrite;
mod barrier;
mod fence;
pub mod rules;
pub mod scan_budget;
pub mod watch;
pub mod lint;
#[cfg(test)] mod govern_tests;

/// Governance's rules in the engine's optimizer: the caller's leakproof conditions into a fenced
/// upstream table (before federation writes the SQL), and leakproof conditions first.
/// Functions governance puts into plans that no registry names (a distributed plan carries
/// them by their place in a list, distributed/functions.rs).
pub fn plan_functions() -> Vec<std::sync::Arc<datafusion::logical_expr::ScalarUDF>> {
    vec![barrier::Barrier::udf()]
}

pub fn plan_rules() -> crate::engine::PlanRules {
    crate::engine::PlanRules {
        before_federation: vec![std::sync::Arc::new(fence::Fences)],
        last: vec![std::sync::Arc::new(leakproof::LeakproofFirst)],
        physical_last: vec![],
        distributed: false,
    }
}

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::prelude::SessionContext;
use parking_lot::RwLock;

use crate::config::Config;
use crate::engine::views::Visibility;
use crate::error::LaloError;
use access::AccessControl;
use rules::{EffectiveLimits, Rules, Subject};

/// A plan that governance checked and rewrote. Its constructor is private to this module.
#[derive(Debug, Clone)]
pub struct GovernedPlan {
    plan: LogicalPlan,
    /// Tables and columns the statement reads (`db.schema.table[.column]`).
    pub objects: Vec<String>,
    /// What governance did to the statement.
    pub decision: Decision,
    /// Rules applied (row filters and masks), for NOTICEs and the audit record.
    pub rules: Vec<String>,
    pub limits: EffectiveLimits,
    /// The plan went through DataFusion's optimizer already (see [`GovernedPlan::optimize`]).
    optimized: bool,
}

/// What governance did to an allowed statement (a refused one never becomes a plan).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(into = "&'static str")]
pub enum Decision {
    /// Read as written.
    Allowed,
    /// Row filters applied.
    Filtered,
    /// Column masks applied.
    Masked,
    /// Both.
    FilteredMasked,
}

impl Decision {
    /// The word in the audit record, NOTICEs and tool replies.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::Filtered => "filtered",
            Decision::Masked => "masked",
            Decision::FilteredMasked => "filtered+masked",
        }
    }
}

impl Decision {
    /// The decision for a statement that had row filters (`filtered`) and masks (`masked`) applied.
    pub fn of(filtered: bool, masked: bool) -> Decision {
        match (filtered, masked) {
            (false, false) => Decision::Allowed,
            (true, false) => Decision::Filtered,
            (false, true) => Decision::Masked,
            (true, true) => Decision::FilteredMasked,
        }
    }

    /// Whether row filters, and whether masks, were applied.
    pub fn parts(self) -> (bool, bool) {
        match self {
            Decision::Allowed => (false, false),
            Decision::Filtered => (true, false),
            Decision::Masked => (false, true),
            Decision::FilteredMasked => (true, true),
        }
    }
}

impl From<Decision> for &'static str {
    fn from(d: Decision) -> &'static str {
        d.as_str()
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl GovernedPlan {
    pub fn plan(&self) -> &LogicalPlan {
        &self.plan
    }

    /// True when [`GovernedPlan::plan`] is optimized and goes straight to physical planning.
    pub fn is_optimized(&self) -> bool {
        self.optimized
    }

    /// The same decision over the optimized plan. The optimizer only reorders and simplifies what
    /// governance produced (row filters and masks stay beneath the user's predicates: they are
    /// part of the scan's input the user's plan reads), so the decision still holds.
    pub fn optimize(&self, state: &datafusion::execution::session_state::SessionState) -> Result<GovernedPlan, LaloError> {
        if self.optimized {
            return Ok(self.clone());
        }
        Ok(GovernedPlan { plan: state.optimize(&self.plan)?, optimized: true, ..self.clone() })
    }

    /// Parameter values bound into the plan; binding literals changes no decision.
    pub fn bind(&self, values: &datafusion::common::ParamValues) -> Result<GovernedPlan, LaloError> {
        let plan = bound_limits::fold(self.plan.clone().replace_params_with_values(values)?)?;
        Ok(GovernedPlan { plan, ..self.clone() })
    }
}

/// The policies in force, swapped whole on reload.
struct Policies {
    access: AccessControl,
    rules: Rules,
    cache: rewrite::RewriteCache,
}

/// Shared governance state.
pub struct Governance {
    enabled: bool,
    dir: PathBuf,
    policies: RwLock<Arc<Policies>>,
    pub limits: Arc<limits::LimitTracker>,
    /// Bumped on every reload, so caches keyed by policy (plans, NL context) start over.
    version: std::sync::atomic::AtomicU64,
    /// Classified personal data and the default masks it gives (pii/).
    pii: RwLock<Arc<pii::PiiState>>,
    /// Table sizes the pre-flight estimates read (scan_budget.rs).
    pub sizes: scan_budget::Sizes,
    /// What each user's statements were estimated to read this hour.
    pub usage: scan_budget::Usage,
}

impl std::fmt::Debug for Governance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Governance").field("enabled", &self.enabled).finish()
    }
}

impl Governance {
    pub async fn load(config: &Config) -> Result<Governance, LaloError> {
        let dir = config.resolve(&config.governance.policies);
        // Fail closed: a configured policy directory that is missing or unreadable stops lalo.
        let demo = config.builtin;
        let policies = Policies {
            access: AccessControl::load(&dir, demo).await?,
            rules: Rules::load(&dir, demo)?,
            cache: Default::default(),
        };
        Ok(Governance {
            enabled: config.governance.enabled,
            dir,
            policies: RwLock::new(Arc::new(policies)),
            limits: Arc::new(limits::LimitTracker::default()),
            version: Default::default(),
            pii: RwLock::new(Arc::new(pii::PiiState::new(pii::PiiMode::parse(&config.governance.pii)?, vec![]))),
            sizes: Default::default(),
            usage: Default::default(),
        })
    }

    /// Re-read the policy files; on error the old policies stay in force.
    pub async fn reload(&self) -> Result<(), LaloError> {
        let p = Policies {
            access: AccessControl::load(&self.dir, false).await?,
            rules: Rules::load(&self.dir, false)?,
            cache: Default::default(),
        };
        *self.policies.write() = Arc::new(p);
        self.version.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        tracing::info!(dir = %self.dir.display(), "policies reloaded");
        Ok(())
    }

    /// Changes whenever the policies in force change.
    pub fn version(&self) -> u64 {
        self.version.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn policy_dir(&self) -> &std::path::Path {
        &self.dir
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn current(&self) -> Arc<Policies> {
        self.policies.read().clone()
    }

    /// The caller's subject: name, roles from policy.csv, attributes from the config.
    pub fn subject(&self, user: &str, attributes: &std::collections::BTreeMap<String, String>) -> Subject {
        Subject { name: user.to_string(), roles: self.current().access.roles_of(user), attributes: attributes.clone() }
    }

    /// What the caller may see in catalog listings.
    pub fn visibility(self: &Arc<Self>, user: &str) -> Arc<dyn Visibility> {
        Arc::new(UserVisibility { gov: self.clone(), user: user.to_string() })
    }

    /// May `user` perform `action` on `object` (a database, table or column name)? Always
    /// true with governance off.
    pub fn may(&self, user: &str, object: &str, action: &str) -> bool {
        !self.enabled || self.current().access.table_allowed(user, object, action)
    }

    /// May `user` read column `col` of `table` (`db.schema.table`)? Always true with
    /// governance off.
    pub fn may_read_column(&self, user: &str, table: &str, col: &str) -> bool {
        !self.enabled || self.current().access.column_allowed(user, &table.to_lowercase(), &col.to_lowercase(), "select")
    }

    /// Masks that apply to a caller on `table` (`db.schema.table`): rules.toml's, and the
    /// default masks of classified personal data under `pii = "mask"`.
    pub fn masks_for(&self, subject: &Subject, table: &str) -> std::collections::BTreeMap<String, String> {
        let pii = self.pii();
        self.current().rules.masks_with(subject, table, pii.masks.get(&table.to_ascii_lowercase()))
    }

    /// The personal-data classification in force.
    pub fn pii(&self) -> Arc<pii::PiiState> {
        self.pii.read().clone()
    }

    /// Put a new classification in force; returns what changed (empty: nothing did). Plans and
    /// question contexts made under the old one start over when anything changed.
    pub fn set_pii(&self, columns: Vec<pii::Classification>) -> Vec<String> {
        let old = self.pii();
        let new = pii::PiiState::new(old.mode, columns);
        let changes = new.changes_from(&old);
        if !changes.is_empty() {
            *self.pii.write() = Arc::new(new);
            self.version.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
        changes
    }

    /// Limits that apply to a caller.
    pub fn limits_for(&self, subject: &Subject) -> EffectiveLimits {
        self.current().rules.limits_for(subject)
    }

    /// Check and rewrite a resolved plan for `subject` in database `db`.
    pub async fn govern(
        &self,
        ctx: &SessionContext,
        plan: LogicalPlan,
        subject: &Subject,
        db: &str,
    ) -> Result<GovernedPlan, LaloError> {
        refuse_writes(&plan)?;
        let pol = self.current();
        let limits = pol.rules.limits_for(subject);
        if !self.enabled {
            return Ok(GovernedPlan {
                plan: local_fns::pin(ctx, plan)?,
                objects: vec![],
                decision: Decision::Allowed,
                rules: vec![],
                limits,
                optimized: false,
            });
        }
        let schema = "public";
        check_functions(&plan, &pol.rules.functions)?;
        // Every table the statement scans (a walk into every subquery, independent of lineage)
        // and every column it refers to, wherever it appears (lineage.rs).
        let refs = lineage::references(&plan, db);
        for t in &refs.tables {
            if !rewrite::is_system_schema(t) && !pol.access.table_allowed(&subject.name, t, "select") {
                return Err(denied(t));
            }
        }
        let columns: BTreeSet<String> =
            refs.columns.into_iter().filter(|c| !rewrite::is_system_schema(c)).collect();
        for c in &columns {
            let (t, col) = c.rsplit_once('.').unwrap_or((c.as_str(), ""));
            if !pol.access.column_allowed(&subject.name, t, col, "select") {
                return Err(denied(c));
            }
        }
        let tables = refs.tables;
        let pii = self.pii();
        let (plan, applied) = rewrite::apply(ctx, plan, &pol.rules, &pii.masks, subject, db, schema, &pol.cache).await?;
        // Functions lalo answers from its own session never reach an upstream connection.
        let plan = local_fns::pin(ctx, plan)?;
        let decision = Decision::of(!applied.filters.is_empty(), !applied.masks.is_empty());
        let mut rules = applied.filters;
        rules.extend(applied.masks);
        let mut objects: Vec<String> = tables.into_iter().collect();
        objects.extend(columns);
        Ok(GovernedPlan { plan, objects, decision, rules, limits, optimized: false })
    }
}

fn denied(object: &str) -> LaloError {
    LaloError::PermissionDenied {
        object: object.to_string(),
        hint: Some("ask an administrator for access, or leave this object out of the statement".into()),
    }
}

/// lalo is read-only: DDL, DML, COPY and statements that change server state never run.
fn refuse_writes(plan: &LogicalPlan) -> Result<(), LaloError> {
    let mut bad = None;
    plan.apply_with_subqueries(|n| {
        let what = match n {
            LogicalPlan::Dml(_) => Some("data modification (INSERT, UPDATE, DELETE)"),
            LogicalPlan::Ddl(_) => Some("DDL (CREATE, DROP, ALTER)"),
            LogicalPlan::Copy(_) => Some("COPY"),
            LogicalPlan::Statement(_) => Some("this statement"),
            LogicalPlan::DescribeTable(_) => Some("DESCRIBE (use \\d in psql)"),
            LogicalPlan::Extension(_) => Some("this statement"),
            _ => None,
        };
        if let Some(w) = what {
            bad = Some(w);
            return Ok(TreeNodeRecursion::Stop);
        }
        for e in n.expressions() {
            e.apply(|x| {
                if let Expr::ScalarFunction(f) = x {
                    if FORBIDDEN_FUNCTIONS.contains(&f.name()) {
                        bad = Some("functions that read server files or sleep");
                        return Ok(TreeNodeRecursion::Stop);
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })?;
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    match bad {
        Some(w) => Err(LaloError::NotSupported(format!("{w} is not allowed: lalo is read-only"))),
        None => Ok(()),
    }
}

/// lalo's own functions standing for a cast or operator the user wrote (engine/pg_text.rs,
/// engine/pg_numeric).
fn is_cast(f: &dyn datafusion::logical_expr::ScalarUDFImpl) -> bool {
    use std::any::Any;
    let id = (f as &dyn Any).type_id();
    id == std::any::TypeId::of::<crate::engine::pg_text::PgText>()
        || id == std::any::TypeId::of::<crate::engine::pg_text::PgRint>()
        // The NUMERIC division the statement wrote, a value's display scale, and the text a
        // NUMERIC is shown with (sqrt, exp, ln and log are checked by their names).
        || (f as &dyn Any).downcast_ref::<crate::engine::pg_numeric::scalar::PgNumericFn>().is_some_and(|n| n.is_operator())
        || id == std::any::TypeId::of::<crate::engine::pg_numeric::scalar::PgNumericText>()
        // A scalar subquery the statement wrote, with its value's display scale.
        || id == std::any::TypeId::of::<crate::engine::pg_numeric::carry::PgScaled>()
        // A scalar subquery the statement wrote, typed nullable (engine/subquery_null.rs).
        || id == std::any::TypeId::of::<crate::engine::subquery_null::Nullable>()
}

/// Every function a statement calls must pass `[functions]` in rules.toml (42501 otherwise).
fn check_functions(plan: &LogicalPlan, rules: &rules::FunctionRules) -> Result<(), LaloError> {
    if rules.allow.is_empty() && rules.deny.is_empty() {
        return Ok(());
    }
    let mut denied_fn = None;
    plan.apply_with_subqueries(|n| {
        for e in n.expressions() {
            e.apply(|x| {
                // The display-scale columns lalo adds (engine/pg_numeric) call no function the
                // statement wrote.
                if matches!(x, Expr::Alias(a) if a.name.starts_with(crate::engine::pg_numeric::values::COMPANION)) {
                    return Ok(TreeNodeRecursion::Jump);
                }
                // A function by its name and aliases, so a rule on either holds.
                let named = |name: &str, aliases: &[String]| std::iter::once(name.to_string()).chain(aliases.iter().cloned()).collect::<Vec<_>>();
                let names = match x {
                    // The cast the user wrote, as lalo computes it (engine/pg_exact.rs).
                    Expr::ScalarFunction(f) if is_cast(f.func.inner().as_ref()) => None,
                    Expr::ScalarFunction(f) => Some(named(f.name(), f.func.aliases())),
                    Expr::AggregateFunction(f) => Some(named(f.func.name(), f.func.aliases())),
                    Expr::WindowFunction(f) => Some(named(f.fun.name(), &[])),
                    _ => None,
                };
                if let Some(names) = names {
                    if !rules.allows_any(&names) {
                        denied_fn = names.into_iter().next();
                        return Ok(TreeNodeRecursion::Stop);
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })?;
        }
        Ok(if denied_fn.is_some() { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    })?;
    match denied_fn {
        Some(f) => Err(LaloError::PermissionDenied {
            object: format!("function {f}"),
            hint: Some("the function is not on the allowlist in policies/rules.toml".into()),
        }),
        None => Ok(()),
    }
}

/// Functions no caller may run through lalo.
const FORBIDDEN_FUNCTIONS: &[&str] =
    &["pg_sleep", "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "lo_import", "lo_export", "pg_stat_file"];

/// Catalog visibility for one user, answered by the current policies.
struct UserVisibility {
    gov: Arc<Governance>,
    user: String,
}

impl std::fmt::Debug for UserVisibility {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UserVisibility({})", self.user)
    }
}

impl Visibility for UserVisibility {
    fn table_visible(&self, db: &str, schema: &str, table: &str) -> bool {
        if !self.gov.enabled || matches!(schema, "pg_catalog" | "information_schema") {
            return true;
        }
        let t = format!("{db}.{schema}.{table}").to_ascii_lowercase();
        self.gov.current().access.table_allowed(&self.user, &t, "select")
    }

    fn column_visible(&self, db: &str, schema: &str, table: &str, column: &str) -> bool {
        if !self.gov.enabled || matches!(schema, "pg_catalog" | "information_schema") {
            return true;
        }
        let t = format!("{db}.{schema}.{table}").to_ascii_lowercase();
        self.gov.current().access.column_allowed(&self.user, &t, &column.to_ascii_lowercase(), "select")
    }
}
