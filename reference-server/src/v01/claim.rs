//! The v0.1 claim ceremony up to the OTP: `/claim`, the user's page, the challenge
//! (CLAIM-01..15, CLAIM-29).

use axum::Json;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;

use crate::defect::Defect;
use crate::error::ApiError;
use crate::http::{invalid, json_body, str_member};
use crate::outbox::drain_outbox;
use crate::secrets::{hash, iso, ordered_id, otp, secret};
use crate::state::{AppState, Now};
use crate::store::audit::audit;
use crate::store::claim::{
    AttemptState, attempt_by_token, insert_attempt, live_attempt_for, replace_otp, set_otp_by_token, supersede_attempts,
};
use crate::store::outbox::enqueue_mail;
use crate::store::registration::registration_by_claim_token;

// ---------------------------------------------------------------------------------------------
// Claim ceremony
// ---------------------------------------------------------------------------------------------

pub(crate) struct Attempt {
    pub(crate) id: String,
    pub(crate) token: Option<String>,
    pub(crate) expires_at: i64,
}

/// Starts (or, for the same email while live, reuses) a claim attempt and mails its link.
pub(crate) async fn start_attempt(state: &AppState, now: i64, registration_id: &str, email: &str) -> Result<Attempt, ApiError> {
    let (rid, email_owned, ttl) = (registration_id.to_string(), email.to_string(), state.config.ttl.claim_attempt);
    let repeat_defect = state.defects.contains(Defect::NewAttemptOnRepeatClaim) || state.follows("C-07/v0.7-new-attempt");
    let token_bytes = state.secret_bytes(Defect::WeakAttemptToken);
    let (base_url, send) = (state.base_url.clone(), !state.defects.contains(Defect::SendNoClaimEmail));
    let attempt = state
        .db
        .call(move |conn| {
            // CLAIM-06 (informational): the same email while the attempt is live is idempotent.
            let live = live_attempt_for(conn, &rid, &email_owned, now)?;
            if let Some((id, expires_at)) = live.filter(|_| !repeat_defect) {
                return Ok(Attempt {
                    id,
                    token: None,
                    expires_at,
                });
            }
            // CLAIM-05: a new attempt supersedes every earlier one, token and OTP alike.
            supersede_attempts(conn, &rid)?;
            let id = ordered_id("cla_");
            let token = secret("cvt_", token_bytes);
            let expires_at = now + ttl;
            insert_attempt(conn, &id, &rid, &email_owned, &hash(&token), now, expires_at)?;
            // CLAIM-02: the link leads to a service page and carries the claim_attempt_token.
            // The mail is queued in this transaction: the attempt and its mail exist together.
            if send {
                let link = format!("{base_url}/agent/auth/claim/view?token={token}");
                enqueue_mail(conn, &email_owned, &rid, &link, &iso(expires_at))?;
            }
            // AUDIT-02
            audit(
                conn,
                now,
                "claim.requested",
                json!({ "registration_id": rid, "email": email_owned }),
            )?;
            Ok(Attempt {
                id,
                token: Some(token),
                expires_at,
            })
        })
        .await?;
    if attempt.token.is_some() {
        tokio::spawn(drain_outbox(state.clone()));
    }
    Ok(attempt)
}

/// `POST /agent/auth/claim` (CLAIM-01..10).
pub async fn claim(State(state): State<AppState>, Now(now): Now, request: Request) -> Response {
    let outcome = async {
        let body = json_body(&state, request).await?;
        // CLAIM-10: a missing member is a malformed request, not an unknown token.
        let claim_token = match str_member(&body, "claim_token") {
            Err(_) if state.defects.contains(Defect::MissingClaimTokenUnauthorized) => return Err(ApiError::InvalidClaimToken),
            Ok(t) if state.defects.contains(Defect::TrimmedClaimToken) => t.trim().to_string(),
            other => other?.to_string(),
        };
        let email = str_member(&body, "email")?.to_string();
        if crate::mail::email_address(&email).is_none() {
            return Err(invalid("email is not an email address"));
        }
        let token = claim_token.clone();
        let reg = state.db.call(move |conn| registration_by_claim_token(conn, &token)).await?;
        // CLAIM-07
        let reg = reg.ok_or(ApiError::InvalidClaimToken)?;
        // REG-EMAIL-07: email-verification registrations need no explicit claim call.
        if reg.kind != "anonymous" && !state.defects.contains(Defect::ClaimEmailRegistrations) {
            return Err(ApiError::ClaimedOrInFlight);
        }
        // CLAIM-09, EXP-01: expiry is checked before the claimed status so that an expired
        // registration reads as expired; a claimed one is not expired (EXP-02).
        if reg.expired(&state.defects, now) {
            return Err(ApiError::ClaimExpired);
        }
        // CLAIM-08
        if reg.status == "claimed" && !state.defects.contains(Defect::ForgetClaimedStatus) {
            return Err(ApiError::ClaimedOrInFlight);
        }
        let attempt = start_attempt(&state, now, &reg.id, &email).await?;
        // CLAIM-04: a fresh attempt id per attempt, never the registration id.
        let attempt_id = if state.defects.contains(Defect::RegistrationIdAsAttemptId) {
            reg.id.clone()
        } else {
            attempt.id
        };
        Ok(Json(json!({
            "registration_id": reg.id,
            "claim_attempt_id": attempt_id,
            "status": "initiated",
            "expires_at": iso(attempt.expires_at),
        }))
        .into_response())
    }
    .await;
    state.reply(outcome)
}

