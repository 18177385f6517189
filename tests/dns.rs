//! The cluster DNS server (src/proxy/dns) on real sockets: the server runs in this test
//! process on 127.0.0.1 (a port of its own), next to a fake upstream name server written here
//! with hickory-proto, and is asked by a client from outside the code, BusyBox `nslookup`
//! (`nslookup NAME 127.0.0.1:PORT`), and by a small UDP/TCP client for what nslookup cannot
//! show (TCP, truncation, bad packets). Only loopback addresses are used.

mod common;

use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType, rdata};
use podlab::proxy::dns::{self, DnsConfig, DnsEndpoint, DnsPort, DnsRecords, DnsServer, Protocol, SharedRecords};

const BUSYBOX: &str = "/bin/busybox";

/// The fake upstream's answer to `example.test` A.
const EXAMPLE_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);

/// Records of a small cluster: web (ClusterIP 10.96.0.10, port http/tcp 80), db (headless,
/// endpoints db-0 10.244.1.5 and one without hostname 10.244.1.6, port pg/tcp 5432), many
/// (headless, 60 endpoints: an answer too big for 512 bytes), a pod 10.244.1.7 in "shop".
fn cluster() -> DnsRecords {
    let mut r = DnsRecords::default();
    let tcp = |name: &str, port| DnsPort { name: name.to_string(), protocol: Protocol::Tcp, port };
    let ep = |ip: Ipv4Addr, host: Option<&str>| DnsEndpoint { ip, hostname: host.map(str::to_string) };
    r.add_service("shop", "web", Some(Ipv4Addr::new(10, 96, 0, 10)), &[tcp("http", 80)], &[]);
    let db = [ep(Ipv4Addr::new(10, 244, 1, 5), Some("db-0")), ep(Ipv4Addr::new(10, 244, 1, 6), None)];
    r.add_service("shop", "db", None, &[tcp("pg", 5432)], &db);
    let many: Vec<DnsEndpoint> = (1..=60).map(|i| ep(Ipv4Addr::new(10, 244, 2, i), None)).collect();
    r.add_service("shop", "many", None, &[], &many);
    r.add_pod("shop", Ipv4Addr::new(10, 244, 1, 7));
    r
}

/// A running cluster DNS and fake upstream, on a runtime of their own (the test thread stays
/// free to run blocking clients).
struct Fixture {
    server: Option<DnsServer>,
    upstream: Upstream,
    records: SharedRecords,
    _runtime: tokio::runtime::Runtime,
}

impl Fixture {
    /// The server forwarding to the fake upstream.
    fn new() -> Fixture {
        Fixture::with_upstreams(|upstream| vec![upstream])
    }

    /// The server forwarding to `upstreams(the fake upstream's address)`.
    fn with_upstreams(upstreams: impl FnOnce(SocketAddr) -> Vec<SocketAddr>) -> Fixture {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let upstream = runtime.block_on(Upstream::start());
        let records: SharedRecords = Arc::new(RwLock::new(cluster()));
        let config = DnsConfig {
            upstreams: upstreams(upstream.addr),
            upstream_timeout: Duration::from_millis(500),
            ..DnsConfig::default()
        };
        let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let server = runtime.block_on(dns::serve(local, records.clone(), config)).expect("start the DNS server");
        Fixture { server: Some(server), upstream, records, _runtime: runtime }
    }

    fn addr(&self) -> SocketAddr {
        self.server.as_ref().expect("server running").local_addr()
    }

    /// `busybox nslookup [-type=T] NAME 127.0.0.1:PORT`: (exit success, stdout + stderr).
    fn nslookup(&self, qtype: Option<&str>, name: &str) -> (bool, String) {
        let mut cmd = Command::new(BUSYBOX);
        cmd.arg("nslookup");
        if let Some(t) = qtype {
            cmd.arg(format!("-type={t}"));
        }
        let out = cmd.arg(name).arg(self.addr().to_string()).output().expect("run busybox nslookup");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }

    /// Stop the server and check that its port is free again (nothing of it is left).
    fn stop_and_check(&mut self) {
        let addr = self.addr();
        if let Some(server) = self.server.take() {
            server.stop();
        }
        assert!(
            common::wait_until(5, || UdpSocket::bind(addr).is_ok() && TcpStream::connect(addr).is_err()),
            "the DNS server's sockets on {addr} are still open after stop"
        );
    }
}

/// A fake upstream name server on 127.0.0.1 (UDP and TCP, one port): `example.test` A is
/// 192.0.2.7, `big.example.test` TXT is too big for 512 bytes, everything else NXDOMAIN.
struct Upstream {
    addr: SocketAddr,
    udp_queries: Arc<AtomicUsize>,
    tcp_queries: Arc<AtomicUsize>,
}

