//! The signing benchmark's load generator (`scripts/bench-signing`): citizens' signatures
//! end to end in one process, as the provider makes them — prepare the document, the device
//! signs (simulated: the citizen's P-256 key in a soft key store), a timestamp from the CA's
//! TSA (recorded in SQLite with synchronous commits), a fresh OCSP response (with a nonce),
//! the B-LT file assembled — on `workers` threads for `seconds`. Prints one line: signatures
//! per second, how many, the process CPU per signature, and the CPU per stage (each worker
//! thread's own time; the SQLite writer's is in the total only).
//!
//! `signing_load <document> <workers> <seconds>`; a document starting with `%PDF-` is signed
//! as PAdES, any other as CAdES.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use ca::ceremony::{AuthorityConfig, CeremonyConfig};
use ca::http::CaState;
use ca::ocsp::OcspResponder;
use ca::tsa::TimestampAuthority;
use ca::{IssueRequest, Subject};
use cpu_time::{ProcessTime, ThreadTime};
use esign::signature::{Chain, Evidence, Signing};
use hsm_shim::soft::{OperatorSecret, SoftKeyStore};
use hsm_shim::{KeySpec, KeyStore, SignatureAlgorithm};
use store::DurableConfig;

// The allocator `hawiya` runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct InProcess(Arc<CaState>);

#[async_trait::async_trait]
impl Evidence for InProcess {
    async fn timestamp(&self, request: Vec<u8>) -> Result<Vec<u8>, String> {
        Ok(self.0.tsa.respond(&request, "bench").await)
    }

    async fn ocsp(&self, request: Vec<u8>) -> Result<Vec<u8>, String> {
        Ok(self.0.ocsp.respond(&request).await.to_vec())
    }
}

