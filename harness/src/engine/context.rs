//! One case's running state: its values, its clock offset, its exchanges and findings, and the
//! plumbing every step uses (HTTP through the bounded transport, minting, URIs).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use authmd_mock_idp::{MockIdp, Subject, TokenKind, TokenRequest};
use serde_json::{Map, Value, json};

use super::steps::{StepError, StepOutcome};
use super::{Harness, HarnessError};
use crate::catalogue::{Case, split_advance};
use crate::expect::{self, Observed};
use crate::language::{Issuer, Step, TokenSpec};
use crate::outcome::{Exchange, Finding, FindingKind, MailRecord, truncate};
use crate::template;
use crate::transport::Transport;

pub(super) struct CaseCtx<'h> {
    pub(super) h: &'h Harness,
    /// The IdP the case signs with and changes: the trusted one, or the second trusted issuer
    /// for a case that changes keys where the config isolates key changes there.
    pub(super) idp: &'h MockIdp,
    /// The other trusted issuer, if any.
    pub(super) idp2: Option<&'h MockIdp>,
    /// The `client_id`s the trust entry of the case's issuer pins (the config names them for
    /// the first issuer only).
    pub(super) client_ids: &'h [String],
    /// The case being run.
    pub(super) case_id: String,
    /// The origin of the replica the current step talks to, when it names one.
    pub(super) replica: Option<String>,
    pub(super) net: Transport,
    /// The case's own source address, when cases are isolated by address.
    pub(super) source: Option<IpAddr>,
    pub(super) vars: Map<String, Value>,
    pub(super) offset: i64,
    pub(super) started: Instant,
    /// When the last step that does not settle finished: a settling step's wait (a revocation
    /// reaching another replica) is timed from there.
    pub(super) last_done: Instant,
    pub(super) exchanges: Vec<Exchange>,
    pub(super) findings: Vec<Finding>,
    pub(super) mail: Vec<MailRecord>,
    /// The settling steps' timings.
    pub(super) settled: Vec<crate::outcome::Settled>,
    /// The case tests an ambiguity's reading: error names are taken as written, since telling
    /// synonyms apart is the point (C-04).
    pub(super) exact_errors: bool,
}

/// The values a step produced: the response JSON members plus harness-side ones.
pub(super) type StepVars = Map<String, Value>;

/// How long past a target's JWKS refetch cool-down the harness waits before it presents a new
/// key: the target's clock for the cool-down starts when its fetch completes.
const COOLDOWN_MARGIN: Duration = Duration::from_secs(1);
/// How often a throttled step runs again, and the longest `Retry-After` waited for: longer
/// limits (a registration window of an hour) leave the case INCONCLUSIVE at once.
const THROTTLE_RETRIES: u32 = 2;
const THROTTLE_WAIT_SECS: u64 = 5;

