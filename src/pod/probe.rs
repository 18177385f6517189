//! Probes: the kubelet's periodic checks of a running container.
//!
//! A probe is a command run inside the container (success = exit code 0), an HTTP GET (status
//! 200-399) or a TCP connect to the pod's IP, repeated every `periodSeconds` after
//! `initialDelaySeconds`. One result does not decide: `failureThreshold` failures in a row (or
//! `successThreshold` successes) flip it. A failed **liveness** probe gets the container killed
//! and restarted; **readiness** takes the pod out of its Services' endpoints while false; a
//! **startup** probe holds the other two back until it succeeds, and kills the container if not.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::error::{Error, Result};

/// The `User-Agent` of the kubelet's HTTP probes (`kube-probe/<major>.<minor>`).
pub const USER_AGENT: &str = "kube-probe/1.33";
/// Same-host redirects an HTTP probe follows before it fails.
pub const MAX_REDIRECTS: usize = 10;
/// How much of an answer's body or an exec probe's output is kept (the kubelet's 10 KiB).
pub const MAX_OUTPUT: usize = 10 * 1024;
/// The longest response head (status line and headers) accepted.
const MAX_HEAD: usize = 1024 * 1024;

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The check ran and failed; the text is what the kubelet puts in its event.
    Failure(String),
    /// The check could not be run (bad port, unsupported kind): counted neither way.
    Unknown(String),
}

impl Outcome {
    /// The failure or error text (empty for success).
    pub fn message(&self) -> &str {
        match self {
            Outcome::Success => "",
            Outcome::Failure(m) | Outcome::Unknown(m) => m,
        }
    }
}

/// Which of a container's three probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Liveness,
    Readiness,
    Startup,
}

impl Kind {
    /// `"Liveness"`, `"Readiness"` or `"Startup"`, as in the kubelet's events.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
            Kind::Startup => "Startup",
        }
    }

    /// The text of the kubelet's `Unhealthy` event for an outcome (none for a success):
    /// `Liveness probe failed: HTTP probe failed with statuscode: 500`.
    pub fn event_message(self, outcome: &Outcome) -> Option<String> {
        match outcome {
            Outcome::Success => None,
            Outcome::Failure(m) => Some(format!("{} probe failed: {m}", self.name())),
            Outcome::Unknown(m) => Some(format!("{} probe errored: {m}", self.name())),
        }
    }

    /// The text of the kubelet's `Killing` event when this probe's result turned false, for
    /// liveness and startup probes: `Container web failed liveness probe, will be restarted`.
    /// `will_restart` is false under `restartPolicy: Never`.
    pub fn kill_message(self, container: &str, will_restart: bool) -> Option<String> {
        let what = match self {
            Kind::Liveness => "liveness",
            Kind::Startup => "startup",
            Kind::Readiness => return None,
        };
        let then = if will_restart { ", will be restarted" } else { "" };
        Some(format!("Container {container} failed {what} probe{then}"))
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

// ---------------------------------------------------------------------------------------------
// Timing and thresholds.
// ---------------------------------------------------------------------------------------------

/// The timing and threshold state of one probe of one container start (like a kubelet worker).
///
/// Ask [`Prober::due`], run the check with [`Prober::timeout`], then [`Prober::record`] its
/// outcome with the instant the check started. Make a new `Prober` when the container restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prober {
    kind: Kind,
    initial_delay: Duration,
    period: Duration,
    timeout: Duration,
    success_threshold: u32,
    failure_threshold: u32,
    started_at: Instant,
    last_probe: Option<Instant>,
    /// The published result; `None` only for a startup probe that has not decided yet.
    state: Option<bool>,
    /// The last outcome counted, and how many times in a row it came.
    last: Option<bool>,
    run: u32,
    /// No more probing of this container start (liveness failed, or startup decided).
    on_hold: bool,
}

impl Prober {
    /// The state of `probe` for a container started at `started_at`. Fields that are unset or
    /// not positive get the API server's defaults: `periodSeconds` 10, `timeoutSeconds` 1,
    /// `successThreshold` 1 (always 1 for liveness and startup), `failureThreshold` 3,
    /// `initialDelaySeconds` 0. The probe's `terminationGracePeriodSeconds` is not used here.
    pub fn new(kind: Kind, probe: &Probe, started_at: Instant) -> Prober {
        let positive = |v: Option<i32>, default: u32| v.filter(|v| *v > 0).map_or(default, |v| v as u32);
        let success_threshold = match kind {
            Kind::Readiness => positive(probe.success_threshold, 1),
            Kind::Liveness | Kind::Startup => 1,
        };
        Prober {
            kind,
            initial_delay: Duration::from_secs(positive(probe.initial_delay_seconds, 0).into()),
            period: Duration::from_secs(positive(probe.period_seconds, 10).into()),
            timeout: Duration::from_secs(positive(probe.timeout_seconds, 1).into()),
            success_threshold,
            failure_threshold: positive(probe.failure_threshold, 3),
            started_at,
            last_probe: None,
            state: match kind {
                Kind::Liveness => Some(true),
                Kind::Readiness => Some(false),
                Kind::Startup => None,
            },
            last: None,
            run: 0,
            on_hold: false,
        }
    }

    /// Which probe this is.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Whether a check should run at `now`: not before the initial delay, then once a period,
    /// and never again once a liveness probe failed or a startup probe decided.
    pub fn due(&self, now: Instant) -> bool {
        self.next_due().is_some_and(|at| now >= at)
    }

