//! Mock mailbox for the auth.md conformance suite.
//!
//! It captures the claim emails a target sends (a real SMTP sink on loopback, or a directory,
//! an HTTP URL template, or a Mailpit-compatible API) and yields the OTP the way a human gets
//! it: open the claim link, read the `claim_attempt_token`, POST it to the challenge endpoint,
//! read the six-digit code. It is a library first; `authmd-conformance mailbox serve` wraps it.
//!
//! It is not a mail server: it relays nothing and keeps messages in memory only.

mod otp;
mod smtp;
mod sources;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::Notify;

pub use otp::{ClaimLink, DEFAULT_LINK_PATTERN, extract_claim_link, extract_otp_text, obtain_otp};
pub use sources::MailSource;

/// Errors of the mailbox library. Messages read after "failed to …".
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The SMTP listener could not be bound.
    #[error("failed to listen on {addr}: {reason}")]
    Bind {
        /// The address.
        addr: String,
        /// What went wrong.
        reason: String,
    },
    /// No message reached the recipient in time.
    #[error("no message to `{recipient}` within {waited:?}")]
    Timeout {
        /// The address waited for.
        recipient: String,
        /// How long.
        waited: Duration,
    },
    /// The message had no claim link matching the pattern.
    #[error("no claim link in the message to `{0}`")]
    NoClaimLink(String),
    /// A link pattern is not a valid regular expression.
    #[error("invalid link pattern `{pattern}`: {reason}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// What went wrong.
        reason: String,
    },
    /// An HTTP exchange with the target or a mail API got no response.
    #[error("no response from {url}: {reason}")]
    Http {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The target answered, but not with an OTP (status and body are the evidence).
    #[error("the challenge endpoint answered {status} without an OTP: {body}")]
    NoOtp {
        /// HTTP status.
        status: u16,
        /// Response body.
        body: String,
    },
    /// A mail source could not be read.
    #[error("mail source {0}")]
    Source(String),
}

/// A captured message, MIME-decoded.
#[derive(Clone, Debug, Serialize)]
pub struct Message {
    /// Envelope sender.
    pub from: String,
    /// Envelope recipients.
    pub to: Vec<String>,
    /// Subject header.
    pub subject: String,
    /// The text part (or the HTML part converted to text).
    pub text: String,
    /// The HTML part, if any.
    pub html: Option<String>,
    /// The raw RFC 5322 message.
    pub raw: String,
    /// When the sink received it.
    #[serde(skip)]
    pub received_at: SystemTime,
}

impl Message {
    /// Parses a raw RFC 5322 message (multipart, quoted-printable and base64 are decoded).
    pub fn parse(from: String, to: Vec<String>, raw: &[u8]) -> Self {
        let parsed = mail_parser::MessageParser::default().parse(raw);
        let (subject, text, html) = match &parsed {
            Some(m) => (
                m.subject().unwrap_or_default().to_string(),
                m.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
                if m.html_body_count() > 0 {
                    m.body_html(0).map(|h| h.into_owned())
                } else {
                    None
                },
            ),
            None => (String::new(), String::from_utf8_lossy(raw).into_owned(), None),
        };
        let to = if to.is_empty() {
            parsed
                .as_ref()
                .and_then(|m| m.to())
                .map(|a| a.iter().filter_map(|x| x.address().map(str::to_string)).collect())
                .unwrap_or_default()
        } else {
            to
        };
        Self {
            from,
            to,
            subject,
            text,
            html,
            raw: String::from_utf8_lossy(raw).into_owned(),
            received_at: SystemTime::now(),
        }
    }

    /// Bytes this message takes in memory (raw, decoded text and HTML, addresses).
    pub fn size(&self) -> usize {
        self.raw.len()
            + self.text.len()
            + self.html.as_ref().map_or(0, String::len)
            + self.subject.len()
            + self.from.len()
            + self.to.iter().map(String::len).sum::<usize>()
    }

    /// The HTML part if any, else the text part: where a claim link lives.
    pub fn body(&self) -> &str {
        self.html.as_deref().unwrap_or(&self.text)
    }
}

