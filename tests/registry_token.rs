//! The Bearer-token flow against a REAL registry: the Debian `/usr/bin/docker-registry` (2.8)
//! configured with `auth: token` and a small token server of ours, written here. The token
//! server issues ES256 JWTs that distribution verifies: the header's `x5c` holds our
//! self-signed certificate, which is also the registry's `rootcertbundle`. It checks Basic
//! credentials (alice:secret), grants anonymous pull on `public/*` only, and records every
//! token request. skopeo pushes with credentials; podlab's client and CLI pull. Run as root.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use oci_spec::image::Descriptor;
use podlab::image::reference::Reference;
use podlab::image::registry::{Client, ClientOptions, sha256_digest};

mod common;

use common::registry::{Registry, TempDir, TinyImage, scratch_dir, skopeo_copy, tiny_layout};
use common::{TestRoot, text};

const SERVICE: &str = "podlab-test";
const ISSUER: &str = "podlab-test-issuer";
const USER: &str = "alice";
const PASSWORD: &str = "secret";

// ---------- the token server ----------

/// One request to the token endpoint, as the token server saw it.
#[derive(Clone, Debug)]
struct TokenRequest {
    /// The Basic-auth user, when credentials were sent (right or wrong).
    user: Option<String>,
    service: Option<String>,
    scopes: Vec<String>,
    /// The HTTP status answered.
    status: u16,
    /// What the token granted: (repository, actions).
    granted: Vec<(String, Vec<String>)>,
}

/// The key that signs tokens and its self-signed certificate (the registry's trust root).
struct Signer {
    key: EcdsaKeyPair,
    cert_der: Vec<u8>,
    jti: AtomicU64,
}

impl Signer {
    fn new() -> Signer {
        let key_pair = rcgen::KeyPair::generate().expect("generate a P-256 key"); // ECDSA P-256 / SHA-256
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, "podlab test token signer");
        let cert = params.self_signed(&key_pair).expect("self-sign the token certificate");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key_pair.serialize_der())
            .expect("the same key for signing");
        Signer { key, cert_der: cert.der().to_vec(), jti: AtomicU64::new(0) }
    }

    fn cert_pem(&self) -> String {
        let b64 = STANDARD.encode(&self.cert_der);
        let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
        format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n"))
    }

    /// A JWT as distribution 2.8 verifies it (registry/auth/token): iss and aud checked,
    /// exp/nbf with 60 s of leeway, the signing key from the x5c chain (verified against the
    /// rootcertbundle; `kid` is not consulted when x5c is present), ES256 = raw r||s.
    fn token(&self, subject: &str, granted: &[(String, Vec<String>)]) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [STANDARD.encode(&self.cert_der)]});
        let access: Vec<serde_json::Value> = granted
            .iter()
            .map(|(name, actions)| serde_json::json!({"type": "repository", "name": name, "actions": actions}))
            .collect();
        let claims = serde_json::json!({
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now - 30,
            "iat": now - 30,
            "jti": format!("podlab-test-{}", self.jti.fetch_add(1, Ordering::Relaxed)),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
        );
        let signature = self.key.sign(&SystemRandom::new(), signing_input.as_bytes()).expect("sign");
        assert_eq!(signature.as_ref().len(), 64, "ES256 signatures are r||s");
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }
}

/// A token server on 127.0.0.1: GET /token?service=…&scope=… (Basic auth optional).
struct TokenServer {
    port: u16,
    dir: TempDir,
    requests: Arc<Mutex<Vec<TokenRequest>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TokenServer {
    fn start(name: &str) -> TokenServer {
        let dir = TempDir(scratch_dir(&format!("{name}-token")));
        let signer = Arc::new(Signer::new());
        std::fs::write(dir.0.join("token.crt"), signer.cert_pem()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (requests, stop) = (requests.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut handlers = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (signer, requests) = (signer.clone(), requests.clone());
                            handlers.push(std::thread::spawn(move || serve(stream, &signer, &requests)));
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(10))
                        }
                        Err(e) => panic!("token server accept: {e}"),
                    }
                }
                for h in handlers {
                    let _ = h.join();
                }
            })
        };
        TokenServer { port, dir, requests, stop, thread: Some(thread) }
    }

    /// The registry's `auth:` section trusting this server.
    fn registry_config(&self) -> String {
        format!(
            "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            self.port,
            self.dir.0.join("token.crt").display()
        )
    }

    fn requests(&self) -> Vec<TokenRequest> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Answers one HTTP request on `stream` (then closes it).
