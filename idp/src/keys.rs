//! The provider's signing keys: one per algorithm in use, kept in the key store, listed in the
//! durable store with the time each starts signing.
//!
//! A new key is published (in the JWKS) as soon as it is made and signs only from its
//! `active_from`, so relying parties that cache the JWKS have it before they meet it. A key
//! stays published until every token it signed has expired.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hsm_shim::jose::{self, UnverifiedJws};
use hsm_shim::signer::StoredKeySigner;
use hsm_shim::{KeySpec, KeyStore, PublicKey, SignatureAlgorithm};
use serde_json::{Map, Value, json};
use store::{IdpStore, SigningKeyRecord};

use crate::IdpError;

/// What a key of the provider is for: each purpose has its own keys and rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyPurpose {
    /// Signing id_tokens and logout tokens (published in the JWKS).
    IdpSigning,
}

impl KeyPurpose {
    /// Every purpose.
    pub const ALL: [KeyPurpose; 1] = [KeyPurpose::IdpSigning];

    /// The name under which its keys are stored and which the CLI takes.
    pub const fn as_str(self) -> &'static str {
        match self {
            KeyPurpose::IdpSigning => "idp-signing",
        }
    }
}

impl std::fmt::Display for KeyPurpose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is no key purpose.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a key purpose is one of: {}", KeyPurpose::ALL.map(KeyPurpose::as_str).join(", "))]
pub struct UnknownKeyPurpose;

impl std::str::FromStr for KeyPurpose {
    type Err = UnknownKeyPurpose;

    fn from_str(s: &str) -> Result<Self, UnknownKeyPurpose> {
        KeyPurpose::ALL.into_iter().find(|p| p.as_str() == s).ok_or(UnknownKeyPurpose)
    }
}

/// The purpose under which id_token keys are stored.
const PURPOSE: &str = KeyPurpose::IdpSigning.as_str();

/// The algorithms the provider signs id_tokens with; RS256 is mandatory (OIDC Core 15.1).
pub const ALGORITHMS: [SignatureAlgorithm; 4] = [SignatureAlgorithm::Rs256, SignatureAlgorithm::Ps256, SignatureAlgorithm::Es256, SignatureAlgorithm::EdDsa];

/// How often a process re-reads the key list (to see a rotation made by another process).
const RELOAD: Duration = Duration::from_secs(10);

fn key_spec(algorithm: SignatureAlgorithm) -> KeySpec {
    match algorithm {
        SignatureAlgorithm::Rs256 | SignatureAlgorithm::Ps256 => KeySpec::Rsa2048,
        SignatureAlgorithm::Es384 => KeySpec::EcP384,
        SignatureAlgorithm::EdDsa => KeySpec::Ed25519,
        SignatureAlgorithm::Es256 => KeySpec::EcP256,
    }
}

struct Loaded {
    record: SigningKeyRecord,
    algorithm: SignatureAlgorithm,
    public: PublicKey,
    jwk: Value,
    signer: StoredKeySigner,
}

struct KeySet {
    loaded_at: Instant,
    keys: Vec<Arc<Loaded>>,
}

/// The signing keys, cached and reloaded now and then.
pub struct SigningKeys {
    key_store: Arc<dyn KeyStore>,
    durable: Arc<dyn IdpStore>,
    /// How long a retired key stays published: the longest lifetime of what it signs.
    retention: Duration,
    set: RwLock<KeySet>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeys").field("retention", &self.retention).finish_non_exhaustive()
    }
}

/// The RFC 7638 thumbprint of a public JWK: the key id.
fn thumbprint(jwk: &Value) -> String {
    let s = |k: &str| jwk.get(k).and_then(Value::as_str).unwrap_or_default();
    let canonical = match s("kty") {
        "EC" => format!(r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#, s("crv"), s("x"), s("y")),
        "OKP" => format!(r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#, s("crv"), s("x")),
        _ => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, s("e"), s("n")),
    };
    B64.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()))
}

impl SigningKeys {
    /// Loads the keys, making one for every algorithm that has none (a first start): those
    /// sign at once, since nobody can hold tokens from an earlier key.
    pub async fn open(key_store: Arc<dyn KeyStore>, durable: Arc<dyn IdpStore>, retention: Duration, now: i64) -> Result<Self, IdpError> {
        let existing = durable.signing_keys(PURPOSE).await?;
        for algorithm in ALGORITHMS {
            if !existing.iter().any(|k| k.algorithm == algorithm.name()) {
                Self::generate(key_store.as_ref(), durable.as_ref(), algorithm, now, now).await?;
            }
        }
        let keys = SigningKeys { key_store, durable, retention, set: RwLock::new(KeySet { loaded_at: Instant::now(), keys: Vec::new() }) };
        keys.reload().await?;
        Ok(keys)
    }

