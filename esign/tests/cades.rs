//! Detached CAdES B-LT around a "device" signature, proved with independent tools: a
//! throw-away PKI made with the `openssl` CLI per test, OpenSSL as the device (`dgst -sign`),
//! the TSA (`ts -reply`) and the OCSP responder (`ocsp -index`), and OpenSSL (`cms -verify`,
//! `ts -verify`) and pyHanko as validators. Each refusal has its own test.
// Test code: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{CertificateSet, EncapsulatedContentInfo, SignerInfos};
use der::asn1::{Any, ObjectIdentifier, SetOfVec};
use der::{Decode, Encode, Sequence, Tagged};
use esign::cades::{CadesError, DeviceAnswer, Prepared, Profile, Root, Signed, check_ocsp, check_time_stamp_signature};
use hsm_shim::SignatureAlgorithm;
use pkix::cms::oid;
use pkix::ocsp::OcspError;
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::ext::pkix::CrlReason;

fn openssl(dir: &Path, args: &[&str]) -> Output {
    Command::new("openssl").args(args).current_dir(dir).output().expect("the openssl CLI runs")
}

fn ok(dir: &Path, args: &[&str]) -> Output {
    let out = openssl(dir, args);
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// A throw-away PKI: root → signing CA → citizens (P-256, nonRepudiation) and the OCSP
/// responder (OCSPSigning); root → TSA (critical timeStamping).
struct Pki {
    dir: tempfile::TempDir,
}

const EXTENSIONS: &str = "\
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[citizen]
basicConstraints = critical, CA:FALSE
keyUsage = critical, nonRepudiation
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[tsa]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = critical, timeStamping
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ocsp]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = OCSPSigning
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

