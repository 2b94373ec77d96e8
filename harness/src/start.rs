//! The mocks a run against a user's server needs, started from its target config: the mock
//! IdP on the configured issuer (keys persisted in `idp.state_dir`), the second trusted issuer,
//! a live untrusted issuer, and the mail source.

use std::sync::Arc;

use authmd_mock_idp::{IdpConfig, MockIdp};
use authmd_mock_mailbox::{MailSource, Mailbox};

use crate::engine::Parts;
use crate::exit_code::Ending;
use crate::target::{MailConfig, TargetConfig};

/// Starts what `target` names and returns the parts of its harness. A listener that cannot
/// bind is a usage error naming the setting.
pub async fn external_parts(target: TargetConfig) -> Result<Parts, Ending> {
    // Keys persist across runs (idp.state_dir): a server that cached the last run's JWKS must
    // not see a new key under an old kid.
    let issuer_key = target.idp.issuer.clone().unwrap_or_else(|| target.idp.listen.to_string());
    let key_dir = target.idp.key_dir(&issuer_key);
    let idp = MockIdp::start(IdpConfig {
        listen: target.idp.listen,
        issuer: target.idp.issuer.clone(),
        key_dir: Some(key_dir.clone()),
        ..IdpConfig::default()
    })
    .await
    .map_err(|e| Ending::Usage(format!("idp (listen {}, keys in {}): {e}", target.idp.listen, key_dir.display())))?;
    let mail = match &target.mail {
        None => None,
        Some(MailConfig::Smtp { listen }) => Some(MailSource::Smtp(Arc::new(
            Mailbox::start(*listen)
                .await
                .map_err(|e| Ending::Usage(format!("mail.smtp: {e}")))?,
        ))),
        Some(MailConfig::Directory { path }) => Some(MailSource::directory(path.clone())),
        Some(MailConfig::UrlTemplate { template, headers }) => Some(MailSource::url_template_with_headers(
            target.url(template),
            headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        )),
        Some(MailConfig::Mailpit { base }) => Some(MailSource::mailpit(base.clone())),
    };
    let idp2 = match &target.idp.second {
        Some(second) => Some(Arc::new(
            MockIdp::start(IdpConfig {
                listen: second.listen,
                issuer: Some(second.issuer.clone()),
                key_dir: Some(target.idp.key_dir(&second.issuer)),
                kid_prefix: "B-".into(),
                ..IdpConfig::default()
            })
            .await
            .map_err(|e| Ending::Usage(format!("idp.second (listen {}): {e}", second.listen)))?,
        )),
        None => None,
    };
    // A live issuer nobody trusts: real keys and JWKS on a random loopback port.
    let stranger = MockIdp::start(IdpConfig {
        kid_prefix: "C-".into(),
        ..IdpConfig::default()
    })
    .await
    .map_err(|e| Ending::Harness(format!("untrusted mock IdP: {e}")))?;
    let ca_pem = match &target.ca_file {
        Some(path) => {
            let pem = std::fs::read_to_string(path).map_err(|e| Ending::Usage(format!("ca_file {}: {e}", path.display())))?;
            // A file that holds no certificate is the config's mistake, said before any case runs.
            crate::transport::Tls::new(Some(&pem)).map_err(|e| Ending::Usage(format!("ca_file {}: {e}", path.display())))?;
            Some(pem)
        }
        None => None,
    };
    let mut parts = Parts::new(target, Arc::new(idp));
    parts.ca_pem = ca_pem;
    parts.idp2 = idp2;
    parts.stranger = Some(Arc::new(stranger));
    parts.mail = mail.map(Arc::new);
    Ok(parts)
}
