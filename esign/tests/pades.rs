//! PAdES signatures made by `esign::pdf`, checked by independent tools: qpdf for structure,
//! poppler's pdfsig (NSS) and pyHanko for the signatures, pdftoppm for the rendering, and an
//! OpenSSL-made PKI, CMS and RFC 3161 tokens. Tools come from scripts/env.sh.
// Test code: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use esign::pdf::{self, Damage, PdfError, PrepareOptions, SignatureDetails};
use pkix::DigestAlgorithm;

const VENV: &str = ".cache/hawiya/venv/bin";

fn venv_tool(name: &str) -> PathBuf {
    let home = std::env::var("HOME").expect("HOME");
    let path = Path::new(&home).join(VENV).join(name);
    assert!(path.exists(), "{} is missing: run scripts/env.sh (ensure_test_dependencies) to install pyHanko", path.display());
    path
}

/// Runs `program` with `args`, returning (success, stdout + stderr).
fn run(program: impl AsRef<std::ffi::OsStr>, args: &[&dyn AsRef<std::ffi::OsStr>]) -> (bool, String) {
    let program = program.as_ref();
    let output = Command::new(program)
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program:?} ({e}): run scripts/env.sh (ensure_test_dependencies) to install the PDF test tools"));
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

fn run_ok(program: impl AsRef<std::ffi::OsStr>, args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
    let name = program.as_ref().to_owned();
    let (ok, text) = run(program, args);
    assert!(ok, "{name:?} failed:\n{text}");
    text
}

/// A one-page PDF with "Hawiya" in Helvetica, its xref offsets computed. With `form`, it also has
/// an AcroForm (an indirect object) with a hidden text field whose widget is in an indirect /Annots array.
fn minimal_pdf(form: bool) -> Vec<u8> {
    let content = b"BT /F1 24 Tf 40 40 Td (Hawiya) Tj ET";
    let mut objects: Vec<Vec<u8>> = vec![
        if form { b"<< /Type /Catalog /Pages 2 0 R /AcroForm 6 0 R >>".to_vec() } else { b"<< /Type /Catalog /Pages 2 0 R >>".to_vec() },
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R{} >>",
            if form { " /Annots 8 0 R" } else { "" }
        )
        .into_bytes(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec(),
        [format!("<< /Length {} >>\nstream\n", content.len()).as_bytes(), content, b"\nendstream"].concat(),
    ];
    if form {
        objects.push(b"<< /Fields [7 0 R] /DA (/Helv 0 Tf 0 g) >>".to_vec());
        objects.push(b"<< /FT /Tx /T (Name) /V (Hawiya) /Type /Annot /Subtype /Widget /Rect [10 10 100 30] /F 2 /P 3 0 R >>".to_vec());
        objects.push(b"[7 0 R]".to_vec());
    }
    pdf::write_document(&objects)
}

