//! `list` and `explain`: the catalogue, read without any server.

use authmd_conformance::catalogue::Condition;
use authmd_conformance::exit_code::Ending;
use clap::Args;
use serde_json::Value;

use super::{Failure, FilterArgs, catalogue_of, parse_filter};

/// `list`'s arguments.
#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    filter: FilterArgs,
    /// The spec profile whose catalogue to list (default v0.1), or `aid` for the AID preflight's.
    #[arg(long)]
    profile: Option<String>,
}

/// `explain`'s arguments.
#[derive(Args)]
pub struct ExplainArgs {
    /// Case id or `area/id`.
    case: String,
    /// The spec profile whose catalogue holds the case (default v0.1), or `aid`.
    #[arg(long)]
    profile: Option<String>,
}

/// One line per selected case; selecting none is its own ending.
pub fn list(args: ListArgs) -> Result<Ending, Failure> {
    let cat = catalogue_of(args.profile.as_deref())?;
    let filter = parse_filter(&args.filter, &cat)?;
    let selected: Vec<_> = cat.cases.iter().filter(|c| filter.selects(c)).collect();
    let width = selected.iter().map(|c| c.full_name().len()).max().unwrap_or(0);
    for c in &selected {
        println!(
            "{:<width$}  {:<13} {}  [{}]",
            c.full_name(),
            c.level.as_str(),
            c.summary,
            c.requirements.join(", ")
        );
    }
    Ok(if selected.is_empty() {
        Ending::NothingSelected
    } else {
        Ending::Success
    })
}

/// One case: its requirements' texts and sources, needs, defects, steps and expectations.
pub fn explain(args: ExplainArgs) -> Result<Ending, Failure> {
    let cat = catalogue_of(args.profile.as_deref())?;
    let case = &args.case;
    let c = cat
        .cases
        .iter()
        .find(|c| c.id == *case || c.full_name() == *case)
        .ok_or_else(|| Failure::Usage(format!("no case `{case}` (see `list`)")))?;
    println!("{}\n  {}\n  level: {}", c.full_name(), c.summary, c.level.as_str());
    if let Some(Condition::ClientIdList) = c.must_when {
        println!("  level: MUST when the target config names idp.client_ids");
    }
    if let Some(r) = &c.reading {
        println!("  reading: {r}");
    }
    for r in &c.requirements {
        if let Some(req) = cat.requirements.get(r) {
            println!("\n{r} ({})\n  {}\n  source: {}", req.level.as_str(), req.text, req.source);
        }
    }
    let names = |v: Value| match v {
        Value::Array(a) => a
            .iter()
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.as_str().unwrap_or_default().to_string(),
    };
    println!(
        "\nneeds: {}\ncaught by defects: {}\n\nsteps:",
        names(serde_json::to_value(&c.needs).unwrap_or_default()),
        c.caught_by.join(", ")
    );
    for (i, s) in c.steps.iter().enumerate() {
        let params = s.action.params();
        println!(
            "  {}. {}{}{} {}",
            i + 1,
            s.action.name(),
            s.name.as_ref().map(|n| format!(" as `{n}`")).unwrap_or_default(),
            s.advance.as_ref().map(|a| format!(" at {a}")).unwrap_or_default(),
            if params.is_empty() {
                String::new()
            } else {
                serde_json::to_string(&params).unwrap_or_default()
            }
        );
        if let Some(e) = &s.expect {
            println!("     expect {}", without_defaults(serde_json::to_value(e).unwrap_or_default()));
        }
    }
    Ok(Ending::Success)
}

/// An expectation as written: members left at their defaults (null, false, empty) are dropped.
fn without_defaults(value: Value) -> Value {
    match value {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| match v {
                    Value::Null | Value::Bool(false) => false,
                    Value::Array(a) => !a.is_empty(),
                    Value::Object(o) => !o.is_empty(),
                    _ => true,
                })
                .collect(),
        ),
        other => other,
    }
}
