//! The JSON body: values, members, sets, instants, URLs, secrets and shapes.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{Findings, Observed};
use crate::language::Expect;
use crate::outcome::{FindingKind, truncate};

pub(super) fn check(expect: &Expect, seen: &Observed, resolve: &dyn Fn(&Value) -> Value, findings: &mut Findings) {
    let body = Value::Object(seen.vars.clone());
    values(expect, &body, resolve, findings);
    members(expect, &body, findings);
    sets(expect, &body, resolve, findings);
    formats(expect, &body, seen, findings);
    for needle in &expect.body_excludes {
        let needle = resolve(&json!(needle));
        let needle = needle.as_str().unwrap_or_default();
        if !needle.is_empty() && seen.exchange.is_some_and(|e| e.response_body.contains(needle)) {
            findings.add(FindingKind::SecretDisclosed, "the secret absent from the response body", "present");
        }
    }
    if let Some(other) = &expect.same_shape_as {
        same_shape(other, &body, seen, findings);
    }
}

fn values(expect: &Expect, body: &Value, resolve: &dyn Fn(&Value) -> Value, findings: &mut Findings) {
    for (pointer, want) in &expect.json {
        let want = resolve(want);
        match body.pointer(pointer) {
            Some(v) if *v == want => {}
            Some(v) => findings.add(FindingKind::UnexpectedValue, format!("`{pointer}` = {want}"), v.to_string()),
            None => findings.add(FindingKind::MissingMember, format!("`{pointer}` = {want}"), "absent"),
        }
    }
    for (pointer, allowed) in &expect.one_of {
        let allowed = resolve(allowed);
        let choices = allowed.as_array().cloned().unwrap_or_else(|| vec![allowed.clone()]);
        match body.pointer(pointer) {
            Some(v) if choices.contains(v) => {}
            Some(v) => findings.add(FindingKind::UnexpectedValue, format!("`{pointer}` one of {allowed}"), v.to_string()),
            None => findings.add(FindingKind::MissingMember, format!("`{pointer}` one of {allowed}"), "absent"),
        }
    }
    for (pointer, other) in &expect.json_not {
        let other = resolve(other);
        if let Some(v) = body.pointer(pointer)
            && *v == other
        {
            findings.add(
                FindingKind::UnexpectedValue,
                format!("`{pointer}` to differ from {other}"),
                v.to_string(),
            );
        }
    }
}

fn members(expect: &Expect, body: &Value, findings: &mut Findings) {
    for pointer in &expect.present {
        if body.pointer(pointer).is_none_or(Value::is_null) {
            findings.add(FindingKind::MissingMember, format!("`{pointer}` present"), "absent or null");
        }
    }
    for pointer in &expect.absent {
        if let Some(v) = body.pointer(pointer) {
            findings.add(FindingKind::UnexpectedMember, format!("no `{pointer}`"), truncate(&v.to_string()));
        }
    }
}

fn sets(expect: &Expect, body: &Value, resolve: &dyn Fn(&Value) -> Value, findings: &mut Findings) {
    for (pointer, allowed) in &expect.subset {
        let allowed = resolve(allowed);
        let allowed: Vec<&Value> = allowed.as_array().map(|a| a.iter().collect()).unwrap_or_default();
        match body.pointer(pointer).and_then(Value::as_array) {
            Some(items) if items.iter().all(|i| allowed.contains(&i)) => {}
            Some(items) => findings.add(
                FindingKind::NotSubset,
                format!("`{pointer}` ⊆ {}", json!(allowed)),
                json!(items).to_string(),
            ),
            None => findings.add(FindingKind::MissingMember, format!("`{pointer}` as an array"), "absent"),
        }
    }
    for (pointer, wanted) in &expect.contains {
        let wanted = resolve(wanted);
        let wanted: Vec<&Value> = wanted.as_array().map(|a| a.iter().collect()).unwrap_or_default();
        match body.pointer(pointer).and_then(Value::as_array) {
            Some(items) => {
                let missing: Vec<&&Value> = wanted.iter().filter(|w| !items.contains(w)).collect();
                if !missing.is_empty() {
                    findings.add(
                        FindingKind::UnexpectedValue,
                        format!("`{pointer}` containing {}", json!(wanted)),
                        json!(items).to_string(),
                    );
                }
            }
            None => findings.add(FindingKind::MissingMember, format!("`{pointer}` as an array"), "absent"),
        }
    }
    for (pointer, want) in &expect.same_set {
        let want = resolve(want);
        let found = body.pointer(pointer);
        match (found.and_then(as_set), as_set(&want)) {
            (Some(f), Some(w)) if f == w => {}
            (Some(_), _) => findings.add(
                FindingKind::UnexpectedValue,
                format!("`{pointer}` with the members of {want} in any order"),
                found.map(Value::to_string).unwrap_or_default(),
            ),
            (None, _) => findings.add(
                FindingKind::MissingMember,
                format!("`{pointer}` as a set equal to {want}"),
                found.map(Value::to_string).unwrap_or_else(|| "absent".into()),
            ),
        }
    }
}

