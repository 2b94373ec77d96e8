//! The case catalogue: `cases/requirements.toml` and one TOML file per case, parsed once into
//! validated types. A malformed file is an error naming the file and the field, before any case
//! runs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod index;
mod inherit;
mod rules;
mod schedule;

use rules::{expand_near_misses, lint_summary};

pub use crate::language::{Action, ChallengeExpect, Expect, Step};

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
    /// What an exact-match or equality rule compares (`the iss against the trust list`). Such
    /// a rule needs a near-miss family: a case of it whose steps vary that value.
    #[serde(default)]
    pub compares: Option<String>,
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
    /// The metadata names an OAuth token endpoint (v0.6).
    TokenEndpoint,
    /// The metadata names an RFC 7009 revocation endpoint (v0.6).
    TokenRevocation,
    /// A `[session]` recipe lets the harness act as the human at the service's pages (v0.6).
    Session,
    /// The metadata offers `service_auth` registration (v0.6).
    ServiceAuth,
    /// The target offers no `service_auth` registration (v0.6).
    ServiceAuthOff,
    /// The run starts from a domain (`[aid]` or `run --domain`): the AID preflight ran.
    Aid,
    /// The AID preflight selected a record (from DNS or the fallback).
    AidRecord,
    /// The selected AID record publishes a PKA key (aid1 or aid2), so an endpoint proof applies.
    Pka,
    /// The selected AID record publishes an aid2 PKA key, so the aid2 proof's own rules (the
    /// nonce, `no-store`, domain binding) apply.
    Pka2,
    /// The selected AID record is aid1 with a key, so the v1.2 handshake's own rules apply.
    Pka1,
    /// The target names its replicas' own origins (`[replicas]`).
    Replicas,
    /// The target declares a `/.well-known/agent` fallback document (`aid.well_known`).
    AidWellKnown,
}

/// A fact of the target configuration a case's level can depend on.
#[derive(Clone, Copy, Debug, Deserialize, Eq, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Condition {
    /// The config names the `client_id`s the target's trust entry accepts (`idp.client_ids`).
    ClientIdList,
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
    profiles: Vec<String>,
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
    /// The level of each of its requirements, for judging a finding by the requirement its
    /// expectation names.
    pub levels: BTreeMap<String, Level>,
    /// Conformant behaviour, present tense.
    pub summary: String,
    /// Level it gates at (the strictest of its requirements unless overridden).
    pub level: Level,
    /// The target configuration under which the case gates as MUST instead of `level` (a
    /// requirement whose level depends on the deployment, such as IDJAG-36).
    pub must_when: Option<Condition>,
    /// Capabilities it needs.
    pub needs: BTreeSet<Need>,
    /// The ambiguity reading it tests, `C-NN/X` (auth.md's) or `A-NN/X` (AID's).
    pub reading: Option<String>,
    /// How many readings the profile names for that ambiguity (set when the ambiguities load):
    /// with one, the catalogue has resolved the ambiguity and the case gates like any rule.
    pub readings_named: usize,
    /// Steps that a near-miss family expanded (`near_miss`), each judging one variant.
    pub near_misses: usize,
    /// The profiles it holds for; empty means every profile whose manifest names its directory.
    pub profiles: Vec<String>,
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

    /// The level a finding of this case is judged at: the level of the requirement its
    /// expectation names where the case's requirements differ in level, else `case_level`
    /// (the case's own, which a target's config may raise).
    pub fn finding_level(&self, requirement: Option<&str>, case_level: Level) -> Level {
        requirement
            .filter(|_| mixed_levels(&self.levels))
            .and_then(|r| self.levels.get(r).copied())
            .unwrap_or(case_level)
    }
}

/// Whether `action` (or one it samples) reads the target's identity/scope oracle.
fn reads_oracle(action: &Action) -> bool {
    match action {
        Action::Api { endpoint, .. } => endpoint.as_deref().is_none_or(|e| e == "oracle"),
        Action::Sample { of, then, .. } => reads_oracle(of) || then.iter().any(reads_oracle),
        _ => false,
    }
}

/// Do these requirements differ in level? Then each expectation names the one it checks.
fn mixed_levels(levels: &BTreeMap<String, Level>) -> bool {
    levels.values().collect::<BTreeSet<_>>().len() > 1
}

/// The loaded catalogue.
#[derive(Clone, Debug, Default)]
pub struct Catalogue {
    /// Requirements by id.
    pub requirements: BTreeMap<String, Requirement>,
    /// Cases sorted by full name.
    pub cases: Vec<Case>,
    /// The ambiguities of the spec as named readings (`ambiguities.toml`), where the profile
    /// has the file.
    pub ambiguities: Vec<Ambiguity>,
}

