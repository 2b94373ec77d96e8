//! The service's own pages for the production dialect's ceremony (AUTH.md Step 4b at 9f8a4ee):
//! the link opens a page that names the signed-in account and asks the user to confirm; only
//! then, and only for the account the agent's `login_hint` named, is the `user_code` revealed
//! (by the session-gated `/agent/identity/claim/view`), for the user to read back to the agent.

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::attempt::CLAIM_PAGE;
use crate::defect::Defect;
use crate::secrets::{hash, otp};
use crate::state::{AppState, Now};
use crate::store::ceremony::{attempt_by_link, confirm_attempt};
use crate::v06::claim::{escape, page, session_email};
use crate::v06::wire::form_fields;

/// The confirm form's action, which reveals the code.
pub(crate) const VIEW: &str = "/agent/identity/claim/view";

#[derive(serde::Deserialize)]
pub struct LinkQuery {
    token: Option<String>,
}

/// The revealed code as the page shows it (the bundled target config's `reveal` pattern).
fn revealed(code: &str) -> String {
    format!("<p>Read this code back to your agent:</p><p><output id=\"user-code\">{code}</output></p>")
}

/// `GET /agent-claim?token=…`: sign in first, then confirm (the code is not on this page).
pub async fn claim_page(State(state): State<AppState>, Now(now): Now, headers: HeaderMap, Query(q): Query<LinkQuery>) -> Response {
    let Some(token) = q.token.filter(|t| !t.is_empty()) else {
        return page(StatusCode::BAD_REQUEST, "Claim", "<p>This link is incomplete.</p>");
    };
    let here = format!(
        "{CLAIM_PAGE}?token={}",
        url::form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
    );
    let Some(email) = session_email(&state, &headers, now).await else {
        let to = url::form_urlencoded::byte_serialize(here.as_bytes()).collect::<String>();
        return (StatusCode::SEE_OTHER, [(header::LOCATION, format!("/login?return_to={to}"))]).into_response();
    };
    let shown = if state.defects.contains(Defect::V07pRevealBeforeConfirm) {
        match reveal(&state, &token, &email, now).await {
            Ok(code) => revealed(&code),
            Err(_) => String::new(),
        }
    } else {
        String::new()
    };
    page(
        StatusCode::OK,
        "Connect an agent",
        &format!(
            "<p>You're signed in as {}. An agent asks to act for this account. Confirm only if you started this.</p>{shown}<form method=\"post\" action=\"{VIEW}\"><input type=\"hidden\" name=\"token\" value=\"{}\"><button>Confirm</button></form>",
            escape(&email),
            escape(&token)
        ),
    )
}

/// `POST /agent/identity/claim/view` (session-gated): the user confirmed; the page reveals a
/// fresh code, its hash kept on the attempt.
pub async fn view(State(state): State<AppState>, Now(now): Now, request: Request) -> Response {
    let headers = request.headers().clone();
    let fields = form_fields(request).await;
    let token = fields
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let Some(email) = session_email(&state, &headers, now).await else {
        return page(
            StatusCode::UNAUTHORIZED,
            "Sign in first",
            "<p>Your session has ended. Open the link again.</p>",
        );
    };
    match reveal(&state, &token, &email, now).await {
        Ok(code) => page(StatusCode::OK, "Connect an agent", &revealed(&code)),
        Err((status, text)) => page(status, "Connect an agent", &format!("<p>{text}</p>")),
    }
}

/// Reveals a fresh code of the attempt `token` names to `email`, if that account is the one
/// the attempt is bound to and the attempt is live.
async fn reveal(state: &AppState, token: &str, email: &str, now: i64) -> Result<String, (StatusCode, &'static str)> {
    let code = otp();
    let (h, code_hash, email, any_account) = (
        hash(token),
        hash(&code),
        email.to_string(),
        state.defects.contains(Defect::V07pRevealToAnyAccount),
    );
    let outcome = state
        .db
        .call(move |conn| {
            let Some(attempt) = attempt_by_link(conn, &h)? else {
                return Ok(Err((StatusCode::NOT_FOUND, "This link is no longer valid.")));
            };
            if attempt.status == "completed" {
                return Ok(Err((StatusCode::GONE, "This agent is already connected.")));
            }
            if now >= attempt.expires_at {
                return Ok(Err((StatusCode::GONE, "This link has expired. Ask the agent for a new one.")));
            }
            // The login_hint binds the attempt: a third party holding the link sees no code.
            if !any_account && !attempt.email.eq_ignore_ascii_case(&email) {
                return Ok(Err((StatusCode::FORBIDDEN, "This request is for another account.")));
            }
            confirm_attempt(conn, &attempt.id, &code_hash)?;
            Ok(Ok(()))
        })
        .await;
    match outcome {
        Ok(Ok(())) => Ok(code),
        Ok(Err(refused)) => Err(refused),
        Err(_) => Err((StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong. Try again.")),
    }
}
