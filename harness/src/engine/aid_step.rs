//! The `aid` step: each rule of AID judged on its own at the run's domain, with the DNS
//! answers, the fallback document or a fresh PKA challenge as evidence (the preflight itself
//! is in [`super::aid`]).

use serde_json::Value;

use super::aid::{Dns, Proof, Txt, agent_name, aid_answers, inspect, judge_well_known, proof_request, well_known_url};
use super::context::CaseCtx;
use super::steps::{StepError, StepOutcome};
use super::{HarnessError, parse_challenge};
use crate::aid::{self, AidRecord, Rule, Selection};
use crate::language::AidCheck;
use crate::outcome::{Exchange, FindingKind};
use crate::target::AidTarget;

impl CaseCtx<'_> {
    /// The `aid` step.
    pub(super) async fn aid_step(&mut self, label: &str, check: AidCheck) -> StepOutcome {
        let (Some(dns), Some(aid)) = (self.h.dns.clone(), self.h.target.aid.clone()) else {
            return Err(StepError::Harness(HarnessError::Inapplicable(
                "needs a domain: run --domain, or [aid] in the target config".into(),
            )));
        };
        match check {
            AidCheck::ExactHost => self.exact_host(label, &dns, &aid).await?,
            AidCheck::WellKnown => self.well_known(label, &aid).await?,
            AidCheck::Handoff => self.handoff(label).await?,
            AidCheck::Signed
            | AidCheck::Components
            | AidCheck::Fresh
            | AidCheck::Keyid
            | AidCheck::Signature
            | AidCheck::Nonce
            | AidCheck::NoStore
            | AidCheck::HandshakeOk => self.proof_rule(label, check).await?,
            AidCheck::Replay => self.replay(label).await?,
            AidCheck::UnservedDomain => self.unserved_domain(label, &aid).await?,
            AidCheck::Grammar
            | AidCheck::Single
            | AidCheck::Https
            | AidCheck::Key
            | AidCheck::Ttl
            | AidCheck::NoKid
            | AidCheck::Proto
            | AidCheck::Metadata => self.record_rule(label, check, &dns, &aid).await?,
        }
        Ok((None, Default::default()))
    }

    /// Looks the domain's name up as evidence; no answer is INCONCLUSIVE.
    async fn answers(&mut self, label: &str, dns: &Dns, name: &str) -> Result<Option<(Vec<Vec<u8>>, u32)>, HarnessError> {
        match dns.lookup(label, name, &mut self.exchanges).await {
            Txt::Found { answers, ttl } => Ok(Some((answers, ttl))),
            Txt::NoRecord => Ok(None),
            Txt::Failed(e) => Err(HarnessError::NoResponse {
                url: format!("dns://{}/{name}", dns.label),
                reason: e,
            }),
        }
    }

    async fn record_rule(&mut self, label: &str, check: AidCheck, dns: &Dns, aid: &AidTarget) -> Result<(), HarnessError> {
        let name = agent_name(&aid.domain);
        let Some((answers, ttl)) = self.answers(label, dns, &name).await? else {
            self.finding(label, FindingKind::AidRecord, format!("an AID record at {name}"), "no TXT record");
            return Ok(());
        };
        let (texts, broken) = aid_answers(&answers);
        if texts.is_empty() && broken.is_empty() {
            self.finding(
                label,
                FindingKind::AidRecord,
                format!("an AID record at {name}"),
                "TXT data, none of it AID",
            );
            return Ok(());
        }
        let mut problems: Vec<String> = Vec::new();
        match check {
            AidCheck::Grammar => {
                problems.extend(broken.iter().map(|(a, why)| format!("{why}: {a}")));
                problems.extend(texts.iter().filter_map(|t| match aid::parse(t) {
                    Err(e) if e.rule == Rule::Grammar => Some(format!("{e}: {t}")),
                    _ => None,
                }));
            }
            AidCheck::Single => {
                // Per version (AID v2.0 §2.3 step 5): an aid1 record beside one aid2 record is
                // the migration shape, not an ambiguity.
                let selection = Selection::of(&texts);
                let of_version = selection.of_version();
                if of_version.len() > 1 {
                    problems.push(format!(
                        "{} valid {} AID records at {name}; clients must refuse the ambiguity",
                        of_version.len(),
                        of_version[0].version
                    ));
                }
            }
            AidCheck::NoKid => {
                for f in texts.iter().map(|t| aid::fields(t)) {
                    if f.get("version").is_some_and(|v| v == "aid2") && f.contains_key("kid") {
                        problems.push(format!("an aid2 record with `i`/`kid` = `{}`", f["kid"]));
                    }
                }
            }
            AidCheck::Proto => {
                for f in texts.iter().map(|t| aid::fields(t)) {
                    problems.extend(aid::check_proto(f.get("proto").map_or("", String::as_str)).err());
                }
            }
            AidCheck::Metadata => {
                for f in texts.iter().map(|t| aid::fields(t)) {
                    let get = |k: &str| f.get(k).map(String::as_str);
                    if let Err(why) = aid::check_metadata(get("auth"), get("docs"), get("dep")) {
                        problems.push(why);
                    }
                }
            }
            AidCheck::Https => {
                for t in &texts {
                    let f = aid::fields(t);
                    let (proto, uri) = (
                        f.get("proto").cloned().unwrap_or_default(),
                        f.get("uri").cloned().unwrap_or_default(),
                    );
                    if let Err(why) = aid::check_uri(&proto, &uri) {
                        problems.push(format!("{why}: `{uri}`"));
                    }
                }
            }
            AidCheck::Key => {
                let keyed: Vec<_> = texts.iter().map(|t| aid::fields(t)).filter(|f| f.contains_key("pka")).collect();
                if keyed.is_empty() {
                    return Err(HarnessError::Inapplicable("the record publishes no PKA key".into()));
                }
                for f in keyed {
                    let k = f.get("pka").cloned().unwrap_or_default();
                    let result = match f.get("version").map(String::as_str) {
                        Some("aid2") => aid::check_key(&k),
                        _ if f.get("kid").is_some_and(|i| !i.is_empty()) => aid::multibase_key(&k).map(|_| ()),
                        _ => Err("an aid1 `k` without `i`".into()),
                    };
                    problems.extend(result.err());
                }
            }
            AidCheck::Ttl if !(300..=900).contains(&ttl) => {
                problems.push(format!("TTL {ttl} s, outside the recommended 300–900 s"));
            }
            _ => {}
        }
        for p in problems {
            self.finding(label, FindingKind::AidRecord, rule_text(check), p);
        }
        Ok(())
    }

    async fn exact_host(&mut self, label: &str, dns: &Dns, aid: &AidTarget) -> Result<(), HarnessError> {
        let name = agent_name(&aid.domain);
        let here = self.answers(label, dns, &name).await?;
        if here.is_some_and(|(a, _)| !aid_answers(&a).0.is_empty()) {
            return Ok(());
        }
        // Only to tell the two failures apart: the harness never uses a parent's record.
        let parent = aid.domain.split_once('.').map(|(_, p)| p).filter(|p| p.contains('.'));
        let at_parent = match parent {
            Some(p) => self
                .answers(label, dns, &agent_name(p))
                .await?
                .is_some_and(|(a, _)| !aid_answers(&a).0.is_empty()),
            None => false,
        };
        let found = if at_parent {
            format!(
                "no AID record at {name}; one at _agent.{} only, which clients must not use",
                parent.unwrap_or_default()
            )
        } else {
            format!("no AID record at {name}")
        };
        self.finding(label, FindingKind::AidRecord, rule_text(AidCheck::ExactHost), found);
        Ok(())
    }

    async fn well_known(&mut self, label: &str, aid: &AidTarget) -> Result<(), HarnessError> {
        let url = well_known_url(aid);
        let exchange = self.http(label, "GET", &url, Vec::new(), None).await?;
        let record = match judge_well_known(&exchange) {
            Ok(r) => r,
            Err(why) => {
                self.finding(label, FindingKind::AidRecord, rule_text(AidCheck::WellKnown), why);
                return Ok(());
            }
        };
        // What DNS publishes, the fallback must not contradict.
        let dns_record = self
            .h
            .preflight
            .as_ref()
            .filter(|p| p.source.as_deref() == Some("dns"))
            .and_then(|p| p.selected.clone());
        if let Some(d) = dns_record {
            for (key, a, b) in [("u", &d.uri, &record.uri), ("p", &d.proto, &record.proto)] {
                if a != b {
                    self.finding(label, FindingKind::AidRecord, format!("`{key}` as in DNS: {a}"), b.clone());
                }
            }
            if d.pka != record.pka {
                self.finding(label, FindingKind::AidRecord, "the DNS record's `k`", format!("{:?}", record.pka));
            }
        }
        Ok(())
    }

    fn selected(&self) -> Result<AidRecord, HarnessError> {
        self.h
            .preflight
            .as_ref()
            .and_then(|p| p.selected.clone())
            .ok_or_else(|| HarnessError::Inapplicable("the preflight selected no AID record".into()))
    }

    async fn handoff(&mut self, label: &str) -> Result<(), HarnessError> {
        let record = self.selected()?;
        let first = self.http(label, "GET", &record.uri, Vec::new(), None).await?;
        let hinted = first
            .header("www-authenticate")
            .and_then(|h| parse_challenge(h).1.get("resource_metadata").cloned());
        let (Some(401), Some(prm_url)) = (first.status, hinted) else {
            self.finding(
                label,
                FindingKind::BadChallenge,
                rule_text(AidCheck::Handoff),
                format!("{} with {:?}", first.status.unwrap_or(0), first.header("www-authenticate")),
            );
            return Ok(());
        };
        let prm = self.http(label, "GET", &prm_url, Vec::new(), None).await?;
        let doc = prm.json().filter(|_| prm.status == Some(200)).unwrap_or(Value::Null);
        let resource = doc["resource"].as_str().unwrap_or_default();
        let origin = |u: &str| url::Url::parse(u).map(|u| u.origin().ascii_serialization()).unwrap_or_default();
        if doc["authorization_servers"].get(0).and_then(Value::as_str).is_none() || origin(resource) != origin(&record.uri) {
            self.finding(
                label,
                FindingKind::UnexpectedValue,
                "a PRM whose `resource` is on the endpoint's origin and which names an authorization server",
                prm.status_and_body(),
            );
        }
        Ok(())
    }

    /// One fresh challenge to the selected endpoint, asking for binding to the queried domain
    /// (or to `domain`, to see what the endpoint does with one it does not serve).
    async fn challenge_once(&mut self, label: &str, domain: Option<&str>) -> Result<(AidRecord, Proof, Exchange), HarnessError> {
        let record = self.selected()?;
        if record.pka.is_none() {
            return Err(HarnessError::Inapplicable("the selected record publishes no PKA key".into()));
        }
        let queried = self.h.target.aid.as_ref().map(|a| a.domain.clone());
        let domain = domain.map(str::to_string).or(queried);
        let (proof, headers) = proof_request(&record, domain.as_deref()).map_err(HarnessError::Tooling)?;
        let exchange = self.http(label, "GET", &record.uri, headers, None).await?;
        Ok((record, proof, exchange))
    }

    async fn proof_rule(&mut self, label: &str, check: AidCheck) -> Result<(), HarnessError> {
        let (record, proof, exchange) = self.challenge_once(label, None).await?;
        let v1 = matches!(proof, Proof::V1(_));
        if v1 && matches!(check, AidCheck::Nonce | AidCheck::NoStore) {
            return Err(HarnessError::Inapplicable(
                "an aid1 handshake binds its challenge as a covered field and asks for no Cache-Control".into(),
            ));
        }
        if check == AidCheck::HandshakeOk {
            if !v1 {
                return Err(HarnessError::Inapplicable(
                    "an aid2 proof may sign any status (AID v2.0 B.4)".into(),
                ));
            }
            if exchange.status != Some(200) {
                let found = format!("status {}", exchange.status.unwrap_or(0));
                self.finding(label, FindingKind::AidProof, rule_text(check), found);
            }
            return Ok(());
        }
        let judged = inspect(&record, &proof, &exchange);
        let broken = match check {
            AidCheck::Signed => judged.signed,
            AidCheck::Components => judged.components,
            AidCheck::Fresh => judged.fresh,
            AidCheck::Keyid => judged.keyid,
            AidCheck::Signature => judged.key,
            AidCheck::Nonce => judged.nonce,
            _ => judged.no_store,
        };
        if let Some(why) = broken {
            self.finding(label, FindingKind::AidProof, rule_text(check), why);
        }
        Ok(())
    }

    async fn replay(&mut self, label: &str) -> Result<(), HarnessError> {
        let (_, _, first) = self.challenge_once(label, None).await?;
        let (record, proof, second) = self.challenge_once(label, None).await?;
        let judged = inspect(&record, &proof, &second);
        let same = first.header("signature").is_some() && first.header("signature") == second.header("signature");
        // aid2 binds the nonce as a parameter; aid1 as a covered field, so a replayed aid1
        // signature no longer verifies.
        let unbound = match proof {
            Proof::V2(_) => judged.nonce,
            Proof::V1(_) => judged.key,
        };
        if same || unbound.is_some() {
            let why = if same {
                "the second challenge got the first answer's signature".to_string()
            } else {
                unbound.unwrap_or_default()
            };
            self.finding(label, FindingKind::AidProof, rule_text(AidCheck::Replay), why);
        }
        Ok(())
    }

    /// v2.1 B.7: an endpoint that binds must not bind a domain it does not serve. One that
    /// ignores `AID-Domain` (no binding support) answers with an unbound proof, which conforms.
    async fn unserved_domain(&mut self, label: &str, aid: &AidTarget) -> Result<(), HarnessError> {
        let record = self.selected()?;
        if record.version != "aid2" {
            return Err(HarnessError::Inapplicable("domain binding is an aid2 profile".into()));
        }
        let unserved = format!("not-served-{}.{}", &uuid::Uuid::new_v4().simple().to_string()[..8], aid.domain);
        let (record, proof, exchange) = self.challenge_once(label, Some(&unserved)).await?;
        let judged = inspect(&record, &proof, &exchange);
        if judged.bound == Some(true) && judged.first().is_none() {
            let found = format!(
                "status {} with a valid signature covering aid-domain = {unserved}",
                exchange.status.unwrap_or(0)
            );
            self.finding(label, FindingKind::AidProof, rule_text(AidCheck::UnservedDomain), found);
        }
        Ok(())
    }
}

