//! Where a target's mail can be read from, for targets that do not send SMTP to the sink.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::{MailError, Mailbox, Message};

/// How often file and HTTP sources are polled while waiting; SMTP waits on a notification.
const POLL: Duration = Duration::from_millis(25);

/// A place a target's claim mail arrives.
pub enum MailSource {
    /// The bundled SMTP sink.
    Smtp(Arc<Mailbox>),
    /// A directory with one file per message (`.eml`, or `.html` bodies).
    Directory {
        /// The directory.
        dir: PathBuf,
        /// Files already handed out.
        seen: Mutex<HashSet<PathBuf>>,
    },
    /// An HTTP URL template with `{registration_id}` and/or `{recipient}` placeholders,
    /// e.g. `http://127.0.0.1:8000/mail/{registration_id}.html` (the v0.1 sample's outbox).
    UrlTemplate {
        /// The template.
        template: String,
        /// Bodies already handed out, so a later call waits for a new message.
        seen: Mutex<HashSet<String>>,
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
        }
    }

    /// A URL-template source.
    pub fn url_template(template: impl Into<String>) -> Self {
        Self::UrlTemplate {
            template: template.into(),
            seen: Mutex::default(),
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
            Self::Directory { dir, seen } => {
                let entries = std::fs::read_dir(dir).map_err(|e| MailError::Source(format!("{}: {e}", dir.display())))?;
                let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
                paths.sort();
                for path in paths {
                    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
                    if !matches!(ext, "eml" | "html") || seen.lock().map(|s| s.contains(&path)).unwrap_or(true) {
                        continue;
                    }
                    let Ok(bytes) = std::fs::read(&path) else {
                        continue;
                    };
                    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                    let message = if ext == "eml" {
                        Message::parse(String::new(), Vec::new(), &bytes)
                    } else {
                        html_message(recipient, String::from_utf8_lossy(&bytes).into_owned())
                    };
                    let about_us = message.to.iter().any(|t| t.eq_ignore_ascii_case(recipient))
                        || (!registration_id.is_empty() && name.contains(registration_id))
                        || message.raw.contains(recipient);
                    if about_us {
                        if let Ok(mut s) = seen.lock() {
                            s.insert(path);
                        }
                        return Ok(Some(message));
                    }
                }
                Ok(None)
            }
            Self::UrlTemplate { template, seen } => {
                let url = template
                    .replace("{registration_id}", registration_id)
                    .replace("{recipient}", recipient);
                let response = http.get(&url).send().await.map_err(|e| MailError::Http {
                    url: url.clone(),
                    reason: e.to_string(),
                })?;
                if !response.status().is_success() {
                    return Ok(None);
                }
                let body = response.text().await.unwrap_or_default();
                let fresh = seen.lock().map(|mut s| s.insert(body.clone())).unwrap_or(false);
                Ok(fresh.then(|| html_message(recipient, body)))
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

fn html_message(recipient: &str, html: String) -> Message {
    Message {
        from: String::new(),
        to: vec![recipient.to_string()],
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
