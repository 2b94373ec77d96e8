//! Expectations: what a step's answer must show. Each family is a pure function of the
//! expectation and what was observed, so it is unit-tested against canned exchanges; the
//! interpreter only gathers the observation and records the findings.

mod body;
mod headers;
mod samples;
mod status;

use std::collections::BTreeSet;

use serde_json::{Map, Value};

pub use headers::parse_challenge;

use crate::language::Expect;
use crate::outcome::{Exchange, Finding, FindingKind};

/// Everything a step's expectations are judged on.
pub struct Observed<'a> {
    /// The step's exchange, if it made one.
    pub exchange: Option<&'a Exchange>,
    /// The step's values: the answer's JSON members plus harness-side ones.
    pub vars: &'a Map<String, Value>,
    /// Earlier named steps' values (for `same_shape_as`).
    pub earlier: &'a Map<String, Value>,
    /// The target's clock now (moved by the case's `advance`).
    pub now: time::OffsetDateTime,
    /// Paths the target fetched from the mock IdP so far.
    pub idp_paths: &'a BTreeSet<String>,
    /// JWKS fetches the target made during the step.
    pub jwks_fetched: usize,
    /// Error names that mean the same (the profile's §B.6 table).
    pub synonyms: &'a [Vec<String>],
    /// Redacts the run's secrets from a text before it is cut for a finding.
    pub redact: &'a dyn Fn(&str) -> String,
}

/// Findings of one step, under its label.
pub(crate) struct Findings<'a> {
    step: &'a str,
    out: Vec<Finding>,
}

impl Findings<'_> {
    pub(crate) fn add(&mut self, kind: FindingKind, expected: impl Into<String>, found: impl Into<String>) {
        self.out.push(Finding::new(self.step, kind, expected, found));
    }
}

/// Judges `expect` against what `seen` holds. `resolve` replaces `{{references}}` in the
/// expected values (an unresolvable one becomes a visible placeholder, so it cannot match).
pub fn check(step: &str, expect: &Expect, seen: &Observed, resolve: &dyn Fn(&Value) -> Value) -> Vec<Finding> {
    let mut findings = Findings { step, out: Vec::new() };
    status::check(expect, seen, &mut findings);
    body::check(expect, seen, resolve, &mut findings);
    headers::check(expect, seen, resolve, &mut findings);
    samples::check(expect, seen, resolve, &mut findings);
    findings.out
}

#[cfg(test)]
pub(crate) mod canned {
    //! Canned exchanges for the families' unit tests.

    use super::*;

    pub(crate) fn exchange(status: u16, headers: &[(&str, &str)], body: &str) -> Exchange {
        Exchange {
            step: "s".into(),
            method: "GET".into(),
            url: "http://127.0.0.1:1/x".into(),
            status: Some(status),
            response_headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            response_body: body.into(),
            ..Exchange::default()
        }
    }

    /// Judges `expect` (TOML inline-table text) against an exchange whose JSON body is also
    /// the step's values, as the interpreter makes them.
    pub(crate) fn judge(expect: &str, exchange: &Exchange, extra: Map<String, Value>) -> Vec<Finding> {
        judge_redacting(expect, exchange, extra, &|s| s.to_string())
    }

    /// [`judge`] with the run's redaction.
    pub(crate) fn judge_redacting(
        expect: &str,
        exchange: &Exchange,
        extra: Map<String, Value>,
        redact: &dyn Fn(&str) -> String,
    ) -> Vec<Finding> {
        let expect: Expect = toml::from_str(expect).expect("expectation");
        let mut vars = match exchange.json() {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        vars.insert("http_status".into(), serde_json::json!(exchange.status));
        vars.extend(extra);
        let earlier = Map::new();
        let paths = BTreeSet::new();
        let seen = Observed {
            exchange: Some(exchange),
            vars: &vars,
            earlier: &earlier,
            now: time::OffsetDateTime::now_utc(),
            idp_paths: &paths,
            jwks_fetched: 0,
            synonyms: &[],
            redact,
        };
        check("s", &expect, &seen, &|v| v.clone())
    }

    pub(crate) fn kinds(findings: &[Finding]) -> Vec<FindingKind> {
        findings.iter().map(|f| f.kind).collect()
    }
}
