//! Target configuration: where the service is and what the harness may rely on.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// An HTTP probe for one scope (REG-ANON-10, API-08).
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    /// HTTP method. Defaults to GET.
    #[serde(default = "get")]
    pub method: String,
    /// Path (or absolute URL) of an endpoint that needs exactly this scope.
    pub path: String,
}

fn get() -> String {
    "GET".into()
}

/// The identity/scope oracle: an endpoint that echoes who a credential acts as.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Oracle {
    /// Path or URL of the echo endpoint (GET). It is also the protected API used by discovery.
    pub path: String,
    /// JSON pointer to the user id. Defaults to `/user/id`.
    #[serde(default = "user_pointer")]
    pub user_pointer: String,
    /// JSON pointer to the scope array. Defaults to `/credential/scope`.
    #[serde(default = "scopes_pointer")]
    pub scopes_pointer: String,
}

fn user_pointer() -> String {
    "/user/id".into()
}
fn scopes_pointer() -> String {
    "/credential/scope".into()
}

/// Where the target's claim mail can be read.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum MailConfig {
    /// Run the bundled SMTP sink on this address; the target must relay its mail there.
    Smtp {
        /// Listen address, e.g. `127.0.0.1:2525`.
        listen: SocketAddr,
    },
    /// A directory with one file per message.
    Directory {
        /// The directory.
        path: PathBuf,
    },
    /// An HTTP URL template (`{registration_id}`, `{recipient}`).
    UrlTemplate {
        /// The template.
        template: String,
        /// Headers to send with each request (the outbox's credentials, e.g.
        /// `{ Authorization = "Bearer …" }`); their values are secrets, redacted in reports.
        #[serde(default)]
        headers: BTreeMap<String, String>,
    },
    /// A Mailpit-compatible API.
    Mailpit {
        /// Its base URL.
        base: String,
    },
}

/// How the harness moves the target's clock.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClockConfig {
    /// A request header that shifts the target's "now" by N seconds for that request.
    #[serde(default)]
    pub offset_header: Option<String>,
    /// Without a header, the longest the harness may wait for a TTL, in seconds. Defaults to 0.
    #[serde(default)]
    pub wait_budget_secs: u64,
}

/// Declared TTLs of the target, in seconds (what `advance = "otp+5"` refers to).
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DeclaredTtls {
    /// Unclaimed registration lifetime. Defaults to 86400.
    pub registration: i64,
    /// Claim-attempt link window. Defaults to 600.
    pub claim_attempt: i64,
    /// OTP lifetime. Defaults to 600.
    pub otp: i64,
    /// Access-token lifetime. Defaults to 3600.
    pub access_token: i64,
}

impl DeclaredTtls {
    /// The lifetime a case names in `advance` (`registration`, `claim_attempt`, `otp`,
    /// `access_token`), or plain seconds.
    pub fn named(&self, name: &str) -> Option<i64> {
        Some(match name {
            "registration" => self.registration,
            "claim_attempt" => self.claim_attempt,
            "otp" => self.otp,
            "access_token" => self.access_token,
            _ => name.parse().ok()?,
        })
    }
}

impl Default for DeclaredTtls {
    fn default() -> Self {
        Self {
            registration: 86_400,
            claim_attempt: 600,
            otp: 600,
            access_token: 3_600,
        }
    }
}

/// A second issuer on the target's trust list, for the two-issuer cases.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecondIssuer {
    /// Its issuer URL as your trust list names it.
    pub issuer: String,
    /// Where its mock IdP listens (it must own the issuer's origin).
    pub listen: SocketAddr,
    /// Run the cases that change the IdP (key rotation, JWKS faults and lifetimes) on this
    /// issuer rather than the first, so they never pause the cases that sign with the first (a
    /// run against a remote target is then shorter by their whole length). Set it when your
    /// server treats this issuer as it treats the first: the same JWKS refetch and cache
    /// policy, and a `client_id` under the issuer resolved as a metadata document (no pinned
    /// list). Defaults to false.
    #[serde(default)]
    pub isolate_key_changes: bool,
}

