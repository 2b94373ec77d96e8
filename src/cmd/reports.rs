//! `baseline write`, `compare` and `diff`: what is read back from earlier runs' reports.

use std::path::PathBuf;

use authmd_conformance::baseline::Baseline;
use authmd_conformance::compare::{self, ReportFile};
use authmd_conformance::exit_code::Ending;
use clap::{Args, Subcommand};

use super::Failure;

/// `baseline`'s subcommands.
#[derive(Subcommand)]
pub enum BaselineCommand {
    /// Write a baseline listing every FAIL of a report.
    Write {
        /// The `report.json` to read.
        #[arg(long)]
        report: PathBuf,
        /// The baseline file to write.
        #[arg(long)]
        out: PathBuf,
    },
}

/// `compare`'s arguments.
#[derive(Args)]
pub struct CompareArgs {
    /// `report.json` files (two or more in all, with those given by `--label`); each column is
    /// named by the folder its report is in.
    reports: Vec<PathBuf>,
    /// A report and the name of its column, `NAME=REPORT` (repeatable), e.g. `--label
    /// acme=runs/acme/report.json`.
    #[arg(long = "label", value_name = "NAME=REPORT")]
    labelled: Vec<String>,
    /// Leave out the cases and ambiguities on which every report agrees.
    #[arg(long)]
    only_differences: bool,
    /// Where to write `comparison.md` and `comparison.html`. Defaults to the current directory.
    #[arg(long, default_value = ".")]
    out: PathBuf,
}

/// `diff`'s arguments.
#[derive(Args)]
pub struct DiffArgs {
    /// The earlier `report.json`.
    before: PathBuf,
    /// The later `report.json`.
    after: PathBuf,
}

fn read(path: &std::path::Path) -> Result<ReportFile, Failure> {
    ReportFile::read(path).map_err(|e| Failure::Usage(e.to_string()))
}

/// Writes a baseline of a report's failures.
pub fn baseline(command: BaselineCommand) -> Result<Ending, Failure> {
    let BaselineCommand::Write { report, out } = command;
    let baseline = Baseline::from_report(&read(&report)?);
    std::fs::write(&out, baseline.to_toml()).map_err(|e| Failure::Usage(format!("--out {}: {e}", out.display())))?;
    println!("{} known failures written to {}", baseline.known_failures.len(), out.display());
    Ok(Ending::Success)
}

/// Writes and prints the matrix of several reports.
pub fn compare(args: CompareArgs) -> Result<Ending, Failure> {
    let mut files = args.reports.iter().map(|p| read(p)).collect::<Result<Vec<_>, _>>()?;
    for labelled in &args.labelled {
        let Some((name, path)) = labelled.split_once('=').filter(|(n, p)| !n.trim().is_empty() && !p.is_empty()) else {
            return Err(Failure::Usage(format!("--label {labelled}: expected NAME=REPORT")));
        };
        let mut file = read(std::path::Path::new(path))?;
        file.name = Some(name.trim().to_string());
        files.push(file);
    }
    if files.len() < 2 {
        return Err(Failure::Usage(format!(
            "compare needs two or more reports (got {}): give them as paths or as --label NAME=REPORT",
            files.len()
        )));
    }
    let (md, html) = compare::matrix(&files, args.only_differences);
    let out = &args.out;
    std::fs::create_dir_all(out).map_err(|e| Failure::Usage(format!("--out {}: {e}", out.display())))?;
    std::fs::write(out.join("comparison.md"), &md).map_err(|e| Failure::Usage(e.to_string()))?;
    std::fs::write(out.join("comparison.html"), html).map_err(|e| Failure::Usage(e.to_string()))?;
    println!("{md}");
    Ok(Ending::Success)
}

/// Prints what changed between two runs; new failures end as a conformance failure.
pub fn diff(args: DiffArgs) -> Result<Ending, Failure> {
    let (a, b) = (read(&args.before)?, read(&args.after)?);
    compare::same_profile(&[a.clone(), b.clone()]).map_err(Failure::Usage)?;
    let d = compare::diff(&a, &b);
    print!("{}", d.render());
    Ok(if d.new_failures.is_empty() {
        Ending::Success
    } else {
        Ending::Conformance
    })
}
