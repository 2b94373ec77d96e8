//! What the scheduler reads off a case: whether it waits for the mock IdP, and how long a chain
//! of requests it makes.

use super::{Action, Case, Need};
use crate::language::SAMPLE_BATCH;

impl Case {
    /// Whether the case touches the mock IdP (mints with its keys, asks it to deliver or
    /// rotate, or needs an issuer the target trusts or refuses): only such a case waits for the
    /// cases that change the IdP, which run alone.
    pub fn uses_idp(&self) -> bool {
        const IDP_NEEDS: &[Need] = &[
            Need::IdJag,
            Need::IdpExclusive,
            Need::SecondIssuer,
            Need::UntrustedIssuer,
            Need::Cimd,
            Need::AmrPolicy,
            Need::JwksClock,
        ];
        fn touches(action: &Action) -> bool {
            match action {
                Action::Mint { .. }
                | Action::RegisterIdJag { .. }
                | Action::ParallelRegisterIdJag { .. }
                | Action::RegisterEmail { .. }
                | Action::Revoke { .. }
                | Action::RotateKey { .. }
                | Action::JwksFault { .. }
                | Action::JwksMaxAge { .. } => true,
                Action::Sample { of, then, .. } => touches(of) || then.iter().any(touches),
                _ => false,
            }
        }
        self.needs.iter().any(|n| IDP_NEEDS.contains(n)) || self.steps.iter().any(|s| touches(&s.action))
    }

    /// About how many requests the case makes one after another (a sample's rounds counted, a
    /// reference count taken as the default 20): the longest start first.
    pub fn expected_round_trips(&self) -> u64 {
        fn trips(action: &Action) -> u64 {
            let count = |c: &Option<crate::language::Count>| match c {
                Some(crate::language::Count::Literal(n)) => *n,
                _ => 20,
            };
            match action {
                // Rounds that run at once cost one round trip per batch; a round from its own
                // address opens a connection (one more).
                Action::Sample {
                    of,
                    then,
                    count: c,
                    spread,
                    ..
                } => {
                    let at_once = (then.is_empty() && of.sends_one_request()) || *spread;
                    let rounds = if at_once {
                        count(c).div_ceil(SAMPLE_BATCH as u64)
                    } else {
                        count(c)
                    };
                    rounds * (trips(of) + then.iter().map(trips).sum::<u64>() + u64::from(*spread))
                }
                Action::ConfirmClaim { .. } | Action::RevealClaim { .. } => 3,
                Action::Check { .. } | Action::Mint { .. } => 0,
                _ => 1,
            }
        }
        self.steps.iter().map(|s| trips(&s.action)).sum()
    }
}
