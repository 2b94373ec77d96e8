//! What the JWKS cache holds; filling it is the parent module's job, so the shared state can
//! own a cache without depending on how it is filled.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::Jwk;
use tokio::sync::Mutex;

/// The JWKS cache: per issuer, the keys, when they were fetched, and for how long they hold;
/// and, per URL-form `client_id`, the `jwks_uri` of its client metadata document.
#[derive(Default)]
pub struct JwksCache {
    pub(crate) entries: Mutex<HashMap<String, CacheEntry>>,
    pub(crate) clients: std::sync::Mutex<HashMap<String, (i64, Duration, String)>>,
}

pub(crate) struct CacheEntry {
    pub(crate) keys: Vec<Jwk>,
    /// Wall time of the fetch: the refetch cool-down protects the IdP in real time.
    pub(crate) fetched: Instant,
    /// The request's "now" at the fetch (test clock aware): the cache's age, so a conformance
    /// run can observe the `Cache-Control` lifetime (IDJAG-44) without waiting ten minutes.
    pub(crate) fetched_at: i64,
    pub(crate) ttl: Duration,
}
