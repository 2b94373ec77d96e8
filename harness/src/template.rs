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

/// Replaces `{{ref}}` in strings; a string that is only a reference takes the value's type.
pub fn resolve(vars: &Map<String, Value>, value: &Value) -> Result<Value, String> {
    Ok(match value {
        Value::String(s) => {
            if let Some(inner) = s.strip_prefix("{{").and_then(|r| r.strip_suffix("}}"))
                && !inner.contains("{{")
            {
                return lookup(vars, inner.trim()).ok_or_else(|| format!("`{{{{{inner}}}}}` has no value"));
            }
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(start) = rest.find("{{") {
                out += &rest[..start];
                let end = rest[start..].find("}}").ok_or_else(|| format!("unclosed reference in `{s}`"))? + start;
                let key = rest[start + 2..end].trim();
                let v = lookup(vars, key).ok_or_else(|| format!("`{{{{{key}}}}}` has no value"))?;
                out += &v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
                rest = &rest[end + 2..];
            }
            out += rest;
            Value::String(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|v| resolve(vars, v)).collect::<Result<_, _>>()?),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| Ok((k.clone(), resolve(vars, v)?)))
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
}
