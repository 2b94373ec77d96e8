//! `POST /agent/auth/claim/complete` (CLAIM-16..27): the user's OTP, checked by a chain of
//! small named steps, each preceded by the requirement it implements.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::defect::Defect;
use crate::error::ApiError;
use crate::http::{json_body, scopes_json, str_member};
use crate::secrets::{hash, iso, same_hash};
use crate::state::{AppState, Now};
use crate::store::Connection;
use crate::store::audit::audit;
use crate::store::claim::{
    CurrentAttempt, any_registration_code, current_attempt, mark_claimed, record_failure, rescope_credentials, superseded_code,
};
use crate::store::credentials::revoke_credentials;
use crate::store::registration::{Registration, registration_by_claim_token};
use crate::store::users::{create_user, user_by_verified_email};
use crate::v01::register::issue_credential;

/// A claimed registration and the account it is now bound to.
struct Completion {
    registration: Registration,
    user_id: String,
}

/// Why `/complete` refuses. Kept apart from storage failures: a refusal is committed (a wrong
/// guess must count), a storage failure rolls the job back.
enum Refusal {
    /// Refused with this error.
    Api(ApiError),
    /// A wrong (or over-the-limit) code; under the CLAIM-28 defect the answer leaks `plain`.
    WrongCode { plain: Option<String> },
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

/// What one step of the chain gives: a value, a refusal to commit, or a storage failure.
type Step<T> = Result<Result<T, Refusal>, ApiError>;

/// `POST /agent/auth/claim/complete` (CLAIM-16..27).
pub async fn complete(State(state): State<AppState>, Now(now): Now, request: Request) -> Response {
    let outcome = async {
        let body = json_body(&state, request).await?;
        let claim_token = match str_member(&body, "claim_token")? {
            t if state.defects.contains(Defect::TrimmedClaimToken) => t.trim().to_string(),
            t => t.to_string(),
        };
        let given = str_member(&body, "otp")?.to_string();
        let st = state.clone();
        let completion = state.db.call(move |conn| confirm(conn, &st, now, &claim_token, &given)).await?;
        match completion {
            Ok(done) => claimed(&state, now, done).await,
            // CLAIM-28 defect: the agent-facing error body leaks the current OTP.
            Err(Refusal::WrongCode { plain: Some(plain) }) => Ok((
                StatusCode::UNAUTHORIZED,
                Json(json!({ "error": "otp_invalid", "message": format!("expected {plain}") })),
            )
                .into_response()),
            Err(Refusal::WrongCode { plain: None }) => Err(ApiError::OtpInvalid),
            Err(Refusal::Api(e)) => Err(e),
        }
    }
    .await;
    state.reply(outcome)
}

/// The checks in the order the ceremony defines, then the claim itself, in one job.
fn confirm(conn: &Connection, st: &AppState, now: i64, claim_token: &str, given: &str) -> Step<Completion> {
    let registration = match claimable(conn, st, claim_token, now)? {
        Ok(r) => r,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let Some(attempt) = current_attempt(conn, &registration.id)? else {
        return Ok(Err(ApiError::OtpNotGenerated.into()));
    };
    let Some(stored) = stored_code(conn, st, &registration, &attempt, given)? else {
        return Ok(Err(ApiError::OtpNotGenerated.into()));
    };
    // CLAIM-25: a bounded number of wrong guesses burns the code (counted in the database, so
    // for every replica; the defect counts in this instance's memory).
    let local = st.defects.contains(Defect::AttemptCounterPerInstance);
    let failures = if local {
        st.local_failures(&attempt.id, false)
    } else {
        attempt.failures
    };
    let limit_reached = failures >= st.config.max_otp_failures && !st.defects.contains(Defect::NoOtpAttemptLimit);
    if !code_matches(conn, st, &registration, &attempt, &stored, given)? || limit_reached {
        record_failure(conn, &attempt.id)?;
        if local {
            st.local_failures(&attempt.id, true);
        }
        // CLAIM-19, CLAIM-26
        return Ok(Err(Refusal::WrongCode { plain: attempt.plain }));
    }
    // CLAIM-20
    if attempt.otp_expires.is_some_and(|e| now >= e) && !st.defects.contains(Defect::IgnoreOtpExpiry) {
        return Ok(Err(ApiError::OtpExpired.into()));
    }
    let user_id = bind_account(conn, st, &attempt.email, now)?;
    claim(conn, st, &registration, &user_id, now)?;
    Ok(Ok(Completion { registration, user_id }))
}

/// The registration the claim token names, if it can still be claimed.
fn claimable(conn: &Connection, st: &AppState, claim_token: &str, now: i64) -> Step<Registration> {
    // CLAIM-23
    let Some(registration) = registration_by_claim_token(conn, claim_token)? else {
        return Ok(Err(ApiError::InvalidClaimToken.into()));
    };
    // CLAIM-22
    if registration.expired(&st.defects, now) {
        return Ok(Err(ApiError::ClaimExpired.into()));
    }
    // CLAIM-21, CLAIM-27
    if registration.status == "claimed" && !st.defects.contains(Defect::ForgetClaimedStatus) {
        return Ok(Err(ApiError::PreviouslyClaimed.into()));
    }
    Ok(Ok(registration))
}

/// CLAIM-24 (C-18): the hash of the code to compare with; none when no OTP was minted yet for
/// the current attempt.
fn stored_code(
    conn: &Connection,
    st: &AppState,
    registration: &Registration,
    attempt: &CurrentAttempt,
    given: &str,
) -> Result<Option<String>, ApiError> {
    Ok(match &attempt.otp_hash {
        Some(h) => Some(h.clone()),
        // The defect: a missing stored code is skipped instead of refused.
        None if st.defects.contains(Defect::CompleteWithoutOtp) => Some(hash(given)),
        // The CLAIM-05 defect: the superseded attempt's code stands in until a new one.
        None if st.defects.contains(Defect::SupersededOtpUntilRemint) && superseded_code(conn, &registration.id, &hash(given))? => {
            Some(hash(given))
        }
        None => None,
    })
}

/// CLAIM-19, CLAIM-31: the given code against the stored one, exactly (no trimming, every
/// character), and against nothing else.
fn code_matches(
    conn: &Connection,
    st: &AppState,
    registration: &Registration,
    attempt: &CurrentAttempt,
    stored: &str,
    given: &str,
) -> Result<bool, ApiError> {
    let given_hash = if st.defects.contains(Defect::TrimOtp) {
        hash(given.trim())
    } else {
        hash(given)
    };
    if same_hash(&given_hash, stored) {
        return Ok(true);
    }
    // CLAIM-19 defect: only as many characters as the code has are compared.
    if st.defects.contains(Defect::OtpPrefixCompare) && attempt.plain.as_deref().is_some_and(|p| given.starts_with(p)) {
        return Ok(true);
    }
    // CLAIM-12 defect: the previous OTP of this attempt still works.
    if st.defects.contains(Defect::KeepPreviousOtp) && attempt.previous.as_deref().is_some_and(|p| same_hash(&given_hash, p)) {
        return Ok(true);
    }
    // CLAIM-26 defect: an OTP of any registration works.
    if st.defects.contains(Defect::OtpNotBoundToRegistration) && any_registration_code(conn, &given_hash)? {
        return Ok(true);
    }
    // CLAIM-05 defect: OTPs of superseded attempts still work (C-16).
    Ok(st.defects.contains(Defect::KeepSupersededOtps) && superseded_code(conn, &registration.id, &given_hash)?)
}

/// MATCH-07: the account owning the claim email, or a new one; the email is now verified by
/// the OTP round trip.
fn bind_account(conn: &Connection, st: &AppState, email: &str, now: i64) -> Result<String, ApiError> {
    let existing = if st.defects.contains(Defect::ClaimCreatesNewUser) {
        None
    } else {
        user_by_verified_email(conn, email)?
    };
    match existing {
        Some(u) => Ok(u),
        None => create_user(conn, Some(email), true, None, now),
    }
}

/// Marks the registration claimed, burns its codes, re-scopes an anonymous key in place, and
/// audits it.
fn claim(conn: &Connection, st: &AppState, registration: &Registration, user_id: &str, now: i64) -> Result<(), ApiError> {
    mark_claimed(conn, &registration.id, user_id)?;
    if registration.kind == "anonymous" {
        // CLAIM-17: the same key gains post_claim_scopes in place; no rotation.
        let scopes = if st.defects.contains(Defect::KeepPreClaimScopes) {
            scopes_json(&st.config.pre_claim_scopes)
        } else {
            scopes_json(&registration.post_scopes)
        };
        rescope_credentials(conn, &registration.id, &scopes, user_id)?;
        if st.defects.contains(Defect::RotateKeyOnClaim) {
            revoke_credentials(conn, &registration.id, None)?;
        }
    }
    // AUDIT-04
    audit(
        conn,
        now,
        "claim.confirmed",
        json!({ "registration_id": registration.id, "claimed_by_user_id": user_id }),
    )
}

/// CLAIM-18: the answer to a completed claim; an email-verification registration gets its
/// credential of the requested type, with post_claim_scopes.
async fn claimed(state: &AppState, now: i64, done: Completion) -> Result<Response, ApiError> {
    let Completion {
        registration: reg,
        user_id,
    } = done;
    let mut response = json!({ "registration_id": reg.id, "status": "claimed" });
    if reg.kind == "email-verification" {
        let kind = reg.credential_type.clone().unwrap_or_else(|| "access_token".into());
        let credential = issue_credential(state, now, &reg.id, &kind, &reg.post_scopes, Some(user_id), None).await?;
        response["credential_type"] = json!(kind);
        response["credential"] = json!(credential);
        response["credential_expires"] = if kind == "access_token" {
            json!(iso(now + state.config.ttl.access_token))
        } else {
            Value::Null
        };
        response["scopes"] = json!(reg.post_scopes);
    }
    if state.defects.contains(Defect::RotateKeyOnClaim) && reg.kind == "anonymous" {
        let credential = issue_credential(state, now, &reg.id, "api_key", &reg.post_scopes, None, None).await?;
        response["credential"] = json!(credential);
    }
    Ok(state.secret_json(response))
}
