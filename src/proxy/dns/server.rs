//! The DNS server: questions in over UDP and TCP, answers out, other names forwarded.
//!
//! A UDP query is one datagram; an answer bigger than the client can take (512 bytes, or what
//! its EDNS record says) goes back cut short with the TC bit set, and the client asks again
//! over TCP, where every message is preceded by its length in two bytes. Names outside the
//! cluster are asked of the node's name servers in turn (a forwarder, not a recursive
//! resolver); a query waiting for them holds up no other.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use hickory_proto::ProtoError;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, rdata};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};

use super::DnsConfig;
use super::records::{DnsRecords, Lookup, Rr, RrData, ns_name};
use super::upstream::{self, read_frame, write_frame};
use crate::error::{Error, Result};

/// The records the server answers from; the node agent replaces them when Services change.
pub type SharedRecords = Arc<RwLock<DnsRecords>>;

/// UDP queries being forwarded at once; past that a query gets SERVFAIL straight away.
const MAX_FORWARDS: usize = 512;
/// TCP connections open at once; past that new ones are closed.
const MAX_TCP: usize = 256;
/// A TCP connection with no query for this long is closed.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// The UDP payload size we announce in EDNS (the DNS flag day 2020 value).
const EDNS_PAYLOAD: u16 = 1232;

/// A running server; dropping it (or [`DnsServer::stop`]) stops it.
#[derive(Debug)]
pub struct DnsServer {
    local_addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl DnsServer {
    /// The address served (UDP and TCP), with the port chosen when 0 was asked for.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stop serving: the sockets close and queries under way are dropped.
    pub fn stop(self) {}
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// What every query handler needs.
struct Shared {
    records: SharedRecords,
    config: DnsConfig,
    /// SOA serial: when this server started (CoreDNS uses the time of the last change).
    serial: u32,
}

/// How a query came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

/// What to do with one packet.
enum Outcome {
    Reply(Vec<u8>),
    Forward(Message),
    Drop,
}

/// Serve UDP and TCP on `addr` until the returned handle is dropped or stopped (tokio tasks
/// on the current runtime). Upstreams that are `addr` itself are left out.
pub async fn serve(addr: SocketAddr, records: SharedRecords, mut config: DnsConfig) -> Result<DnsServer> {
    let (udp, tcp) = bind(addr).await?;
    let local_addr = udp.local_addr().map_err(|e| Error::io("read the address of", format!("udp {addr}"), e))?;
    config.upstreams.retain(|u| !is_self(*u, local_addr));
    let serial = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as u32).unwrap_or(1);
    tracing::info!(
        "cluster DNS for {} on {local_addr} (udp, tcp), forwarding to {:?}",
        config.domain,
        config.upstreams
    );
    let shared = Arc::new(Shared { records, config, serial });
    let tasks = vec![tokio::spawn(udp_loop(Arc::new(udp), shared.clone())), tokio::spawn(tcp_loop(tcp, shared))];
    Ok(DnsServer { local_addr, tasks })
}

/// A UDP socket and a TCP listener on the same address (and, for port 0, the same free port).
async fn bind(addr: SocketAddr) -> Result<(UdpSocket, TcpListener)> {
    let tries = if addr.port() == 0 { 20 } else { 1 };
    for _ in 0..tries {
        let udp = UdpSocket::bind(addr).await.map_err(|e| bind_error("udp", addr, e))?;
        let local = udp.local_addr().map_err(|e| Error::io("read the address of", format!("udp {addr}"), e))?;
        match TcpListener::bind(local).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if addr.port() == 0 && e.kind() == io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(bind_error("tcp", local, e)),
        }
    }
    Err(Error::Missing(format!("no port on {} is free for both UDP and TCP", addr.ip())))
}

fn bind_error(proto: &str, addr: SocketAddr, e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::AddrInUse => Error::invalid(format!(
            "cannot serve DNS on {proto} {addr}: the port is in use (who has it: `ss -lnp{} 'sport = :{}'`)",
            &proto[..1],
            addr.port()
        )),
        _ => Error::io("bind", format!("{proto} {addr}"), e),
    }
}

/// Whether upstream `u` is this server (which would forward to itself for ever).
fn is_self(u: SocketAddr, local: SocketAddr) -> bool {
    u == local || (local.ip().is_unspecified() && u.port() == local.port() && u.ip().is_loopback())
}