/// A throw-away PKI: root → signing CA → signer (P-256), and a TSA under the same CA.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("ext.cnf"),
            "[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n\
             [signer]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n\
             [tsa]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=critical,timeStamping\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
        )
        .unwrap();
        for name in ["root", "ca", "signer", "tsa"] {
            run_ok("openssl", &[&"genpkey", &"-algorithm", &"EC", &"-pkeyopt", &"ec_paramgen_curve:P-256", &"-out", &d.join(format!("{name}.key"))]);
        }
        run_ok(
            "openssl",
            &[
                &"req",
                &"-x509",
                &"-new",
                &"-key",
                &d.join("root.key"),
                &"-subj",
                &"/C=JO/O=Hawiya Test/CN=Hawiya Test Root",
                &"-days",
                &"30",
                &"-addext",
                &"basicConstraints=critical,CA:TRUE",
                &"-addext",
                &"keyUsage=critical,keyCertSign,cRLSign",
                &"-out",
                &d.join("root.pem"),
            ],
        );
        let issue = |name: &str, subject: &str, issuer: &str, section: &str| {
            run_ok("openssl", &[&"req", &"-new", &"-key", &d.join(format!("{name}.key")), &"-subj", &subject, &"-out", &d.join(format!("{name}.csr"))]);
            run_ok(
                "openssl",
                &[
                    &"x509",
                    &"-req",
                    &"-in",
                    &d.join(format!("{name}.csr")),
                    &"-CA",
                    &d.join(format!("{issuer}.pem")),
                    &"-CAkey",
                    &d.join(format!("{issuer}.key")),
                    &"-CAcreateserial",
                    &"-days",
                    &"30",
                    &"-sha256",
                    &"-extfile",
                    &d.join("ext.cnf"),
                    &"-extensions",
                    &section,
                    &"-out",
                    &d.join(format!("{name}.pem")),
                ],
            );
        };
        issue("ca", "/C=JO/O=Hawiya Test/CN=Hawiya Test Signing CA", "root", "ca");
        issue("signer", "/C=JO/O=Hawiya Test/CN=\u{633}\u{644}\u{645}\u{649} Citizen", "ca", "signer");
        issue("tsa", "/C=JO/O=Hawiya Test/CN=Hawiya Test TSA", "ca", "tsa");
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn der(&self, name: &str) -> Vec<u8> {
        let out = self.path(&format!("{name}.der"));
        run_ok("openssl", &[&"x509", &"-in", &self.path(&format!("{name}.pem")), &"-outform", &"DER", &"-out", &out]);
        std::fs::read(out).unwrap()
    }

    /// A detached CMS over the two byte ranges, made by OpenSSL.
    fn cms(&self, prepared: &pdf::Prepared) -> Vec<u8> {
        let [_, a, b, c] = prepared.byte_range();
        let document = prepared.document();
        let ranges = [&document[..a], &document[b..b + c]].concat();
        std::fs::write(self.path("ranges.bin"), ranges).unwrap();
        let out = self.path("cms.der");
        run_ok(
            "openssl",
            &[
                &"cms",
                &"-sign",
                &"-binary",
                &"-in",
                &self.path("ranges.bin"),
                &"-signer",
                &self.path("signer.pem"),
                &"-inkey",
                &self.path("signer.key"),
                &"-certfile",
                &self.path("ca.pem"),
                &"-outform",
                &"DER",
                &"-nosmimecap",
                &"-md",
                &"sha256",
                &"-out",
                &out,
            ],
        );
        std::fs::read(out).unwrap()
    }

    /// An RFC 3161 token over `digest` (SHA-256), made by OpenSSL's TSA.
    fn timestamp(&self, digest: &[u8]) -> Vec<u8> {
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(self.path("tsa.serial"), "01\n").unwrap();
        std::fs::write(
            self.path("tsa.cnf"),
            format!(
                "[tsa]\ndefault_tsa=t\n[t]\ndir={}\nserial=$dir/tsa.serial\ndefault_policy=1.2.3.4.1\ndigests=sha256\naccuracy=secs:1\nordering=no\ntsa_name=no\ness_cert_id_chain=no\ness_cert_id_alg=sha256\nsigner_digest=sha256\n",
                self.dir.path().display()
            ),
        )
        .unwrap();
        run_ok("openssl", &[&"ts", &"-query", &"-digest", &hex, &"-sha256", &"-cert", &"-out", &self.path("ts.tsq")]);
        run_ok(
            "openssl",
            &[
                &"ts",
                &"-reply",
                &"-config",
                &self.path("tsa.cnf"),
                &"-queryfile",
                &self.path("ts.tsq"),
                &"-signer",
                &self.path("tsa.pem"),
                &"-inkey",
                &self.path("tsa.key"),
                &"-chain",
                &self.path("ca.pem"),
                &"-token_out",
                &"-out",
                &self.path("ts.der"),
            ],
        );
        std::fs::read(self.path("ts.der")).unwrap()
    }

    /// A "good" OCSP response for `name`'s certificate, signed by the CA, made by OpenSSL.
    fn ocsp_response(&self, name: &str) -> Vec<u8> {
        let cert = self.path(&format!("{name}.pem"));
        let serial = run_ok("openssl", &[&"x509", &"-in", &cert, &"-noout", &"-serial"]);
        let serial = serial.trim().trim_start_matches("serial=");
        let subject = run_ok("openssl", &[&"x509", &"-in", &cert, &"-noout", &"-subject", &"-nameopt", &"compat"]);
        let subject = subject.trim().trim_start_matches("subject=");
        std::fs::write(self.path("index.txt"), format!("V\t491231235959Z\t\t{serial}\tunknown\t{subject}\n")).unwrap();
        run_ok("openssl", &[&"ocsp", &"-issuer", &self.path("ca.pem"), &"-cert", &cert, &"-no_nonce", &"-reqout", &self.path("ocsp.req")]);
        run_ok(
            "openssl",
            &[
                &"ocsp",
                &"-index",
                &self.path("index.txt"),
                &"-CA",
                &self.path("ca.pem"),
                &"-rsigner",
                &self.path("ca.pem"),
                &"-rkey",
                &self.path("ca.key"),
                &"-reqin",
                &self.path("ocsp.req"),
                &"-respout",
                &self.path("ocsp.der"),
                &"-ndays",
                &"1",
            ],
        );
        std::fs::read(self.path("ocsp.der")).unwrap()
    }

    /// An NSS database trusting the root, for pdfsig.
    fn nss_db(&self) -> PathBuf {
        let db = self.path("nss");
        if !db.exists() {
            std::fs::create_dir(&db).unwrap();
            let (ok, text) = run("certutil", &[&"-N", &"--empty-password", &"-d", &db]);
            assert!(ok, "certutil failed ({text}): run scripts/env.sh (ensure_test_dependencies) to install libnss3-tools");
            run_ok("certutil", &[&"-A", &"-n", &"Hawiya Test Root", &"-t", &"CT,C,C", &"-i", &self.path("root.pem"), &"-d", &db]);
        }
        db
    }
}

