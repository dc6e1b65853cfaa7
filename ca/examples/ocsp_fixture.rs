//! Fills a data directory's SQLite store with synthetic certificate records and writes OCSP
//! requests for them, for `scripts/bench`: `ocsp_fixture <hawiya.db> <issuer.pem> <count> <out dir>`.
//!
//! Writes `requests.bin` and `requests-nonce.bin` (fixed-size DER requests, one after the
//! other, for wrk), `index.txt` (the same certificates for the `openssl ocsp` responder)
//! and prints the request sizes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::Arc;

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use der::asn1::{ObjectIdentifier, OctetString};
use der::{DecodePem, Encode};
use store::{CaStore, NewCertificate, RevocationReason, Serial, SqliteStore};
use x509_ocsp::{CertId, OcspRequest, Request, TbsRequest};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, db, issuer, count, out] = args.as_slice() else {
        eprintln!("usage: ocsp_fixture <hawiya.db> <issuer.pem> <count> <out dir>");
        std::process::exit(2);
    };
    let count: usize = count.parse().expect("count");
    let out = std::path::Path::new(out);
    let store: Arc<dyn CaStore> = Arc::new(SqliteStore::open(std::path::Path::new(db)).expect("open store"));
    let issuer = x509_cert::Certificate::from_pem(std::fs::read(issuer).expect("read issuer")).expect("issuer PEM");
    let rng = SystemRandom::new();

    let mut serials = Vec::with_capacity(count);
    for _ in 0..count {
        let mut b = vec![0u8; 16];
        rng.fill(&mut b).expect("random");
        b[0] = (b[0] & 0x7f) | 0x40;
        serials.push(Serial::new(b).expect("serial"));
    }
    let started = std::time::Instant::now();
    let now = 1_790_000_000;
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in serials.chunks(count.div_ceil(256).max(1)) {
        let store = store.clone();
        let chunk = chunk.to_vec();
        tasks.spawn(async move {
            for serial in chunk {
                let c = NewCertificate {
                    serial,
                    issuer: "citizen-authentication-ca".into(),
                    profile: "citizen-authentication".into(),
                    subject: "CN=Synthetic Citizen".into(),
                    not_before: now,
                    not_after: now + 5 * 365 * 86400,
                    der: vec![0x30, 0x00],
                    issued_at: now,
                };
                store.insert_certificate(&c).await.expect("insert");
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("task");
    }
    // One in a hundred revoked.
    for serial in serials.iter().step_by(100) {
        store.revoke(serial, RevocationReason::KeyCompromise, now + 86400).await.expect("revoke");
    }
    eprintln!("stored {count} certificates in {:.1?}", started.elapsed());

    let mut index = std::io::BufWriter::new(std::fs::File::create(out.join("index.txt")).expect("index"));
    for (i, s) in serials.iter().enumerate() {
        let hex = s.to_string().to_uppercase();
        if i % 100 == 0 {
            writeln!(index, "R\t310101000000Z\t270101000000Z,keyCompromise\t{hex}\tunknown\t/CN=Synthetic Citizen {i}").expect("write");
        } else {
            writeln!(index, "V\t310101000000Z\t\t{hex}\tunknown\t/CN=Synthetic Citizen {i}").expect("write");
        }
    }
    index.flush().expect("flush");

    let sha1 = |d: &[u8]| digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, d).as_ref().to_vec();
    let name_hash = sha1(&issuer.tbs_certificate.subject.to_der().expect("der"));
    let key_hash = sha1(issuer.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes());
    for (file, with_nonce) in [("requests.bin", false), ("requests-nonce.bin", true)] {
        let mut bytes = Vec::new();
        let mut size = 0;
        for i in 0..10_000 {
            let serial = &serials[(i * 7919) % serials.len()];
            let id = CertId {
                hash_algorithm: spki::AlgorithmIdentifierOwned { oid: ObjectIdentifier::new_unwrap("1.3.14.3.2.26"), parameters: Some(der::asn1::Null.into()) },
                issuer_name_hash: OctetString::new(name_hash.clone()).expect("hash"),
                issuer_key_hash: OctetString::new(key_hash.clone()).expect("hash"),
                serial_number: x509_cert::serial_number::SerialNumber::new(serial.as_bytes()).expect("serial"),
            };
            let request_extensions = with_nonce.then(|| {
                let mut nonce = [0u8; 16];
                rng.fill(&mut nonce).expect("random");
                vec![x509_cert::ext::Extension {
                    extn_id: ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2"),
                    critical: false,
                    extn_value: OctetString::new(OctetString::new(nonce.to_vec()).expect("nonce").to_der().expect("der")).expect("octets"),
                }]
            });
            let der = OcspRequest {
                tbs_request: TbsRequest {
                    version: x509_ocsp::Version::V1,
                    requestor_name: None,
                    request_list: vec![Request { req_cert: id, single_request_extensions: None }],
                    request_extensions,
                },
                optional_signature: None,
            }
            .to_der()
            .expect("der");
            assert!(size == 0 || der.len() == size, "requests must all have one size");
            size = der.len();
            bytes.extend(der);
        }
        std::fs::write(out.join(file), bytes).expect("write requests");
        println!("{file} {size}");
    }
}
