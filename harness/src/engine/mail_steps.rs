//! The mail steps: reading a claim mail (and an OTP through its link), watching that no mail
//! comes, and probing where an agent could read claim mail without the mailbox (SEC-08).

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{StepError, StepOutcome};
use crate::engine::context::CaseCtx;
use crate::outcome::{FindingKind, MailRecord};

impl CaseCtx<'_> {
    /// `probe-exposure` (SEC-08): GETs, without credentials, the places an agent could read
    /// the claim mail from, and lists those whose answer holds `secret`.
    pub(super) async fn probe_exposure(
        &mut self,
        label: &str,
        secret: &str,
        registration_id: &Option<String>,
        link: &Option<String>,
    ) -> StepOutcome {
        let secret = self
            .text(&Some(secret.to_string()))
            .map_err(StepError::MissingInput)?
            .unwrap_or_default();
        // A short value could turn up anywhere by chance; the mailed tokens are long.
        if secret.len() < 16 {
            return Err(StepError::MissingInput(format!(
                "a secret of 16 characters or more to look for (found {} characters)",
                secret.len()
            )));
        }
        let registration_id = self
            .text(registration_id)
            .map_err(StepError::MissingInput)?
            .unwrap_or_else(|| self.registration_id());
        let link = self.text(link).map_err(StepError::MissingInput)?;
        let Ok(base) = url::Url::parse(&self.h.target.base_url) else {
            return Err(StepError::MissingInput("the target's base URL".into()));
        };
        let origin = base.origin();
        let mut urls = Vec::new();
        // The mail source's own outbox, where it is on the target's origin: what the harness
        // reads with credentials, an agent must not read without them.
        if let Some(url) = self
            .h
            .mail
            .as_ref()
            .and_then(|m| m.outbox_url(&self.identity_email(), &registration_id))
            && url::Url::parse(&url).is_ok_and(|u| u.origin() == origin)
        {
            urls.push(url);
        }
        // The v0.1 sample serves its outbox here.
        if let Ok(u) = base.join(&format!("/mail/{registration_id}.html")) {
            urls.push(u.to_string());
        }
        // The claim page without its token, and the paths above it.
        if let Some(mut u) = link
            .as_deref()
            .and_then(|l| url::Url::parse(l).ok())
            .filter(|u| u.origin() == origin)
        {
            u.set_query(None);
            u.set_fragment(None);
            urls.push(u.to_string());
            while u.path() != "/" {
                let parent = u
                    .path()
                    .trim_end_matches('/')
                    .rsplit_once('/')
                    .map(|(p, _)| format!("{p}/"))
                    .unwrap_or_else(|| "/".into());
                u.set_path(&parent);
                if u.path() != "/" {
                    urls.push(u.to_string());
                }
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        urls.retain(|u| seen.insert(u.clone()));
        let (mut revealed, mut evidence) = (Vec::new(), None);
        for url in &urls {
            // Plain requests, no credentials; an unanswered or refused probe reveals nothing.
            let exchange = self.net.send(label, "GET", &self.routed(url), &[], None).await;
            self.exchanges.push(exchange.clone());
            if exchange.response_body.contains(&secret) {
                if revealed.is_empty() {
                    evidence = Some(exchange);
                }
                revealed.push(json!(url));
            } else if evidence.is_none() {
                evidence = Some(exchange);
            }
        }
        let mut vars = Map::new();
        vars.insert("revealed".into(), Value::Array(revealed));
        vars.insert("probed".into(), json!(urls));
        Ok((evidence, vars))
    }

    /// `read-mail`, and with `otp` the rest of `OTP(reg)`: open the page as a person would,
    /// then press its button.
    pub(super) async fn read_mail(
        &mut self,
        label: &str,
        email: &Option<String>,
        registration_id: &Option<String>,
        otp: bool,
    ) -> StepOutcome {
        let email = self
            .text(email)
            .map_err(StepError::MissingInput)?
            .unwrap_or_else(|| self.identity_email());
        let registration_id = self
            .text(registration_id)
            .map_err(StepError::MissingInput)?
            .unwrap_or_else(|| self.registration_id());
        let Some(source) = self.h.mail.clone() else {
            return Err(StepError::MissingInput("no mail source".into()));
        };
        let waiting = crate::waits::begin(&self.case_id, format!("a claim mail to `{email}`"), None);
        let message = match source
            .next_message(self.h.plain.client(), &email, &registration_id, Duration::from_secs(5))
            .await
        {
            Ok(m) => m,
            Err(e) => {
                self.finding(label, FindingKind::NoMail, format!("a claim mail to `{email}`"), e.to_string());
                return Err(StepError::MissingInput("no claim mail".into()));
            }
        };
        drop(waiting);
        self.mail.push(MailRecord {
            step: label.to_string(),
            to: message.to.clone(),
            subject: message.subject.clone(),
            text: message.text.clone(),
        });
        let link = match authmd_mock_mailbox::extract_claim_link(&message, self.h.target.link_pattern.as_deref()) {
            Ok(l) => l,
            Err(e) => {
                let expected = "a claim link carrying a claim_attempt_token";
                self.finding(label, FindingKind::NoMail, expected, e.to_string());
                return Err(StepError::MissingInput("no claim link".into()));
            }
        };
        self.h.secrets.add(&link.token);
        let mut vars = Map::new();
        vars.insert("link".into(), json!(link.url));
        vars.insert("attempt_token".into(), json!(link.token));
        vars.insert("to".into(), json!(message.to));
        if !otp {
            return Ok((None, vars));
        }
        self.http(label, "GET", &link.url, Vec::new(), None).await?;
        let uri = self.challenge_uri().map_err(StepError::MissingInput)?;
        let body = self.body(&[("attempt_token", json!(link.token))]);
        let exchange = self.post_json(label, &uri, &body).await?;
        let mut out = Self::response_vars(&exchange);
        out.append(&mut vars);
        match exchange.json().and_then(|b| b["challenge"].as_str().map(str::to_string)) {
            Some(code) if exchange.status == Some(200) => {
                self.h.secrets.add(&code);
                out.insert("otp".into(), json!(code));
            }
            _ => {
                let found = exchange.status_and_redacted_body(&|s| self.h.secrets.redact(s));
                self.finding(label, FindingKind::UnexpectedStatus, "200 with a `challenge` OTP", found);
                return Err(StepError::MissingInput("no OTP".into()));
            }
        }
        Ok((Some(exchange), out))
    }

    pub(super) async fn no_mail(&mut self, label: &str, email: &Option<String>, within_ms: u64) -> StepOutcome {
        let email = self
            .text(email)
            .map_err(StepError::MissingInput)?
            .unwrap_or_else(|| self.identity_email());
        let Some(source) = self.h.mail.clone() else {
            return Err(StepError::MissingInput("no mail source".into()));
        };
        let within = Duration::from_millis(within_ms);
        let _waiting = crate::waits::begin(&self.case_id, format!("no mail to `{email}`"), Some(within));
        if let Ok(m) = source
            .next_message(self.h.plain.client(), &email, &self.registration_id(), within)
            .await
        {
            let found = format!("a message: {}", m.subject);
            self.finding(label, FindingKind::UnexpectedMail, format!("no new mail to `{email}`"), found);
        }
        Ok((None, Map::new()))
    }
}
