//! Users and passwords from `[[users]]`: SCRAM-SHA-256 verifiers computed once at start.

use std::collections::{BTreeMap, HashMap};

use pgwire::api::auth::sasl::scram::gen_salted_password;
use pgwire::api::auth::{AuthSource, LoginInfo, Password};
use pgwire::error::{PgWireError, PgWireResult};

use sha2::{Digest, Sha256};

use crate::config::UserConfig;
use crate::error::LaloError;

/// PostgreSQL's default SCRAM iteration count.
pub const SCRAM_ITERATIONS: usize = 4096;

/// A known user: salted password and attributes.
#[derive(Debug, Clone)]
pub struct UserEntry {
    pub name: String,
    pub salt: Vec<u8>,
    pub salted_password: Vec<u8>,
    pub plain: String,
    pub attributes: BTreeMap<String, String>,
}

/// The user directory.
#[derive(Debug, Default, Clone)]
pub struct Users {
    by_name: HashMap<String, UserEntry>,
    /// Seeds the salts of names that are no user, so each such name keeps one salt for the
    /// server's lifetime, as a real user's salt does.
    mock_seed: [u8; 32],
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
            let salt: Vec<u8> = rand::random::<[u8; 16]>().to_vec();
            let salted_password = gen_salted_password(&plain, &salt, SCRAM_ITERATIONS);
            by_name.insert(
                u.name.clone(),
                UserEntry { name: u.name.clone(), salt, salted_password, plain, attributes: u.attributes.clone() },
            );
        }
        Ok(Users { by_name, mock_seed: rand::random() })
    }

    pub fn get(&self, name: &str) -> Option<&UserEntry> {
        self.by_name.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.by_name.keys()
    }

    /// What SCRAM runs against for a name that is no user, as PostgreSQL's mock authentication
    /// does: a stable salt and a verifier no password matches, so the exchange goes to its end
    /// and fails exactly as a wrong password fails.
    fn mock_password(&self, name: &str) -> Password {
        let digest = Sha256::new().chain_update(self.mock_seed).chain_update(name.as_bytes()).finalize();
        let salt = digest[..16].to_vec();
        Password::new(Some(salt), rand::random::<[u8; 32]>().to_vec())
    }
}

#[async_trait::async_trait]
impl AuthSource for Users {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let name = login.user().ok_or(PgWireError::UserNameRequired)?;
        match self.by_name.get(name) {
            Some(u) => Ok(Password::new(Some(u.salt.clone()), u.salted_password.clone())),
            None => Ok(self.mock_password(name)),
        }
    }
}

impl LaloError {
    /// A FATAL error (ends the connection), for authentication failures.
    pub fn to_pgwire_fatal(&self) -> PgWireError {
        PgWireError::UserError(Box::new(self.error_info("FATAL")))
    }
}