    /// When the next check is due (`None` when this probe is done with this container start).
    pub fn next_due(&self) -> Option<Instant> {
        if self.on_hold {
            return None;
        }
        let first = self.started_at + self.initial_delay;
        Some(match self.last_probe {
            Some(last) => (last + self.period).max(first),
            None => first,
        })
    }

    /// How long one check may take (`timeoutSeconds`).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// How often the check runs (`periodSeconds`).
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Count the outcome of the check started at `now`. Returns the new result when it changes:
    /// `Some(true)` once `successThreshold` successes came in a row (healthy, ready, started),
    /// `Some(false)` after `failureThreshold` failures (for liveness and startup: kill the
    /// container). [`Outcome::Unknown`] counts neither way, as the kubelet drops errored probes.
    pub fn record(&mut self, now: Instant, outcome: &Outcome) -> Option<bool> {
        self.last_probe = Some(now);
        let ok = match outcome {
            Outcome::Success => true,
            Outcome::Failure(_) => false,
            Outcome::Unknown(_) => return None,
        };
        if self.on_hold {
            return None;
        }
        if self.last == Some(ok) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(ok);
            self.run = 1;
        }
        let threshold = if ok { self.success_threshold } else { self.failure_threshold };
        if self.run < threshold {
            return None;
        }
        let changed = self.state != Some(ok);
        self.state = Some(ok);
        if (self.kind == Kind::Liveness && !ok) || self.kind == Kind::Startup {
            self.on_hold = true;
            self.run = 0;
        }
        changed.then_some(ok)
    }

    /// The current result: healthy (liveness, true at first), ready (readiness, false at
    /// first) or started (startup, false until it succeeds).
    pub fn result(&self) -> bool {
        self.state.unwrap_or(false)
    }
}

/// The probes of one container start, with the startup probe gating the other two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerProbes {
    pub startup: Option<Prober>,
    pub liveness: Option<Prober>,
    pub readiness: Option<Prober>,
}

impl ContainerProbes {
    /// The probes `container` declares, for a start at `started_at`.
    pub fn new(container: &Container, started_at: Instant) -> ContainerProbes {
        let make = |kind, p: &Option<Probe>| p.as_ref().map(|p| Prober::new(kind, p, started_at));
        ContainerProbes {
            startup: make(Kind::Startup, &container.startup_probe),
            liveness: make(Kind::Liveness, &container.liveness_probe),
            readiness: make(Kind::Readiness, &container.readiness_probe),
        }
    }

    /// The prober of one kind, if the container has that probe.
    pub fn get_mut(&mut self, kind: Kind) -> Option<&mut Prober> {
        match kind {
            Kind::Startup => self.startup.as_mut(),
            Kind::Liveness => self.liveness.as_mut(),
            Kind::Readiness => self.readiness.as_mut(),
        }
    }

    /// `containerStatuses[].started`: the startup probe succeeded, or there is none.
    pub fn started(&self) -> bool {
        self.startup.as_ref().is_none_or(Prober::result)
    }

    /// `containerStatuses[].ready`: started, and the readiness probe succeeded or there is none.
    pub fn ready(&self) -> bool {
        self.started() && self.readiness.as_ref().is_none_or(Prober::result)
    }

    /// The probes to run at `now`: only the startup probe until it succeeded, then liveness and
    /// readiness (their initial delay counts from the container's start, as in the kubelet).
    pub fn due(&self, now: Instant) -> Vec<Kind> {
        self.runnable().filter(|p| p.due(now)).map(Prober::kind).collect()
    }

    /// The earliest instant a probe is due, to sleep until.
    pub fn next_due(&self) -> Option<Instant> {
        self.runnable().filter_map(Prober::next_due).min()
    }

    fn runnable(&self) -> impl Iterator<Item = &Prober> {
        let started = self.started();
        let gate = if started {
            [None, self.liveness.as_ref(), self.readiness.as_ref()]
        } else {
            [self.startup.as_ref(), None, None]
        };
        gate.into_iter().flatten()
    }
}

// ---------------------------------------------------------------------------------------------
// Actions: what a probe does.
// ---------------------------------------------------------------------------------------------

/// The check a probe runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Run this command in the container; exit code 0 is a success.
    Exec(Vec<String>),
    /// GET `scheme://host:port/path`; `host` unset means the pod's IP. `scheme` is `HTTP` or `HTTPS`.
    HttpGet { host: Option<String>, port: IntOrString, path: String, scheme: String, headers: Vec<(String, String)> },
    /// Open a TCP connection to `host:port` (the pod's IP when `host` is unset).
    Tcp { host: Option<String>, port: IntOrString },
}

/// The action of `probe`. gRPC probes are refused (not supported yet), as is a probe with no
/// handler or an exec probe with no command.
pub fn action(probe: &Probe) -> Result<Action> {
    if let Some(exec) = &probe.exec {
        let command = exec.command.clone().unwrap_or_default();
        if command.is_empty() {
            return Err(Error::invalid("exec probe without a command: set exec.command, such as [cat, /tmp/healthy]"));
        }
        return Ok(Action::Exec(command));
    }
    if let Some(http) = &probe.http_get {
        let scheme = http.scheme.as_deref().filter(|s| !s.is_empty()).unwrap_or("HTTP").to_ascii_uppercase();
        let headers = http.http_headers.iter().flatten().map(|h| (h.name.clone(), h.value.clone())).collect::<Vec<_>>();
        return Ok(Action::HttpGet {
            host: http.host.clone().filter(|h| !h.is_empty()),
            port: http.port.clone(),
            path: http.path.clone().unwrap_or_default(),
            scheme,
            headers,
        });
    }
    if let Some(tcp) = &probe.tcp_socket {
        return Ok(Action::Tcp { host: tcp.host.clone().filter(|h| !h.is_empty()), port: tcp.port.clone() });
    }
    if probe.grpc.is_some() {
        return Err(Error::invalid(
            "gRPC probes are not supported by podlab yet: use an exec probe (such as grpc_health_probe) \
             or a tcpSocket probe on the same port",
        ));
    }
    Err(Error::invalid("probe without a handler: set one of exec, httpGet or tcpSocket"))
}

