//! AID (Agent Identity & Discovery) as a client sees it: the `_agent.<domain>` TXT record's
//! grammar (v1.2 `aid1` and v2 `aid2`), choosing the one record to use, and the aid2 PKA
//! endpoint proof (an RFC 9421 response signature with Ed25519, `keyid` the RFC 7638 thumbprint
//! of the DNS key). Pure functions of what the DNS and the endpoint answered, so each rule has a
//! unit test; the AID preflight of a run does the I/O.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

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
    /// The PKA key (`aid2`: the Ed25519 JWK `x`, unpadded base64url).
    pub pka: Option<String>,
    /// The key id (`aid1` only).
    pub kid: Option<String>,
    /// The record as published.
    pub raw: String,
}

/// Parses one TXT record (its strings already concatenated). `Err` names what makes it
/// invalid, in the words of the spec.
pub fn parse(txt: &str) -> Result<AidRecord, String> {
    let mut pairs = Vec::new();
    for pair in txt.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(format!("`{pair}` is not key=value"));
        };
        pairs.push((key.to_string(), value.to_string()));
    }
    parse_pairs(&pairs, txt)
}

/// Parses the `.well-known/agent` JSON document: the TXT keys as members (AID fallback).
pub fn parse_json(doc: &serde_json::Value) -> Result<AidRecord, String> {
    let Some(members) = doc.as_object() else {
        return Err("the document is not a JSON object".into());
    };
    let mut pairs = Vec::new();
    for (k, v) in members {
        let Some(v) = v.as_str() else {
            return Err(format!("member `{k}` is not a string"));
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

fn parse_pairs(pairs: &[(String, String)], raw: &str) -> Result<AidRecord, String> {
    let mut seen: BTreeMap<&str, String> = BTreeMap::new();
    for (key, value) in pairs {
        // Unknown keys are ignored (v1.2 §2.1); a key and its alias may not both appear.
        let Some(full) = full_key(key) else {
            continue;
        };
        if seen.insert(full, value.trim().to_string()).is_some() {
            return Err(format!("`{full}` appears twice (directly or as its alias)"));
        }
    }
    let get = |k: &str| seen.get(k).cloned();
    let (Some(version), Some(uri), Some(proto)) = (get("version"), get("uri"), get("proto")) else {
        return Err("a required key (v, u or p) is missing".into());
    };
    if version != "aid1" && version != "aid2" {
        return Err(format!("unknown version `{version}`"));
    }
    check_uri(&proto, &uri)?;
    if get("desc").is_some_and(|d| d.len() > 60) {
        return Err("`desc` is longer than 60 bytes".into());
    }
    let (pka, kid) = (get("pka"), get("kid"));
    if let Some(k) = &pka {
        if version == "aid2" {
            check_key(k)?;
        } else if !kid
            .as_deref()
            .is_some_and(|i| (1..=6).contains(&i.len()) && i.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
        {
            return Err("an aid1 `k` needs `i`, 1 to 6 characters of [a-z0-9]".into());
        }
    }
    Ok(AidRecord {
        version,
        uri,
        proto,
        auth: get("auth"),
        pka,
        kid,
        raw: raw.to_string(),
    })
}

/// The scheme a protocol token allows (AID v1.2 Appendix B); remote endpoints are https only.
pub fn check_uri(proto: &str, uri: &str) -> Result<(), String> {
    let allowed: &[&str] = match proto {
        "local" => &["docker:", "npx:", "pip:"],
        "zeroconf" => &["zeroconf:"],
        "websocket" => &["wss://"],
        _ => &["https://"],
    };
    if allowed.iter().any(|s| uri.to_ascii_lowercase().starts_with(s)) {
        Ok(())
    } else {
        Err(format!("`u` for `{proto}` must start with {}", allowed.join(" or ")))
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
                Err(why) => s.invalid.push((a.clone(), why)),
            }
        }
        s
    }

    /// The record to use: exactly one valid record, else why not (v1.2 §2.3 step 3: several
    /// valid records are an ambiguity, never resolved by answer order).
    pub fn chosen(&self) -> Result<&AidRecord, String> {
        match self.valid.as_slice() {
            [one] => Ok(one),
            [] if self.invalid.is_empty() => Err("no AID record".into()),
            [] => Err(format!("no valid AID record ({})", self.invalid[0].1)),
            many => Err(format!("{} valid AID records at one name: ambiguous", many.len())),
        }
    }
}

/// The RFC 7638 thumbprint of the Ed25519 JWK whose `x` is `k` (AID v2's `keyid`).
pub fn thumbprint(k: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{k}"}}"#);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// The covered components of the AID v2 profile, in order.
pub const COVERED: &str = r#"("@method";req "@target-uri";req "@authority";req "@status")"#;
/// The profile tag.
pub const TAG: &str = "aid-pka-v2";

/// The request side of one proof: the canonical target URI and authority, and the challenge.
#[derive(Clone, Debug)]
pub struct Challenge {
    /// The discovered URI without its fragment, host lowercased, default port dropped.
    pub target_uri: String,
    /// Host (and non-default port).
    pub authority: String,
    /// The one-shot nonce.
    pub nonce: String,
    /// The `keyid` the DNS key implies.
    pub keyid: String,
}

impl Challenge {
    /// A fresh challenge for `uri` and DNS key `k`.
    pub fn new(uri: &str, k: &str) -> Result<Self, String> {
        let mut url = url::Url::parse(uri).map_err(|e| format!("`u` is not a URL: {e}"))?;
        url.set_fragment(None);
        let authority = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{}:{p}", h.to_ascii_lowercase()),
            (Some(h), None) => h.to_ascii_lowercase(),
            (None, _) => return Err("`u` has no host".into()),
        };
        let mut nonce = [0u8; 32];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| "no randomness".to_string())?;
        Ok(Self {
            target_uri: url.to_string(),
            authority,
            nonce: URL_SAFE_NO_PAD.encode(nonce),
            keyid: thumbprint(k),
        })
    }

    /// The `Accept-Signature` request header.
    pub fn accept_signature(&self) -> String {
        format!(
            r#"aid-pka={COVERED};created;expires;keyid="{}";alg="ed25519";nonce="{}";tag="{TAG}""#,
            self.keyid, self.nonce
        )
    }
}

/// Why a proof failed (the AID v2 rejection checklist, one reason each).
pub type Rejection = String;

/// Each rule of the AID v2 proof, judged on its own, so a case can test one rule and a report
/// can say which failed.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Inspection {
    /// `Signature-Input` and `Signature` each carry one `aid-pka` member.
    pub signed: Option<Rejection>,
    /// The covered components are the profile's, with the `aid-pka-v2` tag.
    pub components: Option<Rejection>,
    /// `created`/`expires` form a window of at most 300 s around now.
    pub fresh: Option<Rejection>,
    /// `keyid` is the RFC 7638 thumbprint of the DNS key, `alg` ed25519.
    pub keyid: Option<Rejection>,
    /// The Ed25519 signature over the signature base verifies with the DNS key.
    pub key: Option<Rejection>,
    /// The signature carries this request's nonce.
    pub nonce: Option<Rejection>,
    /// The response is marked `Cache-Control: no-store`.
    pub no_store: Option<Rejection>,
}

