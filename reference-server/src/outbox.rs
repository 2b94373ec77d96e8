//! Claim mail delivery from the database outbox, with retries.

use crate::state::AppState;
use crate::store::outbox::{delivered, lease_due, retry_later};

/// Delivers every due claim mail. Each row is leased before it is sent (so two drains never
/// send it twice), deleted once delivered, and on failure retried with a doubling backoff
/// (1 s up to 5 min). Wall time, not the test clock: delivery is about the relay, not TTLs.
pub async fn drain_outbox(state: AppState) {
    loop {
        let wall = time::OffsetDateTime::now_utc().unix_timestamp();
        let leased = state.db.call(move |conn| lease_due(conn, wall)).await;
        let Ok(Some(mail)) = leased else { return };
        let sent = state
            .mailer
            .send_claim(&mail.recipient, &mail.registration_id, &mail.link, &mail.expires)
            .await;
        let (id, outcome) = (mail.id, sent.clone());
        let _ = state
            .db
            .call(move |conn| match &outcome {
                Ok(()) => delivered(conn, id),
                Err(e) => retry_later(conn, id, e, wall),
            })
            .await;
        if let Err(e) = sent {
            tracing::warn!(registration_id = %mail.registration_id, error = %e, "claim mail not delivered; will retry");
        }
    }
}