fn details() -> SignatureDetails {
    SignatureDetails {
        signing_time: time::OffsetDateTime::now_utc(),
        name: Some("\u{633}\u{644}\u{645}\u{649} \u{627}\u{644}\u{623}\u{631}\u{62f}\u{646}\u{64a}".into()),
        reason: Some("\u{645}\u{648}\u{627}\u{641}\u{642}\u{629} (approval)".into()),
        location: Some("Amman".into()),
    }
}

/// Signs `original` once with the test PKI; asserts the original is a prefix.
fn sign(pki: &Pki, original: &[u8]) -> Vec<u8> {
    let prepared = pdf::prepare(original, &PrepareOptions::signature(details())).unwrap();
    let signed = prepared.clone().finish(&pki.cms(&prepared)).unwrap();
    assert!(signed.starts_with(original), "the original bytes must be a prefix of the signed file");
    signed
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn qpdf_check(path: &Path) {
    let text = run_ok("qpdf", &[&"--check", &path]);
    assert!(text.contains("No syntax or stream encoding errors found"), "qpdf --check {}:\n{text}", path.display());
}

/// pdfsig's output, asserting `valid` signatures are valid and the first signer trusted.
///
/// Only the first: poppler 22–25 with NSS reports "Unknown issue with Certificate" for any
/// signature verified after one whose CMS OpenSSL made (pyHanko-made CMS do not trigger it, and
/// the order of signatures decides which one is hit, not the PDF update). pyHanko checks the
/// trust of every signature instead.
fn pdfsig_valid(pki: &Pki, path: &Path, valid: usize) -> String {
    let (_, text) = run("pdfsig", &[&"-nssdir", &pki.nss_db(), &path]);
    assert_eq!(text.matches("Signature is Valid.").count(), valid, "pdfsig {}:\n{text}", path.display());
    let first = text.split("Signature #2").next().unwrap_or_default();
    assert!(first.contains("Certificate is Trusted."), "pdfsig {}:\n{text}", path.display());
    text
}

/// pyHanko's verdict on every signature of the file.
fn pyhanko_validate(pki: &Pki, path: &Path, extra: &[&str]) -> (bool, String) {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"sign", &"validate", &"--trust"];
    let root = pki.path("root.pem");
    args.push(&root);
    args.push(&"--trust-replace");
    for e in extra {
        args.push(e);
    }
    args.push(&path);
    run(venv_tool("pyhanko"), &args)
}

