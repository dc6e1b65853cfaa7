//! E-signatures end to end: `esign` assembles CAdES and PAdES signatures around a citizen
//! certificate that the real `hawiya` binary issued, with a timestamp from its TSA (`POST
//! /tsa`) and an OCSP response from its responder (`POST /ocsp`); OpenSSL, pyHanko, poppler's
//! pdfsig, qpdf and the EU's reference validator DSS then judge them with the national root as
//! the only trust anchor.
//!
//! The citizen's device is OpenSSL signing with the key it made for the CSR (`openssl dgst
//! -sha256 -sign`, ES256).
// Test code: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use der::{Decode, DecodePem, Encode};
use esign::cades::{CadesError, DeviceAnswer, Prepared, Profile, Root, check_ocsp};
use esign::pdf::{self, PrepareOptions, SignatureDetails};
use hawiya_e2e::{Db, Deployment, Keys, P256, csr, openssl, run, venv_tool};
use hsm_shim::SignatureAlgorithm;
use pkix::DigestAlgorithm;
use pkix::tsp::{PkiStatus, TimeStampResp};
use x509_cert::Certificate;
use x509_cert::ext::pkix::CrlReason;

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

/// Where the CMS goes: a `.p7s` carries the OCSP response itself, a PDF in its /DSS.
#[derive(Clone, Copy, Debug)]
enum Target {
    P7s,
    Pdf,
}

/// A B-LT CMS and the OCSP response it was checked with.
struct Assembled {
    cms: Vec<u8>,
    ocsp: Vec<u8>,
}

/// The signing session after preparation: the device signs, `esign` accepts, the TSA stamps
/// the signature value, the responder answers after the stamp (asked again while its
/// producedAt precedes the genTime, as `assemble` tells), and `esign` assembles.
fn b_lt(d: &Deployment, citizen: &Citizen, prepared: &Prepared, target: Target) -> Result<Assembled, CadesError> {
    let signature = device_sign(d, citizen, prepared.to_be_signed());
    let hash = prepared.hash().to_vec();
    let signed = prepared.accept(&DeviceAnswer { signed_hash: &hash, algorithm: SignatureAlgorithm::Es256, signature: &signature })?;
    let token = time_stamp(d, &DigestAlgorithm::Sha256.digest(signed.signature()));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = ocsp(d, citizen);
        let responses = std::slice::from_ref(&response);
        let assembled = match target {
            Target::P7s => {
                let chain = [chain(d), vec![exported(d, "services-ca")]].concat();
                signed.assemble(&token, responses, &crls(d), &chain, Root::Omit)
            }
            Target::Pdf => signed.assemble_for_pdf(&token, responses, &chain(d), Root::Omit),
        };
        match assembled {
            Err(CadesError::OcspBeforeTimeStamp { .. }) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            other => return other.map(|cms| Assembled { cms, ocsp: response }),
        }
    }
}

// ---- CAdES ----

