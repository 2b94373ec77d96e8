//! Getting a target configured: `init` probes a live target and writes a commented
//! `target.toml`; `check-config` validates a configuration against the live target before a
//! run, one named check at a time. Both talk to the target only through the bounded,
//! policy-checked [`Transport`], like the engine.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::redact::Secrets;
use crate::target::TargetConfig;
use crate::transport::{HostPolicy, Tls, Transport};

/// One check of `check-config`: what was checked, whether it held, and why.
#[derive(Clone, Debug)]
pub struct Check {
    /// What was checked (`discovery`, `oracle`, `idp-trusted`, …).
    pub name: String,
    /// Whether it held (a skipped check holds: nothing configured, nothing wrong).
    pub ok: bool,
    /// The config does not set up what the check needs; the cases that need it will skip.
    pub skipped: bool,
    /// What was found, or what to change.
    pub detail: String,
}

impl Check {
    fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: true,
            skipped: false,
            detail: detail.into(),
        }
    }

    fn fail(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: false,
            skipped: false,
            detail: detail.into(),
        }
    }

    fn skip(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: true,
            skipped: true,
            detail: detail.into(),
        }
    }

    /// `ok  `, `FAIL` or `skip`, for the one-line report.
    pub fn label(&self) -> &'static str {
        match (self.ok, self.skipped) {
            (_, true) => "skip",
            (true, false) => "ok  ",
            (false, false) => "FAIL",
        }
    }
}

/// What `init` learned about a target.
#[derive(Clone, Debug, Default)]
pub struct Probe {
    /// The target's base URL.
    pub base_url: String,
    /// The profile the config is written for: `--profile`, else what the metadata speaks.
    pub profile: String,
    /// The protected endpoint discovery started from (from the PRM `resource`, or the default).
    pub protected_path: String,
    /// Origins besides the base URL's that the target names for itself (`localhost` where the
    /// user typed `127.0.0.1`), for `allowed_hosts`.
    pub other_hosts: Vec<String>,
    /// The PRM, if found.
    pub prm: Option<Value>,
    /// The AS metadata, if found.
    pub metadata: Option<Value>,
    /// Why discovery stopped, if it did.
    pub discovery_error: Option<String>,
    /// The oracle's user pointer and scope pointer, when an anonymous credential's echo showed them.
    pub oracle: Option<(String, String, String)>,
    /// Seconds until `claim_token_expires` of an anonymous registration (the registration TTL).
    pub registration_ttl: Option<i64>,
    /// Whether the metadata offers anonymous registration.
    pub anonymous: bool,
    /// Whether the profile's cases read claim mail (a `[mail]` section is worth writing).
    pub uses_mail: bool,
    /// Whether the profile's cases act as the human at the service's pages (`[session]`).
    pub uses_session: bool,
    /// Whether the human reads back a code the page reveals (`reveal-claim` steps), rather than
    /// typing one the agent surfaced.
    pub reads_back: bool,
    /// The one reading of an ambiguity the answers followed, for each ambiguity whose reading
    /// cases could run without an IdP, mail or session: (`C-NN`, reading, what it says).
    pub observed: Vec<(String, String, String)>,
}

fn transport_with(target: &TargetConfig, secrets: &Secrets, extra: &[String]) -> Result<Transport, String> {
    let mut policy = HostPolicy::default();
    policy.allow_origin_of(&target.base_url);
    for host in target.allowed_hosts.iter().chain(extra) {
        policy.allow_host(host);
    }
    // The target's own CA, if the config names one that reads; setup reports, it does not judge.
    let ca_pem = target.ca_file.as_ref().and_then(|p| std::fs::read_to_string(p).ok());
    let tls = Tls::new(ca_pem.as_deref()).or_else(|_| Tls::new(None))?;
    Transport::new(None, &tls, target.limits(), Arc::new(policy), secrets.clone())
}

fn transport(target: &TargetConfig, secrets: &Secrets) -> Result<Transport, String> {
    transport_with(target, secrets, &[])
}

async fn get_json(net: &Transport, url: &str, headers: &[(String, String)]) -> (Option<u16>, Option<Value>, Option<String>) {
    let e = net.send("probe", "GET", url, headers, None).await;
    let json = e.json();
    (e.status, json, e.error)
}

