//! The statement helpers every query goes through.

use rusqlite::Connection;

use crate::error::ApiError;

/// `execute` through the connection's statement cache: the hot paths run the same statements
/// thousands of times a second, and parsing them each time was a measurable share of a write.
pub(crate) fn exec<P: rusqlite::Params>(conn: &Connection, sql: &str, params: P) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// `query_row` through the statement cache (see [`exec`]).
pub(crate) fn row<T, P: rusqlite::Params, F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>>(
    conn: &Connection,
    sql: &str,
    params: P,
    f: F,
) -> rusqlite::Result<T> {
    conn.prepare_cached(sql)?.query_row(params, f)
}

/// A storage failure, as the internal error it is on the wire.
pub(crate) fn db(e: rusqlite::Error) -> ApiError {
    ApiError::Internal(e.to_string())
}
