//! The demo in a real headless browser: Debian's chromium, driven by Playwright
//! (`tests/browser/demo.mjs`), logs a citizen into both demo e-services in Arabic and in
//! English and logs out of both at once, then signs a PDF on `/sign` in Arabic with the
//! smart-ID's PIN2 while `hawiya device approve` approves, and signs the power of attorney
//! the demo notary asks for through the agency signing API, then verifies the signed PDF
//! on `/verify` without logging in, in both languages, and a tampered copy. Screenshots of the
//! login page and of the verification results in both languages are written to
//! `target/test-artefacts/`.
// Test code: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};

use hawiya_e2e::{free_port, hawiya_bin, run, smart_card, softhsm_module};

fn run_with_input(cmd: &mut Command, input: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("input");
    child.wait_with_output().expect("wait")
}

#[test]
fn demo_journey_in_chromium_in_arabic_and_english() {
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    assert!(Path::new("/usr/bin/chromium").exists(), "chromium is missing: run ./scripts/test (it installs Debian's chromium)");
    assert!(browser_dir.join("node_modules/playwright-core").exists(), "playwright-core is missing: run ./scripts/test (it runs npm ci in tests/browser)");
    let artefacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artefacts");
    std::fs::create_dir_all(&artefacts).expect("artefact directory");

    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut demo = Command::new(hawiya_bin())
        .args(["demo", "--data"])
        .arg(dir.path().join("data"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn hawiya demo");
    // The demo prints the citizens it made, then that it serves.
    let mut lines = std::io::BufReader::new(demo.stdout.take().expect("stdout")).lines();
    let mut secret = None;
    for line in lines.by_ref() {
        let line = line.expect("demo output");
        if let Some(rest) = line.split("oathtool --totp -b ").nth(1) {
            secret = rest.split('`').next().map(str::to_owned);
        }
        if line.starts_with("Hawiya is serving") {
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    let secret = secret.expect("the demo prints the demo citizen's TOTP secret");

    // A smart-ID on a SoftHSM2 "smart card" for the second demo citizen, enrolled and
    // activated as the demo prints.
    let data = dir.path().join("data");
    let device = dir.path().join("device");
    let conf = smart_card(dir.path(), "4321", "54321");
    let enrolled =
        run(Command::new(hawiya_bin()).args(["citizen", "enroll", "--data"]).arg(&data).args(["--national-id", "9861234568", "--custody", "hardware"]));
    assert!(enrolled.status.success(), "enroll: {}", String::from_utf8_lossy(&enrolled.stderr));
    let code = String::from_utf8_lossy(&enrolled.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Activation code for ").and_then(|l| l.split_whitespace().last()).map(str::to_owned))
        .expect("code");
    let mut activate = Command::new(hawiya_bin());
    activate.env("SOFTHSM2_CONF", &conf).args(["device", "activate", "--dir"]).arg(&device);
    activate.args(["--server", &format!("http://127.0.0.1:{port}"), "--code", &code, "--pin-stdin", "--pkcs11-module"]).arg(softhsm_module());
    let activated = run_with_input(&mut activate, "4321\n54321\n");
    assert!(activated.status.success(), "activate: {}", String::from_utf8_lossy(&activated.stderr));

    let pdf = dir.path().join("لائحة.pdf");
    std::fs::write(&pdf, hawiya_e2e::sample_pdf()).expect("write the PDF to sign");
    let out = Command::new("node")
        .arg(browser_dir.join("demo.mjs"))
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(&artefacts)
        .arg(&secret)
        .arg(hawiya_bin())
        .arg(&data)
        .arg(&device)
        .arg(&pdf)
        .env("SOFTHSM2_CONF", &conf)
        .current_dir(&browser_dir)
        .output()
        .expect("node (apt-get install nodejs)");
    let _ = demo.kill();
    let _ = demo.wait();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser journey failed:\n{report}");
    assert!(
        report.contains("ok: ar")
            && report.contains("ok: en")
            && report.contains("ok: smart-id")
            && report.contains("ok: sign")
            && report.contains("ok: demo-sign")
            && report.contains("ok: verify"),
        "{report}"
    );
    for lang in ["ar", "en"] {
        for name in ["login", "verify-passed", "verify-failed"] {
            let shot = artefacts.join(format!("{name}-{lang}.png"));
            assert!(std::fs::metadata(&shot).map(|m| m.len() > 1000).unwrap_or(false), "no screenshot {}", shot.display());
        }
    }
}
