//! The reference auth.md v0.1 service: discovery, anonymous / verified-email / ID-JAG
//! registration, the OTP claim ceremony, provider revocation and a scope-gated API, on a real
//! SQLite file, with switchable [`Defect`]s that prove each conformance case can fail.
//!
//! It is a library first ([`app`], [`ReferenceServer::start`]); `authmd-conformance reference
//! serve` and the `authmd-reference-server` binary wrap it. It never imports the harness: the
//! suite checks it over the wire like any other target.

mod admin;
pub mod aid;
mod api;
mod attempt;
pub mod config;
pub mod defect;
mod defect_set;
pub mod describe;
mod discovery;
pub mod error;
mod http;
mod jwks;
mod keys;
mod lenient;
mod mail;
mod outbox;
pub mod pg_cluster;
pub mod profile;
mod rate;
mod secrets;
mod serve;
mod state;
pub mod store;
mod token_kind;
mod v01;
mod v06;
mod v07;
mod v07p;
mod verify;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;

use crate::error::ApiError;
use axum::routing::{get, post};

pub use config::{AidMode, AudienceReading, Config, ConfigError, ErrorNames, OracleShape, Profile, TrustedIssuer};
pub use defect::{Defect, Defects, UnknownDefect};
pub use state::{AppState, CLOCK_OFFSET_HEADER};

/// Starting the server failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be opened.
    #[error(transparent)]
    Database(#[from] store::OpenError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// Other setup failures (mailer, TLS, HTTP client).
    #[error("{0}")]
    Setup(String),
}

/// Builds the shared state: opens the database, the mailer and the JWKS client. `instance`
/// names this process among replicas of one service (its bound address).
pub fn state(mut config: Config, defects: Defects, base_url: String, instance: String) -> Result<AppState, StartError> {
    config.validate()?;
    // Rate windows live in the database by default where it is PostgreSQL (meant for replicas).
    let on_postgres = store::Location::of(&config.database).is_postgres();
    config.rate.shared.get_or_insert(on_postgres);
    // SEC-08, the defect: every claim mail is also served to anyone, beside the database (a
    // folder of this instance's own under the temp dir when the database is a URL: its "parent"
    // would be a relative path made of the URL).
    if defects.contains(Defect::PublicMailOutbox) && config.mail_outbox.is_none() {
        let dir = match on_postgres {
            false => config.database.parent().unwrap_or(std::path::Path::new(".")).join("public-outbox"),
            true => std::env::temp_dir().join(format!("authmd-public-outbox-{}", instance.replace([':', '[', ']'], "-"))),
        };
        config.mail_outbox = Some(dir);
    }
    let db = store::Db::open(&config.database, config.power_safe)?;
    let mailer = mail::Mailer::new(config.smtp.as_deref(), &config.mail_from, config.mail_outbox.clone()).map_err(StartError::Setup)?;
    let mut http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5));
    for issuer in &config.trusted_issuers {
        if let Some(pem) = &issuer.ca_pem {
            let cert =
                reqwest::Certificate::from_pem(pem.as_bytes()).map_err(|e| StartError::Setup(format!("trusted_issuers.ca_pem: {e}")))?;
            http = http.add_root_certificate(cert);
        }
    }
    let http = http.build().map_err(|e| StartError::Setup(e.to_string()))?;
    // v0.6 signs identity assertions; the key lives in the database so they outlive a restart.
    let service_key = if config.profile.is_v06_family() {
        // One job on the writer: replicas starting together over one database make one key.
        let key = db.call_blocking(|conn| keys::ServiceKey::load_or_create(conn).map_err(ApiError::Internal));
        Some(key.map_err(|e| StartError::Setup(format!("service key: {}", internal_detail(e))))?)
    } else {
        None
    };
    let aid_key = if config.aid.has_key() {
        let key = db.call_blocking(|conn| keys::AidKey::load_or_create(conn).map_err(ApiError::Internal));
        Some(key.map_err(|e| StartError::Setup(format!("AID key: {}", internal_detail(e))))?)
    } else {
        None
    };
    Ok(AppState(Arc::new(state::Inner {
        config,
        defects,
        db,
        jwks: jwks::JwksCache::default(),
        service_key,
        aid_key,
        http,
        mailer,
        base_url: base_url.trim_end_matches('/').to_string(),
        instance,
        rate: Mutex::default(),
        accepted: Mutex::default(),
        local_failures: Mutex::default(),
    })))
}

