//! Mock identity provider for the auth.md conformance suite.
//!
//! It mints ID-JAGs and logout tokens (good and deliberately broken), serves its JWKS at
//! `<issuer>/.well-known/jwks.json`, rotates keys, fails the JWKS on demand, serves a client
//! metadata document, records every request a target makes to it, and delivers logout tokens
//! the way a provider does. It is a library first ([`MockIdp::start`]); the binary and
//! `authmd-conformance idp serve` wrap it, with an HTTP control API for non-Rust users.
//!
//! It is not an OAuth provider: there is no login, consent or grant surface.

mod config;
mod keys;
mod server;
pub mod tls;
mod token;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::Value;

pub use config::{IdpConfig, IdpError, JwksFault, ServeArgs, new_control_token, write_control_token};
pub use keys::{KeyAlg, SigningKey};
pub use token::{ID_JAG_TYP, LOGOUT_TYP, Minted, REVOKED_EVENT, Subject, Tamper, TokenKind, TokenRequest};

/// `scheme://host:port` of an absolute http(s) URL without userinfo, lower-cased, with the
/// default port made explicit; `None` for anything else.
pub(crate) fn origin_of(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    if !matches!(u.scheme(), "http" | "https") || !u.username().is_empty() || u.password().is_some() {
        return None;
    }
    Some(format!(
        "{}://{}:{}",
        u.scheme(),
        u.host_str()?.to_ascii_lowercase(),
        u.port_or_known_default()?
    ))
}

/// Most keys published at once: a rotation past it is refused (retire one first).
pub const MAX_PUBLISHED_KEYS: usize = 64;
/// Requests kept in the log (the oldest are dropped), each path cut to [`MAX_LOGGED_PATH`].
pub const MAX_LOGGED_REQUESTS: usize = 10_000;
/// Bytes of a request path kept in the log.
pub const MAX_LOGGED_PATH: usize = 512;
/// Bytes of a delivery's answer read back; the rest is dropped unread.
pub const MAX_DELIVERY_BODY: usize = 64 * 1024;
/// `/clients/once/<name>` documents and `jku` attacker keys remembered (the oldest forgotten).
pub(crate) const MAX_REMEMBERED: usize = 10_000;

/// One request the IdP received.
#[derive(Clone, Debug, Serialize)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path (without query).
    pub path: String,
    /// When it arrived.
    #[serde(with = "unix_millis")]
    pub at: SystemTime,
}

mod unix_millis {
    use std::time::{SystemTime, UNIX_EPOCH};

    pub fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u128(t.duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0))
    }
}

/// The IdP's changeable state at one moment (see [`MockIdp::snapshot`]).
#[derive(Clone)]
pub struct IdpSnapshot {
    published: Vec<SigningKey>,
    active: usize,
    fault: JwksFault,
    cimd: Option<Value>,
    jwks_max_age: u64,
}

impl std::fmt::Debug for IdpSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private keys.
        let kids: Vec<&str> = self.published.iter().map(|k| k.kid()).collect();
        write!(
            f,
            "IdpSnapshot {{ kids: {kids:?}, active: {}, fault: {:?} }}",
            self.active, self.fault
        )
    }
}

/// The content type of a v0.1 logout token delivery.
pub const LOGOUT_CONTENT_TYPE: &str = "application/logout+jwt";
/// The content type of an RFC 8935 SET delivery (auth.md v0.3 and later).
pub const SET_CONTENT_TYPE: &str = "application/secevent+jwt";

/// The target's answer to a delivered logout token: data, not an error.
#[derive(Clone, Debug, Serialize)]
pub struct Delivery {
    /// HTTP status.
    pub status: u16,
    /// Response body as text.
    pub body: String,
    /// Round-trip time.
    pub elapsed: Duration,
}

pub(crate) struct State {
    pub(crate) issuer: String,
    pub(crate) audience: String,
    /// The control API's bearer token; `None` serves no control API.
    pub(crate) control_token: Option<String>,
    /// Host names (without port) the control API answers to: loopback names, the bound
    /// address and the issuer's host. Anything else is a rebinding or a mistake.
    pub(crate) control_hosts: Vec<String>,
    /// Origins the control API delivers to.
    pub(crate) deliver_to: Vec<String>,
    pub(crate) inner: Mutex<Inner>,
}