/// One ambiguity of the spec (catalogue §C) and its named readings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Ambiguity {
    /// `C-NN`.
    pub id: String,
    /// One line.
    pub title: String,
    /// Where the readings are stated.
    pub source: String,
    /// Why the wire cannot tell the readings apart, when it cannot.
    #[serde(default)]
    pub untestable: Option<String>,
    /// The readings.
    #[serde(rename = "reading")]
    pub readings: Vec<Reading>,
}

/// One reading of an ambiguity.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Reading {
    /// The name cases use after the slash (`C-01/A`).
    pub id: String,
    /// The reading in one line.
    pub says: String,
    /// Why no case tests this reading, when none does.
    #[serde(default)]
    pub untested: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AmbiguitiesFile {
    ambiguity: Vec<Ambiguity>,
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

impl Catalogue {
    /// Loads `dir/requirements.toml` and every `dir/<area>/*.toml`.
    pub fn load(dir: &Path) -> Result<Self, CatalogueError> {
        Self::load_from(&dir.join("requirements.toml"), dir)
    }

    /// Loads `req_path` and every `dir/<area>/*.toml`.
    pub fn load_from(req_path: &Path, dir: &Path) -> Result<Self, CatalogueError> {
        Self::load_inheriting(req_path, dir, None)
    }

    /// As [`Self::load_from`], on top of an inherited catalogue.
    fn load_inheriting(req_path: &Path, dir: &Path, inherited: Option<Catalogue>) -> Result<Self, CatalogueError> {
        let req_path = req_path.to_path_buf();
        let text = std::fs::read_to_string(&req_path).map_err(|e| err(&req_path, e.to_string()))?;
        let file: RequirementsFile = toml::from_str(&text).map_err(|e| err(&req_path, e.to_string().replace('\n', " ")))?;
        let Catalogue {
            requirements: mut base_requirements,
            cases: base_cases,
            ambiguities: base_ambiguities,
        } = inherited.unwrap_or_default();
        let mut requirements = BTreeMap::new();
        for r in file.requirement {
            if requirements.insert(r.id.clone(), r.clone()).is_some() {
                return Err(err(&req_path, format!("duplicate requirement `{}`", r.id)));
            }
        }
        base_requirements.append(&mut requirements);
        let requirements = base_requirements;
        let mut cases = base_cases;
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
        let ambiguities = Self::load_ambiguities(dir, &cases, base_ambiguities)?;
        for case in &mut cases {
            let tagged = case.reading.as_deref().and_then(|r| r.split_once('/')).map(|(amb, _)| amb);
            case.readings_named = ambiguities
                .iter()
                .find(|a| Some(a.id.as_str()) == tagged)
                .map_or(0, |a| a.readings.len());
        }
        Ok(Self {
            requirements,
            cases,
            ambiguities,
        })
    }

    /// `dir/ambiguities.toml`, checked against the cases: every tag names a real reading, and
    /// every reading is tested by a case or says why not (or its ambiguity says why none can be).
    fn load_ambiguities(dir: &Path, cases: &[Case], inherited: Vec<Ambiguity>) -> Result<Vec<Ambiguity>, CatalogueError> {
        let path = dir.join("ambiguities.toml");
        if !path.exists() && inherited.is_empty() {
            return Ok(Vec::new());
        }
        let mut file: AmbiguitiesFile = if path.exists() {
            let text = std::fs::read_to_string(&path).map_err(|e| err(&path, e.to_string()))?;
            toml::from_str(&text).map_err(|e| err(&path, e.to_string().replace('\n', " ")))?
        } else {
            AmbiguitiesFile { ambiguity: Vec::new() }
        };
        // The inherited ambiguities stand unless this profile names one again.
        let own: BTreeSet<String> = file.ambiguity.iter().map(|a| a.id.clone()).collect();
        file.ambiguity.extend(inherited.into_iter().filter(|a| !own.contains(&a.id)));
        for case in cases {
            let Some(tag) = &case.reading else { continue };
            let (amb, reading) = tag.split_once('/').unwrap_or((tag, ""));
            let known = file
                .ambiguity
                .iter()
                .find(|a| a.id == amb)
                .is_some_and(|a| a.readings.iter().any(|r| r.id == reading));
            if !known {
                return Err(err(
                    &case.path,
                    format!("field `reading`: `{tag}` is no reading in ambiguities.toml"),
                ));
            }
        }
        for a in &file.ambiguity {
            if a.untestable.is_some() {
                continue;
            }
            for r in &a.readings {
                let tag = format!("{}/{}", a.id, r.id);
                let tested = cases.iter().any(|c| c.reading.as_deref() == Some(tag.as_str()));
                if !tested && r.untested.is_none() {
                    return Err(err(
                        &path,
                        format!("{tag}: no case tests it; tag one (`reading = \"{tag}\"`) or say why (`untested`)"),
                    ));
                }
            }
        }
        Ok(file.ambiguity)
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
        let mut levels = BTreeMap::new();
        for id in &raw.requirements {
            let r = requirements
                .get(id)
                .ok_or_else(|| err(path, format!("field `requirements`: unknown requirement `{id}`")))?;
            level = level.min(r.level);
            levels.insert(id.clone(), r.level);
        }
        // One expectation checks one rule of one requirement: where the case's requirements
        // differ in level, each expectation says which one it checks, so a SHOULD miss is
        // judged as a SHOULD miss.
        let mixed = mixed_levels(&levels);
        lint_summary(&raw.summary).map_err(|why| err(path, why))?;
        if let Some(reading) = &raw.reading
            && !((reading.starts_with("C-") || reading.starts_with("A-")) && reading.contains('/'))
        {
            return Err(err(path, "field `reading`: `C-NN/X` (auth.md) or `A-NN/X` (AID)"));
        }
        if raw.steps.is_empty() {
            return Err(err(path, "field `step`: at least one step"));
        }
        let (steps, near_misses) = expand_near_misses(raw.steps, path)?;
        let mut names = BTreeSet::new();
        for (i, step) in steps.iter().enumerate() {
            if let Action::Check { of } = &step.action
                && !names.contains(of)
            {
                return Err(err(path, format!("field `step[{i}].of`: no earlier step is named `{of}`")));
            }
            if let Some(name) = &step.name
                && !names.insert(name.clone())
            {
                return Err(err(path, format!("field `step[{i}].name`: duplicate step name `{name}`")));
            }
            if let Some(expect) = &step.expect {
                match &expect.requirement {
                    Some(r) if !levels.contains_key(r) => {
                        return Err(err(
                            path,
                            format!("field `step[{i}].expect.requirement`: `{r}` is not one of the case's requirements"),
                        ));
                    }
                    None if mixed && raw.level.is_none() => {
                        return Err(err(
                            path,
                            format!(
                                "field `step[{i}].expect.requirement`: the case's requirements differ in level, so each expectation names the one it checks ({})",
                                raw.requirements.join(", ")
                            ),
                        ));
                    }
                    _ => {}
                }
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
            // A step that reads the oracle needs one configured: without `oracle` in `needs` a
            // target config without `[oracle]` would turn the missing setting into a FAIL.
            if reads_oracle(&step.action) && !raw.needs.contains(&Need::Oracle) {
                return Err(err(
                    path,
                    format!(
                        "field `needs`: step[{i}] reads the oracle (`do = \"api\"` without an `endpoint`), so the case needs \"oracle\""
                    ),
                ));
            }
            if step.settle.is_some() && !matches!(step.action, crate::language::Action::Api { .. }) {
                let why = "only an `api` step may run again until it holds (it changes nothing)";
                return Err(err(path, format!("field `step[{i}].settle`: {why}")));
            }
            if step.replica.is_some() && !raw.needs.contains(&Need::Replicas) {
                return Err(err(
                    path,
                    format!("field `needs`: step[{i}] names a replica, so the case needs \"replicas\""),
                ));
            }
            for class in step.expect.iter().flat_map(|e| e.counts.keys()) {
                if let Err(why) = class.parse::<crate::language::StatusSpec>() {
                    return Err(err(path, format!("field `step[{i}].expect.counts`: {why}")));
                }
            }
        }
        Ok(Case {
            id: raw.id,
            area: area.to_string(),
            requirements: raw.requirements,
            levels,
            summary: raw.summary,
            level: raw.level.unwrap_or(level),
            must_when: raw.must_when,
            needs: raw.needs.into_iter().collect(),
            reading: raw.reading,
            readings_named: 0,
            near_misses,
            profiles: raw.profiles,
            caught_by: raw.caught_by,
            note: raw.note,
            steps,
            path: path.to_path_buf(),
        })
    }

    /// Checks a target config's `[readings]` against this catalogue's ambiguities: each entry
    /// names an ambiguity the profile has and one of its readings. The error names the valid
    /// ones, so a typo never silently turns a gate off.
    pub fn check_readings(&self, readings: &BTreeMap<String, String>) -> Result<(), String> {
        for (amb, reading) in readings {
            let Some(a) = self.ambiguities.iter().find(|a| &a.id == amb) else {
                let known: Vec<&str> = self.ambiguities.iter().map(|a| a.id.as_str()).collect();
                return Err(if known.is_empty() {
                    format!("readings: `{amb}`: this profile names no ambiguities")
                } else {
                    format!("readings: `{amb}` is no ambiguity of this profile (known: {})", known.join(", "))
                });
            };
            if !a.readings.iter().any(|r| &r.id == reading) {
                let names: Vec<String> = a.readings.iter().map(|r| format!("\"{}\"", r.id)).collect();
                return Err(format!(
                    "readings: `{amb}` = \"{reading}\" is no reading of {amb} ({}); its readings are {}",
                    a.title,
                    names.join(", ")
                ));
            }
        }
        Ok(())
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
mod tests;
