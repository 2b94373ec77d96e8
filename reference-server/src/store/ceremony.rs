//! The v0.6 user-code ceremony: attempts (a code the user types on the service's page, polled
//! by the agent through the claim grant) and the sign-in sessions of the service's own pages.

use crate::store::sql::{Connection, OptionalExtension, db, params};

use crate::error::ApiError;

/// Supersedes every ceremony of the registration.
pub(crate) fn supersede_ceremonies(conn: &Connection, registration_id: &str) -> Result<(), ApiError> {
    conn.execute(
        "UPDATE v06_attempts SET superseded = 1 WHERE registration_id = ?1",
        params![registration_id],
    )
    .map_err(db)?;
    Ok(())
}

/// Inserts a pending ceremony; its token and code are stored as hashes.
#[allow(clippy::too_many_arguments)]
pub(crate) fn insert_ceremony(
    conn: &Connection,
    id: &str,
    registration_id: &str,
    email: &str,
    token_hash: &str,
    code_hash: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), ApiError> {
    conn.execute(
        "INSERT INTO v06_attempts (id, registration_id, email, token_hash, code_hash, created_at, expires_at, status)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending')",
        params![id, registration_id, email, token_hash, code_hash, now, expires_at],
    )
    .map_err(db)?;
    Ok(())
}

/// A ceremony as the claim grant polls it.
pub(crate) struct Polled {
    /// Its id.
    pub(crate) id: String,
    /// `pending`, `completed` or `redeemed`.
    pub(crate) status: String,
    /// When its window closes.
    pub(crate) expires_at: i64,
    /// When the agent last polled.
    pub(crate) last_poll: Option<i64>,
}

/// The registration's live ceremony.
pub(crate) fn ceremony_of(conn: &Connection, registration_id: &str) -> Result<Option<Polled>, ApiError> {
    conn.query_row(
        "SELECT id, status, expires_at, last_poll_at FROM v06_attempts WHERE registration_id = ?1 AND superseded = 0",
        params![registration_id],
        |r| {
            Ok(Polled {
                id: r.get(0)?,
                status: r.get(1)?,
                expires_at: r.get(2)?,
                last_poll: r.get(3)?,
            })
        },
    )
    .optional()
    .map_err(db)
}

/// Moves the ceremony to `status` (`completed`, `redeemed`).
pub(crate) fn set_ceremony_status(conn: &Connection, id: &str, status: &str) -> Result<(), ApiError> {
    conn.execute("UPDATE v06_attempts SET status = ?2 WHERE id = ?1", params![id, status])
        .map_err(db)?;
    Ok(())
}

/// Records a poll of the claim grant (for `slow_down`).
pub(crate) fn record_poll(conn: &Connection, id: &str, now: i64) -> Result<(), ApiError> {
    conn.execute("UPDATE v06_attempts SET last_poll_at = ?1 WHERE id = ?2", params![now, id])
        .map_err(db)?;
    Ok(())
}

/// A pending ceremony as the confirm page checks it.
pub(crate) struct Pending {
    /// Its id.
    pub(crate) id: String,
    /// Its registration.
    pub(crate) registration_id: String,
    /// The address the agent named.
    pub(crate) email: String,
    /// The hash of the code.
    pub(crate) code_hash: String,
    /// When its window closes.
    pub(crate) expires_at: i64,
    /// Wrong codes so far.
    pub(crate) failures: i64,
    /// Whether a newer ceremony replaced it.
    pub(crate) superseded: bool,
}

/// The pending ceremony whose token hashes to `token_hash`.
pub(crate) fn pending_ceremony(conn: &Connection, token_hash: &str) -> Result<Option<Pending>, ApiError> {
    conn.query_row("SELECT a.id, a.registration_id, a.email, a.code_hash, a.expires_at, a.failures, a.superseded FROM v06_attempts a WHERE a.token_hash = ?1 AND a.status = 'pending'",
        params![token_hash],
        |r| {
            Ok(Pending {
                id: r.get(0)?,
                registration_id: r.get(1)?,
                email: r.get(2)?,
                code_hash: r.get(3)?,
                expires_at: r.get(4)?,
                failures: r.get(5)?,
                superseded: r.get::<i64>(6)? != 0,
            })
        },
    )
    .optional()
    .map_err(db)
}

