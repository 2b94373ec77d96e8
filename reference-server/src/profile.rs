//! Which auth.md text a deployment speaks.

/// The auth.md text a deployment speaks.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq, serde::Deserialize, serde::Serialize)]
pub enum Profile {
    /// auth.md v0.1: `/agent/auth`, the OTP ceremony.
    #[default]
    #[serde(rename = "v0.1")]
    V01,
    /// Upstream AUTH.md at b53c9ed: `/agent/identity`, the token endpoint, the user-code ceremony.
    #[serde(rename = "v0.6")]
    V06,
    /// Upstream AUTH.md at 11fa014 ("claim via ID-JAG"): v0.6 with a `type`-tagged claim body
    /// that also takes an ID-JAG.
    #[serde(rename = "v0.7")]
    V07,
    /// Upstream AUTH.md at 9f8a4ee (PR #28, "the production dialect"): nested answer
    /// envelopes, refresh tokens, and a reversed ceremony the agent completes with the code the
    /// user reads back.
    #[serde(rename = "v0.7-production")]
    V07Production,
}

impl Profile {
    /// Whether the profile speaks v0.6's surface (`/agent/identity`, the token endpoint, signed
    /// identity assertions).
    pub fn is_v06_family(self) -> bool {
        matches!(self, Self::V06 | Self::V07 | Self::V07Production)
    }

    /// Whether the claim grant and its polling exist (the production dialect dropped them).
    pub fn has_claim_grant(self) -> bool {
        matches!(self, Self::V06 | Self::V07)
    }
}
