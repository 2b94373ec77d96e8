//! The case catalogue: `cases/requirements.toml` and one TOML file per case, parsed once into
//! validated types. A malformed file is an error naming the file and the field, before any case
//! runs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Requirement level (catalogue §0.2). Ordered from strictest.
#[derive(Clone, Copy, Debug, Deserialize, Eq, Hash, Ord, PartialEq, PartialOrd, Serialize)]
pub enum Level {
    /// A failure fails the run.
    #[serde(rename = "MUST")]
    Must,
    /// A failure is a warning.
    #[serde(rename = "SHOULD")]
    Should,
    /// Optional behaviour: recorded, never gating.
    #[serde(rename = "MAY")]
    May,
    /// Worth recording; never fails a run.
    #[serde(rename = "informational")]
    Informational,
}

impl Level {
    /// The catalogue spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Must => "MUST",
            Self::Should => "SHOULD",
            Self::May => "MAY",
            Self::Informational => "informational",
        }
    }
}

/// One requirement of `cases/requirements.toml`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    /// `AREA-NN`, as in the catalogue.
    pub id: String,
    /// Level the suite tests it at.
    pub level: Level,
    /// Source tags, as in the catalogue.
    pub source: String,
    /// One line.
    pub text: String,
    /// Why no black-box case can reach it, when none can.
    #[serde(default)]
    pub not_testable: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequirementsFile {
    requirement: Vec<Requirement>,
}

/// What a case needs from the target or the harness; unmet needs skip the case with a reason.
#[derive(Clone, Copy, Debug, Deserialize, Eq, Hash, Ord, PartialEq, PartialOrd, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Need {
    /// The target offers anonymous registration.
    Anonymous,
    /// The target offers verified-email registration.
    VerifiedEmail,
    /// The target offers ID-JAG registration and trusts the mock IdP.
    IdJag,
    /// The target advertises a revocation URI.
    Revocation,
    /// A mail source is configured.
    Mail,
    /// An identity/scope oracle (echo endpoint) is configured.
    Oracle,
    /// Scope probes (one endpoint per scope) are configured.
    ScopeProbes,
    /// Shifting the target's clock (a clock header, or waiting within the budget).
    Clock,
    /// The case changes IdP keys or JWKS behaviour: it runs alone.
    IdpExclusive,
    /// The target offers no anonymous registration (negative DISC-18 rows).
    AnonymousOff,
    /// The target offers no verified-email registration.
    VerifiedEmailOff,
    /// A rate-limit burst size is configured.
    RateBurst,
    /// The target resolves URL-form `client_id`s under the IdP's issuer (IDJAG-37).
    Cimd,
    /// The target requires `amr` values of the IdP's tokens (`idp.required_amr`, IDJAG-45).
    AmrPolicy,
    /// A second issuer the target trusts (`idp.second`).
    SecondIssuer,
    /// A live issuer the target does not trust.
    UntrustedIssuer,
    /// The target's clock header also ages its JWKS cache (`idp.jwks_cache_follows_clock`), so
    /// a `Cache-Control` lifetime can be observed without waiting it out (IDJAG-44).
    JwksClock,
}

/// A fact of the target configuration a case's level can depend on.
#[derive(Clone, Copy, Debug, Deserialize, Eq, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Condition {
    /// The config names the `client_id`s the target's trust entry accepts (`idp.client_ids`).
    ClientIdList,
}