/// The mock IdP as the target must see it.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdpSettings {
    /// The issuer on the target's trust list, e.g. `http://localhost:4000`.
    pub issuer: Option<String>,
    /// Where the IdP listens (it must own the issuer's origin). Defaults to `127.0.0.1:0`.
    #[serde(default = "any_port")]
    pub listen: SocketAddr,
    /// The `aud` put in ID-JAGs and logout tokens. Defaults to `authorization_servers[0]` (C-01 B).
    pub audience: Option<String>,
    /// Whether the target trusts this IdP at all. Defaults to true.
    #[serde(default = "yes")]
    pub trusted: bool,
    /// Whether the target takes any `client_id` under the issuer (`<issuer>/clients/<name>`)
    /// as a client metadata document to resolve (IDJAG-37). Set false when your trust entry
    /// pins an explicit `client_id` list. Defaults to true.
    #[serde(default = "yes")]
    pub cimd: bool,
    /// The `amr` values your trust entry requires of this IdP's tokens, if you have such a
    /// policy (IDJAG-45). Empty skips the policy case.
    #[serde(default)]
    pub required_amr: Vec<String>,
    /// After a JWKS fetch, how long your server refuses to refetch on an unknown `kid`, in
    /// seconds (jose's remote key set: 30). Key-rotation cases wait this long (real time,
    /// within `clock.wait_budget_secs`) before presenting a token signed by a new key.
    /// Undeclared, the key-rotation cases are skipped saying so: a refusal of a new key
    /// without a refetch is a bug under 0 and conforming under a cool-down, and only you know
    /// which. Declare 0 for a server that refetches at once.
    #[serde(default)]
    pub jwks_refetch_cooldown_secs: Option<u64>,
    /// Where the mock IdP keeps its signing keys between runs, so a re-run signs with the keys
    /// your server has cached. Defaults to `$XDG_STATE_HOME/authmd-conformance/idp/<issuer
    /// hash>` (or `~/.local/state/…`, or `.authmd-state/idp/…` without a home directory).
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// The `client_id`s your trust entry for this issuer names, if it pins a list. The first is
    /// put in every ID-JAG the harness mints (unless a case sets its own). With a list, an
    /// unknown `client_id` is a MUST failure (IDJAG-36); without one, a SHOULD.
    #[serde(default)]
    pub client_ids: Vec<String>,
    /// Your clock offset header also ages your JWKS cache (a cache entry fetched "now" is
    /// stale once the header moves "now" past its lifetime). Enables the `Cache-Control`
    /// lifetime case (IDJAG-44). Defaults to false.
    #[serde(default)]
    pub jwks_cache_follows_clock: bool,
    /// A second issuer your server trusts. Without it the two-issuer cases (a key of one
    /// trusted issuer in a token claiming the other, logout from the other, the same `sub`
    /// at both) are skipped.
    #[serde(default)]
    pub second: Option<SecondIssuer>,
}

impl IdpSettings {
    /// The key directory for `issuer`: `state_dir`, or the default under the user's state home.
    pub fn key_dir(&self, issuer: &str) -> PathBuf {
        if let Some(dir) = &self.state_dir {
            return dir.clone();
        }
        let base = std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
            .map(|d| d.join("authmd-conformance"))
            .unwrap_or_else(|| PathBuf::from(".authmd-state"));
        base.join("idp").join(crate::redact::short_hash(issuer))
    }
}

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}
fn yes() -> bool {
    true
}

impl Default for IdpSettings {
    fn default() -> Self {
        Self {
            issuer: None,
            listen: any_port(),
            audience: None,
            trusted: true,
            cimd: true,
            required_amr: Vec::new(),
            jwks_refetch_cooldown_secs: None,
            state_dir: None,
            client_ids: Vec::new(),
            jwks_cache_follows_clock: false,
            second: None,
        }
    }
}

/// The human's side of a v0.6 ceremony, as forms the harness fills in with its own cookie jar.
/// A target served by several replicas behind one base URL.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Replicas {
    /// Each replica's own origin (`http://10.0.0.11:8080`): a request to one reaches that
    /// replica and no other, with the path it would have under the base URL. Two or more.
    pub origins: Vec<String>,
    /// How long a revocation made through one replica may take to reach the others, in
    /// milliseconds: a credential used on another replica is polled until refused, and still
    /// accepted past this bound is a failure. 0 (the default) means at once.
    #[serde(default)]
    pub revocation_propagation_ms: u64,
}

