//! The v0.6 deployment (`profile = "v0.6"`, upstream AUTH.md at b53c9ed), first slice:
//! RFC 8414 metadata with the `/agent/identity` surface, anonymous registration that returns a
//! service-signed `identity_assertion` (ES256, its key in the database and served at
//! `/.well-known/jwks.json`), the RFC 7523 JWT-bearer grant at `/oauth2/token` (RFC 6749 §5
//! answers with `Cache-Control: no-store`), and RFC 7009 revocation at `/oauth2/revoke`. Access
//! tokens are stored like v0.1 credentials, so the protected API is the same.
//!
//! Not yet here (the profile's INDEX lists them as not yet covered): `service_auth`, ID-JAG
//! registration with `auth_time`, the user-code ceremony and its claim grant, SET push and the
//! b53c9ed teardown.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rusqlite::{OptionalExtension, params};
use serde_json::{Value, json};

use crate::defect::Defect;
use crate::error::ApiError;
use crate::state::{AppState, Now, hash, iso, ordered_id, secret};

/// RFC 7523 JWT-bearer grant.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// How long an identity assertion lives.
const ASSERTION_TTL: i64 = 3600;

/// The service's signing key: PKCS#8 in the database, so assertions outlive a restart.
pub struct ServiceKey {
    pair: EcdsaKeyPair,
    pkcs8: Vec<u8>,
    /// The key id published in the JWKS.
    pub kid: String,
}

impl ServiceKey {
    /// Loads the key from `conn`, or makes and stores one.
    pub fn load_or_create(conn: &rusqlite::Connection) -> Result<Self, String> {
        conn.execute_batch("CREATE TABLE IF NOT EXISTS service_keys (kid TEXT PRIMARY KEY, pkcs8 BLOB NOT NULL)")
            .map_err(|e| e.to_string())?;
        let stored: Option<(String, Vec<u8>)> = conn
            .query_row("SELECT kid, pkcs8 FROM service_keys LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(|e| e.to_string())?;
        let (kid, pkcs8) = match stored {
            Some(found) => found,
            None => {
                let rng = aws_lc_rs::rand::SystemRandom::new();
                let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).map_err(|e| e.to_string())?;
                let kid = secret("svc-", 8);
                conn.execute("INSERT INTO service_keys (kid, pkcs8) VALUES (?1, ?2)", params![kid, doc.as_ref()])
                    .map_err(|e| e.to_string())?;
                (kid, doc.as_ref().to_vec())
            }
        };
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8).map_err(|e| e.to_string())?;
        Ok(Self { pair, pkcs8, kid })
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        let (x, y) = (&point[1..33], &point[33..65]);
        json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
        })
    }

    fn sign(&self, claims: &Value) -> Result<String, ApiError> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&self.pkcs8)).map_err(|e| ApiError::Internal(e.to_string()))
    }

    fn decoding_key(&self) -> Result<DecodingKey, ApiError> {
        let jwk = self.jwk();
        DecodingKey::from_ec_components(jwk["x"].as_str().unwrap_or_default(), jwk["y"].as_str().unwrap_or_default())
            .map_err(|e| ApiError::Internal(e.to_string()))
    }
}

/// A JSON answer that must not be cached (RFC 6749 §5.1).
pub(crate) fn no_store(state: &AppState, status: StatusCode, body: Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    if !state.defects.contains(Defect::V06TokenCacheable) {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }
    response
}

/// An RFC 6749 §5.2 error answer.
pub(crate) fn oauth_error(state: &AppState, status: StatusCode, error: &str, description: &str) -> Response {
    no_store(state, status, json!({ "error": error, "error_description": description }))
}

