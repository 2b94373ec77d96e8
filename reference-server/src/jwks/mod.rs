//! The issuers' key sets: fetched from each trusted issuer's JWKS URL, cached by the
//! provider's `Cache-Control` within a floor and a ceiling, refetched once on an unknown `kid`
//! (with a cool-down), and the client metadata documents of URL-form `client_id`s.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::Jwk;
use serde_json::Value;

use crate::config::TrustedIssuer;
use crate::defect::Defect;
use crate::error::ApiError;
use crate::state::AppState;

pub(crate) mod cache;

use cache::CacheEntry;
pub use cache::JwksCache;

impl JwksCache {
    /// The key to verify with: by `kid` from the cached JWKS, refetching once on a miss
    /// (rate-limited per issuer); without a `kid`, the only key of the right algorithm.
    pub(crate) async fn key_for(
        &self,
        state: &AppState,
        issuer: &TrustedIssuer,
        kid: Option<&str>,
        alg: Algorithm,
        now: i64,
    ) -> Result<Jwk, ApiError> {
        let cooldown = Duration::from_secs(state.config.ttl.jwks_refetch_cooldown);
        let mut entries = self.entries.lock().await;
        let fresh = entries
            .get(&issuer.issuer)
            .is_some_and(|e| now >= e.fetched_at && now - e.fetched_at < e.ttl.as_secs() as i64)
            && !state.defects.contains(Defect::NoJwksCache);
        if !fresh {
            let entry = fetch(state, issuer, now).await?;
            entries.insert(issuer.issuer.clone(), entry);
        }
        let pick = |keys: &[Jwk]| -> Option<Jwk> {
            match kid {
                Some(kid) => keys.iter().find(|k| k.common.key_id.as_deref() == Some(kid)).cloned(),
                // IDJAG-10: no kid is acceptable when exactly one key fits.
                None => {
                    let fitting: Vec<&Jwk> = keys
                        .iter()
                        .filter(|k| k.common.key_algorithm.is_none_or(|a| a.to_string() == format!("{alg:?}")))
                        .collect();
                    (fitting.len() == 1).then(|| fitting[0].clone())
                }
            }
        };
        if let Some(key) = entries.get(&issuer.issuer).and_then(|e| pick(&e.keys)) {
            return Ok(key);
        }
        // IDJAG-05, IDJAG-06: on a kid miss, refetch once before rejecting, unless the cache
        // was filled within the cool-down (so a stream of junk kids cannot hammer the IdP).
        let recently = entries.get(&issuer.issuer).is_some_and(|e| e.fetched.elapsed() < cooldown);
        if kid.is_some() && !recently && !state.defects.contains(Defect::SkipKidRefetch) {
            let entry = fetch(state, issuer, now).await?;
            let found = pick(&entry.keys);
            entries.insert(issuer.issuer.clone(), entry);
            if let Some(key) = found {
                return Ok(key);
            }
        }
        if state.defects.contains(Defect::KidLookupAcrossIssuers)
            && let Some(key) = entries.values().find_map(|e| pick(&e.keys))
        {
            return Ok(key);
        }
        if state.defects.contains(Defect::AcceptUnknownKid)
            && let Some(key) = entries.get(&issuer.issuer).and_then(|e| e.keys.first().cloned())
        {
            return Ok(key);
        }
        Err(ApiError::InvalidSignature("no key in the issuer's JWKS matches the token".into()))
    }

    /// IDJAG-37: fetches (or recalls) the client metadata document at `client_id` and checks
    /// that it names `client_id` and the issuer's JWKS. Any failure is `invalid_client_id`.
    /// Like the JWKS cache, it ages by the request's clock, so a test clock can outlive it.
    pub(crate) async fn check_cimd(&self, state: &AppState, issuer: &TrustedIssuer, client_id: &str, now: i64) -> Result<(), ApiError> {
        let forever = state.defects.contains(Defect::CacheClientMetadataForever);
        let cached = self.clients.lock().ok().and_then(|m| {
            m.get(client_id)
                .filter(|(at, ttl, _)| forever || (now >= *at && now - *at < ttl.as_secs() as i64))
                .map(|(_, _, jwks_uri)| jwks_uri.clone())
        });
        let jwks_uri = match cached {
            Some(uri) => uri,
            None => {
                let response = get(state, client_id).await.map_err(|_| ApiError::InvalidClientId)?;
                if !response.status().is_success() {
                    return Err(ApiError::InvalidClientId);
                }
                let ttl = cache_ttl(state, response.headers());
                let document: Value = response.json().await.map_err(|_| ApiError::InvalidClientId)?;
                // The CIMD draft: the document's client_id is the URL it was fetched from.
                if document.get("client_id").and_then(Value::as_str) != Some(client_id) {
                    return Err(ApiError::InvalidClientId);
                }
                let uri = document.get("jwks_uri").and_then(Value::as_str).unwrap_or_default().to_string();
                if let Ok(mut m) = self.clients.lock() {
                    m.insert(client_id.to_string(), (now, ttl, uri.clone()));
                }
                uri
            }
        };
        if jwks_uri == issuer.jwks_uri() {
            Ok(())
        } else {
            Err(ApiError::InvalidClientId)
        }
    }
}

