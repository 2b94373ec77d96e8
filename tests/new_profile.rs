//! Adding a profile touches no Rust file: a manifest, a case folder and (for the bundled server
//! to speak it) a deployment file. A scratch home holds the real catalogues beside a throwaway
//! profile that inherits v0.6, leaves one inherited case out and adds one of its own; the
//! unchanged binary lists it, runs it against the bundled server, and every case passes.

mod common;

use std::path::Path;
use std::process::Command;

fn link(real: &Path, home: &Path, name: &str) {
    std::os::unix::fs::symlink(real.join(name), home.join(name)).expect("link");
}

#[test]
fn a_throwaway_profile_runs_without_a_rust_change() {
    let real = authmd_conformance::repo_root();
    let home = common::scratch("new-profile");
    for dir in ["cases", "cases-v0.6", "cases-aid", "checks"] {
        link(&real, &home, dir);
    }
    std::fs::create_dir_all(home.join("profiles")).expect("profiles");
    std::fs::create_dir_all(home.join("deployments")).expect("deployments");
    for file in [
        "profiles/v0.1.toml",
        "profiles/v0.6.toml",
        "deployments/standard.toml",
        "deployments/v0.6.toml",
        "deployments/aid.toml",
    ] {
        std::fs::copy(real.join(file), home.join(file)).expect(file);
    }
    let manifest = std::fs::read_to_string(real.join("profiles/v0.6.toml"))
        .expect("v0.6 manifest")
        .replace("name = \"v0.6\"", "name = \"v0.6-throwaway\"")
        .replace("requirements = \"cases-v0.6/requirements.toml\"", "requirements = \"cases-x/requirements.toml\"")
        .replace(
            "cases = \"cases-v0.6\"",
            "cases = \"cases-x\"\ninherit = \"v0.6\"\nexclude = [{ id = \"v6-token-12-resource\", reason = \"the throwaway text drops resource\" }]",
        );
    std::fs::write(home.join("profiles/v0.6-throwaway.toml"), manifest).expect("manifest");
    std::fs::write(
        home.join("deployments/v0.6-throwaway.toml"),
        "name = \"v0.6-throwaway\"\nprofile = \"v0.6-throwaway\"\ndefault = true\ndoc = \"The v0.6 server, for the throwaway profile.\"\n\n[server]\nprofile = \"v0.6\"\naudience = \"resource\"\n",
    )
    .expect("deployment");
    std::fs::create_dir_all(home.join("cases-x/registration")).expect("cases");
    std::fs::write(
        home.join("cases-x/requirements.toml"),
        "[[requirement]]\nid = \"X-REG-01\"\nlevel = \"MUST\"\nsource = \"a throwaway text\"\ntext = \"An unknown type is refused.\"\n",
    )
    .expect("requirements");
    std::fs::write(
        home.join("cases-x/registration/x-reg-01-unknown-type.toml"),
        "id = \"x-reg-01-unknown-type\"\nrequirements = [\"X-REG-01\"]\nsummary = \"an unknown type is refused\"\ncaught_by = [\"v06-unknown-type-as-anonymous\"]\n\n\
         [[step]]\ndo = \"register-anonymous\"\nbody = { type = \"magic\" }\nexpect = { status = \"4xx\" }\n",
    )
    .expect("case");
    let out = home.join("out");
    let run = Command::new(env!("CARGO_BIN_EXE_authmd-conformance"))
        .env(authmd_conformance::HOME_ENV, &home)
        .args(["run", "--profile", "v0.6-throwaway", "--out"])
        .arg(&out)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).expect("report.json")).expect("JSON");
    let names: Vec<&str> = report["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(
        names.iter().any(|n| n.ends_with("x-reg-01-unknown-type")),
        "the new case ran: {names:?}"
    );
    assert!(names.iter().any(|n| n.ends_with("v6-reg-04-unknown-type")), "inherited cases ran");
    assert!(
        !names.iter().any(|n| n.ends_with("v6-token-12-resource")),
        "the excluded case did not run"
    );
    assert_eq!(report["header"]["profile"], "v0.6-throwaway");
    let _ = std::fs::remove_dir_all(&home);
}
