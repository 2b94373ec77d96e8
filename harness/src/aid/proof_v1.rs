//! The aid1 PKA handshake (AID v1.2 Appendix D): the client sends `AID-Challenge` (32 random
//! bytes, base64url) and `Date`; the endpoint signs per RFC 9421 over `AID-Challenge`,
//! `@method`, `@target-uri`, `host` and `date`, with `created`, `keyid` the record's `i` and
//! `alg="ed25519"`; the key is the record's multibase `k`. The text gives pseudo-code only;
//! where it is silent this follows the AID project's published vectors
//! (`protocol/pka_vectors.json`), and where they leave a choice the report says which
//! reading the endpoint follows (`cases-aid/ambiguities.toml`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::proof::{Inspection, Signed, header, only_entry, read_signature};
use super::sf::{self, Bare};

/// The components an aid1 signature covers, compared case-insensitively, in any order.
pub const COVERED_V1: [&str; 5] = ["aid-challenge", "@method", "@target-uri", "host", "date"];

/// How far `created` (and the response's `Date`) may be from now (v1.2 Appendix D).
const WINDOW: i64 = 300;

/// The request side of one aid1 handshake.
#[derive(Clone, Debug)]
pub struct V1Challenge {
    /// The endpoint as the record names it (the `@target-uri`).
    pub uri: String,
    /// Its host and port as written, without a user part (the `host`).
    pub host: String,
    /// The `AID-Challenge` value.
    pub challenge: String,
    /// The request's `Date`.
    pub date: String,
    /// The record's `i`, the `keyid` expected.
    pub kid: String,
}

impl V1Challenge {
    /// A fresh challenge for the record's `uri` and `kid`, dated `now` (unix seconds).
    pub fn new(uri: &str, kid: &str, now: i64) -> Result<Self, String> {
        let rest = uri.split_once("://").map(|(_, r)| r).ok_or("`u` is not an absolute URL")?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = authority.rsplit('@').next().unwrap_or_default().to_string();
        if host.is_empty() {
            return Err("`u` has no host".into());
        }
        let mut nonce = [0u8; 32];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| "no randomness".to_string())?;
        let date = time::OffsetDateTime::from_unix_timestamp(now)
            .map_err(|e| e.to_string())?
            .format(&time::format_description::well_known::Rfc2822)
            .map_err(|e| e.to_string())?;
        Ok(Self {
            uri: uri.to_string(),
            host,
            challenge: URL_SAFE_NO_PAD.encode(nonce),
            // RFC 9110's IMF-fixdate: RFC 2822 with GMT for +0000.
            date: date.replace("+0000", "GMT"),
            kid: kid.to_string(),
        })
    }

    /// The request headers.
    pub fn headers(&self) -> Vec<(String, String)> {
        vec![
            ("AID-Challenge".to_string(), self.challenge.clone()),
            ("Date".to_string(), self.date.clone()),
        ]
    }
}

/// Judges every rule of an aid1 handshake answer against the record's multibase key `k` at
/// unix time `now`. `nonce` stays empty (the challenge is bound by being covered) and
/// `no_store` too (v1.2 does not ask for it).
pub fn inspect_v1(c: &V1Challenge, k: &str, headers: &[(String, String)], now: i64) -> Inspection {
    let read = only_entry(headers, "Signature-Input").and_then(|input| {
        let signature = only_entry(headers, "Signature")?;
        if signature.key != input.key {
            return Err(format!(
                "Signature's member `{}` is not Signature-Input's `{}`",
                signature.key, input.key
            ));
        }
        read_signature(input, signature)
    });
    let Signed { raw, items, params, sig } = match read {
        Ok(r) => r,
        // No nonce rule in aid1: the challenge is a covered field.
        Err(why) => {
            return Inspection {
                nonce: None,
                ..Inspection::default().unreadable(why)
            };
        }
    };
    let mut out = Inspection::default();
    let names: Vec<String> = items
        .iter()
        .map(|(bare, _)| match bare {
            Bare::String(s) => s.clone(),
            other => format!("{other:?}"),
        })
        .collect();
    let mut lowered: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
    lowered.sort();
    let mut wanted: Vec<&str> = COVERED_V1.to_vec();
    wanted.sort_unstable();
    if lowered != wanted || items.iter().any(|(_, p)| !p.is_empty()) {
        out.components = Some(format!(
            "the signature covers {names:?}, not exactly AID-Challenge, @method, @target-uri, host and date"
        ));
    }
    let text = |key: &str| match sf::param(&params, key).0 {
        Some(Bare::String(s) | Bare::Token(s)) => Some(s.clone()),
        _ => None,
    };
    if text("keyid").as_deref() != Some(c.kid.as_str()) {
        out.keyid = Some(format!("keyid is {:?}, not the record's `i` ({})", text("keyid"), c.kid));
    } else if !matches!(sf::param(&params, "alg").0, Some(Bare::String(a)) if a.eq_ignore_ascii_case("ed25519")) {
        out.keyid = Some(format!("alg is {:?}, not \"ed25519\"", sf::param(&params, "alg").0));
    }
    let date = header(headers, "date").first().map(|d| d.to_string());
    out.fresh = match sf::param(&params, "created").0 {
        Some(Bare::Integer(created)) if (now - created).abs() > WINDOW => {
            Some(format!("created {created} is more than {WINDOW} s from now ({now})"))
        }
        Some(Bare::Integer(_)) => match date.as_deref().map(http_date) {
            Some(None) => Some(format!(
                "the response's Date {:?} is not an HTTP date",
                date.clone().unwrap_or_default()
            )),
            Some(Some(at)) if (now - at).abs() > WINDOW => Some(format!("the response's Date is more than {WINDOW} s from now")),
            _ => None,
        },
        _ => Some("created is missing or not an integer".into()),
    };
    let value = |name: &str| match name.to_ascii_lowercase().as_str() {
        "aid-challenge" => c.challenge.clone(),
        "@method" => "GET".to_string(),
        "@target-uri" => c.uri.clone(),
        "host" => c.host.clone(),
        _ => date.clone().unwrap_or_else(|| c.date.clone()),
    };
    let mut base: String = names.iter().map(|n| format!("\"{n}\": {}\n", value(n))).collect();
    base.push_str(&format!("\"@signature-params\": {raw}"));
    out.key = match super::multibase_key(k) {
        Err(why) => Some(why),
        Ok(key) => aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, &key)
            .verify(base.as_bytes(), &sig)
            .err()
            .map(|_| "the Ed25519 signature does not verify with the record's key over the aid1 signature base".to_string()),
    };
    out
}

