//! A throwaway PostgreSQL cluster on loopback, for `run --variant postgres`, the bundled
//! replicas and the tests: `initdb` into a temporary folder, as an unprivileged user (PostgreSQL
//! refuses to run as root), `postgres` on a random loopback port, no Unix socket.
//!
//! The server runs under a small shell that holds a pipe from this process: when the process
//! ends, however it ends (even `kill -9`), the pipe closes and the shell stops the server and
//! removes its folder, so no cluster outlives the run that made it.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Where the PostgreSQL programs are when they are not on `PATH`: Debian's layout.
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";

/// The environment variable naming the folder of `initdb` and `postgres`.
pub const BIN_ENV: &str = "AUTHMD_PG_BIN";

/// How long a cluster may take to accept connections.
const START_BUDGET: Duration = Duration::from_secs(60);

/// A running throwaway cluster. Dropping it stops the server and removes its folder.
pub struct Cluster {
    port: u16,
    dir: PathBuf,
    // Closing it (on drop, or when the process ends) tells the shell to stop the server.
    stdin: Option<ChildStdin>,
    shell: Child,
    databases: AtomicU32,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("port", &self.port).field("dir", &self.dir).finish()
    }
}

/// The folder holding `initdb` and `postgres`: `$AUTHMD_PG_BIN`, else `PATH`, else the newest of
/// Debian's `/usr/lib/postgresql/<version>/bin`.
pub fn find_bin() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os(BIN_ENV) {
        let dir = PathBuf::from(dir);
        return match dir.join("initdb").is_file() && dir.join("postgres").is_file() {
            true => Ok(dir),
            false => Err(format!("{BIN_ENV}={} has no initdb and postgres", dir.display())),
        };
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() && dir.join("postgres").is_file() {
                return Ok(dir);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(DEBIAN_ROOT)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| {
        format!(
            "PostgreSQL is not installed (no initdb and postgres on PATH or under {DEBIAN_ROOT}); install it (Debian: apt-get install postgresql) or set {BIN_ENV}"
        )
    })
}

/// The user the cluster runs as: this process's own, or an unprivileged one when it is root.
fn run_as() -> Result<Option<(u32, u32)>, String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        let me = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX);
        if me != 0 {
            return Ok(None);
        }
        let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| format!("/etc/passwd: {e}"))?;
        for name in ["postgres", "nobody"] {
            for line in passwd.lines() {
                let fields: Vec<&str> = line.split(':').collect();
                if fields.len() > 3
                    && fields[0] == name
                    && let (Ok(uid), Ok(gid)) = (fields[2].parse(), fields[3].parse())
                {
                    return Ok(Some((uid, gid)));
                }
            }
        }
        Err("running as root, and neither a postgres nor a nobody user exists to run PostgreSQL as".into())
    }
    #[cfg(not(unix))]
    Ok(None)
}

fn as_user(cmd: &mut Command, user: Option<(u32, u32)>) {
    #[cfg(unix)]
    if let Some((uid, gid)) = user {
        use std::os::unix::process::CommandExt as _;
        cmd.uid(uid).gid(gid);
    }
    #[cfg(not(unix))]
    let _ = (cmd, user);
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// Runs `f` on a thread of its own: PostgreSQL's synchronous client starts a runtime of its own,
/// which must not happen on an async runtime's thread.
pub(crate) fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
}

/// The cluster this process shares (started on first use, gone when the process ends), or
/// why there is none.
pub fn shared() -> Result<&'static Cluster, String> {
    static CLUSTER: std::sync::OnceLock<Result<Cluster, String>> = std::sync::OnceLock::new();
    CLUSTER.get_or_init(Cluster::start).as_ref().map_err(Clone::clone)
}

/// A fresh database on the [`shared`] cluster (started on first use), from async code: the
/// cluster's start and the client both block.
pub async fn throwaway_database() -> Result<String, String> {
    tokio::task::spawn_blocking(|| shared().and_then(Cluster::fresh_database))
        .await
        .map_err(|e| e.to_string())?
}