/// The rule as an expectation, for findings.
fn rule_text(check: AidCheck) -> &'static str {
    match check {
        AidCheck::Grammar => "every AID answer parses by its version's grammar",
        AidCheck::Single => "one valid AID record at the name",
        AidCheck::Https => "an https:// endpoint for a remote protocol",
        AidCheck::Key => "an aid2 `k` that is an Ed25519 JWK `x` (32 bytes)",
        AidCheck::ExactHost => "the record at _agent.<exact host>",
        AidCheck::Ttl => "a TTL of 300–900 s",
        AidCheck::WellKnown => "/.well-known/agent: 200 JSON (no redirect, ≤ 64 KiB) by the TXT grammar",
        AidCheck::Handoff => "401 with a Bearer challenge naming resource_metadata",
        AidCheck::Signed => "one aid-pka member in Signature-Input and Signature",
        AidCheck::Components => "covered (\"@method\";req \"@target-uri\";req \"@authority\";req \"@status\"), tag aid-pka-v2",
        AidCheck::Fresh => "created/expires: a window of at most 300 s around now",
        AidCheck::Keyid => "keyid = the RFC 7638 thumbprint of the DNS key",
        AidCheck::Signature => "an Ed25519 signature that verifies with the DNS key",
        AidCheck::Nonce => "the request's nonce in the signature parameters",
        AidCheck::Replay => "a fresh signature bound to each challenge",
        AidCheck::NoStore => "Cache-Control: no-store on the signed response",
        AidCheck::NoKid => "an aid2 record without `kid`/`i`",
        AidCheck::Proto => "`p` a protocol registry token",
        AidCheck::Metadata => "`a` an auth registry token, `d` an absolute https:// URL, `e` ISO 8601 UTC",
        AidCheck::UnservedDomain => "no signature covering an AID-Domain the endpoint does not serve",
        AidCheck::HandshakeOk => "the aid1 handshake answered with status 200",
    }
}
