//! Getting the OTP the way a human does: from the claim link in the mail, through the page.

use std::time::Duration;

use regex::Regex;
use serde_json::Value;

use crate::{MailError, Message};

/// The default claim-link pattern: an absolute URL whose query carries `token=` or
/// `claim_attempt_token=`. Group 1 is the token.
pub const DEFAULT_LINK_PATTERN: &str = r#"https?://[^\s"'<>]+?[?&](?:claim_attempt_token|token)=([A-Za-z0-9._~%-]+)"#;

/// A claim link found in a message.
#[derive(Clone)]
pub struct ClaimLink {
    /// The whole URL.
    pub url: String,
    /// The `claim_attempt_token` it carries.
    pub token: String,
}

impl std::fmt::Debug for ClaimLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimLink").field("token", &"<redacted>").finish_non_exhaustive()
    }
}

/// Finds the claim link in `message` with `pattern` (group 1 = the token), or the default.
pub fn extract_claim_link(message: &Message, pattern: Option<&str>) -> Result<ClaimLink, MailError> {
    let pattern = pattern.unwrap_or(DEFAULT_LINK_PATTERN);
    let re = Regex::new(pattern).map_err(|e| MailError::Pattern {
        pattern: pattern.into(),
        reason: e.to_string(),
    })?;
    // Links sit in HTML attributes, where `&` is escaped.
    let body = message.body().replace("&amp;", "&");
    let recipient = message.to.first().cloned().unwrap_or_default();
    let caps = re.captures(&body).ok_or(MailError::NoClaimLink(recipient))?;
    let url = caps.get(0).map(|m| m.as_str().to_string()).unwrap_or_default();
    let token = caps.get(1).map(|m| m.as_str().to_string()).unwrap_or_default();
    let token = url::form_urlencoded::parse(format!("t={token}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or(token);
    Ok(ClaimLink { url, token })
}

/// Finds a six-digit code in the text of a message, for targets that mail the OTP itself.
pub fn extract_otp_text(message: &Message) -> Option<String> {
    let re = Regex::new(r"(?:^|[^0-9])([0-9]{6})(?:[^0-9]|$)").ok()?;
    re.captures(&message.text).and_then(|c| c.get(1)).map(|m| m.as_str().to_string())
}

/// Opens the claim link (a plain GET, as a browser would), then POSTs the token to
/// `challenge_url` and returns the six-digit OTP from the `challenge` member.
pub async fn obtain_otp(http: &reqwest::Client, link: &ClaimLink, challenge_url: &str) -> Result<String, MailError> {
    let no_response = |url: &str, e: reqwest::Error| MailError::Http {
        url: url.into(),
        reason: e.to_string(),
    };
    http.get(&link.url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| no_response(&link.url, e))?;
    let response = http
        .post(challenge_url)
        .json(&serde_json::json!({ "claim_attempt_token": link.token }))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| no_response(challenge_url, e))?;
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    let otp = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v.get("challenge").and_then(Value::as_str).map(str::to_string));
    match otp {
        Some(otp) if status == 200 => Ok(otp),
        _ => Err(MailError::NoOtp { status, body }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(html: &str) -> Message {
        Message::parse(
            "a@x".into(),
            vec!["carol@example.com".into()],
            format!("Subject: s\r\nContent-Type: text/html\r\n\r\n{html}").as_bytes(),
        )
    }

    #[test]
    fn finds_the_token_in_an_escaped_href() {
        let m = message(r#"<a href="http://127.0.0.1:8000/agent/auth/claim/view?x=1&amp;token=cvt_abc-_1">View</a>"#);
        let link = extract_claim_link(&m, None).expect("link");
        assert_eq!(link.token, "cvt_abc-_1");
        assert_eq!(link.url, "http://127.0.0.1:8000/agent/auth/claim/view?x=1&token=cvt_abc-_1");
    }

    #[test]
    fn reports_a_message_without_a_link() {
        assert!(matches!(
            extract_claim_link(&message("<p>hi</p>"), None),
            Err(MailError::NoClaimLink(_))
        ));
    }

    #[test]
    fn finds_a_mailed_otp() {
        let m = Message::parse("a".into(), vec!["b".into()], b"Subject: s\r\n\r\nYour code is 012345.\r\n");
        assert_eq!(extract_otp_text(&m).as_deref(), Some("012345"));
    }
}
