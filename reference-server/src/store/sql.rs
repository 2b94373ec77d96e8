//! The statement layer every query goes through, over SQLite or PostgreSQL.
//!
//! The store's statements are written once, in the SQL both databases accept (`?N`
//! placeholders, `ON CONFLICT` upserts, integer flags); [`Connection`] runs them on either, with
//! [`params!`] binding and [`Row::get`] reading the few value kinds the schema uses (integers,
//! text, bytes, null). What the two dialects still spell differently is translated once per
//! statement in `store::pg`.

use std::cell::RefCell;

use crate::error::ApiError;
use crate::store::pg::PgConn;

/// One database connection, of either kind. The storage threads own one each.
pub(crate) enum Connection {
    /// A SQLite file.
    Lite(rusqlite::Connection),
    /// A PostgreSQL server (a `RefCell` because its client needs `&mut` for every statement,
    /// while jobs share the connection by `&`).
    Pg(Box<RefCell<PgConn>>),
}

/// A failed statement.
#[derive(Debug)]
pub(crate) enum DbError {
    /// A single-row query found none.
    NoRows,
    /// SQLite said no.
    Lite(rusqlite::Error),
    /// PostgreSQL said no.
    Pg(postgres::Error),
    /// A column held a value of another kind than the code reads.
    Column(String),
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoRows => f.write_str("query returned no rows"),
            Self::Lite(e) => write!(f, "{e}"),
            Self::Pg(e) => write!(f, "{e}"),
            Self::Column(e) => f.write_str(e),
        }
    }
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::QueryReturnedNoRows => Self::NoRows,
            e => Self::Lite(e),
        }
    }
}

impl From<postgres::Error> for DbError {
    fn from(e: postgres::Error) -> Self {
        Self::Pg(e)
    }
}

/// A statement's outcome.
pub(crate) type Result<T> = std::result::Result<T, DbError>;

/// `.optional()` as rusqlite spells it: no row is `None`, not an error.
pub(crate) trait OptionalExtension<T> {
    /// `Ok(None)` for [`DbError::NoRows`].
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(DbError::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A bound parameter: every value the store binds is one of these.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arg<'a> {
    /// SQL NULL.
    Null,
    /// An integer (flags and times are integers in both schemas).
    Int(i64),
    /// Text.
    Text(&'a str),
    /// Bytes (keys).
    Bytes(&'a [u8]),
}

/// Turns a Rust value into an [`Arg`] (what [`params!`] calls on each argument).
pub(crate) trait ToArg {
    /// The value as a parameter.
    fn to_arg(&self) -> Arg<'_>;
}

impl<T: ToArg + ?Sized> ToArg for &T {
    fn to_arg(&self) -> Arg<'_> {
        (**self).to_arg()
    }
}

impl<T: ToArg> ToArg for Option<T> {
    fn to_arg(&self) -> Arg<'_> {
        self.as_ref().map_or(Arg::Null, ToArg::to_arg)
    }
}

impl ToArg for str {
    fn to_arg(&self) -> Arg<'_> {
        Arg::Text(self)
    }
}

impl ToArg for String {
    fn to_arg(&self) -> Arg<'_> {
        Arg::Text(self)
    }
}

impl ToArg for [u8] {
    fn to_arg(&self) -> Arg<'_> {
        Arg::Bytes(self)
    }
}

impl ToArg for Vec<u8> {
    fn to_arg(&self) -> Arg<'_> {
        Arg::Bytes(self)
    }
}

impl ToArg for bool {
    fn to_arg(&self) -> Arg<'_> {
        Arg::Int(i64::from(*self))
    }
}