fn formats(expect: &Expect, body: &Value, seen: &Observed, findings: &mut Findings) {
    for pointer in &expect.future {
        let v = body.pointer(pointer).and_then(Value::as_str).unwrap_or_default();
        match time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339) {
            Ok(t) if t > seen.now => {}
            _ => findings.add(
                FindingKind::NotFuture,
                format!("`{pointer}` a future ISO-8601 instant"),
                format!("`{v}`"),
            ),
        }
    }
    for pointer in &expect.absolute_url {
        let v = body.pointer(pointer).and_then(Value::as_str).unwrap_or_default();
        if !url::Url::parse(v).map(|u| u.scheme().starts_with("http")).unwrap_or(false) {
            findings.add(
                FindingKind::NotAbsoluteUrl,
                format!("`{pointer}` an absolute URL"),
                format!("`{v}`"),
            );
        }
    }
    if expect.secure_urls {
        let mut insecure = Vec::new();
        collect_insecure_urls(body, "", &mut insecure);
        for (pointer, url) in insecure {
            findings.add(
                FindingKind::InsecureUrl,
                format!("`{pointer}` an https URL (plain http only on loopback)"),
                format!("`{url}`"),
            );
        }
    }
}

fn same_shape(other: &str, body: &Value, seen: &Observed, findings: &mut Findings) {
    let shape = |v: &Value| -> (Value, Vec<String>) {
        let keys = v.as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
        (v.get("http_status").cloned().unwrap_or(Value::Null), keys)
    };
    let theirs = seen.earlier.get(other).map(shape);
    let ours = shape(body);
    if theirs.as_ref() != Some(&ours) {
        let show = |(status, keys): &(Value, Vec<String>)| format!("{status} with {{{}}}", keys.join(", "));
        findings.add(
            FindingKind::ShapeDiffers,
            format!(
                "the same status and members as `{other}`: {}",
                theirs.as_ref().map(show).unwrap_or_else(|| "(no such step)".into())
            ),
            show(&ours),
        );
    }
}

/// An array's members, or a space-delimited string's words, as a set (`None` for other values).
fn as_set(v: &Value) -> Option<BTreeSet<String>> {
    match v {
        Value::Array(a) => Some(
            a.iter()
                .map(|x| x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string()))
                .collect(),
        ),
        Value::String(s) => Some(s.split_whitespace().map(str::to_string).collect()),
        _ => None,
    }
}

