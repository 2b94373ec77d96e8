//! Values of an expectation that are checked when the catalogue loads rather than when a step
//! runs: a status ([`StatusSpec`]) and a JSON pointer ([`Pointer`]). A case that names `"4x"`
//! or `credential` (no leading `/`) fails to load, naming the file, instead of failing every
//! run against every target.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// An accepted status: a code (`410`, or `"410"`), a class (`"4xx"`), or any of a list.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum StatusSpec {
    /// One code.
    Code(u16),
    /// A class by its first digit (`4` for `"4xx"`).
    Class(u8),
    /// Any of these.
    AnyOf(Vec<StatusSpec>),
}

const STATUS_FORMS: &str = "a status is a code (100-599), a class such as \"4xx\", or a list of those";

impl StatusSpec {
    /// Whether the spec names `code` itself (a class such as `"4xx"` does not).
    pub fn names(&self, code: u16) -> bool {
        match self {
            Self::Code(c) => *c == code,
            Self::Class(_) => false,
            Self::AnyOf(all) => all.iter().any(|s| s.names(code)),
        }
    }

    /// Whether `found` is accepted (no status never is).
    pub fn matches(&self, found: Option<u16>) -> bool {
        let Some(found) = found else { return false };
        match self {
            Self::Code(c) => *c == found,
            Self::Class(d) => u16::from(*d) == found / 100,
            Self::AnyOf(all) => all.iter().any(|s| s.matches(Some(found))),
        }
    }

    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Number(n) => n
                .as_u64()
                .filter(|c| (100..=599).contains(c))
                .map(|c| Self::Code(c as u16))
                .ok_or_else(|| format!("`{n}`: {STATUS_FORMS}")),
            Value::String(s) => s.parse(),
            Value::Array(all) if !all.is_empty() => all
                .iter()
                .map(|v| {
                    if v.is_array() {
                        Err(format!("a list inside a list: {STATUS_FORMS}"))
                    } else {
                        Self::from_value(v)
                    }
                })
                .collect::<Result<_, _>>()
                .map(Self::AnyOf),
            other => Err(format!("`{other}`: {STATUS_FORMS}")),
        }
    }

    fn to_value(&self) -> Value {
        match self {
            Self::Code(c) => Value::from(*c),
            Self::Class(d) => Value::from(format!("{d}xx")),
            Self::AnyOf(all) => Value::Array(all.iter().map(Self::to_value).collect()),
        }
    }
}

impl std::str::FromStr for StatusSpec {
    type Err = String;

    /// `"4xx"` or `"410"`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.as_bytes() {
            [d @ b'1'..=b'5', b'x', b'x'] => Ok(Self::Class(d - b'0')),
            _ => s
                .parse::<u16>()
                .ok()
                .filter(|c| (100..=599).contains(c))
                .map(Self::Code)
                .ok_or_else(|| format!("`{s}`: {STATUS_FORMS}")),
        }
    }
}

/// As written: `410`, `4xx`, or a list in JSON (`[200,204]`).
impl fmt::Display for StatusSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_value() {
            Value::String(s) => f.write_str(&s),
            other => write!(f, "{other}"),
        }
    }
}

impl Serialize for StatusSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for StatusSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::from_value(&Value::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for StatusSpec {
    fn schema_name() -> Cow<'static, str> {
        "StatusSpec".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let one = json_schema!({
            "anyOf": [
                { "type": "integer", "minimum": 100, "maximum": 599 },
                { "type": "string", "pattern": "^([1-5]xx|[1-5][0-9][0-9])$" }
            ]
        });
        json_schema!({
            "description": "A status: a code, a class such as \"4xx\", or a list of those.",
            "anyOf": [one, { "type": "array", "minItems": 1, "items": one }]
        })
    }
}

/// A JSON pointer (RFC 6901) into an answer: empty, or starting with `/`.
#[derive(Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct Pointer(String);

impl Pointer {
    /// The pointer text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Pointer {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Pointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Pointer {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.starts_with('/') {
            Ok(Self(s.to_string()))
        } else {
            Err(format!(
                "`{s}` is not a JSON pointer: it starts with `/` (`/{s}`), or is empty for the whole answer"
            ))
        }
    }
}

impl<'de> Deserialize<'de> for Pointer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Pointer {
    fn schema_name() -> Cow<'static, str> {
        "Pointer".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A JSON pointer (RFC 6901): empty, or starting with `/`.",
            "pattern": "^(/.*)?$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn statuses_parse_match_and_print_as_written() {
        let spec: StatusSpec = serde_json::from_value(json!(["2xx", 404, "410"])).expect("a list");
        assert!(spec.matches(Some(204)) && spec.matches(Some(404)) && spec.matches(Some(410)));
        assert!(!spec.matches(Some(500)) && !spec.matches(None));
        assert_eq!(spec.to_string(), r#"["2xx",404,410]"#);
        assert_eq!("4xx".parse::<StatusSpec>().expect("class").to_string(), "4xx");
        for bad in [json!("4x"), json!("6xx"), json!(99), json!(true), json!([]), json!([[200]])] {
            assert!(serde_json::from_value::<StatusSpec>(bad.clone()).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn pointers_start_with_a_slash() {
        assert!(serde_json::from_value::<Pointer>(json!("/credential")).is_ok());
        assert!(serde_json::from_value::<Pointer>(json!("")).is_ok());
        let error = serde_json::from_value::<Pointer>(json!("credential")).expect_err("no slash");
        assert!(error.to_string().contains("/credential"), "{error}");
    }
}
