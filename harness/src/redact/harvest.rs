//! Harvesting: which member names, parameters and headers carry a secret, and the values one
//! answer gives up to its budget.

use serde_json::Value;

use super::*;

/// A member name as the name rules compare it: lower case, `-` as `_`.
pub(super) fn member_key(key: &str) -> String {
    key.to_ascii_lowercase().replace('-', "_")
}

/// Member names that describe a secret or the service rather than hold one:
/// `claim_token_expires`, `token_type`, `*_uri`, `*_supported`.
pub(super) fn describes_a_secret(key: &str) -> bool {
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
pub(super) fn names_a_secret(key: &str) -> bool {
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
pub(super) enum Holds {
    Nothing,
    Secret,
    /// Inside a secret-named object, under a member that only describes it.
    Inside,
}

/// Header names whose values carry credentials.
pub(super) fn header_carries_secret(name: &str) -> bool {
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

pub(super) struct Found {
    pub(super) values: Vec<String>,
    pub(super) seen: std::collections::HashSet<String>,
    pub(super) left: usize,
    /// Hashes of the values past the budget.
    pub(super) over: Vec<u64>,
}

impl Found {
    pub(super) fn new(budget: usize) -> Self {
        Self {
            values: Vec::new(),
            seen: std::collections::HashSet::new(),
            left: budget,
            over: Vec::new(),
        }
    }

    pub(super) fn offer(&mut self, value: &str) {
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

pub(super) fn params(text: &str, declared: &[String], found: &mut Found) {
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

pub(super) fn harvest(value: &Value, secret: Holds, declared: &[String], found: &mut Found) {
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
pub(super) fn header_secrets(headers: &[(String, String)], declared: &[String], found: &mut Found) {
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
