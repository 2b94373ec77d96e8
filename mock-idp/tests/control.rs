//! The mock IdP as an attack surface: its control API answers only its operator (token, Host,
//! JSON body), what a caller can make it keep or publish is bounded, and it delivers only to the
//! origins it was given, reading a bounded answer. Each test goes over real sockets; the ones
//! about start-up run the real binary.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use authmd_mock_idp::{IdpConfig, MAX_DELIVERY_BODY, MAX_LOGGED_PATH, MAX_LOGGED_REQUESTS, MAX_PUBLISHED_KEYS, MockIdp};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const TOKEN: &str = "operator-token-0123456789abcdef";

async fn start(deliver_to: Vec<String>) -> MockIdp {
    MockIdp::start(IdpConfig {
        control_token: Some(TOKEN.into()),
        deliver_to,
        ..IdpConfig::default()
    })
    .await
    .expect("idp")
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().expect("client")
}

fn mint(idp: &MockIdp) -> reqwest::RequestBuilder {
    http()
        .post(format!("{}/_control/mint", idp.base_url()))
        .json(&json!({ "kind": "id-jag", "sub": "victim", "email": "victim@example.com" }))
}

#[tokio::test]
async fn nothing_is_minted_without_the_token() {
    let idp = start(Vec::new()).await;
    assert_eq!(mint(&idp).send().await.expect("answer").status(), 401);
    assert_eq!(
        mint(&idp)
            .bearer_auth("operator-token-0123456789abcdeX")
            .send()
            .await
            .expect("answer")
            .status(),
        401
    );
    assert_eq!(mint(&idp).bearer_auth(TOKEN).send().await.expect("answer").status(), 200);
    let log = http()
        .get(format!("{}/_control/requests", idp.base_url()))
        .send()
        .await
        .expect("answer");
    assert_eq!(log.status(), 401, "the request log is the operator's too");

    // The IdP a run starts has no token: it is driven in process and serves no control API.
    let harness_idp = MockIdp::start(IdpConfig::default()).await.expect("idp");
    assert_eq!(mint(&harness_idp).send().await.expect("answer").status(), 404);
    assert_eq!(mint(&harness_idp).bearer_auth(TOKEN).send().await.expect("answer").status(), 404);
}

#[tokio::test]
async fn a_rebinding_host_or_a_body_a_web_page_can_send_changes_nothing() {
    let idp = start(Vec::new()).await;
    // DNS rebinding: the right token cannot come from a page, but the Host gives it away anyway.
    let rebound = mint(&idp)
        .bearer_auth(TOKEN)
        .header("host", "evil.example:4000")
        .send()
        .await
        .expect("answer");
    assert_eq!(rebound.status(), 421);
    // A state change without a JSON body (an empty POST, a form, text/plain) is refused.
    let rotate = format!("{}/_control/rotate", idp.base_url());
    for (content_type, body) in [
        (None, ""),
        (Some("text/plain"), "{}"),
        (Some("application/x-www-form-urlencoded"), "alg=ES256"),
    ] {
        let mut request = http().post(&rotate).bearer_auth(TOKEN).body(body);
        if let Some(t) = content_type {
            request = request.header("content-type", t);
        }
        let status = request.send().await.expect("answer").status();
        assert!(status == 415 || status == 400, "{content_type:?}: {status}");
    }
    assert_eq!(idp.kids().len(), 1, "a key was published without a JSON body");
}

