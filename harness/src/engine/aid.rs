//! The AID preflight (issue #16): from a bare domain to the endpoint, before anything of the
//! auth.md flow is sent. The `_agent.<domain>` TXT lookup through the configured resolver,
//! the one record selected (or the `/.well-known/agent` fallback when DNS has none), the PKA
//! endpoint proof when the record publishes a key, and the handoff: the endpoint becomes the
//! protected URL auth.md discovery starts from. When any of it fails, no identity material
//! goes to the endpoint: every auth.md case is SKIP (or INCONCLUSIVE, for no answer) with the
//! reason. The `aid` step (`aid_step`) judges each rule on its own, with the answers as evidence.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::aid::{self, AidRecord, Challenge, Inspection, Preflight, Selection, V1Challenge};
use crate::outcome::Exchange;
use crate::target::{AidTarget, TargetConfig};
use crate::transport::{HostPolicy, Transport};
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::{Resolver, TokioResolver};

/// An answer shown in a report is capped: a hostile zone can send 64 KiB per answer.
const ANSWER_CAP: usize = 2048;
/// The fallback document's size limit (AID `.well-known` guardrails).
const WELL_KNOWN_MAX: u64 = 64 * 1024;

/// The run's DNS: the configured server, or the system resolver for real domains.
pub struct Dns {
    resolver: TokioResolver,
    pub(super) label: String,
}

/// What a TXT lookup gave.
pub enum Txt {
    /// Answers (each record's strings concatenated, as AID says) and their smallest TTL.
    Found {
        /// The records' data.
        answers: Vec<Vec<u8>>,
        /// Seconds.
        ttl: u32,
    },
    /// NXDOMAIN or no TXT data at the name.
    NoRecord,
    /// No answer (timeout, refused, unreachable).
    Failed(String),
}

impl Dns {
    /// A resolver for `aid`: no cache (every lookup is evidence), one attempt, its timeout.
    pub fn new(aid: &AidTarget) -> Result<Self, String> {
        let mut builder = match aid.resolver {
            Some(addr) => {
                let group = NameServerConfigGroup::from_ips_clear(&[addr.ip()], addr.port(), true);
                Resolver::builder_with_config(ResolverConfig::from_parts(None, vec![], group), TokioConnectionProvider::default())
            }
            None => Resolver::builder_tokio().map_err(|e| format!("the system resolver: {e}"))?,
        };
        let options = builder.options_mut();
        options.timeout = Duration::from_secs(aid.dns_timeout_secs);
        options.attempts = 1;
        options.cache_size = 0;
        Ok(Self {
            resolver: builder.build(),
            label: aid.resolver.map(|a| a.to_string()).unwrap_or_else(|| "system".into()),
        })
    }

    /// The TXT records at `name`.
    pub async fn txt(&self, name: &str) -> Txt {
        match self.resolver.txt_lookup(format!("{name}.")).await {
            Ok(lookup) => Txt::Found {
                ttl: lookup.as_lookup().records().iter().map(|r| r.ttl()).min().unwrap_or(0),
                answers: lookup
                    .iter()
                    .map(|t| t.txt_data().iter().flat_map(|s| s.iter().copied()).collect())
                    .collect(),
            },
            Err(e) => match e.proto().map(|p| p.kind()) {
                // Only NXDOMAIN and an empty NOERROR say there is no record. hickory reports
                // SERVFAIL, REFUSED and the other error codes as "no records found" too, but
                // they say nothing about the record: the lookup got no usable answer.
                Some(ProtoErrorKind::NoRecordsFound {
                    response_code: ResponseCode::NXDomain | ResponseCode::NoError,
                    ..
                }) => Txt::NoRecord,
                Some(ProtoErrorKind::NoRecordsFound { response_code, .. }) => {
                    Txt::Failed(format!("the server answered {response_code} (no usable answer)"))
                }
                _ => Txt::Failed(e.to_string()),
            },
        }
    }

