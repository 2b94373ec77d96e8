//! Where a target's mail can be read from, for targets that do not send SMTP to the sink.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::{MailError, Mailbox, Message};

/// How often file and HTTP sources are polled while waiting; SMTP waits on a notification.
const POLL: Duration = Duration::from_millis(25);

/// A place a target's claim mail arrives.
pub enum MailSource {
    /// The bundled SMTP sink.
    Smtp(Arc<Mailbox>),
    /// A directory with one file per message (`.eml`, or `.html` bodies). A file is about a
    /// recipient when its `To` names them (`.eml`), its text names them (`.html`), or its name
    /// holds the registration id as a whole token. A file is read only once it has stopped
    /// changing, and again whenever its content changes (a new claim attempt may overwrite it).
    Directory {
        /// The directory.
        dir: PathBuf,
        /// (file, content hash) pairs already handed out.
        seen: Mutex<HashSet<(PathBuf, u64)>>,
        /// Size and modification time of each file at the last poll, to tell a file still
        /// being written from a finished one.
        observed: Mutex<HashMap<PathBuf, (u64, SystemTime)>>,
    },
    /// An HTTP URL template with `{registration_id}` and/or `{recipient}` placeholders,
    /// e.g. `http://127.0.0.1:8000/mail/{registration_id}.html` (the v0.1 sample's outbox).
    UrlTemplate {
        /// The template.
        template: String,
        /// Headers each request carries: the outbox's credentials, which an agent must not
        /// have (SEC-08).
        headers: Vec<(String, String)>,
        /// (URL, body hash) pairs already handed out, so a later call waits for a new message.
        seen: Mutex<HashSet<(String, u64)>>,
    },
    /// A Mailpit-compatible HTTP API at this base URL.
    Mailpit {
        /// The API base, e.g. `http://127.0.0.1:8025`.
        base: String,
        /// Message ids already handed out.
        seen: Mutex<HashSet<String>>,
    },
}

impl std::fmt::Debug for MailSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Smtp(m) => write!(f, "smtp://{}", m.addr()),
            Self::Directory { dir, .. } => write!(f, "directory {}", dir.display()),
            Self::UrlTemplate { template, .. } => write!(f, "url {template}"),
            Self::Mailpit { base, .. } => write!(f, "mailpit {base}"),
        }
    }
}

impl MailSource {
    /// A directory source.
    pub fn directory(dir: impl Into<PathBuf>) -> Self {
        Self::Directory {
            dir: dir.into(),
            seen: Mutex::default(),
            observed: Mutex::default(),
        }
    }

    /// A URL-template source.
    pub fn url_template(template: impl Into<String>) -> Self {
        Self::url_template_with_headers(template, Vec::new())
    }

    /// A URL-template source whose requests carry `headers` (an outbox behind credentials).
    pub fn url_template_with_headers(template: impl Into<String>, headers: Vec<(String, String)>) -> Self {
        Self::UrlTemplate {
            template: template.into(),
            headers,
            seen: Mutex::default(),
        }
    }

    /// The header values this source sends (an outbox's credentials), for redaction.
    pub fn credentials(&self) -> Vec<&str> {
        match self {
            Self::UrlTemplate { headers, .. } => headers.iter().map(|(_, v)| v.as_str()).collect(),
            _ => Vec::new(),
        }
    }

    /// For an HTTP outbox (a URL template): the URL of the mail about `registration_id` to
    /// `recipient`.
    pub fn outbox_url(&self, recipient: &str, registration_id: &str) -> Option<String> {
        match self {
            Self::UrlTemplate { template, .. } => Some(fill(template, recipient, registration_id)),
            _ => None,
        }
    }

    /// A Mailpit API source.
    pub fn mailpit(base: impl Into<String>) -> Self {
        Self::Mailpit {
            base: base.into().trim_end_matches('/').to_string(),
            seen: Mutex::default(),
        }
    }