#[tokio::test]
async fn the_key_set_and_the_request_log_are_bounded() {
    let idp = start(Vec::new()).await;
    let rotate = format!("{}/_control/rotate", idp.base_url());
    let mut refused = 0;
    for _ in 0..MAX_PUBLISHED_KEYS + 10 {
        let status = http()
            .post(&rotate)
            .bearer_auth(TOKEN)
            .json(&json!({}))
            .send()
            .await
            .expect("answer")
            .status();
        if status == 409 {
            refused += 1;
        }
    }
    assert_eq!(idp.kids().len(), MAX_PUBLISHED_KEYS);
    assert_eq!(refused, 11, "one key was there before the rotations");

    // Long distinct paths, more than the log keeps: it keeps the newest, each cut short.
    let long = "x".repeat(4 * MAX_LOGGED_PATH);
    let client = http();
    for i in 0..MAX_LOGGED_REQUESTS + 500 {
        let _ = client
            .get(format!("{}/clients/{i}-{long}", idp.base_url()))
            .send()
            .await
            .expect("answer");
    }
    let log = idp.requests();
    assert_eq!(log.len(), MAX_LOGGED_REQUESTS);
    assert!(log.iter().all(|r| r.path.len() <= MAX_LOGGED_PATH));
    assert!(
        log.last()
            .is_some_and(|r| r.path.starts_with(&format!("/clients/{}-", MAX_LOGGED_REQUESTS + 499)))
    );
    // The JWKS count outlives the log.
    let _ = client.get(idp.jwks_uri()).send().await.expect("jwks");
    for i in 0..MAX_LOGGED_REQUESTS {
        let _ = client.get(format!("{}/clients/{i}", idp.base_url())).send().await;
    }
    assert_eq!(idp.jwks_fetches(), 1);
}

/// A receiver that answers 200 with an endless body, counting connections.
async fn endless_receiver() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n")
                    .await;
                let chunk = format!("{:x}\r\n{}\r\n", 65536, "a".repeat(65536));
                // 300 MB unless the reader stops.
                for _ in 0..4800 {
                    if socket.write_all(chunk.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (origin, hits)
}

#[tokio::test]
async fn logout_deliveries_go_only_to_the_target_and_read_a_bounded_answer() {
    let (target, target_hits) = endless_receiver().await;
    let (elsewhere, elsewhere_hits) = endless_receiver().await;
    let idp = start(vec![target.clone()]).await;
    let deliver = |uri: String| {
        http()
            .post(format!("{}/_control/deliver-logout", idp.base_url()))
            .bearer_auth(TOKEN)
            .json(&json!({ "revocation_uri": uri, "token": "t" }))
            .send()
    };
    for uri in [
        format!("{elsewhere}/revoke"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        format!("http://user@{}/revoke", target.trim_start_matches("http://")),
        "file:///etc/passwd".to_string(),
    ] {
        let answer = deliver(uri.clone()).await.expect("answer");
        assert_eq!(answer.status(), 403, "{uri}");
    }
    assert_eq!(elsewhere_hits.load(std::sync::atomic::Ordering::SeqCst), 0);

    let started = std::time::Instant::now();
    let answer = deliver(format!("{target}/revoke")).await.expect("answer");
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().await.expect("json");
    assert_eq!(body["status"], 200);
    assert_eq!(body["body"].as_str().map(str::len), Some(MAX_DELIVERY_BODY));
    assert_eq!(target_hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(started.elapsed() < Duration::from_secs(5), "read on: {:?}", started.elapsed());
}

fn binary(args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_authmd-mock-idp"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start authmd-mock-idp")
}

#[test]
fn the_binary_writes_a_private_token_and_refuses_a_public_address_unless_told() {
    let dir = std::env::temp_dir().join(format!("authmd-idp-control-{}", uuid::Uuid::new_v4().simple()));
    let file = dir.join("token");
    let mut child = binary(&["--listen", "127.0.0.1:0", "--token-file", file.to_str().expect("utf-8")]);
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let banner: Vec<String> = lines.by_ref().take(3).map(|l| l.expect("line")).collect();
    let token = std::fs::read_to_string(&file).expect("token file");
    assert!(token.len() >= 32, "a short token: {token}");
    assert!(banner.iter().any(|l| l.contains(&token)), "{banner:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).expect("metadata").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let _ = child.kill();
    let _ = child.wait();

    let refused = binary(&["--listen", "0.0.0.0:0", "--token-file", file.to_str().expect("utf-8")])
        .wait_with_output()
        .expect("output");
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--allow-remote"));
    let _ = std::fs::remove_dir_all(&dir);
}
