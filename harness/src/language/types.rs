//! The value types of step parameters: credential types, issuers, token specs, key
//! algorithms, JWKS faults and counts.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use authmd_mock_idp::{JwksFault, Tamper, TokenKind};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

/// The rule an `aid` step judges (AID v1.2 and v2, issue #16).
#[derive(Clone, Copy, Debug, Deserialize, Eq, JsonSchema, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AidCheck {
    /// Every TXT answer at `_agent.<domain>` that claims AID parses by its version's grammar.
    Grammar,
    /// At most one valid AID record at the name (several are an ambiguity clients refuse).
    Single,
    /// A remote protocol's `u` is an `https://` URL.
    Https,
    /// An aid2 `k` is an Ed25519 JWK `x` (32 bytes); an aid1 `k` comes with `i`.
    Key,
    /// The record is at `_agent.<exact host>`, not only at a parent's name.
    ExactHost,
    /// The record's TTL lies in the recommended 300–900 s.
    Ttl,
    /// `https://<domain>/.well-known/agent` is JSON by the same grammar and agrees with DNS.
    WellKnown,
    /// The selected endpoint challenges with a `resource_metadata` that leads to the PRM.
    Handoff,
    /// The endpoint answers a proof request with one `aid-pka` signature.
    Signed,
    /// The signature covers the AID profile's components, tagged `aid-pka-v2`.
    Components,
    /// `created`/`expires` are a window of at most 300 s around now.
    Fresh,
    /// `keyid` is the RFC 7638 thumbprint of the DNS key.
    Keyid,
    /// The signature verifies with the DNS key.
    Signature,
    /// The signature carries the request's nonce.
    Nonce,
    /// A second challenge gets a second signature, bound to its own nonce.
    Replay,
    /// The signed response is `Cache-Control: no-store`.
    NoStore,
    /// An aid2 record carries no `kid`/`i` (AID v2.0 §2.1).
    NoKid,
    /// `p` is a protocol registry token, compared case-sensitively.
    Proto,
    /// `a` is an auth registry token, `d` an absolute `https://` URL, `e` ISO 8601 UTC.
    Metadata,
    /// A proof request binding a domain the endpoint does not serve gets no signature covering
    /// it (AID v2.1 Appendix B.7).
    UnservedDomain,
    /// The aid1 handshake is answered with status 200 (v1.2's pseudo-code; a reading).
    HandshakeOk,
}

/// A `requested_credential_type`.
#[derive(Clone, Copy, Debug, Deserialize, Eq, JsonSchema, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialType {
    /// `api_key`.
    ApiKey,
    /// `access_token`.
    AccessToken,
    /// `refresh_token` (no v0.1 flow issues one: CRED-02).
    RefreshToken,
    /// `unsupported`: a type no service offers.
    Unsupported,
}

impl CredentialType {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::AccessToken => "access_token",
            Self::RefreshToken => "refresh_token",
            Self::Unsupported => "unsupported",
        }
    }
}

/// Which mock IdP mints a token.
#[derive(Clone, Copy, Debug, Default, Deserialize, Eq, JsonSchema, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Issuer {
    /// The IdP the target trusts (`idp.issuer`).
    #[default]
    Primary,
    /// The second trusted issuer (`idp.second`).
    Second,
    /// A live issuer the target does not trust.
    Untrusted,
}

/// What to mint: the kind, then edits to the default header and claims (catalogue §0.4).
#[derive(Clone, Debug, Default, Deserialize, JsonSchema, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSpec {
    /// The minting IdP: its keys sign and its issuer is the default `iss`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<Issuer>,
    /// ID-JAG or logout token; the action's own kind when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<TokenKind>,
    /// Claims to add or replace. `exp`, `iat`, `nbf` and `auth_time` accept `"now"`, `"now+N"`
    /// and `"now-N"`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, Value>,
    /// Claims to remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
    /// Header members to add or replace.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub header_set: BTreeMap<String, Value>,
    /// Header members to remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub header_remove: Vec<String>,
    /// Sign with this published key instead of the active one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// A deliberate defect of the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tamper: Option<Tamper>,
}

