//! What a deployment of this server looks like from outside, derived from its configuration:
//! the catalogue readings it follows, where its identity echo keeps the caller, and the pages a
//! person uses. Whoever configures a harness for it (the bundled stack) reads this instead of
//! restating it, so the two cannot disagree.

use crate::config::{AudienceReading, Config, ErrorNames, OracleShape, Profile};

/// The reading followed of each ambiguity [`crate::config::FOLLOWABLE`] names, unless
/// [`Config::follows`] names the other.
const UNLESS_FOLLOWED: [(&str, &str); 3] = [("C-07", "v0.1-idempotent"), ("C-11", "required"), ("C-17", "A")];

/// The person's steps on the server's own pages (the v0.6 ceremony): each form's URL path and
/// fields, with `{placeholders}` the harness fills in.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct HumanPages {
    /// The sign-in form's target.
    pub login_url: &'static str,
    /// The sign-in form's fields.
    pub login_fields: Vec<(&'static str, &'static str)>,
    /// The confirm form's target (the page the user types the code into).
    pub confirm_url: &'static str,
    /// The confirm form's fields.
    pub confirm_fields: Vec<(&'static str, &'static str)>,
    /// Where the confirm form's answer shows the code it reveals (the production dialect's
    /// reversed ceremony), `{user_code}` standing for it.
    pub reveal: Option<&'static str>,
}

impl Config {
    /// The catalogue §C readings this configuration follows, as `(ambiguity, reading)`.
    pub fn readings(&self) -> Vec<(&'static str, &'static str)> {
        let mut readings = Vec::new();
        match self.audience {
            AudienceReading::AsIssuer => readings.push(("C-01", "B")),
            AudienceReading::Resource => readings.push(("C-01", "A")),
            // Either value is accepted: neither reading gates a case against it.
            AudienceReading::Both => {}
        }
        readings.push((
            "C-04",
            match self.error_names {
                ErrorNames::Guide => "guide",
                ErrorNames::AuthMd | ErrorNames::Production => "authmd",
            },
        ));
        for (ambiguity, default) in UNLESS_FOLLOWED {
            let followed = crate::config::FOLLOWABLE
                .iter()
                .filter_map(|f| f.split_once('/'))
                .find(|(a, r)| *a == ambiguity && self.follows.iter().any(|f| f == &format!("{a}/{r}")));
            readings.push((ambiguity, followed.map_or(default, |(_, r)| r)));
        }
        readings.push(("C-20", if self.logout_requires_exp { "B" } else { "A" }));
        if self.profile == Profile::V07Production {
            // A spent refresh token presented again ends its chain (v07p/refresh.rs).
            readings.push(("C-V7P-01", "family"));
        }
        readings
    }

    /// JSON pointers to the caller's user id and scopes in the `/api/resource` echo.
    pub fn oracle_pointers(&self) -> (&'static str, &'static str) {
        match self.oracle_shape {
            OracleShape::Nested => ("/user/id", "/credential/scope"),
            OracleShape::Flat => ("/who", "/scope"),
        }
    }

    /// Whether ID-JAGs and logout tokens must name the PRM `resource` rather than the issuer.
    pub fn audience_is_resource(&self) -> bool {
        self.audience == AudienceReading::Resource
    }

    /// The pages a person uses, when the profile has them.
    pub fn human_pages(&self) -> Option<HumanPages> {
        match self.profile {
            Profile::V01 => None,
            Profile::V06 | Profile::V07 => Some(HumanPages {
                login_url: "/login",
                login_fields: vec![("email", "{email}"), ("return_to", "{return_to}")],
                confirm_url: "/agent/identity/claim/complete",
                confirm_fields: vec![("claim_attempt_token", "{claim_attempt_token}"), ("user_code", "{user_code}")],
                reveal: None,
            }),
            Profile::V07Production => Some(HumanPages {
                login_url: "/login",
                login_fields: vec![("email", "{email}"), ("return_to", "{return_to}")],
                confirm_url: "/agent/identity/claim/view",
                confirm_fields: vec![("token", "{claim_attempt_token}")],
                reveal: Some("<output id=\"user-code\">{user_code}</output>"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_followable_reading_is_described() {
        let config = Config {
            follows: crate::config::FOLLOWABLE.iter().map(|f| f.to_string()).collect(),
            ..Config::default()
        };
        let readings = config.readings();
        for f in crate::config::FOLLOWABLE {
            let (ambiguity, reading) = f.split_once('/').expect("ambiguity/reading");
            assert!(readings.contains(&(ambiguity, reading)), "{f} is not described");
        }
        assert!(Config::default().readings().contains(&("C-07", "v0.1-idempotent")));
    }
}
