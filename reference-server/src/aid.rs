//! AID for the service (issues #16, #23): the `_agent.<domain>` TXT records it publishes (its
//! protected resource as the endpoint, an Ed25519 PKA key) and the endpoint proofs.
//! - aid2 (AID v2.0 Appendix B): a response to a request that asks with `Accept-Signature:
//!   aid-pka=…` is signed per RFC 9421 (`@method`, `@target-uri`, `@authority`, `@status`;
//!   `created`, `expires`, the client's `nonce`, `keyid` the RFC 7638 thumbprint,
//!   `tag="aid-pka-v2"`) and marked `no-store`. Asked to bind (`AID-Domain`, v2.1 Appendix
//!   B.7), it covers `aid-domain` for the domain it serves and refuses any other with a 403.
//! - aid1 (AID v1.2 Appendix D): a request carrying `AID-Challenge` is answered 200, signed over
//!   `AID-Challenge`, `@method`, `@target-uri`, `host` and `date`, `keyid` the record's `i`.

use aws_lc_rs::signature::Ed25519KeyPair;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
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

/// The aid1 record's key id.
const KID: &str = "g1";

/// The host the service is reached by (its DNS name).
fn host(state: &AppState) -> String {
    url::Url::parse(&state.base_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default()
}

/// The record of `version` as key=value pairs, short keys as AID recommends.
fn pairs(state: &AppState, version: &str) -> Vec<(&'static str, String)> {
    let d = &state.defects;
    let scheme_swapped = state.base_url.replacen("https://", "http://", 1);
    let base = if d.contains(Defect::AidHttpEndpoint) {
        scheme_swapped.as_str()
    } else {
        state.base_url.as_str()
    };
    // The endpoint an agent starts auth.md discovery at: the protected resource, whose 401
    // names the PRM.
    let path = if d.contains(Defect::AidEndpointNoChallenge) {
        "/healthz"
    } else {
        "/api/resource"
    };
    let proto = if d.contains(Defect::AidProtoUppercase) {
        "OPENAPI"
    } else {
        "openapi"
    };
    let mut out = vec![
        ("v", version.to_string()),
        ("p", proto.to_string()),
        ("u", format!("{base}{path}")),
        ("a", "oauth2_code".to_string()),
    ];
    if let Some(key) = &state.aid_key {
        if version == "aid1" {
            out.push(("k", format!("z{}", base58btc(&key.public()))));
            out.push(("i", KID.to_string()));
        } else {
            let k = if d.contains(Defect::AidKeyNotEd25519) {
                // A 33-byte compressed P-256 point: a key of the wrong type.
                let mut point = vec![2u8];
                point.extend(key.public());
                URL_SAFE_NO_PAD.encode(point)
            } else {
                key.x()
            };
            out.push(("k", k));
            if d.contains(Defect::Aid2WithKid) {
                out.push(("i", KID.to_string()));
            }
        }
    }
    if d.contains(Defect::AidDepNotTimestamp) {
        out.push(("e", "2099-01-01".to_string()));
    }
    out.push(("s", "authmd reference service".to_string()));
    if d.contains(Defect::AidKeyAndAlias) {
        out.push(("desc", "authmd reference service".to_string()));
    }
    out
}

/// The record versions published at the name.
fn versions(mode: AidMode) -> &'static [&'static str] {
    match mode {
        AidMode::Off => &[],
        AidMode::Aid1 | AidMode::Aid1Key => &["aid1"],
        AidMode::Aid2 | AidMode::Aid20 => &["aid2"],
        AidMode::Migration => &["aid1", "aid2"],
    }
}

/// The DNS records the service publishes for AID at `_agent.<host>`.
pub fn records(state: &AppState) -> Vec<Published> {
    let host = host(state);
    let owner = if state.defects.contains(Defect::AidParentOnly) {
        // At the parent only: a client that honours exact-host lookup finds nothing.
        format!("_agent.{}", host.split_once('.').map(|(_, parent)| parent).unwrap_or(&host))
    } else {
        format!("_agent.{host}")
    };
    let ttl = if state.defects.contains(Defect::AidShortTtl) { 5 } else { 300 };
    let mut out: Vec<Published> = versions(state.config.aid)
        .iter()
        .map(|v| Published {
            owner: owner.clone(),
            ttl,
            txt: pairs(state, v)
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(";"),
        })
        .collect();
    if state.defects.contains(Defect::AidTwoRecords)
        && let Some(last) = versions(state.config.aid).last()
    {
        out.push(Published {
            owner,
            ttl,
            txt: format!("v={last};p=mcp;u={}/mcp", state.base_url),
        });
    }
    out
}

