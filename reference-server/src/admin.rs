//! Operator endpoints: the mail outbox, health and the audit log.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::defect::Defect;
use crate::http::peer_ip;
use crate::secrets::{hash, same_hash};
use crate::state::{AppState, Now};
use crate::store::audit::{read_audit, record_health_check};

/// `GET /mail/<registration_id>.html`: the claim-mail outbox, when `mail_outbox` is set. With
/// `mail_outbox_token`, only for `Authorization: Bearer <token>` (SEC-08: an agent that could
/// read the mail could claim its registration for any address); anything else is a 404.
pub async fn mail_outbox(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    axum::extract::Path(file): axum::extract::Path<String>,
) -> Response {
    let Some(dir) = &state.config.mail_outbox else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Some(token) = &state.config.mail_outbox_token
        && !state.defects.contains(Defect::PublicMailOutbox)
    {
        let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let presented = given.strip_prefix("Bearer ").unwrap_or_default();
        // Compared as hashes without an early exit, as any credential.
        if !same_hash(&hash(presented), &hash(&token.0)) {
            return StatusCode::NOT_FOUND.into_response();
        }
    }
    // Only the outbox's own file names: no separators, no dot-dot.
    let valid =
        file.ends_with(".html") && file.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) && !file.contains("..");
    if !valid {
        return StatusCode::NOT_FOUND.into_response();
    }
    match tokio::fs::read(dir.join(&file)).await {
        Ok(body) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `GET /healthz`: 200 when a write commits to the database file the server opened, 503 otherwise.
pub async fn healthz(State(state): State<AppState>, Now(now): Now) -> Response {
    // A write, committed like any other: a read-only database, a full disk or a deleted file
    // makes this fail, where `SELECT 1` would still answer.
    match state.db.call(move |conn| record_health_check(conn, now)).await {
        Ok(_) => Json(json!({ "status": "ok" })).into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "unavailable" }))).into_response(),
    }
}

/// `GET /_admin/audit`: the AUDIT events, to loopback peers only.
pub async fn admin_audit(State(state): State<AppState>, request: Request) -> Response {
    if !state.config.admin_api || !peer_ip(&request).is_some_and(|ip| ip.is_loopback()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    match state.db.call(read_audit).await {
        Ok(events) => Json(json!({ "events": events })).into_response(),
        Err(e) => state.reply(Err(e)),
    }
}