/// Finds a JSON pointer to a member named like one of `names` (depth-first, objects only);
/// null values count when `nullable` (a user id is null before a claim).
fn find_member(value: &Value, names: &[&str], at: &str, nullable: bool) -> Option<String> {
    let map = value.as_object()?;
    for (k, v) in map {
        let here = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
        if names.contains(&k.as_str()) && !v.is_object() && (nullable || !v.is_null()) {
            return Some(here);
        }
        if let Some(found) = find_member(v, names, &here, nullable) {
            return Some(found);
        }
    }
    None
}

/// `host:port` of `url` when it is another name for the same loopback service as `base`
/// (`localhost` for `127.0.0.1`, on the same port), which the target may use for itself.
fn loopback_alias(base: &str, url: &str) -> Option<String> {
    let (b, u) = (url::Url::parse(base).ok()?, url::Url::parse(url).ok()?);
    let loopback = |h: &str| matches!(h, "localhost" | "127.0.0.1" | "[::1]" | "::1");
    let (bh, uh) = (b.host_str()?, u.host_str()?);
    (bh != uh && loopback(bh) && loopback(uh) && b.port_or_known_default() == u.port_or_known_default())
        .then(|| format!("{uh}:{}", u.port_or_known_default().unwrap_or(80)))
}

/// Probes `base_url`: discovery, then (when anonymous registration is offered) one anonymous
/// registration whose credential (in v0.6, the access token its assertion is exchanged for) is
/// shown to the candidate oracle endpoints. `profile` overrides what the metadata speaks.
pub async fn probe(base_url: &str, profile: Option<&str>) -> Result<Probe, String> {
    let mut probe = probe_target(base_url, profile).await?;
    probe.describe_profile();
    Ok(probe)
}

async fn probe_target(base_url: &str, profile: Option<&str>) -> Result<Probe, String> {
    let target = TargetConfig::new(base_url);
    target.check()?;
    let secrets = Secrets::default();
    let mut net = transport(&target, &secrets)?;
    let mut probe = Probe {
        base_url: target.base_url.clone(),
        protected_path: "/api/resource".into(),
        profile: profile.map_or_else(crate::default_profile, str::to_string),
        ..Probe::default()
    };
    let (_, prm, error) = get_json(&net, &target.url("/.well-known/oauth-protected-resource"), &[]).await;
    if let Some(e) = error {
        return Err(format!("{}: no answer: {e}", target.base_url));
    }
    let Some(prm) = prm.filter(|p| p.is_object()) else {
        probe.discovery_error = Some("no Protected Resource Metadata at /.well-known/oauth-protected-resource".into());
        return Ok(probe);
    };
    // A target that names itself by another loopback name than the one typed is the same
    // service: the harness may follow those URLs.
    for url in [prm["resource"].as_str(), prm["authorization_servers"][0].as_str()]
        .into_iter()
        .flatten()
    {
        if let Some(alias) = loopback_alias(&target.base_url, url)
            && !probe.other_hosts.contains(&alias)
        {
            probe.other_hosts.push(alias);
        }
    }
    net = transport_with(&target, &secrets, &probe.other_hosts)?;
    if let Some(path) = prm["resource"]
        .as_str()
        .and_then(|r| url::Url::parse(r).ok())
        .map(|u| u.path().to_string())
        .filter(|p| p.len() > 1)
    {
        probe.protected_path = path;
    }
    let as_url = prm["authorization_servers"][0]
        .as_str()
        .unwrap_or(&target.base_url)
        .trim_end_matches('/')
        .to_string();
    probe.prm = Some(prm);
    let (_, metadata, _) = get_json(&net, &format!("{as_url}/.well-known/oauth-authorization-server"), &[]).await;
    let Some(metadata) = metadata.filter(|m| m.is_object()) else {
        probe.discovery_error = Some(format!("no authorization-server metadata for `{as_url}` (is it in allowed_hosts?)"));
        return Ok(probe);
    };
    if profile.is_none()
        && let Some(spoken) = crate::profile::speaking(&crate::repo_root(), &metadata).into_iter().next()
    {
        probe.profile = spoken;
    }
    let manifest = crate::profile::Manifest::load(&crate::repo_root(), &probe.profile)?;
    probe.anonymous = crate::profile::Manifest::strings_at(&metadata, &manifest.offers.identity_types)
        .iter()
        .any(|t| t == "anonymous");
    let register = metadata
        .pointer(&manifest.endpoints.register)
        .and_then(Value::as_str)
        .map(str::to_string);
    let token = manifest
        .endpoints
        .token
        .as_ref()
        .and_then(|p| metadata.pointer(p))
        .and_then(Value::as_str)
        .map(str::to_string);
    probe.metadata = Some(metadata);
    let (Some(register), true) = (register, probe.anonymous) else {
        return Ok(probe);
    };
    probe_registration(&net, &target, &manifest, &register, token.as_deref(), &mut probe).await;
    Ok(probe)
}

