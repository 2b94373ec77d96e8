//! AID (Agent Identity & Discovery) as a client sees it: the `_agent.<domain>` TXT record's
//! grammar (v1.2 `aid1` and v2 `aid2`), choosing the one record to use, and the aid2 PKA
//! endpoint proof (an RFC 9421 response signature with Ed25519, `keyid` the RFC 7638 thumbprint
//! of the DNS key). Pure functions of what the DNS and the endpoint answered, so each rule has a
//! unit test; the AID preflight of a run does the I/O.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Full key names and their single-letter aliases (AID v1.2 §2.1).
const KEYS: [(&str, &str); 9] = [
    ("version", "v"),
    ("uri", "u"),
    ("proto", "p"),
    ("auth", "a"),
    ("desc", "s"),
    ("docs", "d"),
    ("dep", "e"),
    ("pka", "k"),
    ("kid", "i"),
];

/// The full name of a key given in either form, case-insensitively; `None` for an unknown key.
fn full_key(key: &str) -> Option<&'static str> {
    let key = key.trim().to_ascii_lowercase();
    KEYS.iter()
        .find(|(full, alias)| *full == key || *alias == key)
        .map(|(full, _)| *full)
}

/// One parsed AID record.
#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct AidRecord {
    /// `aid1` or `aid2`.
    pub version: String,
    /// The endpoint.
    pub uri: String,
    /// The protocol token.
    pub proto: String,
    /// The authentication hint, if any.
    pub auth: Option<String>,
    /// The PKA key (`aid2`: the Ed25519 JWK `x`, unpadded base64url; `aid1`: multibase).
    pub pka: Option<String>,
    /// The key id (`aid1` only).
    pub kid: Option<String>,
    /// The documentation URL, if any.
    #[serde(default)]
    pub docs: Option<String>,
    /// The deprecation instant (ISO 8601 UTC), if any.
    #[serde(default)]
    pub dep: Option<String>,
    /// The record as published.
    pub raw: String,
}

/// Which rule an invalid record breaks, so each rule's case reports only its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// The key=value grammar, the required keys, the version, aliases, `s`'s length.
    Grammar,
    /// `u`'s scheme and host for its protocol.
    Uri,
    /// `k`'s encoding (and an aid1 `k`'s `i`).
    Key,
    /// An aid2 record carries `kid`/`i`.
    Aid2Kid,
    /// `p` is not a registry token.
    Proto,
    /// `a`, `d` or `e` is malformed.
    Metadata,
}

/// Why a record is not a valid AID record: the rule, in the words of the spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// The rule broken.
    pub rule: Rule,
    /// Why.
    pub why: String,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.why)
    }
}

fn invalid(rule: Rule, why: impl Into<String>) -> Invalid {
    Invalid { rule, why: why.into() }
}

/// The protocol registry (AID v1.2 Appendix B, v2.0 §7.2): case-sensitive tokens and the URI
/// schemes each allows.
pub const PROTOCOLS: [(&str, &[&str]); 9] = [
    ("mcp", &["https://"]),
    ("a2a", &["https://"]),
    ("openapi", &["https://"]),
    ("grpc", &["https://"]),
    ("graphql", &["https://"]),
    ("websocket", &["wss://"]),
    ("local", &["docker:", "npx:", "pip:"]),
    ("zeroconf", &["zeroconf:"]),
    ("ucp", &["https://"]),
];

/// The auth registry (AID v1.2 Appendix A, v2.0 §7.1): case-sensitive tokens.
pub const AUTH_TOKENS: [&str; 8] = ["none", "pat", "apikey", "basic", "oauth2_device", "oauth2_code", "mtls", "custom"];

/// The protocols whose endpoint the auth.md handoff can start from: an `https://` URL that
/// answers an unauthenticated GET with a challenge naming its protected resource metadata.
pub const HANDOFF_PROTOCOLS: [&str; 6] = ["mcp", "a2a", "openapi", "grpc", "graphql", "ucp"];