/// The port number `port` names: a number, or the name of one of `container.ports` (a name
/// not found is tried as a number written as a string, like the kubelet does).
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16> {
    let number = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => {
            let named = container.ports.iter().flatten().find(|p| p.name.as_deref() == Some(name.as_str()));
            match (named, name.parse::<i32>()) {
                (Some(p), _) => p.container_port,
                (None, Ok(n)) => n,
                (None, Err(_)) => {
                    let names: Vec<&str> = container.ports.iter().flatten().filter_map(|p| p.name.as_deref()).collect();
                    return Err(Error::invalid(format!(
                        "container {:?}: probe port {name:?} is not a number nor the name of one of its ports \
                         (named ports: {})",
                        container.name,
                        if names.is_empty() { "none".to_string() } else { names.join(", ") }
                    )));
                }
            }
        }
    };
    u16::try_from(number).ok().filter(|n| *n > 0).ok_or_else(|| {
        Error::invalid(format!("container {:?}: invalid probe port number: {number} (1-65535)", container.name))
    })
}

/// Run a network action (HTTP or TCP) against `pod_ip` (or the action's own host); `None` for
/// an exec action, which the supervisor runs inside the container (see [`exec_outcome`]).
/// A port or host that cannot be resolved gives [`Outcome::Unknown`].
pub fn run(action: &Action, pod_ip: IpAddr, container: &Container, timeout: Duration) -> Option<Outcome> {
    let target = |host: &Option<String>, port: &IntOrString| -> std::result::Result<(IpAddr, u16), String> {
        let port = resolve_port(port, container).map_err(|e| e.to_string())?;
        let ip = match host.as_deref() {
            None => pod_ip,
            Some(h) => resolve_host(h)?,
        };
        Ok((ip, port))
    };
    Some(match action {
        Action::Exec(_) => return None,
        Action::HttpGet { host, port, path, scheme, headers } => match target(host, port) {
            Ok((ip, port)) => http_get(ip, port, path, scheme, headers, timeout),
            Err(e) => Outcome::Unknown(e),
        },
        Action::Tcp { host, port } => match target(host, port) {
            Ok((ip, port)) => tcp(ip, port, timeout),
            Err(e) => Outcome::Unknown(e),
        },
    })
}

/// An address for a probe's `host` field: an IP, or a name looked up from the node.
fn resolve_host(host: &str) -> std::result::Result<IpAddr, String> {
    if let Ok(ip) = host.parse() {
        return Ok(ip);
    }
    match (host, 0).to_socket_addrs() {
        Ok(mut addrs) => addrs.next().map(|a| a.ip()).ok_or_else(|| format!("lookup {host}: no address")),
        Err(e) => Err(format!("lookup {host}: {e}")),
    }
}

/// The outcome of an exec probe, from how its command ended: exit code 0 is a success, another
/// code a failure whose message is the command's output (at most 10 KiB, as the kubelet keeps),
/// a timeout a failure (`command "cat /tmp/healthy" timed out`). `exit_code` is `None` when the
/// command could not be started at all: unknown, counted neither way.
pub fn exec_outcome(command: &[String], exit_code: Option<i32>, output: &[u8], timed_out: bool) -> Outcome {
    if timed_out {
        return Outcome::Failure(format!("command {:?} timed out", command.join(" ")));
    }
    match exit_code {
        Some(0) => Outcome::Success,
        Some(_) => Outcome::Failure(String::from_utf8_lossy(&output[..output.len().min(MAX_OUTPUT)]).into_owned()),
        None => Outcome::Unknown(format!("command {:?} could not be started", command.join(" "))),
    }
}

// ---------------------------------------------------------------------------------------------
// TCP.
// ---------------------------------------------------------------------------------------------

/// Open and close a TCP connection to `host:port` within `timeout` (zero means 1 s, the
/// default). A failure says why, as Go does: `dial tcp 10.244.0.5:80: connect: connection refused`.
pub fn tcp(host: IpAddr, port: u16, timeout: Duration) -> Outcome {
    let addr = SocketAddr::new(host, port);
    match TcpStream::connect_timeout(&addr, nonzero(timeout)) {
        Ok(stream) => {
            drop(stream);
            Outcome::Success
        }
        Err(e) => Outcome::Failure(dial_error(&addr, &e)),
    }
}

fn nonzero(timeout: Duration) -> Duration {
    if timeout.is_zero() { Duration::from_secs(1) } else { timeout }
}

/// An errno's text the way Go prints it: "connection refused".
fn errno_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => {
            let desc = nix::errno::Errno::from_raw(code).desc();
            let mut chars = desc.chars();
            match chars.next() {
                Some(first) => first.to_lowercase().chain(chars).collect(),
                None => desc.to_string(),
            }
        }
        None => e.to_string(),
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock)
}

