//! The step families: registration, API, claim and mail, revocation, IdP control, sampling.
//! Each action is one function; `step` only dispatches on the typed action.

use std::collections::BTreeMap;

use authmd_mock_idp::TokenKind;
use serde_json::{Map, Value, json};

use super::context::{CaseCtx, StepVars};
use super::{HarnessError, ID_JAG_URN};
use crate::language::{Action, Count, TokenSpec};
use crate::outcome::Exchange;

/// What a step produced: the exchange (if it made one) and its values.
pub(super) type StepOutcome = Result<(Option<Exchange>, StepVars), StepError>;

/// Why a step did not produce anything.
#[derive(Debug)]
pub(super) enum StepError {
    /// An input the target's earlier answers did not provide: a finding, and the case stops.
    MissingInput(String),
    /// The harness could not go on.
    Harness(HarnessError),
}

impl From<HarnessError> for StepError {
    fn from(e: HarnessError) -> Self {
        Self::Harness(e)
    }
}

#[path = "human_steps.rs"]
mod human;
#[path = "mail_steps.rs"]
mod mail;
#[path = "repeat_steps.rs"]
mod repeat;

impl CaseCtx<'_> {
    /// Runs one step: its action, then the answer's members under the names the profile maps
    /// (`[answers]`), so every step, repeated ones included, sees them alike.
    pub(super) async fn step(&mut self, action: &Action, label: &str) -> StepOutcome {
        let mut outcome = self.act(action, label).await;
        if let Ok((exchange, vars)) = &mut outcome {
            self.finish_answer(action, exchange.as_ref(), vars, label);
        }
        outcome
    }

    /// What every answer goes through, however its step was sent: a registration's envelope
    /// checked against the profile's (a hybrid's is noted), and the profile's `[answers]` names
    /// added.
    pub(super) fn finish_answer(&self, action: &Action, exchange: Option<&Exchange>, vars: &mut StepVars, label: &str) {
        if matches!(action, Action::RegisterAnonymous { .. } | Action::RegisterIdJag { .. })
            && let Some(e) = exchange
        {
            self.check_envelope(e, label);
        }
        self.h.profile.alias_answers(vars);
    }

    /// A successful registration answer without the profile's envelope is a hybrid's: noted
    /// once per run, with the text its shape belongs to when one matches.
    fn check_envelope(&self, exchange: &Exchange, label: &str) {
        let envelope = &self.h.profile.envelope;
        if envelope.is_empty() || !exchange.status.is_some_and(|s| (200..300).contains(&s)) {
            return;
        }
        let Some(Value::Object(answer)) = exchange.json() else { return };
        if envelope.iter().all(|k| answer.contains_key(k)) {
            return;
        }
        self.h.note_hybrid(|| {
            let like = crate::profile::shaped_like(&crate::repo_root(), &answer, &self.h.profile.name);
            let shaped = match like.first() {
                Some(other) => format!("shaped like {other}'s"),
                None => "shaped like no profile's".into(),
            };
            format!(
                "the metadata speaks {} but a registration answer ({}, {label}) is {shaped}: it lacks {}",
                self.h.profile.name,
                self.case_id,
                envelope.join(", ")
            )
        });
    }

    /// Runs one action.
    async fn act(&mut self, action: &Action, label: &str) -> StepOutcome {
        match action {
            Action::Http { .. } => self.http_step(action, label).await,
            Action::RegisterAnonymous { .. } | Action::RegisterEmail { .. } | Action::RegisterIdJag { .. } | Action::Complete { .. } => {
                let (uri, body, extra) = self
                    .round_request(action)?
                    .ok_or_else(|| StepError::MissingInput("no request".into()))?;
                let (exchange, mut vars) = self.answered(label, &uri, &body).await?;
                vars.extend(extra);
                Ok((exchange, vars))
            }
            Action::Mint { token } => {
                let (_, vars) = self.mint(token, TokenKind::IdJag).map_err(StepError::MissingInput)?;
                Ok((None, vars))
            }
            Action::ParallelRegisterIdJag {
                token,
                credential,
                count,
                across_replicas,
            } => self.parallel_register(label, token, *credential, count, *across_replicas).await,
            Action::Api { .. } => self.api(action, label).await,
            Action::Claim { claim_token, email } => {
                let claim_token = self.value(claim_token).map_err(StepError::MissingInput)?.unwrap_or(Value::Null);
                let email = self
                    .value(email)
                    .map_err(StepError::MissingInput)?
                    .unwrap_or_else(|| json!(self.identity_email()));
                let uri = self.claim_uri().map_err(StepError::MissingInput)?;
                let mut body = self.body(&[("claim_token", claim_token), ("email", email)]);
                for (name, value) in self.h.profile.bodies.get("claim").into_iter().flatten() {
                    body[name] = value.clone();
                }
                self.answered(label, &uri, &body).await
            }
            Action::ReadMail { email, registration_id } => self.read_mail(label, email, registration_id, false).await,
            Action::Otp { email, registration_id } => self.read_mail(label, email, registration_id, true).await,
            Action::NoMail { email, within_ms } => self.no_mail(label, email, within_ms.unwrap_or(300)).await,
            Action::OpenLink { link } => {
                let link = self.text(&Some(link.clone())).map_err(StepError::MissingInput)?.unwrap_or_default();
                let exchange = self.http(label, "GET", &link, Vec::new(), None).await?;
                let vars = Self::response_vars(&exchange);
                Ok((Some(exchange), vars))
            }
            Action::ProbeExposure {
                secret,
                registration_id,
                link,
            } => self.probe_exposure(label, secret, registration_id, link).await,
            Action::Challenge { .. } => self.challenge(label, action).await,
            Action::Revoke { token, content_type, body } => self.revoke(label, token, content_type, body).await,
            Action::RotateKey { alg } => {
                let alg = alg.unwrap_or_default();
                let kid = self.idp.rotate(alg).map_err(|e| HarnessError::Tooling(e.to_string()))?;
                self.wait_out_refetch_cooldown().await?;
                let mut vars = Map::new();
                vars.insert("kid".into(), json!(kid));
                Ok((None, vars))
            }
            Action::JwksFault { fault } => {
                self.idp.set_fault(fault.0);
                Ok((None, Map::new()))
            }
            Action::JwksMaxAge { seconds } => {
                self.idp.set_jwks_max_age(*seconds);
                Ok((None, Map::new()))
            }
            Action::Token {
                grant_type,
                form,
                content_type,
            } => self.token(label, grant_type, form, content_type).await,
            Action::RevokeToken { token, token_type_hint } => {
                let token = self
                    .text(&Some(token.clone()))
                    .map_err(StepError::MissingInput)?
                    .unwrap_or_default();
                let hint = self
                    .text(token_type_hint)
                    .map_err(StepError::MissingInput)?
                    .unwrap_or_else(|| "access_token".into());
                let uri = self
                    .h
                    .discovery
                    .token_revocation_uri
                    .clone()
                    .ok_or_else(|| "no token revocation endpoint".to_string())
                    .map_err(StepError::MissingInput)?;
                let body = form_encode(&[("token", token.as_str()), ("token_type_hint", hint.as_str())]);
                let headers = vec![("content-type".to_string(), FORM.to_string())];
                let exchange = self.http(label, "POST", &uri, headers, Some(body)).await?;
                let vars = Self::response_vars(&exchange);
                Ok((Some(exchange), vars))
            }
            Action::ConfirmClaim {
                verification_uri,
                user_code,
                email,
            } => self.confirm_claim(label, verification_uri, user_code, email).await,
            Action::RevealClaim {
                verification_uri,
                email,
                confirm,
            } => self.reveal_claim(label, verification_uri, email, *confirm).await,
            Action::Sample {
                of,
                count,
                field,
                spread,
                then,
            } => self.sample(label, of, then, count, field, *spread).await,
            Action::Aid { check } => self.aid_step(label, *check).await,
            Action::Check { of } => {
                // The earlier answer, judged again: no request, the same values and exchange.
                let vars = match self.vars.get(of) {
                    Some(Value::Object(m)) => m.clone(),
                    _ => return Err(StepError::MissingInput(format!("no earlier step named `{of}` answered"))),
                };
                let exchange = self.exchanges.iter().rev().find(|e| &e.step == of).cloned();
                Ok((exchange, vars))
            }
        }
    }

    fn id_jag_body(&self, assertion: &str, credential: &str) -> Value {
        self.body(&[
            ("type", json!("identity_assertion")),
            ("assertion_type", json!(ID_JAG_URN)),
            ("assertion", json!(assertion)),
            ("credential_type", json!(credential)),
        ])
    }

    /// POSTs `body` as JSON and returns the answer with its JSON members as the step's values.
    async fn answered(&mut self, label: &str, uri: &str, body: &Value) -> StepOutcome {
        let exchange = self.post_json(label, uri, body).await?;
        let vars = Self::response_vars(&exchange);
        Ok((Some(exchange), vars))
    }

    fn count(&self, count: &Option<Count>, default: u64) -> Result<usize, String> {
        let n = match count {
            None => default,
            Some(Count::Literal(n)) => *n,
            Some(Count::Reference(r)) => {
                let v = self.resolve(&json!(r))?;
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                    .ok_or_else(|| format!("`{r}` is `{v}`, not a whole number"))?
            }
        };
        Ok(n as usize)
    }

    async fn http_step(&mut self, action: &Action, label: &str) -> StepOutcome {
        let Action::Http {
            method,
            url,
            headers,
            json,
            body,
            credential,
        } = action
        else {
            return Err(StepError::MissingInput("not an http step".into()));
        };
        let method = self.text(method).map_err(StepError::MissingInput)?.unwrap_or_else(|| "GET".into());
        let url = self.text(&Some(url.clone())).map_err(StepError::MissingInput)?.unwrap_or_default();
        let url = self.h.target.url(&url);
        let mut sent: Vec<(String, String)> = Vec::new();
        for (name, value) in headers {
            sent.push((
                name.clone(),
                self.text(&Some(value.clone()))
                    .map_err(StepError::MissingInput)?
                    .unwrap_or_default(),
            ));
        }
        if let Some(credential) = self.text(credential).map_err(StepError::MissingInput)? {
            sent.push(("authorization".into(), format!("Bearer {credential}")));
        }
        let body = match (
            self.value(json).map_err(StepError::MissingInput)?,
            self.text(body).map_err(StepError::MissingInput)?,
        ) {
            (Some(json), _) => {
                if !sent.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
                    sent.push(("content-type".into(), "application/json".into()));
                }
                Some(json.to_string())
            }
            (None, body) => body,
        };
        let exchange = self.http(label, &method, &url, sent, body).await?;
        let vars = Self::response_vars(&exchange);
        Ok((Some(exchange), vars))
    }

    async fn api(&mut self, action: &Action, label: &str) -> StepOutcome {
        let Action::Api {
            endpoint,
            credential,
            scheme,
            query_token,
        } = action
        else {
            return Err(StepError::MissingInput("not an api step".into()));
        };
        let endpoint = self
            .text(endpoint)
            .map_err(StepError::MissingInput)?
            .unwrap_or_else(|| "oracle".into());
        let (method, mut url) = if endpoint == "oracle" {
            let oracle = self
                .h
                .target
                .oracle
                .as_ref()
                .ok_or_else(|| "no oracle configured".to_string())
                .map_err(StepError::MissingInput)?;
            ("GET".to_string(), self.h.target.url(&oracle.path))
        } else {
            let probe = self
                .h
                .target
                .probes
                .get(&endpoint)
                .ok_or_else(|| format!("no probe for scope `{endpoint}`"))
                .map_err(StepError::MissingInput)?;
            (probe.method.clone(), self.h.target.url(&probe.path))
        };
        let credential = self.text(credential).map_err(StepError::MissingInput)?;
        let scheme = self
            .text(scheme)
            .map_err(StepError::MissingInput)?
            .unwrap_or_else(|| "Bearer".into());
        let mut headers = Vec::new();
        if let Some(c) = &credential {
            if *query_token {
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
        Ok((Some(exchange), vars))
    }

    async fn challenge(&mut self, label: &str, action: &Action) -> StepOutcome {
        let (uri, body, _) = self
            .round_request(action)?
            .ok_or_else(|| StepError::MissingInput("no request".into()))?;
        let exchange = self.post_json(label, &uri, &body).await?;
        let vars = self.challenge_vars(&exchange);
        Ok((Some(exchange), vars))
    }

    /// A challenge's answer, its OTP (a secret) also as `otp`.
    pub(super) fn challenge_vars(&self, exchange: &Exchange) -> StepVars {
        let mut vars = Self::response_vars(exchange);
        if let Some(otp) = vars.get("challenge").and_then(Value::as_str).map(str::to_string) {
            self.h.secrets.add(&otp);
            vars.insert("otp".into(), json!(otp));
        }
        vars
    }

    async fn revoke(
        &mut self,
        label: &str,
        token: &Option<TokenSpec>,
        content_type: &Option<String>,
        body: &Option<String>,
    ) -> StepOutcome {
        let (token, mut minted) = self.mint(token, TokenKind::Logout).map_err(StepError::MissingInput)?;
        let default_type = self.h.profile.tokens.logout_content_type.clone();
        let content_type = self
            .text(content_type)
            .map_err(StepError::MissingInput)?
            .unwrap_or_else(|| default_type.unwrap_or_else(|| "application/logout+jwt".into()));
        let body = self.text(body).map_err(StepError::MissingInput)?.unwrap_or(token);
        let uri = self
            .h
            .discovery
            .revocation_uri
            .clone()
            .ok_or_else(|| "no revocation_uri".to_string())
            .map_err(StepError::MissingInput)?;
        let exchange = self
            .http(label, "POST", &uri, vec![("content-type".into(), content_type)], Some(body))
            .await?;
        let mut vars = Self::response_vars(&exchange);
        vars.append(&mut minted);
        Ok((Some(exchange), vars))
    }

    async fn token(
        &mut self,
        label: &str,
        grant_type: &Option<String>,
        form: &BTreeMap<String, String>,
        content_type: &Option<String>,
    ) -> StepOutcome {
        let grant = self
            .text(grant_type)
            .map_err(StepError::MissingInput)?
            .unwrap_or_else(|| JWT_BEARER.into());
        let mut members = Vec::new();
        if !grant.is_empty() {
            members.push(("grant_type".to_string(), grant));
        }
        for (name, value) in form {
            members.push((
                name.clone(),
                self.text(&Some(value.clone()))
                    .map_err(StepError::MissingInput)?
                    .unwrap_or_default(),
            ));
        }
        let pairs: Vec<(&str, &str)> = members.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let body = form_encode(&pairs);
        let content_type = self
            .text(content_type)
            .map_err(StepError::MissingInput)?
            .unwrap_or_else(|| FORM.into());
        let uri = self
            .h
            .discovery
            .token_uri
            .clone()
            .ok_or_else(|| "no token endpoint".to_string())
            .map_err(StepError::MissingInput)?;
        let exchange = self
            .http(label, "POST", &uri, vec![("content-type".into(), content_type)], Some(body))
            .await?;
        let mut vars = Self::response_vars(&exchange);
        // An issued access token is a bearer credential: redact it everywhere.
        if let Some(token) = vars.get("access_token").and_then(Value::as_str).map(str::to_string) {
            self.h.secrets.add(&token);
            vars.insert("credential".into(), json!(token));
        }
        Ok((Some(exchange), vars))
    }
}

impl super::Harness {
    /// Why the run's answers look like another text's than the metadata's, if they did.
    pub fn hybrid(&self) -> Option<String> {
        self.hybrid.lock().ok().and_then(|h| h.clone())
    }

    /// Keeps the first evidence of a hybrid.
    pub(super) fn note_hybrid(&self, evidence: impl FnOnce() -> String) {
        if let Ok(mut h) = self.hybrid.lock()
            && h.is_none()
        {
            *h = Some(evidence());
        }
    }
}

/// The RFC 7523 JWT-bearer grant.
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The form content type of OAuth endpoints.
pub(super) const FORM: &str = "application/x-www-form-urlencoded";

/// `a=b&c=d`, percent-encoded (RFC 6749 Appendix B).
pub(super) fn form_encode(pairs: &[(&str, &str)]) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        out.append_pair(k, v);
    }
    out.finish()
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
