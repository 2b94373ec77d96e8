//! Reading JSON reports back, and comparing them: a matrix across servers (or one server over
//! time) per case and per ambiguity reading, and a diff of two runs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use crate::outcome::{CaseResult, Verdict};
use crate::report::{Report, SCHEMA_VERSION};

/// The largest file `read` accepts (reports are capped well below it).
pub const MAX_REPORT_BYTES: u64 = 256 << 20;

/// The findings of a case as one comparable text.
fn evidence(case: &CaseResult) -> String {
    serde_json::to_string(&case.findings).unwrap_or_default()
}

/// A JSON report read back: the report as it was written, and where it came from.
#[derive(Clone, Debug)]
pub struct ReportFile {
    /// Where it came from.
    pub path: String,
    /// The report.
    pub report: Report,
    /// The name its column goes by (`compare --label NAME=REPORT`).
    pub name: Option<String>,
}

/// A file that is not a usable report.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ReadError {
    /// The file.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl ReportFile {
    /// Reads a report, refusing files that are not reports, of another schema version, or
    /// truncated (no footer).
    pub fn read(path: &Path) -> Result<Self, ReadError> {
        let label = path.display().to_string();
        let e = |m: String| ReadError {
            path: label.clone(),
            message: m,
        };
        // Reports are bounded when written (docs/limits.md); a far larger file is not one.
        let size = std::fs::metadata(path).map_err(|x| e(format!("cannot read: {x}")))?.len();
        if size > MAX_REPORT_BYTES {
            return Err(e(format!("{size} bytes: larger than any report this suite writes")));
        }
        let bytes = std::fs::read(path).map_err(|x| e(format!("cannot read: {x}")))?;
        let text = String::from_utf8(bytes).map_err(|_| e("not a JSON report (not UTF-8)".into()))?;
        Self::parse(&label, &text)
    }

    /// Parses a report's text; `label` names it in errors.
    pub fn parse(label: &str, text: &str) -> Result<Self, ReadError> {
        let path = label;
        let e = |m: String| ReadError {
            path: label.to_string(),
            message: m,
        };
        let value: Value = serde_json::from_str(text).map_err(|_| e("not a JSON report (not JSON, or cut off mid-way)".into()))?;
        let version = value
            .pointer("/header/schema_version")
            .and_then(Value::as_u64)
            .ok_or_else(|| e("not an authmd-conformance report (no header.schema_version)".into()))?;
        if version != u64::from(SCHEMA_VERSION) {
            return Err(e(format!(
                "report schema version {version}; this build reads version {SCHEMA_VERSION}"
            )));
        }
        if value.get("footer").is_none_or(Value::is_null) {
            return Err(e("truncated report: no footer".into()));
        }
        let report: Report = serde_json::from_value(value).map_err(|x| e(format!("not a report of this build: {x}")))?;
        let (footer, cases) = (&report.footer, &report.cases);
        if footer.total != cases.len() {
            return Err(e(format!(
                "truncated report: the footer counts {} cases, the file holds {}",
                footer.total,
                cases.len()
            )));
        }
        Ok(Self {
            path: path.to_string(),
            report,
            name: None,
        })
    }

    fn label(&self) -> String {
        format!("{} ({})", self.report.header.target, self.report.header.started_at)
    }
}