/// pyHanko's one-line verdicts (`field:fingerprint:INTACT:TRUSTED,…`), asserting `count` signatures
/// (document timestamps included) are intact and trusted, and none is not.
fn pyhanko_valid(pki: &Pki, path: &Path, count: usize) -> String {
    let (ok, text) = pyhanko_validate(pki, path, &[]);
    assert!(ok, "pyHanko {}:\n{text}", path.display());
    let verdicts: Vec<&str> = text.lines().filter(|l| l.contains(":INTACT:") || l.contains("INVALID") || l.contains("TAMPERED")).collect();
    assert_eq!(verdicts.len(), count, "pyHanko {}:\n{text}", path.display());
    assert!(verdicts.iter().all(|l| l.contains(":INTACT:TRUSTED")), "pyHanko {}:\n{text}", path.display());
    text
}

fn render(dir: &Path, pdf: &Path, name: &str) -> Vec<u8> {
    let prefix = dir.join(name);
    run_ok("pdftoppm", &[&"-r", &"50", &"-png", &"-f", &"1", &"-l", &"1", &"-singlefile", &pdf, &prefix]);
    std::fs::read(prefix.with_extension("png")).unwrap()
}

/// The originals: hand-made (classic table), with an AcroForm, and qpdf's rewrites.
fn originals(dir: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let plain = write(dir, "plain.pdf", &minimal_pdf(false));
    let mut out = vec![("plain", minimal_pdf(false)), ("form", minimal_pdf(true))];
    for (name, args) in [("objstm", &["--object-streams=generate"][..]), ("linearized", &["--linearize"][..])] {
        let target = dir.join(format!("{name}.pdf"));
        let mut all: Vec<&dyn AsRef<std::ffi::OsStr>> = args.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>).collect();
        all.push(&plain);
        all.push(&target);
        run_ok("qpdf", &all);
        out.push((name, std::fs::read(&target).unwrap()));
    }
    out
}

#[test]
fn signs_every_kind_of_original_and_validates_with_pdfsig_and_pyhanko() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    for (name, original) in originals(dir.path()) {
        let original_path = write(dir.path(), &format!("{name}-original.pdf"), &original);
        let signed = sign(&pki, &original);
        let signed_path = write(dir.path(), &format!("{name}-signed.pdf"), &signed);
        qpdf_check(&signed_path);
        pdfsig_valid(&pki, &signed_path, 1);
        pyhanko_valid(&pki, &signed_path, 1);
        assert_eq!(
            render(dir.path(), &original_path, &format!("{name}-a")),
            render(dir.path(), &signed_path, &format!("{name}-b")),
            "{name}: the page renders differently"
        );
    }
}

#[test]
fn xref_kind_of_the_update_follows_the_original() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    for (name, original) in originals(dir.path()) {
        let signed = sign(&pki, &original);
        let update = &signed[original.len()..];
        let stream = name == "objstm";
        let has_table = update.windows(6).any(|w| w == b"\nxref\n");
        let has_stream = update.windows(11).any(|w| w == b"/Type /XRef");
        assert_eq!((has_table, has_stream), (!stream, stream), "{name}: the update's xref kind");
    }
}

