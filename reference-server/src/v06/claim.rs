//! The v0.6 user-code ceremony (AUTH.md Step 4, CHANGELOG v0.4 and v0.6): `service_auth`
//! registration, `POST /agent/identity/claim` for anonymous registrations, the service's own
//! `/login` (a cookie-bound session: the service's stand-in for its real sign-in) and `/claim`
//! pages, the form action that completes the ceremony, and the claim grant the agent polls.

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Value, json};

use crate::defect::Defect;
use crate::error::ApiError;
use crate::secrets::{hash, iso, secret};
use crate::state::{AppState, Now};
use crate::store::ceremony::{
    Pending, Polled, ceremony_of, insert_session, pending_ceremony, record_poll, record_wrong_code, set_ceremony_status, signed_in,
};
use crate::store::credentials::revoke_credentials;
use crate::store::registration::{ClaimTarget, claim_for, claim_target, registration_id_by_claim_token};
use crate::store::users::{create_user, delegate_links, user_by_verified_email};
use crate::v06::create::{create_service_auth, plausible_email};
use crate::v06::error::{TokenCode, V06Error, token_error};
use crate::v06::wire::{form_fields, no_store};

/// The profile's claim-polling grant (Step 4c).
pub const CLAIM_GRANT: &str = "urn:workos:agent-auth:grant-type:claim";
/// Wrong codes a ceremony tolerates before it is dead.
const MAX_FAILURES: i64 = 5;
pub(crate) const SESSION_COOKIE: &str = "authmd_session";

/// `{"type":"service_auth","login_hint":…}` (v0.6 Step 3): a registration bound to the hinted
/// address, with the ceremony started in the same answer.
pub async fn register_service_auth(state: &AppState, now: i64, body: &Value) -> Result<Response, ApiError> {
    let created = create_service_auth(state, now, body).await?;
    Ok(no_store(
        state,
        StatusCode::OK,
        json!({
            "registration_id": created.id,
            "registration_type": "service_auth",
            "claim_url": format!("{}/agent/identity/claim", state.base_url),
            "claim_token": created.claim_token,
            "claim_token_expires": iso(created.expires),
            "post_claim_scopes": created.post,
            "claim": created.attempt.map(|a| a["block"].clone()),
        }),
    ))
}

/// `POST /agent/identity/claim {claim_token, email}` (v0.6 Step 4a): a fresh ceremony.
pub async fn claim(State(state): State<AppState>, Now(now): Now, request: Request) -> Response {
    let outcome = async {
        let body = crate::v06::wire::json_body(&state, request).await?;
        let (Some(token), Some(email)) = (body["claim_token"].as_str(), body["email"].as_str()) else {
            return Err(ApiError::InvalidRequest("`claim_token` and `email` are required".into()));
        };
        start_ceremony(&state, now, token, email).await
    }
    .await;
    state.reply(outcome)
}

/// Starts a user-code ceremony for the registration `token` names, for the account at `email`.
pub(crate) async fn start_ceremony(state: &AppState, now: i64, token: &str, email: &str) -> Result<Response, ApiError> {
    let (rid, attempt) = fresh_attempt(state, now, token, email).await?;
    Ok(no_store(
        state,
        StatusCode::OK,
        json!({
            "registration_id": rid,
            "claim_attempt_id": attempt["id"],
            "status": "initiated",
            "expires_at": attempt["expires_at"],
            "claim_attempt": attempt["block"],
        }),
    ))
}

/// A fresh attempt for the claimable registration `token` names, for the account at `email`
/// (a `service_auth` registration's attempts stay bound to its own address, v0.4): the
/// registration id and [`crate::attempt::start_attempt`]'s answer, for each profile to word.
pub(crate) async fn fresh_attempt(state: &AppState, now: i64, token: &str, email: &str) -> Result<(String, Value), ApiError> {
    let token = if state.defects.contains(Defect::TrimmedClaimToken) {
        token.trim()
    } else {
        token
    };
    let (h, email, st) = (hash(token), email.to_string(), state.clone());
    state
        .db
        .call(move |conn| {
            let ClaimTarget {
                id: rid,
                kind,
                email: bound,
                ..
            } = claimable(conn, &st, &h, now)?;
            if kind == "service_auth"
                && !bound.is_some_and(|b| {
                    b.eq_ignore_ascii_case(&email)
                        || (st.defects.contains(Defect::V06ServiceAuthEmailPrefix)
                            && email.to_ascii_lowercase().starts_with(&b.to_ascii_lowercase()))
                })
                && !st.defects.contains(Defect::V06RebindServiceAuthEmail)
            {
                return Err(ApiError::InvalidRequest("the email is not this registration's".into()));
            }
            let attempt = crate::attempt::start_attempt(conn, &st, &rid, &email, now)?;
            Ok((rid, attempt))
        })
        .await
}

