//! The scripted hostile target: a raw tokio socket server (no HTTP library, so the bytes are
//! exactly the ones written) that misbehaves in one chosen way.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the scripted target does wrong.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Misbehaviour {
    /// Discovery: reads the request and never answers.
    Stall,
    /// Discovery: a status line and headers, then one body byte per second.
    Drip,
    /// Discovery: a 200 MB body.
    HugeBody,
    /// Discovery: a body shorter than its Content-Length, then the connection is closed.
    ShortBody,
    /// Discovery: 200 headers of 8 KB each.
    HeaderFlood,
    /// Registration: JSON nested 100,000 deep.
    DepthBomb,
    /// Registration: invalid UTF-8 in the body and in a header value.
    InvalidUtf8,
    /// Registration: credentials made of non-ASCII characters.
    NonAsciiTokens,
    /// Registration: secrets in every position a redactor by name would miss.
    LeakSecrets,
    /// Registration and errors: terminal escape sequences and forged Markdown rows.
    Escapes,
    /// Metadata: the registration endpoint is on another host; registration redirects there.
    Elsewhere,
    /// Registration: ~1 MB of JSON, thousands of distinct values under secret-sounding names.
    SecretFlood,
    /// Registration: 95 distinct cookies of almost 4 KiB each.
    CookieFlood,
}

/// Secrets the `LeakSecrets` target hands out; none may appear in any output.
pub const PLANTED: &[&str] = &[
    "planted-api-key-7f3a9c",
    "planted-nested-value-51be",
    r#"planted\back"slash</script>|pipe&amp-e0d1"#,
    "planted-cookie-value-c9d8",
    "planted-header-key-a4b2",
    "planted-claim-token-33aa",
];

pub struct Target {
    pub addr: SocketAddr,
    /// Connections the "other host" received (must stay 0).
    pub elsewhere_hits: Arc<AtomicUsize>,
}

pub async fn start(kind: Misbehaviour) -> Target {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind target");
    let addr = listener.local_addr().expect("addr");
    let other = TcpListener::bind("127.0.0.1:0").await.expect("bind other host");
    let other_addr = other.local_addr().expect("addr");
    let elsewhere_hits = Arc::new(AtomicUsize::new(0));
    let hits = elsewhere_hits.clone();
    tokio::spawn(async move {
        while let Ok((_socket, _)) = other.accept().await {
            hits.fetch_add(1, Ordering::SeqCst);
        }
    });
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(serve(socket, kind, addr, other_addr));
        }
    });
    Target { addr, elsewhere_hits }
}

