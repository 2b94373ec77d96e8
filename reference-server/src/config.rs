//! Configuration: a TOML file, then `AUTHMD_REF_*` environment variables, then flags.

pub use crate::profile::Profile;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// Which audience an ID-JAG and a logout token must carry (catalogue C-01).
#[derive(Clone, Copy, Debug, Default, Deserialize, Eq, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum AudienceReading {
    /// Reading B: the authorization server's issuer (the base URL). The default.
    #[default]
    AsIssuer,
    /// Reading A: the PRM `resource`.
    Resource,
    /// Either value.
    Both,
}

/// Which AID record the service publishes (issue #16).
#[derive(Clone, Copy, Debug, Default, Deserialize, Eq, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub enum AidMode {
    /// None.
    #[default]
    Off,
    /// An AID v1.2 record without a key.
    #[serde(rename = "aid1-no-key")]
    Aid1,
    /// An AID v1.2 record with a multibase key and `i`, and the v1.2 handshake.
    #[serde(rename = "aid1")]
    Aid1Key,
    /// An AID v2 record with an Ed25519 PKA key; proofs bind the served domain when asked
    /// (v2.1 Appendix B.7).
    Aid2,
    /// As `aid2`, an endpoint of AID v2.0: it ignores `AID-Domain`, so its proofs are unbound.
    #[serde(rename = "aid2.0")]
    Aid20,
    /// Both records at the name, aid1 (with its key and `i`) and aid2 (the same key), as AID
    /// v2.0 §2.2 shows a migration; the endpoint answers both handshakes.
    Migration,
}

impl AidMode {
    /// Whether the service has an AID key (every mode that publishes `k`).
    pub fn has_key(self) -> bool {
        matches!(self, Self::Aid1Key | Self::Aid2 | Self::Aid20 | Self::Migration)
    }
}

/// Which of the catalogue's synonym sets (§B.6) the server's error codes come from. Both are
/// conforming; the suite must accept either.
#[derive(Clone, Copy, Debug, Default, Deserialize, Eq, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorNames {
    /// The service guide's names: `invalid_audience`, `expired`, `invalid_issuer`. The default.
    #[default]
    Guide,
    /// AUTH.md's names: `audience_mismatch`, `credential_expired`, `issuer_not_enabled`.
    AuthMd,
    /// The production dialect's (9f8a4ee): `anonymous_registration_disabled`,
    /// `service_auth_registration_disabled`, `rate_limit_exceeded`, `already_claimed`. Its
    /// profile implies it; a deployment cannot choose it.
    #[serde(skip)]
    Production,
}

/// The shape of the identity/scope echo at `/api/resource`. Any shape is conforming (the
/// protocol defines none); the target config points the harness at the members.
#[derive(Clone, Copy, Debug, Default, Deserialize, Eq, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub enum OracleShape {
    /// `{"user": {"id": …}, "credential": {"scope": [..]}}`. The default.
    #[default]
    Nested,
    /// `{"who": … | null, "scope": "api.read api.write"}`: a flat echo with an OAuth-style,
    /// space-delimited scope string.
    Flat,
}

/// A provider whose ID-JAGs and logout tokens are trusted.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedIssuer {
    /// The exact `iss` value.
    pub issuer: String,
    /// Where its JWKS is. Defaults to `<issuer>/.well-known/jwks.json` (IDJAG-43).
    pub jwks_uri: Option<String>,
    /// The `client_id` values that resolve to this provider. Defaults to the issuer and any
    /// URL under it (a client metadata document the provider hosts).
    #[serde(default)]
    pub client_ids: Vec<String>,
    /// Extra PEM CA to trust when fetching the JWKS over https.
    pub ca_pem: Option<String>,
    /// Authentication methods every ID-JAG from this provider must list in `amr` (e.g.
    /// `["mfa"]`); fewer is `insufficient_user_authentication` (IDJAG-45). Defaults to none.
    #[serde(default)]
    pub required_amr: Vec<String>,
}

