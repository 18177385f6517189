//! Registry client against real registries: `/usr/bin/docker-registry` (plain and htpasswd)
//! filled with `skopeo copy` from OCI layouts written here, plus a small mock registry for
//! the Bearer-token flow, retries, resume and tampered blobs. Run as root.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use oci_spec::image::{Descriptor, MediaType};
use podlab::image::reference::Reference;
use podlab::image::registry::{Client, ClientOptions, TargetPlatform, sha256_digest};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;

use common::registry::{Registry, TempDir, free_port, scratch_dir, skopeo_copy};

// ---------- OCI layouts written by hand ----------

struct Image {
    manifest: Vec<u8>,
    config: String,
    layers: Vec<String>,
}

fn write_blob(layout: &Path, bytes: &[u8]) -> (String, u64) {
    let digest = sha256_digest(bytes);
    let dir = layout.join("blobs/sha256");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(&digest["sha256:".len()..]), bytes).unwrap();
    (digest, bytes.len() as u64)
}

/// A gzip'd tar holding `files`; returns (compressed bytes, diff_id of the plain tar).
fn make_layer(files: &[(&str, String)]) -> (Vec<u8>, String) {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, name, content.as_bytes()).unwrap();
    }
    let plain = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    (gz.finish().unwrap(), sha256_digest(&plain))
}

/// Writes an image (config + 2 layers + manifest) for `arch` into the layout's blobs.
fn make_image(layout: &Path, arch: &str) -> Image {
    let mut layer_descs = Vec::new();
    let mut diff_ids = Vec::new();
    let mut layers = Vec::new();
    for i in 0..2 {
        let big: String = (0..2000).map(|n| format!("{arch}-{i}-{n}\n")).collect();
        let (gz, diff_id) = make_layer(&[("hello.txt", format!("hello from {arch} layer {i}\n")), ("big.txt", big)]);
        let (digest, size) = write_blob(layout, &gz);
        layer_descs.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": size
        }));
        diff_ids.push(diff_id);
        layers.push(digest);
    }
    let config = serde_json::json!({
        "architecture": arch, "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids}
    });
    let (config_digest, config_size) = write_blob(layout, &serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": layer_descs
    });
    let manifest = serde_json::to_vec(&manifest).unwrap();
    write_blob(layout, &manifest);
    Image { manifest, config: config_digest, layers }
}

fn write_index(layout: &Path, media_type: &str, bytes: &[u8], tag: &str) {
    std::fs::write(layout.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": media_type, "digest": sha256_digest(bytes), "size": bytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag}
        }]
    });
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// One amd64 image tagged `tag`.
fn single_layout(layout: &Path, tag: &str) -> Image {
    let image = make_image(layout, "amd64");
    write_index(layout, "application/vnd.oci.image.manifest.v1+json", &image.manifest, tag);
    image
}

/// An index with an amd64 and an arm64/v8 image, tagged `tag`; returns (index bytes, amd64, arm64).
fn multi_layout(layout: &Path, tag: &str) -> (Vec<u8>, Image, Image) {
    let amd = make_image(layout, "amd64");
    let arm = make_image(layout, "arm64");
    let entry = |img: &Image, platform: serde_json::Value| {
        serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha256_digest(&img.manifest), "size": img.manifest.len(), "platform": platform})
    };
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            entry(&amd, serde_json::json!({"architecture": "amd64", "os": "linux"})),
            entry(&arm, serde_json::json!({"architecture": "arm64", "os": "linux", "variant": "v8"})),
        ]
    });
    let index = serde_json::to_vec(&index).unwrap();
    write_blob(layout, &index);
    write_index(layout, "application/vnd.oci.image.index.v1+json", &index, tag);
    (index, amd, arm)
}

// ---------- a real docker-registry ----------

fn client(opts: ClientOptions) -> Client {
    let opts = ClientOptions { docker_config: opts.docker_config.or(Some("/nonexistent/config.json".into())), ..opts };
    Client::new(opts).unwrap()
}

fn reference(s: &str) -> Reference {
    s.parse().unwrap()
}