/// The harness action a step performs. Flows are code; a case only picks and parameterises them.
#[derive(Clone, Copy, Debug, Deserialize, Eq, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Any HTTP request (`method`, `url`, `headers`, `json` or `body`).
    Http,
    /// `ANON()`; `body` replaces the JSON body.
    RegisterAnonymous,
    /// `EMAILREG(email, credential)`.
    RegisterEmail,
    /// Mints a token (`token`) without sending it.
    Mint,
    /// `IDREG(J(token), credential)`, or with `assertion`.
    RegisterIdJag,
    /// `count` parallel `IDREG` of one token.
    ParallelRegisterIdJag,
    /// Calls the API: `endpoint` = oracle (default), or a scope from the probes; `credential`.
    Api,
    /// `POST CLAIM {claim_token, email}`.
    Claim,
    /// Waits for the next claim mail to `email` and extracts the link.
    ReadMail,
    /// Asserts that no mail reaches `email` within `within_ms`.
    NoMail,
    /// `GET` the claim link from an earlier `read-mail` step (`link`).
    OpenLink,
    /// `POST CHALLENGE {claim_attempt_token}` (`attempt_token`).
    Challenge,
    /// `OTP(reg)`: read mail, open the link, POST the challenge.
    Otp,
    /// `POST COMPLETE {claim_token, otp}`.
    Complete,
    /// Mints `L(token)` and POSTs it to the revocation URI (`content_type` overridable).
    Revoke,
    /// Publishes a new IdP key and makes it the signer.
    RotateKey,
    /// Sets the IdP's JWKS fault mode (`fault`).
    JwksFault,
    /// Sets the `Cache-Control: max-age` the IdP's JWKS is served with (`seconds`).
    JwksMaxAge,
    /// Repeats `of` `count` times, collecting `field` from each response.
    Sample,
}

/// One step of a case. Unknown keys land in `params` and are refused by the loader per action
/// (serde cannot combine `flatten` with `deny_unknown_fields`).
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Step {
    /// Name other steps use in `{{name.path}}` references.
    #[serde(default)]
    pub name: Option<String>,
    /// What to do.
    #[serde(rename = "do")]
    pub action: Action,
    /// Where the target's clock is moved from this step on: a declared TTL name (`"otp+5"`),
    /// seconds, or a reference to an instant the target returned (`"{{reg.claim_token_expires}}-30"`).
    #[serde(default)]
    pub advance: Option<String>,
    /// Action parameters (validated per action when the step runs; unknown keys are refused at load).
    #[serde(flatten)]
    pub params: BTreeMap<String, Value>,
    /// What must hold afterwards.
    #[serde(default)]
    pub expect: Option<Expect>,
}

/// Expectations on a step's exchange and values. Every present field is checked.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Status: a number, `"2xx"`/`"4xx"`, or a list of those.
    #[serde(default)]
    pub status: Option<Value>,
    /// Status that must not occur.
    #[serde(default)]
    pub status_not: Option<Value>,
    /// Acceptable `error` codes (synonyms per catalogue §B.6).
    #[serde(default)]
    pub error: Option<Value>,
    /// JSON pointer → expected value (references allowed).
    #[serde(default)]
    pub json: BTreeMap<String, Value>,
    /// JSON pointer → value it must differ from.
    #[serde(default)]
    pub json_not: BTreeMap<String, Value>,
    /// JSON pointers that must be present.
    #[serde(default)]
    pub present: Vec<String>,
    /// JSON pointers that must be absent.
    #[serde(default)]
    pub absent: Vec<String>,
    /// JSON pointer → array the value (an array) must be a subset of.
    #[serde(default)]
    pub subset: BTreeMap<String, Value>,
    /// Pointer → the same members in any order (arrays, or space-delimited strings such as an
    /// OAuth `scope`): what the catalogue means by "the same scopes".
    #[serde(default)]
    pub same_set: BTreeMap<String, Value>,
    /// JSON pointers holding ISO-8601 instants that must be in the future.
    #[serde(default)]
    pub future: Vec<String>,
    /// JSON pointers holding absolute URLs.
    #[serde(default)]
    pub absolute_url: Vec<String>,
    /// An earlier step whose answer this one must match in status and top-level member names
    /// (REG-EMAIL-08: no difference between known and unknown addresses).
    #[serde(default)]
    pub same_shape_as: Option<String>,
    /// URLs on the mock IdP (references allowed) the target must have fetched by the end of
    /// this step.
    #[serde(default)]
    pub idp_fetched: Vec<String>,
    /// Every URL in the JSON body is https, or plain http to a loopback host (DISC-21).
    #[serde(default)]
    pub secure_urls: bool,
    /// Header → substring it must contain (case-insensitive).
    #[serde(default)]
    pub header: BTreeMap<String, String>,
    /// Headers that must be absent.
    #[serde(default)]
    pub header_absent: Vec<String>,
    /// The `WWW-Authenticate` challenge.
    #[serde(default)]
    pub challenge: Option<ChallengeExpect>,
    /// Strings (references allowed) that must not appear in the response body.
    #[serde(default)]
    pub body_excludes: Vec<String>,
    /// For parallel steps: status class or code → exact count.
    #[serde(default)]
    pub counts: BTreeMap<String, u32>,
    /// For sample steps: every value distinct.
    #[serde(default)]
    pub unique: bool,
    /// For sample steps: minimum apparent entropy of each value.
    #[serde(default)]
    pub min_entropy_bits: Option<u32>,
    /// For sample steps: every value matches this regular expression.
    #[serde(default)]
    pub matches: Option<String>,
    /// JWKS fetches the target made during this step, at least / at most.
    #[serde(default)]
    pub jwks_fetches_min: Option<usize>,
    /// See `jwks_fetches_min`.
    #[serde(default)]
    pub jwks_fetches_max: Option<usize>,
}