#[test]
fn a_second_signature_leaves_the_first_valid_and_tampering_is_detected() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    for (name, original) in [("plain", minimal_pdf(false)), ("form", minimal_pdf(true))] {
        let once = sign(&pki, &original);
        let twice = sign(&pki, &once);
        assert!(twice.starts_with(&once));
        let path = write(dir.path(), &format!("{name}-twice.pdf"), &twice);
        qpdf_check(&path);
        let text = pdfsig_valid(&pki, &path, 2);
        assert!(text.contains("Signature2"), "{text}");
        pyhanko_valid(&pki, &path, 2);

        // A byte changed inside the signed range: the digest no longer matches.
        let mut changed = once.clone();
        let at = changed.windows(6).position(|w| w == b"Hawiya").unwrap();
        changed[at] = b'X';
        let changed_path = write(dir.path(), &format!("{name}-changed.pdf"), &changed);
        let (_, text) = run("pdfsig", &[&"-nssdir", &pki.nss_db(), &changed_path]);
        assert!(text.contains("Digest Mismatch"), "pdfsig on a changed file:\n{text}");
        let (ok, text) = pyhanko_validate(&pki, &changed_path, &[]);
        assert!(!ok && !text.contains("INTACT:"), "pyHanko on a changed file:\n{text}");

        // Bytes appended after signing: not covered by the signature, and reported so.
        let mut appended = once.clone();
        appended.extend_from_slice(b"\n1 0 obj\n<< /Type /Catalog >>\nendobj\n");
        let appended_path = write(dir.path(), &format!("{name}-appended.pdf"), &appended);
        let (_, text) = run("pdfsig", &[&"-nssdir", &pki.nss_db(), &write(dir.path(), "once.pdf", &once)]);
        assert!(text.contains("Total document signed"), "pdfsig on the signed file:\n{text}");
        let (_, text) = run("pdfsig", &[&"-nssdir", &pki.nss_db(), &appended_path]);
        assert!(text.contains("Not total document signed"), "pdfsig on an appended file:\n{text}");
        let (_, text) = pyhanko_validate(&pki, &appended_path, &[]);
        assert!(!text.contains("UNTOUCHED"), "pyHanko on an appended file:\n{text}");
    }
}

#[test]
fn dss_update_keeps_the_signature_valid_and_is_seen() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    for (name, original) in originals(dir.path()) {
        let signed = sign(&pki, &original);
        let certs = vec![pki.der("signer"), pki.der("ca"), pki.der("root"), pki.der("ca")];
        let with_dss = pdf::add_dss(signed.clone(), &certs, &[pki.ocsp_response("signer")], &[]).unwrap();
        assert!(with_dss.starts_with(&signed));
        // A second round extends the existing /DSS, keeping its entries.
        let with_more = pdf::add_dss(with_dss.clone(), &[pki.der("tsa")], &[], &[]).unwrap();
        let path = write(dir.path(), &format!("{name}-dss.pdf"), &with_more);
        qpdf_check(&path);
        pdfsig_valid(&pki, &path, 1);
        pyhanko_valid(&pki, &path, 1);
        let json = run_ok("qpdf", &[&"--json=1", &"--json-key=objects", &path]);
        let dss_certs = count_dss_certs(&json);
        assert_eq!(dss_certs, 4, "{name}: signer, CA, root (once) and the TSA in /DSS /Certs");
        let script = "import sys\nfrom pyhanko.pdf_utils.reader import PdfFileReader\nfrom pyhanko.sign.validation.dss import DocumentSecurityStore\n\
                      r = PdfFileReader(open(sys.argv[1], 'rb'))\ndss = DocumentSecurityStore.read_dss(r)\nprint(len(list(dss.load_certs())), len(dss.ocsps), len(dss.crls))\n";
        let counts = run_ok(venv_tool("python"), &[&"-c", &script, &path]);
        assert_eq!(counts.trim(), "4 1 0", "{name}: pyHanko's reading of the DSS");
    }
}

/// The /ByteRange of the last signature dictionary in `pdf`, read as a validator would.
fn byte_range_of_last_signature(pdf: &[u8]) -> [usize; 4] {
    let at = pdf.windows(11).rposition(|w| w == b"/ByteRange ").unwrap() + 11;
    let end = at + pdf[at..].iter().position(|b| *b == b']').unwrap();
    let numbers: Vec<usize> = std::str::from_utf8(&pdf[at + 1..end]).unwrap().split_whitespace().map(|n| n.parse().unwrap()).collect();
    numbers.try_into().unwrap()
}

/// The number of entries in /DSS /Certs, read from qpdf's JSON without a JSON parser: the
/// catalog names the DSS, whose /Certs array is counted.
fn count_dss_certs(json: &str) -> usize {
    let dss = json.find("\"/Certs\": [").expect("a /DSS with /Certs");
    let rest = &json[dss + "\"/Certs\": [".len()..];
    let end = rest.find(']').unwrap();
    rest[..end].matches(" R\"").count()
}