    /// The addresses of `host`.
    pub async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        self.resolver
            .lookup_ip(format!("{host}."))
            .await
            .map(|l| l.iter().collect())
            .map_err(|e| e.to_string())
    }

    /// A lookup as an exchange, so it is evidence in the report like any HTTP answer.
    fn exchange(&self, step: &str, name: &str, txt: &Txt, started: Instant) -> Exchange {
        let (body, error, ttl) = match txt {
            Txt::Found { answers, ttl } => (answers.iter().map(|a| shown(a)).collect::<Vec<_>>().join("\n"), None, Some(*ttl)),
            Txt::NoRecord => ("(no TXT record)".to_string(), None, None),
            Txt::Failed(e) => (String::new(), Some(format!("DNS: {e}")), None),
        };
        Exchange {
            step: step.to_string(),
            method: "DNS TXT".into(),
            url: format!("dns://{}/{name}", self.label),
            response_headers: ttl.map(|t| vec![("ttl".to_string(), t.to_string())]).unwrap_or_default(),
            body_bytes: body.len() as u64,
            response_body: body,
            error,
            elapsed_ms: started.elapsed().as_millis() as u64,
            reproduce: match self.label.rsplit_once(':') {
                Some((ip, port)) => format!("dig @{} -p {port} TXT {name}", ip.trim_matches(['[', ']'])),
                None => format!("dig TXT {name}"),
            },
            ..Exchange::default()
        }
    }

    /// Looks `name` up and records the exchange.
    pub(super) async fn lookup(&self, step: &str, name: &str, into: &mut Vec<Exchange>) -> Txt {
        let started = Instant::now();
        let txt = self.txt(name).await;
        into.push(self.exchange(step, name, &txt, started));
        txt
    }
}

/// A TXT answer as text: lossy (a report must show non-UTF-8 data, not drop it) and capped.
fn shown(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(ANSWER_CAP)]).into_owned();
    if bytes.len() > ANSWER_CAP {
        format!("{text}… ({} bytes)", bytes.len())
    } else {
        text
    }
}

/// The answers that claim AID, as text; non-UTF-8 data that claims AID is invalid as such.
pub(super) fn aid_answers(answers: &[Vec<u8>]) -> (Vec<String>, Vec<(String, String)>) {
    let mut texts = Vec::new();
    let mut broken = Vec::new();
    for a in answers {
        match std::str::from_utf8(a) {
            Ok(t) if aid::claims_aid(t) => texts.push(t.to_string()),
            Ok(_) => {}
            Err(_) if aid::claims_aid(&String::from_utf8_lossy(a)) => {
                broken.push((shown(a), "the TXT data is not UTF-8".to_string()));
            }
            Err(_) => {}
        }
    }
    (texts, broken)
}

/// `_agent.<domain>`.
pub(super) fn agent_name(domain: &str) -> String {
    format!("_agent.{domain}")
}

