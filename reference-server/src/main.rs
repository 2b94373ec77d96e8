//! `authmd-reference-server`: the reference auth.md v0.1 service on its own.
//!
//! Configuration: a TOML file (`--config`), then `AUTHMD_REF_*` environment variables, then flags
//! (`--set key=value` for any key; `--listen`, `--database`, `--smtp` as shorthands).
//! Prints its URL on the first line of stdout once it listens.

use std::path::PathBuf;
use std::process::ExitCode;

use authmd_reference_server::{Config, Defect, Defects, ReferenceServer};

const USAGE: &str = "usage: authmd-reference-server [--config FILE] [--set KEY=VALUE]... [--listen ADDR] [--database FILE] [--smtp HOST:PORT] [--defect ID]... [--log-format human|json] [--list-defects]";

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<ExitCode, String> {
    let mut args = std::env::args().skip(1);
    let (mut config_path, mut sets, mut defects) = (None::<PathBuf>, Vec::<String>::new(), Defects::none());
    let mut log_format = "human".to_string();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--config" => config_path = Some(value("--config")?.into()),
            "--set" => sets.push(value("--set")?),
            "--listen" => sets.push(format!("listen={}", value("--listen")?)),
            "--database" => sets.push(format!("database={}", value("--database")?)),
            "--smtp" => sets.push(format!("smtp={}", value("--smtp")?)),
            "--log-format" => log_format = value("--log-format")?,
            "--defect" => defects.insert(value("--defect")?.parse::<Defect>().map_err(|e| e.to_string())?),
            "--list-defects" => {
                for d in Defect::ALL {
                    println!("{:<40} {}", d.id(), d.describe());
                }
                return Ok(ExitCode::SUCCESS);
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            other => return Err(format!("unknown option `{other}`\n{USAGE}")),
        }
    }
    let config = Config::layered(config_path.as_deref(), &sets).map_err(|e| e.to_string())?;
    authmd_reference_server::init_logging(&log_format)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let server = ReferenceServer::start(config, defects).await.map_err(|e| e.to_string())?;
        println!("{}", server.base_url());
        let _ = tokio::signal::ctrl_c().await;
        Ok(ExitCode::SUCCESS)
    })
}