/// Refuses to mix spec profiles.
pub fn same_profile(reports: &[ReportFile]) -> Result<(), String> {
    let profiles: BTreeSet<&str> = reports.iter().map(|r| r.report.header.profile.as_str()).collect();
    if profiles.len() > 1 {
        return Err(format!(
            "the reports test different spec profiles ({}); compare reports of one profile at a time",
            profiles.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(())
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Escaped for HTML, with Markdown's `code` spans as `<code>` (titles and statements are
/// written in Markdown).
fn html_text(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in esc(s).split('`').enumerate() {
        if i % 2 == 1 {
            out += &format!("<code>{part}</code>");
        } else {
            out += part;
        }
    }
    out
}

/// A Markdown table cell: one line, no column break.
fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// Each report's column name: its `--label`, else the folder it was written to (a run's
/// timestamp), else its position when those repeat.
fn column_names(reports: &[ReportFile]) -> Vec<String> {
    let folder = |r: &ReportFile| {
        Path::new(&r.path)
            .parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| !n.is_empty() && n != ".")
    };
    let names: Vec<String> = reports
        .iter()
        .enumerate()
        .map(|(i, r)| r.name.clone().or_else(|| folder(r)).unwrap_or_else(|| (i + 1).to_string()))
        .collect();
    let unique: BTreeSet<&String> = names.iter().collect();
    if unique.len() == names.len() {
        names
    } else {
        names.iter().enumerate().map(|(i, n)| format!("{} ({n})", i + 1)).collect()
    }
}

/// What a report shows of an ambiguity: the readings it follows, each with its statement.
fn reading_cell(o: &crate::ambiguity::AmbiguityOutcome) -> String {
    if o.verdict != "follows" {
        return crate::ambiguity::cell(o);
    }
    o.follows
        .iter()
        .map(|id| match o.readings.iter().find(|r| &r.id == id) {
            Some(r) if !r.says.is_empty() => format!("{id}: {}", r.says),
            _ => id.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The comparison matrix as Markdown and HTML: one row per case and one column per report, the
/// cases whose verdicts differ first (highlighted in HTML), then which ambiguity reading each
/// report follows, with the readings' statements. With `only_differences`, the rows where the
/// reports agree are left out. The Markdown pastes into an issue as it is.
pub fn matrix(reports: &[ReportFile], only_differences: bool) -> (String, String) {
    // Rows are qualified by profile (`v0.6/token/…`): reports of different profiles stand side
    // by side, and a case of one profile is `—` for a report of another, never confused.
    let qualified = |r: &ReportFile, c: &CaseResult| format!("{}/{}", r.report.header.profile, c.name);
    let names: BTreeSet<String> = reports
        .iter()
        .flat_map(|r| r.report.cases.iter().map(move |c| qualified(r, c)))
        .collect();
    let lookup: Vec<BTreeMap<String, &CaseResult>> = reports
        .iter()
        .map(|r| r.report.cases.iter().map(|c| (qualified(r, c), c)).collect())
        .collect();
    let columns = column_names(reports);
    let head_md = format!(
        "| {{}} | {} |\n| --- |{}\n",
        columns.iter().map(|c| md_cell(c)).collect::<Vec<_>>().join(" | "),
        " --- |".repeat(columns.len())
    );
    let head_html = |first: &str| {
        format!(
            "<tr><th>{first}</th>{}</tr>",
            columns.iter().map(|c| format!("<th>{}</th>", esc(c))).collect::<String>()
        )
    };
    let mut md = String::from("# Conformance comparison\n");
    let mut html = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Conformance comparison</title><style>body{font-family:system-ui,sans-serif}td,th{border-bottom:1px solid #ddd;padding:.2em .5em;text-align:left}.FAIL{color:#b00020;font-weight:bold}.PASS{color:#176f2c}.WARN{color:#a15c00}.split td{background:#fff3cd}</style></head><body><h1>Conformance comparison</h1>",
    );
    let verdicts = |name: &String| -> Vec<&'static str> {
        lookup
            .iter()
            .map(|l| l.get(name.as_str()).map(|c| c.verdict.label()).unwrap_or("—"))
            .collect()
    };
    let (differ, agree): (Vec<&String>, Vec<&String>) = names.iter().partition(|n| verdicts(n).iter().collect::<BTreeSet<_>>().len() > 1);
    let mut sections = vec![("Cases where the reports differ", differ, true)];
    if !only_differences {
        sections.push(("Cases where they agree", agree, false));
    }
    for (title, rows, split) in sections {
        md += &format!("\n## {title} ({})\n\n", rows.len());
        html += &format!("<h2>{title} ({})</h2><table>{}", rows.len(), head_html("case"));
        if rows.is_empty() {
            md += "None.\n";
        } else {
            md += &head_md.replacen("{}", "case", 1);
        }
        for name in rows {
            let v = verdicts(name);
            md += &format!("| `{name}` | {} |\n", v.join(" | "));
            html += &format!(
                "<tr{}><td>{}</td>{}</tr>",
                if split { " class=\"split\"" } else { "" },
                esc(name),
                v.iter().map(|v| format!("<td class=\"{v}\">{v}</td>")).collect::<String>()
            );
        }
        html += "</table>";
    }
    // Ambiguity × report → the reading(s) followed; a row where the reports that observed the
    // ambiguity disagree is marked, so a spec author sees where implementations split.
    md += "\n## Ambiguities: which reading each target follows\n\n";
    md += &head_md.replacen("{}", "ambiguity", 1);
    html += &format!(
        "<h2>Ambiguities: which reading each target follows</h2><table>{}",
        head_html("ambiguity")
    );
    let ids: BTreeSet<(&str, &str)> = reports
        .iter()
        .flat_map(|r| r.report.ambiguities.iter().map(|o| (o.id.as_str(), o.title.as_str())))
        .collect();
    for (id, title) in ids {
        let cells: Vec<Option<&crate::ambiguity::AmbiguityOutcome>> =
            reports.iter().map(|r| r.report.ambiguities.iter().find(|o| o.id == id)).collect();
        // Split: some reading matches in one report and differs in another (a reading one run
        // could not observe is no disagreement).
        let split = cells.iter().flatten().flat_map(|o| o.readings.iter()).any(|r| {
            r.observed == "matches"
                && cells
                    .iter()
                    .flatten()
                    .flat_map(|o| o.readings.iter())
                    .any(|other| other.id == r.id && other.observed == "differs")
        });
        let texts: Vec<String> = cells.iter().map(|c| c.map(reading_cell).unwrap_or_else(|| "—".into())).collect();
        if only_differences && !split && texts.iter().collect::<BTreeSet<_>>().len() < 2 {
            continue;
        }
        let mark = if split { "**" } else { "" };
        md += &format!("| {mark}{id}{mark} {} |", md_cell(title));
        html += &format!(
            "<tr{}><td>{} {}</td>",
            if split { " class=\"split\"" } else { "" },
            esc(id),
            html_text(title)
        );
        for text in &texts {
            md += &format!(" {} |", md_cell(text));
            html += &format!("<td>{}</td>", html_text(text));
        }
        md += "\n";
        html += "</tr>";
    }
    html += "</table><h2>Reports</h2><ul>";
    md += "\n## Reports\n\n";
    for (r, column) in reports.iter().zip(&columns) {
        let speaks = r.report.header.spoken.as_ref().map(|s| s.speaks.as_str()).unwrap_or("unknown");
        let source = r.report.header.profile_source.as_deref().unwrap_or("");
        let profile = format!(
            "profile {} (the target speaks {speaks}; written against {source})",
            r.report.header.profile
        );
        md += &format!(
            "- **{}**: {} — {} — `{}`\n",
            md_cell(column),
            md_cell(&r.label()),
            md_cell(&profile),
            r.path
        );
        html += &format!(
            "<li><b>{}</b>: {} — {} — {}</li>",
            esc(column),
            esc(&r.label()),
            html_text(&profile),
            esc(&r.path)
        );
    }
    html += "</ul></body></html>";
    (md, html)
}

/// What changed from `before` to `after`.
#[derive(Clone, Debug, Default)]
pub struct Diff {
    /// FAIL now, not FAIL before (or new).
    pub new_failures: Vec<String>,
    /// FAIL before, not FAIL now.
    pub fixes: Vec<String>,
    /// Same verdict, different findings.
    pub changed_evidence: Vec<String>,
    /// Verdict changed otherwise (e.g. PASS → SKIP).
    pub other_changes: Vec<(String, String, String)>,
}

/// Compares two runs.
pub fn diff(before: &ReportFile, after: &ReportFile) -> Diff {
    let old: BTreeMap<&str, &CaseResult> = before.report.cases.iter().map(|c| (c.name.as_str(), c)).collect();
    let mut d = Diff::default();
    let failed = |c: &CaseResult| c.verdict == Verdict::Fail;
    for c in &after.report.cases {
        let (now, name) = (c.verdict.label(), c.name.clone());
        match old.get(c.name.as_str()) {
            None if failed(c) => d.new_failures.push(name),
            None => {}
            Some(o) if failed(c) && !failed(o) => d.new_failures.push(name),
            Some(o) if failed(o) && !failed(c) => d.fixes.push(name),
            Some(o) if o.verdict.label() == now && evidence(o) != evidence(c) => d.changed_evidence.push(name),
            Some(o) if o.verdict.label() != now => d.other_changes.push((name, o.verdict.label().to_string(), now.to_string())),
            Some(_) => {}
        }
    }
    d
}

impl Diff {
    /// Human-readable lines.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (title, items) in [
            ("new failures", &self.new_failures),
            ("fixes", &self.fixes),
            ("changed evidence", &self.changed_evidence),
        ] {
            out += &format!("{title}: {}\n", items.len());
            for i in items.iter() {
                out += &format!("  {i}\n");
            }
        }
        out += &format!("other verdict changes: {}\n", self.other_changes.len());
        for (name, a, b) in &self.other_changes {
            out += &format!("  {name}: {a} → {b}\n");
        }
        out
    }
}
