//! The bundled stack for `run` without a target: the reference server, the mock IdP and the
//! mock mailbox, in-process on random loopback ports, wired to each other. This module only
//! starts things; the engine checks the server over the wire like any other target.

use std::net::SocketAddr;
use std::sync::Arc;

use authmd_mock_idp::{IdpConfig, MockIdp};
use authmd_mock_mailbox::{MailSource, Mailbox};
use authmd_reference_server::{Config, Defects, ReferenceServer, TrustedIssuer};

use crate::catalogue::{Case, Need};
use crate::target::{ClockConfig, DeclaredTtls, Oracle, Probe, TargetConfig};

/// The running stack. Dropping it stops everything and removes the database directory.
pub struct Bundled {
    /// The reference server.
    pub server: ReferenceServer,
    /// The mock IdP.
    pub idp: Arc<MockIdp>,
    /// The SMTP sink the server relays to.
    pub mail: Arc<MailSource>,
    /// The target configuration describing the stack.
    pub target: TargetConfig,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starting the bundled stack failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the bundled {part}: {reason}")]
pub struct BundledError {
    /// Which part.
    pub part: &'static str,
    /// Why.
    pub reason: String,
}

/// How the bundled server is configured. Some rows can only be checked against a deployment
/// configured another way (a flow off: REG-ANON-07, REG-EMAIL-04; an `amr` policy: IDJAG-45),
/// so those cases get a second server of their own.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Shape {
    /// Every flow on.
    Full,
    /// Anonymous and verified-email registration off; ID-JAG on, with the mock IdP's tokens
    /// required to list `mfa` in `amr`.
    Restricted,
}

impl Shape {
    /// The shape `case` needs.
    pub fn for_case(case: &Case) -> Self {
        if case
            .needs
            .iter()
            .any(|n| matches!(n, Need::AnonymousOff | Need::VerifiedEmailOff | Need::AmrPolicy))
        {
            Self::Restricted
        } else {
            Self::Full
        }
    }
}

/// Starts the full stack with `defects` switched on in the server.
pub async fn start(defects: Defects) -> Result<Bundled, BundledError> {
    start_shaped(defects, Shape::Full).await
}

/// Starts the stack in `shape` with `defects` switched on in the server.
pub async fn start_shaped(defects: Defects, shape: Shape) -> Result<Bundled, BundledError> {
    let any: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    let mailbox = Mailbox::start(any).await.map_err(|e| BundledError {
        part: "mailbox",
        reason: e.to_string(),
    })?;
    let smtp = mailbox.addr().to_string();
    let idp = MockIdp::start(IdpConfig {
        jwks_max_age: 300,
        ..IdpConfig::default()
    })
    .await
    .map_err(|e| BundledError {
        part: "mock IdP",
        reason: e.to_string(),
    })?;
    let dir = std::env::temp_dir().join(format!("authmd-run-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).map_err(|e| BundledError {
        part: "database directory",
        reason: e.to_string(),
    })?;
    let required_amr: Vec<String> = match shape {
        Shape::Full => Vec::new(),
        Shape::Restricted => vec!["mfa".into()],
    };
    let mut config = Config {
        listen: any,
        database: dir.join("reference.sqlite"),
        smtp: Some(smtp),
        test_clock: true,
        anonymous: shape == Shape::Full,
        verified_email: shape == Shape::Full,
        ..Config::default()
    };
    config.trusted_issuers.push(TrustedIssuer {
        issuer: idp.issuer().to_string(),
        jwks_uri: None,
        client_ids: Vec::new(),
        ca_pem: None,
        required_amr: required_amr.clone(),
    });
    // Each case has its own source address; these limits leave room for the sampling cases
    // while the rate-limit case still sees a 429 within its burst.
    config.rate.anonymous_per_ip = 30;
    config.rate.identity_per_ip = 120;
    // Cases rotate keys one after another; a cool-down would make the rotation case depend on
    // what ran just before it.
    config.ttl.jwks_refetch_cooldown = 0;
    let ttl = DeclaredTtls {
        registration: config.ttl.registration,
        claim_attempt: config.ttl.claim_attempt,
        otp: config.ttl.otp,
        access_token: config.ttl.access_token,
    };
    let server = ReferenceServer::start(config, defects).await.map_err(|e| BundledError {
        part: "reference server",
        reason: e.to_string(),
    })?;
    let mut target = TargetConfig::new(server.base_url());
    target.oracle = Some(Oracle {
        path: "/api/resource".into(),
        user_pointer: "/user/id".into(),
        scopes_pointer: "/credential/scope".into(),
    });
    target.probes.insert(
        "api.read".into(),
        Probe {
            method: "GET".into(),
            path: "/api/read".into(),
        },
    );
    target.probes.insert(
        "api.write".into(),
        Probe {
            method: "POST".into(),
            path: "/api/write".into(),
        },
    );
    target.clock = ClockConfig {
        offset_header: Some(authmd_reference_server::CLOCK_OFFSET_HEADER.into()),
        wait_budget_secs: 0,
    };
    target.ttl = ttl;
    target.rate_burst = Some(40);
    target.readings.insert("C-01".into(), "B".into());
    target.idp.required_amr = required_amr;
    Ok(Bundled {
        server,
        idp: Arc::new(idp),
        mail: Arc::new(MailSource::Smtp(Arc::new(mailbox))),
        target,
        _dir: TempDir(dir),
    })
}
