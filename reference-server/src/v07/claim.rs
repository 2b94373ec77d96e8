//! `POST /agent/identity/claim` under v0.7 (AUTH.md Step 4a and 4a-alt): a body tagged by
//! `type`, each check preceded by the requirement it implements.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::attempt::start_attempt;
use crate::defect::Defect;
use crate::error::ApiError;
use crate::secrets::{hash, iso};
use crate::state::{AppState, Now};
use crate::store::ceremony::supersede_ceremonies;
use crate::store::credentials::revoke_credentials;
use crate::store::registration::{ClaimTarget, claim_for, claim_target};
use crate::store::users::{create_user, delegate_if_new};
use crate::v06::claim::start_ceremony;
use crate::v06::identity::{spend_and_link, verified_fresh};
use crate::v06::token::assertion_for;
use crate::v06::wire::{json_body, no_store};

/// The claim endpoint: dispatch on `type`.
pub async fn claim(State(state): State<AppState>, Now(now): Now, request: Request) -> Response {
    let outcome = async {
        let body = json_body(&state, request).await?;
        let member = |name: &str| body.get(name).and_then(Value::as_str);
        match member("type") {
            // V7-CLAIM-01: the user-code ceremony for the account the hint names.
            Some("login_hint") => match (member("claim_token"), member("login_hint")) {
                (Some(token), Some(hint)) => start_ceremony(&state, now, token, hint).await,
                _ => Err(ApiError::InvalidRequest("`claim_token` and `login_hint` are required".into())),
            },
            // V7-CLAIM-03..10
            Some("identity_assertion") => match (member("claim_token"), member("assertion")) {
                (Some(token), Some(assertion)) => claim_with_id_jag(&state, now, token, assertion).await,
                _ => Err(ApiError::InvalidRequest("`claim_token` and `assertion` are required".into())),
            },
            // V7-CLAIM-02: the body is a union on `type`; the untyped v0.6 body is refused.
            None if state.defects.contains(Defect::V07UntypedClaimAccepted) => {
                match (member("claim_token"), member("login_hint").or(member("email"))) {
                    (Some(token), Some(hint)) => start_ceremony(&state, now, token, hint).await,
                    _ => Err(ApiError::InvalidRequest("`claim_token` and `login_hint` are required".into())),
                }
            }
            _ => Err(ApiError::InvalidRequest(
                "`type` must be `login_hint` or `identity_assertion`".into(),
            )),
        }
    }
    .await;
    state.reply(outcome)
}

/// What the claim decided, in the writer's transaction.
enum Claimed {
    /// Bound at once to the user; the email the new assertion carries.
    Bound(Option<String>),
    /// The ID-JAG's email is another account's: the ceremony block.
    StepUp(Value),
}

/// `{"type":"identity_assertion","claim_token","assertion"}` (Step 4a-alt).
async fn claim_with_id_jag(state: &AppState, now: i64, token: &str, assertion: &str) -> Result<Response, ApiError> {
    let h = hash(token);
    // V7-CLAIM-06: for anonymous registrations only, checked before the ID-JAG is spent.
    let target = state.db.call(move |conn| claim_target(conn, &h)).await?;
    let Some(ClaimTarget {
        id: rid,
        kind,
        expires_at,
        status,
        ..
    }) = target
    else {
        return Err(ApiError::InvalidClaimToken);
    };
    if (kind != "anonymous" && !state.defects.contains(Defect::V07IdJagClaimsAnyRegistration)) || status != "unclaimed" {
        return Err(ApiError::ClaimedOrInFlight);
    }
    if now >= expires_at {
        return Err(ApiError::ClaimExpired);
    }
    // V7-CLAIM-07: verified as `/agent/identity` verifies it, `auth_time` included.
    let check_auth_time = !state.defects.contains(Defect::V07ClaimSkipsAuthTime);
    let verified = match verified_fresh(state, assertion, now, check_auth_time).await? {
        Ok(v) => v,
        Err(refused) => return Ok(refused),
    };
    let email = verified.verified_email();
    let (st, r) = (state.clone(), rid.clone());
    let claimed = state
        .db
        .call(move |conn| {
            // V7-CLAIM-08: an ID-JAG claims once.
            let (delegated, existing) = spend_and_link(conn, &st, &verified, email.as_deref(), &r, now, Defect::V07ClaimSkipsReplay)?;
            // V7-CLAIM-05: an email that is another account's is not bound without the user.
            if let (None, Some(_), Some(account_email)) = (&delegated, &existing, &email)
                && !st.defects.contains(Defect::V07ClaimSilentLink)
            {
                let attempt = start_attempt(conn, &st, &r, account_email, now)?;
                return Ok(Claimed::StepUp(attempt));
            }
            let user = match delegated.or(existing) {
                Some(u) => u,
                None => create_user(conn, email.as_deref(), email.is_some(), None, now)?,
            };
            claim_for(conn, &r, &user, email.as_deref())?;
            supersede_ceremonies(conn, &r)?;
            // V7-CLAIM-10: the delegation is recorded, so this identity's next ID-JAG registers
            // directly.
            if !st.defects.contains(Defect::V07ClaimNoDelegation) {
                delegate_if_new(conn, &verified.iss, &verified.sub, &user)?;
            }
            // V7-CLAIM-09 (C-V7-01 reading `revoked`): the pre-claim access tokens die.
            if !st.defects.contains(Defect::V07ClaimKeepsPreClaimTokens) {
                revoke_credentials(conn, &r, Some("token_endpoint"))?;
            }
            Ok(Claimed::Bound(email))
        })
        .await?;
    match claimed {
        Claimed::Bound(email) => {
            // V7-CLAIM-03, V7-CLAIM-04: a post-claim assertion for the same registration.
            let post_claim = !state.defects.contains(Defect::V07ClaimPreClaimAssertion);
            let scopes = if post_claim {
                &state.config.scopes
            } else {
                &state.config.pre_claim_scopes
            };
            let (assertion, expires) = assertion_for(state, now, &rid, scopes, post_claim, email.as_deref())?;
            Ok(no_store(
                state,
                StatusCode::OK,
                json!({
                    "registration_id": rid,
                    "registration_type": "identity_assertion",
                    "status": "claimed",
                    "identity_assertion": assertion,
                    "assertion_expires": iso(expires),
                }),
            ))
        }
        Claimed::StepUp(attempt) => Ok(no_store(
            state,
            StatusCode::OK,
            json!({
                "registration_id": rid,
                "registration_type": "identity_assertion",
                "claim_attempt_id": attempt["id"],
                "status": "initiated",
                "expires_at": attempt["expires_at"],
                "claim_attempt": attempt["block"],
            }),
        )),
    }
}
