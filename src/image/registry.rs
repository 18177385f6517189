//! OCI distribution client: pulls manifests and blobs over the registry HTTP API (`/v2/`).
//!
//! A manifest (GET /v2/<repo>/manifests/<tag|digest>) lists an image's config and layers by
//! digest. Blobs (GET /v2/<repo>/blobs/<digest>) are content-addressed: the sha256 of the
//! bytes is their name, so every download is checked against it. An index (or Docker
//! "manifest list") points to one manifest per platform (linux/amd64, linux/arm64, …).
//! A 401 answer carries a `WWW-Authenticate` challenge: Basic (send a password) or Bearer
//! (get a token from the named realm first).

use std::collections::{HashMap, HashSet};
use std::error::Error as StdError;
use std::fmt;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, Platform};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_RANGE, CONTENT_TYPE, HeaderMap, HeaderValue, RANGE};
use reqwest::{Response, StatusCode};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::reference::Reference;
use crate::error::{Error, Result};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1";

/// Manifests bigger than this are refused (containerd uses the same limit).
const MANIFEST_MAX: usize = 4 << 20;
/// Attempts per request (first try included) on connection errors, 5xx and 429.
const TRIES: u32 = 3;
/// Backoff before retry n (0-based) is BACKOFF · 2^n.
const BACKOFF: Duration = Duration::from_millis(200);

/// The platform to pick from an index: `linux/arm64/v8`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetPlatform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl TargetPlatform {
    /// linux + this machine's architecture, in OCI's names (x86_64 → amd64, aarch64 → arm64/v8).
    pub fn host() -> Self {
        let arch = super::host_arch();
        let variant = match arch {
            "arm64" => Some("v8"),
            "arm" => Some("v7"),
            _ => None,
        };
        TargetPlatform { os: "linux".into(), arch: arch.into(), variant: variant.map(String::from) }
    }

    /// How well an index entry fits: None (not at all), 1 (variant unspecified), 2 (exact).
    fn score(&self, p: &Platform) -> Option<u8> {
        if p.os().to_string() != self.os || p.architecture().to_string() != self.arch {
            return None;
        }
        match (self.variant.as_deref(), p.variant().as_deref()) {
            (Some(want), Some(have)) if want == have => Some(2),
            (Some(_), Some(_)) => None,
            (None, None) => Some(2),
            _ => Some(1),
        }
    }
}

impl fmt::Display for TargetPlatform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        match &self.variant {
            Some(v) => write!(f, "/{v}"),
            None => Ok(()),
        }
    }
}

/// How to talk to registries.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Allow plain HTTP for any registry (after HTTPS fails). Local registries always use HTTP.
    pub insecure: bool,
    /// Platform to pick from an index; default linux + host architecture.
    pub platform: Option<TargetPlatform>,
    /// Docker's config.json for credentials; default `$DOCKER_CONFIG/config.json`, then
    /// `~/.docker/config.json`.
    pub docker_config: Option<PathBuf>,
    /// Username and password, overriding config.json.
    pub credentials: Option<(String, String)>,
    /// Blobs downloaded at once by [`Client::fetch_blobs`].
    pub max_parallel: usize,
    /// Show progress bars (only when stderr is a terminal).
    pub progress: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure: false,
            platform: None,
            docker_config: None,
            credentials: None,
            max_parallel: 4,
            progress: false,
        }
    }
}

/// A manifest found for a reference (after choosing a platform, when it was an index).
#[derive(Clone, Debug)]
pub struct Resolved {
    /// sha256 digest of `raw_manifest`.
    pub manifest_digest: String,
    pub manifest: ImageManifest,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    /// The manifest exactly as served (its sha256 is `manifest_digest`).
    pub raw_manifest: Vec<u8>,
    /// The index the manifest was picked from: (digest, raw bytes).
    pub index: Option<(String, Vec<u8>)>,
}

/// A registry client. Share one per pull: it caches tokens and the HTTP connections.
pub struct Client {
    http: reqwest::Client,
    opts: ClientOptions,
    /// Authorization header values by (registry, scope); scope "" holds Basic credentials.
    auth: Mutex<HashMap<(String, String), String>>,
    /// Registries that answered only on plain HTTP (with `insecure`).
    plain_http: Mutex<HashMap<String, bool>>,
    bars: Option<MultiProgress>,
}

