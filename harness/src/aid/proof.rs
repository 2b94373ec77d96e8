//! The aid2 PKA endpoint proof (AID v2.0 Appendix B): an RFC 9421 response signature with
//! Ed25519, `keyid` the RFC 7638 thumbprint of the DNS key, and v2.1's domain binding
//! (Appendix B.7: the client sends `AID-Domain`, a bound signature covers it). The headers are
//! read as Structured Fields ([`super::sf`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::sf::{self, Bare, Member};

/// The RFC 7638 thumbprint of the Ed25519 JWK whose `x` is `k` (AID v2's `keyid`).
pub fn thumbprint(k: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{k}"}}"#);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// The covered components of the AID v2 profile, in order.
pub const COVERED: &str = r#"("@method";req "@target-uri";req "@authority";req "@status")"#;
/// The covered components of a domain-bound proof (v2.1 Appendix B.7).
pub const COVERED_BOUND: &str = r#"("@method";req "@target-uri";req "@authority";req "aid-domain";req "@status")"#;
/// The profile tag.
pub const TAG: &str = "aid-pka-v2";

/// The request side of one proof: the canonical target URI and authority, the challenge, and
/// the domain the client asks the endpoint to bind, if it does.
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
    /// The `AID-Domain` sent (the queried host, lowercased, no trailing dot or port).
    pub domain: Option<String>,
}

impl Challenge {
    /// A fresh challenge for `uri` and DNS key `k`, asking for binding to `domain` if given.
    pub fn new(uri: &str, k: &str, domain: Option<&str>) -> Result<Self, String> {
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
            domain: domain.map(|d| d.trim_end_matches('.').to_ascii_lowercase()),
        })
    }

    /// The request headers: `Accept-Signature`, `Cache-Control: no-store` (v2.0 §4), and
    /// `AID-Domain` when binding is asked for.
    pub fn headers(&self) -> Vec<(String, String)> {
        let covered = if self.domain.is_some() { COVERED_BOUND } else { COVERED };
        let mut out = vec![
            (
                "Accept-Signature".to_string(),
                format!(
                    r#"aid-pka={covered};created;expires;keyid="{}";alg="ed25519";nonce="{}";tag="{TAG}""#,
                    self.keyid, self.nonce
                ),
            ),
            ("Cache-Control".to_string(), "no-store".to_string()),
        ];
        if let Some(d) = &self.domain {
            out.push(("AID-Domain".to_string(), d.clone()));
        }
        out
    }
}

/// Why a proof failed (the AID v2 rejection checklist, one reason each).
pub type Rejection = String;

/// Each rule of the proof, judged on its own, so a case can test one rule and a report can say
/// which failed.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Inspection {
    /// `Signature-Input` and `Signature` are valid Structured Field dictionaries carrying one
    /// `aid-pka` member each, with each signature parameter once.
    pub signed: Option<Rejection>,
    /// The covered components are the profile's (or the bound profile's), tagged `aid-pka-v2`.
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
    /// The proof covers `aid-domain` (v2.1 domain binding); `None` when no proof was read.
    pub bound: Option<bool>,
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

    /// No proof could be read (`why`, under the signed rule): every other rule says so.
    pub(super) fn unreadable(mut self, why: String) -> Self {
        let missing = format!("no proof to judge: {why}");
        self.signed = Some(why);
        self.components = Some(missing.clone());
        self.fresh = Some(missing.clone());
        self.keyid = Some(missing.clone());
        self.key = Some(missing.clone());
        self.nonce = Some(missing);
        self
    }
}

/// Checks the endpoint's answer to `challenge` against DNS key `k` at unix time `now`.
pub fn verify(challenge: &Challenge, k: &str, status: u16, headers: &[(String, String)], now: i64) -> Result<(), Rejection> {
    match inspect(challenge, k, status, headers, now).first() {
        Some(why) => Err(why.clone()),
        None => Ok(()),
    }
}

