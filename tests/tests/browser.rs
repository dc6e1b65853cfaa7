//! The demo in a real headless browser: Debian's chromium, driven by Playwright
//! (`tests/browser/demo.mjs`), logs a citizen into both demo e-services in Arabic and in
//! English and logs out of both at once. Screenshots of the login page in both languages
//! are written to `target/test-artefacts/`.
// Test code: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};

use hawiya_e2e::{free_port, hawiya_bin};

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

    let out = Command::new("node")
        .arg(browser_dir.join("demo.mjs"))
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(&artefacts)
        .arg(&secret)
        .current_dir(&browser_dir)
        .output()
        .expect("node (apt-get install nodejs)");
    let _ = demo.kill();
    let _ = demo.wait();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser journey failed:\n{report}");
    assert!(report.contains("ok: ar") && report.contains("ok: en"), "{report}");
    for lang in ["ar", "en"] {
        let shot = artefacts.join(format!("login-{lang}.png"));
        assert!(std::fs::metadata(&shot).map(|m| m.len() > 1000).unwrap_or(false), "no screenshot {}", shot.display());
    }
}
