//! A delaying TCP proxy: the latency rig. Every chunk each way is forwarded `one_way` after it
//! arrived (a round trip costs twice that, pipelined bytes are not delayed twice), and each
//! upstream connection is made from the client's own source address, so per-address rate
//! limits and the harness's per-case source isolation hold through it. A new connection's first
//! bytes also wait out the TCP handshake (one round trip), so a client that opens a connection
//! per request pays for it here as it would against a remote server.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Bytes read at once; a chunk is forwarded whole.
const CHUNK: usize = 16 * 1024;
/// Chunks in flight per direction; a slow reader holds the sender back (bounded memory).
const IN_FLIGHT: usize = 64;

/// A running proxy; dropping it stops accepting.
pub struct DelayProxy {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl DelayProxy {
    /// Binds a loopback port. The upstream is named later, by [`Self::forward_to`], so the
    /// server behind can be told the proxy's address before it starts.
    pub async fn bind() -> std::io::Result<(TcpListener, SocketAddr)> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        Ok((listener, addr))
    }

    /// Forwards every connection `listener` accepts to `upstream`, `one_way` late each way.
    pub fn forward_to(listener: TcpListener, upstream: SocketAddr, one_way: Duration) -> Self {
        Self::forward_to_each(listener, vec![upstream], one_way)
    }

    /// Forwards the connections `listener` accepts to each of `upstreams` in turn (the
    /// round-robin front of a replicas deployment, as a load balancer spreads connections),
    /// `one_way` late each way. `upstreams` must not be empty.
    pub fn forward_to_each(listener: TcpListener, upstreams: Vec<SocketAddr>, one_way: Duration) -> Self {
        let first = upstreams.first().copied().unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)));
        let addr = listener.local_addr().unwrap_or(first);
        let task = tokio::spawn(async move {
            let mut next = 0usize;
            while let Ok((client, peer)) = listener.accept().await {
                let Some(&upstream) = upstreams.get(next % upstreams.len().max(1)) else {
                    continue;
                };
                next = next.wrapping_add(1);
                tokio::spawn(async move {
                    if let Ok(server) = connect_from(peer, upstream).await {
                        pipe(client, server, one_way).await;
                    }
                });
            }
        });
        Self { addr, task }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Connects to `upstream` from `peer`'s address (any port), or from any address if that fails.
async fn connect_from(peer: SocketAddr, upstream: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = if upstream.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if peer.ip().is_loopback() && peer.is_ipv4() == upstream.is_ipv4() {
        let _ = socket.bind(SocketAddr::new(peer.ip(), 0));
    }
    socket.connect(upstream).await
}

/// Both directions, each delayed, until either side closes.
async fn pipe(client: TcpStream, server: TcpStream, one_way: Duration) {
    // Each delayed chunk goes out at once: Nagle would hold it for the peer's delayed ACK and
    // add its own 40 ms to the latency the rig stands for.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    // The proxy accepted at once; a remote server's SYN-ACK would have come a round trip later.
    let handshake_done = Instant::now() + 2 * one_way;
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = tokio::spawn(delayed(cr, sw, one_way, handshake_done));
    let down = tokio::spawn(delayed(sr, cw, one_way, Instant::now()));
    let _ = tokio::join!(up, down);
}

/// Copies `from` to `to`, each chunk written `one_way` after it was read (or after
/// `not_before`, if that is later).
async fn delayed<R, W>(mut from: R, mut to: W, one_way: Duration, not_before: Instant)
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(IN_FLIGHT);
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send((Instant::now().max(not_before) + one_way, buf[..n].to_vec()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
    while let Some((due, bytes)) = rx.recv().await {
        tokio::time::sleep_until(due).await;
        if to.write_all(&bytes).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
    reader.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_round_trip_costs_twice_the_delay_plus_one_for_the_handshake_and_keeps_the_source_address() {
        let echo = TcpListener::bind("127.0.0.1:0").await.expect("echo");
        let upstream = echo.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, peer)) = echo.accept().await {
                let mut b = [0u8; 64];
                let n = s.read(&mut b).await.unwrap_or(0);
                let _ = s
                    .write_all(format!("{}:{}", peer.ip(), String::from_utf8_lossy(&b[..n])).as_bytes())
                    .await;
            }
        });
        let (listener, addr) = DelayProxy::bind().await.expect("bind");
        let proxy = DelayProxy::forward_to(listener, upstream, Duration::from_millis(40));
        assert_eq!(proxy.addr(), addr);
        let socket = TcpSocket::new_v4().expect("socket");
        socket.bind("127.3.4.5:0".parse().expect("addr")).expect("bind source");
        let mut s = socket.connect(addr).await.expect("connect");
        let started = std::time::Instant::now();
        s.write_all(b"ping").await.expect("write");
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.expect("read");
        // The handshake's round trip, then the exchange's.
        assert!(started.elapsed() >= Duration::from_millis(160), "{:?}", started.elapsed());
        assert_eq!(String::from_utf8_lossy(&out), "127.3.4.5:ping");
    }

    #[tokio::test]
    async fn a_front_sends_each_new_connection_to_the_next_upstream() {
        let mut upstreams = Vec::new();
        for name in ["a", "b", "c"] {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("upstream");
            upstreams.push(listener.local_addr().expect("addr"));
            tokio::spawn(async move {
                while let Ok((mut s, _)) = listener.accept().await {
                    let _ = s.write_all(name.as_bytes()).await;
                }
            });
        }
        let (listener, addr) = DelayProxy::bind().await.expect("bind");
        let _front = DelayProxy::forward_to_each(listener, upstreams, Duration::ZERO);
        let mut seen = String::new();
        for _ in 0..6 {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            let mut out = Vec::new();
            s.read_to_end(&mut out).await.expect("read");
            seen.push_str(&String::from_utf8_lossy(&out));
        }
        assert_eq!(seen, "abcabc");
    }
}