/// The unclaimed, unexpired registration whose claim token hashes to `claim_hash`: what the
/// claim endpoint (v0.6, 11fa014) and the production dialect's `/complete` act on. An unknown
/// token is `invalid_claim_token`, a registration no longer unclaimed `claimed_or_in_flight`
/// (`already_claimed` in the production dialect), a lapsed one `claim_expired`.
pub(crate) fn claimable(conn: &crate::store::Connection, state: &AppState, claim_hash: &str, now: i64) -> Result<ClaimTarget, ApiError> {
    let target = claim_target(conn, claim_hash)?.ok_or_else(|| {
        if state.defects.contains(Defect::V06UnknownClaimTokenInvalidRequest) {
            ApiError::InvalidRequest("no such claim".into())
        } else {
            ApiError::InvalidClaimToken
        }
    })?;
    // The production dialect's one-shot defect lets a claimed registration through again.
    let again = target.status == "claimed" && state.defects.contains(Defect::V07pCompleteTwice);
    if target.status != "unclaimed" && !again {
        return Err(ApiError::ClaimedOrInFlight);
    }
    if target.status == "unclaimed" && now >= target.expires_at && !state.defects.contains(Defect::V06RegistrationNeverExpires) {
        return Err(ApiError::ClaimExpired);
    }
    Ok(target)
}

/// The claim grant (v0.6 Step 4c): pending, slow down, expired, or the registration whose
/// post-claim tokens the token endpoint mints.
pub async fn claim_grant(state: &AppState, now: i64, claim_token: &str) -> Result<String, V06Error> {
    let (h, slow_check) = (hash(claim_token), !state.defects.contains(Defect::V06NoSlowDown));
    let never_expires = state.defects.contains(Defect::V06AttemptNeverExpires);
    let found = state
        .db
        .call(move |conn| {
            let Some(rid) = registration_id_by_claim_token(conn, &h)? else {
                return Ok(Err(token_error(TokenCode::InvalidGrant, "unknown claim_token")));
            };
            let Some(Polled {
                id: aid,
                status,
                expires_at,
                last_poll,
            }) = ceremony_of(conn, &rid)?
            else {
                return Ok(Err(token_error(TokenCode::InvalidGrant, "no ceremony in progress")));
            };
            match status.as_str() {
                "completed" => {
                    set_ceremony_status(conn, &aid, "redeemed")?;
                    Ok(Ok(rid))
                }
                "pending" => {
                    record_poll(conn, &aid, now)?;
                    if now >= expires_at && !never_expires {
                        Ok(Err(token_error(TokenCode::ExpiredToken, "the user has not finished the ceremony")))
                    } else if slow_check && last_poll.is_some_and(|p| now - p < crate::attempt::INTERVAL) {
                        Ok(Err(token_error(TokenCode::SlowDown, "the user has not finished the ceremony")))
                    } else {
                        Ok(Err(token_error(
                            TokenCode::AuthorizationPending,
                            "the user has not finished the ceremony",
                        )))
                    }
                }
                _ => Ok(Err(token_error(TokenCode::InvalidGrant, "the ceremony is over"))),
            }
        })
        .await;
    found.map_err(V06Error::from)?
}

#[derive(serde::Deserialize)]
pub struct ReturnTo {
    return_to: Option<String>,
}

/// A page of the service's own (no framework: a heading, a paragraph, a form).
pub(crate) fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head><body><h1>{title}</h1>{body}</body></html>"
    );
    (status, Html(html)).into_response()
}

pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Only a path on this service: `return_to` never sends the user elsewhere (open redirect).
/// It is resolved the way a browser resolves a `Location` (the WHATWG URL parser, which drops
/// tabs and newlines and reads `\\` as `/`), kept only if it stays on this origin, and
/// re-serialised from the parsed URL, so what is sent is what was checked.
fn local_path(return_to: Option<&str>) -> String {
    let Ok(base) = url::Url::parse("http://this-service.invalid/") else {
        return "/".into();
    };
    match return_to.map(|p| base.join(p)) {
        Some(Ok(u)) if u.origin() == base.origin() => u[url::Position::BeforePath..].to_string(),
        _ => "/".into(),
    }
}

/// `GET /login`: the service's sign-in (a stand-in for its real one: the user names an address).
pub async fn login_page(Query(q): Query<ReturnTo>) -> Response {
    let to = escape(&local_path(q.return_to.as_deref()));
    page(
        StatusCode::OK,
        "Sign in",
        &format!(
            "<form method=\"post\" action=\"/login\"><input type=\"hidden\" name=\"return_to\" value=\"{to}\"><label>Email <input name=\"email\" type=\"email\" required></label><button>Sign in</button></form>"
        ),
    )
}

/// `POST /login`: starts a cookie-bound session and returns to where the user was going.
pub async fn login(State(state): State<AppState>, Now(now): Now, request: Request) -> Response {
    let fields = form_fields(request).await;
    let field = |n: &str| fields.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let Some(email) = field("email").filter(|e| plausible_email(e)) else {
        return page(StatusCode::BAD_REQUEST, "Sign in", "<p>Enter your email address.</p>");
    };
    let token = secret("ses_", 24);
    let h = hash(&token);
    let stored = state.db.call(move |conn| insert_session(conn, &h, &email, now + 3600)).await;
    if let Err(e) = stored {
        return state.reply(Err(e));
    }
    let mut response = (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, local_path(field("return_to").as_deref()))],
    )
        .into_response();
    let secure = if state.base_url.starts_with("https:") { "; Secure" } else { "" };
    if let Ok(cookie) = HeaderValue::from_str(&format!("{SESSION_COOKIE}={token}; HttpOnly; SameSite=Lax; Path=/{secure}")) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// The signed-in address, from the session cookie.
pub(crate) async fn session_email(state: &AppState, headers: &HeaderMap, now: i64) -> Option<String> {
    let token = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(&format!("{SESSION_COOKIE}=")).map(str::to_string))?;
    let h = hash(&token);
    state.db.read(move |conn| signed_in(conn, &h, now)).await.ok().flatten()
}

#[derive(serde::Deserialize)]
pub struct AttemptQuery {
    claim_attempt_token: Option<String>,
}

/// `GET /claim?claim_attempt_token=…`: where the signed-in user types the code.
pub async fn claim_page(State(state): State<AppState>, Now(now): Now, headers: HeaderMap, Query(q): Query<AttemptQuery>) -> Response {
    let Some(token) = q.claim_attempt_token.filter(|t| !t.is_empty()) else {
        return page(StatusCode::BAD_REQUEST, "Claim", "<p>This link is incomplete.</p>");
    };
    let here = format!("/claim?claim_attempt_token={token}");
    let Some(email) = session_email(&state, &headers, now).await else {
        let to = url::form_urlencoded::byte_serialize(here.as_bytes()).collect::<String>();
        return (StatusCode::SEE_OTHER, [(header::LOCATION, format!("/login?return_to={to}"))]).into_response();
    };
    page(
        StatusCode::OK,
        "Connect an agent",
        &format!(
            "<p>You're signed in as {}. An agent asks to act for this account. If you started this, type the code it gave you.</p><form method=\"post\" action=\"/agent/identity/claim/complete\"><input type=\"hidden\" name=\"claim_attempt_token\" value=\"{}\"><label>Code <input name=\"user_code\" inputmode=\"numeric\" required></label><button>Confirm</button></form>",
            escape(&email),
            escape(&token)
        ),
    )
}