/// Field values may use `{email}`, `{return_to}` (from the `verification_uri`),
/// `{claim_attempt_token}` and `{user_code}`.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionRecipe {
    /// Where the sign-in form posts (absolute, or a path on the target).
    pub login_url: String,
    /// The sign-in form's fields.
    pub login_fields: BTreeMap<String, String>,
    /// Where the confirm form (the page the user types the code into) posts.
    pub confirm_url: String,
    /// The confirm form's fields.
    pub confirm_fields: BTreeMap<String, String>,
    /// Where the confirm form's answer shows the code it reveals, for a ceremony whose page
    /// gives the user the code to read back (the production dialect): the page's text around
    /// the code, `{user_code}` standing for it (`<output id="user-code">{user_code}</output>`).
    #[serde(default)]
    pub reveal: Option<String>,
}

/// Where an AID preflight starts (`[aid]`, or `run --domain`): the bare domain, and the DNS
/// that answers for it.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AidTarget {
    /// The domain whose `_agent` record is looked up (exact host; no parent is tried).
    pub domain: String,
    /// The DNS server to ask (`127.0.0.1:5353`). Defaults to the system resolver.
    #[serde(default)]
    pub resolver: Option<std::net::SocketAddr>,
    /// The port `https://<domain>/.well-known/agent` is served on. Defaults to 443; a test rig
    /// serving the domain on another port says so here.
    #[serde(default = "https_port")]
    pub https_port: u16,
    /// The service publishes the `/.well-known/agent` fallback document (AID-WK-01 is tested
    /// only then). Defaults to false.
    #[serde(default)]
    pub well_known: bool,
    /// Seconds one DNS query may take. Defaults to 3.
    #[serde(default = "dns_timeout")]
    pub dns_timeout_secs: u64,
}

fn https_port() -> u16 {
    443
}

fn dns_timeout() -> u64 {
    3
}

impl AidTarget {
    /// A preflight of `domain` through `resolver`, defaults otherwise.
    pub fn new(domain: &str, resolver: Option<std::net::SocketAddr>) -> Self {
        Self {
            domain: domain.trim_end_matches('.').to_ascii_lowercase(),
            resolver,
            https_port: https_port(),
            well_known: false,
            dns_timeout_secs: dns_timeout(),
        }
    }
}

