//! One conformance suite for every durable backend (SQLite and a real PostgreSQL, in
//! plaintext and over verified TLS), for what
//! the CA keeps and for what the OpenID Connect provider keeps.
// Test code: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod each_backend;

use std::sync::Arc;

use store::*;

struct Backend {
    store: Arc<dyn DurableStore>,
    _dir: tempfile::TempDir,
}

async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store::open(&DurableConfig::Sqlite { path: dir.path().join("hawiya.db") }).await.expect("open");
    Backend { store, _dir: dir }
}

/// A fresh database on the throw-away server `./scripts/test` starts.
async fn postgres() -> Backend {
    let url = hawiya_e2e::postgres_database();
    let store = store::open(&DurableConfig::Postgres { url, connections: 2 }).await.expect("open");
    Backend { store, _dir: tempfile::tempdir().expect("tempdir") }
}

/// A fresh database on the TLS-only server `./scripts/test` starts (its `pg_hba.conf` has
/// `hostssl` lines only: a connection that opens is a verified TLS one).
async fn postgres_tls() -> Backend {
    let url = hawiya_e2e::postgres_tls_database();
    let store = store::open(&DurableConfig::Postgres { url, connections: 2 }).await.expect("open over TLS");
    Backend { store, _dir: tempfile::tempdir().expect("tempdir") }
}

fn cert(serial: u8, issuer: &str) -> NewCertificate {
    NewCertificate {
        serial: Serial::new(vec![0x01, serial]).expect("serial"),
        issuer: issuer.into(),
        profile: "citizen-authentication".into(),
        subject: format!("CN=Citizen {serial}"),
        not_before: 1_700_000_000,
        not_after: 1_800_000_000,
        der: vec![0x30, serial],
        issued_at: 1_700_000_000 + i64::from(serial),
    }
}

async fn answers_a_ping_without_changing_anything(b: Backend) {
    let s = &b.store;
    s.ping().await.expect("ping an empty store");
    s.insert_certificate(&cert(9, "ca-a")).await.expect("insert");
    s.ping().await.expect("ping");
    assert_eq!(s.count().await.expect("count"), 1, "a ping writes nothing");
    assert_eq!(s.list(None, 10).await.expect("list").len(), 1);
}

async fn stores_and_reads_certificates(b: Backend) {
    let s = &b.store;
    let c = cert(1, "ca-a");
    s.insert_certificate(&c).await.expect("insert");
    let record = s.certificate(&c.serial).await.expect("read").expect("present");
    assert_eq!(record.certificate, c);
    assert_eq!(record.status, CertificateStatus::Good);
    assert_eq!(s.status("ca-a", &c.serial).await.expect("status"), Some(CertificateStatus::Good));
    assert_eq!(s.status("ca-b", &c.serial).await.expect("status"), None, "another issuer's serial is unknown");
    assert_eq!(s.count().await.expect("count"), 1);
}

async fn refuses_duplicate_serials_and_keeps_the_first(b: Backend) {
    let s = &b.store;
    let c = cert(2, "ca-a");
    s.insert_certificate(&c).await.expect("insert");
    let mut other = cert(2, "ca-b");
    other.subject = "CN=Impostor".into();
    assert!(matches!(s.insert_certificate(&other).await, Err(StoreError::DuplicateSerial(_))));
    assert_eq!(s.certificate(&c.serial).await.expect("read").expect("present").certificate, c);
    assert_eq!(s.count().await.expect("count"), 1);
}

