//! Credentials: stored as hashes only (SEC-01), each with its registration, scopes, owner and,
//! for one issued on an identity assertion, the `(iss, sub, aud)` a revocation names.

use crate::store::sql::{Connection, OptionalExtension, db, params};

use crate::error::ApiError;

/// A credential to store.
pub(crate) struct NewCredential<'a> {
    /// SHA-256 of the credential.
    pub(crate) hash: &'a str,
    /// Its registration.
    pub(crate) registration_id: &'a str,
    /// `api_key` or `access_token`.
    pub(crate) kind: &'a str,
    /// Its scopes, a JSON array.
    pub(crate) scopes: &'a str,
    /// When it dies; never when none.
    pub(crate) expires_at: Option<i64>,
    /// The user it acts as, once one is bound.
    pub(crate) user_id: Option<&'a str>,
    /// How it was obtained: `anonymous`, `email-verification` or `identity_assertion`.
    pub(crate) source: &'a str,
    /// `(iss, sub, aud)` of the identity assertion it was issued on.
    pub(crate) subject: Option<(&'a str, &'a str, &'a str)>,
    /// When it was issued.
    pub(crate) created_at: i64,
}

/// Stores `c`.
pub(crate) fn insert_credential(conn: &Connection, c: &NewCredential<'_>) -> Result<(), ApiError> {
    let (iss, sub, aud) = match c.subject {
        Some((iss, sub, aud)) => (Some(iss), Some(sub), Some(aud)),
        None => (None, None, None),
    };
    conn.execute(
        "INSERT INTO credentials (hash, registration_id, kind, scopes, expires_at, user_id, source, iss, sub, aud, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            c.hash,
            c.registration_id,
            c.kind,
            c.scopes,
            c.expires_at,
            c.user_id,
            c.source,
            iss,
            sub,
            aud,
            c.created_at
        ],
    )
    .map_err(db)?;
    Ok(())
}

/// Whether a credential of `(iss, sub, aud)` was revoked.
pub(crate) fn subject_revoked(conn: &Connection, iss: &str, sub: &str, aud: &str) -> Result<bool, ApiError> {
    let n: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM credentials WHERE iss = ?1 AND sub = ?2 AND aud = ?3 AND revoked = 1",
            params![iss, sub, aud],
            |r| r.get(0),
        )
        .map_err(db)?;
    Ok(n > 0)
}

/// Revokes every live credential of `(iss, sub, aud)`; with no `iss`, of `(sub, aud)` at any
/// issuer. How many were live.
pub(crate) fn revoke_subject(conn: &Connection, iss: Option<&str>, sub: &str, aud: &str) -> Result<usize, ApiError> {
    match iss {
        Some(iss) => conn.execute(
            "UPDATE credentials SET revoked = 1 WHERE iss = ?1 AND sub = ?2 AND aud = ?3 AND revoked = 0",
            params![iss, sub, aud],
        ),
        None => conn.execute(
            "UPDATE credentials SET revoked = 1 WHERE iss IS NOT NULL AND sub = ?1 AND aud = ?2 AND revoked = 0",
            params![sub, aud],
        ),
    }
    .map_err(db)
}

/// Revokes every credential of the user `(iss, sub, aud)` delegates for (the REVOKE-02 defect).
pub(crate) fn revoke_whole_user(conn: &Connection, iss: &str, sub: &str, aud: &str) -> Result<(), ApiError> {
    conn.execute(
        "UPDATE credentials SET revoked = 1 WHERE revoked = 0 AND user_id IN
         (SELECT user_id FROM credentials WHERE iss = ?1 AND sub = ?2 AND aud = ?3)",
        params![iss, sub, aud],
    )
    .map_err(db)?;
    Ok(())
}

/// A credential as the protected API checks it, with its registration and owner.
pub(crate) struct Presented {
    /// `api_key` or `access_token`.
    pub(crate) kind: String,
    /// Its scopes, a JSON array.
    pub(crate) scopes: String,
    /// When it dies.
    pub(crate) expires_at: Option<i64>,
    /// Whether it was revoked.
    pub(crate) revoked: bool,
    /// How it was obtained.
    pub(crate) source: String,
    /// Its registration.
    pub(crate) registration_id: String,
    /// The issuer of the assertion it was issued on.
    pub(crate) iss: Option<String>,
    /// The subject of that assertion.
    pub(crate) sub: Option<String>,
    /// Its registration's kind.
    pub(crate) registration_kind: String,
    /// Its registration's status.
    pub(crate) registration_status: String,
    /// When its registration's window closes.
    pub(crate) registration_expires_at: i64,
    /// The user it acts as, and the user's email.
    pub(crate) user: Option<(String, Option<String>)>,
}

/// The credential whose hash is `hash`.
pub(crate) fn presented(conn: &Connection, hash: &str) -> Result<Option<Presented>, ApiError> {
    conn.query_row(
        "SELECT c.kind, c.scopes, c.expires_at, c.revoked, c.source, c.registration_id, c.iss, c.sub, r.kind, r.status, r.expires_at, u.id, u.email
         FROM credentials c JOIN registrations r ON r.id = c.registration_id
         LEFT JOIN users u ON u.id = COALESCE(c.user_id, r.user_id)
         WHERE c.hash = ?1",
        params![hash],
        |r| {
            Ok(Presented {
                kind: r.get(0)?,
                scopes: r.get(1)?,
                expires_at: r.get(2)?,
                revoked: r.get::<i64>(3)? != 0,
                source: r.get(4)?,
                registration_id: r.get(5)?,
                iss: r.get(6)?,
                sub: r.get(7)?,
                registration_kind: r.get(8)?,
                registration_status: r.get(9)?,
                registration_expires_at: r.get(10)?,
                user: r.get::<Option<String>>(11)?.map(|id| (id, r.get(12).ok().flatten())),
            })
        },
    )
    .optional()
    .map_err(db)
}

/// Revokes every credential of the registration, or only those of one `source`.
pub(crate) fn revoke_credentials(conn: &Connection, registration_id: &str, source: Option<&str>) -> Result<(), ApiError> {
    match source {
        None => conn.execute(
            "UPDATE credentials SET revoked = 1 WHERE registration_id = ?1",
            params![registration_id],
        ),
        Some(source) => conn.execute(
            "UPDATE credentials SET revoked = 1 WHERE registration_id = ?1 AND source = ?2",
            params![registration_id, source],
        ),
    }
    .map_err(db)?;
    Ok(())
}

/// Whether the token endpoint already minted for the registration.
pub(crate) fn minted_at_token_endpoint(conn: &Connection, registration_id: &str) -> Result<bool, ApiError> {
    let n: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM credentials WHERE registration_id = ?1 AND source = 'token_endpoint'",
            params![registration_id],
            |r| r.get(0),
        )
        .map_err(db)?;
    Ok(n > 0)
}

/// Revokes the access token whose hash is `hash` (RFC 7009); how many were found.
pub(crate) fn revoke_access_token(conn: &Connection, hash: &str) -> Result<usize, ApiError> {
    conn.execute(
        "UPDATE credentials SET revoked = 1 WHERE hash = ?1 AND kind = 'access_token'",
        params![hash],
    )
    .map_err(db)
}
