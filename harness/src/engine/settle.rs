//! Steps that may take a while to hold (`settle`): a revocation made through one replica
//! reaching another. The step runs again, a little later each time, until its expectation holds
//! or the bound the target declares has passed; past it, the findings say how long the harness
//! waited, so the report shows the propagation time the target exceeded.

use std::time::{Duration, Instant};

use super::context::CaseCtx;
use crate::language::Settle;

/// The first pause between tries, doubled each time up to [`LONGEST_PAUSE`]: a few tries in the
/// first tens of milliseconds, and a bounded number over a long declared bound.
const FIRST_PAUSE: Duration = Duration::from_millis(20);
const LONGEST_PAUSE: Duration = Duration::from_millis(500);

/// One settling step's tries.
pub(super) struct Settling {
    step: String,
    what: Settle,
    bound: Duration,
    started: Instant,
    pause: Duration,
}

impl Settling {
    /// Starts timing a step that settles on `what`, under the bound `ctx`'s target declares,
    /// from the end of the last step that does not settle (the revocation, say): several
    /// settling steps in a row each measure the propagation, not the time since the one before.
    pub(super) fn new(ctx: &CaseCtx<'_>, what: Settle, step: &str) -> Self {
        let ms = match what {
            Settle::Revocation => ctx.h.target.replicas.as_ref().map_or(0, |r| r.revocation_propagation_ms),
        };
        Self {
            step: step.to_string(),
            what,
            bound: Duration::from_millis(ms),
            started: ctx.last_done,
            pause: FIRST_PAUSE,
        }
    }

    /// After a try that recorded the findings from `findings_before` on: whether to try again
    /// (those findings dropped, after a pause), or to stop (it held, or the bound has passed,
    /// and then its findings say how long it was waited for).
    pub(super) async fn again(&mut self, ctx: &mut CaseCtx<'_>, findings_before: usize) -> bool {
        let elapsed = self.started.elapsed();
        let held = ctx.findings.len() == findings_before;
        if held || elapsed >= self.bound {
            ctx.settled.push(crate::outcome::Settled {
                step: self.step.clone(),
                waits_for: self.what,
                held,
                after_ms: elapsed.as_millis() as u64,
                bound_ms: self.bound.as_millis() as u64,
            });
        }
        if held {
            return false;
        }
        if elapsed >= self.bound {
            let setting = match self.what {
                Settle::Revocation => "[replicas].revocation_propagation_ms",
            };
            for f in &mut ctx.findings[findings_before..] {
                f.found = format!(
                    "{} (still so {} ms after the step before; the bound is {} ms, {setting})",
                    f.found,
                    elapsed.as_millis(),
                    self.bound.as_millis()
                );
            }
            return false;
        }
        ctx.findings.truncate(findings_before);
        tokio::time::sleep(self.pause.min(self.bound - elapsed)).await;
        self.pause = (self.pause * 2).min(LONGEST_PAUSE);
        true
    }
}
