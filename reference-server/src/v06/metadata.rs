//! v0.6 discovery: RFC 8414 metadata with the `/agent/identity` surface, and the JWKS of the
//! service's assertion key.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::defect::Defect;
use crate::state::AppState;
use crate::v06::token::JWT_BEARER;

/// `GET /.well-known/oauth-authorization-server` (v0.6 Step 1b).
pub async fn as_metadata(State(state): State<AppState>) -> Response {
    let base = &state.base_url;
    let mut identity_types = Vec::new();
    if state.config.anonymous {
        identity_types.push("anonymous");
    }
    if state.config.verified_email {
        identity_types.push("service_auth");
    }
    if state.config.id_jag {
        identity_types.push("identity_assertion");
    }
    let mut assertion_types = vec!["urn:ietf:params:oauth:token-type:id-jag"];
    if state.defects.contains(Defect::V06AdvertiseVerifiedEmail) {
        assertion_types.push("verified_email");
    }
    let mut metadata = json!({
        "resource": state.resource(),
        "authorization_servers": [base],
        "scopes_supported": state.config.scopes,
        "bearer_methods_supported": ["header"],
        "issuer": base,
        "token_endpoint": format!("{base}/oauth2/token"),
        "revocation_endpoint": format!("{base}/oauth2/revoke"),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "response_types_supported": [],
        "grant_types_supported": if state.config.profile.has_claim_grant() {
            vec![JWT_BEARER, crate::v06::claim::CLAIM_GRANT]
        } else {
            vec![JWT_BEARER]
        },
        "agent_auth": {
            "skill": format!("{base}/auth.md"),
            "identity_endpoint": format!("{base}/agent/identity"),
            "claim_endpoint": format!("{base}/agent/identity/claim"),
            "events_endpoint": format!("{base}/agent/event/notify"),
            "identity_types_supported": identity_types,
            "identity_assertion": { "assertion_types_supported": assertion_types },
            "events_supported": [crate::verify::REVOKED_EVENT],
        },
    });
    if state.defects.contains(Defect::V06OmitTokenEndpoint)
        && let Some(m) = metadata.as_object_mut()
    {
        m.remove("token_endpoint");
    }
    if state.defects.contains(Defect::RelativeMetadataUris) {
        metadata["revocation_endpoint"] = json!("/oauth2/revoke");
        metadata["agent_auth"]["skill"] = json!("/auth.md");
    }
    let mut response = Json(metadata).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    response
}

/// `GET /.well-known/jwks.json`: the key identity assertions are signed with.
pub async fn jwks(State(state): State<AppState>) -> Response {
    match &state.service_key {
        Some(key) => Json(json!({ "keys": [key.jwk()] })).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