impl Probe {
    /// Reads from the profile's catalogue which sections its cases use.
    fn describe_profile(&mut self) {
        if let Ok(cat) = crate::profile_catalogue(&self.profile) {
            self.uses_mail = cat.cases.iter().any(|c| c.needs.contains(&crate::catalogue::Need::Mail));
            self.uses_session = cat.cases.iter().any(|c| c.needs.contains(&crate::catalogue::Need::Session));
            self.reads_back = cat.cases.iter().any(|c| {
                c.steps
                    .iter()
                    .any(|s| matches!(s.action, crate::language::Action::RevealClaim { .. }))
            });
        }
    }
}

/// Registers anonymously once: the claim token's expiry gives the registration TTL, and the
/// credential (or the access token an assertion is exchanged for) finds the identity/scope
/// oracle among the usual paths.
async fn probe_registration(
    net: &Transport,
    target: &TargetConfig,
    manifest: &crate::profile::Manifest,
    register: &str,
    token_endpoint: Option<&str>,
    probe: &mut Probe,
) {
    let mut body = serde_json::Map::new();
    body.insert(manifest.field("type").to_string(), json!("anonymous"));
    let credential_type = manifest.field("credential_type");
    if !credential_type.is_empty() {
        body.insert(credential_type.to_string(), json!("api_key"));
    }
    let json_header = [("content-type".to_string(), "application/json".to_string())];
    let reg = net
        .send("probe", "POST", register, &json_header, Some(Value::Object(body).to_string()))
        .await;
    let Some(reg) = reg.json() else { return };
    if let Some(expires) = reg["claim_token_expires"]
        .as_str()
        .and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
    {
        probe.registration_ttl = Some((expires - time::OffsetDateTime::now_utc()).whole_seconds().max(0) + 1);
    }
    let credential = match (reg["credential"].as_str(), reg["identity_assertion"].as_str(), token_endpoint) {
        (Some(c), _, _) => c.to_string(),
        // v0.6: the assertion is exchanged at the token endpoint (RFC 7523) for an access token.
        (None, Some(assertion), Some(token)) => {
            let form: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
                .append_pair("assertion", assertion)
                .finish();
            let form_header = [("content-type".to_string(), "application/x-www-form-urlencoded".to_string())];
            match net.send("probe", "POST", token, &form_header, Some(form)).await.json() {
                Some(t) => match t["access_token"].as_str() {
                    Some(a) => a.to_string(),
                    None => return,
                },
                None => return,
            }
        }
        _ => return,
    };
    let auth = [("authorization".to_string(), format!("Bearer {credential}"))];
    let mut candidates = vec![probe.protected_path.clone()];
    candidates.extend(["/api/resource", "/api/me", "/me", "/whoami", "/userinfo"].map(str::to_string));
    for path in candidates {
        let (status, body, _) = get_json(net, &target.url(&path), &auth).await;
        let Some(body) = body.filter(|_| status == Some(200)) else {
            continue;
        };
        let scopes = find_member(&body, &["scope", "scopes"], "", false);
        let user = find_member(&body, &["user_id", "who", "id"], "", true);
        if let Some(scopes) = scopes {
            probe.protected_path = path.clone();
            probe.oracle = Some((path, user.unwrap_or_else(|| "/user/id".into()), scopes));
            break;
        }
    }
}

