//! A throw-away certificate authority and a leaf certificate signed by it, made with rcgen on
//! aws-lc-rs (the workspace's one crypto backend), for the loopback https the mock IdP and the
//! reference server offer. Neutral plumbing only: no protocol rules live here.

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
    /// Makes a CA named `ca_name` and a leaf valid for `names` (DNS names or IP literals).
    pub fn generate(ca_name: &str, names: &[String]) -> Result<Self, String> {
        let tls = |e: rcgen::Error| format!("tls: {e}");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(tls)?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, ca_name);
        let ca_key = rcgen::KeyPair::generate().map_err(tls)?;
        let ca_cert = ca_params.self_signed(&ca_key).map_err(tls)?;
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_params = rcgen::CertificateParams::new(names.to_vec()).map_err(tls)?;
        let leaf_key = rcgen::KeyPair::generate().map_err(tls)?;
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).map_err(tls)?;
        Ok(Self {
            ca_pem: ca_cert.pem(),
            cert_pem: leaf.pem(),
            key_pem: leaf_key.serialize_pem(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_pem_material_and_hides_the_key_in_debug() {
        let m = TlsMaterial::generate("test CA", &["localhost".into(), "127.0.0.1".into()]).expect("material");
        assert!(m.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(m.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(m.key_pem.contains("PRIVATE KEY"));
        assert!(!format!("{m:?}").contains("PRIVATE"));
    }
}