/// A target configuration file (`--config target.toml`).
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// The service's base URL (the resource server origin). May be left out with `[aid]`: the
    /// selected record's endpoint then names it.
    #[serde(default)]
    pub base_url: String,
    /// Start from a bare domain: the AID preflight (record, endpoint proof, handoff) runs first.
    #[serde(default)]
    pub aid: Option<AidTarget>,
    /// A PEM CA certificate to trust besides the system roots (a test rig's own CA, such as
    /// the one `reference serve --set https=true --set tls_ca_out=FILE` writes).
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// An endpoint that echoes who a credential acts as (the identity and scope oracle); cases
    /// that compare identities need it.
    pub oracle: Option<Oracle>,
    /// Path of a protected endpoint for discovery when there is no oracle. Defaults to `/api/resource`.
    #[serde(default)]
    pub protected_path: Option<String>,
    /// One HTTP probe per scope your credentials can carry (`[probes.<scope>]`): how the
    /// harness checks that a credential reaches what its scopes allow, and nothing more.
    #[serde(default)]
    pub probes: BTreeMap<String, Probe>,
    /// Where the harness reads the mail your service sends (claim links, OTPs): one of the
    /// kinds below. Without it, cases that read mail are skipped.
    #[serde(default)]
    pub mail: Option<MailConfig>,
    /// Claim-link pattern (group 1 = token); defaults to the mailbox's.
    #[serde(default)]
    pub link_pattern: Option<String>,
    /// How the harness, acting as the human, signs in to your service and confirms a user code
    /// (v0.6 ceremony). Without it, cases that need a human step are skipped.
    #[serde(default)]
    pub session: Option<SessionRecipe>,
    /// How the harness moves your service's clock (a test-clock header) or, without one, how
    /// long it may wait for a TTL to pass.
    #[serde(default)]
    pub clock: ClockConfig,
    /// The lifetimes your service declares (claim tokens, attempts, credentials), where the
    /// metadata does not state them; expiry cases test against them.
    #[serde(default)]
    pub ttl: DeclaredTtls,
    /// The mock IdP the harness runs and your service must trust for ID-JAG registration and
    /// logout tokens: its issuer, where it listens, and your trust entry's policies.
    #[serde(default)]
    pub idp: IdpSettings,
    /// Ambiguity → the reading that gates (`"C-01" = "B"`); others are reported, not failed.
    #[serde(default)]
    pub readings: BTreeMap<String, String>,
    /// Requests to send in the rate-limit burst (RATE-01). Without it the case is skipped.
    #[serde(default)]
    pub rate_burst: Option<u32>,
    /// The target's replicas, each reached directly, for the cross-replica cases (a `jti`
    /// replayed at several replicas at once). Without it those cases are skipped.
    #[serde(default)]
    pub replicas: Option<Replicas>,
    /// Bind each case's requests to its own 127.x.y.z source address, so per-IP rate limits of
    /// one case never hit another. Defaults to true for loopback targets.
    #[serde(default)]
    pub isolate_source_ips: Option<bool>,
    /// Override of the completion URL (C-12). Defaults to `claim_uri + "/complete"`.
    #[serde(default)]
    pub complete_url: Option<String>,
    /// Override of the challenge URL (C-12). Defaults to `claim_uri + "/attempt/challenge"`.
    #[serde(default)]
    pub challenge_url: Option<String>,
    /// Seconds a case's requests may take together, on top of every wait the case declares:
    /// a case that lets a TTL pass without a clock header may also wait up to
    /// `clock.wait_budget_secs`, and one that rotates keys `idp.jwks_refetch_cooldown_secs` per
    /// rotation. The limit also grows by the case's expected requests times the round trip
    /// discovery measured, so a slow network does not end a long case. A case past its limit
    /// is INCONCLUSIVE. Defaults to 30.
    #[serde(default = "case_timeout")]
    pub case_timeout_secs: u64,
    /// Cases run at once. Most of a case's time is spent waiting for answers, so against a
    /// remote target more at once is what keeps a run short (the cases that change the IdP run
    /// one at a time beside them). Defaults to 48.
    #[serde(default = "jobs")]
    pub jobs: usize,
    /// Response body bytes the harness reads per answer; the rest is dropped and the exchange
    /// marked truncated. Defaults to 1 MiB.
    #[serde(default = "max_body_bytes")]
    pub max_body_bytes: usize,
    /// Seconds one request may take, body included. Defaults to 10.
    #[serde(default = "request_timeout")]
    pub request_timeout_secs: u64,
    /// Hosts besides the target's own origin and the mock IdP that the harness may fetch
    /// (`auth.example.com` for any port, or `host:port`). A URL the target names elsewhere is
    /// reported as a finding and never fetched.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// The spec profile the target implements: `v0.1` (the default), `v0.6`, `v0.7` or
    /// `v0.7-production` (see `profiles/`); `run --profile` overrides it.
    #[serde(default = "profile")]
    pub profile: String,
}

fn profile() -> String {
    crate::default_profile()
}

fn max_body_bytes() -> usize {
    crate::transport::DEFAULT_MAX_BODY_BYTES
}
fn request_timeout() -> u64 {
    crate::transport::DEFAULT_REQUEST_TIMEOUT_SECS
}

fn case_timeout() -> u64 {
    30
}
fn jobs() -> usize {
    48
}

