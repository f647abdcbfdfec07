//! HTTPS on the real binary (`--tls-cert`, `--tls-key`), with curl as the client:
//! HTTP/2 is chosen by ALPN, a stream works over HTTP/1.1 and HTTP/2, and a client
//! that never finishes its handshake is closed at `--header-timeout`.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{SERVER, isolated, listening_on};

/// A self-signed certificate for 127.0.0.1 (scripts/tls_cert.sh).
fn certificate() -> PathBuf {
    let out = Command::new("scripts/tls_cert.sh")
        .output()
        .expect("scripts/tls_cert.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).expect("UTF-8").trim())
}

struct Server {
    child: Child,
    base: String,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-sk", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn start(extra: &[&str]) -> Server {
    let tls = certificate();
    let mut child = isolated(SERVER)
        .args(["--bind", "127.0.0.1:0"])
        .arg("--tls-cert")
        .arg(tls.join("cert.pem"))
        .arg("--tls-key")
        .arg(tls.join("key.pem"))
        .args(extra)
        .env("SSE_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sse-server");
    // Where it listens, from its log; the rest of the log is read and dropped.
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| listening_on(&line))
        .expect("sse-server exited before it listened");
    std::thread::spawn(move || lines.for_each(drop));
    let server = Server {
        child,
        base: format!("https://{addr}"),
        port: addr.port(),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while curl(&[&format!("{}/healthz", server.base)]) != "ok" {
        assert!(
            Instant::now() < deadline,
            "the server did not answer over https"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

/// A stream read by curl over `http`, and a message posted to it: the stream gets it.
fn a_message_arrives_over(server: &Server, http: &str) {
    let user = format!("tls-{}", http.trim_start_matches("--"));
    let mut stream = Command::new("curl")
        .args([
            "-skN",
            http,
            &format!("{}/v2/sse?username={user}", server.base),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl stream");
    let mut lines = BufReader::new(stream.stdout.take().expect("stdout")).lines();
    assert_eq!(lines.next().expect("a line").expect("read"), "retry: 2000");
    let posted = curl(&[
        "-X",
        "POST",
        "--data",
        "over tls",
        &format!("{}/v2/message?username={user}", server.base),
    ]);
    assert!(posted.contains("\"delivered\":1"), "{posted}");
    let got = lines
        .map_while(Result::ok)
        .find(|l| l.starts_with("data: "))
        .expect("an event");
    assert_eq!(got, "data: over tls");
    let _ = stream.kill();
    let _ = stream.wait();
}

#[test]
fn https_speaks_http2_by_alpn_and_streams_over_both_versions() {
    let server = start(&[]);
    let version = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_version}",
        &format!("{}/healthz", server.base),
    ]);
    assert_eq!(version, "2", "ALPN chose HTTP/2");
    let version = curl(&[
        "--http1.1",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version}",
        &format!("{}/healthz", server.base),
    ]);
    assert_eq!(version, "1.1");
    a_message_arrives_over(&server, "--http1.1");
    a_message_arrives_over(&server, "--http2");
}

#[test]
fn a_client_that_never_finishes_its_handshake_is_closed_at_the_header_timeout() {
    // 1 s, far from the 10 s default: with the flag ignored this fails.
    let server = start(&["--header-timeout", "1s"]);
    let mut socket = std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let started = Instant::now();
    // No ClientHello: the server waits for one, then closes.
    let mut buf = [0u8; 64];
    let read = socket.read(&mut buf);
    let took = started.elapsed();
    assert!(
        matches!(read, Ok(0))
            || read
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "closed, not {read:?} after {took:?}"
    );
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
}