fn file_sha256(path: &Path) -> String {
    sha256_digest(&std::fs::read(path).unwrap())
}

fn dest_for(dir: &Path, d: &Descriptor) -> PathBuf {
    dir.join(d.digest().to_string().replace(':', "-"))
}

// ---------- tests against docker-registry ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_by_tag_and_digest_then_fetch_verified_blobs() {
    let reg = Registry::start("plain", None);
    let layout = TempDir(scratch_dir("layout-plain"));
    let image = single_layout(&layout.0, "v1");
    skopeo_copy(&layout.0, "v1", &format!("{}/team/app:v1", reg.host()), false, None);

    let c = client(ClientOptions::default());
    let by_tag = c.resolve(&reference(&format!("{}/team/app:v1", reg.host()))).await.unwrap();
    assert_eq!(by_tag.manifest_digest, sha256_digest(&image.manifest), "skopeo kept our manifest as is");
    assert_eq!(by_tag.raw_manifest, image.manifest);
    assert_eq!(by_tag.config.digest().to_string(), image.config);
    let layers: Vec<String> = by_tag.layers.iter().map(|l| l.digest().to_string()).collect();
    assert_eq!(layers, image.layers);
    assert!(by_tag.index.is_none());
    assert_eq!(by_tag.config.media_type(), &MediaType::ImageConfig);

    let by_digest =
        c.resolve(&reference(&format!("{}/team/app@{}", reg.host(), by_tag.manifest_digest))).await.unwrap();
    assert_eq!(by_digest.raw_manifest, by_tag.raw_manifest);

    // all blobs, in parallel, each verified
    let out = TempDir(scratch_dir("out-plain"));
    let r = reference(&format!("{}/team/app:v1", reg.host()));
    let mut wanted: Vec<(Descriptor, PathBuf)> = vec![(by_tag.config.clone(), dest_for(&out.0, &by_tag.config))];
    wanted.extend(by_tag.layers.iter().map(|l| (l.clone(), dest_for(&out.0, l))));
    wanted.push(wanted[1].clone()); // a layer listed twice is fetched once, not twice into one file
    c.fetch_blobs(&r, &wanted).await.unwrap();
    for (d, path) in &wanted {
        assert_eq!(file_sha256(path), d.digest().to_string());
        assert_eq!(std::fs::metadata(path).unwrap().len(), d.size());
    }
    let leftovers: Vec<_> = std::fs::read_dir(&out.0).unwrap().filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
    assert_eq!(leftovers.len(), 3, "no partial files left: {leftovers:?}");

    // fetching again is a no-op: it works even once the registry has lost the blob
    let (layer, path) = &wanted[1];
    let mtime = std::fs::metadata(path).unwrap().modified().unwrap();
    std::fs::remove_file(reg.blob_data(layer.digest().as_ref())).unwrap();
    c.fetch_blob(&r, layer, path).await.unwrap();
    assert_eq!(std::fs::metadata(path).unwrap().modified().unwrap(), mtime);
    let elsewhere = out.0.join("again");
    let err = c.fetch_blob(&r, layer, &elsewhere).await.unwrap_err().to_string();
    eprintln!("error shown: {err}");
    assert!(!elsewhere.exists(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tag_is_a_clear_404_naming_the_reference() {
    let reg = Registry::start("notfound", None);
    let layout = TempDir(scratch_dir("layout-404"));
    single_layout(&layout.0, "v1");
    skopeo_copy(&layout.0, "v1", &format!("{}/team/app:v1", reg.host()), false, None);
    let c = client(ClientOptions::default());
    let name = format!("{}/team/app:nope", reg.host());
    let err = c.resolve(&reference(&name)).await.unwrap_err().to_string();
    eprintln!("error shown: {err}");
    assert!(err.contains(&name) && err.contains("not found") && err.contains("404"), "{err}");
    let err = c.resolve(&reference(&format!("{}/no/such:v1", reg.host()))).await.unwrap_err().to_string();
    eprintln!("error shown: {err}");
    assert!(err.contains("404"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_blob_is_detected_and_not_kept() {
    let reg = Registry::start("corrupt", None);
    let layout = TempDir(scratch_dir("layout-corrupt"));
    let image = single_layout(&layout.0, "v1");
    skopeo_copy(&layout.0, "v1", &format!("{}/team/app:v1", reg.host()), false, None);
    // flip bytes inside the registry's copy of the first layer (same length)
    let data = reg.blob_data(&image.layers[0]);
    let mut bytes = std::fs::read(&data).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&data, &bytes).unwrap();

    let c = client(ClientOptions::default());
    let r = reference(&format!("{}/team/app:v1", reg.host()));
    let resolved = c.resolve(&r).await.unwrap();
    let out = TempDir(scratch_dir("out-corrupt"));
    let dest = dest_for(&out.0, &resolved.layers[0]);
    let err = c.fetch_blob(&r, &resolved.layers[0], &dest).await.unwrap_err().to_string();
    let wrong = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
    eprintln!("error shown: {err}");
    assert!(err.contains("corrupted or tampered") && err.contains(&image.layers[0]) && err.contains(&wrong), "{err}");
    assert!(!dest.exists());
    assert_eq!(std::fs::read_dir(&out.0).unwrap().count(), 0, "temp file removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_arch_index_picks_the_platform() {
    let reg = Registry::start("multi", None);
    let layout = TempDir(scratch_dir("layout-multi"));
    let (index, amd, arm) = multi_layout(&layout.0, "multi");
    skopeo_copy(&layout.0, "multi", &format!("{}/team/multi:v1", reg.host()), true, None);
    let r = reference(&format!("{}/team/multi:v1", reg.host()));

    let host = client(ClientOptions::default()).resolve(&r).await.unwrap();
    let expected = if TargetPlatform::host().arch == "arm64" { &arm } else { &amd };
    assert_eq!(host.config.digest().to_string(), expected.config);
    assert_eq!(host.manifest_digest, sha256_digest(&expected.manifest));
    let (index_digest, raw_index) = host.index.expect("came from an index");
    assert_eq!(index_digest, sha256_digest(&index));
    assert_eq!(raw_index, index);

    let arm64 = TargetPlatform { os: "linux".into(), arch: "arm64".into(), variant: Some("v8".into()) };
    let picked = client(ClientOptions { platform: Some(arm64), ..Default::default() }).resolve(&r).await.unwrap();
    assert_eq!(picked.config.digest().to_string(), arm.config);
    let amd64 = TargetPlatform { os: "linux".into(), arch: "amd64".into(), variant: None };
    let picked = client(ClientOptions { platform: Some(amd64), ..Default::default() }).resolve(&r).await.unwrap();
    assert_eq!(picked.config.digest().to_string(), amd.config);

    let s390x = TargetPlatform { os: "linux".into(), arch: "s390x".into(), variant: None };
    let err = client(ClientOptions { platform: Some(s390x), ..Default::default() }).resolve(&r).await.unwrap_err();
    let err = err.to_string();
    eprintln!("error shown: {err}");
    assert!(err.contains("linux/s390x") && err.contains("linux/amd64") && err.contains("linux/arm64/v8"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_with_and_without_credentials() {
    let reg = Registry::start("htpasswd", Some(("alice", "s3cret")));
    let layout = TempDir(scratch_dir("layout-basic"));
    let image = single_layout(&layout.0, "v1");
    skopeo_copy(&layout.0, "v1", &format!("{}/team/private:v1", reg.host()), false, Some("alice:s3cret"));
    let r = reference(&format!("{}/team/private:v1", reg.host()));

    let err = client(ClientOptions::default()).resolve(&r).await.unwrap_err().to_string();
    let want = format!("registry {} wants a username and password: podlab image pull --username", reg.host());
    eprintln!("error shown: {err}");
    assert!(err.contains(&want), "{err}");

    let wrong = ClientOptions { credentials: Some(("alice".into(), "nope".into())), ..Default::default() };
    let err = client(wrong).resolve(&r).await.unwrap_err().to_string();
    eprintln!("error shown: {err}");
    assert!(err.contains("refused") && err.contains("401"), "{err}");

    let good = ClientOptions { credentials: Some(("alice".into(), "s3cret".into())), ..Default::default() };
    let c = client(good);
    let resolved = c.resolve(&r).await.unwrap();
    assert_eq!(resolved.manifest_digest, sha256_digest(&image.manifest));
    let out = TempDir(scratch_dir("out-basic"));
    let dest = dest_for(&out.0, &resolved.config);
    c.fetch_blob(&r, &resolved.config, &dest).await.unwrap();
    assert_eq!(file_sha256(&dest), image.config);

    // credentials from a docker config.json: one entry with "auth", one with username/password
    let cfg = out.0.join("config.json");
    let auth = base64_encode("alice:s3cret");
    std::fs::write(&cfg, format!(r#"{{"auths":{{"http://{}":{{"auth":"{auth}"}}}}}}"#, reg.host())).unwrap();
    let from_config = client(ClientOptions { docker_config: Some(cfg.clone()), ..Default::default() });
    assert_eq!(from_config.resolve(&r).await.unwrap().manifest_digest, resolved.manifest_digest);
    std::fs::write(&cfg, format!(r#"{{"auths":{{"{}":{{"username":"alice","password":"s3cret"}}}}}}"#, reg.host()))
        .unwrap();
    let from_config = client(ClientOptions { docker_config: Some(cfg), ..Default::default() });
    assert_eq!(from_config.resolve(&r).await.unwrap().manifest_digest, resolved.manifest_digest);
}

fn base64_encode(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

// ---------- a mock registry for the Bearer flow ----------

struct MockReq {
    path: String,
    headers: HashMap<String, String>,
}

#[derive(Default)]
struct MockResp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Send only this many body bytes (after a full Content-Length), then hang up.
    cut_at: Option<usize>,
}

type Handler = Arc<dyn Fn(&MockReq) -> MockResp + Send + Sync>;

/// A tiny HTTP/1.1 server on 127.0.0.1: one request per connection.
async fn serve_mock(handler: Handler) -> u16 {
    serve_mock_on("127.0.0.1", handler).await
}

async fn serve_mock_on(addr: &str, handler: Handler) -> u16 {
    let listener = tokio::net::TcpListener::bind((addr, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let handler = handler.clone();
            tokio::spawn(async move {
                let Some(req) = read_request(&mut sock).await else {
                    return;
                };
                let resp = handler(&req);
                let mut head = format!(
                    "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                    resp.status,
                    resp.body.len()
                );
                for (k, v) in &resp.headers {
                    head += &format!("{k}: {v}\r\n");
                }
                head += "\r\n";
                let body = &resp.body[..resp.cut_at.unwrap_or(resp.body.len())];
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(body).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    port
}

async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<MockReq> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf[0] == 0x16 {
            return None; // a TLS ClientHello: hang up, as a plain-HTTP server would fail it
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines = text.split("\r\n");
    let path = lines.next()?.split(' ').nth(1)?.to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some(MockReq { path, headers })
}

#[derive(Default)]
struct Seen {
    token_requests: Vec<String>,
    blob_requests: HashMap<String, usize>,
    ranges: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_flow_retries_resume_and_tampering_against_a_mock() {
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec();
    let good: Vec<u8> = (0..300_000u32).flat_map(|n| n.to_le_bytes()).collect();
    let tampered = b"the real layer".to_vec();
    let desc = |mt: &str, bytes: &[u8]| serde_json::json!({"mediaType": mt, "digest": sha256_digest(bytes), "size": bytes.len()});
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": desc("application/vnd.docker.container.image.v1+json", &config),
        "layers": [desc("application/vnd.docker.image.rootfs.diff.tar.gzip", &good),
                   desc("application/vnd.docker.image.rootfs.diff.tar.gzip", &tampered)]
    }))
    .unwrap();
    let mut blobs: HashMap<String, Vec<u8>> = HashMap::new();
    blobs.insert(sha256_digest(&config), config.clone());
    blobs.insert(sha256_digest(&good), good.clone());
    blobs.insert(sha256_digest(&tampered), b"the fake layer".to_vec()); // same length, other bytes
    let manifest_digest = sha256_digest(&manifest);

    let seen = Arc::new(Mutex::new(Seen::default()));
    let port_cell = Arc::new(Mutex::new(0u16));
    let handler: Handler = {
        let (seen, port_cell, manifest, good_digest) =
            (seen.clone(), port_cell.clone(), manifest.clone(), sha256_digest(&good));
        Arc::new(move |req: &MockReq| {
            let mut seen = seen.lock().unwrap();
            if req.path.starts_with("/token?") {
                seen.token_requests.push(req.path.clone());
                return MockResp { status: 200, body: br#"{"access_token":"tok-123"}"#.to_vec(), ..Default::default() };
            }
            if req.headers.get("authorization").map(String::as_str) != Some("Bearer tok-123") {
                let port = *port_cell.lock().unwrap();
                let challenge = format!(
                    r#"Bearer realm="http://127.0.0.1:{port}/token",service="mock registry, test",scope="repository:team/app:pull""#
                );
                return MockResp {
                    status: 401,
                    headers: vec![("WWW-Authenticate".into(), challenge)],
                    ..Default::default()
                };
            }
            if req.path == "/v2/team/app/manifests/v1" {
                let headers = vec![
                    ("Content-Type".into(), "application/vnd.docker.distribution.manifest.v2+json".into()),
                    ("Docker-Content-Digest".into(), sha256_digest(&manifest)),
                ];
                return MockResp { status: 200, headers, body: manifest.clone(), ..Default::default() };
            }
            let Some(digest) = req.path.strip_prefix("/v2/team/app/blobs/") else {
                return MockResp { status: 404, ..Default::default() };
            };
            let count = seen.blob_requests.entry(digest.to_string()).or_default();
            *count += 1;
            let Some(body) = blobs.get(digest) else {
                return MockResp { status: 404, ..Default::default() };
            };
            if digest == good_digest {
                match (*count, req.headers.get("range")) {
                    (1, _) => {
                        return MockResp { status: 503, ..Default::default() };
                    } // retried
                    (2, _) => {
                        return MockResp {
                            status: 200,
                            body: body.clone(),
                            cut_at: Some(500_000),
                            ..Default::default()
                        };
                    }
                    (_, Some(range)) => {
                        seen.ranges.push(range.clone());
                        let from: usize = range.trim_start_matches("bytes=").trim_end_matches('-').parse().unwrap();
                        let content_range = format!("bytes {from}-{}/{}", body.len() - 1, body.len());
                        let headers = vec![("Content-Range".into(), content_range)];
                        return MockResp { status: 206, headers, body: body[from..].to_vec(), ..Default::default() };
                    }
                    _ => {}
                }
            }
            MockResp { status: 200, body: body.clone(), ..Default::default() }
        })
    };
    let port = serve_mock(handler).await;
    *port_cell.lock().unwrap() = port;

    let c = client(ClientOptions::default());
    let r = reference(&format!("127.0.0.1:{port}/team/app:v1"));
    let resolved = c.resolve(&r).await.unwrap();
    assert_eq!(resolved.manifest_digest, manifest_digest);
    assert_eq!(resolved.layers.len(), 2);

    let out = TempDir(scratch_dir("out-mock"));
    let config_dest = dest_for(&out.0, &resolved.config);
    let good_dest = dest_for(&out.0, &resolved.layers[0]);
    c.fetch_blob(&r, &resolved.config, &config_dest).await.unwrap();
    c.fetch_blob(&r, &resolved.layers[0], &good_dest).await.unwrap();
    assert_eq!(std::fs::read(&config_dest).unwrap(), config);
    assert_eq!(std::fs::read(&good_dest).unwrap(), good, "503 retried, cut download resumed");

    let bad_dest = dest_for(&out.0, &resolved.layers[1]);
    let err = c.fetch_blob(&r, &resolved.layers[1], &bad_dest).await.unwrap_err().to_string();
    eprintln!("error shown: {err}");
    assert!(err.contains("corrupted or tampered"), "{err}");
    assert!(!bad_dest.exists());

    let seen = seen.lock().unwrap();
    assert_eq!(seen.token_requests.len(), 1, "token cached per (registry, scope): {:?}", seen.token_requests);
    let token_req = &seen.token_requests[0];
    assert!(token_req.contains("service=mock+registry%2C+test"), "{token_req}");
    assert!(token_req.contains("scope=repository%3Ateam%2Fapp%3Apull"), "{token_req}");
    assert_eq!(seen.blob_requests[&sha256_digest(&good)], 3, "503, cut, resumed");
    assert_eq!(seen.ranges, vec!["bytes=500000-".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_server_refusal_and_4xx_not_retried() {
    let hits = Arc::new(Mutex::new(0usize));
    let port_cell = Arc::new(Mutex::new(0u16));
    let handler: Handler = {
        let (hits, port_cell) = (hits.clone(), port_cell.clone());
        Arc::new(move |req: &MockReq| {
            *hits.lock().unwrap() += 1;
            if req.path.starts_with("/token") {
                return MockResp { status: 401, ..Default::default() };
            }
            if req.path.contains("/forbidden/") {
                return MockResp {
                    status: 403,
                    body: br#"{"errors":[{"code":"DENIED","message":"no"}]}"#.to_vec(),
                    ..Default::default()
                };
            }
            let port = *port_cell.lock().unwrap();
            let challenge = format!(r#"Bearer realm="http://127.0.0.1:{port}/token",service="mock""#);
            MockResp { status: 401, headers: vec![("WWW-Authenticate".into(), challenge)], ..Default::default() }
        })
    };
    let port = serve_mock(handler).await;
    *port_cell.lock().unwrap() = port;
    let opts = ClientOptions { credentials: Some(("bob".into(), "pw".into())), ..Default::default() };
    let c = client(opts);
    let err = c.resolve(&reference(&format!("127.0.0.1:{port}/team/app:v1"))).await.unwrap_err().to_string();
    eprintln!("error shown: {err}");
    assert!(err.contains("refused a token for user bob"), "{err}");
    *hits.lock().unwrap() = 0;
    let err = c.resolve(&reference(&format!("127.0.0.1:{port}/forbidden/app:v1"))).await.unwrap_err().to_string();
    eprintln!("error shown: {err}");
    assert!(err.contains("403") && err.contains("DENIED"), "{err}");
    assert_eq!(*hits.lock().unwrap(), 1, "4xx is not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_registry_is_a_clear_error() {
    let port = free_port();
    let c = client(ClientOptions::default());
    let err = c.resolve(&reference(&format!("127.0.0.1:{port}/a:b"))).await.unwrap_err().to_string();
    eprintln!("error shown: {err}");
    assert!(err.contains("cannot reach registry") && err.contains("is the registry running"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_falls_back_to_plain_http_for_other_hosts() {
    // 127.0.0.2 is loopback but not a "local registry" name, so HTTPS is tried first
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
    let handler: Handler = Arc::new(move |_req: &MockReq| MockResp {
        status: 200,
        headers: vec![("Content-Type".into(), "application/vnd.oci.image.manifest.v1+json".into())],
        body: manifest.to_vec(),
        ..Default::default()
    });
    let port = serve_mock_on("127.0.0.2", handler).await;
    let r = reference(&format!("127.0.0.2:{port}/team/app:v1"));
    assert!(!r.is_insecure_default());
    let err = client(ClientOptions::default()).resolve(&r).await.unwrap_err().to_string();
    eprintln!("error shown: {err}");
    assert!(err.contains("https://127.0.0.2") && err.contains("--insecure"), "{err}");
    let c = client(ClientOptions { insecure: true, ..Default::default() });
    assert_eq!(c.resolve(&r).await.unwrap().manifest_digest, sha256_digest(manifest));
    assert_eq!(c.resolve(&r).await.unwrap().raw_manifest, manifest.to_vec(), "remembered plain HTTP");
}
