//! Verification of ID-JAGs and logout tokens, in the order of the catalogue's IDJAG and
//! REVOKE rows. Signatures are checked with jsonwebtoken's primitives; its own claim
//! validation is not used, because the rules here (one-element `aud` arrays, bounded `iat`,
//! a request-scoped clock) are stricter or different, and every failure must map to a
//! specific wire code by kind.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use crate::config::TrustedIssuer;
use crate::defect::Defect;
use crate::error::ApiError;
use crate::jwks::{key_at, spki_pem};
use crate::state::AppState;

/// The ID-JAG token type (draft-ietf-oauth-identity-assertion-authz-grant).
pub(crate) const ID_JAG_URN: &str = "urn:ietf:params:oauth:token-type:id-jag";

/// The auth.md revocation event (catalogue §0.4).
pub const REVOKED_EVENT: &str = "https://schemas.workos.com/events/agent/auth/identity/assertion/revoked";

pub use crate::token_kind::TokenKind;

/// A token that passed every check but the replay check (which the caller does atomically
/// with its own writes).
#[derive(Debug)]
pub struct Verified {
    /// The claims.
    pub claims: Map<String, Value>,
    /// `iss`.
    pub iss: String,
    /// `sub`.
    pub sub: String,
    /// The audience it matched, as one string (so array and string forms revoke alike).
    pub aud: String,
    /// `jti`.
    pub jti: String,
    /// When the replay-cache entry may be dropped.
    pub replay_until: i64,
}

impl Verified {
    /// The `email` claim, when the provider asserts it verified (a JSON `true`, MATCH-03).
    pub fn verified_email(&self) -> Option<String> {
        self.claims
            .get("email")
            .and_then(Value::as_str)
            .filter(|_| self.claims.get("email_verified") == Some(&Value::Bool(true)))
            .map(str::to_string)
    }
}

const ALLOWED_ALGS: &[(&str, Algorithm)] = &[
    ("ES256", Algorithm::ES256),
    ("RS256", Algorithm::RS256),
    ("EdDSA", Algorithm::EdDSA),
];

fn segment(part: &str) -> Result<Map<String, Value>, ApiError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| ApiError::InvalidRequest("the assertion is not a compact JWS (bad base64url)".into()))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ApiError::InvalidRequest(
            "the assertion is not a compact JWS (segment is not a JSON object)".into(),
        )),
    }
}

/// RFC 7515 §4.1.9: `typ` is a media type, compared case-insensitively, and the
/// `application/` prefix may be omitted.
fn typ_matches(found: &str, expected: &str, strict: bool) -> bool {
    if strict {
        return found == expected;
    }
    let found = found.to_ascii_lowercase();
    found.strip_prefix("application/").unwrap_or(&found) == expected
}

fn int_claim(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, ApiError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_f64().map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| ApiError::InvalidRequest(format!("`{name}` is not a number"))),
    }
}

