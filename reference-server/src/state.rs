//! Shared state and small helpers: clock, secrets, hashing, time formatting.

use std::sync::{Arc, Mutex};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::config::{AudienceReading, Config};
use crate::defect::Defects;
use crate::jwks::cache::JwksCache;
use crate::mail::Mailer;
use crate::secrets::{secret, unix_now};
use crate::store::Db;

/// The request header that shifts "now" for one request when `test_clock` is on.
pub const CLOCK_OFFSET_HEADER: &str = "authmd-test-clock-offset";

/// Everything a handler needs. Cloned per request (cheap: one `Arc`).
#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The state behind [`AppState`].
pub struct Inner {
    /// Configuration, validated.
    pub config: Config,
    /// Which replica of the service this process is (its bound address): several instances
    /// may serve one base URL over one database.
    pub instance: String,
    /// Defects switched on.
    pub defects: Defects,
    /// Storage.
    pub db: Db,
    /// JWKS cache.
    pub jwks: JwksCache,
    /// The v0.6 profile's assertion-signing key (none under v0.1).
    pub service_key: Option<crate::keys::ServiceKey>,
    /// The AID PKA key, when the service publishes AID.
    pub aid_key: Option<crate::keys::AidKey>,
    /// Outbound HTTP (JWKS only; never to an address not on the trust list).
    pub http: reqwest::Client,
    /// Claim mail.
    pub mailer: Mailer,
    /// Public base URL without a trailing slash.
    pub base_url: String,
    /// Fixed-window rate counters that forget idle keys.
    pub rate: Mutex<crate::rate::RateCounters>,
    /// Credentials accepted lately, by hash (only under the credential-cache-per-instance
    /// defect; bounded).
    pub(crate) accepted: Mutex<std::collections::HashMap<String, (i64, crate::api::Caller)>>,
    /// Wrong OTPs per claim attempt, counted by this instance alone (only under the
    /// attempt-counter-per-instance defect; bounded).
    pub(crate) local_failures: Mutex<std::collections::HashMap<String, u32>>,
}

impl Inner {
    /// The wrong OTPs this instance has counted for `attempt`, one more first if `add`.
    pub(crate) fn local_failures(&self, attempt: &str, add: bool) -> u32 {
        let Ok(mut counts) = self.local_failures.lock() else { return 0 };
        if add && counts.len() >= 10_000 && !counts.contains_key(attempt) {
            counts.clear();
        }
        match add {
            true => {
                let n = counts.entry(attempt.to_string()).or_insert(0);
                *n += 1;
                *n
            }
            false => counts.get(attempt).copied().unwrap_or(0),
        }
    }

    /// Does the deployment follow this reading of a catalogue §C ambiguity (`follows`)?
    pub fn follows(&self, reading: &str) -> bool {
        self.config.follows.iter().any(|f| f == reading)
    }

    /// The PRM `resource` (RFC 9728): the API's base.
    pub fn resource(&self) -> String {
        format!("{}/api", self.base_url)
    }

    /// The PRM URL derived from `resource` by RFC 9728 §3.1 insertion.
    pub fn resource_metadata_url(&self) -> String {
        format!("{}/.well-known/oauth-protected-resource/api", self.base_url)
    }

    /// The audiences an ID-JAG or logout token may carry (C-01 reading).
    pub fn expected_audiences(&self) -> Vec<String> {
        if self.defects.contains(crate::defect::Defect::AudienceResourceOnly) {
            return vec![self.resource()];
        }
        if self.defects.contains(crate::defect::Defect::AudienceAsIssuerOnly) {
            return vec![self.base_url.clone()];
        }
        match self.config.audience {
            AudienceReading::AsIssuer => vec![self.base_url.clone()],
            AudienceReading::Resource => vec![self.resource()],
            AudienceReading::Both => vec![self.base_url.clone(), self.resource()],
        }
    }
}

/// "Now" in unix seconds for this request: wall-clock time plus the test offset, if allowed.
#[derive(Clone, Copy, Debug)]
pub struct Now(pub i64);

impl FromRequestParts<AppState> for Now {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let offset = if state.config.test_clock {
            parts
                .headers
                .get(CLOCK_OFFSET_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<i64>().ok())
                .unwrap_or(0)
        } else {
            0
        };
        Ok(Now(unix_now() + offset))
    }
}

/// Random bytes of every secret the server mints: 192 bits.
const SECRET_BYTES: usize = 24;
/// Random bytes of one minted under a weak-secret defect: 48 bits, below every entropy bar.
const WEAK_SECRET_BYTES: usize = 6;

impl AppState {
    /// How many random bytes a secret gets: [`SECRET_BYTES`], or [`WEAK_SECRET_BYTES`] while
    /// the defect `weak` is on (SEC-02, CRED-06, V6-REG-07, V6-CLAIM-09).
    pub fn secret_bytes(&self, weak: crate::defect::Defect) -> usize {
        if self.defects.contains(weak) {
            WEAK_SECRET_BYTES
        } else {
            SECRET_BYTES
        }
    }

    /// A fresh secret: `prefix` and [`Self::secret_bytes`] random bytes.
    pub fn mint_secret(&self, prefix: &str, weak: crate::defect::Defect) -> String {
        secret(prefix, self.secret_bytes(weak))
    }
}
