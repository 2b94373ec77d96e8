//! The v0.6 wire: JSON and form bodies, `no-store` answers, RFC 6749 §5.2 errors.

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::defect::Defect;
use crate::error::ApiError;
use crate::state::AppState;

/// A JSON answer that must not be cached (RFC 6749 §5.1).
pub(crate) fn no_store(state: &AppState, status: StatusCode, body: Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    if !state.defects.contains(Defect::V06TokenCacheable) {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }
    response
}

/// A JSON request body (at most 64 KiB); anything else is `invalid_request` (V6-ERR-03).
pub(crate) async fn json_body(state: &AppState, request: Request) -> Result<Value, ApiError> {
    let bytes = axum::body::to_bytes(request.into_body(), 64 * 1024)
        .await
        .map_err(|_| ApiError::InvalidRequest("the body is too large".into()))?;
    serde_json::from_slice(&bytes).map_err(|_| {
        if state.defects.contains(Defect::CrashOnMalformedJson) {
            ApiError::Internal("malformed JSON reached the handler".into())
        } else {
            ApiError::InvalidRequest("the body is not valid JSON".into())
        }
    })
}

/// The form fields of a body, whatever its content type (the service's own HTML forms).
pub(crate) async fn form_fields(request: Request) -> Vec<(String, String)> {
    match axum::body::to_bytes(request.into_body(), 64 * 1024).await {
        Ok(bytes) => url::form_urlencoded::parse(&bytes).into_owned().collect(),
        Err(_) => Vec::new(),
    }
}

/// The form fields of an `application/x-www-form-urlencoded` body.
pub(crate) async fn form(state: &AppState, request: Request) -> Result<Vec<(String, String)>, &'static str> {
    let form_type = state.defects.contains(Defect::V06TokenIgnoresContentType)
        || request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        return Err("the body must be application/x-www-form-urlencoded");
    }
    let bytes = axum::body::to_bytes(request.into_body(), 64 * 1024)
        .await
        .map_err(|_| "the body is too large")?;
    Ok(url::form_urlencoded::parse(&bytes).into_owned().collect())
}