    /// Waits for the next message to `recipient` (or, for URL templates, about `registration_id`).
    pub async fn next_message(
        &self,
        http: &reqwest::Client,
        recipient: &str,
        registration_id: &str,
        timeout: Duration,
    ) -> Result<Message, MailError> {
        if let Self::Smtp(mailbox) = self {
            return mailbox.next_message(recipient, timeout).await;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(message) = self.poll(http, recipient, registration_id).await? {
                return Ok(message);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(MailError::Timeout {
                    recipient: recipient.into(),
                    waited: timeout,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn poll(&self, http: &reqwest::Client, recipient: &str, registration_id: &str) -> Result<Option<Message>, MailError> {
        match self {
            Self::Smtp(_) => Ok(None),
            Self::Directory { dir, seen, observed } => {
                let entries = std::fs::read_dir(dir).map_err(|e| MailError::Source(format!("{}: {e}", dir.display())))?;
                let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
                paths.sort();
                for path in paths {
                    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
                    if !matches!(ext.as_str(), "eml" | "html" | "htm") {
                        continue;
                    }
                    let Ok(meta) = std::fs::metadata(&path) else { continue };
                    if meta.len() > MAX_FILE_BYTES {
                        continue;
                    }
                    let now = (meta.len(), meta.modified().unwrap_or(SystemTime::UNIX_EPOCH));
                    let before = observed.lock().ok().and_then(|mut o| o.insert(path.clone(), now));
                    // Finished means untouched for SETTLED; a modification time in the future
                    // (a skewed clock) counts once two polls see the file unchanged.
                    let settled = match now.1.elapsed() {
                        Ok(age) => age >= SETTLED,
                        Err(_) => before == Some(now),
                    };
                    if !settled {
                        continue;
                    }
                    let Ok(bytes) = std::fs::read(&path) else { continue };
                    let key = (path.clone(), content_hash(&bytes));
                    if seen.lock().map(|s| s.contains(&key)).unwrap_or(true) {
                        continue;
                    }
                    let stem = path.file_stem().and_then(|n| n.to_str()).unwrap_or_default();
                    let by_name = !registration_id.is_empty() && contains_token(stem, registration_id);
                    let mut message = if ext == "eml" {
                        Message::parse(String::new(), Vec::new(), &bytes)
                    } else {
                        html_message(String::from_utf8_lossy(&bytes).into_owned())
                    };
                    let by_recipient = if ext == "eml" {
                        message.to.iter().any(|t| t.eq_ignore_ascii_case(recipient))
                    } else {
                        !recipient.is_empty() && message.raw.to_ascii_lowercase().contains(&recipient.to_ascii_lowercase())
                    };
                    if by_name || by_recipient {
                        if message.to.is_empty() {
                            message.to = vec![recipient.to_string()];
                        }
                        if let Ok(mut s) = seen.lock() {
                            s.insert(key);
                        }
                        return Ok(Some(message));
                    }
                }
                Ok(None)
            }
            Self::UrlTemplate { template, headers, seen } => {
                if template.contains("{registration_id}") && registration_id.is_empty() {
                    return Err(MailError::Source(format!(
                        "the mail URL template `{template}` needs a registration id, and the case has none yet"
                    )));
                }
                let url = fill(template, recipient, registration_id);
                let mut request = http.get(&url);
                for (name, value) in headers {
                    request = request.header(name, value);
                }
                let response = request.send().await.map_err(|e| MailError::Http {
                    url: url.clone(),
                    reason: e.to_string(),
                })?;
                if !response.status().is_success() {
                    return Ok(None);
                }
                let body = response.text().await.unwrap_or_default();
                let key = (url, content_hash(body.as_bytes()));
                let fresh = seen.lock().map(|mut s| s.insert(key)).unwrap_or(false);
                Ok(fresh.then(|| {
                    let mut message = html_message(body);
                    message.to = vec![recipient.to_string()];
                    message
                }))
            }
            Self::Mailpit { base, seen } => {
                let url = format!(
                    "{base}/api/v1/search?query={}",
                    url::form_urlencoded::byte_serialize(format!("to:\"{recipient}\"").as_bytes()).collect::<String>()
                );
                let list: Value = get_json(http, &url).await?;
                let ids: Vec<String> = list["messages"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|m| m["ID"].as_str().map(str::to_string)).collect())
                    .unwrap_or_default();
                // Mailpit lists newest first; hand out the oldest unseen.
                for id in ids.into_iter().rev() {
                    if seen.lock().map(|s| s.contains(&id)).unwrap_or(true) {
                        continue;
                    }
                    let raw_url = format!("{base}/api/v1/message/{id}/raw");
                    let raw = http.get(&raw_url).send().await.map_err(|e| MailError::Http {
                        url: raw_url.clone(),
                        reason: e.to_string(),
                    })?;
                    let bytes = raw.bytes().await.map_err(|e| MailError::Http {
                        url: raw_url,
                        reason: e.to_string(),
                    })?;
                    if let Ok(mut s) = seen.lock() {
                        s.insert(id);
                    }
                    return Ok(Some(Message::parse(String::new(), vec![recipient.to_string()], &bytes)));
                }
                Ok(None)
            }
        }
    }
}

/// A file older than this is finished; a younger one must keep its size and time for a poll.
const SETTLED: Duration = Duration::from_millis(200);
/// Mail files larger than this are not mail.
const MAX_FILE_BYTES: u64 = 10 << 20;

fn content_hash(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// `needle` occurs in `hay` with no letter or digit on either side (`reg_1` is in
/// `mail-reg_1` but not in `reg_10`).
fn contains_token(hay: &str, needle: &str) -> bool {
    hay.match_indices(needle).any(|(i, _)| {
        let before = hay[..i].chars().next_back();
        let after = hay[i + needle.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

fn html_message(html: String) -> Message {
    Message {
        from: String::new(),
        to: Vec::new(),
        subject: String::new(),
        text: html.clone(),
        raw: html.clone(),
        html: Some(html),
        received_at: std::time::SystemTime::now(),
    }
}

async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value, MailError> {
    let response = http.get(url).send().await.map_err(|e| MailError::Http {
        url: url.into(),
        reason: e.to_string(),
    })?;
    response.json().await.map_err(|e| MailError::Source(format!("{url}: {e}")))
}

/// A URL template with its `{registration_id}` and `{recipient}` filled in.
fn fill(template: &str, recipient: &str, registration_id: &str) -> String {
    template
        .replace("{registration_id}", registration_id)
        .replace("{recipient}", recipient)
}
