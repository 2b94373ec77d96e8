//! The engine: discovers the target, runs cases in parallel, turns the target's answers into
//! findings and verdicts. The target's answer is data; only "no response" is a harness error.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use authmd_mock_idp::{JwksFault, KeyAlg, MockIdp, Subject, TokenKind, TokenRequest};
use authmd_mock_mailbox::MailSource;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::catalogue::{Action, Case, ChallengeExpect, Condition, Expect, Level, Need, Step, split_advance};
use crate::outcome::truncate;
pub use crate::outcome::{CaseResult, Exchange, Finding, FindingKind, MailRecord, Verdict};
use crate::redact::Secrets;
use crate::target::TargetConfig;
use crate::template;
pub use crate::transport::decode_jwt;
use crate::transport::{HostPolicy, Limits, Transport};

/// What the harness learned from discovery.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Discovery {
    /// The PRM as fetched.
    pub prm: Value,
    /// The AS metadata as fetched.
    pub metadata: Value,
    /// `agent_auth.register_uri`.
    pub register_uri: Option<String>,
    /// `agent_auth.claim_uri`.
    pub claim_uri: Option<String>,
    /// `agent_auth.revocation_uri`.
    pub revocation_uri: Option<String>,
    /// Why discovery failed, if it did.
    pub error: Option<String>,
    /// Discovery failed for want of an answer (a transport error), not because of what the
    /// target answered: dependent cases are INCONCLUSIVE rather than SKIP.
    #[serde(skip)]
    pub no_answer: bool,
    /// Which profile the AS metadata speaks, by the manifests' markers.
    pub spoken: Option<crate::profile::Spoken>,
}

impl Discovery {
    fn offers(&self, identity_type: &str) -> bool {
        self.metadata["agent_auth"]["identity_types_supported"]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v == identity_type))
    }

    fn offers_assertion(&self, assertion_type: &str) -> bool {
        self.offers("identity_assertion")
            && self.metadata["agent_auth"]["identity_assertion"]["assertion_types_supported"]
                .as_array()
                .is_some_and(|a| a.iter().any(|v| v == assertion_type))
    }
}

/// A harness-side failure: the suite could not decide.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// No HTTP response.
    #[error("no response from {url}: {reason}")]
    NoResponse {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The IdP or mailbox failed.
    #[error("{0}")]
    Tooling(String),
    /// The target named a URL outside the host policy; the finding is already recorded and
    /// the case stops there with a verdict from its findings.
    #[error("{0}")]
    Refused(String),
    /// Without a clock header the case would have to wait longer than the configured budget.
    #[error(
        "needs clock.offset_header, or clock.wait_budget_secs of at least {needed} (now {budget}) to let the target's clock pass a TTL"
    )]
    BeyondWaitBudget {
        /// Seconds the case would wait.
        needed: i64,
        /// The budget.
        budget: u64,
    },
    /// The target's declared JWKS refetch cool-down is longer than the wait budget.
    #[error(
        "needs clock.wait_budget_secs of at least {needed} (now {budget}) to wait out idp.jwks_refetch_cooldown_secs after a key rotation"
    )]
    CooldownBeyondBudget {
        /// Seconds the case would wait.
        needed: u64,
        /// The budget.
        budget: u64,
    },
}

/// Everything a run shares.
pub struct Harness {
    /// Target configuration.
    pub target: TargetConfig,
    /// The mock IdP.
    pub idp: Arc<MockIdp>,
    /// A second issuer the target trusts (`idp.second`), for two-issuer cases.
    pub idp2: Option<Arc<MockIdp>>,
    /// A live issuer the target does not trust: real keys, a real JWKS, never on the list.
    pub stranger: Option<Arc<MockIdp>>,
    /// Mail source, if any.
    pub mail: Option<Arc<MailSource>>,
    /// Discovery results.
    pub discovery: Discovery,
    /// Exchanges made during discovery.
    pub discovery_exchanges: Vec<Exchange>,
    /// Secrets seen during the run (redacted in every output).
    pub secrets: Secrets,
    idp_lock: tokio::sync::RwLock<()>,
    /// Which block of loopback source addresses this run's cases use.
    source_block: u16,
    /// Spare source addresses handed out so far (spread samples).
    spare: std::sync::atomic::AtomicUsize,
    plain: Transport,
    policy: Arc<HostPolicy>,
    limits: Limits,
    ca_pem: Option<String>,
}

const ID_JAG_URN: &str = "urn:ietf:params:oauth:token-type:id-jag";

/// The host policy for a target: its own origin and every absolute URL its config names, the
/// mock IdP, and `allowed_hosts`.
fn host_policy(target: &TargetConfig, idp: &MockIdp) -> HostPolicy {
    let mut policy = HostPolicy::default();
    policy.allow_origin_of(&target.base_url);
    policy.allow_origin_of(idp.base_url());
    if let Some(issuer) = &target.idp.issuer {
        policy.allow_origin_of(issuer);
    }
    let configured = target
        .oracle
        .iter()
        .map(|o| o.path.as_str())
        .chain(target.probes.values().map(|p| p.path.as_str()))
        .chain(target.complete_url.as_deref())
        .chain(target.challenge_url.as_deref())
        .chain(target.protected_path.as_deref());
    for url in configured {
        policy.allow_origin_of(url);
    }
    for host in &target.allowed_hosts {
        policy.allow_host(host);
    }
    policy
}

impl Harness {
    /// Builds the run context and discovers the target.
    pub async fn new(
        target: TargetConfig,
        idp: Arc<MockIdp>,
        mail: Option<Arc<MailSource>>,
        ca_pem: Option<String>,
    ) -> Result<Self, HarnessError> {
        Self::with_issuers(target, idp, None, None, mail, ca_pem).await
    }

    /// [`Harness::new`] with a second trusted issuer and a live untrusted one.
    pub async fn with_issuers(
        target: TargetConfig,
        idp: Arc<MockIdp>,
        idp2: Option<Arc<MockIdp>>,
        stranger: Option<Arc<MockIdp>>,
        mail: Option<Arc<MailSource>>,
        ca_pem: Option<String>,
    ) -> Result<Self, HarnessError> {
        let secrets = Secrets::default();
        let mut policy = host_policy(&target, &idp);
        for other in idp2.iter().chain(stranger.iter()) {
            policy.allow_origin_of(other.base_url());
        }
        let policy = Arc::new(policy);
        let limits = target.limits();
        let plain = Transport::new(None, ca_pem.as_deref(), limits, policy.clone(), secrets.clone()).map_err(HarnessError::Tooling)?;
        let mut harness = Self {
            target,
            idp,
            idp2,
            stranger,
            mail,
            discovery: Discovery::default(),
            discovery_exchanges: Vec::new(),
            secrets,
            idp_lock: tokio::sync::RwLock::new(()),
            source_block: rand::random::<u16>() % 15_000,
            spare: std::sync::atomic::AtomicUsize::new(0),
            plain,
            policy,
            limits,
            ca_pem,
        };
        harness.discover().await?;
        Ok(harness)
    }

    /// Shares `secrets` with another harness of the same run (the bundled run has two).
    pub fn share_secrets(&mut self, secrets: Secrets) -> Result<(), HarnessError> {
        for s in self.secrets.all() {
            secrets.add(&s);
        }
        self.plain = Transport::new(None, self.ca_pem.as_deref(), self.limits, self.policy.clone(), secrets.clone())
            .map_err(HarnessError::Tooling)?;
        self.secrets = secrets;
        Ok(())
    }

    /// GETs a discovery document. A refused URL or no answer is recorded (the exchange and
    /// `discovery.error`); only a 200 with JSON yields a document.
    async fn get_json(&mut self, url: &str) -> Result<(Exchange, Option<Value>), HarnessError> {
        let exchange = self.plain.send("discovery", "GET", url, &[], None).await;
        let json = if exchange.status == Some(200) && exchange.error.is_none() {
            exchange.json()
        } else {
            None
        };
        self.discovery_exchanges.push(exchange.clone());
        Ok((exchange, json))
    }

    /// Records why discovery stopped; a transport failure on any hop is remembered, so
    /// dependent cases are INCONCLUSIVE (no answer) rather than SKIP (a wrong answer).
    fn discovery_failed(&mut self, why: String) {
        let transport = self
            .discovery_exchanges
            .iter()
            .filter(|e| !e.blocked)
            .find_map(|e| e.error.as_ref().map(|err| format!("{} {}: {err}", e.method, e.url)));
        let blocked = self.discovery_exchanges.iter().filter(|e| e.blocked).find_map(|e| e.error.clone());
        self.discovery.no_answer = transport.is_some();
        self.discovery.error = Some(match (transport, blocked) {
            (Some(t), _) => format!("{why} (no answer: {t})"),
            (None, Some(b)) => format!("{why} ({b}; list the host in allowed_hosts to let the harness fetch it)"),
            (None, None) => why,
        });
    }

