//! `pkix::ocsp::check` and `pkix::evidence::Evidence` on responses that OpenSSL's own
//! responder (`openssl ocsp -index`) makes: signed by the issuer or a delegated responder,
//! good and revoked, and every way a response must be refused.
// Test code: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use der::{Decode, DecodePem};
use pkix::evidence::{Evidence, Source};
use pkix::ocsp::{self, OcspError, OcspStatus};
use pkix::path::{AlgorithmPolicy, Revocation, RevocationStatus};
use x509_cert::Certificate;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().expect("openssl (apt-get install openssl)");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn cert(dir: &Path, name: &str) -> Certificate {
    Certificate::from_pem(std::fs::read(dir.join(name)).unwrap()).unwrap()
}

/// A CA, a citizen, a second citizen (revoked), a delegated responder, a responder without
/// id-kp-OCSPSigning, and a responder of another CA.
fn pki(dir: &Path) {
    std::fs::write(
        dir.join("ext.cnf"),
        "[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n\
         [leaf]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         [responder]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=OCSPSigning\n",
    )
    .unwrap();
    let key = |name: &str| openssl(dir, &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", &format!("{name}.key")]);
    for (ca, cn) in [("ca", "Test CA"), ("other-ca", "Other CA")] {
        key(ca);
        openssl(
            dir,
            &[
                "req",
                "-new",
                "-x509",
                "-key",
                &format!("{ca}.key"),
                "-subj",
                &format!("/CN={cn}"),
                "-days",
                "365",
                "-sha256",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-out",
                &format!("{ca}.pem"),
            ],
        );
    }
    for (name, issuer, ext, serial) in [
        ("leaf", "ca", "leaf", "0x10"),
        ("revoked", "ca", "leaf", "0x11"),
        ("responder", "ca", "responder", "0x12"),
        ("rogue", "ca", "leaf", "0x13"),
        ("other-responder", "other-ca", "responder", "0x14"),
    ] {
        key(name);
        openssl(dir, &["req", "-new", "-key", &format!("{name}.key"), "-subj", &format!("/CN={name}"), "-out", &format!("{name}.csr")]);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                &format!("{issuer}.pem"),
                "-CAkey",
                &format!("{issuer}.key"),
                "-set_serial",
                serial,
                "-days",
                "30",
                "-sha256",
                "-extfile",
                "ext.cnf",
                "-extensions",
                ext,
                "-out",
                &format!("{name}.pem"),
            ],
        );
    }
    // OpenSSL's index: serial 10 valid, 11 revoked at 2026-01-02.
    std::fs::write(
        dir.join("index.txt"),
        "V\t300101000000Z\t\t10\tunknown\t/CN=leaf\nR\t300101000000Z\t260102000000Z,keyCompromise\t11\tunknown\t/CN=revoked\n",
    )
    .unwrap();
}

/// OpenSSL's responder answering our own request for `cert`, signed with `signer`.
fn respond(dir: &Path, cert: &str, signer: &str, out: &str) -> Vec<u8> {
    let leaf = self::cert(dir, cert);
    let ca = self::cert(dir, "ca.pem");
    std::fs::write(dir.join("req.der"), ocsp::request(&leaf, &ca).unwrap()).unwrap();
    openssl(
        dir,
        &[
            "ocsp",
            "-index",
            "index.txt",
            "-CA",
            "ca.pem",
            "-rsigner",
            &format!("{signer}.pem"),
            "-rkey",
            &format!("{signer}.key"),
            "-reqin",
            "req.der",
            "-respout",
            out,
            "-ndays",
            "1",
        ],
    );
    std::fs::read(dir.join(out)).unwrap()
}

/// `response` with one bit of its signature flipped.
fn with_signature_flipped(response: &[u8]) -> Vec<u8> {
    use der::Encode;
    let mut outer = x509_ocsp::OcspResponse::from_der(response).unwrap();
    let bytes = outer.response_bytes.as_mut().unwrap();
    let mut basic = x509_ocsp::BasicOcspResponse::from_der(bytes.response.as_bytes()).unwrap();
    let mut signature = basic.signature.raw_bytes().to_vec();
    signature[10] ^= 1;
    basic.signature = der::asn1::BitString::from_bytes(&signature).unwrap();
    bytes.response = der::asn1::OctetString::new(basic.to_der().unwrap()).unwrap();
    outer.to_der().unwrap()
}

