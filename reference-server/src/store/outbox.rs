//! The claim-mail outbox: mail is queued in the transaction that makes its attempt, leased
//! before it is sent (so two drains never send it twice), deleted once delivered, and retried
//! with a doubling backoff (1 s up to 5 min) when the relay fails.

use crate::store::sql::{Connection, OptionalExtension, db, params};

use crate::error::ApiError;

/// A queued claim mail.
pub(crate) struct Queued {
    /// Its row.
    pub(crate) id: i64,
    /// The address.
    pub(crate) recipient: String,
    /// The registration being claimed.
    pub(crate) registration_id: String,
    /// The claim link.
    pub(crate) link: String,
    /// When the link dies.
    pub(crate) expires: String,
}

/// Queues a claim mail, due at once.
pub(crate) fn enqueue_mail(conn: &Connection, recipient: &str, registration_id: &str, link: &str, expires: &str) -> Result<(), ApiError> {
    conn.execute(
        "INSERT INTO outbox (recipient, registration_id, link, expires, next_try_at) VALUES (?1, ?2, ?3, ?4, 0)",
        params![recipient, registration_id, link, expires],
    )
    .map_err(db)?;
    Ok(())
}

/// The oldest mail due at `wall`, leased for a minute. One statement, so two drains (two
/// replicas over one database, or a restart beside a running drain) never lease the same mail.
pub(crate) fn lease_due(conn: &Connection, wall: i64) -> Result<Option<Queued>, ApiError> {
    conn.query_row(
        "UPDATE outbox SET next_try_at = ?2 \
         WHERE id = (SELECT id FROM outbox WHERE next_try_at <= ?1 ORDER BY id LIMIT 1) AND next_try_at <= ?1 \
         RETURNING id, recipient, registration_id, link, expires",
        params![wall, wall + 60],
        |r| {
            Ok(Queued {
                id: r.get(0)?,
                recipient: r.get(1)?,
                registration_id: r.get(2)?,
                link: r.get(3)?,
                expires: r.get(4)?,
            })
        },
    )
    .optional()
    .map_err(db)
}

/// Drops a delivered mail.
pub(crate) fn delivered(conn: &Connection, id: i64) -> Result<usize, ApiError> {
    conn.execute("DELETE FROM outbox WHERE id = ?1", params![id]).map_err(db)
}

/// Schedules another try of a mail the relay refused, with the reason.
pub(crate) fn retry_later(conn: &Connection, id: i64, error: &str, wall: i64) -> Result<usize, ApiError> {
    // The backoff is computed here: SQLite's two-argument MIN has no PostgreSQL spelling.
    let tries: Option<i64> = conn
        .query_row(
            "UPDATE outbox SET tries = tries + 1, last_error = ?2 WHERE id = ?1 RETURNING tries",
            params![id, error],
            |r| r.get(0),
        )
        .optional()
        .map_err(db)?;
    let Some(tries) = tries else { return Ok(0) };
    let backoff = 1i64 << (tries - 1).clamp(0, 9);
    conn.execute(
        "UPDATE outbox SET next_try_at = ?2 WHERE id = ?1",
        params![id, wall + backoff.min(300)],
    )
    .map_err(db)
}