impl Inspection {
    /// The first failed rule, in the order a client checks them.
    pub fn first(&self) -> Option<&Rejection> {
        [
            &self.signed,
            &self.components,
            &self.keyid,
            &self.nonce,
            &self.fresh,
            &self.key,
            &self.no_store,
        ]
        .into_iter()
        .find_map(Option::as_ref)
    }
}

/// Checks the endpoint's answer to `challenge` against DNS key `k` at unix time `now`.
pub fn verify(challenge: &Challenge, k: &str, status: u16, headers: &[(String, String)], now: i64) -> Result<(), Rejection> {
    match inspect(challenge, k, status, headers, now).first() {
        Some(why) => Err(why.clone()),
        None => Ok(()),
    }
}

/// Judges every rule of the proof in the answer to `challenge`.
pub fn inspect(challenge: &Challenge, k: &str, status: u16, headers: &[(String, String)], now: i64) -> Inspection {
    let header = |name: &str| -> Vec<&str> {
        headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let mut out = Inspection::default();
    if !header("cache-control").iter().any(|v| v.to_ascii_lowercase().contains("no-store")) {
        out.no_store = Some("the response lacks Cache-Control: no-store".into());
    }
    let pair = only_member(&header("signature-input"), "Signature-Input")
        .and_then(|i| only_member(&header("signature"), "Signature").map(|s| (i, s)));
    let (input, signature) = match pair {
        Ok(p) => p,
        Err(why) => {
            let missing = format!("no proof to judge: {why}");
            out.signed = Some(why);
            out.components = Some(missing.clone());
            out.fresh = Some(missing.clone());
            out.keyid = Some(missing.clone());
            out.key = Some(missing.clone());
            out.nonce = Some(missing);
            return out;
        }
    };
    let (covered, params) = match input.split_once(')') {
        Some((c, p)) => (format!("{c})"), p),
        None => (String::new(), ""),
    };
    let params = match parameters(params) {
        Ok(p) => p,
        Err(why) => {
            out.components = Some(why);
            BTreeMap::new()
        }
    };
    let text = |k: &str| params.get(k).map(|v| v.trim_matches('"').to_string());
    let number = |k: &str| params.get(k).and_then(|v| v.parse::<i64>().ok());
    if covered != COVERED {
        out.components = Some(format!("the covered components are {covered:?}, not the AID profile's {COVERED}"));
    } else if text("tag").as_deref() != Some(TAG) {
        out.components = Some(format!("tag is {:?}, not {TAG}", text("tag")));
    }
    if text("keyid").as_deref() != Some(challenge.keyid.as_str()) {
        out.keyid = Some(format!(
            "keyid is {:?}, not the RFC 7638 thumbprint of the DNS key ({})",
            text("keyid"),
            challenge.keyid
        ));
    } else if !text("alg").is_some_and(|a| a.eq_ignore_ascii_case("ed25519")) {
        out.keyid = Some("alg is not ed25519".into());
    }
    if text("nonce").as_deref() != Some(challenge.nonce.as_str()) {
        out.nonce = Some(format!(
            "the nonce is {:?}, not this request's challenge (a replayed or unbound signature)",
            text("nonce")
        ));
    }
    out.fresh = match (number("created"), number("expires")) {
        (Some(created), Some(expires)) if expires <= created || expires - created > 300 => {
            Some(format!("the validity window {created}..{expires} is not within 300 s"))
        }
        (Some(created), Some(expires)) if now + SKEW < created || now - SKEW > expires => Some(format!(
            "the signature is not fresh (created {created}, expires {expires}, now {now})"
        )),
        (Some(_), Some(_)) => None,
        _ => Some("created or expires is missing".into()),
    };
    // The signature base is rebuilt from what the client sent and saw, never from what the
    // server claims it covered: a proof over fewer components does not verify here.
    let base = format!(
        "\"@method\";req: GET\n\"@target-uri\";req: {}\n\"@authority\";req: {}\n\"@status\": {status}\n\"@signature-params\": {input}",
        challenge.target_uri, challenge.authority
    );
    let sig = signature
        .strip_prefix(':')
        .and_then(|s| s.strip_suffix(':'))
        .and_then(|s| STANDARD.decode(s).ok());
    let key = URL_SAFE_NO_PAD.decode(k).ok();
    out.key = match (sig, key) {
        (None, _) => Some("Signature is not a byte sequence".into()),
        (_, None) => Some("the DNS key is not base64url".into()),
        (Some(sig), Some(key)) => aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, &key)
            .verify(base.as_bytes(), &sig)
            .err()
            .map(|_| "the Ed25519 signature does not verify with the DNS key over the AID signature base".to_string()),
    };
    out
}

