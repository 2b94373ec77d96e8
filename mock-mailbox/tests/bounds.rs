//! The mock mailbox as an attack surface: whatever a sender does (lines without an end, endless
//! DATA, silence, a flood of messages or connections), what the sink keeps and how long a
//! session lives are bounded, and the session stays in step with the protocol.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use authmd_mock_mailbox::{Mailbox, MailboxLimits};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn any() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A raw SMTP client: write bytes, read reply lines.
struct Client {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Self {
        let (r, w) = TcpStream::connect(addr).await.expect("connect").into_split();
        let mut client = Self {
            reader: BufReader::new(r),
            writer: w,
        };
        let greeting = client.reply().await;
        assert!(greeting.starts_with("220"), "{greeting}");
        client
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("write");
    }

    /// The last line of the next reply ("" when the connection closed).
    async fn reply(&mut self) -> String {
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(10), self.reader.read_line(&mut line))
                .await
                .expect("a reply within 10 s")
                .unwrap_or(0);
            if n == 0 || line.as_bytes().get(3) != Some(&b'-') {
                return line;
            }
        }
    }

    async fn command(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }
}

fn limits() -> MailboxLimits {
    MailboxLimits {
        max_message: 64 * 1024,
        memory: 1024 * 1024,
        max_messages: 50,
        max_sessions: 4,
        idle: Duration::from_millis(500),
        data: Duration::from_secs(2),
    }
}

#[tokio::test]
async fn an_endless_command_line_is_dropped_as_it_arrives_and_the_session_stays_in_step() {
    let mailbox = Mailbox::start_with(any(), MailboxLimits::default()).await.expect("mailbox");
    let mut client = Client::connect(mailbox.addr()).await;
    // 20 MB of one line, kept by nothing: the sink answers once the line ends.
    let block = vec![b'A'; 1024 * 1024];
    for _ in 0..20 {
        client.send(&block).await;
    }
    client.send(b"\r\n").await;
    assert!(client.reply().await.starts_with("500"));
    assert!(client.command("NOOP").await.starts_with("250"));
}

#[tokio::test]
async fn an_endless_data_line_or_section_is_refused_and_not_kept() {
    let mailbox = Mailbox::start_with(any(), limits()).await.expect("mailbox");
    let mut client = Client::connect(mailbox.addr()).await;
    assert!(client.command("EHLO test").await.starts_with("250"));
    for (label, body) in [
        ("one long line", vec![vec![b'x'; 4 * 1024 * 1024]]),
        ("many lines", vec![vec![b'y'; 1000]; 500]),
    ] {
        assert!(client.command("MAIL FROM:<a@example.com>").await.starts_with("250"), "{label}");
        assert!(client.command("RCPT TO:<b@example.com>").await.starts_with("250"), "{label}");
        assert!(client.command("DATA").await.starts_with("354"), "{label}");
        for line in &body {
            client.send(line).await;
            client.send(b"\r\n").await;
        }
        assert!(client.command(".").await.starts_with("552"), "{label}");
    }
    assert!(mailbox.messages().is_empty());
    assert!(client.command("NOOP").await.starts_with("250"));
}

#[tokio::test]
async fn a_silent_or_trickling_session_is_closed() {
    let mailbox = Mailbox::start_with(any(), limits()).await.expect("mailbox");
    let started = Instant::now();
    let mut silent = Client::connect(mailbox.addr()).await;
    assert!(silent.reply().await.starts_with("421"));
    assert!(silent.reply().await.is_empty(), "the connection stays open");
    assert!(started.elapsed() < Duration::from_secs(3));

    // A line every 300 ms (under the idle timeout) inside DATA: the DATA deadline closes it.
    let mut trickle = Client::connect(mailbox.addr()).await;
    assert!(trickle.command("HELO test").await.starts_with("250"));
    assert!(trickle.command("MAIL FROM:<a@example.com>").await.starts_with("250"));
    assert!(trickle.command("RCPT TO:<b@example.com>").await.starts_with("250"));
    assert!(trickle.command("DATA").await.starts_with("354"));
    let started = Instant::now();
    let closed = loop {
        if trickle.writer.write_all(b"line\r\n").await.is_err() {
            break true;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        if started.elapsed() > Duration::from_secs(6) {
            break false;
        }
        // The 421 arrives when the deadline passes.
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1), trickle.reader.fill_buf())
            .await
            .map(|r| r.map(|b| b.len()))
            && n > 0
        {
            break true;
        }
    };
    assert!(closed, "DATA trickled past its deadline");
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
}

#[tokio::test]
async fn kept_mail_stays_within_its_budget_dropping_the_oldest() {
    let mailbox = Mailbox::start_with(any(), limits()).await.expect("mailbox");
    let mut client = Client::connect(mailbox.addr()).await;
    assert!(client.command("HELO test").await.starts_with("250"));
    let body = "z".repeat(30 * 1024);
    for i in 0..120 {
        assert!(client.command("MAIL FROM:<a@example.com>").await.starts_with("250"));
        assert!(
            client
                .command(&format!("RCPT TO:<r{}@example.com>", i % 3))
                .await
                .starts_with("250")
        );
        assert!(client.command("DATA").await.starts_with("354"));
        client.send(format!("Subject: m{i}\r\n\r\n{body}\r\n").as_bytes()).await;
        assert!(client.command(".").await.starts_with("250"), "message {i}");
    }
    let kept = mailbox.messages();
    let bytes: usize = kept.iter().map(|m| m.size()).sum();
    assert!(kept.len() <= 50, "{} kept", kept.len());
    assert!(bytes <= 1024 * 1024, "{bytes} bytes kept");
    let (received, dropped) = mailbox.counts();
    assert_eq!(received, 120);
    assert_eq!(dropped as usize + kept.len(), 120);
    assert_eq!(kept.last().map(|m| m.subject.as_str()), Some("m119"), "the newest is kept");
    // A reader of one recipient still gets that recipient's kept mail, oldest kept first.
    let first = mailbox
        .next_message("r2@example.com", Duration::from_secs(1))
        .await
        .expect("kept mail");
    let kept_for_r2: Vec<_> = kept.iter().filter(|m| m.to == ["r2@example.com"]).collect();
    assert_eq!(first.subject, kept_for_r2[0].subject);
}

#[tokio::test]
async fn connections_past_the_session_limit_are_turned_away() {
    let mailbox = Mailbox::start_with(any(), limits()).await.expect("mailbox");
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(Client::connect(mailbox.addr()).await);
    }
    let (r, _w) = TcpStream::connect(mailbox.addr()).await.expect("connect").into_split();
    let mut line = String::new();
    BufReader::new(r).read_line(&mut line).await.expect("read");
    assert!(line.starts_with("421"), "{line}");
    // Recipients of one message are bounded too.
    let client = &mut held[0];
    assert!(client.command("HELO test").await.starts_with("250"));
    assert!(client.command("MAIL FROM:<a@example.com>").await.starts_with("250"));
    let mut refused = 0;
    for i in 0..150 {
        if client.command(&format!("RCPT TO:<r{i}@example.com>")).await.starts_with("452") {
            refused += 1;
        }
    }
    assert_eq!(refused, 50);
}