/// `GET /.well-known/oauth-authorization-server` (v0.6 Step 1b).
pub async fn as_metadata(State(state): State<AppState>) -> Response {
    let base = &state.base_url;
    let mut identity_types = Vec::new();
    if state.config.anonymous {
        identity_types.push("anonymous");
    }
    if state.config.verified_email {
        identity_types.push("service_auth");
    }
    if state.config.id_jag {
        identity_types.push("identity_assertion");
    }
    let mut assertion_types = vec!["urn:ietf:params:oauth:token-type:id-jag"];
    if state.defects.contains(Defect::V06AdvertiseVerifiedEmail) {
        assertion_types.push("verified_email");
    }
    let mut metadata = json!({
        "resource": state.resource(),
        "authorization_servers": [base],
        "scopes_supported": state.config.scopes,
        "bearer_methods_supported": ["header"],
        "issuer": base,
        "token_endpoint": format!("{base}/oauth2/token"),
        "revocation_endpoint": format!("{base}/oauth2/revoke"),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "response_types_supported": [],
        "grant_types_supported": [JWT_BEARER, crate::v06_claim::CLAIM_GRANT],
        "agent_auth": {
            "skill": format!("{base}/auth.md"),
            "identity_endpoint": format!("{base}/agent/identity"),
            "claim_endpoint": format!("{base}/agent/identity/claim"),
            "events_endpoint": format!("{base}/agent/event/notify"),
            "identity_types_supported": identity_types,
            "identity_assertion": { "assertion_types_supported": assertion_types },
            "events_supported": [crate::verify::REVOKED_EVENT],
        },
    });
    if state.defects.contains(Defect::V06OmitTokenEndpoint)
        && let Some(m) = metadata.as_object_mut()
    {
        m.remove("token_endpoint");
    }
    if state.defects.contains(Defect::RelativeMetadataUris) {
        metadata["revocation_endpoint"] = json!("/oauth2/revoke");
        metadata["agent_auth"]["skill"] = json!("/auth.md");
    }
    let mut response = Json(metadata).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    response
}

