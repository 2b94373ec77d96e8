//! Spec profiles as data. A manifest (`profiles/<name>.toml`) names a profile's requirements and
//! cases and the metadata names that show a target speaks it. Discovery reads the manifests to
//! say which profile a target speaks, and whether its documents mix versions.

use std::collections::BTreeMap;
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

/// A value of the AS metadata that tells apart sibling profiles (two texts that both call
/// themselves the same version): the array at `pointer` contains, or lacks, `value`. A document
/// without the member says nothing either way.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sign {
    /// A JSON pointer into the AS metadata (`/grant_types_supported`).
    pub pointer: String,
    /// The array holds this value.
    #[serde(default)]
    pub contains: Option<String>,
    /// The array does not hold this value.
    #[serde(default)]
    pub lacks: Option<String>,
}

impl Sign {
    /// `None` when `metadata` agrees with the sign or says nothing; else what it shows instead.
    pub fn contradicted_by(&self, metadata: &Value) -> Option<String> {
        let items = metadata.pointer(&self.pointer)?.as_array()?;
        let has = |v: &str| items.iter().any(|i| i.as_str() == Some(v));
        match (&self.contains, &self.lacks) {
            (Some(v), _) if !has(v) => Some(format!("{} without {v}", self.pointer)),
            (_, Some(v)) if has(v) => Some(format!("{} with {v}", self.pointer)),
            _ => None,
        }
    }
}

/// An inherited case, requirement or ambiguity a profile leaves out.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exclusion {
    /// The case, requirement or ambiguity id.
    pub id: String,
    /// Why the text no longer holds it.
    pub reason: String,
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
    /// Metadata names of earlier versions.
    #[serde(default)]
    pub earlier_markers: Markers,
    /// Metadata values this profile's targets show, where a sibling's show otherwise.
    #[serde(default)]
    pub signs: Vec<Sign>,
    /// Where the flows are.
    pub endpoints: Endpoints,
    /// What a target offers.
    pub offers: Offers,
    /// Wire names of the members the flows send, by the harness's own name.
    pub fields: BTreeMap<String, String>,
    /// Error names that mean the same.
    #[serde(default)]
    pub errors: Errors,
    /// Members of the target's answers that the cases name by their v0.6 names, at this
    /// profile's pointers (`identity_assertion = "/identity/assertion"`: the production
    /// dialect nests what v0.6 answered flat). An answer that carries a name itself keeps it.
    #[serde(default)]
    pub answers: BTreeMap<String, String>,
    /// Top-level members every successful registration answer of this profile carries
    /// (`registration_id` in v0.6, `id` in the production dialect): an answer without them
    /// while the metadata speaks this profile is a hybrid's, and the report says so.
    #[serde(default)]
    pub envelope: Vec<String>,
    /// Members the profile adds to an action's request body, by action (`claim = { type =
    /// "login_hint" }`: v0.7 tags the claim body).
    #[serde(default)]
    pub bodies: BTreeMap<String, serde_json::Map<String, Value>>,
    /// What the profile puts in every minted token unless a case says otherwise.
    #[serde(default)]
    pub tokens: TokenDefaults,
    /// Member names whose values are secrets in this profile beyond those the redactor knows
    /// by their names (`token`, `secret`, `otp`, …): a `user_code` is one. Their values are
    /// redacted wherever they appear, also as URL and form parameters.
    #[serde(default)]
    pub secret_members: Vec<String>,
    /// The profile a run uses when neither `--profile` nor the target config names one; one
    /// manifest says so.
    #[serde(default)]
    pub default: bool,
    /// The profile this one starts from: its requirements, cases and ambiguities, less what
    /// `exclude` names.
    #[serde(default)]
    pub inherit: Option<String>,
    /// Inherited cases, requirements or ambiguities this profile leaves out, each with its
    /// reason.
    #[serde(default)]
    pub exclude: Vec<Exclusion>,
    /// The directories of `check-config`'s setup checks for this profile (cases that prove
    /// each capability of a config with a real round trip), relative to the repository: one, or
    /// a list (the checks every v0.6-family profile shares, and its ceremony's own).
    #[serde(default, deserialize_with = "one_or_many")]
    pub checks: Vec<PathBuf>,
}

