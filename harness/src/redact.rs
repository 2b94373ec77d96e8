//! Secrets never leak. Every credential, claim token, claim-attempt token, OTP, cookie and
//! token the harness sees or mints is registered here *by value*, wherever it appeared (any
//! JSON depth, any member name that carries a secret, credential-bearing headers). Outputs are
//! redacted before they are escaped for their format, and [`Secrets::leaks`] scans the final
//! text for every escaped form of every secret, so a writer can fail closed.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// Secrets shorter than this are redacted only where they stand whole (a JSON string equal to
/// them, or their quoted form), so a one-character "credential" cannot shred a report.
pub const MIN_SUBSTRING_LEN: usize = 4;

/// Secrets shorter than this (and all-digit ones shorter than [`SHORT_DIGITS_LEN`]) are
/// low-entropy: an OTP or a user code of six digits occurs by chance inside unrelated numbers
/// (timestamps, ids). They are redacted, and scanned for, only where they stand as a whole
/// token (not next to a letter, digit or `_`): a JSON string or number equal to them, a URL or
/// form parameter, a word of a sentence. Longer secrets are matched anywhere.
pub const SHORT_LEN: usize = 12;

/// All-digit secrets shorter than this count as low-entropy, whatever [`SHORT_LEN`] says.
pub const SHORT_DIGITS_LEN: usize = 20;

/// New secrets one harvest (one answer's JSON, or its headers) may register. A target that
/// answers with thousands of distinct values under secret-sounding names gets this many
/// registered, not all of them: every secret costs every later redaction and scan.
pub const HARVEST_PER_ANSWER: usize = 64;

/// Bytes of harvested secrets a run keeps; past it harvesting stops. Values the harness sends
/// back (a credential it presents, a cookie it returns) are registered when it sends them
/// ([`Secrets::harvest_request`]), whatever this budget says.
pub const HARVEST_RUN_BYTES: usize = 512 << 10;

/// Longest value harvested as a secret; a longer one is not (it is no credential a client
/// would be handed, and matching it would cost more than it protects).
pub const MAX_HARVESTED_LEN: usize = 8 << 10;

/// Left-out values whose hashes are remembered (8 bytes each).
const MAX_SKIPPED_REMEMBERED: usize = 200_000;

fn value_hash(value: &str) -> u64 {
    use std::hash::{BuildHasher as _, BuildHasherDefault};
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(value)
}

/// The secrets seen during a run. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Secrets(Arc<Mutex<Known>>);

#[derive(Default)]
struct Known {
    set: BTreeSet<String>,
    /// Bytes of the secrets registered by harvesting (counted against [`HARVEST_RUN_BYTES`]).
    harvested_bytes: usize,
    /// Secret-looking values harvesting left out (over a budget or too long).
    skipped: usize,
    /// Hashes of those values (at most [`MAX_SKIPPED_REMEMBERED`]), so one the harness later
    /// sends back is registered then.
    skipped_hashes: std::collections::HashSet<u64>,
    /// Member names the profile declares secret (`user_code`), lower-case.
    names: Vec<String>,
    /// The compiled redactor for the current set; rebuilt after an `add`.
    compiled: Option<Arc<Redactor>>,
}

impl Known {
    /// Counts a value harvesting left out and remembers its hash (within the bound), so
    /// [`Secrets::harvest_request`] knows it if the harness sends it back.
    fn leave_out(&mut self, hash: u64) {
        self.skipped += 1;
        if self.skipped_hashes.len() < MAX_SKIPPED_REMEMBERED {
            self.skipped_hashes.insert(hash);
        }
    }
}

/// How a secret is matched in text.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Reach {
    /// Only the whole text, or its quoted form (fewer than [`MIN_SUBSTRING_LEN`] characters).
    Whole,
    /// Where it stands as a whole token (low-entropy: OTPs, user codes).
    Token,
    /// Anywhere.
    Anywhere,
}

fn reach(secret: &str) -> Reach {
    let n = secret.chars().count();
    if n < MIN_SUBSTRING_LEN {
        Reach::Whole
    } else if n < SHORT_LEN || (n < SHORT_DIGITS_LEN && secret.bytes().all(|b| b.is_ascii_digit())) {
        Reach::Token
    } else {
        Reach::Anywhere
    }
}

