//! The run's vocabulary: exchanges, findings, verdicts and case results. Report, baseline,
//! compare and the CLI speak it; the interpreter ([`crate::engine`]) produces it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::catalogue::Level;

/// One HTTP request and the target's answer (or none).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Exchange {
    /// Which step sent it.
    pub step: String,
    /// Method.
    pub method: String,
    /// URL.
    pub url: String,
    /// Request headers.
    pub request_headers: Vec<(String, String)>,
    /// Request body.
    pub request_body: Option<String>,
    /// Status, if an answer came.
    pub status: Option<u16>,
    /// Response headers.
    pub response_headers: Vec<(String, String)>,
    /// Response body.
    pub response_body: String,
    /// Bytes of response body received (at most the target config's `max_body_bytes` are kept).
    #[serde(default)]
    pub body_bytes: u64,
    /// The body was longer than the limit (or the report's cap) and is cut.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// Why no (complete) answer came: a transport error, or a URL the host policy refused to
    /// fetch. With an error the status is absent and the case cannot be decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The host policy refused the URL: nothing was sent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub blocked: bool,
    /// Round trip in milliseconds.
    pub elapsed_ms: u64,
    /// Decoded JWTs sent in this request (header and claims, unverified).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<Value>,
    /// A curl line that sends the same request again (secrets redacted in reports).
    pub reproduce: String,
    /// The cookies the answer set, `name=value` exactly as received (what a browser sends
    /// back), however much of the `Set-Cookie` headers `response_headers` keeps. Never in a
    /// report: the redacted headers are the evidence.
    #[serde(skip)]
    pub cookies: Vec<String>,
}

impl Exchange {
    /// `404 {"error":…}`: the status and the start of the body, for a finding's "found".
    pub fn status_and_body(&self) -> String {
        self.status_and_redacted_body(&|s| s.to_string())
    }

    /// [`Exchange::status_and_body`] with the whole body passed through `redact` before it is
    /// cut, so a secret the cut would split never survives as a prefix.
    pub fn status_and_redacted_body(&self, redact: &dyn Fn(&str) -> String) -> String {
        match self.status {
            Some(status) => format!("{status} {}", truncate(&redact(&self.response_body))),
            None => match &self.error {
                Some(e) => format!("no response ({e})"),
                None => "no response".into(),
            },
        }
    }

    /// The first response header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.response_headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The response body as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.response_body).ok()
    }

    /// Cuts the stored bodies and headers to what a report keeps ([`REPORT_BODY_BYTES`]), so a
    /// report's size is bounded whatever the target sent. `body_bytes` keeps the real size.
    pub fn cap_for_report(&mut self) {
        if self.response_body.len() > REPORT_BODY_BYTES {
            self.response_body = crate::transport::cap(&self.response_body, REPORT_BODY_BYTES);
            self.truncated = true;
        }
        if let Some(body) = &mut self.request_body {
            *body = crate::transport::cap(body, REPORT_BODY_BYTES);
        }
        self.reproduce = crate::transport::cap(&self.reproduce, REPORT_BODY_BYTES);
        for (_, v) in &mut self.response_headers {
            *v = crate::transport::cap(v, 1024);
        }
        if let Some(e) = &mut self.error {
            *e = crate::transport::cap(e, 1024);
        }
    }

    /// A curl line reproducing the request.
    pub fn curl(&self) -> String {
        let mut line = format!("curl -i -X {} '{}'", self.method, self.url);
        for (k, v) in &self.request_headers {
            line += &format!(" -H '{k}: {}'", v.replace('\'', "'\\''"));
        }
        if let Some(body) = &self.request_body {
            line += &format!(" --data-raw '{}'", body.replace('\'', "'\\''"));
        }
        line
    }
}

