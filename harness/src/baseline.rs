//! The known-failures baseline: a ratchet for CI. Listed failures do not fail the run; a listed
//! case that now passes, no longer exists, or whose entry has expired fails the run as stale.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::engine::Verdict;
use crate::report::Report;

/// One known failure.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KnownFailure {
    /// `area/id` of the case.
    pub case: String,
    /// Why it fails (required: a baseline entry without a reason is a config error).
    pub reason: String,
    /// `YYYY-MM-DD`; after this day the entry is stale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Where it is tracked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// A baseline file.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    /// The entries.
    #[serde(rename = "known-failure", default)]
    pub known_failures: Vec<KnownFailure>,
}

/// A baseline file is wrong.
#[derive(Debug, thiserror::Error)]
#[error("baseline {path}: {message}")]
pub struct BaselineError {
    /// The file.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// A baseline entry that no longer holds.
#[derive(Clone, Debug, Eq, PartialEq, Serialize)]
pub struct Stale {
    /// The case.
    pub case: String,
    /// Why the entry is stale.
    pub why: String,
}

/// The gate's judgement of a run against a baseline.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Gate {
    /// FAIL cases the baseline lists (tolerated).
    pub known: Vec<String>,
    /// FAIL cases it does not list (they fail the run).
    pub unlisted: Vec<String>,
    /// Entries that no longer hold (they fail the run).
    pub stale: Vec<Stale>,
}

impl Gate {
    /// Does the run pass the gate?
    pub fn passes(&self) -> bool {
        self.unlisted.is_empty() && self.stale.is_empty()
    }
}

fn valid_date(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    parts.len() == 3 && parts[0].len() == 4 && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_digit()))
}

impl Baseline {
    /// Reads and checks a baseline file.
    pub fn load(path: &Path) -> Result<Self, BaselineError> {
        let e = |m: String| BaselineError {
            path: path.display().to_string(),
            message: m,
        };
        let text = std::fs::read_to_string(path).map_err(|x| e(format!("cannot read: {x}")))?;
        let baseline: Self = toml::from_str(&text).map_err(|x| e(x.to_string().replace('\n', " ")))?;
        let mut seen = BTreeSet::new();
        for (i, k) in baseline.known_failures.iter().enumerate() {
            if k.reason.trim().is_empty() {
                return Err(e(format!("known-failure[{i}] (`{}`): `reason` must say why", k.case)));
            }
            if let Some(d) = &k.expires
                && !valid_date(d)
            {
                return Err(e(format!("known-failure[{i}] (`{}`): `expires` must be YYYY-MM-DD", k.case)));
            }
            if !seen.insert(k.case.clone()) {
                return Err(e(format!("known-failure[{i}]: `{}` is listed twice", k.case)));
            }
        }
        Ok(baseline)
    }

    /// Judges `report` against this baseline. `catalogue_cases` are every case's `area/id`;
    /// `today` is `YYYY-MM-DD`.
    pub fn judge(&self, report: &Report, catalogue_cases: &BTreeSet<String>, today: &str) -> Gate {
        let mut gate = Gate::default();
        let listed: BTreeSet<&str> = self.known_failures.iter().map(|k| k.case.as_str()).collect();
        for c in &report.cases {
            if matches!(c.verdict, Verdict::Fail) {
                if listed.contains(c.name.as_str()) {
                    gate.known.push(c.name.clone());
                } else {
                    gate.unlisted.push(c.name.clone());
                }
            }
        }
        for k in &self.known_failures {
            let why = if !catalogue_cases.contains(&k.case) {
                Some("the case no longer exists".to_string())
            } else if k.expires.as_deref().is_some_and(|d| d < today) {
                Some(format!("the entry expired on {}", k.expires.as_deref().unwrap_or_default()))
            } else {
                match report.cases.iter().find(|c| c.name == k.case) {
                    Some(c) if !matches!(c.verdict, Verdict::Fail) => Some(format!("the case now has verdict {}", c.verdict.label())),
                    // Not run in this selection: nothing to say about it.
                    _ => None,
                }
            };
            if let Some(why) = why {
                gate.stale.push(Stale { case: k.case.clone(), why });
            }
        }
        gate
    }

    /// A baseline listing every FAIL of `report`, each with its first finding as the reason.
    pub fn from_report(report: &crate::compare::ReportFile) -> Self {
        let known_failures = report
            .report
            .cases
            .iter()
            .filter(|c| c.verdict == crate::outcome::Verdict::Fail)
            .map(|c| KnownFailure {
                case: c.name.clone(),
                reason: c
                    .findings
                    .first()
                    .map_or_else(|| "fails against this target".into(), ToString::to_string),
                expires: None,
                link: None,
            })
            .collect();
        Self { known_failures }
    }

    /// The TOML text.
    pub fn to_toml(&self) -> String {
        let mut out = String::from("# Known failures: listed FAIL cases do not fail the run; an entry that no longer holds does.\n\n");
        out += &toml::to_string(self).unwrap_or_default();
        out
    }
}
