//! Claim mail over real SMTP (lettre), or to the log when no relay is configured.

use lettre::message::{Mailbox, MultiPart, SinglePart, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// The one email grammar of the service: the same check at registration, at claim and at send
/// time, built on the mailer's own address parser, so an address that passes can always be
/// mailed (a 400 at the door, never a 500 at the mailer). Display names, comments, quoted local
/// parts and lists are refused: an agent sends a bare `local@domain`.
pub fn email_address(text: &str) -> Option<lettre::Address> {
    let plain = !text.is_empty()
        && text.len() <= 254
        && !text.contains(|c: char| {
            c.is_whitespace() || c.is_control() || matches!(c, '"' | ',' | '(' | ')' | '<' | '>' | ';' | ':' | '[' | ']' | '\\')
        });
    let (local, domain) = text.rsplit_once('@')?;
    let shaped = plain
        && !local.is_empty()
        && local.len() <= 64
        && !local.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..");
    if !shaped {
        return None;
    }
    text.parse::<lettre::Address>().ok()
}

/// Sends claim emails.
pub struct Mailer {
    from: String,
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    outbox: Option<std::path::PathBuf>,
}

impl Mailer {
    /// A mailer relaying to `smtp` (`host:port`, plaintext; a loopback sink needs no TLS), and
    /// writing each mail to `outbox/<registration_id>.html` when given.
    pub fn new(smtp: Option<&str>, from: &str, outbox: Option<std::path::PathBuf>) -> Result<Self, String> {
        if let Some(dir) = &outbox {
            std::fs::create_dir_all(dir).map_err(|e| format!("mail_outbox {}: {e}", dir.display()))?;
        }
        let transport = match smtp {
            Some(addr) => {
                let (host, port) = addr.rsplit_once(':').ok_or_else(|| format!("smtp `{addr}` is not host:port"))?;
                let port: u16 = port.parse().map_err(|_| format!("smtp `{addr}` has a bad port"))?;
                Some(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).port(port).build())
            }
            None => None,
        };
        Ok(Self {
            from: from.to_string(),
            transport,
            outbox,
        })
    }

    /// Sends the claim email for one attempt: the link carries the `claim_attempt_token`
    /// and leads to a page; the OTP itself is never mailed (CLAIM-02, CLAIM-28).
    pub async fn send_claim(&self, to: &str, registration_id: &str, link: &str, expires: &str) -> Result<(), String> {
        let text = format!(
            "Hi {to},\n\nAn AI agent asks to act on your behalf with this service (registration {registration_id}).\n\
             Open this link to see a one-time code, and read it back to the agent only if you started this:\n\n{link}\n\n\
             If you did not ask for this, ignore this message: nothing happens without the code.\nThe link expires at {expires}.\n"
        );
        let html = format!(
            "<p>Hi {to},</p><p>An AI agent asks to act on your behalf with this service.</p>\
             <p>If you did not ask for this, ignore this message: nothing happens without the code.</p>\
             <p><a href=\"{}\">View one-time code</a></p><p>Registration <code>{registration_id}</code>; the link expires at {expires}.</p>",
            link.replace('&', "&amp;")
        );
        if let Some(dir) = &self.outbox {
            // Written whole under a temporary name, then renamed, so a reader never sees half a
            // mail; a new attempt overwrites the registration's file, as the v0.1 sample does.
            let name: String = registration_id
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
                .collect();
            let page = format!("<!doctype html><html><body><p>To: {to}</p>{html}</body></html>");
            let tmp = dir.join(format!(".{name}.{}.tmp", crate::secrets::secret("", 8)));
            tokio::fs::write(&tmp, page).await.map_err(|e| format!("outbox: {e}"))?;
            tokio::fs::rename(&tmp, dir.join(format!("{name}.html")))
                .await
                .map_err(|e| format!("outbox: {e}"))?;
        }
        let Some(transport) = &self.transport else {
            tracing::info!(%to, %registration_id, "no SMTP relay configured; claim mail not sent");
            return Ok(());
        };
        let from: Mailbox = self.from.parse().map_err(|e| format!("bad sender: {e}"))?;
        let to_box = Mailbox::new(None, email_address(to).ok_or_else(|| format!("bad recipient `{to}`"))?);
        let message = Message::builder()
            .from(from)
            .to(to_box)
            .subject("Confirm an AI agent acting on your behalf")
            .multipart(
                MultiPart::alternative()
                    .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(text))
                    .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(html)),
            )
            .map_err(|e| e.to_string())?;
        transport.send(message).await.map(|_| ()).map_err(|e| e.to_string())
    }
}
