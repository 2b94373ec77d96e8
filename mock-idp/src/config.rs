//! The mock IdP's configuration, its errors, and the arguments and control token of its
//! command-line wrappers.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::*;

/// Errors of the mock IdP library. Messages read after "failed to …".
#[derive(Debug, thiserror::Error)]
pub enum IdpError {
    /// Key generation, loading or signing failed.
    #[error("{0}")]
    Key(String),
    /// The key directory could not be read or written.
    #[error("key directory `{path}`: {reason}")]
    KeyDir {
        /// The file or directory.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The listen address could not be bound.
    #[error("failed to listen on {addr}: {reason}")]
    Bind {
        /// The address.
        addr: String,
        /// What went wrong.
        reason: String,
    },
    /// TLS material could not be made or written.
    #[error("tls: {0}")]
    Tls(String),
    /// A key id is not published.
    #[error("no published key with kid `{0}`")]
    UnknownKid(String),
    /// A logout token could not be delivered (no HTTP response).
    #[error("failed to deliver the logout token to {uri}: {reason}")]
    Delivery {
        /// The revocation URI.
        uri: String,
        /// What went wrong.
        reason: String,
    },
}

/// How the JWKS endpoint misbehaves; switchable at run time.
#[derive(Clone, Copy, Debug, Default, Deserialize, Eq, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "mode", content = "millis")]
pub enum JwksFault {
    /// Serve the key set normally.
    #[default]
    None,
    /// Answer 500.
    ServerError,
    /// Wait this many milliseconds, then serve normally.
    Slow(u64),
    /// Answer 200 with a body that is not JSON.
    InvalidJson,
    /// Answer 200 with `{"keys": []}`.
    EmptyKeySet,
    /// Answer 200 with the key set as `text/html`.
    WrongContentType,
}

/// Configuration of a mock IdP.
#[derive(Clone, Debug)]
pub struct IdpConfig {
    /// Listen address. Defaults to `127.0.0.1:0` (a random port).
    pub listen: SocketAddr,
    /// The issuer URL put in `iss`; defaults to the listen URL. A target's trust list may name
    /// another origin (e.g. `http://localhost:4000`) as long as it reaches this listener.
    pub issuer: Option<String>,
    /// Serve https with a certificate made by rcgen. Defaults to plain http.
    pub https: bool,
    /// Where to write the CA certificate (PEM) when `https` is on.
    pub ca_out: Option<PathBuf>,
    /// Keep keys here so a restarted IdP publishes the same keys. Defaults to none (fresh keys).
    pub key_dir: Option<PathBuf>,
    /// Algorithm of the first key. Defaults to ES256.
    pub alg: KeyAlg,
    /// Default `aud` of minted tokens. Defaults to `http://localhost:8000`.
    pub audience: String,
    /// `Cache-Control: max-age` of the JWKS in seconds. Defaults to 300.
    pub jwks_max_age: u64,
    /// Put before every generated kid (`B-K1`), so several IdPs of one run never publish the
    /// same kid and a key of one cannot be found under another's name by accident.
    pub kid_prefix: String,
    /// The bearer token the HTTP control API (`/_control/*`) demands. `None` (the default, and
    /// what the harness uses: it drives its IdPs in process) serves no control API at all.
    pub control_token: Option<String>,
    /// Origins (`scheme://host:port`) `POST /_control/deliver-logout` may post to; any other is
    /// refused, so the control API cannot be turned against another service.
    pub deliver_to: Vec<String>,
}

impl Default for IdpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            issuer: None,
            https: false,
            ca_out: None,
            key_dir: None,
            alg: KeyAlg::Es256,
            audience: "http://localhost:8000".into(),
            jwks_max_age: 300,
            kid_prefix: String::new(),
            control_token: None,
            deliver_to: Vec::new(),
        }
    }
}

