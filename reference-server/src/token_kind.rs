//! The two kinds of token a provider sends: what `typ` each carries per profile, and where
//! its `jti` values live in the replay cache.

use crate::defect::Defect;

/// Which kind of token is expected.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum TokenKind {
    /// An ID-JAG (`typ: oauth-id-jag+jwt`).
    IdJag,
    /// A logout token (`typ: logout+jwt`).
    Logout,
}

impl TokenKind {
    /// The `typ` this kind carries: v0.3 and later deliver revocation as an RFC 8417 SET.
    pub(crate) fn typ(self, profile: crate::config::Profile) -> &'static str {
        match self {
            Self::IdJag => "oauth-id-jag+jwt",
            Self::Logout if profile.is_v06_family() => "secevent+jwt",
            Self::Logout => "logout+jwt",
        }
    }

    /// The namespace of this kind's `jti` values in the replay cache (C-25: one per token type).
    pub fn replay_namespace(self, defects: &crate::defect::Defects) -> &'static str {
        match self {
            Self::Logout if !defects.contains(Defect::SharedJtiNamespace) => "logout",
            _ => "id-jag",
        }
    }
}
