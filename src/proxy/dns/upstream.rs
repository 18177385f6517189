//! Asking an upstream name server, as a forwarder does: the client's query goes on as it is,
//! under a fresh random id and from a fresh random source port, so that a late or forged
//! reply cannot pass for the answer. A UDP reply with the TC bit set ("truncated: too big for
//! a datagram") is asked again over TCP, where each message goes with its 2-byte length.

use std::hash::BuildHasher;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Ask `upstream` the query `raw` (parsed: `request`), over TCP or else UDP, within `timeout`
/// for each exchange; the reply, with the client's id.
pub(super) async fn ask(
    upstream: SocketAddr,
    raw: &[u8],
    request: &Message,
    over_tcp: bool,
    timeout: Duration,
) -> io::Result<Vec<u8>> {
    let id = random_id();
    let mut query = raw.to_vec();
    query[..2].copy_from_slice(&id.to_be_bytes());
    let reply = match over_tcp {
        true => exchange_tcp(upstream, &query, timeout).await?,
        false => match exchange_udp(upstream, &query, id, timeout).await? {
            // Too big for UDP: ask again over TCP, keep the cut reply if that fails.
            cut if cut[2] & 0x02 != 0 => exchange_tcp(upstream, &query, timeout).await.unwrap_or(cut),
            reply => reply,
        },
    };
    let mut reply = check_reply(reply, id, request)?;
    reply[..2].copy_from_slice(&request.id().to_be_bytes());
    Ok(reply)
}

/// Keep an upstream reply only if it answers our query: our id, a response, our question.
fn check_reply(reply: Vec<u8>, id: u16, request: &Message) -> io::Result<Vec<u8>> {
    let parsed = Message::from_vec(&reply).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let ours =
        parsed.id() == id && parsed.message_type() == MessageType::Response && parsed.queries() == request.queries();
    match ours {
        true => Ok(reply),
        false => Err(io::Error::new(io::ErrorKind::InvalidData, "a reply to another question")),
    }
}

/// One query to `upstream` over UDP, from a new socket (a new random source port).
async fn exchange_udp(upstream: SocketAddr, query: &[u8], id: u16, timeout: Duration) -> io::Result<Vec<u8>> {
    let local: SocketAddr = match upstream {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = UdpSocket::bind(local).await?;
    sock.connect(upstream).await?;
    let exchange = async {
        sock.send(query).await?;
        let mut buf = vec![0u8; u16::MAX as usize];
        loop {
            let n = sock.recv(&mut buf).await?;
            if n >= 12 && buf[..2] == id.to_be_bytes() {
                buf.truncate(n);
                return Ok(buf);
            }
        }
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| timed_out(timeout))?
}

/// One query to `upstream` over a new TCP connection.
async fn exchange_tcp(upstream: SocketAddr, query: &[u8], timeout: Duration) -> io::Result<Vec<u8>> {
    let exchange = async {
        let mut stream = TcpStream::connect(upstream).await?;
        write_frame(&mut stream, query).await?;
        read_frame(&mut stream).await
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| timed_out(timeout))?
}

fn timed_out(after: Duration) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("no answer within {after:?}"))
}

/// A query id no one can guess: SipHash with the process's random keys over a counter.
fn random_id() -> u16 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    std::collections::hash_map::RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed)) as u16
}

/// One DNS message of a TCP stream: two bytes of length, then the message.
pub(super) async fn read_frame(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let mut message = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut message).await?;
    Ok(message)
}

pub(super) async fn write_frame(stream: &mut TcpStream, message: &[u8]) -> io::Result<()> {
    let len = u16::try_from(message.len()).map_err(|_| io::Error::other("DNS message over 65535 bytes"))?;
    let mut frame = Vec::with_capacity(message.len() + 2);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(message);
    stream.write_all(&frame).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_ids_differ() {
        let ids: std::collections::BTreeSet<u16> = (0..100).map(|_| random_id()).collect();
        assert!(ids.len() > 90, "{} distinct ids of 100", ids.len());
    }
}
