//! Status, `error` code and the status counts of parallel requests.

use serde_json::Value;

use super::{Findings, Observed};
use crate::language::{Expect, StatusSpec};
use crate::outcome::FindingKind;

pub(super) fn check(expect: &Expect, seen: &Observed, findings: &mut Findings) {
    let found = seen.exchange.and_then(|e| e.status);
    let answer = || seen.exchange.map(|e| e.status_and_redacted_body(seen.redact)).unwrap_or_default();
    if let Some(status) = &expect.status
        && !status.matches(found)
    {
        findings.add(FindingKind::UnexpectedStatus, format!("status {status}"), answer());
    }
    if let Some(status) = &expect.status_not
        && status.matches(found)
    {
        findings.add(FindingKind::UnexpectedStatus, format!("any status but {status}"), answer());
    }
    if let Some(codes) = &expect.error {
        error_code(codes, seen, findings);
    }
    if !expect.counts.is_empty() {
        counts(expect, seen, findings);
    }
}

fn error_code(codes: &Value, seen: &Observed, findings: &mut Findings) {
    let mut accepted: Vec<String> = match codes {
        Value::Array(a) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        v => vec![v.as_str().unwrap_or_default().to_string()],
    };
    // Any name of a synonym set stands for the whole set.
    let sets: Vec<&Vec<String>> = seen
        .synonyms
        .iter()
        .filter(|set| set.iter().any(|n| accepted.contains(n)))
        .collect();
    for set in sets {
        for name in set {
            if !accepted.contains(name) {
                accepted.push(name.clone());
            }
        }
    }
    let found = seen.vars.get("error").and_then(Value::as_str);
    if !found.is_some_and(|f| accepted.iter().any(|a| a == f)) {
        let wanted = accepted.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(" or ");
        findings.add(
            FindingKind::UnexpectedErrorCode,
            format!("`error` to be {wanted}"),
            found.map(|f| format!("`{f}`")).unwrap_or_else(|| "no `error` member".into()),
        );
    }
}

fn counts(expect: &Expect, seen: &Observed, findings: &mut Findings) {
    let statuses: Vec<u16> = seen
        .vars
        .get("statuses")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_u64().map(|s| s as u16)).collect())
        .unwrap_or_default();
    for (class, want) in &expect.counts {
        let spec = class.parse::<StatusSpec>();
        let n = statuses
            .iter()
            .filter(|s| spec.as_ref().is_ok_and(|c| c.matches(Some(**s))))
            .count() as u32;
        if n != *want {
            findings.add(
                FindingKind::WrongCount,
                format!("{want} answers with status {class}"),
                format!("{n} (all: {statuses:?})"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::canned::{exchange, judge, kinds};
    use super::*;
    use serde_json::{Map, json};

    #[test]
    fn a_wrong_status_is_a_finding_with_the_answer() {
        let e = exchange(500, &[], r#"{"error":"server_error"}"#);
        let found = judge("status = 400", &e, Map::new());
        assert_eq!(kinds(&found), [FindingKind::UnexpectedStatus]);
        assert!(found[0].found.contains("500"), "{:?}", found[0]);
        assert!(judge("status = \"5xx\"", &e, Map::new()).is_empty());
        assert_eq!(kinds(&judge("status_not = 500", &e, Map::new())), [FindingKind::UnexpectedStatus]);
    }

    #[test]
    fn any_listed_error_code_is_accepted() {
        let e = exchange(401, &[], r#"{"error":"otp_invalid"}"#);
        assert!(judge(r#"error = ["otp_not_generated", "otp_invalid"]"#, &e, Map::new()).is_empty());
        assert_eq!(
            kinds(&judge(r#"error = "invalid_request""#, &e, Map::new())),
            [FindingKind::UnexpectedErrorCode]
        );
        let bare = exchange(401, &[], "not json");
        let found = judge(r#"error = "otp_invalid""#, &bare, Map::new());
        assert_eq!(found[0].found, "no `error` member");
    }

    #[test]
    fn a_secret_the_cut_would_split_is_redacted_first() {
        let secret = format!("sk_{}", "S".repeat(60));
        let body = format!(r#"{{"pad":"{}","credential":"{secret}"}}"#, "p".repeat(170));
        let e = exchange(200, &[], &body);
        let redact = |t: &str| t.replace(&secret, "<redacted>");
        let found = super::super::canned::judge_redacting("status = 400", &e, Map::new(), &redact);
        assert!(!found[0].found.contains("sk_SSS"), "{}", found[0].found);
        // Without redaction first, the cut leaves a prefix of the secret behind.
        assert!(e.status_and_body().contains("sk_SSS"));
    }

    #[test]
    fn counts_are_exact() {
        let e = exchange(200, &[], "");
        let mut vars = Map::new();
        vars.insert("statuses".into(), json!([200, 400, 400]));
        assert!(judge(r#"counts = { "2xx" = 1, "400" = 2 }"#, &e, vars.clone()).is_empty());
        assert_eq!(kinds(&judge(r#"counts = { "2xx" = 2 }"#, &e, vars)), [FindingKind::WrongCount]);
    }
}
