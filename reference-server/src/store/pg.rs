//! PostgreSQL under the store's statement layer: the connection with its statement cache, the
//! dialect translation, the value codecs and the schema.
//!
//! Every instance of the server keeps its one writer thread, and each write batch first takes
//! one transaction-level advisory lock, so the batches of all instances over one database run
//! one at a time: a check-then-insert (a `jti`, an OTP attempt, an outbox lease) is as atomic
//! across replicas as SQLite's `BEGIN IMMEDIATE` makes it across processes on one file, and
//! no statement needs a retry loop for serialization failures. Reads run beside it, each on
//! its own connection, and see every commit answered before they started.

use std::collections::HashMap;

use postgres::types::{FromSql, IsNull, ToSql, Type};

use crate::store::sql::{Arg, Column, DbError, Result};

/// The advisory lock every write batch takes (any constant: only this server takes it).
pub(crate) const WRITE_LOCK: i64 = 0x6175_7468_6d64; // "authmd"

/// Statements prepared per connection: the store runs a few dozen, thousands of times each.
const STATEMENT_CACHE: usize = 128;

/// A PostgreSQL connection with its prepared statements.
pub(crate) struct PgConn {
    /// The client.
    pub(crate) client: postgres::Client,
    statements: HashMap<String, postgres::Statement>,
    url: String,
}

impl PgConn {
    /// Connects to `url` (`postgres://…`; no TLS: the bundled servers are on loopback).
    pub(crate) fn connect(url: &str) -> std::result::Result<Self, String> {
        let client = postgres::Client::connect(url, postgres::NoTls).map_err(|e| e.to_string())?;
        Ok(Self {
            client,
            statements: HashMap::new(),
            url: url.to_string(),
        })
    }

    /// Connects again if the server closed the connection (a restart, a terminated backend):
    /// otherwise every later statement of this storage thread would fail until the server
    /// restarts. Its prepared statements died with it. The client learns of a closed connection
    /// only from a statement that fails on it, so this is called after a failure.
    /// Whether it connected again.
    pub(crate) fn revive(&mut self) -> bool {
        if !self.client.is_closed() {
            return false;
        }
        match Self::connect(&self.url) {
            Ok(fresh) => {
                *self = fresh;
                tracing::warn!("reconnected to PostgreSQL after the connection closed");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "the PostgreSQL connection closed and reconnecting failed");
                false
            }
        }
    }

    fn prepared(&mut self, sql: &str) -> Result<postgres::Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let statement = self.client.prepare(&translate(sql))?;
        if self.statements.len() >= STATEMENT_CACHE {
            self.statements.clear();
        }
        self.statements.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }

    /// Runs one statement; the rows it changed.
    pub(crate) fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<usize> {
        let statement = self.prepared(sql)?;
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
        let n = self.client.execute(&statement, &params)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Runs one query; its rows.
    pub(crate) fn query(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<postgres::Row>> {
        let statement = self.prepared(sql)?;
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
        Ok(self.client.query(&statement, &params)?)
    }
}

/// The store's SQL as PostgreSQL spells it: `?N` placeholders become `$N`, SQLite's `BINARY`
/// collation PostgreSQL's `"C"` (`NOCASE` is a collation the schema creates). Quoted literals
/// are copied as they are.
pub(crate) fn translate(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut quoted = false;
    for c in sql.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => out.push('$'),
            _ => out.push(c),
        }
    }
    out.replace("COLLATE BINARY", "COLLATE \"C\"")
}

/// A column's wire value, decoded by [`Column::from_pg`].
pub(crate) struct Raw<'a> {
    ty: Type,
    bytes: Option<&'a [u8]>,
}

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Self {
            ty: ty.clone(),
            bytes: Some(raw),
        })
    }

    fn from_sql_null(ty: &Type) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Self {
            ty: ty.clone(),
            bytes: None,
        })
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Column `i` of `row`, undecoded.
pub(crate) fn raw<'a>(row: &'a postgres::Row, i: usize) -> Result<Raw<'a>> {
    row.try_get::<usize, Raw<'a>>(i).map_err(DbError::Pg)
}

fn mismatch(raw: &Raw<'_>, want: &str) -> DbError {
    match raw.bytes {
        None => DbError::Column(format!("NULL where {want} was expected")),
        Some(_) => DbError::Column(format!("a {} column read as {want}", raw.ty)),
    }
}