impl Upstream {
    async fn start() -> Upstream {
        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        let tcp = tokio::net::TcpListener::bind(addr).await.unwrap();
        let (udp_queries, tcp_queries) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let count = udp_queries.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65535];
            while let Ok((n, peer)) = udp.recv_from(&mut buf).await {
                count.fetch_add(1, Ordering::SeqCst);
                if let Some(reply) = upstream_answer(&buf[..n], 512) {
                    let _ = udp.send_to(&reply, peer).await;
                }
            }
        });
        let count = tcp_queries.clone();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut stream, _)) = tcp.accept().await {
                let count = count.clone();
                tokio::spawn(async move {
                    let mut len = [0u8; 2];
                    while stream.read_exact(&mut len).await.is_ok() {
                        let mut query = vec![0u8; u16::from_be_bytes(len) as usize];
                        if stream.read_exact(&mut query).await.is_err() {
                            return;
                        }
                        count.fetch_add(1, Ordering::SeqCst);
                        let Some(reply) = upstream_answer(&query, 65535) else { return };
                        let mut frame = (reply.len() as u16).to_be_bytes().to_vec();
                        frame.extend(reply);
                        if stream.write_all(&frame).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Upstream { addr, udp_queries, tcp_queries }
    }
}

fn upstream_answer(query: &[u8], limit: usize) -> Option<Vec<u8>> {
    let query = Message::from_vec(query).ok()?;
    let q = query.queries().first()?.clone();
    let mut reply = Message::new();
    reply.set_id(query.id()).set_message_type(MessageType::Response).set_recursion_available(true);
    reply.add_query(q.clone());
    let name = q.name().to_ascii().to_ascii_lowercase();
    match (name.as_str(), q.query_type()) {
        ("example.test.", RecordType::A) => {
            reply.add_answer(Record::from_rdata(q.name().clone(), 60, RData::A(rdata::A(EXAMPLE_IP))));
        }
        ("example.test.", _) => {}
        ("big.example.test.", RecordType::TXT) => {
            for i in 0..20 {
                let text = format!("{i:02} {}", "x".repeat(60));
                reply.add_answer(Record::from_rdata(q.name().clone(), 60, RData::TXT(rdata::TXT::new(vec![text]))));
            }
        }
        _ => {
            reply.set_response_code(ResponseCode::NXDomain);
        }
    }
    let max = query.extensions().as_ref().map_or(limit, |e| (e.max_payload() as usize).min(limit).max(512));
    let bytes = reply.to_vec().ok()?;
    if bytes.len() > max { reply.truncate().to_vec().ok() } else { Some(bytes) }
}

/// A query message (RD set, EDNS when `edns` is given).
fn query(name: &str, qtype: RecordType, edns: Option<u16>) -> Message {
    let mut m = Message::new();
    m.set_id(0x4242).set_message_type(MessageType::Query).set_op_code(OpCode::Query).set_recursion_desired(true);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    m
}

/// Send raw bytes over UDP and wait up to `wait` for a reply.
fn udp_raw(server: SocketAddr, packet: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(wait)).unwrap();
    sock.send_to(packet, server).unwrap();
    let mut buf = vec![0u8; 65535];
    let n = sock.recv(&mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

fn udp_ask(server: SocketAddr, q: &Message) -> Message {
    let reply = udp_raw(server, &q.to_vec().unwrap(), Duration::from_secs(5)).expect("a UDP reply");
    Message::from_vec(&reply).expect("a reply that parses")
}

/// One framed message over an open TCP stream.
fn tcp_exchange(stream: &mut TcpStream, packet: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Write};
    let mut frame = (packet.len() as u16).to_be_bytes().to_vec();
    frame.extend_from_slice(packet);
    stream.write_all(&frame)?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len)?;
    let mut reply = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut reply)?;
    Ok(reply)
}

fn tcp_connect(server: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(server).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream
}

