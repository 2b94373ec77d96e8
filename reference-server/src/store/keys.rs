//! The service's own keys, read and written once at start (their tables are made on first use,
//! outside the migrations, so a database from before a key existed gains it).

use crate::store::sql::{Connection, OptionalExtension, params};

/// The stored v0.6 assertion-signing key: its `kid` and PKCS#8 document.
pub(crate) fn service_key(conn: &Connection) -> Result<Option<(String, Vec<u8>)>, String> {
    // PostgreSQL's schema has the table from its first migration.
    if !conn.is_postgres() {
        conn.execute_batch("CREATE TABLE IF NOT EXISTS service_keys (kid TEXT PRIMARY KEY, pkcs8 BLOB NOT NULL)")
            .map_err(|e| e.to_string())?;
    }
    conn.query_row("SELECT kid, pkcs8 FROM service_keys LIMIT 1", params![], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .optional()
    .map_err(|e| e.to_string())
}

/// Stores the v0.6 assertion-signing key.
pub(crate) fn save_service_key(conn: &Connection, kid: &str, pkcs8: &[u8]) -> Result<(), String> {
    conn.execute("INSERT INTO service_keys (kid, pkcs8) VALUES (?1, ?2)", params![kid, pkcs8])
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// The stored seed of the AID PKA key.
pub(crate) fn aid_seed(conn: &Connection) -> Result<Option<Vec<u8>>, String> {
    if !conn.is_postgres() {
        conn.execute_batch("CREATE TABLE IF NOT EXISTS aid_keys (id INTEGER PRIMARY KEY, seed BLOB NOT NULL)")
            .map_err(|e| e.to_string())?;
    }
    conn.query_row("SELECT seed FROM aid_keys LIMIT 1", params![], |r| r.get(0))
        .optional()
        .map_err(|e| e.to_string())
}

/// Stores the seed of the AID PKA key.
pub(crate) fn save_aid_seed(conn: &Connection, seed: &[u8]) -> Result<(), String> {
    conn.execute("INSERT INTO aid_keys (seed) VALUES (?1)", params![seed])
        .map_err(|e| e.to_string())?;
    Ok(())
}
