//! Refresh tokens of the production dialect: issued when a claim completes, rotated on every
//! use (the spent one is kept, marked, so its reuse can be told from an unknown token).

use crate::store::sql::{Connection, OptionalExtension, db, params};

use crate::error::ApiError;

/// Stores a fresh refresh token of `family` for `registration_id`.
pub(crate) fn insert_refresh(conn: &Connection, hash: &str, registration_id: &str, family: &str, expires_at: i64) -> Result<(), ApiError> {
    conn.execute(
        "INSERT INTO refresh_tokens (hash, registration_id, family, expires_at) VALUES (?1, ?2, ?3, ?4)",
        params![hash, registration_id, family, expires_at],
    )
    .map_err(db)?;
    Ok(())
}

/// A stored refresh token as a refresh request finds it.
pub(crate) struct Presented {
    /// Its registration.
    pub(crate) registration_id: String,
    /// The rotation chain it belongs to.
    pub(crate) family: String,
    /// When it stops working.
    pub(crate) expires_at: i64,
    /// Whether it was used already.
    pub(crate) spent: bool,
}

/// The refresh token whose hash is `hash`.
pub(crate) fn presented_refresh(conn: &Connection, hash: &str) -> Result<Option<Presented>, ApiError> {
    conn.query_row(
        "SELECT registration_id, family, expires_at, spent FROM refresh_tokens WHERE hash = ?1",
        params![hash],
        |r| {
            Ok(Presented {
                registration_id: r.get(0)?,
                family: r.get(1)?,
                expires_at: r.get(2)?,
                spent: r.get::<i64>(3)? != 0,
            })
        },
    )
    .optional()
    .map_err(db)
}

/// Marks one refresh token used.
pub(crate) fn spend_refresh(conn: &Connection, hash: &str) -> Result<(), ApiError> {
    conn.execute("UPDATE refresh_tokens SET spent = 1 WHERE hash = ?1", params![hash])
        .map_err(db)?;
    Ok(())
}

/// Marks every token of a family used: a spent token came back, so whoever holds the live one
/// may be a thief (OAuth 2.0 Security BCP, RFC 9700 §4.14.2).
pub(crate) fn spend_family(conn: &Connection, family: &str) -> Result<(), ApiError> {
    conn.execute("UPDATE refresh_tokens SET spent = 1 WHERE family = ?1", params![family])
        .map_err(db)?;
    Ok(())
}