/// `GET /.well-known/jwks.json`: the key identity assertions are signed with.
pub async fn jwks(State(state): State<AppState>) -> Response {
    match &state.service_key {
        Some(key) => Json(json!({ "keys": [key.jwk()] })).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `POST /agent/identity` (v0.6 Step 3). Only `anonymous` is offered in this slice; the other
/// types answer the not-enabled codes the text gives agents to fall back on.
pub async fn register(State(state): State<AppState>, Now(now): Now, request: Request) -> Response {
    let ip = crate::routes::peer_ip(&request);
    let outcome = async {
        let body = json_body(&state, request).await?;
        // V6-ERR-02: per-address limits, as under v0.1 (anonymous tighter than the rest).
        if let Some(ip) = ip {
            let anonymous = body.get("type").and_then(Value::as_str) == Some("anonymous");
            let (key, limit) = if anonymous {
                (format!("anon:{ip}"), state.config.rate.anonymous_per_ip)
            } else {
                (format!("identity:{ip}"), state.config.rate.identity_per_ip)
            };
            state.rate_check(key, limit, now)?;
        }
        let lenient = state.defects.contains(Defect::LenientRegistrationType);
        let known = ["anonymous", "service_auth", "identity_assertion"];
        match body
            .get("type")
            .and_then(Value::as_str)
            .map(|g| crate::defect::taken_for(lenient, g, known))
        {
            Some("anonymous") if state.config.anonymous || state.defects.contains(Defect::V06AnonymousDespiteOff) => {
                register_anonymous(&state, now).await
            }
            Some("anonymous") => Err(ApiError::AnonymousNotEnabled),
            Some(_) if state.defects.contains(Defect::V06UnknownTypeAsAnonymous) => register_anonymous(&state, now).await,
            Some("service_auth") if state.config.verified_email => crate::v06_claim::register_service_auth(&state, now, &body).await,
            Some("service_auth") => Err(ApiError::ServiceAuthNotEnabled),
            // v0.6 moved the email path to `service_auth`; the defect still takes the old body.
            Some("identity_assertion")
                if body.get("assertion_type").and_then(Value::as_str) == Some("verified_email")
                    && state.defects.contains(Defect::V06AcceptVerifiedEmail) =>
            {
                let hint = json!({ "login_hint": body.get("assertion").cloned().unwrap_or(Value::Null) });
                crate::v06_claim::register_service_auth(&state, now, &hint).await
            }
            Some("identity_assertion") => crate::v06_identity::register(&state, now, &body).await,
            _ => Err(ApiError::InvalidRequest(
                "`type` must be anonymous, service_auth or identity_assertion".into(),
            )),
        }
    }
    .await;
    match outcome {
        Ok(r) => r,
        Err(e) => state.reply(Err(e)),
    }
}

async fn register_anonymous(state: &AppState, now: i64) -> Result<Response, ApiError> {
    // V6-REG-07: unguessable; the defect numbers registrations in order.
    let registration_id = if state.defects.contains(Defect::V06SequentialRegistrationId) {
        format!("reg_{:012}", SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    } else {
        ordered_id("reg_")
    };
    let claim_token = state.mint_secret("clm_", Defect::WeakClaimToken);
    let expires = now + state.config.ttl.registration;
    let pre = state.config.pre_claim_scopes.clone();
    let post = state.config.scopes.clone();
    let (rid, claim_hash, pre_json, post_json) = (
        registration_id.clone(),
        hash(&claim_token),
        serde_json::to_string(&pre).unwrap_or_default(),
        serde_json::to_string(&post).unwrap_or_default(),
    );
    state
        .db
        .call(move |conn| {
            conn.execute(
                "INSERT INTO registrations (id, kind, created_at, expires_at, claim_token_hash, status, credential_type, pre_scopes, post_scopes)
                 VALUES (?1, 'anonymous', ?2, ?3, ?4, 'unclaimed', 'access_token', ?5, ?6)",
                params![rid, now, expires, claim_hash, pre_json, post_json],
            )
            .map_err(|e| ApiError::Internal(e.to_string()))?;
            Ok(())
        })
        .await?;
    let (assertion, assertion_expires) = assertion_for(state, now, &registration_id, &pre, false, None)?;
    let mut body = json!({
        "registration_id": registration_id,
        "registration_type": "anonymous",
        "identity_assertion": assertion,
        "assertion_expires": iso(assertion_expires),
        "pre_claim_scopes": pre,
        "claim_url": format!("{}/agent/identity/claim", state.base_url),
        "claim_token": claim_token,
        "claim_token_expires": iso(expires),
        "post_claim_scopes": post,
    });
    if state.defects.contains(Defect::V06RegistrationWithoutAssertion)
        && let Some(m) = body.as_object_mut()
    {
        m.remove("identity_assertion");
    }
    Ok(no_store(state, StatusCode::OK, body))
}

/// A JSON request body (at most 64 KiB); anything else is `invalid_request` (V6-ERR-03).
pub(crate) async fn json_body(state: &AppState, request: Request) -> Result<Value, ApiError> {
    let bytes = axum::body::to_bytes(request.into_body(), 64 * 1024)
        .await
        .map_err(|_| ApiError::InvalidRequest("the body is too large".into()))?;
    serde_json::from_slice(&bytes).map_err(|_| {
        if state.defects.contains(Defect::CrashOnMalformedJson) {
            ApiError::Internal("malformed JSON reached the handler".into())
        } else {
            ApiError::InvalidRequest("the body is not valid JSON".into())
        }
    })
}

/// The form fields of a body, whatever its content type (the service's own HTML forms).
pub(crate) async fn form_fields(request: Request) -> Vec<(String, String)> {
    match axum::body::to_bytes(request.into_body(), 64 * 1024).await {
        Ok(bytes) => url::form_urlencoded::parse(&bytes).into_owned().collect(),
        Err(_) => Vec::new(),
    }
}

/// The form fields of an `application/x-www-form-urlencoded` body.
async fn form(state: &AppState, request: Request) -> Result<Vec<(String, String)>, &'static str> {
    let form_type = state.defects.contains(Defect::V06TokenIgnoresContentType)
        || request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        return Err("the body must be application/x-www-form-urlencoded");
    }
    let bytes = axum::body::to_bytes(request.into_body(), 64 * 1024)
        .await
        .map_err(|_| "the body is too large")?;
    Ok(url::form_urlencoded::parse(&bytes).into_owned().collect())
}

/// The next registration number under the v06-sequential-registration-id defect.
static SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// `POST /oauth2/token` (v0.6 Step 5): the RFC 7523 JWT-bearer grant over this service's own
/// identity assertions.
pub async fn token(State(state): State<AppState>, Now(now): Now, request: Request) -> Response {
    let fields = match form(&state, request).await {
        Ok(f) => f,
        Err(why) => return oauth_error(&state, StatusCode::BAD_REQUEST, "invalid_request", why),
    };
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let grant = field("grant_type").or(state.defects.contains(Defect::V06MissingGrantTypeDefaults).then_some(JWT_BEARER));
    let lenient = state.defects.contains(Defect::V06LenientGrantType);
    let grant = grant.map(|g| crate::defect::taken_for(lenient, g, [JWT_BEARER, crate::v06_claim::CLAIM_GRANT]));
    match grant {
        Some(JWT_BEARER) => {}
        Some(crate::v06_claim::CLAIM_GRANT) => {
            return match field("claim_token") {
                Some(t) => crate::v06_claim::claim_grant(&state, now, t).await,
                None => oauth_error(&state, StatusCode::BAD_REQUEST, "invalid_request", "claim_token is required"),
            };
        }
        Some(_) if state.defects.contains(Defect::V06UnsupportedGrantAsInvalidRequest) => {
            return oauth_error(&state, StatusCode::BAD_REQUEST, "invalid_request", "unknown grant_type");
        }
        Some(_) => {
            return oauth_error(
                &state,
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "the JWT-bearer and claim grants only",
            );
        }
        None => return oauth_error(&state, StatusCode::BAD_REQUEST, "invalid_request", "grant_type is required"),
    }
    // V6-TOKEN-12 (RFC 8707): a `resource` pins the token to this API; another is refused.
    if let Some(resource) = field("resource")
        && resource.trim_end_matches('/') != state.resource().trim_end_matches('/')
        && !(state.defects.contains(Defect::V06ResourcePrefixMatch) && resource.starts_with(&state.resource()))
        && !state.defects.contains(Defect::V06IgnoreResource)
    {
        return oauth_error(
            &state,
            StatusCode::BAD_REQUEST,
            "invalid_target",
            "the resource is not this service's API",
        );
    }
    let Some(assertion) = field("assertion") else {
        return oauth_error(&state, StatusCode::BAD_REQUEST, "invalid_request", "assertion is required");
    };
    let claims = match verify_assertion(&state, assertion, now) {
        Ok(c) => c,
        Err(why) => return oauth_error(&state, StatusCode::BAD_REQUEST, "invalid_grant", why),
    };
    // A pre-claim assertion is superseded once the registration is claimed (Step 4c).
    let pre_claim = claims["claimed"] != json!(true) && !state.defects.contains(Defect::V06V1AssertionAfterClaim);
    let registration_id = claims["registration_id"].as_str().unwrap_or_default().to_string();
    mint_access_checked(&state, now, &registration_id, pre_claim).await
}

/// An access token for `registration_id` (and, after a ceremony, a fresh assertion): 200 with
/// the token response, or `invalid_grant` when the registration cannot mint. `from_claim` marks
/// the claim grant's answer, which carries the post-claim assertion.
pub(crate) async fn mint_access(state: &AppState, now: i64, registration_id: &str, from_claim: bool) -> Response {
    mint(state, now, registration_id, false, from_claim).await
}

async fn mint_access_checked(state: &AppState, now: i64, registration_id: &str, pre_claim_assertion: bool) -> Response {
    mint(state, now, registration_id, pre_claim_assertion, false).await
}

/// status, expires_at, pre_scopes, post_scopes, user_id, the user's email.
type RegistrationRow = (String, i64, String, String, Option<String>, Option<String>);

async fn mint(state: &AppState, now: i64, registration_id: &str, refuse_if_claimed: bool, from_claim: bool) -> Response {
    let access_token = secret("at_", 24);
    let ttl = state.config.ttl.access_token;
    let (h, rid) = (hash(&access_token), registration_id.to_string());
    let single_use = state.defects.contains(Defect::V06SingleUseAssertion) && !from_claim;
    let full_scopes = state.defects.contains(Defect::V06FullScopesBeforeClaim);
    let all_scopes = serde_json::to_string(&state.config.scopes).unwrap_or_default();
    let issued = state
        .db
        .call(move |conn| {
            let db = |e: rusqlite::Error| ApiError::Internal(e.to_string());
            let row: Option<RegistrationRow> = conn
                .query_row(
                    "SELECT r.status, r.expires_at, r.pre_scopes, r.post_scopes, r.user_id, u.email FROM registrations r LEFT JOIN users u ON u.id = r.user_id WHERE r.id = ?1",
                    params![rid],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
                )
                .optional()
                .map_err(db)?;
            let Some((status, expires_at, pre, post, user, email)) = row else {
                return Ok(None);
            };
            let claimed = status == "claimed";
            if status == "revoked" || (!claimed && expires_at <= now) || (claimed && refuse_if_claimed) {
                return Ok(None);
            }
            if single_use {
                let minted: i64 = conn
                    .query_row(
                        "SELECT COUNT(*) FROM credentials WHERE registration_id = ?1 AND source = 'token_endpoint'",
                        params![rid],
                        |r| r.get(0),
                    )
                    .map_err(db)?;
                if minted > 0 {
                    return Ok(None);
                }
            }
            let scopes = if claimed { post } else if full_scopes { all_scopes } else { pre };
            conn.execute(
                "INSERT INTO credentials (hash, registration_id, kind, scopes, expires_at, user_id, source, created_at) VALUES (?1, ?2, 'access_token', ?3, ?4, ?5, 'token_endpoint', ?6)",
                params![h, rid, scopes, now + ttl, user, now],
            )
            .map_err(db)?;
            Ok(Some((scopes, claimed, email)))
        })
        .await;
    match issued {
        Ok(Some((scopes, claimed, email))) => {
            let scopes: Vec<String> = serde_json::from_str(&scopes).unwrap_or_default();
            let mut body = json!({ "access_token": access_token, "token_type": "Bearer", "expires_in": ttl, "scope": scopes.join(" ") });
            if from_claim {
                let (assertion, expires) = match assertion_for(state, now, registration_id, &scopes, claimed, email.as_deref()) {
                    Ok(a) => a,
                    Err(e) => return state.reply(Err(e)),
                };
                body["identity_assertion"] = json!(assertion);
                body["assertion_expires"] = json!(iso(expires));
            }
            no_store(state, StatusCode::OK, body)
        }
        Ok(None) => oauth_error(state, StatusCode::BAD_REQUEST, "invalid_grant", "the registration cannot mint"),
        Err(e) => state.reply(Err(e)),
    }
}

/// A service-signed identity assertion for `registration_id`; after a claim (`claimed`) it
/// carries the user's verified email (the v2 assertion of Step 4c).
pub(crate) fn assertion_for(
    state: &AppState,
    now: i64,
    registration_id: &str,
    scopes: &[String],
    claimed: bool,
    email: Option<&str>,
) -> Result<(String, i64), ApiError> {
    let key = state
        .service_key
        .as_ref()
        .ok_or_else(|| ApiError::Internal("no service key".into()))?;
    let expires = now + ASSERTION_TTL;
    let mut claims = json!({
        "iss": state.base_url,
        "sub": registration_id,
        "aud": state.base_url,
        "registration_id": registration_id,
        "scope": scopes.join(" "),
        "claimed": claimed,
        "jti": secret("", 16),
        "iat": now,
        "exp": expires,
    });
    if let Some(email) = email {
        claims["email"] = json!(email);
        claims["email_verified"] = json!(true);
    }
    Ok((key.sign(&claims)?, expires))
}

/// Checks an identity assertion this service signed: signature, `iss`, `aud`, `exp`.
fn verify_assertion(state: &AppState, assertion: &str, now: i64) -> Result<Value, &'static str> {
    let key = state.service_key.as_ref().ok_or("no service key")?;
    if state.defects.contains(Defect::V06AcceptAnyAssertion) {
        let payload = assertion.split('.').nth(1).ok_or("not a JWT")?;
        let bytes = URL_SAFE_NO_PAD.decode(payload).map_err(|_| "not a JWT")?;
        return serde_json::from_slice(&bytes).map_err(|_| "not a JWT");
    }
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[&state.base_url]);
    validation.set_audience(&[&state.base_url]);
    // `exp` is checked below against the request's clock (the test clock moves it).
    validation.validate_exp = false;
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    let decoding = key.decoding_key().map_err(|_| "no service key")?;
    let data = jsonwebtoken::decode::<Value>(assertion, &decoding, &validation).map_err(|_| "the assertion does not verify")?;
    if data.claims["exp"].as_i64().is_none_or(|exp| exp <= now) {
        return Err("the assertion expired");
    }
    Ok(data.claims)
}