impl Pki {
    fn new() -> Self {
        let pki = Pki { dir: tempfile::tempdir().unwrap() };
        let d = pki.path();
        std::fs::write(d.join("ext.cnf"), EXTENSIONS).unwrap();
        ok(d, &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "root.key"]);
        ok(
            d,
            &[
                "req",
                "-new",
                "-x509",
                "-key",
                "root.key",
                "-subj",
                "/C=JO/O=Hawiya Test/CN=Test Root CA",
                "-days",
                "30",
                "-out",
                "root.pem",
                "-config",
                "ext.cnf",
                "-extensions",
                "ca",
            ],
        );
        ok(d, &["x509", "-in", "root.pem", "-outform", "DER", "-out", "root.der"]);
        pki.issue("signing-ca", "/C=JO/O=Hawiya Test/CN=Test Citizen Signing CA", "root", "ca");
        pki.issue("citizen", "/C=JO/GN=Salma/SN=Haddad/CN=Salma Haddad/serialNumber=PNOJO-9000000001", "signing-ca", "citizen");
        pki.issue("other-citizen", "/C=JO/GN=Omar/SN=Nasser/CN=Omar Nasser/serialNumber=PNOJO-9000000002", "signing-ca", "citizen");
        pki.issue("ocsp", "/C=JO/O=Hawiya Test/CN=Test OCSP Responder", "signing-ca", "ocsp");
        pki.issue("tsa", "/C=JO/O=Hawiya Test/CN=Test TSA", "root", "tsa");
        std::fs::write(d.join("tsaserial"), "01\n").unwrap();
        let ts = format!(
            "[tsa]\ndefault_tsa = tsa_config\n[tsa_config]\nserial = {0}/tsaserial\ncrypto_device = builtin\nsigner_cert = {0}/tsa.pem\nsigner_key = {0}/tsa.key\nsigner_digest = sha256\ndefault_policy = 1.3.6.1.4.1.99999.1\ndigests = sha256, sha384, sha512\naccuracy = secs:1\nordering = no\ntsa_name = yes\ness_cert_id_chain = no\ness_cert_id_alg = sha256\n",
            d.display()
        );
        std::fs::write(d.join("ts.cnf"), ts).unwrap();
        pki
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn file(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.file(name)).unwrap()
    }

    fn issue(&self, name: &str, subject: &str, issuer: &str, section: &str) {
        let d = self.path();
        let (key, csr, pem) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"));
        ok(d, &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", &key]);
        ok(d, &["req", "-new", "-key", &key, "-subj", subject, "-out", &csr]);
        let serial = format!("0x{}", hex(&random16()));
        let (issuer_pem, issuer_key) = (format!("{issuer}.pem"), format!("{issuer}.key"));
        ok(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &issuer_pem,
                "-CAkey",
                &issuer_key,
                "-set_serial",
                &serial,
                "-days",
                "10",
                "-extfile",
                "ext.cnf",
                "-extensions",
                section,
                "-out",
                &pem,
            ],
        );
        ok(d, &["x509", "-in", &pem, "-outform", "DER", "-out", &format!("{name}.der")]);
    }

    fn der(&self, name: &str) -> Vec<u8> {
        self.read(&format!("{name}.der"))
    }

    fn serial(&self, name: &str) -> String {
        let out = ok(self.path(), &["x509", "-in", &format!("{name}.pem"), "-noout", "-serial"]);
        String::from_utf8(out.stdout).unwrap().trim().trim_start_matches("serial=").to_owned()
    }

    /// The device: signs the to-be-signed octets with the citizen's key (ECDSA, DER).
    fn device_sign(&self, key: &str, to_be_signed: &[u8]) -> Vec<u8> {
        std::fs::write(self.file("tbs.bin"), to_be_signed).unwrap();
        ok(self.path(), &["dgst", "-sha256", "-sign", &format!("{key}.key"), "-out", "device-sig.bin", "tbs.bin"]);
        self.read("device-sig.bin")
    }

    /// The TSA: a token (DER ContentInfo) over `data` (its SHA-256 as the message imprint).
    fn time_stamp(&self, data: &[u8]) -> Vec<u8> {
        std::fs::write(self.file("stamped.bin"), data).unwrap();
        ok(self.path(), &["ts", "-query", "-data", "stamped.bin", "-sha256", "-cert", "-out", "req.tsq"]);
        ok(self.path(), &["ts", "-reply", "-config", "ts.cnf", "-queryfile", "req.tsq", "-token_out", "-out", "token.der"]);
        self.read("token.der")
    }

    /// The OCSP responder (signing CA's delegated responder) answering for `certificate`,
    /// with `status` the index line's status and revocation fields ("V\t" or
    /// "R\t<time>,<reason>").
    fn ocsp(&self, certificate: &str, status: &str) -> Vec<u8> {
        self.ocsp_signed_by(certificate, status, "ocsp", &[])
    }

    /// Like [`Pki::ocsp`], signed with the key and certificate of `responder`, with further
    /// `openssl ocsp` options.
    fn ocsp_signed_by(&self, certificate: &str, status: &str, responder: &str, options: &[&str]) -> Vec<u8> {
        // The index is looked up by serial; the subject column is informative only.
        let (flag, revocation) = status.split_once('\t').unwrap_or((status, ""));
        let index = format!("{flag}\t301231000000Z\t{revocation}\t{}\tunknown\t/CN={certificate}\n", self.serial(certificate));
        std::fs::write(self.file("index.txt"), index).unwrap();
        ok(self.path(), &["ocsp", "-issuer", "signing-ca.pem", "-cert", &format!("{certificate}.pem"), "-no_nonce", "-reqout", "ocsp-req.der"]);
        ok(
            self.path(),
            &[
                "ocsp",
                "-index",
                "index.txt",
                "-CA",
                "signing-ca.pem",
                "-rsigner",
                &format!("{responder}.pem"),
                "-rkey",
                &format!("{responder}.key"),
                "-reqin",
                "ocsp-req.der",
                "-respout",
                "ocsp-resp.der",
                "-ndays",
                "1",
            ]
            .into_iter()
            .chain(options.iter().copied())
            .collect::<Vec<_>>(),
        );
        self.read("ocsp-resp.der")
    }
}

fn random16() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes)).unwrap();
    bytes[0] = (bytes[0] & 0x7f) | 0x40; // positive, 16 octets
    bytes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

const DOCUMENT: &[u8] = b"%PDF-1.7 not really; any file can be signed with a detached .p7s\n";

/// Prepares, has the device sign, and accepts.
fn signed(pki: &Pki, profile: Profile) -> Signed {
    let prepared = Prepared::for_document(profile, &pki.der("citizen"), DOCUMENT).unwrap();
    let signature = pki.device_sign("citizen", prepared.to_be_signed());
    let hash = prepared.hash().to_vec();
    prepared.accept(&DeviceAnswer { signed_hash: &hash, algorithm: SignatureAlgorithm::Es256, signature: &signature }).unwrap()
}

