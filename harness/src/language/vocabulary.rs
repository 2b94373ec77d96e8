//! The JSON Schema of a step and the vocabulary reference, generated from the types.

use serde_json::Value;

use super::Step;

/// The JSON Schema of one step (draft 2020-12), generated from the types above.
pub fn step_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(Step)).unwrap_or(Value::Null)
}

/// The files generated from the case language, by path under the repository root: the step
/// schema and the vocabulary reference.
pub fn generated_files() -> [(&'static str, String); 2] {
    let schema = serde_json::to_string_pretty(&step_schema()).unwrap_or_default() + "\n";
    [("cases/step.schema.json", schema), ("cases/VOCABULARY.md", vocabulary_markdown())]
}

/// The vocabulary reference (`cases/VOCABULARY.md`): every action with its parameters, and
/// every expectation, with the doc comments of the types as their descriptions.
pub fn vocabulary_markdown() -> String {
    let schema = step_schema();
    let defs = &schema["$defs"];
    let mut out = String::from(
        "<!-- @generated from harness/src/language/ by `scripts/bless`; do not edit -->\n\
         # The case language\n\n\
         Each `[[step]]` names an action with `do` and may add `name`, `advance`, `expect`,\n\
         `near_miss`, `replica` (send it to one of the target's `[replicas]`) and `settle`\n\
         (`\"revocation\"`: run an `api` step again until it holds, within the target's\n\
         `[replicas].revocation_propagation_ms`).\n\
         Unknown keys are refused when the catalogue loads. Strings may hold `{{references}}`.\n\
         The JSON Schema is `cases/step.schema.json`.\n\n## Actions\n",
    );
    for variant in defs["Action"]["oneOf"].as_array().into_iter().flatten() {
        let name = variant["properties"]["do"]["const"].as_str().unwrap_or_default();
        out += &format!("\n### `{name}`\n\n{}\n\n", one_line(&variant["description"]));
        let required: Vec<&str> = variant["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let params: Vec<(&String, &Value)> = variant["properties"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| *k != "do")
            .collect();
        if params.is_empty() {
            out += "No parameters.\n";
            continue;
        }
        out += "| parameter | type | |\n| --- | --- | --- |\n";
        for (key, prop) in params {
            let req = if required.contains(&key.as_str()) { " (required)" } else { "" };
            out += &format!("| `{key}`{req} | {} | {} |\n", type_of(prop), one_line(&prop["description"]));
        }
    }
    out += "\n## Expectations (`expect = { … }`)\n\n| key | type | |\n| --- | --- | --- |\n";
    for (key, prop) in defs["Expect"]["properties"].as_object().into_iter().flatten() {
        out += &format!("| `{key}` | {} | {} |\n", type_of(prop), one_line(&prop["description"]));
    }
    out += "\n## Types\n\n";
    for name in [
        "CredentialType",
        "Issuer",
        "TokenSpec",
        "KeyAlg",
        "Fault",
        "Count",
        "TokenKind",
        "Tamper",
        "ChallengeExpect",
        "StatusSpec",
        "Pointer",
    ] {
        let def = &defs[name];
        out += &format!("- **{name}**: {}", one_line(&def["description"]));
        let values = variants_of(def);
        if !values.is_empty() {
            out += &format!(" One of {}.", values.join(", "));
        }
        if let Some(props) = def["properties"].as_object() {
            let keys: Vec<String> = props.keys().map(|k| format!("`{k}`")).collect();
            out += &format!(" Keys: {}.", keys.join(", "));
        }
        out += "\n";
    }
    out
}

/// A doc comment as one Markdown table cell: one line, `|` escaped.
pub(crate) fn one_line(v: &Value) -> String {
    v.as_str()
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

fn variants_of(def: &Value) -> Vec<String> {
    let direct = def["enum"].as_array().into_iter().flatten().filter_map(Value::as_str);
    let one_of = def["oneOf"].as_array().into_iter().flatten().flat_map(|v| {
        v["enum"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(std::iter::once(&v["const"]))
            .filter_map(Value::as_str)
    });
    direct.chain(one_of).map(|s| format!("`{s}`")).collect()
}

fn type_of(prop: &Value) -> String {
    if let Some(r) = prop["$ref"].as_str() {
        return r.rsplit('/').next().unwrap_or(r).to_string();
    }
    let any = prop["anyOf"].as_array().or(prop["oneOf"].as_array());
    if let Some(options) = any {
        let names: Vec<String> = options.iter().filter(|o| o["type"] != "null").map(type_of).collect();
        return names.join(" or ");
    }
    match &prop["type"] {
        Value::String(t) if t == "array" => format!("list of {}", type_of(&prop["items"])),
        Value::String(t) if t == "object" => "table".into(),
        Value::String(t) => t.clone(),
        Value::Array(ts) => ts
            .iter()
            .filter(|t| *t != "null")
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "any JSON value".into(),
    }
}