/// A manifest or index as fetched and checked.
struct Fetched {
    digest: String,
    bytes: Vec<u8>,
    is_index: bool,
}

impl Client {
    pub fn new(opts: ClientOptions) -> Result<Client> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("podlab/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Error::Registry { action: "create HTTP client".into(), message: chain(&e) })?;
        let bars = (opts.progress && std::io::stderr().is_terminal()).then(MultiProgress::new);
        Ok(Client { http, opts, auth: Mutex::default(), plain_http: Mutex::default(), bars })
    }

    /// Finds the manifest of `r` for our platform, checked against its digest.
    pub async fn resolve(&self, r: &Reference) -> Result<Resolved> {
        let top = self.fetch_manifest(r, r.manifest_ref(), r.digest.as_deref()).await?;
        if !top.is_index {
            return to_resolved(r, top, None);
        }
        let index: ImageIndex = parse_json(r, "index", &top.bytes)?;
        let entry = self.pick_platform(r, &index)?;
        let digest = entry.digest().to_string();
        let child = self.fetch_manifest(r, &digest, Some(&digest)).await?;
        if child.is_index {
            return Err(registry_err(r, format!("index entry {digest} is itself an index (not supported)")));
        }
        if child.bytes.len() as u64 != entry.size() {
            let msg = format!("manifest {digest} is {} bytes, the index says {}", child.bytes.len(), entry.size());
            return Err(registry_err(r, msg));
        }
        to_resolved(r, child, Some((top.digest, top.bytes)))
    }

    /// Downloads one blob to `dest`, verified; a no-op when `dest` exists.
    pub async fn fetch_blob(&self, r: &Reference, d: &Descriptor, dest: &Path) -> Result<()> {
        let bar = self.new_bar(d);
        let res = self.fetch_blob_to(r, d, dest, bar.as_ref()).await;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        res
    }

    /// Downloads blobs in parallel (at most `max_parallel` at once). Stops at the first error.
    /// A destination listed twice (the same layer twice in a manifest) is fetched once.
    pub async fn fetch_blobs(&self, r: &Reference, blobs: &[(Descriptor, PathBuf)]) -> Result<()> {
        let mut seen = HashSet::new();
        let unique = blobs.iter().filter(|(_, dest)| seen.insert(dest.clone()));
        let mut running = futures::stream::iter(unique)
            .map(|(d, dest)| self.fetch_blob(r, d, dest))
            .buffer_unordered(self.opts.max_parallel.max(1));
        while let Some(res) = running.next().await {
            res?;
        }
        Ok(())
    }

    // ---- manifests ----

