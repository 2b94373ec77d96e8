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

/// Why a catalogue of the v0.1 requirements and this one case (in `area/file`) does not load.
fn load_error(area: &str, file: &str, case: &str) -> String {
    let dir = std::env::temp_dir().join(format!("authmd-cat-{area}-{}", std::process::id()));
    std::fs::create_dir_all(dir.join(area)).expect("dir");
    std::fs::copy(crate::repo_root().join("cases/requirements.toml"), dir.join("requirements.toml")).expect("requirements");
    std::fs::write(dir.join(area).join(file), case).expect("case");
    let error = Catalogue::load(&dir).expect_err("the case must not load").to_string();
    let _ = std::fs::remove_dir_all(&dir);
    error
}

#[test]
fn the_loader_names_the_file_step_and_key() {
    let error = load_error(
        "idjag",
        "idjag-42-typo.toml",
        "id = \"idjag-42-typo\"\nrequirements = [\"IDJAG-42\"]\nsummary = \"a typo\"\n\n[[step]]\ndo = \"jwks-fault\"\nfault = \"server-eror\"\n",
    );
    assert!(error.contains("idjag-42-typo.toml") && error.contains("server-eror"), "{error}");
}

#[test]
fn every_profile_s_setup_checks_load_against_its_whole_catalogue() {
    let root = crate::repo_root();
    for name in crate::profile::known(&root) {
        let manifest = crate::profile::Manifest::load(&root, &name).expect("manifest");
        assert!(!manifest.checks.is_empty(), "{name} has no setup checks");
        let mut ids = Vec::new();
        for dir in &manifest.checks {
            let checks = Catalogue::checks_for_profile(&root, &manifest, dir).unwrap_or_else(|e| panic!("{name}: {e}"));
            ids.extend(checks.cases.into_iter().map(|c| c.id));
        }
        assert!(
            ids.iter().any(|id| id.starts_with("session") || id.starts_with("mail")),
            "{name}: no check proves the human's or the mail's side ({ids:?})"
        );
    }
}

#[test]
fn only_an_api_step_may_settle() {
    // A registration run again until it holds would register again: refused.
    let error = load_error(
        "replicas",
        "replica-99-settle.toml",
        "id = \"replica-99-settle\"\nrequirements = [\"REVOKE-02\"]\nsummary = \"x\"\nneeds = [\"anonymous\", \"replicas\"]\n\n\
         [[step]]\ndo = \"register-anonymous\"\nreplica = 1\nsettle = \"revocation\"\nexpect = { status = 401 }\n",
    );
    assert!(error.contains("step[0].settle") && error.contains("only an `api` step"), "{error}");
}
