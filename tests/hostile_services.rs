//! The bundled mocks and the reference server as an attack surface, through the real binary:
//! whatever a peer sends, each stays within the memory it promises and prints nothing a
//! terminal would execute.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod common;

/// A running `authmd-conformance` subcommand, killed on drop.
struct Served {
    child: Child,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_authmd-conformance"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Self { child, stdout }
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read stdout");
        line
    }

    /// Peak resident memory so far, in MiB.
    fn peak_mib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .map_or(0, |kib| kib / 1024)
    }
}

fn smtp_reply(stream: &mut BufReader<TcpStream>) -> String {
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).unwrap_or(0) == 0 || line.as_bytes().get(3) != Some(&b'-') {
            return line;
        }
    }
}

fn smtp(stream: &mut BufReader<TcpStream>, command: &str) -> String {
    stream.get_mut().write_all(format!("{command}\r\n").as_bytes()).expect("write");
    smtp_reply(stream)
}

#[test]
fn the_mailbox_keeps_bounded_memory_under_endless_lines_and_prints_inert_subjects() {
    let mut mailbox = Served::start(&["mailbox", "serve", "--listen", "127.0.0.1:0"]);
    let banner = mailbox.line();
    let addr = banner.trim().rsplit(' ').next().expect("address").to_string();
    let stream = TcpStream::connect(&addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut smtp_stream = BufReader::new(stream);
    assert!(smtp_reply(&mut smtp_stream).starts_with("220"));
    // 256 MiB of command line without an end, then 256 MiB of DATA line without an end.
    let block = vec![b'A'; 1024 * 1024];
    for _ in 0..256 {
        smtp_stream.get_mut().write_all(&block).expect("write");
    }
    assert!(smtp(&mut smtp_stream, "").starts_with("500"));
    assert!(smtp(&mut smtp_stream, "EHLO test").starts_with("250"));
    assert!(smtp(&mut smtp_stream, "MAIL FROM:<a@example.com>").starts_with("250"));
    assert!(smtp(&mut smtp_stream, "RCPT TO:<b@example.com>").starts_with("250"));
    assert!(smtp(&mut smtp_stream, "DATA").starts_with("354"));
    for _ in 0..256 {
        smtp_stream.get_mut().write_all(&block).expect("write");
    }
    assert!(smtp(&mut smtp_stream, "\r\n.").starts_with("552"));
    let peak = mailbox.peak_mib();
    assert!(peak < 64, "the mailbox peaked at {peak} MiB");

    // A subject made to drive the terminal reaches it inert.
    assert!(smtp(&mut smtp_stream, "MAIL FROM:<a@example.com>").starts_with("250"));
    assert!(smtp(&mut smtp_stream, "RCPT TO:<b@example.com>").starts_with("250"));
    assert!(smtp(&mut smtp_stream, "DATA").starts_with("354"));
    assert!(smtp(&mut smtp_stream, "Subject: \x1b]0;owned\x07\x1b[2Jhello\r\n\r\nbody\r\n.").starts_with("250"));
    let printed = mailbox.line();
    assert!(printed.contains("hello"), "{printed:?}");
    assert!(!printed.contains('\x1b') && !printed.contains('\x07'), "{printed:?}");
}

/// A reference server through `reference serve`, and its base URL.
fn reference(dir: &std::path::Path, sets: &[&str]) -> (Served, String) {
    let db = dir.join("ref.sqlite");
    let mut args = vec![
        "reference",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database",
        db.to_str().expect("utf-8"),
    ];
    for set in sets {
        args.extend(["--set", set]);
    }
    let mut served = Served::start(&args);
    let line = served.line();
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_string();
    (served, base)
}

/// One raw HTTP/1.1 request; the status code and the whole answer.
fn http(base: &str, request: &str) -> (u16, String) {
    let addr = base.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    stream.write_all(request.as_bytes()).expect("write");
    let mut answer = String::new();
    let _ = std::io::Read::read_to_string(&mut stream, &mut answer);
    let status = answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, answer)
}

#[test]
fn v06_bodies_that_trickle_are_cut_off_and_hold_no_handler() {
    let dir = common::scratch("services-trickle");
    let (_server, base) = reference(
        &dir,
        &["profile=v0.6", "connections.body_timeout_secs=1", "connections.max_in_flight=4"],
    );
    let addr = base.trim_start_matches("http://").trim_end_matches('/').to_string();
    // More tricklers than handlers, each promising a body it sends a byte at a time.
    let tricklers: Vec<_> = (0..12)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(&addr).expect("connect");
                s.set_read_timeout(Some(Duration::from_secs(8))).expect("timeout");
                let _ = s.write_all(
                    b"POST /oauth2/token HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 1000\r\n\r\n",
                );
                let started = std::time::Instant::now();
                let mut answer = Vec::new();
                for _ in 0..20 {
                    if s.write_all(b"a").is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(300));
                    s.set_nonblocking(true).expect("nonblocking");
                    let mut buf = [0u8; 512];
                    if let Ok(n) = std::io::Read::read(&mut s, &mut buf)
                        && n > 0
                    {
                        answer.extend_from_slice(&buf[..n]);
                        break;
                    }
                    s.set_nonblocking(false).expect("blocking");
                }
                (String::from_utf8_lossy(&answer).into_owned(), started.elapsed())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(400));
    // Meanwhile an ordinary request is served, not turned away for want of a handler.
    let (status, answer) = http(
        &base,
        "POST /oauth2/token HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 10\r\n\r\ngrant_type",
    );
    assert_eq!(status, 400, "{answer}");
    for t in tricklers {
        let (answer, took) = t.join().expect("trickler");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
        assert!(took < Duration::from_secs(4), "held for {took:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn login_return_to_never_leaves_the_service() {
    let dir = common::scratch("services-redirect");
    let (_server, base) = reference(&dir, &["profile=v0.6"]);
    for evil in [
        "%2F%09%2Fevil.example%2Fx",
        "%2F%5Cevil.example",
        "%09%2F%2Fevil.example",
        "https%3A%2F%2Fevil.example%2F",
    ] {
        let body = format!("email=a%40example.com&return_to={evil}");
        let (status, answer) = http(
            &base,
            &format!(
                "POST /login HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            ),
        );
        assert_eq!(status, 303, "{answer}");
        let location = answer
            .lines()
            .find_map(|l| l.strip_prefix("location: ").or_else(|| l.strip_prefix("Location: ")))
            .expect("a Location")
            .trim();
        // Resolved as a browser does, the Location stays on the service.
        let resolved = url::Url::parse(&base).and_then(|b| b.join(location)).expect("resolves");
        assert_eq!(
            resolved.origin(),
            url::Url::parse(&base).expect("base").origin(),
            "{evil}: {location:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_deleted_database_is_unhealthy_and_acknowledges_no_write() {
    let dir = common::scratch("services-deleted");
    let (_server, base) = reference(&dir, &[]);
    let get = |path: &str| http(&base, &format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"));
    let register = || {
        let body = r#"{"type":"anonymous","requested_credential_type":"api_key"}"#;
        http(
            &base,
            &format!(
                "POST /agent/auth HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            ),
        )
    };
    assert_eq!(get("/healthz").0, 200);
    assert_eq!(register().0, 200);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", dir.join("ref.sqlite").display()));
    }
    let (status, answer) = get("/healthz");
    assert_eq!(status, 503, "{answer}");
    let (status, answer) = register();
    assert!(status >= 500, "a write to a deleted database was acknowledged: {answer}");
    let _ = std::fs::remove_dir_all(&dir);
}