    async fn fetch_manifest(&self, r: &Reference, reference: &str, expected: Option<&str>) -> Result<Fetched> {
        let accept = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].join(", ");
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_str(&accept).expect("static header"));
        let resp = self.get(r, &format!("manifests/{reference}"), headers).await?;
        let resp = ok_or_error(r, &format!("manifest {reference}"), resp).await?;
        let served = header_str(&resp, "docker-content-digest");
        let content_type = header_str(&resp, CONTENT_TYPE.as_str()).unwrap_or_default();
        let bytes = read_limited(r, resp, MANIFEST_MAX).await?;
        let digest = sha256_digest(&bytes);
        let expected = expected.map(str::to_string).or(served.filter(|d| d.starts_with("sha256:")));
        if let Some(expected) = expected
            && expected != digest
        {
            let msg = format!("manifest {expected} has digest {digest} — corrupted or tampered; not used");
            return Err(registry_err(r, msg));
        }
        let is_index = manifest_kind(r, &content_type, &bytes)?;
        Ok(Fetched { digest, bytes, is_index })
    }

    fn pick_platform<'a>(&self, r: &Reference, index: &'a ImageIndex) -> Result<&'a Descriptor> {
        let want = self.opts.platform.clone().unwrap_or_else(TargetPlatform::host);
        let mut best: Option<(u8, &Descriptor)> = None;
        for d in index.manifests() {
            let Some(score) = d.platform().as_ref().and_then(|p| want.score(p)) else {
                continue;
            };
            if best.is_none_or(|(s, _)| score > s) {
                best = Some((score, d));
            }
        }
        best.map(|(_, d)| d).ok_or_else(|| {
            let have: Vec<String> = index.manifests().iter().filter_map(|d| d.platform().as_ref()).map(show).collect();
            registry_err(r, format!("no {want} image in the index (it has: {}); choose a platform", have.join(", ")))
        })
    }

    // ---- blobs ----

    async fn fetch_blob_to(&self, r: &Reference, d: &Descriptor, dest: &Path, bar: Option<&ProgressBar>) -> Result<()> {
        if tokio::fs::try_exists(dest).await.map_err(|e| Error::io("check", dest, e))? {
            tracing::debug!(blob = %d.digest(), dest = %dest.display(), "already downloaded");
            return Ok(());
        }
        let want = blob_sha256(r, d)?;
        let tmp = partial_path(dest);
        let mut attempt = 0;
        loop {
            match self.download(r, d, &tmp, bar).await {
                Ok(have) if have == want => break,
                Ok(have) => {
                    remove_quietly(&tmp).await;
                    let msg = format!("blob {} has digest sha256:{have} — corrupted or tampered; not used", d.digest());
                    return Err(registry_err(r, msg));
                }
                Err(Step::Retry(e)) if attempt + 1 < TRIES => {
                    tracing::debug!(blob = %d.digest(), error = %e, "download interrupted, resuming");
                    tokio::time::sleep(BACKOFF * 2u32.pow(attempt)).await;
                    attempt += 1;
                }
                Err(Step::Retry(e) | Step::Fail(e)) => return Err(e),
            }
        }
        finish_file(&tmp, dest).await
    }

    /// One download attempt into `tmp`, resuming a partial file with a Range request.
    /// Returns the sha256 hex of the whole file; checks the size.
    async fn download(
        &self,
        r: &Reference,
        d: &Descriptor,
        tmp: &Path,
        bar: Option<&ProgressBar>,
    ) -> Result<String, Step> {
        let size = d.size();
        let (mut hasher, mut have) = hash_partial(tmp, size).await.map_err(Step::Fail)?;
        let mut headers = HeaderMap::new();
        if have > 0 {
            let range = HeaderValue::from_str(&format!("bytes={have}-")).expect("ascii");
            headers.insert(RANGE, range);
        }
        let resp = self.get(r, &format!("blobs/{}", d.digest()), headers).await.map_err(Step::Retry)?;
        let append = have > 0 && resumes_at(&resp, have);
        if !append {
            (hasher, have) = (Sha256::new(), 0);
        }
        let resp = ok_or_error(r, &format!("blob {}", d.digest()), resp).await.map_err(Step::Fail)?;
        let mut file = open_partial(tmp, append).await.map_err(Step::Fail)?;
        if let Some(bar) = bar {
            bar.set_position(have);
        }
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    let _ = file.flush().await; // keep what we have, to resume from it
                    return Err(Step::Retry(registry_err(r, format!("download cut: {}", chain(&e)))));
                }
            };
            have += chunk.len() as u64;
            if have > size {
                drop(file);
                remove_quietly(tmp).await;
                return Err(Step::Fail(registry_err(r, format!("blob {} is larger than {size} bytes", d.digest()))));
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(|e| Step::Fail(Error::io("write", tmp, e)))?;
            if let Some(bar) = bar {
                bar.set_position(have);
            }
        }
        file.flush().await.map_err(|e| Step::Fail(Error::io("write", tmp, e)))?;
        file.get_ref().sync_all().await.map_err(|e| Step::Fail(Error::io("fsync", tmp, e)))?;
        if have != size {
            drop(file);
            remove_quietly(tmp).await;
            let msg = format!("blob {} is {have} bytes, the manifest says {size}; not used", d.digest());
            return Err(Step::Fail(registry_err(r, msg)));
        }
        Ok(hex::encode(hasher.finalize()))
    }

    fn new_bar(&self, d: &Descriptor) -> Option<ProgressBar> {
        let bars = self.bars.as_ref()?;
        let style = ProgressStyle::with_template("{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .expect("valid template")
            .progress_chars("=> ");
        let bar = bars.add(ProgressBar::new(d.size()).with_style(style));
        let hex = d.digest().digest();
        bar.set_prefix(hex[..hex.len().min(12)].to_string());
        Some(bar)
    }

    // ---- requests, retries, auth ----

    /// GET /v2/<repo>/<path>, authenticating once on 401.
    async fn get(&self, r: &Reference, path: &str, headers: HeaderMap) -> Result<Response> {
        let scope = format!("repository:{}:pull", r.repository);
        let resp = self.send(r, path, &headers, &scope).await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        self.authenticate(r, &resp, &scope).await?;
        let resp = self.send(r, path, &headers, &scope).await?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            // With credentials they were refused; without, the repository is not public.
            let msg = match self.credentials(&r.registry)? {
                Some(_) => format!(
                    "registry {} refused the credentials (401): check --username/--password or docker login",
                    r.registry
                ),
                None => format!(
                    "registry {} needs credentials for {} (401): podlab image pull --username ... --password ..., or docker login",
                    r.registry, r.repository
                ),
            };
            return Err(registry_err(r, msg));
        }
        Ok(resp)
    }

    /// Sends with retries; with `insecure`, falls back to plain HTTP when HTTPS cannot connect.
    async fn send(&self, r: &Reference, path: &str, headers: &HeaderMap, scope: &str) -> Result<Response> {
        let plain = r.is_insecure_default() || self.plain_http.lock().unwrap().contains_key(&r.registry);
        let result = self.send_with(r, plain, path, headers, scope).await;
        match result {
            Err(e) if !plain && self.opts.insecure && e.is_connect() => {
                tracing::debug!(registry = %r.registry, "HTTPS failed ({}); trying plain HTTP", chain(&e));
                let resp = self.send_with(r, true, path, headers, scope).await;
                let resp = resp.map_err(|e| net_error(r, &e))?;
                self.plain_http.lock().unwrap().insert(r.registry.clone(), true);
                Ok(resp)
            }
            other => other.map_err(|e| net_error(r, &e)),
        }
    }

    async fn send_with(
        &self,
        r: &Reference,
        plain: bool,
        path: &str,
        headers: &HeaderMap,
        scope: &str,
    ) -> std::result::Result<Response, reqwest::Error> {
        let scheme = if plain { "http" } else { "https" };
        let url = format!("{scheme}://{}/v2/{}/{path}", r.api_host(), r.repository);
        retrying(&url, || {
            let mut req = self.http.get(&url).headers(headers.clone());
            if let Some(auth) = self.cached_auth(&r.registry, scope) {
                req = req.header(AUTHORIZATION, auth);
            }
            req
        })
        .await
    }

    fn cached_auth(&self, registry: &str, scope: &str) -> Option<String> {
        let auth = self.auth.lock().unwrap();
        auth.get(&(registry.to_string(), scope.to_string()))
            .or_else(|| auth.get(&(registry.to_string(), String::new())))
            .cloned()
    }

    fn store_auth(&self, registry: &str, scope: &str, value: String) {
        self.auth.lock().unwrap().insert((registry.to_string(), scope.to_string()), value);
    }

    /// Answers a 401: Bearer → fetch a token; Basic → use our credentials.
    async fn authenticate(&self, r: &Reference, resp: &Response, scope: &str) -> Result<()> {
        let header: Vec<&str> =
            resp.headers().get_all("www-authenticate").iter().filter_map(|v| v.to_str().ok()).collect();
        let challenges = parse_challenges(&header.join(", "));
        let creds = self.credentials(&r.registry)?;
        if let Some(bearer) = challenges.iter().find(|c| c.scheme.eq_ignore_ascii_case("bearer")) {
            let token = self.fetch_token(r, bearer, creds.as_ref(), scope).await?;
            self.store_auth(&r.registry, scope, format!("Bearer {token}"));
            return Ok(());
        }
        if challenges.iter().any(|c| c.scheme.eq_ignore_ascii_case("basic")) {
            let Some((user, pass)) = creds else {
                let msg = format!(
                    "registry {} wants a username and password: podlab image pull --username ... or docker login",
                    r.registry
                );
                return Err(registry_err(r, msg));
            };
            self.store_auth(&r.registry, "", format!("Basic {}", BASE64.encode(format!("{user}:{pass}"))));
            return Ok(());
        }
        let msg = format!("registry answered 401 without a Basic or Bearer challenge (WWW-Authenticate: {header:?})");
        Err(registry_err(r, msg))
    }

    /// GET <realm>?service=…&scope=… (with Basic credentials when we have them) → token.
    async fn fetch_token(
        &self,
        r: &Reference,
        challenge: &Challenge,
        creds: Option<&(String, String)>,
        scope: &str,
    ) -> Result<String> {
        let realm = challenge.param("realm").ok_or_else(|| registry_err(r, "Bearer challenge without realm".into()))?;
        let mut url = reqwest::Url::parse(realm)
            .map_err(|e| registry_err(r, format!("token realm {realm:?} is not a URL: {e}")))?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = challenge.param("service") {
                query.append_pair("service", service);
            }
            query.append_pair("scope", challenge.param("scope").unwrap_or(scope));
        }
        let resp = retrying(url.as_str(), || {
            let req = self.http.get(url.clone());
            match creds {
                Some((user, pass)) => req.basic_auth(user, Some(pass)),
                None => req,
            }
        })
        .await
        .map_err(|e| net_error(r, &e))?;
        let status = resp.status();
        if !status.is_success() {
            let who = creds.map(|(u, _)| format!(" for user {u}")).unwrap_or_default();
            let msg = format!("token server {realm} refused a token{who} ({status}): check --username/--password");
            return Err(registry_err(r, msg));
        }
        let body = read_limited(r, resp, 1 << 20).await?;
        let token: TokenResponse = parse_json(r, "token answer", &body)?;
        token
            .token
            .or(token.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| registry_err(r, format!("token server {realm} answered without a token")))
    }

    /// Credentials for `registry`: the options' override, else docker's config.json.
    fn credentials(&self, registry: &str) -> Result<Option<(String, String)>> {
        if let Some(c) = &self.opts.credentials {
            return Ok(Some(c.clone()));
        }
        let Some(path) = self.opts.docker_config.clone().or_else(default_docker_config) else {
            return Ok(None);
        };
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        let config: DockerConfig = serde_json::from_slice(&text)
            .map_err(|e| Error::invalid(format!("{}: not a docker config.json: {e}", path.display())))?;
        let want = config_key(registry);
        let Some(entry) = config.auths.iter().find(|(k, _)| config_key(k) == want).map(|(_, v)| v) else {
            return Ok(None);
        };
        entry.user_pass().map(Some).map_err(|e| Error::invalid(format!("{}: auths.{registry}: {e}", path.display())))
    }
}