async fn revokes_holds_and_releases(b: Backend) {
    let s = &b.store;
    let (a, h, u) = (cert(3, "ca"), cert(4, "ca"), cert(5, "ca"));
    for c in [&a, &h, &u] {
        s.insert_certificate(c).await.expect("insert");
    }
    let r = s.revoke(&a.serial, RevocationReason::KeyCompromise, 1_750_000_000).await.expect("revoke");
    assert_eq!(r.status, CertificateStatus::Revoked { reason: RevocationReason::KeyCompromise, at: 1_750_000_000 });
    match s.revoke(&a.serial, RevocationReason::Superseded, 1).await {
        Err(StoreError::AlreadyRevoked { reason: RevocationReason::KeyCompromise, .. }) => {}
        other => panic!("expected AlreadyRevoked, got {other:?}"),
    }
    assert!(matches!(s.release(&a.serial).await, Err(StoreError::NotOnHold(_))));

    s.revoke(&h.serial, RevocationReason::CertificateHold, 1_750_000_001).await.expect("hold");
    assert!(matches!(s.revoke(&h.serial, RevocationReason::CertificateHold, 2).await, Err(StoreError::AlreadyOnHold(_))));
    assert!(s.status("ca", &h.serial).await.expect("status").expect("present").on_hold());
    assert_eq!(s.release(&h.serial).await.expect("release").status, CertificateStatus::Good);
    assert!(matches!(s.release(&h.serial).await, Err(StoreError::NotOnHold(_))));
    s.revoke(&h.serial, RevocationReason::CertificateHold, 3).await.expect("hold again");
    s.revoke(&h.serial, RevocationReason::CessationOfOperation, 4).await.expect("a hold may become a revocation");

    let missing = Serial::new(vec![0x7f; 16]).expect("serial");
    assert!(matches!(s.revoke(&missing, RevocationReason::Unspecified, 5).await, Err(StoreError::UnknownSerial(_))));
    assert!(matches!(s.release(&missing).await, Err(StoreError::UnknownSerial(_))));

    let revoked = s.revoked("ca").await.expect("revoked");
    assert_eq!(revoked.len(), 2);
    assert!(revoked.iter().any(|e| e.serial == h.serial && e.reason == RevocationReason::CessationOfOperation && e.at == 4));
    assert_eq!(s.status("ca", &u.serial).await.expect("status"), Some(CertificateStatus::Good));
}

async fn lists_newest_first(b: Backend) {
    let s = &b.store;
    for i in 10..15 {
        s.insert_certificate(&cert(i, if i % 2 == 0 { "even" } else { "odd" })).await.expect("insert");
    }
    let all = s.list(None, 100).await.expect("list");
    let serials: Vec<u8> = all.iter().map(|r| r.certificate.serial.as_bytes()[1]).collect();
    assert_eq!(serials, [14, 13, 12, 11, 10]);
    assert_eq!(s.list(Some("even"), 100).await.expect("list").len(), 3);
    assert_eq!(s.list(None, 2).await.expect("list").len(), 2);
}

async fn numbers_crls_and_keeps_the_newest(b: Backend) {
    let s = &b.store;
    assert_eq!(s.next_crl_number("a").await.expect("n"), 1);
    assert_eq!(s.next_crl_number("a").await.expect("n"), 2);
    assert_eq!(s.next_crl_number("b").await.expect("n"), 1);
    let crl = |number| PublishedCrl { issuer: "a".into(), number, this_update: 1, next_update: 2, der: vec![number as u8] };
    s.put_crl(&crl(2)).await.expect("put");
    s.put_crl(&crl(1)).await.expect("an older CRL is ignored");
    assert_eq!(s.latest_crl("a").await.expect("get"), Some(crl(2)));
    assert_eq!(s.latest_crl("b").await.expect("get"), None);
}

async fn records_one_ceremony_only(b: Backend) {
    let s = &b.store;
    assert_eq!(s.ceremony().await.expect("read"), None);
    let record = CeremonyRecord {
        performed_at: "2026-11-23T00:00:00Z".into(),
        country: "JO".into(),
        base_url: "http://127.0.0.1:8080".into(),
        authorities: vec![AuthorityRecord {
            name: "root".into(),
            profile: "root-ca".into(),
            issuer: "root".into(),
            key: "soft:root".into(),
            algorithm: "ES384".into(),
            certificate: "3000".into(),
        }],
        renewals: Vec::new(),
    };
    s.put_ceremony(&record).await.expect("first");
    let mut second = record.clone();
    second.country = "QA".into();
    assert!(matches!(s.put_ceremony(&second).await, Err(StoreError::CeremonyExists(when)) if when == record.performed_at));
    assert_eq!(s.ceremony().await.expect("read"), Some(record));
}

