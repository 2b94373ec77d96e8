//! Reports: JSON (versioned; header, cases, footer), JUnit XML, Markdown and offline HTML.
//! Every writer goes through the run's [`Secrets`] so no secret reaches a file.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::outcome::{CaseResult, Verdict};
use crate::redact::{Secrets, inert};

/// Version of the JSON report format (`reports/schema/report-v1.json`).
pub const SCHEMA_VERSION: u32 = 1;

/// The report header.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Header {
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The suite's version.
    pub suite_version: String,
    /// The spec profile (`v0.1`).
    pub profile: String,
    /// The target's base URL.
    pub target: String,
    /// When the run started (RFC 3339).
    pub started_at: String,
    /// The PRM as fetched.
    pub prm: Value,
    /// The AS metadata as fetched.
    pub metadata: Value,
    /// Discovery failure, if any.
    pub discovery_error: Option<String>,
    /// The readings the target config gates on.
    pub readings: BTreeMap<String, String>,
    /// SHA-256 prefix of the target configuration.
    pub config_hash: String,
    /// Which profile the target's metadata speaks (`v0.1`, `later`, `mixed`, `unknown`) and the
    /// names that show it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spoken: Option<crate::profile::Spoken>,
    /// What the profile under test was written against (its manifest's `source`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_source: Option<String>,
    /// The discovery hops made before any case (the evidence when discovery failed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub discovery_exchanges: Vec<crate::outcome::Exchange>,
    /// The AID preflight, when the run started from a domain: the records found, the one
    /// selected, the endpoint proof and its exchanges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preflight: Option<crate::aid::Preflight>,
}

/// Counts by verdict and the run time.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Footer {
    /// Cases run or skipped.
    pub total: usize,
    /// Cases the filters selected; a report whose `total` differs has lost a case.
    #[serde(default)]
    pub selected: usize,
    /// Verdict label → count.
    pub counts: BTreeMap<String, usize>,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
}

/// A whole run; reports are read back into it ([`crate::compare::ReportFile`]).
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Report {
    /// Header.
    pub header: Header,
    /// Cases, sorted by name.
    pub cases: Vec<CaseResult>,
    /// Which reading of each ambiguity the target's answers follow.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ambiguities: Vec<crate::ambiguity::AmbiguityOutcome>,
    /// Footer (always written; a report without one is truncated).
    pub footer: Footer,
    /// The FAIL cases the run's known-failures baseline lists, with its reasons (`area/id` to
    /// reason): JUnit reports them as skipped and `summary.md` in its own section. Not in the
    /// JSON report, which records what the target did.
    #[serde(skip)]
    pub known_failures: BTreeMap<String, String>,
    /// The text of each requirement of the profile (id to text), shown beside the findings in
    /// the HTML report. Not in the JSON report.
    #[serde(skip)]
    pub requirement_texts: BTreeMap<String, String>,
}

impl Report {
    /// Builds the footer from the cases; `selected` is how many the filters chose.
    pub fn new(header: Header, mut cases: Vec<CaseResult>, selected: usize, duration_ms: u64) -> Self {
        cases.sort_by(|a, b| a.name.cmp(&b.name));
        let mut counts = BTreeMap::new();
        for c in &cases {
            *counts.entry(c.verdict.label().to_string()).or_insert(0) += 1;
        }
        let footer = Footer {
            total: cases.len(),
            selected,
            counts,
            duration_ms,
        };
        Self {
            header,
            cases,
            ambiguities: Vec::new(),
            footer,
            known_failures: BTreeMap::new(),
            requirement_texts: BTreeMap::new(),
        }
    }

    /// Does any case gate the run (FAIL, or INCONCLUSIVE)?
    pub fn gating_failures(&self) -> usize {
        self.cases.iter().filter(|c| matches!(c.verdict, Verdict::Fail)).count()
    }

