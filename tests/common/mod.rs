//! Helpers shared by the integration tests.

use authmd_conformance::catalogue::Case;

/// The catalogue's cases with these ids, in this order (a missing id is a test bug).
pub fn cases(ids: &[&str]) -> Vec<Case> {
    let catalogue = authmd_conformance::default_catalogue().expect("catalogue");
    ids.iter()
        .map(|id| {
            catalogue
                .cases
                .iter()
                .find(|c| c.id == *id)
                .cloned()
                .unwrap_or_else(|| panic!("no case {id}"))
        })
        .collect()
}
