//! User accounts: lookup by verified email and just-in-time provisioning (MATCH-*).

use crate::store::sql::{Connection, OptionalExtension, db, params};

use crate::error::ApiError;
use crate::secrets::ordered_id;

/// The account that owns `email` as a verified address (case-insensitive: the column is NOCASE).
pub(crate) fn user_by_verified_email(conn: &Connection, email: &str) -> Result<Option<String>, ApiError> {
    conn.query_row(
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
    conn.execute(
        "INSERT INTO users (id, email, email_verified, phone, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, email, email_verified, phone, now],
    )
    .map_err(db)?;
    Ok(id)
}

/// As [`user_by_verified_email`], but comparing case (the MATCH-02 defect).
pub(crate) fn user_by_verified_email_exact_case(conn: &Connection, email: &str) -> Result<Option<String>, ApiError> {
    conn.query_row(
        "SELECT id FROM users WHERE email = ?1 COLLATE BINARY AND email_verified = 1",
        params![email],
        |r| r.get(0),
    )
    .optional()
    .map_err(db)
}

/// The account that owns `phone` (MATCH-04).
pub(crate) fn user_by_phone(conn: &Connection, phone: &str) -> Result<Option<String>, ApiError> {
    conn.query_row("SELECT id FROM users WHERE phone = ?1", params![phone], |r| r.get(0))
        .optional()
        .map_err(db)
}

/// The user `(iss, sub)` delegates for (MATCH-01); with no `iss`, whoever `sub` is at any issuer.
pub(crate) fn delegated_user(conn: &Connection, iss: Option<&str>, sub: &str) -> Result<Option<String>, ApiError> {
    match iss {
        Some(iss) => conn.query_row(
            "SELECT user_id FROM delegations WHERE iss = ?1 AND sub = ?2",
            params![iss, sub],
            |r| r.get(0),
        ),
        None => conn.query_row("SELECT user_id FROM delegations WHERE sub = ?1", params![sub], |r| r.get(0)),
    }
    .optional()
    .map_err(db)
}

/// Records that `(iss, sub)` delegates for `user_id`.
pub(crate) fn delegate(conn: &Connection, iss: &str, sub: &str, user_id: &str) -> Result<(), ApiError> {
    conn.execute(
        "INSERT INTO delegations (iss, sub, user_id) VALUES (?1, ?2, ?3) ON CONFLICT (iss, sub) DO UPDATE SET user_id = excluded.user_id",
        params![iss, sub, user_id],
    )
    .map_err(db)?;
    Ok(())
}

/// Records that `(iss, sub)` delegates for `user_id`, unless it already delegates for someone.
pub(crate) fn delegate_if_new(conn: &Connection, iss: &str, sub: &str, user_id: &str) -> Result<(), ApiError> {
    conn.execute(
        "INSERT INTO delegations (iss, sub, user_id) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        params![iss, sub, user_id],
    )
    .map_err(db)?;
    Ok(())
}

/// Ends every delegation of `(iss, sub)` (a provider's revocation SET).
pub(crate) fn forget_delegation(conn: &Connection, iss: &str, sub: &str) -> Result<(), ApiError> {
    conn.execute("DELETE FROM delegations WHERE iss = ?1 AND sub = ?2", params![iss, sub])
        .map_err(db)?;
    Ok(())
}

/// Records that the registration was made for the provider identity `(iss, sub)` (v0.6).
pub(crate) fn link(conn: &Connection, registration_id: &str, iss: &str, sub: &str) -> Result<(), ApiError> {
    conn.execute("INSERT INTO v06_links (registration_id, iss, sub) VALUES (?1, ?2, ?3) ON CONFLICT (registration_id) DO UPDATE SET iss = excluded.iss, sub = excluded.sub",
        params![registration_id, iss, sub],
    )
    .map_err(db)?;
    Ok(())
}

/// Every registration made for `(iss, sub)`.
pub(crate) fn linked_registrations(conn: &Connection, iss: &str, sub: &str) -> Result<Vec<String>, ApiError> {
    conn.query_rows(
        "SELECT registration_id FROM v06_links WHERE iss = ?1 AND sub = ?2",
        params![iss, sub],
        |r| r.get(0),
    )
    .map_err(db)
}

/// Records the delegation of every provider identity linked to the registration, now that its
/// user confirmed it (V6-IDJAG-05).
pub(crate) fn delegate_links(conn: &Connection, registration_id: &str, user_id: &str) -> Result<(), ApiError> {
    conn.execute(
        "INSERT INTO delegations (iss, sub, user_id) SELECT iss, sub, ?1 FROM v06_links WHERE registration_id = ?2 ON CONFLICT DO NOTHING",
        params![user_id, registration_id],
    )
    .map_err(db)?;
    Ok(())
}
