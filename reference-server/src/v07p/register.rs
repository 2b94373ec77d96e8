//! `POST /agent/identity` in the production dialect (AUTH.md Step 3 and Step 6 at 9f8a4ee):
//! anonymous, `service_auth`, ID-JAG and `refresh`, each answered in the nested envelope.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::defect::Defect;
use crate::error::ApiError;
use crate::secrets::iso;
use crate::state::{AppState, Now};
use crate::v06::create::{create_anonymous, create_service_auth};
use crate::v06::identity::{Matched, match_id_jag, step_up_401};
use crate::v06::token::assertion_for;
use crate::v06::wire::{json_body, no_store};

/// `POST /agent/identity`: dispatch on `type`.
pub async fn register(State(state): State<AppState>, Now(now): Now, request: Request) -> Response {
    let ip = crate::http::peer_ip(&request);
    let outcome = async {
        let body = json_body(&state, request).await?;
        let kind = body.get("type").and_then(Value::as_str).unwrap_or_default().to_string();
        if let Some(ip) = ip {
            let (key, limit) = if kind == "anonymous" {
                (format!("anon:{ip}"), state.config.rate.anonymous_per_ip)
            } else {
                (format!("identity:{ip}"), state.config.rate.identity_per_ip)
            };
            state.rate_check(key, limit, now).await?;
        }
        match kind.as_str() {
            "anonymous" if state.config.anonymous || state.defects.contains(Defect::V06AnonymousDespiteOff) => anonymous(&state, now).await,
            "anonymous" => Err(ApiError::AnonymousNotEnabled),
            "service_auth" if state.config.verified_email => service_auth(&state, now, &body).await,
            "service_auth" => Err(ApiError::ServiceAuthNotEnabled),
            "identity_assertion" => identity_assertion(&state, now, &body).await,
            "refresh" => crate::v07p::refresh::refresh(&state, now, &body).await,
            _ => Err(ApiError::InvalidRequest(
                "`type` must be anonymous, service_auth, identity_assertion or refresh".into(),
            )),
        }
    }
    .await;
    state.reply(outcome)
}

/// The `claim` block of a registration answer.
fn claim_block(state: &AppState, claim_token: &str, expires: i64, attempt: Option<&Value>) -> Value {
    let mut claim = json!({
        "token": claim_token,
        "expires_at": iso(expires),
        "url": format!("{}/agent/identity/claim", state.base_url),
    });
    if let Some(attempt) = attempt {
        claim["attempt"] = attempt.clone();
    }
    claim
}

/// `{"type":"anonymous"}`: a pre-claim assertion now; the claim is optional and later.
async fn anonymous(state: &AppState, now: i64) -> Result<Response, ApiError> {
    let created = create_anonymous(state, now).await?;
    let (registration_id, claim_token, expires, pre, post) = (created.id, created.claim_token, created.expires, created.pre, created.post);
    let (assertion, assertion_expires) = assertion_for(state, now, &registration_id, &pre, false, None)?;
    let mut identity = json!({ "assertion": assertion, "expires_at": iso(assertion_expires) });
    if state.defects.contains(Defect::V07pRefreshWithoutClaim) {
        identity["refresh_token"] = crate::v07p::refresh::unearned(now);
    }
    let body = if state.defects.contains(Defect::V07pFlatEnvelope) {
        json!({
            "registration_id": registration_id,
            "registration_type": "anonymous",
            "identity_assertion": identity["assertion"],
            "assertion_expires": identity["expires_at"],
            "pre_claim_scopes": pre,
            "post_claim_scopes": post,
            "claim_url": format!("{}/agent/identity/claim", state.base_url),
            "claim_token": claim_token,
            "claim_token_expires": iso(expires),
        })
    } else {
        json!({
            "id": registration_id,
            "type": "anonymous",
            "identity": identity,
            "scopes": { "pre_claim": pre, "post_claim": post },
            "claim": claim_block(state, &claim_token, expires, None),
        })
    };
    Ok(no_store(state, StatusCode::OK, body))
}

/// `{"type":"service_auth","login_hint":…}`: no assertion yet; the first attempt is bundled.
async fn service_auth(state: &AppState, now: i64, body: &Value) -> Result<Response, ApiError> {
    let created = create_service_auth(state, now, body).await?;
    Ok(no_store(
        state,
        StatusCode::OK,
        json!({
            "id": created.id,
            "type": "service_auth",
            "scopes": { "post_claim": created.post },
            "claim": claim_block(state, &created.claim_token, created.expires, created.attempt.as_ref().map(|a| &a["block"])),
        }),
    ))
}

/// `{"type":"identity_assertion",…}`: v0.6's matching, answered in this dialect's envelope
/// (the text keeps `scopes` an array here, C-V7P-03).
async fn identity_assertion(state: &AppState, now: i64, body: &Value) -> Result<Response, ApiError> {
    let matched = match match_id_jag(state, now, body).await? {
        Ok(m) => m,
        Err(refused) => return Ok(refused),
    };
    match matched {
        Matched::Registered(rid, email) => {
            let (assertion, expires) = assertion_for(state, now, &rid, &state.config.scopes, true, email.as_deref())?;
            let mut identity = json!({ "assertion": assertion, "expires_at": iso(expires) });
            if state.defects.contains(Defect::V07pRefreshWithoutClaim) {
                identity["refresh_token"] = crate::v07p::refresh::unearned(now);
            }
            let body = if state.defects.contains(Defect::V07pFlatEnvelope) {
                json!({
                    "registration_id": rid,
                    "registration_type": "identity_assertion",
                    "identity_assertion": identity["assertion"],
                    "assertion_expires": identity["expires_at"],
                    "scopes": state.config.scopes,
                })
            } else {
                json!({ "id": rid, "type": "identity_assertion", "identity": identity, "scopes": state.config.scopes })
            };
            Ok(no_store(state, StatusCode::OK, body))
        }
        Matched::StepUp(rid, claim_token, expires, attempt) => Ok(step_up_401(json!({
            "error": "interaction_required",
            "error_description": "this identity matches an existing account; the user must confirm the link",
            "id": rid,
            "type": "identity_assertion",
            "scopes": { "post_claim": state.config.scopes },
            "claim": claim_block(state, &claim_token, expires, Some(&attempt["block"])),
        }))),
    }
}
