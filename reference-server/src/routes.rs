//! HTTP handlers. Each check is preceded by the catalogue requirement it implements.

use std::net::{IpAddr, SocketAddr};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};

use crate::config::OracleShape;
use crate::defect::Defect;
use crate::error::{ApiError, respond};
use crate::serve::MAX_BODY;
use crate::state::{AppState, Now, hash, iso, ordered_id, otp, same_hash, secret};
use crate::verify::{self, TokenKind};

const ID_JAG_URN: &str = "urn:ietf:params:oauth:token-type:id-jag";

type Outcome = Result<Response, ApiError>;

impl AppState {
    pub(crate) fn reply(&self, outcome: Outcome) -> Response {
        match outcome {
            Ok(response) => response,
            Err(error) => respond(
                &error,
                self.config.error_names,
                &self.resource_metadata_url(),
                !self.defects.contains(Defect::OmitChallenge),
                !self.defects.contains(Defect::OmitInvalidTokenError),
            ),
        }
    }

    /// A 200 JSON response carrying secrets: never cached (REG-GEN-07).
    fn secret_json(&self, body: Value) -> Response {
        let registration = body["registration_id"].as_str().map(|r| crate::LoggedRegistration(r.to_string()));
        let mut response = Json(body).into_response();
        if let Some(r) = registration {
            response.extensions_mut().insert(r);
        }
        if !self.defects.contains(Defect::OmitCacheControl) {
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        }
        response
    }

    /// RATE-01, RATE-02: a fixed window per key; over the limit → 429 with `Retry-After`.
    pub(crate) fn rate_check(&self, key: String, limit: u32, now: i64) -> Result<(), ApiError> {
        if self.defects.contains(Defect::NoRateLimit) {
            return Ok(());
        }
        let window = self.config.rate.window.max(1) as i64;
        // Fail open if the counters are poisoned (RATE-03): availability over strictness.
        let Ok(mut counters) = self.rate.lock() else {
            return Ok(());
        };
        counters.hit(key, limit, window, now).map_err(ApiError::RateLimited)
    }
}

fn invalid(message: &str) -> ApiError {
    ApiError::InvalidRequest(message.to_string())
}

fn audit(conn: &Connection, now: i64, event: &str, data: Value) -> Result<(), ApiError> {
    exec(
        conn,
        "INSERT INTO audit (at, event, data) VALUES (?1, ?2, ?3)",
        params![now, event, data.to_string()],
    )
    .map_err(db)?;
    Ok(())
}

/// `execute` through the connection's statement cache: the hot paths run the same statements
/// thousands of times a second, and parsing them each time was a measurable share of a write.
fn exec<P: rusqlite::Params>(conn: &Connection, sql: &str, params: P) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// `query_row` through the statement cache (see [`exec`]).
fn row<T, P: rusqlite::Params, F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>>(
    conn: &Connection,
    sql: &str,
    params: P,
    f: F,
) -> rusqlite::Result<T> {
    conn.prepare_cached(sql)?.query_row(params, f)
}

fn db(e: rusqlite::Error) -> ApiError {
    ApiError::Internal(e.to_string())
}

pub(crate) fn peer_ip(request: &Request) -> Option<IpAddr> {
    request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
}

fn content_type_is(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(expected))
}

/// The body, already read in time by `serve::read_body_in_time`.
async fn body_bytes(request: Request) -> Result<(HeaderMap, Bytes), ApiError> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| invalid("the body is too large or unreadable"))?;
    Ok((parts.headers, bytes))
}

/// REG-GEN-01, REG-GEN-03, REG-GEN-04: JSON bodies only; malformed JSON is a 400, never a 5xx.
async fn json_body(state: &AppState, request: Request) -> Result<serde_json::Map<String, Value>, ApiError> {
    let (headers, bytes) = body_bytes(request).await?;
    if !content_type_is(&headers, "application/json") && !state.defects.contains(Defect::AcceptNonJsonContentType) {
        return Err(invalid("Content-Type must be application/json"));
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(invalid("the body must be a JSON object")),
        Err(_) if state.defects.contains(Defect::CrashOnMalformedJson) => {
            Err(ApiError::Internal("malformed JSON reached the handler".into()))
        }
        Err(_) => Err(invalid("the body is not valid JSON")),
    }
}

fn str_member<'a>(body: &'a serde_json::Map<String, Value>, name: &str) -> Result<&'a str, ApiError> {
    match body.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(_) => Err(ApiError::InvalidRequest(format!("`{name}` must be a non-empty string"))),
        None => Err(ApiError::InvalidRequest(format!("`{name}` is required"))),
    }
}

fn scopes_json(scopes: &[String]) -> String {
    serde_json::to_string(scopes).unwrap_or_else(|_| "[]".into())
}

// ---------------------------------------------------------------------------------------------
// Discovery
// ---------------------------------------------------------------------------------------------

fn public_json(body: Value) -> Response {
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    response
}

fn prm(state: &AppState) -> Value {
    // DISC-05..11: the Protected Resource Metadata (RFC 9728 §2).
    // DISC-08: `resource` is the identifier the PRM URL derives from; the defect names the
    // origin while the challenge points at the `/api` resource's PRM.
    let resource = if state.defects.contains(Defect::PrmResourceIsOrigin) {
        state.base_url.clone()
    } else {
        state.resource()
    };
    json!({
        "resource": resource,
        "resource_name": "authmd reference service",
        "resource_logo_uri": format!("{}/logo.png", state.base_url),
        // DISC-21: every advertised URL is on the service's own (https, or loopback) origin.
        "resource_documentation": if state.defects.contains(Defect::PlainHttpResourceDocumentation) {
            json!("http://docs.authmd.invalid/agent-auth")
        } else {
            json!(format!("{}/auth.md", state.base_url))
        },
        "authorization_servers": [state.base_url],
        "scopes_supported": state.config.scopes,
        "bearer_methods_supported": if state.defects.contains(Defect::OmitBearerMethods) { json!(null) } else { json!(["header"]) },
    })
}

/// `GET /.well-known/oauth-protected-resource` (DISC-06, the conventional path).
pub async fn prm_root(State(state): State<AppState>) -> Response {
    public_json(prm(&state))
}

/// `GET /.well-known/oauth-protected-resource/api` (DISC-08, the RFC 9728 §3.1 URL of `resource`).
pub async fn prm_resource(State(state): State<AppState>) -> Response {
    if state.defects.contains(Defect::PrmOnlyAtRoot) {
        return StatusCode::NOT_FOUND.into_response();
    }
    public_json(prm(&state))
}

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

/// `GET /auth.md`: the skill document agents read (DISC-19).
pub async fn skill() -> Response {
    ([(header::CONTENT_TYPE, "text/markdown; charset=utf-8")], include_str!("skill.md")).into_response()
}

/// `GET /logo.png` (DISC-10): a 1×1 PNG.
pub async fn logo() -> Response {
    const PNG: &[u8] = &[
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52, 0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0, 0x1f,
        0x15, 0xc4, 0x89, 0, 0, 0, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0, 1, 0, 0, 5, 0, 1, 0x0d, 0x0a, 0x2d, 0xb4, 0, 0, 0, 0,
        0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
    ];
    ([(header::CONTENT_TYPE, "image/png")], PNG).into_response()
}

// ---------------------------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------------------------

/// `POST /agent/auth` (REG-GEN-01): dispatch on `type`.
pub async fn register(State(state): State<AppState>, Now(now): Now, request: Request) -> Response {
    let ip = peer_ip(&request);
    let outcome = async {
        let body = json_body(&state, request).await?;
        // REG-GEN-02: unknown or missing `type` is invalid_request.
        if state.defects.contains(Defect::RejectUnknownMembers)
            && body
                .keys()
                .any(|k| !["type", "requested_credential_type", "assertion_type", "assertion"].contains(&k.as_str()))
        {
            return Err(invalid("unknown member"));
        }
        let given = str_member(&body, "type")?;
        let lenient = state.defects.contains(Defect::LenientRegistrationType);
        match crate::defect::taken_for(lenient, given, ["anonymous", "identity_assertion"]) {
            "anonymous" => register_anonymous(&state, now, ip, &body).await,
            "identity_assertion" => register_identity(&state, now, ip, &body).await,
            _ if state.defects.contains(Defect::TreatUnknownTypeAsAnonymous) => register_anonymous(&state, now, ip, &body).await,
            other => Err(ApiError::InvalidRequest(format!("unknown type `{other}`"))),
        }
    }
    .await;
    state.reply(outcome)
}

