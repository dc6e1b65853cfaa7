//! The validation corpus (issue 11, section 5): documents signed by other tools than Hawiya
//! (pyHanko for PAdES, the OpenSSL command line for CAdES and an RFC 3161 token) under a PKI
//! that is not Hawiya's, each with the verdict ETSI EN 319 102-1 expects, and the proof that
//! the two independent validators — the EU's DSS and pyHanko's AdES validator — give exactly
//! the verdicts the manifest says they give, and that Hawiya's own validator (`hawiya verify`)
//! gives the `expected` verdict on every file, with the matching exit status.
//!
//! `tests/scripts/validation_corpus.py` makes the corpus and its `manifest.json` in a fresh
//! directory (fresh keys, times relative to now, nothing fetched);
//! `tests/scripts/pyhanko_ades.py` runs pyHanko's EN 319 102-1 validation over it; DSS runs
//! once per file with the corpus root as the only trust anchor. Every file's `expected`
//! verdict holds for both validators unless the manifest says otherwise with
//! `dss_expected` / `pyhanko_expected` and a note saying which answer is right and why: the
//! test asserts those exact answers, so it fails if either validator changes its mind.
//!
//! What each case proves:
//!
//! | file | proves |
//! |---|---|
//! | `pades-b-b.pdf`, `pades-b-t.pdf`, `cades-detached.p7s`, `cades-enveloping.p7s`, `document.tst` | intact, chained signatures / a token without revocation data are INDETERMINATE/CERTIFICATE_CHAIN_GENERAL_FAILURE offline, never passed |
//! | `pades-b-lt.pdf`, `pades-b-lta.pdf`, `cades-detached-lt.p7s` | B-LT / B-LTA with embedded CRLs pass, and the level is recognised |
//! | `tampered.pdf` | one byte changed in the signed range: TOTAL_FAILED/HASH_FAILURE |
//! | `revoked-before.pdf` / `revoked-after.pdf` | a revoked certificate passes when the signature timestamp predates the revocation, and is REVOKED_NO_POE when it does not |
//! | `expired-b-t.pdf`, `expired-b-lt.pdf`, `expired-lta.pdf` | an expired certificate: INDETERMINATE without revocation evidence, TOTAL_PASSED with the long-term material (B-LT) and with LTA evidence |
//! | `wrong-anchor.pdf` | another PKI's signature: NO_CERTIFICATE_CHAIN_FOUND |
//! | `sha1-certificate.pdf`, `cades-sha1.p7s` | SHA-1 in the certificate or the CMS: CRYPTO_CONSTRAINTS_FAILURE_NO_POE |
//! | `modified-after-signing.pdf` | page content rewritten in a later incremental update must fail (DSS only warns) |
//! | `truncated.pdf`, `unsigned.pdf` | a damaged signature is FORMAT_FAILURE (both validators wrongly see none); no signature is reported as such |
//!
//! The table of results goes to `target/test-artefacts/validation-corpus.txt`.
// Test code: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use der::DecodePem;
use der::asn1::ObjectIdentifier;
use esign::validation::report::{Indication, SubIndication};
use hawiya_e2e::{dss_with_trust, openssl, output_text, run, venv_tool};
use serde_json::Value;
use x509_cert::Certificate;

const QC_STATEMENTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.3");

const SCRIPTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts");

/// Every case issue 11 section 5 asks for, by file name.
const REQUIRED: &[&str] = &[
    "pades-b-b.pdf",
    "pades-b-t.pdf",
    "pades-b-lt.pdf",
    "pades-b-lta.pdf",
    "cades-detached.p7s",
    "cades-enveloping.p7s",
    "cades-detached-lt.p7s",
    "document.tst",
    "tampered.pdf",
    "revoked-before.pdf",
    "revoked-after.pdf",
    "expired-b-t.pdf",
    "expired-b-lt.pdf",
    "expired-lta.pdf",
    "wrong-anchor.pdf",
    "sha1-certificate.pdf",
    "cades-sha1.p7s",
    "modified-after-signing.pdf",
    "truncated.pdf",
    "unsigned.pdf",
];

/// An expected verdict from the manifest.
#[derive(Debug, PartialEq)]
struct Verdict {
    indication: String,
    sub_indication: Option<String>,
    format: Option<String>,
}

impl Verdict {
    fn from_json(v: &Value) -> Verdict {
        let text = |key: &str| v[key].as_str().map(str::to_owned);
        Verdict { indication: text("indication").expect("an indication"), sub_indication: text("sub_indication"), format: text("format") }
    }

