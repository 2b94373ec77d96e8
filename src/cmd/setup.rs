//! `init` and `check-config`: writing a target's configuration from what it answers, and
//! checking one against the live target before a run.

use std::path::PathBuf;

use authmd_conformance::exit_code::Ending;
use authmd_conformance::redact::inert;
use authmd_conformance::setup;
use authmd_conformance::target::TargetConfig;
use clap::Args;

use super::{Failure, known_profile};

/// `init`'s arguments.
#[derive(Args)]
pub struct InitArgs {
    /// The target's base URL.
    #[arg(long)]
    target: String,
    /// Where to write the configuration (never overwritten).
    #[arg(long, default_value = "target.toml")]
    out: PathBuf,
    /// The spec profile to write the config for; defaults to the one the metadata speaks.
    #[arg(long)]
    profile: Option<String>,
}

/// `check-config`'s arguments.
#[derive(Args)]
pub struct CheckArgs {
    /// The target configuration (TOML).
    #[arg(long)]
    config: PathBuf,
}

/// Probes the target and writes a commented configuration, with the readings its answers
/// followed proposed (commented out).
pub async fn init(args: InitArgs) -> Result<Ending, Failure> {
    let InitArgs { target, out, profile } = args;
    known_profile(profile.as_deref())?;
    if out.exists() {
        return Err(Failure::Usage(format!(
            "{} exists; choose another --out or remove it",
            out.display()
        )));
    }
    let mut probe = setup::probe(&target, profile.as_deref()).await.map_err(Failure::Harness)?;
    // Proposals only: a failed observation still leaves a usable config.
    let observed = setup::observe_readings(&mut probe).await;
    setup::write_new(&out, &setup::render(&probe)).map_err(Failure::Usage)?;
    println!("wrote {} (profile {})", out.display(), probe.profile);
    println!(
        "  discovery: {}",
        probe
            .discovery_error
            .as_deref()
            .unwrap_or("PRM and authorization-server metadata found")
    );
    println!(
        "  oracle: {}",
        probe
            .oracle
            .as_ref()
            .map(|(p, u, s)| format!("{p} (user {u}, scopes {s})"))
            .unwrap_or_else(|| "not found; see the comment in the file".into())
    );
    let readings = match observed {
        Err(e) => format!("not observed ({})", inert(&e, false)),
        Ok(()) if probe.observed.is_empty() => "none observed without an IdP, mail or session".into(),
        Ok(()) => format!(
            "{} proposed, commented out, in [readings]",
            probe
                .observed
                .iter()
                .map(|(id, r, _)| format!("{id} = {r}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    println!("  readings: {readings}");
    let sections = [("[idp]", true), ("[mail]", probe.uses_mail), ("[session]", probe.uses_session)]
        .iter()
        .filter(|(_, used)| *used)
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "next: edit {sections} for your deployment, then `check-config --config {}`",
        out.display()
    );
    Ok(Ending::Success)
}

/// Checks each part of a configuration against the live target, one line each.
pub async fn check_config(args: CheckArgs) -> Result<Ending, Failure> {
    let target = TargetConfig::load(&args.config).map_err(|e| Failure::Usage(e.to_string()))?;
    let checks = setup::check(&target).await;
    for c in &checks {
        println!("{} {:<22} {}", c.label(), c.name, inert(&c.detail, false));
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    if failed == 0 {
        Ok(Ending::Success)
    } else {
        Err(Ending::Usage(format!("{failed} of {} checks failed", checks.len())))
    }
}