async fn updates_the_ceremony_only_from_what_it_holds(b: Backend) {
    let s = &b.store;
    let record = CeremonyRecord {
        performed_at: "2026-11-23T00:00:00Z".into(),
        country: "JO".into(),
        base_url: "http://127.0.0.1:8080".into(),
        authorities: Vec::new(),
        renewals: Vec::new(),
    };
    let added = [cert(0x51, "root"), cert(0x52, "citizen-authentication-ca-2")];
    // Nothing to update before the ceremony.
    assert!(matches!(s.update_ceremony(&record, &record, &added).await, Err(StoreError::CeremonyChanged)));
    assert_eq!(s.ceremony().await.expect("read"), None);
    assert_eq!(s.count().await.expect("count"), 0);
    s.put_ceremony(&record).await.expect("ceremony");
    let mut renewed = record.clone();
    renewed.renewals.push(store::RenewalRecord {
        performed_at: "2026-11-24T00:00:00Z".into(),
        ca: "citizen-authentication-ca".into(),
        generation: "citizen-authentication-ca-2".into(),
        replaces: "citizen-authentication-ca".into(),
    });
    // A certificate already stored refuses the whole update.
    s.insert_certificate(&cert(0x53, "root")).await.expect("insert");
    let clash = [cert(0x54, "root"), cert(0x53, "root")];
    assert!(matches!(s.update_ceremony(&record, &renewed, &clash).await, Err(StoreError::DuplicateSerial(serial)) if serial.as_bytes() == [0x01, 0x53]));
    assert_eq!(s.ceremony().await.expect("read"), Some(record.clone()));
    assert_eq!(s.count().await.expect("count"), 1);
    s.update_ceremony(&record, &renewed, &added).await.expect("renewal");
    assert_eq!(s.ceremony().await.expect("read"), Some(renewed.clone()));
    assert_eq!(s.list(Some("citizen-authentication-ca-2"), 10).await.expect("list").len(), 1);
    assert_eq!(s.count().await.expect("count"), 3);
    // A second update made from the old record (a concurrent renewal) changes nothing.
    let mut other = record.clone();
    other.country = "QA".into();
    let late = [cert(0x55, "root")];
    assert!(matches!(s.update_ceremony(&record, &other, &late).await, Err(StoreError::CeremonyChanged)));
    assert_eq!(s.ceremony().await.expect("read"), Some(renewed));
    assert_eq!(s.count().await.expect("count"), 3);
}

async fn records_timestamps_all_or_none(b: Backend) {
    let s = &b.store;
    let record = |serial: u8| TimestampRecord {
        serial: Serial::new(vec![0x11, serial]).expect("serial"),
        gen_time: 1_764_000_000,
        hash_algorithm: "sha256".into(),
        imprint: vec![serial; 32],
        policy: "2.16.400.1.1.2.1".into(),
        requester: "127.0.0.1".into(),
    };
    s.record_timestamps(&[record(1), record(2)]).await.expect("a group");
    assert_eq!(s.timestamp(&record(2).serial).await.expect("read"), Some(record(2)));
    // A group with one serial already recorded leaves nothing of itself behind.
    let refused = s.record_timestamps(&[record(3), record(1)]).await;
    assert!(matches!(&refused, Err(StoreError::DuplicateSerial(serial)) if *serial == record(1).serial), "{refused:?}");
    assert_eq!(s.timestamp(&record(3).serial).await.expect("read"), None);
    assert_eq!(s.timestamp(&record(1).serial).await.expect("read"), Some(record(1)));
}

