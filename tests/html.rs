//! The HTML report, loaded in headless Chromium: it renders offline, lists every case, shows the
//! failures, and holds no secret. CI installs Debian's chromium; elsewhere the test says why it
//! did not run (and fails under CI=true, so a missing browser cannot pass silently).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use authmd_conformance::engine::{Harness, Parts};
use authmd_conformance::{bundled, default_catalogue};
use authmd_reference_server::{Defect, Defects};

fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Chromium, or `None` with the reason printed (and a failure under CI=true, so a missing
/// browser cannot pass silently).
fn chromium_or_skip() -> Option<PathBuf> {
    let browser = chromium();
    if browser.is_none() {
        assert!(std::env::var("CI").is_err(), "CI must install chromium (see .ci/run)");
        eprintln!("skipped: no chromium on this machine (apt-get install chromium)");
    }
    browser
}

/// The bundled v0.1 stack with `defects`, and a harness driving it.
async fn bundled_harness(defects: Defects) -> (Arc<Harness>, bundled::Bundled) {
    let stack = bundled::start(defects).await.expect("stack");
    let harness = Arc::new(
        Harness::build(Parts::new(stack.target.clone(), stack.idp.clone()).mail(stack.mail.clone()))
            .await
            .expect("harness"),
    );
    (harness, stack)
}

/// The page as Chromium renders it.
fn rendered(browser: &Path, dir: &Path) -> String {
    let dom = headless(browser, &dir.join("profile"))
        .arg("--dump-dom")
        .arg(format!("file://{}", dir.join("report.html").display()))
        .output()
        .expect("chromium runs");
    String::from_utf8_lossy(&dom.stdout).into_owned()
}

/// Rows rendered with `opening`, not the template literal in the script that makes them.
fn rendered_rows(dom: &str, opening: &str) -> usize {
    dom.match_indices(opening)
        .filter(|(i, m)| !dom[i + m.len()..].starts_with("${"))
        .count()
}

fn headless(browser: &Path, profile: &Path) -> Command {
    let mut c = Command::new(browser);
    // The flags the machine notes give: no sandbox as root, and no background networking on a
    // closed network.
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--virtual-time-budget=2000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn the_html_report_renders_every_case_in_headless_chromium() {
    let Some(browser) = chromium_or_skip() else { return };
    let catalogue = default_catalogue().expect("catalogue");
    let (harness, _stack) = bundled_harness([Defect::AcceptMissingExp].into_iter().collect()).await;
    let report = authmd_conformance::run(harness.clone(), catalogue.cases.clone(), &|_, _, _| {}).await;
    let dir = std::env::temp_dir().join(format!("authmd-html-{}", std::process::id()));
    report.write_to(&dir, &harness.secrets).expect("write");
    let page = dir.join("report.html");
    let profile = dir.join("profile");
    let dom = rendered(&browser, &dir);
    assert_eq!(
        rendered_rows(&dom, "<tr class=\"case\" id=\""),
        catalogue.cases.len(),
        "every case is a row once the script ran"
    );
    // The ambiguity section: one rendered row per ambiguity, naming the reading followed.
    let ambiguity_rows = rendered_rows(&dom, "<tr class=\"ambiguity\" data-id=\"");
    assert_eq!(ambiguity_rows, catalogue.ambiguities.len(), "every ambiguity is a row");
    assert!(catalogue.ambiguities.len() == 43, "the 43 ambiguities of §C are mapped");
    assert!(dom.contains("data-id=\"C-01\"><td>C-01"), "C-01 is rendered");
    assert!(
        dom.contains("idjag/idjag-22-exp-missing") && dom.contains("class=\"FAIL\""),
        "the failure is shown"
    );
    // Failures first, the first one open, with its requirement's text beside the finding, its
    // exchanges as a sequence picture, token times as instants, and a permalink.
    let first_row = dom.find("<tr class=\"case\" id=\"").expect("a case row");
    let first_row = &dom[first_row..first_row + dom[first_row..].find("</tr>").expect("row end")];
    assert!(
        first_row.contains("data-name=\"idjag/idjag-22-exp-missing\"") && first_row.contains("<td class=\"FAIL\">FAIL</td>"),
        "the first row is the FAIL: {}",
        &first_row[..first_row.len().min(300)]
    );
    assert!(first_row.contains("<details open=\"\">"), "the first failure is open");
    assert!(
        first_row.contains("<p class=\"req\"><b>IDJAG-"),
        "the requirement's text is beside the finding"
    );
    assert!(first_row.contains("<svg class=\"sequence\""), "the exchanges as a sequence picture");
    assert!(
        first_row.contains("s after the run started") || first_row.contains("s before the run started"),
        "token times as instants"
    );
    assert!(
        first_row.contains("<a class=\"permalink\" href=\"#case-idjag-idjag-22-exp-missing\""),
        "a permalink"
    );
    // The pictures at the top: verdicts per area, and a cell per requirement the run covered.
    let areas: std::collections::BTreeSet<&str> = report.cases.iter().map(|c| c.area.as_str()).collect();
    let covered: std::collections::BTreeSet<&String> = report.cases.iter().flat_map(|c| &c.requirements).collect();
    assert!(
        dom.contains("<svg id=\"areas\"") && rendered_rows(&dom, "class=\"bar\"") >= areas.len(),
        "verdicts per area"
    );
    assert_eq!(
        rendered_rows(&dom, "class=\"req-cell\""),
        covered.len(),
        "a cell per covered requirement"
    );
    let uncovered = catalogue.requirements.keys().filter(|r| !covered.contains(r)).count();
    assert_eq!(
        rendered_rows(&dom, "class=\"req-cell uncovered\""),
        uncovered,
        "an empty cell per requirement no case checks"
    );
    assert!(dom.contains("fill=\"#b00020\" class=\"req-cell\""), "a failed requirement is red");
    for secret in harness.secrets.all().iter().filter(|s| s.len() > 6) {
        assert!(!dom.contains(secret.as_str()), "a secret reached the rendered page");
    }

    // A screenshot for people (kept when AUTHMD_SCREENSHOT names a path).
    let shot = std::env::var("AUTHMD_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| dir.join("report.png"));
    let status = headless(&browser, &profile)
        .arg("--window-size=1280,900")
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .status()
        .expect("chromium runs");
    assert!(status.success() && shot.exists(), "screenshot written");
    if std::env::var("AUTHMD_SCREENSHOT").is_err() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_html_report_shows_the_aid_preflight() {
    let Some(browser) = chromium_or_skip() else { return };
    let aid = authmd_conformance::aid_catalogue().expect("AID catalogue");
    let (harness, _stack) = authmd_conformance::bundled_harness(
        Defects::none(),
        bundled::Shape::Full,
        authmd_conformance::deployment::Deployment::named("aid").expect("the aid deployment"),
        None,
        authmd_conformance::redact::Secrets::default(),
    )
    .await
    .expect("the AID stack");
    let report = authmd_conformance::run(harness.clone(), aid.cases.clone(), &|_, _, _| {}).await;
    let dir = std::env::temp_dir().join(format!("authmd-html-aid-{}", std::process::id()));
    report.write_to(&dir, &harness.secrets).expect("write");
    let dom = rendered(&browser, &dir);
    assert!(dom.contains("<section id=\"preflight\">"), "the preflight section is shown");
    assert!(dom.contains("_agent.svc.authmd.test asked of 127.0.0.1:"), "it names the lookup");
    assert!(dom.contains("proof: verified"), "it gives the proof result");
    assert!(dom.contains("<td>selected</td>"), "it marks the selected record");
    assert!(dom.contains("DNS TXT dns://127.0.0.1:"), "the lookup is an exchange");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Target text that switches an HTML parser into script-data escape states (`<!--<script>`)
/// must not swallow the embedded data: every case still renders.
#[tokio::test(flavor = "multi_thread")]
async fn target_text_cannot_break_out_of_the_embedded_data() {
    let Some(browser) = chromium_or_skip() else { return };
    let catalogue = default_catalogue().expect("catalogue");
    let cases: Vec<_> = catalogue.cases.iter().take(6).cloned().collect();
    let (harness, _stack) = bundled_harness(Defects::none()).await;
    let mut report = authmd_conformance::run(harness.clone(), cases.clone(), &|_, _, _| {}).await;
    let hostile = "<!--<script> </script><script>document.title='owned'</script> --> <!-- <SCRIPT > \u{2028}";
    for case in &mut report.cases {
        for exchange in &mut case.exchanges {
            exchange.response_body = hostile.to_string();
            exchange.response_headers.push(("x-hostile".into(), hostile.into()));
        }
        case.summary = format!("{} {hostile}", case.summary);
    }
    let dir = std::env::temp_dir().join(format!("authmd-html-script-{}", std::process::id()));
    report.write_to(&dir, &harness.secrets).expect("write");
    let dom = rendered(&browser, &dir);
    assert_eq!(rendered_rows(&dom, "<tr class=\"case\" id=\""), cases.len(), "every case is a row");
    assert!(!dom.contains("<title>owned"), "target text ran as script");
    let _ = std::fs::remove_dir_all(&dir);
}
