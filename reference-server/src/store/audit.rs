//! The audit log (AUDIT-01..06) and the health check's write.

use crate::store::sql::{Connection, db, params};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::secrets::iso;

/// Appends an audit event (AUDIT-01..05).
pub(crate) fn audit(conn: &Connection, now: i64, event: &str, data: Value) -> Result<(), ApiError> {
    conn.execute(
        "INSERT INTO audit (at, event, data) VALUES (?1, ?2, ?3)",
        params![now, event, data.to_string()],
    )
    .map_err(db)?;
    Ok(())
}

/// Every audit event, oldest first.
pub(crate) fn read_audit(conn: &Connection) -> Result<Vec<Value>, ApiError> {
    conn.query_rows("SELECT seq, at, event, data FROM audit ORDER BY seq", params![], |r| {
        let data: String = r.get(3)?;
        Ok(json!({ "seq": r.get::<i64>(0)?, "at": iso(r.get(1)?), "event": r.get::<String>(2)?, "data": serde_json::from_str::<Value>(&data).unwrap_or(Value::Null) }))
    })
    .map_err(db)
}

/// A write that proves the database file still takes commits (`/healthz`).
pub(crate) fn record_health_check(conn: &Connection, now: i64) -> Result<usize, ApiError> {
    conn.execute(
        "INSERT INTO health (id, checked_at) VALUES (1, ?1) ON CONFLICT(id) DO UPDATE SET checked_at = ?1",
        params![now],
    )
    .map_err(db)
}
