//! Self-validation: every case fails against each reference-server defect it lists in
//! `caught_by`, and every defect is caught by at least one case. One trial per (case, defect)
//! pair and one per defect. Trials run lazily: a filter (`-- under/no-jwks-cache`) starts only
//! the stacks it needs.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use authmd_conformance::bundled::{Bundled, Shape};
use authmd_conformance::catalogue::Case;
use authmd_conformance::default_catalogue;
use authmd_conformance::deployment::Deployment;
use authmd_conformance::engine::{CaseResult, Harness};
use authmd_conformance::redact::Secrets;
use authmd_reference_server::{Defect, Defects};
use libtest_mimic::{Arguments, Failed, Trial};

/// Which stack: the defect on, the deployment's shape, and the profile's deployment.
type StackKey = (Option<Defect>, Shape, String);

/// A started stack and the harness that drives it.
type Started = (Arc<Harness>, Bundled);

/// Stacks keyed by (defect, shape), started on first use; results cached by (defect, case), so
/// a filtered run starts only the stacks its trials need and runs each case once.
struct Pool {
    runtime: tokio::runtime::Runtime,
    /// The deployment each case runs against: the one speaking the profile it came from.
    deployment: Arc<HashMap<String, &'static Deployment>>,
    stacks: Mutex<HashMap<StackKey, Started>>,
    results: Mutex<HashMap<(Option<Defect>, String), CaseResult>>,
}

impl Pool {
    fn run(&self, defect: Option<Defect>, case: &Case, index: usize) -> Result<CaseResult, Failed> {
        let key = (defect, case.id.clone());
        if let Some(done) = self.results.lock().map_err(|_| Failed::from("poisoned"))?.get(&key) {
            return Ok(done.clone());
        }
        let shape = Shape::for_case(case);
        let deployment = *self
            .deployment
            .get(&case.id)
            .ok_or_else(|| Failed::from(format!("{} has no deployment", case.id)))?;
        let harness = {
            let mut stacks = self.stacks.lock().map_err(|_| Failed::from("poisoned"))?;
            match stacks.get(&(defect, shape, deployment.name.clone())) {
                Some((h, _)) => h.clone(),
                None => {
                    let defects: Defects = defect.into_iter().collect();
                    let (h, stack) = self
                        .runtime
                        .block_on(authmd_conformance::bundled_harness(
                            defects,
                            shape,
                            deployment,
                            None,
                            Secrets::default(),
                        ))
                        .map_err(|e| Failed::from(format!("the stack with {defect:?} does not start: {e}")))?;
                    stacks.insert((defect, shape, deployment.name.clone()), (h.clone(), stack));
                    h
                }
            }
        };
        let result = self.runtime.block_on(harness.run_case(case, index));
        self.results
            .lock()
            .map_err(|_| Failed::from("poisoned"))?
            .insert(key, result.clone());
        Ok(result)
    }
}

