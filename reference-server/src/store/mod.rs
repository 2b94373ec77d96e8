//! Storage behind one writer thread, with a pool of read connections beside it, on a SQLite file
//! (the default) or a PostgreSQL database (`database = "postgres://…"`, for replicas).
//!
//! Every write (and every read that decides a write) is a job run on the thread that owns the
//! only writing connection, so SQLite never sees two writers and a check-then-insert (a `jti`,
//! an OTP attempt) is atomic. Jobs queued together share one transaction, each inside its own
//! savepoint; replies are sent only after the commit, so an answer never describes data a crash
//! could lose. Pure reads (authenticating an API call) go to read-only connections instead: WAL
//! lets them run beside the writer, and they see every commit answered before they started.

use std::path::Path;
use std::sync::mpsc;

use crate::error::ApiError;
pub(crate) use crate::store::sql::Connection;

pub(crate) mod audit;
pub(crate) mod ceremony;
pub(crate) mod claim;
pub(crate) mod credentials;
pub(crate) mod keys;
pub(crate) mod outbox;
mod pg;
pub(crate) mod rate;
pub(crate) mod refresh;
pub(crate) mod registration;
pub(crate) mod replay;
mod schema;
pub(crate) mod sql;
pub(crate) mod users;

/// Sends a job's outcome; told whether the batch's commit succeeded.
type Reply = Box<dyn FnOnce(bool) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> Reply + Send>;

/// Jobs committed in one transaction at most.
const BATCH: usize = 256;

/// The WAL is cut back to this size whenever a checkpoint has copied all of it (SQLite's
/// `journal_size_limit`), and the checkpointer truncates one that stays above it once writes
/// stop: otherwise the file keeps its high-water mark (530 MB after 20 s of load), since
/// passive checkpoints reuse the file but never shrink it.
const WAL_SIZE_LIMIT: i64 = 16 * 1024 * 1024;

/// The WAL size at which the writer truncates it under load.
const WAL_TRUNCATE_AT: u64 = 64 * 1024 * 1024;

/// Which file the server opened (device and inode), so a commit can tell that the path now
/// names no file or another one: writes to a deleted database would be acknowledged and lost.
#[derive(Clone, Copy, Debug, PartialEq)]
struct FileId(u64, u64);

impl FileId {
    fn of(path: &Path) -> Option<Self> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt as _;
            std::fs::metadata(path).ok().map(|m| Self(m.dev(), m.ino()))
        }
        #[cfg(not(unix))]
        {
            std::fs::metadata(path).ok().map(|_| Self(0, 0))
        }
    }
}

/// Handle to the storage thread and the read pool. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    tx: mpsc::Sender<Job>,
    readers: std::sync::Arc<Readers>,
    /// Dropped with the last handle, which stops the checkpoint thread (SQLite only).
    _checkpointer: Option<std::sync::Arc<mpsc::Sender<()>>>,
}

/// Read-only connections, one per reader thread, fed by one queue like the writer: no
/// thread-pool hop and no checkout per read (a `spawn_blocking` pool measured 22.8k API calls/s
/// against 41.6k on the writer thread).
struct Readers {
    tx: mpsc::Sender<ReadJob>,
}

type ReadJob = Box<dyn FnOnce(Option<&Connection>) + Send>;

/// Reader threads: one per core is enough, they share the cores with the writer.
const READERS: usize = 2;

impl Readers {
    /// Starts the reader threads, each opening its connection with `open` on its own thread
    /// (PostgreSQL's synchronous client must not run on an async runtime's threads).
    fn start(open: impl Fn() -> Result<Connection, String> + Send + Clone + 'static) -> Result<Self, String> {
        let (tx, rx) = mpsc::channel::<ReadJob>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        for i in 0..READERS {
            let rx = rx.clone();
            let open = open.clone();
            let ready = ready_tx.clone();
            std::thread::Builder::new()
                .name(format!("authmd-db-read-{i}"))
                .spawn(move || {
                    let conn = match open() {
                        Ok(conn) => {
                            let _ = ready.send(Ok(()));
                            conn
                        }
                        Err(e) => {
                            let _ = ready.send(Err(e));
                            return;
                        }
                    };
                    drop(ready);
                    loop {
                        // Hold the lock only to take one job.
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(Some(&conn)),
                            Err(_) => return,
                        }
                    }
                })
                .map_err(|e| e.to_string())?;
        }
        drop(ready_tx);
        for _ in 0..READERS {
            ready_rx.recv().map_err(|_| "a reader thread stopped".to_string())??;
        }
        Ok(Self { tx })
    }
}