fn a_records(m: &Message) -> Vec<Ipv4Addr> {
    m.answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

#[test]
fn nslookup_resolves_cluster_names() {
    let mut f = Fixture::new();

    let (ok, out) = f.nslookup(Some("a"), "web.shop.svc.cluster.local");
    assert!(ok && out.contains("Address: 10.96.0.10"), "service A:\n{out}");
    let (ok, out) = f.nslookup(Some("a"), "WEB.Shop.Svc.Cluster.Local");
    assert!(ok && out.contains("Address: 10.96.0.10"), "names are case-insensitive:\n{out}");

    let (ok, out) = f.nslookup(Some("a"), "db.shop.svc.cluster.local");
    assert!(ok && out.contains("Address: 10.244.1.5") && out.contains("Address: 10.244.1.6"), "headless A:\n{out}");
    assert!(!out.contains("10.96."), "{out}");
    let (ok, out) = f.nslookup(Some("a"), "db-0.db.shop.svc.cluster.local");
    assert!(ok && out.contains("Address: 10.244.1.5") && !out.contains("10.244.1.6"), "endpoint hostname:\n{out}");

    let (ok, out) = f.nslookup(Some("srv"), "_http._tcp.web.shop.svc.cluster.local");
    assert!(ok && out.contains("service = 0 100 80 web.shop.svc.cluster.local"), "service SRV:\n{out}");
    let (ok, out) = f.nslookup(Some("srv"), "_pg._tcp.db.shop.svc.cluster.local");
    assert!(ok, "headless SRV:\n{out}");
    assert!(out.contains("service = 0 50 5432 db-0.db.shop.svc.cluster.local"), "{out}");
    assert!(out.contains("service = 0 50 5432 10-244-1-6.db.shop.svc.cluster.local"), "{out}");

    let (ok, out) = f.nslookup(Some("a"), "10-244-1-7.shop.pod.cluster.local");
    assert!(ok && out.contains("Address: 10.244.1.7"), "pod A:\n{out}");

    let (ok, out) = f.nslookup(None, "10.96.0.10");
    assert!(ok && out.contains("name = web.shop.svc.cluster.local"), "PTR of a ClusterIP:\n{out}");
    let (ok, out) = f.nslookup(None, "10.244.1.5");
    assert!(ok && out.contains("name = db-0.db.shop.svc.cluster.local"), "PTR of an endpoint:\n{out}");

    let (ok, out) = f.nslookup(Some("txt"), "dns-version.cluster.local");
    assert!(ok && out.contains("1.0.1"), "schema version:\n{out}");

    let (ok, out) = f.nslookup(Some("a"), "nope.shop.svc.cluster.local");
    assert!(!ok && out.contains("NXDOMAIN"), "unknown cluster name:\n{out}");
    let (ok, out) = f.nslookup(Some("aaaa"), "web.shop.svc.cluster.local");
    assert!(ok && !out.contains("Name:") && !out.contains("NXDOMAIN"), "AAAA of a known name is no data:\n{out}");

    // The records are replaced while serving, as the node agent does.
    f.records.write().unwrap().add_service("shop", "new", Some(Ipv4Addr::new(10, 96, 0, 11)), &[], &[]);
    let (ok, out) = f.nslookup(Some("a"), "new.shop.svc.cluster.local");
    assert!(ok && out.contains("Address: 10.96.0.11"), "a service added while serving:\n{out}");
    *f.records.write().unwrap() = DnsRecords::default();
    let (ok, out) = f.nslookup(Some("a"), "web.shop.svc.cluster.local");
    assert!(!ok && out.contains("NXDOMAIN"), "a service removed while serving:\n{out}");

    assert_eq!(f.upstream.udp_queries.load(Ordering::SeqCst), 0, "cluster names must not be forwarded");
    f.stop_and_check();
}

#[test]
fn other_names_are_forwarded_to_the_upstream() {
    let mut f = Fixture::new();
    let (ok, out) = f.nslookup(Some("a"), "example.test");
    assert!(ok && out.contains("Address: 192.0.2.7"), "forwarded:\n{out}");
    let (ok, out) = f.nslookup(Some("a"), "missing.example.test");
    assert!(!ok && out.contains("NXDOMAIN"), "upstream NXDOMAIN passed on:\n{out}");
    assert!(f.upstream.udp_queries.load(Ordering::SeqCst) >= 2);

    // Over TCP the upstream is asked over TCP.
    let mut stream = tcp_connect(f.addr());
    let reply = tcp_exchange(&mut stream, &query("Example.Test.", RecordType::A, None).to_vec().unwrap()).unwrap();
    let reply = Message::from_vec(&reply).unwrap();
    assert_eq!((reply.id(), a_records(&reply)), (0x4242, vec![EXAMPLE_IP]));
    assert_eq!(f.upstream.tcp_queries.load(Ordering::SeqCst), 1);

    // Too big for 512 bytes: the upstream says TC over UDP, the server asks it over TCP and
    // passes on all of it to a client that can take it, a cut reply to one that cannot.
    let big = udp_ask(f.addr(), &query("big.example.test.", RecordType::TXT, Some(4096)));
    assert_eq!((big.truncated(), big.answers().len()), (false, 20));
    assert_eq!(f.upstream.tcp_queries.load(Ordering::SeqCst), 2);
    let cut = udp_ask(f.addr(), &query("big.example.test.", RecordType::TXT, None));
    assert!(cut.truncated() && cut.answers().is_empty() && cut.id() == 0x4242);
    f.stop_and_check();
}

#[test]
fn servfail_when_no_upstream_answers_and_other_queries_go_on() {
    // One upstream that never answers (a socket nobody reads), one where nothing listens
    // (its port was free a moment ago): SERVFAIL once both failed, after the 500 ms timeout.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let closed = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut f = Fixture::with_upstreams(|_| vec![silent.local_addr().unwrap(), closed]);
    let addr = f.addr();
    let start = Instant::now();
    let waiting = std::thread::spawn(move || udp_ask(addr, &query("example.test.", RecordType::A, None)));
    // While that query waits for its upstreams, cluster names are answered at once.
    std::thread::sleep(Duration::from_millis(50));
    let quick = Instant::now();
    let (ok, out) = f.nslookup(Some("a"), "web.shop.svc.cluster.local");
    assert!(ok && out.contains("Address: 10.96.0.10"), "{out}");
    assert!(quick.elapsed() < Duration::from_millis(400), "a local answer waited for a forwarded query");
    let reply = waiting.join().unwrap();
    assert_eq!(reply.response_code(), ResponseCode::ServFail);
    assert!(start.elapsed() >= Duration::from_millis(500), "SERVFAIL before the upstream timeout");
    let (ok, out) = f.nslookup(Some("a"), "example.test");
    assert!(!ok && out.contains("SERVFAIL"), "{out}");
    assert_eq!(f.upstream.udp_queries.load(Ordering::SeqCst), 0);
    f.stop_and_check();
}

#[test]
fn a_port_in_use_is_an_error_that_names_it() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let records = Arc::new(RwLock::new(DnsRecords::default()));
    let err = runtime.block_on(dns::serve(addr, records, DnsConfig::default())).unwrap_err().to_string();
    assert!(err.contains(&format!("udp {addr}")) && err.contains("in use"), "{err}");
}