macro_rules! int_arg {
    ($($t:ty),*) => {$(
        impl ToArg for $t {
            fn to_arg(&self) -> Arg<'_> {
                // Nothing the store binds comes near i64's range; saturate rather than wrap.
                Arg::Int(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )*};
}
int_arg!(i64, i32, u32, u64, usize);

/// The parameters of one statement, as rusqlite's `params!` spells them.
macro_rules! params {
    ($($x:expr),* $(,)?) => {
        &[$($crate::store::sql::ToArg::to_arg(&$x)),*] as &[$crate::store::sql::Arg<'_>]
    };
}
pub(crate) use params;

impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match *self {
            Arg::Null => ValueRef::Null,
            Arg::Int(v) => ValueRef::Integer(v),
            Arg::Text(s) => ValueRef::Text(s.as_bytes()),
            Arg::Bytes(b) => ValueRef::Blob(b),
        }))
    }
}

/// One row of a result.
pub(crate) enum Row<'a> {
    /// From SQLite.
    Lite(&'a rusqlite::Row<'a>),
    /// From PostgreSQL.
    Pg(&'a postgres::Row),
}

impl Row<'_> {
    /// Column `i`, as `T`.
    pub(crate) fn get<T: Column>(&self, i: usize) -> Result<T> {
        match self {
            Self::Lite(r) => r.get(i).map_err(DbError::from),
            Self::Pg(r) => T::from_pg(crate::store::pg::raw(r, i)?),
        }
    }
}

/// A value kind a column can be read as, from either database.
pub(crate) trait Column: rusqlite::types::FromSql + Sized {
    /// From a PostgreSQL column's wire value.
    fn from_pg(raw: crate::store::pg::Raw<'_>) -> Result<Self>;
}

impl Connection {
    /// Runs one statement; the number of rows it changed.
    pub(crate) fn execute(&self, sql: &str, args: &[Arg<'_>]) -> Result<usize> {
        match self {
            Self::Lite(c) => Ok(c.prepare_cached(sql)?.execute(rusqlite::params_from_iter(args))?),
            Self::Pg(c) => c.borrow_mut().execute(sql, args),
        }
    }

    /// The first row of a query, read by `f`; [`DbError::NoRows`] when there is none.
    pub(crate) fn query_row<T, F: FnOnce(&Row<'_>) -> Result<T>>(&self, sql: &str, args: &[Arg<'_>], f: F) -> Result<T> {
        match self {
            Self::Lite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
                match rows.next()? {
                    Some(r) => f(&Row::Lite(r)),
                    None => Err(DbError::NoRows),
                }
            }
            Self::Pg(c) => {
                let rows = c.borrow_mut().query(sql, args)?;
                match rows.first() {
                    Some(r) => f(&Row::Pg(r)),
                    None => Err(DbError::NoRows),
                }
            }
        }
    }

    /// Every row of a query, each read by `f`.
    pub(crate) fn query_rows<T, F: FnMut(&Row<'_>) -> Result<T>>(&self, sql: &str, args: &[Arg<'_>], mut f: F) -> Result<Vec<T>> {
        match self {
            Self::Lite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    out.push(f(&Row::Lite(r))?);
                }
                Ok(out)
            }
            Self::Pg(c) => {
                let rows = c.borrow_mut().query(sql, args)?;
                rows.iter().map(|r| f(&Row::Pg(r))).collect()
            }
        }
    }

    /// Runs statements with no parameters and no result (transaction control, DDL).
    pub(crate) fn execute_batch(&self, sql: &str) -> Result<()> {
        match self {
            Self::Lite(c) => Ok(c.execute_batch(sql)?),
            Self::Pg(c) => Ok(c.borrow_mut().client.batch_execute(sql)?),
        }
    }

    /// Connects again if the database closed the connection (PostgreSQL; a SQLite file has
    /// none); whether it did, so the failed work can run again.
    pub(crate) fn revive(&self) -> bool {
        match self {
            Self::Pg(c) => c.borrow_mut().revive(),
            Self::Lite(_) => false,
        }
    }

    /// Whether this is PostgreSQL (for the few statements only one dialect has).
    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self, Self::Pg(_))
    }
}

/// A storage failure, as the internal error it is on the wire.
pub(crate) fn db(e: DbError) -> ApiError {
    ApiError::Internal(e.to_string())
}
