//! The v0.1 claim ceremony's queries: attempts and their tokens, the OTP a challenge mints,
//! the claim mail queued with its attempt, and what `/complete` reads and writes.

use crate::store::sql::{Connection, OptionalExtension, db, params};

use crate::error::ApiError;
use crate::secrets::hash;

/// The live attempt of a registration.
pub(crate) struct CurrentAttempt {
    /// Its id.
    pub(crate) id: String,
    /// The address the claim mail went to.
    pub(crate) email: String,
    /// The hash of the current OTP; none before the first challenge.
    pub(crate) otp_hash: Option<String>,
    /// When the current OTP dies.
    pub(crate) otp_expires: Option<i64>,
    /// The hash of the OTP the last challenge replaced.
    pub(crate) previous: Option<String>,
    /// Wrong guesses so far.
    pub(crate) failures: u32,
    /// The current OTP in clear, kept only for defects that leak or prefix-compare it.
    pub(crate) plain: Option<String>,
}

/// The newest attempt of `registration_id` not superseded by another.
pub(crate) fn current_attempt(conn: &Connection, registration_id: &str) -> Result<Option<CurrentAttempt>, ApiError> {
    conn.query_row(
        "SELECT id, email, otp_hash, otp_expires_at, previous_otp_hash, failures, otp_plain FROM claim_attempts
             WHERE registration_id = ?1 AND superseded = 0 ORDER BY created_at DESC, rowid DESC LIMIT 1",
        params![registration_id],
        |r| {
            Ok(CurrentAttempt {
                id: r.get(0)?,
                email: r.get(1)?,
                otp_hash: r.get(2)?,
                otp_expires: r.get(3)?,
                previous: r.get(4)?,
                failures: r.get(5)?,
                plain: r.get(6)?,
            })
        },
    )
    .optional()
    .map_err(db)
}

/// Whether a superseded attempt of `registration_id` had the code hashing to `otp_hash`.
pub(crate) fn superseded_code(conn: &Connection, registration_id: &str, otp_hash: &str) -> Result<bool, ApiError> {
    let n: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM claim_attempts WHERE registration_id = ?1 AND superseded = 1 AND otp_hash = ?2",
            params![registration_id, otp_hash],
            |r| r.get(0),
        )
        .map_err(db)?;
    Ok(n > 0)
}

/// Whether any attempt of any registration has the code hashing to `otp_hash`.
pub(crate) fn any_registration_code(conn: &Connection, otp_hash: &str) -> Result<bool, ApiError> {
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM claim_attempts WHERE otp_hash = ?1", params![otp_hash], |r| {
            r.get(0)
        })
        .map_err(db)?;
    Ok(n > 0)
}

/// Counts one wrong guess against the attempt.
pub(crate) fn record_failure(conn: &Connection, attempt_id: &str) -> Result<(), ApiError> {
    conn.execute(
        "UPDATE claim_attempts SET failures = failures + 1 WHERE id = ?1",
        params![attempt_id],
    )
    .map_err(db)?;
    Ok(())
}

/// Binds the registration to `user_id` and burns every code of its attempts.
pub(crate) fn mark_claimed(conn: &Connection, registration_id: &str, user_id: &str) -> Result<(), ApiError> {
    conn.execute(
        "UPDATE registrations SET status = 'claimed', user_id = ?1 WHERE id = ?2",
        params![user_id, registration_id],
    )
    .map_err(db)?;
    conn.execute(
        "UPDATE claim_attempts SET otp_hash = NULL, superseded = 1 WHERE registration_id = ?1",
        params![registration_id],
    )
    .map_err(db)?;
    Ok(())
}

/// Gives the registration's credentials `scopes` (a JSON array) and their new owner.
pub(crate) fn rescope_credentials(conn: &Connection, registration_id: &str, scopes: &str, user_id: &str) -> Result<(), ApiError> {
    conn.execute(
        "UPDATE credentials SET scopes = ?1, user_id = ?2 WHERE registration_id = ?3",
        params![scopes, user_id, registration_id],
    )
    .map_err(db)?;
    Ok(())
}

