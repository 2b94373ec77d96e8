//! Discovery (AUTH Step 1): from the API's challenge to the PRM, then the authorization
//! server's metadata. A failed hop never aborts the run: it is recorded, and dependent cases
//! are INCONCLUSIVE (no answer) or SKIP (a wrong answer) with the reason.

use serde::Serialize;
use serde_json::Value;

use super::{Harness, HarnessError};
use crate::expect::parse_challenge;
use crate::outcome::Exchange;
use crate::profile::Manifest;

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
    /// The registration types the metadata offers (where the profile's manifest points).
    pub identity_types: Vec<String>,
    /// The assertion types the metadata offers.
    pub assertion_types: Vec<String>,
    /// The protected URL discovery started from (the oracle, `protected_path`, or
    /// `/api/resource`): cases ask it for the challenge whether or not an oracle is configured.
    pub protected_url: String,
    /// The `resource_metadata` URL of the protected URL's challenge, when it named one.
    pub resource_metadata_url: Option<String>,
    /// The OAuth token endpoint, where the profile has one.
    pub token_uri: Option<String>,
    /// The RFC 7009 revocation endpoint, where the profile has one.
    pub token_revocation_uri: Option<String>,
}

impl Discovery {
    pub(super) fn offers(&self, identity_type: &str) -> bool {
        self.identity_types.iter().any(|t| t == identity_type)
    }

    pub(super) fn offers_assertion(&self, assertion_type: &str) -> bool {
        self.offers("identity_assertion") && self.assertion_types.iter().any(|t| t == assertion_type)
    }
}

impl Harness {
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

    pub(super) async fn discover(&mut self) -> Result<(), HarnessError> {
        // AUTH Step 1: a 401 from the API points at the PRM; fall back to the conventional path.
        let protected = self
            .target
            .oracle
            .as_ref()
            .map(|o| o.path.clone())
            .or_else(|| self.target.protected_path.clone())
            .unwrap_or_else(|| "/api/resource".into());
        self.discovery.protected_url = self.target.url(&protected);
        let (first, _) = self.get_json(&self.target.url(&protected)).await?;
        let hinted = first
            .header("www-authenticate")
            .and_then(|h| parse_challenge(h).1.get("resource_metadata").cloned());
        let mut prm = None;
        if let Some(url) = hinted {
            prm = self.get_json(&url).await?.1;
            self.discovery.resource_metadata_url = Some(url);
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
        let profile = &self.profile;
        let at = |pointer: &str| metadata.pointer(pointer).and_then(Value::as_str).map(str::to_string);
        self.discovery.register_uri = at(&profile.endpoints.register);
        self.discovery.claim_uri = at(&profile.endpoints.claim);
        self.discovery.revocation_uri = at(&profile.endpoints.revocation);
        self.discovery.token_uri = profile.endpoints.token.as_deref().and_then(at);
        self.discovery.token_revocation_uri = profile.endpoints.token_revocation.as_deref().and_then(at);
        self.discovery.identity_types = Manifest::strings_at(&metadata, &profile.offers.identity_types);
        self.discovery.assertion_types = Manifest::strings_at(&metadata, &profile.offers.assertion_types);
        let register = profile.endpoints.register.trim_start_matches('/').replace('/', ".");
        if self.discovery.register_uri.is_none() {
            self.discovery.error = Some(format!("the metadata has no {register}"));
        } else if let Some(Err(why)) = self.discovery.register_uri.as_deref().map(|u| self.policy.check(u)) {
            self.discovery.error = Some(format!(
                "{register}: {why}; list the host in allowed_hosts to let the harness use it"
            ));
        }
        // Which auth.md the metadata speaks: a target of a later version is not silently
        // judged by this profile, and a document mixing versions is reported.
        let spoken = profile.judge(&metadata);
        // The clearer reason wins over "no register_uri".
        if spoken.speaks == "sibling" {
            // Both texts call themselves the same version: the values decide, and a target
            // speaking the other is not judged by this one.
            let speaks = crate::profile::speaking(&crate::repo_root(), &metadata);
            self.discovery.error = Some(match speaks.first() {
                Some(other) => format!(
                    "the metadata speaks {other}, not {} ({}): run with --profile {other} (or `profile = \"{other}\"` in the target config)",
                    profile.name,
                    spoken.contrary.join(", "),
                ),
                None => format!(
                    "the metadata speaks another text of this version than {} ({}): run the profile it speaks (known: {})",
                    profile.name,
                    spoken.contrary.join(", "),
                    crate::profiles().join(", ")
                ),
            });
        } else if spoken.speaks == "later" || spoken.speaks == "earlier" {
            let (which, names) = if spoken.speaks == "later" {
                ("a later", &spoken.later)
            } else {
                ("an earlier", &spoken.earlier)
            };
            let speaks = crate::profile::speaking(&crate::repo_root(), &metadata);
            self.discovery.error = Some(match speaks.first() {
                Some(other) => format!(
                    "the metadata speaks {other}, {which} auth.md than {} ({}): run with --profile {other} (or `profile = \"{other}\"` in the target config)",
                    profile.name,
                    names.join(", "),
                ),
                None => format!(
                    "the metadata speaks {which} auth.md ({}), not {}: run the profile it speaks (known: {})",
                    names.join(", "),
                    profile.name,
                    crate::profiles().join(", ")
                ),
            });
        }
        self.discovery.spoken = Some(spoken);
        self.discovery.metadata = metadata;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_rfc8414_urls() {
        assert_eq!(rfc8414_url("http://a:1"), "http://a:1/.well-known/oauth-authorization-server");
        assert_eq!(
            rfc8414_url("https://a/tenant/"),
            "https://a/.well-known/oauth-authorization-server/tenant"
        );
    }
}