/// The kinds of finding; the kebab-case ids are stable and appear in reports.
#[derive(Clone, Copy, Debug, Deserialize, Eq, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// The status was not an accepted one.
    UnexpectedStatus,
    /// The `error` member was not an accepted code.
    UnexpectedErrorCode,
    /// A required JSON member is missing.
    MissingMember,
    /// A JSON member that must be absent is present.
    UnexpectedMember,
    /// A JSON value differs from the expected one.
    UnexpectedValue,
    /// An array is not a subset of the allowed values.
    NotSubset,
    /// An instant is not in the future, or not ISO-8601.
    NotFuture,
    /// Not an absolute URL.
    NotAbsoluteUrl,
    /// A plain-http URL to a host other than loopback.
    InsecureUrl,
    /// The target never fetched a URL it should have resolved.
    NotFetched,
    /// Two answers that must look alike differ in status or members.
    ShapeDiffers,
    /// A header is missing or lacks the expected content.
    MissingHeader,
    /// A header that must be absent is present.
    UnexpectedHeader,
    /// The `WWW-Authenticate` challenge is missing or malformed.
    BadChallenge,
    /// A secret appears in a body where it must not.
    SecretDisclosed,
    /// Parallel outcomes do not have the expected counts.
    WrongCount,
    /// Sampled values repeat.
    NotUnique,
    /// Sampled values are too short or predictable.
    LowEntropy,
    /// A value does not match its pattern.
    PatternMismatch,
    /// The target fetched the JWKS more or fewer times than expected.
    JwksFetches,
    /// The expected claim mail did not arrive, or had no claim link.
    NoMail,
    /// A mail arrived that must not.
    UnexpectedMail,
    /// A step could not run because the target's earlier answers lacked what it needs.
    MissingInput,
    /// A published AID record (DNS or the fallback document) breaks a rule of AID.
    AidRecord,
    /// The endpoint's PKA proof breaks a rule of the AID v2 handshake.
    AidProof,
    /// The target named a URL outside the host policy (the target's origins, the mock IdP and
    /// `allowed_hosts`); the harness did not fetch it.
    DisallowedHost,
}

/// One way the target departed from an expectation.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Finding {
    /// The step (name or number).
    pub step: String,
    /// What kind.
    pub kind: FindingKind,
    /// What was expected.
    pub expected: String,
    /// What was found.
    pub found: String,
    /// The requirement of the case the expectation checks, where the case has several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirement: Option<String>,
    /// The level this finding was judged at (its requirement's, else the case's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
}

impl Finding {
    /// A finding with no requirement or level yet (the engine sets them).
    pub fn new(step: &str, kind: FindingKind, expected: impl Into<String>, found: impl Into<String>) -> Self {
        Self {
            step: step.to_string(),
            kind,
            expected: expected.into(),
            found: found.into(),
            requirement: None,
            level: None,
        }
    }
}

/// `step: expected … (found …)`; the alternate form (`{:#}`) adds the requirement and level it
/// was judged at, once the engine has set them.
impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: expected {} (found {})", self.step, self.expected, self.found)?;
        if f.alternate()
            && let (Some(r), Some(l)) = (&self.requirement, self.level)
        {
            write!(f, " [{r}, {}]", l.as_str())?;
        }
        Ok(())
    }
}

/// A case's outcome.
#[derive(Clone, Debug, Deserialize, Eq, PartialEq, Serialize)]
#[serde(tag = "verdict", content = "reason", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    /// Every expectation held.
    Pass,
    /// A MUST expectation failed.
    Fail,
    /// A SHOULD expectation failed.
    Warn,
    /// Recorded only: an informational or MAY case, or a reading the target config does not gate on.
    Info,
    /// Not run, with the reason.
    Skip(SkipReason),
    /// The harness could not decide (no answer, timeout).
    Inconclusive(String),
}

impl Verdict {
    /// The short label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Fail => "FAIL",
            Self::Warn => "WARN",
            Self::Info => "INFO",
            Self::Skip(_) => "SKIP",
            Self::Inconclusive(_) => "INCONCLUSIVE",
        }
    }
}

/// Why a case did not run. Reports keep the sentence ([`std::fmt::Display`]); the variant is
/// what a program matches on.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum SkipReason {
    /// The target config lacks what would run the case; `setting` names it (`clock.offset_header`,
    /// `idp.issuer`, `mail`, ...).
    Needs {
        /// The setting (or option) that would run the case.
        setting: &'static str,
        /// The sentence the report shows.
        text: String,
    },
    /// The target does not offer what the case tests, or offers what the case needs off.
    NotOffered(String),
    /// An earlier stage failed: discovery, or the AID preflight.
    Blocked(String),
    /// What the case tests is not there to test (an AID record without a key).
    Inapplicable(String),
    /// Read back from a report, which keeps only the sentence.
    Recorded(String),
}

impl SkipReason {
    /// A missing setting: `text` says what to set.
    pub fn needs(setting: &'static str, text: impl Into<String>) -> Self {
        Self::Needs {
            setting,
            text: text.into(),
        }
    }
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Needs { text, .. } | Self::NotOffered(text) | Self::Blocked(text) | Self::Inapplicable(text) | Self::Recorded(text) => {
                f.write_str(text)
            }
        }
    }
}

