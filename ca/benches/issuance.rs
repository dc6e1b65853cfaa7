//! Certificate issuances per second: ES256 issuing key in the soft key store, SQLite,
//! `citizen-authentication` profile, from a PKCS#10 request (signature verified each time).
//! Run: `cargo bench -p ca --bench issuance` (or `./scripts/bench`). With `-- --audit`,
//! every issuance is also an entry of the audit log in the same store, as in a server (the
//! `tracing` layer and the recorder): `./scripts/bench-audit` runs both.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Instant;

use ca::ceremony::{AuthorityConfig, CeremonyConfig};
use ca::{IssueRequest, Subject};
use hsm_shim::signer::StoredKeySigner;
use hsm_shim::soft::{OperatorSecret, SoftKeyStore};
use hsm_shim::{KeySpec, KeyStore};
use store::DurableConfig;

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = OperatorSecret::new(b"benchmark operator secret".to_vec()).expect("secret");
    let keys: Arc<dyn KeyStore> = Arc::new(SoftKeyStore::open_or_create(&dir.path().join("keys"), &secret).expect("keys"));
    let store = store::open(&DurableConfig::Sqlite { path: dir.path().join("hawiya.db") }).await.expect("store");
    let a = |cn: &str, key: &str| AuthorityConfig { common_name: cn.into(), key: key.into() };
    let config = CeremonyConfig {
        country: "JO".into(),
        organization: "Hawiya Bench".into(),
        base_url: "http://pki.hawiya.jo".into(),
        root: a("Root", "ec-p384"),
        citizen_authentication_ca: a("Authentication CA", "ec-p256"),
        citizen_signing_ca: a("Signing CA", "ec-p256"),
        services_ca: a("Services CA", "ec-p256"),
        ocsp_responder: a("OCSP", "ec-p256"),
        tsa: a("TSA", "ec-p256"),
        validation_service: None,
    };
    let audited = std::env::args().any(|a| a == "--audit");
    if audited {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::{Layer, filter};
        let layer = store::audit::layer::AuditLayer.with_filter(filter::filter_fn(store::audit::layer::filter));
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer)).expect("subscriber");
        store::audit::layer::start(store.clone(), "bench".into());
    }
    let policies = Arc::new(policies::Policies::shipped().expect("policies"));
    let authority = Arc::new(ca::ceremony::run(&config, keys.clone(), store, policies).await.expect("ceremony"));
    let device = keys.generate(KeySpec::EcP256, "device").expect("key");
    let signer = StoredKeySigner::new(keys, device, KeySpec::EcP256.default_algorithm()).expect("signer");
    let csr = rcgen::CertificateParams::default().serialize_request(&signer).expect("csr").der().to_vec();
    let subject = Subject::NaturalPerson {
        given_name: "Omar".into(),
        surname: "Khalil".into(),
        national_id: "2000123456".parse().expect("a national id"),
        country: "JO".into(),
    };

    for (total, in_flight) in [(2_000usize, 1usize), (20_000, 64), (20_000, 256)] {
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        let per_task = total / in_flight;
        for _ in 0..in_flight {
            let authority = authority.clone();
            let req = IssueRequest { profile: "citizen-authentication".into(), csr: csr.clone(), subject: subject.clone() };
            tasks.spawn(async move {
                for _ in 0..per_task {
                    authority.issue(&req).await.expect("issue");
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.expect("task");
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "issuance: {total} certificates, {in_flight} in flight: {:.0}/s ({:.1} s){}",
            total as f64 / secs,
            secs,
            if audited { ", audit log on" } else { "" }
        );
    }
    store::audit::layer::flush().await.expect("the audit log");
}
