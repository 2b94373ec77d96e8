//! The production dialect's ceremony (AUTH.md Step 4 at 9f8a4ee): the agent starts an attempt
//! (`{type: "service_auth", claim_token, login_hint}`), hands the user the link, and completes
//! at `{claim_endpoint}/complete` with the `user_code` the user read back off the page.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::defect::Defect;
use crate::error::ApiError;
use crate::secrets::{hash, iso};
use crate::state::{AppState, Now};
use crate::store::ceremony::{Attempt, live_attempt, record_wrong_code, set_ceremony_status};
use crate::store::credentials::revoke_credentials;
use crate::store::registration::claim_for;
use crate::store::users::{create_user, delegate_links, user_by_verified_email};
use crate::v06::claim::{claimable, fresh_attempt};
use crate::v06::create::plausible_email;
use crate::v06::wire::{json_body, no_store};

/// Wrong codes an attempt tolerates before its code is dead (RFC 8628 §5.1's brute-force
/// bound, which the text's six-digit code needs as much as v0.6's did).
const MAX_FAILURES: i64 = 5;

/// `POST /agent/identity/claim` (Step 4a): a fresh attempt for the registration `claim_token`
/// names, bound to the `login_hint`. `type` is the claim method, always `service_auth`.
pub async fn start(State(state): State<AppState>, Now(now): Now, request: Request) -> Response {
    let outcome = async {
        let body = json_body(&state, request).await?;
        if body.get("type").and_then(Value::as_str) != Some("service_auth") {
            return Err(ApiError::InvalidRequest("`type` must be service_auth".into()));
        }
        let (Some(token), Some(hint)) = (body["claim_token"].as_str(), body["login_hint"].as_str()) else {
            return Err(ApiError::InvalidRequest("`claim_token` and `login_hint` are required".into()));
        };
        if !plausible_email(hint) {
            return Err(ApiError::InvalidLoginHint);
        }
        let (rid, attempt) = fresh_attempt(&state, now, token, hint).await?;
        Ok(no_store(
            &state,
            StatusCode::OK,
            json!({ "id": rid, "type": "service_auth", "attempt": attempt["block"] }),
        ))
    }
    .await;
    state.reply(outcome)
}

/// `POST /agent/identity/claim/complete` (Step 4c): `{claim_token, user_code}`. One-shot: the
/// registration is claimed by the account that confirmed, its pre-claim access tokens die, and
/// the answer carries the post-claim assertion and the only copy of a refresh token.
pub async fn complete(State(state): State<AppState>, Now(now): Now, request: Request) -> Response {
    let outcome = async {
        let body = json_body(&state, request).await?;
        let (Some(token), Some(code)) = (body["claim_token"].as_str(), body["user_code"].as_str()) else {
            return Err(ApiError::InvalidRequest("`claim_token` and `user_code` are required".into()));
        };
        let (h, code, st) = (hash(token), code.to_string(), state.clone());
        let claimed = state
            .db
            .call(move |conn| {
                let target = claimable(conn, &st, &h, now)?;
                let attempt = live_attempt(conn, &target.id)?
                    .ok_or_else(|| ApiError::InvalidRequest("no claim attempt; start one at the claim endpoint".into()))?;
                match check_code(&st, &attempt, &code, now) {
                    Ok(()) => {}
                    Err(ApiError::InvalidUserCode) => {
                        record_wrong_code(conn, &attempt.id)?;
                        return Ok(Err(ApiError::InvalidUserCode));
                    }
                    Err(e) => return Ok(Err(e)),
                }
                set_ceremony_status(conn, &attempt.id, "completed")?;
                let user = match user_by_verified_email(conn, &attempt.email)? {
                    Some(u) => u,
                    None => create_user(conn, Some(&attempt.email), true, None, now)?,
                };
                claim_for(conn, &target.id, &user, Some(&attempt.email))?;
                delegate_links(conn, &target.id, &user)?;
                if !st.defects.contains(Defect::V06KeepPreClaimTokens) {
                    revoke_credentials(conn, &target.id, Some("token_endpoint"))?;
                }
                let refresh = crate::v07p::refresh::issue(conn, &target.id, None, now)?;
                Ok(Ok((target.id, attempt.email, refresh)))
            })
            .await?;
        // A refused code is committed (it counts against the attempt), then answered.
        let (rid, email, refresh) = claimed?;
        let (assertion, expires) = crate::v06::token::assertion_for(&state, now, &rid, &state.config.scopes, true, Some(&email))?;
        let mut identity = json!({ "assertion": assertion, "expires_at": iso(expires) });
        if !state.defects.contains(Defect::V07pCompleteWithoutRefreshToken) {
            identity["refresh_token"] = refresh;
        }
        Ok(no_store(
            &state,
            StatusCode::OK,
            json!({ "id": rid, "status": "claimed", "identity": identity }),
        ))
    }
    .await;
    state.reply(outcome)
}

/// The attempt's checks in the text's order: its window, whether the user confirmed, the code.
fn check_code(state: &AppState, attempt: &Attempt, code: &str, now: i64) -> Result<(), ApiError> {
    let dead = (now >= attempt.expires_at && !state.defects.contains(Defect::V07pCodeNeverExpires))
        || (attempt.failures >= MAX_FAILURES && !state.defects.contains(Defect::V07pUnboundedGuessing));
    if dead {
        return Err(ApiError::UserCodeExpired);
    }
    match attempt.status.as_str() {
        "pending" if state.defects.contains(Defect::V07pUnconfirmedAsWrongCode) => Err(ApiError::InvalidUserCode),
        "pending" => Err(ApiError::ClaimNotConfirmed),
        "confirmed" | "completed" => {
            let right = crate::secrets::same_hash(&hash(code), &attempt.code_hash);
            if right || state.defects.contains(Defect::V07pAnyCodeCompletes) {
                Ok(())
            } else {
                Err(ApiError::InvalidUserCode)
            }
        }
        _ => Err(ApiError::ClaimedOrInFlight),
    }
}