/// The live attempt of `registration_id` for `email` (any case), with when it ends.
pub(crate) fn live_attempt_for(conn: &Connection, registration_id: &str, email: &str, now: i64) -> Result<Option<(String, i64)>, ApiError> {
    conn.query_row("SELECT id, expires_at FROM claim_attempts WHERE registration_id = ?1 AND superseded = 0 AND expires_at > ?2 AND email = ?3 COLLATE NOCASE",
        params![registration_id, now, email],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
    .map_err(db)
}

/// Supersedes every attempt of the registration, token and OTP alike (CLAIM-05).
pub(crate) fn supersede_attempts(conn: &Connection, registration_id: &str) -> Result<(), ApiError> {
    conn.execute(
        "UPDATE claim_attempts SET superseded = 1 WHERE registration_id = ?1",
        params![registration_id],
    )
    .map_err(db)?;
    Ok(())
}

/// Inserts an attempt; its token is stored as a hash.
pub(crate) fn insert_attempt(
    conn: &Connection,
    id: &str,
    registration_id: &str,
    email: &str,
    token_hash: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), ApiError> {
    conn.execute(
        "INSERT INTO claim_attempts (id, registration_id, email, token_hash, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![id, registration_id, email, token_hash, now, expires_at],
    )
    .map_err(db)?;
    Ok(())
}

/// Sets the OTP of the attempt whose token hashes to `token_hash` (the mint-on-view defect).
pub(crate) fn set_otp_by_token(conn: &Connection, token_hash: &str, otp_hash: &str) -> Result<(), ApiError> {
    conn.execute(
        "UPDATE claim_attempts SET otp_hash = ?1 WHERE token_hash = ?2",
        params![otp_hash, token_hash],
    )
    .map_err(db)?;
    Ok(())
}

/// A new OTP for the attempt (CLAIM-12): the previous one is kept aside, the failure count
/// restarts; `plain` is kept only for the defects that leak it.
pub(crate) fn replace_otp(
    conn: &Connection,
    attempt_id: &str,
    otp_hash: &str,
    expires_at: i64,
    plain: Option<&str>,
) -> Result<(), ApiError> {
    conn.execute("UPDATE claim_attempts SET previous_otp_hash = otp_hash, otp_hash = ?1, otp_expires_at = ?2, failures = 0, otp_plain = ?4 WHERE id = ?3",
        params![otp_hash, expires_at, attempt_id, plain],
    )
    .map_err(db)?;
    Ok(())
}

/// What a `claim_attempt_token` names.
pub(crate) enum AttemptState {
    /// No live attempt has it (never issued, or superseded).
    Unknown,
    /// Its registration is claimed.
    Claimed,
    /// Its window closed.
    Expired,
    /// A live attempt.
    Live {
        /// The attempt.
        id: String,
        /// Its registration.
        registration_id: String,
    },
}

/// The attempt `token` names; `window` is false only under the `ignore-attempt-window` defect.
pub(crate) fn attempt_by_token(conn: &Connection, token: &str, now: i64, window: bool) -> Result<AttemptState, ApiError> {
    let row: Option<(String, String, i64, i64, String)> = conn.query_row("SELECT a.id, a.registration_id, a.superseded, a.expires_at, r.status FROM claim_attempts a JOIN registrations r ON r.id = a.registration_id WHERE a.token_hash = ?1",
            params![hash(token)],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()
        .map_err(db)?;
    Ok(match row {
        None => AttemptState::Unknown,
        Some((_, _, _, _, status)) if status == "claimed" => AttemptState::Claimed,
        Some((_, _, superseded, _, _)) if superseded != 0 => AttemptState::Unknown,
        Some((_, _, _, expires_at, _)) if window && now >= expires_at => AttemptState::Expired,
        Some((id, registration_id, _, _, _)) => AttemptState::Live { id, registration_id },
    })
}
