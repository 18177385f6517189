//! The cluster's certificates: a CA that every client trusts, and the API server's own.
//!
//! kubectl talks to the API server over TLS and checks its certificate against the CA in the
//! kubeconfig (`certificate-authority-data`). Like kubeadm, the server makes both on its first
//! start (ECDSA P-256) and keeps them in its state directory; later starts reuse them, adding
//! names to the serving certificate when `--san` asks for new ones.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};

use crate::error::{Error, IoContext, Result};

/// The PEM files of the cluster's PKI.
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca_cert: String,
    pub server_cert: String,
    pub server_key: String,
}

fn failed(what: &str, e: rcgen::Error) -> Error {
    Error::invalid(format!("cannot {what}: {e}"))
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).ctx("write", path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).ctx("chmod", path)
}

/// What the CA certificate says about itself.
fn ca_params() -> Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| failed("make the CA", e))?;
    params.distinguished_name.push(DnType::CommonName, "podlab-ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_after = rcgen::date_time_ymd(2035, 1, 1);
    Ok(params)
}

/// Load the PKI from `dir`, making what is missing. `names`: the DNS names and IP addresses
/// the serving certificate must hold (besides localhost and 127.0.0.1).
pub fn ensure(dir: &Path, names: &[String]) -> Result<Pki> {
    fs::create_dir_all(dir).ctx("create", dir)?;
    let p = |f: &str| -> PathBuf { dir.join(f) };
    let (ca_crt, ca_key) = (p("ca.crt"), p("ca.key"));
    if !ca_crt.exists() || !ca_key.exists() {
        let key = KeyPair::generate().map_err(|e| failed("make the CA key", e))?;
        let cert = ca_params()?.self_signed(&key).map_err(|e| failed("sign the CA", e))?;
        write_private(&ca_key, &key.serialize_pem())?;
        fs::write(&ca_crt, cert.pem()).ctx("write", &ca_crt)?;
        let _ = fs::remove_file(p("server.crt"));
    }
    let mut all: Vec<String> = vec![
        "localhost".into(),
        "127.0.0.1".into(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        "10.96.0.1".into(),
    ];
    for n in names {
        if !all.contains(n) {
            all.push(n.clone());
        }
    }
    let (srv_crt, srv_key, srv_names) = (p("server.crt"), p("server.key"), p("server.names"));
    let have = fs::read_to_string(&srv_names).unwrap_or_default();
    if !srv_crt.exists() || !srv_key.exists() || have.trim() != all.join(",") {
        let ca_key_pem = fs::read_to_string(&ca_key).ctx("read", &ca_key)?;
        let ca_kp = KeyPair::from_pem(&ca_key_pem).map_err(|e| failed(&format!("read {}", ca_key.display()), e))?;
        // The CA's name and key identify it as the issuer (the same parameters that made it).
        let issuer = Issuer::new(ca_params()?, ca_kp);
        let key = KeyPair::generate().map_err(|e| failed("make the server key", e))?;
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(|e| failed("make the server certificate", e))?;
        params.distinguished_name.push(DnType::CommonName, "kube-apiserver");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_after = rcgen::date_time_ymd(2035, 1, 1);
        for n in &all {
            params.subject_alt_names.push(match n.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => {
                    SanType::DnsName(n.clone().try_into().map_err(|e| failed(&format!("use {n:?} as a DNS name"), e))?)
                }
            });
        }
        let cert = params.signed_by(&key, &issuer).map_err(|e| failed("sign the server certificate", e))?;
        write_private(&srv_key, &key.serialize_pem())?;
        fs::write(&srv_crt, cert.pem()).ctx("write", &srv_crt)?;
        fs::write(&srv_names, all.join(",")).ctx("write", &srv_names)?;
    }
    let read = |f: &Path| fs::read_to_string(f).ctx("read", f);
    Ok(Pki { ca_cert: read(&ca_crt)?, server_cert: read(&srv_crt)?, server_key: read(&srv_key)? })
}
