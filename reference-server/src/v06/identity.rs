//! v0.6 ID-JAG registration (AUTH.md Step 3, CHANGELOG v0.5): the v0.1 verification rules,
//! then `auth_time` freshness (401 `login_required`), then matching: a known `(iss, sub)` or a
//! fresh user registers at once; an existing account found by verified email needs the user to
//! confirm the link first (401 `interaction_required` with a ceremony). And the RFC 8935 SET
//! receiver, whose revocation event tears down the registration, its claim handle and the
//! delegation (upstream b53c9ed).

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::defect::Defect;
use crate::error::ApiError;
use crate::secrets::{hash, iso, secret};
use crate::state::{AppState, Now};
use crate::store::ceremony::supersede_ceremonies;
use crate::store::credentials::revoke_credentials;
use crate::store::registration::{mark_revoked, put_claimed_identity, put_step_up};
use crate::store::replay::{jti_is_fresh, logout_jti_is_fresh};
use crate::store::users::{
    create_user, delegate_if_new, delegated_user, forget_delegation, link, linked_registrations, user_by_verified_email,
};
use crate::v06::error::{SetCode, V06Error};
use crate::v06::wire::no_store;
use crate::verify::{self, ID_JAG_URN, TokenKind};

/// How old the user's authentication at the provider may be (`idJagMaxAuthAgeSeconds`).
pub const MAX_AUTH_AGE: i64 = 3600;