async fn records_signatures(b: Backend) {
    let s = &b.store;
    let record = |id: &str, at: i64| SignatureRecord {
        id: id.into(),
        national_id: "2000123456".into(),
        client_id: "hawiya-sign".into(),
        document_name: "عقد إيجار.pdf".into(),
        document_sha256: "ab".repeat(32),
        format: "PAdES-BASELINE-LT".into(),
        certificate_serial: "5e5c".into(),
        signed_at: at,
    };
    s.record_signature(&record("s1", 10)).await.expect("first");
    s.record_signature(&record("s2", 20)).await.expect("second");
    assert!(matches!(s.record_signature(&record("s1", 30)).await, Err(StoreError::DuplicateToken)));
    assert_eq!(s.signatures_of("2000123456").await.expect("read"), [record("s2", 20), record("s1", 10)]);
    assert!(s.signatures_of("2000999999").await.expect("read").is_empty());
}

async fn resolves_pairwise_subjects_per_sector(b: Backend) {
    let s = &b.store;
    s.put_subject("notary.example.jo", "sub-1", "citizen-a").await.expect("put");
    // Written again (another token exchange): kept, and never moved to another citizen.
    s.put_subject("notary.example.jo", "sub-1", "citizen-a").await.expect("again");
    s.put_subject("notary.example.jo", "sub-1", "citizen-b").await.expect("ignored");
    s.put_subject("gazette.example.jo", "sub-2", "citizen-a").await.expect("other sector");
    assert_eq!(s.subject_citizen("notary.example.jo", "sub-1").await.expect("read").as_deref(), Some("citizen-a"));
    assert_eq!(s.subject_citizen("gazette.example.jo", "sub-2").await.expect("read").as_deref(), Some("citizen-a"));
    // A subject is only found in its own sector.
    assert_eq!(s.subject_citizen("gazette.example.jo", "sub-1").await.expect("read"), None);
    assert_eq!(s.subject_citizen("notary.example.jo", "sub-2").await.expect("read"), None);
}

async fn concurrent_writers_all_land(b: Backend) {
    let s = b.store.clone();
    let mut tasks = Vec::new();
    for i in 0..200u16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = cert(0, "ca");
            c.serial = Serial::new(vec![0x10, (i >> 8) as u8, i as u8]).expect("serial");
            s.insert_certificate(&c).await
        }));
    }
    // One duplicate among them must fail alone.
    let mut dup = cert(0, "ca");
    dup.serial = Serial::new(vec![0x10, 0, 7]).expect("serial");
    let mut results = vec![s.insert_certificate(&dup).await];
    for t in tasks {
        results.push(t.await.expect("join"));
    }
    let refused: Vec<&StoreError> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        matches!(refused[..], [StoreError::DuplicateSerial(serial)] if *serial == dup.serial),
        "exactly one of the two writes of serial 10:00:07 fails, as a duplicate: {refused:?}"
    );
    assert_eq!(s.count().await.expect("count"), 200);
}