/// DISC-19: `claim_url` equals `agent_auth.claim_uri`, absolute.
fn claim_url(state: &AppState) -> String {
    if state.defects.contains(Defect::RelativeClaimUrl) {
        "/agent/auth/claim".into()
    } else {
        format!("{}/agent/auth/claim", state.base_url)
    }
}

fn unsupported_credential(state: &AppState) -> ApiError {
    if state.defects.contains(Defect::WrongUnsupportedCredentialCode) {
        invalid("unsupported requested_credential_type")
    } else {
        ApiError::UnsupportedCredentialType
    }
}

async fn register_anonymous(state: &AppState, now: i64, ip: Option<IpAddr>, body: &serde_json::Map<String, Value>) -> Outcome {
    // REG-ANON-07: refused with anonymous_not_enabled when not offered.
    if !state.config.anonymous && !state.defects.contains(Defect::AnonymousWhenDisabled) {
        return Err(ApiError::AnonymousNotEnabled);
    }
    // REG-ANON-06: `requested_credential_type` is required in v0.1 (C-11).
    let requested = match str_member(body, "requested_credential_type") {
        Err(_) if state.defects.contains(Defect::DefaultCredentialType) || state.follows("C-11/defaulted") => "api_key",
        other => other?,
    };
    // REG-ANON-05: anonymous registrations only get API keys.
    let requested = crate::defect::taken_for(state.defects.contains(Defect::LenientCredentialType), requested, ["api_key"]);
    if requested != "api_key" {
        return Err(unsupported_credential(state));
    }
    if let Some(ip) = ip {
        state.rate_check(format!("anon:{ip}"), state.config.rate.anonymous_per_ip, now)?;
    }
    // REG-ANON-01, REG-ANON-04, REG-ANON-08, CRED-06: fresh high-entropy identifiers.
    let registration_id = ordered_id("reg_");
    let credential = secret("sk_", 24);
    let claim_token = state.mint_secret("clm_", Defect::WeakClaimToken);
    let expires = now + state.config.ttl.registration;
    let pre = if state.defects.contains(Defect::FullScopesBeforeClaim) {
        state.config.scopes.clone()
    } else {
        state.config.pre_claim_scopes.clone()
    };
    let post = state.config.scopes.clone();
    {
        let bind_at_once = state.defects.contains(Defect::BindAnonymousToUser);
        let (rid, cred_hash, claim_hash, pre, post) = (
            registration_id.clone(),
            hash(&credential),
            hash(&claim_token),
            scopes_json(&pre),
            scopes_json(&post),
        );
        state
            .db
            .call(move |conn| {
                exec(conn,
                    "INSERT INTO registrations (id, kind, created_at, expires_at, claim_token_hash, status, credential_type, pre_scopes, post_scopes)
                     VALUES (?1, 'anonymous', ?2, ?3, ?4, 'unclaimed', 'api_key', ?5, ?6)",
                    params![rid, now, expires, claim_hash, pre, post],
                )
                .map_err(db)?;
                // REG-ANON-11: the key acts as no user until a claim binds one.
                let user = if bind_at_once { Some(create_user(conn, None, false, None, now)?) } else { None };
                exec(conn,
                    "INSERT INTO credentials (hash, registration_id, kind, scopes, expires_at, user_id, source, created_at) VALUES (?1, ?2, 'api_key', ?3, NULL, ?4, 'anonymous', ?5)",
                    params![cred_hash, rid, pre, user, now],
                )
                .map_err(db)?;
                // AUDIT-01
                audit(conn, now, "registration.created", json!({ "registration_id": rid, "registration_type": "anonymous" }))
            })
            .await?;
    }
    let pre_scopes_out = if state.defects.contains(Defect::FullScopesBeforeClaim) {
        &state.config.scopes
    } else {
        &state.config.pre_claim_scopes
    };
    Ok(state.secret_json(json!({
        "registration_id": registration_id,
        "registration_type": if state.defects.contains(Defect::WrongRegistrationType) { "anonymous_registration" } else { "anonymous" },
        "credential_type": "api_key",
        "credential": credential,
        "credential_expires": null,
        "scopes": pre_scopes_out,
        "claim_url": claim_url(state),
        "claim_token": claim_token,
        "claim_token_expires": iso(expires),
        "post_claim_scopes": state.config.scopes,
    })))
}

async fn register_identity(state: &AppState, now: i64, ip: Option<IpAddr>, body: &serde_json::Map<String, Value>) -> Outcome {
    let assertion_type = str_member(body, "assertion_type")?;
    // IDJAG-40: unknown assertion types are invalid_request.
    let lenient = state.defects.contains(Defect::LenientAssertionType);
    let assertion_type = crate::defect::taken_for(lenient, assertion_type, [ID_JAG_URN, "verified_email"]);
    if assertion_type != ID_JAG_URN && assertion_type != "verified_email" {
        if state.defects.contains(Defect::UnknownAssertionTypeUnsupportedCredential) {
            return Err(ApiError::UnsupportedCredentialType);
        }
        return Err(ApiError::InvalidRequest(format!("unknown assertion_type `{assertion_type}`")));
    }
    let assertion = str_member(body, "assertion")?;
    let requested = str_member(body, "requested_credential_type")?;
    let lenient = state.defects.contains(Defect::LenientCredentialType);
    let advertised = state.config.identity_credential_types.iter().map(String::as_str);
    let requested = crate::defect::taken_for(lenient, requested, advertised);
    // REG-EMAIL-05, IDJAG-38: only the advertised credential types.
    if !state.config.identity_credential_types.iter().any(|t| t == requested) {
        return Err(unsupported_credential(state));
    }
    if let Some(ip) = ip {
        state.rate_check(format!("ident:{ip}"), state.config.rate.identity_per_ip, now)?;
    }
    if assertion_type == "verified_email" {
        register_email(state, now, assertion, requested).await
    } else {
        register_id_jag(state, now, assertion, requested).await
    }
}

async fn register_email(state: &AppState, now: i64, email: &str, requested: &str) -> Outcome {
    // REG-EMAIL-04
    if !state.config.verified_email && !state.defects.contains(Defect::VerifiedEmailWhenDisabled) {
        return Err(ApiError::VerifiedEmailNotEnabled);
    }
    // REG-EMAIL-03
    if crate::mail::email_address(email).is_none() && !state.defects.contains(Defect::AcceptAnyEmail) {
        return Err(invalid("assertion is not an email address"));
    }
    let registration_id = ordered_id("reg_");
    let claim_token = state.mint_secret("clm_", Defect::WeakEmailClaimToken);
    // EXP-03 (C-14): the emailed link is the only way to finish an email-verification claim
    // and it lives as long as its attempt, so that is the registration's window too, and
    // `claim_token_expires` says so rather than promising the anonymous registration TTL.
    let window = if state.defects.contains(Defect::EmailClaimWindowOverstated) {
        state.config.ttl.registration
    } else {
        state.config.ttl.registration.min(state.config.ttl.claim_attempt)
    };
    let expires = now + window;
    let (rid, claim_hash, email_owned, requested_owned) = (
        registration_id.clone(),
        hash(&claim_token),
        email.to_string(),
        requested.to_string(),
    );
    let (pre, post) = (scopes_json(&state.config.pre_claim_scopes), scopes_json(&state.config.scopes));
    state
        .db
        .call(move |conn| {
            exec(conn,
                "INSERT INTO registrations (id, kind, created_at, expires_at, claim_token_hash, status, credential_type, email, pre_scopes, post_scopes)
                 VALUES (?1, 'email-verification', ?2, ?3, ?4, 'unclaimed', ?5, ?6, ?7, ?8)",
                params![rid, now, expires, claim_hash, requested_owned, email_owned, pre, post],
            )
            .map_err(db)?;
            audit(conn, now, "registration.created", json!({ "registration_id": rid, "registration_type": "email-verification" }))
        })
        .await?;
    // REG-EMAIL-02: the service emails the address at once.
    start_attempt(state, now, &registration_id, email).await?;
    // REG-EMAIL-08: the answer is the same whether or not the address has an account.
    let known = if state.defects.contains(Defect::DiscloseExistingAccount) {
        let e = email.to_string();
        state.db.call(move |conn| user_by_verified_email(conn, &e)).await?.is_some()
    } else {
        false
    };
    let mut response = json!({
        "registration_id": registration_id,
        "registration_type": "email-verification",
        "claim_url": claim_url(state),
        "claim_token": claim_token,
        "claim_token_expires": iso(expires),
        "post_claim_scopes": state.config.scopes,
    });
    if known {
        response["existing_account"] = json!(true);
    }
    // REG-EMAIL-01: no credential before the claim completes.
    if state.defects.contains(Defect::IssueCredentialBeforeEmailClaim) {
        let credential = issue_credential(state, now, &registration_id, requested, &state.config.scopes, None, None).await?;
        response["credential"] = json!(credential);
        response["credential_type"] = json!(requested);
    }
    Ok(state.secret_json(response))
}

