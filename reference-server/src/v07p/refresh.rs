//! Refresh tokens (AUTH.md Step 6 at 9f8a4ee): a claim's completion hands out the first;
//! `{"type":"refresh","refresh_token"}` at `/agent/identity` answers a fresh assertion and the
//! next token of the chain, spending the one presented. A spent token presented again is
//! refused and, as the OAuth 2.0 Security BCP (RFC 9700 §4.14.2) describes for rotation, ends
//! its whole chain: one of the two parties holding it is not the client (C-V7P-01, reading B).

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::defect::Defect;
use crate::error::ApiError;
use crate::secrets::{hash, iso, secret};
use crate::state::AppState;
use crate::store::refresh::{insert_refresh, presented_refresh, spend_family, spend_refresh};
use crate::store::registration::{Mintable, mintable};
use crate::v06::wire::no_store;

/// How long a refresh token lives (the text's example: a month).
pub(crate) const REFRESH_TTL: i64 = 30 * 86_400;

/// A fresh refresh token for `registration_id`, of `family` (a new chain when `None`), stored
/// hashed: `{value, expires_at}`.
pub(crate) fn issue(conn: &crate::store::Connection, registration_id: &str, family: Option<&str>, now: i64) -> Result<Value, ApiError> {
    let token = secret("rt_", 24);
    let family = family.map_or_else(|| hash(&token), str::to_string);
    insert_refresh(conn, &hash(&token), registration_id, &family, now + REFRESH_TTL)?;
    Ok(json!({ "value": token, "expires_at": iso(now + REFRESH_TTL) }))
}

/// `{"type":"refresh","refresh_token":…}`: rotates the token and answers the registration with
/// a fresh `identity.assertion` and the next refresh token.
pub async fn refresh(state: &AppState, now: i64, body: &Value) -> Result<Response, ApiError> {
    let token = body
        .get("refresh_token")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::InvalidRequest("`refresh_token` is required".into()))?;
    let (h, st, presented) = (hash(token), state.clone(), token.to_string());
    let rotated = state
        .db
        .call(move |conn| {
            let Some(found) = presented_refresh(conn, &h)? else {
                return Ok(Err(if st.defects.contains(Defect::V07pUnknownRefreshTokenInvalidRequest) {
                    ApiError::InvalidRequest("no such refresh token".into())
                } else {
                    ApiError::InvalidRefreshToken
                }));
            };
            if found.spent && !st.defects.contains(Defect::V07pRefreshReusable) {
                if !st.defects.contains(Defect::V07pReuseKeepsFamily) {
                    spend_family(conn, &found.family)?;
                }
                return Ok(Err(ApiError::InvalidRefreshToken));
            }
            if now >= found.expires_at && !st.defects.contains(Defect::V07pRefreshNeverExpires) {
                return Ok(Err(ApiError::InvalidRefreshToken));
            }
            // A registration a provider revoked, or one never claimed, holds no usable token.
            let Some(Mintable { status, email, .. }) = mintable(conn, &found.registration_id)? else {
                return Ok(Err(ApiError::InvalidRefreshToken));
            };
            if status != "claimed" {
                return Ok(Err(ApiError::InvalidRefreshToken));
            }
            let next = if st.defects.contains(Defect::V07pRefreshNotRotated) {
                json!({ "value": presented, "expires_at": iso(found.expires_at) })
            } else {
                spend_refresh(conn, &h)?;
                issue(conn, &found.registration_id, Some(found.family.as_str()), now)?
            };
            Ok(Ok((found.registration_id, email, next)))
        })
        .await?;
    let (rid, email, next) = rotated?;
    let (assertion, expires) = crate::v06::token::assertion_for(state, now, &rid, &state.config.scopes, true, email.as_deref())?;
    Ok(no_store(
        state,
        StatusCode::OK,
        json!({
            "id": rid,
            "type": "refresh",
            "identity": { "assertion": assertion, "expires_at": iso(expires), "refresh_token": next },
        }),
    ))
}

/// A made-up refresh token for a registration that holds none (the defect that answers an
/// anonymous registration with one).
pub(crate) fn unearned(now: i64) -> Value {
    json!({ "value": secret("rt_", 24), "expires_at": iso(now + REFRESH_TTL) })
}
