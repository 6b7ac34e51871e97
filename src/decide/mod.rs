//! Pure policy: what augur answers rollout tools, from a run's state and
//! the operator gates. No I/O, no clock.
//!
//! Flagger (`pkg/controller/webhook.go`, `scheduler_hooks.go`): only
//! 200-202 lets a hook pass; any other status halts (and counts a failed
//! check for `pre-rollout`/`rollout`); 5xx and 429 are retried by its HTTP
//! client with the body dropped, so verdicts are never 5xx. A `rollback`
//! hook answering 2xx rolls the canary back. Argo Rollouts' `web` provider
//! (`metricproviders/webmetric`) turns non-2xx into Error measurements, so
//! its endpoint always answers 2xx with a verdict.

use serde::{Deserialize, Serialize};

use crate::analysis::run::{RunState, Seen};

/// What can be decided about a rollout revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// Go on (Argo: past the pause or analysis step; Flagger: skip analysis).
    Promote,
    /// Argo: straight to 100%.
    PromoteFull,
    /// Stop the canary and go back to stable.
    Abort,
    /// Argo: retry an aborted rollout.
    Retry,
    /// Hold for a person.
    Pause,
    /// Go on after a pause.
    Resume,
    /// Undo a rollout that already finished.
    Rollback,
}

impl Decision {
    /// Every decision.
    pub const ALL: [Decision; 7] = [
        Decision::Promote,
        Decision::PromoteFull,
        Decision::Abort,
        Decision::Retry,
        Decision::Pause,
        Decision::Resume,
        Decision::Rollback,
    ];

    /// The name in URLs, configs, SQLite and idempotency keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Promote => "promote",
            Decision::PromoteFull => "promote-full",
            Decision::Abort => "abort",
            Decision::Retry => "retry",
            Decision::Pause => "pause",
            Decision::Resume => "resume",
            Decision::Rollback => "rollback",
        }
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Decision {
    type Err = String;

    /// An unknown name is an error naming it and the known ones.
    fn from_str(s: &str) -> Result<Decision, String> {
        Decision::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown decision {s:?}; expected promote, promote-full, abort, retry, pause, resume or rollback"
                )
            })
    }
}

/// Flagger's webhook types (`CanaryWebhook.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// Before a new revision starts.
    ConfirmRollout,
    /// First analysis tick.
    PreRollout,
    /// Every later analysis tick.
    Rollout,
    /// Before the canary weight grows.
    ConfirmTrafficIncrease,
    /// Before promotion.
    ConfirmPromotion,
    /// After success or rollback.
    PostRollout,
    /// Every tick: 2xx rolls back.
    Rollback,
    /// Every Kubernetes event Flagger records.
    Event,
}

impl Hook {
    /// The URL path segment (Flagger's type name).
    pub fn parse(s: &str) -> Option<Hook> {
        Some(match s {
            "confirm-rollout" => Hook::ConfirmRollout,
            "pre-rollout" => Hook::PreRollout,
            "rollout" => Hook::Rollout,
            "confirm-traffic-increase" => Hook::ConfirmTrafficIncrease,
            "confirm-promotion" => Hook::ConfirmPromotion,
            "post-rollout" => Hook::PostRollout,
            "rollback" => Hook::Rollback,
            "event" => Hook::Event,
            _ => return None,
        })
    }

    /// Flagger's type name.
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::ConfirmRollout => "confirm-rollout",
            Hook::PreRollout => "pre-rollout",
            Hook::Rollout => "rollout",
            Hook::ConfirmTrafficIncrease => "confirm-traffic-increase",
            Hook::ConfirmPromotion => "confirm-promotion",
            Hook::PostRollout => "post-rollout",
            Hook::Rollback => "rollback",
            Hook::Event => "event",
        }
    }

    /// The gate a confirm hook waits on.
    pub fn gate(self) -> Option<&'static str> {
        match self {
            Hook::ConfirmRollout | Hook::ConfirmTrafficIncrease | Hook::ConfirmPromotion => {
                Some("confirm")
            }
            Hook::Rollback => Some("rollback"),
            _ => None,
        }
    }
}

/// An HTTP answer to a rollout tool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// 200 to proceed, 403 to halt.
    pub status: u16,
    /// One line a person reads in Flagger's events.
    pub reason: String,
}

fn answer(status: u16, reason: impl Into<String>) -> Answer {
    Answer {
        status,
        reason: reason.into(),
    }
}

