//! Which reading of each ambiguity a target follows, from the answers to the cases tagged with
//! the readings (`reading = "C-NN/X"`). Gating is the target config's business (only a reading
//! it declares can fail a run); this only tells what the answers show.

use serde::{Deserialize, Serialize};

use crate::catalogue::Ambiguity;
use crate::outcome::{CaseResult, Verdict};

/// What a run shows about one ambiguity.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct AmbiguityOutcome {
    /// `C-NN`.
    pub id: String,
    /// One line.
    pub title: String,
    /// `follows` (one or more readings matched), `none` (every observed reading differed),
    /// `not-observed` (no reading case ran with this config) or `untestable`.
    pub verdict: String,
    /// The readings the target's answers match.
    pub follows: Vec<String>,
    /// Each reading, observed or not.
    pub readings: Vec<ReadingOutcome>,
    /// Why the wire cannot tell, for an untestable ambiguity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What a run shows about one reading.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct ReadingOutcome {
    /// The reading's name.
    pub id: String,
    /// The reading in one line.
    pub says: String,
    /// `matches`, `differs`, `not-observed` or `untested`.
    pub observed: String,
    /// The cases that test it.
    pub cases: Vec<String>,
    /// The deciding finding where the target differs (`case: step: expected … (found …)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
}

/// The outcome of every ambiguity, from a run's case results.
pub fn outcomes(ambiguities: &[Ambiguity], results: &[CaseResult]) -> Vec<AmbiguityOutcome> {
    ambiguities.iter().map(|a| outcome(a, results)).collect()
}

fn outcome(a: &Ambiguity, results: &[CaseResult]) -> AmbiguityOutcome {
    let readings: Vec<ReadingOutcome> = a
        .readings
        .iter()
        .map(|r| {
            let tag = format!("{}/{}", a.id, r.id);
            let cases: Vec<&CaseResult> = results.iter().filter(|c| c.reading.as_deref() == Some(tag.as_str())).collect();
            let ran: Vec<&&CaseResult> = cases
                .iter()
                .filter(|c| !matches!(c.verdict, Verdict::Skip(_) | Verdict::Inconclusive(_)))
                .collect();
            let differing = ran.iter().find(|c| !c.findings.is_empty());
            let observed = match (cases.is_empty(), ran.is_empty(), differing) {
                (true, _, _) => "untested",
                (false, true, _) => "not-observed",
                (false, false, Some(_)) => "differs",
                (false, false, None) => "matches",
            };
            let evidence = differing.and_then(|c| c.findings.first().map(|f| format!("{}: {f}", c.name)));
            ReadingOutcome {
                id: r.id.clone(),
                says: r.says.clone(),
                observed: observed.into(),
                cases: cases.iter().map(|c| c.name.clone()).collect(),
                evidence,
            }
        })
        .collect();
    let follows: Vec<String> = readings.iter().filter(|r| r.observed == "matches").map(|r| r.id.clone()).collect();
    let verdict = if a.untestable.is_some() {
        "untestable"
    } else if !follows.is_empty() {
        "follows"
    } else if readings.iter().any(|r| r.observed == "differs") {
        "none"
    } else {
        "not-observed"
    };
    AmbiguityOutcome {
        id: a.id.clone(),
        title: a.title.clone(),
        verdict: verdict.into(),
        follows,
        readings,
        note: a.untestable.clone(),
    }
}

/// The one-cell summary of an outcome, for tables.
pub fn cell(o: &AmbiguityOutcome) -> String {
    match o.verdict.as_str() {
        "follows" => o.follows.join(" + "),
        "none" => "none of the named readings".into(),
        "not-observed" => "not observable with this config".into(),
        _ => "untestable".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::Reading;
    use crate::outcome::{Finding, FindingKind};

    fn result(name: &str, reading: &str, verdict: Verdict, finding: bool) -> CaseResult {
        let mut r = CaseResult {
            name: name.into(),
            id: name.into(),
            area: "a".into(),
            requirements: Vec::new(),
            level: crate::catalogue::Level::Must,
            reading: Some(reading.into()),
            summary: String::new(),
            verdict,
            findings: Vec::new(),
            exchanges: Vec::new(),
            mail: Vec::new(),
            duration_ms: 0,
            waited_ms: 0,
            settled: Vec::new(),
            note: None,
            file: String::new(),
        };
        if finding {
            r.findings
                .push(Finding::new("s", FindingKind::UnexpectedStatus, "status 200", "400"));
        }
        r
    }

    fn ambiguity() -> Ambiguity {
        let reading = |id: &str| Reading {
            id: id.into(),
            says: id.into(),
            untested: None,
        };
        Ambiguity {
            id: "C-01".into(),
            title: "aud".into(),
            source: "s".into(),
            untestable: None,
            readings: vec![reading("A"), reading("B")],
        }
    }

    #[test]
    fn the_readings_a_target_matches_are_named_with_the_evidence_against_the_others() {
        let results = [
            result("a", "C-01/A", Verdict::Info, true),
            result("b", "C-01/B", Verdict::Pass, false),
        ];
        let o = &outcomes(&[ambiguity()], &results)[0];
        assert_eq!((o.verdict.as_str(), o.follows.clone()), ("follows", vec!["B".to_string()]));
        assert_eq!(o.readings[0].observed, "differs");
        assert!(o.readings[0].evidence.as_deref().is_some_and(|e| e.starts_with("a: s:")));
        assert_eq!(cell(o), "B");
    }

    #[test]
    fn none_and_not_observed_are_told_apart() {
        let none = [
            result("a", "C-01/A", Verdict::Fail, true),
            result("b", "C-01/B", Verdict::Info, true),
        ];
        assert_eq!(outcomes(&[ambiguity()], &none)[0].verdict, "none");
        let skipped = [result(
            "a",
            "C-01/A",
            Verdict::Skip(crate::outcome::SkipReason::needs("x", "needs x")),
            false,
        )];
        let o = &outcomes(&[ambiguity()], &skipped)[0];
        assert_eq!((o.verdict.as_str(), o.readings[1].observed.as_str()), ("not-observed", "untested"));
    }
}