impl TokenSpec {
    /// Sets claim `name` to `value` unless the case set or removed it: the one precedence rule
    /// of minting, that what a case writes wins over every default (the profile's, the
    /// target's audience, the moved clock, a pinned `client_id`).
    pub fn default_claim(&mut self, name: &str, value: Value) {
        if !self.decides(name) {
            self.set.insert(name.to_string(), value);
        }
    }

    /// As [`Self::default_claim`], for a header member.
    pub fn default_header(&mut self, name: &str, value: Value) {
        if !self.header_set.contains_key(name) && !self.header_remove.iter().any(|r| r == name) {
            self.header_set.insert(name.to_string(), value);
        }
    }

    /// Whether the case set or removed claim `name`.
    pub fn decides(&self, name: &str) -> bool {
        self.set.contains_key(name) || self.remove.iter().any(|r| r == name)
    }
}

/// A JWKS fault mode: `none`, `server-error`, `invalid-json`, `empty-key-set`,
/// `wrong-content-type`, or `slow:MS` (milliseconds).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fault(pub JwksFault);

const FAULTS: &str = "none, server-error, invalid-json, empty-key-set, wrong-content-type, slow:MS";

impl std::str::FromStr for Fault {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(Self(match s {
            "none" => JwksFault::None,
            "server-error" => JwksFault::ServerError,
            "invalid-json" => JwksFault::InvalidJson,
            "empty-key-set" => JwksFault::EmptyKeySet,
            "wrong-content-type" => JwksFault::WrongContentType,
            other => match other.strip_prefix("slow:").and_then(|ms| ms.parse().ok()) {
                Some(ms) => JwksFault::Slow(ms),
                None => return Err(format!("`{other}` is not one of {FAULTS}")),
            },
        }))
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            JwksFault::None => f.write_str("none"),
            JwksFault::ServerError => f.write_str("server-error"),
            JwksFault::InvalidJson => f.write_str("invalid-json"),
            JwksFault::EmptyKeySet => f.write_str("empty-key-set"),
            JwksFault::WrongContentType => f.write_str("wrong-content-type"),
            JwksFault::Slow(ms) => write!(f, "slow:{ms}"),
        }
    }
}

impl Serialize for Fault {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Fault {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(de::Error::custom)
    }
}

impl JsonSchema for Fault {
    fn schema_name() -> Cow<'static, str> {
        "Fault".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": format!("A JWKS fault mode: one of {FAULTS}."),
            "pattern": "^(none|server-error|invalid-json|empty-key-set|wrong-content-type|slow:[0-9]+)$"
        })
    }
}

/// A whole number, or a `{{reference}}` to one (`"{{target.rate_burst}}"`).
#[derive(Clone, Debug, PartialEq)]
pub enum Count {
    /// Written in the case.
    Literal(u64),
    /// Resolved when the step runs.
    Reference(String),
}

impl Serialize for Count {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Literal(n) => s.serialize_u64(*n),
            Self::Reference(r) => s.serialize_str(r),
        }
    }
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct CountVisitor;
        impl Visitor<'_> for CountVisitor {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a whole number or a {{reference}}")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Count, E> {
                Ok(Count::Literal(n))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Count, E> {
                u64::try_from(n)
                    .map(Count::Literal)
                    .map_err(|_| E::custom("a whole number or a {{reference}}, not a negative number"))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Count, E> {
                if s.trim_start().starts_with("{{") && s.trim_end().ends_with("}}") {
                    Ok(Count::Reference(s.to_string()))
                } else {
                    Err(E::custom(format!(
                        "`{s}` is a string: write a whole number, or a {{{{reference}}}}"
                    )))
                }
            }
        }
        d.deserialize_any(CountVisitor)
    }
}

impl JsonSchema for Count {
    fn schema_name() -> Cow<'static, str> {
        "Count".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A whole number, or a {{reference}} to one.",
            "anyOf": [
                { "type": "integer", "minimum": 0 },
                { "type": "string", "pattern": "^\\s*\\{\\{.*\\}\\}\\s*$" }
            ]
        })
    }
}
