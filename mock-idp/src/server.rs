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
        .layer(middleware::from_fn_with_state(state.clone(), record))
        .with_state(state)
}

async fn record(AxState(state): AxState<Arc<State>>, request: Request, next: Next) -> Response {
    // The control API is the operator's, not the target's: keep it out of the log cases read.
    if !request.uri().path().starts_with("/_control/") {
        state.lock().requests.push(RecordedRequest {
            method: request.method().to_string(),
            path: request.uri().path().to_string(),
            at: SystemTime::now(),
        });
    }
    next.run(request).await
}

async fn jwks(AxState(state): AxState<Arc<State>>) -> Response {
    let now = SystemTime::now();
    let (fault, keys, max_age, key_dir) = {
        let mut inner = state.lock();
        inner.last_jwks_fetch = Some(now);
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
            "client_id": format!("{}/agent-auth.json", state.issuer),
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
    if !state.lock().served_once.insert(path.clone()) {
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
    let body = response.text().await.unwrap_or_default();
    Ok(Delivery {
        status,
        body,
        elapsed: started.elapsed(),
    })
}

fn control_error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": message.to_string() }))).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MintBody {
    #[serde(flatten)]
    request: TokenRequest,
    sub: Option<String>,
    email: Option<String>,
}

async fn control_mint(
    AxState(state): AxState<Arc<State>>,
    body: Result<Json<MintBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return control_error(StatusCode::BAD_REQUEST, e.body_text()),
    };
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
async fn control_mint_batch(
    AxState(state): AxState<Arc<State>>,
    body: Result<Json<MintBatchBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return control_error(StatusCode::BAD_REQUEST, e.body_text()),
    };
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

async fn control_rotate(AxState(state): AxState<Arc<State>>, body: Option<Json<RotateBody>>) -> Response {
    let alg = body.map(|b| b.0.alg).unwrap_or_default();
    match rotate_locked(&mut state.lock(), alg) {
        Ok(kid) => Json(json!({ "kid": kid })).into_response(),
        Err(e) => control_error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetireBody {
    kid: String,
}

async fn control_retire(AxState(state): AxState<Arc<State>>, Json(body): Json<RetireBody>) -> Response {
    match retire_locked(&mut state.lock(), &body.kid) {
        Ok(()) => Json(json!({ "retired": body.kid })).into_response(),
        Err(e) => control_error(StatusCode::BAD_REQUEST, e),
    }
}

async fn control_fault(
    AxState(state): AxState<Arc<State>>,
    body: Result<Json<JwksFault>, axum::extract::rejection::JsonRejection>,
) -> Response {
    match body {
        Ok(Json(fault)) => {
            state.lock().fault = fault;
            Json(json!({ "fault": fault })).into_response()
        }
        Err(e) => control_error(StatusCode::BAD_REQUEST, e.body_text()),
    }
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

async fn control_deliver(Json(body): Json<DeliverBody>) -> Response {
    let client = match reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build() {
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
