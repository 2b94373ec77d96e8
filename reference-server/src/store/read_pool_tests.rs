//! The storage threads on SQLite: reads beside the writer, and the WAL kept bounded.

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
            conn.query_row("SELECT 1", &[], |r| r.get(0))
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
                    sql::params![round * 100 + i, "y".repeat(500)],
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
                sql::params![i, "z".repeat(1000)],
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
        conn.execute("INSERT INTO audit (at, event, data) VALUES (0, 'tick', '')", &[])
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