/// `POST /agent/identity/claim/complete`: the `/claim` form's action. Only the signed-in owner
/// of the attempt's address, with the right code, completes it.
pub async fn complete(State(state): State<AppState>, Now(now): Now, request: Request) -> Response {
    let headers = request.headers().clone();
    let fields = form_fields(request).await;
    let field = |n: &str| fields.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()).unwrap_or_default();
    let (token, code) = (field("claim_attempt_token"), field("user_code"));
    let Some(email) = session_email(&state, &headers, now).await else {
        return page(
            StatusCode::UNAUTHORIZED,
            "Sign in first",
            "<p>Your session has ended. Open the link again.</p>",
        );
    };
    let any_account = state.defects.contains(Defect::V06AnyAccountCompletes);
    let keep_pre_claim = state.defects.contains(Defect::V06KeepPreClaimTokens);
    let lenient_code = state.defects.contains(Defect::V06LenientUserCode);
    let h = hash(&token);
    let outcome = state
        .db
        .call(move |conn| {
            let Some(Pending {
                id: aid,
                registration_id: rid,
                email: bound,
                code_hash,
                expires_at,
                failures,
                superseded,
            }) = pending_ceremony(conn, &h)?
            else {
                return Ok((StatusCode::NOT_FOUND, "This link is no longer valid."));
            };
            if superseded {
                return Ok((StatusCode::NOT_FOUND, "This link is no longer valid."));
            }
            if now >= expires_at || failures >= MAX_FAILURES {
                return Ok((StatusCode::GONE, "This code has expired. Ask the agent for a new one."));
            }
            // V6-CLAIM-03: the claim is for the address the agent named, and no other.
            if !any_account && !bound.eq_ignore_ascii_case(&email) {
                return Ok((StatusCode::FORBIDDEN, "This request is for another account."));
            }
            let typed = if lenient_code {
                code.chars().filter(char::is_ascii_digit).take(6).collect()
            } else {
                code
            };
            if hash(&typed) != code_hash {
                record_wrong_code(conn, &aid)?;
                return Ok((StatusCode::BAD_REQUEST, "That code is not right."));
            }
            set_ceremony_status(conn, &aid, "completed")?;
            let user = match user_by_verified_email(conn, &email)? {
                Some(u) => u,
                None => create_user(conn, Some(&email), true, None, now)?,
            };
            claim_for(conn, &rid, &user, Some(&email))?;
            // V6-IDJAG-05: a confirmed step-up records the provider identity's delegation, so
            // its next ID-JAG registers directly.
            delegate_links(conn, &rid, &user)?;
            // V6-TOKEN-11: the pre-claim access tokens die with the anonymous stage.
            if !keep_pre_claim {
                revoke_credentials(conn, &rid, Some("token_endpoint"))?;
            }
            Ok((StatusCode::OK, "Done. You can return to the agent."))
        })
        .await;
    match outcome {
        Ok((status, text)) => page(status, "Connect an agent", &format!("<p>{text}</p>")),
        Err(e) => state.reply(Err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_stays_on_this_service() {
        assert_eq!(local_path(Some("/claim?x=1")), "/claim?x=1");
        assert_eq!(local_path(Some("//evil.example/")), "/");
        assert_eq!(local_path(Some("https://evil.example/")), "/");
        assert_eq!(local_path(None), "/");
        // What browsers make of these is another host: tabs and newlines are dropped, a
        // backslash is a slash, a scheme-relative or credentialed URL names a host.
        for evil in [
            "/\t/evil.example/x",
            "/\n/evil.example/x",
            "\t//evil.example/x",
            "/\\evil.example/x",
            "\\\\evil.example",
            "http://this-service.invalid@evil.example/",
            "javascript:alert(1)",
            " //evil.example",
        ] {
            let kept = local_path(Some(evil));
            let resolved = url::Url::parse("http://this-service.invalid/")
                .and_then(|b| b.join(&kept))
                .expect("resolves");
            assert_eq!(resolved.host_str(), Some("this-service.invalid"), "{evil:?} -> {kept:?}");
            assert!(!kept.contains(['\t', '\n', '\\']), "{evil:?} -> {kept:?}");
        }
        assert_eq!(
            local_path(Some("/claim?claim_attempt_token=a%2Fb")),
            "/claim?claim_attempt_token=a%2Fb"
        );
    }
}
