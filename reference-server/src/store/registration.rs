//! Registrations as the claim ceremony and the protected API read them.

use rusqlite::{Connection, OptionalExtension, params};

use crate::defect::{Defect, Defects};
use crate::error::ApiError;
use crate::secrets::hash;
use crate::store::sql::{db, exec, row};

/// A registration row.
pub(crate) struct Registration {
    pub(crate) id: String,
    pub(crate) kind: String,
    pub(crate) status: String,
    pub(crate) expires_at: i64,
    pub(crate) credential_type: Option<String>,
    pub(crate) post_scopes: Vec<String>,
}

pub(crate) fn registration_by_claim_token(conn: &Connection, claim_token: &str) -> Result<Option<Registration>, ApiError> {
    row(
        conn,
        "SELECT id, kind, status, expires_at, credential_type, post_scopes FROM registrations WHERE claim_token_hash = ?1",
        params![hash(claim_token)],
        |r| {
            Ok(Registration {
                id: r.get(0)?,
                kind: r.get(1)?,
                status: r.get(2)?,
                expires_at: r.get(3)?,
                credential_type: r.get(4)?,
                post_scopes: serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or_default(),
            })
        },
    )
    .optional()
    .map_err(db)
}

impl Registration {
    /// Whether the registration's window has closed at `now` (EXP-01, EXP-02).
    pub(crate) fn expired(&self, defects: &Defects, now: i64) -> bool {
        let lapsed = now >= self.expires_at;
        match self.status.as_str() {
            "unclaimed" => lapsed && !defects.contains(Defect::NeverExpireAnonymous),
            // EXP-02: a claimed registration never expires later.
            "claimed" => lapsed && self.kind == "anonymous" && defects.contains(Defect::ExpireClaimedRegistrations),
            _ => true,
        }
    }
}

/// Inserts an unclaimed anonymous registration (REG-ANON-*).
pub(crate) fn insert_anonymous(
    conn: &Connection,
    id: &str,
    now: i64,
    expires: i64,
    claim_token_hash: &str,
    pre: &str,
    post: &str,
) -> Result<(), ApiError> {
    exec(
        conn,
        "INSERT INTO registrations (id, kind, created_at, expires_at, claim_token_hash, status, credential_type, pre_scopes, post_scopes)
         VALUES (?1, 'anonymous', ?2, ?3, ?4, 'unclaimed', 'api_key', ?5, ?6)",
        params![id, now, expires, claim_token_hash, pre, post],
    )
    .map_err(db)?;
    Ok(())
}

/// Inserts an unclaimed verified-email registration (REG-EMAIL-*).
#[allow(clippy::too_many_arguments)]
pub(crate) fn insert_email_verification(
    conn: &Connection,
    id: &str,
    now: i64,
    expires: i64,
    claim_token_hash: &str,
    credential_type: &str,
    email: &str,
    pre: &str,
    post: &str,
) -> Result<(), ApiError> {
    exec(
        conn,
        "INSERT INTO registrations (id, kind, created_at, expires_at, claim_token_hash, status, credential_type, email, pre_scopes, post_scopes)
         VALUES (?1, 'email-verification', ?2, ?3, ?4, 'unclaimed', ?5, ?6, ?7, ?8)",
        params![id, now, expires, claim_token_hash, credential_type, email, pre, post],
    )
    .map_err(db)?;
    Ok(())
}

/// Inserts (or re-binds) a registration made with an identity assertion: claimed at once, by
/// `user_id` (IDJAG-*).
pub(crate) fn upsert_agent_provider(
    conn: &Connection,
    id: &str,
    now: i64,
    user_id: &str,
    credential_type: &str,
    scopes: &str,
) -> Result<(), ApiError> {
    exec(
        conn,
        "INSERT INTO registrations (id, kind, created_at, expires_at, status, user_id, credential_type, pre_scopes, post_scopes)
         VALUES (?1, 'agent-provider', ?2, ?2, 'claimed', ?3, ?4, ?5, ?5)
         ON CONFLICT(id) DO UPDATE SET user_id = excluded.user_id",
        params![id, now, user_id, credential_type, scopes],
    )
    .map_err(db)?;
    Ok(())
}
