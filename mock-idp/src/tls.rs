//! TLS material made by rcgen (a throw-away CA and a leaf for loopback names) and an https
//! listener on aws-lc-rs, the workspace's one crypto backend.

use std::net::TcpListener;

use axum::Router;

use crate::IdpError;

pub use authmd_tls::TlsMaterial;

/// Makes a CA and a leaf valid for `names` (DNS names or IP literals).
pub fn generate(names: &[&str]) -> Result<TlsMaterial, IdpError> {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    TlsMaterial::generate("authmd-conformance test CA", &names).map_err(IdpError::Tls)
}

/// Serves `router` over https on an already-bound listener until `shutdown` fires.
pub async fn serve_https(
    listener: TcpListener,
    router: Router,
    material: &TlsMaterial,
    shutdown: tokio::sync::oneshot::Receiver<()>,
) -> Result<(), IdpError> {
    let config =
        axum_server::tls_rustls::RustlsConfig::from_pem(material.cert_pem.clone().into_bytes(), material.key_pem.clone().into_bytes())
            .await
            .map_err(|e| IdpError::Tls(e.to_string()))?;
    let handle = axum_server::Handle::new();
    // TCP_NODELAY: with Nagle on, a TLS record written in two segments waits out the peer's
    // delayed ACK (40 ms a request on loopback).
    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(config).acceptor(axum_server::accept::NoDelayAcceptor);
    let server = axum_server::from_tcp(listener)
        .map_err(|e| IdpError::Tls(e.to_string()))?
        .acceptor(acceptor)
        .handle(handle.clone());
    tokio::spawn(async move {
        let _ = shutdown.await;
        handle.graceful_shutdown(None);
    });
    tokio::spawn(async move {
        let _ = server.serve(router.into_make_service()).await;
    });
    Ok(())
}