/// The values of header `name`, in order.
pub(super) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// Whether `Cache-Control` has the `no-store` directive itself (RFC 9111 §5.2: directives are
/// comma-separated tokens, compared case-insensitively, with an optional `=value`).
pub(super) fn has_no_store(headers: &[(String, String)]) -> bool {
    header(headers, "cache-control")
        .iter()
        .flat_map(|v| v.split(','))
        .any(|d| d.split('=').next().unwrap_or_default().trim().eq_ignore_ascii_case("no-store"))
}

/// The `member` entry of a dictionary header, refused when the header is not a dictionary or
/// holds the member other than once.
pub(super) fn only_member(headers: &[(String, String)], name: &str, member: &str) -> Result<sf::Entry, Rejection> {
    let lines = header(headers, name);
    if lines.is_empty() {
        return Err(format!("no {name} header"));
    }
    let dict = sf::dictionary(&lines).map_err(|e| format!("{name} is not a Structured Field dictionary: {e}"))?;
    let mut ours: Vec<sf::Entry> = dict.into_iter().filter(|e| e.key == member).collect();
    match ours.len() {
        1 => Ok(ours.remove(0)),
        0 => Err(format!("{name} has no {member} member")),
        _ => Err(format!("{name} repeats the {member} member")),
    }
}

/// The one member of a dictionary header, whatever its key (aid1 names none).
pub(super) fn only_entry(headers: &[(String, String)], name: &str) -> Result<sf::Entry, Rejection> {
    let lines = header(headers, name);
    if lines.is_empty() {
        return Err(format!("no {name} header"));
    }
    let mut dict = sf::dictionary(&lines).map_err(|e| format!("{name} is not a Structured Field dictionary: {e}"))?;
    match dict.len() {
        1 => Ok(dict.remove(0)),
        n => Err(format!("{name} has {n} members, not one")),
    }
}

/// One signature as its two headers carry it, once read.
pub(super) struct Signed {
    /// The `Signature-Input` member's value as written: the `@signature-params` line.
    pub(super) raw: String,
    /// The covered components.
    pub(super) items: Vec<(Bare, sf::Params)>,
    /// The signature parameters, each once.
    pub(super) params: sf::Params,
    /// The signature's bytes.
    pub(super) sig: Vec<u8>,
}

/// Reads one signature from its `Signature-Input` and `Signature` members (aid1 and aid2
/// alike): an inner list beside a byte sequence, each signature parameter once.
pub(super) fn read_signature(input: sf::Entry, signature: sf::Entry) -> Result<Signed, Rejection> {
    let Member::Item(Bare::Bytes(sig), _) = signature.value else {
        return Err("the Signature member is not a byte sequence".to_string());
    };
    let Member::Inner(items, params) = input.value else {
        return Err("the Signature-Input member is not an inner list".to_string());
    };
    if let Some((key, _)) = params.iter().find(|(key, _)| sf::param(&params, key).1 > 1) {
        return Err(format!(
            "the signature parameter `{key}` appears twice: two verifiers could read two proofs"
        ));
    }
    Ok(Signed {
        raw: input.raw,
        items,
        params,
        sig,
    })
}

