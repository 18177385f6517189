//! Image references: `busybox`, `ghcr.io/org/app:1.2`, `127.0.0.1:5000/a/b@sha256:…`.
//!
//! A reference names a repository on a registry, plus a tag (a movable name) and/or a
//! digest (the sha256 of the manifest, which never changes). Short names are normalised
//! the way Docker does: `busybox` is `docker.io/library/busybox:latest`.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// The registry used when a reference names none.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The tag used when a reference names neither a tag nor a digest.
pub const DEFAULT_TAG: &str = "latest";
/// Longest repository name (registry host included), as in the distribution grammar.
const NAME_MAX: usize = 255;
/// Longest tag: one word character then up to 127 of `[\w.-]`.
const TAG_MAX: usize = 128;

/// A parsed, normalised image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host, with port if any: `docker.io`, `127.0.0.1:5000`.
    pub registry: String,
    /// Repository path inside the registry: `library/busybox`.
    pub repository: String,
    /// Tag, if given (or `latest` when neither tag nor digest was given).
    pub tag: Option<String>,
    /// Manifest digest `sha256:<64 hex>`, if given. It wins over the tag when pulling.
    pub digest: Option<String>,
}

impl Reference {
    /// The tag or digest to ask the registry for: the digest when there is one.
    pub fn manifest_ref(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or(DEFAULT_TAG)
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The host to send API requests to (Docker Hub's API lives on another host).
    pub fn api_host(&self) -> &str {
        if self.registry == DEFAULT_REGISTRY { "registry-1.docker.io" } else { &self.registry }
    }

    /// True for registries on this machine, which are spoken to in plain HTTP by default.
    pub fn is_insecure_default(&self) -> bool {
        matches!(host_without_port(&self.registry), "localhost" | "127.0.0.1" | "[::1]")
    }

    /// The same repository at another digest (used to fetch a platform's manifest).
    pub fn with_digest(&self, digest: &str) -> Reference {
        Reference { digest: Some(digest.to_string()), ..self.clone() }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self> {
        parse(input).map_err(|why| Error::invalid(format!("invalid image reference {input:?}: {why}")))
    }
}

/// Parses and normalises; the error string says what is wrong (the caller adds the input).
fn parse(input: &str) -> std::result::Result<Reference, String> {
    if input.is_empty() {
        return Err("empty".into());
    }
    let (rest, digest) = match input.split_once('@') {
        Some((rest, digest)) => (rest, Some(check_digest(digest)?)),
        None => (input, None),
    };
    let (name, tag) = split_tag(rest);
    if let Some(tag) = tag {
        check_tag(tag)?;
    }
    let (registry, repository) = split_registry(name)?;
    check_host(registry)?;
    check_path(&repository)?;
    if registry.len() + 1 + repository.len() > NAME_MAX {
        return Err(format!("name is longer than {NAME_MAX} characters"));
    }
    let tag = match (tag, &digest) {
        (None, None) => Some(DEFAULT_TAG.to_string()),
        (tag, _) => tag.map(str::to_string),
    };
    Ok(Reference { registry: registry.to_string(), repository, tag, digest })
}

/// `name:tag` → (name, Some(tag)); a ':' before the last '/' is a port, not a tag.
fn split_tag(s: &str) -> (&str, Option<&str>) {
    match s.rfind(':') {
        Some(colon) if !s[colon..].contains('/') => (&s[..colon], Some(&s[colon + 1..])),
        _ => (s, None),
    }
}

/// Splits off the registry host (Docker's rule: the first component is a host when it
/// has a '.' or ':' or is `localhost`) and applies the docker.io normalisations.
fn split_registry(name: &str) -> std::result::Result<(&str, String), String> {
    let (registry, path) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" || first.starts_with('[') => {
            (first, rest)
        }
        _ => (DEFAULT_REGISTRY, name),
    };
    let registry = if registry == "index.docker.io" { DEFAULT_REGISTRY } else { registry };
    if registry == DEFAULT_REGISTRY && !path.contains('/') {
        return Ok((registry, format!("library/{path}")));
    }
    Ok((registry, path.to_string()))
}

fn check_digest(d: &str) -> std::result::Result<String, String> {
    let Some((algo, hex)) = d.split_once(':') else {
        return Err(format!("digest {d:?} must look like sha256:<64 hex digits>"));
    };
    if algo != "sha256" {
        return Err(format!("digest algorithm {algo:?} is not supported (only sha256)"));
    }
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(format!("digest {d:?} must be sha256: followed by 64 lowercase hex digits"));
    }
    Ok(d.to_string())
}