/// Every string under `value` that is a plain-http URL to a non-loopback host, with its pointer.
fn collect_insecure_urls(value: &Value, pointer: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::String(s) => {
            if let Ok(u) = url::Url::parse(s)
                && u.scheme() == "http"
            {
                let loopback = match u.host() {
                    Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                    Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                    Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost"),
                    None => false,
                };
                if !loopback {
                    out.push((pointer.to_string(), s.clone()));
                }
            }
        }
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, v)| collect_insecure_urls(v, &format!("{pointer}/{i}"), out)),
        Value::Object(m) => m.iter().for_each(|(k, v)| {
            let k = k.replace('~', "~0").replace('/', "~1");
            collect_insecure_urls(v, &format!("{pointer}/{k}"), out)
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::canned::{exchange, judge, kinds};
    use super::*;
    use serde_json::Map;

    #[test]
    fn sets_ignore_order_and_accept_scope_strings() {
        assert_eq!(as_set(&json!(["b", "a"])), as_set(&json!("a b")));
        assert_ne!(as_set(&json!(["a"])), as_set(&json!(["a", "b"])));
        assert_eq!(as_set(&json!(3)), None);
        let e = exchange(200, &[], r#"{"scopes":"api.write api.read"}"#);
        assert!(judge(r#"same_set = { "/scopes" = ["api.read", "api.write"] }"#, &e, Map::new()).is_empty());
        assert_eq!(
            kinds(&judge(r#"same_set = { "/scopes" = ["api.read"] }"#, &e, Map::new())),
            [FindingKind::UnexpectedValue]
        );
    }

    #[test]
    fn values_and_members() {
        let e = exchange(200, &[], r#"{"status":"claimed","credential":null,"otp":"123456"}"#);
        assert!(judge(r#"json = { "/status" = "claimed" }"#, &e, Map::new()).is_empty());
        assert_eq!(
            kinds(&judge(r#"json = { "/status" = "initiated" }"#, &e, Map::new())),
            [FindingKind::UnexpectedValue]
        );
        assert_eq!(
            kinds(&judge(r#"json = { "/nope" = 1 }"#, &e, Map::new())),
            [FindingKind::MissingMember]
        );
        assert_eq!(
            kinds(&judge(r#"present = ["/credential"]"#, &e, Map::new())),
            [FindingKind::MissingMember]
        );
        assert_eq!(
            kinds(&judge(r#"absent = ["/otp"]"#, &e, Map::new())),
            [FindingKind::UnexpectedMember]
        );
        assert_eq!(
            kinds(&judge(r#"json_not = { "/status" = "claimed" }"#, &e, Map::new())),
            [FindingKind::UnexpectedValue]
        );
        assert!(judge(r#"one_of = { "/status" = ["initiated", "claimed"] }"#, &e, Map::new()).is_empty());
        assert_eq!(
            kinds(&judge(r#"one_of = { "/status" = ["pending", "expired"] }"#, &e, Map::new())),
            [FindingKind::UnexpectedValue]
        );
        assert_eq!(
            kinds(&judge(r#"body_excludes = ["123456"]"#, &e, Map::new())),
            [FindingKind::SecretDisclosed]
        );
    }

    #[test]
    fn subsets_instants_and_urls() {
        let e = exchange(
            200,
            &[],
            r#"{"scopes":["a","c"],"expires_at":"2000-01-01T00:00:00Z","uri":"/relative","logo":"http://cdn.example/x.png","local":"http://127.0.0.1/x"}"#,
        );
        assert_eq!(
            kinds(&judge(r#"subset = { "/scopes" = ["a", "b"] }"#, &e, Map::new())),
            [FindingKind::NotSubset]
        );
        assert_eq!(
            kinds(&judge(r#"future = ["/expires_at"]"#, &e, Map::new())),
            [FindingKind::NotFuture]
        );
        assert_eq!(
            kinds(&judge(r#"absolute_url = ["/uri"]"#, &e, Map::new())),
            [FindingKind::NotAbsoluteUrl]
        );
        let insecure = judge("secure_urls = true", &e, Map::new());
        assert_eq!(kinds(&insecure), [FindingKind::InsecureUrl]);
        assert!(insecure[0].expected.contains("/logo"), "{:?}", insecure[0]);
    }

    #[test]
    fn arrays_contain_the_wanted_values_in_any_order() {
        let e = exchange(200, &[], r#"{"grants":["b","a","c"]}"#);
        assert!(judge(r#"contains = { "/grants" = ["a", "b"] }"#, &e, Map::new()).is_empty());
        assert_eq!(
            kinds(&judge(r#"contains = { "/grants" = ["d"] }"#, &e, Map::new())),
            [FindingKind::UnexpectedValue]
        );
        assert_eq!(
            kinds(&judge(r#"contains = { "/nope" = ["a"] }"#, &e, Map::new())),
            [FindingKind::MissingMember]
        );
    }

    #[test]
    fn a_missing_earlier_step_differs_in_shape() {
        let e = exchange(200, &[], r#"{"a":1}"#);
        assert_eq!(
            kinds(&judge(r#"same_shape_as = "first""#, &e, Map::new())),
            [FindingKind::ShapeDiffers]
        );
    }
}
