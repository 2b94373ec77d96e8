//! `authmd-mock-idp`: the mock IdP on its own, with its HTTP control API (see README.md).

use std::process::ExitCode;

use authmd_mock_idp::{MockIdp, ServeArgs};
use clap::Parser;

/// Mock identity provider for auth.md conformance testing.
#[derive(Parser)]
#[command(name = "authmd-mock-idp", version)]
struct Args {
    #[command(flatten)]
    serve: ServeArgs,
}

fn main() -> ExitCode {
    let serve = Args::parse().serve;
    let token_file = serve.token_file.clone();
    let config = match serve.into_config() {
        Ok(c) => c,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    runtime.block_on(async {
        match MockIdp::start(config).await {
            Ok(idp) => {
                println!("{}", idp.banner(&token_file));
                let _ = tokio::signal::ctrl_c().await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        }
    })
}
