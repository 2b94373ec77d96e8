//! The mock IdP over real sockets: what a target sees when it fetches the JWKS and verifies.

use std::time::Duration;

use authmd_mock_idp::{IdpConfig, JwksFault, KeyAlg, MockIdp, Subject, Tamper, TokenKind, TokenRequest};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

const AUD: &str = "http://localhost:8000";

fn subject() -> Subject {
    Subject {
        sub: "user-1".into(),
        email: "user-1@example.com".into(),
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().expect("client")
}

async fn jwks(idp: &MockIdp) -> JwkSet {
    http()
        .get(idp.jwks_uri())
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("jwks json")
}

/// Verifies like a target: key by kid from the served JWKS, algorithm from the key.
async fn verify(idp: &MockIdp, token: &str, alg: Algorithm) -> Result<Value, ErrorKind> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.into_kind())?;
    let set = jwks(idp).await;
    let kid = header.kid.clone().unwrap_or_default();
    let jwk = set.find(&kid).ok_or(ErrorKind::InvalidKeyFormat)?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.into_kind())?;
    let mut validation = Validation::new(alg);
    validation.set_audience(&[AUD]);
    validation.set_issuer(&[idp.issuer()]);
    validation.leeway = 0;
    validation.validate_nbf = true;
    if header.typ.as_deref() == Some("logout+jwt") {
        // auth.md logout tokens carry no exp (catalogue C-20).
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
    }
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map(|d| d.claims)
        .map_err(|e| e.into_kind())
}

async fn start(alg: KeyAlg) -> MockIdp {
    MockIdp::start(IdpConfig {
        alg,
        ..IdpConfig::default()
    })
    .await
    .expect("idp")
}

#[tokio::test]
async fn minted_id_jags_verify_against_the_served_jwks_for_every_algorithm() {
    for (alg, jwt_alg) in [
        (KeyAlg::Es256, Algorithm::ES256),
        (KeyAlg::Rs256, Algorithm::RS256),
        (KeyAlg::EdDsa, Algorithm::EdDSA),
    ] {
        let idp = start(alg).await;
        let minted = idp.mint(&TokenRequest::default(), &subject()).expect("mint");
        assert_eq!(minted.header["typ"], "oauth-id-jag+jwt");
        let claims = verify(&idp, &minted.token, jwt_alg)
            .await
            .unwrap_or_else(|e| panic!("{alg:?}: {e:?}"));
        for member in ["iss", "sub", "aud", "client_id", "jti", "iat", "exp", "email", "email_verified"] {
            assert!(claims.get(member).is_some(), "{alg:?} lacks {member}");
        }
    }
}

#[tokio::test]
async fn logout_tokens_carry_the_revocation_event_and_no_nonce() {
    let idp = start(KeyAlg::Es256).await;
    let minted = idp
        .mint(
            &TokenRequest {
                kind: TokenKind::Logout,
                ..TokenRequest::default()
            },
            &subject(),
        )
        .expect("mint");
    assert_eq!(minted.header["typ"], "logout+jwt");
    let claims = verify(&idp, &minted.token, Algorithm::ES256).await.expect("verifies");
    assert!(claims.get("exp").is_none());
    assert!(claims["events"].get(authmd_mock_idp::REVOKED_EVENT).is_some());
    assert!(claims.get("nonce").is_none());
}

