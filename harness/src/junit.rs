//! JUnit XML as CI tools read it: valid against the Jenkins xUnit plugin's `junit-10.xsd` (the
//! schema GitLab, Jenkins and most test-report actions accept; `tests/junit_schema.rs` checks
//! every file the tests write with xmllint). Written by hand rather than by a JUnit crate: the
//! schema allows properties on a suite only and no `skipped` count on the root, and every
//! string that came from the target goes through the run's redactor first.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::outcome::{CaseResult, Verdict};
use crate::redact::{Secrets, inert};
use crate::report::Report;

/// Characters of a failure's `message` attribute (the one line a CI view shows); the whole
/// evidence is in the element's text.
const MESSAGE_CHARS: usize = 1_000;

impl Report {
    /// JUnit XML: one `testsuite` per area. A FAIL is a `failure` (its message the deciding
    /// finding, its text every finding and the case's exchanges), an INCONCLUSIVE an `error`,
    /// a SKIP and a FAIL the baseline lists (`known_failures`) `skipped` with the reason, and
    /// a WARN or INFO passes with its findings in `system-out` (a suite property lists the
    /// WARNs, so a SHOULD miss is visible in any CI view).
    pub fn to_junit(&self, secrets: &Secrets) -> String {
        let clean = |s: &str| inert(&secrets.redact(s), true);
        let mut areas: BTreeMap<&str, Vec<&CaseResult>> = BTreeMap::new();
        for c in &self.cases {
            areas.entry(c.area.as_str()).or_default().push(c);
        }
        let count = |cases: &[&CaseResult], f: &dyn Fn(&CaseResult) -> bool| cases.iter().filter(|c| f(c)).count();
        let known = |c: &CaseResult| matches!(c.verdict, Verdict::Fail) && self.known_failures.contains_key(&c.name);
        let failed = |c: &CaseResult| matches!(c.verdict, Verdict::Fail) && !known(c);
        let errored = |c: &CaseResult| matches!(c.verdict, Verdict::Inconclusive(_));
        let skipped = |c: &CaseResult| matches!(c.verdict, Verdict::Skip(_)) || known(c);
        let all: Vec<&CaseResult> = self.cases.iter().collect();
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            xml,
            "<testsuites name=\"authmd-conformance\" tests=\"{}\" failures=\"{}\" errors=\"{}\" time=\"{}\">",
            all.len(),
            count(&all, &failed),
            count(&all, &errored),
            seconds(self.footer.duration_ms)
        );
        for (area, cases) in areas {
            let _ = writeln!(
                xml,
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{}\" timestamp=\"{}\">",
                attr(area),
                cases.len(),
                count(&cases, &failed),
                count(&cases, &errored),
                count(&cases, &skipped),
                seconds(cases.iter().map(|c| c.duration_ms).sum()),
                attr(&self.header.started_at),
            );
            let warns: Vec<&str> = cases.iter().filter(|c| c.verdict == Verdict::Warn).map(|c| c.id.as_str()).collect();
            xml.push_str("    <properties>\n");
            for (name, value) in [
                ("profile", self.header.profile.as_str()),
                ("target", &clean(&self.header.target)),
                ("warn", &warns.join(",")),
            ] {
                let _ = writeln!(xml, "      <property name=\"{name}\" value=\"{}\"/>", attr(value));
            }
            xml.push_str("    </properties>\n");
            for c in cases {
                let _ = write!(
                    xml,
                    "    <testcase name=\"{}\" classname=\"{}\" time=\"{}\"",
                    attr(&c.id),
                    attr(&c.area),
                    seconds(c.duration_ms)
                );
                let (element, kind, message) = match &c.verdict {
                    Verdict::Fail if known(c) => (
                        "skipped",
                        "known-failure",
                        format!("known failure (baseline): {}", self.known_failures[&c.name]),
                    ),
                    Verdict::Fail => (
                        "failure",
                        c.level.as_str(),
                        c.deciding_finding().map(|f| format!("{f:#}")).unwrap_or_else(|| "FAIL".into()),
                    ),
                    Verdict::Inconclusive(why) => ("error", "INCONCLUSIVE", why.clone()),
                    Verdict::Skip(why) => ("skipped", "SKIP", why.to_string()),
                    Verdict::Warn | Verdict::Info if !c.findings.is_empty() => {
                        let _ = writeln!(
                            xml,
                            ">\n      <system-out>{}</system-out>\n    </testcase>",
                            text(&clean(&evidence(c)))
                        );
                        continue;
                    }
                    Verdict::Pass | Verdict::Warn | Verdict::Info => {
                        xml.push_str("/>\n");
                        continue;
                    }
                };
                let message: String = clean(&message).replace('\n', " ").chars().take(MESSAGE_CHARS).collect();
                let _ = writeln!(
                    xml,
                    ">\n      <{element} type=\"{}\" message=\"{}\">{}</{element}>\n    </testcase>",
                    attr(kind),
                    attr(&message),
                    text(&clean(&evidence(c)))
                );
            }
            xml.push_str("  </testsuite>\n");
        }
        xml.push_str("</testsuites>\n");
        xml
    }
}

/// What a CI view shows under a case: the verdict, the requirements, every finding, the
/// exchanges (method, URL, status) and where the full report is.
fn evidence(c: &CaseResult) -> String {
    let mut out = format!("{} {} ({})\n", c.verdict.label(), c.name, c.requirements.join(", "));
    for f in &c.findings {
        let _ = writeln!(out, "- {f:#}");
    }
    if !c.exchanges.is_empty() {
        out.push_str("exchanges:\n");
    }
    for e in &c.exchanges {
        let answer = match (e.status, &e.error) {
            (Some(s), _) => s.to_string(),
            (None, Some(why)) => format!("no answer: {why}"),
            (None, None) => "no answer".into(),
        };
        let _ = writeln!(out, "  {}: {} {} -> {answer}", e.step, e.method, e.url);
    }
    let _ = write!(out, "full evidence: report.html and report.json, case {}", c.name);
    out
}

/// Seconds with at most three decimals (the schema's `SUREFIRE_TIME`).
fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// An attribute value: XML-escaped, line breaks and tabs as character references.
fn attr(s: &str) -> String {
    escape(s, true)
}

/// Element text: XML-escaped.
fn text(s: &str) -> String {
    escape(s, false)
}

/// `s` with markup escaped and the characters XML 1.0 cannot carry dropped; in an attribute,
/// quotes and whitespace other than spaces as references too (a parser would normalise them).
fn escape(s: &str, attribute: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().filter(|c| xml_char(*c)) {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            '\n' if attribute => out.push_str("&#10;"),
            '\r' if attribute => out.push_str("&#13;"),
            '\t' if attribute => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
    out
}

/// Whether XML 1.0 allows `c` at all.
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_drops_what_xml_cannot_carry() {
        assert_eq!(attr("a\"<b>&\n\u{1}"), "a&quot;&lt;b&gt;&amp;&#10;");
        assert_eq!(text("]]><x>\u{0}\u{fffe}"), "]]&gt;&lt;x&gt;");
        assert_eq!(seconds(1234), "1.234");
        assert_eq!(seconds(5), "0.005");
    }
}