/// `GET /.well-known/agent`: the record as JSON, for clients whose DNS lookup found nothing.
pub async fn well_known(State(state): State<AppState>) -> Response {
    let Some(version) = versions(state.config.aid).last() else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let mut doc = serde_json::Map::new();
    for (k, v) in pairs(&state, version) {
        doc.insert(k.to_string(), serde_json::Value::String(v));
    }
    if state.defects.contains(Defect::AidWellKnownMismatch) {
        doc.insert("u".into(), format!("{}/api/elsewhere", state.base_url).into());
    }
    axum::Json(serde_json::Value::Object(doc)).into_response()
}

/// What an aid2 proof request asks for: the nonce, and whether the covered set names
/// `aid-domain`.
fn asked_v2(headers: &HeaderMap) -> Option<(String, bool)> {
    let accept = headers.get("accept-signature")?.to_str().ok()?;
    if !accept.contains("aid-pka=") {
        return None;
    }
    let at = accept.find("nonce=\"")? + "nonce=\"".len();
    let rest = &accept[at..];
    let nonce = rest[..rest.find('"')?].to_string();
    Some((nonce, accept.contains("\"aid-domain\";req")))
}

/// The request context both proofs sign.
struct Context {
    method: String,
    path_query: String,
}

/// Signs the response when the request asks for an AID proof.
pub async fn sign(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(key) = state.aid_key.as_ref() else {
        return next.run(request).await;
    };
    let context = Context {
        method: request.method().to_string(),
        path_query: request.uri().path_and_query().map(|p| p.to_string()).unwrap_or_else(|| "/".into()),
    };
    let headers = request.headers();
    let challenge = headers.get("aid-challenge").and_then(|v| v.to_str().ok()).map(str::to_string);
    let speaks_v1 = matches!(state.config.aid, AidMode::Aid1Key | AidMode::Migration);
    if let (Some(challenge), true) = (challenge, speaks_v1) {
        return handshake_v1(&state, key, &context, request, next, challenge).await;
    }
    let asked = asked_v2(headers);
    let domain = headers.get("aid-domain").and_then(|v| v.to_str().ok()).map(str::to_string);
    let speaks_v2 = !matches!(state.config.aid, AidMode::Aid1 | AidMode::Aid1Key);
    let Some((nonce, wants_binding)) = asked.filter(|_| speaks_v2) else {
        return next.run(request).await;
    };
    // v2.0 endpoints know nothing of binding; v2.1 ones bind only the domain they serve.
    let bind = match (state.config.aid, domain) {
        (AidMode::Aid20, _) | (_, None) => None,
        (_, Some(_)) if !wants_binding => None,
        (_, Some(d)) => {
            let served = d.trim_end_matches('.').eq_ignore_ascii_case(&host(&state));
            if !served && !state.defects.contains(Defect::PkaBindsAnyDomain) {
                // B.7: no signature covering a domain it does not serve; 403, no Signature-Input.
                let mut refused = (StatusCode::FORBIDDEN, "this endpoint does not serve that domain").into_response();
                refused
                    .headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                return refused;
            }
            Some(d)
        }
    };
    let mut response = next.run(request).await;
    if state.defects.contains(Defect::PkaUnsigned) {
        return response;
    }
    let status = response.status().as_u16();
    let (input, signature) = key.proof_or_replay(&state.defects, || proof(&state, key, &context, status, nonce, bind));
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

/// The externally visible request context: the public base URL, not the socket's.
fn target(state: &AppState, context: &Context) -> (String, String) {
    let target_uri = format!("{}{}", state.base_url, context.path_query);
    let authority = url::Url::parse(&state.base_url)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_string(),
            })
        })
        .unwrap_or_default();
    (target_uri, authority)
}

/// A proof's `created`: now, or under `pka-stale` an hour ago.
fn signed_at(state: &AppState) -> i64 {
    let now = crate::secrets::unix_now();
    if state.defects.contains(Defect::PkaStale) {
        now - 3600
    } else {
        now
    }
}

/// The signing key, or under `pka-wrong-key` one the record does not publish.
fn signed(state: &AppState, key: &AidKey, base: &str) -> Vec<u8> {
    if state.defects.contains(Defect::PkaWrongKey) {
        let mut seed = [7u8; 32];
        seed[0] = 1;
        if let Ok(other) = Ed25519KeyPair::from_seed_unchecked(&seed) {
            return other.sign(base.as_bytes()).as_ref().to_vec();
        }
    }
    key.pair.sign(base.as_bytes()).as_ref().to_vec()
}