#[tokio::test]
#[expect(
    clippy::type_complexity,
    reason = "a table of (name, token, expected reason) rows reads best inline"
)]
async fn each_broken_variant_fails_verification_for_its_own_reason() {
    let idp = start(KeyAlg::Es256).await;
    let mint = |tamper: Option<Tamper>, set: Value| {
        let set = set.as_object().cloned().unwrap_or_default();
        idp.mint(
            &TokenRequest {
                tamper,
                set,
                ..TokenRequest::default()
            },
            &subject(),
        )
        .expect("mint")
        .token
    };
    let cases: Vec<(&str, String, fn(&ErrorKind) -> bool)> = vec![
        ("bad signature", mint(Some(Tamper::BadSignature), json!({})), |k| {
            matches!(k, ErrorKind::InvalidSignature)
        }),
        ("tampered payload", mint(Some(Tamper::TamperedPayload), json!({})), |k| {
            matches!(k, ErrorKind::InvalidSignature)
        }),
        ("foreign key, same kid", mint(Some(Tamper::ForeignKeySameKid), json!({})), |k| {
            matches!(k, ErrorKind::InvalidSignature)
        }),
        ("HS256 with the public key", mint(Some(Tamper::Hs256PublicKey), json!({})), |k| {
            matches!(k, ErrorKind::InvalidAlgorithm)
        }),
        ("alg none", mint(Some(Tamper::AlgNone), json!({})), |k| {
            matches!(k, ErrorKind::Json(_) | ErrorKind::InvalidAlgorithmName)
        }),
        ("unknown kid", mint(Some(Tamper::UnknownKid), json!({})), |k| {
            matches!(k, ErrorKind::InvalidKeyFormat)
        }),
        ("non-JSON header", mint(Some(Tamper::NonJsonHeader), json!({})), |k| {
            matches!(k, ErrorKind::Json(_))
        }),
        ("expired", mint(None, json!({ "exp": "now-120", "iat": "now-420" })), |k| {
            matches!(k, ErrorKind::ExpiredSignature)
        }),
        ("nbf in the future", mint(None, json!({ "nbf": "now+600" })), |k| {
            matches!(k, ErrorKind::ImmatureSignature)
        }),
        ("wrong audience", mint(None, json!({ "aud": "https://other.example" })), |k| {
            matches!(k, ErrorKind::InvalidAudience)
        }),
        (
            "untrusted issuer",
            mint(Some(Tamper::UntrustedKey), json!({ "iss": "https://evil.example.com" })),
            |k| matches!(k, ErrorKind::InvalidKeyFormat),
        ),
    ];
    for (name, token, expected) in cases {
        match verify(&idp, &token, Algorithm::ES256).await {
            Ok(_) => panic!("{name}: verified"),
            Err(kind) => assert!(expected(&kind), "{name}: wrong reason {kind:?}"),
        }
    }
    // The non-JSON payload fails at the claims stage.
    let bad_payload = mint(Some(Tamper::NonJsonPayload), json!({}));
    assert!(matches!(
        verify(&idp, &bad_payload, Algorithm::ES256).await,
        Err(ErrorKind::Json(_))
    ));
    // Embedded keys and pointers are only headers; the JWKS never holds the attacker's key.
    for tamper in [Tamper::EmbeddedJwk, Tamper::Jku, Tamper::X5u] {
        let token = mint(Some(tamper), json!({}));
        assert!(verify(&idp, &token, Algorithm::ES256).await.is_err(), "{tamper:?} verified");
    }
}

#[tokio::test]
async fn claims_and_headers_can_be_overridden_and_removed() {
    let idp = start(KeyAlg::Es256).await;
    let request: TokenRequest = serde_json::from_value(json!({
        "set": { "aud": [AUD, "x"], "email_verified": "true" },
        "remove": ["jti", "exp"],
        "header_set": { "typ": "JWT" },
        "header_remove": ["kid"],
    }))
    .expect("request");
    let minted = idp.mint(&request, &subject()).expect("mint");
    assert_eq!(minted.claims["aud"], json!([AUD, "x"]));
    assert_eq!(minted.claims["email_verified"], json!("true"));
    assert!(minted.claims.get("jti").is_none() && minted.claims.get("exp").is_none());
    assert_eq!(minted.header["typ"], "JWT");
    assert!(minted.header.get("kid").is_none());
}

#[tokio::test]
async fn rotation_and_retirement_are_observed_by_a_client() {
    let idp = start(KeyAlg::Es256).await;
    assert_eq!(jwks(&idp).await.keys.len(), 1);
    let kid = idp.rotate(KeyAlg::Rs256).expect("rotate");
    let set = jwks(&idp).await;
    assert_eq!(set.keys.len(), 2);
    assert!(set.find(&kid).is_some());
    let minted = idp.mint(&TokenRequest::default(), &subject()).expect("mint");
    assert_eq!(minted.header["kid"], kid.as_str());
    verify(&idp, &minted.token, Algorithm::RS256).await.expect("new key verifies");
    idp.retire("K1").expect("retire");
    assert_eq!(jwks(&idp).await.keys.len(), 1);
    assert!(idp.retire(&kid).is_err(), "the last key cannot be retired");
}

