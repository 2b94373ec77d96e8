//! The protected API and its credential checks (API-01..07), shared by every profile.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use rusqlite::{OptionalExtension, params};
use serde_json::json;

use crate::config::OracleShape;
use crate::defect::Defect;
use crate::error::ApiError;
use crate::secrets::hash;
use crate::state::{AppState, Now};
use crate::store::registration::Registration;
use crate::store::sql::db;

// ---------------------------------------------------------------------------------------------
// Protected API
// ---------------------------------------------------------------------------------------------

pub(crate) struct Caller {
    pub(crate) kind: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) source: String,
    pub(crate) registration_id: String,
    pub(crate) user: Option<(String, Option<String>)>,
    pub(crate) iss: Option<String>,
    pub(crate) sub: Option<String>,
}

/// API-01..07: find and check the bearer credential.
pub(crate) async fn authenticate(state: &AppState, headers: &HeaderMap, query: Option<&str>, now: i64) -> Result<Caller, ApiError> {
    let header_token = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| {
        let (scheme, token) = v.split_once(' ')?;
        // API-06: the scheme name is case-insensitive (RFC 9110 §11.1).
        let scheme_ok = if state.defects.contains(Defect::AcceptAnyScheme) {
            true
        } else if state.defects.contains(Defect::CaseSensitiveScheme) {
            scheme == "Bearer"
        } else {
            scheme.eq_ignore_ascii_case("bearer")
        };
        scheme_ok.then(|| token.trim().to_string())
    });
    // API-07: no tokens in the query string (bearer_methods_supported is ["header"]).
    let query_token = query.filter(|_| state.defects.contains(Defect::AcceptQueryToken)).and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v.into_owned())
    });
    let presented = headers.contains_key(header::AUTHORIZATION);
    let Some(token) = header_token.or(query_token).filter(|t| !t.is_empty()) else {
        return Err(ApiError::Unauthorized { presented });
    };
    let token = if state.defects.contains(Defect::PercentDecodedCredentials) {
        url::form_urlencoded::parse(format!("t={token}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or(token)
    } else {
        token
    };
    let h = hash(&token);
    let st = state.clone();
    // A pure read: off the writer thread (API calls are the hot path).
    state
        .db
        .read(move |conn| {
            let row = conn.query_row(
                    "SELECT c.kind, c.scopes, c.expires_at, c.revoked, c.source, c.registration_id, c.iss, c.sub, r.kind, r.status, r.expires_at, u.id, u.email
                     FROM credentials c JOIN registrations r ON r.id = c.registration_id
                     LEFT JOIN users u ON u.id = COALESCE(c.user_id, r.user_id)
                     WHERE c.hash = ?1",
                    params![h],
                    |r| {
                        Ok((
                            (r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<i64>>(2)?, r.get::<_, i64>(3)?, r.get::<_, String>(4)?),
                            (r.get::<_, String>(5)?, r.get::<_, Option<String>>(6)?, r.get::<_, Option<String>>(7)?),
                            (r.get::<_, String>(8)?, r.get::<_, String>(9)?, r.get::<_, i64>(10)?),
                            (r.get::<_, Option<String>>(11)?, r.get::<_, Option<String>>(12)?),
                        ))
                    },
                )
                .optional()
                .map_err(db)?;
            let unauthorized = ApiError::Unauthorized { presented: true };
            let Some(((kind, scopes, expires_at, revoked, source), (registration_id, iss, sub), (reg_kind, status, reg_expires), (user_id, email))) = row else {
                // API-02
                return Err(unauthorized);
            };
            // API-04
            if revoked != 0 {
                return Err(unauthorized);
            }
            // API-03, CRED-04
            if expires_at.is_some_and(|e| now >= e) && !st.defects.contains(Defect::AcceptExpiredAccessToken) {
                return Err(unauthorized);
            }
            // EXP-01, EXP-02: an unclaimed anonymous key dies with its registration.
            let reg = Registration { id: registration_id.clone(), kind: reg_kind, status, expires_at: reg_expires, credential_type: None, post_scopes: Vec::new() };
            if reg.kind == "anonymous" && reg.expired(&st.defects, now) {
                return Err(unauthorized);
            }
            Ok(Caller {
                kind,
                scopes: serde_json::from_str(&scopes).unwrap_or_default(),
                source,
                registration_id,
                user: user_id.map(|u| (u, email)),
                iss,
                sub,
            })
        })
        .await
}

/// `GET /api/resource`: the identity/scope echo the harness uses as its oracle.
pub async fn api_resource(State(state): State<AppState>, Now(now): Now, request: Request) -> Response {
    let (headers, query) = (request.headers().clone(), request.uri().query().map(str::to_string));
    let outcome = authenticate(&state, &headers, query.as_deref(), now).await.map(|caller| {
        let body = match state.config.oracle_shape {
            OracleShape::Nested => json!({
                "message": "credential accepted",
                "user": caller.user.map(|(id, email)| json!({ "id": id, "email": email })),
                "credential": {
                    "type": caller.kind,
                    "scope": caller.scopes,
                    "source": caller.source,
                    "registration_id": caller.registration_id,
                    "iss": caller.iss,
                    "sub": caller.sub,
                },
            }),
            OracleShape::Flat => json!({
                "who": caller.user.map(|(id, _)| id),
                "scope": caller.scopes.join(" "),
                "registration": caller.registration_id,
            }),
        };
        Json(body).into_response()
    });
    state.reply(outcome)
}

pub(crate) async fn scoped(state: AppState, now: i64, request: Request, scope: &'static str) -> Response {
    let (headers, query) = (request.headers().clone(), request.uri().query().map(str::to_string));
    let outcome = async {
        if scope == "api.read" && state.defects.contains(Defect::OpenReadProbe) && !headers.contains_key(header::AUTHORIZATION) {
            return Ok(Json(json!({ "ok": true, "scope": scope })).into_response());
        }
        let caller = authenticate(&state, &headers, query.as_deref(), now).await?;
        // REG-ANON-10, API-08: 403 insufficient_scope with the RFC 6750 challenge.
        if !caller.scopes.iter().any(|s| s == scope) {
            return Err(ApiError::InsufficientScope(scope));
        }
        Ok(Json(json!({ "ok": true, "scope": scope })).into_response())
    }
    .await;
    state.reply(outcome)
}

/// `GET /api/read`: needs `api.read`.
pub async fn api_read(State(state): State<AppState>, Now(now): Now, request: Request) -> Response {
    scoped(state, now, request, "api.read").await
}

/// `POST /api/write`: needs `api.write`.
pub async fn api_write(State(state): State<AppState>, Now(now): Now, request: Request) -> Response {
    scoped(state, now, request, "api.write").await
}