fn citizen_record(n: u8) -> CitizenRecord {
    CitizenRecord {
        id: format!("c{n}"),
        national_id: format!("98612345{n:02}"),
        profile: format!(r#"{{"given_name":{{"ar":"ليلى {n}","en":"Layla {n}"}}}}"#),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        totp_secret: None,
        created_at: 1_750_000_000 + i64::from(n),
    }
}

async fn keeps_citizens(b: Backend) {
    let s = &b.store;
    let layla = citizen_record(1);
    s.insert_citizen(&layla).await.expect("insert");
    assert_eq!(s.citizen(&layla.national_id).await.expect("read"), Some(layla.clone()));
    assert_eq!(s.citizen_by_id("c1").await.expect("read"), Some(layla.clone()));
    assert_eq!(s.citizen("0000").await.expect("read"), None);
    // Arabic survives the round trip byte for byte.
    assert!(s.citizen_by_id("c1").await.expect("read").expect("present").profile.contains("ليلى"));
    // Neither the same national id nor the same id twice; the first record stays.
    let same_national_id = CitizenRecord { id: "other".into(), profile: "{}".into(), ..layla.clone() };
    assert!(matches!(s.insert_citizen(&same_national_id).await, Err(StoreError::DuplicateCitizen(_))));
    let same_id = CitizenRecord { national_id: "1111".into(), ..citizen_record(2) };
    let same_id = CitizenRecord { id: "c1".into(), ..same_id };
    assert!(matches!(s.insert_citizen(&same_id).await, Err(StoreError::DuplicateCitizen(_))));
    assert_eq!(s.citizen(&layla.national_id).await.expect("read"), Some(layla.clone()));
    assert_eq!(s.citizen("1111").await.expect("read"), None);

    s.set_totp(&layla.national_id, Some("JBSWY3DPEHPK3PXP")).await.expect("totp");
    assert_eq!(s.citizen(&layla.national_id).await.expect("read").expect("present").totp_secret.as_deref(), Some("JBSWY3DPEHPK3PXP"));
    s.set_totp(&layla.national_id, None).await.expect("remove totp");
    assert_eq!(s.citizen(&layla.national_id).await.expect("read").expect("present").totp_secret, None);
    assert!(matches!(s.set_totp("0000", Some("X")).await, Err(StoreError::UnknownCitizen(_))));
}

fn refresh_family(id: &str, client: &str, expires_at: i64) -> RefreshFamily {
    RefreshFamily {
        family: id.into(),
        client_id: client.into(),
        citizen_id: "c1".into(),
        grant: r#"{"scope":"openid"}"#.into(),
        generation: 0,
        issued_at: 1_000,
        expires_at,
        ends_at: expires_at.saturating_add(50_000),
        revoked: false,
    }
}

async fn keeps_clients_and_consents(b: Backend) {
    let s = &b.store;
    let rp = ClientRecord { client_id: "civil-status".into(), registration: r#"{"redirect_uris":["https://cs.example/cb"]}"#.into(), created_at: 5 };
    s.insert_client(&rp).await.expect("insert");
    let other = ClientRecord { client_id: "land-registry".into(), registration: "{}".into(), created_at: 6 };
    s.insert_client(&other).await.expect("insert");
    assert!(matches!(s.insert_client(&ClientRecord { registration: "{}".into(), ..rp.clone() }).await, Err(StoreError::DuplicateClient(_))));
    assert_eq!(s.client("civil-status").await.expect("read"), Some(rp.clone()));
    assert_eq!(s.clients().await.expect("list"), vec![rp.clone(), other.clone()]);

    let consent = ConsentRecord { citizen_id: "c1".into(), client_id: "civil-status".into(), grant: r#"["name"]"#.into(), granted_at: 7 };
    s.put_consent(&consent).await.expect("consent");
    let wider = ConsentRecord { grant: r#"["name","birthdate"]"#.into(), granted_at: 8, ..consent.clone() };
    s.put_consent(&wider).await.expect("replace");
    assert_eq!(s.consent("c1", "civil-status").await.expect("read"), Some(wider.clone()));
    s.put_consent(&ConsentRecord { client_id: "land-registry".into(), ..consent.clone() }).await.expect("consent");
    s.put_consent(&ConsentRecord { citizen_id: "c2".into(), ..consent.clone() }).await.expect("another citizen's");
    let land = ConsentRecord { client_id: "land-registry".into(), ..consent.clone() };
    assert_eq!(s.consents_of("c1").await.expect("list"), vec![wider.clone(), land], "a citizen's consents, by client");
    assert_eq!(s.consents_of("nobody").await.expect("list"), vec![]);
    assert!(s.revoke_consent("c1", "land-registry").await.expect("revoke"));
    assert!(!s.revoke_consent("c1", "land-registry").await.expect("revoke twice"));
    assert_eq!(s.consent("c1", "land-registry").await.expect("read"), None);

    // Withdrawing a consent revokes the refresh tokens that citizen gave that client.
    s.put_consent(&ConsentRecord { client_id: "land-registry".into(), ..consent.clone() }).await.expect("consent");
    s.insert_refresh_family(&refresh_family("f0", "land-registry", i64::MAX / 2)).await.expect("family");
    s.insert_refresh_family(&RefreshFamily { citizen_id: "c2".into(), ..refresh_family("f9", "land-registry", i64::MAX / 2) }).await.expect("family");
    assert!(s.revoke_consent("c1", "land-registry").await.expect("revoke"));
    assert!(s.refresh_family("f0").await.expect("read").expect("kept").revoked);
    assert!(!s.refresh_family("f9").await.expect("read").expect("kept").revoked, "another citizen's tokens stay");

    // Removing a client takes its consents and refresh tokens with it, and nobody else's.
    s.insert_refresh_family(&refresh_family("f1", "civil-status", i64::MAX / 2)).await.expect("family");
    s.insert_refresh_family(&refresh_family("f2", "land-registry", i64::MAX / 2)).await.expect("family");
    s.put_consent(&ConsentRecord { client_id: "land-registry".into(), ..consent.clone() }).await.expect("consent");
    assert!(s.remove_client("civil-status").await.expect("remove"));
    assert!(!s.remove_client("civil-status").await.expect("remove twice"));
    assert_eq!(s.client("civil-status").await.expect("read"), None);
    assert_eq!(s.consent("c1", "civil-status").await.expect("read"), None);
    assert_eq!(s.refresh_family("f1").await.expect("read"), None);
    assert!(s.consent("c1", "land-registry").await.expect("read").is_some());
    assert!(s.refresh_family("f2").await.expect("read").is_some());
}

async fn rotates_refresh_tokens_and_detects_reuse(b: Backend) {
    let s = &b.store;
    let first = RefreshFamily { ends_at: 25_000, ..refresh_family("fam", "rp", 10_000) };
    s.insert_refresh_family(&first).await.expect("insert");
    assert!(matches!(s.insert_refresh_family(&first).await, Err(StoreError::DuplicateToken)));
    // A rotation moves the family on one generation; the expiry never passes its end.
    match s.rotate_refresh_family("fam", 0, "rp", 20_000, 2_000).await.expect("rotate") {
        Rotation::Rotated(f) => assert_eq!(f, RefreshFamily { generation: 1, expires_at: 20_000, ..first.clone() }),
        other => panic!("expected a rotation, got {other:?}"),
    }
    match s.rotate_refresh_family("fam", 1, "rp", 40_000, 3_000).await.expect("rotate") {
        Rotation::Rotated(f) => assert_eq!((f.generation, f.expires_at), (2, 25_000)),
        other => panic!("expected a rotation, got {other:?}"),
    }
    let stored = s.refresh_family("fam").await.expect("read").expect("present");
    assert_eq!((stored.generation, stored.expires_at, stored.revoked), (2, 25_000, false));

    // Another client, an unknown family, a generation not yet issued, an expired token:
    // invalid, and nothing changes.
    assert_eq!(s.rotate_refresh_family("fam", 2, "other-rp", 30_000, 3_001).await.expect("rotate"), Rotation::Invalid);
    assert_eq!(s.rotate_refresh_family("nope", 2, "rp", 30_000, 3_001).await.expect("rotate"), Rotation::Invalid);
    assert_eq!(s.rotate_refresh_family("fam", 3, "rp", 30_000, 3_001).await.expect("rotate"), Rotation::Invalid);
    assert_eq!(s.rotate_refresh_family("fam", 2, "rp", 30_000, 25_000).await.expect("rotate"), Rotation::Invalid);
    assert_eq!(s.rotate_refresh_family("fam", 1, "other-rp", 30_000, 3_001).await.expect("rotate"), Rotation::Invalid);
    assert_eq!(s.refresh_family("fam").await.expect("read"), Some(stored.clone()));

    // Presenting an earlier generation again: reuse, and the family is revoked.
    assert_eq!(s.rotate_refresh_family("fam", 0, "rp", 30_000, 3_002).await.expect("rotate"), Rotation::Reused { family: "fam".into() });
    assert!(s.refresh_family("fam").await.expect("read").expect("present").revoked);
    assert_eq!(s.rotate_refresh_family("fam", 2, "rp", 30_000, 3_003).await.expect("rotate"), Rotation::Invalid);
    assert_eq!(s.rotate_refresh_family("fam", 0, "rp", 30_000, 3_003).await.expect("rotate"), Rotation::Invalid);

    // Purging deletes the families whose live token has expired, and nothing else.
    for (id, expires_at) in [("old-1", 2_500), ("old-2", 2_999), ("live", 3_001)] {
        s.insert_refresh_family(&refresh_family(id, "rp", expires_at)).await.expect("insert");
    }
    assert_eq!(s.purge_refresh_families(3_000).await.expect("purge"), 2);
    assert_eq!(s.refresh_family("old-1").await.expect("read"), None);
    assert!(s.refresh_family("live").await.expect("read").is_some());
    assert!(s.refresh_family("fam").await.expect("read").is_some(), "revoked but not yet expired: kept");
    assert_eq!(s.purge_refresh_families(3_000).await.expect("purge again"), 0);

    // Revoking a family by name (a reused authorization code) says whether it did.
    s.insert_refresh_family(&refresh_family("code-1", "rp", 10_000)).await.expect("insert");
    assert!(s.revoke_refresh_family("code-1").await.expect("revoke"));
    assert!(!s.revoke_refresh_family("code-1").await.expect("revoke again"));
    assert!(!s.revoke_refresh_family("unknown").await.expect("revoke unknown"));
}

async fn keeps_signing_keys_in_order(b: Backend) {
    let s = &b.store;
    let key = |kid: &str, created_at: i64| SigningKeyRecord {
        kid: kid.into(),
        purpose: "idp-signing".into(),
        key: format!("soft:{kid}"),
        algorithm: "ES256".into(),
        public_jwk: "{}".into(),
        created_at,
        active_from: created_at + 60,
    };
    s.insert_signing_key(&key("new", 20)).await.expect("insert");
    s.insert_signing_key(&key("old", 10)).await.expect("insert");
    s.insert_signing_key(&SigningKeyRecord { purpose: "other".into(), ..key("x", 5) }).await.expect("insert");
    assert!(matches!(s.insert_signing_key(&key("old", 30)).await, Err(StoreError::DuplicateSigningKey(kid)) if kid == "old"), "a key id is unique");
    let keys = s.signing_keys("idp-signing").await.expect("list");
    assert_eq!(keys, vec![key("old", 10), key("new", 20)]);
}

async fn keeps_one_smart_id_per_citizen(b: Backend) {
    let s = &b.store;
    let record = |national_id: &str, kid: &str, at: i64| SmartIdRecord {
        national_id: national_id.into(),
        custody: "hardware".into(),
        device_kid: kid.into(),
        device_key: format!("{{\"kid\":\"{kid}\"}}"),
        authentication_serial: format!("a{at}"),
        signature_serial: format!("s{at}"),
        activated_at: at,
    };
    assert_eq!(s.smart_id("9000000001").await.expect("read"), None);
    assert_eq!(s.put_smart_id(&record("9000000001", "dev-1", 10)).await.expect("put"), None);
    assert_eq!(s.put_smart_id(&record("9000000002", "dev-2", 11)).await.expect("put"), None);
    assert_eq!(s.smart_id_by_device("dev-1").await.expect("read"), Some(record("9000000001", "dev-1", 10)));
    // A new activation replaces the citizen's smart-ID and hands back the one it replaced.
    let replaced = s.put_smart_id(&record("9000000001", "dev-3", 20)).await.expect("replace");
    assert_eq!(replaced, Some(record("9000000001", "dev-1", 10)));
    assert_eq!(s.smart_id("9000000001").await.expect("read"), Some(record("9000000001", "dev-3", 20)));
    assert_eq!(s.smart_id_by_device("dev-1").await.expect("read"), None, "the replaced device is forgotten");
    // Two citizens never share a device key; the refused write changes nothing.
    assert!(matches!(s.put_smart_id(&record("9000000001", "dev-2", 30)).await, Err(StoreError::DuplicateDevice(kid)) if kid == "dev-2"));
    assert_eq!(s.smart_id("9000000001").await.expect("read"), Some(record("9000000001", "dev-3", 20)));
}

async fn spends_activation_codes_once(b: Backend) {
    let s = &b.store;
    let a = ActivationRecord { code_hash: "h1".into(), national_id: "9000000001".into(), custody: "software".into(), officer: "ra-1".into(), expires_at: 100 };
    s.insert_activation(&a).await.expect("insert");
    assert!(matches!(s.insert_activation(&a).await, Err(StoreError::DuplicateToken)), "a code hash is unique");
    assert_eq!(s.activation("h1", 99).await.expect("read"), Some(a.clone()));
    assert_eq!(s.activation("h1", 100).await.expect("read"), None, "expired");
    assert_eq!(s.take_activation("h1", 100).await.expect("take"), None, "an expired code cannot be spent");
    assert_eq!(s.take_activation("h2", 50).await.expect("take"), None);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move { s.take_activation("h1", 50).await }));
    }
    let mut spent = 0;
    for t in tasks {
        if t.await.expect("task").expect("take").is_some() {
            spent += 1;
        }
    }
    assert_eq!(spent, 1, "one of concurrent activations spends the code");
    assert_eq!(s.activation("h1", 50).await.expect("read"), None);
}

async fn concurrent_rotations_have_one_winner(b: Backend) {
    let s = &b.store;
    s.insert_refresh_family(&refresh_family("fam", "rp", i64::MAX / 2)).await.expect("insert");
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move { s.rotate_refresh_family("fam", 0, "rp", i64::MAX / 2, 5).await }));
    }
    let mut rotated = 0;
    for t in tasks {
        match t.await.expect("task").expect("rotate") {
            Rotation::Rotated(_) => rotated += 1,
            Rotation::Reused { .. } | Rotation::Invalid => {}
        }
    }
    assert_eq!(rotated, 1, "exactly one concurrent rotation wins");
    // The losers presented a generation that had moved on: a reuse, so the family is revoked.
    assert!(s.refresh_family("fam").await.expect("read").expect("present").revoked, "the family must be revoked after concurrent reuse");
}

