//! Registrations of the v0.6 family as they are stored, before any profile words its answer:
//! anonymous ones, and `service_auth` ones with their first attempt. v0.6 answers them flat,
//! the production dialect nested.

use serde_json::Value;

use crate::defect::Defect;
use crate::error::ApiError;
use crate::secrets::{hash, ordered_id};
use crate::state::AppState;
use crate::store::registration::{insert_anonymous, insert_service_auth};

/// A registration just stored, as its answer names it: its id, its claim token (returned
/// once), when the claim window closes, its scopes before and after a claim, and (for
/// `service_auth`) the attempt [`crate::attempt::start_attempt`] started.
pub(crate) struct NewRegistration {
    pub(crate) id: String,
    pub(crate) claim_token: String,
    pub(crate) expires: i64,
    pub(crate) pre: Vec<String>,
    pub(crate) post: Vec<String>,
    pub(crate) attempt: Option<Value>,
}

/// Stores an unclaimed anonymous registration (v0.6 Step 3; the production dialect's too).
pub(crate) async fn create_anonymous(state: &AppState, now: i64) -> Result<NewRegistration, ApiError> {
    // V6-REG-07: unguessable; the defect numbers registrations in order.
    let id = if state.defects.contains(Defect::V06SequentialRegistrationId) {
        format!("reg_{:012}", SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    } else {
        ordered_id("reg_")
    };
    let claim_token = state.mint_secret("clm_", Defect::WeakClaimToken);
    let expires = now + state.config.ttl.registration;
    let (pre, post) = (state.config.pre_claim_scopes.clone(), state.config.scopes.clone());
    let (rid, claim_hash, pre_json, post_json) = (
        id.clone(),
        hash(&claim_token),
        serde_json::to_string(&pre).unwrap_or_default(),
        serde_json::to_string(&post).unwrap_or_default(),
    );
    state
        .db
        .call(move |conn| insert_anonymous(conn, &rid, "access_token", now, expires, &claim_hash, &pre_json, &post_json))
        .await?;
    Ok(NewRegistration {
        id,
        claim_token,
        expires,
        pre,
        post,
        attempt: None,
    })
}

/// The email shape `service_auth` accepts as a `login_hint` (CHANGELOG v0.6: today, an email).
pub(crate) fn plausible_email(hint: &str) -> bool {
    let Some((local, domain)) = hint.split_once('@') else {
        return false;
    };
    !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !hint.contains(char::is_whitespace)
}

/// Stores a `service_auth` registration bound to the body's `login_hint` and starts its first
/// attempt in the same transaction (v0.6 Step 3; the production dialect's too).
pub(crate) async fn create_service_auth(state: &AppState, now: i64, body: &Value) -> Result<NewRegistration, ApiError> {
    let hint = body
        .get("login_hint")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::InvalidRequest("`login_hint` is required".into()))?
        .to_string();
    if !plausible_email(&hint) && !state.defects.contains(Defect::V06AnyLoginHint) {
        return Err(ApiError::InvalidLoginHint);
    }
    let id = ordered_id("reg_");
    let claim_token = state.mint_secret("clm_", Defect::WeakClaimToken);
    let expires = now + state.config.ttl.registration;
    let post = state.config.scopes.clone();
    let (rid, claim_hash, post_json, st) = (
        id.clone(),
        hash(&claim_token),
        serde_json::to_string(&post).unwrap_or_default(),
        state.clone(),
    );
    let attempt = state
        .db
        .call(move |conn| {
            insert_service_auth(conn, &rid, now, expires, &claim_hash, &hint, &post_json)?;
            crate::attempt::start_attempt(conn, &st, &rid, &hint, now)
        })
        .await?;
    Ok(NewRegistration {
        id,
        claim_token,
        expires,
        pre: Vec::new(),
        post,
        attempt: Some(attempt),
    })
}

/// The next registration number under the v06-sequential-registration-id defect.
pub(crate) static SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