#[test]
fn document_timestamp_validates() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    for (name, original) in originals(dir.path()) {
        let signed = sign(&pki, &original);
        let prepared = pdf::prepare(&signed, &PrepareOptions::document_timestamp()).unwrap();
        let token = pki.timestamp(&prepared.digest(DigestAlgorithm::Sha256));
        let stamped = prepared.finish(&token).unwrap();
        assert!(stamped.starts_with(&signed));
        let path = write(dir.path(), &format!("{name}-lta.pdf"), &stamped);
        qpdf_check(&path);
        // pyHanko sees the signature covered by an LTA update (the document timestamp).
        let text = pyhanko_valid(&pki, &path, 1);
        assert!(text.contains("EXTENDED_WITH_LTA_UPDATES"), "{name}: pyHanko sees the document timestamp:\n{text}");
        // The token in the file verifies, with OpenSSL, against the digest OpenSSL computes of the final file's byte ranges.
        let range = byte_range_of_last_signature(&stamped);
        let ranges = [&stamped[..range[1]], &stamped[range[2]..range[2] + range[3]]].concat();
        assert_eq!(range[2] + range[3], stamped.len(), "the timestamp covers the whole file");
        let ranges_path = write(dir.path(), "ts-ranges.bin", &ranges);
        let digest = run_ok("openssl", &[&"dgst", &"-sha256", &"-r", &ranges_path]);
        let digest = digest.split_whitespace().next().unwrap();
        // The token as the PDF reader finds it: its own DER length, not the hex with its zero
        // padding trimmed (which would also eat a token ending in a 0 nibble).
        let token = pdf::read::signatures(&stamped).unwrap().pop().expect("the document timestamp").contents;
        let token_path = write(dir.path(), "token.der", &token);
        let text = run_ok(
            "openssl",
            &[&"ts", &"-verify", &"-digest", &digest, &"-in", &token_path, &"-token_in", &"-CAfile", &pki.path("root.pem"), &"-untrusted", &pki.path("ca.pem")],
        );
        assert!(text.contains("Verification: OK"), "{text}");
        let (_, text) = run("pdfsig", &[&"-nssdir", &pki.nss_db(), &path]);
        // pdfsig lists it as a second signature by the TSA but cannot validate document timestamps.
        assert!(text.split("Signature #2").nth(1).is_some_and(|t| t.contains("Hawiya Test TSA")), "pdfsig lists the timestamp:\n{text}");
    }
}

