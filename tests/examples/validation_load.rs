//! The validation benchmark's load generator (`scripts/bench-validation`): one document
//! validated again and again in one process with `esign::validation::validate`, as
//! `hawiya verify` and the server do, on `workers` threads for `seconds`, with `trust` (PEM)
//! the only further trust anchor. Prints one line: validations per second, how many, the
//! process CPU per validation in ms, and the verdict (the same every time, or it fails).
//!
//! `validation_load <trust.pem> <file> <workers> <seconds> [<detached document>]`
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use cpu_time::ProcessTime;
use esign::validation::{Trust, Validation};

// The allocator `hawiya` runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    assert!((5..=6).contains(&args.len()), "usage: validation_load <trust.pem> <file> <workers> <seconds> [<detached document>]");
    let (_, anchor) = der::pem::decode_vec(&std::fs::read(&args[1]).unwrap()).unwrap();
    let file = Arc::new(std::fs::read(&args[2]).unwrap());
    let workers: usize = args[3].parse().unwrap();
    let seconds: u64 = args[4].parse().unwrap();
    let detached = Arc::new(args.get(5).map(|p| std::fs::read(p).unwrap()));
    let policies = Arc::new(policies::Policies::shipped().unwrap());
    let trust = Arc::new(Trust::new(policies.trust_list(), None, &[anchor]).unwrap());
    let validate = {
        let (policies, trust, file, detached) = (policies.clone(), trust.clone(), file.clone(), detached.clone());
        move || {
            let v = Validation { policy: policies.default_validation_policy(), policies: &policies, trust: &trust, now: SystemTime::now(), online: None };
            let report = esign::validation::validate(&file, "bench", detached.as_deref(), &v);
            let verdict = report.signatures.iter().map(|s| format!("{}/{}", s.conclusion.indication.as_str(), s.format)).collect::<Vec<_>>().join(",");
            (report.exit_code(), verdict)
        }
    };
    let (code, verdict) = validate();
    // Warm-up, then the measured run.
    let count = Arc::new(AtomicU64::new(0));
    let run = |duration: Duration, count: Arc<AtomicU64>| {
        let deadline = Instant::now() + duration;
        let threads: Vec<_> = (0..workers)
            .map(|_| {
                let (validate, count, verdict) = (validate.clone(), count.clone(), verdict.clone());
                std::thread::spawn(move || {
                    while Instant::now() < deadline {
                        let (_, v) = validate();
                        assert_eq!(v, verdict, "the verdict changed between runs");
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
    };
    run(Duration::from_secs(1), Arc::new(AtomicU64::new(0)));
    let (started, cpu) = (Instant::now(), ProcessTime::now());
    run(Duration::from_secs(seconds), count.clone());
    let (elapsed, cpu) = (started.elapsed(), cpu.elapsed());
    let n = count.load(Ordering::Relaxed);
    println!("{:.0} {n} {:.3} exit={code} {verdict}", n as f64 / elapsed.as_secs_f64(), cpu.as_secs_f64() * 1000.0 / n.max(1) as f64);
}