/// A path, or a list of them.
fn one_or_many<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<PathBuf>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(PathBuf),
        Many(Vec<PathBuf>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(p) => vec![p],
        OneOrMany::Many(v) => v,
    })
}

/// Token defaults of a profile: `set` and `header_set` members (TokenSpec-shaped tables) merged
/// under what a case writes, and the content type provider revocation is posted with.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenDefaults {
    /// For ID-JAGs (v0.5 and later need `auth_time`).
    #[serde(default)]
    pub id_jag: Option<crate::language::TokenSpec>,
    /// For provider revocation tokens (v0.3 and later: an RFC 8417 SET).
    #[serde(default)]
    pub logout: Option<crate::language::TokenSpec>,
    /// The content type a revocation token is posted with.
    #[serde(default)]
    pub logout_content_type: Option<String>,
}

/// Where a profile's flows are: JSON pointers into the AS metadata, and the derived endpoints
/// as templates over `{claim}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoints {
    /// Registration.
    pub register: String,
    /// The claim ceremony.
    pub claim: String,
    /// Provider revocation.
    pub revocation: String,
    /// The OTP challenge, built from `{claim}`.
    #[serde(default)]
    pub challenge: String,
    /// Claim completion, built from `{claim}`.
    #[serde(default)]
    pub complete: String,
    /// The OAuth token endpoint (RFC 6749), where the profile has one.
    #[serde(default)]
    pub token: Option<String>,
    /// Agent-callable token revocation (RFC 7009), where the profile has it.
    #[serde(default)]
    pub token_revocation: Option<String>,
}

/// What a target offers: JSON pointers into the AS metadata.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Offers {
    /// The registration types offered.
    pub identity_types: String,
    /// The assertion types offered.
    pub assertion_types: String,
}

/// Error names that mean the same (catalogue §B.6).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Errors {
    /// Sets of names; a case expecting one name of a set accepts all of them.
    #[serde(default)]
    pub synonyms: Vec<Vec<String>>,
}

/// Which profile a target's metadata speaks.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct Spoken {
    /// The profile's name, `later`, `earlier`, `sibling` (this version's names, another text's
    /// values), `mixed`, or `unknown` (no marker at all).
    pub speaks: String,
    /// The markers of the profile under test that were found.
    pub own: Vec<String>,
    /// The markers of later versions that were found.
    pub later: Vec<String>,
    /// The markers of earlier versions that were found.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<String>,
    /// The values that contradict this profile's signs (a sibling text's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contrary: Vec<String>,
    /// Set after the run when the metadata speaks this profile but a registration answer is
    /// shaped like another text's (a hybrid): the evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hybrid: Option<String>,
}

impl Spoken {
    /// Whether the target speaks another profile than the one under test (a later or earlier
    /// version, or a sibling text): then nothing is judged.
    pub fn is_other_profile(&self) -> bool {
        matches!(self.speaks.as_str(), "later" | "earlier" | "sibling")
    }
}

impl Manifest {
    /// Reads `profiles/<name>.toml` under `root`.
    pub fn load(root: &Path, name: &str) -> Result<Self, String> {
        let path = root.join("profiles").join(format!("{name}.toml"));
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.to_string().replace('\n', " ")))
    }

    /// The wire name of the member the harness calls `name` (the name itself if unmapped).
    pub fn field<'a>(&'a self, name: &'a str) -> &'a str {
        self.fields.get(name).map(String::as_str).unwrap_or(name)
    }

    /// Adds to an answer's members the names [`Self::answers`] maps, where the answer has
    /// them at this profile's pointers and not under the name itself.
    pub fn alias_answers(&self, vars: &mut serde_json::Map<String, Value>) {
        let found: Vec<(String, Value)> = self
            .answers
            .iter()
            .filter(|(name, _)| !vars.contains_key(*name))
            .filter_map(|(name, pointer)| member_at(vars, pointer).map(|v| (name.clone(), v.clone())))
            .collect();
        vars.extend(found);
    }

    /// The strings at a metadata pointer (an absent or malformed member is empty).
    pub fn strings_at(metadata: &Value, pointer: &str) -> Vec<String> {
        metadata
            .pointer(pointer)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// What `metadata` speaks, judged by this manifest's markers.
    pub fn judge(&self, metadata: &Value) -> Spoken {
        let own = self.markers.found_in(metadata);
        let later = self.later_markers.found_in(metadata);
        let earlier = self.earlier_markers.found_in(metadata);
        let others = !later.is_empty() || !earlier.is_empty();
        let contrary: Vec<String> = self.signs.iter().filter_map(|s| s.contradicted_by(metadata)).collect();
        let speaks = match (own.is_empty(), others) {
            (false, false) if !contrary.is_empty() => "sibling".to_string(),
            (false, false) => self.name.clone(),
            (false, true) => "mixed".to_string(),
            (true, _) if !later.is_empty() => "later".to_string(),
            (true, _) if !earlier.is_empty() => "earlier".to_string(),
            (true, _) => "unknown".to_string(),
        };
        Spoken {
            speaks,
            own,
            later,
            earlier,
            contrary,
            hybrid: None,
        }
    }
}

