//! Renewing an issuing CA in-process, on every backend: new issuance moves to the new
//! generation, the old one keeps its CRL, and refusals create nothing.
// Test code: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use ca::ocsp::OcspResponder;
use ca::{Authority, CaError, IssueRequest, Subject};
use common::{Pki, pki};
use der::{Decode, Encode};
use hsm_shim::signer::StoredKeySigner;
use hsm_shim::soft::{OperatorSecret, SoftKeyStore};
use hsm_shim::{KeySpec, KeyStore};
use store::RevocationReason;

fn request() -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = OperatorSecret::new(b"a citizen's device secret".to_vec()).expect("secret");
    let store: Arc<dyn KeyStore> = Arc::new(SoftKeyStore::open_or_create(dir.path(), &secret).expect("store"));
    let key = store.generate(KeySpec::EcP256, "device").expect("key");
    let signer = StoredKeySigner::new(store, key, KeySpec::EcP256.default_algorithm()).expect("signer");
    rcgen::CertificateParams::default().serialize_request(&signer).expect("csr").der().to_vec()
}

fn citizen() -> Subject {
    Subject::NaturalPerson { given_name: "Omar".into(), surname: "Khalil".into(), national_id: "2000123456".parse().expect("id"), country: "JO".into() }
}

async fn issue(authority: &Authority) -> ca::Issued {
    authority.issue(&IssueRequest { profile: "citizen-authentication".into(), csr: request(), subject: citizen() }).await.expect("issue")
}

fn issuer_cn(der: &[u8]) -> String {
    x509_cert::Certificate::from_der(der).expect("certificate").tbs_certificate.issuer.to_string()
}

/// What a refusal must leave as it was: the ceremony record, the certificates, the keys.
async fn state(pki: &Pki) -> (Option<store::CeremonyRecord>, u64, usize) {
    (pki.store.ceremony().await.expect("ceremony"), pki.store.count().await.expect("count"), pki.keys.list().expect("keys").len())
}