#[test]
fn detached_cades_b_lt_verifies_with_openssl_and_pyhanko() {
    let d = deployment();
    let layla = citizen(&d, "sig");
    let document = "عقد إيجار — a lease, signed in Amman\n".as_bytes();
    std::fs::write(d.path("doc.bin"), document).unwrap();
    let prepared = Prepared::for_document(Profile::Cades { signing_time: now() }, &layla.der, document).unwrap();
    let assembled = b_lt(&d, &layla, &prepared, Target::P7s).expect("a good certificate gives a B-LT signature");
    std::fs::write(d.path("sig.p7s"), &assembled.cms).unwrap();

    // OpenSSL: the signature, signingCertificateV2 (-cades) and the path to the root; the
    // signing CA comes from the .p7s.
    let root = d.path("certs/root.pem");
    let verify = |content: &str| {
        openssl(
            d.dir.path(),
            &["cms", "-verify", "-cades", "-binary", "-inform", "DER", "-in", "sig.p7s", "-content", content, "-CAfile", p(&root), "-out", "/dev/null"],
        )
    };
    let out = verify("doc.bin");
    assert!(out.status.success() && text(&out).contains("CAdES Verification successful"), "openssl cms -verify -cades: {}", text(&out));
    std::fs::write(d.path("changed.bin"), [document, b"!"].concat()).unwrap();
    let out = verify("changed.bin");
    assert!(!out.status.success() && text(&out).contains("content verify error"), "openssl accepted a changed document: {}", text(&out));

    // OpenSSL: the embedded timestamp token is over the signature value and chains to the root.
    std::fs::write(d.path("token.der"), time_stamp_token_of(&assembled.cms)).unwrap();
    std::fs::write(d.path("signature-value.bin"), signature_value_of(&assembled.cms)).unwrap();
    let services = d.path("certs/services-ca.pem");
    let out =
        openssl_ok(&d, &["ts", "-verify", "-token_in", "-in", "token.der", "-data", "signature-value.bin", "-CAfile", p(&root), "-untrusted", p(&services)]);
    assert!(out.contains("Verification: OK"), "openssl ts -verify on the embedded token: {out}");

    // pyHanko.
    // pyHanko, the national root the only anchor, the services CA offered for the TSA's path.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pyhanko_cades.py");
    let out = run(Command::new(venv_tool("python")).current_dir(d.dir.path()).args([script, "doc.bin", "sig.p7s", p(&root), p(&services)]));
    assert!(out.status.success(), "pyHanko: {}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        r#"{"intact": true, "valid": true, "trusted": true, "bottom_line": true, "timestamp": {"intact": true, "valid": true, "trusted": true}}"#,
        "pyHanko's verdict on the .p7s: {}",
        text(&out)
    );

    // DSS, the EU's reference validator, with the document as the detached content.
    let verdict = hawiya_e2e::dss(&d, &d.path("sig.p7s"), Some(&d.path("doc.bin")));
    assert_eq!(verdict, "TOTAL_PASSED - CAdES-BASELINE-LT\n", "DSS on the .p7s");

    // Hawiya's own validator agrees, and refuses the changed document.
    let (code, report) = hawiya_e2e::hawiya_verify(&d, &d.path("sig.p7s"), Some(&d.path("doc.bin")), &[]);
    assert_eq!((code, hawiya_e2e::verdicts(&report).as_str()), (0, "TOTAL-PASSED - CAdES-BASELINE-LT QESig\n"), "{report:#}");
    let signature = &report["signatures"][0];
    assert_eq!(signature["best_signature_time"]["proof"], "signature-timestamp", "{report:#}");
    assert_eq!(signature["signer"]["national_id"], "9861234567", "{report:#}");
    let (code, report) = hawiya_e2e::hawiya_verify(&d, &d.path("sig.p7s"), Some(&d.path("changed.bin")), &[]);
    assert_eq!((code, hawiya_e2e::verdicts(&report).as_str()), (1, "TOTAL-FAILED HASH_FAILURE CAdES-BASELINE-LT n/a\n"), "{report:#}");
}