/// The value at a JSON pointer into an answer's members, without copying the answer.
fn member_at<'a>(vars: &'a serde_json::Map<String, Value>, pointer: &str) -> Option<&'a Value> {
    let path = pointer.strip_prefix('/')?;
    let (first, rest) = path.split_once('/').map_or((path, None), |(f, r)| (f, Some(r)));
    let top = vars.get(&first.replace("~1", "/").replace("~0", "~"))?;
    match rest {
        None => Some(top),
        Some(rest) => top.pointer(&format!("/{rest}")),
    }
}

/// The profiles of this build (other than `except`) whose registration envelope `answer`
/// carries in full.
pub fn shaped_like(root: &Path, answer: &serde_json::Map<String, Value>, except: &str) -> Vec<String> {
    known(root)
        .into_iter()
        .filter(|name| name != except)
        .filter(|name| {
            Manifest::load(root, name).is_ok_and(|m| !m.envelope.is_empty() && m.envelope.iter().all(|k| answer.contains_key(k)))
        })
        .collect()
}

/// The profiles of this build whose markers `metadata` carries, and no other version's: what
/// a target speaks when it does not speak the profile under test.
pub fn speaking(root: &Path, metadata: &Value) -> Vec<String> {
    known(root)
        .into_iter()
        .filter(|name| Manifest::load(root, name).is_ok_and(|m| m.judge(metadata).speaks == *name))
        .collect()
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

/// The profile whose manifest says `default = true` (the first by name if none does, so a
/// build always has a default while it has a profile).
pub fn default_name(root: &Path) -> String {
    let known = known(root);
    known
        .iter()
        .find(|name| Manifest::load(root, name).is_ok_and(|m| m.default))
        .or(known.first())
        .cloned()
        .unwrap_or_default()
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

    #[test]
    fn answers_are_read_at_the_profile_s_pointers_and_never_replace_a_member() {
        let mut m = v01();
        m.answers = [
            ("identity_assertion".to_string(), "/identity/assertion".to_string()),
            ("registration_id".to_string(), "/id".to_string()),
            ("claim_token".to_string(), "/claim/token".to_string()),
        ]
        .into_iter()
        .collect();
        let mut vars = json!({ "id": "reg_1", "identity": { "assertion": "a.b.c" }, "claim_token": "own" })
            .as_object()
            .cloned()
            .expect("object");
        m.alias_answers(&mut vars);
        assert_eq!(vars["identity_assertion"], "a.b.c");
        assert_eq!(vars["registration_id"], "reg_1");
        assert_eq!(vars["claim_token"], "own");
        assert_eq!(member_at(&vars, "/identity/missing"), None);
        assert_eq!(member_at(&vars, "no-slash"), None);
    }

    #[test]
    fn maps_names_and_pointers() {
        let m = v01();
        assert_eq!(m.field("attempt_token"), "claim_attempt_token");
        assert_eq!(m.field("unmapped"), "unmapped");
        let meta = json!({ "agent_auth": { "identity_types_supported": ["anonymous", 3] } });
        assert_eq!(Manifest::strings_at(&meta, &m.offers.identity_types), ["anonymous"]);
        assert!(m.errors.synonyms.iter().any(|s| s.contains(&"expired".to_string())));
    }
}
