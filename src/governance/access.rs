//! Access rules: casbin (`policies/model.conf` + `policy.csv`), default deny, deny overrides allow.

use std::collections::HashMap;
use std::path::Path;

use casbin::{CoreApi, DefaultModel, Enforcer, StringAdapter};
use parking_lot::RwLock;

use crate::error::LaloError;

const DEMO_MODEL: &str = include_str!("../../policies/model.conf");
const DEMO_POLICY: &str = include_str!("../../policies/policy.csv");

/// A casbin enforcer plus a decision cache (cleared on reload).
pub struct AccessControl {
    enforcer: Enforcer,
    cache: RwLock<HashMap<(String, String, String), bool>>,
}

impl std::fmt::Debug for AccessControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessControl").finish_non_exhaustive()
    }
}

impl AccessControl {
    /// Load `dir/model.conf` and `dir/policy.csv`. Only with `demo` (the compiled-in demo
    /// config) and no such directory do the compiled-in demo policies stand in; otherwise a
    /// missing or unreadable file is an error, never an open door.
    pub async fn load(dir: &Path, demo: bool) -> Result<AccessControl, LaloError> {
        let model = policy_file(dir, "model.conf", demo.then_some(DEMO_MODEL))?;
        let policy = policy_file(dir, "policy.csv", demo.then_some(DEMO_POLICY))?;
        Self::from_text(&model, &policy).await
    }

    pub async fn from_text(model: &str, policy: &str) -> Result<AccessControl, LaloError> {
        let m = DefaultModel::from_str(model)
            .await
            .map_err(|e| LaloError::Config(format!("policies/model.conf: {e}")))?;
        // casbin's CSV reader does not skip comment lines; drop them (and blanks) first.
        let cleaned: String = policy
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .map(|l| format!("{}\n", fold_object(l)))
            .collect();
        let enforcer = Enforcer::new(m, StringAdapter::new(cleaned))
            .await
            .map_err(|e| LaloError::Config(format!("policies/policy.csv: {e}")))?;
        Ok(AccessControl { enforcer, cache: RwLock::new(HashMap::new()) })
    }

    fn enforce(&self, user: &str, object: &str, action: &str) -> bool {
        let object = &object.to_lowercase();
        let key = (user.to_string(), object.to_string(), action.to_string());
        if let Some(v) = self.cache.read().get(&key) {
            return *v;
        }
        let v = self.enforcer.enforce((user, object, action)).unwrap_or(false);
        self.cache.write().insert(key, v);
        v
    }

    /// An explicit deny rule matches this request.
    fn explicitly_denied(&self, user: &str, object: &str, action: &str) -> bool {
        let object = &object.to_lowercase();
        let key = (user.to_string(), object.to_string(), format!("{action}#deny"));
        if let Some(v) = self.cache.read().get(&key) {
            return *v;
        }
        let v = match self.enforcer.enforce_ex((user, object, action)) {
            Ok((false, rules)) => !rules.is_empty(),
            _ => false,
        };
        self.cache.write().insert(key, v);
        v
    }

    /// May `user` perform `action` on the table `db.schema.table`?
    pub fn table_allowed(&self, user: &str, table: &str, action: &str) -> bool {
        self.enforce(user, table, action)
    }

    /// May `user` read column `col` of `table`? Either the column itself is allowed, or the table
    /// is and no deny rule names the column.
    pub fn column_allowed(&self, user: &str, table: &str, col: &str, action: &str) -> bool {
        let obj = format!("{table}.{col}");
        self.enforce(user, &obj, action)
            || (self.enforce(user, table, action) && !self.explicitly_denied(user, &obj, action))
    }

    /// Roles of a user (direct and inherited), for row filters, masks and limits.
    pub fn roles_of(&self, user: &str) -> Vec<String> {
        use casbin::RbacApi;
        let mut out = vec![user.to_string()];
        let mut i = 0;
        while i < out.len() {
            let more = self.enforcer.get_roles_for_user(&out[i].clone(), None);
            for r in more {
                if !out.contains(&r) {
                    out.push(r);
                }
            }
            i += 1;
        }
        out
    }
}

/// A policy line with its object in the one form requests use: lower case, no identifier
/// quotes. Objects are compared without regard to case, so a rule on `"Payroll"` holds for the
/// table a statement resolves to however it spells it, and a deny rule cannot be escaped by
/// quoting or case (a rule then covers tables whose names differ only by case alike).
fn fold_object(line: &str) -> String {
    let mut fields: Vec<String> = line.split(',').map(str::to_string).collect();
    if fields.first().is_some_and(|f| f.trim().starts_with('p')) && fields.len() > 2 {
        fields[2] = fields[2].replace('"', "").to_lowercase();
    }
    fields.join(",")
}

/// The text of one policy file; `demo` stands in only when the whole directory is absent.
pub fn policy_file(dir: &Path, name: &str, demo: Option<&str>) -> Result<String, LaloError> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !dir.exists() => match demo {
            Some(text) => Ok(text.to_string()),
            None => Err(LaloError::Config(format!("policy directory {} does not exist", dir.display()))),
        },
        Err(e) => Err(LaloError::Config(format!("{}: {e}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn demo_policies() {
        let ac = AccessControl::from_text(DEMO_MODEL, DEMO_POLICY).await.unwrap();
        assert!(ac.table_allowed("intern", "lalo.tpch.customer", "select"));
        assert!(!ac.column_allowed("intern", "lalo.tpch.customer", "c_acctbal", "select"));
        assert!(ac.column_allowed("intern", "lalo.tpch.customer", "c_name", "select"));
        assert!(ac.column_allowed("admin", "lalo.tpch.customer", "c_acctbal", "select"));
        assert!(!ac.table_allowed("nobody", "lalo.tpch.customer", "select"));
        assert!(!ac.table_allowed("analyst", "lalo.lalo_audit.events", "select"));
        assert!(ac.roles_of("analyst").contains(&"analysts".to_string()));
    }

    #[tokio::test]
    async fn objects_match_without_regard_to_case_or_quotes() {
        let policy = "p, u, up.public.*, select, allow\np, u, up.public.\"Payroll\", select, deny\n\
                      p, u, up.public.staff.\"Salary\", select, deny\n";
        let ac = AccessControl::from_text(DEMO_MODEL, policy).await.unwrap();
        for t in ["up.public.Payroll", "up.public.payroll", "up.public.PAYROLL"] {
            assert!(!ac.table_allowed("u", t, "select"), "{t}");
        }
        assert!(ac.table_allowed("u", "up.public.staff", "select"));
        for c in ["Salary", "salary", "SALARY"] {
            assert!(!ac.column_allowed("u", "up.public.staff", c, "select"), "{c}");
        }
        assert!(ac.column_allowed("u", "up.public.Staff", "name", "select"));
    }
}
