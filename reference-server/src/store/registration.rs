//! Registrations as the claim ceremony and the protected API read them.

use crate::store::sql::{Connection, OptionalExtension, db, params};

use crate::defect::{Defect, Defects};
use crate::error::ApiError;
use crate::secrets::hash;

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
    conn.query_row(
        "SELECT id, kind, status, expires_at, credential_type, post_scopes FROM registrations WHERE claim_token_hash = ?1",
        params![hash(claim_token)],
        |r| {
            Ok(Registration {
                id: r.get(0)?,
                kind: r.get(1)?,
                status: r.get(2)?,
                expires_at: r.get(3)?,
                credential_type: r.get(4)?,
                post_scopes: serde_json::from_str(&r.get::<String>(5)?).unwrap_or_default(),
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

/// Inserts an unclaimed anonymous registration (REG-ANON-*, v0.6 Step 3) whose credentials are
/// of `credential_type`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn insert_anonymous(
    conn: &Connection,
    id: &str,
    credential_type: &str,
    now: i64,
    expires: i64,
    claim_token_hash: &str,
    pre: &str,
    post: &str,
) -> Result<(), ApiError> {
    conn.execute(
        "INSERT INTO registrations (id, kind, created_at, expires_at, claim_token_hash, status, credential_type, pre_scopes, post_scopes)
         VALUES (?1, 'anonymous', ?2, ?3, ?4, 'unclaimed', ?7, ?5, ?6)",
        params![id, now, expires, claim_token_hash, pre, post, credential_type],
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
    conn.execute("INSERT INTO registrations (id, kind, created_at, expires_at, claim_token_hash, status, credential_type, email, pre_scopes, post_scopes)
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
    conn.execute(
        "INSERT INTO registrations (id, kind, created_at, expires_at, status, user_id, credential_type, pre_scopes, post_scopes)
         VALUES (?1, 'agent-provider', ?2, ?2, 'claimed', ?3, ?4, ?5, ?5)
         ON CONFLICT(id) DO UPDATE SET user_id = excluded.user_id",
        params![id, now, user_id, credential_type, scopes],
    )
    .map_err(db)?;
    Ok(())
}

/// Inserts an unclaimed `service_auth` registration bound to `email` (v0.6 Step 3).
pub(crate) fn insert_service_auth(
    conn: &Connection,
    id: &str,
    now: i64,
    expires: i64,
    claim_token_hash: &str,
    email: &str,
    post: &str,
) -> Result<(), ApiError> {
    conn.execute("INSERT INTO registrations (id, kind, created_at, expires_at, claim_token_hash, status, credential_type, email, pre_scopes, post_scopes)
         VALUES (?1, 'service_auth', ?2, ?3, ?4, 'unclaimed', 'access_token', ?5, '[]', ?6)",
        params![id, now, expires, claim_token_hash, email, post],
    )
    .map_err(db)?;
    Ok(())
}

/// An identity-assertion registration waiting for its user to confirm the account found by
/// email (the v0.6 step-up).
pub(crate) fn put_step_up(
    conn: &Connection,
    id: &str,
    now: i64,
    expires: i64,
    claim_token_hash: &str,
    email: &str,
    post: &str,
) -> Result<(), ApiError> {
    conn.execute("INSERT INTO registrations (id, kind, created_at, expires_at, claim_token_hash, status, user_id, credential_type, email, pre_scopes, post_scopes)
         VALUES (?1, 'identity_assertion', ?2, ?3, ?4, 'unclaimed', NULL, 'access_token', ?5, '[]', ?6) ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, created_at = excluded.created_at, expires_at = excluded.expires_at, claim_token_hash = excluded.claim_token_hash, status = excluded.status, user_id = excluded.user_id, credential_type = excluded.credential_type, email = excluded.email, pre_scopes = excluded.pre_scopes, post_scopes = excluded.post_scopes",
        params![id, now, expires, claim_token_hash, email, post],
    )
    .map_err(db)?;
    Ok(())
}

/// An identity-assertion registration claimed at once by `user_id` (v0.6 Step 3).
pub(crate) fn put_claimed_identity(
    conn: &Connection,
    id: &str,
    now: i64,
    user_id: &str,
    email: Option<&str>,
    scopes: &str,
) -> Result<(), ApiError> {
    conn.execute("INSERT INTO registrations (id, kind, created_at, expires_at, claim_token_hash, status, user_id, credential_type, email, pre_scopes, post_scopes)
         VALUES (?1, 'identity_assertion', ?2, ?2, NULL, 'claimed', ?3, 'access_token', ?4, ?5, ?5) ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, created_at = excluded.created_at, expires_at = excluded.expires_at, claim_token_hash = excluded.claim_token_hash, status = excluded.status, user_id = excluded.user_id, credential_type = excluded.credential_type, email = excluded.email, pre_scopes = excluded.pre_scopes, post_scopes = excluded.post_scopes",
        params![id, now, user_id, email, scopes],
    )
    .map_err(db)?;
    Ok(())
}

/// What `/agent/identity/claim` needs of the registration a claim token names.
pub(crate) struct ClaimTarget {
    /// Its id.
    pub(crate) id: String,
    /// Its kind.
    pub(crate) kind: String,
    /// When its window closes.
    pub(crate) expires_at: i64,
    /// `unclaimed`, `claimed` or `revoked`.
    pub(crate) status: String,
    /// The address it is bound to, if any.
    pub(crate) email: Option<String>,
}

/// The registration whose claim token hashes to `claim_token_hash`.
pub(crate) fn claim_target(conn: &Connection, claim_token_hash: &str) -> Result<Option<ClaimTarget>, ApiError> {
    conn.query_row(
        "SELECT id, kind, expires_at, status, email FROM registrations WHERE claim_token_hash = ?1",
        params![claim_token_hash],
        |r| {
            Ok(ClaimTarget {
                id: r.get(0)?,
                kind: r.get(1)?,
                expires_at: r.get(2)?,
                status: r.get(3)?,
                email: r.get(4)?,
            })
        },
    )
    .optional()
    .map_err(db)
}

/// The id of the registration whose claim token hashes to `claim_token_hash`.
pub(crate) fn registration_id_by_claim_token(conn: &Connection, claim_token_hash: &str) -> Result<Option<String>, ApiError> {
    conn.query_row(
        "SELECT id FROM registrations WHERE claim_token_hash = ?1",
        params![claim_token_hash],
        |r| r.get(0),
    )
    .optional()
    .map_err(db)
}

/// Binds the registration to `user_id` at `email` (a completed v0.6 ceremony).
pub(crate) fn claim_for(conn: &Connection, id: &str, user_id: &str, email: Option<&str>) -> Result<(), ApiError> {
    conn.execute(
        "UPDATE registrations SET status = 'claimed', user_id = ?1, email = ?2 WHERE id = ?3",
        params![user_id, email, id],
    )
    .map_err(db)?;
    Ok(())
}

/// Marks the registration revoked (a provider's SET); its claim token dies too unless
/// `keep_claim` (the defect).
pub(crate) fn mark_revoked(conn: &Connection, id: &str, keep_claim: bool) -> Result<(), ApiError> {
    let sql = if keep_claim {
        "UPDATE registrations SET status = 'revoked', claim_token_hash = claim_token_hash WHERE id = ?1"
    } else {
        "UPDATE registrations SET status = 'revoked', claim_token_hash = NULL WHERE id = ?1"
    };
    conn.execute(sql, params![id]).map_err(db)?;
    Ok(())
}

/// What the token endpoint needs of a registration to mint for it.
pub(crate) struct Mintable {
    /// `unclaimed`, `claimed` or `revoked`.
    pub(crate) status: String,
    /// When its window closes.
    pub(crate) expires_at: i64,
    /// Scopes before a claim, a JSON array.
    pub(crate) pre_scopes: String,
    /// Scopes after a claim, a JSON array.
    pub(crate) post_scopes: String,
    /// Its user, once bound.
    pub(crate) user_id: Option<String>,
    /// The user's email.
    pub(crate) email: Option<String>,
}

/// The registration `id` as the token endpoint sees it.
pub(crate) fn mintable(conn: &Connection, id: &str) -> Result<Option<Mintable>, ApiError> {
    conn.query_row("SELECT r.status, r.expires_at, r.pre_scopes, r.post_scopes, r.user_id, u.email FROM registrations r LEFT JOIN users u ON u.id = r.user_id WHERE r.id = ?1",
        params![id],
        |r| {
            Ok(Mintable {
                status: r.get(0)?,
                expires_at: r.get(1)?,
                pre_scopes: r.get(2)?,
                post_scopes: r.get(3)?,
                user_id: r.get(4)?,
                email: r.get(5)?,
            })
        },
    )
    .optional()
    .map_err(db)
}
