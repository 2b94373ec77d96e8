//! The mock mailbox over real sockets: an SMTP client delivers, the sink parses, and the OTP
//! comes out the way a person would get it.

use std::net::SocketAddr;
use std::time::Duration;

use authmd_mock_mailbox::{MailSource, Mailbox, SmtpFault, extract_claim_link, obtain_otp};
use lettre::message::{MultiPart, SinglePart, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn any() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn transport(addr: SocketAddr) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(addr.ip().to_string())
        .port(addr.port())
        .build()
}

fn claim_mail(to: &str, link: &str) -> Message {
    Message::builder()
        .from("no-reply@service.test".parse().expect("from"))
        .to(to.parse().expect("to"))
        .subject("Confirm an AI agent")
        .multipart(
            MultiPart::alternative()
                .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(format!("Open {link}\n")))
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(format!("<p>Ünïcode</p><a href=\"{}\">View</a>", link.replace('&', "&amp;"))),
                ),
        )
        .expect("message")
}

#[tokio::test]
async fn a_message_sent_by_lettre_reaches_the_sink_and_is_parsed() {
    let mailbox = Mailbox::start(any()).await.expect("mailbox");
    let link = "http://127.0.0.1:1/agent/auth/claim/view?token=cvt_abc";
    transport(mailbox.addr())
        .send(claim_mail("carol@example.com", link))
        .await
        .expect("sent");
    let message = mailbox
        .next_message("Carol@Example.com", Duration::from_secs(5))
        .await
        .expect("arrived");
    assert_eq!(message.to, vec!["carol@example.com".to_string()]);
    assert_eq!(message.subject, "Confirm an AI agent");
    assert!(message.text.contains(link));
    assert!(
        message.html.as_deref().is_some_and(|h| h.contains("Ünïcode")),
        "the HTML part is decoded"
    );
    assert_eq!(extract_claim_link(&message, None).expect("link").token, "cvt_abc");
    assert!(
        mailbox.expect_none("carol@example.com", Duration::from_millis(100)).await.is_ok(),
        "a message is handed out once"
    );
}

async fn converse(addr: SocketAddr, lines: &[&str]) -> Vec<String> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut replies = Vec::new();
    let mut line = String::new();
    reader.read_line(&mut line).await.expect("greeting");
    for l in lines {
        write.write_all(format!("{l}\r\n").as_bytes()).await.expect("write");
        // A DATA body line gets no reply until the final dot.
        if *l != "." && (l.starts_with("Subject") || l.starts_with("..") || l.is_empty() || l.starts_with("body")) {
            continue;
        }
        loop {
            line.clear();
            reader.read_line(&mut line).await.expect("reply");
            // Multi-line replies continue with `NNN-`.
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
        replies.push(line.trim_end().to_string());
    }
    replies
}

#[tokio::test]
async fn malformed_commands_get_smtp_errors_and_the_sink_keeps_serving() {
    let mailbox = Mailbox::start(any()).await.expect("mailbox");
    let replies = converse(
        mailbox.addr(),
        &[
            "FROB",
            "MAIL FROM:<a@x.test>",
            "EHLO me",
            "MAIL FROM a@x.test",
            "RCPT TO:<b@x.test>",
            "MAIL FROM:<a@x.test>",
            "DATA",
            "NOOP",
            "RSET",
            "QUIT",
        ],
    )
    .await;
    let codes: Vec<&str> = replies.iter().map(|r| &r[..3]).collect();
    assert_eq!(codes, ["500", "503", "250", "501", "503", "250", "503", "250", "250", "221"]);
    // Still serving after all that.
    transport(mailbox.addr())
        .send(claim_mail("d@example.com", "http://127.0.0.1:1/v?token=t1"))
        .await
        .expect("sent");
    mailbox
        .next_message("d@example.com", Duration::from_secs(5))
        .await
        .expect("arrived");
}

#[tokio::test]
async fn dot_stuffed_lines_are_unstuffed() {
    let mailbox = Mailbox::start(any()).await.expect("mailbox");
    let replies = converse(
        mailbox.addr(),
        &[
            "HELO me",
            "MAIL FROM:<a@x.test>",
            "RCPT TO:<e@example.com>",
            "DATA",
            "Subject: dots",
            "",
            "..leading dot",
            "body",
            ".",
            "QUIT",
        ],
    )
    .await;
    assert_eq!(
        replies.iter().map(|r| &r[..3]).collect::<Vec<_>>(),
        ["250", "250", "250", "354", "250", "221"]
    );
    let message = mailbox
        .next_message("e@example.com", Duration::from_secs(5))
        .await
        .expect("arrived");
    assert!(
        message.text.contains(".leading dot") && !message.text.contains("..leading"),
        "{}",
        message.text
    );
}

