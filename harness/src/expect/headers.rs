//! Response headers and the `WWW-Authenticate` challenge.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Findings, Observed};
use crate::language::{ChallengeExpect, Expect};
use crate::outcome::FindingKind;

pub(super) fn check(expect: &Expect, seen: &Observed, _resolve: &dyn Fn(&Value) -> Value, findings: &mut Findings) {
    for (name, needle) in &expect.header {
        let found = seen.exchange.and_then(|e| e.header(name));
        if !found.is_some_and(|f| f.to_ascii_lowercase().contains(&needle.to_ascii_lowercase())) {
            findings.add(
                FindingKind::MissingHeader,
                format!("`{name}` containing `{needle}`"),
                found.map(|f| format!("`{f}`")).unwrap_or_else(|| "absent".into()),
            );
        }
    }
    for name in &expect.header_absent {
        if let Some(f) = seen.exchange.and_then(|e| e.header(name)) {
            findings.add(FindingKind::UnexpectedHeader, format!("no `{name}`"), format!("`{f}`"));
        }
    }
    if let Some(ch) = &expect.challenge {
        challenge(ch, seen, findings);
    }
}

fn challenge(ch: &ChallengeExpect, seen: &Observed, findings: &mut Findings) {
    let Some(header) = seen.exchange.and_then(|e| e.header("www-authenticate")) else {
        findings.add(FindingKind::BadChallenge, "a `WWW-Authenticate: Bearer` challenge", "absent");
        return;
    };
    let (scheme, params) = parse_challenge(header);
    if !scheme.eq_ignore_ascii_case("bearer") {
        findings.add(FindingKind::BadChallenge, "scheme `Bearer`", format!("`{scheme}`"));
    }
    if ch.resource_metadata && params.get("resource_metadata").is_none_or(|u| url::Url::parse(u).is_err()) {
        findings.add(
            FindingKind::BadChallenge,
            "`resource_metadata` as an absolute URL",
            format!("`{header}`"),
        );
    }
    match ch.error.as_deref() {
        Some("absent") if params.contains_key("error") => {
            findings.add(FindingKind::BadChallenge, "no `error` parameter", format!("`{header}`"))
        }
        Some(e) if e != "absent" && params.get("error").map(String::as_str) != Some(e) => {
            findings.add(FindingKind::BadChallenge, format!("`error=\"{e}\"`"), format!("`{header}`"))
        }
        _ => {}
    }
}

/// Parses `Bearer a="b", c=d` into the scheme and its auth-params (RFC 9110 §11.2).
pub fn parse_challenge(header: &str) -> (String, BTreeMap<String, String>) {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = BTreeMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let name: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ',' && !c.is_whitespace())).collect();
        if name.is_empty() {
            break;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next_if_eq(&'=').is_none() {
            continue;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let value = if chars.next_if_eq(&'"').is_some() {
            let mut v = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => v.extend(chars.next()),
                    '"' => break,
                    c => v.push(c),
                }
            }
            v
        } else {
            std::iter::from_fn(|| chars.next_if(|c| *c != ',' && !c.is_whitespace())).collect()
        };
        params.insert(name.to_ascii_lowercase(), value);
    }
    (scheme.to_string(), params)
}

#[cfg(test)]
mod tests {
    use super::super::canned::{exchange, judge, kinds};
    use super::*;
    use serde_json::Map;

    #[test]
    fn parses_a_bearer_challenge_with_quoted_params() {
        let (scheme, params) =
            parse_challenge(r#"Bearer error="invalid_token", resource_metadata="http://x/.well-known/oauth-protected-resource""#);
        assert_eq!(scheme, "Bearer");
        assert_eq!(params["error"], "invalid_token");
        assert_eq!(params["resource_metadata"], "http://x/.well-known/oauth-protected-resource");
    }

    #[test]
    fn challenges_are_judged_by_parameter() {
        let good = exchange(401, &[("WWW-Authenticate", r#"Bearer resource_metadata="http://x/prm""#)], "");
        assert!(judge("challenge = { resource_metadata = true, error = \"absent\" }", &good, Map::new()).is_empty());
        let basic = exchange(401, &[("www-authenticate", "Basic realm=x")], "");
        assert_eq!(
            kinds(&judge("challenge = { resource_metadata = true }", &basic, Map::new())),
            [FindingKind::BadChallenge, FindingKind::BadChallenge]
        );
        let none = exchange(401, &[], "");
        assert_eq!(kinds(&judge("challenge = {}", &none, Map::new())), [FindingKind::BadChallenge]);
    }

    #[test]
    fn headers_match_case_insensitively() {
        let e = exchange(200, &[("Cache-Control", "No-Store"), ("X-Debug", "1")], "");
        assert!(judge(r#"header = { cache-control = "no-store" }"#, &e, Map::new()).is_empty());
        assert_eq!(
            kinds(&judge(r#"header = { pragma = "no-cache" }"#, &e, Map::new())),
            [FindingKind::MissingHeader]
        );
        assert_eq!(
            kinds(&judge(r#"header_absent = ["x-debug"]"#, &e, Map::new())),
            [FindingKind::UnexpectedHeader]
        );
    }
}
