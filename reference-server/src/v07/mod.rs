//! The v0.7 deployment (`profile = "v0.7"`, upstream AUTH.md at 11fa014, "claim via ID-JAG"):
//! v0.6 with one change, the claim endpoint's body is a union on `type`. `login_hint` starts
//! the user-code ceremony as before; `identity_assertion` claims an anonymous registration with
//! an ID-JAG, at once on a clean match or through the ceremony when the ID-JAG's email is
//! another account's.

use axum::Router;
use axum::routing::post;

use crate::state::AppState;

pub(crate) mod claim;

/// The profile's own endpoints: v0.6's, with this profile's claim endpoint.
pub(crate) fn routes() -> Router<AppState> {
    crate::v06::common().route("/agent/identity/claim", post(claim::claim))
}
