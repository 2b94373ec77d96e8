//! Secrets, identifiers, hashes and time formatting: pure functions every module may use.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngExt;

/// Wall-clock unix seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `prefix` + base64url of `bytes` random bytes from the OS CSPRNG.
pub fn secret(prefix: &str, bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(&mut buf[..]);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(buf))
}

/// An identifier (not a secret) whose keys sort by creation time: `prefix`, the milliseconds
/// since the epoch in hex, then random bytes. Time-ordered keys append to their index's last
/// page instead of dirtying a random page per insert, which is most of what a write costs.
pub fn ordered_id(prefix: &str) -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut buf = [0u8; 10];
    rand::rng().fill(&mut buf[..]);
    format!("{prefix}{millis:012x}{}", URL_SAFE_NO_PAD.encode(buf))
}

/// A six-digit OTP, leading zeros kept, uniform over 000000..=999999 (CLAIM-14).
pub fn otp() -> String {
    format!("{:06}", rand::rng().random_range(0..1_000_000u32))
}

/// SHA-256 hex: secrets are stored only as hashes (SEC-01).
pub fn hash(secret: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two hashes without an early exit.
pub fn same_hash(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// RFC 3339 / ISO-8601 UTC.
pub fn iso(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}