#[test]
fn responses_from_the_issuer_or_its_responder_are_checked_fully() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    pki(d);
    let (ca, leaf, revoked) = (cert(d, "ca.pem"), cert(d, "leaf.pem"), cert(d, "revoked.pem"));
    let policy = AlgorithmPolicy::default();

    // The issuer itself, and a delegated responder: both good, the signer named.
    for signer in ["ca", "responder"] {
        let answer = ocsp::check(&respond(d, "leaf.pem", signer, "good.der"), &leaf, &ca, &policy).unwrap();
        assert_eq!(answer.status, OcspStatus::Good);
        assert_eq!(answer.signer, cert(d, &format!("{signer}.pem")));
        assert!(answer.this_update <= SystemTime::now() && answer.next_update.is_some_and(|n| n > SystemTime::now()));
    }
    let answer = ocsp::check(&respond(d, "revoked.pem", "responder", "revoked.der"), &revoked, &ca, &policy).unwrap();
    assert_eq!(
        answer.status,
        OcspStatus::Revoked { at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_312_000), reason: Some(x509_cert::ext::pkix::CrlReason::KeyCompromise) }
    );

    // Refusals, each named.
    let good = respond(d, "leaf.pem", "responder", "good.der");
    assert_eq!(ocsp::check(&good, &revoked, &ca, &policy), Err(OcspError::OtherCertificate));
    let rogue = respond(d, "leaf.pem", "rogue", "rogue.der");
    assert!(matches!(ocsp::check(&rogue, &leaf, &ca, &policy), Err(OcspError::UnauthorisedResponder(why)) if why.contains("no id-kp-OCSPSigning")));
    let foreign = respond(d, "leaf.pem", "other-responder", "foreign.der");
    let refused = ocsp::check(&foreign, &leaf, &ca, &policy);
    assert!(matches!(&refused, Err(OcspError::UnauthorisedResponder(why)) if why.contains("not issued by")), "{refused:?}");
    assert!(matches!(ocsp::check(&with_signature_flipped(&good), &leaf, &ca, &policy), Err(OcspError::BadSignature(_))));
    // tryLater, as a responder says it.
    assert!(matches!(ocsp::check(&[0x30, 0x03, 0x0a, 0x01, 0x03], &leaf, &ca, &policy), Err(OcspError::NotSuccessful(_))));
    assert!(matches!(ocsp::check(b"garbage", &leaf, &ca, &policy), Err(OcspError::Unreadable(_))));
    // OpenSSL reads our request.
    let req = ocsp::request(&leaf, &ca).unwrap();
    assert!(x509_ocsp::OcspRequest::from_der(&req).is_ok());
}

#[test]
fn evidence_speaks_for_the_time_it_was_issued_after() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    pki(d);
    let (ca, leaf, revoked) = (cert(d, "ca.pem"), cert(d, "leaf.pem"), cert(d, "revoked.pem"));
    let good = respond(d, "leaf.pem", "responder", "good.der");
    let bad = respond(d, "revoked.pem", "responder", "revoked.der");
    let evidence = Evidence::new(vec![good.clone(), bad], &[], AlgorithmPolicy::default(), Duration::from_secs(86_400));
    let now = SystemTime::now();
    // Issued now: good for a signature made an hour ago, and for tomorrow within the freshness.
    assert_eq!(evidence.status(&leaf, &ca, now - Duration::from_secs(3600)).unwrap(), RevocationStatus::Good);
    assert_eq!(evidence.status(&leaf, &ca, now + Duration::from_secs(3600)).unwrap(), RevocationStatus::Good);
    // Not for a time two days later: it is there, but not fresh enough to speak for it (its
    // nextUpdate, a day on, passed too): try again later, which is not "no evidence".
    let answer = ocsp::check(&good, &leaf, &ca, &AlgorithmPolicy::default()).unwrap();
    let later = now + Duration::from_secs(2 * 86_400);
    assert_eq!(evidence.status(&leaf, &ca, later).unwrap(), RevocationStatus::NotFresh { newest: answer.this_update, retry_after: later });
    // Within a week's freshness, but after its nextUpdate: superseded, not fresh either.
    let week = Evidence::new(vec![good.clone()], &[], AlgorithmPolicy::default(), Duration::from_secs(7 * 86_400));
    let next_update = answer.next_update.unwrap();
    let after = next_update + Duration::from_secs(60);
    assert_eq!(week.status(&leaf, &ca, after).unwrap(), RevocationStatus::NotFresh { newest: answer.this_update, retry_after: after });
    assert_eq!(week.status(&leaf, &ca, next_update - Duration::from_secs(60)).unwrap(), RevocationStatus::Good);
    // Responses about other certificates only: no evidence at all.
    let none = Evidence::new(vec![respond(d, "revoked.pem", "responder", "other.der")], &[], AlgorithmPolicy::default(), Duration::from_secs(86_400));
    assert_eq!(none.status(&leaf, &ca, now).unwrap(), RevocationStatus::Unknown);
    // Revoked on 2026-01-02: good before, revoked after.
    let revoked_at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_312_000);
    assert_eq!(evidence.status(&revoked, &ca, revoked_at - Duration::from_secs(1)).unwrap(), RevocationStatus::Good);
    assert!(matches!(evidence.status(&revoked, &ca, revoked_at).unwrap(), RevocationStatus::Revoked { at, .. } if at == revoked_at));
    let used = evidence.used();
    assert_eq!(used.len(), 5, "{used:?}");
    assert_eq!(used.iter().filter(|u| !u.fresh).count(), 1, "the stale answer is kept, marked: {used:?}");
    assert_eq!((used[0].source, used[0].certificate.as_str()), (Source::Ocsp(0), "CN=leaf"));

    // Evidence about the certificate that cannot be relied on is an error, unless something else answers.
    let rogue = respond(d, "leaf.pem", "rogue", "rogue.der");
    let only_rogue = Evidence::new(vec![rogue.clone()], &[], AlgorithmPolicy::default(), Duration::from_secs(86_400));
    assert!(only_rogue.status(&leaf, &ca, now).is_err());
    let both = Evidence::new(vec![rogue, good], &[], AlgorithmPolicy::default(), Duration::from_secs(86_400));
    assert_eq!(both.status(&leaf, &ca, now).unwrap(), RevocationStatus::Good);
}
