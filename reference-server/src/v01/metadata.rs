//! v0.1 authorization-server metadata (DISC-12..20).

use axum::extract::State;
use axum::response::Response;
use serde_json::json;

use crate::defect::Defect;
use crate::http::public_json;
use crate::state::AppState;
use crate::verify::ID_JAG_URN;
use crate::verify::{self};

/// `GET /.well-known/oauth-authorization-server` (DISC-12..20).
pub async fn as_metadata(State(state): State<AppState>) -> Response {
    let c = &state.config;
    let base = &state.base_url;
    let mut identity_types = Vec::new();
    if c.anonymous {
        identity_types.push("anonymous");
    }
    let mut assertion_types = Vec::new();
    if c.id_jag {
        assertion_types.push(ID_JAG_URN);
    }
    if c.verified_email {
        assertion_types.push("verified_email");
    }
    if !assertion_types.is_empty() {
        identity_types.push("identity_assertion");
    }
    let mut agent_auth = json!({
        "skill": format!("{base}/auth.md"),
        "register_uri": format!("{base}/agent/auth"),
        "claim_uri": format!("{base}/agent/auth/claim"),
        "revocation_uri": format!("{base}/agent/auth/revoke"),
        "identity_types_supported": identity_types,
        "events_supported": [verify::REVOKED_EVENT],
    });
    if state.defects.contains(Defect::OmitEventsSupported)
        && let Some(obj) = agent_auth.as_object_mut()
    {
        obj.remove("events_supported");
    }
    if state.defects.contains(Defect::RelativeMetadataUris) {
        agent_auth["skill"] = json!("/auth.md");
        agent_auth["revocation_uri"] = json!("/agent/auth/revoke");
    }
    let mut identity_credential_types = c.identity_credential_types.clone();
    if state.defects.contains(Defect::AdvertiseRefreshTokenType) {
        identity_credential_types.push("refresh_token".into());
    }
    if c.anonymous {
        agent_auth["anonymous"] = json!({ "credential_types_supported": ["api_key"] });
    }
    if !assertion_types.is_empty() {
        agent_auth["identity_assertion"] = json!({
            "assertion_types_supported": assertion_types,
            "credential_types_supported": identity_credential_types,
        });
    }
    public_json(json!({
        // DISC-20: RFC 8414 base members, informational in v0.1 but harmless to serve.
        "issuer": if state.defects.contains(Defect::OmitIssuer) { json!(null) } else { json!(base) },
        "response_types_supported": [],
        "resource": state.resource(),
        "authorization_servers": [base],
        "scopes_supported": c.scopes,
        "bearer_methods_supported": ["header"],
        "agent_auth": agent_auth,
    }))
}
