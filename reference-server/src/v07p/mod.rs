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

/// The profile's own endpoints, on v0.6's shared ones; the rest are added by [`crate::app`].
pub(crate) fn routes() -> Router<AppState> {
    crate::v06::shared()
        .route("/agent/identity", post(register::register))
        .route("/agent/identity/claim", post(claim::start))
        .route("/agent/identity/claim/complete", post(claim::complete))
        .route(crate::attempt::CLAIM_PAGE, get(page::claim_page))
        .route(page::VIEW, post(page::view))
}