/// How often the checkpointer copies the WAL into the database file. Each PASSIVE checkpoint
/// copies what no reader still needs; once all of it is copied, the writer starts the WAL over,
/// so the file stays bounded.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// Starts the checkpoint thread on its own connection. It stops when `stop`'s sender is
/// dropped (the last handle of the database is gone).
fn start_checkpointer(path: &Path, stop: mpsc::Receiver<()>) -> Result<(), String> {
    let conn = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
    conn.execute_batch("PRAGMA busy_timeout = 5000; PRAGMA cache_size = -256;")
        .map_err(|e| e.to_string())?;
    let wal = std::path::PathBuf::from(format!("{}-wal", path.display()));
    std::thread::Builder::new()
        .name("authmd-db-checkpoint".into())
        .spawn(move || {
            let mut last = 0;
            while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "WAL checkpoint failed");
                }
                // Once writes have stopped, a WAL left above its bound is cut to nothing (the
                // writer only cuts it when it writes again).
                let size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
                if size > WAL_SIZE_LIMIT as u64 && size == last {
                    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
                }
                last = size;
            }
            // The database is closing: copy what is left and cut the WAL to nothing, so no large
            // WAL is left beside the file (best effort; a reader still open makes it partial).
            let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        })
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// A read-only connection to the SQLite file, with a small page cache: the readers must not
/// cost the server its memory.
fn lite_reader(path: &Path) -> Result<Connection, String> {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = rusqlite::Connection::open_with_flags(path, flags).map_err(|e| e.to_string())?;
    conn.execute_batch("PRAGMA busy_timeout = 5000; PRAGMA cache_size = -1024;")
        .map_err(|e| e.to_string())?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(Connection::Lite(conn))
}

/// Where the server's data lives, as `database` names it.
#[derive(Debug, Clone, PartialEq)]
pub enum Location<'a> {
    /// A SQLite file.
    Sqlite(&'a Path),
    /// A PostgreSQL connection URL.
    Postgres(&'a str),
}

impl<'a> Location<'a> {
    /// What `database` names: a `postgres://` (or `postgresql://`) URL, or else a file.
    pub fn of(database: &'a Path) -> Self {
        match database.to_str() {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => Self::Postgres(url),
            _ => Self::Sqlite(database),
        }
    }

    /// Whether it is a PostgreSQL URL.
    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }
}