impl Serialize for SkipReason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SkipReason {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::Recorded)
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn informational() -> Level {
    Level::Informational
}

/// Bytes of one body (or mail text) a report keeps.
pub const REPORT_BODY_BYTES: usize = 16 * 1024;

/// A captured claim mail, for the report.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct MailRecord {
    /// The step.
    pub step: String,
    /// Recipients.
    pub to: Vec<String>,
    /// Subject.
    pub subject: String,
    /// Text body.
    pub text: String,
}

/// Everything known about one case after it ran; reports are read back into it, so the
/// members a reader can do without default.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct CaseResult {
    /// `area/id`.
    pub name: String,
    /// Case id.
    #[serde(default)]
    pub id: String,
    /// Area.
    #[serde(default)]
    pub area: String,
    /// Requirement ids.
    #[serde(default)]
    pub requirements: Vec<String>,
    /// Level.
    #[serde(default = "informational")]
    pub level: Level,
    /// Ambiguity reading tested.
    #[serde(default)]
    pub reading: Option<String>,
    /// Summary.
    #[serde(default)]
    pub summary: String,
    /// Verdict.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// Findings.
    #[serde(default)]
    pub findings: Vec<Finding>,
    /// Every exchange.
    #[serde(default)]
    pub exchanges: Vec<Exchange>,
    /// Mail captured.
    #[serde(default)]
    pub mail: Vec<MailRecord>,
    /// Wall time running, from when the case had what it waits for (the mock IdP, while a case
    /// that changes it runs alone).
    #[serde(default)]
    pub duration_ms: u64,
    /// Wall time waiting for the mock IdP before the case could start (0: none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub waited_ms: u64,
    /// The settling steps' timings (`settle`): how long each took to hold, if it did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settled: Vec<Settled>,
    /// Why the verdict is what it is where the findings alone do not say (a reading case
    /// recorded rather than gated, and how to gate on it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The case file, relative to the catalogues' home: with a finding's `step`, where the
    /// expectation that failed is written.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub file: String,
}

impl MailRecord {
    /// Cuts the text and subject to what a report keeps.
    pub fn cap_for_report(&mut self) {
        self.text = crate::transport::cap(&self.text, REPORT_BODY_BYTES);
        self.subject = crate::transport::cap(&self.subject, 1024);
        self.to.truncate(16);
    }
}

/// How long one settling step took to hold: a revocation's propagation to another replica, as
/// the harness saw it.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct Settled {
    /// The step.
    pub step: String,
    /// What it waited for.
    pub waits_for: crate::language::Settle,
    /// Whether it held within the bound.
    pub held: bool,
    /// From the end of the step before (the revocation) to the try that held (or, when it
    /// never did, to the last).
    pub after_ms: u64,
    /// The bound the target declares.
    pub bound_ms: u64,
}

impl CaseResult {
    /// A result for a case that did not run (skipped, blocked, or lost to a harness error).
    pub fn unrun(case: &crate::catalogue::Case, verdict: Verdict) -> Self {
        Self {
            name: case.full_name(),
            id: case.id.clone(),
            area: case.area.clone(),
            requirements: case.requirements.clone(),
            level: case.level,
            reading: case.reading.clone(),
            summary: case.summary.clone(),
            verdict,
            findings: Vec::new(),
            exchanges: Vec::new(),
            mail: Vec::new(),
            duration_ms: 0,
            waited_ms: 0,
            settled: Vec::new(),
            note: None,
            file: case_file(&case.path),
        }
    }

    /// The finding that decided the verdict: the one at the strictest level.
    pub fn deciding_finding(&self) -> Option<&Finding> {
        self.findings.iter().min_by_key(|f| f.level.unwrap_or(self.level))
    }

    /// Did any expectation fail (whatever the level)? Self-validation uses this.
    pub fn has_findings(&self) -> bool {
        !self.findings.is_empty()
    }
}

/// `path` relative to the catalogues' home (as given when it lies elsewhere).
fn case_file(path: &std::path::Path) -> String {
    path.strip_prefix(crate::repo_root()).unwrap_or(path).display().to_string()
}

/// Cuts `s` to at most 200 characters, marking the cut.
pub fn truncate(s: &str) -> String {
    if s.chars().count() > 200 {
        format!("{}…", s.chars().take(200).collect::<String>())
    } else {
        s.to_string()
    }
}