/// A blob download attempt's failure: worth retrying (resuming), or final.
enum Step {
    Retry(Error),
    Fail(Error),
}

/// Runs `build().send()` up to TRIES times on connection errors, 5xx and 429.
async fn retrying(
    url: &str,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> std::result::Result<Response, reqwest::Error> {
    let mut attempt = 0;
    loop {
        let last = attempt + 1 >= TRIES;
        match build().send().await {
            Ok(resp)
                if !last && (resp.status().is_server_error() || resp.status() == StatusCode::TOO_MANY_REQUESTS) =>
            {
                tracing::debug!(url, status = %resp.status(), attempt, "retrying");
            }
            Err(e) if !last && (e.is_connect() || e.is_timeout()) => {
                tracing::debug!(url, error = %chain(&e), attempt, "retrying");
            }
            other => return other,
        }
        tokio::time::sleep(BACKOFF * 2u32.pow(attempt)).await;
        attempt += 1;
    }
}

// ---- responses ----

/// Passes 2xx answers through; turns others into errors naming the reference.
async fn ok_or_error(r: &Reference, what: &str, resp: Response) -> Result<Response> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = resp.text().await.unwrap_or_default();
    let detail = error_detail(&body);
    let msg = match status {
        StatusCode::NOT_FOUND if what.starts_with("blob") => {
            format!("{what} not found (404{detail}): the registry lost it, or the push was incomplete")
        }
        StatusCode::NOT_FOUND => format!("{what} not found (404{detail}): check the repository name and tag"),
        StatusCode::FORBIDDEN => format!("access to {what} denied (403{detail}): check your credentials' rights"),
        _ => format!("registry answered {status} for {what}{}", detail.replacen(',', ":", 1)),
    };
    Err(registry_err(r, msg))
}