/// A byte that continues a token: a match next to one is part of something larger.
fn word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Is `text[start..end]` a whole token? Only an edge that is itself a word character can run
/// into a neighbouring word character and so be part of something larger.
fn stands_alone(text: &str, start: usize, end: usize) -> bool {
    let bytes = text.as_bytes();
    let open = start == 0 || !word_byte(bytes[start]) || !word_byte(bytes[start - 1]);
    let close = end == bytes.len() || !word_byte(bytes[end - 1]) || !word_byte(bytes[end]);
    open && close
}

/// Every known secret compiled into automatons over all its written forms, so redacting or
/// scanning a large output is one pass per reach, whatever the number of secrets.
struct Redactor {
    /// Forms matched anywhere (and quoted short secrets), longest match first.
    anywhere: Option<aho_corasick::AhoCorasick>,
    anywhere_markers: Vec<String>,
    anywhere_hashes: Vec<Option<String>>,
    /// Forms of low-entropy secrets, matched where they stand as a whole token.
    token: Option<aho_corasick::AhoCorasick>,
    token_markers: Vec<String>,
    token_hashes: Vec<String>,
    /// Whole-string matches: secret → marker.
    whole: std::collections::HashMap<String, String>,
}

impl Redactor {
    fn new(secrets: &BTreeSet<String>) -> Self {
        let (mut anywhere, mut anywhere_markers, mut anywhere_hashes) = (Vec::new(), Vec::new(), Vec::new());
        let (mut token, mut token_markers, mut token_hashes) = (Vec::new(), Vec::new(), Vec::new());
        let mut whole = std::collections::HashMap::new();
        for s in secrets {
            let hash = short_hash(s);
            let marker = format!("<redacted:{hash}>");
            whole.insert(s.clone(), marker.clone());
            match reach(s) {
                // Quoted, redacted but never scanned for: `":"` would match every report.
                Reach::Whole => {
                    anywhere.push(format!("\"{s}\""));
                    anywhere_markers.push(format!("\"{marker}\""));
                    anywhere_hashes.push(None);
                }
                Reach::Token => {
                    for form in forms(s) {
                        token.push(form);
                        token_markers.push(marker.clone());
                        token_hashes.push(hash.clone());
                    }
                }
                Reach::Anywhere => {
                    for form in forms(s) {
                        anywhere.push(form);
                        anywhere_markers.push(marker.clone());
                        anywhere_hashes.push(Some(hash.clone()));
                    }
                }
            }
        }
        let build = |p: &[String], kind| {
            (!p.is_empty())
                // A noncontiguous NFA builds in linear time; the DFA and contiguous NFA the
                // builder picks by default took seconds on a few long repetitive secrets
                // (`vvvv…` cookies of a hostile target), once per new secret.
                .then(|| {
                    aho_corasick::AhoCorasick::builder()
                        .match_kind(kind)
                        .kind(Some(aho_corasick::AhoCorasickKind::NoncontiguousNFA))
                        .build(p)
                        .ok()
                })
                .flatten()
        };
        Self {
            anywhere: build(&anywhere, aho_corasick::MatchKind::LeftmostLongest),
            anywhere_markers,
            anywhere_hashes,
            token: build(&token, aho_corasick::MatchKind::Standard),
            token_markers,
            token_hashes,
            whole,
        }
    }

    /// The low-entropy matches in `text` that stand as whole tokens, left to right, the
    /// longest at each place, not overlapping: (start, end, pattern).
    fn token_matches(&self, text: &str) -> Vec<(usize, usize, usize)> {
        let Some(ac) = &self.token else { return Vec::new() };
        let mut found: Vec<(usize, usize, usize)> = ac
            .find_overlapping_iter(text)
            .filter(|m| stands_alone(text, m.start(), m.end()))
            .map(|m| (m.start(), m.end(), m.pattern().as_usize()))
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let mut kept = Vec::with_capacity(found.len());
        let mut until = 0;
        for m in found {
            if m.0 >= until {
                until = m.1;
                kept.push(m);
            }
        }
        kept
    }

