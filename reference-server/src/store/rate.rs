//! Rate-limit windows in the database (RATE-01, RATE-02), for servers whose instances share it:
//! the same fixed windows as `crate::rate`, counted once for every replica.

use crate::error::ApiError;
use crate::store::sql::{Connection, OptionalExtension, db, params};

/// Counts one request for `key` at `now` (the request's clock) and `real` (the server's own);
/// `Ok(Err(retry_after_secs))` once over `limit` within the `window`. Runs on the writer, so two
/// instances counting the same key at once each see the other's count. Windows idle for a
/// window of real time are swept a few at a time.
pub(crate) fn hit(conn: &Connection, key: &str, limit: u32, window: i64, now: i64, real: i64) -> Result<Result<(), u64>, ApiError> {
    conn.execute(
        "DELETE FROM rate_windows WHERE key IN (SELECT key FROM rate_windows WHERE touched < ?1 OR touched > ?2 LIMIT 16)",
        params![real - window, real + window],
    )
    .map_err(db)?;
    let current: Option<(i64, i64)> = conn
        .query_row("SELECT started, count FROM rate_windows WHERE key = ?1", params![key], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .map_err(db)?;
    let (started, count) = match current {
        Some((started, count)) if now - started < window && now >= started => (started, count + 1),
        _ => (now, 1),
    };
    conn.execute(
        "INSERT INTO rate_windows (key, started, count, touched) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (key) DO UPDATE SET started = excluded.started, count = excluded.count, touched = excluded.touched",
        params![key, started, count, real],
    )
    .map_err(db)?;
    if count > i64::from(limit) {
        return Ok(Err((started + window - now).max(1) as u64));
    }
    Ok(Ok(()))
}
