//! The timestamp authority in process, on both key stores and both databases: every
//! refusal carries its PKIStatus and failure bit and records nothing; every token granted
//! is signed over what was asked, names the policy, echoes the nonce, carries the TSA's
//! certificate when asked and is recorded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use ca::http::CaState;
use ca::ocsp::OcspResponder;
use ca::tsa::TimestampAuthority;
use der::asn1::{Any, Int, ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use pkix::tsp::{FailureInfo, PkiStatus, TimeStampResp};
use spki::AlgorithmIdentifier;
use store::Serial;
use tower::ServiceExt;
use x509_tsp::{MessageImprint, TimeStampReq, TspVersion, TstInfo};

const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");

struct Tsa {
    router: axum::Router,
    state: Arc<CaState>,
    _pki: common::Pki,
}

async fn tsa(pkcs11: bool, postgres: bool) -> Tsa {
    let pki = common::pki(pkcs11, postgres).await;
    let authority = pki.authority.clone();
    let state = Arc::new(CaState { ocsp: OcspResponder::new(&authority).expect("ocsp"), tsa: TimestampAuthority::new(&authority).expect("tsa"), authority });
    Tsa { router: ca::http::router(state.clone()), state, _pki: pki }
}

fn query(algorithm: ObjectIdentifier, imprint: &[u8], policy: Option<&str>, nonce: Option<&[u8]>, cert_req: bool) -> Vec<u8> {
    TimeStampReq {
        version: TspVersion::V1,
        message_imprint: MessageImprint {
            hash_algorithm: AlgorithmIdentifier { oid: algorithm, parameters: None::<Any> },
            hashed_message: OctetString::new(imprint).expect("imprint"),
        },
        req_policy: policy.map(|p| p.parse().expect("oid")),
        nonce: nonce.map(|n| Int::new(n).expect("nonce")),
        cert_req,
        extensions: None,
    }
    .to_der()
    .expect("der")
}

async fn post(t: &Tsa, content_type: &str, body: Vec<u8>) -> Vec<u8> {
    let req = Request::post("/tsa").header("content-type", content_type).body(Body::from(body)).expect("request");
    let res = t.router.clone().oneshot(req).await.expect("response");
    // Whatever was asked, the answer is a TimeStampResp, never an HTTP error.
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/timestamp-reply");
    axum::body::to_bytes(res.into_body(), usize::MAX).await.expect("body").to_vec()
}

/// The PKIStatus, failure bits and text of a response.
fn status(der: &[u8]) -> (PkiStatus, Vec<FailureInfo>, String) {
    let r = TimeStampResp::from_der(der).expect("TimeStampResp");
    (r.status, r.failure, r.text.join(" "))
}

fn token_info(der: &[u8]) -> (TstInfo, usize) {
    let r = TimeStampResp::from_der(der).expect("TimeStampResp");
    let token = r.token.unwrap_or_else(|| panic!("no token: {:?} {:?} {:?}", r.status, r.failure, r.text));
    let signed = cms::signed_data::SignedData::from_der(&token.content.to_der().expect("der")).expect("SignedData");
    let content = signed.encap_content_info.econtent.expect("encapsulated TSTInfo");
    let info = TstInfo::from_der(OctetString::from_der(&content.to_der().expect("der")).expect("octets").as_bytes()).expect("TSTInfo");
    (info, signed.certificates.map_or(0, |c| c.0.len()))
}

async fn refuses_precisely_and_records_only_what_it_grants(t: Tsa) {
    use FailureInfo::*;
    let digest = [7u8; 32];
    let refusals: [(&str, Vec<u8>, &str, FailureInfo, &str); 8] = [
        ("SHA-1", query(SHA1, &[7; 20], None, None, false), "application/timestamp-query", BadAlg, "hash algorithm 1.3.14.3.2.26 is not accepted"),
        ("an unknown algorithm", query("1.2.3.4".parse().expect("oid"), &digest, None, None, false), "application/timestamp-query", BadAlg, "is not accepted"),
        ("a short imprint", query(SHA256, &[7; 20], None, None, false), "application/timestamp-query", BadDataFormat, "a sha256 imprint has 32 octets"),
        (
            "another policy",
            query(SHA256, &digest, Some("1.2.3.4.5"), None, false),
            "application/timestamp-query",
            UnacceptedPolicy,
            "policy 1.2.3.4.5 is not this TSA's",
        ),
        ("not DER", b"not a request".to_vec(), "application/timestamp-query", BadDataFormat, "not a DER TimeStampReq"),
        ("an oversized request", vec![0x30; 5000], "application/timestamp-query", BadRequest, "larger than 1024 octets"),
        ("a request far over the route's limit", vec![0x30; 100_000], "application/timestamp-query", BadRequest, "larger than 1024 octets"),
        ("another media type", query(SHA256, &digest, None, None, false), "application/octet-stream", BadRequest, "POSTed as application/timestamp-query"),
    ];
    for (what, body, content_type, bit, text) in refusals {
        let (status, bits, said) = status(&post(&t, content_type, body).await);
        assert_eq!((status, bits), (PkiStatus::Rejection, vec![bit]), "{what}");
        assert!(said.contains(text), "{what}: {said:?}");
    }

    // Granted: over the imprint asked, under the TSA policy, nonce echoed, certificate on request.
    let imprint = [9u8; 64];
    let nonce = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08];
    let with_cert = post(&t, "application/timestamp-query", query(SHA512, &imprint, Some("2.16.400.1.1.2.1"), Some(&nonce), true)).await;
    assert_eq!(status(&with_cert).0, PkiStatus::Granted);
    let (info, certificates) = token_info(&with_cert);
    assert_eq!(info.message_imprint.hashed_message.as_bytes(), imprint);
    assert_eq!(info.policy.to_string(), "2.16.400.1.1.2.1");
    assert_eq!(info.nonce.as_ref().map(|n| n.as_bytes().to_vec()), Some(nonce.to_vec()));
    assert_eq!(info.accuracy.as_ref().and_then(|a| a.seconds), Some(1));
    assert_eq!(certificates, 1, "certReq: the TSA's certificate is included");
    let without_cert = post(&t, "application/timestamp-query", query(SHA256, &digest, None, None, false)).await;
    let (second, certificates) = token_info(&without_cert);
    assert_eq!(certificates, 0, "no certReq: no certificate");
    assert!(second.nonce.is_none());
    assert_ne!(info.serial_number, second.serial_number, "serials are unique");

    // Each granted token is recorded; nothing else is.
    let store = t.state.authority.store();
    let serial = |i: &TstInfo| Serial::new(i.serial_number.as_bytes().to_vec()).expect("serial");
    let record = store.timestamp(&serial(&info)).await.expect("read").expect("the token is recorded");
    assert_eq!((record.hash_algorithm.as_str(), record.imprint.as_slice(), record.policy.as_str()), ("sha512", &imprint[..], "2.16.400.1.1.2.1"));
    assert_eq!(record.requester, "unknown", "no peer address in process");
    assert!(store.timestamp(&serial(&second)).await.expect("read").is_some());

    // Many at once share commits, and every one is recorded before it is handed out.
    let mut tasks = Vec::new();
    for i in 0..300u16 {
        let state = t.state.clone();
        tasks.push(tokio::spawn(
            async move { state.tsa.respond(&query(SHA256, &[i as u8; 32], None, Some(&[1, (i >> 8) as u8, i as u8]), false), "test").await },
        ));
    }
    for task in tasks {
        let response = task.await.expect("join");
        let (info, _) = token_info(&response);
        assert!(store.timestamp(&serial(&info)).await.expect("read").is_some(), "a token was handed out before it was recorded");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_sqlite_refuses_precisely_and_records_only_what_it_grants() {
    refuses_precisely_and_records_only_what_it_grants(tsa(false, false).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkcs11_postgres_refuses_precisely_and_records_only_what_it_grants() {
    refuses_precisely_and_records_only_what_it_grants(tsa(true, true).await).await;
}
