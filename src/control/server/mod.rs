//! `podlab server`: the API server over HTTPS, on a store, with tokens and a kubeconfig.
//!
//! On start it opens the store (an SQLite file under the state directory, or etcd), makes the
//! PKI and the admin token if this is the first start, creates the namespaces every cluster
//! has, writes the admin kubeconfig and serves. Old history is compacted every few minutes,
//! as kube-apiserver asks etcd to (watches from before then get 410 Gone and relist).

pub mod auth;
pub mod kubeconfig;
pub mod pki;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;

use crate::control::api::crud::Api;
use crate::control::store::SharedStore;
use crate::error::{Error, IoContext, Result};

/// Where the server keeps its state and how it serves.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// The server's directory (`<lib>/server`): PKI, tokens, the SQLite store.
    pub dir: PathBuf,
    /// `sqlite` (default: `<dir>/store.db`), `sqlite:///path/file.db` or `etcd://host:2379[,host:2379]`.
    pub store: String,
    pub kubeconfig_out: PathBuf,
    /// Extra names and addresses for the serving certificate.
    pub sans: Vec<String>,
    /// How often history is compacted (kube-apiserver's --etcd-compaction-interval): each time,
    /// the history before the revision seen one interval earlier goes.
    pub compaction_interval: Duration,
}

impl ServerConfig {
    pub fn new(dir: PathBuf) -> ServerConfig {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 6443)),
            kubeconfig_out: dir.join("admin.kubeconfig"),
            dir,
            store: "sqlite".into(),
            sans: Vec::new(),
            compaction_interval: Duration::from_secs(300),
        }
    }
}

/// Open the store a `--store` value names.
pub async fn open_store(spec: &str, dir: &std::path::Path) -> Result<SharedStore> {
    use crate::control::store::{etcd::EtcdStore, sqlite::SqliteStore};
    let failed = |e: crate::control::store::StoreError| Error::invalid(format!("cannot open the store {spec:?}: {e}"));
    if spec == "sqlite" || spec.is_empty() {
        return Ok(Arc::new(SqliteStore::open(&dir.join("store.db")).map_err(failed)?));
    }
    if let Some(path) = spec.strip_prefix("sqlite://") {
        return Ok(Arc::new(SqliteStore::open(std::path::Path::new(path)).map_err(failed)?));
    }
    if let Some(hosts) = spec.strip_prefix("etcd://") {
        let endpoints: Vec<String> =
            hosts.split(',').filter(|h| !h.is_empty()).map(|h| format!("http://{h}")).collect();
        return Ok(Arc::new(EtcdStore::connect(&endpoints, "/podlab").await.map_err(failed)?));
    }
    Err(Error::invalid(format!(
        "unknown store {spec:?}: use sqlite, sqlite:///path/to/file.db or etcd://host:2379[,host:2379]"
    )))
}

/// Everything the server answers: health, discovery, objects; behind the token check.
pub fn app(api: Arc<Api>, tokens: Arc<auth::Tokens>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .merge(crate::control::api::discovery::routes())
        .merge(crate::control::api::http::routes(api))
        .layer(axum::middleware::from_fn_with_state(tokens, auth::authenticate))
}

/// Run the server until the process is stopped. The address it listens on (with the real
/// port when `--listen` asked for port 0) is written to `<dir>/server.addr`.
pub async fn run(cfg: ServerConfig) -> Result<()> {
    std::fs::create_dir_all(&cfg.dir).ctx("create", &cfg.dir)?;
    let store = open_store(&cfg.store, &cfg.dir).await?;
    let api = Api::new(store.clone());
    api.bootstrap().await.map_err(|e| Error::invalid(format!("cannot create the system namespaces: {e}")))?;
    let tokens = Arc::new(auth::Tokens::load_or_init(&cfg.dir.join("tokens.csv"))?);
    let admin =
        tokens.admin().ok_or_else(|| Error::invalid("tokens.csv has no token of group system:masters"))?.to_string();
    let mut names = cfg.sans.clone();
    if !cfg.listen.ip().is_unspecified() {
        names.push(cfg.listen.ip().to_string());
    }
    if let Ok(h) = nix::unistd::gethostname() {
        names.push(h.to_string_lossy().into_owned());
    }
    let pki = pki::ensure(&cfg.dir.join("pki"), &names)?;
    let tcp = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| Error::invalid(format!("cannot listen on {}: {e}", cfg.listen)))?;
    let local = tcp.local_addr().map_err(|e| Error::invalid(format!("cannot read the listening address: {e}")))?;
    let host = if local.ip().is_unspecified() { "127.0.0.1".to_string() } else { local.ip().to_string() };
    let url = format!("https://{host}:{}", local.port());
    kubeconfig::write(&cfg.kubeconfig_out, &kubeconfig::render(&url, &pki.ca_cert, "admin", &admin))?;
    let addr_file = cfg.dir.join("server.addr");
    std::fs::write(&addr_file, format!("{url}\n")).ctx("write", &addr_file)?;
    tracing::info!("API server on {url} (store {}), admin kubeconfig {}", cfg.store, cfg.kubeconfig_out.display());
    tokio::spawn(compact_loop(store, cfg.compaction_interval));
    // The OpenAPI documents take a moment to build: before the first `kubectl explain` asks.
    tokio::task::spawn_blocking(crate::control::api::openapi::prepare);
    let listener =
        tls::TlsListener::new(tcp, tls::config(&pki)?).map_err(|e| Error::invalid(format!("cannot serve TLS: {e}")))?;
    axum::serve(listener, app(api, tokens)).await.map_err(|e| Error::invalid(format!("the API server stopped: {e}")))
}

/// Every `every`, forget history older than the revision seen one interval before.
async fn compact_loop(store: SharedStore, every: Duration) {
    let mut previous = None;
    loop {
        tokio::time::sleep(every).await;
        if let Some(rev) = previous {
            if let Err(e) = store.compact(rev).await {
                tracing::warn!("compaction to revision {rev}: {e}");
            }
        }
        previous = store.revision().await.ok();
    }
}
