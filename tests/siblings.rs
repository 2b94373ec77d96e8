//! Two texts call themselves v0.7.0 (11fa014 and the production dialect, 9f8a4ee): the
//! metadata's values decide which one a target speaks, and a target speaking one is never
//! judged by the other (nor by v0.6, whose metadata 11fa014 shares). Each profile is run against
//! each bundled deployment of another family: discovery names the profile the target speaks,
//! and every case is skipped, none judged.

use authmd_conformance::bundled::Shape;
use authmd_conformance::deployment::Deployment;
use authmd_conformance::engine::Verdict;
use authmd_conformance::redact::Secrets;
use authmd_reference_server::Defects;

/// The profile families the metadata can tell apart: v0.6 and 11fa014 list the claim grant,
/// the production dialect does not.
fn family(profile: &str) -> &'static str {
    if profile == "v0.7-production" {
        "production"
    } else {
        "claim-grant"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_never_judges_a_sibling_text() {
    let profiles = ["v0.6", "v0.7", "v0.7-production"];
    for deployment_profile in profiles {
        let deployment = Deployment::default_for(deployment_profile, false)
            .expect("deployments")
            .expect("a deployment speaks the profile");
        for profile in profiles.iter().filter(|p| family(p) != family(deployment_profile)) {
            let (harness, _stack) = authmd_conformance::bundled_harness_configured(
                Defects::none(),
                Shape::Full,
                deployment,
                None,
                Secrets::default(),
                authmd_conformance::bundled::AID_DOMAIN,
                |t| t.profile = profile.to_string(),
            )
            .await
            .expect("the stack starts");
            let spoken = harness.discovery.spoken.clone().expect("the metadata was judged");
            assert_eq!(spoken.speaks, "sibling", "{profile} against {deployment_profile}: {spoken:?}");
            assert!(spoken.is_other_profile());
            let error = harness.discovery.error.clone().unwrap_or_default();
            let expected = if family(deployment_profile) == "production" {
                "v0.7-production"
            } else {
                "v0.6"
            };
            assert!(
                error.contains(&format!("speaks {expected}")) && error.contains("--profile"),
                "{profile} against {deployment_profile}: {error}"
            );
            let cases = authmd_conformance::profile_catalogue(profile).expect("catalogue").cases;
            let count = cases.len();
            let report = authmd_conformance::run(harness, cases, &|_, _, _| {}).await;
            assert_eq!(report.cases.len(), count);
            for case in &report.cases {
                assert!(
                    matches!(case.verdict, Verdict::Skip(_)),
                    "{profile} against {deployment_profile}: {} was judged ({:?})",
                    case.name,
                    case.verdict
                );
            }
        }
    }
}
