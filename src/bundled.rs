//! The bundled stack for `run` without a target: the reference server, the mock IdP and the
//! mock mailbox, in-process on random loopback ports, wired to each other. This module only
//! starts things; the engine checks the server over the wire like any other target.

use std::net::SocketAddr;
use std::sync::Arc;

use authmd_mock_idp::{IdpConfig, MockIdp};
use authmd_mock_mailbox::{MailSource, Mailbox};
use authmd_reference_server::{Config, Defects, ReferenceServer, TrustedIssuer};

use crate::catalogue::{Case, Need};
use crate::deployment::{Deployment, MailDelivery};
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
    /// The delaying proxy in front of the server, when the run measures latency.
    pub proxy: Option<crate::latency::DelayProxy>,
    /// The server's other instances (a `replicas` deployment): the same base URL and database,
    /// each at its own address.
    pub replicas: Vec<ReferenceServer>,
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

/// Starts the full stack of the default profile's standard deployment with `defects` on.
pub async fn start(defects: Defects) -> Result<Bundled, BundledError> {
    let standard = Deployment::default_for(&crate::default_profile(), false)
        .map_err(|reason| BundledError {
            part: "deployments",
            reason,
        })?
        .ok_or_else(|| BundledError {
            part: "deployments",
            reason: "the default profile has no default deployment".into(),
        })?;
    start_shaped(defects, Shape::Full, standard).await
}

/// The domain an AID deployment is published at unless `run --domain` names another.
pub const AID_DOMAIN: &str = "svc.authmd.test";

/// Starts `deployment` in `shape` with `defects` switched on in the server.
pub async fn start_shaped(defects: Defects, shape: Shape, deployment: &Deployment) -> Result<Bundled, BundledError> {
    start_at(defects, shape, deployment, AID_DOMAIN).await
}

/// What every bundled deployment shares, under its own `[server]` table: the test clock, and
/// rate limits that leave each case (each with its own source address) room for the sampling
/// cases while the rate-limit case still sees a 429 within its burst. Cases rotate keys one
/// after another; without a declared cool-down the rotation case would depend on what ran just
/// before it, so there is none unless a deployment declares one (and the harness waits it out).
fn wiring() -> toml::Table {
    let mut table = toml::Table::new();
    table.insert("test_clock".into(), true.into());
    let mut rate = toml::Table::new();
    rate.insert("anonymous_per_ip".into(), 30.into());
    rate.insert("identity_per_ip".into(), 120.into());
    table.insert("rate".into(), rate.into());
    let mut ttl = toml::Table::new();
    ttl.insert("jwks_refetch_cooldown".into(), 0.into());
    table.insert("ttl".into(), ttl.into());
    table
}