/// `, MANIFEST_UNKNOWN manifest unknown` from the registry's JSON error body, if any.
fn error_detail(body: &str) -> String {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(Deserialize)]
    struct ErrorEntry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let Ok(errors) = serde_json::from_str::<Errors>(body) else {
        return String::new();
    };
    errors.errors.iter().map(|e| format!(", {} {}", e.code, e.message).trim_end().to_string()).collect()
}

async fn read_limited(r: &Reference, resp: Response, max: usize) -> Result<Vec<u8>> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(registry_err(r, format!("answer larger than {max} bytes refused")));
    }
    let mut body = resp.bytes_stream();
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| registry_err(r, format!("reading answer: {}", chain(&e))))?;
        if out.len() + chunk.len() > max {
            return Err(registry_err(r, format!("answer larger than {max} bytes refused")));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn header_str(resp: &Response, name: &str) -> Option<String> {
    resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// True when a 206 answer continues exactly at byte `have`.
fn resumes_at(resp: &Response, have: u64) -> bool {
    let Some(range) = resp.headers().get(CONTENT_RANGE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    resp.status() == StatusCode::PARTIAL_CONTENT
        && range.strip_prefix("bytes ").and_then(|r| r.split('-').next()).and_then(|s| s.parse::<u64>().ok())
            == Some(have)
}

/// Index or manifest? Decided by the document's own mediaType, else Content-Type, else shape.
fn manifest_kind(r: &Reference, content_type: &str, bytes: &[u8]) -> Result<bool> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        schema_version: Option<u32>,
    }
    let probe: Probe = parse_json(r, "manifest", bytes)?;
    let media_type = probe.media_type.unwrap_or_else(|| content_type.split(';').next().unwrap_or("").to_string());
    match media_type.trim() {
        OCI_INDEX | DOCKER_LIST => Ok(true),
        OCI_MANIFEST | DOCKER_MANIFEST => Ok(false),
        t if t.starts_with(DOCKER_SCHEMA1) || probe.schema_version == Some(1) => {
            Err(registry_err(r, "Docker schema 1 manifests (very old images) are not supported".into()))
        }
        _ => Ok(probe.manifests.is_some()),
    }
}

fn to_resolved(r: &Reference, m: Fetched, index: Option<(String, Vec<u8>)>) -> Result<Resolved> {
    let manifest: ImageManifest = parse_json(r, "manifest", &m.bytes)?;
    Ok(Resolved {
        manifest_digest: m.digest,
        config: manifest.config().clone(),
        layers: manifest.layers().clone(),
        manifest,
        raw_manifest: m.bytes,
        index,
    })
}

fn parse_json<T: serde::de::DeserializeOwned>(r: &Reference, what: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| registry_err(r, format!("the registry's {what} is not valid: {e}")))
}