/// `POST /oauth2/revoke` (RFC 7009): revokes one access token; 200 whether or not it existed.
pub async fn revoke(State(state): State<AppState>, request: Request) -> Response {
    let fields = match form(&state, request).await {
        Ok(f) => f,
        Err(why) => return oauth_error(&state, StatusCode::BAD_REQUEST, "invalid_request", why),
    };
    let Some(token) = fields.iter().find(|(k, _)| k == "token").map(|(_, v)| v.clone()) else {
        if state.defects.contains(Defect::V06RevokeWithoutToken200) {
            return StatusCode::OK.into_response();
        }
        return oauth_error(&state, StatusCode::BAD_REQUEST, "invalid_request", "token is required");
    };
    if state.defects.contains(Defect::V06RevokeIgnored) {
        return StatusCode::OK.into_response();
    }
    let h = hash(&token);
    let changed = state
        .db
        .call(move |conn| {
            conn.execute(
                "UPDATE credentials SET revoked = 1 WHERE hash = ?1 AND kind = 'access_token'",
                params![h],
            )
            .map_err(|e| ApiError::Internal(e.to_string()))
        })
        .await;
    match changed {
        Ok(0) if state.defects.contains(Defect::V06RevokeUnknown400) => {
            oauth_error(&state, StatusCode::BAD_REQUEST, "invalid_request", "unknown token")
        }
        Ok(_) => StatusCode::OK.into_response(),
        Err(e) => state.reply(Err(e)),
    }
}