pub(crate) struct Inner {
    /// `Cache-Control: max-age` of the JWKS, switchable at run time (IDJAG-44).
    pub(crate) jwks_max_age: u64,
    pub(crate) published: Vec<SigningKey>,
    pub(crate) active: usize,
    pub(crate) fault: JwksFault,
    /// The newest [`MAX_LOGGED_REQUESTS`] requests of targets.
    pub(crate) requests: std::collections::VecDeque<RecordedRequest>,
    /// Every JWKS fetch, counted past the log's bound.
    pub(crate) jwks_fetch_count: usize,
    pub(crate) cimd: Option<Value>,
    /// Public keys of `jku` tampers by kid, served under `/attacker/<kid>/jwks.json`.
    pub(crate) attacker_keys: Remembered<Value>,
    /// `/clients/once/<name>` paths already served: each is withdrawn (404) after its first GET.
    pub(crate) served_once: Remembered<()>,
    key_dir: Option<PathBuf>,
    pub(crate) kid_prefix: String,
    next_kid: u32,
    /// The last JWKS fetch, from this process or recalled from the key directory.
    last_jwks_fetch: Option<SystemTime>,
}

/// A map that forgets its oldest entries past [`MAX_REMEMBERED`]: what a target (or a flood of
/// distinct names) can add to never grows without bound.
pub(crate) struct Remembered<V> {
    map: std::collections::HashMap<String, V>,
    order: std::collections::VecDeque<String>,
}

impl<V> Default for Remembered<V> {
    fn default() -> Self {
        Self {
            map: std::collections::HashMap::new(),
            order: std::collections::VecDeque::new(),
        }
    }
}

impl<V> Remembered<V> {
    /// Inserts `key`; false if it was already there (its value is kept).
    pub(crate) fn insert(&mut self, key: String, value: V) -> bool {
        if self.map.contains_key(&key) {
            return false;
        }
        if self.order.len() >= MAX_REMEMBERED
            && let Some(oldest) = self.order.pop_front()
        {
            self.map.remove(&oldest);
        }
        self.order.push_back(key.clone());
        self.map.insert(key, value);
        true
    }

    pub(crate) fn get(&self, key: &str) -> Option<&V> {
        self.map.get(key)
    }
}

