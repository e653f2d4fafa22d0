//! Hostile connections: a client that never finishes its request head, one that keeps a
//! connection idle, and a flood of idle connections under the common 1024 open-file limit. The
//! listeners time them out and cap them, so the admin API and other clients keep answering.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use bankgate_server::listen::{ConnectionLimits, serve_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::TestApp;

/// Serves a fresh app's API on port 0 with `limits`; the address, and a sender that stops it.
async fn serve(limits: ConnectionLimits) -> (TestApp, String, tokio::sync::oneshot::Sender<()>) {
    serve_app(TestApp::new().await, limits).await
}

async fn serve_app(
    app: TestApp,
    limits: ConnectionLimits,
) -> (TestApp, String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve_with(
        listener,
        app.router.clone(),
        limits,
        async move {
            stopped.await.ok();
        },
    ));
    (app, address, stop)
}

/// Reads until the server closes the connection (or `limit` passes); returns what it sent and
/// how long the close took.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0_u8; 4096];
    loop {
        let left = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Err(_) => panic!(
                "the server kept the connection open for {limit:?}; it sent: {:?}",
                String::from_utf8_lossy(&received)
            ),
        }
    }
    (
        String::from_utf8_lossy(&received).into_owned(),
        started.elapsed(),
    )
}

const HEAD: &str = "GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
/// A request with a small answer (a 404 envelope), to read one answer and go on.
const SMALL: &str = "GET /no-such-path HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

/// Reads one answer with a `content-length` body; returns its head.
async fn read_answer(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buffer = [0_u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
            .await
            .expect("no answer")
            .unwrap();
        assert!(
            n > 0,
            "closed before answering: {:?}",
            String::from_utf8_lossy(&received)
        );
        received.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = text[..end].to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .map_or(0, |value| value.trim().parse().unwrap());
            if received.len() >= end + 4 + length {
                return text[..end].to_owned();
            }
        }
    }
}

fn limits(header_read_timeout: Duration, idle_timeout: Duration) -> ConnectionLimits {
    ConnectionLimits {
        header_read_timeout,
        idle_timeout,
        max_connections: 16,
    }
}