#[test]
fn tcp_queries_and_truncation() {
    let mut f = Fixture::new();
    let mut stream = tcp_connect(f.addr());
    // Several queries on one connection.
    for _ in 0..3 {
        let reply =
            tcp_exchange(&mut stream, &query("web.shop.svc.cluster.local.", RecordType::A, None).to_vec().unwrap());
        let reply = Message::from_vec(&reply.unwrap()).unwrap();
        assert!(reply.authoritative());
        assert_eq!(a_records(&reply), vec![Ipv4Addr::new(10, 96, 0, 10)]);
    }
    // 60 A records do not fit in 512 bytes: TC over UDP, everything over TCP.
    let cut = udp_ask(f.addr(), &query("many.shop.svc.cluster.local.", RecordType::A, None));
    assert!(cut.truncated() && cut.answers().is_empty(), "{cut:?}");
    let reply =
        tcp_exchange(&mut stream, &query("many.shop.svc.cluster.local.", RecordType::A, None).to_vec().unwrap());
    let reply = Message::from_vec(&reply.unwrap()).unwrap();
    assert_eq!((reply.truncated(), a_records(&reply).len()), (false, 60));
    // With EDNS (1232 bytes) they fit in one datagram.
    let whole = udp_ask(f.addr(), &query("many.shop.svc.cluster.local.", RecordType::A, Some(1232)));
    assert_eq!((whole.truncated(), a_records(&whole).len()), (false, 60));
    assert!(whole.extensions().is_some(), "EDNS is answered with EDNS");

    // NXDOMAIN carries the zone's SOA in the authority section, CoreDNS style.
    let nx = udp_ask(f.addr(), &query("nope.cluster.local.", RecordType::A, None));
    assert_eq!(nx.response_code(), ResponseCode::NXDomain);
    let soa = match nx.name_servers().first().map(|r| r.data()) {
        Some(RData::SOA(soa)) => soa.clone(),
        other => panic!("no SOA in the authority section: {other:?}"),
    };
    assert_eq!(soa.mname().to_ascii(), "ns.dns.cluster.local.");
    assert_eq!(soa.rname().to_ascii(), "hostmaster.cluster.local.");
    assert_eq!((soa.minimum(), nx.name_servers()[0].ttl()), (5, 5));
    // NODATA: NOERROR, no answer, the SOA.
    let nodata = udp_ask(f.addr(), &query("web.shop.svc.cluster.local.", RecordType::AAAA, None));
    assert_eq!((nodata.response_code(), nodata.answers().len()), (ResponseCode::NoError, 0));
    assert_eq!(nodata.name_servers().len(), 1);
    // SRV answers bring the targets' addresses along.
    let srv = udp_ask(f.addr(), &query("_pg._tcp.db.shop.svc.cluster.local.", RecordType::SRV, None));
    let extra: Vec<Ipv4Addr> = srv
        .additionals()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    assert_eq!(extra, vec![Ipv4Addr::new(10, 244, 1, 5), Ipv4Addr::new(10, 244, 1, 6)]);
    assert!(srv.answers().iter().all(|r| r.ttl() == 5));
    f.stop_and_check();
}