impl Column for i64 {
    fn from_pg(raw: Raw<'_>) -> Result<Self> {
        let Some(bytes) = raw.bytes else {
            return Err(mismatch(&raw, "an integer"));
        };
        let decoded = match raw.ty {
            Type::INT8 => bytes.try_into().ok().map(i64::from_be_bytes),
            Type::INT4 => bytes.try_into().ok().map(|b| i64::from(i32::from_be_bytes(b))),
            Type::INT2 => bytes.try_into().ok().map(|b| i64::from(i16::from_be_bytes(b))),
            Type::BOOL => bytes.first().map(|b| i64::from(*b != 0)),
            _ => None,
        };
        decoded.ok_or_else(|| mismatch(&raw, "an integer"))
    }
}

impl Column for u32 {
    fn from_pg(raw: Raw<'_>) -> Result<Self> {
        let v = i64::from_pg(raw)?;
        u32::try_from(v).map_err(|_| DbError::Column(format!("{v} read as a count")))
    }
}

impl Column for bool {
    fn from_pg(raw: Raw<'_>) -> Result<Self> {
        i64::from_pg(raw).map(|v| v != 0)
    }
}

impl Column for String {
    fn from_pg(raw: Raw<'_>) -> Result<Self> {
        match (raw.bytes, &raw.ty) {
            (Some(bytes), &Type::TEXT | &Type::VARCHAR | &Type::BPCHAR | &Type::NAME | &Type::UNKNOWN) => {
                String::from_utf8(bytes.to_vec()).map_err(|_| DbError::Column("text that is not UTF-8".into()))
            }
            _ => Err(mismatch(&raw, "text")),
        }
    }
}

impl Column for Vec<u8> {
    fn from_pg(raw: Raw<'_>) -> Result<Self> {
        match (raw.bytes, &raw.ty) {
            (Some(bytes), &Type::BYTEA) => Ok(bytes.to_vec()),
            _ => Err(mismatch(&raw, "bytes")),
        }
    }
}

impl<T: Column> Column for Option<T> {
    fn from_pg(raw: Raw<'_>) -> Result<Self> {
        match raw.bytes {
            None => Ok(None),
            Some(_) => T::from_pg(raw).map(Some),
        }
    }
}