impl State {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running mock IdP. Dropping it stops the server.
pub struct MockIdp {
    state: Arc<State>,
    addr: SocketAddr,
    base_url: String,
    ca_pem: Option<String>,
    http: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

/// The file in a key directory that holds the last JWKS fetch (Unix milliseconds).
const JWKS_FETCHED_AT: &str = "jwks-fetched-at";

/// Records `at` as the last JWKS fetch in `dir` (best effort: a cool-down wait is an aid).
pub(crate) fn remember_jwks_fetch(dir: &std::path::Path, at: SystemTime) {
    if let Ok(ms) = at.duration_since(std::time::UNIX_EPOCH) {
        let _ = std::fs::write(dir.join(JWKS_FETCHED_AT), ms.as_millis().to_string());
    }
}

/// The last JWKS fetch an earlier process recorded in `dir`.
fn recalled_jwks_fetch(dir: &std::path::Path) -> Option<SystemTime> {
    let text = std::fs::read_to_string(dir.join(JWKS_FETCHED_AT)).ok()?;
    let ms: u64 = text.trim().parse().ok()?;
    Some(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
}

impl MockIdp {
    /// Starts the IdP on its listen address. Needs a tokio runtime.
    pub async fn start(config: IdpConfig) -> Result<Self, IdpError> {
        let mut published = match &config.key_dir {
            Some(dir) if dir.exists() => SigningKey::load_dir(dir)?,
            _ => Vec::new(),
        };
        if published.is_empty() {
            let key = SigningKey::generate(config.alg, format!("{}K1", config.kid_prefix))?;
            if let Some(dir) = &config.key_dir {
                key.save(dir)?;
            }
            published.push(key);
        }
        let next_kid = published.len() as u32 + 1;
        let listener = std::net::TcpListener::bind(config.listen).map_err(|e| IdpError::Bind {
            addr: config.listen.to_string(),
            reason: e.to_string(),
        })?;
        listener.set_nonblocking(true).map_err(|e| IdpError::Bind {
            addr: config.listen.to_string(),
            reason: e.to_string(),
        })?;
        let addr = listener.local_addr().map_err(|e| IdpError::Bind {
            addr: config.listen.to_string(),
            reason: e.to_string(),
        })?;
        let scheme = if config.https { "https" } else { "http" };
        let base_url = format!("{scheme}://{addr}");
        let issuer = config
            .issuer
            .clone()
            .unwrap_or_else(|| base_url.clone())
            .trim_end_matches('/')
            .to_string();
        let mut control_hosts: Vec<String> = ["localhost", "127.0.0.1", "[::1]"].iter().map(|h| h.to_string()).collect();
        control_hosts.push(match addr.ip() {
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        });
        if let Some(host) = reqwest::Url::parse(&issuer)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        {
            control_hosts.push(host);
        }
        let state = Arc::new(State {
            issuer,
            audience: config.audience.clone(),
            control_token: config.control_token.clone(),
            control_hosts,
            deliver_to: config.deliver_to.iter().filter_map(|o| origin_of(o)).collect(),
            inner: Mutex::new(Inner {
                jwks_max_age: config.jwks_max_age,
                active: published.len() - 1,
                published,
                fault: JwksFault::None,
                requests: std::collections::VecDeque::new(),
                jwks_fetch_count: 0,
                cimd: None,
                attacker_keys: Remembered::default(),
                served_once: Remembered::default(),
                key_dir: config.key_dir.clone(),
                kid_prefix: config.kid_prefix.clone(),
                next_kid,
                last_jwks_fetch: config.key_dir.as_deref().and_then(recalled_jwks_fetch),
            }),
        });
        let (tx, rx) = tokio::sync::oneshot::channel();
        let router = server::router(state.clone());
        let mut ca_pem = None;
        if config.https {
            let material = tls::generate(&["localhost", "127.0.0.1"])?;
            if let Some(path) = &config.ca_out {
                std::fs::write(path, &material.ca_pem)
                    .map_err(|e| IdpError::Tls(format!("failed to write the CA to {}: {e}", path.display())))?;
            }
            ca_pem = Some(material.ca_pem.clone());
            tls::serve_https(listener, router, &material, rx).await?;
        } else {
            let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| IdpError::Bind {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?;
            tokio::spawn(async move {
                // TCP_NODELAY: a response written in two segments must not wait out the
                // client's delayed ACK.
                use axum::serve::ListenerExt;
                let listener = listener.tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                let _ = axum::serve(listener, router)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
            });
        }
        let mut http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10));
        if let Some(pem) = &ca_pem
            && let Ok(cert) = reqwest::Certificate::from_pem(pem.as_bytes())
        {
            http = http.add_root_certificate(cert);
        }
        let http = http.build().map_err(|e| IdpError::Tls(e.to_string()))?;
        Ok(Self {
            state,
            addr,
            base_url,
            ca_pem,
            http,
            shutdown: Some(tx),
        })
    }

    /// What a standalone IdP prints at start: where it listens, and how to call its control API.
    pub fn banner(&self, token_file: &std::path::Path) -> String {
        let mut out = format!(
            "mock IdP listening on {} (issuer {}, JWKS {})",
            self.base_url(),
            self.issuer(),
            self.jwks_uri()
        );
        if let Some(token) = &self.state.control_token {
            out += &format!(
                "\ncontrol API: POST /_control/mint | mint-batch | rotate | retire | fault | deliver-logout (JSON bodies); GET /_control/requests\n\
                 control token: {token} (also in {}, mode 0600); send `Authorization: Bearer <token>`",
                token_file.display()
            );
            if self.state.deliver_to.is_empty() {
                out += "\ndeliver-logout: refused until --deliver-to names the target's origin";
            } else {
                out += &format!("\ndeliver-logout: only to {}", self.state.deliver_to.join(", "));
            }
        }
        out
    }

    /// The `client_id` an ID-JAG of this IdP carries unless a case sets another.
    pub fn client_id(&self) -> String {
        default_client_id(&self.state.issuer)
    }

    /// The issuer identifier put in `iss`.
    pub fn issuer(&self) -> &str {
        &self.state.issuer
    }

    /// The URL the IdP actually listens on.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CA certificate (PEM) when serving https.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The JWKS URL under the issuer.
    pub fn jwks_uri(&self) -> String {
        format!("{}/.well-known/jwks.json", self.state.issuer)
    }

    /// The default audience of minted tokens.
    pub fn audience(&self) -> &str {
        &self.state.audience
    }

    /// Mints a token for `subject` with the given edits.
    pub fn mint(&self, request: &TokenRequest, subject: &Subject) -> Result<Minted, IdpError> {
        let mut inner = self.state.lock();
        server::mint_locked(&self.state, &mut inner, request, subject)
    }

    /// Publishes a new key and makes it the active signer; returns its kid.
    pub fn rotate(&self, alg: KeyAlg) -> Result<String, IdpError> {
        let mut inner = self.state.lock();
        server::rotate_locked(&mut inner, alg)
    }

    /// Removes a key from the JWKS. The active key falls back to the newest remaining one.
    pub fn retire(&self, kid: &str) -> Result<(), IdpError> {
        let mut inner = self.state.lock();
        server::retire_locked(&mut inner, kid)
    }

    /// The currently published kids, oldest first.
    pub fn kids(&self) -> Vec<String> {
        self.state.lock().published.iter().map(|k| k.kid().to_string()).collect()
    }

    /// What a case may change: the published keys, the active signer, the fault mode and the
    /// client metadata. A case that changes them restores this afterwards, so a target that
    /// caches the JWKS sees the same keys in every later case (and in a re-run, with a key
    /// directory).
    pub fn snapshot(&self) -> IdpSnapshot {
        let inner = self.state.lock();
        IdpSnapshot {
            published: inner.published.clone(),
            active: inner.active,
            fault: inner.fault,
            cimd: inner.cimd.clone(),
            jwks_max_age: inner.jwks_max_age,
        }
    }

    /// Puts back what [`MockIdp::snapshot`] saw; keys added since are unpublished (and removed
    /// from the key directory), keys removed since are published (and saved) again.
    pub fn restore(&self, snapshot: &IdpSnapshot) -> Result<(), IdpError> {
        let mut inner = self.state.lock();
        if let Some(dir) = inner.key_dir.clone() {
            let kept: Vec<&str> = snapshot.published.iter().map(|k| k.kid()).collect();
            for key in inner.published.iter().filter(|k| !kept.contains(&k.kid())) {
                key.forget(&dir);
            }
            for key in &snapshot.published {
                if !inner.published.iter().any(|k| k.kid() == key.kid()) {
                    key.save(&dir)?;
                }
            }
        }
        inner.published = snapshot.published.clone();
        inner.active = snapshot.active.min(inner.published.len().saturating_sub(1));
        inner.fault = snapshot.fault;
        inner.cimd = snapshot.cimd.clone();
        inner.jwks_max_age = snapshot.jwks_max_age;
        Ok(())
    }

    /// Sets the JWKS `Cache-Control: max-age` (seconds).
    pub fn set_jwks_max_age(&self, seconds: u64) {
        self.state.lock().jwks_max_age = seconds;
    }

    /// Switches the JWKS fault mode.
    pub fn set_fault(&self, fault: JwksFault) {
        self.state.lock().fault = fault;
    }

    /// Serves `document` at `<issuer>/agent-auth.json` (client metadata). `None` serves the
    /// default document whose `jwks_uri` is this IdP's JWKS.
    pub fn set_client_metadata(&self, document: Option<Value>) {
        self.state.lock().cimd = document;
    }

    /// The requests targets made, oldest first: the newest [`MAX_LOGGED_REQUESTS`], each path
    /// cut to [`MAX_LOGGED_PATH`] bytes. Control API calls are not logged.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.lock().requests.iter().cloned().collect()
    }