    async fn discover(&mut self) -> Result<(), HarnessError> {
        // AUTH Step 1: a 401 from the API points at the PRM; fall back to the conventional path.
        let protected = self
            .target
            .oracle
            .as_ref()
            .map(|o| o.path.clone())
            .or_else(|| self.target.protected_path.clone())
            .unwrap_or_else(|| "/api/resource".into());
        let (first, _) = self.get_json(&self.target.url(&protected)).await?;
        let hinted = first
            .header("www-authenticate")
            .and_then(|h| parse_challenge(h).1.get("resource_metadata").cloned());
        let mut prm = None;
        if let Some(url) = hinted {
            prm = self.get_json(&url).await?.1;
        }
        if prm.is_none() {
            prm = self.get_json(&self.target.url("/.well-known/oauth-protected-resource")).await?.1;
        }
        let Some(prm) = prm else {
            self.discovery_failed("no Protected Resource Metadata at the challenge URL or the conventional path".into());
            return Ok(());
        };
        let Some(as_url) = prm["authorization_servers"].get(0).and_then(Value::as_str).map(str::to_string) else {
            self.discovery.prm = prm;
            self.discovery_failed("the PRM lists no authorization_servers".into());
            return Ok(());
        };
        // RFC 8414 §3.1: insert the well-known segment after the host (C-02).
        let metadata_url = rfc8414_url(&as_url);
        let metadata = match self.get_json(&metadata_url).await?.1 {
            Some(m) => Some(m),
            None => {
                self.get_json(&format!("{}/.well-known/oauth-authorization-server", as_url.trim_end_matches('/')))
                    .await?
                    .1
            }
        };
        self.discovery.prm = prm;
        let Some(metadata) = metadata else {
            self.discovery_failed(format!("no authorization-server metadata for `{as_url}`"));
            return Ok(());
        };
        let agent = &metadata["agent_auth"];
        self.discovery.register_uri = agent["register_uri"].as_str().map(str::to_string);
        self.discovery.claim_uri = agent["claim_uri"].as_str().map(str::to_string);
        self.discovery.revocation_uri = agent["revocation_uri"].as_str().map(str::to_string);
        if self.discovery.register_uri.is_none() {
            self.discovery.error = Some("the metadata has no agent_auth.register_uri".into());
        } else if let Some(Err(why)) = self.discovery.register_uri.as_deref().map(|u| self.policy.check(u)) {
            self.discovery.error = Some(format!(
                "agent_auth.register_uri: {why}; list the host in allowed_hosts to let the harness use it"
            ));
        }
        // Which auth.md the metadata speaks: a target of a later version is not silently
        // judged by this profile, and a document mixing versions is reported.
        if let Ok(manifest) = crate::profile::Manifest::load(&crate::repo_root(), &self.target.profile) {
            let spoken = manifest.judge(&metadata);
            // The clearer reason wins over "no register_uri".
            if spoken.speaks == "later" {
                self.discovery.error = Some(format!(
                    "the metadata speaks a later auth.md ({}), not {}: run the profile it speaks (known: {})",
                    spoken.later.join(", "),
                    manifest.name,
                    crate::profiles().join(", ")
                ));
            }
            self.discovery.spoken = Some(spoken);
        }
        self.discovery.metadata = metadata;
        Ok(())
    }

    /// The audience put in minted tokens.
    pub fn audience(&self) -> String {
        self.target.idp.audience.clone().unwrap_or_else(|| {
            self.discovery.prm["authorization_servers"]
                .get(0)
                .and_then(Value::as_str)
                .map(|s| s.trim_end_matches('/').to_string())
                .unwrap_or_else(|| self.target.base_url.clone())
        })
    }

    /// Why `case` cannot run here: INCONCLUSIVE when discovery got no answer, SKIP otherwise.
    fn unmet(&self, case: &Case) -> Option<Verdict> {
        let d = &self.discovery;
        // Discovery cases that only GET fixed paths run whatever discovery found; any step that
        // refers to a discovered document needs it.
        let needs_discovery = case.area != "discovery"
            || case.steps.iter().any(|s| {
                s.action != Action::Http || {
                    let params = serde_json::to_string(&s.params).unwrap_or_default();
                    ["{{prm", "{{meta", "{{target"].iter().any(|r| params.contains(r))
                }
            });
        if needs_discovery && let Some(e) = &d.error {
            let reason = format!("blocked: discovery failed ({e})");
            return Some(if d.no_answer {
                Verdict::Inconclusive(reason)
            } else {
                Verdict::Skip(reason)
            });
        }
        self.unmet_need(case).map(Verdict::Skip)
    }

    fn unmet_need(&self, case: &Case) -> Option<String> {
        let d = &self.discovery;
        let clock = case.steps.iter().any(|s| s.advance.is_some()) || case.needs.contains(&Need::Clock);
        if clock && self.target.clock.offset_header.is_none() {
            let budget = self.target.clock.wait_budget_secs;
            if budget == 0 {
                return Some("needs clock.offset_header, or clock.wait_budget_secs of at least the TTL it passes".into());
            }
            // Named TTLs are known before the case starts; instants the target returns are
            // checked when the step comes.
            let longest = case
                .steps
                .iter()
                .filter_map(|s| s.advance.as_deref())
                .filter_map(|a| split_advance(a).and_then(|(base, extra)| Some(self.target.ttl.named(base)? + extra)))
                .max()
                .unwrap_or(0);
            if longest > budget as i64 {
                return Some(HarnessError::BeyondWaitBudget { needed: longest, budget }.to_string());
            }
        }
        let cooldown = self.target.idp.jwks_refetch_cooldown_secs;
        if cooldown > self.target.clock.wait_budget_secs && case.steps.iter().any(|s| s.action == Action::RotateKey) {
            return Some(
                HarnessError::CooldownBeyondBudget {
                    needed: cooldown,
                    budget: self.target.clock.wait_budget_secs,
                }
                .to_string(),
            );
        }
        for need in &case.needs {
            let reason = match need {
                Need::Anonymous if !d.offers("anonymous") => {
                    "the metadata does not offer anonymous registration (agent_auth.identity_types_supported lacks `anonymous`)"
                }
                Need::AnonymousOff if d.offers("anonymous") => "the target offers anonymous registration",
                Need::VerifiedEmail if !d.offers_assertion("verified_email") => "the metadata does not offer verified_email",
                Need::VerifiedEmailOff if d.offers_assertion("verified_email") => "the target offers verified_email",
                Need::IdJag if !d.offers_assertion(ID_JAG_URN) => "the metadata does not offer ID-JAG registration",
                Need::IdJag if !self.target.idp.trusted => {
                    "the target does not trust the mock IdP (idp.trusted = false; put idp.issuer on your trust list)"
                }
                Need::Revocation if d.revocation_uri.is_none() => "the metadata advertises no revocation_uri",
                Need::Mail if self.mail.is_none() => "needs a mail source: set [mail] (smtp, directory, url_template or mailpit)",
                Need::Oracle if self.target.oracle.is_none() => "needs an identity/scope oracle: set [oracle] path and pointers",
                Need::ScopeProbes if self.target.probes.is_empty() => "needs scope probes: set [probes] (one endpoint per scope)",
                Need::RateBurst if self.target.rate_burst.is_none() => "needs rate_burst: the number of requests your limit refuses within",
                Need::Cimd if !self.target.idp.cimd => {
                    "needs idp.cimd = true: the target pins its client_ids and resolves no URL-form client_id as client metadata"
                }
                Need::JwksClock if !self.target.idp.jwks_cache_follows_clock || self.target.clock.offset_header.is_none() => {
                    "needs clock.offset_header and idp.jwks_cache_follows_clock = true (the header also ages your JWKS cache)"
                }
                Need::SecondIssuer if self.idp2.is_none() => "needs [idp.second]: a second issuer on your trust list",
                Need::UntrustedIssuer if self.stranger.is_none() => "needs an untrusted live issuer (started by `run`)",
                Need::AmrPolicy if self.target.idp.required_amr.is_empty() => {
                    "needs idp.required_amr: the amr values your trust entry requires"
                }
                _ => continue,
            };
            return Some(reason.into());
        }
        None
    }

    /// A loopback source address no case of this run uses (`n` picks one of many).
    fn spare_source(&self, n: usize) -> IpAddr {
        let slot = (self.source_block as usize + 7_500) % 15_000 * 1000 + self.spare.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + n;
        IpAddr::V4(Ipv4Addr::new(
            127,
            1 + (slot / 62_500 % 250) as u8,
            (slot / 250 % 250) as u8,
            2 + (slot % 250) as u8,
        ))
    }

