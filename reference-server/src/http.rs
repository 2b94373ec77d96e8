//! Request and response plumbing shared by every handler: bodies, members, replies.

use std::net::{IpAddr, SocketAddr};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::defect::Defect;
use crate::error::{ApiError, respond};
use crate::serve::MAX_BODY;
use crate::state::AppState;

pub(crate) type Outcome = Result<Response, ApiError>;

impl AppState {
    /// The error vocabulary on the wire: the production dialect's own, else the configured one.
    pub(crate) fn error_names(&self) -> crate::config::ErrorNames {
        if self.config.profile == crate::config::Profile::V07Production {
            crate::config::ErrorNames::Production
        } else {
            self.config.error_names
        }
    }

    pub(crate) fn reply(&self, outcome: Outcome) -> Response {
        match outcome {
            Ok(response) => response,
            Err(error) => respond(
                &error,
                self.error_names(),
                &self.resource_metadata_url(),
                !self.defects.contains(Defect::OmitChallenge),
                !self.defects.contains(Defect::OmitInvalidTokenError),
            ),
        }
    }

    /// A 200 JSON response carrying secrets: never cached (REG-GEN-07).
    pub(crate) fn secret_json(&self, body: Value) -> Response {
        let registration = body["registration_id"].as_str().map(|r| crate::LoggedRegistration(r.to_string()));
        let mut response = Json(body).into_response();
        if let Some(r) = registration {
            response.extensions_mut().insert(r);
        }
        if !self.defects.contains(Defect::OmitCacheControl) {
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        }
        response
    }

    /// RATE-01, RATE-02: a fixed window per key; over the limit → 429 with `Retry-After`.
    pub(crate) async fn rate_check(&self, key: String, limit: u32, now: i64) -> Result<(), ApiError> {
        if self.defects.contains(Defect::NoRateLimit) {
            return Ok(());
        }
        let window = self.config.rate.window.max(1) as i64;
        // `state()` settled `shared` from the database when the configuration left it open.
        let shared = self.config.rate.shared == Some(true) && !self.defects.contains(Defect::RateBucketsPerInstance);
        if shared {
            let real = crate::secrets::unix_now();
            return self
                .db
                .call(move |conn| crate::store::rate::hit(conn, &key, limit, window, now, real))
                .await?
                .map_err(ApiError::RateLimited);
        }
        // Fail open if the counters are poisoned (RATE-03): availability over strictness.
        let Ok(mut counters) = self.rate.lock() else {
            return Ok(());
        };
        counters
            .hit(key, limit, window, now, crate::secrets::unix_now())
            .map_err(ApiError::RateLimited)
    }
}

pub(crate) fn invalid(message: &str) -> ApiError {
    ApiError::InvalidRequest(message.to_string())
}

pub(crate) fn peer_ip(request: &Request) -> Option<IpAddr> {
    request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
}

pub(crate) fn content_type_is(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(expected))
}

/// The body, already read in time by `serve::read_body_in_time`.
pub(crate) async fn body_bytes(request: Request) -> Result<(HeaderMap, Bytes), ApiError> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| invalid("the body is too large or unreadable"))?;
    Ok((parts.headers, bytes))
}

/// REG-GEN-01, REG-GEN-03, REG-GEN-04: JSON bodies only; malformed JSON is a 400, never a 5xx.
pub(crate) async fn json_body(state: &AppState, request: Request) -> Result<serde_json::Map<String, Value>, ApiError> {
    let (headers, bytes) = body_bytes(request).await?;
    if !content_type_is(&headers, "application/json") && !state.defects.contains(Defect::AcceptNonJsonContentType) {
        return Err(invalid("Content-Type must be application/json"));
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(invalid("the body must be a JSON object")),
        Err(_) if state.defects.contains(Defect::CrashOnMalformedJson) => {
            Err(ApiError::Internal("malformed JSON reached the handler".into()))
        }
        Err(_) => Err(invalid("the body is not valid JSON")),
    }
}

pub(crate) fn str_member<'a>(body: &'a serde_json::Map<String, Value>, name: &str) -> Result<&'a str, ApiError> {
    match body.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(_) => Err(ApiError::InvalidRequest(format!("`{name}` must be a non-empty string"))),
        None => Err(ApiError::InvalidRequest(format!("`{name}` is required"))),
    }
}

pub(crate) fn scopes_json(scopes: &[String]) -> String {
    serde_json::to_string(scopes).unwrap_or_else(|_| "[]".into())
}

pub(crate) fn public_json(body: Value) -> Response {
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    response
}
