//! The bundled stack for `run` without a target: the reference server, the mock IdP and the
//! mock mailbox, in-process on random loopback ports, wired to each other. This module only
//! starts things; the engine checks the server over the wire like any other target.

use std::net::SocketAddr;
use std::sync::Arc;

use authmd_mock_idp::{IdpConfig, MockIdp};
use authmd_mock_mailbox::{MailSource, Mailbox};
use authmd_reference_server::{AudienceReading, Config, Defects, ErrorNames, OracleShape, ReferenceServer, TrustedIssuer};

use crate::catalogue::{Case, Need};
use crate::target::{ClockConfig, DeclaredTtls, Oracle, Probe, TargetConfig};

/// The running stack. Dropping it stops everything and removes the database directory.
pub struct Bundled {
    /// The reference server.
    pub server: ReferenceServer,
    /// The mock IdP.
    pub idp: Arc<MockIdp>,
    /// A second IdP the server also trusts.
    pub idp2: Arc<MockIdp>,
    /// A live IdP the server does not trust.
    pub stranger: Arc<MockIdp>,
    /// The SMTP sink the server relays to.
    pub mail: Arc<MailSource>,
    /// The target configuration describing the stack.
    pub target: TargetConfig,
    /// The DNS server publishing the service's AID record (AID deployments only).
    pub dns: Option<authmd_dns::DnsServer>,
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
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
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
        if case.needs.iter().any(|n| {
            matches!(
                n,
                Need::AnonymousOff | Need::VerifiedEmailOff | Need::ServiceAuthOff | Need::AmrPolicy
            )
        }) {
            Self::Restricted
        } else {
            Self::Full
        }
    }
}

/// A conforming deployment of the reference server that differs from the standard one in
/// every way the catalogue allows. The suite must pass against each: the guard against cases
/// tuned to one server's shapes.
#[derive(Clone, Copy, Debug, Default, Eq, Hash, PartialEq)]
pub enum Variant {
    /// Test clock header, guide error names, nested oracle, SMTP mail, `aud` = AS (C-01 B).
    #[default]
    Standard,
    /// AUTH.md's error names (§B.6), a flat oracle with a space-delimited scope string, claim
    /// mail only as per-registration HTML files served over HTTP and overwritten by each new
    /// attempt, `aud` = the PRM resource (C-01 A), logout tokens must carry `exp` (C-20 B), a
    /// pinned non-URL `client_id`, and a 2 s JWKS refetch cool-down.
    Alternates,
    /// No clock header: short TTLs and a wait budget, so TTL cases really wait (concurrently).
    NoClock,
    /// The v0.6 profile (upstream b53c9ed): `/agent/identity`, the token endpoint, RFC 7009.
    V06,
    /// The standard deployment over https at a DNS name, publishing an AID v2 record with a PKA
    /// key from a loopback DNS server (the run starts from the bare domain).
    Aid,
    /// As `Aid`, publishing an AID v1.2 record without a key.
    Aid1,
}

impl Variant {
    /// Every deployment of the v0.1 profile.
    pub const ALL: [Variant; 3] = [Variant::Standard, Variant::Alternates, Variant::NoClock];

    /// The deployment that speaks `profile` (its standard one), if the bundled server speaks it.
    pub fn for_profile(profile: &str) -> Option<Self> {
        match profile {
            "v0.1" => Some(Self::Standard),
            "v0.6" => Some(Self::V06),
            _ => None,
        }
    }

    /// The spec profile the deployment speaks.
    pub fn profile(self) -> &'static str {
        match self {
            Self::V06 => "v0.6",
            _ => "v0.1",
        }
    }

    /// The name used by `--variant` and in trial names.
    pub fn name(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Alternates => "alternates",
            Self::NoClock => "no-clock",
            Self::V06 => "v0.6",
            Self::Aid => "aid",
            Self::Aid1 => "aid1",
        }
    }

    /// The variant of that name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().chain([Self::Aid, Self::Aid1]).find(|v| v.name() == name)
    }

    /// Whether the deployment publishes AID.
    pub fn publishes_aid(self) -> bool {
        matches!(self, Self::Aid | Self::Aid1)
    }
}

/// Short TTLs of the no-clock variant: ordered like the real ones (an OTP dies before its
/// attempt, an attempt before its registration), so every TTL case keeps its meaning.
const SHORT_TTLS: DeclaredTtls = DeclaredTtls {
    registration: 9,
    claim_attempt: 8,
    otp: 3,
    access_token: 3,
};

