//! Self-validation: every case fails against each reference-server defect it lists in
//! `caught_by`, and every defect is caught by at least one case. One trial per (case, defect)
//! pair and one per defect.

use std::collections::BTreeMap;
use std::sync::Arc;

use authmd_conformance::bundled::Variant;
use authmd_conformance::catalogue::Case;
use authmd_conformance::default_catalogue;
use authmd_conformance::engine::CaseResult;
use authmd_reference_server::{Defect, Defects};
use libtest_mimic::{Arguments, Failed, Trial};

async fn run_with(defect: Defect, cases: Vec<Case>) -> Result<Vec<CaseResult>, String> {
    let done = authmd_conformance::run_bundled(
        [defect].into_iter().collect::<Defects>(),
        Variant::Standard,
        cases,
        None,
        &|_, _, _| {},
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(done.report.cases)
}

fn main() {
    let args = Arguments::from_args();
    let catalogue = default_catalogue().expect("catalogue");
    let mut by_defect: BTreeMap<Defect, Vec<Case>> = BTreeMap::new();
    let mut unknown = Vec::new();
    for case in &catalogue.cases {
        for id in &case.caught_by {
            match id.parse::<Defect>() {
                Ok(d) => by_defect.entry(d).or_default().push(case.clone()),
                Err(_) => unknown.push(format!("{}: {id}", case.id)),
            }
        }
    }
    // A case testing a reading the bundled server does not follow (C-01/A while it follows B)
    // is shown able to fail by the conforming server itself; it needs no defect.
    let other_reading: Vec<Case> = catalogue
        .cases
        .iter()
        .filter(|c| c.caught_by.is_empty() && c.reading.is_some())
        .cloned()
        .collect();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let reading_results: BTreeMap<String, bool> = runtime.block_on(async {
        authmd_conformance::run_bundled(Defects::none(), Variant::Standard, other_reading, None, &|_, _, _| {})
            .await
            .map(|done| done.report.cases.into_iter().map(|c| (c.id.clone(), c.has_findings())).collect())
            .unwrap_or_default()
    });
    // Defects run a few at a time: each has its own server, IdP and mailbox.
    let results: BTreeMap<Defect, Result<Vec<CaseResult>, String>> = runtime.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        let semaphore = Arc::new(tokio::sync::Semaphore::new(4));
        for (defect, cases) in by_defect.clone() {
            let semaphore = semaphore.clone();
            set.spawn(async move {
                let _permit = semaphore.acquire_owned().await;
                (defect, run_with(defect, cases).await)
            });
        }
        let mut out = BTreeMap::new();
        while let Some(Ok((d, r))) = set.join_next().await {
            out.insert(d, r);
        }
        out
    });

    let mut trials = Vec::new();
    // Every case must be shown able to fail: by a defect it lists, or (for a reading the bundled
    // server does not follow) by the conforming server itself.
    for case in &catalogue.cases {
        let name = case.full_name();
        if let Some(&fails) = reading_results.get(&case.id) {
            let reading = case.reading.clone().unwrap_or_default();
            trials.push(
                Trial::test(format!("{name}/fails-under-the-bundled-reading"), move || {
                    if fails {
                        Ok(())
                    } else {
                        Err(Failed::from(format!(
                            "`{name}` tests {reading}, which the bundled server does not follow, yet found nothing: give it a defect"
                        )))
                    }
                })
                .with_kind("coverage"),
            );
            continue;
        }
        let missing = case.caught_by.is_empty();
        trials.push(
            Trial::test(format!("{name}/has-a-defect"), move || {
                if missing {
                    Err(Failed::from(format!("no reference-server defect makes `{name}` fail yet")))
                } else {
                    Ok(())
                }
            })
            .with_kind("coverage"),
        );
    }
    trials.push(Trial::test("catalogue/caught-by-names-real-defects", move || {
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(format!("unknown defect ids: {}", unknown.join(", ")).into())
        }
    }));
    for defect in Defect::ALL.iter().copied() {
        let listed = by_defect.get(&defect).map(|c| c.len()).unwrap_or(0);
        let caught = results
            .get(&defect)
            .and_then(|r| r.as_ref().ok())
            .map(|r| r.iter().filter(|c| c.has_findings()).count())
            .unwrap_or(0);
        trials.push(
            Trial::test(format!("defect/{}/is-caught", defect.id()), move || {
                if listed == 0 {
                    Err(Failed::from(format!("no case lists `{}` in caught_by", defect.id())))
                } else if caught == 0 {
                    Err(Failed::from(format!(
                        "none of the {listed} cases listing `{}` failed with it on",
                        defect.id()
                    )))
                } else {
                    Ok(())
                }
            })
            .with_kind("defect"),
        );
    }
    for (defect, outcome) in results {
        match outcome {
            Err(e) => trials.push(Trial::test(format!("defect/{}/starts", defect.id()), move || {
                Err(Failed::from(e.clone()))
            })),
            Ok(cases) => {
                for result in cases {
                    trials.push(
                        Trial::test(format!("{}/under/{}", result.name, defect.id()), move || {
                            if result.has_findings() {
                                Ok(())
                            } else {
                                Err(Failed::from(format!(
                                    "`{}` passed although `{}` is on ({})",
                                    result.name,
                                    defect.id(),
                                    result.verdict.label()
                                )))
                            }
                        })
                        .with_kind("case×defect"),
                    );
                }
            }
        }
    }
    libtest_mimic::run(&args, trials).exit();
}
