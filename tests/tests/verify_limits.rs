//! `hawiya verify` on input too large to validate (issue 11, section 5): a 1 GB file is
//! refused before it is read, with the limit named, as a usage error (exit status 3).
// Test code: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use hawiya_e2e::{hawiya_bin, run};

#[test]
fn a_one_gigabyte_file_is_refused_with_the_limit_named_and_status_3() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("huge.pdf");
    // A sparse file: 1 GiB long, no disk used; a reader that read it all would take 1 GiB.
    let file = std::fs::File::create(&big).unwrap();
    file.set_len(1 << 30).unwrap();
    drop(file);
    let small = dir.path().join("small.p7s");
    std::fs::write(&small, b"not a signature").unwrap();
    for args in [vec![big.clone()], vec![small.clone(), "--detached".into(), big.clone()]] {
        let started = Instant::now();
        let out = run(Command::new(hawiya_bin()).arg("verify").args(&args).args(["--lang", "en"]));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(stderr.contains("1073741824 bytes is more than the limit of 268435456 bytes (MAX_INPUT_BYTES)"), "{stderr}");
        assert!(stderr.contains("huge.pdf"), "{stderr}");
        assert!(out.stdout.is_empty(), "no report for a refused file: {}", String::from_utf8_lossy(&out.stdout));
        assert!(started.elapsed() < Duration::from_secs(10), "refusing took {:?}", started.elapsed());
    }
}
