//! A small HTTP/1.1 client for the node agent's Unix socket (what `podlab get/logs/exec` use).
//!
//! HTTP over a Unix socket is plain text: a request line, headers, a blank line, a body. The
//! answer has a status line and headers, then a body whose length is given, or in chunks
//! (`<hex size>\r\n<bytes>\r\n`, ending with a zero-size chunk) when it is streamed.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A connection target: the agent's socket.
#[derive(Debug, Clone)]
pub struct Client {
    pub socket: PathBuf,
}

/// A response: status code and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The body as JSON, or an error carrying the agent's message.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        if self.status >= 300 {
            return Err(Error::invalid(self.text().trim().to_string()));
        }
        serde_json::from_slice(&self.body).map_err(|e| Error::invalid(format!("bad answer from the node agent: {e}")))
    }
}

impl Client {
    pub fn new(socket: &Path) -> Self {
        Client { socket: socket.to_path_buf() }
    }

    fn connect(&self) -> Result<UnixStream> {
        UnixStream::connect(&self.socket).map_err(|e| {
            Error::Missing(format!(
                "cannot reach the node agent at {}: {e} (start it with `podlab node --detach`, or `podlab run -f FILE`)",
                self.socket.display()
            ))
        })
    }

    /// Whether an agent answers on the socket.
    pub fn alive(&self) -> bool {
        self.get("/healthz").is_ok_and(|a| a.status == 200)
    }

    /// `GET path`, the whole body.
    pub fn get(&self, path: &str) -> Result<Answer> {
        let mut body = Vec::new();
        let status = self.request("GET", path, None, &mut body)?;
        Ok(Answer { status, body })
    }

    /// `POST path` with a JSON body.
    pub fn post_json(&self, path: &str, value: &serde_json::Value) -> Result<Answer> {
        let mut body = Vec::new();
        let status = self.request("POST", path, Some(value.to_string().as_bytes()), &mut body)?;
        Ok(Answer { status, body })
    }

    /// Send a request and copy the body into `out` as it arrives (for `logs -f`).
    pub fn request(&self, method: &str, path: &str, body: Option<&[u8]>, out: &mut dyn Write) -> Result<u16> {
        let mut s = self.connect()?;
        let io = |e: std::io::Error| Error::io("talk to the node agent at", &self.socket, e);
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
        if let Some(b) = body {
            head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", b.len()));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).map_err(io)?;
        if let Some(b) = body {
            s.write_all(b).map_err(io)?;
        }
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line).map_err(io)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| Error::invalid(format!("bad answer from the node agent: {line:?}")))?;
        let (mut length, mut chunked) = (None, false);
        loop {
            line.clear();
            if r.read_line(&mut line).map_err(io)? == 0 || line == "\r\n" || line == "\n" {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse::<u64>().ok();
            } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
        }
        if chunked {
            copy_chunked(&mut r, out).map_err(io)?;
        } else if let Some(n) = length {
            std::io::copy(&mut r.take(n), out).map_err(io)?;
        } else {
            std::io::copy(&mut r, out).map_err(io)?;
        }
        Ok(status)
    }
}

/// Decode a chunked body into `out`, flushing after each chunk.
fn copy_chunked(r: &mut impl BufRead, out: &mut dyn Write) -> std::io::Result<()> {
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let size_text = line.trim().split(';').next().unwrap_or_default();
        let size = u64::from_str_radix(size_text, 16).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad chunk size {size_text:?}"))
        })?;
        if size == 0 {
            return Ok(());
        }
        std::io::copy(&mut r.by_ref().take(size), out)?;
        out.flush()?;
        line.clear();
        r.read_line(&mut line)?;
    }
}

/// Percent-encode a query value.
pub fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_decoded() {
        let raw = b"5\r\nhello\r\n7;x=y\r\n, world\r\n0\r\n\r\n";
        let mut out = Vec::new();
        copy_chunked(&mut &raw[..], &mut out).unwrap();
        assert_eq!(out, b"hello, world");
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }
}