fn string_claim(claims: &Map<String, Value>, name: &str) -> Option<String> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Verifies `token` as `kind` at time `now` (unix seconds).
pub async fn verify(state: &AppState, token: &str, kind: TokenKind, now: i64) -> Result<Verified, ApiError> {
    let defects = &state.defects;
    let parts: Vec<&str> = token.trim().split('.').collect();
    // IDJAG-39: the assertion must be a compact JWS.
    let crash = |e: ApiError| {
        if defects.contains(Defect::CrashOnMalformedToken) {
            ApiError::Internal(format!("unparsed token: {e:?}"))
        } else {
            e
        }
    };
    if parts.len() != 3 {
        return Err(crash(ApiError::InvalidRequest("the assertion is not a compact JWS".into())));
    }
    let header = segment(parts[0]).map_err(crash)?;
    let claims = segment(parts[1]).map_err(crash)?;

    // IDJAG-11, IDJAG-12, IDJAG-41, REVOKE-06, REVOKE-17: explicit typing (RFC 8725 §3.11).
    if !defects.contains(Defect::SkipTypCheck) {
        match header.get("typ").and_then(Value::as_str) {
            Some(typ) if typ_matches(typ, kind.typ(state.config.profile), defects.contains(Defect::StrictTypComparison)) => {}
            Some(typ)
                if defects.contains(Defect::TypSubstringMatch) && typ.to_ascii_lowercase().contains(kind.typ(state.config.profile)) => {}
            Some(typ) => {
                return Err(ApiError::InvalidRequest(format!(
                    "unexpected typ `{typ}`; wanted `{}`",
                    kind.typ(state.config.profile)
                )));
            }
            None => {
                return Err(ApiError::InvalidRequest(format!(
                    "missing typ header; wanted `{}`",
                    kind.typ(state.config.profile)
                )));
            }
        }
    }
    // RFC 7515 §4.1.11: an extension we do not understand must make the token invalid.
    if header.contains_key("crit") && !defects.contains(Defect::IgnoreCrit) {
        return Err(ApiError::InvalidRequest("unsupported critical header extension".into()));
    }
    // IDJAG-07, IDJAG-08: only asymmetric algorithms from the allow-list; never `none` or HMAC.
    let alg_name = header.get("alg").and_then(Value::as_str).unwrap_or_default();
    let alg = ALLOWED_ALGS.iter().find(|(n, _)| *n == alg_name).map(|(_, a)| *a);
    if alg_name == "none" && defects.contains(Defect::AcceptAlgNone) {
        // The defect: trust the unsigned token and go on with its claims.
    } else if alg_name == "HS256" && defects.contains(Defect::AcceptHs256PublicKey) {
        // The defect: checked below with the public key as the HMAC secret.
    } else if alg.is_none() {
        return Err(ApiError::InvalidSignature(format!("algorithm `{alg_name}` is not allowed")));
    }

    // IDJAG-14, IDJAG-15, REVOKE-05: the issuer must be on the trust list, by exact match.
    let iss = string_claim(&claims, "iss").ok_or(ApiError::InvalidIssuer)?;
    let stranger;
    let lenient_iss = defects.contains(Defect::NormalisingIssuer);
    let trusted = match state
        .config
        .trusted_issuers
        .iter()
        .find(|t| t.issuer == iss || (lenient_iss && crate::defect::close_enough(&iss, &t.issuer)))
    {
        Some(t) => t,
        None if defects.contains(Defect::TrustUnknownIssuers) && !state.config.trusted_issuers.is_empty() => {
            &state.config.trusted_issuers[0]
        }
        None if defects.contains(Defect::TrustAnyIssuerJwks) => {
            stranger = TrustedIssuer::named(iss.clone());
            &stranger
        }
        None => return Err(ApiError::InvalidIssuer),
    };

    let kid = header.get("kid").and_then(Value::as_str);
    if kid.is_none() && defects.contains(Defect::CrashOnMissingKid) {
        return Err(ApiError::Internal("no kid".into()));
    }
    if alg_name == "HS256" && defects.contains(Defect::AcceptHs256PublicKey) {
        let jwk = state.jwks.key_for(state, trusted, kid, Algorithm::ES256, now).await?;
        let secret = spki_pem(&jwk).ok_or_else(|| ApiError::InvalidSignature("no PEM form for this key".into()))?;
        let message = format!("{}.{}", parts[0], parts[1]);
        let key = DecodingKey::from_secret(secret.as_bytes());
        if !jsonwebtoken::crypto::verify(parts[2], message.as_bytes(), &key, Algorithm::HS256).unwrap_or(false) {
            return Err(ApiError::InvalidSignature("signature verification failed".into()));
        }
    }
    if let Some(mut alg) = alg {
        // IDJAG-03..06, IDJAG-09, IDJAG-43: the key comes from the issuer's JWKS by `kid`; an
        // embedded `jwk`, `jku` or `x5u` header is never followed (RFC 8725 §3.10).
        let jwk = match header.get("jku").and_then(Value::as_str) {
            Some(jku) if defects.contains(Defect::FollowJku) => key_at(state, jku, kid).await?,
            _ => state.jwks.key_for(state, trusted, kid, alg, now).await?,
        };
        // IDJAG-09: the header's alg must be the key's.
        let key_alg = jwk.common.key_algorithm.map(|ka| ka.to_string());
        if defects.contains(Defect::AlgFromKey) {
            if let Some(a) = key_alg.and_then(|k| ALLOWED_ALGS.iter().find(|(n, _)| *n == k)) {
                alg = a.1;
            }
        } else if key_alg.is_some_and(|ka| ka != alg_name) {
            return Err(ApiError::InvalidSignature("the alg does not match the key".into()));
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| ApiError::InvalidSignature(format!("unusable key: {}", jwt_kind(&e))))?;
        let message = format!("{}.{}", parts[0], parts[1]);
        let valid = match jsonwebtoken::crypto::verify(parts[2], message.as_bytes(), &key, alg) {
            Ok(valid) => valid,
            Err(e) => {
                return Err(ApiError::InvalidSignature(format!("signature check failed: {}", jwt_kind(&e))));
            }
        };
        if !valid && !defects.contains(Defect::SkipSignatureCheck) {
            return Err(ApiError::InvalidSignature("signature verification failed".into()));
        }
    }

    // IDJAG-16, IDJAG-17, IDJAG-19, REVOKE-07: `aud` names this service; an array must hold
    // exactly that one audience (ID-JAG §4.4.1).
    let expected = state.expected_audiences();
    let normalise = |a: &str| {
        crate::defect::trimmed_and_decoded(a)
            .to_lowercase()
            .trim_end_matches('/')
            .to_string()
    };
    let normalising = defects.contains(Defect::NormalisingAudience);
    let aud_ok = |a: &str| expected.iter().any(|e| e == a || (normalising && normalise(e) == normalise(a)));
    let skip_aud = match kind {
        TokenKind::IdJag => defects.contains(Defect::SkipAudienceCheck),
        TokenKind::Logout => defects.contains(Defect::AcceptWrongLogoutAudience),
    };
    let aud = match claims.get("aud") {
        Some(Value::String(a)) if aud_ok(a) || skip_aud => a.clone(),
        Some(Value::Array(items)) if items.len() == 1 && items[0].as_str().is_some_and(aud_ok) => {
            items[0].as_str().unwrap_or_default().to_string()
        }
        Some(Value::Array(items))
            if (defects.contains(Defect::AcceptAudienceArrayWithExtras) || skip_aud)
                && items.iter().any(|i| i.as_str().is_some_and(aud_ok)) =>
        {
            expected[0].clone()
        }
        None if skip_aud => expected[0].clone(),
        None => return Err(ApiError::InvalidAudience),
        _ => return Err(ApiError::InvalidAudience),
    };
    // Under the revoke-only-string-audience defect, remember the raw form so array-`aud`
    // credentials no longer match a plain logout `aud`.
    let aud = if defects.contains(Defect::RevokeOnlyStringAudience) && claims.get("aud").is_some_and(Value::is_array) {
        format!("[{aud}]")
    } else {
        aud
    };

    let no_skew = defects.contains(Defect::NoClockSkew);
    let skew = if no_skew { 0 } else { state.config.ttl.skew };
    let max_future_iat = if no_skew { 0 } else { state.config.ttl.max_future_iat };
    let exp = int_claim(&claims, "exp")?;
    let iat = int_claim(&claims, "iat")?;
    let nbf = int_claim(&claims, "nbf")?;
    match kind {
        TokenKind::IdJag => {
            // IDJAG-22: `exp` is required (RFC 7523 §3).
            let Some(exp) = exp.or(defects.contains(Defect::AcceptMissingExp).then_some(now + 300)) else {
                return Err(ApiError::InvalidRequest("missing exp".into()));
            };
            // IDJAG-20, IDJAG-21: expired beyond the skew allowance.
            if exp + skew < now && !defects.contains(Defect::AcceptExpiredIdJag) {
                return Err(ApiError::Expired);
            }
            // IDJAG-25: `iat` is required (ID-JAG §3.1).
            let Some(iat) = iat.or(defects.contains(Defect::AcceptMissingIat).then_some(now)) else {
                return Err(ApiError::InvalidRequest("missing iat".into()));
            };
            // IDJAG-23, IDJAG-24: `iat` not unreasonably in the future.
            if iat > now + max_future_iat && !defects.contains(Defect::AcceptFutureIat) {
                return Err(ApiError::InvalidRequest("iat is too far in the future".into()));
            }
            // IDJAG-26: not before `nbf`.
            // The nbf-skew-inverted defect takes the allowance off instead of adding it.
            let nbf_bound = if defects.contains(Defect::NbfSkewInverted) {
                now - skew
            } else {
                now + skew
            };
            if nbf.is_some_and(|nbf| nbf > nbf_bound) && !defects.contains(Defect::AcceptFutureNbf) {
                return Err(ApiError::InvalidRequest("the token is not valid yet (nbf)".into()));
            }
        }
        TokenKind::Logout => {
            // REVOKE-13: a past `exp` is refused; a missing one per the configured reading (C-20).
            match exp {
                // The logout-exp-skew-inverted defect takes the allowance off instead of adding it.
                Some(exp)
                    if (if defects.contains(Defect::LogoutExpSkewInverted) {
                        exp - skew
                    } else {
                        exp + skew
                    }) < now
                        && !defects.contains(Defect::AcceptExpiredLogout) =>
                {
                    return Err(ApiError::Expired);
                }
                None if state.config.logout_requires_exp => {
                    return Err(ApiError::InvalidRequest("missing exp".into()));
                }
                _ => {}
            }
            // REVOKE-14: `iat` present and not far in the future (BCL §2.6).
            match iat {
                None if !defects.contains(Defect::AcceptLogoutWithoutIat) => {
                    return Err(ApiError::InvalidRequest("missing iat".into()));
                }
                Some(iat) if iat > now + max_future_iat && !defects.contains(Defect::AcceptFutureLogoutIat) => {
                    return Err(ApiError::InvalidRequest("iat is too far in the future".into()));
                }
                _ => {}
            }
            // REVOKE-08: `events` must be an object naming the revocation event.
            let has_event = claims.get("events").and_then(Value::as_object).is_some_and(|e| {
                e.contains_key(REVOKED_EVENT)
                    || (defects.contains(Defect::LenientEventUri) && e.keys().any(|k| crate::defect::close_enough(k, REVOKED_EVENT)))
            });
            if !has_event && !defects.contains(Defect::AcceptLogoutWithoutEvents) {
                return Err(ApiError::InvalidRequest("events does not carry the revocation event".into()));
            }
            // REVOKE-09: a logout token must not contain a nonce (BCL §2.6).
            if claims.contains_key("nonce") && !defects.contains(Defect::AcceptLogoutWithNonce) {
                return Err(ApiError::InvalidRequest("a logout token must not carry a nonce".into()));
            }
        }
    }

    // IDJAG-27, REVOKE-12: `jti` is required.
    let jti = match string_claim(&claims, "jti") {
        Some(jti) => jti,
        None if kind == TokenKind::IdJag && defects.contains(Defect::AcceptMissingJti) => uuid_like(now),
        None if kind == TokenKind::Logout && defects.contains(Defect::AcceptLogoutWithoutJti) => uuid_like(now),
        None => return Err(ApiError::InvalidRequest("missing jti".into())),
    };
    // IDJAG-31, REVOKE-10: `sub` is required (auth.md has no sessions, so `sid` alone is not enough).
    let sub = match string_claim(&claims, "sub") {
        Some(sub) => sub,
        None if kind == TokenKind::Logout && defects.contains(Defect::AcceptLogoutWithoutSub) => String::new(),
        None if kind == TokenKind::IdJag && defects.contains(Defect::AcceptMissingSub) => String::new(),
        None => return Err(ApiError::InvalidRequest("missing sub".into())),
    };

    if kind == TokenKind::IdJag {
        // IDJAG-35, IDJAG-36: `client_id` must resolve to a known provider identity (C-27).
        let client_id = string_claim(&claims, "client_id").map(|c| {
            if !defects.contains(Defect::NormalisingClientId) {
                return c;
            }
            // The defect: a pinned entry close enough stands for it; a URL is folded to lower case.
            match trusted.client_ids.iter().find(|k| crate::defect::close_enough(&c, k)) {
                Some(k) => k.clone(),
                None => c.trim().to_lowercase(),
            }
        });
        match client_id {
            None if !defects.contains(Defect::AcceptMissingClientId) => {
                return Err(ApiError::InvalidClientId);
            }
            Some(c) if !trusted.knows_client(&c) && !defects.contains(Defect::AcceptUnknownClientId) => {
                return Err(ApiError::InvalidClientId);
            }
            // IDJAG-37: a URL-form client_id is a CIMD document whose jwks_uri must be the JWKS
            // the signature was checked against. Only client_ids under a trusted issuer get
            // here, so the server never fetches a URL a stranger chose.
            Some(c)
                if c != trusted.issuer
                    && trusted.knows_client(&c)
                    && url::Url::parse(&c).is_ok()
                    && !defects.contains(Defect::SkipCimdResolution) =>
            {
                state.jwks.check_cimd(state, trusted, &c, now).await?;
            }
            _ => {}
        }
        // IDJAG-45: the provider's authentication context meets the trust entry's policy.
        if !trusted.required_amr.is_empty() && !defects.contains(Defect::IgnoreAmrPolicy) {
            let amr: Vec<&str> = claims
                .get("amr")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if !trusted.required_amr.iter().all(|m| amr.contains(&m.as_str())) {
                return Err(ApiError::InsufficientUserAuthentication);
            }
        }
        // IDJAG-32..34: a verified email or phone, as JSON booleans (OIDC Core §5.1).
        let verified = |name: &str| match claims.get(name) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => defects.contains(Defect::AcceptStringEmailVerified) && s == "true",
            _ => false,
        };
        let email_ok = verified("email_verified") && claims.get("email").is_some_and(Value::is_string);
        let has_phone = claims.get("phone_number").is_some_and(Value::is_string);
        // The defect: a phone number counts as verified by its mere presence.
        let phone_verified = verified("phone_number_verified") || defects.contains(Defect::PhonePresenceCountsAsVerified);
        let phone_ok = phone_verified && has_phone && !defects.contains(Defect::RejectPhoneOnly);
        if !email_ok && !phone_ok && !defects.contains(Defect::SkipVerifiedEmailCheck) {
            return Err(ApiError::MissingVerifiedEmail);
        }
    }

    // The replay entry must outlive every instant at which the token would still be accepted.
    let window = if defects.contains(Defect::ReplayWindowWithoutSkew) {
        0
    } else {
        skew
    };
    // A token without `exp` (C-20 reading A) is remembered for five minutes past its arrival.
    let expless = if defects.contains(Defect::ForgetExplessLogoutJti) {
        now
    } else {
        now + 300
    };
    let replay_until = exp.unwrap_or(expless).max(now) + window;
    Ok(Verified {
        claims,
        iss,
        sub,
        aud,
        jti,
        replay_until,
    })
}

