//! The v0.1 deployment (the default profile): `/agent/auth` registration, the OTP claim
//! ceremony and provider revocation. Each check is preceded by the requirement it implements.

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

pub(crate) mod claim;
pub(crate) mod complete;
pub(crate) mod metadata;
pub(crate) mod register;
pub(crate) mod revoke;

/// The profile's own endpoints; the shared ones are added by [`crate::app`].
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/.well-known/oauth-authorization-server", get(metadata::as_metadata))
        .route("/agent/auth", post(register::register))
        .route("/agent/auth/claim", post(claim::claim))
        .route("/agent/auth/claim/view", get(claim::claim_view))
        .route("/agent/auth/claim/attempt/challenge", post(claim::challenge))
        .route("/agent/auth/claim/complete", post(complete::complete))
        .route("/agent/auth/revoke", post(revoke::revoke))
}
