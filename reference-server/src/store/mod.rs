//! SQLite storage behind one writer thread, with a pool of read-only connections beside it.
//!
//! Every write (and every read that decides a write) is a job run on the thread that owns the
//! only writing connection, so SQLite never sees two writers and a check-then-insert (a `jti`,
//! an OTP attempt) is atomic. Jobs queued together share one transaction, each inside its own
//! savepoint; replies are sent only after the commit, so an answer never describes data a crash
//! could lose. Pure reads (authenticating an API call) go to read-only connections instead: WAL
//! lets them run beside the writer, and they see every commit answered before they started.

use std::path::Path;
use std::sync::mpsc;

use rusqlite::Connection;

use crate::error::ApiError;

pub(crate) mod audit;
pub(crate) mod ceremony;
pub(crate) mod claim;
pub(crate) mod credentials;
pub(crate) mod keys;
pub(crate) mod outbox;
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
    /// Dropped with the last handle, which stops the checkpoint thread.
    _checkpointer: std::sync::Arc<mpsc::Sender<()>>,
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
    fn start(path: &Path) -> Result<Self, String> {
        let (tx, rx) = mpsc::channel::<ReadJob>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for i in 0..READERS {
            let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let conn = Connection::open_with_flags(path, flags).map_err(|e| e.to_string())?;
            // A small page cache each: the readers must not cost the server its memory.
            conn.execute_batch("PRAGMA busy_timeout = 5000; PRAGMA cache_size = -1024;")
                .map_err(|e| e.to_string())?;
            conn.set_prepared_statement_cache_capacity(64);
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("authmd-db-read-{i}"))
                .spawn(move || {
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
    let conn = Connection::open(path).map_err(|e| e.to_string())?;
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
    /// Opens (creating and migrating) the SQLite file and starts the storage thread.
    /// `power_safe` makes every commit wait for fsync (`synchronous = FULL`).
    pub fn open(path: &Path, power_safe: bool) -> Result<Self, OpenError> {
        let err = |e: rusqlite::Error| OpenError {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let mut conn = Connection::open(path).map_err(err)?;
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
        std::thread::Builder::new()
            .name("authmd-db".into())
            .spawn(move || run(conn, rx, file, opened))
            .map_err(|e| OpenError {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        let readers = std::sync::Arc::new(Readers::start(path).map_err(|reason| OpenError {
            path: path.display().to_string(),
            reason,
        })?);
        Ok(Self {
            tx,
            readers,
            _checkpointer: std::sync::Arc::new(checkpoint_stop),
        })
    }

    /// Runs the read-only `f` on a reader thread's connection, off the writer thread. Never for
    /// a read that decides a write: that belongs in [`Db::call`], where it is atomic.
    pub async fn read<R, F>(&self, f: F) -> Result<R, ApiError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, ApiError> + Send + 'static,
    {
        let (reply_tx, reply_rx) = tokio::sync::oneshot::channel();
        let job: ReadJob = Box::new(move |conn| {
            let outcome = match conn {
                Some(conn) => f(conn),
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
    pub async fn call<R, F>(&self, f: F) -> Result<R, ApiError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, ApiError> + Send + 'static,
    {
        let (reply_tx, reply_rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
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
                let outcome = if committed {
                    outcome
                } else {
                    Err(ApiError::Internal("commit failed".into()))
                };
                let _ = reply_tx.send(outcome);
            })
        });
        self.tx.send(job).map_err(|_| ApiError::Internal("storage thread stopped".into()))?;
        reply_rx
            .await
            .map_err(|_| ApiError::Internal("storage thread dropped a job".into()))?
    }
}

fn run(mut conn: Connection, rx: mpsc::Receiver<Job>, path: std::path::PathBuf, opened: Option<FileId>) {
    let wal = std::path::PathBuf::from(format!("{}-wal", path.display()));
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        // IMMEDIATE takes the write lock at BEGIN (waiting under busy_timeout): a deferred
        // transaction that reads first and writes later fails at once with SQLITE_BUSY when
        // another connection (a replica over the same file) wrote in between.
        let Ok(tx) = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) else {
            continue;
        };
        let replies: Vec<Reply> = jobs.into_iter().map(|job| job(&tx)).collect();
        // A commit to a file that is no longer at the path (deleted, replaced) would succeed and
        // be lost at the next start: roll it back and answer an error instead (one stat a batch).
        let committed = if FileId::of(&path) != opened {
            tracing::error!(path = %path.display(), "the database file was deleted or replaced; refusing to commit");
            drop(tx);
            false
        } else {
            match tx.commit() {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(error = %e, "commit failed");
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
        if std::fs::metadata(&wal).is_ok_and(|m| m.len() > WAL_TRUNCATE_AT)
            && let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        {
            tracing::warn!(error = %e, "WAL truncation failed");
        }
    }
}

#[cfg(test)]
mod read_pool_tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_do_not_wait_for_the_writer() {
        let path = std::env::temp_dir().join(format!("authmd-readpool-{}.sqlite", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let db = Db::open(&path, false).expect("open");
        // The writer is held inside a job until the read has finished; if reads went through
        // the writer thread, the read would wait for the release and this would deadlock.
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let (entered_tx, entered_rx) = tokio::sync::oneshot::channel::<()>();
        let writer = {
            let db = db.clone();
            tokio::spawn(async move {
                db.call(move |_conn| {
                    let _ = entered_tx.send(());
                    let _ = release_rx.recv();
                    Ok(())
                })
                .await
            })
        };
        entered_rx.await.expect("the writer job started");
        let one: i64 = db
            .read(|conn| {
                conn.query_row("SELECT 1", [], |r| r.get(0))
                    .map_err(|e| ApiError::Internal(e.to_string()))
            })
            .await
            .expect("read while the writer is busy");
        assert_eq!(one, 1);
        release_tx.send(()).expect("release");
        writer.await.expect("join").expect("writer job");
        let _ = std::fs::remove_file(&path);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_checkpointer_keeps_the_wal_bounded_and_stops_with_the_database() {
        let path = std::env::temp_dir().join(format!("authmd-checkpoint-{}.sqlite", std::process::id()));
        let wal = path.with_extension("sqlite-wal");
        let _ = std::fs::remove_file(&path);
        let db = Db::open(&path, false).expect("open");
        // The writer never checkpoints; without the checkpoint thread these rows would all stay
        // in the WAL (about 4 MB of 1 KiB frames).
        for round in 0..40 {
            db.call(move |conn| {
                for i in 0..100 {
                    conn.execute(
                        "INSERT INTO audit (at, event, data) VALUES (?1, 'x', ?2)",
                        rusqlite::params![round * 100 + i, "y".repeat(500)],
                    )
                    .map_err(|e| ApiError::Internal(e.to_string()))?;
                }
                Ok(())
            })
            .await
            .expect("insert");
        }
        let mut copied = false;
        for _ in 0..50 {
            tokio::time::sleep(CHECKPOINT_EVERY).await;
            // After a complete checkpoint the next write starts the WAL over from the beginning.
            tick(&db).await;
            let rows: i64 = rusqlite::Connection::open(&path)
                .and_then(|c| c.query_row("SELECT COUNT(*) FROM audit", [], |r| r.get(0)))
                .unwrap_or(0);
            let main_file = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            if rows >= 4000 && main_file > 2_000_000 {
                copied = true;
                break;
            }
        }
        assert!(copied, "the rows never reached the database file");
        let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        assert!(wal_len < 8_000_000, "the WAL grew to {wal_len} bytes");
        let before = checkpoint_threads();
        drop(db);
        let mut stopped = false;
        for _ in 0..40 {
            if checkpoint_threads() < before {
                stopped = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(stopped, "the checkpoint thread outlived its database ({before} running)");
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(&wal);
        let _ = std::fs::remove_file(path.with_extension("sqlite-shm"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wal_grown_by_a_burst_shrinks_back_and_is_emptied_at_close() {
        let path = std::env::temp_dir().join(format!("authmd-walsize-{}.sqlite", std::process::id()));
        let wal = path.with_extension("sqlite-wal");
        let _ = std::fs::remove_file(&path);
        let db = Db::open(&path, false).expect("open");
        // One 32 MB transaction: the WAL must hold all of it until the commit.
        db.call(|conn| {
            for i in 0..32_000 {
                conn.execute(
                    "INSERT INTO audit (at, event, data) VALUES (?1, 'burst', ?2)",
                    rusqlite::params![i, "z".repeat(1000)],
                )
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            }
            Ok(())
        })
        .await
        .expect("burst");
        let peak = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        assert!(peak > 2 * WAL_SIZE_LIMIT as u64, "the burst did not grow the WAL ({peak} bytes)");
        let mut shrunk = 0;
        for _ in 0..100 {
            tokio::time::sleep(CHECKPOINT_EVERY).await;
            tick(&db).await;
            shrunk = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
            if shrunk <= WAL_SIZE_LIMIT as u64 {
                break;
            }
        }
        assert!(shrunk <= WAL_SIZE_LIMIT as u64, "the WAL stayed at {shrunk} bytes (peak {peak})");
        drop(db);
        let mut emptied = false;
        for _ in 0..40 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            if std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) == 0 {
                emptied = true;
                break;
            }
        }
        assert!(emptied, "a WAL was left behind at close");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    /// One small write: after a complete checkpoint it starts the WAL over from the beginning.
    async fn tick(db: &Db) {
        db.call(|conn| {
            conn.execute("INSERT INTO audit (at, event, data) VALUES (0, 'tick', '')", [])
                .map_err(|e| ApiError::Internal(e.to_string()))
        })
        .await
        .expect("tick");
    }

    /// Checkpoint threads of this process (thread names are cut to 15 bytes).
    fn checkpoint_threads() -> usize {
        std::fs::read_dir("/proc/self/task")
            .map(|tasks| {
                tasks
                    .filter_map(|t| t.ok())
                    .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == "authmd-db-check"))
                    .count()
            })
            .unwrap_or(0)
    }
}
