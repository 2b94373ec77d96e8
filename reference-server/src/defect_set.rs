//! The set of defects a server runs with.

use std::collections::BTreeSet;

use crate::defect::Defect;

/// The set of defects switched on.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct Defects(BTreeSet<Defect>);

impl Defects {
    /// No defects: a conforming server.
    pub fn none() -> Self {
        Self::default()
    }

    /// Is `defect` on?
    pub fn contains(&self, defect: Defect) -> bool {
        self.0.contains(&defect)
    }

    /// Switches `defect` on.
    pub fn insert(&mut self, defect: Defect) {
        self.0.insert(defect);
    }

    /// The defects switched on.
    pub fn iter(&self) -> impl Iterator<Item = Defect> + '_ {
        self.0.iter().copied()
    }
}

impl FromIterator<Defect> for Defects {
    fn from_iter<I: IntoIterator<Item = Defect>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}