/// `iss` and `jti` of a token, unverified (for the burn-jti-of-rejected-tokens defect only).
pub fn peek_iss_jti(token: &str) -> Option<(String, String)> {
    let claims = segment(token.split('.').nth(1)?).ok()?;
    Some((string_claim(&claims, "iss")?, string_claim(&claims, "jti")?))
}

fn uuid_like(now: i64) -> String {
    format!("missing-jti-{now}-{}", rand::random::<u64>())
}

/// Names a jsonwebtoken error by its kind, never by its message.
fn jwt_kind(e: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::InvalidSignature => "invalid signature",
        ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidEddsaKey | ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidKeyFormat => {
            "invalid key"
        }
        ErrorKind::InvalidAlgorithm | ErrorKind::UnsupportedAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::MissingAlgorithm => {
            "algorithm mismatch"
        }
        ErrorKind::Base64(_) => "bad base64url",
        ErrorKind::Json(_) | ErrorKind::Utf8(_) | ErrorKind::InvalidToken => "malformed token",
        _ => "verification error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typ_comparison_follows_rfc_7515() {
        assert!(typ_matches("oauth-id-jag+jwt", "oauth-id-jag+jwt", false));
        assert!(typ_matches("application/OAuth-ID-JAG+JWT", "oauth-id-jag+jwt", false));
        assert!(!typ_matches("JWT", "oauth-id-jag+jwt", false));
        assert!(!typ_matches("application/oauth-id-jag+jwt", "oauth-id-jag+jwt", true));
    }
}
