//! How a command ends, and the documented exit code of each ending (README "In CI", docs/ci.md).
//! [`Ending::code`] is the one place that maps them.

/// Every gating case passed (and the baseline matched).
pub const SUCCESS: i32 = 0;
/// Conformance failures: a MUST case failed, or a baseline entry went stale.
pub const CONFORMANCE: i32 = 1;
/// Usage, configuration or catalogue error.
pub const USAGE: i32 = 2;
/// Target unreachable, or the harness could not decide.
pub const HARNESS: i32 = 3;
/// The filters selected no case.
pub const NOTHING_SELECTED: i32 = 4;

/// Why a command ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Ending {
    /// Done, and nothing gating failed.
    Success,
    /// Gating failures: MUST cases, unlisted or stale baseline entries, new failures in a diff.
    Conformance,
    /// A bad argument, configuration or catalogue (the message says which).
    Usage(String),
    /// The harness could not decide: no answer, a harness fault, or an output that would leak.
    Harness(String),
    /// Some cases were INCONCLUSIVE, so the run cannot vouch for the target.
    Inconclusive,
    /// The filters selected no case.
    NothingSelected,
    /// The target speaks another auth.md than the profile selected: nothing was judged. The
    /// message names the profile it speaks.
    WrongProfile(String),
    /// Cases were selected but no gating one could run (every one skipped or undecided): a
    /// run that proved nothing does not pass.
    NothingRan(String),
}

impl Ending {
    /// The exit code.
    pub fn code(&self) -> i32 {
        match self {
            Self::Success => SUCCESS,
            Self::Conformance => CONFORMANCE,
            Self::Usage(_) | Self::WrongProfile(_) => USAGE,
            Self::Harness(_) | Self::Inconclusive | Self::NothingRan(_) => HARNESS,
            Self::NothingSelected => NOTHING_SELECTED,
        }
    }

    /// The message to print on stderr, if the ending carries one.
    pub fn message(&self) -> Option<&str> {
        match self {
            Self::Usage(m) | Self::Harness(m) | Self::WrongProfile(m) | Self::NothingRan(m) => Some(m),
            Self::Success | Self::Conformance | Self::Inconclusive | Self::NothingSelected => None,
        }
    }

    /// The ending of a finished run: gating failures first, then undecided cases.
    pub fn of_run(gating_failures: usize, inconclusive: usize) -> Self {
        if gating_failures > 0 {
            Self::Conformance
        } else if inconclusive > 0 {
            Self::Inconclusive
        } else {
            Self::Success
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_outrank_undecided_cases() {
        assert_eq!(Ending::of_run(1, 3).code(), CONFORMANCE);
        assert_eq!(Ending::of_run(0, 3).code(), HARNESS);
        assert_eq!(Ending::of_run(0, 0).code(), SUCCESS);
        assert_eq!(Ending::Usage("x".into()).message(), Some("x"));
    }
}
