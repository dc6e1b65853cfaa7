//! The authority in-process: concurrent issuance on every backend, and the OCSP and CRL
//! endpoints through the router with the inputs OpenSSL would never send.
// Test code: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Pki, pki};

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use ca::http::CaState;
use ca::ocsp::OcspResponder;
use ca::{Authority, IssueRequest, Subject};
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use hsm_shim::signer::StoredKeySigner;
use hsm_shim::soft::{OperatorSecret, SoftKeyStore};
use hsm_shim::{KeySpec, KeyStore, SignatureAlgorithm};
use store::{RevocationReason, Serial};
use tower::ServiceExt;
use x509_cert::ext::pkix::CrlReason;
use x509_ocsp::{BasicOcspResponse, CertId, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus, Request as OcspItem, TbsRequest};

/// A PKCS#10 request made with the rcgen adapter of a soft key (the key never leaves it).
fn request(spec: KeySpec) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = OperatorSecret::new(b"a citizen's device secret".to_vec()).expect("secret");
    let store: Arc<dyn KeyStore> = Arc::new(SoftKeyStore::open_or_create(dir.path(), &secret).expect("store"));
    let key = store.generate(spec, "device").expect("key");
    let signer = StoredKeySigner::new(store, key, spec.default_algorithm()).expect("signer");
    rcgen::CertificateParams::default().serialize_request(&signer).expect("csr").der().to_vec()
}

fn citizen() -> Subject {
    Subject::NaturalPerson {
        given_name: "Omar".into(),
        surname: "Khalil".into(),
        national_id: "2000123456".parse().expect("a national id"),
        country: "JO".into(),
    }
}