    fn redact(&self, text: &str) -> String {
        if let Some(marker) = self.whole.get(text) {
            return marker.clone();
        }
        let mut text = match &self.anywhere {
            Some(ac) => ac.replace_all(text, &self.anywhere_markers),
            None => text.to_string(),
        };
        // A replacement changes its neighbours' context (a marker ends in `>`), so a match that
        // did not stand alone may stand alone now: replace until none is left, as the scan sees.
        for _ in 0..8 {
            let matches = self.token_matches(&text);
            if matches.is_empty() {
                break;
            }
            let mut out = String::with_capacity(text.len());
            let mut at = 0;
            for (start, end, pattern) in matches {
                out += &text[at..start];
                out += &self.token_markers[pattern];
                at = end;
            }
            out += &text[at..];
            text = out;
        }
        text
    }

    fn leaks(&self, text: &str) -> Vec<String> {
        let mut found: Vec<String> = match &self.anywhere {
            Some(ac) => ac
                .find_iter(text)
                .filter_map(|m| self.anywhere_hashes[m.pattern().as_usize()].clone())
                .collect(),
            None => Vec::new(),
        };
        found.extend(self.token_matches(text).into_iter().map(|(_, _, p)| self.token_hashes[p].clone()));
        found.sort();
        found.dedup();
        found
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} redacted)", self.len())
    }
}

/// A member name as the name rules compare it: lower case, `-` as `_`.
fn member_key(key: &str) -> String {
    key.to_ascii_lowercase().replace('-', "_")
}

/// Member names that describe a secret or the service rather than hold one:
/// `claim_token_expires`, `token_type`, `*_uri`, `*_supported`.
fn describes_a_secret(key: &str) -> bool {
    let k = member_key(key);
    let about = [
        "_id",
        "_ids",
        "_expires",
        "_at",
        "_in",
        "_type",
        "_types",
        "_uri",
        "_url",
        "_endpoint",
        "_supported",
        "_methods",
    ];
    about.iter().any(|s| k.ends_with(s))
        || matches!(
            k.as_str(),
            "type"
                | "scope"
                | "scopes"
                | "kind"
                | "format"
                | "alg"
                | "expires"
                | "status"
                | "error"
                | "error_description"
                | "id"
                | "sub"
                | "iss"
                | "aud"
        )
}

/// Member names whose string values are secrets wherever they appear.
fn names_a_secret(key: &str) -> bool {
    let k = member_key(key);
    if describes_a_secret(&k) {
        return false;
    }
    [
        "token",
        "secret",
        "password",
        "passwd",
        "credential",
        "api_key",
        "apikey",
        "otp",
        "challenge",
        "cookie",
        "session",
        "private",
        // A v0.6 `identity_assertion` mints access tokens: a bearer secret.
        "assertion",
    ]
    .iter()
    .any(|n| k.contains(n))
}

/// What a JSON position holds, as far as the member names tell.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Holds {
    Nothing,
    Secret,
    /// Inside a secret-named object, under a member that only describes it.
    Inside,
}

/// Header names whose values carry credentials.
fn header_carries_secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    if n == "www-authenticate" || n == "proxy-authenticate" {
        return false;
    }
    n == "authorization"
        || n == "proxy-authorization"
        || n == "set-cookie"
        || n == "cookie"
        || ["token", "secret", "api-key", "apikey", "session", "credential", "auth"]
            .iter()
            .any(|s| n.contains(s))
}

impl Secrets {
    /// Registers a secret (ignored when empty or only white space).
    pub fn add(&self, secret: &str) {
        if !secret.trim().is_empty()
            && let Ok(mut known) = self.0.lock()
            && known.set.insert(secret.to_string())
        {
            known.compiled = None;
        }
    }