/// A GET to a provider (JWKS, client metadata) that gives up after five seconds, so a slow
/// provider costs the client an error, never a hung request.
async fn get(state: &AppState, url: &str) -> Result<reqwest::Response, reqwest::Error> {
    state.http.get(url).timeout(Duration::from_secs(5)).send().await
}

/// The `follow-jku` defect: the key from whatever key set the token points at.
pub(crate) async fn key_at(state: &AppState, jku: &str, kid: Option<&str>) -> Result<Jwk, ApiError> {
    let unusable = |_| ApiError::InvalidSignature("the jku key set is unusable".into());
    let body = get(state, jku).await.map_err(unusable)?.text().await.map_err(unusable)?;
    let set: jsonwebtoken::jwk::JwkSet =
        serde_json::from_str(&body).map_err(|_| ApiError::InvalidSignature("the jku key set is not JSON".into()))?;
    set.keys
        .into_iter()
        .find(|k| kid.is_none() || k.common.key_id.as_deref() == kid)
        .ok_or_else(|| ApiError::InvalidSignature("no key in the jku key set".into()))
}

/// The `accept-hs256-public-key` defect: an EC P-256 key in the SPKI PEM form an attacker would
/// use as the HMAC secret (what `openssl ec -pubout` and most libraries print).
pub(crate) fn spki_pem(jwk: &Jwk) -> Option<String> {
    use base64::engine::general_purpose::STANDARD;
    let jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(ec) = &jwk.algorithm else {
        return None;
    };
    let (x, y) = (URL_SAFE_NO_PAD.decode(&ec.x).ok()?, URL_SAFE_NO_PAD.decode(&ec.y).ok()?);
    const P256_SPKI_PREFIX: &[u8] = &[
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01,
        0x07, 0x03, 0x42, 0x00, 0x04,
    ];
    let der = [P256_SPKI_PREFIX, &x, &y].concat();
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body.as_bytes().chunks(64).filter_map(|c| std::str::from_utf8(c).ok()).collect();
    Some(format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    ))
}

/// IDJAG-44: how long a provider document (JWKS, client metadata) is kept: its
/// `Cache-Control` max-age within the configured floor and ceiling, else the floor.
fn cache_ttl(state: &AppState, headers: &reqwest::header::HeaderMap) -> Duration {
    let (floor, ceiling) = (state.config.ttl.jwks_cache_floor, state.config.ttl.jwks_cache_ceiling);
    if state.defects.contains(Defect::IgnoreJwksCacheControl) {
        return Duration::from_secs(floor);
    }
    let max_age = headers
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .find_map(|d| d.trim().strip_prefix("max-age=").and_then(|n| n.parse::<u64>().ok()))
        });
    Duration::from_secs(max_age.unwrap_or(floor).clamp(floor, ceiling))
}

async fn fetch(state: &AppState, issuer: &TrustedIssuer, now: i64) -> Result<CacheEntry, ApiError> {
    let uri = issuer.jwks_uri();
    // IDJAG-42: an unavailable JWKS is a signature failure for the client, never a 5xx.
    let unavailable = |why: String| {
        if state.defects.contains(Defect::MapJwksFailureTo5xx) {
            ApiError::BadGateway
        } else {
            ApiError::InvalidSignature(format!("the issuer's JWKS could not be fetched: {why}"))
        }
    };
    let response = get(state, &uri).await.map_err(|e| unavailable(e.to_string()))?;
    if !response.status().is_success() {
        return Err(unavailable(format!("status {}", response.status().as_u16())));
    }
    let ttl = cache_ttl(state, response.headers());
    let body = response.text().await.map_err(|e| unavailable(e.to_string()))?;
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&body).map_err(|_| unavailable("the JWKS is not valid JSON".into()))?;
    if state.defects.contains(Defect::ReplayCacheClearedOnRefetch) {
        let iss = issuer.issuer.clone();
        let _ = state.db.call(move |conn| crate::store::replay::forget_issuer(conn, &iss)).await;
    }
    Ok(CacheEntry {
        keys: set.keys,
        fetched: Instant::now(),
        fetched_at: now,
        ttl,
    })
}