#[derive(serde::Deserialize)]
pub struct ViewQuery {
    token: Option<String>,
}

/// `GET /agent/auth/claim/view?token=…`: the user-facing page (CLAIM-29). A plain GET mints
/// nothing (CLAIM-03): the code appears only when the user presses the button.
pub async fn claim_view(State(state): State<AppState>, Now(now): Now, Query(query): Query<ViewQuery>) -> Response {
    let Some(token) = query.token.filter(|t| !t.is_empty()) else {
        return (StatusCode::BAD_REQUEST, Html("<h1>Missing token</h1>")).into_response();
    };
    let (t, window) = (token.clone(), !state.defects.contains(Defect::IgnoreAttemptWindow));
    let found = state.db.call(move |conn| attempt_by_token(conn, &t, now, window)).await;
    match found {
        Ok(AttemptState::Live { .. }) => {}
        Ok(AttemptState::Expired) => {
            return (StatusCode::GONE, Html("<h1>Link expired</h1>")).into_response();
        }
        Ok(_) => return (StatusCode::NOT_FOUND, Html("<h1>Link invalid</h1>")).into_response(),
        Err(e) => return state.reply(Err(e)),
    }
    if state.defects.contains(Defect::MintOtpOnView) {
        let (t, fresh) = (token.clone(), hash(&otp()));
        let _ = state.db.call(move |conn| set_otp_by_token(conn, &hash(&t), &fresh)).await;
    }
    if state.defects.contains(Defect::BlankClaimPage) {
        return StatusCode::OK.into_response();
    }
    let token_json = serde_json::to_string(&token).unwrap_or_default().replace('<', "\\u003c");
    let page = format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Read this code back to the agent</title></head>
<body><h1>Read this code back to the agent</h1>
<p>An AI agent asks to act on your behalf. If you started this, show the one-time code and read it back to the agent.
If you did not, close this page: nothing happens without the code.</p>
<button id="show">Show my one-time code</button><p id="code" style="font-size:2em;font-family:monospace"></p>
<script>
pub(crate) const token = {token_json};
document.getElementById("show").addEventListener("click", async () => {{
  const r = await fetch("{base}/agent/auth/claim/attempt/challenge", {{method: "POST", headers: {{"Content-Type": "application/json"}}, body: JSON.stringify({{claim_attempt_token: token}})}});
  const body = await r.json();
  document.getElementById("code").textContent = r.ok ? body.challenge : body.message;
}});
</script></body></html>"#,
        base = state.base_url
    );
    let mut response = Html(page).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `POST /agent/auth/claim/attempt/challenge` (CLAIM-11..15): mint a new OTP.
pub async fn challenge(State(state): State<AppState>, Now(now): Now, request: Request) -> Response {
    let outcome = async {
        let body = json_body(&state, request).await?;
        let token = match str_member(&body, "claim_attempt_token")? {
            t if state.defects.contains(Defect::LenientAttemptToken) => crate::defect::trimmed_and_decoded(t),
            t => t.to_string(),
        };
        let code = if state.defects.contains(Defect::ShortOtp) {
            otp()[1..].to_string()
        } else {
            otp()
        };
        let code_hash = hash(&code);
        let otp_ttl = state.config.ttl.otp;
        // SEC-01: only the hash is stored; the plaintext is kept solely under the CLAIM-28 and
        // otp-prefix-compare defects.
        let leak = (state.defects.contains(Defect::ExposeOtpInClaimResponse) || state.defects.contains(Defect::OtpPrefixCompare))
            .then(|| code.clone());
        let window = !state.defects.contains(Defect::IgnoreAttemptWindow);
        let superseded_after_claim = state.follows("C-17/B");
        let claimed_as_expired = state.defects.contains(Defect::ClaimedAttemptReportedExpired);
        let expires_at = state
            .db
            .call(move |conn| match attempt_by_token(conn, &token, now, window)? {
                // CLAIM-13: unknown or superseded → 410 claim_superseded; claimed → 409
                // claim_completed; window closed → 410 claim_expired.
                AttemptState::Unknown => Err(ApiError::ClaimSuperseded),
                AttemptState::Claimed if claimed_as_expired => Err(ApiError::ClaimExpired),
                AttemptState::Claimed if superseded_after_claim => Err(ApiError::ClaimSuperseded),
                AttemptState::Claimed => Err(ApiError::ClaimCompleted),
                AttemptState::Expired => Err(ApiError::ClaimExpired),
                AttemptState::Live { id, registration_id } => {
                    // CLAIM-12: each mint replaces the previous OTP (kept aside only for the
                    // keep-previous-otp defect); the failure count restarts with the new code.
                    let expires_at = now + otp_ttl;
                    replace_otp(conn, &id, &code_hash, expires_at, leak.as_deref())?;
                    // AUDIT-03
                    audit(
                        conn,
                        now,
                        "otp.generated",
                        json!({ "registration_id": registration_id, "claim_attempt_id": id }),
                    )?;
                    Ok(expires_at)
                }
            })
            .await?;
        let mut response = Json(json!({ "type": "otp", "challenge": code, "expires_at": iso(expires_at) })).into_response();
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(response)
    }
    .await;
    state.reply(outcome)
}
