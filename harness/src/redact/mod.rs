//! Secrets never leak. Every credential, claim token, claim-attempt token, OTP, cookie and
//! token the harness sees or mints is registered here *by value*, wherever it appeared (any
//! JSON depth, any member name that carries a secret, credential-bearing headers). Outputs are
//! redacted before they are escaped for their format, and [`Secrets::leaks`] scans the final
//! text for every escaped form of every secret, so a writer can fail closed.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use serde_json::Value;

mod harvest;
mod matcher;
#[cfg(test)]
mod tests;

use harvest::{Found, Holds, harvest, header_secrets, member_key, params};
use matcher::{Redactor, walk};

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

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} redacted)", self.len())
    }
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