#[tokio::test]
async fn fault_injection_refuses_delays_and_drops() {
    let mailbox = Mailbox::start(any()).await.expect("mailbox");
    let smtp = transport(mailbox.addr());
    let send = || smtp.send(claim_mail("f@example.com", "http://127.0.0.1:1/v?token=t"));
    mailbox.set_fault(SmtpFault::Refuse5xx);
    assert!(send().await.expect_err("refused").is_permanent());
    mailbox.set_fault(SmtpFault::Refuse4xx);
    assert!(send().await.expect_err("refused").is_transient());
    mailbox.set_fault(SmtpFault::Drop);
    assert!(send().await.is_err());
    mailbox.set_fault(SmtpFault::Delay(100));
    send().await.expect("delayed but delivered");
    mailbox.set_fault(SmtpFault::None);
    assert_eq!(mailbox.messages_to("f@example.com").len(), 1);
}

#[tokio::test]
async fn the_otp_comes_from_the_page_the_link_opens() {
    use axum::routing::{get, post};
    let app = axum::Router::new()
        .route(
            "/claim/view",
            get(|| async { axum::response::Html("<button>Show my code</button>") }),
        )
        .route(
            "/claim/attempt/challenge",
            post(|axum::Json(body): axum::Json<serde_json::Value>| async move {
                if body["claim_attempt_token"] == "cvt_good" {
                    (
                        axum::http::StatusCode::OK,
                        axum::Json(serde_json::json!({ "type": "otp", "challenge": "012345" })),
                    )
                } else {
                    (
                        axum::http::StatusCode::GONE,
                        axum::Json(serde_json::json!({ "error": "claim_superseded" })),
                    )
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(any()).await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mailbox = Mailbox::start(any()).await.expect("mailbox");
    let smtp = transport(mailbox.addr());
    let http = reqwest::Client::builder().no_proxy().build().expect("client");
    smtp.send(claim_mail("g@example.com", &format!("{base}/claim/view?x=1&token=cvt_good")))
        .await
        .expect("sent");
    let message = mailbox
        .next_message("g@example.com", Duration::from_secs(5))
        .await
        .expect("arrived");
    let link = extract_claim_link(&message, None).expect("link");
    assert_eq!(
        obtain_otp(&http, &link, &format!("{base}/claim/attempt/challenge"))
            .await
            .expect("otp"),
        "012345"
    );
    smtp.send(claim_mail("g@example.com", &format!("{base}/claim/view?token=cvt_stale")))
        .await
        .expect("sent");
    let stale = mailbox
        .next_message("g@example.com", Duration::from_secs(5))
        .await
        .expect("arrived");
    let error = obtain_otp(
        &http,
        &extract_claim_link(&stale, None).expect("link"),
        &format!("{base}/claim/attempt/challenge"),
    )
    .await
    .expect_err("no otp");
    assert!(error.to_string().contains("410"), "the target's answer is reported: {error}");
}

#[tokio::test]
async fn a_directory_source_yields_each_file_once() {
    let dir = std::env::temp_dir().join(format!("authmd-maildir-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("reg_1.html"), "<a href=\"http://127.0.0.1:1/v?token=cvt_dir\">x</a>").expect("write");
    let source = MailSource::directory(&dir);
    let http = reqwest::Client::new();
    let message = source
        .next_message(&http, "h@example.com", "reg_1", Duration::from_secs(2))
        .await
        .expect("found");
    assert_eq!(extract_claim_link(&message, None).expect("link").token, "cvt_dir");
    assert!(
        source
            .next_message(&http, "h@example.com", "reg_1", Duration::from_millis(100))
            .await
            .is_err()
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn maildir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("authmd-maildir-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

/// Writes a file and backdates nothing: the source waits until it has settled.
fn eml(to: &str, token: &str) -> String {
    format!(
        "From: s@x\r\nTo: {to}\r\nSubject: claim\r\nContent-Type: text/html\r\n\r\n<a href=\"http://127.0.0.1:1/v?token={token}\">x</a>"
    )
}

#[tokio::test]
async fn a_directory_source_hands_each_recipient_only_its_own_mail() {
    let dir = maildir("recipients");
    std::fs::write(dir.join("a.eml"), eml("a@example.com", "cvt_a")).expect("write");
    std::fs::write(dir.join("b.eml"), eml("b@example.com", "cvt_b")).expect("write");
    std::fs::write(
        dir.join("c.html"),
        "<p>for c@example.com</p><a href=\"http://127.0.0.1:1/v?token=cvt_c\">x</a>",
    )
    .expect("write");
    let source = MailSource::directory(&dir);
    let http = reqwest::Client::new();
    for (who, token) in [("b@example.com", "cvt_b"), ("c@example.com", "cvt_c"), ("a@example.com", "cvt_a")] {
        let m = source.next_message(&http, who, "", Duration::from_secs(2)).await.expect("found");
        assert_eq!(extract_claim_link(&m, None).expect("link").token, token, "{who}");
    }
    // Nothing is left for anyone, and a stranger never gets another's mail.
    assert!(
        source
            .next_message(&http, "d@example.com", "", Duration::from_millis(300))
            .await
            .is_err()
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_directory_source_matches_registration_ids_as_whole_tokens() {
    let dir = maildir("regid");
    std::fs::write(dir.join("reg_10.html"), "<a href=\"http://127.0.0.1:1/v?token=cvt_10\">x</a>").expect("write");
    std::fs::write(dir.join("reg_1.html"), "<a href=\"http://127.0.0.1:1/v?token=cvt_1\">x</a>").expect("write");
    let source = MailSource::directory(&dir);
    let http = reqwest::Client::new();
    let m = source
        .next_message(&http, "h@example.com", "reg_1", Duration::from_secs(2))
        .await
        .expect("found");
    assert_eq!(extract_claim_link(&m, None).expect("link").token, "cvt_1");
    assert!(
        source
            .next_message(&http, "h@example.com", "reg_1", Duration::from_millis(300))
            .await
            .is_err()
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_directory_source_waits_for_a_file_to_be_finished() {
    let dir = maildir("partial");
    let path = dir.join("reg_p.html");
    // Half a message now, the rest 120 ms later: only the whole file may be read.
    std::fs::write(&path, "<a href=\"http://127.0.0.1:1/v?tok").expect("write");
    let writer = {
        let path = path.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(120)).await;
            std::fs::write(&path, "<a href=\"http://127.0.0.1:1/v?token=cvt_whole\">x</a>").expect("write");
        })
    };
    let source = MailSource::directory(&dir);
    let http = reqwest::Client::new();
    let m = source
        .next_message(&http, "h@example.com", "reg_p", Duration::from_secs(3))
        .await
        .expect("found");
    assert_eq!(extract_claim_link(&m, None).expect("link").token, "cvt_whole");
    writer.await.expect("writer");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_directory_source_rereads_a_rewritten_file() {
    let dir = maildir("rewrite");
    let path = dir.join("reg_r.html");
    std::fs::write(&path, "<a href=\"http://127.0.0.1:1/v?token=cvt_first\">x</a>").expect("write");
    let source = MailSource::directory(&dir);
    let http = reqwest::Client::new();
    let first = source
        .next_message(&http, "h@example.com", "reg_r", Duration::from_secs(2))
        .await
        .expect("first");
    assert_eq!(extract_claim_link(&first, None).expect("link").token, "cvt_first");
    // A new claim attempt overwrites the registration's file.
    std::fs::write(&path, "<a href=\"http://127.0.0.1:1/v?token=cvt_second\">x</a>").expect("rewrite");
    let second = source
        .next_message(&http, "h@example.com", "reg_r", Duration::from_secs(2))
        .await
        .expect("second");
    assert_eq!(extract_claim_link(&second, None).expect("link").token, "cvt_second");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_url_template_without_a_registration_id_is_an_error_not_a_poll_of_an_empty_path() {
    let source = MailSource::url_template("http://127.0.0.1:9/mail/{registration_id}.html");
    let http = reqwest::Client::new();
    let err = source
        .next_message(&http, "h@example.com", "", Duration::from_millis(100))
        .await
        .expect_err("no id");
    assert!(err.to_string().contains("registration id"), "{err}");
}

#[tokio::test]
async fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind(any()).expect("bind");
    let addr = taken.local_addr().expect("addr");
    let error = Mailbox::start(addr).await.err().expect("a port in use is refused");
    assert!(error.to_string().contains(&addr.to_string()));
}
