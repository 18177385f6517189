//! The kubeconfig: how kubectl finds the cluster and proves who it is.
//!
//! A kubeconfig names clusters (the server URL and the CA to trust), users (here a bearer
//! token) and contexts pairing them. `kubectl --kubeconfig FILE get pods` uses it as is.

use std::path::Path;

use base64::Engine as _;
use serde_json::json;

use crate::error::{IoContext, Result};

/// The kubeconfig text for `server` (an https URL), the CA's PEM and a token.
pub fn render(server: &str, ca_pem: &str, user: &str, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let v = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "podlab", "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": format!("{user}@podlab"), "context": {"cluster": "podlab", "user": user, "namespace": "default"}}],
        "current-context": format!("{user}@podlab"),
        "preferences": {},
    });
    serde_norway::to_string(&v).unwrap_or_default()
}

/// Write it (mode 0600: it holds a token).
pub fn write(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ctx("create", dir)?;
    }
    std::fs::write(path, text).ctx("write", path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).ctx("chmod", path)
}