fn serve(mut stream: TcpStream, signer: &Signer, requests: &Mutex<Vec<TokenRequest>>) {
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&raw).into_owned();
    let mut lines = head.split("\r\n");
    let target = lines.next().unwrap_or("").split(' ').nth(1).unwrap_or("").to_string();
    let authorization = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.trim().to_string());
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let params: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    let basic = authorization.as_deref().and_then(|a| a.strip_prefix("Basic ")).map(|b| {
        let decoded = String::from_utf8(STANDARD.decode(b.trim()).unwrap_or_default()).unwrap_or_default();
        let (user, pass) = decoded.split_once(':').unwrap_or((&decoded, ""));
        (user.to_string(), pass.to_string())
    });
    let mut request = TokenRequest {
        user: basic.as_ref().map(|(u, _)| u.clone()),
        service: params.iter().find(|(k, _)| k == "service").map(|(_, v)| v.clone()),
        scopes: params.iter().filter(|(k, _)| k == "scope").map(|(_, v)| v.clone()).collect(),
        status: 200,
        granted: Vec::new(),
    };
    let response = if path != "/token" {
        request.status = 404;
        http_response(404, "Not Found", "", "{\"error\":\"not found\"}")
    } else if basic.as_ref().is_some_and(|(u, p)| (u.as_str(), p.as_str()) != (USER, PASSWORD)) {
        request.status = 401;
        http_response(
            401,
            "Unauthorized",
            "WWW-Authenticate: Basic realm=\"podlab-test\"\r\n",
            "{\"error\":\"bad credentials\"}",
        )
    } else if request.service.as_deref() != Some(SERVICE) {
        request.status = 400;
        http_response(400, "Bad Request", "", "{\"error\":\"unknown service\"}")
    } else {
        let authenticated = basic.is_some();
        for scope in &request.scopes {
            // repository:NAME:ACTIONS (NAME has no ':' here: no registry host in it)
            let mut parts = scope.splitn(3, ':');
            let (Some("repository"), Some(name), Some(actions)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            let allowed: Vec<String> = actions
                .split(',')
                .filter(|a| match *a {
                    "pull" => authenticated || name.starts_with("public/"),
                    "push" => authenticated,
                    _ => false,
                })
                .map(String::from)
                .collect();
            // Like real token servers, a refused scope is a token without that access (the
            // registry then answers 401 insufficient_scope), not an error here.
            if !allowed.is_empty() {
                request.granted.push((name.to_string(), allowed));
            }
        }
        let token = signer.token(basic.as_ref().map(|(u, _)| u.as_str()).unwrap_or(""), &request.granted);
        let now = rfc3339_utc(SystemTime::now());
        let body = serde_json::json!({"token": token, "access_token": token, "expires_in": 300, "issued_at": now});
        http_response(200, "OK", "", &body.to_string())
    };
    requests.lock().unwrap().push(request);
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.flush();
}

fn http_response(code: u16, reason: &str, extra_headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra_headers}\r\n{body}",
        body.len()
    )
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).expect("percent escape"));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).expect("utf-8 query")
}

/// RFC 3339 UTC time (seconds), as token servers put in `issued_at`.
fn rfc3339_utc(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    // podlab's formatter gives nanoseconds: a token server writes whole seconds.
    let full = podlab::runtime::state::rfc3339(secs, 0);
    format!("{}Z", &full[..19])
}

// ---------- helpers ----------