    fn no_signature(&self) -> bool {
        self.indication == "NO_SIGNATURE"
    }

    /// As DSS prints it: `<indication> <sub or -> <format>`, empty for no signature. A
    /// verdict without a stated format matches any format.
    fn matches_dss(&self, printed: &str) -> bool {
        if self.no_signature() {
            return printed.is_empty();
        }
        let fields: Vec<&str> = printed.split(' ').collect();
        fields.len() == 3
            && fields[0] == self.indication
            && fields[1] == self.sub_indication.as_deref().unwrap_or("-")
            && self.format.as_deref().is_none_or(|f| f == fields[2])
    }

    /// As Hawiya's JSON report has it: the first signature (or the timestamp token), the
    /// standard's names with DSS's underscores.
    fn matches_hawiya(&self, report: &Value) -> bool {
        let signatures: Vec<&Value> = report["signatures"].as_array().into_iter().flatten().filter(|s| s["kind"] != "document-timestamp").collect();
        let Some(first) = signatures.first() else { return self.no_signature() };
        let format = if first["kind"] == "timestamp" { "TIMESTAMP" } else { first["format"].as_str().unwrap_or_default() };
        first["indication"].as_str().map(|i| i.replace('-', "_")).as_deref() == Some(self.indication.as_str())
            && first["sub_indication"].as_str() == self.sub_indication.as_deref()
            && self.format.as_deref().is_none_or(|f| f == format)
    }

    /// As pyhanko_ades.py prints it: `<indication> <sub or ->`, no verdict for no signature.
    fn matches_pyhanko(&self, verdicts: &[String]) -> bool {
        if self.no_signature() {
            return verdicts.is_empty();
        }
        verdicts.len() == 1 && verdicts[0] == format!("{} {}", self.indication, self.sub_indication.as_deref().unwrap_or("-"))
    }

    fn show(&self) -> String {
        if self.no_signature() {
            return "no signature".into();
        }
        let mut s = format!("{} {}", self.indication, self.sub_indication.as_deref().unwrap_or("-"));
        if let Some(f) = &self.format {
            write!(s, " {f}").unwrap();
        }
        s
    }
}

/// The standard's name of a sub-indication, as Hawiya's report types know it.
fn sub_indication(name: &str) -> SubIndication {
    SubIndication::named(name).unwrap_or_else(|| panic!("{name} is not a sub-indication of EN 319 102-1"))
}

/// The manifest's expectation is a pair the standard allows (table 5), for a signature (a
/// timestamp's PASSED/FAILED/INDETERMINATE are the same with TOTAL_ dropped).
fn assert_allowed(file: &str, v: &Verdict) {
    if v.no_signature() {
        return;
    }
    let indication = match v.indication.trim_start_matches("TOTAL_") {
        "PASSED" => Indication::TotalPassed,
        "FAILED" => Indication::TotalFailed,
        "INDETERMINATE" => Indication::Indeterminate,
        other => panic!("{file}: {other} is not an indication"),
    };
    match &v.sub_indication {
        None => assert_eq!(indication, Indication::TotalPassed, "{file}: {} needs a sub-indication", v.indication),
        Some(sub) => assert!(sub_indication(sub).goes_with(indication), "{file}: {} {sub} is not a pair table 5 allows", v.indication),
    }
}

