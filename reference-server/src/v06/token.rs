//! `POST /oauth2/token` (the RFC 7523 JWT-bearer grant and the claim grant) and RFC 7009
//! revocation; identity assertions are minted and checked here.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Value, json};

use crate::defect::Defect;
use crate::error::ApiError;
use crate::secrets::{hash, iso, secret};
use crate::state::{AppState, Now};
use crate::store::credentials::{NewCredential, insert_credential, minted_at_token_endpoint, revoke_access_token};
use crate::store::registration::{Mintable, mintable};
use crate::v06::error::{TokenCode, token_error};
use crate::v06::wire::{form, no_store};

/// RFC 7523 JWT-bearer grant.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// How long an identity assertion lives.
pub(crate) const ASSERTION_TTL: i64 = 3600;

/// `POST /oauth2/token` (v0.6 Step 5): the RFC 7523 JWT-bearer grant over this service's own
/// identity assertions.
pub async fn token(State(state): State<AppState>, Now(now): Now, request: Request) -> Response {
    let fields = match form(&state, request).await {
        Ok(f) => f,
        Err(why) => return token_error(TokenCode::InvalidRequest, why).respond(&state),
    };
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let grant = field("grant_type").or(state.defects.contains(Defect::V06MissingGrantTypeDefaults).then_some(JWT_BEARER));
    let lenient = state.defects.contains(Defect::V06LenientGrantType);
    let grant = grant.map(|g| crate::defect::taken_for(lenient, g, [JWT_BEARER, crate::v06::claim::CLAIM_GRANT]));
    match grant {
        Some(JWT_BEARER) => {}
        // The production dialect dropped the claim grant (its ceremony completes at the claim
        // endpoint), so there it is an unsupported grant like any other.
        Some(crate::v06::claim::CLAIM_GRANT)
            if state.config.profile.has_claim_grant() || state.defects.contains(Defect::V07pClaimGrantAccepted) =>
        {
            return match field("claim_token") {
                Some(t) => match crate::v06::claim::claim_grant(&state, now, t).await {
                    Ok(rid) => mint_access(&state, now, &rid, true).await,
                    Err(e) => e.respond(&state),
                },
                None => token_error(TokenCode::InvalidRequest, "claim_token is required").respond(&state),
            };
        }
        Some(_) if state.defects.contains(Defect::V06UnsupportedGrantAsInvalidRequest) => {
            return token_error(TokenCode::InvalidRequest, "unknown grant_type").respond(&state);
        }
        Some(_) => {
            return token_error(TokenCode::UnsupportedGrantType, "the JWT-bearer and claim grants only").respond(&state);
        }
        None => return token_error(TokenCode::InvalidRequest, "grant_type is required").respond(&state),
    }
    // V6-TOKEN-12 (RFC 8707): a `resource` pins the token to this API; another is refused.
    if let Some(resource) = field("resource")
        && resource.trim_end_matches('/') != state.resource().trim_end_matches('/')
        && !(state.defects.contains(Defect::V06ResourcePrefixMatch) && resource.starts_with(&state.resource()))
        && !state.defects.contains(Defect::V06IgnoreResource)
    {
        return token_error(TokenCode::InvalidTarget, "the resource is not this service's API").respond(&state);
    }
    let Some(assertion) = field("assertion") else {
        return token_error(TokenCode::InvalidRequest, "assertion is required").respond(&state);
    };
    let claims = match verify_assertion(&state, assertion, now) {
        Ok(c) => c,
        Err(why) => return token_error(TokenCode::InvalidGrant, why).respond(&state),
    };
    // A pre-claim assertion is superseded once the registration is claimed (Step 4c).
    let pre_claim = claims["claimed"] != json!(true) && !state.defects.contains(Defect::V06V1AssertionAfterClaim);
    let registration_id = claims["registration_id"].as_str().unwrap_or_default().to_string();
    mint_access_checked(&state, now, &registration_id, pre_claim).await
}

/// An access token for `registration_id` (and, after a ceremony, a fresh assertion): 200 with
/// the token response, or `invalid_grant` when the registration cannot mint. `from_claim` marks
/// the claim grant's answer, which carries the post-claim assertion.
pub(crate) async fn mint_access(state: &AppState, now: i64, registration_id: &str, from_claim: bool) -> Response {
    mint(state, now, registration_id, false, from_claim).await
}

pub(crate) async fn mint_access_checked(state: &AppState, now: i64, registration_id: &str, pre_claim_assertion: bool) -> Response {
    mint(state, now, registration_id, pre_claim_assertion, false).await
}

