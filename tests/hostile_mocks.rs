//! The bundled mocks and the reference server as an attack surface, through the real binary:
//! whatever a peer sends, each stays within the memory it promises and prints nothing a
//! terminal would execute.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
