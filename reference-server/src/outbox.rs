//! Claim mail delivery from the database outbox, with retries.

use rusqlite::{OptionalExtension, params};

use crate::state::AppState;
use crate::store::sql::{db, exec};

/// A queued claim mail.
pub(crate) struct Queued {
    pub(crate) id: i64,
    pub(crate) recipient: String,
    pub(crate) registration_id: String,
    pub(crate) link: String,
    pub(crate) expires: String,
}

/// Delivers every due claim mail. Each row is leased before it is sent (so two drains never
/// send it twice), deleted once delivered, and on failure retried with a doubling backoff
/// (1 s up to 5 min). Wall time, not the test clock: delivery is about the relay, not TTLs.
pub async fn drain_outbox(state: AppState) {
    loop {
        let wall = time::OffsetDateTime::now_utc().unix_timestamp();
        let leased = state
            .db
            .call(move |conn| {
                let row = conn
                    .query_row(
                        "SELECT id, recipient, registration_id, link, expires FROM outbox WHERE next_try_at <= ?1 ORDER BY id LIMIT 1",
                        params![wall],
                        |r| {
                            Ok(Queued {
                                id: r.get(0)?,
                                recipient: r.get(1)?,
                                registration_id: r.get(2)?,
                                link: r.get(3)?,
                                expires: r.get(4)?,
                            })
                        },
                    )
                    .optional()
                    .map_err(db)?;
                if let Some(q) = &row {
                    exec(conn, "UPDATE outbox SET next_try_at = ?1 WHERE id = ?2", params![wall + 60, q.id]).map_err(db)?;
                }
                Ok(row)
            })
            .await;
        let Ok(Some(mail)) = leased else { return };
        let sent = state
            .mailer
            .send_claim(&mail.recipient, &mail.registration_id, &mail.link, &mail.expires)
            .await;
        let (id, outcome) = (mail.id, sent.clone());
        let _ = state
            .db
            .call(move |conn| {
                match &outcome {
                    Ok(()) => exec(conn, "DELETE FROM outbox WHERE id = ?1", params![id]),
                    Err(e) => exec(conn,
                        "UPDATE outbox SET tries = tries + 1, last_error = ?2, next_try_at = ?3 + MIN(300, 1 << MIN(tries, 9)) WHERE id = ?1",
                        params![id, e, wall],
                    ),
                }
                .map_err(db)
            })
            .await;
        if let Err(e) = sent {
            tracing::warn!(registration_id = %mail.registration_id, error = %e, "claim mail not delivered; will retry");
        }
    }
}