    fn compiled(&self) -> Arc<Redactor> {
        match self.0.lock() {
            Ok(mut known) => {
                if known.compiled.is_none() {
                    known.compiled = Some(Arc::new(Redactor::new(&known.set)));
                }
                known.compiled.clone().unwrap_or_else(|| Arc::new(Redactor::new(&BTreeSet::new())))
            }
            // A poisoned lock still holds every secret registered before the panic.
            Err(poisoned) => Arc::new(Redactor::new(&poisoned.into_inner().set)),
        }
    }

    /// Adds member names whose values are secrets in the profile under test (its manifest's
    /// `secret_members`), beyond those the names themselves announce.
    pub fn declare_names(&self, names: &[String]) {
        if let Ok(mut known) = self.0.lock() {
            for n in names {
                let n = member_key(n);
                if !known.names.contains(&n) {
                    known.names.push(n);
                }
            }
        }
    }

    /// The declared secret member names, read once per harvest rather than once per member.
    fn declared_names(&self) -> Vec<String> {
        self.0.lock().map(|known| known.names.clone()).unwrap_or_default()
    }

    /// Registers the values of secret-named query or form parameters of a URL or form body
    /// (`?claim_attempt_token=…`, `user_code=…`).
    pub fn harvest_params(&self, text: &str) {
        let mut found = Found::new(HARVEST_PER_ANSWER);
        params(text, &self.declared_names(), &mut found);
        self.register(found);
    }

    /// Registers every secret-looking value in a JSON answer: strings under members that name
    /// a secret, at any depth, and every string inside such a member's object or array (a
    /// `credential: {"value": …}`), except members that only describe it (`type`, `scope`, …).
    /// At most [`HARVEST_PER_ANSWER`] new ones, within the run's [`HARVEST_RUN_BYTES`].
    pub fn harvest_json(&self, value: &Value) {
        let mut found = Found::new(HARVEST_PER_ANSWER);
        harvest(value, Holds::Nothing, &self.declared_names(), &mut found);
        self.register(found);
    }

    /// Before the harness sends a request: a value in a credential-bearing header or under a
    /// secret-named member or parameter that harvesting left out of an earlier answer (over a
    /// budget) is registered now. Whatever the budgets left out, a value the harness sends back
    /// is a secret; what a case wrote itself (an address, a wrong code) is not.
    pub fn harvest_request(&self, headers: &[(String, String)], body: Option<&str>) {
        // Nothing was left out (every normal run): nothing to look for in the request.
        if self.0.lock().map(|k| k.skipped_hashes.is_empty()).unwrap_or(true) {
            return;
        }
        let declared = self.declared_names();
        let mut found = Found::new(usize::MAX);
        header_secrets(headers, &declared, &mut found);
        if let Some(body) = body {
            match serde_json::from_str::<Value>(body) {
                Ok(value) => harvest(&value, Holds::Nothing, &declared, &mut found),
                Err(_) => params(body, &declared, &mut found),
            }
        }
        let Ok(mut known) = self.0.lock() else { return };
        let mut changed = false;
        for value in found.values {
            if known.skipped_hashes.contains(&value_hash(&value)) && known.set.insert(value) {
                changed = true;
            }
        }
        if changed {
            known.compiled = None;
        }
    }

    /// Adds what a harvest found, under one lock, within the run's byte budget; what is left
    /// out is counted and its hash remembered.
    fn register(&self, found: Found) {
        let Ok(mut known) = self.0.lock() else { return };
        for hash in found.over {
            known.leave_out(hash);
        }
        let mut changed = false;
        for value in found.values {
            if value.trim().is_empty() || known.set.contains(&value) {
                continue;
            }
            if value.len() > MAX_HARVESTED_LEN || known.harvested_bytes + value.len() > HARVEST_RUN_BYTES {
                known.leave_out(value_hash(&value));
                continue;
            }
            known.harvested_bytes += value.len();
            known.set.insert(value);
            changed = true;
        }
        if changed {
            known.compiled = None;
        }
    }

    /// Secret-looking values harvesting left out (over [`HARVEST_PER_ANSWER`],
    /// [`HARVEST_RUN_BYTES`] or [`MAX_HARVESTED_LEN`]); any the harness later sent back was
    /// registered when it sent it.
    pub fn skipped(&self) -> usize {
        self.0.lock().map(|k| k.skipped).unwrap_or(0)
    }
}

