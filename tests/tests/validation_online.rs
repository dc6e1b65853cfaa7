//! `hawiya verify --online`: a signature without revocation evidence is INDETERMINATE until
//! the validator may ask the OCSP responder its certificate names; then the responder's answer
//! decides (good: TOTAL-PASSED; revoked: REVOKED_NO_POE), and the report says the evidence came
//! from online. The CA and its responder are OpenSSL's (`openssl ocsp -port`), not Hawiya's.
// Test code: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};

use hawiya_e2e::{free_port, openssl, output_text, run};
use serde_json::Value;

fn ok(dir: &Path, args: &[&str]) {
    let out = openssl(dir, args);
    assert!(out.status.success(), "openssl {args:?}: {}", output_text(&out));
}

/// OpenSSL's OCSP responder on `port`, answering from `index.txt` until killed; returned once
/// it says it waits for clients (a probe connection would hold its only thread).
fn responder(dir: &Path, port: u16) -> Child {
    use std::io::BufRead;
    let mut child = Command::new("openssl")
        .current_dir(dir)
        .args(["ocsp", "-port", &port.to_string(), "-index", "index.txt", "-CA", "ca.pem", "-rsigner", "ca.pem", "-rkey", "ca.key", "-ndays", "1"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl ocsp");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = std::io::BufReader::new(stderr).lines();
    let ready = lines.by_ref().take(10).map_while(Result::ok).any(|l| l.contains("waiting for OCSP client connections"));
    assert!(ready, "the OCSP responder did not start");
    // Keep draining its log so that it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    child
}

fn verify(dir: &Path, extra: &[&str]) -> (i32, Value) {
    let out = run(Command::new(hawiya_e2e::hawiya_bin())
        .current_dir(dir)
        .args(["verify", "doc.p7s", "--detached", "doc.txt", "--trust", "ca.pem", "--format", "json"])
        .args(extra));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("hawiya verify ({e}): {}", output_text(&out)));
    (out.status.code().unwrap_or(-1), report)
}

#[test]
fn online_validation_asks_the_responder_the_certificate_names() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    std::fs::write(
        d.join("ext.cnf"),
        format!(
            "[leaf]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation\n\
             authorityInfoAccess=OCSP;URI:http://127.0.0.1:{port}/\n"
        ),
    )
    .unwrap();
    ok(d, &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "ca.key"]);
    ok(
        d,
        &[
            "req",
            "-new",
            "-x509",
            "-key",
            "ca.key",
            "-subj",
            "/CN=Online Test CA",
            "-days",
            "30",
            "-sha256",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            "ca.pem",
        ],
    );
    ok(d, &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "leaf.key"]);
    ok(d, &["req", "-new", "-key", "leaf.key", "-subj", "/CN=Online Signer", "-out", "leaf.csr"]);
    ok(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "0x21",
            "-days",
            "30",
            "-sha256",
            "-extfile",
            "ext.cnf",
            "-extensions",
            "leaf",
            "-out",
            "leaf.pem",
        ],
    );
    std::fs::write(d.join("doc.txt"), "an offline signature checked online\n").unwrap();
    ok(d, &["cms", "-sign", "-cades", "-binary", "-in", "doc.txt", "-signer", "leaf.pem", "-inkey", "leaf.key", "-outform", "DER", "-out", "doc.p7s"]);

    // Offline: nothing says the certificate was not revoked.
    let (code, report) = verify(d, &[]);
    assert_eq!((code, report["sub_indication"].as_str()), (2, Some("CERTIFICATE_CHAIN_GENERAL_FAILURE")), "{report:#}");

    // Online, the responder says good.
    std::fs::write(d.join("index.txt"), "V\t300101000000Z\t\t21\tunknown\t/CN=Online Signer\n").unwrap();
    let mut child = responder(d, port);
    let (code, report) = verify(d, &["--online"]);
    child.kill().ok();
    child.wait().ok();
    assert_eq!((code, report["indication"].as_str()), (0, Some("TOTAL-PASSED")), "{report:#}");
    let evidence = &report["signatures"][0]["revocation"][0];
    assert_eq!(
        (evidence["kind"].as_str(), evidence["source"].as_str(), evidence["status"].as_str()),
        (Some("ocsp"), Some("online"), Some("good")),
        "{report:#}"
    );

    // Online, the responder says revoked: no proof the signature came before the revocation.
    std::fs::write(d.join("index.txt"), "R\t300101000000Z\t260102000000Z,keyCompromise\t21\tunknown\t/CN=Online Signer\n").unwrap();
    let mut child = responder(d, port);
    let (code, report) = verify(d, &["--online"]);
    child.kill().ok();
    child.wait().ok();
    assert_eq!((code, report["sub_indication"].as_str()), (2, Some("REVOKED_NO_POE")), "{report:#}");
}
