//! The cert auth method through the engine's declared paths, with real CAs, client
//! certificates and CRLs made by rcgen, and time moved on the mount's manual clock.

mod common;

use chrono::{Datelike, Utc};
use coffer_auth::cert::{CERTIFICATE_REQUIRED, INVALID_CERTIFICATE};
use coffer_sdk::logical::Login;
use common::{assert_error, body, keys_of, Mount};
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertificateRevocationListParams,
    CustomExtension, DistinguishedName, DnType, IsCa, Issuer, KeyIdMethod, KeyPair,
    KeyUsagePurpose, RevocationReason, RevokedCertParams, SerialNumber,
};
use serde_json::{json, Value};
use std::time::Duration;

const INSTANCE_ID_OID: &str = "1.3.6.1.4.1.57264.1.1";
const COMPARTMENT_OID: &str = "1.3.6.1.4.1.57264.1.2";
const INSTANCE_ID_ARCS: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 1, 1];
const COMPARTMENT_ARCS: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 1, 2];
const DAY: Duration = Duration::from_secs(86_400);

/// A test certificate authority.
struct Ca {
    pem: String,
    /// The CA's subject key identifier, which its leaves name as their authority key ID.
    key_id: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

/// Midnight UTC today, plus `days` (negative = in the past).
macro_rules! day_offset {
    ($days:expr) => {{
        let now = Utc::now();
        let midnight = date_time_ymd(now.year(), now.month() as u8, now.day() as u8);
        let days: i64 = $days;
        if days < 0 {
            midnight - DAY * days.unsigned_abs() as u32
        } else {
            midnight + DAY * days as u32
        }
    }};
}

fn new_ca(common_name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        key_id: params.key_identifier(&key),
        issuer: Issuer::new(params, key),
    }
}

/// What a client certificate should say.
struct LeafSpec<'a> {
    common_name: &'a str,
    dns_sans: Vec<&'a str>,
    organizational_unit: Option<&'a str>,
    serial: &'a [u8],
    /// Validity window in days relative to today.
    valid_from: i64,
    valid_to: i64,
    /// (OID arcs, UTF8String value) extensions.
    extensions: Vec<(&'a [u64], &'a str)>,
}

impl Default for LeafSpec<'_> {
    fn default() -> Self {
        LeafSpec {
            common_name: "web-01.prod",
            dns_sans: vec!["web-01.prod.example.com"],
            organizational_unit: None,
            serial: &[0x01, 0x23],
            valid_from: -1,
            valid_to: 30,
            extensions: Vec::new(),
        }
    }
}

/// DER of a UTF8String.
fn utf8_string(value: &str) -> Vec<u8> {
    assert!(value.len() < 128);
    let mut der = vec![0x0c, value.len() as u8];
    der.extend_from_slice(value.as_bytes());
    der
}

/// A client certificate issued by `ca`, as the DER chain a TLS client presents.
fn leaf(ca: &Ca, spec: LeafSpec<'_>) -> Vec<Vec<u8>> {
    let key = KeyPair::generate().unwrap();
    let sans: Vec<String> = spec.dns_sans.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(sans).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, spec.common_name);
    if let Some(ou) = spec.organizational_unit {
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, ou);
    }
    params.serial_number = Some(SerialNumber::from_slice(spec.serial));
    params.not_before = day_offset!(spec.valid_from);
    params.not_after = day_offset!(spec.valid_to);
    params.use_authority_key_identifier_extension = true;
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    for (arcs, value) in spec.extensions {
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(arcs, utf8_string(value)));
    }
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    vec![cert.der().to_vec()]
}