/// The values one harvest found, up to its budget of distinct values.
struct Found {
    values: Vec<String>,
    seen: std::collections::HashSet<String>,
    left: usize,
    /// Hashes of the values past the budget.
    over: Vec<u64>,
}

impl Found {
    fn new(budget: usize) -> Self {
        Self {
            values: Vec::new(),
            seen: std::collections::HashSet::new(),
            left: budget,
            over: Vec::new(),
        }
    }

    fn offer(&mut self, value: &str) {
        if value.trim().is_empty() || self.seen.contains(value) {
            return;
        }
        if self.left == 0 {
            self.over.push(value_hash(value));
            return;
        }
        self.left -= 1;
        self.seen.insert(value.to_string());
        self.values.push(value.to_string());
    }
}

fn params(text: &str, declared: &[String], found: &mut Found) {
    let query = match text.split_once('?') {
        Some((_, q)) => q,
        None if text.contains('=') && !text.contains(char::is_whitespace) => text,
        None => return,
    };
    let query = query.split('#').next().unwrap_or_default();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if names_a_secret(&k) || declared.contains(&member_key(&k)) {
            found.offer(&v);
        }
    }
}

fn harvest(value: &Value, secret: Holds, declared: &[String], found: &mut Found) {
    match value {
        Value::String(s) if secret == Holds::Secret => found.offer(s),
        Value::Number(n) if secret == Holds::Secret => found.offer(&n.to_string()),
        // A link that carries a secret as a parameter (a `verification_uri` with its
        // `claim_attempt_token`).
        Value::String(s) if s.contains('?') && s.contains('=') => params(s, declared, found),
        Value::Array(items) => items.iter().for_each(|v| harvest(v, secret, declared, found)),
        Value::Object(map) => {
            for (k, v) in map {
                // Inside a secret's object (`credential: {"value": …, "registration_id": …}`)
                // only the members that carry it count; the rest describe it.
                let carries = matches!(k.to_ascii_lowercase().as_str(), "value" | "key" | "raw" | "bearer" | "secret");
                let named = declared.contains(&member_key(k));
                let holds = if describes_a_secret(k) && !named {
                    Holds::Nothing
                } else if names_a_secret(k) || named || (secret != Holds::Nothing && carries) {
                    Holds::Secret
                } else if secret != Holds::Nothing {
                    Holds::Inside
                } else {
                    Holds::Nothing
                };
                harvest(v, holds, declared, found);
            }
        }
        _ => {}
    }
}

/// Credential-bearing header values: the whole value, a `Bearer`/`Basic` parameter, each
/// cookie value of `Set-Cookie`/`Cookie`, and the secret parameters of a `Location`.
fn header_secrets(headers: &[(String, String)], declared: &[String], found: &mut Found) {
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("location") {
            params(value, declared, found);
        }
        if !header_carries_secret(name) {
            continue;
        }
        found.offer(value);
        let cookie = name.eq_ignore_ascii_case("set-cookie") || name.eq_ignore_ascii_case("cookie");
        if !cookie {
            // `Bearer xyz`, `Basic xyz`: the credential without its scheme.
            if let Some((_, param)) = value.split_once(' ') {
                found.offer(param.trim());
            }
            continue;
        }
        // Set-Cookie carries one cookie and then its attributes; Cookie carries many.
        let pairs = if name.eq_ignore_ascii_case("set-cookie") { 1 } else { usize::MAX };
        for pair in value.split(';').take(pairs) {
            if let Some((_, v)) = pair.split_once('=') {
                found.offer(v.trim().trim_matches('"'));
            }
        }
    }
}

impl Secrets {
    /// Registers an answer's credential-bearing header values: the whole value, a
    /// `Bearer`/`Basic` parameter, each cookie value of `Set-Cookie`/`Cookie`, the secret
    /// parameters of a `Location`; at most [`HARVEST_PER_ANSWER`] new ones.
    pub fn harvest_headers(&self, headers: &[(String, String)]) {
        let mut found = Found::new(HARVEST_PER_ANSWER);
        header_secrets(headers, &self.declared_names(), &mut found);
        self.register(found);
    }