fn check_tag(tag: &str) -> std::result::Result<(), String> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= TAG_MAX
        && word(bytes[0])
        && bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!("tag {tag:?} must be 1-{TAG_MAX} letters, digits, '_', '.' or '-', not starting with '.' or '-'"))
    }
}

/// Host: DNS labels (letters, digits, inner '-') joined by '.', or `[ipv6]`; optional `:port`.
fn check_host(registry: &str) -> std::result::Result<(), String> {
    let (host, port) = match registry.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (h, Some(p)),
        _ => (registry, None),
    };
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) || port.parse::<u16>().is_err())
    {
        return Err(format!("registry port {port:?} is not a number 0-65535"));
    }
    let ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        !v6.is_empty() && v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    } else {
        !host.is_empty() && host.split('.').all(is_dns_label)
    };
    if ok { Ok(()) } else { Err(format!("registry host {host:?} is not a valid host name")) }
}

fn is_dns_label(l: &str) -> bool {
    let b = l.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
}

fn check_path(path: &str) -> std::result::Result<(), String> {
    if path.is_empty() {
        return Err("repository name is empty".into());
    }
    if path.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!("repository name {path:?} must be lowercase"));
    }
    for component in path.split('/') {
        check_component(component).map_err(|why| format!("repository path component {component:?} {why}"))?;
    }
    Ok(())
}

/// `[a-z0-9]+` runs joined by one separator: `.`, `_`, `__`, or one or more `-`.
fn check_component(c: &str) -> std::result::Result<(), &'static str> {
    if c.is_empty() {
        return Err("is empty (two '/' in a row, or a '/' at an end)");
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let b = c.as_bytes();
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return Err("must start and end with a lowercase letter or digit");
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let dashes = sep.bytes().all(|x| x == b'-');
        if !(matches!(sep, "." | "_" | "__") || dashes) {
            return Err("may only use lowercase letters, digits and the separators '.', '_', '__', '-'");
        }
    }
    Ok(())
}