/// SMTP fault injection, switchable at run time.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SmtpFault {
    /// Accept everything.
    #[default]
    None,
    /// Refuse `MAIL FROM` with 451.
    Refuse4xx,
    /// Refuse `MAIL FROM` with 550.
    Refuse5xx,
    /// Wait this many milliseconds before the greeting.
    Delay(u64),
    /// Close the connection at once.
    Drop,
}

/// What the SMTP sink holds and waits for: whatever senders do, its memory and its sessions are
/// bounded by these.
#[derive(Clone, Copy, Debug)]
pub struct MailboxLimits {
    /// Largest message accepted (bytes of DATA); a bigger one is refused with 552.
    pub max_message: usize,
    /// Bytes of messages kept (raw and decoded); past it the oldest are dropped, and said so.
    pub memory: usize,
    /// Messages kept; past it the oldest are dropped.
    pub max_messages: usize,
    /// Sessions served at once; another connection is answered 421 and closed.
    pub max_sessions: usize,
    /// How long a session may stay silent before it is closed.
    pub idle: Duration,
    /// How long one DATA section may take.
    pub data: Duration,
}

impl Default for MailboxLimits {
    fn default() -> Self {
        Self {
            max_message: 10 * 1024 * 1024,
            memory: 256 * 1024 * 1024,
            max_messages: 10_000,
            max_sessions: 256,
            idle: Duration::from_secs(60),
            data: Duration::from_secs(300),
        }
    }
}

#[derive(Default)]
struct Store {
    /// Kept messages by lower-cased recipient, in arrival order.
    by_recipient: HashMap<String, VecDeque<Arc<Message>>>,
    /// How many of each recipient's kept messages `next_message` has handed out.
    consumed: HashMap<String, usize>,
    /// Kept messages with their arrival number, oldest first.
    all: VecDeque<(u64, Arc<Message>)>,
    /// Messages received so far (the next arrival number).
    received: u64,
    /// Bytes the kept messages take.
    bytes: usize,
    /// Messages dropped to stay within the limits.
    dropped: u64,
    fault: SmtpFault,
}

impl Store {
    /// Drops the oldest message, from every index that holds it.
    fn drop_oldest(&mut self) {
        let Some((_, oldest)) = self.all.pop_front() else { return };
        self.bytes = self.bytes.saturating_sub(oldest.size());
        self.dropped += 1;
        for recipient in &oldest.to {
            let key = recipient.to_ascii_lowercase();
            let Some(queue) = self.by_recipient.get_mut(&key) else { continue };
            if queue.front().is_some_and(|m| Arc::ptr_eq(m, &oldest)) {
                queue.pop_front();
                if let Some(seen) = self.consumed.get_mut(&key) {
                    *seen = seen.saturating_sub(1);
                }
            }
            if queue.is_empty() {
                self.by_recipient.remove(&key);
                self.consumed.remove(&key);
            }
        }
    }
}

pub(crate) struct Shared {
    store: Mutex<Store>,
    arrived: Notify,
    pub(crate) limits: MailboxLimits,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn fault(&self) -> SmtpFault {
        self.lock().fault
    }

    pub(crate) fn deliver(&self, from: String, to: Vec<String>, raw: Vec<u8>) {
        let message = Arc::new(Message::parse(from, to, &raw));
        {
            let mut store = self.lock();
            let before = store.dropped;
            while !store.all.is_empty()
                && (store.all.len() >= self.limits.max_messages || store.bytes + message.size() > self.limits.memory)
            {
                store.drop_oldest();
            }
            if store.dropped > before {
                tracing::warn!(
                    "mailbox: dropped {} oldest message(s) to stay within {} messages and {} bytes",
                    store.dropped - before,
                    self.limits.max_messages,
                    self.limits.memory
                );
            }
            for recipient in &message.to {
                store
                    .by_recipient
                    .entry(recipient.to_ascii_lowercase())
                    .or_default()
                    .push_back(message.clone());
            }
            let seq = store.received;
            store.received += 1;
            store.bytes += message.size();
            store.all.push_back((seq, message));
        }
        self.arrived.notify_waiters();
    }
}