/// Runs the profile's reading cases that need nothing `init` cannot know (no IdP, mail or
/// session; the others skip) against the target as `render(probe)` configures it, and records in
/// `probe.observed` each ambiguity of several readings whose answers followed exactly one:
/// `init` proposes those readings. The mock IdP a run needs listens on a random port with its
/// keys in a scratch folder, so nothing of the user's setup is touched.
pub async fn observe_readings(probe: &mut Probe) -> Result<(), String> {
    if probe.discovery_error.is_some() {
        return Ok(());
    }
    let mut config: TargetConfig = toml::from_str(&render(probe)).map_err(|e| format!("the written config: {e}"))?;
    let scratch = std::env::temp_dir().join(format!("authmd-init-{}", uuid::Uuid::new_v4().simple()));
    config.idp = crate::target::IdpSettings {
        state_dir: Some(scratch.clone()),
        ..crate::target::IdpSettings::default()
    };
    config.mail = None;
    config.session = None;
    let catalogue = crate::profile_catalogue(&config.profile).map_err(|e| e.to_string())?;
    let cases: Vec<_> = catalogue
        .cases
        .iter()
        .filter(|c| c.reading.is_some() && c.readings_named >= 2)
        .cloned()
        .collect();
    let observed = async {
        let parts = crate::start::external_parts(config)
            .await
            .map_err(|e| e.message().unwrap_or("the mock IdP did not start").to_string())?;
        let harness = Arc::new(crate::engine::Harness::build(parts).await.map_err(|e| e.to_string())?);
        let results = crate::run_cases(harness, cases, &|_, _, _| {}).await;
        Ok::<_, String>(crate::ambiguity::outcomes(&catalogue.ambiguities, &results))
    }
    .await;
    let _ = std::fs::remove_dir_all(&scratch);
    probe.observed = observed?
        .into_iter()
        .filter(|o| o.verdict == "follows" && o.follows.len() == 1 && o.readings.len() >= 2)
        .filter_map(|o| {
            let says = o.readings.iter().find(|r| r.id == o.follows[0])?.says.clone();
            Some((o.id, o.follows[0].clone(), says))
        })
        .collect();
    Ok(())
}

