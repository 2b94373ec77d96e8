//! The target configuration's JSON Schema (for editors: `docs/target.schema.json`) and its
//! reference (`docs/configuration.md`), generated from the config types' doc comments so that
//! no key goes undocumented, as `cases/VOCABULARY.md` is generated from the case language.

use serde_json::Value;

use crate::language::one_line;
use crate::target::TargetConfig;

/// The JSON Schema of a `target.toml` (draft 2020-12).
pub fn target_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(TargetConfig)).unwrap_or(Value::Null)
}

/// The files generated from the config types, by path under the repository root.
pub fn generated_files() -> [(&'static str, String); 2] {
    let schema = serde_json::to_string_pretty(&target_schema()).unwrap_or_default() + "\n";
    [("docs/target.schema.json", schema), ("docs/configuration.md", reference_markdown())]
}

/// The reference: the top-level keys, then one section per table (`[idp]`, `[idp.second]`,
/// `[mail]`'s kinds, `[probes.<name>]`, …), each key with its type, default and description.
pub fn reference_markdown() -> String {
    let schema = target_schema();
    let mut out = String::from(
        "<!-- @generated from harness/src/target.rs by `scripts/bless`; do not edit -->\n\
         # The target configuration (`target.toml`)\n\n\
         Every key a target configuration may hold; any other key is refused when the file is \
         read. `authmd-conformance init` writes a starting file and `check-config` reads one \
         back. Editors that read JSON Schema can check a file against \
         [`target.schema.json`](target.schema.json) (with Taplo, say: `#:schema ./target.schema.json` \
         on the first line).\n",
    );
    let mut sections = Vec::new();
    table(&schema, &schema, "", &mut out, &mut sections);
    while let Some((path, node)) = sections.first().cloned() {
        sections.remove(0);
        out += &format!("\n## `[{path}]`\n\n");
        if let Some(text) = description(&node) {
            out += &format!("{text}\n\n");
        }
        table(&schema, &node, &path, &mut out, &mut sections);
    }
    out
}

/// The keys of one table, as a Markdown table; the tables below it are queued as sections.
fn table(schema: &Value, node: &Value, path: &str, out: &mut String, sections: &mut Vec<(String, Value)>) {
    let node = resolve(schema, node);
    // An enum of tables (`[mail]`): one sub-table per kind, each its own section.
    if let Some(variants) = node["oneOf"].as_array().or_else(|| node["anyOf"].as_array()) {
        out.push_str("\nOne of these tables:\n\n| key | type | default | |\n| --- | --- | --- | --- |\n");
        for variant in variants {
            let variant = resolve(schema, variant);
            for (kind, inner) in variant["properties"].as_object().into_iter().flatten() {
                let text = description(&variant).or_else(|| description(inner)).unwrap_or_default();
                out.push_str(&format!("| `{kind}` | table | — | {text} |\n"));
                sections.push((format!("{path}.{kind}"), with_description(resolve(schema, inner), &variant)));
            }
        }
        return;
    }
    let Some(properties) = node["properties"].as_object() else {
        return;
    };
    let required: Vec<&str> = node["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    out.push_str("\n| key | type | default | |\n| --- | --- | --- | --- |\n");
    for (key, prop) in properties {
        let target = resolve(schema, prop);
        let inner = nullable_inner(schema, &target);
        let key_path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
        let default = match &prop["default"] {
            Value::Null if required.contains(&key.as_str()) => "required".to_string(),
            Value::Null => "—".to_string(),
            v => format!("`{}`", v),
        };
        let text = description(prop).or_else(|| description(&target)).unwrap_or_default();
        out.push_str(&format!("| `{key}` | {} | {default} | {} |\n", type_name(schema, &inner), text));
        if is_table(schema, &inner) {
            sections.push((key_path, with_description(inner, prop)));
        } else if let Some(values) = inner.get("additionalProperties").filter(|v| v.is_object()) {
            let values = resolve(schema, values);
            if is_table(schema, &values) {
                sections.push((format!("{key_path}.<name>"), with_description(values, prop)));
            }
        }
    }
}

/// `node` with `from`'s description when it has none of its own.
fn with_description(mut node: Value, from: &Value) -> Value {
    if description(&node).is_none()
        && let (Some(text), Some(map)) = (from.get("description"), node.as_object_mut())
    {
        map.insert("description".into(), text.clone());
    }
    node
}

/// A `$ref` followed into `$defs`, one level.
fn resolve(schema: &Value, node: &Value) -> Value {
    match node["$ref"].as_str().and_then(|r| r.strip_prefix("#/$defs/")) {
        Some(name) => schema["$defs"][name].clone(),
        None => node.clone(),
    }
}

/// `Option<T>`'s schema is `anyOf [T, null]` (or `type: [T, "null"]`): T.
fn nullable_inner(schema: &Value, node: &Value) -> Value {
    if let Some(options) = node["anyOf"].as_array() {
        let some: Vec<&Value> = options.iter().filter(|o| o["type"] != "null").collect();
        if some.len() == 1 {
            return resolve(schema, some[0]);
        }
    }
    node.clone()
}

fn is_table(schema: &Value, node: &Value) -> bool {
    let node = resolve(schema, node);
    node["properties"].is_object() || node["oneOf"].is_array()
}

fn type_name(schema: &Value, node: &Value) -> String {
    let node = resolve(schema, node);
    if node["properties"].is_object() || node["oneOf"].is_array() {
        return "table".into();
    }
    if let Some(values) = node["enum"].as_array() {
        return values.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>().join(", ");
    }
    let kind = match &node["type"] {
        Value::String(t) => t.clone(),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "value".into(),
    };
    match kind.as_str() {
        "array" => format!("list of {}", type_name(schema, &node["items"])),
        "object" => match node.get("additionalProperties").filter(|v| v.is_object()) {
            Some(values) => format!("table of {}", type_name(schema, values)),
            None => "table".into(),
        },
        "integer" => "integer".into(),
        _ => kind,
    }
}

/// A node's doc comment as one table cell ([`one_line`]), if it has one.
fn description(node: &Value) -> Option<String> {
    node["description"].is_string().then(|| one_line(&node["description"]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key of every table of the config is in the reference: walk the schema and look
    /// for each `key` row, so a key added without a doc comment or a section cannot hide.
    #[test]
    fn every_key_is_in_the_reference() {
        let schema = target_schema();
        let reference = reference_markdown();
        let mut missing = Vec::new();
        let mut stack = vec![schema.clone()];
        let mut seen = std::collections::BTreeSet::new();
        while let Some(node) = stack.pop() {
            let node = nullable_inner(&schema, &resolve(&schema, &node));
            if !seen.insert(node.to_string()) {
                continue;
            }
            for (key, prop) in node["properties"].as_object().into_iter().flatten() {
                if !reference.contains(&format!("| `{key}` |")) {
                    missing.push(key.clone());
                }
                // An enum's kinds (`[mail.smtp]`) are described on their variant.
                let variant = node["properties"].as_object().is_some_and(|p| p.len() == 1) && description(&node).is_some();
                if !variant && description(prop).is_none() && description(&resolve(&schema, prop)).is_none() {
                    missing.push(format!("{key} (no description)"));
                }
                stack.push(prop.clone());
            }
            for list in ["oneOf", "anyOf"] {
                stack.extend(node[list].as_array().into_iter().flatten().cloned());
            }
            if let Some(values) = node.get("additionalProperties").filter(|v| v.is_object()) {
                stack.push(values.clone());
            }
        }
        assert!(missing.is_empty(), "not in docs/configuration.md: {missing:?}");
        for table in ["## `[idp]`", "## `[idp.second]`", "## `[clock]`"] {
            assert!(reference.contains(table), "no section {table}");
        }
    }
}