fn show(p: &Platform) -> String {
    match p.variant() {
        Some(v) => format!("{}/{}/{v}", p.os(), p.architecture()),
        None => format!("{}/{}", p.os(), p.architecture()),
    }
}

// ---- files ----

/// The descriptor's sha256 hex, refusing other algorithms.
fn blob_sha256(r: &Reference, d: &Descriptor) -> Result<String> {
    let digest = d.digest();
    if digest.algorithm().to_string() != "sha256" {
        return Err(registry_err(r, format!("blob {digest}: only sha256 digests are supported")));
    }
    Ok(digest.digest().to_string())
}

/// `dir/.name.partial`: next to dest, so the final rename stays on one file system.
fn partial_path(dest: &Path) -> PathBuf {
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    dest.with_file_name(format!(".{name}.partial"))
}

/// Hash of a partial download already on disk (to resume it), or a fresh start.
async fn hash_partial(tmp: &Path, size: u64) -> Result<(Sha256, u64)> {
    let mut hasher = Sha256::new();
    let mut file = match tokio::fs::File::open(tmp).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((hasher, 0)),
        Err(e) => return Err(Error::io("open", tmp, e)),
    };
    let len = file.metadata().await.map_err(|e| Error::io("stat", tmp, e))?.len();
    if len >= size {
        return Ok((hasher, 0));
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut have = 0;
    loop {
        let n = file.read(&mut buf).await.map_err(|e| Error::io("read", tmp, e))?;
        if n == 0 {
            return Ok((hasher, have));
        }
        hasher.update(&buf[..n]);
        have += n as u64;
    }
}

