//! Sampled values (uniqueness, entropy, pattern) and what the target fetched from the mock IdP.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{Findings, Observed};
use crate::language::Expect;
use crate::outcome::FindingKind;

pub(super) fn check(expect: &Expect, seen: &Observed, resolve: &dyn Fn(&Value) -> Value, findings: &mut Findings) {
    let values: Vec<String> = seen
        .vars
        .get("values")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    if expect.unique {
        let distinct: BTreeSet<&String> = values.iter().collect();
        if distinct.len() != values.len() || values.is_empty() {
            findings.add(
                FindingKind::NotUnique,
                format!("{} distinct values", values.len()),
                format!("{} distinct", distinct.len()),
            );
        }
    }
    if let Some(bits) = expect.min_entropy_bits {
        let estimate = apparent_entropy(&values);
        if estimate < f64::from(bits) {
            findings.add(
                FindingKind::LowEntropy,
                format!("at least {bits} bits of apparent entropy"),
                format!("{estimate:.0} bits"),
            );
        }
    }
    if let Some(pattern) = &expect.matches
        && let Ok(re) = regex::Regex::new(pattern)
        && values.iter().any(|v| !re.is_match(v))
    {
        findings.add(
            FindingKind::PatternMismatch,
            format!("every value matching `{pattern}`"),
            "a value that does not",
        );
    }
    idp(expect, seen, resolve, findings);
}

fn idp(expect: &Expect, seen: &Observed, resolve: &dyn Fn(&Value) -> Value, findings: &mut Findings) {
    let fetched = seen.jwks_fetched;
    if let Some(min) = expect.jwks_fetches_min
        && fetched < min
    {
        findings.add(
            FindingKind::JwksFetches,
            format!("at least {min} JWKS fetch(es)"),
            fetched.to_string(),
        );
    }
    if let Some(max) = expect.jwks_fetches_max
        && fetched > max
    {
        findings.add(
            FindingKind::JwksFetches,
            format!("at most {max} JWKS fetch(es)"),
            fetched.to_string(),
        );
    }
    for wanted in &expect.idp_fetched {
        let wanted = resolve(&json!(wanted));
        let wanted = wanted.as_str().unwrap_or_default();
        let path = url::Url::parse(wanted)
            .map(|u| u.path().to_string())
            .unwrap_or_else(|_| wanted.to_string());
        if !seen.idp_paths.contains(&path) {
            findings.add(
                FindingKind::NotFetched,
                format!("the target fetched `{wanted}` from the IdP"),
                "no request for it in the IdP's log",
            );
        }
    }
}

/// Length after the common prefix × log2 of the apparent alphabet.
fn apparent_entropy(values: &[String]) -> f64 {
    let Some(first) = values.first() else {
        return 0.0;
    };
    let prefix = values.iter().fold(first.len(), |n, v| {
        first.bytes().zip(v.bytes()).take(n).take_while(|(a, b)| a == b).count()
    });
    values
        .iter()
        .map(|v| {
            // Bytes, not `str` slicing: a target's value may put a multi-byte character across
            // the prefix boundary.
            let rest = &v.as_bytes()[prefix.min(v.len())..];
            let alphabet = if rest.iter().all(|b| b.is_ascii_digit()) {
                10.0
            } else if rest.iter().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
                16.0
            } else if rest.iter().all(|b| b.is_ascii_alphanumeric()) {
                62.0
            } else {
                64.0
            };
            rest.len() as f64 * f64::log2(alphabet)
        })
        .fold(f64::INFINITY, f64::min)
}

#[cfg(test)]
mod tests {
    use super::super::canned::{exchange, judge, kinds};
    use super::*;
    use serde_json::Map;

    #[test]
    fn entropy_ignores_a_shared_prefix() {
        let v = vec!["sk_AAAAAAAAAAAAAAAAAAAAAAAA".to_string(), "sk_BBBBBBBBBBBBBBBBBBBBBBBB".to_string()];
        assert!(apparent_entropy(&v) > 140.0);
        let digits = vec!["000123".to_string(), "998877".to_string()];
        assert!(apparent_entropy(&digits) < 20.0);
    }

    #[test]
    fn entropy_survives_non_ascii_values() {
        let v = vec!["é🔑ab".to_string(), "é🔒cd".to_string(), "\u{0}".to_string(), String::new()];
        let _ = apparent_entropy(&v);
        let v = vec!["aé".to_string(), "aè".to_string()];
        assert!(apparent_entropy(&v) > 0.0);
    }

    #[test]
    fn samples_are_judged_together() {
        let e = exchange(200, &[], "");
        let mut vars = Map::new();
        vars.insert("values".into(), json!(["123456", "123456", "12a456"]));
        let found = judge(
            r#"unique = true
matches = "^[0-9]{6}$"
min_entropy_bits = 64"#,
            &e,
            vars,
        );
        assert_eq!(
            kinds(&found),
            [FindingKind::NotUnique, FindingKind::LowEntropy, FindingKind::PatternMismatch]
        );
    }

    #[test]
    fn jwks_fetch_bounds_and_idp_fetches() {
        let e = exchange(200, &[], "");
        let found = judge(
            "jwks_fetches_min = 1\nidp_fetched = [\"http://127.0.0.1:9/clients/x.json\"]",
            &e,
            Map::new(),
        );
        assert_eq!(kinds(&found), [FindingKind::JwksFetches, FindingKind::NotFetched]);
    }
}
