//! AID for the service (issue #16): the `_agent.<domain>` TXT record it publishes (aid2, its
//! protected resource as the endpoint, an Ed25519 PKA key) and the PKA endpoint proof: any
//! response to a request that asks with `Accept-Signature: aid-pka=…` is signed per RFC 9421
//! (`@method`, `@target-uri`, `@authority`, `@status`; `created`, `expires`, the client's `nonce`,
//! `keyid` the RFC 7638 thumbprint, `tag="aid-pka-v2"`) and marked `no-store`.

use aws_lc_rs::signature::Ed25519KeyPair;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use crate::config::AidMode;
use crate::defect::Defect;
use crate::keys::AidKey;
use crate::state::AppState;

/// One DNS record the service asks its zone to carry.
#[derive(Clone, Debug, PartialEq)]
pub struct Published {
    /// Owner name, without the trailing dot.
    pub owner: String,
    /// Seconds.
    pub ttl: u32,
    /// The TXT data.
    pub txt: String,
}

/// The host the service is reached by (its DNS name).
fn host(state: &AppState) -> String {
    url::Url::parse(&state.base_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default()
}

/// The record as key=value pairs, short keys as AID recommends.
fn pairs(state: &AppState) -> Vec<(&'static str, String)> {
    let scheme_swapped = state.base_url.replacen("https://", "http://", 1);
    let base = if state.defects.contains(Defect::AidHttpEndpoint) {
        scheme_swapped.as_str()
    } else {
        state.base_url.as_str()
    };
    // The endpoint an agent starts auth.md discovery at: the protected resource, whose 401
    // names the PRM.
    let path = if state.defects.contains(Defect::AidEndpointNoChallenge) {
        "/healthz"
    } else {
        "/api/resource"
    };
    let version = match state.config.aid {
        AidMode::Aid1 => "aid1",
        _ => "aid2",
    };
    let mut out = vec![
        ("v", version.to_string()),
        ("p", "openapi".to_string()),
        ("u", format!("{base}{path}")),
        ("a", "oauth2_code".to_string()),
    ];
    if let Some(key) = &state.aid_key {
        let k = if state.defects.contains(Defect::AidKeyNotEd25519) {
            // A 33-byte compressed P-256 point: a key of the wrong type.
            let mut point = vec![2u8];
            point.extend(URL_SAFE_NO_PAD.decode(key.x()).unwrap_or_default());
            URL_SAFE_NO_PAD.encode(point)
        } else {
            key.x()
        };
        out.push(("k", k));
    }
    out.push(("s", "authmd reference service".to_string()));
    out
}

/// The DNS records the service publishes for AID: one record at `_agent.<host>`.
pub fn records(state: &AppState) -> Vec<Published> {
    if state.config.aid == AidMode::Off {
        return Vec::new();
    }
    let host = host(state);
    let owner = if state.defects.contains(Defect::AidParentOnly) {
        // At the parent only: a client that honours exact-host lookup finds nothing.
        format!("_agent.{}", host.split_once('.').map(|(_, parent)| parent).unwrap_or(&host))
    } else {
        format!("_agent.{host}")
    };
    let ttl = if state.defects.contains(Defect::AidShortTtl) { 5 } else { 300 };
    let txt = pairs(state).iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(";");
    let mut out = vec![Published {
        owner: owner.clone(),
        ttl,
        txt,
    }];
    if state.defects.contains(Defect::AidTwoRecords) {
        out.push(Published {
            owner,
            ttl,
            txt: format!("v=aid2;p=mcp;u={}/mcp", state.base_url),
        });
    }
    out
}

/// `GET /.well-known/agent`: the record as JSON, for clients whose DNS lookup found nothing.
pub async fn well_known(State(state): State<AppState>) -> Response {
    if state.config.aid == AidMode::Off {
        return (axum::http::StatusCode::NOT_FOUND, "not found").into_response();
    }
    let mut doc = serde_json::Map::new();
    for (k, v) in pairs(&state) {
        doc.insert(k.to_string(), serde_json::Value::String(v));
    }
    if state.defects.contains(Defect::AidWellKnownMismatch) {
        doc.insert("u".into(), format!("{}/api/elsewhere", state.base_url).into());
    }
    axum::Json(serde_json::Value::Object(doc)).into_response()
}

/// The `nonce` a client asked the proof to carry.
fn requested_nonce(accept: &str) -> Option<String> {
    let at = accept.find("nonce=\"")? + "nonce=\"".len();
    let rest = &accept[at..];
    Some(rest[..rest.find('"')?].to_string())
}

/// Signs the response when the request asks for the AID proof.
pub async fn sign(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let asked = request
        .headers()
        .get("accept-signature")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.contains("aid-pka="))
        .and_then(requested_nonce);
    let method = request.method().to_string();
    let path_query = request.uri().path_and_query().map(|p| p.to_string()).unwrap_or_else(|| "/".into());
    let mut response = next.run(request).await;
    let (Some(nonce), Some(key)) = (asked, &state.aid_key) else {
        return response;
    };
    if state.defects.contains(Defect::PkaUnsigned) {
        return response;
    }
    let (input, signature) = match key.replayed(&state.defects) {
        Some(first) => first,
        None => {
            let made = proof(&state, key, &method, &path_query, response.status().as_u16(), nonce);
            key.remember(&state.defects, &made);
            made
        }
    };
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&input) {
        headers.insert("signature-input", v);
    }
    if let Ok(v) = HeaderValue::from_str(&signature) {
        headers.insert("signature", v);
    }
    // The 401 of the resource may already say no-store; the defect makes the proof cacheable.
    let cache = if state.defects.contains(Defect::PkaCacheable) {
        "public, max-age=300"
    } else {
        "no-store"
    };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

