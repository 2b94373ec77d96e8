//! `authmd-mock-idp`: the mock IdP on its own, with its HTTP control API (see README.md).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use authmd_mock_idp::{IdpConfig, KeyAlg, MockIdp};
use clap::Parser;

/// Mock identity provider for auth.md conformance testing.
#[derive(Parser)]
#[command(name = "authmd-mock-idp", version)]
struct Args {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:4000")]
    listen: SocketAddr,
    /// Issuer URL (defaults to the listen URL).
    #[arg(long)]
    issuer: Option<String>,
    /// Serve https with an rcgen certificate.
    #[arg(long)]
    https: bool,
    /// Write the CA certificate (PEM) here.
    #[arg(long)]
    ca_out: Option<PathBuf>,
    /// Keep keys in this directory across restarts.
    #[arg(long)]
    key_dir: Option<PathBuf>,
    /// First key's algorithm: ES256, RS256 or EdDSA.
    #[arg(long, default_value = "ES256")]
    alg: String,
    /// Default `aud` of minted tokens.
    #[arg(long, default_value = "http://localhost:8000")]
    audience: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let Some(alg) = KeyAlg::parse(&args.alg) else {
        eprintln!("error: --alg `{}`: expected ES256, RS256 or EdDSA", args.alg);
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    runtime.block_on(async {
        let config = IdpConfig {
            listen: args.listen,
            issuer: args.issuer,
            https: args.https,
            ca_out: args.ca_out,
            key_dir: args.key_dir,
            alg,
            audience: args.audience,
            ..IdpConfig::default()
        };
        match MockIdp::start(config).await {
            Ok(idp) => {
                println!(
                    "mock IdP listening on {} (issuer {}, JWKS {})",
                    idp.base_url(),
                    idp.issuer(),
                    idp.jwks_uri()
                );
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