/// The `Signature-Input` and `Signature` values of one aid2 proof (RFC 9421 §2.5 signature base).
fn proof(state: &AppState, key: &AidKey, context: &Context, status: u16, nonce: String, bind: Option<String>) -> (String, String) {
    let (target_uri, authority) = target(state, context);
    let created = signed_at(state);
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
    let covered = match (fewer, &bind) {
        (true, _) => r#"("@method";req "@target-uri";req)"#,
        (false, Some(_)) => r#"("@method";req "@target-uri";req "@authority";req "aid-domain";req "@status")"#,
        (false, None) => r#"("@method";req "@target-uri";req "@authority";req "@status")"#,
    };
    let params = format!(
        r#"{covered};created={created};expires={};keyid="{keyid}";alg="ed25519";nonce="{nonce}";tag="aid-pka-v2""#,
        created + 60
    );
    let mut base = format!("\"@method\";req: {}\n\"@target-uri\";req: {target_uri}\n", context.method);
    if !fewer {
        base += &format!("\"@authority\";req: {authority}\n");
        if let Some(d) = &bind {
            base += &format!("\"aid-domain\";req: {d}\n");
        }
        base += &format!("\"@status\": {status}\n");
    }
    base += &format!("\"@signature-params\": {params}");
    let signature = signed(state, key, &base);
    (format!("aid-pka={params}"), format!("aid-pka=:{}:", STANDARD.encode(signature)))
}

/// The aid1 handshake: 200 (the resource's own answer under `aid1-handshake-401`), dated now
/// and signed over the challenge and the request context.
async fn handshake_v1(state: &AppState, key: &AidKey, context: &Context, request: Request, next: Next, challenge: String) -> Response {
    let mut response = if state.defects.contains(Defect::Aid1Handshake401) {
        next.run(request).await
    } else {
        (StatusCode::OK, "AID handshake").into_response()
    };
    if state.defects.contains(Defect::PkaUnsigned) {
        return response;
    }
    let (input, signature) = key.proof_or_replay(&state.defects, || proof_v1(state, key, context, &challenge));
    // The signed `date` is the instant of `created`, so a replayed answer replays its date.
    let created = input
        .split(";created=")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .and_then(|c| c.parse().ok())
        .unwrap_or_default();
    let headers = response.headers_mut();
    for (name, value) in [("signature-input", input), ("signature", signature), ("date", http_date(created))] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
    response
}

/// `Signature-Input` and `Signature` of one aid1 handshake answer.
fn proof_v1(state: &AppState, key: &AidKey, context: &Context, challenge: &str) -> (String, String) {
    let (target_uri, authority) = target(state, context);
    let created = signed_at(state);
    let date = http_date(created);
    let keyid = if state.defects.contains(Defect::PkaKeyidNotThumbprint) {
        "other"
    } else {
        KID
    };
    let covered: &[&str] = if state.defects.contains(Defect::PkaFewerComponents) {
        &["AID-Challenge", "@method"]
    } else {
        &["AID-Challenge", "@method", "@target-uri", "host", "date"]
    };
    let challenge = if state.defects.contains(Defect::PkaIgnoresNonce) {
        "a-challenge-of-its-own"
    } else {
        challenge
    };
    let quoted: Vec<String> = covered.iter().map(|c| format!("\"{c}\"")).collect();
    let params = format!("({});created={created};keyid={keyid};alg=\"ed25519\"", quoted.join(" "));
    let mut base = String::new();
    for c in covered {
        let value = match *c {
            "AID-Challenge" => challenge.to_string(),
            "@method" => context.method.clone(),
            "@target-uri" => target_uri.clone(),
            "host" => authority.clone(),
            _ => date.clone(),
        };
        base += &format!("\"{c}\": {value}\n");
    }
    base += &format!("\"@signature-params\": {params}");
    let signature = signed(state, key, &base);
    (format!("sig={params}"), format!("sig=:{}:", STANDARD.encode(signature)))
}

/// An IMF-fixdate (RFC 9110 §5.6.7).
fn http_date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc2822).ok())
        .map(|d| d.replace("+0000", "GMT"))
        .unwrap_or_default()
}

/// Bytes to base58btc (the Bitcoin alphabet), the multibase `z` encoding of an aid1 key.
fn base58btc(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut digits: Vec<u8> = Vec::new();
    for &b in bytes {
        let mut carry = u32::from(b);
        for d in digits.iter_mut() {
            carry += u32::from(*d) << 8;
            *d = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
    std::iter::repeat_n('1', zeros)
        .chain(digits.iter().rev().map(|&d| ALPHABET[d as usize] as char))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn base58btc_matches_known_encodings() {
        assert_eq!(super::base58btc(b"hello world"), "StV1DL6CwTryKyV");
        assert_eq!(super::base58btc(&[0, 0, 1]), "112");
        assert_eq!(super::http_date(1_767_225_600), "Thu, 01 Jan 2026 00:00:00 GMT");
    }
}
