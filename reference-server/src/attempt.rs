//! Claim attempts of the v0.6 family: one live attempt per registration, its link token and
//! code stored hashed. Two ceremonies share them: v0.6 and 11fa014 hand the agent a code the
//! user types on the service's page; the production dialect's page reveals the code to the
//! user once they confirm, and the agent never sees it until the user reads it back.

use serde_json::{Value, json};

use crate::defect::Defect;
use crate::error::ApiError;
use crate::secrets::{hash, iso, ordered_id, otp, secret};
use crate::state::AppState;
use crate::store::ceremony::{insert_ceremony, supersede_ceremonies};

/// Seconds between polls the agent must keep (RFC 8628 `interval`).
pub const INTERVAL: i64 = 5;

/// Where the production dialect's `claim.attempt.verification_uri` points.
pub(crate) const CLAIM_PAGE: &str = "/agent-claim";

/// A fresh attempt for `registration_id`, superseding earlier ones, in the profile's ceremony:
/// `{id, expires_at, block}`, `block` being what the answer carries (`claim` in v0.6,
/// `claim.attempt` in the production dialect).
pub fn start_attempt(
    conn: &crate::store::Connection,
    state: &AppState,
    registration_id: &str,
    email: &str,
    now: i64,
) -> Result<Value, ApiError> {
    supersede_ceremonies(conn, registration_id)?;
    if state.config.profile.has_claim_grant() {
        typed_code(conn, state, registration_id, email, now)
    } else {
        read_back(conn, state, registration_id, email, now)
    }
}

/// v0.6: the code goes to the agent, which surfaces it with the link.
fn typed_code(conn: &crate::store::Connection, state: &AppState, registration_id: &str, email: &str, now: i64) -> Result<Value, ApiError> {
    let code = if state.defects.contains(Defect::V06ShortUserCode) {
        otp()[2..].to_string()
    } else {
        otp()
    };
    let token_bytes = state.secret_bytes(Defect::V06WeakAttemptToken);
    let (id, token) = (ordered_id("cla_"), secret("cat_", token_bytes));
    let ttl = state.config.ttl.claim_attempt;
    // The window enforced; the one stated is always `ttl`.
    let enforced = if state.defects.contains(Defect::V06AttemptWindowOverstated) {
        ttl / 2
    } else {
        ttl
    };
    insert_ceremony(conn, &id, registration_id, email, &hash(&token), &hash(&code), now, now + enforced)?;
    let return_to = format!("/claim?claim_attempt_token={token}");
    let verification_uri = format!(
        "{}/login?return_to={}",
        state.base_url,
        url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect::<String>()
    );
    Ok(json!({
        "id": id,
        "expires_at": iso(now + ttl),
        "block": { "user_code": code, "expires_in": ttl, "verification_uri": verification_uri, "interval": INTERVAL },
    }))
}

/// The production dialect: the link carries an opaque attempt token and never the code, which
/// the page reveals (and stores hashed) only once the user confirms.
fn read_back(conn: &crate::store::Connection, state: &AppState, registration_id: &str, email: &str, now: i64) -> Result<Value, ApiError> {
    let token_bytes = state.secret_bytes(Defect::V06WeakAttemptToken);
    let (id, token) = (ordered_id("cla_"), secret("cat_", token_bytes));
    let ttl = state.config.ttl.claim_attempt;
    insert_ceremony(conn, &id, registration_id, email, &hash(&token), "", now, now + ttl)?;
    let verification_uri = format!("{}{CLAIM_PAGE}?token={token}", state.base_url);
    let mut block = json!({ "verification_uri": verification_uri, "expires_at": iso(now + ttl) });
    if state.defects.contains(Defect::V07pAttemptRevealsCode) {
        block["user_code"] = json!(otp());
    }
    Ok(json!({ "id": id, "expires_at": iso(now + ttl), "block": block }))
}