/// Whether tests must have PostgreSQL (`AUTHMD_REQUIRE_POSTGRES=1`, as CI sets it) rather than
/// skip what needs it.
pub fn required() -> bool {
    std::env::var("AUTHMD_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

impl Cluster {
    /// Makes and starts a cluster. Takes a few seconds (most of it `initdb`).
    pub fn start() -> Result<Self, String> {
        let bin = find_bin()?;
        let user = run_as()?;
        // A port taken between the probe and the server's bind is retried with another.
        let mut last = String::new();
        for _ in 0..3 {
            match Self::attempt(&bin, user) {
                Ok(cluster) => return Ok(cluster),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn attempt(bin: &Path, user: Option<(u32, u32)>) -> Result<Self, String> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!("authmd-pg-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| e.to_string())?;
            if let Some((uid, gid)) = user {
                std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).map_err(|e| format!("chown {}: {e}", dir.display()))?;
            }
        }
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .args(["-U", "authmd", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "-D"])
            .arg(dir.join("data"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        as_user(&mut initdb, user);
        let out = initdb.output().map_err(|e| format!("cannot run initdb: {e}"))?;
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        let port = free_port()?;
        let log = dir.join("log");
        // Durability settings off: a throwaway cluster outlives no crash of the machine, and a
        // crash of the reference server (what the tests kill) loses nothing either way. The
        // shell waits for the server; a subshell waits for EOF on this process's pipe (fd 3)
        // and then stops it; either way the folder goes.
        // The shell ignores the signals a terminal's Ctrl-C or `timeout` sends the whole group,
        // so it lives to remove the folder once the server has stopped.
        let script = r#"
trap '' INT TERM HUP
"$1/postgres" -D "$2/data" -p "$3" -c listen_addresses=127.0.0.1 -c unix_socket_directories= \
  -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400 \
  -c shared_buffers=64MB >"$2/log" 2>&1 &
pid=$!
exec 3<&0
(read _ignored <&3; kill -QUIT "$pid" 2>/dev/null) &
wait "$pid"
rm -rf "$2"
"#;
        let mut sh = Command::new("sh");
        sh.arg("-c")
            .arg(script)
            .arg("authmd-pg")
            .arg(bin)
            .arg(&dir)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        as_user(&mut sh, user);
        let mut shell = sh.spawn().map_err(|e| format!("cannot start postgres: {e}"))?;
        let stdin = shell.stdin.take();
        let mut cluster = Self {
            port,
            dir,
            stdin,
            shell,
            databases: AtomicU32::new(0),
        };
        let started = Instant::now();
        loop {
            let url = cluster.url("postgres");
            if off_runtime(|| postgres::Client::connect(&url, postgres::NoTls).is_ok()) {
                return Ok(cluster);
            }
            let mut text = String::new();
            let _ = std::fs::File::open(&log).and_then(|mut f| f.read_to_string(&mut text));
            let stopped = matches!(cluster.shell.try_wait(), Ok(Some(_)));
            if stopped || started.elapsed() > START_BUDGET {
                let tail: Vec<&str> = text.lines().rev().take(5).collect();
                return Err(format!(
                    "postgres did not start on 127.0.0.1:{port}: {}",
                    tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The URL of `database` on this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://authmd@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates an empty database of its own and returns its URL (one per server deployment, so
    /// runs sharing the cluster never see each other's rows).
    pub fn fresh_database(&self) -> Result<String, String> {
        let name = format!("authmd_{}", self.databases.fetch_add(1, Ordering::Relaxed));
        let admin = self.url("postgres");
        off_runtime(|| {
            let mut client = postgres::Client::connect(&admin, postgres::NoTls).map_err(|e| e.to_string())?;
            client
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .map_err(|e| format!("CREATE DATABASE {name}: {e}"))
        })?;
        Ok(self.url(&name))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // EOF on the shell's stdin: it stops the server and removes the folder.
        self.stdin = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.shell.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.shell.kill();
    }
}