/// The fallback URL on the exact host.
pub(super) fn well_known_url(aid: &AidTarget) -> String {
    match aid.https_port {
        443 => format!("https://{}/.well-known/agent", aid.domain),
        port => format!("https://{}:{port}/.well-known/agent", aid.domain),
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// One proof challenge: aid2's RFC 9421 response signature (AID v2.0 Appendix B, with v2.1
/// domain binding asked for), or aid1's handshake (v1.2 Appendix D).
pub(super) enum Proof {
    /// An aid2 challenge.
    V2(Challenge),
    /// An aid1 challenge.
    V1(V1Challenge),
}

/// A proof request to `record`'s endpoint: the challenge and its request headers. An aid2
/// request asks the endpoint to bind its proof to `domain` (the queried host), as AID v2.1
/// says clients should by default.
pub(super) fn proof_request(record: &AidRecord, domain: Option<&str>) -> Result<(Proof, Vec<(String, String)>), String> {
    let k = record.pka.as_deref().ok_or("the record publishes no key")?;
    if record.version == "aid1" {
        let challenge = V1Challenge::new(&record.uri, record.kid.as_deref().unwrap_or_default(), now())?;
        let headers = challenge.headers();
        return Ok((Proof::V1(challenge), headers));
    }
    let challenge = Challenge::new(&record.uri, k, domain)?;
    let headers = challenge.headers();
    Ok((Proof::V2(challenge), headers))
}

pub(super) fn inspect(record: &AidRecord, proof: &Proof, exchange: &Exchange) -> Inspection {
    let k = record.pka.as_deref().unwrap_or_default();
    match proof {
        Proof::V2(challenge) => aid::inspect(challenge, k, exchange.status.unwrap_or(0), &exchange.response_headers, now()),
        Proof::V1(challenge) => aid::inspect_v1(challenge, k, &exchange.response_headers, now()),
    }
}

/// Whether the preflight may fetch the endpoint a record names. A DNS record is the target's
/// word, so it gets the host policy every other URL gets: no user part, no IP literal, no name
/// that resolves to a link-local, unspecified or multicast address, and loopback only on the
/// target's own port, unless `allowed_hosts` names the host.
/// `addrs` are what the run's DNS gave the host ([`resolve_host`]).
fn endpoint_allowed(target: &TargetConfig, uri: &str, addrs: &[IpAddr]) -> Result<(), String> {
    let u = url::Url::parse(uri).map_err(|e| format!("not a URL ({e})"))?;
    let mut listed = HostPolicy::default();
    for host in &target.allowed_hosts {
        listed.allow_host(host);
    }
    if listed.check(uri).is_ok() {
        return Ok(());
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("it carries a user part".into());
    }
    match u.host() {
        Some(url::Host::Domain(_)) => {}
        Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => return Err("its host is an IP address, not a name".into()),
        None => return Err("it has no host".into()),
    }
    let special = |ip: &IpAddr| match ip {
        IpAddr::V4(v4) => v4.is_link_local() || v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80 || v6.is_unspecified() || v6.is_multicast(),
    };
    if let Some(ip) = addrs.iter().find(|ip| special(ip)) {
        return Err(format!("its host resolves to {ip}, a link-local, unspecified or multicast address"));
    }
    let own_port = url::Url::parse(&target.base_url).ok().and_then(|b| b.port_or_known_default());
    if let Some(port) = own_port
        && addrs.iter().any(IpAddr::is_loopback)
        && u.port_or_known_default() != Some(port)
    {
        return Err(format!("its host is loopback on another port than the target's ({port})"));
    }
    Ok(())
}

/// The host of `url` and the addresses the run's DNS gives it, when the run has its own DNS
/// and the host is a name (`None` otherwise: the system resolver answers at connect time).
async fn resolve_host(dns: &Dns, aid: &AidTarget, url: &str) -> Option<(String, Vec<IpAddr>)> {
    aid.resolver?;
    let host = url::Url::parse(url).ok()?.host_str()?.to_string();
    if host.parse::<IpAddr>().is_ok() {
        return None;
    }
    // A name the configured DNS cannot resolve resolves to nothing: the system resolver is
    // never asked behind the user's back.
    let addrs = dns.addresses(&host).await.unwrap_or_default();
    Some((host, addrs))
}

/// Allows the origin of `url`, and pins its host to what the run's DNS gave ([`resolve_host`]).
fn admit(url: &str, resolved: Option<(String, Vec<IpAddr>)>, policy: &mut HostPolicy) -> Vec<IpAddr> {
    policy.allow_origin_of(url);
    let Some((host, addrs)) = resolved else { return Vec::new() };
    policy.resolve(&host, addrs.clone());
    addrs
}

/// Runs the preflight for `target.aid`. Fills in `target.base_url` (and the protected URL
/// discovery starts from) from the selected record where the config leaves them out, and
/// admits the record's hosts into `policy`. `transport` makes a client under a policy.
pub(super) async fn preflight(
    dns: &Dns,
    target: &mut TargetConfig,
    policy: &mut HostPolicy,
    transport: impl Fn(&HostPolicy) -> Result<Transport, String>,
) -> Preflight {
    let Some(aid) = target.aid.clone() else {
        return Preflight::default();
    };
    let mut p = Preflight {
        domain: aid.domain.clone(),
        name: agent_name(&aid.domain),
        resolver: dns.label.clone(),
        ..Preflight::default()
    };
    let Some((why, dns_failed)) = from_dns(dns, &mut p).await else {
        return p;
    };
    let dns_failure = (p.selected.is_none()).then_some(why);
    if let Some(why) = dns_failure {
        let url = well_known_url(&aid);
        admit(&url, resolve_host(dns, &aid, &url).await, policy);
        match fallback(&url, policy, &transport, &mut p.exchanges).await {
            Ok(record) => {
                p.selected = Some(record);
                p.source = Some("well-known-tls".into());
            }
            Err(fallback_why) => {
                // DNS gave no usable answer: whether a record exists is unknown, whatever the
                // fallback said, so the record cases cannot be decided.
                p.no_answer = dns_failed;
                p.error = Some(format!("{}: {why}; the fallback {url}: {fallback_why}", p.name));
                return p;
            }
        }
    }
    let Some(record) = p.selected.clone() else { return p };
    p.warnings.extend(aid::client_divergences(&record.raw));
    if !aid::HANDOFF_PROTOCOLS.contains(&record.proto.as_str()) {
        // v1.2 §2.3 step 6: a client that does not support the protocol fails.
        p.error = Some(format!(
            "ERR_UNSUPPORTED_PROTO: the selected record's protocol `{}` is not one the auth.md handoff starts from ({})",
            record.proto,
            aid::HANDOFF_PROTOCOLS.join(", ")
        ));
        return p;
    }
    if !record.uri.starts_with("https://") {
        p.error = Some(format!("the selected record's endpoint `{}` is not an https URL", record.uri));
        return p;
    }
    let resolved = resolve_host(dns, &aid, &record.uri).await;
    let found = resolved.as_ref().map(|(_, a)| a.as_slice()).unwrap_or_default();
    if let Err(why) = endpoint_allowed(target, &record.uri, found) {
        p.error = Some(format!(
            "the selected record's endpoint `{}` was not fetched: {why}; list its host in allowed_hosts to test it",
            record.uri
        ));
        return p;
    }
    let addrs = admit(&record.uri, resolved, policy);
    // A named endpoint on loopback is still loopback: cases get their own source addresses.
    if target.isolate_source_ips.is_none() && !addrs.is_empty() && addrs.iter().all(IpAddr::is_loopback) {
        target.isolate_source_ips = Some(true);
    }
    if let Some(dep) = record.dep.as_deref().and_then(|d| aid::deprecation(d).ok()) {
        // v2.0 §2.3 step 8: a past `dep` fails gracefully, a future one is a warning.
        if dep <= time::OffsetDateTime::now_utc() {
            p.error = Some(format!(
                "the selected record is deprecated since {} (`e`): a client stops here",
                record.dep.clone().unwrap_or_default()
            ));
            return p;
        }
        p.warnings.push(format!(
            "the selected record will be deprecated at {}",
            record.dep.clone().unwrap_or_default()
        ));
    }
    if record.pka.is_some() {
        match prove(&record, &aid.domain, policy, &transport, &mut p.exchanges).await {
            Ok(bound) => {
                p.proof = Some("verified".into());
                p.domain_bound = bound;
            }
            Err((why, no_answer)) => {
                p.proof = Some(why.clone());
                p.no_answer = no_answer;
                p.error = Some(format!("the endpoint did not prove control of the DNS key: {why}"));
                return p;
            }
        }
    }
    // The handoff: the endpoint is the protected URL auth.md discovery starts from.
    if target.base_url.is_empty()
        && let Ok(u) = url::Url::parse(&record.uri)
    {
        target.base_url = u.origin().ascii_serialization();
        if target.oracle.is_none() && target.protected_path.is_none() {
            target.protected_path = Some(record.uri.clone());
        }
    }
    p
}

/// The DNS half of the preflight. `None`: a record exists but cannot be used (`p.error` says
/// why; AID falls back only when there is no record or no answer). Otherwise why DNS gave no
/// record (empty when one was selected) and whether the lookup got no answer.
async fn from_dns(dns: &Dns, p: &mut Preflight) -> Option<(String, bool)> {
    let looked = dns.lookup("aid: lookup", &p.name, &mut p.exchanges).await;
    match &looked {
        Txt::Found { answers, .. } => {
            p.answers = answers.iter().map(|a| shown(a)).collect();
            let (texts, broken) = aid_answers(answers);
            let selection = Selection::of(&texts);
            p.invalid = broken.into_iter().chain(selection.invalid.clone()).collect();
            match selection.chosen() {
                Ok(r) => {
                    p.selected = Some(r.clone());
                    p.source = Some("dns".into());
                    let others = selection.valid.iter().filter(|o| o.version != r.version).count();
                    if others > 0 {
                        p.warnings.push(format!(
                            "{} selected over {others} valid record(s) of an older version (AID v2.0 §2.3 step 6)",
                            r.version
                        ));
                    }
                    Some((String::new(), false))
                }
                Err(why) if !texts.is_empty() || !p.invalid.is_empty() => {
                    p.error = Some(format!("{}: {why}", p.name));
                    None
                }
                Err(why) => Some((why, false)),
            }
        }
        Txt::NoRecord => Some(("no AID record".to_string(), false)),
        Txt::Failed(e) => Some((format!("the DNS lookup failed: {e}"), true)),
    }
}

/// Fetches and parses the fallback document.
async fn fallback(
    url: &str,
    policy: &HostPolicy,
    transport: &impl Fn(&HostPolicy) -> Result<Transport, String>,
    exchanges: &mut Vec<Exchange>,
) -> Result<AidRecord, String> {
    let net = transport(policy)?;
    let exchange = net.send("aid: fallback", "GET", url, &[], None).await;
    exchanges.push(exchange.clone());
    judge_well_known(&exchange)
}

/// The fallback guardrails and grammar: 200 without a redirect, JSON, at most 64 KiB.
pub(super) fn judge_well_known(exchange: &Exchange) -> Result<AidRecord, String> {
    if let Some(e) = &exchange.error {
        return Err(format!("no answer ({e})"));
    }
    match exchange.status {
        Some(200) => {}
        Some(s) => return Err(format!("status {s}, not 200 (redirects are not followed)")),
        None => return Err("no status".into()),
    }
    let content_type = exchange.header("content-type").unwrap_or_default().to_ascii_lowercase();
    if !content_type.starts_with("application/json") {
        return Err(format!("Content-Type `{content_type}`, not application/json"));
    }
    if exchange.body_bytes > WELL_KNOWN_MAX || exchange.truncated {
        return Err(format!("{} bytes, more than the 64 KiB allowed", exchange.body_bytes));
    }
    let doc = exchange.json().ok_or("the body is not JSON")?;
    aid::parse_json(&doc).map_err(|e| e.why)
}

/// One proof round trip: whether an aid2 proof is domain-bound; `Err((why, no_answer))`.
async fn prove(
    record: &AidRecord,
    domain: &str,
    policy: &HostPolicy,
    transport: &impl Fn(&HostPolicy) -> Result<Transport, String>,
    exchanges: &mut Vec<Exchange>,
) -> Result<Option<bool>, (String, bool)> {
    let (proof, headers) = proof_request(record, Some(domain)).map_err(|e| (e, false))?;
    let net = transport(policy).map_err(|e| (e, false))?;
    let exchange = net.send("aid: proof", "GET", &record.uri, &headers, None).await;
    exchanges.push(exchange.clone());
    if let Some(e) = &exchange.error {
        return Err((format!("no answer ({e})"), true));
    }
    let judged = inspect(record, &proof, &exchange);
    match judged.first() {
        Some(why) => Err((why.clone(), false)),
        None => Ok(judged.bound.filter(|_| matches!(proof, Proof::V2(_)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(status: u16, content_type: &str, body: &str) -> Exchange {
        Exchange {
            status: Some(status),
            response_headers: vec![("content-type".into(), content_type.into())],
            body_bytes: body.len() as u64,
            response_body: body.into(),
            ..Exchange::default()
        }
    }

    #[test]
    fn the_fallback_document_is_judged_by_its_guardrails() {
        let good = r#"{"v":"aid2","u":"https://a.example/api","p":"openapi"}"#;
        assert!(judge_well_known(&exchange(200, "application/json", good)).is_ok());
        assert!(
            judge_well_known(&exchange(302, "application/json", good))
                .unwrap_err()
                .contains("redirect")
        );
        assert!(
            judge_well_known(&exchange(200, "text/plain", good))
                .unwrap_err()
                .contains("Content-Type")
        );
        let http = r#"{"v":"aid2","u":"http://a.example/api","p":"openapi"}"#;
        assert!(
            judge_well_known(&exchange(200, "application/json", http))
                .unwrap_err()
                .contains("https")
        );
        let mut big = exchange(200, "application/json", good);
        big.body_bytes = WELL_KNOWN_MAX + 1;
        assert!(judge_well_known(&big).unwrap_err().contains("64 KiB"));
    }

    #[test]
    fn non_utf8_aid_answers_are_invalid_and_other_txt_data_is_ignored() {
        let answers = vec![
            b"v=aid2;p=mcp;u=https://a.example\xff".to_vec(),
            b"google-site-verification=x".to_vec(),
        ];
        let (texts, broken) = aid_answers(&answers);
        assert!(texts.is_empty());
        assert_eq!(broken.len(), 1);
        assert!(broken[0].1.contains("UTF-8"));
        assert!(shown(&vec![b'a'; 5000]).ends_with("(5000 bytes)"));
    }
}