impl TrustedIssuer {
    /// An entry for `issuer` with the defaults: the JWKS at its well-known path, any client_id
    /// it resolves (CIMD), no CA, no `amr` policy.
    pub fn named(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            jwks_uri: None,
            client_ids: Vec::new(),
            ca_pem: None,
            required_amr: Vec::new(),
        }
    }

    /// The JWKS URL.
    pub fn jwks_uri(&self) -> String {
        self.jwks_uri
            .clone()
            .unwrap_or_else(|| format!("{}/.well-known/jwks.json", self.issuer.trim_end_matches('/')))
    }

    /// Does `client_id` resolve to this provider?
    pub fn knows_client(&self, client_id: &str) -> bool {
        if self.client_ids.is_empty() {
            // The issuer itself, or a client metadata document the provider hosts (IDJAG-37).
            client_id == self.issuer || client_id.starts_with(&format!("{}/", self.issuer.trim_end_matches('/')))
        } else {
            self.client_ids.iter().any(|c| c == client_id)
        }
    }
}

/// The readings `follows` may name (the other reading of each is the default).
pub const FOLLOWABLE: &[&str] = &["C-07/v0.7-new-attempt", "C-11/defaulted", "C-17/B"];

/// Time-to-live settings, all in seconds so tests never wait minutes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ttls {
    /// Unclaimed registrations (and their claim tokens). Defaults to 86400 (24 h).
    pub registration: i64,
    /// A claim attempt's link window. Defaults to 600.
    pub claim_attempt: i64,
    /// An OTP. Defaults to 600 (CLAIM-15: at most 10 minutes).
    pub otp: i64,
    /// Access tokens. Defaults to 3600.
    pub access_token: i64,
    /// Clock skew allowed on `exp`/`nbf`. Defaults to 60.
    pub skew: i64,
    /// How far in the future `iat` may be. Defaults to 120.
    pub max_future_iat: i64,
    /// JWKS cache floor (used when `max-age` is lower). Defaults to 600.
    pub jwks_cache_floor: u64,
    /// JWKS cache ceiling. Defaults to 86400.
    pub jwks_cache_ceiling: u64,
    /// Minimum time between two refetches of one issuer's JWKS on a `kid` miss. Defaults to 30.
    pub jwks_refetch_cooldown: u64,
}

impl Default for Ttls {
    fn default() -> Self {
        Self {
            registration: 86_400,
            claim_attempt: 600,
            otp: 600,
            access_token: 3_600,
            skew: 60,
            max_future_iat: 120,
            jwks_cache_floor: 600,
            jwks_cache_ceiling: 86_400,
            jwks_refetch_cooldown: 30,
        }
    }
}

/// Connection hygiene: what one client can hold of the server.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionLimits {
    /// Seconds a connection may take to send a request head, and may sit idle between
    /// keep-alive requests. Defaults to 5.
    pub header_read_timeout_secs: u64,
    /// Seconds a request may take to send its body. Defaults to 10.
    pub body_timeout_secs: u64,
    /// Requests handled at once; beyond it the answer is 503 with `Retry-After`. Defaults to 1024.
    pub max_in_flight: usize,
    /// Open connections; at the cap the oldest is closed to admit a new one, so a crowd of
    /// half-open connections cannot lock others out. 0 (the default) derives it from the
    /// process's open-file limit, less a reserve for the database and the listener.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout_secs: 5,
            body_timeout_secs: 10,
            max_in_flight: 1024,
            max_connections: 0,
        }
    }
}

/// Rate limits per client IP and per issuer, over a fixed window.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimits {
    /// Window length in seconds. Defaults to 3600.
    pub window: u64,
    /// Anonymous registrations per IP per window. Defaults to 5 (the guide's default).
    pub anonymous_per_ip: u32,
    /// Identity-assertion registrations per IP per window. Defaults to 60.
    pub identity_per_ip: u32,
    /// ID-JAG registrations per issuer per window. Defaults to 10000.
    pub per_issuer: u32,
    /// Whether the counters live in the database, shared by every instance over it, not in each
    /// process's memory. Defaults to on for PostgreSQL (meant for replicas), off for SQLite.
    pub shared: Option<bool>,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            window: 3_600,
            anonymous_per_ip: 5,
            identity_per_ip: 60,
            per_issuer: 10_000,
            shared: None,
        }
    }
}

