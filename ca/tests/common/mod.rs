//! The hierarchy the CA's tests run on: a ceremony on the chosen key store and database.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::Arc;

use ca::Authority;
use ca::ceremony::{AuthorityConfig, CeremonyConfig};
use hsm_shim::KeyStore;
use hsm_shim::pkcs11::{Pin, Pkcs11KeyStore};
use hsm_shim::soft::{OperatorSecret, SoftKeyStore};
use store::DurableConfig;

pub struct Pki {
    pub authority: Arc<Authority>,
    pub keys: Arc<dyn KeyStore>,
    pub store: Arc<dyn store::CaStore>,
    pub policies: Arc<policies::Policies>,
    _dir: tempfile::TempDir,
}

pub fn ceremony() -> CeremonyConfig {
    let a = |cn: &str, key: &str| AuthorityConfig { common_name: cn.into(), key: key.into() };
    CeremonyConfig {
        country: "JO".into(),
        organization: "Hawiya Test PKI".into(),
        base_url: "http://pki.hawiya.jo".into(),
        root: a("Test Root", "ec-p384"),
        citizen_authentication_ca: a("Test Authentication CA", "ec-p256"),
        citizen_signing_ca: a("Test Signing CA", "ec-p256"),
        services_ca: a("Test Services CA", "ec-p256"),
        ocsp_responder: a("Test OCSP", "ec-p256"),
        // P-384: the TSA's tokens are signed with SHA-384, the other path from the CAs'.
        tsa: a("Test TSA", "ec-p384"),
        validation_service: None,
    }
}

pub async fn pki(pkcs11: bool, postgres: bool) -> Pki {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys: Arc<dyn KeyStore> = if pkcs11 {
        let (module, token) = hawiya_e2e::fresh_token();
        Arc::new(Pkcs11KeyStore::open(&module, &token, &Pin::new(hawiya_e2e::PIN.into())).expect("token"))
    } else {
        let secret = OperatorSecret::new(hawiya_e2e::OPERATOR_SECRET.as_bytes().to_vec()).expect("secret");
        Arc::new(SoftKeyStore::open_or_create(&dir.path().join("keys"), &secret).expect("soft store"))
    };
    let config = if postgres {
        DurableConfig::Postgres { url: hawiya_e2e::postgres_database(), connections: 4 }
    } else {
        DurableConfig::Sqlite { path: dir.path().join("hawiya.db") }
    };
    let store = store::open(&config).await.expect("store");
    let policies = Arc::new(policies::Policies::shipped().expect("policies"));
    let store: Arc<dyn store::CaStore> = store;
    let authority = ca::ceremony::run(&ceremony(), keys.clone(), store.clone(), policies.clone()).await.expect("ceremony");
    Pki { authority: Arc::new(authority), keys, store, policies, _dir: dir }
}