#[tokio::test]
async fn jwks_faults_and_the_request_log_are_observable() {
    let idp = start(KeyAlg::Es256).await;
    let client = http();
    let get = || client.get(idp.jwks_uri()).send();
    let ok = get().await.expect("jwks");
    assert!(ok.headers()["cache-control"].to_str().unwrap_or_default().contains("max-age="));
    idp.set_fault(JwksFault::ServerError);
    assert_eq!(get().await.expect("500").status(), 500);
    idp.set_fault(JwksFault::InvalidJson);
    assert!(get().await.expect("json").json::<Value>().await.is_err());
    idp.set_fault(JwksFault::EmptyKeySet);
    assert_eq!(get().await.expect("empty").json::<Value>().await.expect("json")["keys"], json!([]));
    idp.set_fault(JwksFault::WrongContentType);
    assert!(
        get().await.expect("html").headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/html")
    );
    idp.set_fault(JwksFault::Slow(200));
    let started = std::time::Instant::now();
    let slow = client.get(idp.jwks_uri()).timeout(Duration::from_millis(50)).send().await;
    assert!(slow.is_err(), "a 200 ms answer beats a 50 ms timeout");
    assert!(started.elapsed() < Duration::from_secs(5));
    idp.set_fault(JwksFault::None);
    assert_eq!(idp.jwks_fetches(), 6);
    assert!(
        idp.requests()
            .iter()
            .all(|r| r.path == "/.well-known/jwks.json" && r.method == "GET")
    );
}

#[tokio::test]
async fn a_key_directory_keeps_keys_across_restarts() {
    let dir = std::env::temp_dir().join(format!("authmd-idp-keys-{}", uuid_like()));
    let config = IdpConfig {
        key_dir: Some(dir.clone()),
        ..IdpConfig::default()
    };
    let first = MockIdp::start(config.clone()).await.expect("first");
    let kid = first.rotate(KeyAlg::EdDsa).expect("rotate");
    let before = serde_json::to_value(jwks(&first).await).expect("jwks");
    drop(first);
    let second = MockIdp::start(config).await.expect("second");
    assert_eq!(serde_json::to_value(jwks(&second).await).expect("jwks"), before);
    let minted = second
        .mint(
            &TokenRequest {
                kid: Some(kid),
                ..TokenRequest::default()
            },
            &subject(),
        )
        .expect("mint");
    verify(&second, &minted.token, Algorithm::EdDSA)
        .await
        .expect("restored key verifies");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn an_unreadable_key_directory_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("authmd-idp-bad-{}", uuid_like()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("K1.json"), "{not json").expect("write");
    let error = MockIdp::start(IdpConfig {
        key_dir: Some(dir.clone()),
        ..IdpConfig::default()
    })
    .await
    .err()
    .expect("refused");
    assert!(error.to_string().contains("K1.json"), "{error}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let error = MockIdp::start(IdpConfig {
        listen: addr,
        ..IdpConfig::default()
    })
    .await
    .err()
    .expect("refused");
    assert!(error.to_string().contains(&addr.to_string()), "{error}");
}

#[tokio::test]
async fn https_serves_the_jwks_under_a_ca_the_client_can_trust() {
    let idp = MockIdp::start(IdpConfig {
        https: true,
        ..IdpConfig::default()
    })
    .await
    .expect("idp");
    assert!(idp.jwks_uri().starts_with("https://"));
    let ca = reqwest::Certificate::from_pem(idp.ca_pem().expect("ca").as_bytes()).expect("pem");
    let client = reqwest::Client::builder().no_proxy().tls_certs_only([ca]).build().expect("client");
    let set: JwkSet = client.get(idp.jwks_uri()).send().await.expect("https").json().await.expect("json");
    assert_eq!(set.keys.len(), 1);
    assert!(http().get(idp.jwks_uri()).send().await.is_err(), "an untrusting client is refused");
}

#[tokio::test]
async fn the_issuer_may_differ_from_the_listen_address() {
    let idp = MockIdp::start(IdpConfig {
        issuer: Some("http://localhost:4000/".into()),
        ..IdpConfig::default()
    })
    .await
    .expect("idp");
    assert_eq!(idp.issuer(), "http://localhost:4000");
    let minted = idp.mint(&TokenRequest::default(), &subject()).expect("mint");
    assert_eq!(minted.claims["iss"], "http://localhost:4000");
    assert_eq!(minted.claims["client_id"], "http://localhost:4000/agent-auth.json");
}

