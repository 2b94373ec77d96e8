//! Spec profiles as data. A manifest (`profiles/<name>.toml`) names a profile's requirements and
//! cases and the metadata names that show a target speaks it. Discovery reads the manifests to
//! say which profile a target speaks, and whether its documents mix versions.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Names in the AS metadata, split by where they stand.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Markers {
    /// Members of `agent_auth`.
    #[serde(default)]
    pub agent_auth: Vec<String>,
    /// Top-level members.
    #[serde(default)]
    pub top_level: Vec<String>,
}

impl Markers {
    /// The markers present in `metadata`, as `agent_auth.x` or `x`.
    pub fn found_in(&self, metadata: &Value) -> Vec<String> {
        let nested = self
            .agent_auth
            .iter()
            .filter(|n| metadata["agent_auth"].get(n.as_str()).is_some())
            .map(|n| format!("agent_auth.{n}"));
        let top = self.top_level.iter().filter(|n| metadata.get(n.as_str()).is_some()).cloned();
        nested.chain(top).collect()
    }
}

/// One profile's manifest.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The profile name (`v0.1`).
    pub name: String,
    /// One line for reports.
    pub title: String,
    /// What the profile was written against.
    pub source: String,
    /// The requirements file, relative to the repository.
    pub requirements: PathBuf,
    /// The case directory, relative to the repository.
    pub cases: PathBuf,
    /// Metadata names only this version uses.
    pub markers: Markers,
    /// Metadata names of later versions.
    pub later_markers: Markers,
}

/// Which profile a target's metadata speaks.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct Spoken {
    /// `v0.1`, `later`, `mixed`, or `unknown` (no marker of either).
    pub speaks: String,
    /// The markers of the profile under test that were found.
    pub own: Vec<String>,
    /// The markers of later versions that were found.
    pub later: Vec<String>,
}

impl Manifest {
    /// Reads `profiles/<name>.toml` under `root`.
    pub fn load(root: &Path, name: &str) -> Result<Self, String> {
        let path = root.join("profiles").join(format!("{name}.toml"));
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.to_string().replace('\n', " ")))
    }

    /// What `metadata` speaks, judged by this manifest's markers.
    pub fn judge(&self, metadata: &Value) -> Spoken {
        let own = self.markers.found_in(metadata);
        let later = self.later_markers.found_in(metadata);
        let speaks = match (own.is_empty(), later.is_empty()) {
            (false, true) => self.name.clone(),
            (true, false) => "later".to_string(),
            (false, false) => "mixed".to_string(),
            (true, true) => "unknown".to_string(),
        };
        Spoken { speaks, own, later }
    }
}

/// The manifests this build has (every `profiles/*.toml`), sorted by name.
pub fn known(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("profiles"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| e.path().file_stem().and_then(|s| s.to_str()).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v01() -> Manifest {
        Manifest::load(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").as_path(), "v0.1").expect("the v0.1 manifest")
    }

    #[test]
    fn tells_v01_later_and_mixed_metadata_apart() {
        let m = v01();
        let v01 = json!({ "agent_auth": { "register_uri": "x", "claim_uri": "y" } });
        let v06 = json!({ "token_endpoint": "t", "agent_auth": { "identity_endpoint": "i", "events_endpoint": "e" } });
        let mixed = json!({ "token_endpoint": "t", "agent_auth": { "register_uri": "x", "identity_endpoint": "i" } });
        assert_eq!(m.judge(&v01).speaks, "v0.1");
        assert_eq!(m.judge(&v06).speaks, "later");
        let spoken = m.judge(&mixed);
        assert_eq!(spoken.speaks, "mixed");
        assert_eq!(spoken.later, vec!["agent_auth.identity_endpoint", "token_endpoint"]);
        assert_eq!(m.judge(&json!({})).speaks, "unknown");
    }
}