/// Starts the full stack with `defects` switched on in the server.
pub async fn start(defects: Defects) -> Result<Bundled, BundledError> {
    start_shaped(defects, Shape::Full, Variant::Standard).await
}

/// The domain an AID deployment is published at unless `run --domain` names another.
pub const AID_DOMAIN: &str = "svc.authmd.test";

/// Starts the stack in `shape` and `variant` with `defects` switched on in the server.
pub async fn start_shaped(defects: Defects, shape: Shape, variant: Variant) -> Result<Bundled, BundledError> {
    start_at(defects, shape, variant, AID_DOMAIN).await
}

/// As [`start_shaped`]; an AID deployment is published at `domain`.
pub async fn start_at(defects: Defects, shape: Shape, variant: Variant, domain: &str) -> Result<Bundled, BundledError> {
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
    let other = |prefix: &str| IdpConfig {
        kid_prefix: prefix.to_string(),
        ..IdpConfig::default()
    };
    let idp2 = MockIdp::start(other("B-")).await.map_err(|e| BundledError {
        part: "second mock IdP",
        reason: e.to_string(),
    })?;
    let stranger = MockIdp::start(other("C-")).await.map_err(|e| BundledError {
        part: "untrusted mock IdP",
        reason: e.to_string(),
    })?;
    let dir = std::env::temp_dir().join(format!("authmd-run-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).map_err(|e| BundledError {
        part: "database directory",
        reason: e.to_string(),
    })?;
    // The alternates deployment's outbox asks for a token only the harness holds (SEC-08).
    let outbox_token = format!("obx_{}", uuid::Uuid::new_v4().simple());
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
    match variant {
        Variant::Standard => {}
        Variant::Alternates => {
            config.error_names = ErrorNames::AuthMd;
            config.oracle_shape = OracleShape::Flat;
            config.smtp = None;
            config.mail_outbox = Some(dir.join("outbox"));
            config.mail_outbox_token = Some(authmd_reference_server::config::SecretString(outbox_token.clone()));
            config.audience = AudienceReading::Resource;
            // C-20 reading B: a logout token must carry `exp`, as BCL 1.0 requires.
            config.logout_requires_exp = true;
            // The other readings of C-07, C-11 and C-17.
            config.follows = authmd_reference_server::config::FOLLOWABLE.iter().map(|f| f.to_string()).collect();
        }
        Variant::V06 => {
            config.profile = authmd_reference_server::Profile::V06;
            // v0.6 Step 3: `aud` is the PRM resource.
            config.audience = AudienceReading::Resource;
        }
        Variant::Aid | Variant::Aid1 => {
            config.https = true;
            config.public_host = Some(domain.to_string());
            config.aid = if variant == Variant::Aid {
                authmd_reference_server::AidMode::Aid2
            } else {
                authmd_reference_server::AidMode::Aid1
            };
        }
        Variant::NoClock => {
            config.test_clock = false;
            config.ttl.registration = SHORT_TTLS.registration;
            config.ttl.claim_attempt = SHORT_TTLS.claim_attempt;
            config.ttl.otp = SHORT_TTLS.otp;
            config.ttl.access_token = SHORT_TTLS.access_token;
        }
    }
    for trusted in [&idp, &idp2] {
        config.trusted_issuers.push(TrustedIssuer {
            required_amr: required_amr.clone(),
            ..TrustedIssuer::named(trusted.issuer())
        });
    }
    // The alternates deployment pins the primary issuer's client_ids to a name that is not a
    // URL, so nothing is resolved as client metadata there (IDJAG-36 becomes a MUST).
    if variant == Variant::Alternates {
        config.trusted_issuers[0].client_ids = vec![PINNED_CLIENT_ID.into()];
    }
    // Each case has its own source address; these limits leave room for the sampling cases
    // while the rate-limit case still sees a 429 within its burst.
    config.rate.anonymous_per_ip = 30;
    config.rate.identity_per_ip = 120;
    // Cases rotate keys one after another; without a declared cool-down the rotation case
    // would depend on what ran just before it. The alternates variant declares one, and the
    // harness waits it out.
    config.ttl.jwks_refetch_cooldown = config_cooldown(variant);
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
    target.profile = variant.profile().to_string();
    // The server trusts this IdP's issuer, as a user's config names the one theirs trusts.
    target.idp.issuer = Some(idp.issuer().to_string());
    if variant == Variant::V06 {
        target.idp.audience = Some(format!("{}/api", server.base_url().trim_end_matches('/')));
        // The human's steps on the server's own pages (v0.6 ceremony).
        let fields = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        target.session = Some(crate::target::SessionRecipe {
            login_url: "/login".into(),
            login_fields: fields(&[("email", "{email}"), ("return_to", "{return_to}")]),
            confirm_url: "/agent/identity/claim/complete".into(),
            confirm_fields: fields(&[("claim_attempt_token", "{claim_attempt_token}"), ("user_code", "{user_code}")]),
        });
    }
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
    target.readings.insert("C-20".into(), "A".into());
    target.readings.insert("C-04".into(), "guide".into());
    for (ambiguity, reading) in [("C-07", "v0.1-idempotent"), ("C-11", "required"), ("C-17", "A")] {
        target.readings.insert(ambiguity.into(), reading.into());
    }
    target.idp.required_amr = required_amr;
    target.idp.jwks_refetch_cooldown_secs = Some(config_cooldown(variant));
    // The reference server ages its JWKS cache by the request's clock.
    target.idp.jwks_cache_follows_clock = true;
    let mut mail = MailSource::Smtp(Arc::new(mailbox));
    match variant {
        Variant::Standard | Variant::V06 => {}
        Variant::Aid | Variant::Aid1 => {}
        Variant::Alternates => {
            target.oracle = Some(Oracle {
                path: "/api/resource".into(),
                user_pointer: "/who".into(),
                scopes_pointer: "/scope".into(),
            });
            target.readings.insert("C-01".into(), "A".into());
            target.readings.insert("C-20".into(), "B".into());
            target.readings.insert("C-04".into(), "authmd".into());
            for (ambiguity, reading) in [("C-07", "v0.7-new-attempt"), ("C-11", "defaulted"), ("C-17", "B")] {
                target.readings.insert(ambiguity.into(), reading.into());
            }
            target.idp.client_ids = vec![PINNED_CLIENT_ID.into()];
            target.idp.cimd = false;
            target.idp.audience = Some(format!("{}/api", server.base_url().trim_end_matches('/')));
            target.clock.wait_budget_secs = 5;
            let url = format!("{}/mail/{{registration_id}}.html", server.base_url().trim_end_matches('/'));
            mail = MailSource::url_template_with_headers(url, vec![("authorization".into(), format!("Bearer {outbox_token}"))]);
        }
        Variant::NoClock => {
            target.clock = ClockConfig {
                offset_header: None,
                wait_budget_secs: 16,
            };
        }
    }
    target.idp.second = Some(crate::target::SecondIssuer {
        issuer: idp2.issuer().to_string(),
        listen: idp2.addr(),
    });
    let dns = if variant.publishes_aid() {
        let dns = serve_aid_zone(&server, domain).await?;
        // The run starts from the bare domain: the record names the endpoint and base URL.
        target.base_url = String::new();
        target.aid = Some(crate::target::AidTarget {
            resolver: Some(dns.addr()),
            https_port: server.addr().port(),
            well_known: true,
            ..crate::target::AidTarget::new(domain, None)
        });
        Some(dns)
    } else {
        None
    };
    Ok(Bundled {
        dns,
        server,
        idp: Arc::new(idp),
        idp2: Arc::new(idp2),
        stranger: Arc::new(stranger),
        mail: Arc::new(mail),
        target,
        _dir: TempDir(dir),
    })
}

/// Serves the zone of `domain`'s parent with the server's AID records and `domain`'s address.
async fn serve_aid_zone(server: &ReferenceServer, domain: &str) -> Result<authmd_dns::DnsServer, BundledError> {
    let fail = |reason: String| BundledError {
        part: "DNS server",
        reason,
    };
    let origin = domain
        .split_once('.')
        .map(|(_, parent)| parent)
        .filter(|p| p.contains('.'))
        .unwrap_or(domain);
    let mut zone = authmd_dns::Zone::new(origin).map_err(fail)?;
    zone.address(domain, 300, server.addr().ip()).map_err(fail)?;
    for r in server.aid_records() {
        zone.txt_text(&r.owner, r.ttl, &r.txt).map_err(fail)?;
    }
    authmd_dns::DnsServer::start(zone, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .map_err(fail)
}

/// The client_id the alternates deployment pins for the primary issuer.
const PINNED_CLIENT_ID: &str = "authmd-conformance-agent";

fn config_cooldown(variant: Variant) -> u64 {
    if variant == Variant::Alternates { 2 } else { 0 }
}