#[tokio::test]
async fn logout_delivery_posts_the_token_and_returns_the_answer_as_data() {
    use axum::http::HeaderMap;
    let app = axum::Router::new().route(
        "/revoke",
        axum::routing::post(|headers: HeaderMap, body: String| async move {
            let ok = headers.get("content-type").is_some_and(|v| v == "application/logout+jwt") && body.split('.').count() == 3;
            if ok {
                (axum::http::StatusCode::OK, "{\"revoked\":1}")
            } else {
                (axum::http::StatusCode::BAD_REQUEST, "{\"error\":\"invalid_request\"}")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/revoke", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let idp = start(KeyAlg::Es256).await;
    let token = idp
        .mint(
            &TokenRequest {
                kind: TokenKind::Logout,
                ..TokenRequest::default()
            },
            &subject(),
        )
        .expect("mint")
        .token;
    let delivery = idp.deliver_logout(&url, &token).await.expect("answered");
    assert_eq!((delivery.status, delivery.body.as_str()), (200, "{\"revoked\":1}"));
    let refused = idp.deliver_logout(&url, "not-a-jwt").await.expect("answered");
    assert_eq!(refused.status, 400, "a 400 is data, not an error");
    assert!(
        idp.deliver_logout("http://127.0.0.1:9/revoke", &token).await.is_err(),
        "no answer is an error"
    );
}

#[tokio::test]
async fn set_delivery_is_rfc_8935_push() {
    use axum::http::HeaderMap;
    let app = axum::Router::new().route(
        "/notify",
        axum::routing::post(|headers: HeaderMap, body: String| async move {
            let typ_ok = body
                .split('.')
                .next()
                .and_then(|h| base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, h).ok())
                .is_some_and(|h| String::from_utf8_lossy(&h).contains("secevent+jwt"));
            if headers.get("content-type").is_some_and(|v| v == "application/secevent+jwt") && typ_ok {
                (axum::http::StatusCode::ACCEPTED, String::new())
            } else {
                (axum::http::StatusCode::BAD_REQUEST, "{\"err\":\"invalid_request\"}".to_string())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/notify", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let idp = start(KeyAlg::Es256).await;
    let mut request = TokenRequest {
        kind: TokenKind::Logout,
        ..TokenRequest::default()
    };
    request.header_set.insert("typ".into(), serde_json::json!("secevent+jwt"));
    let set = idp.mint(&request, &subject()).expect("mint").token;
    assert_eq!(idp.deliver_set(&url, &set).await.expect("answered").status, 202);
    // The v0.1 delivery of the same token is refused by a v0.6 receiver.
    assert_eq!(idp.deliver_logout(&url, &set).await.expect("answered").status, 400);
}

#[tokio::test]
async fn the_control_api_mints_rotates_and_sets_faults() {
    let idp = MockIdp::start(IdpConfig {
        control_token: Some("operator-token-0123456789".into()),
        ..IdpConfig::default()
    })
    .await
    .expect("idp");
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_static("Bearer operator-token-0123456789"),
    );
    let client = reqwest::Client::builder()
        .no_proxy()
        .default_headers(headers)
        .build()
        .expect("client");
    let base = idp.base_url();
    let minted: Value = client
        .post(format!("{base}/_control/mint"))
        .json(&json!({ "kind": "logout", "sub": "s-9" }))
        .send()
        .await
        .expect("mint")
        .json()
        .await
        .expect("json");
    assert_eq!(minted["claims"]["sub"], "s-9");
    let rotated: Value = client
        .post(format!("{base}/_control/rotate"))
        .json(&json!({ "alg": "RS256" }))
        .send()
        .await
        .expect("rotate")
        .json()
        .await
        .expect("json");
    assert_eq!(rotated["kid"], "K2");
    let fault = client
        .post(format!("{base}/_control/fault"))
        .json(&json!({ "mode": "server-error" }))
        .send()
        .await
        .expect("fault");
    assert_eq!(fault.status(), 200);
    assert_eq!(http().get(idp.jwks_uri()).send().await.expect("jwks").status(), 500);
    let bad = client
        .post(format!("{base}/_control/mint"))
        .json(&json!({ "tamper": "no-such-thing" }))
        .send()
        .await
        .expect("bad");
    assert_eq!(bad.status(), 400);
    let log: Value = client
        .get(format!("{base}/_control/requests"))
        .send()
        .await
        .expect("log")
        .json()
        .await
        .expect("json");
    assert_eq!(log["requests"].as_array().map(Vec::len), Some(1), "control calls are not logged");
}

fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    )
}