/// A token-auth registry and its token server (dropped registry first).
struct Setup {
    name: String,
    registry: Registry,
    tokens: TokenServer,
}

impl Setup {
    fn start(name: &str) -> Setup {
        let tokens = TokenServer::start(name);
        let registry = Registry::start_with(name, &tokens.registry_config());
        Setup { name: name.to_string(), registry, tokens }
    }

    /// skopeo pushes a tiny image to `repo:tag` with alice's credentials.
    fn push(&self, repo: &str, tag: &str) -> TinyImage {
        let layout = TempDir(scratch_dir(&format!("{}-layout-{}", self.name, repo.replace('/', "-"))));
        let image = tiny_layout(&layout.0, tag);
        skopeo_copy(&layout.0, tag, &format!("{}/{repo}:{tag}", self.registry.host()), false, Some("alice:secret"));
        image
    }

    fn reference(&self, repo_tag: &str) -> Reference {
        format!("{}/{repo_tag}", self.registry.host()).parse().unwrap()
    }

    /// The registry's log and the token requests, for failure messages.
    fn debug(&self) -> String {
        format!("token requests: {:#?}\nregistry log:\n{}", self.tokens.requests(), self.registry.log())
    }
}

fn client(credentials: Option<(&str, &str)>) -> Client {
    Client::new(ClientOptions {
        docker_config: Some("/nonexistent/config.json".into()),
        credentials: credentials.map(|(u, p)| (u.to_string(), p.to_string())),
        ..ClientOptions::default()
    })
    .unwrap()
}

/// Fetches config and layer of `resolved` into `dir`, checks each file's digest.
async fn fetch_all(c: &Client, r: &Reference, resolved: &podlab::image::registry::Resolved, dir: &Path) {
    let dest = |d: &Descriptor| -> PathBuf { dir.join(d.digest().to_string().replace(':', "-")) };
    let mut wanted = vec![(resolved.config.clone(), dest(&resolved.config))];
    wanted.extend(resolved.layers.iter().map(|l| (l.clone(), dest(l))));
    c.fetch_blobs(r, &wanted).await.unwrap();
    for (d, path) in &wanted {
        assert_eq!(sha256_digest(&std::fs::read(path).unwrap()), d.digest().to_string());
    }
}

