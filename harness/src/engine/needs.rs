//! Why a case cannot run against this target: a flow the metadata does not offer, a setting
//! the config leaves out (named, so the reason says what to set), a wait beyond the budget, an
//! AID record or key the preflight did not find.

use super::{Harness, HarnessError, ID_JAG_URN};
use crate::catalogue::{Action, Case, Need, split_advance};
use crate::outcome::SkipReason;

impl Harness {
    pub(super) fn unmet_need(&self, case: &Case) -> Option<SkipReason> {
        let d = &self.discovery;
        let clock = case.steps.iter().any(|s| s.advance.is_some()) || case.needs.contains(&Need::Clock);
        if clock && self.target.clock.offset_header.is_none() {
            let budget = self.target.clock.wait_budget_secs;
            if budget == 0 {
                return Some(SkipReason::needs(
                    "clock.offset_header",
                    "needs clock.offset_header, or clock.wait_budget_secs of at least the TTL it passes",
                ));
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
                return Some(SkipReason::needs(
                    "clock.wait_budget_secs",
                    HarnessError::BeyondWaitBudget { needed: longest, budget }.to_string(),
                ));
            }
        }
        let rotates = case.steps.iter().any(|s| matches!(s.action, Action::RotateKey { .. }));
        let Some(cooldown) = self.target.idp.jwks_refetch_cooldown_secs.or(if rotates { None } else { Some(0) }) else {
            return Some(SkipReason::needs(
                "idp.jwks_refetch_cooldown_secs",
                "needs idp.jwks_refetch_cooldown_secs: how long after a JWKS fetch your server refuses to refetch on an unknown kid (0 if it refetches at once; jose: 30)",
            ));
        };
        if cooldown > self.target.clock.wait_budget_secs && rotates {
            return Some(SkipReason::needs(
                "clock.wait_budget_secs",
                HarnessError::CooldownBeyondBudget {
                    needed: cooldown,
                    budget: self.target.clock.wait_budget_secs,
                }
                .to_string(),
            ));
        }
        // The version of the selected AID record, when it publishes a key.
        let keyed = self
            .preflight
            .as_ref()
            .and_then(|p| p.selected.as_ref())
            .filter(|r| r.pka.is_some())
            .map(|r| r.version.as_str());
        for need in &case.needs {
            let offered = |text: &str| Some(SkipReason::NotOffered(text.into()));
            let reason = match need {
                Need::Anonymous if !d.offers("anonymous") => {
                    offered("the metadata does not offer anonymous registration (agent_auth.identity_types_supported lacks `anonymous`)")
                }
                Need::AnonymousOff if d.offers("anonymous") => offered("the target offers anonymous registration"),
                Need::VerifiedEmail if !d.offers_assertion("verified_email") => offered("the metadata does not offer verified_email"),
                Need::VerifiedEmailOff if d.offers_assertion("verified_email") => offered("the target offers verified_email"),
                Need::IdJag if !d.offers_assertion(ID_JAG_URN) => offered("the metadata does not offer ID-JAG registration"),
                Need::IdJag if self.target.idp.issuer.is_none() => Some(SkipReason::needs(
                    "idp.issuer",
                    "needs idp.issuer: the issuer on your server's trust list, served by the mock IdP at idp.listen (without it the mock IdP runs on a random port no server trusts)",
                )),
                Need::IdJag if !self.target.idp.trusted => {
                    offered("the target does not trust the mock IdP (idp.trusted = false; put idp.issuer on your trust list)")
                }
                Need::Revocation if d.revocation_uri.is_none() => offered("the metadata advertises no revocation_uri"),
                Need::Mail if self.mail.is_none() => Some(SkipReason::needs(
                    "mail",
                    "needs a mail source: set [mail] (smtp, directory, url_template or mailpit)",
                )),
                Need::Oracle if self.target.oracle.is_none() => Some(SkipReason::needs(
                    "oracle",
                    "needs an identity/scope oracle: set [oracle] path and pointers",
                )),
                Need::ScopeProbes if self.target.probes.is_empty() => Some(SkipReason::needs(
                    "probes",
                    "needs scope probes: set [probes] (one endpoint per scope)",
                )),
                Need::RateBurst if self.target.rate_burst.is_none() => Some(SkipReason::needs(
                    "rate_burst",
                    "needs rate_burst: the number of requests your limit refuses within",
                )),
                Need::Cimd if !self.target.idp.cimd => Some(SkipReason::needs(
                    "idp.cimd",
                    "needs idp.cimd = true: the target pins its client_ids and resolves no URL-form client_id as client metadata",
                )),
                Need::JwksClock if !self.target.idp.jwks_cache_follows_clock || self.target.clock.offset_header.is_none() => {
                    Some(SkipReason::needs(
                        "idp.jwks_cache_follows_clock",
                        "needs clock.offset_header and idp.jwks_cache_follows_clock = true (the header also ages your JWKS cache)",
                    ))
                }
                Need::TokenEndpoint if d.token_uri.is_none() => offered("the metadata names no token endpoint"),
                Need::Session if self.target.session.is_none() => Some(SkipReason::needs(
                    "session",
                    "needs [session]: the sign-in and confirm forms a human fills in on your service's pages",
                )),
                Need::ServiceAuth if !d.offers("service_auth") => offered("the metadata does not offer service_auth"),
                Need::ServiceAuthOff if d.offers("service_auth") => offered("the target offers service_auth"),
                Need::TokenRevocation if d.token_revocation_uri.is_none() => offered("the metadata names no token revocation endpoint"),
                Need::SecondIssuer if self.idp2.is_none() => Some(SkipReason::needs(
                    "idp.second",
                    "needs [idp.second]: a second issuer on your trust list",
                )),
                Need::UntrustedIssuer if self.stranger.is_none() => {
                    Some(SkipReason::needs("run", "needs an untrusted live issuer (started by `run`)"))
                }
                Need::Aid if self.dns.is_none() => Some(SkipReason::needs(
                    "aid",
                    "needs a domain: run --domain, or [aid] in the target config",
                )),
                Need::AidRecord | Need::Pka | Need::Pka1 | Need::Pka2 if self.preflight.as_ref().is_none_or(|p| p.selected.is_none()) => {
                    Some(SkipReason::Inapplicable("the AID preflight selected no record".into()))
                }
                Need::Pka if keyed.is_none() => Some(SkipReason::Inapplicable("the selected AID record publishes no PKA key".into())),
                Need::Pka1 if keyed != Some("aid1") => {
                    Some(SkipReason::Inapplicable("the selected AID record publishes no aid1 PKA key".into()))
                }
                Need::Pka2 if keyed != Some("aid2") => {
                    Some(SkipReason::Inapplicable("the selected AID record publishes no aid2 PKA key".into()))
                }
                Need::AidWellKnown if !self.target.aid.as_ref().is_some_and(|a| a.well_known) => Some(SkipReason::needs(
                    "aid.well_known",
                    "needs aid.well_known = true: the service serves /.well-known/agent",
                )),
                Need::Replicas if self.target.replicas.is_none() => Some(SkipReason::needs(
                    "replicas",
                    "needs [replicas]: the origins of two or more of your service's replicas, each reached directly",
                )),
                Need::AmrPolicy if self.target.idp.required_amr.is_empty() => Some(SkipReason::needs(
                    "idp.required_amr",
                    "needs idp.required_amr: the amr values your trust entry requires",
                )),
                _ => None,
            };
            if reason.is_some() {
                return reason;
            }
        }
        None
    }
}