/// A running SMTP sink. Dropping it stops accepting connections.
pub struct Mailbox {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Mailbox {
    /// Starts the sink on `listen` (use `127.0.0.1:0` for a random port). Needs a tokio runtime.
    pub async fn start(listen: SocketAddr) -> Result<Self, MailError> {
        Self::start_with(listen, MailboxLimits::default()).await
    }

    /// Starts the sink with other limits than the defaults.
    pub async fn start_with(listen: SocketAddr, limits: MailboxLimits) -> Result<Self, MailError> {
        let bind = |e: std::io::Error| MailError::Bind {
            addr: listen.to_string(),
            reason: e.to_string(),
        };
        let listener = tokio::net::TcpListener::bind(listen).await.map_err(bind)?;
        let addr = listener.local_addr().map_err(bind)?;
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::default()),
            arrived: Notify::new(),
            limits,
        });
        let task = tokio::spawn(smtp::serve(listener, shared.clone()));
        Ok(Self { shared, addr, task })
    }

    /// The SMTP address a target should relay to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Switches SMTP fault injection.
    pub fn set_fault(&self, fault: SmtpFault) {
        self.shared.lock().fault = fault;
    }

    /// Every message kept, in arrival order (the oldest are dropped past the limits).
    pub fn messages(&self) -> Vec<Message> {
        self.shared.lock().all.iter().map(|(_, m)| Message::clone(m)).collect()
    }

    /// The kept messages whose arrival number is `seq` or later, with the number the next
    /// arrival will get: a printer asks for what is new without copying what it has shown.
    pub fn messages_from(&self, seq: u64) -> (Vec<Message>, u64) {
        let store = self.shared.lock();
        let new = store
            .all
            .iter()
            .rev()
            .take_while(|(n, _)| *n >= seq)
            .map(|(_, m)| Message::clone(m))
            .collect::<Vec<_>>();
        (new.into_iter().rev().collect(), store.received)
    }

    /// Messages received so far, and how many of them were dropped to stay within the limits.
    pub fn counts(&self) -> (u64, u64) {
        let store = self.shared.lock();
        (store.received, store.dropped)
    }

    /// Waits until a message arrives (or returns at once if one arrived after `seq`).
    pub async fn arrival_after(&self, seq: u64) {
        let notified = self.shared.arrived.notified();
        if self.shared.lock().received > seq {
            return;
        }
        notified.await;
    }

    /// All kept messages to `recipient`, without consuming them.
    pub fn messages_to(&self, recipient: &str) -> Vec<Message> {
        self.shared
            .lock()
            .by_recipient
            .get(&recipient.to_ascii_lowercase())
            .map(|q| q.iter().map(|m| Message::clone(m)).collect())
            .unwrap_or_default()
    }

    /// Waits for the next message to `recipient` that this call has not handed out before.
    pub async fn next_message(&self, recipient: &str, timeout: Duration) -> Result<Message, MailError> {
        let key = recipient.to_ascii_lowercase();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Register interest before checking, so a delivery in between is not missed.
            let notified = self.shared.arrived.notified();
            {
                let mut store = self.shared.lock();
                let seen = store.consumed.get(&key).copied().unwrap_or(0);
                if let Some(message) = store.by_recipient.get(&key).and_then(|m| m.get(seen)).cloned() {
                    store.consumed.insert(key, seen + 1);
                    return Ok(Message::clone(&message));
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(MailError::Timeout {
                    recipient: recipient.into(),
                    waited: timeout,
                });
            }
        }
    }

    /// Returns `Ok(())` when no new message reaches `recipient` within `within`, else the
    /// message that arrived (which is then consumed).
    pub async fn expect_none(&self, recipient: &str, within: Duration) -> Result<(), Box<Message>> {
        match self.next_message(recipient, within).await {
            Ok(message) => Err(Box::new(message)),
            Err(_) => Ok(()),
        }
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        self.task.abort();
    }
}
