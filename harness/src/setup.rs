//! Getting a target configured: `init` probes a live target and writes a commented
//! `target.toml`; `check-config` validates a configuration against the live target before a
//! run, one named check at a time. Both talk to the target only through the bounded,
//! policy-checked [`Transport`], like the engine.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::redact::Secrets;
use crate::target::{MailConfig, TargetConfig};
use crate::transport::{HostPolicy, Transport};

/// One check of `check-config`: what was checked, whether it held, and why.
#[derive(Clone, Debug)]
pub struct Check {
    /// What was checked (`discovery`, `oracle`, …).
    pub name: &'static str,
    /// Whether it held.
    pub ok: bool,
    /// What was found, or what to change.
    pub detail: String,
}

impl Check {
    fn pass(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            ok: true,
            detail: detail.into(),
        }
    }

    fn fail(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            ok: false,
            detail: detail.into(),
        }
    }
}

/// What `init` learned about a target.
#[derive(Clone, Debug, Default)]
pub struct Probe {
    /// The target's base URL.
    pub base_url: String,
    /// The protected endpoint discovery started from (from the PRM `resource`, or the default).
    pub protected_path: String,
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
}

fn transport(target: &TargetConfig, secrets: &Secrets) -> Result<Transport, String> {
    let mut policy = HostPolicy::default();
    policy.allow_origin_of(&target.base_url);
    for host in &target.allowed_hosts {
        policy.allow_host(host);
    }
    Transport::new(None, None, target.limits(), Arc::new(policy), secrets.clone())
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

/// Probes `base_url`: discovery, then (when anonymous registration is offered) one anonymous
/// registration whose credential is shown to the candidate oracle endpoints.
pub async fn probe(base_url: &str) -> Result<Probe, String> {
    let target = TargetConfig::new(base_url);
    target.check()?;
    let secrets = Secrets::default();
    let net = transport(&target, &secrets)?;
    let mut probe = Probe {
        base_url: target.base_url.clone(),
        protected_path: "/api/resource".into(),
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
    probe.anonymous = metadata["agent_auth"]["identity_types_supported"]
        .as_array()
        .is_some_and(|a| a.iter().any(|v| v == "anonymous"));
    let register = metadata["agent_auth"]["register_uri"].as_str().map(str::to_string);
    probe.metadata = Some(metadata);
    let (Some(register), true) = (register, probe.anonymous) else {
        return Ok(probe);
    };
    probe_registration(&net, &target, &register, &mut probe).await;
    Ok(probe)
}

/// Registers anonymously once: the claim token's expiry gives the registration TTL, and the
/// credential finds the identity/scope oracle among the usual paths.
async fn probe_registration(net: &Transport, target: &TargetConfig, register: &str, probe: &mut Probe) {
    let body = json!({ "type": "anonymous", "requested_credential_type": "api_key" }).to_string();
    let reg = net
        .send(
            "probe",
            "POST",
            register,
            &[("content-type".into(), "application/json".into())],
            Some(body),
        )
        .await;
    let Some(reg) = reg.json() else { return };
    if let Some(expires) = reg["claim_token_expires"]
        .as_str()
        .and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
    {
        probe.registration_ttl = Some((expires - time::OffsetDateTime::now_utc()).whole_seconds().max(0) + 1);
    }
    let Some(credential) = reg["credential"].as_str() else {
        return;
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

/// A commented `target.toml` for what `probe` found.
pub fn render(probe: &Probe) -> String {
    let mut out = format!(
        "# Written by `authmd-conformance init --target {}`. Review every value, then\n\
         # `authmd-conformance check-config --config <this file>` before a run.\n\
         # Top-level keys must come before the first [table].\n\n\
         base_url = \"{}\"\nprofile = \"v0.1\"\nprotected_path = \"{}\"\n\
         # Hosts besides base_url's origin the harness may fetch (an authorization server elsewhere).\n\
         allowed_hosts = []\n\n",
        probe.base_url, probe.base_url, probe.protected_path
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
    out += "# Where the harness reads your claim mail. One of:\n[mail]\n\
            smtp = { listen = \"127.0.0.1:2525\" }   # relay your mail here\n\
            # directory = { path = \"/path/to/outbox\" }                     # .eml or .html per message\n\
            # url_template = { template = \"/mail/{registration_id}.html\" } # an HTTP outbox\n\
            # mailpit = { base = \"http://127.0.0.1:8025\" }\n\n";
    out += "# The mock IdP must own an issuer on your trust list.\n[idp]\nissuer = \"http://localhost:4000\"\nlisten = \"127.0.0.1:4000\"\n\
            # Your JWKS cache: seconds it refuses to refetch on an unknown kid (jose: 30).\njwks_refetch_cooldown_secs = 0\n\
            # A second trusted issuer enables the two-issuer cases:\n# second = { issuer = \"http://localhost:4001\", listen = \"127.0.0.1:4001\" }\n\n";
    out += "# No clock header: TTL cases wait in real time up to this budget, or skip saying what they need.\n[clock]\n# offset_header = \"Authmd-Test-Clock-Offset\"\nwait_budget_secs = 0\n\n[ttl]\n";
    match probe.registration_ttl {
        Some(ttl) => out += &format!("registration = {ttl}   # from claim_token_expires of a probe registration\n"),
        None => out += "registration = 86400\n",
    }
    out += "claim_attempt = 600\notp = 600\naccess_token = 3600\n";
    out
}

/// Validates `config` against the live target: each check says what held or what to change.
pub async fn check(config: &TargetConfig) -> Vec<Check> {
    let mut checks = Vec::new();
    let secrets = Secrets::default();
    let net = match transport(config, &secrets) {
        Ok(n) => n,
        Err(e) => return vec![Check::fail("http client", e)],
    };
    // Discovery.
    let (_, prm, error) = get_json(&net, &config.url("/.well-known/oauth-protected-resource"), &[]).await;
    match (prm.filter(|p| p.is_object()), error) {
        (_, Some(e)) => checks.push(Check::fail("discovery", format!("no answer from {}: {e}", config.base_url))),
        (None, None) => checks.push(Check::fail(
            "discovery",
            "no Protected Resource Metadata at /.well-known/oauth-protected-resource",
        )),
        (Some(prm), None) => {
            let as_url = prm["authorization_servers"][0].as_str().unwrap_or_default().to_string();
            match net.check(&as_url) {
                Ok(()) => checks.push(Check::pass("discovery", format!("PRM found; authorization server {as_url}"))),
                Err(why) => checks.push(Check::fail("discovery", format!("authorization server {as_url}: {why}"))),
            }
        }
    }
    // The mock IdP's issuer must reach the listener the harness will start.
    checks.push(check_issuer(config).await);
    // Mail.
    checks.push(check_mail(config, &net).await);
    // The oracle must challenge without a credential (it is also discovery's starting point).
    checks.push(match &config.oracle {
        None => Check::fail("oracle", "no [oracle]: the matching and scope cases will be skipped"),
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
    }
    checks
}

/// Is the mail source readable (or, for SMTP, can the sink listen)?
async fn check_mail(config: &TargetConfig, net: &Transport) -> Check {
    match &config.mail {
        None => Check::fail("mail", "no [mail]: the claim cases will be skipped"),
        Some(MailConfig::Smtp { listen }) => match std::net::TcpListener::bind(listen) {
            Ok(_) => Check::pass("mail", format!("the SMTP sink can listen on {listen}; relay your claim mail there")),
            Err(e) => Check::fail("mail", format!("mail.smtp listen {listen}: {e}")),
        },
        Some(MailConfig::Directory { path }) => match std::fs::read_dir(path) {
            Ok(_) => Check::pass("mail", format!("{} is readable", path.display())),
            Err(e) => Check::fail("mail", format!("mail.directory {}: {e}", path.display())),
        },
        Some(MailConfig::UrlTemplate { template }) => {
            if template.contains("{registration_id}") || template.contains("{recipient}") {
                let probe = config.url(
                    &template
                        .replace("{registration_id}", "authmd-check")
                        .replace("{recipient}", "check%40example.com"),
                );
                let e = net.send("check", "GET", &probe, &[], None).await;
                match e.error {
                    None => Check::pass(
                        "mail",
                        format!(
                            "the outbox answers ({} for a registration that does not exist)",
                            e.status.unwrap_or(0)
                        ),
                    ),
                    Some(why) => Check::fail("mail", format!("mail.url_template: {why}")),
                }
            } else {
                Check::fail("mail", "mail.url_template needs {registration_id} or {recipient}")
            }
        }
        Some(MailConfig::Mailpit { base }) => {
            let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).no_proxy().build();
            match http {
                Ok(http) => match http.get(format!("{base}/api/v1/messages?limit=1")).send().await {
                    Ok(r) if r.status().is_success() => Check::pass("mail", format!("the Mailpit API at {base} answers")),
                    Ok(r) => Check::fail("mail", format!("the Mailpit API at {base} answered {}", r.status())),
                    Err(e) => Check::fail("mail", format!("mail.mailpit {base}: {e}")),
                },
                Err(e) => Check::fail("mail", e.to_string()),
            }
        }
    }
}

async fn check_issuer(config: &TargetConfig) -> Check {
    let Some(issuer) = &config.idp.issuer else {
        return Check::fail(
            "idp",
            "no idp.issuer: the mock IdP gets a random port, which no trust list can name; the ID-JAG cases need it",
        );
    };
    let idp = match authmd_mock_idp::MockIdp::start(authmd_mock_idp::IdpConfig {
        listen: config.idp.listen,
        issuer: Some(issuer.clone()),
        ..authmd_mock_idp::IdpConfig::default()
    })
    .await
    {
        Ok(idp) => idp,
        Err(e) => return Check::fail("idp", format!("idp.listen {}: {e}", config.idp.listen)),
    };
    let jwks = idp.jwks_uri();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).no_proxy().build();
    let reached = match http {
        Ok(http) => http.get(&jwks).send().await.map(|r| r.status().is_success()).unwrap_or(false),
        Err(_) => false,
    };
    if reached && idp.jwks_fetches() > 0 {
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

/// Writes `text` to `path`, refusing to overwrite an existing file.
pub fn write_new(path: &Path, text: &str) -> Result<(), String> {
    if path.exists() {
        return Err(format!("{} exists; choose another --out or remove it", path.display()));
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_members_at_any_depth() {
        let body = json!({ "who": null, "credential": { "scope": ["a"] }, "user": { "id": "u" } });
        assert_eq!(find_member(&body, &["scope"], "", false).as_deref(), Some("/credential/scope"));
        assert_eq!(find_member(&body, &["id"], "", false).as_deref(), Some("/user/id"));
        assert_eq!(find_member(&body, &["who"], "", false), None);
        assert_eq!(find_member(&body, &["who"], "", true).as_deref(), Some("/who"));
    }

    #[test]
    fn rendered_config_parses() {
        let probe = Probe {
            base_url: "http://127.0.0.1:8000".into(),
            protected_path: "/api".into(),
            oracle: Some(("/api/resource".into(), "/user/id".into(), "/credential/scope".into())),
            registration_ttl: Some(86400),
            ..Probe::default()
        };
        let text = render(&probe);
        let config: TargetConfig = toml::from_str(&text).expect("the rendered config parses");
        assert!(config.check().is_ok());
        assert_eq!(config.oracle.map(|o| o.scopes_pointer).as_deref(), Some("/credential/scope"));
    }
}