/// Clock skew allowed around the validity window.
const SKEW: i64 = 60;

/// The value of the single `aid-pka` member of a Structured Field dictionary header.
fn only_member<'a>(values: &[&'a str], name: &str) -> Result<&'a str, Rejection> {
    let members: Vec<&str> = values.iter().flat_map(|v| split_top(v)).collect();
    let ours: Vec<&str> = members.iter().filter_map(|m| m.trim().strip_prefix("aid-pka=")).collect();
    match ours.as_slice() {
        [one] => Ok(one),
        [] => Err(format!("{name} has no aid-pka member")),
        _ => Err(format!("{name} repeats the aid-pka member")),
    }
}

/// Splits a dictionary at commas outside quotes, parentheses and byte sequences.
fn split_top(v: &str) -> Vec<&str> {
    let (mut out, mut start, mut depth, mut quoted, mut bytes) = (Vec::new(), 0, 0i32, false, false);
    for (i, c) in v.char_indices() {
        match c {
            '"' if !bytes => quoted = !quoted,
            ':' if !quoted => bytes = !bytes,
            '(' if !quoted && !bytes => depth += 1,
            ')' if !quoted && !bytes => depth -= 1,
            ',' if !quoted && !bytes && depth == 0 => {
                out.push(&v[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&v[start..]);
    out
}

/// `;key=value` parameters; a repeated key is rejected (it would let two values disagree).
fn parameters(s: &str) -> Result<BTreeMap<String, String>, Rejection> {
    let mut out = BTreeMap::new();
    for p in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = p.split_once('=').unwrap_or((p, "?1"));
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(format!("the signature parameter `{k}` appears twice"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The AID repository's canonical vector `v2-rfc9421-response-signature`
    // (protocol/pka_vectors.json): seed 0x01..0x20, its public `x`, thumbprint and signature.
    const K: &str = "ebVWLo_mVPlAeLES6KmLp5AfhTrmlb7X4OORC60ElmQ";
    const NONCE: &str = "oKGio6SlpqeoqaqrrK2ur7CxsrO0tba3uLm6u7y9vr8";
    const SIG: &str = "aid-pka=:TymqbcJ5819laBUNeXgpJSZhTkc7ug+0Sw/md3IQQcdyp7F4smKpdOqLI+nY9PBLwdY2yxNOj6kiV8Rb8Y7eCQ==:";

    fn vector_challenge() -> Challenge {
        Challenge {
            target_uri: "https://api.example.com/mcp?check=1".into(),
            authority: "api.example.com".into(),
            nonce: NONCE.into(),
            keyid: thumbprint(K),
        }
    }

    fn input(keyid: &str) -> String {
        format!(r#"aid-pka={COVERED};created=1767139200;expires=1767139260;keyid="{keyid}";alg="ed25519";nonce="{NONCE}";tag="aid-pka-v2""#)
    }

    fn headers(input: &str, sig: &str) -> Vec<(String, String)> {
        vec![
            ("Cache-Control".into(), "no-store".into()),
            ("Signature-Input".into(), input.into()),
            ("Signature".into(), sig.into()),
        ]
    }

    #[test]
    fn the_canonical_vector_verifies_and_its_variants_do_not() {
        let c = vector_challenge();
        assert_eq!(c.keyid, "WWpn_pfHui9YKR4CZtQsDGMu7_Gch2zYChfSvnxgtPk");
        let now = 1767139230;
        assert_eq!(verify(&c, K, 401, &headers(&input(&c.keyid), SIG), now), Ok(()));
        // Another status, another nonce, a late clock, a thumbprint that is not the key's.
        assert!(verify(&c, K, 200, &headers(&input(&c.keyid), SIG), now).is_err());
        let other = Challenge {
            nonce: "x".into(),
            ..c.clone()
        };
        assert!(
            verify(&other, K, 401, &headers(&input(&c.keyid), SIG), now)
                .unwrap_err()
                .contains("nonce")
        );
        assert!(
            verify(&c, K, 401, &headers(&input(&c.keyid), SIG), now + 3600)
                .unwrap_err()
                .contains("fresh")
        );
        assert!(
            verify(&c, K, 401, &headers(&input("AAAA"), SIG), now)
                .unwrap_err()
                .contains("thumbprint")
        );
        let twice = format!("{}, {}", input(&c.keyid), input(&c.keyid));
        assert!(verify(&c, K, 401, &headers(&twice, SIG), now).unwrap_err().contains("repeats"));
        let cacheable = &headers(&input(&c.keyid), SIG)[1..];
        assert!(verify(&c, K, 401, cacheable, now).unwrap_err().contains("no-store"));
    }

    #[test]
    fn records_parse_by_the_v1_2_grammar() {
        let r =
            parse("v=aid2;p=openapi;u=https://api.example.com/api/resource;a=oauth2_code;k=ebVWLo_mVPlAeLES6KmLp5AfhTrmlb7X4OORC60ElmQ")
                .expect("valid");
        assert_eq!((r.version.as_str(), r.proto.as_str()), ("aid2", "openapi"));
        assert!(
            parse("VERSION=aid1;Uri=https://a.example;P=mcp;x-unknown=1").is_ok(),
            "case-insensitive keys, unknown ignored"
        );
        assert!(
            parse("v=aid1;version=aid1;u=https://a.example;p=mcp")
                .unwrap_err()
                .contains("twice")
        );
        assert!(parse("v=aid1;u=http://a.example;p=mcp").unwrap_err().contains("https"));
        assert!(parse("v=aid3;u=https://a.example;p=mcp").unwrap_err().contains("version"));
        assert!(parse("v=aid1;p=mcp").unwrap_err().contains("missing"));
        assert!(parse("v=aid2;u=https://a.example;p=mcp;k=AAAA").unwrap_err().contains("32"));
        assert!(parse("v=aid1;u=https://a.example;p=mcp;k=z6Mk").unwrap_err().contains("needs `i`"));
    }

    #[test]
    fn several_valid_records_are_ambiguous() {
        let one = "v=aid2;p=mcp;u=https://a.example".to_string();
        let two = "v=aid2;p=mcp;u=https://b.example".to_string();
        let junk = "v=aid2;p=mcp".to_string();
        assert!(Selection::of(&[one.clone(), junk.clone()]).chosen().is_ok());
        assert!(Selection::of(&[one, two]).chosen().unwrap_err().contains("ambiguous"));
        assert!(Selection::of(&[junk]).chosen().unwrap_err().contains("no valid"));
    }
}