/// An IMF-fixdate (`Thu, 01 Jan 2026 00:00:00 GMT`) as unix seconds.
fn http_date(text: &str) -> Option<i64> {
    let rfc2822 = text.trim().replace(" GMT", " +0000");
    time::OffsetDateTime::parse(&rfc2822, &time::format_description::well_known::Rfc2822)
        .ok()
        .map(|t| t.unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    /// Signs as the AID project's vectors do (`protocol/pka_vectors.json`, the aid1 ones): the
    /// covered fields in the vector's order, `keyid` a bare token, the base lines named as
    /// covered.
    fn answer(c: &V1Challenge, seed: [u8; 32], covered: &[&str], created: i64, keyid: &str, alg: &str) -> Vec<(String, String)> {
        let pair = aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(&seed).expect("seed");
        let quoted: Vec<String> = covered.iter().map(|n| format!("\"{n}\"")).collect();
        let params = format!("({});created={created};keyid={keyid};alg=\"{alg}\"", quoted.join(" "));
        let value = |n: &str| match n {
            "AID-Challenge" => c.challenge.clone(),
            "@method" => "GET".into(),
            "@target-uri" => c.uri.clone(),
            "host" => c.host.clone(),
            _ => c.date.clone(),
        };
        let mut base: String = covered.iter().map(|n| format!("\"{n}\": {}\n", value(n))).collect();
        base.push_str(&format!("\"@signature-params\": {params}"));
        let sig = pair.sign(base.as_bytes());
        vec![
            ("Signature-Input".into(), format!("sig={params}")),
            ("Signature".into(), format!("sig=:{}:", STANDARD.encode(sig.as_ref()))),
            ("Date".into(), c.date.clone()),
        ]
    }

    fn multibase(seed: [u8; 32]) -> String {
        use aws_lc_rs::signature::KeyPair;
        let pair = aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(&seed).expect("seed");
        format!("z{}", crate::aid::base58btc_encode(pair.public_key().as_ref()))
    }

    const ALL: [&str; 5] = ["AID-Challenge", "@method", "@target-uri", "host", "date"];

    #[test]
    fn the_projects_aid1_vectors_pass_and_fail_as_published() {
        let now = 1_767_225_600; // 2026-01-01T00:00:00Z
        let c = V1Challenge::new("https://api.example.com/mcp", "g1", now).expect("challenge");
        assert_eq!(c.date, "Thu, 01 Jan 2026 00:00:00 GMT");
        let seed = [0u8; 32];
        let k = multibase(seed);
        // valid-ed25519
        let ok = inspect_v1(&c, &k, &answer(&c, seed, &ALL, now, "g1", "ed25519"), now);
        assert_eq!(ok.first(), None, "{ok:?}");
        // alg-mismatch, kid-mismatch, missing-fields, date-skew
        assert!(inspect_v1(&c, &k, &answer(&c, seed, &ALL, now, "g1", "rsa"), now).keyid.is_some());
        assert!(
            inspect_v1(&c, &k, &answer(&c, seed, &ALL, now, "b2", "ed25519"), now)
                .keyid
                .is_some()
        );
        assert!(
            inspect_v1(&c, &k, &answer(&c, seed, &ALL[..2], now, "g1", "ed25519"), now)
                .components
                .is_some()
        );
        let mut skewed = answer(&c, seed, &ALL, 1_609_455_600, "g1", "ed25519");
        skewed[2].1 = "Thu, 31 Dec 2020 23:00:00 GMT".into();
        assert!(inspect_v1(&c, &k, &skewed, now).fresh.is_some());
        // Another key, another challenge.
        assert!(
            inspect_v1(&c, &multibase([9u8; 32]), &answer(&c, seed, &ALL, now, "g1", "ed25519"), now)
                .key
                .is_some()
        );
        let other = V1Challenge::new("https://api.example.com/mcp", "g1", now).expect("challenge");
        assert!(
            inspect_v1(&other, &k, &answer(&c, seed, &ALL, now, "g1", "ed25519"), now)
                .key
                .is_some()
        );
    }
}