/// A 401 with an `AgentAuth` challenge (the registration step-up vocabulary of v0.5).
fn agent_auth_401(body: Value, challenge: String) -> Response {
    let mut response = (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// What matching an ID-JAG decided, in the writer's transaction.
pub(crate) enum Matched {
    /// Registered: the registration id, its user's email (if any).
    Registered(String, Option<String>),
    /// Step-up needed: the registration, its claim token, when it expires, and the attempt
    /// [`crate::attempt::start_attempt`] started.
    StepUp(String, String, i64, Value),
}

/// An ID-JAG verified as `/agent/identity` verifies it: the verifier's failures as this
/// profile names them, and (when `check_auth_time`) a missing or stale `auth_time` as the 401
/// that asks the agent to re-authenticate (V6-IDJAG-01..03).
pub(crate) async fn verified_fresh(
    state: &AppState,
    assertion: &str,
    now: i64,
    check_auth_time: bool,
) -> Result<Result<verify::Verified, Response>, ApiError> {
    // AUTH.md Errors: ID-JAG signature, jti, aud and exp problems are `invalid_request` here;
    // an issuer off the trust list is `issuer_not_enabled`.
    let verified = verify::verify(state, assertion, TokenKind::IdJag, now).await.map_err(|e| match e {
        ApiError::InvalidIssuer => ApiError::IssuerNotEnabled,
        ApiError::Internal(m) => ApiError::Internal(m),
        ApiError::BadGateway => ApiError::BadGateway,
        other => ApiError::InvalidRequest(format!("the ID-JAG does not verify ({})", other.code())),
    })?;
    // V6-IDJAG-02, -03: a fresh authentication at the provider, checked on every ID-JAG.
    let auth_time = verified.claims.get("auth_time").and_then(Value::as_i64);
    let skew = state.config.ttl.skew;
    let stale = match auth_time {
        None => !state.defects.contains(Defect::V06AuthTimeOptional),
        Some(t) => (now - t > MAX_AUTH_AGE && !state.defects.contains(Defect::V06IgnoreAuthTimeAge)) || t > now + skew,
    };
    if stale && check_auth_time {
        return Ok(Err(agent_auth_401(
            json!({ "error": "login_required", "error_description": "auth_time is missing or older than the service allows; re-authenticate at the provider and mint a fresh ID-JAG", "max_age": MAX_AUTH_AGE }),
            format!(r#"AgentAuth error="login_required", max_age="{MAX_AUTH_AGE}", error_description="re-authenticate at the provider""#),
        )));
    }
    Ok(Ok(verified))
}

/// In the writer's transaction: spends the ID-JAG's `jti` (refused when seen before, unless
/// `replay_defect`), links its provider identity to `registration_id` (a ceremony that completes
/// records its delegation, V6-IDJAG-05), and finds the user it delegates for, else the account
/// that owns its verified `email`.
pub(crate) fn spend_and_link(
    conn: &crate::store::Connection,
    state: &AppState,
    verified: &verify::Verified,
    email: Option<&str>,
    registration_id: &str,
    now: i64,
    replay_defect: Defect,
) -> Result<(Option<String>, Option<String>), ApiError> {
    let (iss, jti, until) = (&verified.iss, &verified.jti, verified.replay_until);
    if !jti_is_fresh(
        conn,
        &state.defects,
        &state.instance,
        TokenKind::IdJag,
        iss,
        jti,
        until,
        now,
        replay_defect,
    )? {
        return Err(ApiError::InvalidRequest("the ID-JAG was used before (jti)".into()));
    }
    let delegated = delegated_user(conn, Some(iss), &verified.sub)?;
    let existing = match (&delegated, email) {
        (None, Some(e)) => user_by_verified_email(conn, e)?,
        _ => None,
    };
    link(conn, registration_id, iss, &verified.sub)?;
    Ok((delegated, existing))
}

/// `{"type":"identity_assertion","assertion_type":ID-JAG,"assertion":…}` under v0.6.
pub async fn register(state: &AppState, now: i64, body: &Value) -> Result<Response, ApiError> {
    let matched = match match_id_jag(state, now, body).await? {
        Ok(m) => m,
        Err(refused) => return Ok(refused),
    };
    match matched {
        Matched::Registered(rid, email) => {
            let (assertion, expires) = crate::v06::token::assertion_for(state, now, &rid, &state.config.scopes, true, email.as_deref())?;
            Ok(no_store(
                state,
                StatusCode::OK,
                json!({
                    "registration_id": rid,
                    "registration_type": "identity_assertion",
                    "identity_assertion": assertion,
                    "assertion_expires": iso(expires),
                    "scopes": state.config.scopes,
                }),
            ))
        }
        Matched::StepUp(rid, claim_token, expires, attempt) => Ok(step_up_401(json!({
            "error": "interaction_required",
            "error_description": "this identity matches an existing account; the user must confirm the link",
            "registration_id": rid,
            "registration_type": "identity_assertion",
            "claim_url": format!("{}/agent/identity/claim", state.base_url),
            "claim_token": claim_token,
            "claim_token_expires": iso(expires),
            "post_claim_scopes": state.config.scopes,
            "claim": attempt["block"],
        }))),
    }
}

/// The 401 that asks the user to confirm an account link (v0.5 step-up), with `body`.
pub(crate) fn step_up_401(body: Value) -> Response {
    agent_auth_401(
        body,
        r#"AgentAuth error="interaction_required", error_description="confirm the account link""#.into(),
    )
}

/// Verifies an ID-JAG registration body and matches its identity (v0.6 Step 3, unchanged in
/// the production dialect): a known `(iss, sub)` or a fresh user registers at once; an account
/// found by verified email alone starts a ceremony instead (V6-IDJAG-04). A refusal the text
/// words itself (`login_required`) is the inner `Err`.
pub(crate) async fn match_id_jag(state: &AppState, now: i64, body: &Value) -> Result<Result<Matched, Response>, ApiError> {
    if !state.config.id_jag {
        return Err(ApiError::IssuerNotEnabled);
    }
    // V6-SA-04: `verified_email` left the assertion types in v0.6.
    if body.get("assertion_type").and_then(Value::as_str) != Some(ID_JAG_URN) {
        return Err(ApiError::InvalidRequest("assertion_type must be the ID-JAG URN".into()));
    }
    let assertion = body
        .get("assertion")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::InvalidRequest("`assertion` is required".into()))?;
    let verified = match verified_fresh(state, assertion, now, true).await? {
        Ok(v) => v,
        Err(refused) => return Ok(Err(refused)),
    };
    let email = verified.verified_email();
    let registration_id = format!(
        "reg_{}",
        &hash(&format!("{}\n{}\n{}", verified.iss, verified.sub, verified.aud))[..22]
    );
    let (st, rid, silent_link) = (
        state.clone(),
        registration_id.clone(),
        state.defects.contains(Defect::V06SilentLink),
    );
    let matched = state
        .db
        .call(move |conn| {
            let (delegated, existing) = spend_and_link(conn, &st, &verified, email.as_deref(), &rid, now, Defect::SkipReplayCheck)?;
            let post = serde_json::to_string(&st.config.scopes).unwrap_or_default();
            // V6-IDJAG-04: an account found by email alone is not bound without the user.
            if let (None, Some(_), false) = (&delegated, &existing, silent_link) {
                let claim_token = secret("clm_", 24);
                let expires = now + st.config.ttl.registration;
                let account_email = email.clone().unwrap_or_default();
                put_step_up(conn, &rid, now, expires, &hash(&claim_token), &account_email, &post)?;
                let attempt = crate::attempt::start_attempt(conn, &st, &rid, &account_email, now)?;
                return Ok(Matched::StepUp(rid, claim_token, expires, attempt));
            }
            let user = match delegated.or(existing) {
                Some(u) => u,
                None => create_user(conn, email.as_deref(), email.is_some(), None, now)?,
            };
            delegate_if_new(conn, &verified.iss, &verified.sub, &user)?;
            put_claimed_identity(conn, &rid, now, &user, email.as_deref(), &post)?;
            Ok(Matched::Registered(rid, email))
        })
        .await?;
    Ok(Ok(matched))
}

/// Whether a SET names an event other than the revocation one (read without verifying; only
/// the defect asks).
fn unknown_events(token: &str) -> bool {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap_or_default();
    let claims: Value = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    claims["events"]
        .as_object()
        .is_some_and(|e| e.keys().any(|k| k != verify::REVOKED_EVENT))
}

/// `POST /agent/event/notify` (RFC 8935): a provider's SET. The revoked event tears down every
/// registration of `(iss, sub)`, their claim handles, tokens and the delegation (b53c9ed).
pub async fn notify(State(state): State<AppState>, Now(now): Now, request: Request) -> Response {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !content_type.starts_with("application/secevent+jwt") {
        return V06Error::Set(SetCode::InvalidRequest, "the body must be application/secevent+jwt".into()).respond(&state);
    }
    let Ok(bytes) = axum::body::to_bytes(request.into_body(), 64 * 1024).await else {
        return V06Error::Set(SetCode::InvalidRequest, "the body is too large".into()).respond(&state);
    };
    let token = String::from_utf8_lossy(&bytes).trim().to_string();
    // V6-SET-03: events this service does not know are ignored (RFC 8417 §2.2), unless the
    // defect refuses the whole SET for them.
    if state.defects.contains(Defect::V06RefuseUnknownEvents) && unknown_events(&token) {
        return V06Error::Set(SetCode::InvalidRequest, "unknown event".into()).respond(&state);
    }
    let verified = match verify::verify(&state, &token, TokenKind::Logout, now).await {
        Ok(v) => v,
        Err(ApiError::InvalidIssuer) => {
            return V06Error::Set(SetCode::InvalidIssuer, "the issuer is not on the trust list".into()).respond(&state);
        }
        Err(ApiError::InvalidAudience) => {
            return V06Error::Set(SetCode::InvalidAudience, "aud does not name this service".into()).respond(&state);
        }
        Err(ApiError::InvalidSignature(_)) => {
            return V06Error::Set(SetCode::InvalidKey, "the signature does not verify".into()).respond(&state);
        }
        Err(e) => return V06Error::Set(SetCode::InvalidRequest, e.code().replace('_', " ").into()).respond(&state),
    };
    if state.defects.contains(Defect::V06SetIgnored) {
        return StatusCode::ACCEPTED.into_response();
    }
    let keep_claim = state.defects.contains(Defect::V06TeardownKeepsClaim);
    let (defects, instance) = (state.defects.clone(), state.instance.clone());
    let torn = state
        .db
        .call(move |conn| {
            if !logout_jti_is_fresh(conn, &defects, &instance, &verified.iss, &verified.jti, verified.replay_until, now)? {
                return Ok(false);
            }
            for rid in linked_registrations(conn, &verified.iss, &verified.sub)? {
                mark_revoked(conn, &rid, keep_claim)?;
                revoke_credentials(conn, &rid, None)?;
                supersede_ceremonies(conn, &rid)?;
            }
            forget_delegation(conn, &verified.iss, &verified.sub)?;
            Ok(true)
        })
        .await;
    match torn {
        Ok(true) => StatusCode::ACCEPTED.into_response(),
        Ok(false) => V06Error::Set(SetCode::InvalidRequest, "the SET was delivered before (jti)".into()).respond(&state),
        Err(e) => state.reply(Err(e)),
    }
}
