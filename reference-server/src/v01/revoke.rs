//! `POST /agent/auth/revoke`: a provider's logout token (REVOKE-01..21).

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::defect::Defect;
use crate::error::ApiError;
use crate::http::{body_bytes, content_type_is, invalid};
use crate::state::{AppState, Now};
use crate::store::audit::audit;
use crate::store::credentials::{revoke_subject, revoke_whole_user};
use crate::store::replay::logout_jti_is_fresh;
use crate::verify::{self, TokenKind};

// ---------------------------------------------------------------------------------------------
// Revocation
// ---------------------------------------------------------------------------------------------

/// `POST /agent/auth/revoke` (REVOKE-01..21): a provider's logout token.
pub async fn revoke(State(state): State<AppState>, Now(now): Now, request: Request) -> Response {
    let outcome = async {
        let (headers, bytes) = body_bytes(request).await?;
        let body = String::from_utf8(bytes.to_vec()).map_err(|_| invalid("the body is not UTF-8"))?;
        // REVOKE-01, REVOKE-15: the auth.md wire format, not BCL's form POST (C-20).
        let token = if content_type_is(&headers, "application/logout+jwt") {
            body.trim().to_string()
        } else if state.defects.contains(Defect::AcceptFormLogout) {
            url::form_urlencoded::parse(body.as_bytes())
                .find(|(k, _)| k == "logout_token")
                .map(|(_, v)| v.into_owned())
                .unwrap_or(body)
        } else {
            return Err(invalid("expected a JWT body with Content-Type application/logout+jwt"));
        };
        if token.is_empty() {
            return Err(invalid("empty body"));
        }
        let verified = verify::verify(&state, &token, TokenKind::Logout, now).await?;
        let st = state.clone();
        let revoked = state
            .db
            .call(move |conn| {
                // REVOKE-11: a logout token is processed once.
                if !logout_jti_is_fresh(
                    conn,
                    &st.defects,
                    &st.instance,
                    &verified.iss,
                    &verified.jti,
                    verified.replay_until,
                    now,
                )? {
                    return Err(ApiError::ReplayDetected);
                }
                if st.defects.contains(Defect::IgnoreLogoutTokens) {
                    return Ok(0);
                }
                if st.defects.contains(Defect::RevokeWholeUser) {
                    revoke_whole_user(conn, &verified.iss, &verified.sub, &verified.aud)?;
                }
                // REVOKE-02, REVOKE-03, REVOKE-18, REVOKE-22: every credential of exactly this
                // triple, and only those: keys from the anonymous and verified-email flows of the
                // same person were not delegated by the provider and are not its to revoke.
                // The defect: `sub` alone, whichever issuer delegated it.
                let iss = (!st.defects.contains(Defect::RevokeBySubAlone)).then_some(verified.iss.as_str());
                let n = revoke_subject(conn, iss, &verified.sub, &verified.aud)?;
                // AUDIT-06
                audit(
                    conn,
                    now,
                    "registration.revoked",
                    json!({ "iss": verified.iss, "sub": verified.sub, "credentials": n }),
                )?;
                Ok(n)
            })
            .await?;
        let mut response = Json(json!({ "revoked": revoked })).into_response();
        // REVOKE-21 (BCL §2.8)
        if !state.defects.contains(Defect::NoRevokeCacheControl) {
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        Ok(response)
    }
    .await;
    state.reply(outcome)
}