/// Expectations on a `WWW-Authenticate: Bearer` challenge.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeExpect {
    /// `resource_metadata` must be an absolute URL.
    #[serde(default)]
    pub resource_metadata: bool,
    /// `error` parameter: a value, or `"absent"`.
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    id: String,
    requirements: Vec<String>,
    summary: String,
    #[serde(default)]
    level: Option<Level>,
    #[serde(default)]
    must_when: Option<Condition>,
    #[serde(default)]
    needs: Vec<Need>,
    #[serde(default)]
    reading: Option<String>,
    #[serde(default)]
    caught_by: Vec<String>,
    #[serde(default)]
    note: Option<String>,
    #[serde(rename = "step")]
    steps: Vec<Step>,
}

/// A validated case.
#[derive(Clone, Debug, Serialize)]
pub struct Case {
    /// Kebab-case id, equal to the file stem.
    pub id: String,
    /// The area directory (`idjag`, `claim`, …).
    pub area: String,
    /// Requirement ids it tests.
    pub requirements: Vec<String>,
    /// Conformant behaviour, present tense.
    pub summary: String,
    /// Level it gates at (the strictest of its requirements unless overridden).
    pub level: Level,
    /// The target configuration under which the case gates as MUST instead of `level` (a
    /// requirement whose level depends on the deployment, such as IDJAG-36).
    pub must_when: Option<Condition>,
    /// Capabilities it needs.
    pub needs: BTreeSet<Need>,
    /// The ambiguity reading it tests, `C-NN/X`.
    pub reading: Option<String>,
    /// Reference-server defect ids that must make it fail.
    pub caught_by: Vec<String>,
    /// Free text for reports.
    pub note: Option<String>,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// The file it came from.
    pub path: PathBuf,
}

impl Case {
    /// `area/id`, the name used by filters and test trials.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.area, self.id)
    }
}

/// The loaded catalogue.
#[derive(Clone, Debug)]
pub struct Catalogue {
    /// Requirements by id.
    pub requirements: BTreeMap<String, Requirement>,
    /// Cases sorted by full name.
    pub cases: Vec<Case>,
}

/// A catalogue file is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct CatalogueError {
    /// The file.
    pub path: String,
    /// What is wrong, naming the field.
    pub message: String,
}

fn err(path: &Path, message: impl Into<String>) -> CatalogueError {
    CatalogueError {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// Parameters each action accepts; anything else is a typo caught at load time.
/// The kind of value a step parameter takes. A `{{reference}}` stands for any kind (it is
/// resolved when the step runs); everything else is checked when the catalogue loads, so a typo
/// is a catalogue error, never a finding against the target.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Text,
    Number,
    Flag,
    Object,
    Any,
    OneOf(&'static [&'static str]),
}

fn param_kind(action: Action, key: &str) -> Kind {
    match (action, key) {
        (Action::JwksFault, "fault") => Kind::OneOf(&[
            "none",
            "server-error",
            "invalid-json",
            "empty-key-set",
            "wrong-content-type",
            "slow:*",
        ]),
        (Action::RotateKey, "alg") => Kind::OneOf(&["ES256", "RS256", "EdDSA"]),
        (Action::Api, "scheme") | (Action::Api, "endpoint") => Kind::Text,
        (Action::Api, "query_token") | (Action::Sample, "spread") => Kind::Flag,
        (Action::Sample, "of") => Kind::OneOf(&[
            "register-anonymous",
            "register-email",
            "register-id-jag",
            "claim",
            "challenge",
            "complete",
            "api",
            "http",
        ]),
        (_, "count" | "within_ms" | "seconds") => Kind::Number,
        (_, "token" | "headers" | "json") => Kind::Object,
        (_, "body") => Kind::Any,
        (_, "credential")
            if matches!(
                action,
                Action::RegisterAnonymous | Action::RegisterEmail | Action::RegisterIdJag | Action::ParallelRegisterIdJag
            ) =>
        {
            Kind::OneOf(&["api_key", "access_token", "refresh_token", "unsupported"])
        }
        _ => Kind::Text,
    }
}