/// Parses one TXT record (its strings already concatenated). `Err` names the rule that makes
/// it invalid, in the words of the spec.
pub fn parse(txt: &str) -> Result<AidRecord, Invalid> {
    let mut pairs = Vec::new();
    for pair in txt.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(invalid(Rule::Grammar, format!("`{pair}` is not key=value")));
        };
        pairs.push((key.to_string(), value.to_string()));
    }
    parse_pairs(&pairs, txt)
}

/// Parses the `.well-known/agent` JSON document: the TXT keys as members (AID fallback).
pub fn parse_json(doc: &serde_json::Value) -> Result<AidRecord, Invalid> {
    let Some(members) = doc.as_object() else {
        return Err(invalid(Rule::Grammar, "the document is not a JSON object"));
    };
    let mut pairs = Vec::new();
    for (k, v) in members {
        let Some(v) = v.as_str() else {
            return Err(invalid(Rule::Grammar, format!("member `{k}` is not a string")));
        };
        pairs.push((k.clone(), v.to_string()));
    }
    parse_pairs(&pairs, &doc.to_string())
}

/// The record's values by full key name, leniently (no rule applied): what a rule about one
/// key reads even from a record another rule makes invalid.
pub fn fields(txt: &str) -> BTreeMap<String, String> {
    txt.split(';')
        .filter_map(|p| p.split_once('='))
        .filter_map(|(k, v)| full_key(k).map(|full| (full.to_string(), v.trim().to_string())))
        .collect()
}

/// Whether an aid2 `k` is an Ed25519 JWK `x` (unpadded base64url of 32 bytes).
pub fn check_key(k: &str) -> Result<(), String> {
    let bytes = URL_SAFE_NO_PAD.decode(k).map_err(|_| "`k` is not unpadded base64url".to_string())?;
    if bytes.len() == 32 {
        Ok(())
    } else {
        Err(format!("`k` decodes to {} bytes, not an Ed25519 key's 32", bytes.len()))
    }
}

/// The 32 bytes of an aid1 `k`: multibase base58btc (`z…`), AID v1.2 Appendix D.1.
pub fn multibase_key(k: &str) -> Result<Vec<u8>, String> {
    let Some(payload) = k.strip_prefix('z') else {
        return Err("an aid1 `k` is multibase base58btc (`z…`)".into());
    };
    let bytes = base58btc(payload).ok_or("an aid1 `k` is not base58btc after its `z`")?;
    if bytes.len() == 32 {
        Ok(bytes)
    } else {
        Err(format!("an aid1 `k` decodes to {} bytes, not an Ed25519 key's 32", bytes.len()))
    }
}