async fn open_partial(tmp: &Path, append: bool) -> Result<tokio::io::BufWriter<tokio::fs::File>> {
    let mut opts = tokio::fs::OpenOptions::new();
    opts.create(true);
    if append {
        opts.append(true);
    } else {
        opts.write(true).truncate(true);
    }
    let file = opts.open(tmp).await.map_err(|e| Error::io("create", tmp, e))?;
    Ok(tokio::io::BufWriter::with_capacity(256 * 1024, file))
}

/// Renames the verified download into place and syncs the directory.
async fn finish_file(tmp: &Path, dest: &Path) -> Result<()> {
    tokio::fs::rename(tmp, dest).await.map_err(|e| Error::io("rename into place", dest, e))?;
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        let dir_file = tokio::fs::File::open(dir).await.map_err(|e| Error::io("open", dir, e))?;
        dir_file.sync_all().await.map_err(|e| Error::io("fsync", dir, e))?;
    }
    Ok(())
}

async fn remove_quietly(path: &Path) {
    if let Err(e) = tokio::fs::remove_file(path).await {
        tracing::debug!(path = %path.display(), error = %e, "cannot remove");
    }
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

// ---- credentials ----

#[derive(Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
}

#[derive(Deserialize, Default)]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
}

#[derive(Deserialize)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

impl AuthEntry {
    fn user_pass(&self) -> std::result::Result<(String, String), String> {
        if let Some(auth) = self.auth.as_deref().filter(|a| !a.is_empty()) {
            let raw = BASE64.decode(auth.trim()).map_err(|e| format!("auth is not base64: {e}"))?;
            let text = String::from_utf8(raw).map_err(|_| "auth is not UTF-8".to_string())?;
            let (u, p) = text.split_once(':').ok_or("auth is not base64 of user:password")?;
            return Ok((u.to_string(), p.to_string()));
        }
        match (&self.username, &self.password) {
            (Some(u), Some(p)) => Ok((u.clone(), p.clone())),
            _ => Err("no auth, nor username and password".into()),
        }
    }
}

fn default_docker_config() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// config.json keys are `host`, `https://host/v1/`…; Docker Hub has several names.
fn config_key(key: &str) -> String {
    let host = key.trim_start_matches("https://").trim_start_matches("http://");
    let host = host.split('/').next().unwrap_or(host);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".into(),
        other => other.to_string(),
    }
}

// ---- WWW-Authenticate ----

