//! Who is calling: the handshake's Basic credentials become a bearer token (random, kept in
//! memory for [`TOKEN_LIFE`]); each call's `authorization` header names the caller by such a
//! token, an MCP token, or Basic credentials again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use parking_lot::Mutex;
use tonic::{Request, Status};

use crate::pipeline::Lalo;
use crate::server::auth::Verifiers;

/// How long a handshake's token stays good.
const TOKEN_LIFE: Duration = Duration::from_secs(8 * 3600);

pub struct Auth {
    lalo: Arc<Lalo>,
    verifiers: Arc<Verifiers>,
    /// Tokens of the MCP token table (configured, long-lived).
    configured: HashMap<String, String>,
    /// Tokens handed out by handshakes: token → (user, issued).
    issued: Mutex<HashMap<String, (String, Instant)>>,
    /// Basic credentials that passed, by a keyed digest (never the password): a client sending
    /// Basic on every call pays the PBKDF2 work once.
    verified: Mutex<HashMap<[u8; 32], String>>,
    key: [u8; 32],
}

/// At most this many live tokens (handshakes beyond it wait for tokens to expire: 28P01) and
/// remembered credentials (the set starts over when full).
const TOKENS: usize = 10_000;
const VERIFIED: usize = 1024;

/// A caller: the user and the client's address.
pub struct Caller {
    pub user: String,
    pub client: String,
}

impl Auth {
    pub fn new(lalo: Arc<Lalo>) -> Auth {
        let verifiers = Arc::new(Verifiers::of(&lalo.users));
        let configured = crate::mcp::token_map(&lalo);
        Auth { lalo, verifiers, configured, issued: Mutex::new(HashMap::new()), verified: Mutex::new(HashMap::new()), key: rand::random() }
    }

    /// The user of the call's Basic credentials, checked (PBKDF2 off the async threads, once
    /// per credentials); a failure is audited.
    async fn basic_user<T>(&self, req: &Request<T>) -> Result<String, Status> {
        let client = client_of(req);
        let Some((user, password)) = authorizations(req).iter().find_map(|h| basic(h)) else {
            crate::http::audit_refused(&self.lalo, "", &client, "28P01: authentication failed (no Basic credentials)", "flight").await;
            return Err(Status::unauthenticated("28P01: authentication failed"));
        };
        use sha2::{Digest, Sha256};
        let digest: [u8; 32] = Sha256::new().chain_update(self.key).chain_update(user.as_bytes()).chain_update([0]).chain_update(password.as_bytes()).finalize().into();
        if self.verified.lock().get(&digest).is_some_and(|u| *u == user) {
            return Ok(user);
        }
        let ok = {
            let (v, u, p) = (self.verifiers.clone(), user.clone(), password);
            tokio::task::spawn_blocking(move || v.verify(&u, &p)).await.unwrap_or(false)
        };
        if !ok {
            let reason = if self.lalo.users.get(&user).is_some() { "wrong password" } else { "no such user" };
            crate::http::audit_refused(&self.lalo, &user, &client, &format!("28P01: authentication failed ({reason})"), "flight").await;
            return Err(Status::unauthenticated("28P01: authentication failed"));
        }
        let mut verified = self.verified.lock();
        if verified.len() >= VERIFIED {
            verified.clear();
        }
        verified.insert(digest, user.clone());
        Ok(user)
    }

    /// Check Basic credentials and hand out a token.
    pub async fn handshake<T>(&self, req: &Request<T>) -> Result<(String, String), Status> {
        let user = self.basic_user(req).await?;
        let token: String = rand::random::<[u8; 32]>().iter().map(|b| format!("{b:02x}")).collect();
        let mut issued = self.issued.lock();
        issued.retain(|_, (_, at)| at.elapsed() < TOKEN_LIFE);
        if issued.len() >= TOKENS {
            return Err(Status::resource_exhausted("53300: too many live tokens; retry later"));
        }
        issued.insert(token.clone(), (user.clone(), Instant::now()));
        Ok((user, token))
    }

    /// The caller of a request, by its bearer token, else its Basic credentials.
    pub async fn caller<T>(&self, req: &Request<T>) -> Result<Caller, Status> {
        let client = client_of(req);
        let headers = authorizations(req);
        if headers.is_empty() {
            return Err(Status::unauthenticated("28P01: no credentials: handshake first"));
        }
        let bearer = headers.iter().find_map(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")).map(str::trim));
        if let Some(token) = bearer {
            if let Some((user, at)) = self.issued.lock().get(token) {
                if at.elapsed() < TOKEN_LIFE {
                    return Ok(Caller { user: user.clone(), client });
                }
            }
            if let Some(user) = self.configured.get(token) {
                return Ok(Caller { user: user.clone(), client });
            }
            // A stale token beside Basic credentials: the credentials decide.
            if !headers.iter().any(|h| basic(h).is_some()) {
                crate::http::audit_refused(&self.lalo, "", &client, "28P01: authentication failed (unknown or expired token)", "flight").await;
                return Err(Status::unauthenticated("28P01: unknown or expired token"));
            }
        }
        self.basic_user(req).await.map(|user| Caller { user, client })
    }
}

/// Every `authorization` value of the call (a client may send a stale bearer beside Basic).
fn authorizations<T>(req: &Request<T>) -> Vec<String> {
    req.metadata().get_all("authorization").iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect()
}

fn client_of<T>(req: &Request<T>) -> String {
    req.remote_addr().map(|a| a.to_string()).unwrap_or_default()
}

/// (user, password) of a `Basic` header.
fn basic(header: &str) -> Option<(String, String)> {
    let value = header.strip_prefix("Basic ").or_else(|| header.strip_prefix("basic "))?;
    // grpc-go's Flight client writes the credentials without base64 padding.
    use base64::engine::{general_purpose::GeneralPurpose, DecodePaddingMode, GeneralPurposeConfig};
    let lenient = GeneralPurpose::new(&base64::alphabet::STANDARD, GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent));
    let decoded = lenient.decode(value.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}