    /// Makes a new key for every algorithm, published now and signing from
    /// `now + publish_delay`; the keys they replace sign until then. Returns the new key ids.
    pub async fn rotate(&self, now: i64, publish_delay: Duration) -> Result<Vec<String>, IdpError> {
        let existing = self.durable.signing_keys(PURPOSE).await?;
        let mut kids = Vec::new();
        for algorithm in ALGORITHMS {
            // Strictly after the key it replaces, even within the same second, so that
            // which key signs is never a tie.
            let latest = existing.iter().filter(|k| k.algorithm == algorithm.name()).map(|k| k.active_from).max();
            let active_from = (now + publish_delay.as_secs() as i64).max(latest.map_or(i64::MIN, |l| l + 1));
            kids.push(Self::generate(self.key_store.as_ref(), self.durable.as_ref(), algorithm, now, active_from).await?);
        }
        self.reload().await?;
        Ok(kids)
    }

    async fn generate(key_store: &dyn KeyStore, durable: &dyn IdpStore, algorithm: SignatureAlgorithm, now: i64, active_from: i64) -> Result<String, IdpError> {
        let mut random = [0u8; 6];
        aws_lc_rs::rand::fill(&mut random).map_err(|_| IdpError::Crypto("random"))?;
        let label = format!("{PURPOSE}-{}-{now}-{}", algorithm.name().to_lowercase(), hex::encode(random));
        let key = key_store.generate(key_spec(algorithm), &label)?;
        let public = key_store.public_key(&key)?;
        let mut jwk = jose::jwk(&public, "", algorithm)?;
        let kid = thumbprint(&jwk);
        jwk["kid"] = kid.clone().into();
        durable
            .insert_signing_key(&SigningKeyRecord {
                kid: kid.clone(),
                purpose: PURPOSE.into(),
                key: key.to_string(),
                algorithm: algorithm.name().into(),
                public_jwk: jwk.to_string(),
                created_at: now,
                active_from,
            })
            .await?;
        tracing::info!(target: "audit", event = "key.generated", purpose = PURPOSE, kid, key = %key, algorithm = algorithm.name(), active_from, "made an id_token signing key");
        Ok(kid)
    }

    async fn reload(&self) -> Result<(), IdpError> {
        let records = self.durable.signing_keys(PURPOSE).await?;
        let mut keys = Vec::with_capacity(records.len());
        for record in records {
            let algorithm = jose::algorithm_named(&record.algorithm)?;
            let key_ref = record.key.parse().map_err(|e: hsm_shim::Error| IdpError::Keys(e.to_string()))?;
            let signer = StoredKeySigner::new(self.key_store.clone(), key_ref, algorithm)?;
            let jwk: Value = serde_json::from_str(&record.public_jwk).map_err(|e| IdpError::Keys(e.to_string()))?;
            keys.push(Arc::new(Loaded { public: signer.public_key().clone(), record, algorithm, jwk, signer }));
        }
        let mut set = self.set.write().map_err(|_| IdpError::Keys("key set lock poisoned".into()))?;
        *set = KeySet { loaded_at: Instant::now(), keys };
        Ok(())
    }

    async fn keys(&self) -> Result<Vec<Arc<Loaded>>, IdpError> {
        let stale = self.set.read().map_err(|_| IdpError::Keys("key set lock poisoned".into()))?.loaded_at.elapsed() > RELOAD;
        if stale {
            self.reload().await?;
        }
        Ok(self.set.read().map_err(|_| IdpError::Keys("key set lock poisoned".into()))?.keys.clone())
    }

    /// The key that signs with `algorithm` at `now`: the newest one already active.
    async fn active(&self, algorithm: SignatureAlgorithm, now: i64) -> Result<Arc<Loaded>, IdpError> {
        self.keys()
            .await?
            .into_iter()
            .filter(|k| k.algorithm == algorithm && k.record.active_from <= now)
            .max_by_key(|k| (k.record.active_from, k.record.created_at))
            .ok_or_else(|| IdpError::Keys(format!("no active {} key", algorithm.name())))
    }