/// The signed document at B-LT, with the chain (signing CA; the root only if asked).
fn b_lt(pki: &Pki, profile: Profile, root: Root) -> Vec<u8> {
    let signed = signed(pki, profile);
    let token = pki.time_stamp(signed.signature());
    let ocsp = pki.ocsp("citizen", "V");
    signed.assemble(&token, &[ocsp], &[], &[pki.der("signing-ca"), pki.der("root")], root).unwrap()
}

/// SignedData as RFC 5652 has it, the RFC 5940 choices kept as DER.
#[derive(Sequence)]
struct SignedData {
    version: CmsVersion,
    digest_algorithms: SetOfVec<AlgorithmIdentifierOwned>,
    encap_content_info: EncapsulatedContentInfo,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    certificates: Option<CertificateSet>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    crls: Option<SetOfVec<Any>>,
    signer_infos: SignerInfos,
}

fn parse(p7s: &[u8]) -> SignedData {
    let info = ContentInfo::from_der(p7s).unwrap();
    assert_eq!(info.content_type, oid::SIGNED_DATA);
    info.content.decode_as().unwrap()
}

/// The signature-time-stamp token of the only signer.
fn embedded_token(p7s: &[u8]) -> Vec<u8> {
    let signed_data = parse(p7s);
    let signer = signed_data.signer_infos.0.get(0).unwrap();
    let unsigned = signer.unsigned_attrs.as_ref().unwrap();
    let attribute = unsigned.iter().find(|a| a.oid == oid::SIGNATURE_TIME_STAMP_TOKEN).unwrap();
    attribute.values.get(0).unwrap().to_der().unwrap()
}

/// OpenSSL's verdict on `sig.p7s` over `doc.bin` with `root.pem` the only trust anchor.
///
/// -binary: the document's octets as they are (no MIME canonicalisation); -cades: also check
/// that signingCertificateV2 names the signer's certificate. No `-purpose any`: OpenSSL's
/// default S/MIME signing purpose accepts a nonRepudiation-only certificate without EKU (and
/// a CA with basicConstraints), so the stricter default is kept. The signing CA comes from
/// the .p7s's certificates.
fn cms_verify(pki: &Pki) -> Output {
    let args: Vec<&str> = "cms -verify -cades -binary -inform DER -in sig.p7s -content doc.bin -CAfile root.pem -out /dev/null".split(' ').collect();
    openssl(pki.path(), &args)
}