/// The target configuration is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct TargetConfigError {
    /// The file.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl TargetConfig {
    /// A configuration with defaults for `base_url`.
    pub fn new(base_url: &str) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            aid: None,
            ca_file: None,
            oracle: None,
            protected_path: None,
            probes: BTreeMap::new(),
            mail: None,
            link_pattern: None,
            session: None,
            clock: ClockConfig::default(),
            ttl: DeclaredTtls::default(),
            idp: IdpSettings::default(),
            readings: BTreeMap::new(),
            rate_burst: None,
            replicas: None,
            isolate_source_ips: None,
            complete_url: None,
            challenge_url: None,
            case_timeout_secs: case_timeout(),
            jobs: jobs(),
            max_body_bytes: max_body_bytes(),
            request_timeout_secs: request_timeout(),
            allowed_hosts: Vec::new(),
            profile: profile(),
        }
    }

    /// What the harness reads of each answer, and for how long.
    pub fn limits(&self) -> crate::transport::Limits {
        crate::transport::Limits {
            max_body_bytes: self.max_body_bytes,
            request_timeout: std::time::Duration::from_secs(self.request_timeout_secs),
        }
    }

    /// Reads and checks a TOML file.
    pub fn load(path: &Path) -> Result<Self, TargetConfigError> {
        let e = |m: String| TargetConfigError {
            path: path.display().to_string(),
            message: m,
        };
        let text = std::fs::read_to_string(path).map_err(|x| e(format!("cannot read: {x}")))?;
        let mut config: Self = toml::from_str(&text).map_err(|x| e(x.to_string().replace('\n', " ")))?;
        config.base_url = config.base_url.trim_end_matches('/').to_string();
        config.check().map_err(e)?;
        Ok(config)
    }

    /// Checks values that parse but make no sense.
    pub fn check(&self) -> Result<(), String> {
        if let Some(aid) = &self.aid {
            if aid.domain.is_empty() || aid.domain.contains(['/', ':', ' ']) {
                return Err(format!("aid.domain `{}` is not a bare domain name", aid.domain));
            }
            if aid.dns_timeout_secs == 0 {
                return Err("aid.dns_timeout_secs: at least 1".into());
            }
        }
        // With `[aid]` the base URL may come from the selected record.
        if !(self.base_url.is_empty() && self.aid.is_some()) {
            let url = url::Url::parse(&self.base_url).map_err(|_| format!("base_url `{}` is not an absolute URL", self.base_url))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err("base_url: only http and https targets".into());
            }
        }
        for (reading, value) in &self.readings {
            if !(reading.starts_with("C-") || reading.starts_with("A-")) || value.is_empty() {
                return Err(format!(
                    "readings: `{reading}` = `{value}` is not `\"C-NN\" = \"X\"` (or `\"A-NN\"` for AID)"
                ));
            }
        }
        if let Some(r) = &self.replicas {
            if r.origins.len() < 2 {
                return Err("replicas.origins: at least two replicas".into());
            }
            for o in &r.origins {
                match url::Url::parse(o) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
                    _ => return Err(format!("replicas.origins: `{o}` is not an http(s) origin")),
                }
            }
        }
        if let Some(p) = &self.link_pattern {
            regex::Regex::new(p).map_err(|x| format!("link_pattern: {x}"))?;
        }
        if self.jobs == 0 {
            return Err("jobs: at least 1".into());
        }
        if self.max_body_bytes < 1024 {
            return Err("max_body_bytes: at least 1024".into());
        }
        if self.request_timeout_secs == 0 {
            return Err("request_timeout_secs: at least 1".into());
        }
        for host in &self.allowed_hosts {
            if host.trim().is_empty() || host.contains(['/', ' ']) && !host.starts_with("http") {
                return Err(format!("allowed_hosts: `{host}` is not a host, host:port or origin"));
            }
        }
        let known = crate::profiles();
        if !known.contains(&self.profile) {
            return Err(format!(
                "profile `{}` is not in this build (known: {})",
                self.profile,
                known.join(", ")
            ));
        }
        Ok(())
    }

    /// Resolves a path (or keeps an absolute URL) against the base URL.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}/{}", self.base_url, path.trim_start_matches('/'))
        }
    }

    /// Is the target on a loopback address (so per-case source addresses can be used)?
    pub fn is_loopback(&self) -> bool {
        url::Url::parse(&self.base_url)
            .ok()
            .and_then(|u| {
                u.host()
                    .map(|h| matches!(h, url::Host::Ipv4(ip) if ip.is_loopback()) || matches!(h, url::Host::Domain("localhost")))
            })
            .unwrap_or(false)
    }
}