#[test]
fn refuses_encrypted_damaged_and_certified_documents() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let plain = write(dir.path(), "plain.pdf", &minimal_pdf(false));
    let options = PrepareOptions::signature(details());

    let encrypted = dir.path().join("encrypted.pdf");
    run_ok("qpdf", &[&"--encrypt", &"u", &"o", &"256", &"--", &plain, &encrypted]);
    let e = pdf::prepare(&std::fs::read(&encrypted).unwrap(), &options).unwrap_err();
    assert!(matches!(e, PdfError::Encrypted), "{e:?}");

    let original = minimal_pdf(false);
    let truncated = &original[..original.len() - 30];
    let e = pdf::prepare(truncated, &options).unwrap_err();
    assert!(matches!(e, PdfError::Damaged(Damage::NoStartxref)), "{e:?}");
    let xref_at = original.windows(10).rposition(|w| w == b"startxref\n").unwrap() + "startxref\n".len();
    let mut bad_offset = original[..xref_at].to_vec();
    bad_offset.extend_from_slice(b"123\n%%EOF\n");
    let e = pdf::prepare(&bad_offset, &options).unwrap_err();
    assert!(matches!(e, PdfError::Damaged(Damage::BrokenXref { .. })), "{e:?}");
    let e = pdf::prepare(b"hello, this is not a PDF", &options).unwrap_err();
    assert!(matches!(e, PdfError::NotPdf), "{e:?}");

    // Certified by pyHanko with DocMDP "no changes" (P 1): refused. With P 2: signable.
    for (level, refused) in [("NO_CHANGES", true), ("FILL_FORMS", false)] {
        let certified = dir.path().join(format!("certified-{level}.pdf"));
        let script = format!(
            "import sys\nfrom pyhanko.sign import signers, fields\nfrom pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter\n\
             signer = signers.SimpleSigner.load(sys.argv[1], sys.argv[2], ca_chain_files=(sys.argv[3],))\n\
             w = IncrementalPdfFileWriter(open(sys.argv[4], 'rb'))\n\
             meta = signers.PdfSignatureMetadata(field_name='Author', certify=True, docmdp_permissions=fields.MDPPerm.{level})\n\
             signers.sign_pdf(w, meta, signer=signer, output=open(sys.argv[5], 'wb'))\n"
        );
        run_ok(venv_tool("python"), &[&"-c", &script, &pki.path("signer.key"), &pki.path("signer.pem"), &pki.path("ca.pem"), &plain, &certified]);
        let bytes = std::fs::read(&certified).unwrap();
        match pdf::prepare(&bytes, &options) {
            Err(PdfError::CertifiedNoChanges) if refused => {
                // Validation material and a document timestamp are still allowed (ISO 32000-2 §12.8.2.2.1).
                let with_dss = pdf::add_dss(bytes.clone(), &[pki.der("ca")], &[pki.ocsp_response("signer")], &[]).unwrap();
                let prepared = pdf::prepare(&with_dss, &PrepareOptions::document_timestamp()).unwrap();
                let token = pki.timestamp(&prepared.digest(DigestAlgorithm::Sha256));
                let path = write(dir.path(), "certified-lta.pdf", &prepared.finish(&token).unwrap());
                let text = pyhanko_valid(&pki, &path, 1);
                assert!(text.contains("EXTENDED_WITH_LTA_UPDATES"), "{text}");
            }
            Ok(_) if !refused => {
                let signed = sign(&pki, &bytes);
                let path = write(dir.path(), "certified-then-signed.pdf", &signed);
                pdfsig_valid(&pki, &path, 2);
            }
            other => panic!("{level}: {other:?}"),
        }
    }
}

#[test]
fn a_signature_larger_than_the_reservation_is_refused_with_both_sizes() {
    let options = PrepareOptions { reserved: 100, ..PrepareOptions::signature(details()) };
    let original = minimal_pdf(false);
    let prepared = pdf::prepare(&original, &options).unwrap();
    let e = prepared.finish(&[0x30; 101]).unwrap_err();
    assert!(matches!(e, PdfError::SignatureTooLarge { needed: 101, reserved: 100 }), "{e:?}");
    assert!(e.to_string().contains("101") && e.to_string().contains("100"), "{e}");
    let options = PrepareOptions { reserved: pdf::MAX_RESERVED + 1, ..PrepareOptions::signature(details()) };
    let e = pdf::prepare(&minimal_pdf(false), &options).unwrap_err();
    assert!(matches!(e, PdfError::ReservationTooLarge { .. }), "{e:?}");
}

#[test]
fn garbage_and_truncations_are_errors_never_panics() {
    let options = PrepareOptions::signature(details());
    let dir = tempfile::tempdir().unwrap();
    for (name, original) in originals(dir.path()) {
        // Every prefix (stepping, to keep the test fast) and a sweep of single-byte corruptions.
        for cut in (0..original.len()).step_by(7) {
            let _ = pdf::prepare(&original[..cut], &options);
            let _ = pdf::add_dss(original[..cut].to_vec(), &[vec![1]], &[], &[]);
        }
        for at in (0..original.len()).step_by(3) {
            for byte in [b'0', b'9', b'<', b'(', b'[', 0xff, b'/', b' '] {
                let mut corrupt = original.clone();
                corrupt[at] = byte;
                if let Ok(prepared) = pdf::prepare(&corrupt, &options) {
                    assert!(prepared.document().starts_with(&corrupt), "{name}: prefix kept at {at}");
                }
            }
        }
    }
    let _ = pdf::prepare(b"%PDF-1.7\nstartxref\n99999999999999999999999\n%%EOF", &options);
    let _ = pdf::prepare(b"%PDF-1.7\nxref\n0 99999999999\ntrailer<<>>\nstartxref\n9\n%%EOF", &options);
    let e = pdf::prepare(b"%PDF-1.7\nxref\n0 0\ntrailer\n<</Prev 9 /Root 1 0 R>>\nstartxref\n9\n%%EOF", &options).unwrap_err();
    assert!(matches!(e, PdfError::Damaged(Damage::XrefLoop { .. })), "{e:?}");
}