#[test]
fn openssl_verifies_the_detached_cades_and_refuses_a_changed_document() {
    let pki = Pki::new();
    let p7s = b_lt(&pki, Profile::Cades { signing_time: now() }, Root::Omit);
    std::fs::write(pki.file("sig.p7s"), &p7s).unwrap();
    std::fs::write(pki.file("doc.bin"), DOCUMENT).unwrap();
    let out = cms_verify(&pki);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Verification successful"));

    let mut changed = DOCUMENT.to_vec();
    changed[5] ^= 0x01;
    std::fs::write(pki.file("doc.bin"), &changed).unwrap();
    let out = cms_verify(&pki);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("content verify error"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_p7s_carries_the_chain_the_ocsp_response_and_the_signature_time_stamp() {
    let pki = Pki::new();
    let signed = signed(&pki, Profile::Cades { signing_time: now() });
    let signature = signed.signature().to_vec();
    let token = pki.time_stamp(&signature);
    let ocsp = pki.ocsp("citizen", "V");
    let chain = [pki.der("signing-ca"), pki.der("root")];
    let p7s = signed.assemble(&token, std::slice::from_ref(&ocsp), &[], &chain, Root::Omit).unwrap();
    let signed_data = parse(&p7s);
    assert_eq!(signed_data.version, CmsVersion::V5, "RFC 5940 revocation information needs SignedData v5");
    assert!(signed_data.encap_content_info.econtent.is_none(), "detached");
    assert_eq!(signed_data.encap_content_info.econtent_type, oid::DATA);
    let names = |set: &CertificateSet| {
        let mut v: Vec<Vec<u8>> = set.0.iter().map(|c| c.to_der().unwrap()).collect();
        v.sort();
        v
    };
    let mut expected =
        vec![Certificate::from_der(&pki.der("citizen")).unwrap().to_der().unwrap(), Certificate::from_der(&pki.der("signing-ca")).unwrap().to_der().unwrap()];
    expected.sort();
    // CertificateChoices wrap the certificate in nothing (the CHOICE's certificate arm).
    assert_eq!(names(signed_data.certificates.as_ref().unwrap()), expected, "signer and signing CA, not the root");
    let crls = signed_data.crls.unwrap();
    assert_eq!(crls.len(), 1);
    let other = crls.get(0).unwrap();
    assert_eq!(other.tag(), der::Tag::ContextSpecific { constructed: true, number: der::TagNumber::N1 });
    let (format, info) = {
        #[derive(Sequence)]
        struct OtherRevocationInfoFormat {
            format: ObjectIdentifier,
            info: Any,
        }
        let body = OtherRevocationInfoFormat::from_der(&[&[0x30][..], &other.to_der().unwrap()[1..]].concat()).unwrap();
        (body.format, body.info.to_der().unwrap())
    };
    assert_eq!(format, oid::RI_OCSP_RESPONSE);
    assert_eq!(info, ocsp);
    assert_eq!(embedded_token(&p7s), token);

    // With the root asked for, the root is there too.
    let with_root = signed.assemble(&token, &[ocsp], &[], &chain, Root::Include).unwrap();
    assert_eq!(parse(&with_root).certificates.unwrap().0.len(), 3);
}

#[test]
fn the_p7s_carries_the_crls_it_is_given_and_refuses_what_is_not_a_crl() {
    let pki = Pki::new();
    let d = pki.path();
    std::fs::write(d.join("index.txt"), "").unwrap();
    std::fs::write(d.join("crlnumber"), "01\n").unwrap();
    let config = "[ca]\ndefault_ca = root\n[root]\ndatabase = index.txt\ncrlnumber = crlnumber\ndefault_md = sha256\ndefault_crl_days = 7\n";
    std::fs::write(d.join("crl.cnf"), config).unwrap();
    ok(d, &["ca", "-gencrl", "-config", "crl.cnf", "-keyfile", "root.key", "-cert", "root.pem", "-out", "root.crl.pem"]);
    ok(d, &["crl", "-in", "root.crl.pem", "-outform", "DER", "-out", "root.crl"]);
    let crl = pki.read("root.crl");

    let signed = signed(&pki, Profile::Cades { signing_time: now() });
    let token = pki.time_stamp(signed.signature());
    let ocsp = pki.ocsp("citizen", "V");
    let chain = [pki.der("signing-ca"), pki.der("root")];
    let p7s = signed.assemble(&token, std::slice::from_ref(&ocsp), std::slice::from_ref(&crl), &chain, Root::Omit).unwrap();
    let signed_data = parse(&p7s);
    assert_eq!(signed_data.version, CmsVersion::V5);
    let crls: Vec<Vec<u8>> = signed_data.crls.unwrap().iter().map(|c| c.to_der().unwrap()).collect();
    assert_eq!(crls.len(), 2, "the OCSP response and the CRL");
    assert!(crls.contains(&crl), "the CRL, as RevocationInfoChoice crl (untagged)");

    let e = signed.assemble(&token, &[ocsp], &[b"not a CRL".to_vec()], &chain, Root::Omit).unwrap_err();
    assert!(matches!(e, CadesError::CrlUnreadable(_)), "{e}");
}

#[test]
fn openssl_verifies_the_embedded_time_stamp_over_the_signature_value() {
    let pki = Pki::new();
    let p7s = b_lt(&pki, Profile::Cades { signing_time: now() }, Root::Omit);
    let signed_data = parse(&p7s);
    let signature = signed_data.signer_infos.0.get(0).unwrap().signature.as_bytes().to_vec();
    std::fs::write(pki.file("signature-value.bin"), &signature).unwrap();
    std::fs::write(pki.file("embedded-token.der"), embedded_token(&p7s)).unwrap();
    assert_eq!(check_time_stamp_signature(&embedded_token(&p7s)).unwrap(), Certificate::from_der(&pki.der("tsa")).unwrap());
    let verify = ["ts", "-verify", "-token_in", "-in", "embedded-token.der", "-data", "signature-value.bin", "-CAfile", "root.pem"];
    let out = openssl(pki.path(), &verify);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Verification: OK"));
    // And not over anything else.
    std::fs::write(pki.file("signature-value.bin"), DOCUMENT).unwrap();
    assert!(!openssl(pki.path(), &verify).status.success());
}

/// The shared pyHanko check of a detached CAdES signature (the end-to-end tests use it too).
const PYHANKO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/scripts/pyhanko_cades.py");

/// pyHanko's verdict on `p7s` over `document`; fails without the venv that scripts/env.sh
/// installs (never a silent skip).
fn pyhanko(pki: &Pki, document: &[u8], p7s: &[u8]) -> String {
    let venv = std::env::var_os("HAWIYA_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(&std::env::var_os("HOME").expect("HOME")).join(".cache/hawiya/venv"));
    let python = venv.join("bin/python");
    assert!(python.exists(), "no pyHanko venv at {}: run ./scripts/test, which installs it (scripts/env.sh)", python.display());
    std::fs::write(pki.file("py-doc.bin"), document).unwrap();
    std::fs::write(pki.file("py-sig.p7s"), p7s).unwrap();
    let out = Command::new(python).args([PYHANKO, "py-doc.bin", "py-sig.p7s", "root.pem"]).current_dir(pki.path()).output().unwrap();
    assert!(out.status.success(), "pyHanko: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn pyhanko_finds_the_cades_intact_and_trusted_with_a_valid_time_stamp() {
    let pki = Pki::new();
    let p7s = b_lt(&pki, Profile::Cades { signing_time: now() }, Root::Omit);
    let report = pyhanko(&pki, DOCUMENT, &p7s);
    assert_eq!(
        report.trim(),
        r#"{"intact": true, "valid": true, "trusted": true, "bottom_line": true, "timestamp": {"intact": true, "valid": true, "trusted": true}}"#
    );
    let mut changed = DOCUMENT.to_vec();
    changed[0] ^= 0x01;
    let report = pyhanko(&pki, &changed, &p7s);
    assert!(report.contains(r#""intact": false"#), "{report}");
}

#[test]
fn the_pades_cms_has_no_signing_time_and_verifies_with_openssl() {
    let pki = Pki::new();
    let p7s = b_lt(&pki, Profile::Pades, Root::Omit);
    let signer = parse(&p7s).signer_infos.0.get(0).unwrap().clone();
    let signed = signer.signed_attrs.unwrap();
    assert!(signed.iter().all(|a| a.oid != oid::SIGNING_TIME));
    assert!(signed.iter().any(|a| a.oid == oid::SIGNING_CERTIFICATE_V2));
    std::fs::write(pki.file("sig.p7s"), &p7s).unwrap();
    std::fs::write(pki.file("doc.bin"), DOCUMENT).unwrap();
    let out = cms_verify(&pki);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

// ---- refusals ----

#[test]
fn a_device_signature_over_another_hash_is_refused() {
    let pki = Pki::new();
    let ours = Prepared::for_document(Profile::Pades, &pki.der("citizen"), DOCUMENT).unwrap();
    let other = Prepared::for_document(Profile::Pades, &pki.der("citizen"), b"another document").unwrap();
    // The device signed the other request, and says so.
    let signature = pki.device_sign("citizen", other.to_be_signed());
    let answer = DeviceAnswer { signed_hash: other.hash(), algorithm: SignatureAlgorithm::Es256, signature: &signature };
    let e = ours.accept(&answer).unwrap_err();
    match &e {
        CadesError::OtherHashSigned { expected, signed } => {
            assert_eq!(*expected, ours.verification_code());
            assert_eq!(*signed, other.verification_code());
        }
        e => panic!("{e}"),
    }
    // A device that echoes our hash but signed the other one: the signature does not verify.
    let hash = ours.hash().to_vec();
    let answer = DeviceAnswer { signed_hash: &hash, ..answer };
    assert!(matches!(ours.accept(&answer), Err(CadesError::SignatureDoesNotVerify)));
}

#[test]
fn a_signature_by_another_key_is_refused() {
    let pki = Pki::new();
    let prepared = Prepared::for_document(Profile::Pades, &pki.der("citizen"), DOCUMENT).unwrap();
    let signature = pki.device_sign("other-citizen", prepared.to_be_signed());
    let hash = prepared.hash().to_vec();
    let e = prepared.accept(&DeviceAnswer { signed_hash: &hash, algorithm: SignatureAlgorithm::Es256, signature: &signature }).unwrap_err();
    assert!(matches!(e, CadesError::SignatureDoesNotVerify), "{e}");
}

#[test]
fn an_algorithm_the_key_does_not_imply_is_refused() {
    let pki = Pki::new();
    let prepared = Prepared::for_document(Profile::Pades, &pki.der("citizen"), DOCUMENT).unwrap();
    let signature = pki.device_sign("citizen", prepared.to_be_signed());
    let hash = prepared.hash().to_vec();
    let e = prepared.accept(&DeviceAnswer { signed_hash: &hash, algorithm: SignatureAlgorithm::Es384, signature: &signature }).unwrap_err();
    assert!(matches!(e, CadesError::AlgorithmNotForKey { expected: SignatureAlgorithm::Es256, given: SignatureAlgorithm::Es384, .. }), "{e}");
}

#[test]
fn a_certificate_that_is_not_for_signatures_is_refused() {
    let pki = Pki::new();
    // The TSA's certificate has digitalSignature, not nonRepudiation.
    let e = Prepared::for_document(Profile::Pades, &pki.der("tsa"), DOCUMENT).unwrap_err();
    assert!(matches!(e, CadesError::NotASigningCertificate), "{e}");
}

#[test]
fn a_time_stamp_over_something_else_is_refused() {
    let pki = Pki::new();
    let signed = signed(&pki, Profile::Cades { signing_time: now() });
    let token = pki.time_stamp(DOCUMENT);
    let ocsp = pki.ocsp("citizen", "V");
    let e = signed.assemble(&token, &[ocsp], &[], &[pki.der("signing-ca")], Root::Omit).unwrap_err();
    assert!(matches!(e, CadesError::TimeStampNotOverSignature), "{e}");
}

fn refused_with_status(certificate: &str, status: &str) -> CadesError {
    let pki = Pki::new();
    let signed = signed(&pki, Profile::Cades { signing_time: now() });
    let token = pki.time_stamp(signed.signature());
    let ocsp = pki.ocsp(certificate, status);
    signed.assemble(&token, &[ocsp], &[], &[pki.der("signing-ca")], Root::Omit).unwrap_err()
}

#[test]
fn an_ocsp_response_saying_revoked_is_refused() {
    let e = refused_with_status("citizen", "R\t250102030405Z,keyCompromise");
    assert!(matches!(e, CadesError::Revoked { revoked_at: 1_735_787_045, reason: Some(CrlReason::KeyCompromise) }), "{e}");
}

#[test]
fn an_ocsp_response_saying_suspended_is_refused() {
    let e = refused_with_status("citizen", "R\t250102030405Z,certificateHold,holdInstructionNone");
    assert!(matches!(e, CadesError::Suspended { since: 1_735_787_045 }), "{e}");
}

#[test]
fn an_ocsp_response_for_another_certificate_is_refused() {
    let e = refused_with_status("other-citizen", "V");
    assert!(matches!(e, CadesError::OcspForAnotherCertificate), "{e}");
}

#[test]
fn an_ocsp_response_by_a_responder_the_issuer_did_not_authorise_is_refused() {
    let pki = Pki::new();
    // An OCSP signing certificate, but from the root: it may not answer for the signing CA's
    // certificates (RFC 6960 §4.2.2.2). And another citizen of the signing CA, whose
    // certificate is not for OCSP signing.
    pki.issue("rogue-ocsp", "/C=JO/O=Hawiya Test/CN=Rogue OCSP Responder", "root", "ocsp");
    let signed = signed(&pki, Profile::Cades { signing_time: now() });
    let token = pki.time_stamp(signed.signature());
    for (responder, why) in [("rogue-ocsp", "not issued by the certificate's issuer"), ("other-citizen", "no id-kp-OCSPSigning")] {
        let ocsp = pki.ocsp_signed_by("citizen", "V", responder, &[]);
        let e = signed.assemble(&token, &[ocsp], &[], &[pki.der("signing-ca")], Root::Omit).unwrap_err();
        assert!(matches!(&e, CadesError::OcspUnreliable(OcspError::UnauthorisedResponder(r)) if r.contains(why)), "{responder}: {e}");
        assert!(e.to_string().contains("did not authorise"), "{e}");
    }
    // Issued by the signing CA for OCSP signing, but not carried in the response.
    let ocsp = pki.ocsp_signed_by("citizen", "V", "ocsp", &["-resp_no_certs"]);
    let e = signed.assemble(&token, &[ocsp], &[], &[pki.der("signing-ca")], Root::Omit).unwrap_err();
    assert!(matches!(&e, CadesError::OcspUnreliable(OcspError::UnauthorisedResponder(_))), "{e}");
}

#[test]
fn an_ocsp_response_whose_signature_does_not_verify_is_refused() {
    let pki = Pki::new();
    let signed = signed(&pki, Profile::Cades { signing_time: now() });
    let token = pki.time_stamp(signed.signature());
    // Signed by the issuing CA itself, without certificates: the response ends with its
    // signature, whose last octet is changed.
    let ocsp = pki.ocsp_signed_by("citizen", "V", "signing-ca", &["-resp_no_certs"]);
    signed.assemble(&token, std::slice::from_ref(&ocsp), &[], &[pki.der("signing-ca")], Root::Omit).expect("signed by the issuer itself");
    let mut tampered = ocsp.clone();
    *tampered.last_mut().unwrap() ^= 0x01;
    let e = signed.assemble(&token, &[tampered], &[], &[pki.der("signing-ca")], Root::Omit).unwrap_err();
    assert!(matches!(&e, CadesError::OcspUnreliable(OcspError::BadSignature(_))), "{e}");
    assert!(e.to_string().starts_with("the OCSP response's signature does not verify"), "{e}");
}

#[test]
fn an_ocsp_response_produced_before_the_time_stamp_is_refused() {
    let pki = Pki::new();
    let signed = signed(&pki, Profile::Cades { signing_time: now() });
    let ocsp = pki.ocsp("citizen", "V");
    let citizen = Certificate::from_der(&pki.der("citizen")).unwrap();
    let issuer = Certificate::from_der(&pki.der("signing-ca")).unwrap();
    // OCSP and timestamps count whole seconds: wait for the second after the response's
    // producedAt (read from it: the clock may have moved on since) before stamping.
    let produced = check_ocsp(&ocsp, &citizen, &issuer, 0).unwrap().produced_at;
    let deadline = Instant::now() + Duration::from_secs(5);
    while now() <= produced {
        assert!(Instant::now() < deadline, "the clock did not advance");
        std::thread::sleep(Duration::from_millis(20));
    }
    let token = pki.time_stamp(signed.signature());
    let e = signed.assemble(&token, std::slice::from_ref(&ocsp), &[], &[pki.der("signing-ca")], Root::Omit).unwrap_err();
    match e {
        CadesError::OcspBeforeTimeStamp { produced_at, time_stamp } => assert!(produced_at < time_stamp && produced_at <= produced),
        e => panic!("{e}"),
    }
    // Asked again, the responder's answer is recent enough for the same signature.
    let fresh = pki.ocsp("citizen", "V");
    assert!(signed.assemble(&token, &[fresh], &[], &[pki.der("signing-ca")], Root::Omit).is_ok());
    // The first response is fine for a signature stamped when it was produced.
    assert!(check_ocsp(&ocsp, &citizen, &issuer, produced).is_ok());
}

#[test]
fn the_tsa_signature_over_the_token_is_checked() {
    let pki = Pki::new();
    let token = pki.time_stamp(b"a signature value");
    let tsa = check_time_stamp_signature(&token).unwrap();
    assert_eq!(tsa, Certificate::from_der(&pki.der("tsa")).unwrap());
    // The token's DER ends with the ECDSA signature's s: one changed octet and it fails.
    let mut tampered = token.clone();
    *tampered.last_mut().unwrap() ^= 0x01;
    let e = check_time_stamp_signature(&tampered).unwrap_err();
    assert!(matches!(e, CadesError::TimeStampSignatureInvalid("not made with the key of the TSA's certificate")), "{e}");
}
