//! Self-validation: every case fails against each reference-server defect it lists in
//! `caught_by`, and every defect is caught by at least one case. One trial per (case, defect)
//! pair and one per defect.

use std::collections::BTreeMap;
use std::sync::Arc;

use authmd_conformance::catalogue::Case;
use authmd_conformance::default_catalogue;
use authmd_conformance::engine::CaseResult;
use authmd_reference_server::{Defect, Defects};
use libtest_mimic::{Arguments, Failed, Trial};

async fn run_with(defect: Defect, cases: Vec<Case>) -> Result<Vec<CaseResult>, String> {
    let done = authmd_conformance::run_bundled([defect].into_iter().collect::<Defects>(), cases, None, &|_, _, _| {})
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
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
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
    // Every case must be shown able to fail. A case no defect breaks yet is listed as an
    // ignored trial, so the gap stays visible in every run instead of passing silently.
    for case in &catalogue.cases {
        let name = case.full_name();
        let missing = case.caught_by.is_empty();
        trials.push(
            Trial::test(format!("{name}/has-a-defect"), move || {
                if missing {
                    Err(Failed::from(format!("no reference-server defect makes `{name}` fail yet")))
                } else {
                    Ok(())
                }
            })
            .with_kind("coverage")
            .with_ignored_flag(missing),
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
