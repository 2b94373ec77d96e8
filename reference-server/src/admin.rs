//! Operator endpoints: the mail outbox, health and the audit log.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use rusqlite::params;
use serde_json::{Value, json};

use crate::defect::Defect;
use crate::error::ApiError;
use crate::http::peer_ip;
use crate::secrets::{hash, iso, same_hash};
use crate::state::{AppState, Now};
use crate::store::sql::db;

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
    match state
        .db
        .call(move |conn| {
            conn.execute(
                "INSERT INTO health (id, checked_at) VALUES (1, ?1) ON CONFLICT(id) DO UPDATE SET checked_at = ?1",
                params![now],
            )
            .map_err(db)
        })
        .await
    {
        Ok(_) => Json(json!({ "status": "ok" })).into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "unavailable" }))).into_response(),
    }
}

/// `GET /_admin/audit`: the AUDIT events, to loopback peers only.
pub async fn admin_audit(State(state): State<AppState>, request: Request) -> Response {
    if !state.config.admin_api || !peer_ip(&request).is_some_and(|ip| ip.is_loopback()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    match read_audit(&state.db).await {
        Ok(events) => Json(json!({ "events": events })).into_response(),
        Err(e) => state.reply(Err(e)),
    }
}

/// Every audit event, oldest first.
pub async fn read_audit(store: &crate::store::Db) -> Result<Vec<Value>, ApiError> {
    store.call(|conn| {
        let mut stmt = conn.prepare("SELECT seq, at, event, data FROM audit ORDER BY seq").map_err(db)?;
        let rows = stmt
            .query_map([], |r| {
                let data: String = r.get(3)?;
                Ok(json!({ "seq": r.get::<_, i64>(0)?, "at": iso(r.get(1)?), "event": r.get::<_, String>(2)?, "data": serde_json::from_str::<Value>(&data).unwrap_or(Value::Null) }))
            })
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    })
    .await
}
