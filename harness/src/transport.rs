//! HTTP to the target: one bounded, policy-checked `send` that always ends in an [`Exchange`].
//!
//! Whatever the target does (a huge body, a reset mid-body, a stall, a flood of headers, a URL
//! on some other host), `send` returns an exchange that says what happened: a status and a
//! body of at most [`Limits::max_body_bytes`], or an `error` saying why there is no (complete)
//! answer. Every secret the answer carries is registered before anything can print it.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::outcome::Exchange;
use crate::redact::Secrets;

/// The default cap on a response body the harness reads (1 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;
/// The default time one request may take, body included.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 10;
/// Response headers kept per exchange; hyper already refuses heads over about 400 KiB.
const MAX_HEADERS_KEPT: usize = 100;
/// Bytes kept of one header value.
const MAX_HEADER_VALUE: usize = 4096;
/// Bytes of header values kept per exchange: later headers are dropped (a run keeps every
/// exchange until its report is written, and redacts and scans all of it).
const MAX_HEADER_BYTES_KEPT: usize = 32 * 1024;
/// Bytes of cookies kept per exchange to send back. Each is kept whole or not at all (a
/// browser drops a cookie it cannot store; it never sends one cut).
const MAX_COOKIE_BYTES_KEPT: usize = 64 * 1024;

/// How much of the target's answer the harness reads, and for how long.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Response body bytes read; the rest is dropped and the exchange marked truncated.
    pub max_body_bytes: usize,
    /// The whole request, connection to last body byte.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            request_timeout: Duration::from_secs(DEFAULT_REQUEST_TIMEOUT_SECS),
        }
    }
}

/// Which URLs the harness may fetch: the target's own origins, the mock IdP and the hosts the
/// user allowed. Anything else a target names is evidence, never a request.
#[derive(Clone, Debug, Default)]
pub struct HostPolicy {
    origins: Vec<url::Origin>,
    hosts: Vec<String>,
    /// Names this run resolves through its own DNS (the AID resolver), not the system's.
    resolved: Vec<(String, Vec<std::net::SocketAddr>)>,
}

impl HostPolicy {
    /// Resolves `host` to `addrs` for every client of the run (port 0: the URL's port).
    pub fn resolve(&mut self, host: &str, addrs: Vec<std::net::IpAddr>) {
        let addrs = addrs.into_iter().map(|ip| std::net::SocketAddr::new(ip, 0)).collect();
        self.resolved.push((host.to_ascii_lowercase(), addrs));
    }

    /// Allows every URL of the origin of `url` (ignored when `url` is not absolute).
    pub fn allow_origin_of(&mut self, url: &str) {
        if let Ok(u) = url::Url::parse(url) {
            let origin = u.origin();
            if origin.is_tuple() && !self.origins.contains(&origin) {
                self.origins.push(origin);
            }
        }
    }

    /// Allows a host (`example.com`: any port) or a `host:port`, as written in `allowed_hosts`.
    pub fn allow_host(&mut self, entry: &str) {
        let entry = entry.trim().trim_end_matches('/');
        let entry = entry
            .strip_prefix("https://")
            .or_else(|| entry.strip_prefix("http://"))
            .unwrap_or(entry);
        self.hosts.push(entry.to_ascii_lowercase());
    }

    /// `Ok` when `url` may be fetched; otherwise why not.
    pub fn check(&self, url: &str) -> Result<(), String> {
        let parsed = url::Url::parse(url).map_err(|_| format!("`{url}` is not an absolute URL"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("`{url}` is not http(s)"));
        }
        if self.origins.contains(&parsed.origin()) {
            return Ok(());
        }
        let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
        let host_port = format!("{host}:{}", parsed.port_or_known_default().unwrap_or(0));
        if self.hosts.iter().any(|h| *h == host || *h == host_port) {
            return Ok(());
        }
        Err(format!(
            "`{host_port}` is not the target's origin, the mock IdP or in allowed_hosts; not fetched"
        ))
    }
}

/// The run's client TLS configuration (the system's roots and the CA the config names),
/// built once and shared by every client of the run: the roots load once, not per case, and a
/// TLS session one case opened is resumed by the next, as one client of a remote target would.
#[derive(Clone, Debug)]
pub struct Tls(rustls::ClientConfig);

