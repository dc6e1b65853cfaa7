//! The binary's other commands: `demo` (first start and restart) and `policy check`.
// Test code: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hawiya_e2e::{free_port, hawiya_bin, run};

fn start_demo(data: &std::path::Path, port: u16) -> std::process::Child {
    let child = Command::new(hawiya_bin())
        .args(["demo", "--data"])
        .arg(data)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env_remove("HAWIYA_OPERATOR_SECRET")
        .env_remove("HAWIYA_OPERATOR_SECRET_FILE")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn demo");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "demo did not start listening");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

fn stop(child: std::process::Child) -> String {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let out = child.wait_with_output().expect("wait");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fetch(port: u16, path: &str) -> Vec<u8> {
    let out = run(Command::new("curl").args(["-sf", &format!("http://127.0.0.1:{port}{path}")]));
    assert!(out.status.success(), "GET {path} failed");
    out.stdout
}

#[test]
fn demo_creates_its_data_once_and_reuses_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("hawiya-data");
    let port = free_port();
    let first = start_demo(&data, port);
    let root = fetch(port, "/ca/root.crt");
    let index = String::from_utf8(fetch(port, "/")).expect("utf-8");
    assert!(index.contains(&format!("http://127.0.0.1:{port}/ocsp")), "{index}");
    let printed = stop(first);
    assert!(printed.contains("First start") && printed.contains(&format!("http://127.0.0.1:{port}/crl/citizen-signing-ca.crl")), "{printed}");

    let secret = data.join("operator-secret");
    assert_eq!(std::fs::metadata(&secret).expect("secret").permissions().mode() & 0o777, 0o600);
    assert!(data.join("hawiya.db").exists() && data.join("keys").is_dir());

    let second = start_demo(&data, port);
    assert_eq!(fetch(port, "/ca/root.crt"), root, "the second start serves the same hierarchy");
    let printed = stop(second);
    assert!(printed.contains("Reusing"), "{printed}");
}

#[test]
fn policy_check_accepts_the_shipped_files_and_names_problems() {
    let shipped = run(Command::new(hawiya_bin()).args(["policy", "check"]));
    assert!(shipped.status.success(), "{}", String::from_utf8_lossy(&shipped.stderr));
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let dir_check = run(Command::new(hawiya_bin()).args(["policy", "check"]).arg(&repo));
    assert!(dir_check.status.success(), "{}", String::from_utf8_lossy(&dir_check.stderr));

    let broken = tempfile::tempdir().expect("tempdir");
    let out = run(Command::new("cp").arg("-r").arg(repo.join(".")).arg(broken.path()));
    assert!(out.status.success());
    let methods = broken.path().join("methods.toml");
    let text = std::fs::read_to_string(&methods).expect("read").replacen("level = \"high\"", "level = \"ultra\"", 1);
    std::fs::write(&methods, text).expect("write");
    let out = run(Command::new(hawiya_bin()).args(["policy", "check"]).arg(broken.path()));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("methods.toml:24:9: unknown level \"ultra\""), "{stderr}");
}