    /// How many secrets are known.
    pub fn len(&self) -> usize {
        self.0.lock().map(|s| s.set.len()).unwrap_or(0)
    }

    /// True when none are known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every known secret (for the leak-scan test).
    pub fn all(&self) -> Vec<String> {
        self.0.lock().map(|s| s.set.iter().cloned().collect()).unwrap_or_default()
    }

    /// Replaces every known secret in `text` by `<redacted:hash8>` (the longest match wins, so
    /// a secret that contains another is replaced whole). Short secrets are replaced only when
    /// they are the whole text or stand quoted.
    pub fn redact(&self, text: &str) -> String {
        self.compiled().redact(text)
    }

    /// Redacts every string (and member name) in a JSON tree, before it is serialised, so the
    /// serialiser's escaping cannot hide a secret from the redactor.
    pub fn redact_value(&self, value: &mut Value) {
        walk(&self.compiled(), value);
    }

    /// Every known secret (or an escaped form of one) that still appears in `text`, by hash.
    /// Writers call this on their final output and refuse to write when it is not empty.
    /// Short secrets are redacted where they stand whole but not scanned for: a target that
    /// hands out `":"` as a credential would otherwise match every report's own syntax and
    /// suppress it.
    pub fn leaks(&self, text: &str) -> Vec<String> {
        self.compiled().leaks(text)
    }
}