/// Judges every rule of the proof in the answer to `challenge`.
pub fn inspect(challenge: &Challenge, k: &str, status: u16, headers: &[(String, String)], now: i64) -> Inspection {
    let mut out = Inspection::default();
    if !has_no_store(headers) {
        out.no_store = Some("the response lacks Cache-Control: no-store".into());
    }
    let read = only_member(headers, "Signature-Input", "aid-pka")
        .and_then(|input| read_signature(input, only_member(headers, "Signature", "aid-pka")?));
    let Signed { raw, items, params, sig } = match read {
        Ok(r) => r,
        Err(why) => return out.unreadable(why),
    };
    let text = |key: &str| match sf::param(&params, key).0 {
        Some(Bare::String(s)) => Some(s.clone()),
        _ => None,
    };
    let number = |key: &str| match sf::param(&params, key).0 {
        Some(Bare::Integer(n)) => Some(*n),
        _ => None,
    };
    let covered: Vec<String> = items
        .iter()
        .map(|(bare, p)| {
            let name = match bare {
                Bare::String(s) => format!("\"{s}\""),
                other => format!("{other:?}"),
            };
            let flags: String = p
                .iter()
                .map(|(k, v)| {
                    if *v == Bare::Boolean(true) {
                        format!(";{k}")
                    } else {
                        format!(";{k}=…")
                    }
                })
                .collect();
            format!("{name}{flags}")
        })
        .collect();
    let covered = format!("({})", covered.join(" "));
    let bound = covered == COVERED_BOUND;
    out.bound = Some(bound);
    if covered != COVERED && !bound {
        out.components = Some(format!("the covered components are {covered}, not the AID profile's {COVERED}"));
    } else if bound && challenge.domain.is_none() {
        // v2.1 B.7 rule 3: fail closed on a binding nobody asked for.
        out.components = Some("the signature covers aid-domain, but no AID-Domain was sent".into());
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
        out.keyid = Some(format!("alg is {:?}, not ed25519", text("alg")));
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
        _ => Some("created or expires is missing or not an integer".into()),
    };
    // The signature base is rebuilt from what the client sent and saw, never from what the
    // server claims it covered: a proof over fewer components does not verify here.
    let domain_line = match (&challenge.domain, bound) {
        (Some(d), true) => format!("\"aid-domain\";req: {d}\n"),
        _ => String::new(),
    };
    let base = format!(
        "\"@method\";req: GET\n\"@target-uri\";req: {}\n\"@authority\";req: {}\n{domain_line}\"@status\": {status}\n\"@signature-params\": {raw}",
        challenge.target_uri, challenge.authority
    );
    out.key = match URL_SAFE_NO_PAD.decode(k) {
        Err(_) => Some("the DNS key is not base64url".into()),
        Ok(key) => aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, &key)
            .verify(base.as_bytes(), &sig)
            .err()
            .map(|_| "the Ed25519 signature does not verify with the DNS key over the AID signature base".to_string()),
    };
    out
}

/// Clock skew allowed around the validity window.
const SKEW: i64 = 60;

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
            domain: None,
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
        let judged = inspect(&c, K, 401, &headers(&input(&c.keyid), SIG), now);
        assert_eq!(judged.bound, Some(false));
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
    fn cache_control_is_read_by_directive_not_by_substring() {
        let c = vector_challenge();
        let now = 1767139230;
        for (value, ok) in [
            ("no-store", true),
            ("private, No-Store", true),
            ("no-storex", false),
            ("max-age=0, x=\"no-store\"", false),
        ] {
            let mut h = headers(&input(&c.keyid), SIG);
            h[0].1 = value.into();
            assert_eq!(inspect(&c, K, 401, &h, now).no_store.is_none(), ok, "{value}");
        }
    }

    #[test]
    fn a_repeated_parameter_is_one_reason_under_the_signed_rule() {
        let c = vector_challenge();
        let repeated = format!(r#"{};nonce="{NONCE}""#, input(&c.keyid));
        let judged = inspect(&c, K, 401, &headers(&repeated, SIG), 1767139230);
        assert!(
            judged.signed.as_deref().is_some_and(|w| w.contains("`nonce` appears twice")),
            "{judged:?}"
        );
        for other in [&judged.components, &judged.keyid, &judged.nonce, &judged.fresh, &judged.key] {
            assert!(other.as_deref().is_some_and(|w| w.starts_with("no proof to judge")), "{judged:?}");
        }
    }

    #[test]
    fn a_binding_nobody_asked_for_is_refused() {
        let c = vector_challenge();
        let bound = format!(
            r#"aid-pka={COVERED_BOUND};created=1;expires=2;keyid="{}";alg="ed25519";nonce="{NONCE}";tag="aid-pka-v2""#,
            c.keyid
        );
        let judged = inspect(&c, K, 401, &headers(&bound, SIG), 1);
        assert_eq!(judged.bound, Some(true));
        assert!(judged.components.as_deref().is_some_and(|w| w.contains("no AID-Domain was sent")));
    }
}