async fn renewal_moves_issuance_and_keeps_the_old_generation(pki: Pki) {
    let old = issue(&pki.authority).await;
    assert_eq!(old.issuer, "citizen-authentication-ca");

    // Refusals first: nothing is created.
    let before = state(&pki).await;
    for (name, said) in [
        ("root", "cannot renew: \"root\" is not an issuing CA; renewable: citizen-authentication-ca, citizen-signing-ca, services-ca"),
        (
            "citizen-authentication",
            "cannot renew: \"citizen-authentication\" is not an issuing CA; renewable: citizen-authentication-ca, citizen-signing-ca, services-ca",
        ),
        (
            "citizen-authentication-ca-ocsp",
            "cannot renew: \"citizen-authentication-ca-ocsp\" is not an issuing CA; renewable: citizen-authentication-ca, citizen-signing-ca, services-ca",
        ),
    ] {
        let e = ca::ceremony::renew(pki.keys.clone(), pki.store.clone(), pki.policies.clone(), name).await.expect_err(name);
        assert!(matches!(e, CaError::NotRenewable(_)), "{e}");
        assert_eq!(e.to_string(), said);
    }
    assert_eq!(state(&pki).await, before, "a refused renewal changes nothing");

    let renewal = ca::ceremony::renew(pki.keys.clone(), pki.store.clone(), pki.policies.clone(), "citizen-authentication-ca").await.expect("renew");
    assert_eq!(renewal.record.generation, "citizen-authentication-ca-2");
    assert_eq!(renewal.record.replaces, "citizen-authentication-ca");
    assert_eq!(renewal.common_name, "Test Authentication CA G2");
    let (record, count, keys) = state(&pki).await;
    let record = record.expect("record");
    assert_eq!(record.renewals, vec![renewal.record.clone()]);
    let names: Vec<_> = record.authorities.iter().map(|a| a.name.as_str()).collect();
    assert!(names.ends_with(&["citizen-authentication-ca-2", "citizen-authentication-ca-2-ocsp"]), "{names:?}");
    assert_eq!((count, keys), (before.1 + 2, before.2 + 2), "two certificates and two keys: the CA's and its responder's");

    // A second renewal before the new generation has issued anything is a repeated command.
    let before = state(&pki).await;
    let e = ca::ceremony::renew(pki.keys.clone(), pki.store.clone(), pki.policies.clone(), "citizen-authentication-ca").await.expect_err("again");
    assert_eq!(
        e.to_string(),
        format!(
            "cannot renew: citizen-authentication-ca-2 (renewed {}) has issued no certificate yet; renewing it again would retire a key that never issued",
            renewal.record.performed_at
        )
    );
    assert_eq!(state(&pki).await, before, "the refused second renewal changes nothing");

    // Loaded again (as `hawiya serve` does), the authority issues from the new generation.
    let authority = Authority::load(pki.store.clone(), pki.keys.clone(), pki.policies.clone()).await.expect("load");
    assert_eq!(authority.current_generation("citizen-authentication-ca").expect("current"), "citizen-authentication-ca-2");
    assert_eq!(authority.generations("citizen-authentication-ca"), ["citizen-authentication-ca", "citizen-authentication-ca-2"]);
    let new = issue(&authority).await;
    assert_eq!(new.issuer, "citizen-authentication-ca-2");
    assert!(issuer_cn(&new.der).contains("CN=Test Authentication CA G2"), "{}", issuer_cn(&new.der));
    assert_eq!(authority.issuer_of(&new.der).expect("issuer"), "citizen-authentication-ca-2");
    assert_eq!(authority.issuer_of(&old.der).expect("issuer"), "citizen-authentication-ca");
    // The other CAs are untouched.
    assert_eq!(authority.current_generation("citizen-signing-ca").expect("current"), "citizen-signing-ca");
    // Every generation has an OCSP responder.
    OcspResponder::new(&authority).expect("responders of both generations");

    // Each generation's CRL lists what it issued and was revoked, and names its own CA.
    authority.revoke(&old.serial, RevocationReason::KeyCompromise).await.expect("revoke");
    let crl_of = |der: &[u8]| x509_cert::crl::CertificateList::from_der(der).expect("CRL");
    let old_crl = crl_of(&authority.publish_crl("citizen-authentication-ca").await.expect("old CRL").der);
    let new_crl = crl_of(&authority.publish_crl("citizen-authentication-ca-2").await.expect("new CRL").der);
    let listed = old_crl.tbs_cert_list.revoked_certificates.expect("the old generation lists its revoked certificate");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].serial_number.as_bytes(), old.serial.as_bytes());
    assert!(new_crl.tbs_cert_list.revoked_certificates.is_none(), "the new generation revoked nothing");
    let subject = |name: &str| x509_cert::Certificate::from_der(authority.certificate(name).expect("cert")).expect("parse").tbs_certificate.subject;
    assert_eq!(old_crl.tbs_cert_list.issuer.to_der().expect("der"), subject("citizen-authentication-ca").to_der().expect("der"));
    assert_eq!(new_crl.tbs_cert_list.issuer.to_der().expect("der"), subject("citizen-authentication-ca-2").to_der().expect("der"));

    // Once the new generation has issued, it may be renewed again: G3, not "G2 G3".
    let third = ca::ceremony::renew(pki.keys.clone(), pki.store.clone(), pki.policies.clone(), "citizen-authentication-ca").await.expect("renew again");
    assert_eq!((third.record.generation.as_str(), third.common_name.as_str()), ("citizen-authentication-ca-3", "Test Authentication CA G3"));
    assert_eq!(third.record.replaces, "citizen-authentication-ca-2");
}

#[tokio::test]
async fn soft_sqlite_renewal_moves_issuance_and_keeps_the_old_generation() {
    renewal_moves_issuance_and_keeps_the_old_generation(pki(false, false).await).await;
}

#[tokio::test]
async fn pkcs11_postgres_renewal_moves_issuance_and_keeps_the_old_generation() {
    renewal_moves_issuance_and_keeps_the_old_generation(pki(true, true).await).await;
}

/// Two renewals of one CA at once: one is recorded with its two certificates; the other
/// records nothing.
async fn concurrent_renewals_record_one(pki: Pki) {
    let (_, count, _) = state(&pki).await;
    let renew = || ca::ceremony::renew(pki.keys.clone(), pki.store.clone(), pki.policies.clone(), "citizen-signing-ca");
    let (a, b) = tokio::join!(renew(), renew());
    let (won, lost) = match (a, b) {
        (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won, lost),
        (a, b) => panic!("exactly one renewal wins: {a:?} {b:?}"),
    };
    // Which refusal depends on how far the loser got: the record moved under it, the first
    // one's generation was already recorded, or (within the same second) the key store
    // refused a second key of the same label.
    assert!(
        matches!(lost, CaError::Store(store::StoreError::CeremonyChanged) | CaError::NotRenewable(_) | CaError::Key(hsm_shim::Error::DuplicateLabel(_))),
        "the loser is refused precisely: {lost}"
    );
    let (record, after, _) = state(&pki).await;
    assert_eq!(record.expect("record").renewals, vec![won.record]);
    assert_eq!(after, count + 2, "only the winner's two certificates are stored");
}

#[tokio::test]
async fn soft_sqlite_concurrent_renewals_record_one() {
    concurrent_renewals_record_one(pki(false, false).await).await;
}

#[tokio::test]
async fn pkcs11_postgres_concurrent_renewals_record_one() {
    concurrent_renewals_record_one(pki(true, true).await).await;
}
