//! The `jti` replay cache (IDJAG-23, REVOKE-09).

use crate::store::sql::{Connection, db, params};

use crate::defect::Defect;
use crate::error::ApiError;
use crate::token_kind::TokenKind;

/// Remembers a logout token's (or SET's) `jti`: true when it is new, or when the replay check
/// is switched off by its defect.
pub(crate) fn logout_jti_is_fresh(
    conn: &Connection,
    defects: &crate::defect::Defects,
    instance: &str,
    iss: &str,
    jti: &str,
    until: i64,
    now: i64,
) -> Result<bool, ApiError> {
    jti_is_fresh(
        conn,
        defects,
        instance,
        TokenKind::Logout,
        iss,
        jti,
        until,
        now,
        Defect::SkipLogoutReplayCheck,
    )
}

/// Remembers a `jti` of `kind`: true when it is new, or when `skip` (the replay defect of the
/// caller) is on. One writer thread makes the check and the insert atomic.
#[allow(clippy::too_many_arguments)]
pub(crate) fn jti_is_fresh(
    conn: &Connection,
    defects: &crate::defect::Defects,
    instance: &str,
    kind: TokenKind,
    iss: &str,
    jti: &str,
    until: i64,
    now: i64,
    skip: Defect,
) -> Result<bool, ApiError> {
    let fresh = remember_jti(conn, defects, instance, iss, kind, jti, until, now)?;
    Ok(fresh || defects.contains(skip))
}

/// Records a `jti` of `kind` in the replay cache; false when it was already there and not
/// expired by the request's clock (`now`, which a test may move). Other entries are swept
/// only once expired by both that clock and the server's own: one request from the future
/// must not sweep away the `jti`s other requests are still replaying (a second success of a
/// concurrent replay).
#[allow(clippy::too_many_arguments)]
pub(crate) fn remember_jti(
    conn: &Connection,
    defects: &crate::defect::Defects,
    instance: &str,
    iss: &str,
    kind: TokenKind,
    jti: &str,
    until: i64,
    now: i64,
) -> Result<bool, ApiError> {
    conn.execute(
        "DELETE FROM jtis WHERE expires_at < ?1 AND rowid IN (SELECT rowid FROM jtis WHERE expires_at < ?1 LIMIT 64)",
        params![now.min(crate::secrets::unix_now())],
    )
    .map_err(db)?;
    // The shared table is what makes a replay refused by every replica; the defect gives each
    // instance a namespace of its own, as a cache kept in each process's memory would.
    let namespace = match defects.contains(Defect::ReplayCachePerInstance) {
        true => format!("{}@{instance}", kind.replay_namespace(defects)),
        false => kind.replay_namespace(defects).to_string(),
    };
    conn.execute(
        "DELETE FROM jtis WHERE iss = ?1 AND kind = ?2 AND jti = ?3 AND expires_at < ?4",
        params![iss, namespace, jti, now],
    )
    .map_err(db)?;
    let inserted = conn
        .execute(
            "INSERT INTO jtis (iss, kind, jti, expires_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            params![iss, namespace, jti, until],
        )
        .map_err(db)?;
    Ok(inserted == 1)
}

/// Forgets every `jti` of `iss` (the replay-cache-cleared-on-refetch defect).
pub(crate) fn forget_issuer(conn: &Connection, iss: &str) -> Result<usize, ApiError> {
    conn.execute("DELETE FROM jtis WHERE iss = ?1", params![iss]).map_err(db)
}