/// The service's router.
pub fn app(state: AppState) -> Router {
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(state.config.connections.max_in_flight.max(1)));
    let body_timeout = std::time::Duration::from_secs(state.config.connections.body_timeout_secs.max(1));
    let router = match state.config.profile {
        Profile::V01 => v01::routes(),
        Profile::V06 => v06::routes(),
        Profile::V07 => v07::routes(),
        Profile::V07Production => v07p::routes(),
    };
    router
        .route("/.well-known/oauth-protected-resource", get(discovery::prm_root))
        .route("/.well-known/oauth-protected-resource/api", get(discovery::prm_resource))
        .route("/auth.md", get(discovery::skill))
        .route("/logo.png", get(discovery::logo))
        .route("/api/resource", get(api::api_resource))
        .route("/api/read", get(api::api_read))
        .route("/api/write", post(api::api_write))
        .route("/_admin/audit", get(admin::admin_audit))
        .route("/mail/{file}", get(admin::mail_outbox))
        .route("/healthz", get(admin::healthz))
        .route("/.well-known/agent", get(aid::well_known))
        .layer(axum::middleware::from_fn_with_state(state.clone(), aid::sign))
        .layer(axum::middleware::from_fn_with_state(permits, serve::limit_in_flight))
        .layer(axum::middleware::from_fn_with_state(body_timeout, serve::read_body_in_time))
        .layer(axum::middleware::from_fn(log_request))
        .with_state(state)
}

/// Installs the process-wide log subscriber: `human` (one readable line per event) or `json`
/// (one JSON object per line), filtered by `RUST_LOG` (default `info`). Call once, from a binary.
pub fn init_logging(format: &str) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match format {
        "human" => builder.with_ansi(false).try_init(),
        "json" => builder.json().flatten_event(true).try_init(),
        other => return Err(format!("--log-format `{other}`: expected human or json")),
    };
    result.map_err(|e| format!("logging: {e}"))
}

/// The registration a response is about, for the request log (handlers attach it).
#[derive(Clone, Debug)]
pub struct LoggedRegistration(pub String);

/// One log line per request: method, path (never the query, which can carry a claim-attempt
/// token), status, latency and the registration id when the handler named one. Headers and
/// bodies are never logged: they carry credentials.
async fn log_request(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let registration = response
        .extensions()
        .get::<LoggedRegistration>()
        .map(|r| r.0.as_str())
        .unwrap_or("-");
    tracing::info!(
        target: "authmd_reference_server::request",
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        registration_id = %registration,
        "request"
    );
    response
}

/// What went wrong in a storage job run at start, for the operator.
fn internal_detail(e: ApiError) -> String {
    match e {
        ApiError::Internal(detail) => detail,
        other => other.code().to_string(),
    }
}

/// Reads the audit events of a database file (for `reference audit`).
pub async fn audit_events(database: &std::path::Path) -> Result<Vec<serde_json::Value>, StartError> {
    let db = store::Db::open(database, false)?;
    db.call(store::audit::read_audit)
        .await
        .map_err(|e| StartError::Setup(e.code().to_string()))
}

/// A running reference server. Dropping it stops it.
pub struct ReferenceServer {
    base_url: String,
    aid_records: Vec<aid::Published>,
    addr: SocketAddr,
    ca_pem: Option<String>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    sweeper: tokio::task::JoinHandle<()>,
}