fn dial_error(addr: &SocketAddr, e: &io::Error) -> String {
    if is_timeout(e) {
        format!("dial tcp {addr}: i/o timeout")
    } else {
        format!("dial tcp {addr}: connect: {}", errno_text(e))
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP.
// ---------------------------------------------------------------------------------------------

/// GET `scheme://host:port/path` as the kubelet's HTTP probe does, within `timeout` in all
/// (redirects included; zero means 1 s).
///
/// HTTP/1.1 with `Host: host:port`, `User-Agent: kube-probe/1.33` and `Accept: */*` unless
/// `headers` set them (a `Host` header replaces the host sent; an empty `Accept` removes it).
/// A status of 200-399 is a success. Redirects to the same host are followed, 10 at most (the
/// 11th fails); a redirect elsewhere is not followed and counts as a success (the kubelet warns
/// `Probe terminated redirects`; here it is a `tracing` warning). `HTTPS` is not supported yet:
/// the outcome is [`Outcome::Unknown`], which counts neither way.
pub fn http_get(
    host: IpAddr,
    port: u16,
    path: &str,
    scheme: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Outcome {
    let deadline = Instant::now() + nonzero(timeout);
    let scheme = if scheme.is_empty() { "http".to_string() } else { scheme.to_ascii_lowercase() };
    let mut target = Target { scheme, host: host.to_string(), port, path: request_path(path) };
    if let Some(outcome) = unsupported_scheme(&target) {
        return outcome;
    }
    let custom_host = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("host")).map(|(_, v)| v.clone());
    let mut host_header = custom_host.clone().unwrap_or_else(|| target.authority());
    let request_headers = match probe_headers(headers) {
        Ok(h) => h,
        Err(e) => return Outcome::Failure(format!("Get {:?}: {e}", target.url())),
    };
    let mut followed = 0;
    loop {
        let response = match exchange(host, &target, &host_header, &request_headers, deadline) {
            Ok(r) => r,
            Err(e) => return Outcome::Failure(format!("Get {:?}: {e}", target.url())),
        };
        let location = response.location.as_deref().filter(|_| is_redirect(response.status));
        let Some(location) = location else {
            return status_outcome(&target, response.status);
        };
        let Some((next, relative)) = resolve_location(&target, location) else {
            return Outcome::Failure(format!("Get {:?}: failed to parse Location header {location:?}", target.url()));
        };
        if !same_host(&next.host, &target.host) {
            // The kubelet does not follow a redirect to another host: the 3xx answer stands.
            return status_outcome(&target, response.status);
        }
        if followed == MAX_REDIRECTS {
            return Outcome::Failure(format!("Get {:?}: stopped after {MAX_REDIRECTS} redirects", next.url()));
        }
        followed += 1;
        // Go keeps a custom Host header across a redirect only when the Location was relative.
        host_header = match (&custom_host, relative) {
            (Some(h), true) => h.clone(),
            _ => next.authority(),
        };
        target = next;
        if let Some(outcome) = unsupported_scheme(&target) {
            return outcome;
        }
    }
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    /// `http` or `https`.
    scheme: String,
    /// The host as written in URLs, without brackets around an IPv6 address.
    host: String,
    port: u16,
    /// The request target: an absolute path with its query.
    path: String,
}

impl Target {
    /// `host:port`, with brackets around an IPv6 address.
    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    fn url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority(), self.path)
    }
}

fn unsupported_scheme(t: &Target) -> Option<Outcome> {
    match t.scheme.as_str() {
        "http" => None,
        "https" => Some(Outcome::Unknown(format!(
            "Get {:?}: HTTPS probes are not supported by podlab yet (the kubelet would use TLS without checking \
             the certificate); use scheme HTTP or a tcpSocket probe",
            t.url()
        ))),
        other => Some(Outcome::Unknown(format!("Get {:?}: unsupported protocol scheme {other:?}", t.url()))),
    }
}

fn status_outcome(target: &Target, status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Success,
        300..=399 => {
            tracing::warn!(url = %target.url(), status, "probe warning: Probe terminated redirects");
            Outcome::Success
        }
        _ => Outcome::Failure(format!("HTTP probe failed with statuscode: {status}")),
    }
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

fn same_host(a: &str, b: &str) -> bool {
    match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a.eq_ignore_ascii_case(b),
    }
}

