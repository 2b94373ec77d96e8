//! Configuration: a TOML file, then `AUTHMD_REF_*` environment variables, then flags.

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
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            window: 3_600,
            anonymous_per_ip: 5,
            identity_per_ip: 60,
            per_issuer: 10_000,
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
    /// Wrong OTPs allowed per attempt before the OTP is burned (CLAIM-25). Defaults to 5.
    pub max_otp_failures: u32,
    /// C-01 reading for `aud`.
    pub audience: AudienceReading,
    /// Require `exp` in logout tokens (BCL 1.0) rather than follow the auth.md examples
    /// that omit it (C-20). Defaults to false.
    pub logout_requires_exp: bool,
    /// Honour the `Authmd-Test-Clock-Offset` request header (seconds added to "now" for that
    /// request only). For conformance runs; never in production. Defaults to false.
    pub test_clock: bool,
    /// Serve `GET /_admin/audit` (loopback peers only). Defaults to true.
    pub admin_api: bool,
    /// Serve https with an rcgen certificate (`tls_ca_out` receives the CA). Defaults to false.
    pub https: bool,
    /// Where to write the CA when `https` is on.
    pub tls_ca_out: Option<PathBuf>,
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
            max_otp_failures: 5,
            audience: AudienceReading::AsIssuer,
            logout_requires_exp: false,
            test_clock: false,
            admin_api: true,
            https: false,
            tls_ca_out: None,
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
    #[error("invalid config file {path}: {reason}")]
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

impl Config {
    /// Reads a TOML file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            reason: e.to_string().replace('\n', " "),
        })
    }

    /// Applies `AUTHMD_REF_LISTEN`, `AUTHMD_REF_BASE_URL`, `AUTHMD_REF_DATABASE`, `AUTHMD_REF_SMTP`.
    pub fn apply_env(&mut self) -> Result<(), ConfigError> {
        if let Ok(v) = std::env::var("AUTHMD_REF_LISTEN") {
            self.listen = v.parse().map_err(|e: std::net::AddrParseError| ConfigError::Value {
                key: "AUTHMD_REF_LISTEN".into(),
                reason: e.to_string(),
            })?;
        }
        if let Ok(v) = std::env::var("AUTHMD_REF_BASE_URL") {
            self.base_url = Some(v);
        }
        if let Ok(v) = std::env::var("AUTHMD_REF_DATABASE") {
            self.database = v.into();
        }
        if let Ok(v) = std::env::var("AUTHMD_REF_SMTP") {
            self.smtp = Some(v);
        }
        Ok(())
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, reason: &str| {
            Err(ConfigError::Value {
                key: key.into(),
                reason: reason.into(),
            })
        };
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
