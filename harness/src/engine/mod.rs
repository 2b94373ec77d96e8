//! The interpreter: discovers the target, runs cases in parallel, turns the target's answers
//! into findings and verdicts. The target's answer is data; only "no response" is a harness
//! error. Rooms: [`discovery`], the case context (`context`: HTTP, clock, minting), the step
//! families (`steps`), and the expectation families in [`crate::expect`].

mod aid;
mod aid_step;
mod context;
mod discovery;
mod needs;
mod route;
mod settle;
mod steps;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use authmd_mock_idp::MockIdp;
use authmd_mock_mailbox::MailSource;
use serde_json::Value;

use crate::catalogue::{Action, Case, Condition, Level, Need};
pub use crate::expect::parse_challenge;
pub use crate::outcome::{CaseResult, Exchange, Finding, FindingKind, MailRecord, SkipReason, Verdict};
use crate::profile::Manifest;
use crate::redact::Secrets;
use crate::target::TargetConfig;
pub use crate::transport::decode_jwt;
use crate::transport::{HostPolicy, Limits, Tls, Transport};
use crate::waits;
pub use aid::{Dns, Txt};
use context::CaseCtx;
pub use discovery::Discovery;

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
    /// The target answered 429 to a step that is not about rate limits, and did not let up
    /// within a short wait: the answer says nothing about the case's requirement.
    #[error(
        "the target rate-limited the harness: 429{} from {url} on a step that is not about rate limits, so nothing was decided; raise the target's per-client limits for the test, give each case its own source address (isolate_source_ips), or lower jobs",
        retry_after.map(|s| format!(" (Retry-After: {s} s)")).unwrap_or_default()
    )]
    Throttled {
        /// The URL.
        url: String,
        /// The `Retry-After` the target gave, in seconds.
        retry_after: Option<u64>,
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
    /// The case does not apply to this target (what it tests is not there to test).
    #[error("{0}")]
    Inapplicable(String),
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

/// What a harness is made of: the target and the mocks that play its identity providers and
/// its mail. [`Harness::build`] takes it whether the target is the bundled stack or a server
/// of the user's.
pub struct Parts {
    /// Target configuration.
    pub target: TargetConfig,
    /// The mock IdP the target trusts.
    pub idp: Arc<MockIdp>,
    /// A second trusted issuer (`idp.second`).
    pub idp2: Option<Arc<MockIdp>>,
    /// A live issuer the target does not trust.
    pub stranger: Option<Arc<MockIdp>>,
    /// Where claim mail is read.
    pub mail: Option<Arc<MailSource>>,
    /// A CA certificate (PEM) to trust besides the system roots.
    pub ca_pem: Option<String>,
    /// The run's secrets; share one set between the harnesses of one run.
    pub secrets: Secrets,
    /// Overrides `target.jobs`.
    pub jobs: Option<usize>,
}

impl Parts {
    /// The target and its trusted IdP; nothing else.
    pub fn new(target: TargetConfig, idp: Arc<MockIdp>) -> Self {
        Self {
            target,
            idp,
            idp2: None,
            stranger: None,
            mail: None,
            ca_pem: None,
            secrets: Secrets::default(),
            jobs: None,
        }
    }

    /// With a mail source.
    pub fn mail(mut self, mail: Arc<MailSource>) -> Self {
        self.mail = Some(mail);
        self
    }
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
    /// The spec profile under test: where its flows are, its wire names, its error synonyms.
    pub profile: Manifest,
    /// Discovery results.
    pub discovery: Discovery,
    /// Exchanges made during discovery.
    pub discovery_exchanges: Vec<Exchange>,
    /// The AID preflight, when the run started from a domain.
    pub preflight: Option<crate::aid::Preflight>,
    /// The run's DNS, when it started from a domain.
    dns: Option<Arc<Dns>>,
    /// Secrets seen during the run (redacted in every output).
    pub secrets: Secrets,
    idp_lock: tokio::sync::RwLock<()>,
    /// The second issuer's, taken where the cases that change keys run on it.
    idp2_lock: tokio::sync::RwLock<()>,
    /// The one client (and source address) of the cases that change an IdP, built on first use:
    /// they run one after another, and against a remote target a connection each would cost a
    /// round trip apiece on the run's longest chain.
    exclusive_net: std::sync::OnceLock<Result<Transport, HarnessError>>,
    /// Which block of loopback source addresses this run's cases use.
    source_block: u16,
    /// Spare source addresses handed out so far (spread samples).
    spare: std::sync::atomic::AtomicUsize,
    /// How long one request took in discovery (the fastest answered one): a remote target's
    /// round trip, which each case's time limit grows by per request it expects to make.
    request_ms: u64,
    /// The first registration answer shaped unlike the profile's envelope (the metadata
    /// speaks one text, the answers another): the run's evidence of a hybrid.
    hybrid: std::sync::Mutex<Option<String>>,
    plain: Transport,
    policy: Arc<HostPolicy>,
    limits: Limits,
    tls: Tls,
}

/// The most a case's time limit grows per expected request: a round trip slower than this is
/// no network a suite run is meant for.
const MAX_REQUEST_ALLOWANCE_MS: u64 = 2_000;

pub(super) const ID_JAG_URN: &str = "urn:ietf:params:oauth:token-type:id-jag";

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
    for origin in target.replicas.iter().flat_map(|r| &r.origins) {
        policy.allow_origin_of(origin);
    }
    policy
}

