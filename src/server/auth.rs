//! SCRAM-SHA-256 verifiers for the users, computed once when the server starts, and the FATAL
//! errors of a failed login.

use std::collections::HashMap;

use pgwire::api::auth::sasl::scram::gen_salted_password;
use pgwire::api::auth::{AuthSource, LoginInfo, Password};
use pgwire::error::{PgWireError, PgWireResult};
use sha2::{Digest, Sha256};

use crate::error::LaloError;
use crate::session::auth::Users;

/// PostgreSQL's default SCRAM iteration count.
pub const SCRAM_ITERATIONS: usize = 4096;

/// Each user's salt and salted password.
#[derive(Debug, Default)]
pub struct Verifiers {
    by_name: HashMap<String, (Vec<u8>, Vec<u8>)>,
    /// Seeds the salts of names that are no user, so each such name keeps one salt for the
    /// server's lifetime, as a real user's salt does.
    mock_seed: [u8; 32],
}

impl Verifiers {
    pub fn of(users: &Users) -> Verifiers {
        let by_name = users
            .names()
            .filter_map(|n| users.get(n))
            .map(|u| {
                let salt: Vec<u8> = rand::random::<[u8; 16]>().to_vec();
                let salted = gen_salted_password(&u.plain, &salt, SCRAM_ITERATIONS);
                (u.name.clone(), (salt, salted))
            })
            .collect();
        Verifiers { by_name, mock_seed: rand::random() }
    }

    /// Whether `password` is `name`'s, checked as SCRAM checks it: the password salted and
    /// iterated with the user's salt against the stored salted password, in constant time. A
    /// name that is no user costs the same work and fails.
    pub fn verify(&self, name: &str, password: &str) -> bool {
        let (salt, stored) = match self.by_name.get(name) {
            Some((salt, salted)) => (salt.clone(), Some(salted)),
            None => (Sha256::new().chain_update(self.mock_seed).chain_update(name.as_bytes()).finalize()[..16].to_vec(), None),
        };
        let salted = gen_salted_password(password, &salt, SCRAM_ITERATIONS);
        match stored {
            Some(stored) => salted.len() == stored.len() && salted.iter().zip(stored).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0,
            None => false,
        }
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
impl AuthSource for Verifiers {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let name = login.user().ok_or(PgWireError::UserNameRequired)?;
        match self.by_name.get(name) {
            Some((salt, salted)) => Ok(Password::new(Some(salt.clone()), salted.clone())),
            None => Ok(self.mock_password(name)),
        }
    }
}

/// A FATAL error (ends the connection), for authentication failures.
pub fn fatal(e: &LaloError) -> PgWireError {
    PgWireError::UserError(Box::new(e.error_info("FATAL")))
}