impl Tls {
    /// The system's roots, plus every certificate of `ca_pem` (a PEM bundle) if given.
    pub fn new(ca_pem: Option<&str>) -> Result<Self, String> {
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = match ca_pem {
            None => rustls_platform_verifier::Verifier::new(provider.clone()),
            Some(pem) => {
                let extra = CertificateDer::pem_slice_iter(pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("the CA certificate: {e}"))?;
                if extra.is_empty() {
                    return Err("the CA certificate: no PEM certificate in it".into());
                }
                rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
            }
        }
        .map_err(|e| format!("TLS: {e}"))?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(verifier))
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self(config))
    }
}

/// An HTTP client bound to one source address, with the run's limits, host policy and secrets.
#[derive(Clone, Debug)]
pub struct Transport {
    client: reqwest::Client,
    limits: Limits,
    policy: std::sync::Arc<HostPolicy>,
    secrets: Secrets,
}

impl Transport {
    /// A client that never follows redirects (a 3xx is evidence), over the run's `tls`.
    pub fn new(
        source: Option<IpAddr>,
        tls: &Tls,
        limits: Limits,
        policy: std::sync::Arc<HostPolicy>,
        secrets: Secrets,
    ) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(limits.request_timeout)
            // One client may serve every case of a run (see `CaseCtx::new`): room for each job's
            // connection and a sample's batch; idle ones close before a typical server's
            // keep-alive timeout (5 s in Node.js and uvicorn) would close them under a request.
            .pool_max_idle_per_host(64)
            .pool_idle_timeout(Duration::from_secs(4))
            .tls_backend_preconfigured(tls.0.clone());
        if let Some(ip) = source {
            builder = builder.local_address(ip);
        }
        for (host, addrs) in &policy.resolved {
            builder = builder.resolve_to_addrs(host, addrs);
        }
        let client = builder.build().map_err(|e| format!("http client: {e}"))?;
        Ok(Self {
            client,
            limits,
            policy,
            secrets,
        })
    }

    /// The underlying client, for tools the user configured (mail sources), not target URLs.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// May `url` be fetched?
    pub fn check(&self, url: &str) -> Result<(), String> {
        self.policy.check(url)
    }

    /// Sends one request and reads at most `max_body_bytes` of the answer. Never fails: a
    /// refused URL, no answer or a broken body is an exchange with `error` set.
    pub async fn send(&self, step: &str, method: &str, url: &str, headers: &[(String, String)], body: Option<String>) -> Exchange {
        // What the harness sends back is a secret, whatever the harvest budgets kept of the
        // answer it came from; the exchange records the request, so register it first.
        self.secrets.harvest_request(headers, body.as_deref());
        self.secrets.harvest_params(url);
        let tokens = headers
            .iter()
            .map(|(_, v)| v.as_str())
            .chain(body.as_deref())
            .flat_map(|text| text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')))
            .filter_map(decode_jwt)
            .collect();
        let mut exchange = Exchange {
            step: step.to_string(),
            method: method.to_string(),
            url: url.to_string(),
            request_headers: headers.to_vec(),
            request_body: body.clone(),
            status: None,
            response_headers: Vec::new(),
            response_body: String::new(),
            body_bytes: 0,
            truncated: false,
            error: None,
            blocked: false,
            elapsed_ms: 0,
            tokens,
            reproduce: String::new(),
            cookies: Vec::new(),
        };
        exchange.reproduce = exchange.curl();
        if let Err(why) = self.policy.check(url) {
            exchange.blocked = true;
            exchange.error = Some(why);
            return exchange;
        }
        let started = Instant::now();
        let unsent = self.exchange_into(&mut exchange, method, url, headers, body.clone()).await;
        // A request that never got an answer (a kept-alive connection the server closed as the
        // request went out) is sent once more when sending it twice means nothing more
        // (RFC 9110 §9.2.2): a transport hiccup must not become a finding. A timeout is not
        // retried: the case's time is bounded.
        if unsent && IDEMPOTENT.contains(&method) {
            exchange.error = None;
            let _ = self.exchange_into(&mut exchange, method, url, headers, body).await;
        }
        exchange.elapsed_ms = started.elapsed().as_millis() as u64;
        exchange
    }

    /// Fills `exchange` with the answer. True when no answer came and the failure was not a
    /// timeout (the request may be retried).
    async fn exchange_into(
        &self,
        exchange: &mut Exchange,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Option<String>,
    ) -> bool {
        let Ok(m) = reqwest::Method::from_bytes(method.as_bytes()) else {
            exchange.error = Some(format!("bad method `{method}`"));
            return false;
        };
        let mut request = self.client.request(m, url);
        for (k, v) in headers {
            request = request.header(k, v);
        }
        if let Some(b) = body {
            request = request.body(b);
        }
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                exchange.error = Some(describe(&e));
                return !e.is_timeout();
            }
        };
        exchange.status = Some(response.status().as_u16());
        // One pass over the head. The exchange keeps each value capped, within the per-exchange
        // bound; harvesting gets each value as sent (a cookie cut for the report is still sent
        // back whole and must be known whole) and then the capped copies that differ (the cut
        // copy the report shows must be redacted too).
        let (mut sent, mut cut) = (Vec::new(), Vec::new());
        let (mut kept, mut keeping) = (0, true);
        for (name, value) in response.headers().iter().take(MAX_HEADERS_KEPT) {
            let name = name.as_str().to_string();
            let full = String::from_utf8_lossy(value.as_bytes()).into_owned();
            let capped = cap(&full, MAX_HEADER_VALUE);
            kept += capped.len();
            keeping &= kept <= MAX_HEADER_BYTES_KEPT;
            if keeping {
                if capped != full {
                    cut.push((name.clone(), capped.clone()));
                }
                exchange.response_headers.push((name.clone(), capped));
            }
            sent.push((name, full));
        }
        sent.append(&mut cut);
        let mut kept = 0;
        exchange.cookies = response
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next().map(|c| c.trim().to_string()))
            .filter(|c| c.contains('='))
            .filter(|c| {
                kept += c.len();
                kept <= MAX_COOKIE_BYTES_KEPT
            })
            .collect();
        self.secrets.harvest_headers(&sent);
        let mut bytes = Vec::new();
        let mut received: u64 = 0;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    received += chunk.len() as u64;
                    let room = self.limits.max_body_bytes.saturating_sub(bytes.len());
                    bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if chunk.len() > room {
                        // Past the limit: stop reading; dropping the response closes the connection.
                        exchange.truncated = true;
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    exchange.error = Some(format!("the body broke off after {received} bytes: {}", describe(&e)));
                    break;
                }
            }
        }
        exchange.body_bytes = received;
        exchange.response_body = String::from_utf8_lossy(&bytes).into_owned();
        if let Ok(value) = serde_json::from_str::<Value>(&exchange.response_body) {
            self.secrets.harvest_json(&value);
        }
        false
    }
}