/// A commented `target.toml` for what `probe` found.
pub fn render(probe: &Probe) -> String {
    let hosts = probe.other_hosts.iter().map(|h| format!("\"{h}\"")).collect::<Vec<_>>().join(", ");
    let mut out = format!(
        "# Written by `authmd-conformance init --target {}`. Review every value, then\n\
         # `authmd-conformance check-config --config <this file>` before a run.\n\
         # Top-level keys must come before the first [table].\n\n\
         base_url = \"{}\"\nprofile = \"{}\"\nprotected_path = \"{}\"\n\
         # Hosts besides base_url's origin the harness may fetch (an authorization server elsewhere{}).\n\
         allowed_hosts = [{hosts}]\n\n",
        probe.base_url,
        probe.base_url,
        probe.profile,
        probe.protected_path,
        if probe.other_hosts.is_empty() {
            ""
        } else {
            "; the names your server gives itself"
        }
    );
    if let Some(e) = &probe.discovery_error {
        out += &format!("# Discovery stopped: {e}. Discovery cases will show why; the rest are skipped.\n\n");
    }
    match &probe.oracle {
        Some((path, user, scopes)) => {
            out += &format!(
                "# Found: an anonymous credential's echo at {path}.\n[oracle]\npath = \"{path}\"\nuser_pointer = \"{user}\"   # null before a claim is normal\nscopes_pointer = \"{scopes}\"\n\n"
            );
        }
        None => {
            out += "# No identity/scope echo found: add one (an endpoint that returns who a credential acts as\n\
                    # and its scopes) and point the harness at it, or the MATCH and CLAIM scope cases skip.\n\
                    # [oracle]\n# path = \"/api/resource\"\n# user_pointer = \"/user/id\"\n# scopes_pointer = \"/credential/scope\"\n\n";
        }
    }
    if probe.uses_mail {
        out += "# Where the harness reads your claim mail. One of:\n[mail]\n\
                smtp = { listen = \"127.0.0.1:2525\" }   # relay your mail here\n\
                # directory = { path = \"/path/to/outbox\" }                     # .eml or .html per message\n\
                # url_template = { template = \"/mail/{registration_id}.html\" } # an HTTP outbox\n\
                # mailpit = { base = \"http://127.0.0.1:8025\" }\n\n";
    }
    if probe.uses_session && probe.reads_back {
        out += "# The human's steps of the claim ceremony on your pages: where your sign-in form posts, where\n\
                # the confirm button posts, and where its answer shows the code the user reads back\n\
                # (`{user_code}` stands for it). Until set, the cases with a human step are skipped.\n\
                # [session]\n# login_url = \"/login\"\n# login_fields = { email = \"{email}\", return_to = \"{return_to}\" }\n\
                # confirm_url = \"/agent/identity/claim/view\"\n\
                # confirm_fields = { token = \"{claim_attempt_token}\" }\n\
                # reveal = '<output id=\"user-code\">{user_code}</output>'\n\n";
    } else if probe.uses_session {
        out += "# The human's steps of the claim ceremony on your pages: where your sign-in form posts and\n\
                # where the user-code form posts. Until set, the cases with a human step are skipped.\n\
                # [session]\n# login_url = \"/login\"\n# login_fields = { email = \"{email}\", return_to = \"{return_to}\" }\n\
                # confirm_url = \"/agent/identity/claim/complete\"\n\
                # confirm_fields = { claim_attempt_token = \"{claim_attempt_token}\", user_code = \"{user_code}\" }\n\n";
    }
    out += "# The mock IdP must own an issuer on your trust list, exactly as the list spells it\n\
            # (`localhost` and `127.0.0.1` are different issuers). check-config proves it.\n\
            [idp]\nissuer = \"http://localhost:4000\"\nlisten = \"127.0.0.1:4000\"\n\
            # Your JWKS cache: seconds after a fetch it refuses to refetch on an unknown kid (0 if it\n\
            # refetches at once; jose: 30). Until you declare it, the key-rotation cases are skipped.\n\
            # jwks_refetch_cooldown_secs = 0\n\
            # A second trusted issuer enables the two-issuer cases:\n# second = { issuer = \"http://localhost:4001\", listen = \"127.0.0.1:4001\" }\n\n";
    out += "# No clock header: TTL cases wait in real time up to this budget, or skip saying what they need.\n[clock]\n# offset_header = \"Authmd-Test-Clock-Offset\"\nwait_budget_secs = 0\n\n[ttl]\n";
    match probe.registration_ttl {
        Some(ttl) => out += &format!("registration = {ttl}   # from claim_token_expires of a probe registration\n"),
        None => out += "registration = 86400\n",
    }
    out += "claim_attempt = 600\notp = 600\naccess_token = 3600\n";
    out += "\n# The ambiguity readings your server follows, to gate on them (optional). Without an entry,\n\
            # the cases of an ambiguity are recorded, not gated; each run's summary.md says which\n\
            # reading your answers follow. Names: cases/ambiguities.toml (v0.1) or the profile's own.\n";
    if probe.observed.is_empty() {
        out += "# [readings]\n# \"C-01\" = \"B\"\n";
    } else {
        out += "# What init observed (the reading cases that need no IdP, mail or session): uncomment a\n\
                # line to gate on it, once you have checked that it is the reading you mean to follow.\n\
                # [readings]\n";
        for (id, reading, says) in &probe.observed {
            out += &format!(
                "# \"{id}\" = \"{reading}\"   # {}\n",
                says.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>()
            );
        }
    }
    out
}

