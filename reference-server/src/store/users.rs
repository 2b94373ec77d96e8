//! User accounts: lookup by verified email and just-in-time provisioning (MATCH-*).

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::ApiError;
use crate::secrets::ordered_id;
use crate::store::sql::{db, exec, row};

/// The account that owns `email` as a verified address (case-insensitive: the column is NOCASE).
pub(crate) fn user_by_verified_email(conn: &Connection, email: &str) -> Result<Option<String>, ApiError> {
    row(
        conn,
        "SELECT id FROM users WHERE email = ?1 AND email_verified = 1",
        params![email],
        |r| r.get(0),
    )
    .optional()
    .map_err(db)
}

/// Creates a user (just-in-time provisioning) and returns its id.
pub(crate) fn create_user(
    conn: &Connection,
    email: Option<&str>,
    email_verified: bool,
    phone: Option<&str>,
    now: i64,
) -> Result<String, ApiError> {
    let id = ordered_id("user_");
    exec(
        conn,
        "INSERT INTO users (id, email, email_verified, phone, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, email, email_verified, phone, now],
    )
    .map_err(db)?;
    Ok(id)
}