impl<'h> CaseCtx<'h> {
    /// The case's state, over `shared` if given (a client other cases use too).
    pub(super) fn new(h: &'h Harness, case: &Case, source: Option<IpAddr>, shared: Option<Transport>) -> Result<Self, HarnessError> {
        // A case without its own source address shares the run's pooled client: against a remote
        // target a connection (and a TLS handshake) per case costs round trips on every case's path.
        let net = match (shared, source) {
            (Some(net), _) => net,
            (None, Some(ip)) => h.client(ip)?,
            (None, None) => h.plain.clone(),
        };
        let (idp, idp2, client_ids): (&MockIdp, Option<&MockIdp>, &[String]) = match &h.idp2 {
            Some(second) if h.on_second_issuer(case) => (second, Some(&h.idp), &[]),
            second => (&h.idp, second.as_deref(), &h.target.idp.client_ids),
        };
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
                "issuer": idp.issuer(),
                "client_id": client_ids.first().cloned().unwrap_or_else(|| idp.client_id()),
                "issuer2": idp2.map(|i| i.issuer()),
                "untrusted_issuer": h.stranger.as_ref().map(|i| i.issuer()),
                "rate_burst": h.target.rate_burst,
                "required_amr": h.target.idp.required_amr,
                "register_uri": h.discovery.register_uri,
                "claim_uri": h.discovery.claim_uri,
                "revocation_uri": h.discovery.revocation_uri,
                "oracle": h.target.oracle.as_ref().map(|o| h.target.url(&o.path)),
                "protected": h.discovery.protected_url,
                "resource_metadata": h.discovery.resource_metadata_url,
            }),
        );
        Ok(Self {
            h,
            idp,
            idp2,
            client_ids,
            case_id: case.id.clone(),
            replica: None,
            net,
            source,
            vars,
            offset: 0,
            started: Instant::now(),
            last_done: Instant::now(),
            exchanges: Vec::new(),
            findings: Vec::new(),
            mail: Vec::new(),
            settled: Vec::new(),
            exact_errors: case.reading.is_some(),
        })
    }

    /// A copy of this case's state for one round of a sample run beside others, over `net`:
    /// the values as they are, and no exchanges, findings or mail yet ([`Self::absorb`] takes
    /// them back). With `round`, the copy has its own recipient address, so concurrent rounds
    /// never read each other's mail.
    pub(super) fn fork(&self, net: Transport, round: Option<usize>) -> Self {
        let mut vars = self.vars.clone();
        if let Some(round) = round
            && let Some((local, domain)) = self.identity_email().split_once('@')
        {
            vars["identity"]["email"] = json!(format!("{local}-r{round}@{domain}"));
        }
        Self {
            h: self.h,
            idp: self.idp,
            idp2: self.idp2,
            client_ids: self.client_ids,
            case_id: self.case_id.clone(),
            replica: self.replica.clone(),
            net,
            source: self.source,
            vars,
            offset: self.offset,
            started: self.started,
            last_done: self.last_done,
            exchanges: Vec::new(),
            findings: Vec::new(),
            mail: Vec::new(),
            settled: Vec::new(),
            exact_errors: self.exact_errors,
        }
    }

    /// Takes back a fork's evidence: its exchanges, findings and mail, after this case's own.
    pub(super) fn absorb(&mut self, fork: Self) {
        self.exchanges.extend(fork.exchanges);
        self.findings.extend(fork.findings);
        self.mail.extend(fork.mail);
        self.settled.extend(fork.settled);
    }

    /// Replaces `{{ref}}` in strings ([`template::resolve`]) against this case's values.
    pub(super) fn resolve(&self, value: &Value) -> Result<Value, String> {
        template::resolve(&self.vars, value)
    }

    /// A parameter with its references resolved (`Err`: a reference the case cannot fill).
    pub(super) fn value(&self, value: &Option<Value>) -> Result<Option<Value>, String> {
        value.as_ref().map(|v| self.resolve(v)).transpose()
    }

    /// A text parameter with its references resolved.
    pub(super) fn text(&self, text: &Option<String>) -> Result<Option<String>, String> {
        text.as_ref()
            .map(|t| {
                self.resolve(&Value::String(t.clone()))
                    .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
            })
            .transpose()
    }

    /// The case's fresh address (`{{identity.email}}`).
    pub(super) fn identity_email(&self) -> String {
        self.vars["identity"]["email"].as_str().unwrap_or_default().to_string()
    }

    /// Seconds after the case's start that a step's `advance` puts the target's clock at.
    pub(super) fn advance_to(&self, advance: &str) -> Result<i64, String> {
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

    pub(super) fn finding(&mut self, step: &str, kind: FindingKind, expected: impl Into<String>, found: impl Into<String>) {
        self.findings.push(Finding::new(step, kind, expected, found));
    }

    pub(super) async fn http(
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
        let url = self.routed(url);
        let exchange = self.net.send(step, method, &url, &headers, body).await;
        self.exchanges.push(exchange.clone());
        self.settle(&exchange)?;
        Ok(exchange)
    }

    /// An exchange with no (complete) answer cannot be judged: a refused URL is a finding about
    /// the target that ends the case; a transport error makes it INCONCLUSIVE.
    pub(super) fn settle(&mut self, exchange: &Exchange) -> Result<(), HarnessError> {
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

    pub(super) async fn post_json(&mut self, step: &str, url: &str, body: &Value) -> Result<Exchange, HarnessError> {
        self.http(
            step,
            "POST",
            url,
            vec![("content-type".into(), "application/json".into())],
            Some(body.to_string()),
        )
        .await
    }

    pub(super) async fn run(&mut self, case: &Case) -> Result<(), HarnessError> {
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
                        let what = format!("the target's clock to pass +{} s, in real time", self.offset);
                        let _waiting = crate::waits::begin(&self.case_id, what, Some(left));
                        tokio::time::sleep(left).await;
                    }
                }
            }
            self.replica = match step.replica {
                None => None,
                Some(i) => match self.h.target.replicas.as_ref().and_then(|r| r.origins.get(i)) {
                    Some(origin) => Some(origin.clone()),
                    None => {
                        let configured = self.h.target.replicas.as_ref().map_or(0, |r| r.origins.len());
                        let found = format!("{configured} configured");
                        self.finding(&label, FindingKind::MissingInput, format!("replica {i} in [replicas]"), found);
                        return Ok(());
                    }
                },
            };
            let mut settling = step.settle.map(|s| super::settle::Settling::new(self, s, &label));
            loop {
                let findings_before = self.findings.len();
                let fetches_before = self.idp.jwks_fetches();
                match self.step_unthrottled(step, &label).await? {
                    Ok((exchange, vars)) => {
                        // Named first, so an expectation may refer to its own step's values.
                        if let Some(name) = &step.name {
                            self.vars.insert(name.clone(), Value::Object(vars.clone()));
                        }
                        if let Some(expect) = &step.expect {
                            let fetched = self.idp.jwks_fetches() - fetches_before;
                            self.check(&label, expect, exchange.as_ref(), &vars, fetched);
                        }
                    }
                    Err(StepError::MissingInput(missing)) => {
                        // The target's earlier answers lacked something this step needs: that is
                        // a finding about the target, and later steps cannot run meaningfully.
                        self.finding(&label, FindingKind::MissingInput, "the inputs this step needs", missing);
                        return Ok(());
                    }
                    Err(StepError::Harness(e)) => return Err(e),
                }
                let Some(s) = settling.as_mut() else { break };
                if !s.again(self, findings_before).await {
                    break;
                }
            }
            if step.settle.is_none() {
                self.last_done = Instant::now();
            }
        }
        Ok(())
    }

    /// Runs `step`; a 429 where the step is not about rate limits is the target throttling the
    /// harness, not an answer to the step: after a short `Retry-After` the step runs again (a
    /// 429 refused it, so nothing happened), and a target that does not let up leaves the case
    /// INCONCLUSIVE, naming the limit. Without this, a `"4xx"` expectation would take the 429 as
    /// its answer, and any other would be a false FAIL against a correct, rate-limited target.
    async fn step_unthrottled(&mut self, step: &Step, label: &str) -> Result<StepOutcome, HarnessError> {
        let about_limits = step
            .expect
            .as_ref()
            .is_some_and(|e| [&e.status, &e.status_not].into_iter().flatten().any(|s| s.names(429)));
        let mut attempts = 0;
        loop {
            let outcome = self.step(&step.action, label).await;
            // Only a step that sent one request of its own: a `check` re-reads an earlier answer,
            // and samples and repeats end on a 429 themselves.
            let throttled = match &outcome {
                Ok((Some(x), _)) if x.status == Some(429) && !about_limits && step.action.retriable() => x,
                _ => return Ok(outcome),
            };
            let retry_after = throttled.header("retry-after").and_then(|v| v.trim().parse::<u64>().ok());
            let wait = retry_after.unwrap_or(1);
            if attempts >= THROTTLE_RETRIES || wait > THROTTLE_WAIT_SECS {
                return Err(HarnessError::Throttled {
                    url: throttled.url.clone(),
                    retry_after,
                });
            }
            attempts += 1;
            let what = format!("the target's rate limit (429, Retry-After {wait} s)");
            let _waiting = crate::waits::begin(&self.case_id, what, Some(Duration::from_secs(wait)));
            tokio::time::sleep(Duration::from_secs(wait)).await;
        }
    }

    pub(super) fn response_vars(exchange: &Exchange) -> StepVars {
        let mut vars = match exchange.json() {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        vars.insert("http_status".into(), json!(exchange.status));
        vars
    }

    pub(super) fn subject(&self, spec: &TokenSpec) -> Subject {
        let identity = &self.vars["identity"];
        Subject {
            sub: spec
                .set
                .get("sub")
                .and_then(Value::as_str)
                .or(identity["sub"].as_str())
                .unwrap_or_default()
                .to_string(),
            email: identity["email"].as_str().unwrap_or_default().to_string(),
        }
    }

    /// Mints the token `spec` describes (references resolved), with every default the case
    /// did not decide itself ([`TokenSpec::default_claim`]).
    pub(super) fn mint(&self, spec: &Option<TokenSpec>, default_kind: TokenKind) -> Result<(String, StepVars), String> {
        let written = serde_json::to_value(spec.clone().unwrap_or_default()).map_err(|e| e.to_string())?;
        let mut spec: TokenSpec = serde_json::from_value(self.resolve(&written)?).map_err(|e| format!("bad token spec: {e}"))?;
        let kind = *spec.kind.get_or_insert(default_kind);
        // The profile's defaults (v0.6: `auth_time`, the SET `typ`).
        let profile = match kind {
            TokenKind::Logout => &self.h.profile.tokens.logout,
            _ => &self.h.profile.tokens.id_jag,
        };
        if let Some(defaults) = profile {
            for (name, value) in &defaults.set {
                spec.default_claim(name, value.clone());
            }
            for (name, value) in &defaults.header_set {
                spec.default_header(name, value.clone());
            }
        }
        // The audience the target expects.
        spec.default_claim("aud", json!(self.h.audience()));
        let now = time::OffsetDateTime::now_utc().unix_timestamp() + self.offset;
        // Logout tokens carry an `exp` unless the config declares C-20 reading A (the auth.md
        // examples omit it): a token with one satisfies both readings, so a target of reading B
        // (BCL: `exp` required) is never failed for a reading it was not asked about. The
        // reading-A cases remove `exp` themselves.
        let exp_required = self.h.target.readings.get("C-20").is_none_or(|r| r != "A");
        if exp_required && kind == TokenKind::Logout {
            spec.default_claim("exp", json!(now + 300));
        }
        // A case that moved the target's clock mints on that clock too, or every token would
        // look expired (or issued in the past) to the target.
        if self.offset != 0 {
            spec.default_claim("iat", json!(now));
            spec.default_claim("exp", json!(now + 300));
        }
        // `by` picks the minting IdP: its keys sign, and its issuer is the default `iss`.
        let by = spec.by.take().unwrap_or_default();
        let idp = match by {
            Issuer::Primary => self.idp,
            Issuer::Second => self.idp2.ok_or("no second issuer (idp.second)")?,
            Issuer::Untrusted => self.h.stranger.as_ref().ok_or("no untrusted issuer")?,
        };
        // A target that pins its client_ids gets the first of them.
        if let Some(pinned) = self.client_ids.first()
            && by == Issuer::Primary
            && kind == TokenKind::IdJag
        {
            spec.default_claim("client_id", json!(pinned));
        }
        let request: TokenRequest = serde_json::to_value(&spec)
            .and_then(serde_json::from_value)
            .map_err(|e| format!("bad token spec: {e}"))?;
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
    pub(super) async fn wait_out_refetch_cooldown(&self) -> Result<(), HarnessError> {
        let cooldown = self.h.target.idp.jwks_refetch_cooldown_secs.unwrap_or(0);
        if cooldown == 0 {
            return Ok(());
        }
        let budget = self.h.target.clock.wait_budget_secs;
        if cooldown > budget {
            return Err(HarnessError::CooldownBeyondBudget { needed: cooldown, budget });
        }
        // The last fetch of any run: the key directory remembers fetches of earlier runs,
        // whose cool-down the target may still be in.
        let last = self.idp.last_jwks_fetch();
        if let Some(last) = last {
            // A server starts its cool-down when its fetch completes, after the IdP saw the
            // request; under load that is hundreds of milliseconds later, so a second of margin.
            let until = last + Duration::from_secs(cooldown) + COOLDOWN_MARGIN;
            if let Ok(left) = until.duration_since(std::time::SystemTime::now()) {
                let what = format!("the target's {cooldown} s JWKS refetch cool-down");
                let _waiting = crate::waits::begin(&self.case_id, what, Some(left));
                tokio::time::sleep(left).await;
            }
        }
        Ok(())
    }

    /// The registration this case is about: the latest `registration_id` any step returned.
    /// Mail sources that file mail by registration (a URL template, file names) need it.
    pub(super) fn registration_id(&self) -> String {
        self.vars
            .values()
            .rev()
            .find_map(|v| v.get("registration_id").and_then(Value::as_str))
            .unwrap_or_default()
            .to_string()
    }

    pub(super) fn register_uri(&self) -> Result<String, String> {
        self.h.discovery.register_uri.clone().ok_or_else(|| "no register_uri".into())
    }

    pub(super) fn claim_uri(&self) -> Result<String, String> {
        self.h
            .discovery
            .claim_uri
            .clone()
            .ok_or_else(|| "no claim_uri in the metadata".into())
    }

    pub(super) fn complete_uri(&self) -> Result<String, String> {
        self.derived_uri(&self.h.target.complete_url, &self.h.profile.endpoints.complete, "completion")
    }

    pub(super) fn challenge_uri(&self) -> Result<String, String> {
        self.derived_uri(&self.h.target.challenge_url, &self.h.profile.endpoints.challenge, "challenge")
    }

    /// The configured URL, else the profile's template over the claim endpoint.
    fn derived_uri(&self, configured: &Option<String>, template: &str, what: &str) -> Result<String, String> {
        match configured {
            Some(url) => Ok(url.clone()),
            None if template.is_empty() => Err(format!("profile {} has no {what} endpoint", self.h.profile.name)),
            None => Ok(template.replace("{claim}", &self.claim_uri()?)),
        }
    }

    /// A JSON object of `(harness name, value)` members under the profile's wire names.
    pub(super) fn body(&self, members: &[(&str, Value)]) -> Value {
        // A member the profile maps to no name (v0.6 has no `requested_credential_type`) is not sent.
        let map: Map<String, Value> = members
            .iter()
            .map(|(name, value)| (self.h.profile.field(name).to_string(), value.clone()))
            .filter(|(wire, _)| !wire.is_empty())
            .collect();
        Value::Object(map)
    }

    /// Judges a step's expectations ([`crate::expect`]) and records the findings.
    pub(super) fn check(
        &mut self,
        label: &str,
        expect: &crate::language::Expect,
        exchange: Option<&Exchange>,
        vars: &StepVars,
        jwks_fetched: usize,
    ) {
        let idp_paths = if expect.idp_fetched.is_empty() {
            Default::default()
        } else {
            self.idp.requests().into_iter().map(|r| r.path).collect()
        };
        let seen = Observed {
            exchange,
            vars,
            earlier: &self.vars,
            now: time::OffsetDateTime::now_utc() + time::Duration::seconds(self.offset),
            idp_paths: &idp_paths,
            jwks_fetched,
            synonyms: if self.exact_errors { &[] } else { &self.h.profile.errors.synonyms },
            redact: &|s| self.h.secrets.redact(s),
        };
        let resolve = |v: &Value| self.resolve(v).unwrap_or_else(|e| json!(format!("<unresolved: {e}>")));
        let found = expect::check(label, expect, &seen, &resolve);
        self.findings.extend(found.into_iter().map(|mut f| {
            f.requirement = expect.requirement.clone();
            f
        }));
    }
}