/// The corpus's PKI is what the manifest says it is, checked with OpenSSL.
fn check_pki(dir: &Path) {
    let text = |args: &[&str]| {
        let out = openssl(dir, args);
        assert!(out.status.success(), "openssl {args:?}: {}", output_text(&out));
        output_text(&out)
    };
    let sha1 = text(&["x509", "-in", "pki/sha1.pem", "-noout", "-text"]);
    assert!(sha1.contains("Signature Algorithm: sha1WithRSAEncryption"), "the SHA-1 certificate: {sha1}");
    let tsa = text(&["x509", "-in", "pki/tsa.pem", "-noout", "-text"]);
    assert!(tsa.contains("X509v3 Extended Key Usage: critical\n                Time Stamping"), "the TSA certificate: {tsa}");
    let good = text(&["x509", "-in", "pki/good.pem", "-noout", "-text"]);
    assert!(good.contains("Policy: 0.4.0.194112.1.2") && good.contains("Non Repudiation"), "the qualified-style certificate: {good}");
    let cert = Certificate::from_pem(std::fs::read(dir.join("pki/good.pem")).unwrap()).unwrap();
    let qc = cert.tbs_certificate.extensions.iter().flatten().find(|e| e.extn_id == QC_STATEMENTS).expect("qcStatements");
    let statements = qc.extn_value.as_bytes();
    // The DER of the OIDs QcCompliance 0.4.0.1862.1.1 and QcSSCD 0.4.0.1862.1.4.
    for oid in [[6u8, 6, 4, 0, 0x8e, 0x46, 1, 1], [6, 6, 4, 0, 0x8e, 0x46, 1, 4]] {
        assert!(statements.windows(oid.len()).any(|w| w == oid), "qcStatements {statements:02x?} lacks {oid:02x?}");
    }
    let expired = openssl(dir, &["x509", "-in", "pki/expired.pem", "-noout", "-checkend", "0"]);
    assert!(!expired.status.success() && output_text(&expired).contains("will expire"), "the expired certificate: {}", output_text(&expired));
    // Each signer chains to the corpus root (the expired one at a time inside its validity).
    let two_years_ago = (SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() - 2 * 365 * 86_400).to_string();
    for (name, at) in [("good", None), ("revoked", None), ("sha1", None), ("expired", Some(two_years_ago.as_str()))] {
        let cert = format!("pki/{name}.pem");
        let mut args = vec!["verify", "-CAfile", "pki/root.pem", "-untrusted", "pki/ca.pem"];
        args.extend(at.map(|t| ["-attime", t]).into_iter().flatten());
        args.push(&cert);
        let out = openssl(dir, &args);
        assert!(out.status.success(), "{name} must chain to the root: {}", output_text(&out));
    }
    let crl = text(&["crl", "-in", "pki/ca.crl", "-inform", "DER", "-noout", "-text"]);
    let revoked_serial = text(&["x509", "-in", "pki/revoked.pem", "-noout", "-serial"]);
    let serial = revoked_serial.trim().trim_start_matches("serial=");
    assert!(crl.contains(serial) && crl.contains("Cessation Of Operation"), "the CA's CRL lists the revoked certificate {serial}: {crl}");
    let stranger = openssl(dir, &["verify", "-CAfile", "pki/root.pem", "-untrusted", "pki/other-ca.pem", "pki/stranger.pem"]);
    assert!(!stranger.status.success(), "the stranger must not chain to the corpus root: {}", output_text(&stranger));
}