fn check_param(action: Action, key: &str, value: &serde_json::Value) -> Result<(), String> {
    use serde_json::Value;
    if let Value::String(s) = value
        && s.contains("{{")
    {
        return Ok(());
    }
    let kind = param_kind(action, key);
    let ok = match (kind, value) {
        (Kind::Any, _) => true,
        (Kind::Text, Value::String(_)) => true,
        (Kind::Number, Value::Number(n)) => n.is_u64(),
        (Kind::Flag, Value::Bool(_)) => true,
        (Kind::Object, Value::Object(_)) => true,
        (Kind::Object, Value::String(_)) if key == "token" => false,
        (Kind::OneOf(names), Value::String(s)) => names
            .iter()
            .any(|n| n.strip_suffix('*').map_or(*n == s.as_str(), |prefix| s.starts_with(prefix))),
        _ => false,
    };
    if ok {
        return Ok(());
    }
    Err(match kind {
        Kind::OneOf(names) => format!("`{value}` is not one of {}", names.join(", ")),
        other => format!(
            "`{value}` is not {}",
            match other {
                Kind::Number => "a whole number",
                Kind::Flag => "true or false",
                Kind::Object => "a table",
                _ => "a string",
            }
        ),
    })
}

fn allowed_params(action: Action) -> &'static [&'static str] {
    match action {
        Action::Http => &["method", "url", "headers", "json", "body", "credential"],
        Action::RegisterAnonymous => &["body", "credential"],
        Action::RegisterEmail => &["email", "credential"],
        Action::Mint => &["token"],
        Action::RegisterIdJag => &["token", "assertion", "credential"],
        Action::ParallelRegisterIdJag => &["token", "credential", "count"],
        Action::Api => &["endpoint", "credential", "scheme", "query_token"],
        Action::Claim => &["claim_token", "email"],
        Action::ReadMail | Action::Otp => &["email", "registration_id"],
        Action::NoMail => &["email", "within_ms"],
        Action::OpenLink => &["link"],
        Action::Challenge => &["attempt_token"],
        Action::Complete => &["claim_token", "otp"],
        Action::Revoke => &["token", "content_type", "body"],
        Action::RotateKey => &["alg"],
        Action::JwksFault => &["fault"],
        Action::JwksMaxAge => &["seconds"],
        Action::Sample => &[
            "of",
            "count",
            "field",
            "spread",
            "attempt_token",
            "claim_token",
            "otp",
            "credential",
            "token",
            "body",
            "email",
        ],
    }
}