/// Command-line options of a standalone IdP, shared by `authmd-mock-idp` and
/// `authmd-conformance idp serve` so both accept the same flags.
#[derive(Clone, Debug, clap::Args)]
pub struct ServeArgs {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:4000")]
    pub listen: SocketAddr,
    /// Issuer URL (defaults to the listen URL).
    #[arg(long)]
    pub issuer: Option<String>,
    /// Serve https with an rcgen certificate.
    #[arg(long)]
    pub https: bool,
    /// Write the CA certificate (PEM) here.
    #[arg(long)]
    pub ca_out: Option<PathBuf>,
    /// Keep keys in this directory across restarts.
    #[arg(long)]
    pub key_dir: Option<PathBuf>,
    /// First key's algorithm: ES256, RS256 or EdDSA.
    #[arg(long, default_value = "ES256")]
    pub alg: String,
    /// Default `aud` of minted tokens.
    #[arg(long, default_value = "http://localhost:8000")]
    pub audience: String,
    /// Where to write the control API's bearer token (mode 0600). A fresh random token is made
    /// at every start unless `AUTHMD_IDP_CONTROL_TOKEN` sets one.
    #[arg(long, default_value_os_t = default_token_file())]
    pub token_file: PathBuf,
    /// The target's origin (`http://host:port`), to which the control API may deliver logout
    /// tokens; repeatable. Without one, `/_control/deliver-logout` is refused.
    #[arg(long = "deliver-to")]
    pub deliver_to: Vec<String>,
    /// Listen on a non-loopback address (a remote target must reach the JWKS). The control
    /// API still needs its token.
    #[arg(long)]
    pub allow_remote: bool,
}

/// `<temp dir>/authmd-mock-idp-<pid>/control-token` (the file itself is the owner's only).
fn default_token_file() -> PathBuf {
    std::env::temp_dir()
        .join(format!("authmd-mock-idp-{}", std::process::id()))
        .join("control-token")
}

/// A random bearer token (256 bits from the OS generator, through UUID v4's 122 each).
pub fn new_control_token() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// Writes `token` to `path`, readable and writable by the owner only, replacing what was there.
pub fn write_control_token(path: &std::path::Path, token: &str) -> Result<(), String> {
    use std::io::Write as _;
    let fail = |e: std::io::Error| format!("control token file {}: {e}", path.display());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let _ = std::fs::remove_file(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(fail)?;
    file.write_all(token.as_bytes()).map_err(fail)
}

impl ServeArgs {
    /// The configuration these options describe; an unknown `--alg` is the error message.
    pub fn into_config(self) -> Result<IdpConfig, String> {
        let alg = KeyAlg::parse(&self.alg).ok_or_else(|| format!("--alg `{}`: expected ES256, RS256 or EdDSA", self.alg))?;
        if !self.listen.ip().is_loopback() && !self.allow_remote {
            return Err(format!(
                "--listen {}: not a loopback address; anyone who reaches it gets the JWKS and, with the token, the control API. Add --allow-remote if a remote target must reach it",
                self.listen
            ));
        }
        for origin in &self.deliver_to {
            if origin_of(origin).is_none() {
                return Err(format!("--deliver-to `{origin}`: expected an origin such as http://127.0.0.1:8000"));
            }
        }
        let token = match std::env::var("AUTHMD_IDP_CONTROL_TOKEN") {
            Ok(t) if t.len() >= 16 => t,
            Ok(_) => return Err("AUTHMD_IDP_CONTROL_TOKEN: at least 16 characters".into()),
            Err(_) => new_control_token(),
        };
        write_control_token(&self.token_file, &token)?;
        Ok(IdpConfig {
            listen: self.listen,
            issuer: self.issuer,
            https: self.https,
            ca_out: self.ca_out,
            key_dir: self.key_dir,
            alg,
            audience: self.audience,
            control_token: Some(token),
            deliver_to: self.deliver_to,
            ..IdpConfig::default()
        })
    }
}