    /// Signs `claims` as a JWT with the active key of `algorithm`; `typ` names the token
    /// type when it is not an id_token (`logout+jwt`).
    pub async fn sign(&self, algorithm: SignatureAlgorithm, claims: &Value, typ: Option<&str>, now: i64) -> Result<String, IdpError> {
        let key = self.active(algorithm, now).await?;
        let mut header = Map::new();
        if let Some(typ) = typ {
            header.insert("typ".into(), typ.into());
        }
        let payload = serde_json::to_vec(claims).map_err(|e| IdpError::Keys(e.to_string()))?;
        Ok(jose::sign_compact(&key.signer, &key.record.kid, header, &payload)?)
    }

    /// The published key set: every key made so far, except those replaced more than the
    /// retention period ago.
    pub async fn jwks(&self, now: i64) -> Result<Value, IdpError> {
        let keys = self.keys().await?;
        let retention = self.retention.as_secs() as i64;
        let published = keys.iter().filter(|k| {
            // Replaced when a newer key of the same algorithm became active.
            let replaced_at = keys
                .iter()
                .filter(|n| n.algorithm == k.algorithm && n.record.active_from > k.record.active_from && n.record.active_from <= now)
                .map(|n| n.record.active_from)
                .min();
            replaced_at.is_none_or(|at| at + retention > now)
        });
        Ok(json!({ "keys": published.map(|k| k.jwk.clone()).collect::<Vec<_>>() }))
    }

    /// Verifies a JWT this provider signed (an `id_token_hint`), with any key it ever made,
    /// and returns its claims. Expiry is the caller's question.
    pub async fn verify_own(&self, jwt: &str) -> Result<Value, IdpError> {
        let jws = UnverifiedJws::parse(jwt)?;
        let keys = self.keys().await?;
        let key = keys.iter().find(|k| Some(k.record.kid.as_str()) == jws.kid()).ok_or(IdpError::Keys("unknown key id".into()))?;
        jws.verify(&key.public, Some(key.algorithm))?;
        serde_json::from_slice(&jws.payload).map_err(|_| IdpError::Keys("token payload is not JSON".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hsm_shim::soft::{OperatorSecret, SoftKeyStore};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rotation_publishes_first_signs_later_and_retires_after_retention() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = OperatorSecret::new(b"unit test secret, not for production".to_vec()).expect("secret");
        let key_store: Arc<dyn KeyStore> = Arc::new(SoftKeyStore::open_or_create(&dir.path().join("keys"), &secret).expect("key store"));
        let durable: Arc<dyn IdpStore> = Arc::new(store::SqliteStore::open(&dir.path().join("db")).expect("db"));
        let retention = Duration::from_secs(600);
        let keys = SigningKeys::open(key_store, durable, retention, 1_000).await.expect("open");
        let kid_of = |jwt: &str| UnverifiedJws::parse(jwt).expect("jws").kid().expect("kid").to_owned();
        let claims = json!({"iss": "x"});
        let old = kid_of(&keys.sign(SignatureAlgorithm::Es256, &claims, None, 1_000).await.expect("sign"));
        assert_eq!(keys.jwks(1_000).await.expect("jwks")["keys"].as_array().expect("keys").len(), ALGORITHMS.len());

        // Same second, no delay: the new key still wins strictly after the old one.
        keys.rotate(1_000, Duration::ZERO).await.expect("rotate");
        assert_eq!(kid_of(&keys.sign(SignatureAlgorithm::Es256, &claims, None, 1_000).await.expect("sign")), old, "not active yet");
        let new = kid_of(&keys.sign(SignatureAlgorithm::Es256, &claims, None, 1_001).await.expect("sign"));
        assert_ne!(new, old);
        // Published together until the old key's tokens have expired.
        let published = |jwks: Value| jwks["keys"].as_array().expect("keys").iter().filter_map(|k| k["kid"].as_str().map(str::to_owned)).collect::<Vec<_>>();
        let both = published(keys.jwks(1_001 + 599).await.expect("jwks"));
        assert!(both.contains(&old) && both.contains(&new) && both.len() == 2 * ALGORITHMS.len());
        let later = published(keys.jwks(1_001 + 600).await.expect("jwks"));
        assert!(!later.contains(&old) && later.contains(&new) && later.len() == ALGORITHMS.len());
        // A hint signed by the retired key still verifies (logout with an old id_token).
        let hint = keys.sign(SignatureAlgorithm::Rs256, &claims, None, 1_000).await.expect("sign");
        assert_eq!(keys.verify_own(&hint).await.expect("verifies")["iss"], "x");
    }

    #[test]
    fn thumbprints_follow_rfc_7638() {
        // RFC 7638 section 3.1's example key and thumbprint.
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(thumbprint(&jwk), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }
}