    /// When the JWKS was last fetched: in this process, or in an earlier one that kept its keys
    /// in the same key directory.
    pub fn last_jwks_fetch(&self) -> Option<SystemTime> {
        self.state.lock().last_jwks_fetch
    }

    /// How many times the JWKS was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.state.lock().jwks_fetch_count
    }

    /// POSTs `token` to `revocation_uri` with `Content-Type: application/logout+jwt`, the way a
    /// provider revokes a delegation. The target's status and body come back as data.
    pub async fn deliver_logout(&self, revocation_uri: &str, token: &str) -> Result<Delivery, IdpError> {
        server::deliver(&self.http, revocation_uri, token, LOGOUT_CONTENT_TYPE).await
    }

    /// POSTs a Security Event Token to `events_endpoint` as RFC 8935 push delivery
    /// (`Content-Type: application/secevent+jwt`; mint it with `header_set.typ = "secevent+jwt"`).
    /// The receiver's status and body come back as data (202 on success, 400 with `err`).
    pub async fn deliver_set(&self, events_endpoint: &str, token: &str) -> Result<Delivery, IdpError> {
        server::deliver(&self.http, events_endpoint, token, SET_CONTENT_TYPE).await
    }
}

impl Drop for MockIdp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The `client_id` of an issuer's ID-JAGs: the URL of the client metadata document the IdP
/// serves for its agent (IDJAG-37).
pub(crate) fn default_client_id(issuer: &str) -> String {
    format!("{issuer}/agent-auth.json")
}
