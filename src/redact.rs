//! Secrets never leak: every credential, claim token, claim attempt token and OTP the harness
//! sees is registered here, and every output passes through [`Secrets::redact`].

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// The secrets seen during a run. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Secrets(Arc<Mutex<BTreeSet<String>>>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} redacted)", self.len())
    }
}

impl Secrets {
    /// Registers a secret (ignored when empty).
    pub fn add(&self, secret: &str) {
        if !secret.is_empty()
            && let Ok(mut set) = self.0.lock()
        {
            set.insert(secret.to_string());
        }
    }

    /// How many secrets are known.
    pub fn len(&self) -> usize {
        self.0.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// True when none are known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every known secret (for the leak-scan test).
    pub fn all(&self) -> Vec<String> {
        self.0.lock().map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }

    /// Replaces every known secret in `text` by `<redacted:hash8>`, longest first so a secret
    /// that contains another is replaced whole.
    pub fn redact(&self, text: &str) -> String {
        let mut secrets = self.all();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let mut out = text.to_string();
        for s in secrets {
            if out.contains(&s) {
                out = out.replace(&s, &format!("<redacted:{}>", short_hash(&s)));
            }
        }
        out
    }
}

/// First 8 hex digits of SHA-256: lets a reader see that two redacted values are the same.
pub fn short_hash(secret: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes());
    digest.as_ref()[..4].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_longest_first_and_keeps_the_rest() {
        let s = Secrets::default();
        s.add("abc");
        s.add("abcdef");
        let out = s.redact("x abcdef y abc z");
        assert!(!out.contains("abc"));
        assert!(out.starts_with("x <redacted:"));
        assert!(out.ends_with(" z"));
    }
}