/// A PEM CRL signed by `ca` revoking `serials`.
fn crl(ca: &Ca, serials: &[&[u8]]) -> String {
    CertificateRevocationListParams {
        this_update: day_offset!(-1),
        next_update: day_offset!(7),
        crl_number: SerialNumber::from_slice(&[1]),
        issuing_distribution_point: None,
        revoked_certs: serials
            .iter()
            .map(|serial| RevokedCertParams {
                serial_number: SerialNumber::from_slice(serial),
                revocation_time: day_offset!(0),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&ca.issuer)
    .unwrap()
    .pem()
    .unwrap()
}

fn cert_mount() -> Mount {
    Mount::new("cert", &[])
}

async fn trust(mount: &Mount, role: &str, ca: &Ca, extra: Value) {
    let mut role_body = json!({"certificate": ca.pem, "token_policies": ["web"]});
    if let (Value::Object(base), Value::Object(more)) = (&mut role_body, extra) {
        base.extend(more);
    }
    mount
        .write(&format!("certs/{role}"), role_body)
        .await
        .unwrap();
}

async fn login(mount: &Mount, chain: Vec<Vec<u8>>) -> coffer_sdk::Result<Login> {
    login_as(mount, json!({}), chain).await
}

async fn login_as(mount: &Mount, body_in: Value, chain: Vec<Vec<u8>>) -> coffer_sdk::Result<Login> {
    let resp = mount.write_with_certs("login", body_in, chain).await?;
    assert!(resp.auth.is_none(), "engines never mint tokens");
    Ok(resp.login.expect("a successful login"))
}

fn refused(result: coffer_sdk::Result<Login>) {
    match result {
        Ok(login) => panic!("expected a refusal, got a login for {:?}", login.alias_name),
        Err(e) => {
            assert_eq!(e.status(), 400, "{e}");
            assert_eq!(e.to_string(), INVALID_CERTIFICATE);
        }
    }
}

#[tokio::test]
async fn instance_certificate_logs_in_with_extension_metadata() {
    let mount = cert_mount();
    assert!(mount.is_unauthenticated("login"));
    assert!(!mount.is_unauthenticated("certs/hosts"));
    let ca = new_ca("Coffer Instance CA");
    trust(
        &mount,
        "hosts",
        &ca,
        json!({
            "token_ttl": "20m",
            "metadata_extensions": {
                "instance.compartment.id": COMPARTMENT_OID,
                "instance.id": INSTANCE_ID_OID,
            },
            "allowed_metadata_extensions": [INSTANCE_ID_OID],
        }),
    )
    .await;

    let chain = leaf(
        &ca,
        LeafSpec {
            organizational_unit: Some("fleet"),
            extensions: vec![
                (COMPARTMENT_ARCS, "prod"),
                (INSTANCE_ID_ARCS, "ocid1.instance.oc1..aaaa"),
            ],
            ..LeafSpec::default()
        },
    );
    let login = login(&mount, chain).await.unwrap();
    assert_eq!(login.policies, vec!["web"]);
    assert_eq!(login.ttl, Duration::from_secs(1200));
    assert_eq!(login.alias_name, "web-01.prod");
    assert_eq!(login.display_name, "web-01.prod");
    let metadata = Value::Object(login.metadata.clone());
    assert_eq!(metadata["cert_name"], "hosts");
    assert_eq!(metadata["common_name"], "web-01.prod");
    assert_eq!(
        metadata["serial_number"], "291",
        "0x0123 in decimal, as Vault"
    );
    assert_eq!(metadata["dns_sans"], "web-01.prod.example.com");
    assert_eq!(metadata["uri_sans"], "");
    assert_eq!(metadata["ou"], "fleet");
    assert_eq!(metadata["instance.compartment.id"], "prod");
    assert_eq!(metadata["instance.id"], "ocid1.instance.oc1..aaaa");
    assert_eq!(
        metadata["1-3-6-1-4-1-57264-1-1"], "ocid1.instance.oc1..aaaa",
        "Vault's allowed_metadata_extensions key form"
    );
    let ca_key_id: Vec<String> = ca.key_id.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        metadata["authority_key_id"],
        ca_key_id.join(":"),
        "colon-separated hex, as Vault"
    );
    assert_eq!(
        metadata["subject_key_id"], "",
        "rcgen leaves carry no subject key identifier"
    );
    assert_eq!(Value::Object(login.alias_metadata), metadata);
}

#[tokio::test]
async fn role_crud_and_display_name() {
    let mount = cert_mount();
    let ca = new_ca("CA");
    trust(
        &mount,
        "Hosts",
        &ca,
        json!({"display_name": "fleet", "allowed_common_names": "web-*,db-*"}),
    )
    .await;
    assert_eq!(keys_of(&mount.list("certs/").await.unwrap()), vec!["hosts"]);
    let role = body(&mount.read("certs/hosts").await.unwrap());
    assert_eq!(role["certificate"], ca.pem);
    assert_eq!(role["display_name"], "fleet");
    assert_eq!(role["allowed_common_names"], json!(["web-*", "db-*"]));
    assert_eq!(role["token_policies"], json!(["web"]));

    let login = login(&mount, leaf(&ca, LeafSpec::default())).await.unwrap();
    assert_eq!(login.display_name, "fleet");

    // An update without a certificate keeps the stored one.
    mount
        .write("certs/hosts", json!({"token_policies": ["ops"]}))
        .await
        .unwrap();
    let role = body(&mount.read("certs/hosts").await.unwrap());
    assert_eq!(role["certificate"], ca.pem);
    assert_eq!(role["token_policies"], json!(["ops"]));

    mount.delete("certs/hosts").await.unwrap();
    assert_error(mount.read("certs/hosts").await, 404, "");
    refused(login_after_delete(&mount, &ca).await);
}

async fn login_after_delete(mount: &Mount, ca: &Ca) -> coffer_sdk::Result<Login> {
    login(mount, leaf(ca, LeafSpec::default())).await
}

#[tokio::test]
async fn certificate_from_an_untrusted_ca_is_refused() {
    let mount = cert_mount();
    let trusted = new_ca("Trusted CA");
    let stranger = new_ca("Trusted CA"); // same name, different key
    trust(&mount, "hosts", &trusted, json!({})).await;
    refused(login(&mount, leaf(&stranger, LeafSpec::default())).await);
    refused(
        login_as(
            &mount,
            json!({"name": "hosts"}),
            leaf(&stranger, LeafSpec::default()),
        )
        .await,
    );
    assert!(login(&mount, leaf(&trusted, LeafSpec::default()))
        .await
        .is_ok());
}

#[tokio::test]
async fn the_named_role_is_the_only_one_tried_and_the_first_match_wins() {
    let mount = cert_mount();
    let a = new_ca("CA A");
    let b = new_ca("CA B");
    trust(&mount, "alpha", &a, json!({"token_policies": ["alpha"]})).await;
    trust(&mount, "beta", &b, json!({"token_policies": ["beta"]})).await;
    trust(&mount, "gamma", &b, json!({"token_policies": ["gamma"]})).await;

    let from_b = || leaf(&b, LeafSpec::default());
    let first = login(&mount, from_b()).await.unwrap();
    assert_eq!(first.policies, vec!["beta"]);
    assert_eq!(first.metadata["cert_name"], "beta");
    let named = login_as(&mount, json!({"name": "gamma"}), from_b())
        .await
        .unwrap();
    assert_eq!(named.policies, vec!["gamma"]);
    refused(login_as(&mount, json!({"name": "alpha"}), from_b()).await);
    refused(login_as(&mount, json!({"name": "nope"}), from_b()).await);
}

#[tokio::test]
async fn validity_is_judged_by_the_request_clock() {
    let mount = cert_mount();
    let ca = new_ca("CA");
    trust(&mount, "hosts", &ca, json!({})).await;
    let current = || leaf(&ca, LeafSpec::default()); // valid from -1 to +30 days
    let future = || {
        leaf(
            &ca,
            LeafSpec {
                valid_from: 10,
                valid_to: 60,
                ..LeafSpec::default()
            },
        )
    };

    assert!(login(&mount, current()).await.is_ok());
    refused(login(&mount, future()).await);

    mount.clock.advance(11 * DAY);
    assert!(
        login(&mount, future()).await.is_ok(),
        "now inside its window"
    );
    assert!(login(&mount, current()).await.is_ok());

    mount.clock.advance(25 * DAY);
    refused(login(&mount, current()).await);
    assert!(login(&mount, future()).await.is_ok());
}

#[tokio::test]
async fn a_certificate_revoked_by_its_issuers_crl_is_refused() {
    let mount = cert_mount();
    let ca = new_ca("CA");
    trust(&mount, "hosts", &ca, json!({})).await;
    let revoked = || leaf(&ca, LeafSpec::default()); // serial 0x0123
    let good = || {
        leaf(
            &ca,
            LeafSpec {
                serial: &[0x07],
                ..LeafSpec::default()
            },
        )
    };
    assert!(login(&mount, revoked()).await.is_ok());

    mount
        .write("crls/ca", json!({"crl": crl(&ca, &[&[0x01, 0x23]])}))
        .await
        .unwrap();
    refused(login(&mount, revoked()).await);
    assert!(login(&mount, good()).await.is_ok());
    let serials = body(&mount.read("crls/ca").await.unwrap());
    assert_eq!(serials["serials"], json!({"291": {}}));
    assert_eq!(keys_of(&mount.list("crls/").await.unwrap()), vec!["ca"]);

    mount.delete("crls/ca").await.unwrap();
    assert!(login(&mount, revoked()).await.is_ok());
    assert_error(mount.read("crls/ca").await, 404, "");

    // A CRL from an unrelated CA (different issuer name) leaves this CA's certificates alone.
    let unrelated = new_ca("Unrelated CA");
    mount
        .write(
            "crls/unrelated",
            json!({"crl": crl(&unrelated, &[&[0x01, 0x23]])}),
        )
        .await
        .unwrap();
    assert!(login(&mount, revoked()).await.is_ok());
}

#[tokio::test]
async fn a_malformed_crl_is_refused() {
    let mount = cert_mount();
    let before = mount.snapshot().await;
    for bad in [
        json!({}),
        json!({"crl": "garbage"}),
        json!({"crl": "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"}),
        json!({"crl": new_ca("CA").pem}),
    ] {
        let err = mount.write("crls/bad", bad).await.unwrap_err();
        assert_eq!(err.status(), 400, "{err}");
    }
    assert_eq!(mount.snapshot().await, before);
}

#[tokio::test]
async fn common_name_and_dns_san_constraints() {
    let mount = cert_mount();
    let ca = new_ca("CA");
    trust(
        &mount,
        "web",
        &ca,
        json!({"allowed_common_names": ["web-*.prod"], "allowed_dns_sans": ["*.example.com"]}),
    )
    .await;
    let with = |cn: &'static str, dns: &'static str| {
        leaf(
            &ca,
            LeafSpec {
                common_name: cn,
                dns_sans: vec![dns],
                ..LeafSpec::default()
            },
        )
    };
    assert!(login(&mount, with("web-01.prod", "a.example.com"))
        .await
        .is_ok());
    assert!(
        login(&mount, with("web-02.prod", "B.Example.COM"))
            .await
            .is_ok(),
        "DNS SANs compare case-insensitively, as Vault"
    );
    refused(login(&mount, with("db-01.prod", "a.example.com")).await);
    refused(login(&mount, with("web-01.prod", "a.example.org")).await);
}

#[tokio::test]
async fn organizational_unit_constraint() {
    let mount = cert_mount();
    let ca = new_ca("CA");
    trust(
        &mount,
        "fleet",
        &ca,
        json!({"allowed_organizational_units": "fleet-*"}),
    )
    .await;
    let with_ou = |ou: Option<&'static str>| {
        leaf(
            &ca,
            LeafSpec {
                organizational_unit: ou,
                ..LeafSpec::default()
            },
        )
    };
    assert!(login(&mount, with_ou(Some("fleet-eu"))).await.is_ok());
    refused(login(&mount, with_ou(Some("office"))).await);
    refused(login(&mount, with_ou(None)).await);
}