/// The methods whose repetition has no further effect (RFC 9110 §9.2.2) and that the harness
/// sends without a body that changes anything: the ones retried once after a lost request.
const IDEMPOTENT: &[&str] = &["GET", "HEAD", "OPTIONS"];

/// What went wrong, without the URL (the exchange already names it), with its causes.
fn describe(e: &reqwest::Error) -> String {
    let mut text = String::from(if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "bad body"
    } else {
        "request failed"
    });
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text += &format!(": {s}");
        source = s.source();
    }
    text
}

/// At most `max` bytes of `s`, cut at a character boundary, with the cut marked.
pub fn cap(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[{} bytes cut]", &s[..end], s.len() - end)
}

/// Decodes a compact JWS without verifying it, for reports.
pub fn decode_jwt(text: &str) -> Option<Value> {
    use base64::Engine;
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() != 3 || parts[0].len() < 10 {
        return None;
    }
    let dec = |p: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    };
    let header = dec(parts[0])?;
    header.get("alg")?;
    Some(json!({ "header": header, "claims": dec(parts[1]).unwrap_or(Value::Null) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client of a test server at `addr` (its origin allowed, 1 MiB bodies, 5 s per request).
    fn loopback_client(addr: std::net::SocketAddr, secrets: &Secrets) -> Transport {
        let mut policy = HostPolicy::default();
        policy.allow_origin_of(&format!("http://{addr}"));
        let limits = Limits {
            max_body_bytes: 1 << 20,
            request_timeout: Duration::from_secs(5),
        };
        Transport::new(
            None,
            &Tls::new(None).expect("tls"),
            limits,
            std::sync::Arc::new(policy),
            secrets.clone(),
        )
        .expect("transport")
    }

    #[test]
    fn the_policy_allows_origins_and_listed_hosts_only() {
        let mut p = HostPolicy::default();
        p.allow_origin_of("http://127.0.0.1:8000/x");
        p.allow_host("auth.example:8443");
        p.allow_host("https://idp.example/");
        assert!(p.check("http://127.0.0.1:8000/a/b").is_ok());
        assert!(p.check("http://127.0.0.1:8001/").is_err());
        assert!(p.check("https://auth.example:8443/m").is_ok());
        assert!(p.check("https://auth.example/m").is_err());
        assert!(p.check("https://idp.example:9/any").is_ok());
        assert!(p.check("file:///etc/passwd").is_err());
        assert!(p.check("relative/path").is_err());
    }

    /// A cookie longer than the report keeps of a header is sent back whole: the session
    /// must survive the report's cap.
    #[tokio::test]
    async fn cookies_come_back_exactly_as_set_and_what_is_sent_back_is_a_secret() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let long = "v".repeat(3 * MAX_HEADER_VALUE);
        let answer = format!(
            "HTTP/1.1 200 OK\r\nset-cookie: sid={long}; Path=/; HttpOnly\r\nset-cookie: b=2\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        );
        tokio::spawn(async move {
            if let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        let secrets = Secrets::default();
        let net = loopback_client(addr, &secrets);
        let e = net.send("t", "GET", &format!("http://{addr}/login"), &[], None).await;
        assert_eq!(e.cookies, vec![format!("sid={long}"), "b=2".to_string()]);
        assert!(e.response_headers.iter().all(|(_, v)| v.len() <= MAX_HEADER_VALUE + 64));
        // Sending it back registers it, whatever the harvest of the answer kept.
        let header = [("cookie".to_string(), e.cookies.join("; "))];
        let _ = net.send("t", "GET", &format!("http://{addr}/again"), &header, None).await;
        assert!(secrets.all().contains(&long));
        // The report's capped copy of the header is redacted whole.
        let shown = &e.response_headers.iter().find(|(k, _)| k == "set-cookie").expect("header").1;
        // Long repetitive secrets must not make the automaton's construction quadratic (a
        // DFA build took 10 s here in a debug build).
        let started = std::time::Instant::now();
        assert!(secrets.redact(shown).starts_with("<redacted:"), "{}", &shown[..40]);
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    }

    /// A kept-alive connection closed by the server as a poll went out is a transport hiccup,
    /// not the target's answer: an idempotent request is sent once more; a POST is not.
    #[tokio::test]
    async fn a_lost_get_is_sent_once_more_and_a_lost_post_is_not() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = seen.clone();
        tokio::spawn(async move {
            // Every odd connection is dropped unanswered; every even one is answered.
            while let Ok((mut socket, _)) = listener.accept().await {
                let n = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                if n % 2 == 1 {
                    let _ = socket
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                        .await;
                }
            }
        });
        let net = loopback_client(addr, &Secrets::default());
        let got = net.send("t", "GET", &format!("http://{addr}/mail"), &[], None).await;
        assert_eq!((got.status, got.error.as_deref()), (Some(200), None));
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 2);
        let posted = net
            .send("t", "POST", &format!("http://{addr}/register"), &[], Some("{}".into()))
            .await;
        assert_eq!(posted.status, None, "a POST is never sent twice");
        assert!(posted.error.is_some());
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[test]
    fn cap_cuts_at_a_character_boundary() {
        let s = "é".repeat(10);
        let c = cap(&s, 5);
        assert!(c.starts_with("éé"));
        assert!(c.contains("bytes cut"));
        assert_eq!(cap("short", 10), "short");
    }
}