/// A file source that remembers its largest read and how much it read in all.
struct CountingFile {
    file: std::fs::File,
    largest: std::sync::atomic::AtomicUsize,
    total: std::sync::atomic::AtomicUsize,
}

impl CountingFile {
    fn open(path: &Path) -> Self {
        CountingFile { file: std::fs::File::open(path).unwrap(), largest: Default::default(), total: Default::default() }
    }
}

impl esign::source::Source for CountingFile {
    fn len(&self) -> usize {
        esign::source::Source::len(&self.file)
    }

    fn read_at(&self, offset: usize, buf: &mut [u8]) -> std::io::Result<()> {
        use std::sync::atomic::Ordering::Relaxed;
        self.largest.fetch_max(buf.len(), Relaxed);
        self.total.fetch_add(buf.len(), Relaxed);
        esign::source::Source::read_at(&self.file, offset, buf)
    }
}

/// Issue 11 §6: a large PDF is validated from its file without being held — every read the
/// validator makes is at most two chunks (64 KiB), however large the file, yet the signature's
/// digest over the whole signed range is computed (the cryptographic verification passes, and
/// one byte changed in the middle of the file is a HASH_FAILURE).
#[test]
fn a_large_pdf_is_validated_from_its_file_in_bounded_reads() {
    use esign::source::CHUNK;
    use esign::validation::report::Indication;
    use std::sync::atomic::Ordering::Relaxed;
    const SIZE: usize = 32 * 1024 * 1024;
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let line = b"BT /F1 8 Tf 20 400 Td (Hawiya streamed validation) Tj ET\n";
    let content: Vec<u8> = line.iter().copied().cycle().take(SIZE).collect();
    let objects = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>".to_vec(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec(),
        [format!("<< /Length {} >>\nstream\n", content.len()).as_bytes(), &content, b"\nendstream"].concat(),
    ];
    drop(content);
    let signed = sign(&pki, &pdf::write_document(&objects));
    drop(objects);
    let path = write(dir.path(), "large.pdf", &signed);
    let len = signed.len();
    drop(signed);
    assert!(len > SIZE);

    let policies = policies::Policies::shipped().unwrap();
    let trust = esign::validation::Trust::new(policies.trust_list(), None, &[pki.der("root")]).unwrap();
    let validation = esign::validation::Validation {
        policy: policies.default_validation_policy(),
        policies: &policies,
        trust: &trust,
        now: std::time::SystemTime::now(),
        online: None,
    };
    let source = CountingFile::open(&path);
    let report = esign::validation::validate_source(&source, "large.pdf", None, &validation);
    assert_eq!(report.document.size, len as u64);
    let signature = &report.signatures[0];
    let crypto = signature.blocks.iter().find(|b| b.block == "cryptographic-verification").unwrap_or_else(|| panic!("{report:?}"));
    assert!(crypto.conclusion.passed(), "{report:?}");
    let (largest, total) = (source.largest.load(Relaxed), source.total.load(Relaxed));
    assert!(largest <= 2 * CHUNK, "the largest read was {largest} bytes");
    // The file's digest and the signature's: each byte read about twice, never held.
    assert!((2 * len..4 * len).contains(&total), "{total} bytes read of a {len}-byte file");

    // One byte changed in the middle of the signed content: the digest computed in chunks sees it.
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, b"X", (len / 2) as u64).unwrap();
    let report = esign::validation::validate_source(&CountingFile::open(&path), "large.pdf", None, &validation);
    assert_eq!(report.conclusion.indication, Indication::TotalFailed, "{report:?}");
    assert_eq!(report.conclusion.sub_indication.map(|s| s.as_str()), Some("HASH_FAILURE"), "{report:?}");
}