async fn issues_a_thousand_certificates_concurrently(pki: Pki) {
    let csr = request(KeySpec::EcP256);
    let before = pki.authority.store().count().await.expect("count");
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let authority = pki.authority.clone();
        let req = IssueRequest { profile: "citizen-authentication".into(), csr: csr.clone(), subject: citizen() };
        tasks.push(tokio::spawn(async move { authority.issue(&req).await }));
    }
    let mut serials = HashSet::new();
    let mut issued = Vec::new();
    for t in tasks {
        let i = t.await.expect("join").expect("issued");
        assert!(serials.insert(i.serial.clone()), "serial {} given twice", i.serial);
        issued.push(i);
    }
    assert_eq!(serials.len(), 1000);
    for i in &issued {
        let record = pki.authority.store().certificate(&i.serial).await.expect("read").expect("every returned certificate is stored");
        assert_eq!(record.certificate.der, i.der);
    }
    assert_eq!(pki.authority.store().count().await.expect("count"), before + 1000, "no record beyond the certificates returned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_sqlite_issues_a_thousand_certificates_concurrently() {
    issues_a_thousand_certificates_concurrently(pki(false, false).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkcs11_postgres_issues_a_thousand_certificates_concurrently() {
    issues_a_thousand_certificates_concurrently(pki(true, true).await).await;
}

#[tokio::test]
async fn the_rcgen_adapter_signs_requests_of_every_key_type() {
    let pki = pki(false, false).await;
    for spec in [KeySpec::EcP384, KeySpec::Rsa3072] {
        let req = IssueRequest { profile: "citizen-signature".into(), csr: request(spec), subject: citizen() };
        pki.authority.issue(&req).await.unwrap_or_else(|e| panic!("{spec}: {e}"));
    }
    let ed = IssueRequest { profile: "citizen-signature".into(), csr: request(KeySpec::Ed25519), subject: citizen() };
    assert!(matches!(pki.authority.issue(&ed).await, Err(ca::CaError::KeyNotAllowed { .. })));
    assert_eq!(SignatureAlgorithm::Es256, KeySpec::EcP256.default_algorithm());
}

// --- OCSP through the router --------------------------------------------------------

const NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");

fn cert_id(authority: &Authority, ca: &str, serial: &Serial) -> CertId {
    let cert = x509_cert::Certificate::from_der(authority.certificate(ca).expect("ca")).expect("parse");
    let sha1 = |d: &[u8]| aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, d).as_ref().to_vec();
    let name = cert.tbs_certificate.subject.to_der().expect("der");
    let key = cert.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes();
    CertId {
        hash_algorithm: spki::AlgorithmIdentifierOwned { oid: ObjectIdentifier::new_unwrap("1.3.14.3.2.26"), parameters: Some(der::asn1::Null.into()) },
        issuer_name_hash: OctetString::new(sha1(&name)).expect("octets"),
        issuer_key_hash: OctetString::new(sha1(key)).expect("octets"),
        serial_number: x509_cert::serial_number::SerialNumber::new(serial.as_bytes()).expect("serial"),
    }
}

fn ocsp_request(id: CertId, nonce: Option<&[u8]>) -> Vec<u8> {
    let request_extensions = nonce.map(|n| {
        vec![x509_cert::ext::Extension {
            extn_id: NONCE,
            critical: false,
            extn_value: OctetString::new(OctetString::new(n).expect("nonce").to_der().expect("der")).expect("octets"),
        }]
    });
    OcspRequest {
        tbs_request: TbsRequest {
            version: x509_ocsp::Version::V1,
            requestor_name: None,
            request_list: vec![OcspItem { req_cert: id, single_request_extensions: None }],
            request_extensions,
        },
        optional_signature: None,
    }
    .to_der()
    .expect("der")
}

async fn post(router: &axum::Router, content_type: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    let req = Request::post("/ocsp").header("content-type", content_type).body(Body::from(body)).expect("request");
    let res = router.clone().oneshot(req).await.expect("response");
    let status = res.status();
    (status, axum::body::to_bytes(res.into_body(), usize::MAX).await.expect("body").to_vec())
}

fn basic(der: &[u8]) -> BasicOcspResponse {
    let response = OcspResponse::from_der(der).expect("OCSPResponse");
    assert_eq!(response.response_status, OcspResponseStatus::Successful);
    BasicOcspResponse::from_der(response.response_bytes.expect("bytes").response.as_bytes()).expect("basic")
}

fn status_of(der: &[u8]) -> u8 {
    OcspResponse::from_der(der).expect("OCSPResponse").response_status as u8
}

#[tokio::test]
async fn ocsp_answers_caches_and_refuses_precisely() {
    let pki = pki(false, false).await;
    let state = Arc::new(CaState {
        ocsp: OcspResponder::new(&pki.authority).expect("responder"),
        tsa: ca::tsa::TimestampAuthority::new(&pki.authority).expect("tsa"),
        authority: pki.authority.clone(),
    });
    let router = ca::http::router(state);
    let issued =
        pki.authority.issue(&IssueRequest { profile: "citizen-signature".into(), csr: request(KeySpec::EcP256), subject: citizen() }).await.expect("issue");
    let id = cert_id(&pki.authority, "citizen-signing-ca", &issued.serial);

    // Without a nonce the signed answer is reused while nothing changes.
    let (code, first) = post(&router, "application/ocsp-request", ocsp_request(id.clone(), None)).await;
    assert_eq!(code, StatusCode::OK);
    assert!(matches!(basic(&first).tbs_response_data.responses[0].cert_status, CertStatus::Good(_)));
    let (_, second) = post(&router, "application/ocsp-request", ocsp_request(id.clone(), None)).await;
    assert_eq!(first, second, "a nonce-less answer is served from the cache");

    // With a nonce: signed anew, nonce echoed.
    let (_, with_nonce) = post(&router, "application/ocsp-request", ocsp_request(id.clone(), Some(&[7u8; 32]))).await;
    let echoed = basic(&with_nonce).tbs_response_data.response_extensions.expect("extensions");
    assert!(echoed.iter().any(|e| e.extn_id == NONCE && e.extn_value.as_bytes().ends_with(&[7u8; 32])));

    // A revocation is in the very next answer, cached or not.
    pki.authority.revoke(&issued.serial, RevocationReason::AffiliationChanged).await.expect("revoke");
    let (_, after) = post(&router, "application/ocsp-request", ocsp_request(id.clone(), None)).await;
    match &basic(&after).tbs_response_data.responses[0].cert_status {
        CertStatus::Revoked(info) => assert_eq!(info.revocation_reason, Some(CrlReason::AffiliationChanged)),
        other => panic!("expected revoked, got {other:?}"),
    }

    // Refusals, as RFC 6960 statuses.
    let (code, garbage) = post(&router, "application/ocsp-request", b"not DER".to_vec()).await;
    assert_eq!((code, status_of(&garbage)), (StatusCode::OK, 1), "malformedRequest");
    let (_, long_nonce) = post(&router, "application/ocsp-request", ocsp_request(id.clone(), Some(&[1u8; 33]))).await;
    assert_eq!(status_of(&long_nonce), 1, "a nonce over 32 octets is malformed (RFC 8954)");
    let mut foreign = id.clone();
    foreign.issuer_key_hash = OctetString::new(vec![0u8; 20]).expect("octets");
    let (_, unauthorized) = post(&router, "application/ocsp-request", ocsp_request(foreign, None)).await;
    assert_eq!(status_of(&unauthorized), 6, "unauthorized for a CA we do not run");
    let (code, _) = post(&router, "text/plain", ocsp_request(id.clone(), None)).await;
    assert_eq!(code, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (code, _) = post(&router, "application/ocsp-request", vec![0x30; 64 * 1024]).await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE);
    let res = router.clone().oneshot(Request::get("/ocsp/%%%").body(Body::empty()).expect("req")).await.expect("res");
    let body = axum::body::to_bytes(res.into_body(), usize::MAX).await.expect("body");
    assert_eq!(status_of(&body), 1, "a GET that is not base64 is malformed");
}

#[tokio::test]
async fn crls_follow_revocations_and_numbers_only_grow() {
    let pki = pki(false, false).await;
    let a = pki.authority.current_crl("citizen-authentication-ca").await.expect("crl").expect("published");
    let again = pki.authority.current_crl("citizen-authentication-ca").await.expect("crl").expect("published");
    assert_eq!(a, again, "an unchanged, fresh CRL is served again");
    let issued = pki
        .authority
        .issue(&IssueRequest { profile: "citizen-authentication".into(), csr: request(KeySpec::EcP256), subject: citizen() })
        .await
        .expect("issue");
    pki.authority.revoke(&issued.serial, RevocationReason::CertificateHold).await.expect("hold");
    let b = pki.authority.current_crl("citizen-authentication-ca").await.expect("crl").expect("published");
    assert!(b.number > a.number);
    let crl = x509_cert::crl::CertificateList::from_der(&b.der).expect("CRL");
    let listed = crl.tbs_cert_list.revoked_certificates.expect("one entry");
    assert_eq!(listed[0].serial_number.as_bytes(), issued.serial.as_bytes());
    pki.authority.release(&issued.serial).await.expect("release");
    let c = pki.authority.current_crl("citizen-authentication-ca").await.expect("crl").expect("published");
    assert!(c.number > b.number);
    assert!(x509_cert::crl::CertificateList::from_der(&c.der).expect("CRL").tbs_cert_list.revoked_certificates.is_none());
}