async fn udp_loop(sock: Arc<UdpSocket>, shared: Arc<Shared>) {
    let mut forwards = JoinSet::new();
    let mut buf = vec![0u8; u16::MAX as usize];
    loop {
        tokio::select! {
            got = sock.recv_from(&mut buf) => {
                let (n, peer) = match got {
                    Ok(got) => got,
                    Err(e) => {
                        tracing::debug!("dns: udp receive: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let packet = &buf[..n];
                match handle(packet, Transport::Udp, &shared) {
                    Outcome::Reply(reply) => send_udp(&sock, &reply, peer).await,
                    Outcome::Drop => {}
                    Outcome::Forward(request) if forwards.len() >= MAX_FORWARDS => {
                        tracing::debug!("dns: {MAX_FORWARDS} queries already forwarded; SERVFAIL to {peer}");
                        if let Some(reply) = encode(&error_reply(&request, ResponseCode::ServFail), 512) {
                            send_udp(&sock, &reply, peer).await;
                        }
                    }
                    Outcome::Forward(request) => {
                        let (sock, shared, raw) = (sock.clone(), shared.clone(), packet.to_vec());
                        forwards.spawn(async move {
                            if let Some(reply) = forward(&request, &raw, Transport::Udp, &shared).await {
                                send_udp(&sock, &reply, peer).await;
                            }
                        });
                    }
                }
            }
            Some(_) = forwards.join_next(), if !forwards.is_empty() => {}
        }
    }
}

async fn send_udp(sock: &UdpSocket, reply: &[u8], peer: SocketAddr) {
    if let Err(e) = sock.send_to(reply, peer).await {
        tracing::debug!("dns: cannot answer {peer}: {e}");
    }
}

async fn tcp_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            got = listener.accept() => match got {
                Ok((stream, peer)) if connections.len() < MAX_TCP => {
                    connections.spawn(tcp_connection(stream, peer, shared.clone()));
                }
                Ok((_, peer)) => tracing::debug!("dns: {MAX_TCP} TCP connections open; closing the one from {peer}"),
                Err(e) => {
                    tracing::debug!("dns: tcp accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Answer the queries of one TCP connection in turn until it closes or idles.
async fn tcp_connection(mut stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    loop {
        let packet = match tokio::time::timeout(TCP_IDLE, read_frame(&mut stream)).await {
            Ok(Ok(packet)) => packet,
            Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return,
            Ok(Err(e)) => return tracing::debug!("dns: tcp {peer}: {e}"),
            Err(_) => return,
        };
        let reply = match handle(&packet, Transport::Tcp, &shared) {
            Outcome::Reply(reply) => reply,
            Outcome::Forward(request) => match forward(&request, &packet, Transport::Tcp, &shared).await {
                Some(reply) => reply,
                None => return,
            },
            Outcome::Drop => return,
        };
        if let Err(e) = write_frame(&mut stream, &reply).await {
            return tracing::debug!("dns: tcp {peer}: {e}");
        }
    }
}

/// Answer a packet from the records, or say it must be forwarded or dropped.
fn handle(packet: &[u8], transport: Transport, shared: &Shared) -> Outcome {
    // Too short for a header, or a response (answering those could loop between servers).
    if packet.len() < 12 || packet[2] & 0x80 != 0 {
        return Outcome::Drop;
    }
    let request = match Message::from_vec(packet) {
        Ok(request) => request,
        Err(e) => {
            tracing::debug!("dns: malformed query: {e}");
            return Outcome::Reply(format_error(packet));
        }
    };
    let limit = client_limit(&request, transport);
    let reply = match request.queries() {
        _ if request.op_code() != OpCode::Query => error_reply(&request, ResponseCode::NotImp),
        [query] => {
            let lookup = {
                let records = shared.records.read().unwrap_or_else(PoisonError::into_inner);
                records.answer(&shared.config.domain, &query.name().to_ascii(), query.query_type())
            };
            let transfer = matches!(query.query_type(), RecordType::AXFR | RecordType::IXFR);
            match lookup {
                Lookup::Forward => return Outcome::Forward(request),
                _ if query.query_class() != DNSClass::IN || transfer => error_reply(&request, ResponseCode::Refused),
                lookup => local_reply(&request, lookup, shared)
                    .unwrap_or_else(|_| error_reply(&request, ResponseCode::ServFail)),
            }
        }
        _ => error_reply(&request, ResponseCode::FormErr),
    };
    encode(&reply, limit).map_or(Outcome::Drop, Outcome::Reply)
}

/// The most a reply to this client may hold.
fn client_limit(request: &Message, transport: Transport) -> usize {
    match transport {
        Transport::Udp => request.max_payload() as usize,
        Transport::Tcp => u16::MAX as usize,
    }
}

/// A reply from the cluster's records.
fn local_reply(request: &Message, lookup: Lookup, shared: &Shared) -> Result<Message, ProtoError> {
    let mut reply = empty_reply(request);
    reply.set_authoritative(true);
    match lookup {
        Lookup::Found { answers, additional } => {
            for rr in &answers {
                reply.add_answer(record(rr, shared)?);
            }
            for rr in &additional {
                reply.add_additional(record(rr, shared)?);
            }
        }
        Lookup::NoData { zone } => {
            reply.add_name_server(soa(&zone, shared)?);
        }
        Lookup::NxDomain { zone } => {
            reply.set_response_code(ResponseCode::NXDomain);
            reply.add_name_server(soa(&zone, shared)?);
        }
        Lookup::Forward => {}
    }
    Ok(reply)
}

/// The reply header and question for `request`, with no records yet.
fn empty_reply(request: &Message) -> Message {
    let mut reply = Message::new();
    reply
        .set_id(request.id())
        .set_message_type(MessageType::Response)
        .set_op_code(request.op_code())
        .set_recursion_desired(request.recursion_desired())
        .set_recursion_available(true)
        .set_checking_disabled(request.checking_disabled());
    reply.add_queries(request.queries().iter().cloned());
    if request.extensions().is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        reply.set_edns(edns);
    }
    reply
}

fn error_reply(request: &Message, code: ResponseCode) -> Message {
    let mut reply = empty_reply(request);
    reply.set_response_code(code);
    reply
}

/// FORMERR for a packet that does not parse: its header only, turned into a response.
fn format_error(packet: &[u8]) -> Vec<u8> {
    let mut reply = packet[..12].to_vec();
    reply[2] = 0x80 | (packet[2] & 0x79); // QR, the same opcode and RD
    reply[3] = 0x80 | ResponseCode::FormErr.low(); // RA, FORMERR
    reply[4..].fill(0); // no sections
    reply
}

/// The wire form of `message`, cut to header and question (TC set) when over `limit`.
fn encode(message: &Message, limit: usize) -> Option<Vec<u8>> {
    let bytes = message.to_vec().inspect_err(|e| tracing::debug!("dns: cannot encode a reply: {e}")).ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    message.truncate().to_vec().ok()
}

/// A record of the wire from one of ours, with the configured TTL.
fn record(rr: &Rr, shared: &Shared) -> Result<Record, ProtoError> {
    let name = Name::from_ascii(&rr.name)?;
    let data = match &rr.data {
        RrData::A(ip) => RData::A(rdata::A(*ip)),
        RrData::Srv { priority, weight, port, target } => {
            RData::SRV(rdata::SRV::new(*priority, *weight, *port, Name::from_ascii(target)?))
        }
        RrData::Ptr(target) => RData::PTR(rdata::PTR(Name::from_ascii(target)?)),
        RrData::Txt(text) => RData::TXT(rdata::TXT::new(vec![text.clone()])),
        RrData::Ns(target) => RData::NS(rdata::NS(Name::from_ascii(target)?)),
        RrData::Soa => return soa(&rr.name, shared),
    };
    Ok(Record::from_rdata(name, shared.config.ttl, data))
}

/// The SOA record of `zone`, with CoreDNS's names and timers; its minimum is the TTL,
/// so clients cache "no such name" as long as the names themselves.
fn soa(zone: &str, shared: &Shared) -> Result<Record, ProtoError> {
    let ttl = shared.config.ttl;
    let zone = zone.trim_end_matches('.');
    let data = rdata::SOA::new(
        Name::from_ascii(ns_name(zone))?,
        Name::from_ascii(format!("hostmaster.{zone}."))?,
        shared.serial,
        7200,
        1800,
        86400,
        ttl,
    );
    Ok(Record::from_rdata(Name::from_ascii(format!("{zone}."))?, ttl.min(300), RData::SOA(data)))
}

/// Ask the upstreams in turn; the reply for the client (SERVFAIL when none answered).
async fn forward(request: &Message, raw: &[u8], transport: Transport, shared: &Shared) -> Option<Vec<u8>> {
    let limit = client_limit(request, transport);
    let timeout = shared.config.upstream_timeout;
    for &server in &shared.config.upstreams {
        match upstream::ask(server, raw, request, transport == Transport::Tcp, timeout).await {
            Ok(reply) if reply.len() <= limit => return Some(reply),
            Ok(reply) => return Message::from_vec(&reply).ok()?.truncate().to_vec().ok(),
            Err(e) => tracing::debug!("dns: upstream {server}: {e}"),
        }
    }
    let name = request.queries().first().map(|q| q.name().to_string()).unwrap_or_default();
    tracing::debug!("dns: no upstream answered for {name}; SERVFAIL");
    encode(&error_reply(request, ResponseCode::ServFail), limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upstream_that_is_this_server_is_left_out() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(is_self(addr("10.96.0.10:53"), addr("10.96.0.10:53")));
        assert!(is_self(addr("127.0.0.1:53"), addr("0.0.0.0:53")));
        assert!(!is_self(addr("127.0.0.53:53"), addr("127.0.0.1:53")));
        assert!(!is_self(addr("10.0.0.2:53"), addr("0.0.0.0:53")));
        assert!(!is_self(addr("127.0.0.1:53"), addr("0.0.0.0:5353")));
    }

    #[test]
    fn format_error_keeps_id_opcode_and_rd() {
        let packet = [0x12, 0x34, 0x11, 0x20, 0, 1, 0, 0, 0, 0, 0, 0, 0xff];
        assert_eq!(format_error(&packet), [0x12, 0x34, 0x91, 0x81, 0, 0, 0, 0, 0, 0, 0, 0]);
    }
}
