//! The IdP's HTTP surface: JWKS, client metadata, and the control API.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::Json;
use axum::Router;
use axum::extract::{Request, State as AxState};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::keys::{KeyAlg, SigningKey};
use crate::token::{self, Subject, TokenRequest};
use crate::{Delivery, IdpError, Inner, JwksFault, Minted, RecordedRequest, State};

pub(crate) fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/agent-auth.json", get(client_metadata))
        .route("/clients/{name}", get(client_document))
        .route("/attacker/{kid}/jwks.json", get(attacker_jwks))
        .route("/clients/foreign-jwks/{name}", get(foreign_jwks_client_document))
        .route("/clients/once/{name}", get(withdrawn_client_document))
        .route("/_control/mint", post(control_mint))
        .route("/_control/mint-batch", post(control_mint_batch))
        .route("/_control/rotate", post(control_rotate))
        .route("/_control/retire", post(control_retire))
        .route("/_control/fault", post(control_fault))
        .route("/_control/deliver-logout", post(control_deliver))
        .route("/_control/requests", get(control_requests))
        .layer(middleware::from_fn_with_state(state.clone(), guard_control))
        .layer(middleware::from_fn_with_state(state.clone(), record))
        .with_state(state)
}

async fn record(AxState(state): AxState<Arc<State>>, request: Request, next: Next) -> Response {
    // The control API is the operator's, not the target's: keep it out of the log cases read.
    let path = request.uri().path();
    if !path.starts_with("/_control/") {
        let mut end = path.len().min(crate::MAX_LOGGED_PATH);
        while !path.is_char_boundary(end) {
            end -= 1;
        }
        let entry = RecordedRequest {
            method: request.method().as_str().chars().take(16).collect(),
            path: path[..end].to_string(),
            at: SystemTime::now(),
        };
        let mut inner = state.lock();
        if inner.requests.len() >= crate::MAX_LOGGED_REQUESTS {
            inner.requests.pop_front();
        }
        inner.requests.push_back(entry);
    }
    next.run(request).await
}

/// The control API answers only its operator: a `Host` that names this IdP (not a rebinding
/// page's domain), the bearer token, and for a POST a JSON body (which no cross-site form or
/// simple request can send). Without a configured token there is no control API.
async fn guard_control(AxState(state): AxState<Arc<State>>, request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with("/_control/") {
        return next.run(request).await;
    }
    let Some(token) = &state.control_token else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| match h.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => h,
        })
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !state.control_hosts.contains(&host) {
        return control_error(StatusCode::MISDIRECTED_REQUEST, "Host does not name this IdP");
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !constant_time_eq(presented.as_bytes(), token.as_bytes()) {
        let mut answer = control_error(
            StatusCode::UNAUTHORIZED,
            "the control API needs `Authorization: Bearer <token>` (see the token file)",
        );
        answer
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return answer;
    }
    let json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if request.method() != axum::http::Method::GET && !json {
        return control_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "control calls that change state take a JSON body",
        );
    }
    next.run(request).await
}

/// Compares without an early exit, so the time taken does not tell how much of a guess matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn jwks(AxState(state): AxState<Arc<State>>) -> Response {
    let now = SystemTime::now();
    let (fault, keys, max_age, key_dir) = {
        let mut inner = state.lock();
        inner.last_jwks_fetch = Some(now);
        inner.jwks_fetch_count += 1;
        (
            inner.fault,
            inner.published.iter().map(|k| k.public_jwk().clone()).collect::<Vec<_>>(),
            inner.jwks_max_age,
            inner.key_dir.clone(),
        )
    };
    // A target's refetch cool-down runs from its last fetch, whichever run made it: the key
    // directory remembers when that was (written outside the lock), so the next run waits too.
    if let Some(dir) = &key_dir {
        crate::remember_jwks_fetch(dir, now);
    }
    let cache = HeaderValue::from_str(&format!("public, max-age={max_age}")).unwrap_or(HeaderValue::from_static("no-store"));
    let body = json!({ "keys": keys }).to_string();
    match fault {
        JwksFault::None => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
                (header::CACHE_CONTROL, cache),
            ],
            body,
        )
            .into_response(),
        JwksFault::Slow(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            (
                [
                    (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
                    (header::CACHE_CONTROL, cache),
                ],
                body,
            )
                .into_response()
        }
        JwksFault::ServerError => (StatusCode::INTERNAL_SERVER_ERROR, "jwks unavailable").into_response(),
        JwksFault::InvalidJson => ([(header::CONTENT_TYPE, "application/json")], "{\"keys\": [").into_response(),
        JwksFault::EmptyKeySet => ([(header::CONTENT_TYPE, "application/json")], "{\"keys\":[]}").into_response(),
        JwksFault::WrongContentType => ([(header::CONTENT_TYPE, "text/html")], body).into_response(),
    }
}

