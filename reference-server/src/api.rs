//! The protected API and its credential checks (API-01..07), shared by every profile.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::config::OracleShape;
use crate::defect::Defect;
use crate::error::ApiError;
use crate::secrets::hash;
use crate::state::{AppState, Now};
use crate::store::credentials;
use crate::store::registration::Registration;

// ---------------------------------------------------------------------------------------------
// Protected API
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
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
    // The defect: a credential this instance accepted within the last minute is accepted again
    // without a look at the database, where another replica may have revoked it.
    let cache = state.defects.contains(Defect::CredentialCachePerInstance);
    if cache
        && let Ok(accepted) = state.accepted.lock()
        && let Some((until, caller)) = accepted.get(&h)
        && *until > crate::secrets::unix_now()
    {
        return Ok(caller.clone());
    }
    let st = state.clone();
    let key = h.clone();
    // A pure read: off the writer thread (API calls are the hot path).
    let caller = state
        .db
        .read(move |conn| {
            let unauthorized = ApiError::Unauthorized { presented: true };
            // API-02
            let Some(c) = credentials::presented(conn, &h)? else {
                return Err(unauthorized);
            };
            // API-04
            if c.revoked {
                return Err(unauthorized);
            }
            // API-03, CRED-04
            if c.expires_at.is_some_and(|e| now >= e) && !st.defects.contains(Defect::AcceptExpiredAccessToken) {
                return Err(unauthorized);
            }
            // EXP-01, EXP-02: an unclaimed anonymous key dies with its registration.
            let reg = Registration {
                id: c.registration_id.clone(),
                kind: c.registration_kind,
                status: c.registration_status,
                expires_at: c.registration_expires_at,
                credential_type: None,
                post_scopes: Vec::new(),
            };
            if reg.kind == "anonymous" && reg.expired(&st.defects, now) {
                return Err(unauthorized);
            }
            Ok(Caller {
                kind: c.kind,
                scopes: serde_json::from_str(&c.scopes).unwrap_or_default(),
                source: c.source,
                registration_id: c.registration_id,
                user: c.user,
                iss: c.iss,
                sub: c.sub,
            })
        })
        .await;
    if cache
        && let Ok(caller) = &caller
        && let Ok(mut accepted) = state.accepted.lock()
    {
        // Bounded: a flood of credentials empties it rather than growing it.
        if accepted.len() >= ACCEPTED_CACHE {
            accepted.clear();
        }
        accepted.insert(key, (crate::secrets::unix_now() + ACCEPTED_FOR_SECS, caller.clone()));
    }
    caller
}

/// How long the credential-cache-per-instance defect remembers an accepted credential (one to
/// two seconds: short, so a target declaring a longer propagation bound is seen to settle).
const ACCEPTED_FOR_SECS: i64 = 2;

/// Credentials the credential-cache-per-instance defect remembers at most.
const ACCEPTED_CACHE: usize = 10_000;

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