impl Catalogue {
    /// Loads `dir/requirements.toml` and every `dir/<area>/*.toml`.
    pub fn load(dir: &Path) -> Result<Self, CatalogueError> {
        let req_path = dir.join("requirements.toml");
        let text = std::fs::read_to_string(&req_path).map_err(|e| err(&req_path, e.to_string()))?;
        let file: RequirementsFile = toml::from_str(&text).map_err(|e| err(&req_path, e.to_string().replace('\n', " ")))?;
        let mut requirements = BTreeMap::new();
        for r in file.requirement {
            if requirements.insert(r.id.clone(), r.clone()).is_some() {
                return Err(err(&req_path, format!("duplicate requirement `{}`", r.id)));
            }
        }
        let mut cases = Vec::new();
        let mut areas: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| err(dir, e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        areas.sort();
        for area_dir in areas {
            let area = area_dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            let mut files: Vec<PathBuf> = std::fs::read_dir(&area_dir)
                .map_err(|e| err(&area_dir, e.to_string()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().and_then(|x| x.to_str()) == Some("toml"))
                .collect();
            files.sort();
            for path in files {
                cases.push(Self::load_case(&path, &area, &requirements)?);
            }
        }
        let mut seen = BTreeSet::new();
        for case in &cases {
            if !seen.insert(case.id.clone()) {
                return Err(err(&case.path, format!("field `id`: duplicate case id `{}`", case.id)));
            }
        }
        cases.sort_by_key(Case::full_name);
        Ok(Self { requirements, cases })
    }

    fn load_case(path: &Path, area: &str, requirements: &BTreeMap<String, Requirement>) -> Result<Case, CatalogueError> {
        let text = std::fs::read_to_string(path).map_err(|e| err(path, e.to_string()))?;
        let raw: RawCase = toml::from_str(&text).map_err(|e| err(path, e.to_string().replace('\n', " ")))?;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        if raw.id != stem {
            return Err(err(path, format!("field `id`: `{}` differs from the file name `{stem}`", raw.id)));
        }
        if raw.requirements.is_empty() {
            return Err(err(path, "field `requirements`: at least one requirement id"));
        }
        let mut level = Level::Informational;
        for id in &raw.requirements {
            let r = requirements
                .get(id)
                .ok_or_else(|| err(path, format!("field `requirements`: unknown requirement `{id}`")))?;
            level = level.min(r.level);
        }
        // Summary style (JSON-Schema-Test-Suite lint): present tense, short, no modal verbs.
        let s = &raw.summary;
        let first_word = s.split_whitespace().next().unwrap_or_default();
        let acronym = first_word
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-' || c == 's');
        if s.len() > 90 || (s.starts_with(char::is_uppercase) && !acronym) || s.ends_with('.') {
            return Err(err(
                path,
                "field `summary`: at most 90 characters, lower-case start (or an acronym), no final period",
            ));
        }
        for banned in ["should", "must", "test that"] {
            if s.to_lowercase()
                .split(|c: char| !c.is_alphanumeric() && c != ' ')
                .any(|w| w.contains(banned))
            {
                return Err(err(
                    path,
                    format!("field `summary`: state the conformant behaviour as a fact, without `{banned}`"),
                ));
            }
        }
        if let Some(reading) = &raw.reading
            && !(reading.starts_with("C-") && reading.contains('/'))
        {
            return Err(err(path, "field `reading`: `C-NN/X`"));
        }
        if raw.steps.is_empty() {
            return Err(err(path, "field `step`: at least one step"));
        }
        let mut names = BTreeSet::new();
        for (i, step) in raw.steps.iter().enumerate() {
            for (key, value) in &step.params {
                if !allowed_params(step.action).contains(&key.as_str()) {
                    return Err(err(
                        path,
                        format!("field `step[{i}].{key}`: not a parameter of `{:?}`", step.action),
                    ));
                }
                check_param(step.action, key, value).map_err(|why| err(path, format!("field `step[{i}].{key}`: {why}")))?;
            }
            if let Some(name) = &step.name
                && !names.insert(name.clone())
            {
                return Err(err(path, format!("field `step[{i}].name`: duplicate step name `{name}`")));
            }
            if let Some(advance) = &step.advance {
                let known = split_advance(advance).is_some_and(|(base, _)| {
                    base.starts_with("{{") && base.ends_with("}}") || crate::target::DeclaredTtls::default().named(base).is_some()
                });
                if !known {
                    return Err(err(
                        path,
                        format!("field `step[{i}].advance`: `{advance}` is not `<ttl name, seconds or {{{{ref}}}}>[+N|-N]`"),
                    ));
                }
            }
            if let Some(m) = step.expect.as_ref().and_then(|e| e.matches.as_ref())
                && regex::Regex::new(m).is_err()
            {
                return Err(err(path, format!("field `step[{i}].expect.matches`: invalid regular expression")));
            }
        }
        Ok(Case {
            id: raw.id,
            area: area.to_string(),
            requirements: raw.requirements,
            summary: raw.summary,
            level: raw.level.unwrap_or(level),
            must_when: raw.must_when,
            needs: raw.needs.into_iter().collect(),
            reading: raw.reading,
            caught_by: raw.caught_by,
            note: raw.note,
            steps: raw.steps,
            path: path.to_path_buf(),
        })
    }

    /// The generated `cases/INDEX.md`: requirement → cases, and the not-testable list.
    pub fn index_markdown(&self) -> String {
        let mut by_req: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for case in &self.cases {
            for r in &case.requirements {
                by_req.entry(r.as_str()).or_default().push(case.id.as_str());
            }
        }
        let mut out = String::from("<!-- @generated by `UPDATE_INDEX=1 cargo test --test conformance`; do not edit -->\n# Case index\n\n");
        let covered = self.requirements.keys().filter(|r| by_req.contains_key(r.as_str())).count();
        let untestable = self.requirements.values().filter(|r| r.not_testable.is_some()).count();
        let uncovered: Vec<&Requirement> = self
            .requirements
            .values()
            .filter(|r| r.not_testable.is_none() && !by_req.contains_key(r.id.as_str()))
            .collect();
        out += &format!(
            "{} requirements: {covered} covered by {} cases, {untestable} not black-box testable, {} not yet covered.\n\n",
            self.requirements.len(),
            self.cases.len(),
            uncovered.len()
        );
        out += "| requirement | level | cases |\n| --- | --- | --- |\n";
        for r in self.requirements.values() {
            let cell = match (by_req.get(r.id.as_str()), &r.not_testable) {
                (Some(cases), _) => cases.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", "),
                (None, Some(_)) => "not testable (see below)".into(),
                (None, None) => "**not yet covered**".into(),
            };
            out += &format!("| {} | {} | {cell} |\n", r.id, r.level.as_str());
        }
        out += "\n## Not black-box testable\n\n";
        for r in self.requirements.values().filter(|r| r.not_testable.is_some()) {
            out += &format!("- **{}**: {}\n", r.id, r.not_testable.as_deref().unwrap_or_default());
        }
        out
    }
}

/// Splits `base+N` / `base-N` (or a bare `base`) into the base and the signed seconds.
pub fn split_advance(advance: &str) -> Option<(&str, i64)> {
    let advance = advance.trim();
    // References come first and hold no sign; TTL names hold none either.
    let after_ref = advance.rfind("}}").map(|i| i + 2).unwrap_or(0);
    match advance[after_ref..].rfind(['+', '-']) {
        Some(i) => {
            let at = after_ref + i;
            let n: i64 = advance[at + 1..].trim().parse().ok()?;
            let base = advance[..at].trim();
            Some((base, if &advance[at..at + 1] == "-" { -n } else { n }))
        }
        None => Some((advance, 0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_typo_in_a_step_parameter_is_a_load_error() {
        assert!(check_param(Action::JwksFault, "fault", &json!("server-eror")).is_err());
        assert!(check_param(Action::JwksFault, "fault", &json!("slow:250")).is_ok());
        assert!(check_param(Action::RotateKey, "alg", &json!("ES265")).is_err());
        assert!(check_param(Action::Sample, "count", &json!("12")).is_err());
        assert!(check_param(Action::Sample, "count", &json!("{{target.rate_burst}}")).is_ok());
        assert!(check_param(Action::Sample, "spread", &json!("yes")).is_err());
        assert!(check_param(Action::RegisterAnonymous, "credential", &json!("api-key")).is_err());
        assert!(check_param(Action::RegisterIdJag, "token", &json!({ "set": {} })).is_ok());
        let message = check_param(Action::JwksFault, "fault", &json!("server-eror")).expect_err("typo");
        assert!(message.contains("server-error"), "{message}");
    }

    #[test]
    fn the_loader_names_the_file_step_and_key() {
        let dir = std::env::temp_dir().join(format!("authmd-cat-{}", std::process::id()));
        let area = dir.join("idjag");
        std::fs::create_dir_all(&area).expect("dir");
        std::fs::copy(crate::repo_root().join("cases/requirements.toml"), dir.join("requirements.toml")).expect("requirements");
        std::fs::write(
            area.join("idjag-42-typo.toml"),
            "id = \"idjag-42-typo\"\nrequirements = [\"IDJAG-42\"]\nsummary = \"a typo\"\n\n[[step]]\ndo = \"jwks-fault\"\nfault = \"server-eror\"\n",
        )
        .expect("case");
        let error = Catalogue::load(&dir).expect_err("a typo must not load").to_string();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(error.contains("idjag-42-typo.toml") && error.contains("step[0].fault"), "{error}");
    }
}
