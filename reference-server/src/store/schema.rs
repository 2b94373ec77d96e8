//! The schema, as migrations applied in order: a database records how many it has applied
//! (`user_version`), so each runs once and none is ever edited once released.

/// Every migration, oldest first.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT COLLATE NOCASE,
    email_verified INTEGER NOT NULL DEFAULT 0,
    phone TEXT,
    created_at INTEGER NOT NULL
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
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
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
    expires_at INTEGER,
    revoked INTEGER NOT NULL DEFAULT 0,
    user_id TEXT,
    source TEXT NOT NULL,
    iss TEXT,
    sub TEXT,
    aud TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX credentials_triple ON credentials(iss, sub, aud);
CREATE INDEX credentials_registration ON credentials(registration_id);
CREATE TABLE claim_attempts (
    id TEXT PRIMARY KEY,
    registration_id TEXT NOT NULL,
    email TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    superseded INTEGER NOT NULL DEFAULT 0,
    otp_hash TEXT,
    otp_expires_at INTEGER,
    previous_otp_hash TEXT,
    otp_plain TEXT,
    failures INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX claim_attempts_registration ON claim_attempts(registration_id);
CREATE TABLE jtis (
    iss TEXT NOT NULL,
    kind TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (iss, kind, jti)
);
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    event TEXT NOT NULL,
    data TEXT NOT NULL
);
"#,
    // The replay-cache sweep runs on every ID-JAG; without this index it scanned the table.
    "CREATE INDEX jtis_expiry ON jtis(expires_at);",
    // Claim mail is written in the transaction that creates its attempt and delivered from
    // here with retries, so a failed send never loses a claim (the row holds the link until
    // it is delivered, then it is deleted).
    r#"
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    recipient TEXT NOT NULL,
    registration_id TEXT NOT NULL,
    link TEXT NOT NULL,
    expires TEXT NOT NULL,
    tries INTEGER NOT NULL DEFAULT 0,
    next_try_at INTEGER NOT NULL,
    last_error TEXT
);
CREATE INDEX outbox_due ON outbox(next_try_at);
"#,
    // v0.6: the user-code ceremony (an attempt per `claim_attempt_token`, its code hashed) and
    // the service's own sign-in sessions (cookie tokens hashed).
    r#"
CREATE TABLE v06_attempts (
    id TEXT PRIMARY KEY,
    registration_id TEXT NOT NULL,
    email TEXT NOT NULL COLLATE NOCASE,
    token_hash TEXT NOT NULL UNIQUE,
    code_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    status TEXT NOT NULL,
    superseded INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    last_poll_at INTEGER
);
CREATE INDEX v06_attempts_registration ON v06_attempts(registration_id);
CREATE TABLE v06_sessions (
    token_hash TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
"#,
    // v0.6: which provider identity a registration belongs to, so a provider SET can tear it
    // down and a confirmed step-up can record the delegation.
    r#"
CREATE TABLE v06_links (
    registration_id TEXT PRIMARY KEY,
    iss TEXT NOT NULL,
    sub TEXT NOT NULL
);
CREATE INDEX v06_links_subject ON v06_links(iss, sub);
"#,
    // `/healthz` proves a write commits by making one here.
    r#"
CREATE TABLE health (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at INTEGER NOT NULL
);
"#,
    // The production dialect: refresh tokens (hashed), rotated on every use; a family is the
    // chain of rotations from one claim, so a spent token presented again can end all of it.
    r#"
CREATE TABLE refresh_tokens (
    hash TEXT PRIMARY KEY,
    registration_id TEXT NOT NULL,
    family TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    spent INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX refresh_tokens_family ON refresh_tokens(family);
"#,
    // Rate-limit windows shared by every instance over the database (`rate.shared`).
    r#"
CREATE TABLE rate_windows (
    key TEXT PRIMARY KEY,
    started INTEGER NOT NULL,
    count INTEGER NOT NULL,
    touched INTEGER NOT NULL
);
CREATE INDEX rate_windows_touched ON rate_windows(touched);
"#,
];
