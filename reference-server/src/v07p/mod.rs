//! The production dialect (`profile = "v0.7-production"`, upstream AUTH.md at 9f8a4ee, PR #28):
//! v0.6's token endpoint, RFC 7009 revocation and SET receiver, with its own registration
//! answers (nested envelopes: `id`, `type`, `identity`, `scopes`, `claim`), a `refresh`
//! registration type whose tokens rotate on every use, and a reversed ceremony: the service's
//! page reveals the `user_code` to the signed-in user who confirms, the user reads it back, and
//! the agent posts it to `{claim_endpoint}/complete`. No claim grant, no polling.

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

pub(crate) mod claim;
pub(crate) mod page;
pub(crate) mod refresh;
pub(crate) mod register;

/// The profile's own endpoints; the shared ones are added by [`crate::app`].
pub(crate) fn routes() -> Router<AppState> {
    use crate::v06::{identity, metadata, token};
    Router::new()
        .route("/.well-known/oauth-authorization-server", get(metadata::as_metadata))
        .route("/.well-known/jwks.json", get(metadata::jwks))
        .route("/agent/identity", post(register::register))
        .route("/oauth2/token", post(token::token))
        .route("/oauth2/revoke", post(token::revoke))
        .route("/agent/identity/claim", post(claim::start))
        .route("/agent/identity/claim/complete", post(claim::complete))
        .route("/login", get(crate::v06::claim::login_page).post(crate::v06::claim::login))
        .route(crate::attempt::CLAIM_PAGE, get(page::claim_page))
        .route(page::VIEW, post(page::view))
        .route("/agent/event/notify", post(identity::notify))
}
