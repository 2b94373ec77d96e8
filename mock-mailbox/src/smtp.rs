//! A minimal RFC 5321 receiver on tokio: enough SMTP for a target to hand over its claim mail.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::{Shared, SmtpFault};

/// Longest command line accepted (RFC 5321 §4.5.3.1.4 says 512; be lenient).
const MAX_LINE: usize = 4096;
/// Longest line inside DATA (RFC 5321 says 1000 with the CRLF; some senders exceed it).
const MAX_DATA_LINE: usize = 64 * 1024;
/// Recipients of one message (RFC 5321 §4.5.3.1.8 asks at least 100 be accepted).
const MAX_RECIPIENTS: usize = 100;

pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let sessions = Arc::new(tokio::sync::Semaphore::new(shared.limits.max_sessions));
    let mut backoff = Duration::from_millis(10);
    loop {
        let mut stream = match listener.accept().await {
            Ok((stream, _)) => {
                backoff = Duration::from_millis(10);
                stream
            }
            Err(e) => {
                // Out of descriptors (or another transient error): wait instead of spinning, so
                // the sessions that hold them get the CPU to finish and free them.
                tracing::warn!("mailbox: accept failed ({e}); retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let Ok(permit) = sessions.clone().try_acquire_owned() else {
            let _ = stream.write_all(b"421 4.3.2 too many connections, try later\r\n").await;
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = session(stream, shared).await;
            drop(permit);
        });
    }
}

/// How a bounded line read ended.
#[derive(Debug, PartialEq)]
enum Line {
    /// The peer closed the connection (or went idle past the timeout).
    End,
    /// A whole line, with its line ending, is in the buffer.
    Whole,
    /// The line was longer than allowed: the buffer holds its first part, the rest was read
    /// and dropped up to its newline.
    TooLong,
}

/// Reads one line into `buf` (cleared first), keeping at most `max` bytes of it: the peer
/// decides how much it sends, never how much is kept. A read that waits longer than `idle`
/// ends the session.
async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R, buf: &mut Vec<u8>, max: usize, idle: Duration) -> std::io::Result<Line> {
    buf.clear();
    let mut too_long = false;
    loop {
        let available = match tokio::time::timeout(idle, reader.fill_buf()).await {
            Err(_) => return Ok(Line::End),
            Ok(r) => r?,
        };
        if available.is_empty() {
            return Ok(Line::End);
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let used = chunk.len();
        if !too_long {
            let room = max.saturating_sub(buf.len());
            buf.extend_from_slice(&chunk[..used.min(room)]);
            too_long = used > room;
        }
        reader.consume(used);
        if done {
            return Ok(if too_long { Line::TooLong } else { Line::Whole });
        }
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
    let limits = shared.limits;
    let ehlo = format!(
        "250-authmd-mock-mailbox\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-SIZE {}\r\n250 PIPELINING\r\n",
        limits.max_message
    );
    loop {
        match read_line(&mut reader, &mut line, MAX_LINE + 2, limits.idle).await? {
            Line::End => {
                let _ = write.write_all(b"421 4.4.2 idle too long, closing\r\n").await;
                return Ok(());
            }
            Line::TooLong => {
                write.write_all(b"500 5.5.2 line too long\r\n").await?;
                continue;
            }
            Line::Whole => {}
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
                ehlo.as_bytes()
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
            "RCPT" if envelope.to.len() >= MAX_RECIPIENTS => b"452 4.5.3 too many recipients\r\n",
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
                // The whole DATA section has a deadline too: a sender trickling one line at a
                // time just under the idle timeout cannot hold the session for ever.
                let deadline = tokio::time::Instant::now() + limits.data;
                loop {
                    let idle = limits.idle.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
                    match read_line(&mut reader, &mut line, MAX_DATA_LINE, idle).await? {
                        Line::End => {
                            let _ = write.write_all(b"421 4.4.2 DATA took too long, closing\r\n").await;
                            return Ok(());
                        }
                        Line::TooLong => {
                            too_big = true;
                            continue;
                        }
                        Line::Whole => {}
                    }
                    if line == b".\r\n" || line == b".\n" {
                        break;
                    }
                    // RFC 5321 §4.5.2: a leading dot was doubled by the sender.
                    let content = if line.starts_with(b"..") { &line[1..] } else { &line[..] };
                    if data.len() + content.len() > limits.max_message {
                        too_big = true;
                    } else if !too_big {
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
