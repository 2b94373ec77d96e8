//! `lint`: the catalogue rules of [`authmd_conformance::lint`], printed.

use authmd_conformance::exit_code::Ending;

use super::Failure;

/// Prints each problem, or the totals when there is none.
pub fn run() -> Result<Ending, Failure> {
    let lint = authmd_conformance::lint::lint();
    for p in &lint.problems {
        eprintln!("error: {p}");
    }
    if lint.problems.is_empty() {
        println!(
            "{}: the catalogues load, their parameters are typed, their defects exist, their exact-match rules have near-miss families, their indexes, the schema and the vocabulary are current",
            lint.totals.join("; ")
        );
        Ok(Ending::Success)
    } else {
        Err(Ending::Usage(format!("{} catalogue problem(s)", lint.problems.len())))
    }
}