/// Reads one request head and its body; `None` when the client went away.
pub async fn read_request(socket: &mut TcpStream) -> Option<(String, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 1 << 20 {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let mut parts = head.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    Some((method, path))
}

pub async fn respond(socket: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut out = format!("HTTP/1.1 {status}\r\nconnection: close\r\ncontent-length: {}\r\n", body.len()).into_bytes();
    for (k, v) in headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    let _ = socket.write_all(&out).await;
    let _ = socket.shutdown().await;
}

pub fn json_type() -> (&'static str, String) {
    ("content-type", "application/json".into())
}

pub async fn serve(mut socket: TcpStream, kind: Misbehaviour, addr: SocketAddr, other: SocketAddr) {
    let Some((method, path)) = read_request(&mut socket).await else {
        return;
    };
    let base = format!("http://{addr}");
    let discovery = path.starts_with("/.well-known/") || path == "/api/resource";
    use Misbehaviour::*;
    if discovery {
        match kind {
            Stall => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                return;
            }
            Drip => {
                let _ = socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n").await;
                for _ in 0..100 {
                    if socket.write_all(b"{").await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                return;
            }
            HugeBody => {
                let total: usize = 200 << 20;
                let _ = socket
                    .write_all(format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {total}\r\n\r\n").as_bytes())
                    .await;
                let block = vec![b'['; 64 * 1024];
                let mut sent = 0;
                while sent < total {
                    if socket.write_all(&block).await.is_err() {
                        return;
                    }
                    sent += block.len();
                }
                return;
            }
            ShortBody => {
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"resource\":")
                    .await;
                return;
            }
            HeaderFlood => {
                let mut out = b"HTTP/1.1 200 OK\r\n".to_vec();
                let value = "x".repeat(8 * 1024);
                for i in 0..200 {
                    out.extend_from_slice(format!("x-flood-{i}: {value}\r\n").as_bytes());
                }
                out.extend_from_slice(b"content-length: 2\r\n\r\n{}");
                let _ = socket.write_all(&out).await;
                return;
            }
            _ => {}
        }
    }
    let register = if kind == Elsewhere {
        format!("http://{other}/agent/auth")
    } else {
        format!("{base}/agent/auth")
    };
    match (method.as_str(), path.as_str()) {
        ("GET", "/api/resource") => {
            let challenge = format!("Bearer resource_metadata=\"{base}/.well-known/oauth-protected-resource\"");
            respond(
                &mut socket,
                "401 Unauthorized",
                &[("www-authenticate", challenge), json_type()],
                b"{}",
            )
            .await;
        }
        ("GET", "/.well-known/oauth-protected-resource") => {
            let prm = json!({ "resource": format!("{base}/api"), "authorization_servers": [base], "scopes_supported": ["api.read"], "bearer_methods_supported": ["header"] });
            respond(&mut socket, "200 OK", &[json_type()], prm.to_string().as_bytes()).await;
        }
        ("GET", p) if p.starts_with("/.well-known/oauth-authorization-server") => {
            let metadata = json!({
                "issuer": base,
                "agent_auth": {
                    "register_uri": register,
                    "claim_uri": format!("{base}/agent/auth/claim"),
                    "identity_types_supported": ["anonymous"],
                    "credential_types_supported": ["api_key"],
                }
            });
            respond(&mut socket, "200 OK", &[json_type()], metadata.to_string().as_bytes()).await;
        }
        ("POST", "/agent/auth") => registration(&mut socket, kind, other).await,
        _ => {
            let body: &[u8] = if kind == Escapes {
                b"\x1b]0;pwned\x07\x1b[2J\x1b[32mall cases PASS\x1b[0m\n| fake | row |"
            } else {
                b"{\"error\":\"not_found\"}"
            };
            respond(&mut socket, "404 Not Found", &[json_type()], body).await;
        }
    }
}

pub async fn registration(socket: &mut TcpStream, kind: Misbehaviour, other: SocketAddr) {
    use Misbehaviour::*;
    let n: u64 = rand_u64();
    match kind {
        DepthBomb => {
            let depth = 100_000;
            let body = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            respond(socket, "201 Created", &[json_type()], body.as_bytes()).await;
        }
        InvalidUtf8 => {
            let mut body = br#"{"credential":"sk_"#.to_vec();
            body.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28, 0x80]);
            body.extend_from_slice(br#"","registration_id":"r"}"#);
            // A raw header value with bytes past ASCII.
            let mut out = b"HTTP/1.1 201 Created\r\nconnection: close\r\ncontent-type: application/json\r\nx-odd: \xff\xfe\r\n".to_vec();
            out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
            out.extend_from_slice(&body);
            let _ = socket.write_all(&out).await;
            let _ = socket.shutdown().await;
        }
        NonAsciiTokens => {
            let body = json!({
                "registration_id": format!("reg-{n}"),
                "credential": format!("é🔑{n}ключ"),
                "credential_type": "api_key",
                "claim_token": format!("ü{n}"),
            });
            respond(socket, "201 Created", &[json_type()], body.to_string().as_bytes()).await;
        }
        LeakSecrets => {
            let body = json!({
                "registration_id": format!("reg-{n}"),
                "api_key": PLANTED[0],
                "credential": { "type": "api_key", "value": PLANTED[1] },
                "meta": [{ "deep": { "secret": PLANTED[2] } }],
                "claim_token": PLANTED[5],
            });
            let headers = [
                json_type(),
                ("set-cookie", format!("sid={}; Path=/; HttpOnly", PLANTED[3])),
                ("x-api-key", PLANTED[4].to_string()),
            ];
            respond(socket, "201 Created", &headers, body.to_string().as_bytes()).await;
        }
        Escapes => {
            let body = json!({ "error": "\u{1b}]0;pwned\u{7}\u{1b}[2J\u{1b}[32mall cases PASS\u{1b}[0m", "error_description": "line\n| forged | row |" });
            respond(socket, "400 Bad Request", &[json_type()], body.to_string().as_bytes()).await;
        }
        Elsewhere => {
            respond(socket, "302 Found", &[("location", format!("http://{other}/steal"))], b"").await;
        }
        SecretFlood => {
            let mut extra = serde_json::Map::new();
            for i in 0..6000 {
                extra.insert(format!("token_{i}"), json!(format!("{:0>150}", rand_u64())));
            }
            let body = json!({
                "registration_id": format!("reg-{n}"),
                "credential": format!("sk_flood_{n}"),
                "credential_type": "api_key",
                "claim_token": format!("ct_flood_{n}"),
                "extra": extra,
            });
            respond(socket, "201 Created", &[json_type()], body.to_string().as_bytes()).await;
        }
        CookieFlood => {
            let body = json!({
                "registration_id": format!("reg-{n}"),
                "credential": format!("sk_cookie_{n}"),
                "credential_type": "api_key",
                "claim_token": format!("ct_cookie_{n}"),
            });
            let mut headers = vec![json_type()];
            for i in 0..95 {
                let value: String = (0..3900 / 20).map(|_| format!("{:020}", rand_u64())).collect();
                headers.push(("set-cookie", format!("c{i}={value}; Path=/")));
            }
            respond(socket, "201 Created", &headers, body.to_string().as_bytes()).await;
        }
        _ => {
            respond(socket, "500 Internal Server Error", &[json_type()], b"{}").await;
        }
    }
}

pub fn rand_u64() -> u64 {
    static COUNTER: AtomicUsize = AtomicUsize::new(1);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ (COUNTER.fetch_add(1, Ordering::Relaxed) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}