impl Harness {
    /// Builds the run context from `parts` and discovers the target. Bundled and external
    /// runs both come through here.
    pub async fn build(parts: Parts) -> Result<Self, HarnessError> {
        let Parts {
            mut target,
            idp,
            idp2,
            stranger,
            mail,
            ca_pem,
            secrets,
            jobs,
        } = parts;
        if let Some(jobs) = jobs {
            target.jobs = jobs.max(1);
        }
        let mut policy = host_policy(&target, &idp);
        for other in idp2.iter().chain(stranger.iter()) {
            policy.allow_origin_of(other.base_url());
        }
        let limits = target.limits();
        let tls = Tls::new(ca_pem.as_deref()).map_err(HarnessError::Tooling)?;
        // From a bare domain: the AID preflight selects the endpoint (and proves it) before
        // anything else is sent; it may name the base URL the config left out.
        let (dns, preflight) = match &target.aid {
            Some(aid) => {
                let dns = Dns::new(aid).map_err(|e| HarnessError::Tooling(format!("aid.resolver: {e}")))?;
                let make = |p: &HostPolicy| Transport::new(None, &tls, limits, Arc::new(p.clone()), secrets.clone());
                let found = aid::preflight(&dns, &mut target, &mut policy, make).await;
                (Some(Arc::new(dns)), Some(found))
            }
            None => (None, None),
        };
        policy.allow_origin_of(&target.base_url);
        if let Some(path) = &target.protected_path {
            policy.allow_origin_of(path);
        }
        let policy = Arc::new(policy);
        let profile = Manifest::load(&crate::repo_root(), &target.profile).map_err(HarnessError::Tooling)?;
        secrets.declare_names(&profile.secret_members);
        // The outbox's credentials are the harness's, never the agent's (SEC-08): redacted.
        for value in mail.iter().flat_map(|m| m.credentials()) {
            secrets.add(value);
        }
        let plain = Transport::new(None, &tls, limits, policy.clone(), secrets.clone()).map_err(HarnessError::Tooling)?;
        let mut harness = Self {
            target,
            idp,
            idp2,
            stranger,
            mail,
            profile,
            discovery: Discovery::default(),
            discovery_exchanges: Vec::new(),
            preflight,
            dns,
            secrets,
            idp_lock: tokio::sync::RwLock::new(()),
            idp2_lock: tokio::sync::RwLock::new(()),
            exclusive_net: std::sync::OnceLock::new(),
            source_block: rand::random::<u16>() % 15_000,
            spare: std::sync::atomic::AtomicUsize::new(0),
            hybrid: std::sync::Mutex::new(None),
            request_ms: 0,
            plain,
            policy,
            limits,
            tls,
        };
        match harness.preflight.as_ref().and_then(|p| p.error.clone()) {
            // Nothing of auth.md is fetched from an endpoint the preflight did not establish.
            Some(e) => harness.discovery.error = Some(format!("the AID preflight failed: {e}")),
            None => harness.discover().await?,
        }
        harness.request_ms = harness
            .discovery_exchanges
            .iter()
            .filter(|e| e.status.is_some())
            .map(|e| e.elapsed_ms)
            .min()
            .unwrap_or(0)
            // A target that answers discovery slowly on purpose buys its cases no more than
            // this per request (every request is bounded by its own timeout besides).
            .min(MAX_REQUEST_ALLOWANCE_MS);
        Ok(harness)
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
        // AID cases judge the preflight's parts themselves, whatever it concluded.
        if case.needs.contains(&Need::Aid) {
            return self.unmet_need(case).map(Verdict::Skip);
        }
        if let Some(p) = &self.preflight
            && let Some(e) = &p.error
        {
            let reason =
                format!("blocked: the AID preflight failed ({e}); no identity material is sent to an endpoint it did not establish");
            return Some(if p.no_answer {
                Verdict::Inconclusive(reason)
            } else {
                Verdict::Skip(SkipReason::Blocked(reason))
            });
        }
        let d = &self.discovery;
        // Discovery cases that only GET fixed paths run whatever discovery found; any step that
        // refers to a discovered document needs it.
        let needs_discovery = case.area != "discovery"
            || case.steps.iter().any(|s| {
                !matches!(s.action, Action::Http { .. } | Action::Check { .. })
                    || s.reference_roots().iter().any(|r| ["prm", "meta", "target"].contains(&r.as_str()))
            });
        if needs_discovery && let Some(e) = &d.error {
            let reason = format!("blocked: discovery failed ({e})");
            return Some(if d.no_answer {
                Verdict::Inconclusive(reason)
            } else {
                Verdict::Skip(SkipReason::Blocked(reason))
            });
        }
        self.unmet_need(case).map(Verdict::Skip)
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

    /// Whether a reading case gates this run, and the note that says so. Where the profile
    /// names several readings of an ambiguity, only the one the target config declares can fail
    /// a run: an undeclared ambiguity is recorded (INFO) with the reading the answers follow,
    /// and the note says how to gate on it. An ambiguity the catalogue resolves with a single
    /// named reading gates like any rule.
    fn reading_gate(&self, case: &Case) -> Option<(bool, String)> {
        let tag = case.reading.as_ref()?;
        let (amb, letter) = tag.split_once('/').unwrap_or((tag, ""));
        Some(match self.target.readings.get(amb) {
            None if case.readings_named < 2 => (
                true,
                format!("tests reading {tag}, the only reading the catalogue names for {amb}, so it gates"),
            ),
            Some(chosen) if chosen == letter => (
                true,
                format!("tests reading {tag}, which the config declares ([readings] \"{amb}\" = \"{letter}\")"),
            ),
            Some(chosen) => (
                false,
                format!("tests reading {tag}; the config declares {amb}/{chosen}, so this case is recorded, not gated"),
            ),
            None => (
                false,
                format!(
                    "tests reading {tag}; the config declares no reading of {amb}, so this case is recorded, not gated (to gate on it: [readings] \"{amb}\" = \"{letter}\")"
                ),
            ),
        })
    }

    /// A client of this run (its TLS roots, limits, host policy and secrets) whose requests
    /// leave from `source`.
    /// One request over the run's shared client (its TLS trust, host policy and DNS pins),
    /// outside any case: for tools and tests that need the target's raw answer.
    pub async fn fetch(&self, method: &str, url: &str, headers: &[(String, String)]) -> Exchange {
        self.plain.send("fetch", method, url, headers, None).await
    }

    pub(super) fn client(&self, source: IpAddr) -> Result<Transport, HarnessError> {
        Transport::new(Some(source), &self.tls, self.limits, self.policy.clone(), self.secrets.clone()).map_err(HarnessError::Tooling)
    }

    /// Whether the config runs the cases that change the IdP on the second trusted issuer.
    fn isolates_key_changes(&self) -> bool {
        self.idp2.is_some() && self.target.idp.second.as_ref().is_some_and(|s| s.isolate_key_changes)
    }

    /// Whether `case` signs with the second trusted issuer where the cases that change keys run
    /// there (so it waits for them, and they for it).
    pub fn reads_isolated_issuer(&self, case: &Case) -> bool {
        self.isolates_key_changes() && case.needs.contains(&Need::SecondIssuer) && !case.needs.contains(&Need::IdpExclusive)
    }

    /// Whether `case` changes keys and runs on the second trusted issuer
    /// (`idp.second.isolate_key_changes`), beside the cases that sign with the first.
    pub(super) fn on_second_issuer(&self, case: &Case) -> bool {
        case.needs.contains(&Need::IdpExclusive) && self.isolates_key_changes()
    }

    /// How long `case` may take: `case_timeout_secs` for its requests, plus the time its
    /// expected requests take at the round trip discovery measured (so a remote target's
    /// latency never turns a long case INCONCLUSIVE), plus every wait it declares (the TTLs it
    /// lets pass without a clock header, bounded by the wait budget, and a refetch cool-down per
    /// key rotation), so a wait the config allows never ends in a timeout.
    pub fn case_time_limit(&self, case: &Case) -> Duration {
        let waits_for_clock = self.target.clock.offset_header.is_none()
            && (case.needs.contains(&Need::Clock) || case.steps.iter().any(|s| s.advance.is_some()));
        let clock = if waits_for_clock { self.target.clock.wait_budget_secs } else { 0 };
        let rotations = case.steps.iter().filter(|s| matches!(s.action, Action::RotateKey { .. })).count() as u64;
        let cooldowns = rotations * self.target.idp.jwks_refetch_cooldown_secs.unwrap_or(0);
        let latency = Duration::from_millis(case.expected_round_trips().saturating_mul(self.request_ms));
        Duration::from_secs(self.target.case_timeout_secs + clock + cooldowns) + latency
    }

    /// Runs one case. `index` picks its source address.
    pub async fn run_case(&self, case: &Case, index: usize) -> CaseResult {
        let mut result = CaseResult::unrun(case, Verdict::Pass);
        let level = self.level_of(case);
        result.level = level;
        if let Some(verdict) = self.unmet(case) {
            result.verdict = verdict;
            return result;
        }
        // Only a case that touches the IdP waits for one that changes it; the rest never queue
        // behind the lock (its wait is not the case's running time).
        let queued = Instant::now();
        const SIGNING: &str = "the IdP, while a case that changes its keys runs";
        const CHANGING: &str = "the IdP, to change its keys once no case signs with it";
        // A case that changes an IdP holds its write lock; one that signs with an IdP, its read
        // lock. The first issuer's is taken before the second's, so no two cases wait for
        // each other.
        let exclusive = case.needs.contains(&Need::IdpExclusive);
        let on_second = self.on_second_issuer(case);
        let _first_write = if exclusive && !on_second {
            Some(waits::write(&self.idp_lock, &case.id, CHANGING).await)
        } else {
            None
        };
        let _first_read = if !exclusive && case.uses_idp() {
            Some(waits::read(&self.idp_lock, &case.id, SIGNING).await)
        } else {
            None
        };
        let reads_second = self.reads_isolated_issuer(case);
        let _second_read = if reads_second {
            Some(waits::read(&self.idp2_lock, &case.id, SIGNING).await)
        } else {
            None
        };
        let _second_write = if on_second {
            Some(waits::write(&self.idp2_lock, &case.id, CHANGING).await)
        } else {
            None
        };
        let started = Instant::now();
        result.waited_ms = (started - queued).as_millis() as u64;
        let isolate = self.target.isolate_source_ips.unwrap_or_else(|| self.target.is_loopback());
        // 127.0.0.1 is left to everything else; cases get 127.x.y.z from a block drawn per run,
        // so a re-run within a target's rate-limit window does not inherit the last run's counts.
        // The exclusive cases' shared address is the block's last (no run has 999 cases).
        let slot = self.source_block as usize * 1000 + if exclusive { 999 } else { index };
        let source = isolate.then(|| {
            IpAddr::V4(Ipv4Addr::new(
                127,
                1 + (slot / 62_500 % 250) as u8,
                (slot / 250 % 250) as u8,
                2 + (slot % 250) as u8,
            ))
        });
        let shared = match source {
            Some(ip) if exclusive => match self.exclusive_net.get_or_init(|| self.client(ip)) {
                Ok(net) => Some(net.clone()),
                Err(e) => {
                    result.verdict = Verdict::Inconclusive(e.to_string());
                    return result;
                }
            },
            _ => None,
        };
        let mut ctx = match CaseCtx::new(self, case, source, shared) {
            Ok(c) => c,
            Err(e) => {
                result.verdict = Verdict::Inconclusive(e.to_string());
                return result;
            }
        };
        // A case that changes the IdP (rotation, faults) puts it back, so the keys a target has
        // cached stay valid for every later case: the case runs alone, under the write lock.
        // The IdP it changes is the one it signs with.
        let changed = ctx.idp;
        let before = exclusive.then(|| changed.snapshot());
        let timeout = self.case_time_limit(case);
        let outcome = tokio::time::timeout(timeout, ctx.run(case)).await;
        if let Some(snapshot) = &before
            && let Err(e) = changed.restore(snapshot)
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
        result.settled = std::mem::take(&mut ctx.settled);
        result.duration_ms = started.elapsed().as_millis() as u64;
        // Each finding is judged at the level of the requirement its expectation checks, so a
        // SHOULD miss in a case that also covers MUSTs is a WARN, never a FAIL.
        for f in &mut result.findings {
            f.level = Some(case.finding_level(f.requirement.as_deref(), level));
        }
        let worst = result.findings.iter().filter_map(|f| f.level).min().unwrap_or(level);
        let gate = self.reading_gate(case);
        if let Some((_, note)) = &gate {
            result.note = Some(note.clone());
        }
        result.verdict = match outcome {
            Err(_) => Verdict::Inconclusive(format!("timed out after {}s", timeout.as_secs())),
            Ok(Err(e @ (HarnessError::BeyondWaitBudget { .. } | HarnessError::CooldownBeyondBudget { .. }))) => {
                Verdict::Skip(SkipReason::needs("clock.wait_budget_secs", e.to_string()))
            }
            Ok(Err(HarnessError::Inapplicable(why))) => Verdict::Skip(SkipReason::Inapplicable(why)),
            Ok(Err(HarnessError::Refused(_))) | Ok(Ok(())) if result.findings.is_empty() => Verdict::Pass,
            Ok(Err(HarnessError::Refused(_))) | Ok(Ok(())) => match worst {
                _ if gate.as_ref().is_some_and(|(gates, _)| !gates) => Verdict::Info,
                Level::Must => Verdict::Fail,
                Level::Should => Verdict::Warn,
                Level::May | Level::Informational => Verdict::Info,
            },
            Ok(Err(e)) => Verdict::Inconclusive(e.to_string()),
        };
        result
    }
}
