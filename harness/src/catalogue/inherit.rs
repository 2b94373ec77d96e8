//! A profile's catalogue: its manifest's own requirements and cases on top of the profile it
//! inherits, less what it excludes.

use std::path::Path;

use super::{Catalogue, CatalogueError};

impl Catalogue {
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

    /// The setup checks in `dir`, one of the profile's `checks` directories: cases citing any
    /// requirement of the profile's whole catalogue, inherited ones included, keeping those that
    /// hold for it (a check naming `profiles` holds for those only).
    pub fn checks_for_profile(root: &Path, manifest: &crate::profile::Manifest, dir: &Path) -> Result<Self, CatalogueError> {
        let whole = Self::for_profile(root, manifest)?;
        let requirements = Self {
            requirements: whole.requirements,
            ..Self::default()
        };
        let mut checks = Self::load_inheriting(&root.join(&manifest.requirements), &root.join(dir), Some(requirements))?;
        checks
            .cases
            .retain(|c| c.profiles.is_empty() || c.profiles.contains(&manifest.name));
        Ok(checks)
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
}