/// Everything the reference server can be told.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Listen address. Defaults to `127.0.0.1:8000`.
    pub listen: SocketAddr,
    /// Public base URL; defaults to `http://<listen>`.
    pub base_url: Option<String>,
    /// SQLite file. Defaults to `authmd-reference.sqlite` in the working directory.
    pub database: PathBuf,
    /// Providers on the trust list.
    pub trusted_issuers: Vec<TrustedIssuer>,
    /// SMTP relay for claim mail, `host:port`. Without one, mail is logged (never exposed).
    pub smtp: Option<String>,
    /// Sender address. Defaults to `no-reply@authmd.invalid`.
    pub mail_from: String,
    /// Offer anonymous registration. Defaults to true.
    pub anonymous: bool,
    /// Offer verified-email registration. Defaults to true.
    pub verified_email: bool,
    /// Offer ID-JAG registration. Defaults to true.
    pub id_jag: bool,
    /// Credential types offered for identity assertions. Defaults to both.
    pub identity_credential_types: Vec<String>,
    /// Scopes before a claim. Defaults to `["api.read"]`.
    pub pre_claim_scopes: Vec<String>,
    /// All scopes. Defaults to `["api.read", "api.write"]`.
    pub scopes: Vec<String>,
    /// Lifetimes.
    pub ttl: Ttls,
    /// Rate limits.
    pub rate: RateLimits,
    /// Timeouts and caps on connections and requests.
    pub connections: ConnectionLimits,
    /// Wrong OTPs allowed per attempt before the OTP is burned (CLAIM-25). Defaults to 5.
    pub max_otp_failures: u32,
    /// C-01 reading for `aud`.
    pub audience: AudienceReading,
    /// Require `exp` in logout tokens (BCL 1.0) rather than follow the auth.md examples
    /// that omit it (C-20). Defaults to false.
    pub logout_requires_exp: bool,
    /// Readings of catalogue §C ambiguities to follow where the default follows the other:
    /// `C-07/v0.7-new-attempt` (a same-email claim starts a new attempt), `C-11/defaulted`
    /// (a missing `requested_credential_type` defaults), `C-17/B` (a challenge after the claim
    /// is 410 `claim_superseded`). Defaults to none.
    pub follows: Vec<String>,
    /// Publish AID at `_agent.<public host>`: `off` (default), `aid1` (v1.2, no key) or `aid2`
    /// (v2, with an Ed25519 PKA key whose proofs the server signs).
    pub aid: AidMode,
    /// The host name the service is reached by (`base_url` becomes `https://<host>:<port>`, and
    /// the rcgen certificate names it). Defaults to none: the bound address.
    pub public_host: Option<String>,
    /// The auth.md version spoken: `v0.1` (default) or `v0.6` (upstream b53c9ed, first slice:
    /// anonymous registration, the JWT-bearer token endpoint and RFC 7009 revocation).
    pub profile: Profile,
    /// Honour the `Authmd-Test-Clock-Offset` request header (seconds added to "now" for that
    /// request only). For conformance runs; never in production. Defaults to false.
    pub test_clock: bool,
    /// Serve `GET /_admin/audit` (loopback peers only). Defaults to true.
    pub admin_api: bool,
    /// Serve https with an rcgen certificate (`tls_ca_out` receives the CA). Defaults to false.
    pub https: bool,
    /// Where to write the CA when `https` is on.
    pub tls_ca_out: Option<PathBuf>,
    /// Serve https with this certificate chain (PEM) instead of an rcgen one; needs `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Wait for fsync on every commit (SQLite `synchronous = FULL`), so an answer survives an OS
    /// crash or power loss too. Defaults to false: WAL with `synchronous = NORMAL`, which
    /// survives a crash or kill of the server itself.
    pub power_safe: bool,
    /// Error-code synonym set (catalogue §B.6). Defaults to `guide`.
    pub error_names: ErrorNames,
    /// Shape of the `/api/resource` echo. Defaults to `nested`.
    pub oracle_shape: OracleShape,
    /// Also write each claim mail as `<dir>/<registration_id>.html`, overwritten by every new
    /// attempt, and serve the directory at `GET /mail/<registration_id>.html` (the v0.1 sample's
    /// outbox). Defaults to none.
    pub mail_outbox: Option<PathBuf>,
    /// The bearer token the outbox asks for. Without it the outbox is public, which exposes
    /// every claim mail to the agents (SEC-08): only for a harness on a trusted host. Defaults
    /// to none.
    pub mail_outbox_token: Option<SecretString>,
}

