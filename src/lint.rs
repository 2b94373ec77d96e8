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

/// One catalogue of this build: its name (a profile's, or `aid`), where its `INDEX.md` goes,
/// and the catalogue itself.
struct Loaded {
    name: String,
    index: PathBuf,
    catalogue: Catalogue,
}

/// Every catalogue of this build, each loaded once, or why it does not load.
fn load_all() -> Vec<Result<Loaded, String>> {
    let root = crate::repo_root();
    let mut all: Vec<Result<Loaded, String>> = crate::profiles()
        .into_iter()
        .map(|name| {
            let manifest = crate::profile::Manifest::load(&root, &name).map_err(|e| format!("{name}: {e}"))?;
            let catalogue = crate::profile_catalogue(&name).map_err(|e| format!("{name}: {e}"))?;
            Ok(Loaded {
                index: manifest.cases.join("INDEX.md"),
                name,
                catalogue,
            })
        })
        .collect();
    all.push(
        crate::aid_catalogue()
            .map(|catalogue| Loaded {
                name: "aid".into(),
                index: PathBuf::from("cases-aid/INDEX.md"),
                catalogue,
            })
            .map_err(|e| format!("aid: {e}")),
    );
    all
}

/// Lints every catalogue of this build: [`catalogues`] and the generated files.
pub fn lint() -> Lint {
    let loaded = load_all();
    let mut out = check(&loaded);
    if let Ok(files) = generated_from(&loaded) {
        for file in files {
            if std::fs::read_to_string(crate::repo_root().join(&file.path)).unwrap_or_default() != file.text {
                out.problems.push(format!("{} is stale: run scripts/bless", file.path.display()));
            }
        }
    }
    out
}

/// The catalogues alone: each loads and meets the rules beyond loading.
pub fn catalogues() -> Lint {
    check(&load_all())
}

fn check(loaded: &[Result<Loaded, String>]) -> Lint {
    let mut out = Lint::default();
    for l in loaded {
        match l {
            Ok(Loaded { name, catalogue, .. }) => {
                out.problems.extend(rules(name, catalogue));
                let what = if name == "aid" { "AID preflight" } else { name.as_str() };
                out.totals.push(format!(
                    "{what}: {} cases over {} requirements",
                    catalogue.cases.len(),
                    catalogue.requirements.len()
                ));
            }
            Err(e) => out.problems.push(e.clone()),
        }
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
/// `INDEX.md`, the case vocabulary and the step schema, the configuration reference and its
/// schema.
pub fn generated() -> Result<Vec<Generated>, String> {
    generated_from(&load_all())
}

fn generated_from(loaded: &[Result<Loaded, String>]) -> Result<Vec<Generated>, String> {
    let mut files = Vec::new();
    for l in loaded {
        let l = l.as_ref().map_err(Clone::clone)?;
        files.push(Generated {
            path: l.index.clone(),
            text: l.catalogue.index_markdown(),
        });
    }
    for (file, text) in crate::language::generated_files()
        .into_iter()
        .chain(crate::target_reference::generated_files())
    {
        files.push(Generated {
            path: PathBuf::from(file),
            text,
        });
    }
    Ok(files)
}
