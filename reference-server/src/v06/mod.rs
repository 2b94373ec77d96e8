//! The v0.6 deployment (`profile = "v0.6"`, upstream AUTH.md at b53c9ed): RFC 8414 metadata
//! with the `/agent/identity` surface; anonymous, `service_auth` and ID-JAG registration, each
//! answered with a service-signed `identity_assertion` (ES256, its key in the database and
//! served at `/.well-known/jwks.json`); the RFC 7523 JWT-bearer grant and the claim grant at
//! `/oauth2/token` (RFC 6749 §5 answers with `Cache-Control: no-store`); the user-code ceremony
//! on the service's own pages; RFC 7009 revocation at `/oauth2/revoke`; and the provider's
//! revocation SET at `/agent/event/notify` (the b53c9ed teardown). Access tokens are stored like
//! v0.1 credentials, so the protected API is the same.

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

pub(crate) mod claim;
pub(crate) mod create;
pub(crate) mod error;
pub(crate) mod identity;
pub(crate) mod metadata;
pub(crate) mod register;
pub(crate) mod token;
pub(crate) mod wire;

/// The profile's own endpoints; the shared ones are added by [`crate::app`].
pub(crate) fn routes() -> Router<AppState> {
    common().route("/agent/identity/claim", post(claim::claim))
}

/// Every endpoint but the claim endpoint, whose body later profiles change.
pub(crate) fn common() -> Router<AppState> {
    shared()
        .route("/agent/identity", post(register::register))
        .route("/agent/identity/claim/complete", post(claim::complete))
        .route("/claim", get(claim::claim_page))
}

/// What every profile of the v0.6 family serves alike: discovery, the token endpoint, RFC 7009,
/// the service's sign-in and the SET receiver.
pub(crate) fn shared() -> Router<AppState> {
    Router::new()
        .route("/.well-known/oauth-authorization-server", get(metadata::as_metadata))
        .route("/.well-known/jwks.json", get(metadata::jwks))
        .route("/oauth2/token", post(token::token))
        .route("/oauth2/revoke", post(token::revoke))
        .route("/login", get(claim::login_page).post(claim::login))
        .route("/agent/event/notify", post(identity::notify))
}