/// A probe's `path` as a request target: a leading `/`, no fragment, no spaces or controls.
fn request_path(path: &str) -> String {
    let path = path.split('#').next().unwrap_or("");
    let mut out = String::with_capacity(path.len() + 1);
    if !path.starts_with('/') {
        out.push('/');
    }
    for b in path.bytes() {
        if b <= b' ' || b >= 0x7f || b"\"<>\\^`{|}".contains(&b) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

/// Resolve a `Location` against the request it answers; `true` when it was relative.
fn resolve_location(base: &Target, location: &str) -> Option<(Target, bool)> {
    let location = location.trim().split('#').next().unwrap_or("");
    let lower = location.to_ascii_lowercase();
    let (scheme, rest) =
        if let Some(i) = lower.find("://").filter(|i| lower[..*i].bytes().all(|b| b.is_ascii_alphabetic())) {
            (lower[..i].to_string(), &location[i + 3..])
        } else if let Some(rest) = location.strip_prefix("//") {
            (base.scheme.clone(), rest)
        } else {
            let path = if location.starts_with('/') {
                location.to_string()
            } else if location.starts_with('?') {
                format!("{}{location}", base.path.split('?').next().unwrap_or("/"))
            } else {
                let dir = base.path.split('?').next().unwrap_or("/");
                format!("{}{location}", &dir[..dir.rfind('/').map_or(0, |i| i + 1)])
            };
            return Some((Target { path: request_path(&remove_dot_segments(&path)), ..base.clone() }, true));
        };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let path = &rest[end..];
    let (host, port) = split_host_port(authority)?;
    let port = match port {
        Some(p) => p,
        None if scheme == "https" => 443,
        None => 80,
    };
    let path = if path.starts_with('?') { format!("/{path}") } else { path.to_string() };
    Some((Target { scheme, host, port, path: request_path(&remove_dot_segments(&path)) }, false))
}

fn split_host_port(authority: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let close = rest.find(']')?;
        (rest[..close].to_string(), rest[close + 1..].strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some("") | None => None,
        Some(p) => Some(p.parse::<u16>().ok()?),
    };
    Some((host, port))
}

/// RFC 3986's `remove_dot_segments` on the path part (the query is kept as it is).
fn remove_dot_segments(target: &str) -> String {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *seg {
            "." => {
                if last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let mut result = format!("/{}", out.join("/"));
    if let Some(q) = query {
        result.push('?');
        result.push_str(q);
    }
    result
}

/// The header lines of a probe request (`Host` aside), checked and in Go's canonical case.
fn probe_headers(headers: &[(String, String)]) -> std::result::Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    if !has("user-agent") {
        out.push(("User-Agent".into(), USER_AGENT.into()));
    }
    if !has("accept") {
        out.push(("Accept".into(), "*/*".into()));
    }
    for (name, value) in headers {
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(format!("net/http: invalid header field name {name:?}"));
        }
        if value.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
            return Err(format!("net/http: invalid header field value for {name:?}"));
        }
        let empty_accept = name.eq_ignore_ascii_case("accept") && value.is_empty();
        if name.eq_ignore_ascii_case("host") || empty_accept {
            continue;
        }
        out.push((canonical_header(name), value.clone()));
    }
    Ok(out)
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `x-custom-header` → `X-Custom-Header`, as Go's `http.Header.Add` writes names.
fn canonical_header(name: &str) -> String {
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() };
            upper = c == '-';
            out
        })
        .collect()
}

/// The part of an answer the probe needs.
struct Response {
    status: u16,
    location: Option<String>,
}

const AWAITING_HEADERS: &str = "context deadline exceeded (Client.Timeout exceeded while awaiting headers)";

/// One request on a fresh connection (`Connection: close`, like the kubelet's transport).
fn exchange(
    ip: IpAddr,
    target: &Target,
    host_header: &str,
    headers: &[(String, String)],
    deadline: Instant,
) -> std::result::Result<Response, String> {
    let addr = SocketAddr::new(ip, target.port);
    let remaining = || deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero());
    let mut stream =
        TcpStream::connect_timeout(&addr, remaining().ok_or(AWAITING_HEADERS)?).map_err(|e| dial_error(&addr, &e))?;
    let conn = match stream.local_addr() {
        Ok(local) => format!("tcp {local}->{addr}"),
        Err(_) => format!("tcp {addr}"),
    };
    let mut request = format!("GET {} HTTP/1.1\r\nHost: {host_header}\r\n", target.path);
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    stream
        .set_write_timeout(Some(remaining().ok_or(AWAITING_HEADERS)?))
        .and_then(|()| stream.write_all(request.as_bytes()))
        .map_err(|e| {
            if is_timeout(&e) {
                AWAITING_HEADERS.to_string()
            } else {
                format!("write {conn}: write: {}", errno_text(&e))
            }
        })?;

    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // A whole head in the buffer: an informational 1xx answer is skipped, as Go does.
        if let Some(end) = head_end(&buf) {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let (status, location, content_length) = parse_head(&head)?;
            let body_start = end;
            if (100..200).contains(&status) && status != 101 {
                buf.drain(..body_start);
                continue;
            }
            drain_body(&mut stream, buf.len() - body_start, status, content_length, deadline);
            return Ok(Response { status, location });
        }
        if buf.len() > MAX_HEAD {
            return Err(format!("net/http: server response headers exceeded {MAX_HEAD} bytes; aborted"));
        }
        stream.set_read_timeout(Some(remaining().ok_or(AWAITING_HEADERS)?)).map_err(|e| e.to_string())?;
        match stream.read(&mut chunk) {
            Ok(0) if buf.is_empty() => return Err("EOF".into()),
            Ok(0) => return Err("unexpected EOF".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => return Err(AWAITING_HEADERS.into()),
            Err(e) => return Err(format!("read {conn}: read: {}", errno_text(&e))),
        }
    }
}

/// The length of the head (status line and headers, with the blank line), once complete.
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Status code, `Location` and `Content-Length` of a response head.
fn parse_head(head: &str) -> std::result::Result<(u16, Option<String>, Option<u64>), String> {
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or("");
    let mut fields = status_line.splitn(3, ' ');
    let version = fields.next().unwrap_or("");
    if !version.starts_with("HTTP/") {
        return Err(format!("malformed HTTP response {status_line:?}"));
    }
    let code = fields.next().unwrap_or("");
    let status = code
        .parse::<u16>()
        .ok()
        .filter(|c| code.len() == 3 && *c >= 100)
        .ok_or_else(|| format!("malformed HTTP status code {code:?}"))?;
    let mut location = None;
    let mut content_length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.trim().eq_ignore_ascii_case("location") {
            location = Some(value.to_string());
        } else if name.trim().eq_ignore_ascii_case("content-length") {
            content_length = value.parse().ok();
        }
    }
    Ok((status, location, content_length))
}

