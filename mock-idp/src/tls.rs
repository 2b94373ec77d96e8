//! TLS material made by rcgen (a throw-away CA and a leaf for loopback names) and an https
//! listener on aws-lc-rs, the workspace's one crypto backend.

use std::net::TcpListener;

use axum::Router;

use crate::IdpError;

/// A CA certificate and a leaf certificate signed by it, all PEM.
pub struct TlsMaterial {
    /// The CA certificate a client must trust.
    pub ca_pem: String,
    /// The leaf certificate served.
    pub cert_pem: String,
    /// The leaf's private key.
    pub key_pem: String,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl TlsMaterial {
    /// Makes a CA and a leaf valid for `names` (DNS names or IP literals).
    pub fn generate(names: &[&str]) -> Result<Self, IdpError> {
        let tls = |e: rcgen::Error| IdpError::Tls(e.to_string());
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(tls)?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "authmd-conformance test CA");
        let ca_key = rcgen::KeyPair::generate().map_err(tls)?;
        let ca_cert = ca_params.self_signed(&ca_key).map_err(tls)?;
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_params = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).map_err(tls)?;
        let leaf_key = rcgen::KeyPair::generate().map_err(tls)?;
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).map_err(tls)?;
        Ok(Self {
            ca_pem: ca_cert.pem(),
            cert_pem: leaf.pem(),
            key_pem: leaf_key.serialize_pem(),
        })
    }
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
    let server = axum_server::from_tcp_rustls(listener, config)
        .map_err(|e| IdpError::Tls(e.to_string()))?
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
