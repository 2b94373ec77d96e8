//! References in case parameters: `{{step.member.0}}` names a value an earlier step produced
//! (or the harness's `identity`, `meta`, `prm`, `target`). Target data flows through here, so
//! nothing in it may panic: a missing or malformed reference is an error naming it.

use serde_json::{Map, Value};

/// The value at a dotted path (`reg.credential`, `prm.authorization_servers.0`), if any.
pub fn lookup(vars: &Map<String, Value>, path: &str) -> Option<Value> {
    let mut parts = path.split('.');
    let mut current = vars.get(parts.next()?)?;
    for part in parts {
        current = match current {
            Value::Object(m) => m.get(part)?,
            Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current.clone())
}

/// The well-known name of Protected Resource Metadata (RFC 9728 §3).
const PRM: &str = "oauth-protected-resource";

/// The value of one reference: a dotted path or a `"literal"`, then filters applied left to
/// right (`| near:<variant>`, see [`crate::nearmiss`]; `| prm_url`, `| prm_resource(s)`).
fn reference(vars: &Map<String, Value>, inner: &str) -> Result<Value, String> {
    let mut parts = inner.split('|');
    let key = parts.next().unwrap_or_default().trim();
    let mut value = match key.strip_prefix('"').and_then(|k| k.strip_suffix('"')) {
        Some(literal) => Value::String(literal.to_string()),
        None => lookup(vars, key).ok_or_else(|| format!("`{{{{{key}}}}}` has no value"))?,
    };
    for f in parts.map(str::trim) {
        value = filter(&value, f).map_err(|why| format!("`{{{{{inner}}}}}`: {why}"))?;
    }
    Ok(value)
}

/// `value` through the filter `f`.
fn filter(value: &Value, f: &str) -> Result<Value, String> {
    if let Some(v) = f.strip_prefix(crate::nearmiss::MARKER).map(str::trim) {
        return match v.strip_prefix(':') {
            Some(variant) => crate::nearmiss::apply(variant.trim(), value),
            None => Err("the step lists no `near_miss` variants".into()),
        };
    }
    match f {
        // RFC 9728 §3.1: the PRM URL a resource identifier gives, and back (the first, or
        // every identifier that gives it).
        "prm_url" => match value {
            Value::String(id) => Ok(Value::String(crate::wellknown::insert(id, PRM))),
            other => Err(format!("{other} is no resource identifier")),
        },
        "prm_resource" | "prm_resources" => {
            let ids = value
                .as_str()
                .and_then(|url| crate::wellknown::identifiers(url, PRM))
                .ok_or_else(|| format!("{value} is no RFC 9728 well-known URL, so no resource identifier derives from it"))?;
            Ok(if f == "prm_resource" {
                Value::from(ids[0].clone())
            } else {
                Value::from(ids)
            })
        }
        _ => Err(format!("unknown filter `{f}`")),
    }
}

/// The root of every `{{ref}}` in `value`'s strings and keys: `prm` for `{{prm.resource}}`,
/// `reg` for `{{reg.claim_token | near}}`.
pub fn reference_roots(value: &Value) -> std::collections::BTreeSet<String> {
    fn scan(s: &str, roots: &mut std::collections::BTreeSet<String>) {
        let mut rest = s;
        while let Some(start) = rest.find("{{") {
            let Some(end) = rest[start..].find("}}") else { return };
            let inner = rest[start + 2..start + end].trim();
            let root = inner.split(['.', '|', ' ', '[']).next().unwrap_or_default();
            if !root.is_empty() {
                roots.insert(root.to_string());
            }
            rest = &rest[start + end + 2..];
        }
    }
    fn walk(value: &Value, roots: &mut std::collections::BTreeSet<String>) {
        match value {
            Value::String(s) => scan(s, roots),
            Value::Array(a) => a.iter().for_each(|v| walk(v, roots)),
            Value::Object(m) => m.iter().for_each(|(k, v)| {
                scan(k, roots);
                walk(v, roots);
            }),
            _ => {}
        }
    }
    let mut roots = std::collections::BTreeSet::new();
    walk(value, &mut roots);
    roots
}

/// Replaces `{{ref}}` in strings; a string that is only a reference takes the value's type.
pub fn resolve(vars: &Map<String, Value>, value: &Value) -> Result<Value, String> {
    Ok(match value {
        Value::String(s) => {
            if let Some(inner) = s.strip_prefix("{{").and_then(|r| r.strip_suffix("}}"))
                && !inner.contains("{{")
            {
                return reference(vars, inner);
            }
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(start) = rest.find("{{") {
                out += &rest[..start];
                let end = rest[start..].find("}}").ok_or_else(|| format!("unclosed reference in `{s}`"))? + start;
                let v = reference(vars, &rest[start + 2..end])?;
                out += &v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
                rest = &rest[end + 2..];
            }
            out += rest;
            Value::String(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|v| resolve(vars, v)).collect::<Result<_, _>>()?),
        // A key may hold a reference too (a logout token's `events` member is named by a URI).
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let key = if k.contains("{{") {
                        match resolve(vars, &Value::String(k.clone()))? {
                            Value::String(s) => s,
                            other => other.to_string(),
                        }
                    } else {
                        k.clone()
                    };
                    Ok((key, resolve(vars, v)?))
                })
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn whole_references_keep_their_type_and_embedded_ones_become_text() {
        let vars = json!({ "reg": { "n": 3, "list": ["a", "b"] } });
        let vars = vars.as_object().cloned().unwrap_or_default();
        assert_eq!(resolve(&vars, &json!("{{reg.n}}")), Ok(json!(3)));
        assert_eq!(resolve(&vars, &json!("x-{{ reg.list.1 }}-{{reg.n}}")), Ok(json!("x-b-3")));
        assert!(resolve(&vars, &json!("{{reg.missing}}")).is_err());
        assert!(resolve(&vars, &json!("{{reg.n")).is_err());
    }

    #[test]
    fn a_near_miss_filter_varies_a_reference_or_a_literal() {
        let vars = json!({ "t": { "aud": "https://a.example/api" } });
        let vars = vars.as_object().cloned().unwrap_or_default();
        assert_eq!(
            resolve(&vars, &json!("{{ t.aud | near:suffix }}")),
            Ok(json!("https://a.example/apix"))
        );
        assert_eq!(
            resolve(&vars, &json!("{{\"oauth-id-jag+jwt\" | near:prefix}}")),
            Ok(json!("xoauth-id-jag+jwt"))
        );
        assert_eq!(resolve(&vars, &json!("{{t.aud | near:null}}")), Ok(json!(null)));
        assert!(resolve(&vars, &json!("{{t.aud | near}}")).is_err(), "an unexpanded family");
        assert!(resolve(&vars, &json!("{{t.aud | upper}}")).is_err());
    }

    #[test]
    fn an_object_key_holding_a_reference_is_resolved_as_text() {
        let vars = json!({ "t": { "uri": "https://e.example/revoked", "n": 3 } });
        let vars = vars.as_object().cloned().unwrap_or_default();
        assert_eq!(
            resolve(&vars, &json!({ "{{t.uri | near:suffix}}": {}, "{{t.n}}": 1, "plain": "{{t.n}}" })),
            Ok(json!({ "https://e.example/revokedx": {}, "3": 1, "plain": 3 }))
        );
    }

    #[test]
    fn reference_roots_name_each_document_or_step_once() {
        let value =
            serde_json::json!({ "url": "{{prm.resource | prm_url}}/x", "{{meta.issuer}}": ["{{ reg.claim_token | near }}", "plain"] });
        let roots: Vec<String> = reference_roots(&value).into_iter().collect();
        assert_eq!(roots, ["meta", "prm", "reg"]);
    }
}
