//! The bundled deployments as data: one file each under `deployments/` (see its README). The
//! reference server's configuration and the harness's target configuration are both derived
//! from a deployment's file; no Rust names a deployment or the profile it speaks.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use serde::Deserialize;

/// How claim mail reaches the harness.
#[derive(Clone, Copy, Debug, Default, Deserialize, Eq, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub enum MailDelivery {
    /// Relayed over SMTP to the mock mailbox.
    #[default]
    Smtp,
    /// Only as per-registration HTML files the server serves behind a token the harness holds.
    Outbox,
}

/// Where the bundled server keeps its data.
#[derive(Clone, Copy, Debug, Default, Deserialize, Eq, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub enum Database {
    /// A SQLite file in the run's temporary folder.
    #[default]
    Sqlite,
    /// A fresh database on a throwaway PostgreSQL cluster the run starts (PostgreSQL must be
    /// installed).
    Postgres,
}

/// One bundled deployment.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    /// Its name (the file's stem): `run --variant` and trial names use it.
    pub name: String,
    /// The profile whose catalogue it must pass.
    pub profile: String,
    /// The one `run --profile <profile>` starts (one plain and one AID default per profile).
    #[serde(default)]
    pub default: bool,
    /// How it differs from the standard deployment, in one line.
    pub doc: String,
    /// How claim mail reaches the harness.
    #[serde(default)]
    pub mail: MailDelivery,
    /// The `client_id` the primary issuer's ID-JAGs must carry instead of a resolvable URL.
    #[serde(default)]
    pub pinned_client_id: Option<String>,
    /// How long the harness may wait out a TTL or a cool-down.
    #[serde(default)]
    pub wait_budget_secs: u64,
    /// How many instances of the server serve its one base URL over its one database (each
    /// also reachable at its own address, which the harness's `[replicas]` names). 1 when absent.
    #[serde(default = "one")]
    pub replicas: usize,
    /// Whether a round-robin TCP front stands before the instances and the base URL is the
    /// front's: every case's traffic is then spread across the replicas, as behind a load
    /// balancer. Off when absent.
    #[serde(default)]
    pub front: bool,
    /// Where the server keeps its data. SQLite when absent.
    #[serde(default)]
    pub database: Database,
    /// Reference-server configuration keys, over the bundled stack's wiring.
    #[serde(default)]
    pub server: toml::Table,
}

fn one() -> usize {
    1
}

impl Deployment {
    /// Whether it publishes an AID record (the run then starts from its bare domain).
    pub fn publishes_aid(&self) -> bool {
        self.server.get("aid").and_then(toml::Value::as_str).is_some_and(|a| a != "off")
    }

    /// Whether it has no test clock, so its TTL cases wait out real time.
    pub fn waits_out_ttls(&self) -> bool {
        self.server.get("test_clock").and_then(toml::Value::as_bool) == Some(false)
    }

    /// Every deployment, by name; loaded once, and an error names the file at fault.
    pub fn all() -> Result<&'static [Deployment], String> {
        static ALL: OnceLock<Result<Vec<Deployment>, String>> = OnceLock::new();
        ALL.get_or_init(|| load(&crate::repo_root().join("deployments"), &crate::profiles()))
            .as_deref()
            .map_err(Clone::clone)
    }

    /// The deployment called `name`.
    pub fn named(name: &str) -> Result<&'static Deployment, String> {
        let all = Self::all()?;
        all.iter().find(|d| d.name == name).ok_or_else(|| {
            format!(
                "no bundled deployment `{name}` (deployments: {})",
                all.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", ")
            )
        })
    }

    /// The default deployment of `profile`, publishing AID or not; none if the bundled server
    /// has no such deployment.
    pub fn default_for(profile: &str, aid: bool) -> Result<Option<&'static Deployment>, String> {
        Ok(Self::all()?
            .iter()
            .find(|d| d.profile == profile && d.default && d.publishes_aid() == aid))
    }

    /// Every deployment of `profile`, the default plain one first.
    pub fn of_profile(profile: &str) -> Result<Vec<&'static Deployment>, String> {
        let mut of: Vec<_> = Self::all()?.iter().filter(|d| d.profile == profile).collect();
        of.sort_by_key(|d| (d.publishes_aid(), !d.default, d.name.clone()));
        Ok(of)
    }

    /// Whether this is its profile's default plain deployment (the one whose catalogue must
    /// run whole: another may SKIP a case for a capability it lacks by design).
    pub fn is_standard(&self) -> bool {
        self.default && !self.publishes_aid()
    }
}

/// Loads every `*.toml` of `dir`, checking each names itself after its file, speaks one of
/// `profiles`, and that each profile has at most one default plain and one default AID
/// deployment.
pub fn load(dir: &Path, profiles: &[String]) -> Result<Vec<Deployment>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let mut all = Vec::new();
    let mut defaults: BTreeMap<(String, bool), String> = BTreeMap::new();
    for path in paths {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{shown}: {e}"))?;
        let d: Deployment = toml::from_str(&text).map_err(|e| format!("{shown}: {}", e.message()))?;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        if d.name != stem {
            return Err(format!("{shown}: `name = \"{}\"` must be the file's name, `{stem}`", d.name));
        }
        if !profiles.contains(&d.profile) {
            return Err(format!(
                "{shown}: profile `{}` has no manifest (profiles: {})",
                d.profile,
                profiles.join(", ")
            ));
        }
        if d.default
            && let Some(other) = defaults.insert((d.profile.clone(), d.publishes_aid()), d.name.clone())
        {
            return Err(format!("{shown}: `{other}` is already the default deployment of {}", d.profile));
        }
        all.push(d);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(format!("{name}.toml")), text).expect("write");
    }

    #[test]
    fn the_bundled_deployments_load() {
        let all = Deployment::all().expect("deployments");
        for profile in crate::profiles() {
            let standard = Deployment::default_for(&profile, false).expect("load");
            assert!(standard.is_some_and(Deployment::is_standard), "{profile} has no default deployment");
        }
        assert!(all.iter().any(Deployment::publishes_aid));
    }

    #[test]
    fn a_bad_deployment_file_is_named() {
        let dir = std::env::temp_dir().join(format!("authmd-deployments-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let profiles = vec!["p".to_string()];
        write(&dir, "a", "name = \"b\"\nprofile = \"p\"\ndoc = \"\"\n");
        assert!(load(&dir, &profiles).expect_err("misnamed").contains("must be the file's name"));
        write(&dir, "a", "name = \"a\"\nprofile = \"q\"\ndoc = \"\"\n");
        assert!(load(&dir, &profiles).expect_err("unknown profile").contains("has no manifest"));
        write(&dir, "a", "name = \"a\"\nprofile = \"p\"\ndefault = true\ndoc = \"\"\n");
        write(&dir, "b", "name = \"b\"\nprofile = \"p\"\ndefault = true\ndoc = \"\"\n");
        assert!(load(&dir, &profiles).expect_err("two defaults").contains("already the default"));
        write(&dir, "b", "name = \"b\"\nprofile = \"p\"\ndoc = \"\"\nsurprise = 1\n");
        assert!(load(&dir, &profiles).expect_err("unknown key").contains("surprise"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