/// A configured secret: deserialised like a string, never shown by `Debug`.
#[derive(Clone, Deserialize, Eq, PartialEq)]
#[serde(transparent)]
pub struct SecretString(pub String);

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            base_url: None,
            database: PathBuf::from("authmd-reference.sqlite"),
            trusted_issuers: Vec::new(),
            smtp: None,
            mail_from: "no-reply@authmd.invalid".into(),
            anonymous: true,
            verified_email: true,
            id_jag: true,
            identity_credential_types: vec!["access_token".into(), "api_key".into()],
            pre_claim_scopes: vec!["api.read".into()],
            scopes: vec!["api.read".into(), "api.write".into()],
            ttl: Ttls::default(),
            rate: RateLimits::default(),
            connections: ConnectionLimits::default(),
            max_otp_failures: 5,
            audience: AudienceReading::AsIssuer,
            logout_requires_exp: false,
            follows: Vec::new(),
            aid: AidMode::Off,
            public_host: None,
            profile: Profile::V01,
            test_clock: false,
            admin_api: true,
            https: false,
            tls_ca_out: None,
            tls_cert: None,
            tls_key: None,
            power_safe: false,
            error_names: ErrorNames::Guide,
            oracle_shape: OracleShape::Nested,
            mail_outbox: None,
            mail_outbox_token: None,
        }
    }
}

/// A configuration problem, naming the key or file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The TOML is invalid or has an unknown key or a wrong type.
    #[error("invalid configuration {path}: {reason}")]
    Parse {
        /// The file.
        path: String,
        /// What toml said (it names the key).
        reason: String,
    },
    /// An environment variable has a bad value.
    #[error("invalid value for {key}: {reason}")]
    Value {
        /// The variable or key.
        key: String,
        /// Why.
        reason: String,
    },
}

/// The environment prefix of [`Config::layered`].
pub const ENV_PREFIX: &str = "AUTHMD_REF_";

/// `ttl.otp: invalid type: …`: the dotted key at `span` of `text` (from the nearest `[table]`
/// header above it) and toml's message, on one line.
fn describe(text: &str, span: Option<std::ops::Range<usize>>, message: &str) -> String {
    let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
    let Some(start) = span.map(|s| s.start.min(text.len())) else {
        return message;
    };
    let line_start = text[..start].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line = text[line_start..].lines().next().unwrap_or_default().trim();
    let key = line.split('=').next().unwrap_or_default().trim().trim_matches('"');
    let table = text[..line_start].lines().rev().find_map(|l| {
        l.trim()
            .strip_prefix('[')
            .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string())
    });
    match (table, key.is_empty() || line.starts_with('[')) {
        (_, true) => format!("{line}: {message}"),
        (Some(t), false) => format!("`{t}.{key}`: {message}"),
        (None, false) => format!("`{key}`: {message}"),
    }
}

/// Sets the dotted `key` in `table` to `raw`, read as a TOML value or else as a string.
fn overlay(table: &mut toml::Table, key: &str, raw: &str) -> Result<(), String> {
    let value = format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().filter(|l| !l.is_empty()).ok_or("empty key")?;
    let mut current = table;
    for part in parts {
        let entry = current
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry.as_table_mut().ok_or_else(|| format!("`{part}` is not a table"))?;
    }
    current.insert(last.to_string(), value);
    Ok(())
}

impl Config {
    /// The configuration from three layers, each overriding the one before: the TOML file (if
    /// any), then every `AUTHMD_REF_<KEY>` environment variable, then `sets` (`key=value`, from
    /// `--set` and the shorthand flags). Any key of the file can be set in the other two layers:
    /// nested keys join with `__` in the environment (`AUTHMD_REF_TTL__OTP=60`) and with `.`
    /// in `sets` (`ttl.otp=60`). Values are TOML (`true`, `60`, `["a"]`, `[{issuer = "…"}]`);
    /// anything that does not parse as TOML is a string. The result is validated.
    pub fn layered(path: Option<&std::path::Path>, sets: &[String]) -> Result<Self, ConfigError> {
        Self::layered_with(path, std::env::vars(), sets)
    }

