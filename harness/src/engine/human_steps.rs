//! The human's side of a ceremony on the target's own pages, by the target's `[session]`
//! recipe: sign in, then type the code the agent surfaced (v0.6, v0.7) or confirm and read the
//! code the page reveals (the production dialect's reversed ceremony).

use serde_json::json;

use super::{FORM, StepError, StepOutcome, form_encode};
use crate::engine::context::CaseCtx;
use crate::outcome::Exchange;
use crate::target::SessionRecipe;

/// The most characters a revealed code may have: a page that shows more is not showing a code.
const MAX_CODE_CHARS: usize = 64;

/// A signed-in user on the link's page: the recipe, the link's parts, the session cookies.
struct SignedIn {
    recipe: SessionRecipe,
    return_to: String,
    attempt_token: String,
    cookies: Vec<String>,
}

impl SignedIn {
    /// `template` with the recipe's placeholders filled in.
    fn fill(&self, template: &str, email: &str, code: &str) -> String {
        template
            .replace("{email}", email)
            .replace("{return_to}", &self.return_to)
            .replace("{claim_attempt_token}", &self.attempt_token)
            .replace("{user_code}", code)
    }

    /// The confirm form's body.
    fn confirm_body(&self, email: &str, code: &str) -> String {
        let confirm: Vec<(String, String)> = self
            .recipe
            .confirm_fields
            .iter()
            .map(|(k, v)| (k.clone(), self.fill(v, email, code)))
            .collect();
        form_encode(&confirm.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<Vec<_>>())
    }

    /// Request headers carrying the session.
    fn headers(&self, form: bool) -> Vec<(String, String)> {
        let mut headers = Vec::new();
        if form {
            headers.push(("content-type".to_string(), FORM.to_string()));
        }
        if !self.cookies.is_empty() {
            headers.push(("cookie".to_string(), self.cookies.join("; ")));
        }
        headers
    }
}

impl CaseCtx<'_> {
    /// Opens `uri` and signs in as `email`. A link the target refuses ends the step with that
    /// answer (`Err(Ok(..))`).
    async fn sign_in(&mut self, label: &str, uri: &str, email: &str) -> Result<SignedIn, StepOutcome> {
        let recipe = match self.h.target.session.clone() {
            Some(r) => r,
            None => return Err(Err(StepError::MissingInput("no [session] recipe".into()))),
        };
        let opened = self.http(label, "GET", uri, Vec::new(), None).await.map_err(|e| Err(e.into()))?;
        if opened.status.is_none_or(|s| s >= 400) {
            let vars = Self::response_vars(&opened);
            return Err(Ok((Some(opened), vars)));
        }
        let (return_to, attempt_token) = link_parts(uri);
        let mut signed = SignedIn {
            recipe,
            return_to,
            attempt_token,
            cookies: Vec::new(),
        };
        let login: Vec<(String, String)> = signed
            .recipe
            .login_fields
            .iter()
            .map(|(k, v)| (k.clone(), signed.fill(v, email, "")))
            .collect();
        let login_body = form_encode(&login.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<Vec<_>>());
        let login_url = self.h.target.url(&signed.recipe.login_url);
        let headers = signed.headers(true);
        let answered = self
            .http(label, "POST", &login_url, headers, Some(login_body))
            .await
            .map_err(|e| Err(e.into()))?;
        // The session is whatever cookies the sign-in set (name=value exactly as received,
        // attributes dropped), not the report's capped copy of the headers.
        signed.cookies = answered.cookies.clone();
        Ok(signed)
    }

    /// The step's link and who signs in (the case's `{{identity.email}}` unless it says).
    fn link_and_email(&self, verification_uri: &str, email: &Option<String>) -> Result<(String, String), StepError> {
        let uri = self
            .text(&Some(verification_uri.to_string()))
            .map_err(StepError::MissingInput)?
            .unwrap_or_default();
        let email = self
            .text(email)
            .map_err(StepError::MissingInput)?
            .unwrap_or_else(|| self.identity_email());
        Ok((uri, email))
    }

    /// `confirm-claim`: the user signs in and types `user_code` on the confirm page.
    pub(super) async fn confirm_claim(
        &mut self,
        label: &str,
        verification_uri: &str,
        user_code: &str,
        email: &Option<String>,
    ) -> StepOutcome {
        let (uri, email) = self.link_and_email(verification_uri, email)?;
        let code = self
            .text(&Some(user_code.to_string()))
            .map_err(StepError::MissingInput)?
            .unwrap_or_default();
        let (uri, email, code) = (uri.as_str(), email.as_str(), code.as_str());
        let signed = match self.sign_in(label, uri, email).await {
            Ok(s) => s,
            Err(done) => return done,
        };
        let confirm_url = self.h.target.url(&signed.recipe.confirm_url);
        let body = signed.confirm_body(email, code);
        let exchange = self.http(label, "POST", &confirm_url, signed.headers(true), Some(body)).await?;
        let vars = Self::response_vars(&exchange);
        Ok((Some(exchange), vars))
    }

    /// `reveal-claim`: the user signs in, confirms (unless `confirm` is false: then they only
    /// open the link), and reads the code the page shows into `user_code`.
    pub(super) async fn reveal_claim(&mut self, label: &str, verification_uri: &str, email: &Option<String>, confirm: bool) -> StepOutcome {
        let (uri, email) = self.link_and_email(verification_uri, email)?;
        let (uri, email) = (uri.as_str(), email.as_str());
        let pattern = self.h.target.session.as_ref().and_then(|s| s.reveal.clone()).ok_or_else(|| {
            StepError::MissingInput("the [session] recipe has no `reveal` pattern (where the page shows the code)".into())
        })?;
        let (before, after) = pattern
            .split_once("{user_code}")
            .ok_or_else(|| StepError::MissingInput("the [session] `reveal` pattern has no `{user_code}`".into()))?;
        let (before, after) = (before.to_string(), after.to_string());
        let signed = match self.sign_in(label, uri, email).await {
            Ok(s) => s,
            Err(done) => return done,
        };
        let exchange = if confirm {
            let confirm_url = self.h.target.url(&signed.recipe.confirm_url);
            let body = signed.confirm_body(email, "");
            self.http(label, "POST", &confirm_url, signed.headers(true), Some(body)).await?
        } else {
            self.http(label, "GET", uri, signed.headers(false), None).await?
        };
        let mut vars = Self::response_vars(&exchange);
        if let Some(code) = revealed(&exchange, &before, &after) {
            self.h.secrets.add(&code);
            vars.insert("user_code".into(), json!(code));
        }
        Ok((Some(exchange), vars))
    }
}

