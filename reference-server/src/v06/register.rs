//! `POST /agent/identity` (v0.6 Step 3): dispatch on `type`, and anonymous registration.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::defect::Defect;
use crate::error::ApiError;
use crate::secrets::iso;
use crate::state::{AppState, Now};
use crate::v06::create::create_anonymous;
use crate::v06::token::assertion_for;
use crate::v06::wire::{json_body, no_store};

/// `POST /agent/identity` (v0.6 Step 3). Only `anonymous` is offered in this slice; the other
/// types answer the not-enabled codes the text gives agents to fall back on.
pub async fn register(State(state): State<AppState>, Now(now): Now, request: Request) -> Response {
    let ip = crate::http::peer_ip(&request);
    let outcome = async {
        let body = json_body(&state, request).await?;
        // V6-ERR-02: per-address limits, as under v0.1 (anonymous tighter than the rest).
        if let Some(ip) = ip {
            let anonymous = body.get("type").and_then(Value::as_str) == Some("anonymous");
            let (key, limit) = if anonymous {
                (format!("anon:{ip}"), state.config.rate.anonymous_per_ip)
            } else {
                (format!("identity:{ip}"), state.config.rate.identity_per_ip)
            };
            state.rate_check(key, limit, now).await?;
        }
        let lenient = state.defects.contains(Defect::LenientRegistrationType);
        let known = ["anonymous", "service_auth", "identity_assertion"];
        match body
            .get("type")
            .and_then(Value::as_str)
            .map(|g| crate::defect::taken_for(lenient, g, known))
        {
            Some("anonymous") if state.config.anonymous || state.defects.contains(Defect::V06AnonymousDespiteOff) => {
                register_anonymous(&state, now).await
            }
            Some("anonymous") => Err(ApiError::AnonymousNotEnabled),
            Some(_) if state.defects.contains(Defect::V06UnknownTypeAsAnonymous) => register_anonymous(&state, now).await,
            Some("service_auth") if state.config.verified_email => crate::v06::claim::register_service_auth(&state, now, &body).await,
            Some("service_auth") => Err(ApiError::ServiceAuthNotEnabled),
            // v0.6 moved the email path to `service_auth`; the defect still takes the old body.
            Some("identity_assertion")
                if body.get("assertion_type").and_then(Value::as_str) == Some("verified_email")
                    && state.defects.contains(Defect::V06AcceptVerifiedEmail) =>
            {
                let hint = json!({ "login_hint": body.get("assertion").cloned().unwrap_or(Value::Null) });
                crate::v06::claim::register_service_auth(&state, now, &hint).await
            }
            Some("identity_assertion") => crate::v06::identity::register(&state, now, &body).await,
            _ => Err(ApiError::InvalidRequest(
                "`type` must be anonymous, service_auth or identity_assertion".into(),
            )),
        }
    }
    .await;
    match outcome {
        Ok(r) => r,
        Err(e) => state.reply(Err(e)),
    }
}

pub(crate) async fn register_anonymous(state: &AppState, now: i64) -> Result<Response, ApiError> {
    let created = create_anonymous(state, now).await?;
    let (registration_id, claim_token, expires, pre, post) = (created.id, created.claim_token, created.expires, created.pre, created.post);
    let (assertion, assertion_expires) = assertion_for(state, now, &registration_id, &pre, false, None)?;
    let mut body = json!({
        "registration_id": registration_id,
        "registration_type": "anonymous",
        "identity_assertion": assertion,
        "assertion_expires": iso(assertion_expires),
        "pre_claim_scopes": pre,
        "claim_url": format!("{}/agent/identity/claim", state.base_url),
        "claim_token": claim_token,
        "claim_token_expires": iso(expires),
        "post_claim_scopes": post,
    });
    if state.defects.contains(Defect::V06RegistrationWithoutAssertion)
        && let Some(m) = body.as_object_mut()
    {
        m.remove("identity_assertion");
    }
    Ok(no_store(state, StatusCode::OK, body))
}
