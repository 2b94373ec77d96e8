//! The steps that repeat an action: at once from several sources (`parallel`), or in rounds
//! that collect one value each (`sample`).

use authmd_mock_idp::TokenKind;
use serde_json::{Map, Value, json};

use super::{StepError, StepOutcome, join_vec};
use crate::engine::HarnessError;
use crate::engine::context::{CaseCtx, StepVars};
use crate::language::{Action, Count, CredentialType, SAMPLE_BATCH, TokenSpec};

impl CaseCtx<'_> {
    pub(super) async fn parallel_register(
        &mut self,
        label: &str,
        token: &Option<TokenSpec>,
        credential: Option<CredentialType>,
        count: &Option<Count>,
        across_replicas: bool,
    ) -> StepOutcome {
        let count = self.count(count, 10).map_err(StepError::MissingInput)?;
        let (token, _) = self.mint(token, TokenKind::IdJag).map_err(StepError::MissingInput)?;
        let credential = credential.unwrap_or(CredentialType::AccessToken).as_str();
        let body = self.id_jag_body(&token, credential).to_string();
        let uri = self.register_uri().map_err(StepError::MissingInput)?;
        // Across replicas: request i goes to replica i mod n, at the same path, so each
        // replica sees the token at once.
        let uris: Vec<String> = match (across_replicas, &self.h.target.replicas) {
            (true, Some(r)) => r.origins.iter().map(|o| crate::engine::route::at_origin(&uri, o)).collect(),
            (true, None) => return Err(StepError::MissingInput("no [replicas] configured".into())),
            (false, _) => vec![self.routed(&uri)],
        };
        let headers = vec![("content-type".to_string(), "application/json".to_string())];
        let net = self.net.clone();
        let sends = (0..count).map(|i| net.send(label, "POST", &uris[i % uris.len()], &headers, Some(body.clone())));
        let results = join_vec(sends.map(Box::pin).collect()).await;
        let mut statuses = Vec::new();
        for exchange in results {
            statuses.push(json!(exchange.status));
            self.exchanges.push(exchange.clone());
            self.settle(&exchange)?;
        }
        let mut vars = Map::new();
        vars.insert("statuses".into(), Value::Array(statuses));
        Ok((None, vars))
    }

    pub(super) async fn sample(
        &mut self,
        label: &str,
        of: &Action,
        then: &[Action],
        count: &Option<Count>,
        field: &Option<String>,
        spread: bool,
    ) -> StepOutcome {
        let count = self.count(count, 20).map_err(StepError::MissingInput)?;
        let field = self
            .text(field)
            .map_err(StepError::MissingInput)?
            .unwrap_or_else(|| "/credential".into());
        // `spread`: each request from its own loopback source address, so a per-address rate
        // limit (conforming, RATE-01) does not cut the sample short.
        let spread = spread && self.source.is_some();
        if then.is_empty() && of.sends_one_request() {
            return self.sample_in_batches(label, of, count, &field, spread).await;
        }
        // From their own addresses, rounds are independent registrations: they run
        // `SAMPLE_BATCH` at a time, each on a copy of the case's state (and its own recipient,
        // so no round reads another's mail); one at a time otherwise, as a client of one address.
        let batch = if spread { SAMPLE_BATCH } else { 1 };
        let mut values = Vec::new();
        let mut round = 0;
        'rounds: while round < count {
            let size = (count - round).min(batch);
            let mut forks = Vec::with_capacity(size);
            for i in round..round + size {
                let net = if spread {
                    self.h.client(self.h.spare_source(i))?
                } else {
                    self.net.clone()
                };
                forks.push(self.fork(net, spread.then_some(i)));
            }
            let outcomes = join_vec(forks.iter_mut().map(|f| Box::pin(f.round(of, then, label))).collect()).await;
            round += size;
            // Every round's evidence is kept, in round order, before any is judged.
            for fork in forks {
                self.absorb(fork);
            }
            for outcome in outcomes {
                let (_, vars) = outcome?;
                if !collect(&mut values, vars, &field, || self.register_uri().unwrap_or_default())? {
                    break 'rounds;
                }
            }
        }
        let mut vars = Map::new();
        vars.insert("values".into(), Value::Array(values));
        Ok((None, vars))
    }

    /// One round of a sample: `of`, then each of `then` seeing the previous answer as `sample`.
    async fn round(&mut self, of: &Action, then: &[Action], label: &str) -> StepOutcome {
        let mut outcome = Box::pin(self.step(of, label)).await;
        for next in then {
            let Ok((_, previous)) = &outcome else { break };
            self.vars.insert("sample".into(), Value::Object(previous.clone()));
            outcome = Box::pin(self.step(next, label)).await;
        }
        self.vars.remove("sample");
        outcome
    }

    /// The one request an action makes, when its answer is all the action reads (registration,
    /// a challenge, a completion): its URL, JSON body, and the harness-side values the step
    /// adds to the answer's (a minted token's claims). Built anew for each round of a sample,
    /// so a round that mints a token mints its own.
    pub(super) fn round_request(&self, of: &Action) -> Result<Option<(String, Value, StepVars)>, StepError> {
        let missing = StepError::MissingInput;
        Ok(Some(match of {
            Action::RegisterAnonymous { body, credential } => {
                let credential = credential.unwrap_or(CredentialType::ApiKey).as_str();
                let body = match self.value(body).map_err(missing)? {
                    Some(body) => body,
                    None => self.body(&[("type", json!("anonymous")), ("credential_type", json!(credential))]),
                };
                (self.register_uri().map_err(missing)?, body, Map::new())
            }
            Action::RegisterEmail { email, credential } => {
                let email = self.text(email).map_err(missing)?.unwrap_or_else(|| self.identity_email());
                let credential = credential.unwrap_or(CredentialType::AccessToken).as_str();
                let body = self.body(&[
                    ("type", json!("identity_assertion")),
                    ("assertion_type", json!("verified_email")),
                    ("assertion", json!(email)),
                    ("credential_type", json!(credential)),
                ]);
                (self.register_uri().map_err(missing)?, body, Map::new())
            }
            Action::RegisterIdJag {
                token,
                assertion,
                body_set,
                credential,
            } => {
                let (assertion, mut minted) = match self.text(assertion).map_err(missing)? {
                    Some(a) => (a, Map::new()),
                    None => self.mint(token, TokenKind::IdJag).map_err(missing)?,
                };
                let credential = credential.unwrap_or(CredentialType::AccessToken).as_str();
                let mut body = self.id_jag_body(&assertion, credential);
                for (name, value) in body_set {
                    // Named as the catalogue names members; the profile gives the wire name.
                    let wire = self.h.profile.field(name).to_string();
                    body[if wire.is_empty() { name.as_str() } else { wire.as_str() }] = self.resolve(value).map_err(missing)?;
                }
                minted.insert("assertion".into(), json!(assertion));
                (self.register_uri().map_err(missing)?, body, minted)
            }
            Action::Complete { claim_token, otp } => {
                let claim_token = self.value(claim_token).map_err(missing)?.unwrap_or(Value::Null);
                let otp = self.value(otp).map_err(missing)?.unwrap_or(Value::Null);
                (
                    self.complete_uri().map_err(missing)?,
                    self.body(&[("claim_token", claim_token), ("otp", otp)]),
                    Map::new(),
                )
            }
            Action::Challenge { attempt_token } => {
                let token = self.value(attempt_token).map_err(missing)?.unwrap_or(Value::Null);
                (
                    self.challenge_uri().map_err(missing)?,
                    self.body(&[("attempt_token", token)]),
                    Map::new(),
                )
            }
            _ => return Ok(None),
        }))
    }

    /// A sample whose rounds each send one request: sent `SAMPLE_BATCH` at a time (a burst is
    /// a burst, and a run against a remote target does not pay a round trip per round), then
    /// judged in round order exactly as one round at a time would be.
    async fn sample_in_batches(&mut self, label: &str, of: &Action, count: usize, field: &str, spread: bool) -> StepOutcome {
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        if self.offset != 0
            && let Some(name) = &self.h.target.clock.offset_header
        {
            headers.push((name.clone(), self.offset.to_string()));
        }
        let mut values = Vec::new();
        let mut round = 0;
        while round < count {
            let batch = (count - round).min(SAMPLE_BATCH);
            let mut nets = Vec::with_capacity(batch);
            let mut requests = Vec::with_capacity(batch);
            for i in round..round + batch {
                let (uri, body, extra) = self
                    .round_request(of)?
                    .ok_or_else(|| StepError::MissingInput("no request".into()))?;
                requests.push((uri, body.to_string(), extra));
                nets.push(if spread {
                    self.h.client(self.h.spare_source(i))?
                } else {
                    self.net.clone()
                });
            }
            let routed: Vec<String> = requests.iter().map(|(uri, _, _)| self.routed(uri)).collect();
            let sends = nets
                .iter()
                .zip(&requests)
                .zip(&routed)
                .map(|((net, (_, body, _)), uri)| Box::pin(net.send(label, "POST", uri, &headers, Some(body.clone()))));
            let exchanges = join_vec(sends.collect()).await;
            round += batch;
            for (exchange, (uri, _, extra)) in exchanges.into_iter().zip(requests) {
                self.exchanges.push(exchange.clone());
                self.settle(&exchange)?;
                let mut vars = if matches!(of, Action::Challenge { .. }) {
                    self.challenge_vars(&exchange)
                } else {
                    Self::response_vars(&exchange)
                };
                vars.extend(extra);
                self.finish_answer(of, Some(&exchange), &mut vars, label);
                if !collect(&mut values, vars, field, || uri.clone())? {
                    round = count;
                    break;
                }
            }
        }
        let mut vars = Map::new();
        vars.insert("values".into(), Value::Array(values));
        Ok((None, vars))
    }
}

/// Takes one round's `field` into `values`; false when the sample ends there. A rate limit is
/// conforming (RATE-01): a 429 that does not carry the value ends the sample, which is judged
/// on what it collected, never on the nulls; with fewer than 2 values it cannot be judged (the
/// error names `url`, the request rate-limited).
fn collect(values: &mut Vec<Value>, vars: StepVars, field: &str, url: impl FnOnce() -> String) -> Result<bool, StepError> {
    let rate_limited = vars.get("http_status") == Some(&json!(429));
    let value = Value::Object(vars).pointer(field).cloned();
    if rate_limited && value.is_none() {
        if values.len() < 2 {
            return Err(StepError::Harness(HarnessError::NoResponse {
                url: url(),
                reason: format!(
                    "rate-limited (429) after {} sample(s); the case needs at least 2: raise the per-address limit for the test",
                    values.len()
                ),
            }));
        }
        return Ok(false);
    }
    values.push(value.unwrap_or(Value::Null));
    Ok(true)
}