/// Counts one wrong code against the ceremony.
pub(crate) fn record_wrong_code(conn: &Connection, id: &str) -> Result<(), ApiError> {
    conn.execute("UPDATE v06_attempts SET failures = failures + 1 WHERE id = ?1", params![id])
        .map_err(db)?;
    Ok(())
}

/// Stores a sign-in session of the service's pages.
pub(crate) fn insert_session(conn: &Connection, token_hash: &str, email: &str, expires_at: i64) -> Result<(), ApiError> {
    conn.execute(
        "INSERT INTO v06_sessions (token_hash, email, expires_at) VALUES (?1, ?2, ?3)",
        params![token_hash, email, expires_at],
    )
    .map_err(db)?;
    Ok(())
}

/// The address signed in with the session whose token hashes to `token_hash`.
pub(crate) fn signed_in(conn: &Connection, token_hash: &str, now: i64) -> Result<Option<String>, ApiError> {
    conn.query_row(
        "SELECT email FROM v06_sessions WHERE token_hash = ?1 AND expires_at > ?2",
        params![token_hash, now],
        |r| r.get(0),
    )
    .optional()
    .map_err(db)
}

/// The production dialect's attempt as its page and `/complete` read it.
pub(crate) struct Attempt {
    /// Its id.
    pub(crate) id: String,
    /// The address the agent's `login_hint` named.
    pub(crate) email: String,
    /// `pending` (not confirmed), `confirmed` (the code revealed) or `completed`.
    pub(crate) status: String,
    /// The hash of the revealed code (empty until the user confirms).
    pub(crate) code_hash: String,
    /// When its window closes.
    pub(crate) expires_at: i64,
    /// Wrong codes so far.
    pub(crate) failures: i64,
}

const ATTEMPT_COLUMNS: &str = "id, email, status, code_hash, expires_at, failures";

fn attempt_row(r: &crate::store::sql::Row<'_>) -> crate::store::sql::Result<Attempt> {
    Ok(Attempt {
        id: r.get(0)?,
        email: r.get(1)?,
        status: r.get(2)?,
        code_hash: r.get(3)?,
        expires_at: r.get(4)?,
        failures: r.get(5)?,
    })
}

/// The live (not superseded) attempt whose link token hashes to `token_hash`.
pub(crate) fn attempt_by_link(conn: &Connection, token_hash: &str) -> Result<Option<Attempt>, ApiError> {
    conn.query_row(
        &format!("SELECT {ATTEMPT_COLUMNS} FROM v06_attempts WHERE token_hash = ?1 AND superseded = 0"),
        params![token_hash],
        attempt_row,
    )
    .optional()
    .map_err(db)
}

/// The registration's live attempt.
pub(crate) fn live_attempt(conn: &Connection, registration_id: &str) -> Result<Option<Attempt>, ApiError> {
    conn.query_row(
        &format!("SELECT {ATTEMPT_COLUMNS} FROM v06_attempts WHERE registration_id = ?1 AND superseded = 0"),
        params![registration_id],
        attempt_row,
    )
    .optional()
    .map_err(db)
}

/// Records that the user confirmed: the code revealed to them, stored as its hash.
pub(crate) fn confirm_attempt(conn: &Connection, id: &str, code_hash: &str) -> Result<(), ApiError> {
    conn.execute(
        "UPDATE v06_attempts SET status = 'confirmed', code_hash = ?2 WHERE id = ?1",
        params![id, code_hash],
    )
    .map_err(db)?;
    Ok(())
}