/// One challenge of a `WWW-Authenticate` header: `Bearer realm="…",service="…"`.
#[derive(Debug, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Parses challenges (RFC 7235): schemes followed by `key=value` or `key="quoted, \"value\""`
/// parameters, all separated by commas.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut lexer = Lexer { s: header.as_bytes(), i: 0 };
    let mut out: Vec<Challenge> = Vec::new();
    loop {
        lexer.skip(b", \t");
        let Some(word) = lexer.token() else { break };
        lexer.skip(b" \t");
        if lexer.peek() == Some(b'=') && !out.is_empty() {
            lexer.i += 1;
            lexer.skip(b" \t");
            let value = if lexer.peek() == Some(b'"') { lexer.quoted() } else { lexer.token().unwrap_or_default() };
            out.last_mut().expect("checked").params.push((word.to_ascii_lowercase(), value));
        } else if lexer.peek() == Some(b'=') {
            lexer.i += 1; // a parameter before any scheme: skip its value
            let _ = if lexer.peek() == Some(b'"') { lexer.quoted() } else { lexer.token().unwrap_or_default() };
        } else {
            out.push(Challenge { scheme: word, params: Vec::new() });
        }
    }
    out
}

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip(&mut self, set: &[u8]) {
        while self.peek().is_some_and(|c| set.contains(&c)) {
            self.i += 1;
        }
    }

    /// A run of characters up to a separator; None at the end or on a lone separator.
    fn token(&mut self) -> Option<String> {
        let start = self.i;
        while self.peek().is_some_and(|c| !b" \t,=\"".contains(&c)) {
            self.i += 1;
        }
        if self.i == start {
            if self.peek().is_some() && self.peek() != Some(b'=') {
                self.i += 1; // stray '"': step over it
                return self.token();
            }
            return None;
        }
        Some(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    /// A quoted string starting at '"'; backslash escapes the next character.
    fn quoted(&mut self) -> String {
        let mut out = Vec::new();
        self.i += 1;
        while let Some(c) = self.peek() {
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    if let Some(next) = self.peek() {
                        out.push(next);
                        self.i += 1;
                    }
                }
                _ => out.push(c),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

// ---- errors ----

fn registry_err(r: &Reference, message: String) -> Error {
    Error::Registry { action: format!("cannot pull {r}"), message }
}

fn net_error(r: &Reference, e: &reqwest::Error) -> Error {
    let hint = if e.is_connect() && r.is_insecure_default() {
        " (is the registry running, and the address right?)"
    } else if e.is_connect() {
        " (is the registry running, and the address right? for a plain-HTTP registry use --insecure)"
    } else if e.is_timeout() {
        " (timed out: is the network slow or the registry overloaded?)"
    } else {
        ""
    };
    registry_err(r, format!("cannot reach registry {}: {}{hint}", r.registry, chain(e)))
}

/// An error and its causes: `error sending request: connection refused`.
fn chain(e: &dyn StdError) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_with_quoted_commas() {
        let h =
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#;
        let c = parse_challenges(h);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "Bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.example/token"));
        assert_eq!(c[0].param("service"), Some("registry.example"));
        assert_eq!(c[0].param("scope"), Some("repository:a/b:pull,push"));
    }

    #[test]
    fn several_challenges_tokens_and_escapes() {
        let c = parse_challenges(r#"Basic realm="a \"b\", c", Bearer realm=https://x/t , error=invalid_token"#);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].scheme, "Basic");
        assert_eq!(c[0].param("realm"), Some(r#"a "b", c"#));
        assert_eq!(c[1].scheme, "Bearer");
        assert_eq!(c[1].param("REALM"), Some("https://x/t"));
        assert_eq!(c[1].param("error"), Some("invalid_token"));
        assert!(parse_challenges("").is_empty());
        assert_eq!(parse_challenges("Basic").len(), 1);
    }

    #[test]
    fn platform_scores() {
        let arm = TargetPlatform { os: "linux".into(), arch: "arm64".into(), variant: Some("v8".into()) };
        let p = |json: &str| serde_json::from_str::<Platform>(json).unwrap();
        assert_eq!(arm.score(&p(r#"{"os":"linux","architecture":"arm64","variant":"v8"}"#)), Some(2));
        assert_eq!(arm.score(&p(r#"{"os":"linux","architecture":"arm64"}"#)), Some(1));
        assert_eq!(arm.score(&p(r#"{"os":"linux","architecture":"amd64"}"#)), None);
        assert_eq!(arm.score(&p(r#"{"os":"windows","architecture":"arm64"}"#)), None);
        assert_eq!(TargetPlatform::host().os, "linux");
        assert_eq!(arm.to_string(), "linux/arm64/v8");
    }

    #[test]
    fn docker_config_entries() {
        assert_eq!(config_key("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(config_key("http://127.0.0.1:5000"), "127.0.0.1:5000");
        let e = AuthEntry { auth: Some(BASE64.encode("u:p:q")), username: None, password: None };
        assert_eq!(e.user_pass().unwrap(), ("u".into(), "p:q".into()));
        let e = AuthEntry { auth: None, username: Some("a".into()), password: Some("b".into()) };
        assert_eq!(e.user_pass().unwrap(), ("a".into(), "b".into()));
        let e = AuthEntry { auth: Some("!!".into()), username: None, password: None };
        assert!(e.user_pass().unwrap_err().contains("base64"));
    }

    #[test]
    fn error_bodies_are_summarised() {
        let body = r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        assert_eq!(error_detail(body), ", MANIFEST_UNKNOWN manifest unknown");
        assert_eq!(error_detail("<html>"), "");
    }

    #[test]
    fn partial_path_is_hidden_sibling() {
        assert_eq!(partial_path(Path::new("/a/b/sha256-x")), Path::new("/a/b/.sha256-x.partial"));
    }
}
