//! Token minting: ID-JAGs and logout tokens, good and deliberately broken.
//!
//! Tokens are assembled from raw JWS parts rather than through `jsonwebtoken::encode`, because
//! the broken variants (`alg: none`, algorithm confusion, non-JSON segments, embedded keys)
//! are exactly what a JWT library refuses to produce.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::IdpError;
use crate::keys::{KeyAlg, SigningKey};

/// The auth.md revocation event URI carried in a logout token's `events` claim.
pub const REVOKED_EVENT: &str = "https://schemas.workos.com/events/agent/auth/identity/assertion/revoked";
/// The `typ` header of an ID-JAG.
pub const ID_JAG_TYP: &str = "oauth-id-jag+jwt";
/// The `typ` header of a logout token.
pub const LOGOUT_TYP: &str = "logout+jwt";

/// Which token to mint.
#[derive(Clone, Copy, Debug, Default, Deserialize, Eq, schemars::JsonSchema, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TokenKind {
    /// An identity assertion JWT authorization grant (`typ: oauth-id-jag+jwt`).
    #[default]
    IdJag,
    /// A logout token carrying the auth.md revocation event (`typ: logout+jwt`).
    Logout,
}

/// A deliberate defect applied to a token after its claims are decided.
#[derive(Clone, Copy, Debug, Deserialize, Eq, schemars::JsonSchema, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tamper {
    /// Header `alg: none` and an empty signature.
    AlgNone,
    /// Header `alg: HS256`, HMAC keyed with the IdP's public key PEM (algorithm confusion).
    Hs256PublicKey,
    /// A `kid` the JWKS does not hold (signed by the real key).
    UnknownKid,
    /// No `kid` header.
    MissingKid,
    /// The signature's bytes are altered.
    BadSignature,
    /// The payload is re-encoded with a different `sub` after signing.
    TamperedPayload,
    /// Signed by a fresh key that is not published, under the published `kid`.
    ForeignKeySameKid,
    /// Signed by a fresh key whose public JWK is embedded in the `jwk` header.
    EmbeddedJwk,
    /// Signed by a fresh key and pointing `jku` at a key set holding it, served by the IdP but
    /// never published as its JWKS.
    Jku,
    /// Signed by a fresh key and pointing `x5u` at a certificate the IdP does not own.
    X5u,
    /// A `crit` header naming an extension no verifier understands.
    Crit,
    /// The header segment is not JSON.
    NonJsonHeader,
    /// The payload segment is not JSON.
    NonJsonPayload,
    /// Header `alg: RS256` while the key is an EC key (alg/key mismatch).
    AlgKeyMismatch,
    /// Signed by a fresh key that belongs to no trusted issuer (pair with an `iss` override).
    UntrustedKey,
}

/// What to mint: the kind, then edits to the default header and claims.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// ID-JAG or logout token.
    #[serde(default)]
    pub kind: TokenKind,
    /// Claims to add or replace. `exp`, `iat`, `nbf` and `auth_time` accept `"now"`,
    /// `"now+N"` and `"now-N"` (seconds).
    #[serde(default)]
    pub set: Map<String, Value>,
    /// Claims to remove.
    #[serde(default)]
    pub remove: Vec<String>,
    /// Header members to add or replace.
    #[serde(default)]
    pub header_set: Map<String, Value>,
    /// Header members to remove.
    #[serde(default)]
    pub header_remove: Vec<String>,
    /// Sign with this published key instead of the active one.
    #[serde(default)]
    pub kid: Option<String>,
    /// A deliberate defect.
    #[serde(default)]
    pub tamper: Option<Tamper>,
}

/// Per-token identity values the defaults are built from.
#[derive(Clone, Debug)]
pub struct Subject {
    /// The `sub` claim.
    pub sub: String,
    /// The `email` claim (ID-JAGs only).
    pub email: String,
}