async fn client_metadata(AxState(state): AxState<Arc<State>>) -> Response {
    let custom = state.lock().cimd.clone();
    let document = custom.unwrap_or_else(|| {
        json!({
            "client_id": crate::default_client_id(&state.issuer),
            "client_name": "authmd mock IdP",
            "jwks_uri": format!("{}/.well-known/jwks.json", state.issuer),
            "token_endpoint_auth_method": "private_key_jwt",
        })
    });
    Json(document).into_response()
}

/// A client metadata document for any `/clients/<name>` URL, so each case can use a
/// `client_id` no target has cached yet (IDJAG-37).
async fn client_document(AxState(state): AxState<Arc<State>>, request: Request) -> Response {
    cimd(&state, request.uri().path(), "/.well-known/jwks.json")
}

/// A client metadata document whose `jwks_uri` is not the JWKS the IdP signs with: a target
/// that resolves CIMD must refuse tokens naming it (IDJAG-37).
async fn foreign_jwks_client_document(AxState(state): AxState<Arc<State>>, request: Request) -> Response {
    cimd(&state, request.uri().path(), "/foreign/.well-known/jwks.json")
}

/// A client metadata document served once, with a 10-minute lifetime, and withdrawn (404)
/// after: a target must stop accepting the client once its cached copy has expired.
async fn withdrawn_client_document(AxState(state): AxState<Arc<State>>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    if !state.lock().served_once.insert(path.clone(), ()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let mut response = cimd(&state, &path, "/.well-known/jwks.json");
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=600"));
    response
}

/// The key set a `jku` tamper points at: the attacker's key, which the issuer never published.
async fn attacker_jwks(AxState(state): AxState<Arc<State>>, axum::extract::Path(kid): axum::extract::Path<String>) -> Response {
    match state.lock().attacker_keys.get(&kid) {
        Some(jwk) => Json(json!({ "keys": [jwk] })).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The document served at `path`: its `client_id` is its own URL (as the CIMD draft requires)
/// and its `jwks_uri` is `jwks_path` under the issuer.
fn cimd(state: &State, path: &str, jwks_path: &str) -> Response {
    Json(json!({
        "client_id": format!("{}{path}", state.issuer),
        "client_name": "authmd mock agent client",
        "jwks_uri": format!("{}{jwks_path}", state.issuer),
        "token_endpoint_auth_method": "private_key_jwt",
    }))
    .into_response()
}

pub(crate) fn mint_locked(state: &State, inner: &mut Inner, request: &TokenRequest, subject: &Subject) -> Result<Minted, IdpError> {
    let signer = match &request.kid {
        Some(kid) => inner
            .published
            .iter()
            .find(|k| k.kid() == kid)
            .ok_or_else(|| IdpError::UnknownKid(kid.clone()))?,
        None => &inner.published[inner.active],
    };
    let claims = token::default_claims(request.kind, &state.issuer, &state.audience, subject);
    let minted = token::mint(request, claims, signer, &state.issuer)?;
    if let Some((kid, jwk)) = &minted.attacker_key {
        inner.attacker_keys.insert(kid.clone(), jwk.clone());
    }
    Ok(minted)
}

pub(crate) fn rotate_locked(inner: &mut Inner, alg: KeyAlg) -> Result<String, IdpError> {
    if inner.published.len() >= crate::MAX_PUBLISHED_KEYS {
        return Err(IdpError::Key(format!(
            "{} keys are published, the most this IdP serves: retire one first",
            crate::MAX_PUBLISHED_KEYS
        )));
    }
    let mut kid = format!("{}K{}", inner.kid_prefix, inner.next_kid);
    while inner.published.iter().any(|k| k.kid() == kid) {
        inner.next_kid += 1;
        kid = format!("{}K{}", inner.kid_prefix, inner.next_kid);
    }
    inner.next_kid += 1;
    let key = SigningKey::generate(alg, kid.clone())?;
    if let Some(dir) = &inner.key_dir {
        key.save(dir)?;
    }
    inner.published.push(key);
    inner.active = inner.published.len() - 1;
    Ok(kid)
}

pub(crate) fn retire_locked(inner: &mut Inner, kid: &str) -> Result<(), IdpError> {
    let index = inner
        .published
        .iter()
        .position(|k| k.kid() == kid)
        .ok_or_else(|| IdpError::UnknownKid(kid.into()))?;
    if inner.published.len() == 1 {
        return Err(IdpError::Key("the last published key cannot be retired".into()));
    }
    let key = inner.published.remove(index);
    if let Some(dir) = &inner.key_dir {
        key.forget(dir);
    }
    inner.active = inner.published.len() - 1;
    Ok(())
}

pub(crate) async fn deliver(http: &reqwest::Client, uri: &str, token: &str, content_type: &str) -> Result<Delivery, IdpError> {
    let started = Instant::now();
    let response = http
        .post(uri)
        .header(header::CONTENT_TYPE, content_type)
        .body(token.to_string())
        .send()
        .await
        .map_err(|e| IdpError::Delivery {
            uri: uri.into(),
            reason: e.to_string(),
        })?;
    let status = response.status().as_u16();
    // Read a bounded answer: whatever the receiver sends, the IdP keeps at most this much.
    let mut response = response;
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = crate::MAX_DELIVERY_BODY - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= crate::MAX_DELIVERY_BODY {
            break;
        }
    }
    let body = String::from_utf8_lossy(&body).into_owned();
    Ok(Delivery {
        status,
        body,
        elapsed: started.elapsed(),
    })
}

fn control_error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": message.to_string() }))).into_response()
}

/// A control call's JSON body; one that does not parse is a 400 naming why, as JSON.
struct ControlJson<T>(T);

impl<S, T> axum::extract::FromRequest<S> for ControlJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(e) => Err(control_error(StatusCode::BAD_REQUEST, e.body_text())),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MintBody {
    #[serde(flatten)]
    request: TokenRequest,
    sub: Option<String>,
    email: Option<String>,
}

async fn control_mint(AxState(state): AxState<Arc<State>>, ControlJson(body): ControlJson<MintBody>) -> Response {
    let sub = body.sub.unwrap_or_else(|| format!("user-{}", uuid::Uuid::new_v4()));
    let email = body.email.unwrap_or_else(|| format!("{sub}@example.com"));
    let mut inner = state.lock();
    match mint_locked(&state, &mut inner, &body.request, &Subject { sub, email }) {
        Ok(minted) => Json(minted).into_response(),
        Err(e) => control_error(StatusCode::BAD_REQUEST, e),
    }
}

#[derive(Deserialize)]
struct MintBatchBody {
    #[serde(flatten)]
    request: TokenRequest,
    count: usize,
}

/// Up to 200,000 tokens, one per line, each for its own fresh subject (for load generators,
/// which cannot mint: every ID-JAG must carry a new `jti`).
async fn control_mint_batch(AxState(state): AxState<Arc<State>>, ControlJson(body): ControlJson<MintBatchBody>) -> Response {
    if body.count > 200_000 {
        return control_error(StatusCode::BAD_REQUEST, "count: at most 200000");
    }
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut out = String::with_capacity(body.count * 700);
    let mut inner = state.lock();
    for i in 0..body.count {
        let sub = format!("batch-{}-{i}", &run[..8]);
        let email = format!("{sub}@example.com");
        match mint_locked(&state, &mut inner, &body.request, &Subject { sub, email }) {
            Ok(minted) => {
                out.push_str(&minted.token);
                out.push('\n');
            }
            Err(e) => return control_error(StatusCode::BAD_REQUEST, e),
        }
    }
    ([(header::CONTENT_TYPE, "text/plain")], out).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    #[serde(default)]
    alg: KeyAlg,
}

async fn control_rotate(AxState(state): AxState<Arc<State>>, ControlJson(body): ControlJson<RotateBody>) -> Response {
    match rotate_locked(&mut state.lock(), body.alg) {
        Ok(kid) => Json(json!({ "kid": kid })).into_response(),
        Err(e) => control_error(StatusCode::CONFLICT, e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetireBody {
    kid: String,
}

async fn control_retire(AxState(state): AxState<Arc<State>>, ControlJson(body): ControlJson<RetireBody>) -> Response {
    match retire_locked(&mut state.lock(), &body.kid) {
        Ok(()) => Json(json!({ "retired": body.kid })).into_response(),
        Err(e) => control_error(StatusCode::BAD_REQUEST, e),
    }
}

async fn control_fault(AxState(state): AxState<Arc<State>>, ControlJson(fault): ControlJson<JwksFault>) -> Response {
    state.lock().fault = fault;
    Json(json!({ "fault": fault })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliverBody {
    revocation_uri: String,
    token: String,
    /// `application/logout+jwt` (v0.1) when absent; `application/secevent+jwt` for an RFC 8935 SET.
    #[serde(default)]
    content_type: Option<String>,
}

async fn control_deliver(AxState(state): AxState<Arc<State>>, ControlJson(body): ControlJson<DeliverBody>) -> Response {
    // Only to the target's own origins: the control API is not a proxy to the operator's
    // network (link-local metadata services, other local ports).
    match crate::origin_of(&body.revocation_uri) {
        Some(origin) if state.deliver_to.contains(&origin) => {}
        _ => {
            return control_error(
                StatusCode::FORBIDDEN,
                format!(
                    "{} is not on an origin this IdP delivers to (start it with --deliver-to <the target's origin>)",
                    body.revocation_uri.chars().take(200).collect::<String>()
                ),
            );
        }
    }
    // Never follow a redirect elsewhere either.
    let client = match reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => return control_error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let content_type = body.content_type.as_deref().unwrap_or(crate::LOGOUT_CONTENT_TYPE);
    match deliver(&client, &body.revocation_uri, &body.token, content_type).await {
        Ok(d) => Json(json!({ "status": d.status, "body": d.body, "elapsed_ms": d.elapsed.as_millis() as u64 })).into_response(),
        Err(e) => control_error(StatusCode::BAD_GATEWAY, e),
    }
}

async fn control_requests(AxState(state): AxState<Arc<State>>) -> Response {
    let requests: Vec<Value> = state
        .lock()
        .requests
        .iter()
        .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
        .collect();
    Json(json!({ "requests": requests })).into_response()
}
