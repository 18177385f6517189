//! Who is asking: bearer tokens, as the API server's static token file has them.
//!
//! Every request carries `Authorization: Bearer <token>`. The server looks the token up in
//! `tokens.csv` (`token,user,uid,"group1,group2"`, kube-apiserver's `--token-auth-file`
//! format): the admin (group `system:masters`) is made on first start; each node joins with a
//! token of its own (user `system:node:<name>`, group `system:nodes`). No token, or a token
//! not in the file: 401 Unauthorized.

use std::fs;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::control::api::status::ApiError;
use crate::error::{Error, IoContext, Result};

/// An authenticated client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

/// The tokens the server accepts.
#[derive(Debug, Clone, Default)]
pub struct Tokens(Vec<(String, User)>);

/// 32 random bytes as hex: a token.
pub fn random_token() -> Result<String> {
    let mut b = [0u8; 32];
    if !crate::primitives::random::fill(&mut b) {
        return Err(Error::invalid("cannot read random bytes for a token (getrandom failed)"));
    }
    Ok(hex::encode(b))
}

impl Tokens {
    /// Read `path`, creating it with an admin token when missing.
    pub fn load_or_init(path: &Path) -> Result<Tokens> {
        if !path.exists() {
            let admin = random_token()?;
            append(path, &admin, "admin", &["system:masters"])?;
        }
        let text = fs::read_to_string(path).ctx("read", path)?;
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#')) {
            let mut parts = line.splitn(4, ',');
            let (token, user) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            if token.is_empty() || user.is_empty() {
                return Err(Error::invalid(format!(
                    "{}:{}: expected token,user,uid,\"groups\"",
                    path.display(),
                    i + 1
                )));
            }
            let _uid = parts.next();
            let groups = parts
                .next()
                .unwrap_or("")
                .trim_matches('"')
                .split(',')
                .filter(|g| !g.is_empty())
                .map(String::from)
                .collect();
            out.push((token.to_string(), User { name: user.to_string(), groups }));
        }
        Ok(Tokens(out))
    }

    /// The admin's token (the first token of group system:masters).
    pub fn admin(&self) -> Option<&str> {
        self.0.iter().find(|(_, u)| u.groups.iter().any(|g| g == "system:masters")).map(|(t, _)| t.as_str())
    }

    pub fn find(&self, token: &str) -> Option<&User> {
        // Compared in full each time: no early exit that would time how much matched.
        let mut found = None;
        for (t, u) in &self.0 {
            if t.len() == token.len() && t.bytes().zip(token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0 {
                found = Some(u);
            }
        }
        found
    }
}

/// Add a token line to the file (mode 0600).
pub fn append(path: &Path, token: &str, user: &str, groups: &[&str]) -> Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).ctx("create", dir)?;
    }
    let mut f = fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path).ctx("open", path)?;
    writeln!(f, "{token},{user},{user},\"{}\"", groups.join(",")).ctx("write", path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).ctx("chmod", path)
}

/// Paths anyone may read: health checks (as upstream allows to unauthenticated clients).
fn public(path: &str) -> bool {
    matches!(path, "/healthz" | "/livez" | "/readyz")
}

/// The middleware: 401 without a known bearer token; the User goes into the request.
pub async fn authenticate(State(tokens): State<Arc<Tokens>>, mut req: Request, next: Next) -> Response {
    if public(req.uri().path()) {
        return next.run(req).await;
    }
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match token.and_then(|t| tokens.find(t)).cloned() {
        Some(user) => {
            req.extensions_mut().insert(user);
            next.run(req).await
        }
        None => ApiError::unauthorized().into_response(),
    }
}
