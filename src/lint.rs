//! The catalogue lint, without any server: every profile's catalogue and the AID preflight's
//! load with typed parameters, name real reference-server defects, give every exact-match rule
//! a near-miss family, and the generated files (indexes, vocabulary, schema) are current.
//! `lint` prints it; the self-tests and `scripts/bless` use [`generated`].

use std::path::PathBuf;

use authmd_harness::catalogue::Catalogue;
use authmd_reference_server::Defect;

/// What the lint found.
#[derive(Debug, Default)]
pub struct Lint {
    /// Each problem, one line naming the catalogue and the case or file.
    pub problems: Vec<String>,
    /// One line per catalogue: its cases and requirements.
    pub totals: Vec<String>,
}

/// A generated file: its path under the repository root and what it must hold.
pub struct Generated {
    /// The path, relative to the repository root.
    pub path: PathBuf,
    /// The text it must hold.
    pub text: String,
}

/// Lints every catalogue of this build: [`catalogues`] and the generated files.
pub fn lint() -> Lint {
    let mut out = catalogues();
    match generated() {
        Ok(files) => {
            for file in files {
                if std::fs::read_to_string(crate::repo_root().join(&file.path)).unwrap_or_default() != file.text {
                    out.problems.push(format!("{} is stale: run scripts/bless", file.path.display()));
                }
            }
        }
        Err(e) => out.problems.push(e),
    }
    out
}

/// The catalogues alone: each loads and meets the rules beyond loading.
pub fn catalogues() -> Lint {
    let mut out = Lint::default();
    let mut catalogues = Vec::new();
    for name in crate::profiles() {
        match crate::profile_catalogue(&name) {
            Ok(cat) => catalogues.push((name, cat)),
            Err(e) => out.problems.push(format!("{name}: {e}")),
        }
    }
    match crate::aid_catalogue() {
        Ok(cat) => catalogues.push(("aid".to_string(), cat)),
        Err(e) => out.problems.push(format!("aid: {e}")),
    }
    for (name, cat) in &catalogues {
        out.problems.extend(rules(name, cat));
        let what = if name == "aid" { "AID preflight".to_string() } else { name.clone() };
        out.totals.push(format!(
            "{what}: {} cases over {} requirements",
            cat.cases.len(),
            cat.requirements.len()
        ));
    }
    out
}

/// The rules one loaded catalogue must meet beyond loading.
fn rules(name: &str, cat: &Catalogue) -> Vec<String> {
    let mut problems = Vec::new();
    for case in &cat.cases {
        for id in case.caught_by.iter().filter(|id| id.parse::<Defect>().is_err()) {
            problems.push(format!(
                "{name} {}: caught_by names `{id}`, which is no reference-server defect",
                case.full_name()
            ));
        }
    }
    for id in cat.missing_families() {
        problems.push(format!(
            "{name} {id}: an exact-match rule (`compares`) with no near-miss family: add a case whose step lists `near_miss`"
        ));
    }
    problems
}

/// Every generated file of the repository with the text it must hold: each catalogue's
/// `INDEX.md`, the case vocabulary and the step schema.
pub fn generated() -> Result<Vec<Generated>, String> {
    let mut files = Vec::new();
    for name in crate::profiles() {
        let cat = crate::profile_catalogue(&name).map_err(|e| format!("{name}: {e}"))?;
        let manifest = crate::profile::Manifest::load(&crate::repo_root(), &name).map_err(|e| format!("{name}: {e}"))?;
        files.push(Generated {
            path: manifest.cases.join("INDEX.md"),
            text: cat.index_markdown(),
        });
    }
    let aid = crate::aid_catalogue().map_err(|e| format!("aid: {e}"))?;
    files.push(Generated {
        path: PathBuf::from("cases-aid/INDEX.md"),
        text: aid.index_markdown(),
    });
    for (file, text) in crate::language::generated_files() {
        files.push(Generated {
            path: PathBuf::from(file),
            text,
        });
    }
    Ok(files)
}