/// The code a page shows between `before` and `after`, if it shows one.
fn revealed(exchange: &Exchange, before: &str, after: &str) -> Option<String> {
    let body = &exchange.response_body;
    let start = body.find(before)? + before.len();
    let rest = &body[start..];
    let end = if after.is_empty() {
        rest.find(char::is_whitespace).unwrap_or(rest.len())
    } else {
        rest.find(after)?
    };
    let code = rest[..end].trim();
    (!code.is_empty() && code.chars().count() <= MAX_CODE_CHARS).then(|| code.to_string())
}

/// From a `verification_uri`: its `return_to` (if any) and the attempt token in it or in the
/// URI itself (`claim_attempt_token`, or the production dialect's `token`).
fn link_parts(uri: &str) -> (String, String) {
    let query = |u: &str| -> Vec<(String, String)> {
        let q = u.split_once('?').map(|(_, q)| q).unwrap_or_default();
        url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()
    };
    let top = query(uri);
    let find = |pairs: &[(String, String)], name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let return_to = find(&top, "return_to").unwrap_or_default();
    let inner = query(&return_to);
    let token = ["claim_attempt_token", "token"]
        .iter()
        .find_map(|name| find(&top, name).or_else(|| find(&inner, name)))
        .unwrap_or_default();
    (return_to, token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_attempt_token_in_either_place() {
        assert_eq!(link_parts("https://s/agent-claim?token=cat_1").1, "cat_1");
        let (to, token) = link_parts("http://a/login?return_to=%2Fclaim%3Fclaim_attempt_token%3Dcat_x1");
        assert_eq!((to.as_str(), token.as_str()), ("/claim?claim_attempt_token=cat_x1", "cat_x1"));
        assert_eq!(link_parts("http://a/claim?claim_attempt_token=t").1, "t");
        assert_eq!(link_parts("http://a/claim").1, "");
    }

    fn page(body: &str) -> Exchange {
        Exchange {
            response_body: body.into(),
            ..Exchange::default()
        }
    }

    #[test]
    fn reads_the_code_between_the_pattern_parts() {
        let shown = page("<p>Read this back:</p><output id=\"user-code\"> 042917 </output>");
        assert_eq!(
            revealed(&shown, "<output id=\"user-code\">", "</output>").as_deref(),
            Some("042917")
        );
        assert_eq!(revealed(&page("no code here"), "<output id=\"user-code\">", "</output>"), None);
        // An unclosed or oversized "code" is no code.
        assert_eq!(
            revealed(&page("<output id=\"user-code\">123"), "<output id=\"user-code\">", "</output>"),
            None
        );
        let long = format!("<b>{}</b>", "9".repeat(65));
        assert_eq!(revealed(&page(&long), "<b>", "</b>"), None);
        assert_eq!(revealed(&page("code: 77 left"), "code: ", "").as_deref(), Some("77"));
    }
}
