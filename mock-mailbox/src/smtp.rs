//! A minimal RFC 5321 receiver on tokio: enough SMTP for a target to hand over its claim mail.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::{Shared, SmtpFault};

/// Longest command line accepted (RFC 5321 §4.5.3.1.4 says 512; be lenient).
const MAX_LINE: usize = 4096;
/// Largest message accepted.
const MAX_MESSAGE: usize = 10 * 1024 * 1024;

pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = session(stream, shared).await;
        });
    }
}

#[derive(Default)]
struct Envelope {
    greeted: bool,
    from: Option<String>,
    to: Vec<String>,
}

fn path_arg(rest: &str, keyword: &str) -> Option<String> {
    let rest = rest.trim();
    if rest.len() < keyword.len() || !rest[..keyword.len()].eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = rest[keyword.len()..].trim_start();
    let open = rest.find('<')?;
    let close = rest[open..].find('>')? + open;
    Some(rest[open + 1..close].to_string())
}

async fn session(stream: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let fault = shared.fault();
    if let SmtpFault::Drop = fault {
        return Ok(());
    }
    if let SmtpFault::Delay(ms) = fault {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    write.write_all(b"220 authmd-mock-mailbox ESMTP ready\r\n").await?;
    let mut envelope = Envelope::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut reader).take(MAX_LINE as u64 + 2).read_until(b'\n', &mut line).await?;
        if n == 0 {
            return Ok(());
        }
        if !line.ends_with(b"\n") {
            write.write_all(b"500 5.5.2 line too long\r\n").await?;
            // Skip the rest of the over-long line so the session stays in sync.
            let mut rest = Vec::new();
            reader.read_until(b'\n', &mut rest).await?;
            continue;
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        let (verb, rest) = text.split_once(' ').unwrap_or((text, ""));
        let reply: &[u8] = match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                envelope = Envelope {
                    greeted: true,
                    ..Envelope::default()
                };
                b"250-authmd-mock-mailbox\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-SIZE 10485760\r\n250 PIPELINING\r\n"
            }
            "HELO" => {
                envelope = Envelope {
                    greeted: true,
                    ..Envelope::default()
                };
                b"250 authmd-mock-mailbox\r\n"
            }
            "MAIL" if !envelope.greeted => b"503 5.5.1 send EHLO first\r\n",
            "MAIL" => match path_arg(rest, "FROM:") {
                Some(from) => match fault {
                    SmtpFault::Refuse4xx => b"451 4.3.0 mailbox temporarily unavailable\r\n",
                    SmtpFault::Refuse5xx => b"550 5.7.1 refused by fault injection\r\n",
                    _ => {
                        envelope.from = Some(from);
                        envelope.to.clear();
                        b"250 2.1.0 ok\r\n"
                    }
                },
                None => b"501 5.5.4 syntax: MAIL FROM:<address>\r\n",
            },
            "RCPT" if envelope.from.is_none() => b"503 5.5.1 need MAIL first\r\n",
            "RCPT" => match path_arg(rest, "TO:") {
                Some(to) if !to.is_empty() => {
                    envelope.to.push(to);
                    b"250 2.1.5 ok\r\n"
                }
                _ => b"501 5.5.4 syntax: RCPT TO:<address>\r\n",
            },
            "DATA" if envelope.to.is_empty() => b"503 5.5.1 need RCPT first\r\n",
            "DATA" => {
                write.write_all(b"354 end data with <CR><LF>.<CR><LF>\r\n").await?;
                let mut data = Vec::new();
                let mut too_big = false;
                loop {
                    line.clear();
                    let n = reader.read_until(b'\n', &mut line).await?;
                    if n == 0 {
                        return Ok(());
                    }
                    if line == b".\r\n" || line == b".\n" {
                        break;
                    }
                    // RFC 5321 §4.5.2: a leading dot was doubled by the sender.
                    let content = if line.starts_with(b"..") { &line[1..] } else { &line[..] };
                    if data.len() + content.len() > MAX_MESSAGE {
                        too_big = true;
                    } else {
                        data.extend_from_slice(content);
                    }
                }
                if too_big {
                    b"552 5.3.4 message too big\r\n"
                } else {
                    let from = envelope.from.take().unwrap_or_default();
                    let to = std::mem::take(&mut envelope.to);
                    shared.deliver(from, to, data);
                    b"250 2.0.0 queued\r\n"
                }
            }
            "RSET" => {
                envelope.from = None;
                envelope.to.clear();
                b"250 2.0.0 ok\r\n"
            }
            "NOOP" => b"250 2.0.0 ok\r\n",
            "VRFY" => b"252 2.5.2 cannot verify, will accept\r\n",
            "QUIT" => {
                write.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            "" => b"500 5.5.2 empty command\r\n",
            _ => b"500 5.5.1 command not recognised\r\n",
        };
        write.write_all(reply).await?;
    }
}