/// Read (and drop) up to 10 KiB of the body before closing, as the kubelet does, so the server
/// does not see its answer cut by a reset. Best effort, within the probe's deadline.
fn drain_body(stream: &mut TcpStream, already: usize, status: u16, content_length: Option<u64>, deadline: Instant) {
    if status == 204 || status == 304 || status < 200 {
        return;
    }
    let limit = content_length.map_or(MAX_OUTPUT as u64, |n| n.min(MAX_OUTPUT as u64));
    let mut got = already as u64;
    let mut chunk = [0u8; 4096];
    while got < limit {
        let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else { return };
        if stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => got += n as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerPort, ExecAction, GRPCAction, HTTPGetAction, HTTPHeader, TCPSocketAction,
    };

    fn probe(period: i32, success: i32, failure: i32, delay: i32) -> Probe {
        Probe {
            period_seconds: Some(period),
            success_threshold: Some(success),
            failure_threshold: Some(failure),
            initial_delay_seconds: Some(delay),
            ..Default::default()
        }
    }

    fn fail() -> Outcome {
        Outcome::Failure("HTTP probe failed with statuscode: 500".into())
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn defaults_like_the_api_server() {
        let t0 = Instant::now();
        let p = Prober::new(Kind::Readiness, &Probe::default(), t0);
        assert_eq!((p.period(), p.timeout()), (secs(10), secs(1)));
        assert_eq!((p.success_threshold, p.failure_threshold, p.initial_delay), (1, 3, Duration::ZERO));
        let zeros = probe(0, 0, 0, 0);
        assert_eq!(Prober::new(Kind::Readiness, &zeros, t0), p);
        // successThreshold is always 1 for liveness and startup.
        assert_eq!(Prober::new(Kind::Liveness, &probe(5, 4, 2, 0), t0).success_threshold, 1);
    }

    #[test]
    fn initial_results() {
        let t0 = Instant::now();
        assert!(Prober::new(Kind::Liveness, &Probe::default(), t0).result());
        assert!(!Prober::new(Kind::Readiness, &Probe::default(), t0).result());
        assert!(!Prober::new(Kind::Startup, &Probe::default(), t0).result());
    }

    #[test]
    fn due_after_the_initial_delay_then_every_period() {
        let t0 = Instant::now();
        let mut p = Prober::new(Kind::Readiness, &probe(10, 1, 3, 5), t0);
        assert!(!p.due(t0));
        assert!(!p.due(t0 + secs(4)));
        assert!(p.due(t0 + secs(5)));
        assert_eq!(p.next_due(), Some(t0 + secs(5)));
        p.record(t0 + secs(5), &Outcome::Success);
        assert!(!p.due(t0 + secs(14)));
        assert!(p.due(t0 + secs(15)));
        assert_eq!(p.next_due(), Some(t0 + secs(15)));
        // An errored probe still used its turn.
        p.record(t0 + secs(15), &Outcome::Unknown("port not found".into()));
        assert!(!p.due(t0 + secs(24)));
        assert!(p.due(t0 + secs(25)));
    }

    #[test]
    fn liveness_fails_after_the_threshold_then_holds() {
        let t0 = Instant::now();
        let mut p = Prober::new(Kind::Liveness, &probe(10, 1, 3, 0), t0);
        let at = |n: u64| t0 + secs(10 * n);
        assert_eq!(p.record(at(0), &fail()), None);
        assert_eq!(p.record(at(1), &fail()), None);
        // A success in between starts the count again.
        assert_eq!(p.record(at(2), &Outcome::Success), None);
        assert_eq!(p.record(at(3), &fail()), None);
        assert_eq!(p.record(at(4), &fail()), None);
        assert!(p.result());
        assert_eq!(p.record(at(5), &fail()), Some(false));
        assert!(!p.result());
        // The container will be killed: no more probing of this start.
        assert!(!p.due(at(100)));
        assert_eq!(p.next_due(), None);
        assert_eq!(p.record(at(6), &Outcome::Success), None);
        assert!(!p.result());
    }

    #[test]
    fn unknown_outcomes_count_neither_way() {
        let t0 = Instant::now();
        let mut p = Prober::new(Kind::Liveness, &probe(1, 1, 2, 0), t0);
        let unknown = Outcome::Unknown("x".into());
        assert_eq!(p.record(t0, &fail()), None);
        assert_eq!(p.record(t0 + secs(1), &unknown), None);
        assert_eq!(p.record(t0 + secs(2), &unknown), None);
        assert_eq!(p.record(t0 + secs(3), &fail()), Some(false));
    }

    #[test]
    fn readiness_flips_both_ways_with_thresholds() {
        let t0 = Instant::now();
        let mut p = Prober::new(Kind::Readiness, &probe(1, 2, 3, 0), t0);
        let mut t = t0;
        let mut step = |p: &mut Prober, o: Outcome| {
            t += secs(1);
            p.record(t, &o)
        };
        assert_eq!(step(&mut p, Outcome::Success), None);
        assert!(!p.result());
        assert_eq!(step(&mut p, Outcome::Success), Some(true));
        assert_eq!(step(&mut p, Outcome::Success), None);
        assert_eq!(step(&mut p, fail()), None);
        assert_eq!(step(&mut p, fail()), None);
        assert!(p.result());
        assert_eq!(step(&mut p, fail()), Some(false));
        assert_eq!(step(&mut p, fail()), None);
        assert_eq!(step(&mut p, Outcome::Success), None);
        assert_eq!(step(&mut p, Outcome::Success), Some(true));
        // Readiness keeps probing whatever the result.
        assert!(p.next_due().is_some());
    }

    #[test]
    fn startup_decides_once() {
        let t0 = Instant::now();
        let mut ok = Prober::new(Kind::Startup, &probe(1, 1, 3, 0), t0);
        assert_eq!(ok.record(t0, &fail()), None);
        assert_eq!(ok.record(t0 + secs(1), &Outcome::Success), Some(true));
        assert!(ok.result());
        assert_eq!(ok.next_due(), None);

        // Failing the threshold reports false (from "not yet decided"): kill the container.
        let mut bad = Prober::new(Kind::Startup, &probe(1, 1, 2, 0), t0);
        assert_eq!(bad.record(t0, &fail()), None);
        assert_eq!(bad.record(t0 + secs(1), &fail()), Some(false));
        assert!(!bad.result());
        assert_eq!(bad.next_due(), None);
    }

    #[test]
    fn startup_gates_liveness_and_readiness() {
        let t0 = Instant::now();
        let container = Container {
            name: "app".into(),
            startup_probe: Some(probe(2, 1, 30, 0)),
            liveness_probe: Some(probe(10, 1, 3, 1)),
            readiness_probe: Some(probe(5, 1, 3, 0)),
            ..Default::default()
        };
        let mut c = ContainerProbes::new(&container, t0);
        assert!(!c.started() && !c.ready());
        assert_eq!(c.due(t0 + secs(1)), [Kind::Startup]);
        let startup = c.get_mut(Kind::Startup).unwrap();
        assert_eq!(startup.record(t0 + secs(1), &fail()), None);
        assert_eq!(c.due(t0 + secs(2)), Vec::<Kind>::new());
        assert_eq!(c.next_due(), Some(t0 + secs(3)));
        assert_eq!(c.get_mut(Kind::Startup).unwrap().record(t0 + secs(3), &Outcome::Success), Some(true));
        assert!(c.started() && !c.ready());
        // Both ran never: due at once (their initial delays, counted from the start, are over).
        assert_eq!(c.due(t0 + secs(3)), [Kind::Liveness, Kind::Readiness]);
        assert_eq!(c.get_mut(Kind::Readiness).unwrap().record(t0 + secs(3), &Outcome::Success), Some(true));
        assert!(c.ready());
        assert_eq!(c.due(t0 + secs(3)), [Kind::Liveness]);

        // Without probes a container is started and ready at once.
        let plain = ContainerProbes::new(&Container { name: "plain".into(), ..Default::default() }, t0);
        assert!(plain.started() && plain.ready());
        assert!(plain.due(t0 + secs(100)).is_empty() && plain.next_due().is_none());
    }

    #[test]
    fn event_and_kill_messages() {
        assert_eq!(
            Kind::Liveness.event_message(&fail()).unwrap(),
            "Liveness probe failed: HTTP probe failed with statuscode: 500"
        );
        assert_eq!(
            Kind::Readiness.event_message(&Outcome::Unknown("boom".into())).unwrap(),
            "Readiness probe errored: boom"
        );
        assert_eq!(Kind::Startup.event_message(&Outcome::Success), None);
        assert_eq!(
            Kind::Liveness.kill_message("web", true).unwrap(),
            "Container web failed liveness probe, will be restarted"
        );
        assert_eq!(Kind::Startup.kill_message("web", false).unwrap(), "Container web failed startup probe");
        assert_eq!(Kind::Readiness.kill_message("web", true), None);
    }

    #[test]
    fn actions_of_probes() {
        let exec = Probe {
            exec: Some(ExecAction { command: Some(vec!["cat".into(), "/tmp/healthy".into()]) }),
            ..Default::default()
        };
        assert_eq!(action(&exec).unwrap(), Action::Exec(vec!["cat".into(), "/tmp/healthy".into()]));
        let empty = Probe { exec: Some(ExecAction { command: None }), ..Default::default() };
        assert!(action(&empty).unwrap_err().to_string().contains("exec.command"));

        let http = Probe {
            http_get: Some(HTTPGetAction {
                port: IntOrString::String("web".into()),
                path: Some("/healthz".into()),
                scheme: Some("https".into()),
                http_headers: Some(vec![HTTPHeader { name: "X-A".into(), value: "1".into() }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            action(&http).unwrap(),
            Action::HttpGet {
                host: None,
                port: IntOrString::String("web".into()),
                path: "/healthz".into(),
                scheme: "HTTPS".into(),
                headers: vec![("X-A".into(), "1".into())],
            }
        );
        let tcp = Probe {
            tcp_socket: Some(TCPSocketAction { host: Some("10.0.0.7".into()), port: IntOrString::Int(5432) }),
            ..Default::default()
        };
        assert_eq!(action(&tcp).unwrap(), Action::Tcp { host: Some("10.0.0.7".into()), port: IntOrString::Int(5432) });
        let grpc = Probe { grpc: Some(GRPCAction { port: 9000, service: None }), ..Default::default() };
        let err = action(&grpc).unwrap_err().to_string();
        assert!(err.contains("gRPC probes are not supported"), "{err}");
        assert!(action(&Probe::default()).unwrap_err().to_string().contains("without a handler"));
    }

    #[test]
    fn ports_by_number_or_name() {
        let c = Container {
            name: "app".into(),
            ports: Some(vec![
                ContainerPort { name: Some("web".into()), container_port: 8080, ..Default::default() },
                ContainerPort { name: Some("metrics".into()), container_port: 9090, ..Default::default() },
            ]),
            ..Default::default()
        };
        assert_eq!(resolve_port(&IntOrString::Int(80), &c).unwrap(), 80);
        assert_eq!(resolve_port(&IntOrString::String("web".into()), &c).unwrap(), 8080);
        assert_eq!(resolve_port(&IntOrString::String("metrics".into()), &c).unwrap(), 9090);
        assert_eq!(resolve_port(&IntOrString::String("81".into()), &c).unwrap(), 81);
        let err = resolve_port(&IntOrString::String("admin".into()), &c).unwrap_err().to_string();
        assert!(err.contains("\"admin\"") && err.contains("web, metrics"), "{err}");
        for bad in [0, -1, 65536] {
            let err = resolve_port(&IntOrString::Int(bad), &c).unwrap_err().to_string();
            assert!(err.contains(&format!("invalid probe port number: {bad}")), "{err}");
        }
    }

    #[test]
    fn exec_outcomes() {
        let cmd = vec!["cat".to_string(), "/tmp/healthy".to_string()];
        assert_eq!(exec_outcome(&cmd, Some(0), b"ok", false), Outcome::Success);
        assert_eq!(
            exec_outcome(&cmd, Some(1), b"cat: can't open '/tmp/healthy': No such file or directory\n", false),
            Outcome::Failure("cat: can't open '/tmp/healthy': No such file or directory\n".into())
        );
        assert_eq!(
            exec_outcome(&cmd, None, b"", true),
            Outcome::Failure("command \"cat /tmp/healthy\" timed out".into())
        );
        assert!(matches!(exec_outcome(&cmd, None, b"", false), Outcome::Unknown(_)));
        let long = vec![b'x'; MAX_OUTPUT + 100];
        assert_eq!(exec_outcome(&cmd, Some(2), &long, false).message().len(), MAX_OUTPUT);
    }

    #[test]
    fn request_paths_and_headers() {
        assert_eq!(request_path(""), "/");
        assert_eq!(request_path("healthz"), "/healthz");
        assert_eq!(request_path("/a b?x=1#frag"), "/a%20b?x=1");
        let h = probe_headers(&[("x-custom".into(), "yes".into()), ("Host".into(), "example.com".into())]).unwrap();
        assert_eq!(
            h,
            [
                ("User-Agent".to_string(), USER_AGENT.to_string()),
                ("Accept".into(), "*/*".into()),
                ("X-Custom".into(), "yes".into())
            ]
        );
        let h = probe_headers(&[("user-agent".into(), "mine".into()), ("Accept".into(), "".into())]).unwrap();
        assert_eq!(h, [("User-Agent".to_string(), "mine".to_string())]);
        assert!(probe_headers(&[("bad name".into(), "x".into())]).unwrap_err().contains("invalid header field name"));
        assert!(probe_headers(&[("X".into(), "a\r\nb".into())]).unwrap_err().contains("invalid header field value"));
    }

    #[test]
    fn locations_resolve_like_urls() {
        let base = Target { scheme: "http".into(), host: "10.0.0.5".into(), port: 8080, path: "/a/b?q=1".into() };
        let get = |loc: &str| resolve_location(&base, loc).unwrap();
        assert_eq!(get("/ok").0.url(), "http://10.0.0.5:8080/ok");
        assert!(get("/ok").1);
        assert_eq!(get("c").0.url(), "http://10.0.0.5:8080/a/c");
        assert_eq!(get("../c").0.url(), "http://10.0.0.5:8080/c");
        assert_eq!(get("?z=2").0.url(), "http://10.0.0.5:8080/a/b?z=2");
        let (abs, relative) = get("http://10.0.0.5:9090/x#f");
        assert_eq!((abs.url(), relative), ("http://10.0.0.5:9090/x".to_string(), false));
        assert_eq!(get("HTTPS://other.example/").0.url(), "https://other.example:443/");
        assert_eq!(get("//10.0.0.5").0.url(), "http://10.0.0.5:80/");
        assert_eq!(get("http://[fd00::1]:81?x").0.url(), "http://[fd00::1]:81/?x");
        assert!(resolve_location(&base, "http://10.0.0.5:notaport/").is_none());
        assert!(same_host("fd00::1", "FD00:0::1"));
        assert!(!same_host("10.0.0.5", "example.com"));
    }

    #[test]
    fn response_heads() {
        assert_eq!(
            parse_head("HTTP/1.1 302 Found\r\nlocation: /x\r\nContent-Length: 0\r\n\r\n").unwrap(),
            (302, Some("/x".into()), Some(0))
        );
        assert!(parse_head("SSH-2.0-OpenSSH\r\n\r\n").unwrap_err().contains("malformed HTTP response"));
        assert!(parse_head("HTTP/1.1 2000 OK\r\n\r\n").unwrap_err().contains("malformed HTTP status code"));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\n\r\nbody"), Some(19));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\n"), None);
    }
}