pub(crate) async fn mint(state: &AppState, now: i64, registration_id: &str, refuse_if_claimed: bool, from_claim: bool) -> Response {
    let access_token = secret("at_", 24);
    let ttl = state.config.ttl.access_token;
    let (h, rid) = (hash(&access_token), registration_id.to_string());
    let single_use = state.defects.contains(Defect::V06SingleUseAssertion) && !from_claim;
    let full_scopes = state.defects.contains(Defect::V06FullScopesBeforeClaim);
    let all_scopes = serde_json::to_string(&state.config.scopes).unwrap_or_default();
    let issued = state
        .db
        .call(move |conn| {
            let Some(Mintable {
                status,
                expires_at,
                pre_scopes: pre,
                post_scopes: post,
                user_id: user,
                email,
            }) = mintable(conn, &rid)?
            else {
                return Ok(None);
            };
            let claimed = status == "claimed";
            if status == "revoked" || (!claimed && expires_at <= now) || (claimed && refuse_if_claimed) {
                return Ok(None);
            }
            if single_use && minted_at_token_endpoint(conn, &rid)? {
                return Ok(None);
            }
            let scopes = if claimed {
                post
            } else if full_scopes {
                all_scopes
            } else {
                pre
            };
            insert_credential(
                conn,
                &NewCredential {
                    hash: &h,
                    registration_id: &rid,
                    kind: "access_token",
                    scopes: &scopes,
                    expires_at: Some(now + ttl),
                    user_id: user.as_deref(),
                    source: "token_endpoint",
                    subject: None,
                    created_at: now,
                },
            )?;
            Ok(Some((scopes, claimed, email)))
        })
        .await;
    match issued {
        Ok(Some((scopes, claimed, email))) => {
            let scopes: Vec<String> = serde_json::from_str(&scopes).unwrap_or_default();
            let mut body = json!({ "access_token": access_token, "token_type": "Bearer", "expires_in": ttl, "scope": scopes.join(" ") });
            if state.defects.contains(Defect::V06TokenRefreshToken) {
                body["refresh_token"] = json!(secret("rt_", 24));
            }
            if from_claim {
                let (assertion, expires) = match assertion_for(state, now, registration_id, &scopes, claimed, email.as_deref()) {
                    Ok(a) => a,
                    Err(e) => return state.reply(Err(e)),
                };
                body["identity_assertion"] = json!(assertion);
                body["assertion_expires"] = json!(iso(expires));
            }
            no_store(state, StatusCode::OK, body)
        }
        Ok(None) => token_error(TokenCode::InvalidGrant, "the registration cannot mint").respond(state),
        Err(e) => state.reply(Err(e)),
    }
}

/// A service-signed identity assertion for `registration_id`; after a claim (`claimed`) it
/// carries the user's verified email (the v2 assertion of Step 4c).
pub(crate) fn assertion_for(
    state: &AppState,
    now: i64,
    registration_id: &str,
    scopes: &[String],
    claimed: bool,
    email: Option<&str>,
) -> Result<(String, i64), ApiError> {
    let key = state
        .service_key
        .as_ref()
        .ok_or_else(|| ApiError::Internal("no service key".into()))?;
    let expires = now + ASSERTION_TTL;
    let mut claims = json!({
        "iss": state.base_url,
        "sub": registration_id,
        "aud": state.base_url,
        "registration_id": registration_id,
        "scope": scopes.join(" "),
        "claimed": claimed,
        "jti": secret("", 16),
        "iat": now,
        "exp": expires,
    });
    if let Some(email) = email {
        claims["email"] = json!(email);
        claims["email_verified"] = json!(true);
    }
    Ok((key.sign(&claims)?, expires))
}

/// Checks an identity assertion this service signed: signature, `iss`, `aud`, `exp`.
pub(crate) fn verify_assertion(state: &AppState, assertion: &str, now: i64) -> Result<Value, &'static str> {
    let key = state.service_key.as_ref().ok_or("no service key")?;
    if state.defects.contains(Defect::V06AcceptAnyAssertion) {
        let payload = assertion.split('.').nth(1).ok_or("not a JWT")?;
        let bytes = URL_SAFE_NO_PAD.decode(payload).map_err(|_| "not a JWT")?;
        return serde_json::from_slice(&bytes).map_err(|_| "not a JWT");
    }
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[&state.base_url]);
    validation.set_audience(&[&state.base_url]);
    // `exp` is checked below against the request's clock (the test clock moves it).
    validation.validate_exp = false;
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    let decoding = key.decoding_key().map_err(|_| "no service key")?;
    let data = jsonwebtoken::decode::<Value>(assertion, &decoding, &validation).map_err(|_| "the assertion does not verify")?;
    if data.claims["exp"].as_i64().is_none_or(|exp| exp <= now) {
        return Err("the assertion expired");
    }
    Ok(data.claims)
}

/// `POST /oauth2/revoke` (RFC 7009): revokes one access token; 200 whether or not it existed.
pub async fn revoke(State(state): State<AppState>, request: Request) -> Response {
    let fields = match form(&state, request).await {
        Ok(f) => f,
        Err(why) => return token_error(TokenCode::InvalidRequest, why).respond(&state),
    };
    let Some(token) = fields.iter().find(|(k, _)| k == "token").map(|(_, v)| v.clone()) else {
        if state.defects.contains(Defect::V06RevokeWithoutToken200) {
            return StatusCode::OK.into_response();
        }
        return token_error(TokenCode::InvalidRequest, "token is required").respond(&state);
    };
    if state.defects.contains(Defect::V06RevokeIgnored) {
        return StatusCode::OK.into_response();
    }
    let h = hash(&token);
    let changed = state.db.call(move |conn| revoke_access_token(conn, &h)).await;
    match changed {
        Ok(0) if state.defects.contains(Defect::V06RevokeUnknown400) => {
            token_error(TokenCode::InvalidRequest, "unknown token").respond(&state)
        }
        Ok(_) => StatusCode::OK.into_response(),
        Err(e) => state.reply(Err(e)),
    }
}