#[tokio::test]
async fn an_incomplete_request_head_is_closed_after_the_header_read_timeout() {
    let timeout = Duration::from_millis(600);
    // The idle limit is far longer: what closes these is the head's own limit.
    let (_app, address, _stop) = serve(limits(timeout, Duration::from_secs(30))).await;

    let mut slow = TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Dri")
        .await
        .unwrap();
    let (sent, took) = read_until_closed(&mut slow, Duration::from_secs(10)).await;
    assert!(
        took >= timeout - Duration::from_millis(50),
        "closed after {took:?}"
    );
    assert!(!sent.contains("200 OK"), "{sent}");

    // A connection that never sends a byte is closed the same way.
    let mut silent = TcpStream::connect(&address).await.unwrap();
    let (_, took) = read_until_closed(&mut silent, Duration::from_secs(10)).await;
    assert!(
        took >= timeout - Duration::from_millis(50),
        "closed after {took:?}"
    );
    assert!(took < Duration::from_secs(5), "closed after {took:?}");

    // Dripping a byte every 100 ms does not restart the clock: the server closes mid-head
    // (the head would take 4.5 s), and the writes after that fail.
    let mut drip = TcpStream::connect(&address).await.unwrap();
    let started = Instant::now();
    let mut closed_after = None;
    for byte in b"GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n" {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if drip.write_all(&[*byte]).await.is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
    }
    let closed_after = closed_after.expect("the dripped head was never cut off");
    assert!(
        closed_after < Duration::from_secs(3),
        "cut off after {closed_after:?}"
    );

    // On a kept-alive connection, a next head begun and not finished is closed too.
    let mut kept = TcpStream::connect(&address).await.unwrap();
    kept.write_all(SMALL.as_bytes()).await.unwrap();
    assert!(read_answer(&mut kept).await.starts_with("HTTP/1.1 404"));
    kept.write_all(b"GET /x HTTP/1.1\r\n").await.unwrap();
    let (_, took) = read_until_closed(&mut kept, Duration::from_secs(10)).await;
    assert!(
        took >= timeout - Duration::from_millis(50),
        "closed after {took:?}"
    );
    assert!(took < Duration::from_secs(5), "closed after {took:?}");

    // A complete head in time is answered.
    let mut prompt = TcpStream::connect(&address).await.unwrap();
    prompt.write_all(HEAD.as_bytes()).await.unwrap();
    assert!(read_answer(&mut prompt).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let header = Duration::from_millis(300);
    let idle = Duration::from_millis(1500);
    let (_app, address, _stop) = serve(limits(header, idle)).await;
    let mut stream = TcpStream::connect(&address).await.unwrap();
    stream.write_all(SMALL.as_bytes()).await.unwrap();
    let answer = read_answer(&mut stream).await;
    // Kept alive: no `connection: close`.
    assert!(
        !answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );

    // Idle longer than a head may take, shorter than the idle limit: still served.
    tokio::time::sleep(Duration::from_millis(900)).await;
    stream.write_all(SMALL.as_bytes()).await.unwrap();
    assert!(read_answer(&mut stream).await.starts_with("HTTP/1.1 404"));

    // Then idle past the limit: closed.
    let (sent, took) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(sent.is_empty(), "{sent}");
    assert!(
        took >= idle - Duration::from_millis(50),
        "closed after {took:?}"
    );
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_refused_after_the_body_read_timeout() {
    let timeout = Duration::from_millis(500);
    let app = TestApp::with(|settings| settings.body_read_timeout = timeout).await;
    let (_app, address, _stop) = serve_app(
        app,
        limits(Duration::from_secs(30), Duration::from_secs(30)),
    )
    .await;
    let mut stream = TcpStream::connect(&address).await.unwrap();
    let path = crate::support::path(crate::support::TOOLBOX_CUSTOMER, "GenerateAuthorizeToken");
    stream
        .write_all(
            format!(
                "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nflinks-auth-key: {}\r\n\
                 Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
                crate::support::TOOLBOX_SECRET
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let started = Instant::now();
    let (sent, _) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    let took = started.elapsed();
    assert!(sent.starts_with("HTTP/1.1 400"), "{sent}");
    assert!(sent.contains("body_unreadable"), "{sent}");
    assert!(sent.contains("--body-read-timeout"), "{sent}");
    assert!(
        took >= timeout - Duration::from_millis(50),
        "refused after {took:?}"
    );

    // Dripping the body a byte at a time does not stretch the limit: it is for the whole body.
    let mut drip = TcpStream::connect(&address).await.unwrap();
    drip.write_all(
        format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nflinks-auth-key: {}\r\n\
             Content-Type: application/json\r\nContent-Length: 40\r\n\r\n",
            crate::support::TOOLBOX_SECRET
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if drip.write_all(b" ").await.is_err() {
            break;
        }
        let mut buffer = [0_u8; 4096];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(1), drip.read(&mut buffer)).await
        {
            answer.extend_from_slice(&buffer[..n]);
            break;
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 400"),
        "after {:?}: {answer}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn past_the_connection_cap_clients_wait_for_a_free_slot() {
    let (_app, address, _stop) = serve(ConnectionLimits {
        header_read_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(30),
        max_connections: 2,
    })
    .await;
    let first = TcpStream::connect(&address).await.unwrap();
    let _second = TcpStream::connect(&address).await.unwrap();
    // Let the server take both before the third arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut third = TcpStream::connect(&address).await.unwrap();
    third.write_all(HEAD.as_bytes()).await.unwrap();
    let mut buffer = [0_u8; 64];
    let waiting = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buffer)).await;
    assert!(waiting.is_err(), "answered past the cap: {waiting:?}");

    drop(first);
    let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buffer))
        .await
        .expect("a freed slot should serve the waiting client")
        .unwrap();
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
}

/// Slow (opens 1,100 connections, waits out a timeout): runs with `BANKGATE_SLOW_TESTS=1`,
/// which `.ci/run` sets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_past_the_open_file_limit_do_not_stop_the_server() {
    if std::env::var_os("BANKGATE_SLOW_TESTS").is_none() {
        eprintln!("skipped: set BANKGATE_SLOW_TESTS=1 to run");
        return;
    }
    // This process holds the 1,100 client ends: lift its own soft limit if it is low.
    let limit = raise_open_file_limit(4_096);
    assert!(
        limit >= 1_300,
        "this test holds 1,100 connections itself, and may open {limit} files: raise the hard \
         limit (`ulimit -Hn`) of the shell that runs it"
    );
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    // The real binary under the common limit of 1024 open files (the shell lowers its own
    // limit, then becomes bankgate).
    let mut child = Command::new("sh")
        .args([
            "-c",
            "ulimit -n 1024 && exec \"$@\"",
            "sh",
            env!("CARGO_BIN_EXE_bankgate"),
            "--database",
            &format!("sqlite://{}", dir.path().join("bg.db").display()),
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--header-read-timeout",
            "3s",
        ])
        .current_dir(dir.path())
        .env_remove("BANKGATE_MAX_CONNECTIONS")
        .env_remove("BANKGATE_HEADER_READ_TIMEOUT")
        .env_remove("BANKGATE_IDLE_TIMEOUT")
        .env_remove("BANKGATE_CONFIG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _kill = crate::cli::KillOnDrop(child);
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut api = None;
    let mut admin = None;
    while admin.is_none() {
        let line = received
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no listening line; log:\n{}", read(&log)));
        if let Some(address) = line.strip_prefix("bankgate listening on http://") {
            api = Some(address.trim().to_owned());
        }
        if let Some(address) = line.strip_prefix("bankgate admin API on http://") {
            admin = Some(address.trim().to_owned());
        }
    }
    let (api, admin) = (api.unwrap(), admin.unwrap());

    // 1,100 idle connections at once, more than the process may open: past its cap the
    // server leaves them in the kernel's queue, and each is closed 3 s after it is accepted.
    let established = Arc::new(AtomicUsize::new(0));
    let (release, released) = tokio::sync::watch::channel(false);
    let flood: Vec<_> = (0..1_100)
        .map(|_| {
            let (api, established, mut released) =
                (api.clone(), established.clone(), released.clone());
            tokio::spawn(async move {
                let connect = TcpStream::connect(&api);
                let stream = tokio::time::timeout(Duration::from_secs(30), connect).await;
                let _held = stream.expect("connect timed out").expect("connect failed");
                established.fetch_add(1, Ordering::SeqCst);
                let _ = released.wait_for(|go| *go).await;
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while established.load(Ordering::SeqCst) < 1_000 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let open = established.load(Ordering::SeqCst);
    assert!(open >= 1_000, "only {open} connections opened");

    let client = crate::support::http().no_proxy().build().unwrap();
    let health = tokio::time::timeout(
        Duration::from_secs(3),
        client.get(format!("http://{admin}/healthz")).send(),
    )
    .await
    .unwrap_or_else(|_| panic!("/healthz did not answer; log:\n{}", read(&log)))
    .unwrap();
    assert_eq!(health.status(), 200);

    // A normal client is served once the idle connections time out (3 s here).
    let started = Instant::now();
    let answer = tokio::time::timeout(
        Duration::from_secs(20),
        client.get(format!("http://{api}/openapi.json")).send(),
    )
    .await
    .unwrap_or_else(|_| panic!("the API did not answer; log:\n{}", read(&log)))
    .unwrap();
    assert_eq!(answer.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(10));
    // Every one of the 1,100 got its connection in the end.
    release.send_replace(true);
    for connection in flood {
        connection.await.unwrap();
    }
    assert_eq!(established.load(Ordering::SeqCst), 1_100);
    let log = read(&log);
    assert!(!log.contains("Too many open files"), "{log}");
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Raises this process's soft open-file limit to `wanted` (or the hard limit, if lower);
/// returns the limit now in force.
fn raise_open_file_limit(wanted: u64) -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let current = limit.current.unwrap_or(u64::MAX);
    if current >= wanted {
        return current;
    }
    let target = limit.maximum.map_or(wanted, |hard| hard.min(wanted));
    let raised = Rlimit {
        current: Some(target),
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => target,
        Err(error) => {
            eprintln!("could not raise the open-file limit from {current}: {error}");
            current
        }
    }
}