/// Inserts a credential for a registration and returns its plaintext (shown once).
async fn issue_credential(
    state: &AppState,
    now: i64,
    registration_id: &str,
    kind: &str,
    scopes: &[String],
    user_id: Option<String>,
    triple: Option<(String, String, String)>,
) -> Result<String, ApiError> {
    let credential = if kind == "access_token" {
        secret("at_", 24)
    } else {
        secret("sk_", 24)
    };
    let never = triple.is_none() && state.defects.contains(Defect::ClaimAccessTokenNeverExpires);
    let expires = (kind == "access_token" && !never).then_some(now + state.config.ttl.access_token);
    let (h, rid, kind, scopes) = (
        hash(&credential),
        registration_id.to_string(),
        kind.to_string(),
        scopes_json(scopes),
    );
    let (source, iss, sub, aud) = match triple {
        Some((i, s, a)) => ("identity_assertion", Some(i), Some(s), Some(a)),
        None => ("email-verification", None, None, None),
    };
    state
        .db
        .call(move |conn| {
            exec(
                conn,
                "INSERT INTO credentials (hash, registration_id, kind, scopes, expires_at, user_id, source, iss, sub, aud, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![h, rid, kind, scopes, expires, user_id, source, iss, sub, aud, now],
            )
            .map_err(db)
            .map(|_| ())
        })
        .await?;
    Ok(credential)
}

/// The account that owns `email` as a verified address (case-insensitive: the column is NOCASE).
fn user_by_verified_email(conn: &Connection, email: &str) -> Result<Option<String>, ApiError> {
    row(
        conn,
        "SELECT id FROM users WHERE email = ?1 AND email_verified = 1",
        params![email],
        |r| r.get(0),
    )
    .optional()
    .map_err(db)
}

/// Creates a user (just-in-time provisioning) and returns its id.
fn create_user(conn: &Connection, email: Option<&str>, email_verified: bool, phone: Option<&str>, now: i64) -> Result<String, ApiError> {
    let id = ordered_id("user_");
    exec(
        conn,
        "INSERT INTO users (id, email, email_verified, phone, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, email, email_verified, phone, now],
    )
    .map_err(db)?;
    Ok(id)
}

/// MATCH-01..06: `(iss, sub)` first, then a verified email, then a verified phone, else JIT.
fn match_user(conn: &Connection, state_defects: &crate::defect::Defects, now: i64, v: &verify::Verified) -> Result<String, ApiError> {
    if !state_defects.contains(Defect::NewUserPerAssertion) {
        let existing: Option<String> = if state_defects.contains(Defect::MatchBySubAlone) {
            row(conn, "SELECT user_id FROM delegations WHERE sub = ?1", params![v.sub], |r| r.get(0))
        } else {
            row(
                conn,
                "SELECT user_id FROM delegations WHERE iss = ?1 AND sub = ?2",
                params![v.iss, v.sub],
                |r| r.get(0),
            )
        }
        .optional()
        .map_err(db)?;
        if let Some(user) = existing {
            return Ok(user);
        }
    }
    let email = v.claims.get("email").and_then(Value::as_str);
    // MATCH-03: only an email asserted as verified (a JSON true) is used for linking.
    let email_verified = v.claims.get("email_verified") == Some(&Value::Bool(true));
    let phone = v.claims.get("phone_number").and_then(Value::as_str);
    let phone_verified = v.claims.get("phone_number_verified") == Some(&Value::Bool(true));
    let mut user: Option<String> = None;
    let may_link =
        (email_verified || state_defects.contains(Defect::LinkUnverifiedEmail)) && !state_defects.contains(Defect::SkipEmailLinking);
    if let Some(email) = email.filter(|_| may_link) {
        // MATCH-02: verified email match, case-insensitive.
        user = if state_defects.contains(Defect::CaseSensitiveEmailMatch) {
            row(
                conn,
                "SELECT id FROM users WHERE email = ?1 COLLATE BINARY AND email_verified = 1",
                params![email],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)?
        } else {
            user_by_verified_email(conn, email)?
        };
    }
    if user.is_none()
        && let Some(phone) = phone.filter(|_| phone_verified)
    {
        // MATCH-04
        user = row(conn, "SELECT id FROM users WHERE phone = ?1", params![phone], |r| r.get(0))
            .optional()
            .map_err(db)?;
    }
    let user = match user {
        Some(u) => u,
        // MATCH-05: just-in-time provisioning.
        None => create_user(
            conn,
            email.filter(|_| email_verified),
            email_verified,
            phone.filter(|_| phone_verified),
            now,
        )?,
    };
    exec(
        conn,
        "INSERT OR REPLACE INTO delegations (iss, sub, user_id) VALUES (?1, ?2, ?3)",
        params![v.iss, v.sub, user],
    )
    .map_err(db)?;
    Ok(user)
}

/// Records a `jti` in the replay cache; false when it was already there.
/// Remembers a logout token's (or SET's) `jti`: true when it is new, or when the replay check
/// is switched off by its defect.
pub(crate) fn logout_jti_is_fresh(
    conn: &Connection,
    defects: &crate::defect::Defects,
    iss: &str,
    jti: &str,
    until: i64,
    now: i64,
) -> Result<bool, ApiError> {
    let fresh = remember_jti(conn, defects, iss, TokenKind::Logout, jti, until, now)?;
    Ok(fresh || defects.contains(Defect::SkipLogoutReplayCheck))
}

pub(crate) fn remember_jti(
    conn: &Connection,
    defects: &crate::defect::Defects,
    iss: &str,
    kind: TokenKind,
    jti: &str,
    until: i64,
    now: i64,
) -> Result<bool, ApiError> {
    exec(
        conn,
        "DELETE FROM jtis WHERE expires_at < ?1 AND rowid IN (SELECT rowid FROM jtis WHERE expires_at < ?1 LIMIT 64)",
        params![now],
    )
    .map_err(db)?;
    let inserted = exec(
        conn,
        "INSERT OR IGNORE INTO jtis (iss, kind, jti, expires_at) VALUES (?1, ?2, ?3, ?4)",
        params![iss, kind.replay_namespace(defects), jti, until],
    )
    .map_err(db)?;
    Ok(inserted == 1)
}