#[tokio::test]
async fn required_extensions_must_be_present_and_match() {
    let mount = cert_mount();
    let ca = new_ca("CA");
    trust(
        &mount,
        "prod",
        &ca,
        json!({"required_extensions": [format!("{COMPARTMENT_OID}:prod*")]}),
    )
    .await;
    let with = |extensions: Vec<(&'static [u64], &'static str)>| {
        leaf(
            &ca,
            LeafSpec {
                extensions,
                ..LeafSpec::default()
            },
        )
    };
    assert!(login(&mount, with(vec![(COMPARTMENT_ARCS, "prod-eu")]))
        .await
        .is_ok());
    refused(login(&mount, with(vec![(COMPARTMENT_ARCS, "dev")])).await);
    refused(login(&mount, with(vec![(INSTANCE_ID_ARCS, "prod")])).await);
    refused(login(&mount, with(vec![])).await);

    // The raw-value form compares hex: UTF8String "prod" is 0c 04 70 72 6f 64.
    mount
        .write(
            "certs/prod",
            json!({"required_extensions": [format!("hex:{COMPARTMENT_OID}:0c0470726f64")]}),
        )
        .await
        .unwrap();
    assert!(login(&mount, with(vec![(COMPARTMENT_ARCS, "prod")]))
        .await
        .is_ok());
    refused(login(&mount, with(vec![(COMPARTMENT_ARCS, "prod-eu")])).await);
}