    /// Cases the harness could not decide.
    pub fn inconclusive(&self) -> usize {
        self.cases.iter().filter(|c| matches!(c.verdict, Verdict::Inconclusive(_))).count()
    }

    /// Selected cases missing from the report (a harness bug; the run exits 3).
    pub fn lost(&self) -> usize {
        self.footer.selected.saturating_sub(self.footer.total)
    }

    /// The JSON report, redacted value by value before serialisation, so JSON escaping cannot
    /// hide a secret from the redactor.
    pub fn to_json(&self, secrets: &Secrets) -> String {
        serde_json::to_string_pretty(&self.redacted_value(secrets)).unwrap_or_default()
    }

    /// The report as a JSON value with every secret redacted, string by string.
    fn redacted_value(&self, secrets: &Secrets) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        secrets.redact_value(&mut value);
        value
    }

    /// A Markdown summary fit for a pull-request comment.
    pub fn to_markdown(&self, secrets: &Secrets) -> String {
        // Target text is redacted first, then made inert (no escape sequences, no line breaks
        // that could forge a row), then escaped for a table cell.
        let cell = |s: &str| inert(&secrets.redact(s), false).replace('|', "\\|");
        let spoken = self
            .header
            .spoken
            .as_ref()
            .map(|s| format!(" (the target speaks: {})", cell(&s.speaks)))
            .unwrap_or_default();
        let mut out = format!(
            "# auth.md conformance: {}\n\nProfile {}{spoken} · suite {} · {} cases in {:.1}s\n\n",
            cell(&self.header.target),
            self.header.profile,
            self.header.suite_version,
            self.footer.total,
            self.footer.duration_ms as f64 / 1000.0
        );
        out += "| verdict | count |\n| --- | --- |\n";
        for (k, v) in &self.footer.counts {
            out += &format!("| {k} | {v} |\n");
        }
        // The case the run waited on last: its running time bounds the run's from below.
        if let Some(c) = self
            .cases
            .iter()
            .max_by_key(|c| c.waited_ms + c.duration_ms)
            .filter(|c| c.duration_ms > 0)
        {
            out += &format!(
                "\nCritical path: `{}`, {:.1}s running after {:.1}s waiting for the mock IdP.\n",
                c.name,
                c.duration_ms as f64 / 1000.0,
                c.waited_ms as f64 / 1000.0
            );
        }
        out += &propagation_markdown(&self.cases);
        if let Some(p) = &self.header.preflight {
            out += &preflight_markdown(p, &cell);
        }
        let notable: Vec<&CaseResult> = self
            .cases
            .iter()
            .filter(|c| matches!(c.verdict, Verdict::Fail | Verdict::Warn | Verdict::Inconclusive(_)))
            .filter(|c| !self.known_failures.contains_key(&c.name))
            .collect();
        if !self.known_failures.is_empty() {
            out += "\n## Known failures (the baseline lists them; they do not fail the run)\n\n| case | reason |\n| --- | --- |\n";
            for (case, reason) in &self.known_failures {
                out += &format!("| `{case}` | {} |\n", cell(reason));
            }
        }
        if !notable.is_empty() {
            out += "\n## Failures and warnings\n\n| case | requirements | level | verdict | first finding |\n| --- | --- | --- | --- | --- |\n";
            for c in notable {
                let first = c.findings.first().map(ToString::to_string).unwrap_or_else(|| match &c.verdict {
                    Verdict::Inconclusive(r) => r.clone(),
                    _ => String::new(),
                });
                out += &format!(
                    "| `{}` | {} | {} | {} | {} |\n",
                    c.name,
                    c.requirements.join(", "),
                    c.level.as_str(),
                    c.verdict.label(),
                    cell(&first)
                );
            }
        }
        if !self.ambiguities.is_empty() {
            out += "\n## Ambiguities: which reading the target follows\n\n";
            out += "The readings the profile names for each ambiguity (`ambiguities.toml` beside its cases; v0.1's are those of `../shared/spec/catalogue.md` §C), as the answers show them; only a reading the target config declares can fail a run.\n\n";
            out += "| ambiguity | the target follows | readings | deciding evidence |\n| --- | --- | --- | --- |\n";
            for o in &self.ambiguities {
                let readings = o
                    .readings
                    .iter()
                    .map(|r| format!("{}: {}", r.id, r.observed))
                    .collect::<Vec<_>>()
                    .join("; ");
                let evidence = o
                    .readings
                    .iter()
                    .find_map(|r| r.evidence.clone())
                    .or_else(|| o.note.clone())
                    .unwrap_or_default();
                out += &format!(
                    "| {} {} | {} | {} | {} |\n",
                    o.id,
                    cell(&o.title),
                    cell(&crate::ambiguity::cell(o)),
                    cell(&readings),
                    cell(&evidence)
                );
            }
        }
        out
    }

    /// A self-contained HTML report (`report.html` beside this file): no network, no external
    /// script; failures first with the first one open, pictures drawn as inline SVG (verdicts
    /// per area, the requirement grid, each case's exchanges as a sequence), filters by verdict,
    /// area and level, permalinks, and a drill-down per case with its findings beside the
    /// requirement's text, its exchanges and decoded tokens (their times as instants).
    pub fn to_html(&self, secrets: &Secrets) -> String {
        // Script data: every `<`, `>` and `&` as a JSON escape, so no sequence of the target's
        // text (`</script>`, `<!--<script>`, which moves an HTML parser into its escaped
        // states) can end or hide the data, in any browser's parser. JSON has these bytes
        // only inside strings, where `\u003c` reads back as `<`.
        let data = script_safe(&self.to_json(secrets));
        let requirements = script_safe(&serde_json::to_string(&self.requirement_texts).unwrap_or_else(|_| "{}".into()));
        // The template is plain HTML beside this file; only its two data slots are filled.
        include_str!("report.html")
            .replacen("/*REPORT_DATA*/", &data, 1)
            .replacen("/*REQUIREMENT_DATA*/", &requirements, 1)
    }

    /// Writes `report.json`, `junit.xml`, `summary.md` and `report.html` into `dir`, which
    /// [`prepare_out`] made ready. Each is scanned for every known secret in every escaped form
    /// first; a file that would leak one is not written (fail closed), the others still are,
    /// and the outcome names the case and JSON path where the secret stood. Each file goes to a
    /// fresh temporary name in `dir` (created exclusively, so never through a planted link) and
    /// is renamed into place, so nothing half-written remains.
    pub fn write_all(&self, dir: &Path, secrets: &Secrets) -> Written {
        // The value is kept: where a secret survived, it names the case and JSON path.
        let value = self.redacted_value(secrets);
        let json = serde_json::to_string_pretty(&value).unwrap_or_default();
        let outputs = [
            ("report.json", json),
            ("junit.xml", self.to_junit(secrets)),
            ("summary.md", self.to_markdown(secrets)),
            ("report.html", self.to_html(secrets)),
        ];
        let mut written = Written::default();
        for (name, text) in outputs {
            let leaks = secrets.leaks(&text);
            if !leaks.is_empty() {
                let _ = std::fs::remove_file(dir.join(name));
                let places = leak_places(&value, secrets);
                written.withheld.push(format!(
                    "{name}: not written, it would have leaked secret {} ({})",
                    leaks.join(", "),
                    if places.is_empty() {
                        "where: in the file's own formatting".to_string()
                    } else {
                        places.join("; ")
                    }
                ));
                continue;
            }
            match write_atomically(dir, name, text.as_bytes()) {
                Ok(()) => written.files.push(name.to_string()),
                Err(e) => written.failed.push(format!("{}: {e}", dir.join(name).display())),
            }
        }
        written
    }
}