async fn register_id_jag(state: &AppState, now: i64, assertion: &str, requested: &str) -> Outcome {
    if !state.config.id_jag {
        return Err(ApiError::IssuerNotEnabled);
    }
    let verified = match verify::verify(state, assertion, TokenKind::IdJag, now).await {
        Err(ApiError::MissingVerifiedEmail) if state.defects.contains(Defect::BurnJtiOfRejectedTokens) => {
            if let Some((iss, jti)) = verify::peek_iss_jti(assertion) {
                let defects = state.defects.clone();
                let _ = state
                    .db
                    .call(move |conn| remember_jti(conn, &defects, &iss, TokenKind::IdJag, &jti, now + 600, now))
                    .await;
            }
            return Err(ApiError::MissingVerifiedEmail);
        }
        other => other?,
    };
    state.rate_check(format!("iss:{}", verified.iss), state.config.rate.per_issuer, now)?;
    // CRED-09: one registration id per (iss, sub, aud).
    let registration_id = if state.defects.contains(Defect::RegistrationIdPerAssertion) {
        ordered_id("reg_")
    } else {
        format!(
            "reg_{}",
            &hash(&format!("{}\n{}\n{}", verified.iss, verified.sub, verified.aud))[..22]
        )
    };
    // CRED-06: unguessable.
    let bytes = state.secret_bytes(Defect::WeakIdJagCredential);
    let credential = if requested == "access_token" {
        secret("at_", bytes)
    } else {
        secret("sk_", bytes)
    };
    let expires = (requested == "access_token").then_some(now + state.config.ttl.access_token);
    let scopes = state.config.scopes.clone();
    {
        let state2 = state.clone();
        let (rid, cred_hash, kind, scopes_j) = (
            registration_id.clone(),
            hash(&credential),
            requested.to_string(),
            scopes_json(&scopes),
        );
        state
            .db
            .call(move |conn| {
                // IDJAG-28..30: a `jti` is accepted once, atomically (one writer thread).
                let fresh = remember_jti(
                    conn,
                    &state2.defects,
                    &verified.iss,
                    TokenKind::IdJag,
                    &verified.jti,
                    verified.replay_until,
                    now,
                )?;
                if !fresh && !state2.defects.contains(Defect::SkipReplayCheck) {
                    return Err(ApiError::ReplayDetected);
                }
                // REVOKE-19: a revocation ends the delegations it names, not the person's right
                // to delegate again.
                if state2.defects.contains(Defect::RefuseRevokedSubject) {
                    let revoked: i64 = row(
                        conn,
                        "SELECT COUNT(*) FROM credentials WHERE iss = ?1 AND sub = ?2 AND aud = ?3 AND revoked = 1",
                        params![verified.iss, verified.sub, verified.aud],
                        |r| r.get(0),
                    )
                    .map_err(db)?;
                    if revoked > 0 {
                        return Err(ApiError::InvalidRequest("this identity's delegation was revoked".into()));
                    }
                }
                let user = match_user(conn, &state2.defects, now, &verified)?;
                exec(conn,
                    "INSERT INTO registrations (id, kind, created_at, expires_at, status, user_id, credential_type, pre_scopes, post_scopes)
                     VALUES (?1, 'agent-provider', ?2, ?2, 'claimed', ?3, ?4, ?5, ?5)
                     ON CONFLICT(id) DO UPDATE SET user_id = excluded.user_id",
                    params![rid, now, user, kind, scopes_j],
                )
                .map_err(db)?;
                exec(
                    conn,
                    "INSERT INTO credentials (hash, registration_id, kind, scopes, expires_at, user_id, source, iss, sub, aud, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'identity_assertion', ?7, ?8, ?9, ?10)",
                    params![
                        cred_hash,
                        rid,
                        kind,
                        scopes_j,
                        expires,
                        user,
                        verified.iss,
                        verified.sub,
                        verified.aud,
                        now
                    ],
                )
                .map_err(db)?;
                let c = &verified.claims;
                audit(
                    conn,
                    now,
                    "registration.created",
                    json!({ "registration_id": rid, "registration_type": "agent-provider", "iss": verified.iss, "sub": verified.sub,
                            "agent_platform": c.get("agent_platform"), "agent_context_id": c.get("agent_context_id") }),
                )
            })
            .await?;
    }
    let mut response = json!({
        "registration_id": registration_id,
        "registration_type": if state.defects.contains(Defect::WrongRegistrationType) { "agent_provider" } else { "agent-provider" },
        "credential_type": requested,
        "credential": credential,
        "credential_expires": expires.map(iso),
        "scopes": scopes,
    });
    // CRED-02: never a refresh token (ID-JAG §4.4.3).
    if state.defects.contains(Defect::ReturnRefreshToken) {
        response["refresh_token"] = json!(secret("rt_", 24));
    }
    Ok(state.secret_json(response))
}

// ---------------------------------------------------------------------------------------------
// Claim ceremony
// ---------------------------------------------------------------------------------------------

struct Attempt {
    id: String,
    token: Option<String>,
    expires_at: i64,
}