/// CPU nanoseconds per stage, summed over the signatures of one worker.
#[derive(Default, Clone, Copy)]
struct Stages {
    prepare: u128,
    device: u128,
    complete: u128,
    count: u64,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, document, workers, seconds] = args.as_slice() else {
        eprintln!("usage: signing_load <document> <workers> <seconds>");
        std::process::exit(2);
    };
    let document = Arc::new(std::fs::read(document).expect("document"));
    let workers: usize = workers.parse().expect("workers");
    let seconds: u64 = seconds.parse().expect("seconds");

    // The CA, its TSA's recorder and the SQLite writer live on this runtime.
    let main = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, citizen, certificate, chain) = main.block_on(async {
        let secret = OperatorSecret::new(b"benchmark operator secret".to_vec()).expect("secret");
        let keys: Arc<dyn KeyStore> = Arc::new(SoftKeyStore::open_or_create(&dir.path().join("keys"), &secret).expect("keys"));
        let store = store::open(&DurableConfig::Sqlite { path: dir.path().join("hawiya.db") }).await.expect("store");
        let policies = Arc::new(policies::Policies::shipped().expect("policies"));
        let a = |cn: &str, key: &str| AuthorityConfig { common_name: cn.into(), key: key.into() };
        let ceremony = CeremonyConfig {
            country: "JO".into(),
            organization: "Hawiya Benchmark PKI".into(),
            base_url: "http://127.0.0.1:8080".into(),
            root: a("Benchmark Root", "ec-p384"),
            citizen_authentication_ca: a("Benchmark Authentication CA", "ec-p256"),
            citizen_signing_ca: a("Benchmark Signing CA", "ec-p256"),
            services_ca: a("Benchmark Services CA", "ec-p256"),
            ocsp_responder: a("Benchmark OCSP", "ec-p256"),
            tsa: a("Benchmark TSA", "ec-p256"),
            validation_service: Some(a("Benchmark Validation Service", "ec-p256")),
        };
        let authority = Arc::new(ca::ceremony::run(&ceremony, keys, store, policies).await.expect("ceremony"));
        // The citizen's device: a P-256 signing key, certified by the Citizen Signing CA.
        let device: Arc<dyn KeyStore> = Arc::new(SoftKeyStore::open_or_create(&dir.path().join("device"), &secret).expect("device"));
        let key = device.generate(KeySpec::EcP256, "smart-id-signature").expect("key");
        let subject = Subject::NaturalPerson {
            given_name: "Layla".into(),
            surname: "Haddad".into(),
            national_id: "9861234567".parse().expect("national id"),
            country: "JO".into(),
        };
        let signer = hsm_shim::signer::StoredKeySigner::new(device.clone(), key.clone(), SignatureAlgorithm::Es256).expect("signer");
        let csr = ca::csr::request(&subject, &signer).expect("csr");
        let issued = authority.issue(&IssueRequest { profile: "citizen-signature".into(), csr: csr.into_bytes(), subject }).await.expect("issue");
        let mut chain = Chain { issuer: authority.certificate(ca::names::CITIZEN_SIGNING).expect("ca").to_vec(), ..Chain::default() };
        for name in [ca::names::ROOT, ca::names::TSA, ca::names::SERVICES, &ca::names::ocsp_responder(ca::names::CITIZEN_SIGNING)] {
            chain.others.push(authority.certificate(name).expect("certificate").to_vec());
        }
        for name in [ca::names::CITIZEN_SIGNING, ca::names::SERVICES, ca::names::ROOT] {
            chain.crls.extend(authority.current_crl(name).await.expect("crl").map(|c| c.der));
        }
        let state = CaState { ocsp: OcspResponder::new(&authority).expect("ocsp"), tsa: TimestampAuthority::new(&authority).expect("tsa"), authority };
        (Arc::new(InProcess(Arc::new(state))), (device, key), issued.der, Arc::new(chain))
    });

    let run = |deadline: Instant, measure: bool| {
        let mut threads = Vec::new();
        for _ in 0..workers {
            let (ca, citizen, certificate, chain, document) = (ca.clone(), citizen.clone(), certificate.clone(), chain.clone(), document.clone());
            threads.push(std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                let mut stages = Stages::default();
                while Instant::now() < deadline {
                    let t0 = ThreadTime::now();
                    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
                    let signing = Signing::prepare(&document, &certificate, now).expect("prepare");
                    let t1 = ThreadTime::now();
                    let signature = citizen.0.sign(&citizen.1, SignatureAlgorithm::Es256, signing.to_be_signed()).expect("device");
                    let t2 = ThreadTime::now();
                    // The server prepares again when the answer comes (it keeps no state between).
                    let again = Signing::prepare(&document, &certificate, now).expect("prepare");
                    let signed = rt.block_on(again.complete(&signature, ca.as_ref(), &chain, false)).expect("complete");
                    let t3 = ThreadTime::now();
                    assert!(signed.len() > 1000);
                    if measure {
                        stages.prepare += (t1.duration_since(t0)).as_nanos();
                        stages.device += (t2.duration_since(t1)).as_nanos();
                        stages.complete += (t3.duration_since(t2)).as_nanos();
                        stages.count += 1;
                    }
                }
                stages
            }));
        }
        threads.into_iter().map(|t| t.join().expect("worker")).fold(Stages::default(), |a, b| Stages {
            prepare: a.prepare + b.prepare,
            device: a.device + b.device,
            complete: a.complete + b.complete,
            count: a.count + b.count,
        })
    };
    // Warm up for a second, then measure.
    run(Instant::now() + Duration::from_secs(1), false);
    let (cpu, started) = (ProcessTime::now(), Instant::now());
    let stages = run(Instant::now() + Duration::from_secs(seconds), true);
    let (elapsed, cpu) = (started.elapsed().as_secs_f64(), cpu.elapsed().as_secs_f64());
    let n = stages.count.max(1) as f64;
    let ms = |ns: u128| ns as f64 / n / 1e6;
    println!(
        "{:.0} {} {:.2} {:.2} {:.2} {:.2}",
        stages.count as f64 / elapsed,
        stages.count,
        cpu * 1000.0 / n,
        ms(stages.prepare),
        ms(stages.device),
        ms(stages.complete)
    );
    drop(main);
}