#[test]
fn hawiya_dss_and_pyhanko_agree_with_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path();

    let started = Instant::now();
    let out = run(Command::new(venv_tool("python")).arg(format!("{SCRIPTS}/validation_corpus.py")).arg(corpus));
    assert!(out.status.success(), "validation_corpus.py: {}", output_text(&out));
    let took = started.elapsed();
    assert!(took < Duration::from_secs(60), "making the corpus took {took:?}");
    check_pki(corpus);

    let manifest: Value = serde_json::from_slice(&std::fs::read(corpus.join("manifest.json")).unwrap()).unwrap();
    let files = manifest["files"].as_array().expect("files");
    let names: Vec<&str> = files.iter().map(|f| f["file"].as_str().expect("file")).collect();
    for required in REQUIRED {
        assert!(names.contains(required), "the corpus lacks {required}: {names:?}");
    }

    // pyHanko, once over the whole corpus.
    let out = run(Command::new(venv_tool("python")).arg(format!("{SCRIPTS}/pyhanko_ades.py")).arg(corpus));
    assert!(out.status.success(), "pyhanko_ades.py: {}", output_text(&out));
    let pyhanko: BTreeMap<String, Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("pyhanko_ades.py printed {l}: {e}"));
            (v["file"].as_str().unwrap().to_owned(), v)
        })
        .collect();

    let mut table = String::new();
    writeln!(table, "Validation corpus ({} files; anchor {}; {})", files.len(), manifest["trust_anchor"], manifest["validation"]).unwrap();
    writeln!(table, "{:<28} {:<62} {:<62} pyHanko", "file", "expected (EN 319 102-1)", "DSS").unwrap();
    let mut failures = Vec::new();
    for entry in files {
        let file = entry["file"].as_str().unwrap();
        let path = corpus.join(file);
        assert!(path.exists(), "{file} is in the manifest but not in the corpus");
        assert!(entry["reason"].as_str().is_some_and(|r| r.len() > 20), "{file}: the manifest gives no reason");
        let expected = Verdict::from_json(&entry["expected"]);
        assert_allowed(file, &expected);
        let dss_expected = entry.get("dss_expected").map_or_else(|| Verdict::from_json(&entry["expected"]), Verdict::from_json);
        let py_expected = entry.get("pyhanko_expected").map_or_else(|| Verdict::from_json(&entry["expected"]), Verdict::from_json);
        for (who, v) in [("dss", &dss_expected), ("pyhanko", &py_expected)] {
            if *v != expected {
                assert!(
                    entry[format!("{who}_note")].as_str().is_some_and(|n| n.len() > 20),
                    "{file}: {who} is expected to differ from the standard but the manifest does not say why"
                );
            }
        }

        let detached = entry["detached"].as_str().map(|d| corpus.join(d));
        let dss = dss_with_trust(&corpus.join(entry["trust_anchor"].as_str().unwrap()), &corpus.join(format!("dss-{file}")), &path, detached.as_deref());
        let dss_verdict = dss.verdict.trim().to_owned();
        if !dss_expected.matches_dss(&dss_verdict) {
            failures.push(format!("{file}: DSS said {dss_verdict:?}, the manifest expects {}\n{}", dss_expected.show(), dss.log));
        }
        for warning in entry["dss_warnings"].as_array().into_iter().flatten() {
            let key = format!("[{}]", warning.as_str().unwrap());
            if !dss.log.contains(&key) {
                failures.push(format!("{file}: DSS did not warn {key}\n{}", dss.log));
            }
        }

        let py = pyhanko.get(file).unwrap_or_else(|| panic!("pyhanko_ades.py said nothing of {file}"));
        let py_verdicts: Vec<String> = py["verdicts"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
        if !py_expected.matches_pyhanko(&py_verdicts) {
            failures.push(format!("{file}: pyHanko said {py_verdicts:?} ({}), the manifest expects {}", py["detail"], py_expected.show()));
        }
        if let Some(detail) = entry.get("pyhanko_detail").and_then(Value::as_object) {
            for (key, value) in detail {
                if py["detail"][0][key] != *value {
                    failures.push(format!("{file}: pyHanko's {key} is {}, the manifest expects {value}", py["detail"][0][key]));
                }
            }
        }

        // Hawiya's own validator: the standard's verdict, always.
        let mut command = Command::new(hawiya_e2e::hawiya_bin());
        command.arg("verify").arg(&path).arg("--trust").arg(corpus.join(entry["trust_anchor"].as_str().unwrap())).args(["--format", "json"]);
        if let Some(d) = &detached {
            command.arg("--detached").arg(d);
        }
        let out = command.output().expect("hawiya verify");
        let hawiya: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{file}: hawiya verify ({e}): {}", output_text(&out)));
        let want_code = match expected.indication.as_str() {
            "TOTAL_PASSED" => 0,
            "TOTAL_FAILED" => 1,
            _ => 2,
        };
        if !expected.matches_hawiya(&hawiya) || out.status.code() != Some(want_code) {
            failures.push(format!("{file}: Hawiya said (exit {:?}) {hawiya:#}, the manifest expects {}", out.status.code(), expected.show()));
        }

        let mark = |v: &Verdict| if *v == expected { "" } else { " (*)" };
        let show_dss = if dss_verdict.is_empty() { "no signature".to_owned() } else { dss_verdict } + mark(&dss_expected);
        let show_py = if py_verdicts.is_empty() { "no signature".to_owned() } else { py_verdicts.join("; ") } + mark(&py_expected);
        writeln!(table, "{file:<28} {:<62} {show_dss:<62} {show_py}", expected.show()).unwrap();
    }
    writeln!(table, "\n(*) differs from the standard's verdict, as the manifest states and explains:").unwrap();
    for entry in files {
        for who in ["dss", "pyhanko"] {
            if let Some(note) = entry[format!("{who}_note")].as_str() {
                writeln!(table, "- {} / {}: {note}", entry["file"].as_str().unwrap(), if who == "dss" { "DSS" } else { "pyHanko" }).unwrap();
            }
        }
    }

    let artefacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artefacts");
    std::fs::create_dir_all(&artefacts).unwrap();
    std::fs::write(artefacts.join("validation-corpus.txt"), &table).unwrap();
    eprintln!("{table}");
    assert!(failures.is_empty(), "{} disagreement(s) with the manifest:\n{}", failures.len(), failures.join("\n\n"));
}
