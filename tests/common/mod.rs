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

/// Checks the JUnit file at `junit` against the schema CI tools read (the Jenkins xUnit
/// plugin's `junit-10.xsd`, which `scripts/junit-xsd` fetches from pytest's sdist on PyPI into
/// `target/schemas/`) with xmllint. Without the schema or xmllint it says so once and passes,
/// unless `AUTHMD_REQUIRE_SCHEMA_TOOLS` is set, as `.ci/run` sets it.
pub fn assert_valid_junit(junit: &Path) {
    static SAID: std::sync::Once = std::sync::Once::new();
    let xsd = std::env::var_os("AUTHMD_JUNIT_XSD")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/schemas/junit-10.xsd"));
    let lint = Command::new("xmllint").arg("--noout").arg("--schema").arg(&xsd).arg(junit).output();
    let missing = match &lint {
        Err(e) => Some(format!("xmllint: {e}")),
        Ok(_) if !xsd.exists() => Some(format!("no schema at {} (run scripts/junit-xsd)", xsd.display())),
        Ok(_) => None,
    };
    if let Some(why) = missing {
        assert!(
            std::env::var_os("AUTHMD_REQUIRE_SCHEMA_TOOLS").is_none(),
            "the JUnit schema check cannot run: {why}"
        );
        SAID.call_once(|| eprintln!("note: JUnit files not checked against the schema: {why}"));
        return;
    }
    let out = lint.expect("checked above");
    assert!(
        out.status.success(),
        "{} is not valid JUnit:\n{}",
        junit.display(),
        String::from_utf8_lossy(&out.stderr).lines().take(20).collect::<Vec<_>>().join("\n")
    );
}