/// `hawiya verify --format xml|html` on a real B-LT signature: the ETSI TS 119 102-2 report is
/// valid under the ETSI schema (xmllint) and says what the JSON report says; the HTML
/// report puts the verdict first, in Arabic by default and in English on request.
#[test]
fn xml_and_html_reports_of_a_real_signature() {
    let d = deployment();
    let layla = citizen(&d, "report");
    let document = "عقد — a contract\n".as_bytes();
    std::fs::write(d.path("doc.bin"), document).unwrap();
    let prepared = Prepared::for_document(Profile::Cades { signing_time: now() }, &layla.der, document).unwrap();
    let assembled = b_lt(&d, &layla, &prepared, Target::P7s).expect("a B-LT signature");
    std::fs::write(d.path("sig.p7s"), &assembled.cms).unwrap();
    std::fs::write(d.path("changed.bin"), [document, b"!"].concat()).unwrap();
    let verify = |content: &str, args: &[&str]| {
        let out = d
            .command(&["verify"])
            .arg(d.path("sig.p7s"))
            .arg("--detached")
            .arg(d.path(content))
            .arg("--data")
            .arg(&d.data)
            .args(args)
            .output()
            .expect("hawiya verify");
        (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout.clone()).unwrap_or_else(|_| panic!("utf-8: {}", text(&out))))
    };
    let (_, json) = verify("doc.bin", &["--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let signing_sha256 = json["signatures"][0]["chain"][0]["sha256"].as_str().expect("the signing certificate's digest").to_owned();

    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/etsi/TS119102-2-v122.xsd");
    for (content, code, main, sub) in [("doc.bin", 0, "total-passed", None), ("changed.bin", 1, "total-failed", Some("HASH_FAILURE"))] {
        let (got, xml) = verify(content, &["--format", "xml"]);
        assert_eq!(got, code, "{xml}");
        std::fs::write(d.path("report.xml"), &xml).unwrap();
        let out = Command::new("xmllint").args(["--noout", "--nonet", "--schema", schema]).arg(d.path("report.xml")).output().expect("xmllint");
        assert!(out.status.success(), "the report is not valid under TS 119 102-2: {}\n{xml}", text(&out));
        assert!(xml.contains(&format!("<MainIndication>urn:etsi:019102:mainindication:{main}</MainIndication>")), "{xml}");
        if let Some(sub) = sub {
            assert!(xml.contains(&format!("<SubIndication>urn:etsi:019102:subindication:{sub}</SubIndication>")), "{xml}");
        }
        if code == 0 {
            assert!(xml.contains(&format!("<SignerInformation><SignerCertificate VOReference=\"C-{signing_sha256}\"/>")), "{xml}");
            // Every piece of revocation evidence the JSON report names is a validation object.
            let evidence = xml.matches("urn:etsi:019102:validationObject:OCSPResponse").count() + xml.matches("urn:etsi:019102:validationObject:CRL").count();
            assert_eq!(evidence, json["signatures"][0]["revocation"].as_array().map_or(0, Vec::len), "{xml}");
            assert!(evidence > 0, "{xml}");
        }
    }
    let (_, xml) = verify("doc.bin", &["--format", "xml"]);
    assert!(xml.contains("urn:cef:dss:signatureQualification:QESig") && xml.contains(">9861234567</Value>"), "{xml}");

    let (code, html) = verify("doc.bin", &["--format", "html"]);
    assert_eq!(code, 0);
    assert!(html.contains("<html lang=\"ar\" dir=\"rtl\">") && html.contains("class=\"verdict passed\""), "{html}");
    let top = &html[html.find("class=\"verdict").unwrap()..html.find("class=\"signature\"").unwrap()];
    for part in ["صالح", "9861234567", "طابع زمني على التوقيع", "CAdES-BASELINE-LT", "توقيع إلكتروني مؤهل"] {
        assert!(top.contains(part), "{part} in the verdict: {top}");
    }
    let (code, html) = verify("changed.bin", &["--format", "html", "--lang", "en"]);
    assert_eq!(code, 1);
    assert!(
        html.contains("<html lang=\"en\" dir=\"ltr\">") && html.contains("class=\"verdict failed\"") && html.contains("TOTAL-FAILED / HASH_FAILURE"),
        "{html}"
    );
    assert!(!html.contains("<script") && !html.contains("http://") && !html.contains("https://"), "{html}");

    // The signed report: a JWS whose x5c chain an independent JOSE check (Python's
    // `cryptography`) follows to the national root, and whose payload is the JSON report.
    let (code, jws) = verify("doc.bin", &["--format", "json", "--signed"]);
    assert_eq!(code, 0, "{jws}");
    std::fs::write(d.path("report.jws"), jws.trim()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/verify_report_jws.py");
    let root = d.path("certs/root.pem");
    let out = run(Command::new(venv_tool("python")).args([script, p(&d.path("report.jws")), p(&root)]));
    assert!(out.status.success(), "the signed report: {}", text(&out));
    let checked: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(checked["indication"], "TOTAL-PASSED", "{checked}");
    assert!(checked["signer"].as_str().unwrap().contains("CN=Hawiya Validation Service"), "{checked}");
    // One changed character of the payload and the check fails.
    let mut parts: Vec<String> = jws.trim().split('.').map(str::to_owned).collect();
    let flipped = if parts[1].ends_with('A') { 'B' } else { 'A' };
    parts[1].pop();
    parts[1].push(flipped);
    std::fs::write(d.path("tampered.jws"), parts.join(".")).unwrap();
    let out = run(Command::new(venv_tool("python")).args([script, p(&d.path("tampered.jws")), p(&root)]));
    assert!(!out.status.success() && text(&out).contains("invalid signature"), "a changed report must not verify: {}", text(&out));
    // The certificate it is checked with is the validation service's, from the Services CA.
    let service = openssl_ok(&d, &["x509", "-in", "certs/validation-service.pem", "-noout", "-subject", "-issuer", "-ext", "keyUsage"]);
    assert!(service.contains("Validation Service") && service.contains("Services CA") && service.contains("Non Repudiation"), "{service}");
    // Without a data directory there is no key to sign with: a usage error, nothing written.
    let out = d.command(&["verify"]).arg(d.path("sig.p7s")).arg("--detached").arg(d.path("doc.bin")).args(["--signed"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(out.stdout.is_empty() && text(&out).contains("--data"), "{}", text(&out));
    // --out writes the report to a file, nothing to standard output.
    let (code, said) = verify("doc.bin", &["--format", "html", "--lang", "en", "--out", p(&d.path("report.html"))]);
    assert_eq!((code, said.as_str()), (0, ""));
    let written = std::fs::read_to_string(d.path("report.html")).unwrap();
    assert!(written.contains("<html lang=\"en\" dir=\"ltr\">") && written.contains("class=\"verdict passed\""), "{written}");
    // The HTML report is not signed.
    let (code, html) = verify("doc.bin", &["--format", "html", "--signed"]);
    assert_eq!(code, 3, "{html}");

    // The signed XML report: the report in --out, a detached CAdES B-LT beside it that
    // OpenSSL verifies up to the national root, and that fails on a changed report.
    let (code, said) = verify("doc.bin", &["--format", "xml", "--signed"]);
    assert_eq!(code, 3, "a signed XML report needs --out: {said}");
    let (code, said) = verify("doc.bin", &["--format", "xml", "--signed", "--out", p(&d.path("signed-report.xml"))]);
    assert_eq!((code, said.as_str()), (0, ""));
    let xml = std::fs::read_to_string(d.path("signed-report.xml")).unwrap();
    assert!(xml.contains("urn:etsi:019102:mainindication:total-passed"), "{xml}");
    let cms_verify = |content: &str| {
        openssl(
            d.dir.path(),
            &[
                "cms",
                "-verify",
                "-binary",
                "-inform",
                "DER",
                "-in",
                "signed-report.xml.p7s",
                "-content",
                content,
                "-CAfile",
                p(&root),
                "-purpose",
                "any",
                "-out",
                "/dev/null",
            ],
        )
    };
    let out = cms_verify("signed-report.xml");
    assert!(out.status.success() && text(&out).contains("Verification successful"), "openssl cms -verify on the signed report: {}", text(&out));
    std::fs::write(d.path("changed-report.xml"), xml.replacen("total-passed", "total-failed", 1)).unwrap();
    let out = cms_verify("changed-report.xml");
    assert!(!out.status.success() && text(&out).contains("content verify error"), "a changed report must not verify: {}", text(&out));
    let signer = openssl_ok(&d, &["cms", "-cmsout", "-print", "-inform", "DER", "-in", "signed-report.xml.p7s"]);
    assert!(signer.contains("Validation Service"), "{signer}");
    // Hawiya's own validator sees a B-LT signature by the validation service.
    let (code, report) = hawiya_e2e::hawiya_verify(&d, &d.path("signed-report.xml.p7s"), Some(&d.path("signed-report.xml")), &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["signatures"][0]["format"], "CAdES-BASELINE-LT", "{report:#}");
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

// ---- PAdES ----

/// The CRLs the deployment serves, for the /DSS and the .p7s: the citizen signing CA's, the
/// services CA's (the TSA's issuer) and the root's ARL (both intermediates).
fn crls(d: &Deployment) -> Vec<Vec<u8>> {
    ["citizen-signing-ca", "services-ca", "root"]
        .iter()
        .map(|name| {
            let (code, crl) = d.fetch(&format!("{}/crl/{name}.crl", d.base));
            assert_eq!(code, 200, "GET /crl/{name}.crl");
            crl
        })
        .collect()
}

/// Signs `pdf` at PAdES B-LT as `citizen`: the signature (its CMS by `esign::cades` over the
/// byte-range digest), then a /DSS update with the certificates, the OCSP response and the CRLs.
fn sign_pdf(d: &Deployment, citizen: &Citizen, pdf: &[u8], name: &str) -> Vec<u8> {
    let details = SignatureDetails {
        signing_time: time::OffsetDateTime::now_utc(),
        name: Some(name.to_owned()),
        reason: Some("\u{645}\u{648}\u{627}\u{641}\u{642}\u{629} (approval)".into()),
        location: Some("Amman".into()),
    };
    let prepared_pdf = pdf::prepare(pdf, &PrepareOptions::signature(details)).unwrap();
    let digest = prepared_pdf.digest(DigestAlgorithm::Sha256);
    let prepared = Prepared::for_digest(Profile::Pades, &citizen.der, DigestAlgorithm::Sha256, &digest).unwrap();
    let assembled = b_lt(d, citizen, &prepared, Target::Pdf).expect("a good certificate gives a B-LT CMS");
    let signed = prepared_pdf.finish(&assembled.cms).unwrap();
    assert!(signed.starts_with(pdf), "the signed file must begin with the file that was signed");
    let certs = vec![
        citizen.der.clone(),
        exported(d, "citizen-signing-ca"),
        exported(d, "root"),
        exported(d, "tsa"),
        exported(d, "services-ca"),
        exported(d, "citizen-signing-ca-ocsp"),
    ];
    let with_dss = pdf::add_dss(signed.clone(), &certs, &[assembled.ocsp], &crls(d)).unwrap();
    assert!(with_dss.starts_with(&signed), "the /DSS is an incremental update");
    with_dss
}

fn write(d: &Deployment, name: &str, bytes: &[u8]) -> PathBuf {
    let path = d.path(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn qpdf_check(path: &Path) {
    let out = run(Command::new("qpdf").arg("--check").arg(path));
    assert!(out.status.success() && text(&out).contains("No syntax or stream encoding errors found"), "qpdf --check {}:\n{}", path.display(), text(&out));
}

/// `pyhanko sign validate` with the national root the only trust root (`--trust-replace`) and
/// the services CA offered for the TSA's path; `extra` before the file.
fn pyhanko_validate(d: &Deployment, path: &Path, extra: &[&str]) -> (bool, String) {
    let out = run(Command::new(venv_tool("pyhanko"))
        .args(["sign", "validate", "--trust"])
        .arg(d.path("certs/root.pem"))
        .arg("--trust-replace")
        .arg("--other-certs")
        .arg(d.path("certs/services-ca.pem"))
        .args(extra)
        .arg(path));
    (out.status.success(), text(&out))
}

/// pyHanko's AdES long-term validation (ETSI EN 319 102-1 §5.6.3, `ades_lta_validation`) of
/// every signature: the national root the only trust anchor, revocation information required
/// for every certificate of every path (REQUIRE_REVINFO) and nothing fetched (LOCAL_ONLY), so
/// the /DSS must hold it all. Prints `<field> <AdES indication> <pyHanko summary>` per signature.
const PYHANKO_LTA: &str = r#"
import asyncio, sys
from pyhanko.keys import load_cert_from_pemder
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko_certvalidator.registry import SimpleTrustManager
from pyhanko_certvalidator.context import CertValidationPolicySpec
from pyhanko_certvalidator.policy_decl import CertRevTrustPolicy, REQUIRE_REVINFO
from pyhanko.sign.validation.policy_decl import (
    SignatureValidationSpec, PdfSignatureValidationSpec, RevocationInfoGatheringSpec,
    RevinfoOnlineFetchingRule, LocalKnowledge)
from pyhanko.sign.validation.ades import ades_lta_validation
from pyhanko.sign.validation.settings import KeyUsageConstraints

path, root = sys.argv[1:3]
policy = CertValidationPolicySpec(
    trust_manager=SimpleTrustManager.build(trust_roots=[load_cert_from_pemder(root)]),
    revinfo_policy=CertRevTrustPolicy(REQUIRE_REVINFO))
spec = PdfSignatureValidationSpec(SignatureValidationSpec(
    cert_validation_policy=policy,
    revinfo_gathering_policy=RevocationInfoGatheringSpec(online_fetching_rule=RevinfoOnlineFetchingRule.LOCAL_ONLY),
    key_usage_settings=KeyUsageConstraints(key_usage={'non_repudiation'})))
reader = PdfFileReader(open(path, 'rb'))
for sig in reader.embedded_regular_signatures:
    result = asyncio.run(ades_lta_validation(sig, spec))
    summary = result.api_status.summary() if result.api_status is not None else None
    print(sig.field_name, result.ades_subindic.status.name, result.ades_subindic.name, summary)
"#;

fn pyhanko_lta(d: &Deployment, path: &Path) -> String {
    std::fs::write(d.path("check_lta.py"), PYHANKO_LTA).unwrap();
    let out = run(Command::new(venv_tool("python")).current_dir(d.dir.path()).arg("check_lta.py").arg(path).arg(d.path("certs/root.pem")));
    assert!(out.status.success(), "pyHanko AdES validation of {}: {}", path.display(), text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Adds a document timestamp (B-LTA) from Hawiya's TSA over `pdf`.
fn document_timestamp(d: &Deployment, pdf: &[u8]) -> Vec<u8> {
    let prepared = pdf::prepare(pdf, &PrepareOptions::document_timestamp()).unwrap();
    let token = time_stamp(d, &prepared.digest(DigestAlgorithm::Sha256));
    let stamped = prepared.finish(&token).unwrap();
    assert!(stamped.starts_with(pdf), "the document timestamp is an incremental update");
    stamped
}

/// pyHanko's one-line verdicts (`field:fingerprint:INTACT:TRUSTED,…`) of `path`: `count` of
/// them, every one intact and trusted with an intact, trusted timestamp token. pyHanko's
/// on-line revocation check is off (`--no-revocation-check`): the certificates point at
/// `pki.hawiya.jo`, which only the test's curl resolves; revocation is proved from the /DSS by
/// [`pyhanko_lta`].
fn pyhanko_trusted(d: &Deployment, path: &Path, count: usize) -> String {
    let (ok, out) = pyhanko_validate(d, path, &["--no-revocation-check"]);
    assert!(ok, "pyhanko sign validate {}:\n{out}", path.display());
    let verdicts: Vec<&str> = out.lines().filter(|l| l.starts_with("Signature")).collect();
    assert_eq!(verdicts.len(), count, "pyhanko sign validate {}: {count} signatures expected:\n{out}", path.display());
    for verdict in verdicts {
        assert!(verdict.contains(":INTACT:TRUSTED,TIMESTAMP_TOKEN<INTACT:TRUSTED>,"), "pyhanko sign validate {}:\n{out}", path.display());
    }
    out
}

#[test]
fn pades_b_lt_a_co_signature_and_b_lta_validate_with_pyhanko_pdfsig_and_qpdf() {
    let d = deployment();
    let layla = citizen(&d, "sig");
    let original = hawiya_e2e::sample_pdf();
    let b_lt = sign_pdf(&d, &layla, &original, "Layla Haddad");
    assert!(b_lt.starts_with(&original), "the original PDF must be a prefix of the signed file");
    let path = write(&d, "b-lt.pdf", &b_lt);
    qpdf_check(&path);
    let out = pyhanko_trusted(&d, &path, 1);
    assert!(out.contains(",ACCEPTABLE_MODIFICATIONS"), "the /DSS update is signature maintenance:\n{out}");
    let (ok, pretty) = pyhanko_validate(&d, &path, &["--no-revocation-check", "--pretty-print"]);
    assert!(ok, "pyhanko --pretty-print:\n{pretty}");
    for line in [
        "The signer's certificate is trusted.",
        "Trust anchor: \"Common Name: Hawiya National Root CA, Organization: Hawiya National PKI, Country: JO\"",
        "The timestamp token is cryptographically sound.",
        "The TSA certificate is trusted.",
        "The signature is judged VALID.",
    ] {
        assert!(pretty.contains(line), "pyhanko --pretty-print lacks {line:?}:\n{pretty}");
    }
    let report = hawiya_e2e::pdfsig(&d, &path);
    assert_eq!(report.matches("Signature is Valid.").count(), 1, "pdfsig:\n{report}");
    assert!(report.contains("Signer Certificate Common Name: Layla Haddad"), "pdfsig:\n{report}");
    // The PAdES validation model without fetching: B-LT alone lacks a proof of existence for
    // its validation data, which the document timestamp below gives.
    let ades = pyhanko_lta(&d, &path);
    assert!(ades.starts_with("Signature1 INDETERMINATE NO_POE INTACT:TRUSTED,TIMESTAMP_TOKEN<INTACT:TRUSTED>"), "pyHanko AdES on B-LT:\n{ades}");
    // DSS, the EU's reference validator: B-LT passes with the /DSS as the only revocation source.
    assert_eq!(hawiya_e2e::dss(&d, &path, None), "TOTAL_PASSED - PAdES-BASELINE-LT\n", "DSS on the B-LT file");
    let (code, report) = hawiya_e2e::hawiya_verify(&d, &path, None, &["--policy", "qualified"]);
    assert_eq!((code, hawiya_e2e::verdicts(&report).as_str()), (0, "TOTAL-PASSED - PAdES-BASELINE-LT QESig\n"), "{report:#}");

    // A second citizen co-signs the signed file; both signatures stay valid.
    let omar = citizen(&d, "cosig");
    let cosigned = sign_pdf(&d, &omar, &b_lt, "Omar Nasser");
    let path = write(&d, "co-signed.pdf", &cosigned);
    qpdf_check(&path);
    pyhanko_trusted(&d, &path, 2);
    let report = hawiya_e2e::pdfsig(&d, &path);
    assert_eq!(report.matches("Signature is Valid.").count(), 2, "pdfsig on the co-signed file:\n{report}");
    assert_eq!(hawiya_e2e::dss(&d, &path, None), "TOTAL_PASSED - PAdES-BASELINE-LT\n".repeat(2), "DSS on the co-signed file");
    let (code, report) = hawiya_e2e::hawiya_verify(&d, &path, None, &[]);
    assert_eq!((code, hawiya_e2e::verdicts(&report).as_str()), (0, "TOTAL-PASSED - PAdES-BASELINE-LT QESig\n".repeat(2).as_str()), "{report:#}");

    // B-LTA: a document timestamp over everything, /DSS included; the AdES long-term
    // validation then passes for both signatures with the /DSS as the only revocation source.
    let lta = document_timestamp(&d, &cosigned);
    let path = write(&d, "b-lta.pdf", &lta);
    qpdf_check(&path);
    let out = pyhanko_trusted(&d, &path, 2);
    assert!(out.contains("EXTENDED_WITH_LTA_UPDATES"), "pyHanko sees the document timestamp:\n{out}");
    let ades = pyhanko_lta(&d, &path);
    let verdicts: Vec<&str> = ades.lines().collect();
    assert_eq!(verdicts.len(), 2, "pyHanko AdES on B-LTA:\n{ades}");
    // The first signature was extended by the co-signature's new field ("form filling"),
    // the second by the /DSS and the document timestamp only.
    for (verdict, extension) in verdicts.iter().zip(["EXTENDED_WITH_FORM_FILLING", "EXTENDED_WITH_LTA_UPDATES"]) {
        let expected = format!(" PASSED OK INTACT:TRUSTED,TIMESTAMP_TOKEN<INTACT:TRUSTED>,{extension},ACCEPTABLE_MODIFICATIONS");
        assert!(verdict.ends_with(&expected), "pyHanko AdES on B-LTA, expected {expected:?}:\n{ades}");
    }
    assert_eq!(hawiya_e2e::dss(&d, &path, None), "TOTAL_PASSED - PAdES-BASELINE-LTA\n".repeat(2), "DSS on the B-LTA file");
    let (code, report) = hawiya_e2e::hawiya_verify(&d, &path, None, &[]);
    let expected = format!("{}TOTAL-PASSED - RFC3161 n/a\n", "TOTAL-PASSED - PAdES-BASELINE-LTA QESig\n".repeat(2));
    assert_eq!((code, hawiya_e2e::verdicts(&report).as_str()), (0, expected.as_str()), "{report:#}");

    // A byte of the first revision changed: both signatures fail on their digests.
    let mut tampered = lta.clone();
    let at = tampered.windows(6).position(|w| w == b"Hawiya").expect("the sample's text");
    tampered[at] = b'X';
    let (code, report) = hawiya_e2e::hawiya_verify(&d, &write(&d, "tampered.pdf", &tampered), None, &[]);
    assert_eq!(code, 1, "{report:#}");
    assert!(hawiya_e2e::verdicts(&report).starts_with("TOTAL-FAILED HASH_FAILURE PAdES-BASELINE-LT n/a\nTOTAL-FAILED HASH_FAILURE"), "{report:#}");
}

// ---- refusals ----

#[test]
fn a_suspended_or_revoked_certificate_gets_no_signature() {
    let d = deployment();
    let layla = citizen(&d, "sig");
    let document = b"a contract";
    let prepared = || Prepared::for_document(Profile::Cades { signing_time: now() }, &layla.der, document).unwrap();
    let signing_ca = Certificate::from_der(&exported(&d, "citizen-signing-ca")).unwrap();
    let certificate = Certificate::from_der(&layla.der).unwrap();

    let before = now();
    d.ok(&["ca", "revoke", "--serial", &layla.serial, "--reason", "certificateHold"]);
    let e = check_ocsp(&ocsp(&d, &layla), &certificate, &signing_ca, 0).unwrap_err();
    assert!(matches!(e, CadesError::Suspended { since } if since + 1 >= before && since <= now()), "check_ocsp on a held certificate: {e}");
    let e = b_lt(&d, &layla, &prepared(), Target::P7s).err().expect("no signature is assembled for a suspended certificate");
    assert!(matches!(e, CadesError::Suspended { .. }), "assemble with a held certificate: {e}");
    let e = b_lt(&d, &layla, &Prepared::for_digest(Profile::Pades, &layla.der, DigestAlgorithm::Sha256, &[7; 32]).unwrap(), Target::Pdf)
        .err()
        .expect("nor for a PDF");
    assert!(matches!(e, CadesError::Suspended { .. }), "assemble_for_pdf with a held certificate: {e}");

    // Released, it signs again.
    d.ok(&["ca", "release", "--serial", &layla.serial]);
    assert!(b_lt(&d, &layla, &prepared(), Target::P7s).is_ok(), "a released certificate signs");

    // Revoked for key compromise: refused with the reason.
    d.ok(&["ca", "revoke", "--serial", &layla.serial, "--reason", "keyCompromise"]);
    let e = b_lt(&d, &layla, &prepared(), Target::P7s).err().expect("no signature is assembled for a revoked certificate");
    assert!(matches!(e, CadesError::Revoked { reason: Some(CrlReason::KeyCompromise), .. }), "assemble with a revoked certificate: {e}");
}

// ---- the validation API ----

/// `POST /validation` with curl's multipart `parts` (`file=@path`, `policy=id`): status, media
/// type and JSON body, each response recorded in `recorded` for the OpenAPI check.
fn post_validation(d: &Deployment, parts: &[&str], recorded: &mut Vec<serde_json::Value>) -> (u16, serde_json::Value) {
    let resolve = format!("{}:{}:127.0.0.1", hawiya_e2e::HOST, d.port);
    let answer = d.path("validation-answer.json");
    let mut curl = Command::new("curl");
    curl.current_dir(d.dir.path()).args(["-s", "-o"]).arg(&answer).args(["-w", "%{http_code} %{content_type}", "--resolve", &resolve]);
    for part in parts {
        curl.args(["-F", part]);
    }
    let out = run(curl.arg(format!("{}/validation", d.base)));
    assert!(out.status.success(), "curl: {}", text(&out));
    let written = String::from_utf8_lossy(&out.stdout).into_owned();
    let (status, media) = written.split_once(' ').unwrap_or((&written, ""));
    let status: u16 = status.parse().expect("status code");
    let body: serde_json::Value = serde_json::from_slice(&std::fs::read(&answer).unwrap()).unwrap_or(serde_json::Value::Null);
    recorded.push(serde_json::json!({"method": "post", "path": "/validation", "status": status, "content_type": media, "body": body}));
    (status, body)
}

#[test]
fn the_validation_api_passes_a_pdf_hawiya_signed_and_fails_a_tampered_one() {
    let d = deployment();
    let layla = citizen(&d, "sig");
    let signed = sign_pdf(&d, &layla, &hawiya_e2e::sample_pdf(), "Layla Haddad");
    write(&d, "signed.pdf", &signed);
    let mut recorded = Vec::new();

    // No login: the server's own hierarchy is trusted, the qualified policy applied when named.
    let (status, report) = post_validation(&d, &["file=@signed.pdf", "policy=qualified"], &mut recorded);
    assert_eq!(status, 200, "{report:#}");
    assert_eq!(hawiya_e2e::verdicts(&report), "TOTAL-PASSED - PAdES-BASELINE-LT QESig\n", "{report:#}");
    assert_eq!((report["indication"].as_str(), report["policy"]["id"].as_str()), (Some("TOTAL-PASSED"), Some("qualified")), "{report:#}");
    // The same report as ETSI TS 119 102-2 XML, by Accept; valid under the ETSI schema.
    let resolve = format!("{}:{}:127.0.0.1", hawiya_e2e::HOST, d.port);
    let out = run(Command::new("curl")
        .current_dir(d.dir.path())
        .args(["-s", "-o", "validation.xml", "-w", "%{content_type}", "--resolve", &resolve, "-H", "Accept: application/xml", "-F", "file=@signed.pdf"])
        .arg(format!("{}/validation", d.base)));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "application/xml; charset=utf-8", "{}", text(&out));
    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/etsi/TS119102-2-v122.xsd");
    let out = run(Command::new("xmllint").args(["--noout", "--nonet", "--schema", schema]).arg(d.path("validation.xml")));
    assert!(out.status.success(), "the API's XML report is not valid under TS 119 102-2: {}", text(&out));
    assert!(std::fs::read_to_string(d.path("validation.xml")).unwrap().contains("urn:etsi:019102:mainindication:total-passed"));
    assert_eq!(report["document"]["name"], "signed.pdf");
    assert!(report["signatures"][0]["chain"].as_array().is_some_and(|c| c.len() >= 2), "{report:#}");
    let evidence = report["signatures"][0]["revocation"].as_array().expect("revocation evidence");
    assert!(
        evidence.iter().any(|e| e["status"] == "good" && e["source"] == "dss" && e["certificate"].as_str().is_some_and(|c| c.contains("Layla Haddad"))),
        "{report:#}"
    );
    // The same verdict as `hawiya verify` on the same file.
    let (code, cli) = hawiya_e2e::hawiya_verify(&d, &d.path("signed.pdf"), None, &["--policy", "qualified"]);
    assert_eq!((code, hawiya_e2e::verdicts(&cli)), (0, hawiya_e2e::verdicts(&report)));

    // One byte of the signed text changed: the digest fails.
    let mut tampered = signed.clone();
    let at = tampered.windows(6).position(|w| w == b"Hawiya").expect("the sample's text");
    tampered[at] = b'X';
    write(&d, "tampered.pdf", &tampered);
    let (status, report) = post_validation(&d, &["file=@tampered.pdf"], &mut recorded);
    assert_eq!(status, 200, "{report:#}");
    assert_eq!((report["indication"].as_str(), report["sub_indication"].as_str()), (Some("TOTAL-FAILED"), Some("HASH_FAILURE")), "{report:#}");

    // Refusals, each with its precise error.
    let (status, body) = post_validation(&d, &["file=@signed.pdf", "policy=lenient"], &mut recorded);
    assert_eq!((status, body["error"].as_str()), (400, Some("unknown_policy")), "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("\"lenient\""), "{body}");
    let (status, body) = post_validation(&d, &["detached=@signed.pdf"], &mut recorded);
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");
    let big = vec![b'%'; 20 * 1024 * 1024 + 1];
    write(&d, "big.bin", &big);
    let (status, body) = post_validation(&d, &["file=@big.bin"], &mut recorded);
    assert_eq!((status, body["error"].as_str()), (413, Some("document_too_large")), "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("20971520"), "the limit is named: {body}");

    hawiya_e2e::check_against_openapi("idp/openapi/validation-v1.yaml", &recorded, d.dir.path());
}
