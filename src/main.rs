//! `authmd-conformance`: run the auth.md conformance suite, list and explain cases, and start
//! the mock IdP, mock mailbox or reference server on their own. Each command lives in its
//! module under `cmd/`; this file parses the command line and maps how it ended to the exit
//! code.

use std::process::ExitCode;

use authmd_conformance::exit_code::Ending;
use clap::{CommandFactory, Parser, Subcommand};

mod cmd;

use cmd::{Failure, catalogue, reports, run, serve, setup};

#[derive(Parser)]
#[command(name = "authmd-conformance", version, about = "Conformance suite for auth.md agent registration")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the suite: against the bundled reference server, or `--target URL --config FILE`.
    Run(run::RunArgs),
    /// Probe a live target and write a commented target.toml (discovery, oracle, TTLs).
    Init(setup::InitArgs),
    /// Validate a target configuration against the live target before a run.
    CheckConfig(setup::CheckArgs),
    /// Check every profile's catalogue without any server: every case parses with typed
    /// parameters, names real requirements and real reference-server defects, and the generated
    /// indexes, schema and vocabulary are current.
    Lint,
    /// List the cases the filters select.
    List(catalogue::ListArgs),
    /// Explain one case: requirement text, source, steps, expectations, defects.
    Explain(catalogue::ExplainArgs),
    /// The mock identity provider.
    Idp {
        #[command(subcommand)]
        command: serve::IdpCommand,
    },
    /// The mock mailbox (SMTP sink).
    Mailbox {
        #[command(subcommand)]
        command: serve::MailboxCommand,
    },
    /// The reference server.
    Reference {
        #[command(subcommand)]
        command: serve::ReferenceCommand,
    },
    /// A loopback DNS server for AID records.
    Dns {
        #[command(subcommand)]
        command: serve::DnsCommand,
    },
    /// Shell completions (bash, zsh, fish, elvish, powershell) on stdout, e.g.
    /// `authmd-conformance completions bash > /etc/bash_completion.d/authmd-conformance`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// The man page (roff) on stdout, e.g. `authmd-conformance man > authmd-conformance.1`.
    Man,
    /// Known-failure baselines.
    Baseline {
        #[command(subcommand)]
        command: reports::BaselineCommand,
    },
    /// Compare JSON reports (several servers, or one over time): a matrix per case and reading.
    Compare(reports::CompareArgs),
    /// What changed between two runs: new failures, fixes, changed evidence.
    Diff(reports::DiffArgs),
}

fn main() -> ExitCode {
    // `list | head` closes stdout early: end quietly, as other command-line tools do, rather
    // than panic on the broken pipe.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default_hook(info);
    }));
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(Ending::Harness(String::new()).code() as u8);
        }
    };
    let ending = runtime.block_on(dispatch(cli.command)).unwrap_or_else(|failure| failure);
    if let Some(message) = ending.message() {
        eprintln!("error: {message}");
    }
    ExitCode::from(ending.code() as u8)
}

async fn dispatch(command: Command) -> Result<Ending, Failure> {
    match command {
        Command::Run(args) => run::run(args).await,
        Command::Init(args) => setup::init(args).await,
        Command::CheckConfig(args) => setup::check_config(args).await,
        Command::Lint => cmd::lint::run(),
        Command::List(args) => catalogue::list(args),
        Command::Explain(args) => catalogue::explain(args),
        Command::Idp { command } => serve::idp(command).await,
        Command::Mailbox { command } => serve::mailbox(command).await,
        Command::Reference { command } => serve::reference(command).await,
        Command::Dns { command } => serve::dns(command).await,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "authmd-conformance", &mut std::io::stdout());
            Ok(Ending::Success)
        }
        Command::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut page)
                .map_err(|e| Failure::Harness(format!("the man page: {e}")))?;
            std::io::Write::write_all(&mut std::io::stdout(), &page).map_err(|e| Failure::Harness(e.to_string()))?;
            Ok(Ending::Success)
        }
        Command::Baseline { command } => reports::baseline(command),
        Command::Compare(args) => reports::compare(args),
        Command::Diff(args) => reports::diff(args),
    }
}
