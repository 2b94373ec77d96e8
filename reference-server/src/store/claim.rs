//! The v0.1 claim ceremony's queries as `/complete` needs them: the live attempt, the codes of
//! other attempts (read only under defects), the failure counter, and the claim itself.

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::ApiError;
use crate::store::sql::{db, exec, row};

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
    row(
        conn,
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
    let n: i64 = row(
        conn,
        "SELECT COUNT(*) FROM claim_attempts WHERE registration_id = ?1 AND superseded = 1 AND otp_hash = ?2",
        params![registration_id, otp_hash],
        |r| r.get(0),
    )
    .map_err(db)?;
    Ok(n > 0)
}

/// Whether any attempt of any registration has the code hashing to `otp_hash`.
pub(crate) fn any_registration_code(conn: &Connection, otp_hash: &str) -> Result<bool, ApiError> {
    let n: i64 = row(
        conn,
        "SELECT COUNT(*) FROM claim_attempts WHERE otp_hash = ?1",
        params![otp_hash],
        |r| r.get(0),
    )
    .map_err(db)?;
    Ok(n > 0)
}

/// Counts one wrong guess against the attempt.
pub(crate) fn record_failure(conn: &Connection, attempt_id: &str) -> Result<(), ApiError> {
    exec(
        conn,
        "UPDATE claim_attempts SET failures = failures + 1 WHERE id = ?1",
        params![attempt_id],
    )
    .map_err(db)?;
    Ok(())
}

/// Binds the registration to `user_id` and burns every code of its attempts.
pub(crate) fn mark_claimed(conn: &Connection, registration_id: &str, user_id: &str) -> Result<(), ApiError> {
    exec(
        conn,
        "UPDATE registrations SET status = 'claimed', user_id = ?1 WHERE id = ?2",
        params![user_id, registration_id],
    )
    .map_err(db)?;
    exec(
        conn,
        "UPDATE claim_attempts SET otp_hash = NULL, superseded = 1 WHERE registration_id = ?1",
        params![registration_id],
    )
    .map_err(db)?;
    Ok(())
}

/// Gives the registration's credentials `scopes` (a JSON array) and their new owner.
pub(crate) fn rescope_credentials(conn: &Connection, registration_id: &str, scopes: &str, user_id: &str) -> Result<(), ApiError> {
    exec(
        conn,
        "UPDATE credentials SET scopes = ?1, user_id = ?2 WHERE registration_id = ?3",
        params![scopes, user_id, registration_id],
    )
    .map_err(db)?;
    Ok(())
}

/// Revokes every credential of the registration.
pub(crate) fn revoke_credentials(conn: &Connection, registration_id: &str) -> Result<(), ApiError> {
    exec(
        conn,
        "UPDATE credentials SET revoked = 1 WHERE registration_id = ?1",
        params![registration_id],
    )
    .map_err(db)?;
    Ok(())
}
