//! Users and passwords from `[[users]]`, with the attributes row filters refer to. The SCRAM
//! verifiers the wire protocol authenticates against are computed from them in `server::auth`.

use std::collections::{BTreeMap, HashMap};

use crate::config::UserConfig;
use crate::error::LaloError;

/// A known user: password and attributes.
#[derive(Debug, Clone)]
pub struct UserEntry {
    pub name: String,
    pub plain: String,
    pub attributes: BTreeMap<String, String>,
}

/// The user directory.
#[derive(Debug, Default, Clone)]
pub struct Users {
    by_name: HashMap<String, UserEntry>,
}

impl Users {
    /// Build from config; passwords come from `password_env` when set.
    pub fn from_config(users: &[UserConfig]) -> Result<Users, LaloError> {
        let mut by_name = HashMap::new();
        for u in users {
            let plain = match (&u.password_env, &u.password) {
                (Some(var), _) => std::env::var(var)
                    .map_err(|_| LaloError::Config(format!("user {}: environment variable {var} is not set", u.name)))?,
                (None, Some(p)) => p.clone(),
                (None, None) => return Err(LaloError::Config(format!("user {} has no password or password_env", u.name))),
            };
            by_name.insert(u.name.clone(), UserEntry { name: u.name.clone(), plain, attributes: u.attributes.clone() });
        }
        Ok(Users { by_name })
    }

    pub fn get(&self, name: &str) -> Option<&UserEntry> {
        self.by_name.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.by_name.keys()
    }
}