impl ReferenceServer {
    /// Binds `config.listen`, then serves. The base URL defaults to the bound address.
    pub async fn start(config: Config, defects: Defects) -> Result<Self, StartError> {
        let listen = config.listen.to_string();
        let bind_err = |e: std::io::Error| StartError::Bind {
            addr: listen.clone(),
            reason: e.to_string(),
        };
        // A deep accept backlog: std's default of 128 drops SYNs under a burst of connections,
        // and each dropped one costs its client a second.
        let socket = if config.listen.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
        .map_err(bind_err)?;
        socket.set_reuseaddr(true).map_err(bind_err)?;
        socket.bind(config.listen).map_err(bind_err)?;
        let listener = socket.listen(4096).map_err(bind_err)?.into_std().map_err(bind_err)?;
        listener.set_nonblocking(true).map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        let given_cert = config.tls_cert.clone().zip(config.tls_key.clone());
        let https = config.https || given_cert.is_some();
        let scheme = if https { "https" } else { "http" };
        let base_url = match (&config.base_url, &config.public_host) {
            (Some(url), _) => url.clone(),
            (None, Some(host)) => format!("{scheme}://{host}:{}", addr.port()),
            (None, None) => format!("{scheme}://{addr}"),
        };
        let public_host = config.public_host.clone();
        let ca_out = config.tls_ca_out.clone();
        let limits = config.connections.clone();
        let state = state(config, defects, base_url.clone(), addr.to_string())?;
        // Retries queued claim mail (a failed relay, a restart with mail still queued).
        let sweeper = {
            let state = state.clone();
            tokio::spawn(async move {
                loop {
                    outbox::drain_outbox(state.clone()).await;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            })
        };
        let aid_records = aid::records(&state);
        let router = app(state);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let mut ca_pem = None;
        if https {
            let tls = match given_cert {
                Some((cert, key)) => axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
                    .await
                    .map_err(|e| StartError::Setup(format!("tls_cert {} / tls_key {}: {e}", cert.display(), key.display())))?,
                None => {
                    let material = tls_material(&addr, public_host.as_deref())?;
                    if let Some(path) = ca_out {
                        std::fs::write(&path, &material.0)
                            .map_err(|e| StartError::Setup(format!("cannot write tls_ca_out {}: {e}", path.display())))?;
                    }
                    ca_pem = Some(material.0.clone());
                    axum_server::tls_rustls::RustlsConfig::from_pem(material.1.into_bytes(), material.2.into_bytes())
                        .await
                        .map_err(|e| StartError::Setup(format!("tls: {e}")))?
                }
            };
            let handle = axum_server::Handle::new();
            // TCP_NODELAY, as the plain listener sets it: with Nagle on, a TLS record written
            // in two segments waits out the peer's delayed ACK (40 ms a request on loopback).
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls).acceptor(axum_server::accept::NoDelayAcceptor);
            let mut server = axum_server::from_tcp(listener)
                .map_err(bind_err)?
                .acceptor(acceptor)
                .handle(handle.clone());
            server
                .http_builder()
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(limits.header_read_timeout_secs.max(1)));
            let router = router.into_make_service_with_connect_info::<SocketAddr>();
            tokio::spawn(async move {
                let _ = rx.await;
                handle.graceful_shutdown(Some(Duration::from_secs(1)));
            });
            tokio::spawn(async move {
                let _ = server.serve(router).await;
            });
        } else {
            let listener = tokio::net::TcpListener::from_std(listener).map_err(bind_err)?;
            tokio::spawn(serve::serve(listener, router, limits, rx));
        }
        Ok(Self {
            base_url,
            aid_records,
            addr,
            ca_pem,
            shutdown: Some(tx),
            sweeper,
        })
    }

    /// The public base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The DNS records the service publishes for AID (empty without `aid`).
    pub fn aid_records(&self) -> &[aid::Published] {
        &self.aid_records
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CA certificate (PEM) when serving https.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }
}

impl Drop for ReferenceServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.sweeper.abort();
    }
}

/// (CA PEM, leaf cert PEM, leaf key PEM) for loopback names, made by rcgen.
fn tls_material(addr: &SocketAddr, public_host: Option<&str>) -> Result<(String, String, String), StartError> {
    let mut names = vec!["localhost".to_string(), addr.ip().to_string()];
    names.extend(public_host.map(str::to_string));
    let m = authmd_tls::TlsMaterial::generate("authmd reference server test CA", &names).map_err(StartError::Setup)?;
    Ok((m.ca_pem, m.cert_pem, m.key_pem))
}