    /// The level `case` gates at for this target.
    pub fn level_of(&self, case: &Case) -> Level {
        match case.must_when {
            Some(Condition::ClientIdList) if !self.target.idp.client_ids.is_empty() => Level::Must,
            _ => case.level,
        }
    }

    /// Runs one case. `index` picks its source address.
    pub async fn run_case(&self, case: &Case, index: usize) -> CaseResult {
        let started = Instant::now();
        let mut result = CaseResult::unrun(case, Verdict::Pass);
        let level = self.level_of(case);
        result.level = level;
        if let Some(verdict) = self.unmet(case) {
            result.verdict = verdict;
            return result;
        }
        let _shared;
        let _exclusive;
        if case.needs.contains(&Need::IdpExclusive) {
            _exclusive = self.idp_lock.write().await;
        } else {
            _shared = self.idp_lock.read().await;
        }
        let isolate = self.target.isolate_source_ips.unwrap_or_else(|| self.target.is_loopback());
        // 127.0.0.1 is left to everything else; cases get 127.x.y.z from a block drawn per run,
        // so a re-run within a target's rate-limit window does not inherit the last run's counts.
        let slot = self.source_block as usize * 1000 + index;
        let source = isolate.then(|| {
            IpAddr::V4(Ipv4Addr::new(
                127,
                1 + (slot / 62_500 % 250) as u8,
                (slot / 250 % 250) as u8,
                2 + (slot % 250) as u8,
            ))
        });
        let mut ctx = match CaseCtx::new(self, case, source) {
            Ok(c) => c,
            Err(e) => {
                result.verdict = Verdict::Inconclusive(e.to_string());
                return result;
            }
        };
        // A case that changes the IdP (rotation, faults) puts it back, so the keys a target has
        // cached stay valid for every later case: the case runs alone, under the write lock.
        let before = case.needs.contains(&Need::IdpExclusive).then(|| self.idp.snapshot());
        let timeout = Duration::from_secs(self.target.case_timeout_secs);
        let outcome = tokio::time::timeout(timeout, ctx.run(case)).await;
        if let Some(snapshot) = &before
            && let Err(e) = self.idp.restore(snapshot)
        {
            ctx.findings.clear();
            result.verdict = Verdict::Inconclusive(format!("harness error: the mock IdP could not be restored: {e}"));
            return result;
        }
        result.exchanges = std::mem::take(&mut ctx.exchanges);
        result.exchanges.iter_mut().for_each(Exchange::cap_for_report);
        result.mail = std::mem::take(&mut ctx.mail);
        result.mail.iter_mut().for_each(MailRecord::cap_for_report);
        result.findings = std::mem::take(&mut ctx.findings);
        result.duration_ms = started.elapsed().as_millis() as u64;
        result.verdict = match outcome {
            Err(_) => Verdict::Inconclusive(format!("timed out after {}s", timeout.as_secs())),
            Ok(Err(e @ (HarnessError::BeyondWaitBudget { .. } | HarnessError::CooldownBeyondBudget { .. }))) => {
                Verdict::Skip(e.to_string())
            }
            Ok(Err(HarnessError::Refused(_))) | Ok(Ok(())) if result.findings.is_empty() => Verdict::Pass,
            Ok(Err(HarnessError::Refused(_))) | Ok(Ok(())) => {
                let gated_reading = case.reading.as_ref().is_none_or(|r| {
                    let (amb, letter) = r.split_once('/').unwrap_or((r, ""));
                    self.target.readings.get(amb).is_none_or(|chosen| chosen == letter)
                });
                match level {
                    _ if !gated_reading => Verdict::Info,
                    Level::Must => Verdict::Fail,
                    Level::Should => Verdict::Warn,
                    Level::May | Level::Informational => Verdict::Info,
                }
            }
            Ok(Err(e)) => Verdict::Inconclusive(e.to_string()),
        };
        result
    }
}

/// Every string under `value` that is a plain-http URL to a non-loopback host, with its pointer.
fn collect_insecure_urls(value: &Value, pointer: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::String(s) => {
            if let Ok(u) = url::Url::parse(s)
                && u.scheme() == "http"
            {
                let loopback = match u.host() {
                    Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                    Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                    Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost"),
                    None => false,
                };
                if !loopback {
                    out.push((pointer.to_string(), s.clone()));
                }
            }
        }
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, v)| collect_insecure_urls(v, &format!("{pointer}/{i}"), out)),
        Value::Object(m) => m.iter().for_each(|(k, v)| {
            let k = k.replace('~', "~0").replace('/', "~1");
            collect_insecure_urls(v, &format!("{pointer}/{k}"), out)
        }),
        _ => {}
    }
}

fn rfc8414_url(issuer: &str) -> String {
    match url::Url::parse(issuer) {
        Ok(u) => {
            let path = u.path().trim_end_matches('/');
            let origin = u.origin().ascii_serialization();
            format!("{origin}/.well-known/oauth-authorization-server{path}")
        }
        Err(_) => format!("{}/.well-known/oauth-authorization-server", issuer.trim_end_matches('/')),
    }
}

/// Parses `Bearer a="b", c=d` into the scheme and its auth-params (RFC 9110 §11.2).
pub fn parse_challenge(header: &str) -> (String, BTreeMap<String, String>) {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = BTreeMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let name: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ',' && !c.is_whitespace())).collect();
        if name.is_empty() {
            break;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next_if_eq(&'=').is_none() {
            continue;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let value = if chars.next_if_eq(&'"').is_some() {
            let mut v = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => v.extend(chars.next()),
                    '"' => break,
                    c => v.push(c),
                }
            }
            v
        } else {
            std::iter::from_fn(|| chars.next_if(|c| *c != ',' && !c.is_whitespace())).collect()
        };
        params.insert(name.to_ascii_lowercase(), value);
    }
    (scheme.to_string(), params)
}

struct CaseCtx<'h> {
    h: &'h Harness,
    net: Transport,
    /// The case's own source address, when cases are isolated by address.
    source: Option<IpAddr>,
    vars: Map<String, Value>,
    offset: i64,
    started: Instant,
    exchanges: Vec<Exchange>,
    findings: Vec<Finding>,
    mail: Vec<MailRecord>,
}

/// The values a step produced: the response JSON members plus harness-side ones.
type StepVars = Map<String, Value>;

impl<'h> CaseCtx<'h> {
    fn new(h: &'h Harness, case: &Case, source: Option<IpAddr>) -> Result<Self, HarnessError> {
        let net =
            Transport::new(source, h.ca_pem.as_deref(), h.limits, h.policy.clone(), h.secrets.clone()).map_err(HarnessError::Tooling)?;
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let short = &tag[..12];
        let mut vars = Map::new();
        vars.insert(
            "identity".into(),
            json!({
                "sub": format!("sub-{}-{short}", case.id),
                "sub2": format!("sub2-{}-{short}", case.id),
                "email": format!("{}-{short}@example.com", case.id),
                "email2": format!("{}-{short}-2@example.com", case.id),
                "email_upper": format!("{}-{short}@EXAMPLE.COM", case.id.to_uppercase()),
            }),
        );
        vars.insert("meta".into(), h.discovery.metadata.clone());
        vars.insert("prm".into(), h.discovery.prm.clone());
        vars.insert(
            "target".into(),
            json!({
                "base_url": h.target.base_url,
                "audience": h.audience(),
                "resource": h.discovery.prm["resource"],
                "issuer": h.idp.issuer(),
                "issuer2": h.idp2.as_ref().map(|i| i.issuer()),
                "untrusted_issuer": h.stranger.as_ref().map(|i| i.issuer()),
                "rate_burst": h.target.rate_burst,
                "required_amr": h.target.idp.required_amr,
                "register_uri": h.discovery.register_uri,
                "claim_uri": h.discovery.claim_uri,
                "revocation_uri": h.discovery.revocation_uri,
                "oracle": h.target.oracle.as_ref().map(|o| h.target.url(&o.path)),
            }),
        );
        Ok(Self {
            h,
            net,
            source,
            vars,
            offset: 0,
            started: Instant::now(),
            exchanges: Vec::new(),
            findings: Vec::new(),
            mail: Vec::new(),
        })
    }

    /// Replaces `{{ref}}` in strings ([`template::resolve`]) against this case's values.
    fn resolve(&self, value: &Value) -> Result<Value, String> {
        template::resolve(&self.vars, value)
    }

    fn param(&self, step: &Step, name: &str) -> Result<Option<Value>, String> {
        step.params.get(name).map(|v| self.resolve(v)).transpose()
    }