/// The `Signature-Input` and `Signature` values of one proof (RFC 9421 §2.5 signature base).
fn proof(state: &AppState, key: &AidKey, method: &str, path_query: &str, status: u16, nonce: String) -> (String, String) {
    // The externally visible request context: the public base URL, not the socket's.
    let target_uri = format!("{}{path_query}", state.base_url);
    let authority = url::Url::parse(&state.base_url)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_string(),
            })
        })
        .unwrap_or_default();
    let now = crate::secrets::unix_now();
    let created = if state.defects.contains(Defect::PkaStale) {
        now - 3600
    } else {
        now
    };
    let nonce = if state.defects.contains(Defect::PkaIgnoresNonce) {
        "a-nonce-of-its-own".to_string()
    } else {
        nonce
    };
    let keyid = if state.defects.contains(Defect::PkaKeyidNotThumbprint) {
        "aid-key-1".to_string()
    } else {
        key.keyid()
    };
    let fewer = state.defects.contains(Defect::PkaFewerComponents);
    let covered = if fewer {
        r#"("@method";req "@target-uri";req)"#
    } else {
        r#"("@method";req "@target-uri";req "@authority";req "@status")"#
    };
    let params = format!(
        r#"{covered};created={created};expires={};keyid="{keyid}";alg="ed25519";nonce="{nonce}";tag="aid-pka-v2""#,
        created + 60
    );
    let mut base = format!("\"@method\";req: {method}\n\"@target-uri\";req: {target_uri}\n");
    if !fewer {
        base += &format!("\"@authority\";req: {authority}\n\"@status\": {status}\n");
    }
    base += &format!("\"@signature-params\": {params}");
    let signature = if state.defects.contains(Defect::PkaWrongKey) {
        let mut seed = [7u8; 32];
        seed[0] = 1;
        match Ed25519KeyPair::from_seed_unchecked(&seed) {
            Ok(other) => other.sign(base.as_bytes()),
            Err(_) => key.pair.sign(base.as_bytes()),
        }
    } else {
        key.pair.sign(base.as_bytes())
    };
    (
        format!("aid-pka={params}"),
        format!("aid-pka=:{}:", STANDARD.encode(signature.as_ref())),
    )
}