    /// [`Config::layered`] with the environment given (the process environment is global).
    pub fn layered_with(
        path: Option<&std::path::Path>,
        env: impl IntoIterator<Item = (String, String)>,
        sets: &[String],
    ) -> Result<Self, ConfigError> {
        let mut table = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
                text.parse::<toml::Table>().map_err(|e| ConfigError::Parse {
                    path: path.display().to_string(),
                    reason: describe(&text, e.span(), e.message()),
                })?
            }
            None => toml::Table::new(),
        };
        let mut env: Vec<(String, String)> = env.into_iter().filter(|(k, _)| k.starts_with(ENV_PREFIX)).collect();
        env.sort();
        for (name, value) in env {
            let key = name[ENV_PREFIX.len()..].to_ascii_lowercase().replace("__", ".");
            overlay(&mut table, &key, &value).map_err(|reason| ConfigError::Value { key: name.clone(), reason })?;
        }
        for set in sets {
            let (key, value) = set.split_once('=').ok_or_else(|| ConfigError::Value {
                key: set.clone(),
                reason: "expected key=value".into(),
            })?;
            overlay(&mut table, key.trim(), value).map_err(|reason| ConfigError::Value {
                key: key.trim().to_string(),
                reason,
            })?;
        }
        let origin = match path {
            Some(p) => format!("{} (with AUTHMD_REF_* and --set)", p.display()),
            None => "(from AUTHMD_REF_* and --set)".into(),
        };
        Self::from_table(&table, &origin)
    }

    /// The configuration a TOML table describes, validated; `origin` names where the table
    /// came from in an error.
    pub fn from_table(table: &toml::Table, origin: &str) -> Result<Self, ConfigError> {
        // Round-trip through text so that toml's error names the offending key and value.
        let text = toml::to_string(table).map_err(|e| ConfigError::Value {
            key: "configuration".into(),
            reason: e.to_string(),
        })?;
        let config: Self = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            reason: describe(&text, e.span(), e.message()),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, reason: &str| {
            Err(ConfigError::Value {
                key: key.into(),
                reason: reason.into(),
            })
        };
        if let Some(unknown) = self.follows.iter().find(|f| !FOLLOWABLE.contains(&f.as_str())) {
            return Err(ConfigError::Value {
                key: "follows".into(),
                reason: format!("`{unknown}` is not one of {}", FOLLOWABLE.join(", ")),
            });
        }
        if self.ttl.otp <= 0 || self.ttl.otp > 600 {
            return bad("ttl.otp", "must be between 1 and 600 seconds (CLAIM-15)");
        }
        for (key, v) in [
            ("ttl.registration", self.ttl.registration),
            ("ttl.claim_attempt", self.ttl.claim_attempt),
            ("ttl.access_token", self.ttl.access_token),
        ] {
            if v <= 0 {
                return bad(key, "must be positive");
            }
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return bad(
                if self.tls_cert.is_some() { "tls_key" } else { "tls_cert" },
                "tls_cert and tls_key go together",
            );
        }
        if self.scopes.is_empty() || !self.pre_claim_scopes.iter().all(|s| self.scopes.contains(s)) {
            return bad("pre_claim_scopes", "must be a subset of a non-empty `scopes`");
        }
        for t in &self.identity_credential_types {
            if t != "access_token" && t != "api_key" {
                return bad("identity_credential_types", "only `access_token` and `api_key` exist");
            }
        }
        if let Some(base) = &self.base_url
            && url::Url::parse(base).is_err()
        {
            return bad("base_url", "not an absolute URL");
        }
        for issuer in &self.trusted_issuers {
            if url::Url::parse(&issuer.issuer).is_err() {
                return bad("trusted_issuers.issuer", "not an absolute URL");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_override_in_order_and_errors_name_the_key() {
        let dir = std::env::temp_dir().join(format!("authmd-layers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("ref.toml");
        std::fs::write(&file, "anonymous = false\n[ttl]\notp = 300\nregistration = 100\n").expect("write");
        let env = || {
            [
                ("AUTHMD_REF_TTL__REGISTRATION".to_string(), "200".to_string()),
                ("HOME".into(), "/".into()),
            ]
        };
        let sets = [
            "ttl.otp=60".to_string(),
            "trusted_issuers=[{issuer = \"http://127.0.0.1:4000\"}]".to_string(),
        ];
        let config = Config::layered_with(Some(&file), env(), &sets).expect("valid layers");
        assert!(!config.anonymous, "the file's value stays when nothing overrides it");
        assert_eq!(config.ttl.registration, 200, "the environment overrides the file");
        assert_eq!(config.ttl.otp, 60, "--set overrides the file");
        assert_eq!(config.trusted_issuers[0].issuer, "http://127.0.0.1:4000");

        let bad = Config::layered_with(Some(&file), env(), &["rate.window=soon".to_string()]).expect_err("a string for a number");
        assert!(bad.to_string().contains("`rate.window`: invalid type"), "{bad}");
        let unknown = Config::layered_with(None, env(), &["ttl.forever=1".to_string()]).expect_err("an unknown key");
        assert!(unknown.to_string().contains("`ttl.forever`: unknown field"), "{unknown}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