/// `over` merged into `base`, table by table.
fn merged(mut base: toml::Table, over: &toml::Table) -> toml::Table {
    for (key, value) in over {
        match (base.get_mut(key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(more)) => {
                *inner = merged(std::mem::take(inner), more);
            }
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
    base
}

/// The burst the rate-limit case sends: above the anonymous limit of [`wiring`].
const RATE_BURST: u32 = 40;

/// How the harness reaches the bundled stack: the domain an AID deployment is published at,
/// and a delay each way between the harness and the server (the latency rig: what a run
/// against a remote target costs, on loopback).
#[derive(Clone, Debug)]
pub struct Reach {
    /// Where an AID deployment is published.
    pub domain: String,
    /// The delay each way, if the server sits behind the delaying proxy.
    pub one_way: Option<std::time::Duration>,
}

impl From<&str> for Reach {
    fn from(domain: &str) -> Self {
        Self {
            domain: domain.to_string(),
            one_way: None,
        }
    }
}

/// As [`start_shaped`]; an AID deployment is published at the reach's domain, and the server
/// sits behind the delaying proxy when the reach asks for a delay.
pub async fn start_at(defects: Defects, shape: Shape, deployment: &Deployment, reach: impl Into<Reach>) -> Result<Bundled, BundledError> {
    let reach = reach.into();
    let domain = reach.domain.as_str();
    let fail = |part: &'static str| move |e: String| BundledError { part, reason: e };
    let proxy_listener = match reach.one_way {
        Some(_) if deployment.publishes_aid() => {
            return Err(fail("latency rig")(
                "a delay applies to plain deployments only (an AID deployment is reached by its domain's own address)".into(),
            ));
        }
        _ if deployment.front && deployment.publishes_aid() => {
            return Err(fail("deployment")("a round-robin front applies to plain deployments only".into()));
        }
        Some(_) => Some(
            crate::latency::DelayProxy::bind()
                .await
                .map_err(|e| fail("latency rig")(e.to_string()))?,
        ),
        // The replicas' round-robin front: the same proxy without a delay.
        None if deployment.front => Some(
            crate::latency::DelayProxy::bind()
                .await
                .map_err(|e| fail("round-robin front")(e.to_string()))?,
        ),
        None => None,
    };
    let any: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    let mailbox = Mailbox::start(any).await.map_err(|e| fail("mailbox")(e.to_string()))?;
    let idp = MockIdp::start(IdpConfig {
        jwks_max_age: 300,
        ..IdpConfig::default()
    })
    .await
    .map_err(|e| fail("mock IdP")(e.to_string()))?;
    let other = |prefix: &str| IdpConfig {
        kid_prefix: prefix.to_string(),
        ..IdpConfig::default()
    };
    // The second issuer is trusted as the first is and serves its JWKS with the same lifetime:
    // the cases that change keys run on it (`isolate_key_changes`).
    let idp2 = MockIdp::start(IdpConfig {
        jwks_max_age: 300,
        ..other("B-")
    })
    .await
    .map_err(|e| fail("second mock IdP")(e.to_string()))?;
    let stranger = MockIdp::start(other("C-"))
        .await
        .map_err(|e| fail("untrusted mock IdP")(e.to_string()))?;
    let dir = std::env::temp_dir().join(format!("authmd-run-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).map_err(|e| fail("database directory")(e.to_string()))?;
    let dir = TempDir(dir);
    let mut config = Config::from_table(
        &merged(wiring(), &deployment.server),
        &format!("deployments/{}.toml", deployment.name),
    )
    .map_err(|e| fail("deployment")(e.to_string()))?;
    config.listen = any;
    config.database = match deployment.database {
        crate::deployment::Database::Sqlite => dir.0.join("reference.sqlite"),
        // A database of its own on the cluster this process shares (started once, in the
        // background: initdb takes seconds).
        crate::deployment::Database::Postgres => authmd_reference_server::pg_cluster::throwaway_database()
            .await
            .map_err(fail("PostgreSQL"))?
            .into(),
    };
    config.anonymous = shape == Shape::Full;
    config.verified_email = shape == Shape::Full;
    if deployment.publishes_aid() {
        config.public_host = Some(domain.to_string());
    }
    // The outbox asks for a token only the harness holds (SEC-08).
    let outbox_token = format!("obx_{}", uuid::Uuid::new_v4().simple());
    match deployment.mail {
        MailDelivery::Smtp => config.smtp = Some(mailbox.addr().to_string()),
        MailDelivery::Outbox => {
            config.mail_outbox = Some(dir.0.join("outbox"));
            config.mail_outbox_token = Some(authmd_reference_server::config::SecretString(outbox_token.clone()));
        }
    }
    let required_amr: Vec<String> = match shape {
        Shape::Full => Vec::new(),
        Shape::Restricted => vec!["mfa".into()],
    };
    for trusted in [&idp, &idp2] {
        config.trusted_issuers.push(TrustedIssuer {
            required_amr: required_amr.clone(),
            ..TrustedIssuer::named(trusted.issuer())
        });
    }
    if let Some(pinned) = &deployment.pinned_client_id {
        config.trusted_issuers[0].client_ids = vec![pinned.clone()];
    }
    // Behind the proxy, the server names the proxy's address in every URL it hands out.
    if let Some((_, addr)) = &proxy_listener {
        config.base_url = Some(format!("http://{addr}"));
    }
    let described = config.clone();
    let server = ReferenceServer::start(config, defects.clone())
        .await
        .map_err(|e| fail("reference server")(e.to_string()))?;
    // The other replicas: one after another (each runs the migrations of the shared database),
    // under the first one's base URL, as a load balancer's instances would be.
    let mut replicas = Vec::new();
    for _ in 1..deployment.replicas.max(1) {
        let config = Config {
            base_url: Some(server.base_url().to_string()),
            ..described.clone()
        };
        let replica = ReferenceServer::start(config, defects.clone())
            .await
            .map_err(|e| fail("reference server replica")(e.to_string()))?;
        replicas.push(replica);
    }
    let instances: Vec<SocketAddr> = std::iter::once(server.addr())
        .chain(replicas.iter().map(ReferenceServer::addr))
        .collect();
    let proxy = proxy_listener.map(|(listener, _)| {
        // Behind a front, each connection goes to the next instance; otherwise all to the one.
        let upstreams = match deployment.front {
            true => instances.clone(),
            false => vec![server.addr()],
        };
        crate::latency::DelayProxy::forward_to_each(listener, upstreams, reach.one_way.unwrap_or_default())
    });
    let mut target = target_for(deployment, &described, &server);
    if !replicas.is_empty() {
        let origins = instances.iter().map(|addr| format!("http://{addr}")).collect();
        // The reference server revokes in the shared database: at once on every replica.
        target.replicas = Some(crate::target::Replicas {
            origins,
            revocation_propagation_ms: 0,
        });
    }
    target.idp.issuer = Some(idp.issuer().to_string());
    target.idp.required_amr = required_amr;
    target.idp.second = Some(crate::target::SecondIssuer {
        issuer: idp2.issuer().to_string(),
        listen: idp2.addr(),
        isolate_key_changes: true,
    });
    let mail = match deployment.mail {
        MailDelivery::Smtp => MailSource::Smtp(Arc::new(mailbox)),
        MailDelivery::Outbox => {
            let url = format!("{}/mail/{{registration_id}}.html", server.base_url().trim_end_matches('/'));
            MailSource::url_template_with_headers(url, vec![("authorization".into(), format!("Bearer {outbox_token}"))])
        }
    };
    let dns = if deployment.publishes_aid() {
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
        proxy,
        replicas,
        server,
        idp: Arc::new(idp),
        idp2: Arc::new(idp2),
        stranger: Arc::new(stranger),
        mail: Arc::new(mail),
        target,
        _dir: dir,
    })
}

/// The harness's target configuration for `deployment`, derived from the server's
/// configuration as the server describes it: the readings it follows, its oracle, its clock,
/// its TTLs, its pinned client and its pages.
fn target_for(deployment: &Deployment, config: &Config, server: &ReferenceServer) -> TargetConfig {
    let base = server.base_url().trim_end_matches('/').to_string();
    let mut target = TargetConfig::new(server.base_url());
    target.profile = deployment.profile.clone();
    for (ambiguity, reading) in config.readings() {
        target.readings.insert(ambiguity.into(), reading.into());
    }
    if config.audience_is_resource() {
        target.idp.audience = Some(format!("{base}/api"));
    }
    let (user_pointer, scopes_pointer) = config.oracle_pointers();
    target.oracle = Some(Oracle {
        path: "/api/resource".into(),
        user_pointer: user_pointer.into(),
        scopes_pointer: scopes_pointer.into(),
    });
    for (scope, method, path) in [("api.read", "GET", "/api/read"), ("api.write", "POST", "/api/write")] {
        target.probes.insert(
            scope.into(),
            Probe {
                method: method.into(),
                path: path.into(),
            },
        );
    }
    target.session = config.human_pages().map(|pages| {
        let fields = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        crate::target::SessionRecipe {
            login_url: pages.login_url.into(),
            login_fields: fields(&pages.login_fields),
            confirm_url: pages.confirm_url.into(),
            confirm_fields: fields(&pages.confirm_fields),
            reveal: pages.reveal.map(str::to_string),
        }
    });
    target.clock = ClockConfig {
        offset_header: config.test_clock.then(|| authmd_reference_server::CLOCK_OFFSET_HEADER.into()),
        wait_budget_secs: deployment.wait_budget_secs,
    };
    target.ttl = DeclaredTtls {
        registration: config.ttl.registration,
        claim_attempt: config.ttl.claim_attempt,
        otp: config.ttl.otp,
        access_token: config.ttl.access_token,
    };
    target.rate_burst = Some(RATE_BURST);
    if let Some(pinned) = &deployment.pinned_client_id {
        target.idp.client_ids = vec![pinned.clone()];
        target.idp.cimd = false;
    }
    target.idp.jwks_refetch_cooldown_secs = Some(config.ttl.jwks_refetch_cooldown);
    // The reference server ages its JWKS cache by the request's clock.
    target.idp.jwks_cache_follows_clock = true;
    target
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