impl Report {
    /// [`prepare_out`] then [`Report::write_all`]: an error unless every file was written.
    pub fn write_to(&self, dir: &Path, secrets: &Secrets) -> Result<(), String> {
        prepare_out(dir, false)?;
        let written = self.write_all(dir, secrets);
        if written.complete() {
            Ok(())
        } else {
            Err(written
                .withheld
                .iter()
                .chain(&written.failed)
                .cloned()
                .collect::<Vec<_>>()
                .join("; "))
        }
    }
}

/// What [`Report::write_all`] did with each file.
#[derive(Debug, Default)]
pub struct Written {
    /// The files written.
    pub files: Vec<String>,
    /// The files not written because they would have leaked a secret, each with where.
    pub withheld: Vec<String>,
    /// The files the file system refused, each with the error.
    pub failed: Vec<String>,
}

impl Written {
    /// Every file was written.
    pub fn complete(&self) -> bool {
        self.withheld.is_empty() && self.failed.is_empty()
    }
}

/// Where a secret still stands in a redacted report value: `case area/id at /cases/3/…`.
fn leak_places(value: &Value, secrets: &Secrets) -> Vec<String> {
    fn walk(v: &Value, path: &mut String, secrets: &Secrets, out: &mut Vec<String>) {
        match v {
            Value::String(s) if out.len() < 8 && !secrets.leaks(s).is_empty() => out.push(path.clone()),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("/{i}"));
                    walk(item, path, secrets, out);
                    path.truncate(len);
                }
            }
            Value::Object(map) => {
                for (k, item) in map {
                    let len = path.len();
                    path.push_str(&format!("/{}", k.replace('~', "~0").replace('/', "~1")));
                    if !secrets.leaks(k).is_empty() && out.len() < 8 {
                        out.push(format!("{path} (member name)"));
                    }
                    walk(item, path, secrets, out);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }
    let mut paths = Vec::new();
    walk(value, &mut String::new(), secrets, &mut paths);
    paths
        .into_iter()
        .map(|p| {
            let case = p
                .strip_prefix("/cases/")
                .and_then(|rest| rest.split('/').next())
                .and_then(|i| i.parse::<usize>().ok())
                .and_then(|i| value["cases"][i]["name"].as_str());
            match case {
                Some(name) => format!("case {name} at JSON path {p}"),
                None => format!("JSON path {p}"),
            }
        })
        .collect()
}

