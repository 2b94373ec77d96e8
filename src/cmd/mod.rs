//! One module per command: each parses its arguments and calls the library. What they share
//! (the case filter, a profile's catalogue, defect ids) is here.

pub mod catalogue;
pub mod lint;
mod progress;
pub mod reports;
pub mod run;
pub mod serve;
pub mod setup;

use authmd_conformance::Filter;
use authmd_conformance::catalogue::{Catalogue, Level};
use authmd_conformance::exit_code::Ending;
use authmd_reference_server::{Defect, Defects};
use clap::Args;

/// A command's failure: an [`Ending`] that carries its message.
pub type Failure = Ending;

/// Which cases a command selects.
#[derive(Args, Clone, Default)]
pub struct FilterArgs {
    /// Case id, `area/id` or requirement glob (repeatable), e.g. `idjag/*` or `IDJAG-2?`.
    #[arg(long = "case", short = 'c')]
    pub cases: Vec<String>,
    /// Area (repeatable): discovery, registration, idjag, credential, matching, claim, revocation, api, expiry, rate, security, replicas.
    #[arg(long = "area")]
    pub areas: Vec<String>,
    /// Level (repeatable): MUST, SHOULD, MAY, informational.
    #[arg(long = "level")]
    pub levels: Vec<String>,
}

/// The filter `args` describe, checked against `catalogue` (an unknown area or level is a
/// usage error, not an empty selection).
pub fn parse_filter(args: &FilterArgs, catalogue: &Catalogue) -> Result<Filter, Failure> {
    let mut levels = Vec::new();
    for l in &args.levels {
        levels.push(match l.to_ascii_lowercase().as_str() {
            "must" => Level::Must,
            "should" => Level::Should,
            "may" => Level::May,
            "informational" | "info" => Level::Informational,
            other => {
                return Err(Failure::Usage(format!(
                    "--level `{other}`: expected MUST, SHOULD, MAY or informational"
                )));
            }
        });
    }
    for a in &args.areas {
        if !catalogue.cases.iter().any(|c| &c.area == a) {
            return Err(Failure::Usage(format!("--area `{a}`: no such area")));
        }
    }
    Ok(Filter {
        ids: args.cases.clone(),
        areas: args.areas.clone(),
        levels,
    })
}

/// `--profile`, checked against the profiles this build has.
pub fn known_profile(profile: Option<&str>) -> Result<(), Failure> {
    match profile {
        Some(p) if !authmd_conformance::profiles().iter().any(|k| k == p) => Err(Failure::Usage(format!(
            "--profile {p}: this build has {}",
            authmd_conformance::profiles().join(", ")
        ))),
        _ => Ok(()),
    }
}

/// The catalogue of `profile` (the default profile when none is named; `aid` for the AID
/// preflight's, which joins any profile's run from a domain).
pub fn catalogue_of(profile: Option<&str>) -> Result<Catalogue, Failure> {
    let loaded = match profile {
        None => authmd_conformance::default_catalogue(),
        Some("aid") => authmd_conformance::aid_catalogue(),
        Some(p) => {
            known_profile(Some(p))?;
            authmd_conformance::profile_catalogue(p)
        }
    };
    loaded.map_err(|e| Failure::Usage(format!("catalogue: {e}")))
}

/// Reference-server defects by id.
pub fn defects(ids: &[String]) -> Result<Defects, Failure> {
    ids.iter()
        .map(|d| d.parse::<Defect>().map_err(|e| Failure::Usage(e.to_string())))
        .collect()
}

/// Until the user presses Ctrl-C (the `serve` commands).
pub async fn wait_for_ctrl_c() {
    let _ = tokio::signal::ctrl_c().await;
}
