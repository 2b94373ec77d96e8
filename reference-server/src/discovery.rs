//! Discovery shared by every profile: the Protected Resource Metadata (RFC 9728), the skill
//! document and the logo (DISC-05..11, DISC-19).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::defect::Defect;
use crate::http::public_json;
use crate::state::AppState;

pub(crate) fn prm(state: &AppState) -> Value {
    // DISC-05..11: the Protected Resource Metadata (RFC 9728 §2).
    // DISC-08: `resource` is the identifier the PRM URL derives from; the defect names the
    // origin while the challenge points at the `/api` resource's PRM.
    let resource = if state.defects.contains(Defect::PrmResourceIsOrigin) {
        state.base_url.clone()
    } else {
        state.resource()
    };
    json!({
        "resource": resource,
        "resource_name": "authmd reference service",
        "resource_logo_uri": format!("{}/logo.png", state.base_url),
        // DISC-21: every advertised URL is on the service's own (https, or loopback) origin.
        "resource_documentation": if state.defects.contains(Defect::PlainHttpResourceDocumentation) {
            json!("http://docs.authmd.invalid/agent-auth")
        } else {
            json!(format!("{}/auth.md", state.base_url))
        },
        "authorization_servers": [state.base_url],
        "scopes_supported": state.config.scopes,
        "bearer_methods_supported": if state.defects.contains(Defect::OmitBearerMethods) { json!(null) } else { json!(["header"]) },
    })
}

/// `GET /.well-known/oauth-protected-resource` (DISC-06, the conventional path).
pub async fn prm_root(State(state): State<AppState>) -> Response {
    public_json(prm(&state))
}

/// `GET /.well-known/oauth-protected-resource/api` (DISC-08, the RFC 9728 §3.1 URL of `resource`).
pub async fn prm_resource(State(state): State<AppState>) -> Response {
    if state.defects.contains(Defect::PrmOnlyAtRoot) {
        return StatusCode::NOT_FOUND.into_response();
    }
    public_json(prm(&state))
}

/// `GET /auth.md`: the skill document agents read (DISC-19).
pub async fn skill() -> Response {
    ([(header::CONTENT_TYPE, "text/markdown; charset=utf-8")], include_str!("skill.md")).into_response()
}

/// `GET /logo.png` (DISC-10): a 1×1 PNG.
pub async fn logo() -> Response {
    const PNG: &[u8] = &[
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52, 0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0, 0x1f,
        0x15, 0xc4, 0x89, 0, 0, 0, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0, 1, 0, 0, 5, 0, 1, 0x0d, 0x0a, 0x2d, 0xb4, 0, 0, 0, 0,
        0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
    ];
    ([(header::CONTENT_TYPE, "image/png")], PNG).into_response()
}
