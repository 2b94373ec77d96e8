//! Finding secrets in text: which may match inside a word and which only whole, every escaped
//! form of each, and one pass that redacts or reports them.

use std::collections::BTreeSet;

use serde_json::Value;

use super::*;

/// How a secret is matched in text.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Reach {
    /// Only the whole text, or its quoted form (fewer than [`MIN_SUBSTRING_LEN`] characters).
    Whole,
    /// Where it stands as a whole token (low-entropy: OTPs, user codes).
    Token,
    /// Anywhere.
    Anywhere,
}

pub(super) fn reach(secret: &str) -> Reach {
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
pub(super) fn word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Is `text[start..end]` a whole token? Only an edge that is itself a word character can run
/// into a neighbouring word character and so be part of something larger.
pub(super) fn stands_alone(text: &str, start: usize, end: usize) -> bool {
    let bytes = text.as_bytes();
    let open = start == 0 || !word_byte(bytes[start]) || !word_byte(bytes[start - 1]);
    let close = end == bytes.len() || !word_byte(bytes[end - 1]) || !word_byte(bytes[end]);
    open && close
}

/// Every known secret compiled into automatons over all its written forms, so redacting or
/// scanning a large output is one pass per reach, whatever the number of secrets.
pub(super) struct Redactor {
    /// Forms matched anywhere (and quoted short secrets), longest match first.
    pub(super) anywhere: Option<aho_corasick::AhoCorasick>,
    pub(super) anywhere_markers: Vec<String>,
    pub(super) anywhere_hashes: Vec<Option<String>>,
    /// Forms of low-entropy secrets, matched where they stand as a whole token.
    pub(super) token: Option<aho_corasick::AhoCorasick>,
    pub(super) token_markers: Vec<String>,
    pub(super) token_hashes: Vec<String>,
    /// Whole-string matches: secret → marker.
    pub(super) whole: std::collections::HashMap<String, String>,
}

impl Redactor {
    pub(super) fn new(secrets: &BTreeSet<String>) -> Self {
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
    pub(super) fn token_matches(&self, text: &str) -> Vec<(usize, usize, usize)> {
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

    pub(super) fn redact(&self, text: &str) -> String {
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

    pub(super) fn leaks(&self, text: &str) -> Vec<String> {
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

pub(super) fn walk(redactor: &Redactor, value: &mut Value) {
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
pub(super) fn forms(secret: &str) -> Vec<String> {
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
