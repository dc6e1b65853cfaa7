//! Citizens with smart-IDs in a served deployment: two citizens and a registration officer,
//! enrolment, reference devices (soft keys or a SoftHSM2 smart card) driven through
//! `hawiya device`, and a browser that logs in with them. Shared by the smart-ID, signing
//! and CSC end-to-end tests.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::{Db, Deployment, Keys};

/// A citizen (Layla Haddad).
pub const LAYLA: &str = "9861234567";
/// Another citizen (Sami Khalil).
pub const SAMI: &str = "9861234568";
/// Every test device's PIN1.
pub const PIN1: &str = "4321";
/// Every test device's PIN2.
pub const PIN2: &str = "54321";

/// A served deployment with two citizens and one registration officer; returns the officer's
/// token.
pub fn deployment() -> (Deployment, String) {
    deployment_with(&[])
}

pub fn deployment_with(env: &[(&str, &str)]) -> (Deployment, String) {
    deployment_with_services(env, &[])
}

/// Like [`deployment_with`], with the service policy files `services` added to the shipped
/// policies.
pub fn deployment_with_services(env: &[(&str, &str)], services: &[(&str, &str)]) -> (Deployment, String) {
    let mut d = Deployment::new(Keys::Soft, Db::Sqlite);
    if !services.is_empty() {
        d.add_services(services);
    }
    for (k, v) in env {
        d.set_env(k, v);
    }
    for (id, given_ar, family_ar, given, family) in [(LAYLA, "ليلى", "حداد", "Layla", "Haddad"), (SAMI, "سامي", "خليل", "Sami", "Khalil")] {
        d.ok_with_input(
            &[
                "citizen",
                "add",
                "--national-id",
                id,
                "--given-name-ar",
                given_ar,
                "--family-name-ar",
                family_ar,
                "--given-name-en",
                given,
                "--family-name-en",
                family,
            ],
            "a good long password 2026\n",
        );
    }
    let out = d.ok(&["ra", "add-officer", "--name", "officer-amal"]);
    let token = out.split_whitespace().last().expect("token printed").to_owned();
    // The certificates name the deployment's public host, which does not resolve here.
    let ocsp = format!("{}/ocsp", server(&d));
    d.set_env("HAWIYA_OCSP_URL", &ocsp);
    d.serve();
    (d, token)
}

/// The server by address (devices and the RA).
pub fn server(d: &Deployment) -> String {
    // The device and the RA reach the server by address; browsers by the issuer's host.
    format!("http://127.0.0.1:{}", d.port)
}

/// `hawiya citizen enroll`; the activation code.
pub fn enroll(d: &Deployment, national_id: &str, custody: &str) -> String {
    let out = d.ok(&["citizen", "enroll", "--national-id", national_id, "--custody", custody, "--officer", "officer-amal"]);
    out.lines().find_map(|l| l.strip_prefix("Activation code for ")).and_then(|l| l.split_whitespace().last()).expect("code printed").to_owned()
}

/// `hawiya device activate` with the PINs on stdin.
pub fn activate(d: &Deployment, dir: &Path, code: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
    use std::io::Write;
    let server = server(d);
    let mut cmd = Command::new(crate::hawiya_bin());
    cmd.args(["device", "activate", "--dir"]).arg(dir).args(["--server", &server, "--code", code, "--pin-stdin"]).args(extra);
    cmd.envs(env.iter().copied()).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn device");
    child.stdin.take().expect("stdin").write_all(format!("{PIN1}\n{PIN2}\n").as_bytes()).expect("PINs");
    child.wait_with_output().expect("wait")
}

/// A process's standard error, trimmed.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim().to_owned()
}

/// A smart card for a device: the environment that names its tokens.
pub fn smart_card(dir: &Path) -> Vec<(String, String)> {
    vec![("SOFTHSM2_CONF".into(), crate::smart_card(dir, PIN1, PIN2).display().to_string())]
}

/// `hawiya device <command>` on a device directory; PIN1 (if any) on stdin.
pub fn device(dir: &Path, args: &[&str], pin: Option<&str>, env: &[(&str, &str)]) -> Output {
    use std::io::Write;
    let mut cmd = Command::new(crate::hawiya_bin());
    cmd.arg("device").args(args).arg("--dir").arg(dir).envs(env.iter().copied());
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn device");
    if let Some(pin) = pin {
        child.stdin.take().expect("stdin").write_all(format!("{pin}\n").as_bytes()).expect("PIN");
    }
    child.wait_with_output().expect("wait")
}

/// A browser that reaches the deployment by its issuer's host.
pub fn browser(d: &Deployment) -> crate::web::Browser {
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", d.port).parse().expect("addr");
    let http = idp::backchannel::client_builder().expect("builder").resolve(crate::HOST, addr).build().expect("client");
    crate::web::Browser::new(http, &d.base)
}

/// Percent-encodes everything but unreserved characters.
pub fn url_encode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// Starts a smart-ID login in the browser; returns the waiting page's poll URL and code.
pub async fn start_login(b: &mut crate::web::Browser, authorize: &str, national_id: &str) -> (String, String) {
    let r = b.get(authorize).await;
    let (page, out) = b.follow(r).await;
    assert!(out.is_none(), "expected the login page, went to {out:?}");
    assert!(page.body.contains(r#"action="/login/smart-id""#), "the login page offers smart-ID: {}", page.body);
    assert!(!page.body.contains(r#"name="password""#), "no password form for a level only smart-ID reaches");
    let (tx, csrf) = (crate::web::hidden(&page.body, "tx"), crate::web::hidden(&page.body, "csrf"));
    let r = b.post("/login/smart-id", &[("tx", &tx), ("csrf", &csrf), ("lang", "en"), ("national_id", national_id)]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let code = r.body.split(r#"id="verification-code">"#).nth(1).and_then(|s| s.split('<').next()).expect("code shown").to_owned();
    let poll = r.body.split(r#"<p><a href="/login/smart-id?"#).nth(1).and_then(|s| s.split('"').next()).expect("poll link").replace("&amp;", "&");
    (format!("/login/smart-id?{poll}"), code)
}

/// The single number `sql` selects from the deployment's SQLite store.
pub fn sqlite_count(d: &Deployment, sql: &str) -> i64 {
    let out = crate::run(
        Command::new("python3")
            .args(["-c", "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])"])
            .arg(d.data.join("hawiya.db"))
            .arg(sql),
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or_else(|_| panic!("sqlite: {}", crate::output_text(&out)))
}