/// Starts (or, for the same email while live, reuses) a claim attempt and mails its link.
async fn start_attempt(state: &AppState, now: i64, registration_id: &str, email: &str) -> Result<Attempt, ApiError> {
    let (rid, email_owned, ttl) = (registration_id.to_string(), email.to_string(), state.config.ttl.claim_attempt);
    let repeat_defect = state.defects.contains(Defect::NewAttemptOnRepeatClaim) || state.follows("C-07/v0.7-new-attempt");
    let token_bytes = state.secret_bytes(Defect::WeakAttemptToken);
    let (base_url, send) = (state.base_url.clone(), !state.defects.contains(Defect::SendNoClaimEmail));
    let attempt = state
        .db
        .call(move |conn| {
            // CLAIM-06 (informational): the same email while the attempt is live is idempotent.
            let live: Option<(String, i64)> = row(conn,
                    "SELECT id, expires_at FROM claim_attempts WHERE registration_id = ?1 AND superseded = 0 AND expires_at > ?2 AND email = ?3 COLLATE NOCASE",
                    params![rid, now, email_owned],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(db)?;
            if let Some((id, expires_at)) = live.filter(|_| !repeat_defect) {
                return Ok(Attempt { id, token: None, expires_at });
            }
            // CLAIM-05: a new attempt supersedes every earlier one, token and OTP alike.
            exec(conn, "UPDATE claim_attempts SET superseded = 1 WHERE registration_id = ?1", params![rid]).map_err(db)?;
            let id = ordered_id("cla_");
            let token = secret("cvt_", token_bytes);
            let expires_at = now + ttl;
            exec(conn,
                "INSERT INTO claim_attempts (id, registration_id, email, token_hash, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, rid, email_owned, hash(&token), now, expires_at],
            )
            .map_err(db)?;
            // CLAIM-02: the link leads to a service page and carries the claim_attempt_token.
            // The mail is queued in this transaction: the attempt and its mail exist together.
            if send {
                let link = format!("{base_url}/agent/auth/claim/view?token={token}");
                exec(conn,
                    "INSERT INTO outbox (recipient, registration_id, link, expires, next_try_at) VALUES (?1, ?2, ?3, ?4, 0)",
                    params![email_owned, rid, link, iso(expires_at)],
                )
                .map_err(db)?;
            }
            // AUDIT-02
            audit(conn, now, "claim.requested", json!({ "registration_id": rid, "email": email_owned }))?;
            Ok(Attempt { id, token: Some(token), expires_at })
        })
        .await?;
    if attempt.token.is_some() {
        tokio::spawn(drain_outbox(state.clone()));
    }
    Ok(attempt)
}

/// A queued claim mail.
struct Queued {
    id: i64,
    recipient: String,
    registration_id: String,
    link: String,
    expires: String,
}

/// Delivers every due claim mail. Each row is leased before it is sent (so two drains never
/// send it twice), deleted once delivered, and on failure retried with a doubling backoff
/// (1 s up to 5 min). Wall time, not the test clock: delivery is about the relay, not TTLs.
pub async fn drain_outbox(state: AppState) {
    loop {
        let wall = time::OffsetDateTime::now_utc().unix_timestamp();
        let leased = state
            .db
            .call(move |conn| {
                let row = conn
                    .query_row(
                        "SELECT id, recipient, registration_id, link, expires FROM outbox WHERE next_try_at <= ?1 ORDER BY id LIMIT 1",
                        params![wall],
                        |r| {
                            Ok(Queued {
                                id: r.get(0)?,
                                recipient: r.get(1)?,
                                registration_id: r.get(2)?,
                                link: r.get(3)?,
                                expires: r.get(4)?,
                            })
                        },
                    )
                    .optional()
                    .map_err(db)?;
                if let Some(q) = &row {
                    exec(conn, "UPDATE outbox SET next_try_at = ?1 WHERE id = ?2", params![wall + 60, q.id]).map_err(db)?;
                }
                Ok(row)
            })
            .await;
        let Ok(Some(mail)) = leased else { return };
        let sent = state
            .mailer
            .send_claim(&mail.recipient, &mail.registration_id, &mail.link, &mail.expires)
            .await;
        let (id, outcome) = (mail.id, sent.clone());
        let _ = state
            .db
            .call(move |conn| {
                match &outcome {
                    Ok(()) => exec(conn, "DELETE FROM outbox WHERE id = ?1", params![id]),
                    Err(e) => exec(conn,
                        "UPDATE outbox SET tries = tries + 1, last_error = ?2, next_try_at = ?3 + MIN(300, 1 << MIN(tries, 9)) WHERE id = ?1",
                        params![id, e, wall],
                    ),
                }
                .map_err(db)
            })
            .await;
        if let Err(e) = sent {
            tracing::warn!(registration_id = %mail.registration_id, error = %e, "claim mail not delivered; will retry");
        }
    }
}

struct Registration {
    id: String,
    kind: String,
    status: String,
    expires_at: i64,
    credential_type: Option<String>,
    post_scopes: Vec<String>,
}

fn registration_by_claim_token(conn: &Connection, claim_token: &str) -> Result<Option<Registration>, ApiError> {
    row(
        conn,
        "SELECT id, kind, status, expires_at, credential_type, post_scopes FROM registrations WHERE claim_token_hash = ?1",
        params![hash(claim_token)],
        |r| {
            Ok(Registration {
                id: r.get(0)?,
                kind: r.get(1)?,
                status: r.get(2)?,
                expires_at: r.get(3)?,
                credential_type: r.get(4)?,
                post_scopes: serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or_default(),
            })
        },
    )
    .optional()
    .map_err(db)
}

fn expired(state: &AppState, reg: &Registration, now: i64) -> bool {
    let lapsed = now >= reg.expires_at;
    match reg.status.as_str() {
        "unclaimed" => lapsed && !state.defects.contains(Defect::NeverExpireAnonymous),
        // EXP-02: a claimed registration never expires later.
        "claimed" => lapsed && reg.kind == "anonymous" && state.defects.contains(Defect::ExpireClaimedRegistrations),
        _ => true,
    }
}

/// `POST /agent/auth/claim` (CLAIM-01..10).
pub async fn claim(State(state): State<AppState>, Now(now): Now, request: Request) -> Response {
    let outcome = async {
        let body = json_body(&state, request).await?;
        // CLAIM-10: a missing member is a malformed request, not an unknown token.
        let claim_token = match str_member(&body, "claim_token") {
            Err(_) if state.defects.contains(Defect::MissingClaimTokenUnauthorized) => return Err(ApiError::InvalidClaimToken),
            Ok(t) if state.defects.contains(Defect::TrimmedClaimToken) => t.trim().to_string(),
            other => other?.to_string(),
        };
        let email = str_member(&body, "email")?.to_string();
        if crate::mail::email_address(&email).is_none() {
            return Err(invalid("email is not an email address"));
        }
        let token = claim_token.clone();
        let reg = state.db.call(move |conn| registration_by_claim_token(conn, &token)).await?;
        // CLAIM-07
        let reg = reg.ok_or(ApiError::InvalidClaimToken)?;
        // REG-EMAIL-07: email-verification registrations need no explicit claim call.
        if reg.kind != "anonymous" && !state.defects.contains(Defect::ClaimEmailRegistrations) {
            return Err(ApiError::ClaimedOrInFlight);
        }
        // CLAIM-09, EXP-01: expiry is checked before the claimed status so that an expired
        // registration reads as expired; a claimed one is not expired (EXP-02).
        if expired(&state, &reg, now) {
            return Err(ApiError::ClaimExpired);
        }
        // CLAIM-08
        if reg.status == "claimed" && !state.defects.contains(Defect::ForgetClaimedStatus) {
            return Err(ApiError::ClaimedOrInFlight);
        }
        let attempt = start_attempt(&state, now, &reg.id, &email).await?;
        // CLAIM-04: a fresh attempt id per attempt, never the registration id.
        let attempt_id = if state.defects.contains(Defect::RegistrationIdAsAttemptId) {
            reg.id.clone()
        } else {
            attempt.id
        };
        Ok(Json(json!({
            "registration_id": reg.id,
            "claim_attempt_id": attempt_id,
            "status": "initiated",
            "expires_at": iso(attempt.expires_at),
        }))
        .into_response())
    }
    .await;
    state.reply(outcome)
}

enum AttemptState {
    Unknown,
    Claimed,
    Expired,
    Live { id: String, registration_id: String },
}

/// `window` is false only under the `ignore-attempt-window` defect.
fn attempt_by_token(conn: &Connection, token: &str, now: i64, window: bool) -> Result<AttemptState, ApiError> {
    let row: Option<(String, String, i64, i64, String)> = row(conn,
            "SELECT a.id, a.registration_id, a.superseded, a.expires_at, r.status FROM claim_attempts a JOIN registrations r ON r.id = a.registration_id WHERE a.token_hash = ?1",
            params![hash(token)],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()
        .map_err(db)?;
    Ok(match row {
        None => AttemptState::Unknown,
        Some((_, _, _, _, status)) if status == "claimed" => AttemptState::Claimed,
        Some((_, _, superseded, _, _)) if superseded != 0 => AttemptState::Unknown,
        Some((_, _, _, expires_at, _)) if window && now >= expires_at => AttemptState::Expired,
        Some((id, registration_id, _, _, _)) => AttemptState::Live { id, registration_id },
    })
}

#[derive(serde::Deserialize)]
pub struct ViewQuery {
    token: Option<String>,
}

/// `GET /agent/auth/claim/view?token=…`: the user-facing page (CLAIM-29). A plain GET mints
/// nothing (CLAIM-03): the code appears only when the user presses the button.
pub async fn claim_view(State(state): State<AppState>, Now(now): Now, Query(query): Query<ViewQuery>) -> Response {
    let Some(token) = query.token.filter(|t| !t.is_empty()) else {
        return (StatusCode::BAD_REQUEST, Html("<h1>Missing token</h1>")).into_response();
    };
    let (t, window) = (token.clone(), !state.defects.contains(Defect::IgnoreAttemptWindow));
    let found = state.db.call(move |conn| attempt_by_token(conn, &t, now, window)).await;
    match found {
        Ok(AttemptState::Live { .. }) => {}
        Ok(AttemptState::Expired) => {
            return (StatusCode::GONE, Html("<h1>Link expired</h1>")).into_response();
        }
        Ok(_) => return (StatusCode::NOT_FOUND, Html("<h1>Link invalid</h1>")).into_response(),
        Err(e) => return state.reply(Err(e)),
    }
    if state.defects.contains(Defect::MintOtpOnView) {
        let (t, fresh) = (token.clone(), hash(&otp()));
        let _ = state
            .db
            .call(move |conn| {
                exec(
                    conn,
                    "UPDATE claim_attempts SET otp_hash = ?1 WHERE token_hash = ?2",
                    params![fresh, hash(&t)],
                )
                .map_err(db)
            })
            .await;
    }
    if state.defects.contains(Defect::BlankClaimPage) {
        return StatusCode::OK.into_response();
    }
    let token_json = serde_json::to_string(&token).unwrap_or_default().replace('<', "\\u003c");
    let page = format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Read this code back to the agent</title></head>
<body><h1>Read this code back to the agent</h1>
<p>An AI agent asks to act on your behalf. If you started this, show the one-time code and read it back to the agent.
If you did not, close this page: nothing happens without the code.</p>
<button id="show">Show my one-time code</button><p id="code" style="font-size:2em;font-family:monospace"></p>
<script>
const token = {token_json};
document.getElementById("show").addEventListener("click", async () => {{
  const r = await fetch("{base}/agent/auth/claim/attempt/challenge", {{method: "POST", headers: {{"Content-Type": "application/json"}}, body: JSON.stringify({{claim_attempt_token: token}})}});
  const body = await r.json();
  document.getElementById("code").textContent = r.ok ? body.challenge : body.message;
}});
</script></body></html>"#,
        base = state.base_url
    );
    let mut response = Html(page).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `POST /agent/auth/claim/attempt/challenge` (CLAIM-11..15): mint a new OTP.
pub async fn challenge(State(state): State<AppState>, Now(now): Now, request: Request) -> Response {
    let outcome = async {
        let body = json_body(&state, request).await?;
        let token = match str_member(&body, "claim_attempt_token")? {
            t if state.defects.contains(Defect::LenientAttemptToken) => crate::defect::trimmed_and_decoded(t),
            t => t.to_string(),
        };
        let code = if state.defects.contains(Defect::ShortOtp) { otp()[1..].to_string() } else { otp() };
        let code_hash = hash(&code);
        let otp_ttl = state.config.ttl.otp;
        // SEC-01: only the hash is stored; the plaintext is kept solely under the CLAIM-28 and
        // otp-prefix-compare defects.
        let leak = (state.defects.contains(Defect::ExposeOtpInClaimResponse) || state.defects.contains(Defect::OtpPrefixCompare))
            .then(|| code.clone());
        let window = !state.defects.contains(Defect::IgnoreAttemptWindow);
        let superseded_after_claim = state.follows("C-17/B");
        let claimed_as_expired = state.defects.contains(Defect::ClaimedAttemptReportedExpired);
        let expires_at = state
            .db
            .call(move |conn| match attempt_by_token(conn, &token, now, window)? {
                // CLAIM-13: unknown or superseded → 410 claim_superseded; claimed → 409
                // claim_completed; window closed → 410 claim_expired.
                AttemptState::Unknown => Err(ApiError::ClaimSuperseded),
                AttemptState::Claimed if claimed_as_expired => Err(ApiError::ClaimExpired),
                AttemptState::Claimed if superseded_after_claim => Err(ApiError::ClaimSuperseded),
                AttemptState::Claimed => Err(ApiError::ClaimCompleted),
                AttemptState::Expired => Err(ApiError::ClaimExpired),
                AttemptState::Live { id, registration_id } => {
                    // CLAIM-12: each mint replaces the previous OTP (kept aside only for the
                    // keep-previous-otp defect); the failure count restarts with the new code.
                    let expires_at = now + otp_ttl;
                    exec(conn,
                        "UPDATE claim_attempts SET previous_otp_hash = otp_hash, otp_hash = ?1, otp_expires_at = ?2, failures = 0, otp_plain = ?4 WHERE id = ?3",
                        params![code_hash, expires_at, id, leak],
                    )
                    .map_err(db)?;
                    // AUDIT-03
                    audit(conn, now, "otp.generated", json!({ "registration_id": registration_id, "claim_attempt_id": id }))?;
                    Ok(expires_at)
                }
            })
            .await?;
        let mut response = Json(json!({ "type": "otp", "challenge": code, "expires_at": iso(expires_at) })).into_response();
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(response)
    }
    .await;
    state.reply(outcome)
}

/// The live attempt of a registration, as `/complete` reads it.
struct CurrentAttempt {
    id: String,
    email: String,
    otp_hash: Option<String>,
    otp_expires: Option<i64>,
    previous: Option<String>,
    failures: u32,
    plain: Option<String>,
}

struct Completion {
    registration: Registration,
    user_id: String,
}

/// `POST /agent/auth/claim/complete` (CLAIM-16..27).
pub async fn complete(State(state): State<AppState>, Now(now): Now, request: Request) -> Response {
    let outcome = async {
        let body = json_body(&state, request).await?;
        let claim_token = match str_member(&body, "claim_token")? {
            t if state.defects.contains(Defect::TrimmedClaimToken) => t.trim().to_string(),
            t => t.to_string(),
        };
        let given = str_member(&body, "otp")?.to_string();
        let st = state.clone();
        // The inner Result is committed even when it is an error, so a wrong guess counts.
        let completion: Result<Completion, (ApiError, Option<String>)> = state
            .db
            .call(move |conn| {
                let Some(reg) = registration_by_claim_token(conn, &claim_token)? else {
                    // CLAIM-23
                    return Ok(Err((ApiError::InvalidClaimToken, None)));
                };
                // CLAIM-22
                if expired(&st, &reg, now) {
                    return Ok(Err((ApiError::ClaimExpired, None)));
                }
                // CLAIM-21, CLAIM-27
                if reg.status == "claimed" && !st.defects.contains(Defect::ForgetClaimedStatus) {
                    return Ok(Err((ApiError::PreviouslyClaimed, None)));
                }
                let current: Option<CurrentAttempt> = row(
                    conn,
                    "SELECT id, email, otp_hash, otp_expires_at, previous_otp_hash, failures, otp_plain FROM claim_attempts
                         WHERE registration_id = ?1 AND superseded = 0 ORDER BY created_at DESC, rowid DESC LIMIT 1",
                    params![reg.id],
                    |r| {
                        Ok(CurrentAttempt {
                            id: r.get(0)?,
                            email: r.get(1)?,
                            otp_hash: r.get(2)?,
                            otp_expires: r.get(3)?,
                            previous: r.get(4)?,
                            failures: r.get(5)?,
                            plain: r.get(6)?,
                        })
                    },
                )
                .optional()
                .map_err(db)?;
                let Some(CurrentAttempt {
                    id: attempt_id,
                    email,
                    otp_hash,
                    otp_expires,
                    previous,
                    failures,
                    plain,
                }) = current
                else {
                    return Ok(Err((ApiError::OtpNotGenerated, None)));
                };
                // CLAIM-24 (C-18): no OTP minted yet for the current attempt.
                let otp_hash = match otp_hash {
                    Some(h) => h,
                    // The defect: a missing stored code is skipped instead of refused.
                    None if st.defects.contains(Defect::CompleteWithoutOtp) => hash(&given),
                    // The CLAIM-05 defect: the superseded attempt's code stands in until a new one.
                    None if st.defects.contains(Defect::SupersededOtpUntilRemint)
                        && row(
                            conn,
                            "SELECT COUNT(*) FROM claim_attempts WHERE registration_id = ?1 AND superseded = 1 AND otp_hash = ?2",
                            params![reg.id, hash(&given)],
                            |r| r.get::<_, i64>(0),
                        )
                        .map_err(db)?
                            > 0 =>
                    {
                        hash(&given)
                    }
                    None => return Ok(Err((ApiError::OtpNotGenerated, None))),
                };
                // CLAIM-25: a bounded number of wrong guesses burns the code.
                let limit_reached = failures >= st.config.max_otp_failures && !st.defects.contains(Defect::NoOtpAttemptLimit);
                // CLAIM-31: exact comparison, no trimming.
                let given_hash = if st.defects.contains(Defect::TrimOtp) {
                    hash(given.trim())
                } else {
                    hash(&given)
                };
                let mut accepted = same_hash(&given_hash, &otp_hash);
                // CLAIM-19 defect: only as many characters as the code has are compared.
                if !accepted && st.defects.contains(Defect::OtpPrefixCompare) {
                    accepted = plain.as_deref().is_some_and(|p| given.starts_with(p));
                }
                // CLAIM-12 defect: the previous OTP of this attempt still works.
                if !accepted && st.defects.contains(Defect::KeepPreviousOtp) {
                    accepted = previous.as_deref().is_some_and(|p| same_hash(&given_hash, p));
                }
                // CLAIM-26 defect: an OTP of any registration works.
                if !accepted && st.defects.contains(Defect::OtpNotBoundToRegistration) {
                    let n: i64 = row(
                        conn,
                        "SELECT COUNT(*) FROM claim_attempts WHERE otp_hash = ?1",
                        params![given_hash],
                        |r| r.get(0),
                    )
                    .map_err(db)?;
                    accepted = n > 0;
                }
                // CLAIM-05 defect: OTPs of superseded attempts still work (C-16).
                if !accepted && st.defects.contains(Defect::KeepSupersededOtps) {
                    let n: i64 = row(
                        conn,
                        "SELECT COUNT(*) FROM claim_attempts WHERE registration_id = ?1 AND superseded = 1 AND otp_hash = ?2",
                        params![reg.id, given_hash],
                        |r| r.get(0),
                    )
                    .map_err(db)?;
                    accepted = n > 0;
                }
                if !accepted || limit_reached {
                    exec(
                        conn,
                        "UPDATE claim_attempts SET failures = failures + 1 WHERE id = ?1",
                        params![attempt_id],
                    )
                    .map_err(db)?;
                    // CLAIM-19, CLAIM-26
                    return Ok(Err((ApiError::OtpInvalid, plain)));
                }
                // CLAIM-20
                if otp_expires.is_some_and(|e| now >= e) && !st.defects.contains(Defect::IgnoreOtpExpiry) {
                    return Ok(Err((ApiError::OtpExpired, None)));
                }
                // MATCH-07: bind to the account owning the claim email, or a new one; the email
                // is now verified by the OTP round trip.
                let existing = if st.defects.contains(Defect::ClaimCreatesNewUser) {
                    None
                } else {
                    user_by_verified_email(conn, &email)?
                };
                let user_id = match existing {
                    Some(u) => u,
                    None => create_user(conn, Some(&email), true, None, now)?,
                };
                exec(
                    conn,
                    "UPDATE registrations SET status = 'claimed', user_id = ?1 WHERE id = ?2",
                    params![user_id, reg.id],
                )
                .map_err(db)?;
                exec(
                    conn,
                    "UPDATE claim_attempts SET otp_hash = NULL, superseded = 1 WHERE registration_id = ?1",
                    params![reg.id],
                )
                .map_err(db)?;
                if reg.kind == "anonymous" {
                    // CLAIM-17: the same key gains post_claim_scopes in place; no rotation.
                    let scopes = if st.defects.contains(Defect::KeepPreClaimScopes) {
                        scopes_json(&st.config.pre_claim_scopes)
                    } else {
                        scopes_json(&reg.post_scopes)
                    };
                    exec(
                        conn,
                        "UPDATE credentials SET scopes = ?1, user_id = ?2 WHERE registration_id = ?3",
                        params![scopes, user_id, reg.id],
                    )
                    .map_err(db)?;
                    if st.defects.contains(Defect::RotateKeyOnClaim) {
                        exec(
                            conn,
                            "UPDATE credentials SET revoked = 1 WHERE registration_id = ?1",
                            params![reg.id],
                        )
                        .map_err(db)?;
                    }
                }
                // AUDIT-04
                audit(
                    conn,
                    now,
                    "claim.confirmed",
                    json!({ "registration_id": reg.id, "claimed_by_user_id": user_id }),
                )?;
                Ok(Ok(Completion {
                    registration: reg,
                    user_id,
                }))
            })
            .await?;
        let Completion {
            registration: reg,
            user_id,
        } = match completion {
            Ok(c) => c,
            // CLAIM-28 defect: the agent-facing error body leaks the current OTP.
            Err((ApiError::OtpInvalid, Some(plain))) => {
                return Ok((
                    StatusCode::UNAUTHORIZED,
                    Json(json!({ "error": "otp_invalid", "message": format!("expected {plain}") })),
                )
                    .into_response());
            }
            Err((e, _)) => return Err(e),
        };
        let mut response = json!({ "registration_id": reg.id, "status": "claimed" });
        if reg.kind == "email-verification" {
            // CLAIM-18: the credential of the requested type, with post_claim_scopes.
            let kind = reg.credential_type.clone().unwrap_or_else(|| "access_token".into());
            let credential = issue_credential(&state, now, &reg.id, &kind, &reg.post_scopes, Some(user_id), None).await?;
            response["credential_type"] = json!(kind);
            response["credential"] = json!(credential);
            response["credential_expires"] = if kind == "access_token" {
                json!(iso(now + state.config.ttl.access_token))
            } else {
                Value::Null
            };
            response["scopes"] = json!(reg.post_scopes);
        }
        if state.defects.contains(Defect::RotateKeyOnClaim) && reg.kind == "anonymous" {
            let credential = issue_credential(&state, now, &reg.id, "api_key", &reg.post_scopes, None, None).await?;
            response["credential"] = json!(credential);
        }
        Ok(state.secret_json(response))
    }
    .await;
    state.reply(outcome)
}

// ---------------------------------------------------------------------------------------------
// Revocation
// ---------------------------------------------------------------------------------------------

/// `POST /agent/auth/revoke` (REVOKE-01..21): a provider's logout token.
pub async fn revoke(State(state): State<AppState>, Now(now): Now, request: Request) -> Response {
    let outcome = async {
        let (headers, bytes) = body_bytes(request).await?;
        let body = String::from_utf8(bytes.to_vec()).map_err(|_| invalid("the body is not UTF-8"))?;
        // REVOKE-01, REVOKE-15: the auth.md wire format, not BCL's form POST (C-20).
        let token = if content_type_is(&headers, "application/logout+jwt") {
            body.trim().to_string()
        } else if state.defects.contains(Defect::AcceptFormLogout) {
            url::form_urlencoded::parse(body.as_bytes())
                .find(|(k, _)| k == "logout_token")
                .map(|(_, v)| v.into_owned())
                .unwrap_or(body)
        } else {
            return Err(invalid("expected a JWT body with Content-Type application/logout+jwt"));
        };
        if token.is_empty() {
            return Err(invalid("empty body"));
        }
        let verified = verify::verify(&state, &token, TokenKind::Logout, now).await?;
        let st = state.clone();
        let revoked = state
            .db
            .call(move |conn| {
                // REVOKE-11: a logout token is processed once.
                if !logout_jti_is_fresh(conn, &st.defects, &verified.iss, &verified.jti, verified.replay_until, now)? {
                    return Err(ApiError::ReplayDetected);
                }
                if st.defects.contains(Defect::IgnoreLogoutTokens) {
                    return Ok(0);
                }
                if st.defects.contains(Defect::RevokeWholeUser) {
                    exec(
                        conn,
                        "UPDATE credentials SET revoked = 1 WHERE revoked = 0 AND user_id IN
                         (SELECT user_id FROM credentials WHERE iss = ?1 AND sub = ?2 AND aud = ?3)",
                        params![verified.iss, verified.sub, verified.aud],
                    )
                    .map_err(db)?;
                }
                // REVOKE-02, REVOKE-03, REVOKE-18, REVOKE-22: every credential of exactly this
                // triple, and only those: keys from the anonymous and verified-email flows of the
                // same person were not delegated by the provider and are not its to revoke.
                let n = if st.defects.contains(Defect::RevokeBySubAlone) {
                    exec(
                        conn,
                        "UPDATE credentials SET revoked = 1 WHERE iss IS NOT NULL AND sub = ?1 AND aud = ?2 AND revoked = 0",
                        params![verified.sub, verified.aud],
                    )
                } else {
                    exec(
                        conn,
                        "UPDATE credentials SET revoked = 1 WHERE iss = ?1 AND sub = ?2 AND aud = ?3 AND revoked = 0",
                        params![verified.iss, verified.sub, verified.aud],
                    )
                }
                .map_err(db)?;
                // AUDIT-06
                audit(
                    conn,
                    now,
                    "registration.revoked",
                    json!({ "iss": verified.iss, "sub": verified.sub, "credentials": n }),
                )?;
                Ok(n)
            })
            .await?;
        let mut response = Json(json!({ "revoked": revoked })).into_response();
        // REVOKE-21 (BCL §2.8)
        if !state.defects.contains(Defect::NoRevokeCacheControl) {
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        Ok(response)
    }
    .await;
    state.reply(outcome)
}

// ---------------------------------------------------------------------------------------------
// Protected API
// ---------------------------------------------------------------------------------------------

struct Caller {
    kind: String,
    scopes: Vec<String>,
    source: String,
    registration_id: String,
    user: Option<(String, Option<String>)>,
    iss: Option<String>,
    sub: Option<String>,
}

/// API-01..07: find and check the bearer credential.
async fn authenticate(state: &AppState, headers: &HeaderMap, query: Option<&str>, now: i64) -> Result<Caller, ApiError> {
    let header_token = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| {
        let (scheme, token) = v.split_once(' ')?;
        // API-06: the scheme name is case-insensitive (RFC 9110 §11.1).
        let scheme_ok = if state.defects.contains(Defect::AcceptAnyScheme) {
            true
        } else if state.defects.contains(Defect::CaseSensitiveScheme) {
            scheme == "Bearer"
        } else {
            scheme.eq_ignore_ascii_case("bearer")
        };
        scheme_ok.then(|| token.trim().to_string())
    });
    // API-07: no tokens in the query string (bearer_methods_supported is ["header"]).
    let query_token = query.filter(|_| state.defects.contains(Defect::AcceptQueryToken)).and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v.into_owned())
    });
    let presented = headers.contains_key(header::AUTHORIZATION);
    let Some(token) = header_token.or(query_token).filter(|t| !t.is_empty()) else {
        return Err(ApiError::Unauthorized { presented });
    };
    let token = if state.defects.contains(Defect::PercentDecodedCredentials) {
        url::form_urlencoded::parse(format!("t={token}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or(token)
    } else {
        token
    };
    let h = hash(&token);
    let st = state.clone();
    // A pure read: off the writer thread (API calls are the hot path).
    state
        .db
        .read(move |conn| {
            let row = conn.query_row(
                    "SELECT c.kind, c.scopes, c.expires_at, c.revoked, c.source, c.registration_id, c.iss, c.sub, r.kind, r.status, r.expires_at, u.id, u.email
                     FROM credentials c JOIN registrations r ON r.id = c.registration_id
                     LEFT JOIN users u ON u.id = COALESCE(c.user_id, r.user_id)
                     WHERE c.hash = ?1",
                    params![h],
                    |r| {
                        Ok((
                            (r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<i64>>(2)?, r.get::<_, i64>(3)?, r.get::<_, String>(4)?),
                            (r.get::<_, String>(5)?, r.get::<_, Option<String>>(6)?, r.get::<_, Option<String>>(7)?),
                            (r.get::<_, String>(8)?, r.get::<_, String>(9)?, r.get::<_, i64>(10)?),
                            (r.get::<_, Option<String>>(11)?, r.get::<_, Option<String>>(12)?),
                        ))
                    },
                )
                .optional()
                .map_err(db)?;
            let unauthorized = ApiError::Unauthorized { presented: true };
            let Some(((kind, scopes, expires_at, revoked, source), (registration_id, iss, sub), (reg_kind, status, reg_expires), (user_id, email))) = row else {
                // API-02
                return Err(unauthorized);
            };
            // API-04
            if revoked != 0 {
                return Err(unauthorized);
            }
            // API-03, CRED-04
            if expires_at.is_some_and(|e| now >= e) && !st.defects.contains(Defect::AcceptExpiredAccessToken) {
                return Err(unauthorized);
            }
            // EXP-01, EXP-02: an unclaimed anonymous key dies with its registration.
            let reg = Registration { id: registration_id.clone(), kind: reg_kind, status, expires_at: reg_expires, credential_type: None, post_scopes: Vec::new() };
            if reg.kind == "anonymous" && expired(&st, &reg, now) {
                return Err(unauthorized);
            }
            Ok(Caller {
                kind,
                scopes: serde_json::from_str(&scopes).unwrap_or_default(),
                source,
                registration_id,
                user: user_id.map(|u| (u, email)),
                iss,
                sub,
            })
        })
        .await
}

/// `GET /api/resource`: the identity/scope echo the harness uses as its oracle.
pub async fn api_resource(State(state): State<AppState>, Now(now): Now, request: Request) -> Response {
    let (headers, query) = (request.headers().clone(), request.uri().query().map(str::to_string));
    let outcome = authenticate(&state, &headers, query.as_deref(), now).await.map(|caller| {
        let body = match state.config.oracle_shape {
            OracleShape::Nested => json!({
                "message": "credential accepted",
                "user": caller.user.map(|(id, email)| json!({ "id": id, "email": email })),
                "credential": {
                    "type": caller.kind,
                    "scope": caller.scopes,
                    "source": caller.source,
                    "registration_id": caller.registration_id,
                    "iss": caller.iss,
                    "sub": caller.sub,
                },
            }),
            OracleShape::Flat => json!({
                "who": caller.user.map(|(id, _)| id),
                "scope": caller.scopes.join(" "),
                "registration": caller.registration_id,
            }),
        };
        Json(body).into_response()
    });
    state.reply(outcome)
}

async fn scoped(state: AppState, now: i64, request: Request, scope: &'static str) -> Response {
    let (headers, query) = (request.headers().clone(), request.uri().query().map(str::to_string));
    let outcome = async {
        if scope == "api.read" && state.defects.contains(Defect::OpenReadProbe) && !headers.contains_key(header::AUTHORIZATION) {
            return Ok(Json(json!({ "ok": true, "scope": scope })).into_response());
        }
        let caller = authenticate(&state, &headers, query.as_deref(), now).await?;
        // REG-ANON-10, API-08: 403 insufficient_scope with the RFC 6750 challenge.
        if !caller.scopes.iter().any(|s| s == scope) {
            return Err(ApiError::InsufficientScope(scope));
        }
        Ok(Json(json!({ "ok": true, "scope": scope })).into_response())
    }
    .await;
    state.reply(outcome)
}

/// `GET /api/read`: needs `api.read`.
pub async fn api_read(State(state): State<AppState>, Now(now): Now, request: Request) -> Response {
    scoped(state, now, request, "api.read").await
}

/// `POST /api/write`: needs `api.write`.
pub async fn api_write(State(state): State<AppState>, Now(now): Now, request: Request) -> Response {
    scoped(state, now, request, "api.write").await
}

/// `GET /mail/<registration_id>.html`: the claim-mail outbox, when `mail_outbox` is set. With
/// `mail_outbox_token`, only for `Authorization: Bearer <token>` (SEC-08: an agent that could
/// read the mail could claim its registration for any address); anything else is a 404.
pub async fn mail_outbox(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    axum::extract::Path(file): axum::extract::Path<String>,
) -> Response {
    let Some(dir) = &state.config.mail_outbox else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Some(token) = &state.config.mail_outbox_token
        && !state.defects.contains(Defect::PublicMailOutbox)
    {
        let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let presented = given.strip_prefix("Bearer ").unwrap_or_default();
        // Compared as hashes without an early exit, as any credential.
        if !same_hash(&hash(presented), &hash(&token.0)) {
            return StatusCode::NOT_FOUND.into_response();
        }
    }
    // Only the outbox's own file names: no separators, no dot-dot.
    let valid =
        file.ends_with(".html") && file.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) && !file.contains("..");
    if !valid {
        return StatusCode::NOT_FOUND.into_response();
    }
    match tokio::fs::read(dir.join(&file)).await {
        Ok(body) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `GET /healthz`: 200 when a write commits to the database file the server opened, 503 otherwise.
pub async fn healthz(State(state): State<AppState>, Now(now): Now) -> Response {
    // A write, committed like any other: a read-only database, a full disk or a deleted file
    // makes this fail, where `SELECT 1` would still answer.
    match state
        .db
        .call(move |conn| {
            conn.execute(
                "INSERT INTO health (id, checked_at) VALUES (1, ?1) ON CONFLICT(id) DO UPDATE SET checked_at = ?1",
                params![now],
            )
            .map_err(db)
        })
        .await
    {
        Ok(_) => Json(json!({ "status": "ok" })).into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "unavailable" }))).into_response(),
    }
}

/// `GET /_admin/audit`: the AUDIT events, to loopback peers only.
pub async fn admin_audit(State(state): State<AppState>, request: Request) -> Response {
    if !state.config.admin_api || !peer_ip(&request).is_some_and(|ip| ip.is_loopback()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    match read_audit(&state.db).await {
        Ok(events) => Json(json!({ "events": events })).into_response(),
        Err(e) => state.reply(Err(e)),
    }
}

/// Every audit event, oldest first.
pub async fn read_audit(store: &crate::store::Db) -> Result<Vec<Value>, ApiError> {
    store.call(|conn| {
        let mut stmt = conn.prepare("SELECT seq, at, event, data FROM audit ORDER BY seq").map_err(db)?;
        let rows = stmt
            .query_map([], |r| {
                let data: String = r.get(3)?;
                Ok(json!({ "seq": r.get::<_, i64>(0)?, "at": iso(r.get(1)?), "event": r.get::<_, String>(2)?, "data": serde_json::from_str::<Value>(&data).unwrap_or(Value::Null) }))
            })
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    })
    .await
}