    fn param_str(&self, step: &Step, name: &str) -> Result<Option<String>, String> {
        Ok(self
            .param(step, name)?
            .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
    }

    /// Seconds after the case's start that a step's `advance` puts the target's clock at.
    fn advance_to(&self, advance: &str) -> Result<i64, String> {
        let (base, extra) = split_advance(advance).ok_or_else(|| format!("`{advance}` is not `<ttl or {{{{ref}}}}>[+-N]`"))?;
        if base.starts_with("{{") {
            // An instant the target returned (e.g. `claim_token_expires`), in the target's time.
            let value = self.resolve(&Value::String(base.to_string()))?;
            let text = value.as_str().unwrap_or_default();
            let instant = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .map_err(|_| format!("`{base}` is `{value}`, not an RFC 3339 instant"))?;
            let from_now = (instant - time::OffsetDateTime::now_utc()).whole_seconds();
            return Ok(from_now + self.started.elapsed().as_secs() as i64 + extra);
        }
        let seconds = self.h.target.ttl.named(base).ok_or_else(|| format!("unknown TTL `{base}`"))?;
        Ok(seconds + extra)
    }

    fn finding(&mut self, step: &str, kind: FindingKind, expected: impl Into<String>, found: impl Into<String>) {
        self.findings.push(Finding {
            step: step.to_string(),
            kind,
            expected: expected.into(),
            found: found.into(),
        });
    }

    async fn http(
        &mut self,
        step: &str,
        method: &str,
        url: &str,
        mut headers: Vec<(String, String)>,
        body: Option<String>,
    ) -> Result<Exchange, HarnessError> {
        if self.offset != 0
            && let Some(name) = &self.h.target.clock.offset_header
        {
            headers.push((name.clone(), self.offset.to_string()));
        }
        let exchange = self.net.send(step, method, url, &headers, body).await;
        self.exchanges.push(exchange.clone());
        self.settle(&exchange)?;
        Ok(exchange)
    }

    /// An exchange with no (complete) answer cannot be judged: a refused URL is a finding about
    /// the target that ends the case; a transport error makes it INCONCLUSIVE.
    fn settle(&mut self, exchange: &Exchange) -> Result<(), HarnessError> {
        match &exchange.error {
            None => Ok(()),
            Some(why) if exchange.blocked => {
                self.finding(
                    &exchange.step,
                    FindingKind::DisallowedHost,
                    "URLs on the target's origins, the mock IdP or allowed_hosts",
                    format!("`{}`: {why}", truncate(&exchange.url)),
                );
                Err(HarnessError::Refused(why.clone()))
            }
            Some(why) => Err(HarnessError::NoResponse {
                url: exchange.url.clone(),
                reason: why.clone(),
            }),
        }
    }

    async fn post_json(&mut self, step: &str, url: &str, body: &Value) -> Result<Exchange, HarnessError> {
        self.http(
            step,
            "POST",
            url,
            vec![("content-type".into(), "application/json".into())],
            Some(body.to_string()),
        )
        .await
    }

    async fn run(&mut self, case: &Case) -> Result<(), HarnessError> {
        for (i, step) in case.steps.iter().enumerate() {
            let label = step.name.clone().unwrap_or_else(|| format!("step {}", i + 1));
            if let Some(advance) = &step.advance {
                let seconds = match self.advance_to(advance) {
                    Ok(s) => s,
                    Err(missing) => {
                        self.finding(
                            &label,
                            FindingKind::MissingInput,
                            format!("a time to advance to ({advance})"),
                            missing,
                        );
                        return Ok(());
                    }
                };
                self.offset = self.offset.max(seconds);
                if self.h.target.clock.offset_header.is_none() {
                    let budget = self.h.target.clock.wait_budget_secs;
                    if self.offset > budget as i64 {
                        return Err(HarnessError::BeyondWaitBudget {
                            needed: self.offset,
                            budget,
                        });
                    }
                    let target = Duration::from_secs(self.offset.max(0) as u64);
                    if let Some(left) = target.checked_sub(self.started.elapsed()) {
                        tokio::time::sleep(left).await;
                    }
                }
            }
            let fetches_before = self.h.idp.jwks_fetches();
            let outcome = self.step(step, &label).await?;
            match outcome {
                Ok((exchange, vars)) => {
                    // Named first, so an expectation may refer to its own step's values.
                    if let Some(name) = &step.name {
                        self.vars.insert(name.clone(), Value::Object(vars.clone()));
                    }
                    if let Some(expect) = &step.expect {
                        let fetched = self.h.idp.jwks_fetches() - fetches_before;
                        self.check(&label, expect, exchange.as_ref(), &vars, fetched);
                    }
                }
                Err(missing) => {
                    // The target's earlier answers lacked something this step needs: that is a
                    // finding about the target, and later steps cannot run meaningfully.
                    self.finding(&label, FindingKind::MissingInput, "the inputs this step needs", missing);
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn response_vars(exchange: &Exchange) -> StepVars {
        let mut vars = match exchange.json() {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        vars.insert("http_status".into(), json!(exchange.status));
        vars
    }

    fn subject(&self, spec: &Value) -> Subject {
        let identity = &self.vars["identity"];
        Subject {
            sub: spec
                .pointer("/set/sub")
                .and_then(Value::as_str)
                .or(identity["sub"].as_str())
                .unwrap_or_default()
                .to_string(),
            email: identity["email"].as_str().unwrap_or_default().to_string(),
        }
    }

    fn mint(&self, spec: Option<Value>, default_kind: TokenKind) -> Result<(String, StepVars), String> {
        let mut spec = spec.unwrap_or_else(|| json!({}));
        if spec.get("kind").is_none() {
            spec["kind"] = serde_json::to_value(default_kind).map_err(|e| e.to_string())?;
        }
        // The audience the target expects unless the case says otherwise.
        let aud = self.h.audience();
        if spec.pointer("/set/aud").is_none() && !spec["remove"].as_array().is_some_and(|r| r.iter().any(|v| v == "aud")) {
            if spec.get("set").is_none() {
                spec["set"] = json!({});
            }
            spec["set"]["aud"] = json!(aud);
        }
        // A target that follows C-20 reading B (BCL: `exp` required) gets logout tokens with an
        // `exp`; the auth.md examples omit it, and reading A is the default.
        let exp_required = self.h.target.readings.get("C-20").is_some_and(|r| r == "B");
        if exp_required
            && spec["kind"] == json!(TokenKind::Logout)
            && spec.pointer("/set/exp").is_none()
            && !spec["remove"].as_array().is_some_and(|r| r.iter().any(|v| v == "exp"))
        {
            let now = time::OffsetDateTime::now_utc().unix_timestamp() + self.offset;
            spec["set"]["exp"] = json!(now + 300);
        }
        // A case that moved the target's clock mints on that clock too, or every token would
        // look expired (or issued in the past) to the target.
        if self.offset != 0 {
            let now = time::OffsetDateTime::now_utc().unix_timestamp() + self.offset;
            for (claim, value) in [("iat", now), ("exp", now + 300)] {
                if spec.pointer(&format!("/set/{claim}")).is_none()
                    && !spec["remove"].as_array().is_some_and(|r| r.iter().any(|v| v == claim))
                {
                    spec["set"][claim] = json!(value);
                }
            }
        }
        // `by` picks the minting IdP: its keys sign, and its issuer is the default `iss`.
        let by = spec.as_object_mut().and_then(|m| m.remove("by"));
        let idp = match by.as_ref().and_then(Value::as_str) {
            None | Some("primary") => &self.h.idp,
            Some("second") => self.h.idp2.as_ref().ok_or("no second issuer (idp.second)")?,
            Some("untrusted") => self.h.stranger.as_ref().ok_or("no untrusted issuer")?,
            Some(other) => return Err(format!("token spec: `by = \"{other}\"` is not primary, second or untrusted")),
        };
        // A target that pins its client_ids gets the first of them unless the case says otherwise.
        let primary = matches!(by.as_ref().and_then(Value::as_str), None | Some("primary"));
        if let Some(pinned) = self.h.target.idp.client_ids.first()
            && primary
            && spec["kind"] == json!(TokenKind::IdJag)
            && spec.pointer("/set/client_id").is_none()
            && !spec["remove"].as_array().is_some_and(|r| r.iter().any(|v| v == "client_id"))
        {
            spec["set"]["client_id"] = json!(pinned);
        }
        let request: TokenRequest = serde_json::from_value(spec.clone()).map_err(|e| format!("bad token spec: {e}"))?;
        let minted = idp.mint(&request, &self.subject(&spec)).map_err(|e| e.to_string())?;
        // A minted token is a bearer credential; reports show its decoded header and claims.
        self.h.secrets.add(&minted.token);
        let mut vars = Map::new();
        vars.insert("token".into(), json!(minted.token));
        vars.insert("jti".into(), minted.claims.get("jti").cloned().unwrap_or(Value::Null));
        vars.insert("claims".into(), minted.claims.clone());
        Ok((minted.token, vars))
    }

    /// A target may refuse to refetch its JWKS for a while after a fetch (a declared cool-down);
    /// a token signed by a new key would then be refused for a reason the case is not about.
    /// Waits, in real time, until the cool-down since the IdP last served its JWKS has passed.
    async fn wait_out_refetch_cooldown(&self) -> Result<(), HarnessError> {
        let cooldown = self.h.target.idp.jwks_refetch_cooldown_secs;
        if cooldown == 0 {
            return Ok(());
        }
        let budget = self.h.target.clock.wait_budget_secs;
        if cooldown > budget {
            return Err(HarnessError::CooldownBeyondBudget { needed: cooldown, budget });
        }
        let last = self
            .h
            .idp
            .requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/.well-known/jwks.json"))
            .map(|r| r.at)
            .max();
        if let Some(last) = last {
            let until = last + Duration::from_secs(cooldown) + Duration::from_millis(100);
            if let Ok(left) = until.duration_since(std::time::SystemTime::now()) {
                tokio::time::sleep(left).await;
            }
        }
        Ok(())
    }

    /// The registration this case is about: the latest `registration_id` any step returned.
    /// Mail sources that file mail by registration (a URL template, file names) need it.
    fn registration_id(&self) -> String {
        self.vars
            .values()
            .rev()
            .find_map(|v| v.get("registration_id").and_then(Value::as_str))
            .unwrap_or_default()
            .to_string()
    }

    fn register_uri(&self) -> Result<String, String> {
        self.h.discovery.register_uri.clone().ok_or_else(|| "no register_uri".into())
    }

    fn claim_uri(&self) -> Result<String, String> {
        self.h
            .discovery
            .claim_uri
            .clone()
            .ok_or_else(|| "no claim_uri in the metadata".into())
    }

    fn complete_uri(&self) -> Result<String, String> {
        Ok(self
            .h
            .target
            .complete_url
            .clone()
            .unwrap_or(format!("{}/complete", self.claim_uri()?)))
    }

    fn challenge_uri(&self) -> Result<String, String> {
        Ok(self
            .h
            .target
            .challenge_url
            .clone()
            .unwrap_or(format!("{}/attempt/challenge", self.claim_uri()?)))
    }

    /// Runs one step. Outer `Err`: harness error. Inner `Err`: missing input (a finding).
    async fn step(&mut self, step: &Step, label: &str) -> Result<Result<(Option<Exchange>, StepVars), String>, HarnessError> {
        macro_rules! need {
            ($e:expr) => {
                match $e {
                    Ok(v) => v,
                    Err(e) => return Ok(Err(e)),
                }
            };
        }
        let exchange = match step.action {
            Action::Http => {
                let method = need!(self.param_str(step, "method")).unwrap_or_else(|| "GET".into());
                let url = need!(need!(self.param_str(step, "url")).ok_or_else(|| "no url".to_string()));
                let url = self.h.target.url(&url);
                let mut headers: Vec<(String, String)> = match need!(self.param(step, "headers")) {
                    Some(Value::Object(m)) => m
                        .into_iter()
                        .map(|(k, v)| (k, v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
                        .collect(),
                    _ => Vec::new(),
                };
                if let Some(credential) = need!(self.param_str(step, "credential")) {
                    headers.push(("authorization".into(), format!("Bearer {credential}")));
                }
                let body = match (need!(self.param(step, "json")), need!(self.param_str(step, "body"))) {
                    (Some(json), _) => {
                        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
                            headers.push(("content-type".into(), "application/json".into()));
                        }
                        Some(json.to_string())
                    }
                    (None, body) => body,
                };
                self.http(label, &method, &url, headers, body).await?
            }
            Action::RegisterAnonymous => {
                let credential = need!(self.param_str(step, "credential")).unwrap_or_else(|| "api_key".into());
                let body = need!(self.param(step, "body"))
                    .unwrap_or_else(|| json!({ "type": "anonymous", "requested_credential_type": credential }));
                let uri = need!(self.register_uri());
                self.post_json(label, &uri, &body).await?
            }
            Action::RegisterEmail => {
                let email = need!(self.param_str(step, "email"))
                    .unwrap_or_else(|| self.vars["identity"]["email"].as_str().unwrap_or_default().to_string());
                let credential = need!(self.param_str(step, "credential")).unwrap_or_else(|| "access_token".into());
                let body = json!({ "type": "identity_assertion", "assertion_type": "verified_email", "assertion": email, "requested_credential_type": credential });
                let uri = need!(self.register_uri());
                self.post_json(label, &uri, &body).await?
            }
            Action::Mint => {
                let (_, vars) = need!(self.mint(need!(self.param(step, "token")), TokenKind::IdJag));
                return Ok(Ok((None, vars)));
            }
            Action::RegisterIdJag => {
                let (assertion, mut minted) = match need!(self.param_str(step, "assertion")) {
                    Some(a) => (a, Map::new()),
                    None => need!(self.mint(need!(self.param(step, "token")), TokenKind::IdJag)),
                };
                let credential = need!(self.param_str(step, "credential")).unwrap_or_else(|| "access_token".into());
                let body = json!({ "type": "identity_assertion", "assertion_type": ID_JAG_URN, "assertion": assertion, "requested_credential_type": credential });
                let uri = need!(self.register_uri());
                let exchange = self.post_json(label, &uri, &body).await?;
                let mut vars = Self::response_vars(&exchange);
                vars.append(&mut minted);
                vars.insert("assertion".into(), json!(assertion));
                return Ok(Ok((Some(exchange), vars)));
            }
            Action::ParallelRegisterIdJag => {
                let count = need!(self.param(step, "count")).and_then(|v| v.as_u64()).unwrap_or(10) as usize;
                let (token, _) = need!(self.mint(need!(self.param(step, "token")), TokenKind::IdJag));
                let credential = need!(self.param_str(step, "credential")).unwrap_or_else(|| "access_token".into());
                let body = json!({ "type": "identity_assertion", "assertion_type": ID_JAG_URN, "assertion": token, "requested_credential_type": credential }).to_string();
                let uri = need!(self.register_uri());
                let headers = vec![("content-type".to_string(), "application/json".to_string())];
                let net = self.net.clone();
                let sends = (0..count).map(|_| net.send(label, "POST", &uri, &headers, Some(body.clone())));
                let results = join_vec(sends.map(Box::pin).collect()).await;
                let mut statuses = Vec::new();
                for exchange in results {
                    statuses.push(json!(exchange.status));
                    self.exchanges.push(exchange.clone());
                    self.settle(&exchange)?;
                }
                let mut vars = Map::new();
                vars.insert("statuses".into(), Value::Array(statuses));
                return Ok(Ok((None, vars)));
            }
            Action::Api => {
                let endpoint = need!(self.param_str(step, "endpoint")).unwrap_or_else(|| "oracle".into());
                let (method, url) = if endpoint == "oracle" {
                    let oracle = need!(self.h.target.oracle.as_ref().ok_or_else(|| "no oracle configured".to_string()));
                    ("GET".to_string(), self.h.target.url(&oracle.path))
                } else {
                    let probe = need!(
                        self.h
                            .target
                            .probes
                            .get(&endpoint)
                            .ok_or_else(|| format!("no probe for scope `{endpoint}`"))
                    );
                    (probe.method.clone(), self.h.target.url(&probe.path))
                };
                let credential = need!(self.param_str(step, "credential"));
                let scheme = need!(self.param_str(step, "scheme")).unwrap_or_else(|| "Bearer".into());
                let in_query = need!(self.param(step, "query_token")).is_some_and(|v| v == json!(true));
                let mut headers = Vec::new();
                let mut url = url;
                if let Some(c) = &credential {
                    if in_query {
                        url = format!("{url}{}access_token={c}", if url.contains('?') { '&' } else { '?' });
                    } else {
                        headers.push(("authorization".to_string(), format!("{scheme} {c}")));
                    }
                }
                let exchange = self.http(label, &method, &url, headers, None).await?;
                let mut vars = Self::response_vars(&exchange);
                // Cases read the oracle only through the configured pointers, as `user_id` and
                // `scopes`, whatever shape the target's echo has; absent or null stays absent.
                vars.remove("user_id");
                vars.remove("scopes");
                if let (Some(oracle), Some(body)) = (&self.h.target.oracle, exchange.json()) {
                    for (name, pointer) in [("user_id", &oracle.user_pointer), ("scopes", &oracle.scopes_pointer)] {
                        if let Some(value) = body.pointer(pointer).filter(|v| !v.is_null()) {
                            vars.insert(name.into(), value.clone());
                        }
                    }
                }
                return Ok(Ok((Some(exchange), vars)));
            }
            Action::Claim => {
                let claim_token = need!(self.param(step, "claim_token")).unwrap_or(Value::Null);
                let email = need!(self.param(step, "email")).unwrap_or_else(|| self.vars["identity"]["email"].clone());
                let uri = need!(self.claim_uri());
                self.post_json(label, &uri, &json!({ "claim_token": claim_token, "email": email }))
                    .await?
            }
            Action::ReadMail | Action::Otp => {
                let email = need!(self.param_str(step, "email"))
                    .unwrap_or_else(|| self.vars["identity"]["email"].as_str().unwrap_or_default().to_string());
                let registration_id = need!(self.param_str(step, "registration_id")).unwrap_or_else(|| self.registration_id());
                let Some(source) = self.h.mail.clone() else {
                    return Ok(Err("no mail source".into()));
                };
                let message = match source
                    .next_message(self.h.plain.client(), &email, &registration_id, Duration::from_secs(5))
                    .await
                {
                    Ok(m) => m,
                    Err(e) => {
                        self.finding(label, FindingKind::NoMail, format!("a claim mail to `{email}`"), e.to_string());
                        return Ok(Err("no claim mail".into()));
                    }
                };
                self.mail.push(MailRecord {
                    step: label.to_string(),
                    to: message.to.clone(),
                    subject: message.subject.clone(),
                    text: message.text.clone(),
                });
                let link = match authmd_mock_mailbox::extract_claim_link(&message, self.h.target.link_pattern.as_deref()) {
                    Ok(l) => l,
                    Err(e) => {
                        self.finding(
                            label,
                            FindingKind::NoMail,
                            "a claim link carrying a claim_attempt_token",
                            e.to_string(),
                        );
                        return Ok(Err("no claim link".into()));
                    }
                };
                self.h.secrets.add(&link.token);
                let mut vars = Map::new();
                vars.insert("link".into(), json!(link.url));
                vars.insert("attempt_token".into(), json!(link.token));
                vars.insert("to".into(), json!(message.to));
                if step.action == Action::ReadMail {
                    return Ok(Ok((None, vars)));
                }
                // OTP(reg): open the page as a person would, then press its button.
                self.http(label, "GET", &link.url, Vec::new(), None).await?;
                let uri = need!(self.challenge_uri());
                let exchange = self.post_json(label, &uri, &json!({ "claim_attempt_token": link.token })).await?;
                let body = exchange.json().unwrap_or(Value::Null);
                let mut out = Self::response_vars(&exchange);
                out.append(&mut vars);
                match body["challenge"].as_str() {
                    Some(otp) if exchange.status == Some(200) => {
                        self.h.secrets.add(otp);
                        out.insert("otp".into(), json!(otp));
                    }
                    _ => {
                        self.finding(
                            label,
                            FindingKind::UnexpectedStatus,
                            "200 with a `challenge` OTP",
                            exchange.status_and_body(),
                        );
                        return Ok(Err("no OTP".into()));
                    }
                }
                return Ok(Ok((Some(exchange), out)));
            }
            Action::NoMail => {
                let email = need!(self.param_str(step, "email"))
                    .unwrap_or_else(|| self.vars["identity"]["email"].as_str().unwrap_or_default().to_string());
                let within = need!(self.param(step, "within_ms")).and_then(|v| v.as_u64()).unwrap_or(300);
                let Some(source) = self.h.mail.clone() else {
                    return Ok(Err("no mail source".into()));
                };
                if let Ok(m) = source
                    .next_message(
                        self.h.plain.client(),
                        &email,
                        &self.registration_id(),
                        Duration::from_millis(within),
                    )
                    .await
                {
                    self.finding(
                        label,
                        FindingKind::UnexpectedMail,
                        format!("no new mail to `{email}`"),
                        format!("a message: {}", m.subject),
                    );
                }
                return Ok(Ok((None, Map::new())));
            }
            Action::OpenLink => {
                let link = need!(need!(self.param_str(step, "link")).ok_or_else(|| "no link".to_string()));
                self.http(label, "GET", &link, Vec::new(), None).await?
            }
            Action::Challenge => {
                let token = need!(self.param(step, "attempt_token")).unwrap_or(Value::Null);
                let uri = need!(self.challenge_uri());
                let exchange = self.post_json(label, &uri, &json!({ "claim_attempt_token": token })).await?;
                let mut vars = Self::response_vars(&exchange);
                if let Some(otp) = vars.get("challenge").and_then(Value::as_str) {
                    self.h.secrets.add(otp);
                    vars.insert("otp".into(), json!(otp));
                }
                return Ok(Ok((Some(exchange), vars)));
            }
            Action::Complete => {
                let claim_token = need!(self.param(step, "claim_token")).unwrap_or(Value::Null);
                let otp = need!(self.param(step, "otp")).unwrap_or(Value::Null);
                let uri = need!(self.complete_uri());
                self.post_json(label, &uri, &json!({ "claim_token": claim_token, "otp": otp }))
                    .await?
            }
            Action::Revoke => {
                let (token, mut minted) = need!(self.mint(need!(self.param(step, "token")), TokenKind::Logout));
                let content_type = need!(self.param_str(step, "content_type")).unwrap_or_else(|| "application/logout+jwt".into());
                let body = need!(self.param_str(step, "body")).unwrap_or(token);
                let uri = need!(
                    self.h
                        .discovery
                        .revocation_uri
                        .clone()
                        .ok_or_else(|| "no revocation_uri".to_string())
                );
                let exchange = self
                    .http(label, "POST", &uri, vec![("content-type".into(), content_type)], Some(body))
                    .await?;
                let mut vars = Self::response_vars(&exchange);
                vars.append(&mut minted);
                return Ok(Ok((Some(exchange), vars)));
            }
            Action::RotateKey => {
                let alg = need!(self.param_str(step, "alg"))
                    .and_then(|a| KeyAlg::parse(&a))
                    .unwrap_or_default();
                let kid = self.h.idp.rotate(alg).map_err(|e| HarnessError::Tooling(e.to_string()))?;
                self.wait_out_refetch_cooldown().await?;
                let mut vars = Map::new();
                vars.insert("kid".into(), json!(kid));
                return Ok(Ok((None, vars)));
            }
            Action::JwksFault => {
                let fault = need!(self.param_str(step, "fault")).unwrap_or_else(|| "none".into());
                let fault = match fault.as_str() {
                    "none" => JwksFault::None,
                    "server-error" => JwksFault::ServerError,
                    "invalid-json" => JwksFault::InvalidJson,
                    "empty-key-set" => JwksFault::EmptyKeySet,
                    "wrong-content-type" => JwksFault::WrongContentType,
                    other => match other.strip_prefix("slow:").and_then(|ms| ms.parse().ok()) {
                        Some(ms) => JwksFault::Slow(ms),
                        None => return Ok(Err(format!("unknown fault `{other}`"))),
                    },
                };
                self.h.idp.set_fault(fault);
                return Ok(Ok((None, Map::new())));
            }
            Action::JwksMaxAge => {
                let seconds = need!(self.param(step, "seconds"))
                    .and_then(|v| v.as_u64())
                    .ok_or_else(|| HarnessError::Tooling("jwks-max-age needs `seconds`".into()))?;
                self.h.idp.set_jwks_max_age(seconds);
                return Ok(Ok((None, Map::new())));
            }
            Action::Sample => {
                let count = need!(self.param(step, "count")).and_then(|v| v.as_u64()).unwrap_or(20) as usize;
                let field = need!(self.param_str(step, "field")).unwrap_or_else(|| "/credential".into());
                let of = need!(self.param_str(step, "of")).unwrap_or_else(|| "register-anonymous".into());
                let inner_action: Action = need!(serde_json::from_value(json!(of)).map_err(|_| format!("unknown action `{of}`")));
                let inner = Step {
                    name: None,
                    action: inner_action,
                    advance: None,
                    params: step
                        .params
                        .clone()
                        .into_iter()
                        .filter(|(k, _)| !["of", "count", "field", "spread"].contains(&k.as_str()))
                        .collect(),
                    expect: None,
                };
                // `spread`: each request from its own loopback source address, so a per-address
                // rate limit (conforming, RATE-01) does not cut the sample short.
                let spread = need!(self.param(step, "spread")).is_some_and(|v| v == json!(true)) && self.source.is_some();
                let home = self.net.clone();
                let mut values = Vec::new();
                for i in 0..count {
                    if spread {
                        let ip = self.h.spare_source(i);
                        self.net = Transport::new(
                            Some(ip),
                            self.h.ca_pem.as_deref(),
                            self.h.limits,
                            self.h.policy.clone(),
                            self.h.secrets.clone(),
                        )
                        .map_err(HarnessError::Tooling)?;
                    }
                    let outcome = Box::pin(self.step(&inner, label)).await;
                    self.net = home.clone();
                    let (_, vars) = need!(outcome?);
                    let rate_limited = vars.get("http_status") == Some(&json!(429));
                    let value = Value::Object(vars).pointer(&field).cloned();
                    // A rate limit is conforming (RATE-01): a sample of values the 429 does not
                    // carry ends there and is judged on what it collected, never on the nulls.
                    if rate_limited && value.is_none() {
                        if values.len() < 2 {
                            return Err(HarnessError::NoResponse {
                                url: self.register_uri().unwrap_or_default(),
                                reason: format!(
                                    "rate-limited (429) after {} sample(s); the case needs at least 2: raise the per-address limit for the test",
                                    values.len()
                                ),
                            });
                        }
                        break;
                    }
                    values.push(value.unwrap_or(Value::Null));
                }
                let mut vars = Map::new();
                vars.insert("values".into(), Value::Array(values));
                return Ok(Ok((None, vars)));
            }
        };
        let vars = Self::response_vars(&exchange);
        Ok(Ok((Some(exchange), vars)))
    }

    fn check(&mut self, label: &str, expect: &Expect, exchange: Option<&Exchange>, vars: &StepVars, jwks_fetched: usize) {
        let body = Value::Object(vars.clone());
        let resolve = |ctx: &Self, v: &Value| ctx.resolve(v).unwrap_or_else(|e| json!(format!("<unresolved: {e}>")));
        if let Some(status) = &expect.status {
            let found = exchange.and_then(|e| e.status);
            if !status_matches(status, found) {
                let found_text = exchange.map(Exchange::status_and_body).unwrap_or_default();
                self.finding(label, FindingKind::UnexpectedStatus, format!("status {}", show(status)), found_text);
            }
        }
        if let Some(status) = &expect.status_not {
            let found = exchange.and_then(|e| e.status);
            if status_matches(status, found) {
                self.finding(
                    label,
                    FindingKind::UnexpectedStatus,
                    format!("any status but {}", show(status)),
                    exchange.map(Exchange::status_and_body).unwrap_or_default(),
                );
            }
        }
        if let Some(codes) = &expect.error {
            let accepted: Vec<String> = match codes {
                Value::Array(a) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
                v => vec![v.as_str().unwrap_or_default().to_string()],
            };
            let found = body.get("error").and_then(Value::as_str);
            if !found.is_some_and(|f| accepted.iter().any(|a| a == f)) {
                self.finding(
                    label,
                    FindingKind::UnexpectedErrorCode,
                    format!(
                        "`error` to be {}",
                        accepted.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(" or ")
                    ),
                    found.map(|f| format!("`{f}`")).unwrap_or_else(|| "no `error` member".into()),
                );
            }
        }
        for (pointer, want) in &expect.json {
            let want = resolve(self, want);
            match body.pointer(pointer) {
                Some(v) if *v == want => {}
                Some(v) => self.finding(label, FindingKind::UnexpectedValue, format!("`{pointer}` = {want}"), v.to_string()),
                None => self.finding(label, FindingKind::MissingMember, format!("`{pointer}` = {want}"), "absent"),
            }
        }
        for (pointer, other) in &expect.json_not {
            let other = resolve(self, other);
            if let Some(v) = body.pointer(pointer)
                && *v == other
            {
                self.finding(
                    label,
                    FindingKind::UnexpectedValue,
                    format!("`{pointer}` to differ from {other}"),
                    v.to_string(),
                );
            }
        }
        for pointer in &expect.present {
            if body.pointer(pointer).is_none_or(Value::is_null) {
                self.finding(label, FindingKind::MissingMember, format!("`{pointer}` present"), "absent or null");
            }
        }
        for pointer in &expect.absent {
            if let Some(v) = body.pointer(pointer) {
                self.finding(
                    label,
                    FindingKind::UnexpectedMember,
                    format!("no `{pointer}`"),
                    truncate(&v.to_string()),
                );
            }
        }
        for (pointer, allowed) in &expect.subset {
            let allowed = resolve(self, allowed);
            let allowed: Vec<&Value> = allowed.as_array().map(|a| a.iter().collect()).unwrap_or_default();
            match body.pointer(pointer).and_then(Value::as_array) {
                Some(items) if items.iter().all(|i| allowed.contains(&i)) => {}
                Some(items) => self.finding(
                    label,
                    FindingKind::NotSubset,
                    format!("`{pointer}` ⊆ {}", json!(allowed)),
                    json!(items).to_string(),
                ),
                None => self.finding(label, FindingKind::MissingMember, format!("`{pointer}` as an array"), "absent"),
            }
        }
        for (pointer, want) in &expect.same_set {
            let want = resolve(self, want);
            match (body.pointer(pointer).and_then(as_set), as_set(&want)) {
                (Some(found), Some(wanted)) if found == wanted => {}
                (Some(_), _) => self.finding(
                    label,
                    FindingKind::UnexpectedValue,
                    format!("`{pointer}` with the members of {want} in any order"),
                    body.pointer(pointer).map(Value::to_string).unwrap_or_default(),
                ),
                (None, _) => self.finding(
                    label,
                    FindingKind::MissingMember,
                    format!("`{pointer}` as a set equal to {want}"),
                    body.pointer(pointer).map(Value::to_string).unwrap_or_else(|| "absent".into()),
                ),
            }
        }
        let now = time::OffsetDateTime::now_utc() + time::Duration::seconds(self.offset);
        for pointer in &expect.future {
            let v = body.pointer(pointer).and_then(Value::as_str).unwrap_or_default();
            match time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339) {
                Ok(t) if t > now => {}
                _ => self.finding(
                    label,
                    FindingKind::NotFuture,
                    format!("`{pointer}` a future ISO-8601 instant"),
                    format!("`{v}`"),
                ),
            }
        }
        for pointer in &expect.absolute_url {
            let v = body.pointer(pointer).and_then(Value::as_str).unwrap_or_default();
            if !url::Url::parse(v).map(|u| u.scheme().starts_with("http")).unwrap_or(false) {
                self.finding(
                    label,
                    FindingKind::NotAbsoluteUrl,
                    format!("`{pointer}` an absolute URL"),
                    format!("`{v}`"),
                );
            }
        }
        if let Some(other) = &expect.same_shape_as {
            let shape = |v: &Value| -> (Value, Vec<String>) {
                let keys = v.as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
                (v.get("http_status").cloned().unwrap_or(Value::Null), keys)
            };
            let theirs = self.vars.get(other).map(shape);
            let ours = shape(&body);
            if theirs.as_ref() != Some(&ours) {
                let show = |(status, keys): &(Value, Vec<String>)| format!("{status} with {{{}}}", keys.join(", "));
                self.finding(
                    label,
                    FindingKind::ShapeDiffers,
                    format!(
                        "the same status and members as `{other}`: {}",
                        theirs.as_ref().map(show).unwrap_or_else(|| "(no such step)".into())
                    ),
                    show(&ours),
                );
            }
        }
        if !expect.idp_fetched.is_empty() {
            let paths: BTreeSet<String> = self.h.idp.requests().into_iter().map(|r| r.path).collect();
            for wanted in &expect.idp_fetched {
                let wanted = resolve(self, &json!(wanted));
                let wanted = wanted.as_str().unwrap_or_default();
                let path = url::Url::parse(wanted)
                    .map(|u| u.path().to_string())
                    .unwrap_or_else(|_| wanted.to_string());
                if !paths.contains(&path) {
                    self.finding(
                        label,
                        FindingKind::NotFetched,
                        format!("the target fetched `{wanted}` from the IdP"),
                        "no request for it in the IdP's log",
                    );
                }
            }
        }
        if expect.secure_urls {
            let mut insecure = Vec::new();
            collect_insecure_urls(&body, "", &mut insecure);
            for (pointer, url) in insecure {
                self.finding(
                    label,
                    FindingKind::InsecureUrl,
                    format!("`{pointer}` an https URL (plain http only on loopback)"),
                    format!("`{url}`"),
                );
            }
        }
        for (name, needle) in &expect.header {
            let found = exchange.and_then(|e| e.header(name));
            if !found.is_some_and(|f| f.to_ascii_lowercase().contains(&needle.to_ascii_lowercase())) {
                self.finding(
                    label,
                    FindingKind::MissingHeader,
                    format!("`{name}` containing `{needle}`"),
                    found.map(|f| format!("`{f}`")).unwrap_or_else(|| "absent".into()),
                );
            }
        }
        for name in &expect.header_absent {
            if let Some(f) = exchange.and_then(|e| e.header(name)) {
                self.finding(label, FindingKind::UnexpectedHeader, format!("no `{name}`"), format!("`{f}`"));
            }
        }
        if let Some(ch) = &expect.challenge {
            self.check_challenge(label, ch, exchange);
        }
        for needle in &expect.body_excludes {
            let needle = resolve(self, &json!(needle));
            let needle = needle.as_str().unwrap_or_default();
            if !needle.is_empty() && exchange.is_some_and(|e| e.response_body.contains(needle)) {
                self.finding(
                    label,
                    FindingKind::SecretDisclosed,
                    "the secret absent from the response body",
                    "present",
                );
            }
        }
        if !expect.counts.is_empty() {
            let statuses: Vec<u16> = vars
                .get("statuses")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|v| v.as_u64().map(|s| s as u16)).collect())
                .unwrap_or_default();
            for (class, want) in &expect.counts {
                let n = statuses.iter().filter(|s| status_matches(&json!(class), Some(**s))).count() as u32;
                if n != *want {
                    self.finding(
                        label,
                        FindingKind::WrongCount,
                        format!("{want} answers with status {class}"),
                        format!("{n} (all: {statuses:?})"),
                    );
                }
            }
        }
        let values: Vec<String> = vars
            .get("values")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        if expect.unique {
            let distinct: BTreeSet<&String> = values.iter().collect();
            if distinct.len() != values.len() || values.is_empty() {
                self.finding(
                    label,
                    FindingKind::NotUnique,
                    format!("{} distinct values", values.len()),
                    format!("{} distinct", distinct.len()),
                );
            }
        }
        if let Some(bits) = expect.min_entropy_bits {
            let estimate = apparent_entropy(&values);
            if estimate < f64::from(bits) {
                self.finding(
                    label,
                    FindingKind::LowEntropy,
                    format!("at least {bits} bits of apparent entropy"),
                    format!("{estimate:.0} bits"),
                );
            }
        }
        if let Some(pattern) = &expect.matches
            && let Ok(re) = regex::Regex::new(pattern)
        {
            for v in &values {
                if !re.is_match(v) {
                    self.finding(
                        label,
                        FindingKind::PatternMismatch,
                        format!("every value matching `{pattern}`"),
                        "a value that does not".to_string(),
                    );
                    break;
                }
            }
        }
        if let Some(min) = expect.jwks_fetches_min
            && jwks_fetched < min
        {
            self.finding(
                label,
                FindingKind::JwksFetches,
                format!("at least {min} JWKS fetch(es)"),
                jwks_fetched.to_string(),
            );
        }
        if let Some(max) = expect.jwks_fetches_max
            && jwks_fetched > max
        {
            self.finding(
                label,
                FindingKind::JwksFetches,
                format!("at most {max} JWKS fetch(es)"),
                jwks_fetched.to_string(),
            );
        }
    }

    fn check_challenge(&mut self, label: &str, ch: &ChallengeExpect, exchange: Option<&Exchange>) {
        let Some(header) = exchange.and_then(|e| e.header("www-authenticate")) else {
            self.finding(label, FindingKind::BadChallenge, "a `WWW-Authenticate: Bearer` challenge", "absent");
            return;
        };
        let (scheme, params) = parse_challenge(header);
        if !scheme.eq_ignore_ascii_case("bearer") {
            self.finding(label, FindingKind::BadChallenge, "scheme `Bearer`", format!("`{scheme}`"));
        }
        if ch.resource_metadata && params.get("resource_metadata").is_none_or(|u| url::Url::parse(u).is_err()) {
            self.finding(
                label,
                FindingKind::BadChallenge,
                "`resource_metadata` as an absolute URL",
                format!("`{header}`"),
            );
        }
        match ch.error.as_deref() {
            Some("absent") if params.contains_key("error") => {
                self.finding(label, FindingKind::BadChallenge, "no `error` parameter", format!("`{header}`"))
            }
            Some(e) if e != "absent" && params.get("error").map(String::as_str) != Some(e) => {
                self.finding(label, FindingKind::BadChallenge, format!("`error=\"{e}\"`"), format!("`{header}`"))
            }
            _ => {}
        }
    }
}

/// An array's members, or a space-delimited string's words, as a set (`None` for other values).
fn as_set(v: &Value) -> Option<BTreeSet<String>> {
    match v {
        Value::Array(a) => Some(
            a.iter()
                .map(|x| x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string()))
                .collect(),
        ),
        Value::String(s) => Some(s.split_whitespace().map(str::to_string).collect()),
        _ => None,
    }
}

fn show(v: &Value) -> String {
    v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())
}

fn status_matches(spec: &Value, found: Option<u16>) -> bool {
    let Some(found) = found else { return false };
    match spec {
        Value::Number(n) => n.as_u64() == Some(u64::from(found)),
        Value::String(s) if s.len() == 3 && s.ends_with("xx") => s.as_bytes()[0] == b'0' + (found / 100) as u8,
        Value::String(s) => s.parse::<u16>().ok() == Some(found),
        Value::Array(a) => a.iter().any(|v| status_matches(v, Some(found))),
        _ => false,
    }
}

/// Length after the common prefix × log2 of the apparent alphabet.
fn apparent_entropy(values: &[String]) -> f64 {
    let Some(first) = values.first() else {
        return 0.0;
    };
    let prefix = values.iter().fold(first.len(), |n, v| {
        first.bytes().zip(v.bytes()).take(n).take_while(|(a, b)| a == b).count()
    });
    values
        .iter()
        .map(|v| {
            // Bytes, not `str` slicing: a target's value may put a multi-byte character across
            // the prefix boundary.
            let rest = &v.as_bytes()[prefix.min(v.len())..];
            let alphabet = if rest.iter().all(|b| b.is_ascii_digit()) {
                10.0
            } else if rest.iter().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
                16.0
            } else if rest.iter().all(|b| b.is_ascii_alphanumeric()) {
                62.0
            } else {
                64.0
            };
            rest.len() as f64 * f64::log2(alphabet)
        })
        .fold(f64::INFINITY, f64::min)
}

/// Polls every future concurrently on the current task (all of them are I/O-bound requests).
async fn join_vec<F: std::future::Future + Unpin>(mut futures: Vec<F>) -> Vec<F::Output> {
    use std::task::Poll;
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in futures.iter_mut().enumerate() {
            if outputs[i].is_none() {
                match std::pin::Pin::new(f).poll(cx) {
                    Poll::Ready(v) => outputs[i] = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending { Poll::Pending } else { Poll::Ready(()) }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_bearer_challenge_with_quoted_params() {
        let (scheme, params) =
            parse_challenge(r#"Bearer error="invalid_token", resource_metadata="http://x/.well-known/oauth-protected-resource""#);
        assert_eq!(scheme, "Bearer");
        assert_eq!(params["error"], "invalid_token");
        assert_eq!(params["resource_metadata"], "http://x/.well-known/oauth-protected-resource");
    }

    #[test]
    fn status_classes_match() {
        assert!(status_matches(&json!("4xx"), Some(410)));
        assert!(!status_matches(&json!("4xx"), Some(500)));
        assert!(status_matches(&json!([200, 204]), Some(204)));
        assert!(!status_matches(&json!(200), None));
    }

    #[test]
    fn entropy_ignores_a_shared_prefix() {
        let v = vec!["sk_AAAAAAAAAAAAAAAAAAAAAAAA".to_string(), "sk_BBBBBBBBBBBBBBBBBBBBBBBB".to_string()];
        assert!(apparent_entropy(&v) > 140.0);
        let digits = vec!["000123".to_string(), "998877".to_string()];
        assert!(apparent_entropy(&digits) < 20.0);
    }

    #[test]
    fn entropy_survives_non_ascii_values() {
        let v = vec!["é🔑ab".to_string(), "é🔒cd".to_string(), "\u{0}".to_string(), String::new()];
        let _ = apparent_entropy(&v);
        let v = vec!["aé".to_string(), "aè".to_string()];
        assert!(apparent_entropy(&v) > 0.0);
    }

    #[test]
    fn sets_ignore_order_and_accept_scope_strings() {
        assert_eq!(as_set(&json!(["b", "a"])), as_set(&json!("a b")));
        assert_ne!(as_set(&json!(["a"])), as_set(&json!(["a", "b"])));
        assert_eq!(as_set(&json!(3)), None);
    }

    #[test]
    fn builds_rfc8414_urls() {
        assert_eq!(rfc8414_url("http://a:1"), "http://a:1/.well-known/oauth-authorization-server");
        assert_eq!(
            rfc8414_url("https://a/tenant/"),
            "https://a/.well-known/oauth-authorization-server/tenant"
        );
    }
}