impl ToSql for Arg<'_> {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match *self {
            Arg::Null => Ok(IsNull::Yes),
            // PostgreSQL infers each placeholder's type from where it stands; the integer is
            // written at that width.
            Arg::Int(v) => match *ty {
                Type::INT4 => i32::try_from(v)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(v)?.to_sql(ty, out),
                Type::BOOL => (v != 0).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => v.to_string().to_sql(ty, out),
                _ => v.to_sql(ty, out),
            },
            Arg::Text(s) => s.to_sql(ty, out),
            Arg::Bytes(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// The schema, as migrations applied in order (their count is kept in `authmd_schema`), each
/// the PostgreSQL spelling of SQLite's migration of the same place plus the key tables SQLite
/// makes on first use. The column types keep SQLite's: flags and times are integers, so one
/// statement reads the same on both.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE COLLATION IF NOT EXISTS nocase (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT COLLATE nocase,
    email_verified BIGINT NOT NULL DEFAULT 0,
    phone TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX users_email ON users(email);
CREATE INDEX users_phone ON users(phone);
CREATE TABLE delegations (
    iss TEXT NOT NULL,
    sub TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    PRIMARY KEY (iss, sub)
);
CREATE TABLE registrations (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    claim_token_hash TEXT UNIQUE,
    status TEXT NOT NULL,
    user_id TEXT,
    credential_type TEXT,
    email TEXT,
    pre_scopes TEXT NOT NULL,
    post_scopes TEXT NOT NULL
);
CREATE TABLE credentials (
    hash TEXT PRIMARY KEY,
    registration_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    scopes TEXT NOT NULL,
    expires_at BIGINT,
    revoked BIGINT NOT NULL DEFAULT 0,
    user_id TEXT,
    source TEXT NOT NULL,
    iss TEXT,
    sub TEXT,
    aud TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX credentials_triple ON credentials(iss, sub, aud);
CREATE INDEX credentials_registration ON credentials(registration_id);
-- rowid: the insertion order SQLite gives every table, which the latest-attempt query reads.
CREATE TABLE claim_attempts (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY,
    id TEXT PRIMARY KEY,
    registration_id TEXT NOT NULL,
    email TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    superseded BIGINT NOT NULL DEFAULT 0,
    otp_hash TEXT,
    otp_expires_at BIGINT,
    previous_otp_hash TEXT,
    otp_plain TEXT,
    failures BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX claim_attempts_registration ON claim_attempts(registration_id);
CREATE TABLE jtis (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY,
    iss TEXT NOT NULL,
    kind TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (iss, kind, jti)
);
CREATE INDEX jtis_expiry ON jtis(expires_at);
CREATE TABLE audit (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at BIGINT NOT NULL,
    event TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE outbox (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recipient TEXT NOT NULL,
    registration_id TEXT NOT NULL,
    link TEXT NOT NULL,
    expires TEXT NOT NULL,
    tries BIGINT NOT NULL DEFAULT 0,
    next_try_at BIGINT NOT NULL,
    last_error TEXT
);
CREATE INDEX outbox_due ON outbox(next_try_at);
CREATE TABLE v06_attempts (
    id TEXT PRIMARY KEY,
    registration_id TEXT NOT NULL,
    email TEXT NOT NULL COLLATE nocase,
    token_hash TEXT NOT NULL UNIQUE,
    code_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    status TEXT NOT NULL,
    superseded BIGINT NOT NULL DEFAULT 0,
    failures BIGINT NOT NULL DEFAULT 0,
    last_poll_at BIGINT
);
CREATE INDEX v06_attempts_registration ON v06_attempts(registration_id);
CREATE TABLE v06_sessions (
    token_hash TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE TABLE v06_links (
    registration_id TEXT PRIMARY KEY,
    iss TEXT NOT NULL,
    sub TEXT NOT NULL
);
CREATE INDEX v06_links_subject ON v06_links(iss, sub);
CREATE TABLE health (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    checked_at BIGINT NOT NULL
);
CREATE TABLE refresh_tokens (
    hash TEXT PRIMARY KEY,
    registration_id TEXT NOT NULL,
    family TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    spent BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX refresh_tokens_family ON refresh_tokens(family);
CREATE TABLE service_keys (kid TEXT PRIMARY KEY, pkcs8 BYTEA NOT NULL);
CREATE TABLE aid_keys (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, seed BYTEA NOT NULL);
"#,
    r#"
CREATE TABLE rate_windows (
    key TEXT PRIMARY KEY,
    started BIGINT NOT NULL,
    count BIGINT NOT NULL,
    touched BIGINT NOT NULL
);
CREATE INDEX rate_windows_touched ON rate_windows(touched);
"#,
];

/// Applies the pending migrations, all or none, under the write lock: replicas starting
/// together over a new database must not both create its tables.
pub(super) fn migrate(conn: &mut PgConn) -> std::result::Result<(), String> {
    let client = &mut conn.client;
    let mut tx = client.transaction().map_err(|e| e.to_string())?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
        .map_err(|e| e.to_string())?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS authmd_schema (version BIGINT NOT NULL)")
        .map_err(|e| e.to_string())?;
    let version: i64 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM authmd_schema", &[])
        .and_then(|r| r.try_get(0))
        .map_err(|e| e.to_string())?;
    let applied = usize::try_from(version).unwrap_or(0);
    if applied > MIGRATIONS.len() {
        return Err(format!(
            "the database has {applied} migrations applied and this server knows {}: it was written by a newer version",
            MIGRATIONS.len()
        ));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        tx.batch_execute(sql).map_err(|e| format!("migration {}: {e}", i + 1))?;
        tx.execute("INSERT INTO authmd_schema (version) VALUES ($1)", &[&((i + 1) as i64)])
            .map_err(|e| e.to_string())?;
    }
    tx.commit().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::translate;

    #[test]
    fn placeholders_and_collations_are_translated_outside_literals() {
        assert_eq!(
            translate("SELECT id FROM users WHERE email = ?1 COLLATE BINARY AND note = '?2' AND x = ?12"),
            "SELECT id FROM users WHERE email = $1 COLLATE \"C\" AND note = '?2' AND x = $12"
        );
    }
}