/// `pre-rollout`/`rollout`: proceed while the analysis passes or is still
/// gathering evidence; halt (403) once it failed, erred, was inconclusive
/// or was cancelled.
/// A run that has measured intervals without any data halts too: no
/// data must never let a canary advance.
pub fn flagger_analysis(state: RunState, seen: Seen, message: &str) -> Answer {
    match state {
        RunState::Running if seen == Seen::NoData => {
            answer(403, format!("analysis has no data yet: {message}"))
        }
        RunState::Running => answer(200, format!("analysis running: {message}")),
        RunState::Passed => answer(200, format!("analysis passed: {message}")),
        RunState::Failed => answer(403, format!("analysis failed: {message}")),
        RunState::Error => answer(403, format!("analysis error: {message}")),
        RunState::Inconclusive => answer(403, format!("analysis inconclusive: {message}")),
        RunState::Cancelled => answer(403, format!("analysis cancelled: {message}")),
    }
}

/// `rollback`: 200 (roll back now) only when an analysis of this revision
/// failed or an operator opened the rollback gate; otherwise 403.
pub fn flagger_rollback(failed: Option<&str>, gate_open: bool) -> Answer {
    match (failed, gate_open) {
        (_, true) => answer(200, "rollback requested by an operator"),
        (Some(why), false) => answer(200, format!("rolling back: {why}")),
        (None, false) => answer(
            403,
            "no rollback: no failed analysis and the rollback gate is closed",
        ),
    }
}

/// `confirm-*`: 200 when the operator opened the gate, else 403.
pub fn flagger_gate(hook: Hook, open: bool) -> Answer {
    if open {
        answer(200, format!("{}: gate open", hook.as_str()))
    } else {
        answer(
            403,
            format!(
                "{}: gate closed (open it with POST /gate/open)",
                hook.as_str()
            ),
        )
    }
}

/// The verdict an Argo Rollouts `web` metric reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Proceed (`successCondition: result.verdict == "pass"`).
    Pass,
    /// Abort (`failureCondition: result.verdict == "fail"`).
    Fail,
    /// Neither: Argo pauses the rollout for a person.
    Inconclusive,
}

impl Verdict {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// The verdict so far: a running analysis without a failure passes (Argo
/// polls again next interval); an analysis whose queries keep failing is
/// inconclusive, not a failure: a broken metrics pipeline should pause the
/// rollout for a person, neither promote nor abort it.
///
/// A running analysis whose measured intervals all lacked data is
/// inconclusive; one that has measured nothing yet passes (Argo takes its
/// first measurement when the analysis starts, before augur's first
/// interval; use `count` of 2 or more, or `initialDelay`).
pub fn argo_verdict(state: RunState, seen: Seen) -> Verdict {
    match state {
        RunState::Running if seen == Seen::NoData => Verdict::Inconclusive,
        RunState::Running | RunState::Passed => Verdict::Pass,
        RunState::Failed => Verdict::Fail,
        RunState::Error | RunState::Inconclusive | RunState::Cancelled => Verdict::Inconclusive,
    }
}

/// What a finished analysis bound to a rollout decides: a failure aborts;
/// an inconclusive or erring analysis pauses the rollout for a person; a
/// pass promotes only when asked to (otherwise the rollout tool moves on
/// by itself); a cancelled run decides nothing.
pub fn on_run_finished(state: RunState, promote_on_pass: bool) -> Option<Decision> {
    match state {
        RunState::Failed => Some(Decision::Abort),
        RunState::Inconclusive | RunState::Error => Some(Decision::Pause),
        RunState::Passed if promote_on_pass => Some(Decision::Promote),
        RunState::Passed | RunState::Cancelled | RunState::Running => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flagger_answers() {
        assert_eq!(
            flagger_analysis(RunState::Running, Seen::Data, "x").status,
            200
        );
        assert_eq!(
            flagger_analysis(RunState::Running, Seen::Nothing, "x").status,
            200
        );
        assert_eq!(
            flagger_analysis(RunState::Running, Seen::NoData, "x").status,
            403
        );
        assert_eq!(
            flagger_analysis(RunState::Failed, Seen::Data, "errors").status,
            403
        );
        assert_eq!(
            flagger_analysis(RunState::Failed, Seen::Data, "errors").reason,
            "analysis failed: errors"
        );
        assert_eq!(flagger_rollback(None, false).status, 403);
        assert_eq!(flagger_rollback(Some("e"), false).status, 200);
        assert_eq!(flagger_rollback(None, true).status, 200);
        assert_eq!(flagger_gate(Hook::ConfirmPromotion, false).status, 403);
        for h in [
            "confirm-rollout",
            "pre-rollout",
            "rollout",
            "confirm-traffic-increase",
            "confirm-promotion",
            "post-rollout",
            "rollback",
            "event",
        ] {
            assert_eq!(Hook::parse(h).unwrap().as_str(), h);
        }
        assert_eq!(
            argo_verdict(RunState::Error, Seen::Data),
            Verdict::Inconclusive
        );
        assert_eq!(
            argo_verdict(RunState::Running, Seen::NoData),
            Verdict::Inconclusive
        );
        assert_eq!(
            argo_verdict(RunState::Running, Seen::Nothing),
            Verdict::Pass
        );
    }
}
