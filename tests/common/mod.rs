//! Helpers shared by the integration tests.

// Each test binary uses some of them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use authmd_conformance::catalogue::Case;

/// A fresh folder of its own under the temp dir, named after the test (`authmd-<name>-<uuid>`).
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("authmd-{name}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Runs the CLI binary with `args` and returns what it did.
pub fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_authmd-conformance"))
        .args(args)
        .output()
        .expect("run authmd-conformance")
}

/// The catalogue's cases with these ids, in this order (a missing id is a test bug).
pub fn cases(ids: &[&str]) -> Vec<Case> {
    let catalogue = authmd_conformance::default_catalogue().expect("catalogue");
    ids.iter()
        .map(|id| {
            catalogue
                .cases
                .iter()
                .find(|c| c.id == *id)
                .cloned()
                .unwrap_or_else(|| panic!("no case {id}"))
        })
        .collect()
}

/// Validates `value` against the subset of JSON Schema that `reports/schema/report-v1.json`
/// uses: `type`, `enum`, `required`, `properties`, `additionalProperties: false`, `items`.
pub fn validate(schema: &serde_json::Value, value: &serde_json::Value, at: &str, errors: &mut Vec<String>) {
    use serde_json::Value;
    if let Some(types) = schema.get("type") {
        let names: Vec<&str> = match types {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        if !names.iter().any(|n| *n == actual || (*n == "number" && actual == "integer")) {
            errors.push(format!("{at}: expected {names:?}, found {actual}"));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        errors.push(format!("{at}: {value} not in {allowed:?}"));
    }
    if let Value::Object(map) = value {
        for key in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !map.contains_key(key) {
                errors.push(format!("{at}: missing `{key}`"));
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        for (k, v) in map {
            match props.and_then(|p| p.get(k)) {
                Some(sub) => validate(sub, v, &format!("{at}/{k}"), errors),
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => errors.push(format!("{at}: unexpected `{k}`")),
                None => {}
            }
        }
    }
    if let (Value::Array(items), Some(item_schema)) = (value, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            validate(item_schema, item, &format!("{at}/{i}"), errors);
        }
    }
}

/// Every place `report` departs from `reports/schema/report-v1.json`.
pub fn schema_errors(report: &serde_json::Value) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/schema/report-v1.json");
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).expect("schema")).expect("schema JSON");
    let mut errors = Vec::new();
    validate(&schema, report, "", &mut errors);
    errors
}