/// Everything a minted token is made of, for reports and assertions.
#[derive(Clone, Debug, Serialize)]
pub struct Minted {
    /// The compact serialisation.
    pub token: String,
    /// The header as minted (before tampering that breaks JSON).
    pub header: Value,
    /// The claims as minted.
    pub claims: Value,
    /// A `jku` tamper's key (kid, public JWK), for the IdP to serve where `jku` points.
    #[serde(skip)]
    pub(crate) attacker_key: Option<(String, Value)>,
}

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn resolve_time(value: &Value, now: i64) -> Value {
    let Some(text) = value.as_str() else {
        return value.clone();
    };
    let Some(rest) = text.strip_prefix("now") else {
        return value.clone();
    };
    let offset = if rest.is_empty() {
        Some(0)
    } else if let Some(n) = rest.strip_prefix('+') {
        n.trim().parse::<i64>().ok()
    } else if let Some(n) = rest.strip_prefix('-') {
        n.trim().parse::<i64>().ok().map(|n| -n)
    } else {
        None
    };
    offset.map_or_else(|| value.clone(), |o| json!(now + o))
}

/// Default claims of `J(...)` / `L(...)` as in catalogue §0.4.
pub(crate) fn default_claims(kind: TokenKind, issuer: &str, audience: &str, subject: &Subject) -> Map<String, Value> {
    let now = now();
    let jti = uuid::Uuid::new_v4().to_string();
    let value = match kind {
        TokenKind::IdJag => json!({
            "iss": issuer,
            "sub": subject.sub,
            "aud": audience,
            "client_id": crate::default_client_id(issuer),
            "jti": jti,
            "iat": now,
            "exp": now + 300,
            "email": subject.email,
            "email_verified": true,
        }),
        TokenKind::Logout => json!({
            "iss": issuer,
            "sub": subject.sub,
            "aud": audience,
            "jti": jti,
            "iat": now,
            "events": { REVOKED_EVENT: {} },
        }),
    };
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn b64_json(value: &Value) -> String {
    b64(value.to_string().as_bytes())
}

/// Assembles and signs a token. `signer` is the key chosen by the request (or the active one).
pub(crate) fn mint(request: &TokenRequest, mut claims: Map<String, Value>, signer: &SigningKey, issuer: &str) -> Result<Minted, IdpError> {
    let now = now();
    for (name, value) in &request.set {
        let value = if matches!(name.as_str(), "exp" | "iat" | "nbf" | "auth_time") {
            resolve_time(value, now)
        } else {
            value.clone()
        };
        claims.insert(name.clone(), value);
    }
    for name in &request.remove {
        claims.remove(name);
    }
    let typ = match request.kind {
        TokenKind::IdJag => ID_JAG_TYP,
        TokenKind::Logout => LOGOUT_TYP,
    };
    let mut header = Map::new();
    header.insert("alg".into(), json!(signer.alg().as_str()));
    header.insert("kid".into(), json!(signer.kid()));
    header.insert("typ".into(), json!(typ));

    // Tampers that change who signs or what the header says are applied before signing.
    let fresh = |alg| SigningKey::generate(alg, format!("attacker-{}", uuid::Uuid::new_v4()));
    let mut key = signer.clone();
    match request.tamper {
        Some(Tamper::UnknownKid) => {
            header.insert("kid".into(), json!(format!("unknown-{}", uuid::Uuid::new_v4())));
        }
        Some(Tamper::MissingKid) => {
            header.remove("kid");
        }
        Some(Tamper::ForeignKeySameKid) => {
            key = fresh(signer.alg())?;
        }
        Some(Tamper::EmbeddedJwk) => {
            key = fresh(KeyAlg::Es256)?;
            header.insert("alg".into(), json!("ES256"));
            header.insert("jwk".into(), key.public_jwk().clone());
            header.remove("kid");
        }
        Some(Tamper::Jku) => {
            key = fresh(KeyAlg::Es256)?;
            header.insert("alg".into(), json!("ES256"));
            header.insert("kid".into(), json!(key.kid()));
            // On the IdP's own origin (so nothing leaves the machine) but not its published
            // JWKS: a target that follows `jku` finds the attacker's key there and accepts.
            header.insert("jku".into(), json!(format!("{issuer}/attacker/{}/jwks.json", key.kid())));
        }
        Some(Tamper::X5u) => {
            key = fresh(KeyAlg::Es256)?;
            header.insert("alg".into(), json!("ES256"));
            header.insert("kid".into(), json!(key.kid()));
            header.insert("x5u".into(), json!("http://127.0.0.1:9/attacker/cert.pem"));
        }
        Some(Tamper::Crit) => {
            header.insert("crit".into(), json!(["urn:authmd:unknown-extension"]));
            header.insert("urn:authmd:unknown-extension".into(), json!(true));
        }
        Some(Tamper::UntrustedKey) => {
            key = fresh(signer.alg())?;
            header.insert("kid".into(), json!(key.kid()));
        }
        _ => {}
    }
    for (name, value) in &request.header_set {
        header.insert(name.clone(), value.clone());
    }
    for name in &request.header_remove {
        header.remove(name);
    }
    let header = Value::Object(header);
    let claims = Value::Object(claims);

    let header_segment = match request.tamper {
        Some(Tamper::NonJsonHeader) => b64(b"this is not json"),
        Some(Tamper::AlgNone) => {
            let mut h = header.clone();
            h["alg"] = json!("none");
            b64_json(&h)
        }
        Some(Tamper::Hs256PublicKey) => {
            let mut h = header.clone();
            h["alg"] = json!("HS256");
            b64_json(&h)
        }
        Some(Tamper::AlgKeyMismatch) => {
            let mut h = header.clone();
            h["alg"] = json!(if signer.alg() == KeyAlg::Rs256 { "ES256" } else { "RS256" });
            b64_json(&h)
        }
        _ => b64_json(&header),
    };
    let payload_segment = match request.tamper {
        Some(Tamper::NonJsonPayload) => b64(b"{not json"),
        _ => b64_json(&claims),
    };
    let signing_input = format!("{header_segment}.{payload_segment}");
    let signature = match request.tamper {
        Some(Tamper::AlgNone) => String::new(),
        Some(Tamper::Hs256PublicKey) => {
            let hmac = jsonwebtoken::EncodingKey::from_secret(signer.public_pem().as_bytes());
            jsonwebtoken::crypto::sign(signing_input.as_bytes(), &hmac, jsonwebtoken::Algorithm::HS256)
                .map_err(|e| IdpError::Key(format!("failed to sign HS256: {e}")))?
        }
        _ => key.sign(signing_input.as_bytes())?,
    };
    let token = match request.tamper {
        Some(Tamper::BadSignature) => {
            let mut bytes = URL_SAFE_NO_PAD.decode(&signature).unwrap_or_default();
            if let Some(first) = bytes.first_mut() {
                *first ^= 0x5a;
            }
            format!("{signing_input}.{}", b64(&bytes))
        }
        Some(Tamper::TamperedPayload) => {
            let mut altered = claims.clone();
            altered["sub"] = json!(format!("{}-tampered", claims["sub"].as_str().unwrap_or("sub")));
            format!("{header_segment}.{}.{signature}", b64_json(&altered))
        }
        _ => format!("{signing_input}.{signature}"),
    };
    let attacker_key = matches!(request.tamper, Some(Tamper::Jku)).then(|| (key.kid().to_string(), key.public_jwk().clone()));
    Ok(Minted {
        token,
        header,
        claims,
        attacker_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_resolve_against_now() {
        assert_eq!(resolve_time(&json!("now+30"), 100), json!(130));
        assert_eq!(resolve_time(&json!("now-120"), 100), json!(-20));
        assert_eq!(resolve_time(&json!("now"), 100), json!(100));
        assert_eq!(resolve_time(&json!("later"), 100), json!("later"));
        assert_eq!(resolve_time(&json!(5), 100), json!(5));
    }
}
