//! The plain-HTTP accept loop. `axum::serve` has no header-read timeout and no connection cap,
//! so a crowd of half-sent requests could hold every file descriptor and make the server
//! unreachable. Here each connection must send its request head (and, between keep-alive
//! requests, the next one) within `header_read_timeout_secs`, and at `max_connections` the
//! oldest connection is closed to admit the new one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::oneshot;

use crate::config::ConnectionLimits;

/// Descriptors kept back from the connection cap: the listener, the database and its WAL,
/// outbound JWKS and SMTP connections, stdio.
const RESERVED_FDS: usize = 256;

/// The connection cap: configured, or derived from the open-file limit.
pub fn connection_cap(limits: &ConnectionLimits) -> usize {
    if limits.max_connections > 0 {
        return limits.max_connections;
    }
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|n| n.parse::<usize>().ok())
        })
        .unwrap_or(1024);
    soft.saturating_sub(RESERVED_FDS).max(64)
}

/// Open connections by admission order, each with the sender that closes it.
#[derive(Default)]
struct Open {
    next: u64,
    conns: BTreeMap<u64, oneshot::Sender<()>>,
}

/// Serves `router` on `listener` until `shutdown` fires.
pub async fn serve(listener: tokio::net::TcpListener, router: Router, limits: ConnectionLimits, shutdown: oneshot::Receiver<()>) {
    let cap = connection_cap(&limits);
    let open = Arc::new(Mutex::new(Open::default()));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(limits.header_read_timeout_secs.max(1)))
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                // Out of descriptors (or a transient error): close the oldest and retry.
                Err(_) => {
                    evict_oldest(&open);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (close, closed) = oneshot::channel::<()>();
        let id = {
            let Ok(mut o) = open.lock() else { continue };
            while o.conns.len() >= cap {
                if let Some((_, oldest)) = o.conns.pop_first() {
                    let _ = oldest.send(());
                }
            }
            o.next += 1;
            let id = o.next;
            o.conns.insert(id, close);
            id
        };
        let service = {
            let router = router.clone();
            tower::service_fn(move |mut request: axum::extract::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                let router = router.clone();
                async move { tower::ServiceExt::oneshot(router, request.map(axum::body::Body::new)).await }
            })
        };
        let connection = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let open = open.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = connection => {}
                _ = closed => {}
            }
            if let Ok(mut o) = open.lock() {
                o.conns.remove(&id);
            }
        });
    }
}

fn evict_oldest(open: &Mutex<Open>) {
    if let Ok(mut o) = open.lock()
        && let Some((_, oldest)) = o.conns.pop_first()
    {
        let _ = oldest.send(());
    }
}

/// Answers 503 with `Retry-After` when `max_in_flight` requests are already being handled.
pub async fn limit_in_flight(
    axum::extract::State(permits): axum::extract::State<Arc<tokio::sync::Semaphore>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match permits.try_acquire_owned() {
        Ok(_permit) => next.run(request).await,
        Err(_) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            [(axum::http::header::RETRY_AFTER, "1")],
            axum::Json(serde_json::json!({ "error": "temporarily_unavailable", "message": "too many requests in flight; retry shortly" })),
        )
            .into_response(),
    }
}

/// Largest request body a handler reads (each handler enforces it again with its own answer).
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// Reads every request body, of every endpoint of every profile, within `body_timeout_secs`,
/// before the request takes one of the `max_in_flight` permits: a client trickling its body
/// is answered 408 and closed instead of holding a handler (and, a thousand of them, every
/// handler). A body past [`MAX_BODY`] stays too large for the handler, which refuses it the
/// way its profile says.
pub async fn read_body_in_time(
    axum::extract::State(limit): axum::extract::State<Duration>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (parts, body) = request.into_parts();
    let body = match tokio::time::timeout(limit, axum::body::to_bytes(body, MAX_BODY)).await {
        Err(_) => {
            let mut answer = (
                axum::http::StatusCode::REQUEST_TIMEOUT,
                [(axum::http::header::CONNECTION, "close")],
                axum::Json(serde_json::json!({
                    "error": "invalid_request",
                    "error_description": "the request body did not arrive in time",
                })),
            )
                .into_response();
            answer
                .headers_mut()
                .insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
            return answer;
        }
        Ok(Ok(bytes)) => axum::body::Body::from(bytes),
        // Over the limit (or broken off): one byte past the limit makes the handler refuse it
        // with its own profile's error, exactly as if it had read the body itself.
        Ok(Err(_)) => axum::body::Body::from(vec![0u8; MAX_BODY + 1]),
    };
    next.run(axum::extract::Request::from_parts(parts, body)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_comes_from_the_config_or_the_fd_limit() {
        let configured = ConnectionLimits {
            max_connections: 77,
            ..ConnectionLimits::default()
        };
        assert_eq!(connection_cap(&configured), 77);
        assert!(connection_cap(&ConnectionLimits::default()) >= 64);
    }
}
