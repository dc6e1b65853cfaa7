//! E-signatures end to end: `esign` assembles CAdES and PAdES signatures around a citizen
//! certificate that the real `hawiya` binary issued, with a timestamp from its TSA (`POST
//! /tsa`) and an OCSP response from its responder (`POST /ocsp`); OpenSSL, pyHanko, poppler's
//! pdfsig and qpdf then judge them with the national root as the only trust anchor.
//!
//! The citizen's device is OpenSSL signing with the key it made for the CSR (`openssl dgst
//! -sha256 -sign`, ES256).
// Test code: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use der::{DecodePem, Encode};
use esign::cades::{self, CadesError, DeviceAnswer, Prepared, Profile, Root};
use esign::pdf::{self, PrepareOptions, SignatureDetails};
use hawiya_e2e::{Db, Deployment, Keys, P256, csr, openssl, run};
use hsm_shim::SignatureAlgorithm;
use pkix::DigestAlgorithm;
use pkix::tsp::{PkiStatus, TimeStampResp};
use x509_cert::Certificate;
use x509_cert::ext::pkix::CrlReason;

/// Where `./scripts/test` (scripts/env.sh) installs pyHanko.
const VENV: &str = ".cache/hawiya/venv/bin";

fn venv_tool(name: &str) -> PathBuf {
    let home = std::env::var("HOME").expect("HOME is set");
    let path = Path::new(&home).join(VENV).join(name);
    assert!(path.exists(), "{} is missing: run scripts/env.sh (ensure_test_dependencies) to install pyHanko", path.display());
    path
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn openssl_ok(d: &Deployment, args: &[&str]) -> String {
    let out = openssl(d.dir.path(), args);
    assert!(out.status.success(), "openssl {args:?}: {}", text(&out));
    text(&out)
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A certificate the ceremony exported (`certs/<name>.pem`), as DER.
fn exported(d: &Deployment, name: &str) -> Vec<u8> {
    pem_der(&d.path("certs").join(format!("{name}.pem")))
}

fn pem_der(path: &Path) -> Vec<u8> {
    let pem = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Certificate::from_pem(&pem).unwrap_or_else(|e| panic!("{} is not a PEM certificate: {e}", path.display())).to_der().unwrap()
}

/// A deployment of the real binary, serving its TSA and OCSP responder.
fn deployment() -> Deployment {
    let mut d = Deployment::new(Keys::Soft, Db::Sqlite);
    d.serve();
    d
}

/// A citizen with a signing certificate from the CA and the key its "device" holds.
struct Citizen {
    /// `<name>.key` in the deployment's directory.
    key: String,
    /// The certificate, PEM.
    pem: PathBuf,
    /// The certificate, DER.
    der: Vec<u8>,
    /// The serial as `hawiya ca issue` printed it.
    serial: String,
}

fn citizen(d: &Deployment, name: &str) -> Citizen {
    let (serial, pem) = d.issue_citizen("citizen-signature", &csr(d.dir.path(), name, P256), &format!("{name}.pem"));
    let der = pem_der(&pem);
    Citizen { key: format!("{name}.key"), pem, der, serial }
}

/// The device: ECDSA P-256 / SHA-256 over the to-be-signed octets, DER `ECDSA-Sig-Value`.
fn device_sign(d: &Deployment, citizen: &Citizen, to_be_signed: &[u8]) -> Vec<u8> {
    std::fs::write(d.path("tbs.bin"), to_be_signed).unwrap();
    openssl_ok(d, &["dgst", "-sha256", "-sign", &citizen.key, "-out", "device-sig.bin", "tbs.bin"]);
    std::fs::read(d.path("device-sig.bin")).unwrap()
}

/// The token (DER ContentInfo) Hawiya's TSA grants over a SHA-256 `digest`.
fn time_stamp(d: &Deployment, digest: &[u8]) -> Vec<u8> {
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    openssl_ok(d, &["ts", "-query", "-digest", &hex, "-sha256", "-cert", "-out", "query.tsq"]);
    let (code, reply) = d.post(&format!("{}/tsa", d.base), "application/timestamp-query", "query.tsq");
    assert_eq!(code, 200, "POST /tsa: {}", String::from_utf8_lossy(&reply));
    let reply = TimeStampResp::from_der(&reply).expect("the TSA answers a TimeStampResp");
    assert_eq!(reply.status, PkiStatus::Granted, "the TSA refused: {:?} {:?}", reply.text, reply.failure);
    reply.token.expect("a granted reply carries a token").to_der().unwrap()
}

/// Hawiya's OCSP response (DER) about `citizen`'s certificate.
fn ocsp(d: &Deployment, citizen: &Citizen) -> Vec<u8> {
    let issuer = d.path("certs/citizen-signing-ca.pem");
    openssl_ok(d, &["ocsp", "-issuer", p(&issuer), "-cert", p(&citizen.pem), "-no_nonce", "-reqout", "ocsp-req.der"]);
    let (code, response) = d.post(&format!("{}/ocsp", d.base), "application/ocsp-request", "ocsp-req.der");
    assert_eq!(code, 200, "POST /ocsp: {}", String::from_utf8_lossy(&response));
    response
}

/// The chain `assemble` is given: the issuing CA, then the root (left out of the CMS).
fn chain(d: &Deployment) -> Vec<Vec<u8>> {
    vec![exported(d, "citizen-signing-ca"), exported(d, "root")]
}

/// A B-LT CMS and the OCSP response it embeds.
struct Assembled {
    cms: Vec<u8>,
    ocsp: Vec<u8>,
}

/// The signing session after preparation: the device signs, `esign` accepts, the TSA stamps
/// the signature value, the responder answers after the stamp (asked again while its
/// producedAt precedes the genTime, as `assemble` tells), and `esign` assembles.
fn b_lt(d: &Deployment, citizen: &Citizen, prepared: &Prepared) -> Result<Assembled, CadesError> {
    let signature = device_sign(d, citizen, prepared.to_be_signed());
    let hash = prepared.hash().to_vec();
    let signed = prepared.accept(&DeviceAnswer { signed_hash: &hash, algorithm: SignatureAlgorithm::Es256, signature: &signature })?;
    let token = time_stamp(d, &DigestAlgorithm::Sha256.digest(signed.signature()));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = ocsp(d, citizen);
        match signed.assemble(&token, std::slice::from_ref(&response), &chain(d), Root::Omit) {
            Err(CadesError::OcspBeforeTimeStamp { .. }) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            other => return other.map(|cms| Assembled { cms, ocsp: response }),
        }
    }
}

// ---- CAdES ----

/// pyHanko's detached-CMS validation with `root.pem` the only trust root and nothing fetched;
/// `services-ca.pem` is offered for the TSA's path (the token carries the TSA certificate only).
const PYHANKO_CADES: &str = r#"
import asyncio, json, sys
from asn1crypto import cms
from pyhanko.keys import load_cert_from_pemder
from pyhanko_certvalidator import ValidationContext
from pyhanko.sign.validation import async_validate_detached_cms
from pyhanko.sign.validation.settings import KeyUsageConstraints

document, p7s = (open(p, 'rb').read() for p in sys.argv[1:3])
root, services = (load_cert_from_pemder(p) for p in sys.argv[3:5])
signed_data = cms.ContentInfo.load(p7s)['content']
context = lambda: ValidationContext(trust_roots=[root], other_certs=[services], allow_fetching=False)
status = asyncio.run(async_validate_detached_cms(
    document, signed_data,
    signer_validation_context=context(), ts_validation_context=context(),
    key_usage_settings=KeyUsageConstraints(key_usage={'non_repudiation'}),
))
ts = status.timestamp_validity
print(json.dumps({
    'intact': status.intact, 'valid': status.valid, 'trusted': status.trusted,
    'bottom_line': status.bottom_line,
    'timestamp': None if ts is None else {'intact': ts.intact, 'valid': ts.valid, 'trusted': ts.trusted},
}))
"#;

#[test]
fn detached_cades_b_lt_verifies_with_openssl_and_pyhanko() {
    let d = deployment();
    let layla = citizen(&d, "sig");
    let document = "عقد إيجار — a lease, signed in Amman\n".as_bytes();
    std::fs::write(d.path("doc.bin"), document).unwrap();
    let prepared = Prepared::for_document(Profile::Cades { signing_time: now() }, &layla.der, document).unwrap();
    let assembled = b_lt(&d, &layla, &prepared).expect("a good certificate gives a B-LT signature");
    std::fs::write(d.path("sig.p7s"), &assembled.cms).unwrap();

    // OpenSSL: the signature, signingCertificateV2 (-cades) and the path to the root; the
    // signing CA comes from the .p7s.
    let root = d.path("certs/root.pem");
    let verify = |content: &str| openssl(d.dir.path(), &["cms", "-verify", "-cades", "-binary", "-inform", "DER", "-in", "sig.p7s", "-content", content, "-CAfile", p(&root), "-out", "/dev/null"]);
    let out = verify("doc.bin");
    assert!(out.status.success() && text(&out).contains("CAdES Verification successful"), "openssl cms -verify -cades: {}", text(&out));
    std::fs::write(d.path("changed.bin"), [document, b"!"].concat()).unwrap();
    let out = verify("changed.bin");
    assert!(!out.status.success() && text(&out).contains("content verify error"), "openssl accepted a changed document: {}", text(&out));

    // OpenSSL: the embedded timestamp token is over the signature value and chains to the root.
    std::fs::write(d.path("token.der"), time_stamp_token_of(&assembled.cms)).unwrap();
    std::fs::write(d.path("signature-value.bin"), signature_value_of(&assembled.cms)).unwrap();
    let services = d.path("certs/services-ca.pem");
    let out = openssl_ok(&d, &["ts", "-verify", "-token_in", "-in", "token.der", "-data", "signature-value.bin", "-CAfile", p(&root), "-untrusted", p(&services)]);
    assert!(out.contains("Verification: OK"), "openssl ts -verify on the embedded token: {out}");

    // pyHanko.
    std::fs::write(d.path("check_cades.py"), PYHANKO_CADES).unwrap();
    let out = run(Command::new(venv_tool("python")).current_dir(d.dir.path()).args(["check_cades.py", "doc.bin", "sig.p7s", p(&root), p(&services)]));
    assert!(out.status.success(), "pyHanko: {}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        r#"{"intact": true, "valid": true, "trusted": true, "bottom_line": true, "timestamp": {"intact": true, "valid": true, "trusted": true}}"#,
        "pyHanko's verdict on the .p7s: {}",
        text(&out)
    );
}

/// SignedData as RFC 5652 has it, the RFC 5940 revocation choices kept as DER (the `cms`
/// crate reads only CRLs there).
#[derive(der::Sequence)]
struct SignedData {
    version: cms::content_info::CmsVersion,
    digest_algorithms: der::asn1::SetOfVec<spki::AlgorithmIdentifierOwned>,
    encap_content_info: cms::signed_data::EncapsulatedContentInfo,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    certificates: Option<cms::signed_data::CertificateSet>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    crls: Option<der::asn1::SetOfVec<der::asn1::Any>>,
    signer_infos: cms::signed_data::SignerInfos,
}

fn signed_data(cms: &[u8]) -> SignedData {
    use der::Decode;
    cms::content_info::ContentInfo::from_der(cms).unwrap().content.decode_as().unwrap()
}

fn signature_value_of(cms: &[u8]) -> Vec<u8> {
    signed_data(cms).signer_infos.0.get(0).unwrap().signature.as_bytes().to_vec()
}

fn time_stamp_token_of(cms: &[u8]) -> Vec<u8> {
    let signer = signed_data(cms).signer_infos.0.get(0).unwrap().clone();
    let unsigned = signer.unsigned_attrs.expect("unsigned attributes");
    let attribute = unsigned.iter().find(|a| a.oid == pkix::cms::oid::SIGNATURE_TIME_STAMP_TOKEN).expect("a signature-time-stamp");
    attribute.values.get(0).unwrap().to_der().unwrap()
}
