//! HTTP and TCP probes against tiny HTTP servers on 127.0.0.1 (ephemeral ports, loopback only):
//! answers 200, 500, redirects (same host, another port, another host, a loop), a slow answer
//! past the timeout, and a closed port. Each test stops its servers and ends by checking that
//! their ports are closed again.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, ContainerPort, HTTPGetAction, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use podlab::pod::probe::{self, Action, Kind, Outcome};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const TIMEOUT: Duration = Duration::from_secs(2);

/// A one-file HTTP server: answers by path, keeps every request head it got.
struct Server {
    port: u16,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<Vec<JoinHandle<()>>>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// `other` is the port `/port` redirects to.
    fn start(other: Option<u16>) -> Server {
        let listener = TcpListener::bind((LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let accept = {
            let (stop, requests) = (stop.clone(), requests.clone());
            std::thread::spawn(move || {
                let mut handlers = Vec::new();
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let requests = requests.clone();
                    handlers.push(std::thread::spawn(move || serve(conn, other, &requests)));
                }
                handlers
            })
        };
        Server { port, stop, accept: Some(accept), requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    /// The request heads for `path`.
    fn requests_for(&self, path: &str) -> Vec<String> {
        let line = format!("GET {path} HTTP/1.1\r\n");
        self.requests().into_iter().filter(|r| r.starts_with(&line)).collect()
    }

    fn get(&self, path: &str) -> Outcome {
        probe::http_get(LOCALHOST, self.port, path, "HTTP", &[], TIMEOUT)
    }

    /// Stop accepting, wait for every connection handler, and check the port is closed.
    fn stop(mut self) {
        self.shutdown();
        let after = probe::tcp(LOCALHOST, self.port, TIMEOUT);
        assert!(
            matches!(&after, Outcome::Failure(m) if m.contains("connection refused")),
            "port still open: {after:?}"
        );
    }

    fn shutdown(&mut self) {
        let Some(accept) = self.accept.take() else { return };
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect((LOCALHOST, self.port));
        for handler in accept.join().expect("accept thread") {
            handler.join().expect("handler thread");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn serve(mut conn: TcpStream, other: Option<u16>, requests: &Mutex<Vec<String>>) {
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let path = head.split(' ').nth(1).unwrap_or("").to_string();
    requests.lock().unwrap().push(head);
    let answer = |status: &str, extra: &str, body: &str| {
        format!("HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
    };
    let reply = match path.split('?').next().unwrap_or("") {
        "/ok" | "/headers" => answer("200 OK", "", "ok\n"),
        "/fail" => answer("500 Internal Server Error", "", "broken\n"),
        "/redirect" => answer("302 Found", "Location: /ok\r\n", ""),
        "/redirect-to-fail" => answer("301 Moved Permanently", "Location: fail\r\n", ""),
        "/loop" => answer("302 Found", "Location: /loop\r\n", ""),
        "/elsewhere" => answer("302 Found", "Location: http://probe-target.invalid/ok\r\n", ""),
        "/port" => {
            answer("307 Temporary Redirect", &format!("Location: http://127.0.0.1:{}/ok\r\n", other.unwrap()), "")
        }
        "/continue" => format!("HTTP/1.1 100 Continue\r\n\r\n{}", answer("204 No Content", "", "")),
        "/slow" => {
            std::thread::sleep(Duration::from_millis(1500));
            answer("200 OK", "", "late\n")
        }
        "/garbage" => "SSH-2.0-OpenSSH_9.6\r\n\r\n".to_string(),
        "/hangup" => return,
        _ => answer("404 Not Found", "", ""),
    };
    let _ = conn.write_all(reply.as_bytes());
}

/// A port nobody listens on (bound, then closed again).
fn closed_port() -> u16 {
    let l = TcpListener::bind((LOCALHOST, 0)).unwrap();
    l.local_addr().unwrap().port()
}

fn failure(outcome: &Outcome) -> &str {
    match outcome {
        Outcome::Failure(m) => m,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn http_status_codes_decide() {
    let server = Server::start(None);
    assert_eq!(server.get("/ok"), Outcome::Success);
    assert_eq!(failure(&server.get("/fail")), "HTTP probe failed with statuscode: 500");
    assert_eq!(failure(&server.get("/nothing-here")), "HTTP probe failed with statuscode: 404");
    // An informational 100 answer is skipped; 204 is a success.
    assert_eq!(server.get("/continue"), Outcome::Success);
    assert!(failure(&server.get("/garbage")).contains("malformed HTTP response"));
    let hangup = server.get("/hangup");
    assert_eq!(failure(&hangup), format!("Get \"http://127.0.0.1:{}/hangup\": EOF", server.port));
    server.stop();
}

#[test]
fn http_request_looks_like_the_kubelets() {
    let server = Server::start(None);
    assert_eq!(server.get("headers"), Outcome::Success);
    let head = &server.requests_for("/headers")[0];
    assert!(head.contains(&format!("\r\nHost: 127.0.0.1:{}\r\n", server.port)), "{head}");
    assert!(head.contains("\r\nUser-Agent: kube-probe/1.33\r\n"), "{head}");
    assert!(head.contains("\r\nAccept: */*\r\n"), "{head}");
    assert!(head.contains("\r\nConnection: close\r\n"), "{head}");

    let headers = vec![("Host".to_string(), "app.example".to_string()), ("x-probe".to_string(), "yes".to_string())];
    assert_eq!(probe::http_get(LOCALHOST, server.port, "/headers?x=1", "http", &headers, TIMEOUT), Outcome::Success);
    let head = &server.requests_for("/headers?x=1")[0];
    assert!(head.contains("\r\nHost: app.example\r\n"), "{head}");
    assert!(head.contains("\r\nX-Probe: yes\r\n"), "{head}");
    server.stop();
}

#[test]
fn http_redirects() {
    let target = Server::start(None);
    let server = Server::start(Some(target.port));

    // Same host: followed.
    assert_eq!(server.get("/redirect"), Outcome::Success);
    assert_eq!(server.requests_for("/ok").len(), 1);
    assert_eq!(failure(&server.get("/redirect-to-fail")), "HTTP probe failed with statuscode: 500");

    // Same host, another port: followed too (the kubelet compares host names only).
    assert_eq!(server.get("/port"), Outcome::Success);
    let head = &target.requests_for("/ok")[0];
    assert!(head.contains(&format!("\r\nHost: 127.0.0.1:{}\r\n", target.port)), "{head}");

    // Another host: not followed (nothing connects to it); the 302 counts as a success.
    assert_eq!(server.get("/elsewhere"), Outcome::Success);
    assert_eq!(server.requests_for("/ok").len(), 1);

    // A loop: 10 redirects followed, the 11th fails.
    let looped = server.get("/loop");
    assert_eq!(failure(&looped), format!("Get \"http://127.0.0.1:{}/loop\": stopped after 10 redirects", server.port));
    assert_eq!(server.requests_for("/loop").len(), 11);
    server.stop();
    target.stop();
}

#[test]
fn http_slow_answer_times_out() {
    let server = Server::start(None);
    let started = Instant::now();
    let outcome = probe::http_get(LOCALHOST, server.port, "/slow", "HTTP", &[], Duration::from_millis(300));
    let took = started.elapsed();
    assert_eq!(
        failure(&outcome),
        format!(
            "Get \"http://127.0.0.1:{}/slow\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
            server.port
        )
    );
    assert!(took >= Duration::from_millis(300) && took < Duration::from_millis(1200), "took {took:?}");
    server.stop();
}

#[test]
fn closed_port_is_refused() {
    let port = closed_port();
    assert_eq!(
        failure(&probe::tcp(LOCALHOST, port, TIMEOUT)),
        format!("dial tcp 127.0.0.1:{port}: connect: connection refused")
    );
    assert_eq!(
        failure(&probe::http_get(LOCALHOST, port, "/healthz", "HTTP", &[], TIMEOUT)),
        format!("Get \"http://127.0.0.1:{port}/healthz\": dial tcp 127.0.0.1:{port}: connect: connection refused")
    );
    let https = probe::http_get(LOCALHOST, port, "/", "HTTPS", &[], TIMEOUT);
    assert!(matches!(&https, Outcome::Unknown(m) if m.contains("HTTPS probes are not supported")), "{https:?}");
}

#[test]
fn tcp_to_a_listener_succeeds() {
    let server = Server::start(None);
    assert_eq!(probe::tcp(LOCALHOST, server.port, TIMEOUT), Outcome::Success);
    server.stop();
}

#[test]
fn a_manifest_probe_runs_end_to_end() {
    let server = Server::start(None);
    let container = Container {
        name: "web".into(),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: server.port.into(),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let liveness = Probe {
        http_get: Some(HTTPGetAction {
            port: IntOrString::String("http".into()),
            path: Some("/fail".into()),
            ..Default::default()
        }),
        period_seconds: Some(1),
        failure_threshold: Some(2),
        ..Default::default()
    };
    let action = probe::action(&liveness).unwrap();
    assert!(matches!(&action, Action::HttpGet { scheme, .. } if scheme == "HTTP"));
    let mut prober = probe::Prober::new(Kind::Liveness, &liveness, Instant::now());
    let mut flipped = None;
    let mut events = Vec::new();
    let start = Instant::now();
    for i in 0..2u32 {
        let now = start + Duration::from_secs(i.into());
        assert!(prober.due(now));
        let outcome = probe::run(&action, LOCALHOST, &container, prober.timeout()).unwrap();
        events.extend(Kind::Liveness.event_message(&outcome));
        flipped = prober.record(now, &outcome);
    }
    assert_eq!(flipped, Some(false));
    assert_eq!(events, vec!["Liveness probe failed: HTTP probe failed with statuscode: 500"; 2]);
    assert_eq!(
        Kind::Liveness.kill_message("web", true).unwrap(),
        "Container web failed liveness probe, will be restarted"
    );

    // A port name the container does not have: the probe errors, counted neither way.
    let unknown_port = Action::Tcp { host: None, port: IntOrString::String("admin".into()) };
    assert!(matches!(probe::run(&unknown_port, LOCALHOST, &container, TIMEOUT), Some(Outcome::Unknown(_))));
    assert_eq!(probe::run(&Action::Exec(vec!["true".into()]), LOCALHOST, &container, TIMEOUT), None);
    server.stop();
}