/// A PostgreSQL URL with its password (if any) replaced, for errors and logs.
fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("REDACTED"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Opening the database failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot open database {path}: {reason}")]
pub struct OpenError {
    /// The file.
    pub path: String,
    /// Why.
    pub reason: String,
}

impl Db {
    /// Opens (creating and migrating) the database `database` names (a SQLite file or a
    /// PostgreSQL URL, see [`Location`]) and starts the storage threads. `power_safe` makes every
    /// SQLite commit wait for fsync (`synchronous = FULL`); PostgreSQL's commits already do.
    pub fn open(database: &Path, power_safe: bool) -> Result<Self, OpenError> {
        match Location::of(database) {
            Location::Sqlite(path) => Self::open_sqlite(path, power_safe),
            Location::Postgres(url) => Self::open_postgres(url),
        }
    }

    fn open_postgres(url: &str) -> Result<Self, OpenError> {
        let err = |reason: String| OpenError {
            path: redact_url(url),
            reason,
        };
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let writer_url = url.to_string();
        // The writer connects and migrates on its own thread (see `Readers::start`).
        std::thread::Builder::new()
            .name("authmd-db".into())
            .spawn(move || {
                let opened = pg::PgConn::connect(&writer_url).and_then(|mut c| pg::migrate(&mut c).map(|()| c));
                match opened {
                    Ok(c) => {
                        let _ = ready_tx.send(Ok(()));
                        run(Connection::Pg(Box::new(std::cell::RefCell::new(c))), rx, Guard::Postgres);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| err(e.to_string()))?;
        ready_rx
            .recv()
            .map_err(|_| err("the storage thread stopped".into()))?
            .map_err(err)?;
        let url = url.to_string();
        let readers =
            Readers::start(move || pg::PgConn::connect(&url).map(|c| Connection::Pg(Box::new(std::cell::RefCell::new(c))))).map_err(err)?;
        Ok(Self {
            tx,
            readers: std::sync::Arc::new(readers),
            _checkpointer: None,
        })
    }

    fn open_sqlite(path: &Path, power_safe: bool) -> Result<Self, OpenError> {
        let err = |e: rusqlite::Error| OpenError {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let mut conn = rusqlite::Connection::open(path).map_err(err)?;
        // WAL + NORMAL survives a process crash (kill -9); only an OS crash or power loss can
        // drop the last commits. FULL closes that gap at the cost of an fsync per batch.
        let synchronous = if power_safe { "FULL" } else { "NORMAL" };
        // 1 KiB pages (for a new file; an existing one keeps its size): most of a write's cost
        // is the WAL frames of the index pages it dirties, and the hash-keyed indexes
        // (credentials, claim tokens, jtis) dirty a random page per insert. Smaller pages
        // halve the bytes per dirtied page (measured: anonymous registrations 11.9k/s at 4 KiB,
        // 17.8k/s at 1 KiB, before time-ordered ids).
        conn.execute_batch(&format!(
            "PRAGMA page_size = 1024; PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;"
        ))
        .map_err(err)?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(err)?;
        // The pending migrations in one transaction (all or none), each page of the schema
        // written to the WAL once; then the WAL is folded into the file, so a new database
        // starts with an empty one.
        let pending = schema::MIGRATIONS.len() as i64 - version.max(0);
        if pending > 0 {
            let tx = conn.transaction().map_err(err)?;
            for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
                tx.execute_batch(sql).map_err(err)?;
                tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1)).map_err(err)?;
            }
            tx.commit().map_err(err)?;
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).map_err(err)?;
        }
        // The writer never checkpoints: a checkpoint copies WAL pages into the database file
        // (and fsyncs it), work that would stall every queued registration. A thread of its own
        // does it beside the writer; its PASSIVE checkpoints never block the writer or readers.
        // A larger page cache keeps the random-keyed index pages the inserts touch in memory.
        conn.execute_batch(&format!(
            "PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = -16384; PRAGMA journal_size_limit = {WAL_SIZE_LIMIT};"
        ))
        .map_err(err)?;
        let opened = FileId::of(path);
        let file = path.to_path_buf();
        conn.set_prepared_statement_cache_capacity(64);
        let (checkpoint_stop, stop) = mpsc::channel::<()>();
        start_checkpointer(path, stop).map_err(|reason| OpenError {
            path: path.display().to_string(),
            reason,
        })?;
        let (tx, rx) = mpsc::channel::<Job>();
        let conn = Connection::Lite(conn);
        std::thread::Builder::new()
            .name("authmd-db".into())
            .spawn(move || run(conn, rx, Guard::File { path: file, opened }))
            .map_err(|e| OpenError {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        let reader_path = path.to_path_buf();
        let readers = std::sync::Arc::new(Readers::start(move || lite_reader(&reader_path)).map_err(|reason| OpenError {
            path: path.display().to_string(),
            reason,
        })?);
        Ok(Self {
            tx,
            readers,
            _checkpointer: Some(std::sync::Arc::new(checkpoint_stop)),
        })
    }

    /// Runs the read-only `f` on a reader thread's connection, off the writer thread. Never for
    /// a read that decides a write: that belongs in [`Db::call`], where it is atomic.
    pub(crate) async fn read<R, F>(&self, f: F) -> Result<R, ApiError>
    where
        R: Send + 'static,
        F: Fn(&Connection) -> Result<R, ApiError> + Send + 'static,
    {
        let (reply_tx, reply_rx) = tokio::sync::oneshot::channel();
        let job: ReadJob = Box::new(move |conn| {
            let outcome = match conn {
                // A read that failed on a connection the database closed runs again on a new one
                // (a read changes nothing, so `f` may run twice).
                Some(conn) => match f(conn) {
                    Err(_) if conn.revive() => f(conn),
                    outcome => outcome,
                },
                None => Err(ApiError::Internal("no read connection".into())),
            };
            let _ = reply_tx.send(outcome);
        });
        self.readers
            .tx
            .send(job)
            .map_err(|_| ApiError::Internal("the reader threads stopped".into()))?;
        reply_rx
            .await
            .map_err(|_| ApiError::Internal("a reader thread dropped a job".into()))?
    }

    /// Runs `f` on the storage thread inside a savepoint; an `Err` rolls back `f`'s writes only.
    pub(crate) async fn call<R, F>(&self, f: F) -> Result<R, ApiError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, ApiError> + Send + 'static,
    {
        let (reply_tx, reply_rx) = tokio::sync::oneshot::channel();
        self.tx
            .send(job(f, move |outcome| {
                let _ = reply_tx.send(outcome);
            }))
            .map_err(|_| ApiError::Internal("storage thread stopped".into()))?;
        reply_rx
            .await
            .map_err(|_| ApiError::Internal("storage thread dropped a job".into()))?
    }

    /// [`Db::call`] from code that is not async (the server's start), waiting on this thread.
    pub(crate) fn call_blocking<R, F>(&self, f: F) -> Result<R, ApiError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, ApiError> + Send + 'static,
    {
        let (reply_tx, reply_rx) = mpsc::channel();
        self.tx
            .send(job(f, move |outcome| {
                let _ = reply_tx.send(outcome);
            }))
            .map_err(|_| ApiError::Internal("storage thread stopped".into()))?;
        reply_rx
            .recv()
            .map_err(|_| ApiError::Internal("storage thread dropped a job".into()))?
    }
}

/// A job running `f` in a savepoint of the batch, whose outcome goes to `reply` once the batch's
/// commit has succeeded (or as an error when it has not).
fn job<R, F, S>(f: F, reply: S) -> Job
where
    R: Send + 'static,
    F: FnOnce(&Connection) -> Result<R, ApiError> + Send + 'static,
    S: FnOnce(Result<R, ApiError>) + Send + 'static,
{
    Box::new(move |conn| {
        let outcome = match conn.execute_batch("SAVEPOINT job") {
            Ok(()) => {
                let result = f(conn);
                let end = if result.is_ok() {
                    "RELEASE job"
                } else {
                    "ROLLBACK TO job; RELEASE job"
                };
                match conn.execute_batch(end) {
                    Ok(()) => result,
                    Err(e) => Err(ApiError::Internal(e.to_string())),
                }
            }
            Err(e) => Err(ApiError::Internal(e.to_string())),
        };
        Box::new(move |committed| {
            reply(if committed {
                outcome
            } else {
                Err(ApiError::Internal("commit failed".into()))
            })
        })
    })
}

/// What the writer checks around a commit.
enum Guard {
    /// A SQLite file: a commit to a file that is no longer at its path would be lost, and the
    /// writer bounds the WAL.
    File {
        /// The file.
        path: std::path::PathBuf,
        /// Which file it was at open.
        opened: Option<FileId>,
    },
    /// A PostgreSQL database: nothing local to check.
    Postgres,
}

fn run(conn: Connection, rx: mpsc::Receiver<Job>, guard: Guard) {
    // IMMEDIATE takes SQLite's write lock at BEGIN (waiting under busy_timeout): a deferred
    // transaction that reads first and writes later fails at once with SQLITE_BUSY when another
    // connection (a replica over the same file) wrote in between. On PostgreSQL the advisory
    // lock does the same across the replicas' writers (see `pg`).
    let begin = match conn.is_postgres() {
        true => format!("BEGIN; SELECT pg_advisory_xact_lock({})", pg::WRITE_LOCK),
        false => "BEGIN IMMEDIATE".to_string(),
    };
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        // A connection the database closed fails at BEGIN, before any job ran: connect again
        // and begin again, so no request is lost to it.
        let mut begun = conn.execute_batch(&begin);
        if begun.is_err() && conn.revive() {
            begun = conn.execute_batch(&begin);
        }
        if let Err(e) = begun {
            tracing::error!(error = %e, "cannot begin a write transaction");
            let _ = conn.execute_batch("ROLLBACK");
            // Dropping the jobs answers each caller with an error.
            drop(jobs);
            continue;
        }
        let replies: Vec<Reply> = jobs.into_iter().map(|job| job(&conn)).collect();
        // A commit to a file that is no longer at the path (deleted, replaced) would succeed and
        // be lost at the next start: roll it back and answer an error instead (one stat a batch).
        let moved = match &guard {
            Guard::File { path, opened } => FileId::of(path) != *opened,
            Guard::Postgres => false,
        };
        let committed = if moved {
            tracing::error!("the database file was deleted or replaced; refusing to commit");
            let _ = conn.execute_batch("ROLLBACK");
            false
        } else {
            match conn.execute_batch("COMMIT") {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(error = %e, "commit failed");
                    let _ = conn.execute_batch("ROLLBACK");
                    false
                }
            }
        };
        for reply in replies {
            reply(committed);
        }
        // Under sustained writes a passive checkpoint never sees the WAL whole, so it is never
        // started over and only grows (822 MiB after 10 s at 11k registrations/s), and a
        // checkpoint from another connection waits for a gap between batches that rarely comes.
        // The writer itself truncates it past the bound, after its replies are sent: the
        // frames left to copy are the few the passive checkpoints have not.
        if let Guard::File { path, .. } = &guard {
            let wal = std::path::PathBuf::from(format!("{}-wal", path.display()));
            if std::fs::metadata(&wal).is_ok_and(|m| m.len() > WAL_TRUNCATE_AT)
                && let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", &[], |_| Ok(()))
            {
                tracing::warn!(error = %e, "WAL truncation failed");
            }
        }
    }
}

#[cfg(test)]
mod read_pool_tests;