fn walk(redactor: &Redactor, value: &mut Value) {
    match value {
        Value::String(s) if s.contains(|c: char| !c.is_ascii_whitespace()) => *s = redactor.redact(s),
        // An OTP a target sends as a JSON number is the same secret.
        Value::Number(n) => {
            if let Some(marker) = redactor.whole.get(&n.to_string()) {
                *value = Value::String(marker.clone());
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| walk(redactor, v)),
        Value::Object(map) => {
            let taken = std::mem::take(map);
            for (k, mut v) in taken {
                walk(redactor, &mut v);
                map.insert(redactor.redact(&k), v);
            }
        }
        _ => {}
    }
}

/// The ways a secret can be written in an output: raw, JSON-escaped, XML/HTML-escaped,
/// Markdown-table-escaped and percent-encoded.
fn forms(secret: &str) -> Vec<String> {
    let mut forms = vec![secret.to_string()];
    let json = serde_json::to_string(secret).unwrap_or_default();
    forms.push(json[1..json.len().saturating_sub(1).max(1)].to_string());
    forms.push(
        secret
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&apos;"),
    );
    forms.push(
        secret
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;"),
    );
    forms.push(secret.replace('|', "\\|"));
    forms.push(url::form_urlencoded::byte_serialize(secret.as_bytes()).collect());
    forms.push(json[1..json.len().saturating_sub(1).max(1)].replace("</", "<\\/"));
    // As embedded in the HTML report's script data.
    forms.push(crate::report::script_safe(&json[1..json.len().saturating_sub(1).max(1)]));
    forms.sort();
    forms.dedup();
    forms.retain(|f| !f.is_empty());
    forms
}

/// First 8 hex digits of SHA-256: lets a reader see that two redacted values are the same.
pub fn short_hash(secret: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes());
    digest.as_ref()[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// Target text made inert for a terminal, Markdown or XML: control characters (ESC and every
/// other C0/C1 control, DEL) and bidirectional overrides become visible `\u{..}` escapes, so a
/// target cannot retitle the terminal, clear the screen or forge a line. Newlines and tabs
/// survive only when `multiline`.
pub fn inert(text: &str, multiline: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let bidi = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}');
        match c {
            '\n' | '\t' if multiline => out.push(c),
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() || bidi => out += &format!("\\u{{{:x}}}", c as u32),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redacts_longest_first_and_keeps_the_rest() {
        let s = Secrets::default();
        s.add("abcd");
        s.add("abcdef");
        let out = s.redact("x abcdef y abcd z");
        assert!(!out.contains("abcd"));
        assert!(out.starts_with("x <redacted:"));
        assert!(out.ends_with(" z"));
    }

    #[test]
    fn harvests_nested_members_and_skips_descriptions() {
        let s = Secrets::default();
        s.harvest_json(&json!({
            "credential": {"type": "api_key", "value": "sk_live_nested"},
            "api_key": "ak_top",
            "data": [{"session_token": "st_deep"}],
            "claim_token_expires": "2026-01-01T00:00:00Z",
            "registration_id": "reg_1",
            "session": {"method": "email-verification", "issued_via": "anonymous", "bearer": "Xy7pQ2rT9sLm"},
            "credential_info": {"registration_id": "reg_0123456789abcdef", "sub": "sub-0123456789ABC"},
        }));
        let all = s.all();
        for secret in ["sk_live_nested", "ak_top", "st_deep", "Xy7pQ2rT9sLm"] {
            assert!(all.contains(&secret.to_string()), "{secret} not harvested: {all:?}");
        }
        for not in [
            "api_key",
            "2026-01-01T00:00:00Z",
            "reg_1",
            "email-verification",
            "anonymous",
            "reg_0123456789abcdef",
            "sub-0123456789ABC",
        ] {
            assert!(!all.contains(&not.to_string()), "{not} harvested");
        }
    }

    #[test]
    fn metadata_vocabulary_is_not_a_secret() {
        let s = Secrets::default();
        s.harvest_json(&json!({
            "agent_auth": {
                "identity_types_supported": ["anonymous", "identity_assertion"],
                "identity_assertion": {"assertion_types_supported": ["verified_email"]},
                "credential_types_supported": ["api_key", "access_token"],
                "register_uri": "http://x/agent/register"
            },
            "error": "invalid_token",
            "token_endpoint_auth_methods_supported": ["none"]
        }));
        assert!(s.is_empty(), "{:?}", s.all());
    }

    #[test]
    fn harvests_credential_headers_and_cookies() {
        let s = Secrets::default();
        s.harvest_headers(&[
            ("Set-Cookie".into(), "sid=cookie-secret-1; Path=/; HttpOnly".into()),
            ("X-Api-Key".into(), "hdr-secret-2".into()),
            ("WWW-Authenticate".into(), "Bearer realm=\"x\"".into()),
            ("Content-Type".into(), "application/json".into()),
        ]);
        let all = s.all();
        assert!(all.contains(&"cookie-secret-1".to_string()));
        assert!(all.contains(&"hdr-secret-2".to_string()));
        assert!(!all.iter().any(|a| a.contains("realm")));
    }

    #[test]
    fn escaped_forms_are_redacted_and_scanned() {
        let s = Secrets::default();
        s.add(r#"back\slash"quote&amp|pipe"#);
        let mut v = json!({ "body": r#"{"credential":"back\slash"quote&amp|pipe"}"# });
        s.redact_value(&mut v);
        let text = serde_json::to_string(&v).unwrap();
        assert!(s.leaks(&text).is_empty(), "{text}");
        // The JSON-escaped form in an unredacted serialisation is found by the scan.
        let raw = serde_json::to_string(&json!({ "x": r#"back\slash"quote&amp|pipe"# })).unwrap();
        assert_eq!(s.leaks(&raw).len(), 1);
        assert!(!s.redact(&raw).contains("slash"));
    }

    #[test]
    fn short_secrets_only_where_they_stand_whole() {
        let s = Secrets::default();
        s.add("ab");
        assert_eq!(s.redact("ab").len(), "<redacted:12345678>".len());
        assert_eq!(s.redact("label about"), "label about");
        assert!(!s.redact(r#"{"credential":"ab"}"#).contains("\"ab\""));
    }

    #[test]
    fn low_entropy_secrets_count_only_as_whole_tokens() {
        let s = Secrets::default();
        s.add("123456");
        // Inside unrelated digits (a timestamp, an id) it is neither redacted nor a leak.
        let timestamps = r#"{"iat":1733123456,"id":"reg_0123456789","t":"2026-12-04T12:34:56Z"}"#;
        assert_eq!(s.redact(timestamps), timestamps);
        assert!(s.leaks(timestamps).is_empty(), "{timestamps}");
        // Where it stands whole (a string, a URL or form parameter, a sentence) it is both.
        for text in [r#"{"otp":"123456"}"#, "/claim?otp=123456&x=1", "your code is 123456.", "123456"] {
            assert_eq!(s.leaks(text).len(), 1, "{text}");
            let redacted = s.redact(text);
            assert!(!redacted.contains("123456") && s.leaks(&redacted).is_empty(), "{redacted}");
        }
        // A JSON number equal to it is redacted in a report value.
        let mut v = json!({ "otp": 123456, "iat": 1733123456 });
        s.redact_value(&mut v);
        assert_eq!(v["iat"], json!(1733123456));
        assert!(v["otp"].as_str().is_some_and(|m| m.starts_with("<redacted:")), "{v}");
    }

    #[test]
    fn declared_members_and_secret_parameters_are_harvested() {
        let s = Secrets::default();
        s.declare_names(&["user_code".to_string()]);
        s.harvest_json(&json!({
            "claim": { "user_code": "482913", "verification_uri": "http://x/login?claim_attempt_token=cat_secret_0123456789&next=/" },
            "interval": 5
        }));
        let all = s.all();
        assert!(all.contains(&"482913".to_string()), "{all:?}");
        assert!(all.contains(&"cat_secret_0123456789".to_string()), "{all:?}");
        assert!(!all.iter().any(|a| a == "/"), "{all:?}");
    }

    #[test]
    fn numbers_under_secret_names_are_harvested() {
        let s = Secrets::default();
        s.harvest_json(&json!({ "otp": 654321, "expires_in": 900 }));
        assert_eq!(s.all(), vec!["654321".to_string()]);
    }

    #[test]
    fn a_flood_of_distinct_values_registers_a_bounded_number() {
        let s = Secrets::default();
        let flood: serde_json::Map<String, Value> = (0..1000)
            .map(|i| (format!("token_{i}"), json!(format!("flooded-value-{i:06}"))))
            .collect();
        s.harvest_json(&Value::Object(flood));
        assert_eq!(s.len(), HARVEST_PER_ANSWER);
        assert_eq!(s.skipped(), 1000 - HARVEST_PER_ANSWER);
        // Answer after answer, the run's byte budget holds.
        for answer in 0..200 {
            let big: serde_json::Map<String, Value> = (0..HARVEST_PER_ANSWER)
                .map(|i| (format!("secret_{i}"), json!(format!("{answer:04}-{i:04}-{}", "x".repeat(200)))))
                .collect();
            s.harvest_json(&Value::Object(big));
        }
        let bytes: usize = s.all().iter().map(String::len).sum();
        assert!(bytes <= HARVEST_RUN_BYTES + 64 * 100, "{bytes} bytes of secrets");
        // A value too long to harvest, or past the budget, is still a secret once sent back.
        let late = format!("sent-back-credential-{}", "y".repeat(MAX_HARVESTED_LEN));
        s.harvest_json(&json!({ "credential": late }));
        assert!(!s.all().contains(&late));
        s.harvest_request(
            &[("authorization".into(), format!("Bearer {late}"))],
            Some(r#"{"claim_token":"ct-sent-back-1234"}"#),
        );
        assert!(s.all().contains(&late));
        // What the harness wrote itself, never seen in an answer, is no secret.
        assert!(!s.all().contains(&"ct-sent-back-1234".to_string()));
        // A flooded value past the per-answer budget, sent back, is.
        s.harvest_request(&[], Some(r#"{"token": "flooded-value-000999"}"#));
        assert!(s.all().contains(&"flooded-value-000999".to_string()));
        assert_eq!(s.redact(&format!("x {late} y")).matches("<redacted:").count(), 1);
    }

    #[test]
    fn inert_escapes_terminal_controls() {
        let evil = "ok\u{1b}]0;pwned\u{7}\u{1b}[2J\u{202e}\r\nPASS";
        let out = inert(evil, false);
        assert!(!out.chars().any(|c| c.is_control()));
        assert!(out.contains("\\u{1b}"));
        assert!(!out.contains('\n'));
        assert!(inert("a\nb", true).contains('\n'));
    }
}