// ---------- tests ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_pushes_with_credentials_and_podlab_pulls_a_public_repo_anonymously() {
    let s = Setup::start("tok-public");
    let image = s.push("public/app", "1");
    let pushes = s.tokens.requests();
    assert!(
        pushes.iter().any(|t| t.user.as_deref() == Some(USER)
            && t.granted.iter().any(|(n, a)| n == "public/app" && a.contains(&"push".to_string()))),
        "skopeo pushed with a token granting push: {}",
        s.debug()
    );
    let before = pushes.len();

    let c = client(None);
    let r = s.reference("public/app:1");
    let resolved = c.resolve(&r).await.unwrap_or_else(|e| panic!("anonymous resolve: {e}\n{}", s.debug()));
    assert_eq!(resolved.manifest_digest, image.manifest_digest);
    assert_eq!(resolved.raw_manifest, image.manifest);
    assert_eq!(resolved.config.digest().to_string(), image.config);
    assert_eq!(resolved.layers.len(), 1);
    assert_eq!(resolved.layers[0].digest().to_string(), image.layer);
    let out = TempDir(scratch_dir("tok-public-out"));
    fetch_all(&c, &r, &resolved, &out.0).await;

    let pulls: Vec<TokenRequest> = s.tokens.requests()[before..].to_vec();
    assert_eq!(pulls.len(), 1, "one token for the manifest and the blobs: {pulls:#?}");
    assert_eq!(pulls[0].user, None, "anonymous");
    assert_eq!(pulls[0].service.as_deref(), Some(SERVICE));
    assert_eq!(pulls[0].scopes, vec!["repository:public/app:pull".to_string()]);
    assert_eq!(pulls[0].granted, vec![("public/app".to_string(), vec!["pull".to_string()])]);

    // The same client reuses its cached token: no new token request.
    let again = c.resolve(&r).await.unwrap();
    assert_eq!(again.manifest_digest, image.manifest_digest);
    let by_digest = c.resolve(&s.reference(&format!("public/app@{}", image.manifest_digest))).await.unwrap();
    assert_eq!(by_digest.raw_manifest, image.manifest);
    assert_eq!(s.tokens.requests().len(), before + 1, "cached token reused: {:#?}", s.tokens.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_repo_needs_credentials() {
    let s = Setup::start("tok-private");
    let image = s.push("private/app", "1");
    let r = s.reference("private/app:1");
    let host = s.registry.host();

    // Anonymous: the token server grants nothing, the registry refuses the token.
    let before = s.tokens.requests().len();
    let err = client(None).resolve(&r).await.expect_err("anonymous pull of a private repo").to_string();
    eprintln!("error shown: {err}");
    assert!(err.contains(&host) && err.contains("needs credentials"), "{err}\n{}", s.debug());
    let anon = &s.tokens.requests()[before..];
    assert_eq!(anon.len(), 1, "{anon:#?}");
    assert_eq!(anon[0].user, None);
    assert_eq!(anon[0].scopes, vec!["repository:private/app:pull".to_string()]);
    assert!(anon[0].granted.is_empty(), "{anon:#?}");
    let log = s.registry.log();
    assert!(log.contains("insufficient scope"), "the registry refused our token's (empty) access: {log}");

    // A wrong password: the token server itself refuses.
    let err = client(Some((USER, "wrong"))).resolve(&r).await.expect_err("wrong password").to_string();
    eprintln!("error shown: {err}");
    assert!(err.contains("token server") && err.contains(USER) && err.contains("401"), "{err}");

    // alice's credentials: a token with pull, the image comes.
    let before = s.tokens.requests().len();
    let c = client(Some((USER, PASSWORD)));
    let resolved = c.resolve(&r).await.unwrap_or_else(|e| panic!("pull with credentials: {e}\n{}", s.debug()));
    assert_eq!(resolved.manifest_digest, image.manifest_digest);
    let out = TempDir(scratch_dir("tok-private-out"));
    fetch_all(&c, &r, &resolved, &out.0).await;
    let authed = &s.tokens.requests()[before..];
    assert_eq!(authed.len(), 1, "{authed:#?}");
    assert_eq!(authed[0].user.as_deref(), Some(USER));
    assert_eq!(authed[0].scopes, vec!["repository:private/app:pull".to_string()]);
    assert_eq!(authed[0].granted, vec![("private/app".to_string(), vec!["pull".to_string()])]);
}

#[test]
fn cli_pulls_a_private_image_with_username_and_password() {
    let s = Setup::start("tok-cli");
    let image = s.push("private/app", "1");
    let reference = format!("{}/private/app:1", s.registry.host());
    let t = TestRoot::new("tok-cli");
    let run = |args: &[&str]| t.cmd(args).env("DOCKER_CONFIG", "/nonexistent").output().expect("run podlab");

    // Without credentials: refused, with a message naming the registry.
    let out = run(&["image", "pull", &reference]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    eprintln!("error shown: {err}");
    assert!(err.contains(&s.registry.host()) && err.contains("needs credentials"), "{err}");

    let out = run(&["image", "pull", &reference, "--username", USER, "--password", PASSWORD]);
    assert!(out.status.success(), "pull failed: {}{}\n{}", text(&out.stdout), text(&out.stderr), s.debug());
    assert_eq!(text(&out.stdout).trim(), image.manifest_digest);
    let out = run(&["image", "ls"]);
    assert!(out.status.success(), "ls failed: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&reference), "{}", text(&out.stdout));
    assert!(
        s.tokens.requests().iter().any(|t| t.user.as_deref() == Some(USER)
            && t.scopes == vec!["repository:private/app:pull".to_string()]
            && !t.granted.is_empty()),
        "{}",
        s.debug()
    );
}