fn host_without_port(registry: &str) -> &str {
    if registry.starts_with('[') {
        return registry.split_inclusive(']').next().unwrap_or(registry);
    }
    registry.split(':').next().unwrap_or(registry)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn p(s: &str) -> Reference {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> String {
        s.parse::<Reference>().expect_err(s).to_string()
    }

    #[test]
    fn short_names_are_normalised_like_docker() {
        let r = p("busybox");
        assert_eq!((r.registry.as_str(), r.repository.as_str()), ("docker.io", "library/busybox"));
        assert_eq!(r.tag.as_deref(), Some("latest"));
        assert_eq!(r.digest, None);
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        assert_eq!(p("user/app").to_string(), "docker.io/user/app:latest");
        assert_eq!(p("docker.io/busybox:1.36").to_string(), "docker.io/library/busybox:1.36");
        assert_eq!(p("index.docker.io/user/app").to_string(), "docker.io/user/app:latest");
    }

    #[test]
    fn registries_with_ports_and_tags() {
        let r = p("localhost:5000/x");
        assert_eq!((r.registry.as_str(), r.repository.as_str()), ("localhost:5000", "x"));
        assert_eq!(r.tag.as_deref(), Some("latest"));
        let r = p("127.0.0.1:5000/a/b:tag");
        assert_eq!((r.registry.as_str(), r.repository.as_str()), ("127.0.0.1:5000", "a/b"));
        assert_eq!(r.tag.as_deref(), Some("tag"));
        assert_eq!(r.to_string(), "127.0.0.1:5000/a/b:tag");
        assert_eq!(p("localhost/x").registry, "localhost");
        assert_eq!(p("[::1]:5000/x:v1").registry, "[::1]:5000");
        // a first component without '.' or ':' is a path, not a host
        assert_eq!(p("team/app").registry, "docker.io");
    }

    #[test]
    fn digests_alone_and_with_tags() {
        let r = p(&format!("ghcr.io/o/r@sha256:{HEX}"));
        assert_eq!(r.registry, "ghcr.io");
        assert_eq!(r.repository, "o/r");
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some(format!("sha256:{HEX}").as_str()));
        assert_eq!(r.manifest_ref(), format!("sha256:{HEX}"));
        assert_eq!(r.to_string(), format!("ghcr.io/o/r@sha256:{HEX}"));

        let r = p(&format!("name:tag@sha256:{HEX}"));
        assert_eq!(r.tag.as_deref(), Some("tag"));
        assert_eq!(r.manifest_ref(), format!("sha256:{HEX}"), "digest wins");
        assert_eq!(r.to_string(), format!("docker.io/library/name:tag@sha256:{HEX}"));
    }

    #[test]
    fn api_host_and_insecure_default() {
        assert_eq!(p("busybox").api_host(), "registry-1.docker.io");
        assert_eq!(p("ghcr.io/o/r").api_host(), "ghcr.io");
        assert!(p("localhost:5000/x").is_insecure_default());
        assert!(p("localhost/x").is_insecure_default());
        assert!(p("127.0.0.1:5001/x").is_insecure_default());
        assert!(p("[::1]:5000/x").is_insecure_default());
        assert!(!p("ghcr.io/o/r").is_insecure_default());
        assert!(!p("busybox").is_insecure_default());
        assert!(!p("127.0.0.1.example.com/x").is_insecure_default());
    }

    #[test]
    fn separators_in_path_components() {
        for ok in ["a.b/c_d/e__f/g-h/i--j", "a0/b9", "x/y.z-1_2"] {
            p(&format!("localhost:5000/{ok}"));
        }
    }

    #[test]
    fn bad_inputs_say_what_is_wrong() {
        assert!(err("").contains("empty"));
        assert!(err("Busybox").contains("lowercase"));
        assert!(err("ghcr.io/Org/app").contains("lowercase"));
        assert!(err("a//b").contains("is empty"));
        assert!(err("a/b/").contains("is empty"));
        assert!(err("a___b").contains("separators"));
        assert!(err("a_.b").contains("separators"));
        assert!(err("-a").contains("start and end"));
        assert!(err("a:").contains("tag"));
        assert!(err("a:-x").contains("tag"));
        assert!(err(&format!("a:{}", "x".repeat(129))).contains("tag"));
        p(&format!("a:{}", "x".repeat(128)));
        assert!(err("a@sha256:abc").contains("64 lowercase hex"));
        assert!(err(&format!("a@sha256:{}", HEX.to_uppercase())).contains("64 lowercase hex"));
        assert!(err(&format!("a@md5:{HEX}")).contains("not supported"));
        assert!(err("a@").contains("digest"));
        assert!(err("localhost:99999/x").contains("port"));
        assert!(err("localhost:/x").contains("port"));
        assert!(err("bad_host.io/x").contains("host"));
        assert!(err("-bad.io/x").contains("host"));
        assert!(err(&format!("ghcr.io/{}", "a".repeat(250))).contains("longer than 255"));
        assert!(err("a b").contains("separators"));
        // the input is named in the message
        assert!(err("UPPER").contains("\"UPPER\""));
    }
}