#[test]
fn bad_packets_do_not_stop_the_server() {
    let mut f = Fixture::new();
    let addr = f.addr();
    let short = Duration::from_millis(300);
    // Too short for a header: dropped.
    assert_eq!(udp_raw(addr, b"\x01\x02\x03", short), None);
    // A header that promises a question that is not there: FORMERR with the same id.
    let header = [0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    let reply = udp_raw(addr, &header, Duration::from_secs(5)).expect("FORMERR");
    assert_eq!(&reply[..2], &[0xab, 0xcd]);
    assert_eq!((reply[2] & 0x80, reply[3] & 0x0f), (0x80, 1), "QR set, RCODE FORMERR: {reply:?}");
    // A label running past the end of the packet.
    let mut broken = header.to_vec();
    broken.extend_from_slice(&[60, b'a', b'b']);
    assert!(udp_raw(addr, &broken, Duration::from_secs(5)).is_some());
    // A response (QR set) is never answered: two servers could bounce it for ever.
    let mut response = query("web.shop.svc.cluster.local.", RecordType::A, None);
    response.set_message_type(MessageType::Response);
    assert_eq!(udp_raw(addr, &response.to_vec().unwrap(), short), None);
    // Two questions: FORMERR.
    let mut two = query("web.shop.svc.cluster.local.", RecordType::A, None);
    two.add_query(Query::query(Name::from_ascii("db.shop.svc.cluster.local.").unwrap(), RecordType::A));
    assert_eq!(udp_ask(addr, &two).response_code(), ResponseCode::FormErr);
    // Not a query (an UPDATE): NOTIMP.
    let mut update = query("web.shop.svc.cluster.local.", RecordType::A, None);
    update.set_op_code(OpCode::Update);
    assert_eq!(udp_ask(addr, &update).response_code(), ResponseCode::NotImp);
    // Random bytes.
    let mut x: u32 = std::process::id();
    for _ in 0..200 {
        let len = (x % 80) as usize + 1;
        let packet: Vec<u8> = (0..len)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.send_to(&packet, addr).unwrap();
    }
    // Garbage over TCP closes that connection only.
    let mut stream = tcp_connect(addr);
    assert!(tcp_exchange(&mut stream, b"\x00\x01").is_err());

    // Still serving, over both transports.
    let (ok, out) = f.nslookup(Some("a"), "web.shop.svc.cluster.local");
    assert!(ok && out.contains("Address: 10.96.0.10"), "{out}");
    let mut stream = tcp_connect(addr);
    let reply =
        tcp_exchange(&mut stream, &query("db-0.db.shop.svc.cluster.local.", RecordType::A, None).to_vec().unwrap());
    assert_eq!(a_records(&Message::from_vec(&reply.unwrap()).unwrap()), vec![Ipv4Addr::new(10, 244, 1, 5)]);
    f.stop_and_check();
}

/// Not a benchmark: how many queries a second one client gets answered, one after another
/// (printed; run with --nocapture to see it). Bounded in count and time.
#[test]
fn speed_sanity() {
    let mut f = Fixture::new();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    sock.connect(f.addr()).unwrap();
    let packet = query("web.shop.svc.cluster.local.", RecordType::A, None).to_vec().unwrap();
    let mut buf = [0u8; 512];
    let start = Instant::now();
    let mut answered = 0u32;
    while answered < 20_000 && start.elapsed() < Duration::from_secs(3) {
        sock.send(&packet).unwrap();
        sock.recv(&mut buf).expect("an answer");
        answered += 1;
    }
    let rate = f64::from(answered) / start.elapsed().as_secs_f64();
    println!("cluster DNS: {answered} sequential UDP queries answered, {rate:.0} queries/s");
    assert!(answered > 100);
    f.stop_and_check();
}