/// Validates `config` against the live target: each check says what held or what to change.
/// Past the static checks, every capability the profile's setup checks (`checks/<profile>/`)
/// exercise is proven with a real round trip through the engine, as a run would use it: a
/// minted ID-JAG is accepted and an untrusted one refused, a claim mail yields an OTP, the
/// `[session]` sign-in and confirm work, the second issuer is trusted.
pub async fn check(config: &TargetConfig) -> Vec<Check> {
    let mut checks = Vec::new();
    let root = crate::repo_root();
    let manifest = match crate::profile::Manifest::load(&root, &config.profile) {
        Ok(m) => m,
        Err(e) => return vec![Check::fail("profile", e)],
    };
    match crate::profile_catalogue(&config.profile).map(|cat| cat.check_readings(&config.readings)) {
        Ok(Ok(())) if config.readings.is_empty() => {}
        Ok(Ok(())) => checks.push(Check::pass(
            "readings",
            format!("{} declared, each a reading of the profile", config.readings.len()),
        )),
        Ok(Err(e)) => checks.push(Check::fail("readings", e)),
        Err(e) => checks.push(Check::fail("catalogue", e.to_string())),
    }
    let secrets = Secrets::default();
    let net = match transport(config, &secrets) {
        Ok(n) => n,
        Err(e) => return vec![Check::fail("http client", e)],
    };
    // The oracle must challenge without a credential (it is also discovery's starting point).
    checks.push(match &config.oracle {
        None => Check::skip("oracle", "no [oracle]: the matching and scope cases will be skipped"),
        Some(oracle) => {
            let e = net.send("check", "GET", &config.url(&oracle.path), &[], None).await;
            match (e.status, e.error) {
                (_, Some(why)) => Check::fail("oracle", format!("{}: {why}", oracle.path)),
                (Some(401), None) => Check::pass("oracle", format!("{} challenges a request without a credential", oracle.path)),
                (Some(status), None) => Check::fail(
                    "oracle",
                    format!("{} answered {status} without a credential; expected 401", oracle.path),
                ),
                (None, None) => Check::fail("oracle", "no status"),
            }
        }
    });
    if let Some(second) = &config.idp.second
        && second.listen == config.idp.listen
    {
        checks.push(Check::fail("idp.second", "listens on the same address as [idp]"));
        return checks;
    }
    // Everything a run starts (the mock IdPs on their issuers, the mail source), then the
    // discovery a run makes.
    let parts = match crate::start::external_parts(config.clone()).await {
        Ok(p) => p,
        Err(e) => {
            checks.push(Check::fail("harness", e.message().unwrap_or("the mocks did not start").to_string()));
            return checks;
        }
    };
    let harness = match crate::engine::Harness::build(parts).await {
        Ok(h) => h,
        Err(e) => {
            checks.push(Check::fail("harness", e.to_string()));
            return checks;
        }
    };
    match &harness.discovery.error {
        Some(e) => {
            checks.push(Check::fail("discovery", e.clone()));
            return checks;
        }
        None => checks.push(Check::pass(
            "discovery",
            format!(
                "the metadata speaks {}; registration at {}",
                harness.discovery.spoken.as_ref().map(|s| s.speaks.as_str()).unwrap_or("?"),
                harness.discovery.register_uri.as_deref().unwrap_or("?")
            ),
        )),
    }
    if config.idp.issuer.is_some() {
        checks.push(check_issuer(config, &harness.idp).await);
    }
    let mut setup = Vec::new();
    for dir in &manifest.checks {
        match crate::catalogue::Catalogue::checks_for_profile(&root, &manifest, dir) {
            Ok(c) => setup.extend(c.cases),
            Err(e) => {
                checks.push(Check::fail("setup checks", e.to_string()));
                return checks;
            }
        }
    }
    for (i, case) in setup.iter().enumerate() {
        let result = harness.run_case(case, i).await;
        let redact = |s: &str| harness.secrets.redact(s);
        checks.push(match &result.verdict {
            crate::outcome::Verdict::Pass => Check::pass(case.id.clone(), case.summary.clone()),
            crate::outcome::Verdict::Skip(why) => Check::skip(case.id.clone(), format!("not configured: {why}")),
            crate::outcome::Verdict::Inconclusive(why) => Check::fail(case.id.clone(), format!("no answer: {}", redact(why))),
            _ => Check::fail(
                case.id.clone(),
                format!(
                    "{}: {}",
                    case.summary,
                    result.findings.first().map(|f| redact(&format!("{f:#}"))).unwrap_or_default()
                ),
            ),
        });
    }
    checks
}

/// Does the issuer's URL lead to the mock IdP the harness started on `idp.listen`?
async fn check_issuer(config: &TargetConfig, idp: &authmd_mock_idp::MockIdp) -> Check {
    let issuer = config.idp.issuer.clone().unwrap_or_default();
    let jwks = idp.jwks_uri();
    let before = idp.jwks_fetches();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).no_proxy().build();
    let reached = match http {
        Ok(http) => http.get(&jwks).send().await.map(|r| r.status().is_success()).unwrap_or(false),
        Err(_) => false,
    };
    if reached && idp.jwks_fetches() > before {
        Check::pass("idp", format!("{issuer} reaches the mock IdP on {}", config.idp.listen))
    } else {
        Check::fail(
            "idp",
            format!(
                "{jwks} does not reach the mock IdP listening on {}: the issuer's host and port must lead to idp.listen",
                config.idp.listen
            ),
        )
    }
}

/// Writes `text` to `path`, refusing to overwrite an existing file (the file is created
/// exclusively, so nothing written in between is replaced either).
pub fn write_new(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => format!("{} exists; choose another --out or remove it", path.display()),
            _ => format!("{}: {e}", path.display()),
        })?;
    file.write_all(text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests;
