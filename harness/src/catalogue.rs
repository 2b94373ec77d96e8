//! The case catalogue: `cases/requirements.toml` and one TOML file per case, parsed once into
//! validated types. A malformed file is an error naming the file and the field, before any case
//! runs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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
    /// The selected AID record publishes an aid2 PKA key, so the endpoint proof applies.
    Pka,
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
    /// The ambiguity reading it tests, `C-NN/X`.
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

    /// The catalogue of a spec profile: its manifest's requirements file and case directory,
    /// keeping the cases that hold for it (those naming no profile hold for every profile).
    ///
    /// A manifest that `inherit`s another starts from that profile's catalogue, less what it
    /// `exclude`s (each with its reason), and adds its own requirements (a requirement of the
    /// same id replaces the inherited one: the text changed), cases and ambiguities.
    pub fn for_profile(root: &Path, manifest: &crate::profile::Manifest) -> Result<Self, CatalogueError> {
        Self::for_profile_within(root, manifest, &mut Vec::new())
    }

    fn for_profile_within(root: &Path, manifest: &crate::profile::Manifest, chain: &mut Vec<String>) -> Result<Self, CatalogueError> {
        let here = format!("profiles/{}.toml", manifest.name);
        if chain.contains(&manifest.name) {
            return Err(CatalogueError {
                path: here,
                message: format!("field `inherit`: a circle ({} → {})", chain.join(" → "), manifest.name),
            });
        }
        chain.push(manifest.name.clone());
        let inherited = match &manifest.inherit {
            None => None,
            Some(parent) => {
                let parent_manifest = crate::profile::Manifest::load(root, parent).map_err(|message| CatalogueError {
                    path: here.clone(),
                    message: format!("field `inherit`: {message}"),
                })?;
                let mut base = Self::for_profile_within(root, &parent_manifest, chain)?;
                base.exclude(&manifest.exclude).map_err(|message| CatalogueError {
                    path: here.clone(),
                    message,
                })?;
                Some(base)
            }
        };
        let mut catalogue = Self::load_inheriting(&root.join(&manifest.requirements), &root.join(&manifest.cases), inherited)?;
        catalogue
            .cases
            .retain(|c| c.profiles.is_empty() || c.profiles.contains(&manifest.name));
        Ok(catalogue)
    }

    /// Leaves out the inherited cases, requirements and ambiguities `exclusions` name. Each
    /// must name one, and a case that tests a requirement left out must be left out too.
    fn exclude(&mut self, exclusions: &[crate::profile::Exclusion]) -> Result<(), String> {
        for x in exclusions {
            if x.reason.trim().is_empty() {
                return Err(format!("field `exclude`: `{}` needs its reason", x.id));
            }
            let case = self.cases.iter().position(|c| c.id == x.id);
            let ambiguity = self.ambiguities.iter().position(|a| a.id == x.id);
            match (case, ambiguity, self.requirements.remove(&x.id)) {
                (Some(i), _, _) => {
                    self.cases.remove(i);
                }
                (None, Some(i), _) => {
                    self.ambiguities.remove(i);
                }
                (None, None, Some(_)) => {}
                (None, None, None) => {
                    return Err(format!(
                        "field `exclude`: `{}` is no inherited case, requirement or ambiguity",
                        x.id
                    ));
                }
            }
        }
        for case in &self.cases {
            if let Some(gone) = case.requirements.iter().find(|r| !self.requirements.contains_key(*r)) {
                return Err(format!(
                    "field `exclude`: the inherited case `{}` tests the excluded requirement `{gone}`; exclude the case too",
                    case.id
                ));
            }
        }
        Ok(())
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
            && !(reading.starts_with("C-") && reading.contains('/'))
        {
            return Err(err(path, "field `reading`: `C-NN/X`"));
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

    /// Has `requirement` a case with a near-miss family?
    fn has_family(&self, requirement: &str) -> bool {
        self.cases
            .iter()
            .any(|c| c.near_misses > 0 && c.requirements.iter().any(|r| r == requirement))
    }

    /// The exact-match and equality rules (`compares`) that no near-miss family covers yet.
    pub fn missing_families(&self) -> Vec<&str> {
        self.requirements
            .values()
            .filter(|r| r.compares.is_some() && !self.has_family(&r.id))
            .map(|r| r.id.as_str())
            .collect()
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
        let families = self.requirements.keys().filter(|r| self.has_family(r)).count();
        let rules = self.requirements.values().filter(|r| r.compares.is_some()).count();
        let missing = self.missing_families();
        out += &format!(
            "{families} requirements have a near-miss family (a case marked *near-miss: N* judges N almost-right values). \
             {rules} are exact-match or equality rules (marked *compares*); {}.\n\n",
            if missing.is_empty() {
                "each has its family".to_string()
            } else {
                format!("**without a family: {}**", missing.join(", "))
            }
        );
        out += "| requirement | level | cases |\n| --- | --- | --- |\n";
        for r in self.requirements.values() {
            let cell = match (by_req.get(r.id.as_str()), &r.not_testable) {
                (Some(cases), _) => cases
                    .iter()
                    .map(|c| match self.cases.iter().find(|k| k.id == *c).map(|k| k.near_misses) {
                        Some(n) if n > 0 => format!("`{c}` *near-miss: {n}*"),
                        _ => format!("`{c}`"),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                (None, Some(_)) => "not testable (see below)".into(),
                (None, None) => "**not yet covered**".into(),
            };
            let compares = r.compares.as_deref().map(|c| format!(" *compares {c}*")).unwrap_or_default();
            out += &format!("| {}{compares} | {} | {cell} |\n", r.id, r.level.as_str());
        }
        out += "\n## Not black-box testable\n\n";
        for r in self.requirements.values().filter(|r| r.not_testable.is_some()) {
            out += &format!("- **{}**: {}\n", r.id, r.not_testable.as_deref().unwrap_or_default());
        }
        out
    }
}

/// Summary style (JSON-Schema-Test-Suite lint): present tense, short, no modal verbs.
fn lint_summary(s: &str) -> Result<(), String> {
    let first_word = s.split_whitespace().next().unwrap_or_default();
    let acronym = first_word
        .chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-' || c == 's');
    if s.len() > 90 || (s.starts_with(char::is_uppercase) && !acronym) || s.ends_with('.') {
        return Err("field `summary`: at most 90 characters, lower-case start (or an acronym), no final period".into());
    }
    for banned in ["should", "must", "test that"] {
        if s.to_lowercase()
            .split(|c: char| !c.is_alphanumeric() && c != ' ')
            .any(|w| w.contains(banned))
        {
            return Err(format!(
                "field `summary`: state the conformant behaviour as a fact, without `{banned}`"
            ));
        }
    }
    Ok(())
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

/// Expands each step with `near_miss` variants into one step per variant, named
/// `<name or action>/<variant>`, with every `{{ref | near}}` of its parameters taking that
/// variant. A step that lists variants must vary something, and only known variants. Returns
/// the steps and how many a family made.
fn expand_near_misses(steps: Vec<Step>, path: &Path) -> Result<(Vec<Step>, usize), CatalogueError> {
    let marker = regex::Regex::new(r"\|\s*near\s*\}\}").map_err(|e| err(path, e.to_string()))?;
    let mut out = Vec::with_capacity(steps.len());
    let mut made = 0;
    for (i, step) in steps.into_iter().enumerate() {
        if step.near_miss.is_empty() {
            out.push(step);
            continue;
        }
        let params = serde_json::to_string(&step.action).map_err(|e| err(path, e.to_string()))?;
        if !marker.is_match(&params) {
            return Err(err(
                path,
                format!("field `step[{i}].near_miss`: no parameter holds a `{{{{ref | near}}}}` reference to vary"),
            ));
        }
        let base = step.name.clone().unwrap_or_else(|| format!("{}-{}", step.action.name(), i + 1));
        for variant in &step.near_miss {
            if !crate::nearmiss::is_variant(variant) {
                let known: Vec<&str> = crate::nearmiss::VARIANTS.iter().map(|(v, _)| *v).collect();
                return Err(err(
                    path,
                    format!("field `step[{i}].near_miss`: `{variant}` is not one of {}", known.join(", ")),
                ));
            }
            let varied = marker.replace_all(&params, format!("| near:{variant}}}}}").as_str());
            let action: Action = serde_json::from_str(&varied).map_err(|e| err(path, format!("step[{i}]: {e}")))?;
            out.push(Step {
                name: Some(format!("{base}/{variant}")),
                advance: step.advance.clone(),
                expect: step.expect.clone(),
                near_miss: Vec::new(),
                action,
            });
            made += 1;
        }
    }
    Ok((out, made))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch repository root holding the real v0.6 profile and a throwaway profile that
    /// inherits it: adding a profile is a manifest and a case folder, no Rust.
    fn throwaway_root(tag: &str, manifest_extra: &str) -> PathBuf {
        let real = crate::repo_root();
        let root = std::env::temp_dir().join(format!("authmd-profile-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("profiles")).expect("profiles");
        std::fs::copy(real.join("profiles/v0.6.toml"), root.join("profiles/v0.6.toml")).expect("v0.6 manifest");
        std::os::unix::fs::symlink(real.join("cases-v0.6"), root.join("cases-v0.6")).expect("v0.6 cases");
        let parent = std::fs::read_to_string(real.join("profiles/v0.6.toml")).expect("v0.6 manifest");
        let child = parent
            .replace("name = \"v0.6\"", "name = \"v0.6-throwaway\"")
            .replace(
                "requirements = \"cases-v0.6/requirements.toml\"",
                "requirements = \"cases-x/requirements.toml\"",
            )
            .replace(
                "cases = \"cases-v0.6\"",
                &format!("cases = \"cases-x\"\ninherit = \"v0.6\"\n{manifest_extra}"),
            );
        std::fs::write(root.join("profiles/v0.6-throwaway.toml"), child).expect("child manifest");
        std::fs::create_dir_all(root.join("cases-x/registration")).expect("cases");
        std::fs::write(
            root.join("cases-x/requirements.toml"),
            "[[requirement]]\nid = \"X-REG-01\"\nlevel = \"MUST\"\nsource = \"a throwaway text\"\ntext = \"An unknown type is refused.\"\n\n\
             [[requirement]]\nid = \"V6-REG-04\"\nlevel = \"SHOULD\"\nsource = \"the throwaway text softened it\"\ntext = \"An unknown type should be refused.\"\n",
        )
        .expect("requirements");
        std::fs::write(
            root.join("cases-x/registration/x-reg-01-unknown-type.toml"),
            "id = \"x-reg-01-unknown-type\"\nrequirements = [\"X-REG-01\"]\nsummary = \"an unknown type is refused\"\ncaught_by = [\"v06-unknown-type-as-anonymous\"]\n\n\
             [[step]]\ndo = \"register-anonymous\"\nbody = { type = \"magic\" }\nexpect = { status = \"4xx\" }\n",
        )
        .expect("case");
        root
    }

    fn load(root: &Path, name: &str) -> Result<Catalogue, CatalogueError> {
        let manifest = crate::profile::Manifest::load(root, name).map_err(|message| CatalogueError {
            path: name.into(),
            message,
        })?;
        Catalogue::for_profile(root, &manifest)
    }

    #[test]
    fn a_profile_inherits_another_less_its_exclusions() {
        let root = throwaway_root(
            "inherit",
            "exclude = [{ id = \"v6-token-12-resource\", reason = \"the throwaway text drops resource\" }, \
             { id = \"v6-token-12-resource-near-miss\", reason = \"the same\" }, \
             { id = \"V6-TOKEN-12\", reason = \"the throwaway text drops RFC 8707\" }, \
             { id = \"C-V6-08\", reason = \"no resource parameter, no ambiguity about it\" }]",
        );
        let parent = load(&root, "v0.6").expect("v0.6");
        let child = load(&root, "v0.6-throwaway").expect("the throwaway profile");
        let _ = std::fs::remove_dir_all(&root);
        assert!(child.requirements.contains_key("X-REG-01") && !child.requirements.contains_key("V6-TOKEN-12"));
        assert_eq!(child.requirements.len(), parent.requirements.len(), "one added, one left out");
        assert_eq!(
            child.requirements["V6-REG-04"].level,
            Level::Should,
            "its own text replaces the inherited one"
        );
        assert!(child.cases.iter().any(|c| c.id == "x-reg-01-unknown-type"));
        assert!(!child.cases.iter().any(|c| c.id.starts_with("v6-token-12-resource")));
        assert_eq!(child.cases.len(), parent.cases.len() - 1);
        assert_eq!(
            child.ambiguities.len(),
            parent.ambiguities.len() - 1,
            "the other ambiguities come along"
        );
        assert!(child.index_markdown().contains("X-REG-01"));
    }

    #[test]
    fn an_exclusion_must_name_something_give_a_reason_and_take_its_cases_along() {
        for (extra, expected) in [
            (
                "exclude = [{ id = \"NOPE-01\", reason = \"r\" }]",
                "no inherited case, requirement or ambiguity",
            ),
            ("exclude = [{ id = \"V6-TOKEN-12\", reason = \" \" }]", "needs its reason"),
            ("exclude = [{ id = \"V6-TOKEN-12\", reason = \"dropped\" }]", "exclude the case too"),
        ] {
            let root = throwaway_root("exclude", extra);
            let error = load(&root, "v0.6-throwaway").expect_err(extra).to_string();
            let _ = std::fs::remove_dir_all(&root);
            assert!(error.contains(expected), "{extra}: {error}");
        }
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
        assert!(error.contains("idjag-42-typo.toml") && error.contains("server-eror"), "{error}");
    }
}