#[tokio::test]
async fn login_without_a_client_certificate_is_a_400() {
    let mount = cert_mount();
    let ca = new_ca("CA");
    trust(&mount, "hosts", &ca, json!({})).await;
    let err = mount
        .write_with_certs("login", json!({}), Vec::new())
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    assert_eq!(err.to_string(), CERTIFICATE_REQUIRED);
    refused(login(&mount, vec![b"not DER".to_vec()]).await);
}

#[tokio::test]
async fn a_pinned_client_certificate_is_trusted_directly() {
    let mount = cert_mount();
    let ca = new_ca("CA");
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["pinned.example.com".to_string()]).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, "pinned");
    params.not_before = day_offset!(-1);
    params.not_after = day_offset!(5);
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    mount
        .write("certs/pinned", json!({"certificate": cert.pem()}))
        .await
        .unwrap();
    let chain = vec![cert.der().to_vec()];
    assert_eq!(
        login(&mount, chain.clone()).await.unwrap().alias_name,
        "pinned"
    );
    refused(login(&mount, leaf(&ca, LeafSpec::default())).await);
    mount.clock.advance(6 * DAY);
    refused(login(&mount, chain).await);
}

#[tokio::test]
async fn malformed_role_input_is_refused_and_nothing_is_written() {
    let mount = cert_mount();
    let ca = new_ca("CA");
    let before = mount.snapshot().await;
    let bad_bodies = [
        json!({"token_policies": ["web"]}),
        json!({"certificate": "not a certificate"}),
        json!({"certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}),
        json!({"certificate": "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"}),
        json!({"certificate": ca.pem, "required_extensions": ["no-colon"]}),
        json!({"certificate": ca.pem, "allowed_metadata_extensions": ["not.an.oid"]}),
        json!({"certificate": ca.pem, "metadata_extensions": {"x": "1.2.x"}}),
        json!({"certificate": ca.pem, "metadata_extensions": {"common_name": "1.2.3"}}),
    ];
    for bad in bad_bodies {
        let err = mount.write("certs/hosts", bad.clone()).await.unwrap_err();
        assert_eq!(err.status(), 400, "{bad}: {err}");
        assert!(
            !err.to_string().contains("AAAA") && !err.to_string().contains("not a certificate"),
            "errors never echo the submitted PEM: {err}"
        );
    }
    assert_eq!(mount.snapshot().await, before);

    // A bad certificate in an update leaves the stored role as it was.
    trust(&mount, "hosts", &ca, json!({})).await;
    let stored = mount.snapshot().await;
    let err = mount
        .write("certs/hosts", json!({"certificate": "garbage"}))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    assert_eq!(mount.snapshot().await, stored);
}
