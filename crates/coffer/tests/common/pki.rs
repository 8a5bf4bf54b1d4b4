//! Test certificate authorities and certificates (rcgen), for TLS and cert-auth tests.

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, IsCa, Issuer,
    KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

/// A certificate authority for the test, with its PEM certificate.
pub struct Ca {
    pub pem: String,
    pub issuer: Issuer<'static, KeyPair>,
}

pub fn new_ca(common_name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// Issue a certificate for `common_name` and write `<stem>.pem` / `<stem>-key.pem` into `dir`.
pub fn issue(
    ca: &Ca,
    dir: &Path,
    stem: &str,
    common_name: &str,
    sans: &[&str],
    extensions: Vec<CustomExtension>,
) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate().unwrap();
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(sans).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.custom_extensions = extensions;
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    let cert_path = dir.join(format!("{stem}.pem"));
    let key_path = dir.join(format!("{stem}-key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

/// A UTF8String extension value.
pub fn utf8_extension(arcs: &[u64], value: &str) -> CustomExtension {
    let mut der = vec![0x0c, value.len() as u8];
    der.extend_from_slice(value.as_bytes());
    CustomExtension::from_oid_content(arcs, der)
}
