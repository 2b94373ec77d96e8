//! The documented exit codes (README "Exit codes").

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