fn main() {
    let mut args = Arguments::from_args();
    // Trials wait on servers, not the CPU.
    args.test_threads.get_or_insert(16);
    // Every profile's cases, each run against the deployment that speaks its profile, and the
    // AID preflight's against the default one publishing AID: every defect must be caught by
    // some case.
    let mut catalogue = default_catalogue().expect("catalogue");
    catalogue.cases.clear();
    let mut deployment: HashMap<String, &'static Deployment> = HashMap::new();
    let mut unspoken = Vec::new();
    let mut add = |cases: Vec<Case>, on: &'static Deployment, catalogue: &mut authmd_conformance::catalogue::Catalogue| {
        for case in cases {
            // An inherited case runs once, under the profile it came from first (`insert`
            // would hand it to the last profile inheriting it).
            if let std::collections::hash_map::Entry::Vacant(slot) = deployment.entry(case.id.clone()) {
                slot.insert(on);
                catalogue.cases.push(case);
            }
        }
    };
    // The cross-replica cases need replicas: the `replicas` deployment.
    let replicas = Deployment::named("replicas").expect("the replicas deployment");
    for profile in authmd_conformance::profiles() {
        let cases = authmd_conformance::profile_catalogue(&profile).expect("profile catalogue").cases;
        let (across, cases): (Vec<Case>, Vec<Case>) = cases
            .into_iter()
            .partition(|c| c.needs.contains(&authmd_conformance::catalogue::Need::Replicas));
        add(across, replicas, &mut catalogue);
        match Deployment::default_for(&profile, false).expect("deployments") {
            Some(on) => add(cases, on, &mut catalogue),
            None => unspoken.push(profile),
        }
    }
    let aid = Deployment::default_for(&authmd_conformance::default_profile(), true)
        .expect("deployments")
        .expect("the default profile has a default AID deployment");
    // The cases about the aid1 handshake need a record with an aid1 key: the `aid1` deployment.
    let aid1 = Deployment::named("aid1").expect("the aid1 deployment");
    let (v1, rest): (Vec<Case>, Vec<Case>) = authmd_conformance::aid_catalogue()
        .expect("AID catalogue")
        .cases
        .into_iter()
        .partition(|c| c.needs.contains(&authmd_conformance::catalogue::Need::Pka1));
    add(rest, aid, &mut catalogue);
    add(v1, aid1, &mut catalogue);
    let deployment = Arc::new(deployment);
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
    let pool = Arc::new(Pool {
        runtime: tokio::runtime::Runtime::new().expect("tokio runtime"),
        deployment,
        stacks: Mutex::new(HashMap::new()),
        results: Mutex::new(HashMap::new()),
    });
    let index_of: HashMap<String, usize> = catalogue.cases.iter().enumerate().map(|(i, c)| (c.id.clone(), i)).collect();
    let other_reading: Vec<String> = other_reading.iter().map(|c| c.id.clone()).collect();
    let mut trials = Vec::new();
    // Every case must be shown able to fail: by a defect it lists, or (for a reading the bundled
    // server does not follow) by the conforming server itself.
    for case in &catalogue.cases {
        let name = case.full_name();
        if other_reading.contains(&case.id) {
            let reading = case.reading.clone().unwrap_or_default();
            let (pool, case, index) = (pool.clone(), case.clone(), index_of[&case.id]);
            trials.push(
                Trial::test(format!("{name}/fails-under-the-bundled-reading"), move || {
                    if pool.run(None, &case, index)?.has_findings() {
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
    trials.push(Trial::test("catalogue/every-profile-has-a-deployment", move || {
        if unspoken.is_empty() {
            Ok(())
        } else {
            Err(format!("no bundled deployment speaks {}", unspoken.join(", ")).into())
        }
    }));
    trials.push(Trial::test("catalogue/caught-by-names-real-defects", move || {
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(format!("unknown defect ids: {}", unknown.join(", ")).into())
        }
    }));
    for defect in Defect::ALL.iter().copied() {
        let listed = by_defect.get(&defect).cloned().unwrap_or_default();
        let (pool, index_of) = (pool.clone(), index_of.clone());
        trials.push(
            Trial::test(format!("defect/{}/is-caught", defect.id()), move || {
                if listed.is_empty() {
                    return Err(Failed::from(format!("no case lists `{}` in caught_by", defect.id())));
                }
                for case in &listed {
                    if pool.run(Some(defect), case, index_of[&case.id])?.has_findings() {
                        return Ok(());
                    }
                }
                Err(Failed::from(format!(
                    "none of the {} cases listing `{}` failed with it on",
                    listed.len(),
                    defect.id()
                )))
            })
            .with_kind("defect"),
        );
    }
    for (defect, cases) in by_defect {
        for case in cases {
            let (pool, index) = (pool.clone(), index_of[&case.id]);
            trials.push(
                Trial::test(format!("{}/under/{}", case.full_name(), defect.id()), move || {
                    let result = pool.run(Some(defect), &case, index)?;
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
    libtest_mimic::run(&args, trials).exit();
}