each_backend! {
    backends: [sqlite, postgres, postgres_tls],
    tests: [
        answers_a_ping_without_changing_anything,
        stores_and_reads_certificates,
        refuses_duplicate_serials_and_keeps_the_first,
        revokes_holds_and_releases,
        lists_newest_first,
        numbers_crls_and_keeps_the_newest,
        records_one_ceremony_only,
        updates_the_ceremony_only_from_what_it_holds,
        records_timestamps_all_or_none,
        records_signatures,
        resolves_pairwise_subjects_per_sector,
        concurrent_writers_all_land,
        keeps_citizens,
        keeps_clients_and_consents,
        rotates_refresh_tokens_and_detects_reuse,
        concurrent_rotations_have_one_winner,
        keeps_signing_keys_in_order,
        keeps_one_smart_id_per_citizen,
        spends_activation_codes_once,
    ],
}

#[test]
fn serials_parse_as_operators_type_them() {
    let s: Serial = "00:9A:bc".parse().expect("openssl style");
    assert_eq!(s.as_bytes(), &[0x00, 0x9a, 0xbc]);
    assert_eq!("9abc".parse::<Serial>().expect("bare"), s);
    assert_eq!("xyz".parse::<Serial>(), Err(r#""xyz" is not a hexadecimal serial number"#.into()));
    assert_eq!(Serial::new(vec![0x80]), Err("negative serial number".into()));
    assert_eq!(Serial::new(vec![0x00, 0x01]), Err("serial number with a superfluous leading zero".into()));
    assert!(matches!("removeFromCRL".parse::<RevocationReason>(), Err(e) if e.starts_with(r#"unknown revocation reason "removeFromCRL""#)));
    assert_eq!("keyCompromise".parse::<RevocationReason>(), Ok(RevocationReason::KeyCompromise));
}
