//! Registrations as the claim ceremony and the protected API read them.

use rusqlite::{Connection, OptionalExtension, params};

use crate::defect::{Defect, Defects};
use crate::error::ApiError;
use crate::secrets::hash;
use crate::store::sql::{db, row};

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