/// Base58 (the Bitcoin alphabet) to bytes; `None` for a character outside it.
fn base58btc(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    // A key is 44 characters; anything much longer is not one, and the work is quadratic.
    if s.len() > 128 {
        return None;
    }
    let mut out: Vec<u8> = Vec::new();
    for c in s.bytes() {
        let mut carry = ALPHABET.iter().position(|&a| a == c)? as u32;
        for b in out.iter_mut().rev() {
            carry += u32::from(*b) * 58;
            *b = (carry & 0xff) as u8;
            carry >>= 8;
        }
        while carry > 0 {
            out.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    let zeros = s.bytes().take_while(|&c| c == b'1').count();
    let mut bytes = vec![0u8; zeros];
    bytes.extend(out.into_iter().skip_while(|&b| b == 0));
    Some(bytes)
}

/// Bytes to base58 (the Bitcoin alphabet): with a `z` before it, an aid1 `k`.
pub fn base58btc_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut digits: Vec<u8> = Vec::new();
    for &b in bytes {
        let mut carry = u32::from(b);
        for d in digits.iter_mut() {
            carry += u32::from(*d) << 8;
            *d = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
    std::iter::repeat_n('1', zeros)
        .chain(digits.iter().rev().map(|&d| ALPHABET[d as usize] as char))
        .collect()
}

fn parse_pairs(pairs: &[(String, String)], raw: &str) -> Result<AidRecord, Invalid> {
    let mut seen: BTreeMap<&str, String> = BTreeMap::new();
    for (key, value) in pairs {
        if key.trim().is_empty() {
            return Err(invalid(Rule::Grammar, format!("`{key}={value}` has no key")));
        }
        // Unknown keys are ignored (v1.2 §2.1); a key and its alias may not both appear.
        let Some(full) = full_key(key) else {
            continue;
        };
        if value.trim().is_empty() {
            return Err(invalid(Rule::Grammar, format!("`{full}` has no value")));
        }
        if seen.insert(full, value.trim().to_string()).is_some() {
            return Err(invalid(Rule::Grammar, format!("`{full}` appears twice (directly or as its alias)")));
        }
    }
    let get = |k: &str| seen.get(k).cloned();
    let (Some(version), Some(uri), Some(proto)) = (get("version"), get("uri"), get("proto")) else {
        return Err(invalid(Rule::Grammar, "a required key (v, u or p) is missing"));
    };
    if version != "aid1" && version != "aid2" {
        return Err(invalid(Rule::Grammar, format!("unknown version `{version}`")));
    }
    if get("desc").is_some_and(|d| d.len() > 60) {
        return Err(invalid(Rule::Grammar, "`desc` is longer than 60 bytes"));
    }
    let (pka, kid) = (get("pka"), get("kid"));
    if version == "aid2" && kid.is_some() {
        return Err(invalid(Rule::Aid2Kid, "an aid2 record carries `kid`/`i`, which makes it invalid"));
    }
    check_proto(&proto).map_err(|why| invalid(Rule::Proto, why))?;
    check_uri(&proto, &uri).map_err(|why| invalid(Rule::Uri, why))?;
    if let Some(k) = &pka {
        if version == "aid2" {
            check_key(k).map_err(|why| invalid(Rule::Key, why))?;
        } else {
            if !kid
                .as_deref()
                .is_some_and(|i| (1..=6).contains(&i.len()) && i.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
            {
                return Err(invalid(
                    Rule::Key,
                    "an aid1 `k` needs `i`, 1 to 6 characters of [a-z0-9] (AID v1.2 §2.1: \"1–6 char rotation id `[a-z0-9]`. Required when `pka` is present.\"; the AID project's clients accept any `i`)",
                ));
            }
            multibase_key(k).map_err(|why| invalid(Rule::Key, why))?;
        }
    }
    check_metadata(get("auth").as_deref(), get("docs").as_deref(), get("dep").as_deref()).map_err(|why| invalid(Rule::Metadata, why))?;
    Ok(AidRecord {
        version,
        uri,
        proto,
        auth: get("auth"),
        pka,
        kid,
        docs: get("docs"),
        dep: get("dep"),
        raw: raw.to_string(),
    })
}

/// Where the AID project's own clients (aid-discovery 2.1.1, and the SDKs it mirrors) read a
/// valid record otherwise than the texts (tests/data/aid/disagreements.toml): what its provider
/// should know, with the sentence that decides it. The record stays valid.
pub fn client_divergences(raw: &str) -> Vec<String> {
    let mut out = Vec::new();
    let keys: Vec<String> = raw
        .split(';')
        .filter_map(|p| p.split_once('='))
        .map(|(k, _)| k.trim().to_ascii_lowercase())
        .collect();
    if keys.iter().any(|k| k == "version") {
        out.push(
            "the AID project's clients refuse this record: they read the version from `v` only, while AID v1.2 §2.1 names `version` the key and `v` its alias (\"Clients MUST recognize single-letter lowercase aliases for all keys\"); publish `v=` for their sake".into(),
        );
    }
    if fields(raw).get("dep").is_some_and(|e| e.contains('.')) {
        out.push(
            "the AID project's clients refuse this record's `e`: they read `YYYY-MM-DDTHH:MM:SSZ` only, while AID v2.0 §2.1 asks for an \"ISO 8601 UTC deprecation timestamp\", which may carry a fraction of a second; drop the fraction for their sake".into(),
        );
    }
    out
}

/// `p` a token of the protocol registry, compared case-sensitively.
pub fn check_proto(proto: &str) -> Result<(), String> {
    if PROTOCOLS.iter().any(|(token, _)| *token == proto) {
        Ok(())
    } else {
        Err(format!("`{proto}` is not a protocol registry token (they are case-sensitive)"))
    }
}

/// `a` a registry token, `d` an absolute `https://` URL, `e` an ISO 8601 UTC instant.
pub fn check_metadata(auth: Option<&str>, docs: Option<&str>, dep: Option<&str>) -> Result<(), String> {
    if let Some(a) = auth
        && !AUTH_TOKENS.contains(&a)
    {
        return Err(format!("`a` = `{a}` is not an auth registry token (they are case-sensitive)"));
    }
    if let Some(d) = docs {
        absolute(d, "https://").map_err(|why| format!("`d` must be an absolute https:// URL: {why}"))?;
    }
    if let Some(e) = dep {
        deprecation(e)?;
    }
    Ok(())
}

/// The instant of a `dep` value: ISO 8601 in UTC (`2027-01-01T00:00:00Z`).
pub fn deprecation(e: &str) -> Result<time::OffsetDateTime, String> {
    let bad = || format!("`e` = `{e}` is not an ISO 8601 UTC timestamp (such as 2027-01-01T00:00:00Z)");
    if !e.ends_with('Z') {
        return Err(bad());
    }
    time::OffsetDateTime::parse(e, &time::format_description::well_known::Rfc3339).map_err(|_| bad())
}

/// `uri` starts with `scheme` exactly (registry schemes are lowercase) and names a host.
fn absolute(uri: &str, scheme: &str) -> Result<(), String> {
    if !uri.starts_with(scheme) {
        return Err(format!("`{uri}` does not start with {scheme}"));
    }
    // A URL parser that follows WHATWG skips extra slashes (`https:///api` becomes host `api`);
    // the authority is what follows the scheme's `//`, and it must not be empty.
    if uri[scheme.len()..].starts_with(['/', '?', '#']) || uri.len() == scheme.len() {
        return Err(format!("`{uri}` names no host"));
    }
    match url::Url::parse(uri) {
        Ok(u) if u.host_str().is_some_and(|h| !h.is_empty()) => Ok(()),
        Ok(_) => Err(format!("`{uri}` names no host")),
        Err(e) => Err(format!("`{uri}` is not a URL ({e})")),
    }
}

/// The scheme a protocol token allows (AID v1.2 Appendix B); remote endpoints are absolute
/// URLs with a host. An unregistered token is judged as a remote one.
pub fn check_uri(proto: &str, uri: &str) -> Result<(), String> {
    let allowed: &[&str] = PROTOCOLS
        .iter()
        .find(|(token, _)| *token == proto)
        .map(|(_, schemes)| *schemes)
        .unwrap_or(&["https://"]);
    let scheme = allowed.iter().find(|s| uri.starts_with(*s));
    match scheme {
        None => Err(format!("`u` for `{proto}` must start with {}", allowed.join(" or "))),
        Some(s) if s.ends_with("://") => absolute(uri, s).map_err(|why| format!("`u` for `{proto}`: {why}")),
        Some(_) => Ok(()),
    }
}

/// What the TXT answers at one name hold.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Selection {
    /// The valid records.
    pub valid: Vec<AidRecord>,
    /// The answers that are not valid AID records, with why.
    pub invalid: Vec<(String, String)>,
}

impl Selection {
    /// Sorts the answers. Only strings that claim to be AID (`v=aid…`) count as invalid AID
    /// records; other TXT data at the name is not AID's business.
    pub fn of(answers: &[String]) -> Self {
        let mut s = Self::default();
        for a in answers {
            match parse(a) {
                Ok(r) => s.valid.push(r),
                Err(why) => s.invalid.push((a.clone(), why.why)),
            }
        }
        s
    }

    /// The version selected: the highest with a valid record (v2.0 §2.3 steps 5–6: a client
    /// that supports aid2 prefers it over aid1).
    pub fn version(&self) -> Option<&str> {
        ["aid2", "aid1"].into_iter().find(|v| self.valid.iter().any(|r| r.version == *v))
    }

    /// The valid records of the selected version.
    pub fn of_version(&self) -> Vec<&AidRecord> {
        let version = self.version();
        self.valid.iter().filter(|r| Some(r.version.as_str()) == version).collect()
    }

    /// The record to use: exactly one valid record of the highest version, else why not (v2.0
    /// §2.3 step 7, v1.2 §2.3 step 3: several valid records of one version are an ambiguity,
    /// never resolved by answer order).
    pub fn chosen(&self) -> Result<&AidRecord, String> {
        match self.of_version().as_slice() {
            [one] => Ok(one),
            [] if self.invalid.is_empty() => Err("no AID record".into()),
            [] => Err(format!("no valid AID record ({})", self.invalid[0].1)),
            many => Err(format!("{} valid {} records at one name: ambiguous", many.len(), many[0].version)),
        }
    }
}

/// What the AID preflight of a run found: the answers, the record selected, the endpoint proof
/// and why identity material was withheld, if it was. The report's preflight section.
#[derive(Clone, Debug, Default, serde::Deserialize, serde::Serialize)]
pub struct Preflight {
    /// The domain the run started from.
    pub domain: String,
    /// The name looked up (`_agent.<domain>`).
    pub name: String,
    /// The DNS server asked (`system` for the system resolver).
    pub resolver: String,
    /// The TXT answers, as text (non-UTF-8 bytes replaced), each capped.
    pub answers: Vec<String>,
    /// The answers that claim AID but are invalid, with why.
    pub invalid: Vec<(String, String)>,
    /// The record used.
    pub selected: Option<AidRecord>,
    /// Where it came from: `dns` or `well-known-tls`.
    pub source: Option<String>,
    /// The PKA proof: `verified`, or the rule it broke; none when the record has no key.
    pub proof: Option<String>,
    /// The DNS lookups and HTTP exchanges of the preflight.
    pub exchanges: Vec<crate::outcome::Exchange>,
    /// Why the run withheld identity material from the endpoint, if it did.
    pub error: Option<String>,
    /// The preflight failed for want of an answer (DNS or HTTP), not for what was answered.
    #[serde(default)]
    pub no_answer: bool,
    /// For an aid2 proof (the harness asks for domain binding, AID v2.1 Appendix B.7): whether
    /// the verified signature covers `aid-domain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_bound: Option<bool>,
    /// What a client should say without failing: a `dep` in the future, the record selected
    /// over another version's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Whether a TXT answer claims to be AID (`v=aid…` / `version=aid…`), so its faults are AID's.
pub fn claims_aid(txt: &str) -> bool {
    txt.split(';').any(|p| {
        p.split_once('=').is_some_and(|(k, v)| {
            let k = k.trim().to_ascii_lowercase();
            (k == "v" || k == "version") && v.trim().to_ascii_lowercase().starts_with("aid")
        })
    })
}

mod proof;
mod proof_v1;
pub mod sf;

pub use proof::{COVERED, Challenge, Inspection, Rejection, TAG, inspect, thumbprint, verify};
pub use proof_v1::{COVERED_V1, V1Challenge, inspect_v1};

#[cfg(test)]
mod tests {
    use super::*;

    fn why(txt: &str) -> Invalid {
        parse(txt).expect_err(txt)
    }

    #[test]
    fn records_parse_by_their_versions_grammar() {
        let r =
            parse("v=aid2;p=openapi;u=https://api.example.com/api/resource;a=oauth2_code;k=ebVWLo_mVPlAeLES6KmLp5AfhTrmlb7X4OORC60ElmQ")
                .expect("valid");
        assert_eq!((r.version.as_str(), r.proto.as_str()), ("aid2", "openapi"));
        assert!(
            parse("VERSION=aid1;Uri=https://a.example;P=mcp;x-unknown=1").is_ok(),
            "case-insensitive keys, unknown ignored"
        );
        assert!(why("v=aid1;version=aid1;u=https://a.example;p=mcp").why.contains("twice"));
        assert_eq!(why("v=aid1;u=http://a.example;p=mcp").rule, Rule::Uri);
        assert!(why("v=aid3;u=https://a.example;p=mcp").why.contains("version"));
        assert!(why("v=aid1;p=mcp").why.contains("missing"));
        assert_eq!(why("v=aid2;u=https://a.example;p=mcp;k=AAAA").rule, Rule::Key);
        assert!(why("v=aid1;u=https://a.example;p=mcp;k=z6Mk").why.contains("needs `i`"));
    }

    #[test]
    fn each_rule_of_the_texts_makes_a_record_invalid() {
        let cases = [
            ("v=aid2;u=https://a.example;p=mcp;i=g1", Rule::Aid2Kid),
            ("v=aid2;u=https://a.example;p=mcp;kid=g1", Rule::Aid2Kid),
            ("v=aid2;u=https://a.example;p=MCP", Rule::Proto),
            ("v=aid2;u=https://a.example;p=unknown", Rule::Proto),
            ("v=aid2;u=https://a.example;p=mcp;=foo", Rule::Grammar),
            ("v=aid2;u=https://a.example;p=mcp;a=", Rule::Grammar),
            ("v=aid2;u=HTTPS://a.example;p=mcp", Rule::Uri),
            ("v=aid2;u=https://;p=mcp", Rule::Uri),
            ("v=aid2;u=https:///mcp;p=mcp", Rule::Uri),
            ("v=aid2;u=wss://a.example;p=mcp", Rule::Uri),
            ("v=aid2;u=https://a.example;p=mcp;a=OAuth2_code", Rule::Metadata),
            ("v=aid2;u=https://a.example;p=mcp;d=http://docs.example", Rule::Metadata),
            ("v=aid2;u=https://a.example;p=mcp;e=2027-01-01", Rule::Metadata),
            ("v=aid2;u=https://a.example;p=mcp;e=2027-01-01T00:00:00+01:00", Rule::Metadata),
            ("v=aid1;u=https://a.example;p=mcp;k=z111;i=g1", Rule::Key),
        ];
        for (txt, rule) in cases {
            assert_eq!(why(txt).rule, rule, "{txt}");
        }
        for ok in [
            "v=aid2;u=wss://a.example/s;p=websocket",
            "v=aid2;u=docker:grafana/mcp:latest;p=local",
            "v=aid2;u=https://a.example;p=mcp;d=https://docs.example/x;e=2027-01-01T00:00:00Z;a=pat",
        ] {
            assert!(parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn where_the_projects_clients_differ_the_record_stays_valid_and_says_so() {
        let full = "version=aid2;p=mcp;u=https://a.example;e=2099-01-01T00:00:00.5Z";
        assert!(parse(full).is_ok());
        let said = client_divergences(full);
        assert_eq!(said.len(), 2, "{said:?}");
        assert!(said[0].contains("`v` only") && said[1].contains("fraction"));
        assert!(client_divergences("v=aid2;p=mcp;u=https://a.example").is_empty());
    }

    #[test]
    fn an_aid1_key_is_multibase_base58btc_of_32_bytes() {
        // The zero key: 32 zero bytes are 32 `1`s in base58.
        assert_eq!(multibase_key(&format!("z{}", "1".repeat(32))).expect("zeros"), vec![0u8; 32]);
        assert!(multibase_key("zOOO").is_err(), "O is not base58");
        assert!(multibase_key("mAAAA").is_err(), "another multibase");
        assert!(multibase_key(&format!("z{}", "1".repeat(43))).unwrap_err().contains("43"));
    }

    #[test]
    fn records_are_selected_by_version_then_refused_when_ambiguous() {
        let one = "v=aid2;p=mcp;u=https://a.example".to_string();
        let two = "v=aid2;p=mcp;u=https://b.example".to_string();
        let old = "v=aid1;p=mcp;u=https://a.example".to_string();
        let junk = "v=aid2;p=mcp".to_string();
        assert!(Selection::of(&[one.clone(), junk.clone()]).chosen().is_ok());
        assert!(
            Selection::of(&[one.clone(), two.clone()])
                .chosen()
                .unwrap_err()
                .contains("ambiguous")
        );
        assert!(Selection::of(&[junk]).chosen().unwrap_err().contains("no valid"));
        // The migration shape of v2.0 §2.2: aid2 is selected, the aid1 record is not a rival.
        let migrating = Selection::of(&[old.clone(), one.clone()]);
        assert_eq!(migrating.chosen().expect("aid2").version, "aid2");
        assert!(Selection::of(&[old.clone(), old.clone(), one]).chosen().is_ok());
        assert!(Selection::of(&[old.clone(), old]).chosen().unwrap_err().contains("2 valid aid1"));
    }
}