/// Writes `bytes` to `dir/name` through a temporary file created exclusively in `dir` and
/// renamed over the name: a planted symlink is replaced, never followed, and a failure (a full
/// disk) leaves the previous file or none, never a truncated one.
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, dir.join(name))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Makes `dir` ready for a run's reports before anything is sent: it is created when missing;
/// an existing path must be a real directory (not a file, nor a link, dangling or not) that
/// can be written. With `fresh`, the directory must not exist yet (a run folder is never
/// reused): `dir`, else `dir-2`, `dir-3`, … is created and returned.
pub fn prepare_out(dir: &Path, fresh: bool) -> Result<std::path::PathBuf, String> {
    let show = dir.display();
    let chosen = if fresh {
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        let mut n = 1;
        loop {
            let candidate = if n == 1 {
                dir.to_path_buf()
            } else {
                std::path::PathBuf::from(format!("{}-{n}", dir.display()))
            };
            match std::fs::create_dir(&candidate) {
                Ok(()) => break candidate,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
                Err(e) => return Err(format!("{}: {e}", candidate.display())),
            }
        }
    } else {
        match std::fs::symlink_metadata(dir) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!("{show} is a symbolic link; name a real directory"));
            }
            Ok(m) if !m.is_dir() => return Err(format!("{show} exists and is not a directory")),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir).map_err(|e| format!("{show}: cannot create it: {e}"))?;
            }
            Err(e) => return Err(format!("{show}: {e}")),
        }
        dir.to_path_buf()
    };
    // Writable: a probe file, created exclusively and removed.
    let probe = chosen.join(format!(".authmd-probe-{}", uuid::Uuid::new_v4().simple()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| format!("{}: cannot write there: {e}", chosen.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(chosen)
}

/// The AID preflight as a Markdown section: the records found, the one selected, the proof
/// and the exchanges that show it.
fn preflight_markdown(p: &crate::aid::Preflight, cell: &dyn Fn(&str) -> String) -> String {
    let mut out = format!(
        "\n## AID preflight: {}\n\n`{}` asked of {} · ",
        cell(&p.domain),
        cell(&p.name),
        cell(&p.resolver)
    );
    out += &match &p.error {
        None => "the endpoint is established; auth.md discovery started from it\n\n".to_string(),
        Some(e) => format!(
            "**failed**: {}; no identity material was sent, and the auth.md cases were not run\n\n",
            cell(e)
        ),
    };
    out += "| TXT answer | as an AID record |\n| --- | --- |\n";
    for a in &p.answers {
        let judged = p
            .invalid
            .iter()
            .find(|(raw, _)| raw == a)
            .map(|(_, why)| format!("invalid: {why}"))
            .unwrap_or_else(|| {
                if p.selected.as_ref().is_some_and(|s| &s.raw == a) {
                    "selected"
                } else {
                    "valid or not AID"
                }
                .into()
            });
        out += &format!("| `{}` | {} |\n", cell(a), cell(&judged));
    }
    if let Some(s) = &p.selected {
        out += &format!(
            "\nSelected ({}): `{}` {} at {}{}\n",
            cell(p.source.as_deref().unwrap_or("?")),
            cell(&s.version),
            cell(&s.proto),
            cell(&s.uri),
            s.pka.as_ref().map(|k| format!(", key `{}`", cell(k))).unwrap_or_default()
        );
    }
    if let Some(proof) = &p.proof {
        let binding = match p.domain_bound {
            Some(true) => " (bound to the queried domain, AID v2.1)",
            Some(false) => " (not domain-bound: the endpoint ignored AID-Domain)",
            None => "",
        };
        out += &format!("\nEndpoint proof: {}{binding}\n", cell(proof));
    }
    for w in &p.warnings {
        out += &format!("\n- warning: {}\n", cell(w));
    }
    out += "\n| exchange | answer |\n| --- | --- |\n";
    for e in &p.exchanges {
        let answer = e
            .error
            .clone()
            .unwrap_or_else(|| e.status.map(|s| s.to_string()).unwrap_or_else(|| "answered".into()));
        out += &format!("| {} {} | {} |\n", cell(&e.method), cell(&e.url), cell(&answer));
    }
    out
}

/// JSON made safe to embed in an HTML `<script>` element (see [`Report::to_html`]).
pub fn script_safe(json: &str) -> String {
    json.replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026")
}

/// The revocation propagation the settling steps saw (`settle`), as one line: how many polls held
/// and after how long (nearest-rank p50 and p99, and the longest), and how many never did within
/// the bound. Empty when no step settled.
fn propagation_markdown(cases: &[CaseResult]) -> String {
    let all: Vec<&crate::outcome::Settled> = cases.iter().flat_map(|c| &c.settled).collect();
    if all.is_empty() {
        return String::new();
    }
    let mut held: Vec<u64> = all.iter().filter(|s| s.held).map(|s| s.after_ms).collect();
    held.sort_unstable();
    let rank = |p: usize| held[((held.len() * p).div_ceil(100)).clamp(1, held.len()) - 1];
    let bound = all.iter().map(|s| s.bound_ms).max().unwrap_or(0);
    let past = all.len() - held.len();
    let times = match held.is_empty() {
        true => "none held".to_string(),
        false => format!("held after p50 {} ms, p99 {} ms, max {} ms", rank(50), rank(99), rank(100)),
    };
    format!(
        "\nRevocation propagation across replicas: {} polled credentials {times} (bound {bound} ms); {past} still accepted past the bound.\n",
        all.len()
    )
}
