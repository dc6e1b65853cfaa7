//! One conformance suite for every `KeyStore` backend: the soft store and a PKCS#11 token on
//! SoftHSM2. Every signature is also verified by OpenSSL on the exported public key; signatures
//! over a precomputed digest (`sign_digest`) also by `openssl pkeyutl` over the digest alone.
// Test code: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use hawiya_e2e::{PIN, fresh_token};
use hsm_shim::pkcs11::{Pin, Pkcs11KeyStore};
use hsm_shim::soft::{OperatorSecret, SoftKeyStore};
use hsm_shim::{Error, KeyRef, KeySpec, KeyStore, SignatureAlgorithm};

struct Backend {
    store: Arc<dyn KeyStore>,
    _dir: tempfile::TempDir,
}

fn secret(s: &str) -> OperatorSecret {
    OperatorSecret::new(s.as_bytes().to_vec()).expect("long enough")
}

fn soft() -> Backend {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SoftKeyStore::open_or_create(&dir.path().join("keys"), &secret("correct horse battery staple")).expect("create");
    Backend { store: Arc::new(store), _dir: dir }
}

fn pkcs11() -> Backend {
    let (module, token) = fresh_token();
    let store = Pkcs11KeyStore::open(&module, &token, &Pin::new(PIN.into())).expect("open token");
    Backend { store: Arc::new(store), _dir: tempfile::tempdir().expect("tempdir") }
}

/// Verifies a signature with the `openssl` command line on the exported public key.
fn openssl_verifies(spki_der: &[u8], algorithm: SignatureAlgorithm, message: &[u8], signature: &[u8]) -> bool {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, data: &[u8]| -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, data).expect("write");
        p
    };
    let key = write("key.der", spki_der);
    let msg = write("msg", message);
    let sig = write("sig", signature);
    let p = |p: &Path| p.to_str().expect("utf-8 path").to_owned();
    let mut cmd = Command::new("openssl");
    match algorithm {
        SignatureAlgorithm::EdDsa => {
            cmd.args(["pkeyutl", "-verify", "-pubin", "-keyform", "DER", "-inkey", &p(&key), "-rawin"]).args(["-in", &p(&msg), "-sigfile", &p(&sig)]);
        }
        _ => {
            let digest = if algorithm == SignatureAlgorithm::Es384 { "-sha384" } else { "-sha256" };
            cmd.args(["dgst", digest, "-keyform", "DER", "-verify", &p(&key), "-signature", &p(&sig)]);
            if algorithm == SignatureAlgorithm::Ps256 {
                cmd.args(["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32"]);
            }
            cmd.arg(p(&msg));
        }
    }
    let out = cmd.output().expect("openssl is installed (apt-get install openssl)");
    out.status.success()
}

fn signs_and_verifies_every_algorithm(backend: Backend) {
    let store = &backend.store;
    for spec in KeySpec::ALL {
        let label = format!("k-{}", spec.name());
        let key = store.generate(spec, &label).expect("generate");
        let public = store.public_key(&key).expect("public key");
        assert_eq!(public.spec(), spec);
        for algorithm in SignatureAlgorithm::ALL.into_iter().filter(|a| a.fits(spec)) {
            let message = format!("هوية signs with {algorithm} on {spec}");
            let signature = store.sign(&key, algorithm, message.as_bytes()).expect("sign");
            public.verify(algorithm, message.as_bytes(), &signature).expect("verifies with aws-lc-rs");
            assert!(openssl_verifies(public.spki_der(), algorithm, message.as_bytes(), &signature), "OpenSSL rejects {algorithm} on {spec}");
            assert!(!openssl_verifies(public.spki_der(), algorithm, b"another message", &signature), "OpenSSL accepts a wrong message");
            assert!(matches!(public.verify(algorithm, b"another message", &signature), Err(Error::BadSignature)));
        }
    }
}

/// The hash a signer computes before asking for `signHash`.
fn hash(algorithm: SignatureAlgorithm, message: &[u8]) -> Vec<u8> {
    use aws_lc_rs::digest;
    let hash = if algorithm == SignatureAlgorithm::Es384 { &digest::SHA384 } else { &digest::SHA256 };
    digest::digest(hash, message).as_ref().to_vec()
}

/// Verifies a signature over a digest with `openssl pkeyutl` (no message involved): for RSA
/// OpenSSL wraps the digest in its DigestInfo itself, so a missing or wrong prefix fails.
fn openssl_verifies_digest(spki_der: &[u8], algorithm: SignatureAlgorithm, digest: &[u8], signature: &[u8]) -> bool {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, data: &[u8]| -> String {
        let p = dir.path().join(name);
        std::fs::write(&p, data).expect("write");
        p.to_str().expect("utf-8 path").to_owned()
    };
    let (key, digest, sig) = (write("key.der", spki_der), write("digest.bin", digest), write("sig.der", signature));
    let mut cmd = Command::new("openssl");
    cmd.args(["pkeyutl", "-verify", "-pubin", "-keyform", "DER", "-inkey", &key, "-in", &digest, "-sigfile", &sig]);
    match algorithm {
        SignatureAlgorithm::Rs256 => {
            cmd.args(["-pkeyopt", "digest:sha256"]);
        }
        SignatureAlgorithm::Ps256 => {
            cmd.args(["-pkeyopt", "digest:sha256", "-pkeyopt", "rsa_padding_mode:pss", "-pkeyopt", "rsa_pss_saltlen:32"]);
        }
        _ => {}
    }
    let out = cmd.output().expect("openssl is installed (apt-get install openssl)");
    out.status.success()
}

fn signs_digests_that_verify_over_the_message(backend: Backend) {
    let store = &backend.store;
    for spec in KeySpec::ALL.into_iter().filter(|s| *s != KeySpec::Ed25519) {
        let key = store.generate(spec, &format!("d-{}", spec.name())).expect("generate");
        let public = store.public_key(&key).expect("public key");
        for algorithm in SignatureAlgorithm::ALL.into_iter().filter(|a| a.fits(spec)) {
            let message = format!("هوية signs the hash of this with {algorithm} on {spec}");
            let digest = hash(algorithm, message.as_bytes());
            let signature = store.sign_digest(&key, algorithm, &digest).expect("sign digest");
            public.verify(algorithm, message.as_bytes(), &signature).expect("verifies over the message with aws-lc-rs");
            assert!(openssl_verifies(public.spki_der(), algorithm, message.as_bytes(), &signature), "OpenSSL dgst rejects {algorithm} on {spec}");
            assert!(openssl_verifies_digest(public.spki_der(), algorithm, &digest, &signature), "OpenSSL pkeyutl rejects {algorithm} on {spec}");
            let mut other = digest.clone();
            other[0] ^= 1;
            assert!(!openssl_verifies_digest(public.spki_der(), algorithm, &other, &signature), "OpenSSL accepts another digest");
            assert!(matches!(public.verify(algorithm, b"another message", &signature), Err(Error::BadSignature)));
            // The same key signing the message itself gives a signature of the same shape.
            let direct = store.sign(&key, algorithm, message.as_bytes()).expect("sign");
            if spec.rsa_bits().is_some() {
                assert_eq!(direct.len(), signature.len());
            }
            if algorithm == SignatureAlgorithm::Rs256 {
                assert_eq!(direct, signature, "PKCS#1 v1.5 is deterministic: signing the hash equals signing the message");
            }
        }
    }
}

fn refuses_eddsa_and_wrong_length_digests(backend: Backend) {
    let store = &backend.store;
    let ed = store.generate(KeySpec::Ed25519, "ed").expect("generate");
    assert!(matches!(store.sign_digest(&ed, SignatureAlgorithm::EdDsa, &[7; 32]), Err(Error::PrehashNotSupported(SignatureAlgorithm::EdDsa))));
    assert!(matches!(store.sign_digest(&ed, SignatureAlgorithm::EdDsa, &[7; 64]), Err(Error::PrehashNotSupported(SignatureAlgorithm::EdDsa))));
    let p256 = store.generate(KeySpec::EcP256, "p256").expect("generate");
    let p384 = store.generate(KeySpec::EcP384, "p384").expect("generate");
    let rsa = store.generate(KeySpec::Rsa2048, "rsa").expect("generate");
    let cases = [
        (&p256, SignatureAlgorithm::Es256, 48, 32),
        (&p256, SignatureAlgorithm::Es256, 31, 32),
        (&p256, SignatureAlgorithm::Es256, 0, 32),
        (&p384, SignatureAlgorithm::Es384, 32, 48),
        (&p384, SignatureAlgorithm::Es384, 64, 48),
        (&rsa, SignatureAlgorithm::Rs256, 51, 32), // a whole DigestInfo is not a digest
        (&rsa, SignatureAlgorithm::Rs256, 48, 32),
        (&rsa, SignatureAlgorithm::Ps256, 33, 32),
    ];
    for (key, algorithm, len, want) in cases {
        match store.sign_digest(key, algorithm, &vec![7; len]) {
            Err(Error::DigestLength { algorithm: a, expected, actual }) => assert_eq!((a, expected, actual), (algorithm, want, len)),
            other => panic!("{algorithm} with a {len}-byte digest: expected DigestLength, got {other:?}"),
        }
    }
    // A digest of the right length for the algorithm, but the algorithm does not fit the key.
    assert!(matches!(
        store.sign_digest(&p256, SignatureAlgorithm::Es384, &[7; 48]),
        Err(Error::AlgorithmNotAllowed { spec: KeySpec::EcP256, algorithm: SignatureAlgorithm::Es384 })
    ));
    assert!(matches!(
        store.sign_digest(&rsa, SignatureAlgorithm::Es256, &[7; 32]),
        Err(Error::AlgorithmNotAllowed { spec: KeySpec::Rsa2048, algorithm: SignatureAlgorithm::Es256 })
    ));
}

/// Verifies a JWS with Python's `cryptography` (installed by ./scripts/test in its venv).
fn python_verifies_jws(jwk: &serde_json::Value, jws: &str) -> bool {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/verify_jws.py");
    let out = Command::new("python3").arg(script).arg(jwk.to_string()).arg(jws).output().expect("python3");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("ModuleNotFoundError"), "Python's cryptography is missing: run ./scripts/test (it installs it): {stderr}");
    out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok"
}

fn signs_jws_that_python_cryptography_verifies(backend: Backend) {
    use hsm_shim::jose;
    use hsm_shim::signer::StoredKeySigner;
    for spec in [KeySpec::EcP256, KeySpec::EcP384, KeySpec::Ed25519, KeySpec::Rsa2048] {
        let key = backend.store.generate(spec, &format!("jws-{}", spec.name())).expect("generate");
        for algorithm in SignatureAlgorithm::ALL.into_iter().filter(|a| a.fits(spec)) {
            let signer = StoredKeySigner::new(backend.store.clone(), key.clone(), algorithm).expect("signer");
            let kid = format!("{spec}-{algorithm}");
            let mut extra = serde_json::Map::new();
            extra.insert("typ".into(), "JWT".into());
            let jws = jose::sign_compact(&signer, &kid, extra, br#"{"sub":"citizen","iss":"https://idp.hawiya.jo"}"#).expect("sign");
            let jwk = jose::jwk(signer.public_key(), &kid, algorithm).expect("jwk");
            assert!(python_verifies_jws(&jwk, &jws), "{algorithm} on {spec} does not verify");
            let (head, _) = jws.rsplit_once('.').expect("three parts");
            let forged = format!("{head}.{}", &jws[jws.len() - 10..]);
            assert!(!python_verifies_jws(&jwk, &forged), "a forged signature verifies");
        }
    }
}

fn refuses_algorithm_not_allowed(backend: Backend) {
    let key = backend.store.generate(KeySpec::EcP256, "ec").expect("generate");
    for algorithm in [SignatureAlgorithm::Es384, SignatureAlgorithm::EdDsa, SignatureAlgorithm::Rs256, SignatureAlgorithm::Ps256] {
        match backend.store.sign(&key, algorithm, b"m") {
            Err(Error::AlgorithmNotAllowed { spec: KeySpec::EcP256, algorithm: a }) => assert_eq!(a, algorithm),
            other => panic!("expected AlgorithmNotAllowed, got {other:?}"),
        }
    }
}

fn refuses_duplicate_label_and_keeps_the_first_key(backend: Backend) {
    let key = backend.store.generate(KeySpec::EcP256, "dup").expect("generate");
    let before = backend.store.public_key(&key).expect("public");
    assert!(matches!(backend.store.generate(KeySpec::Ed25519, "dup"), Err(Error::DuplicateLabel(l)) if l == "dup"));
    assert_eq!(backend.store.public_key(&key).expect("public"), before);
    assert_eq!(backend.store.list().expect("list").len(), 1);
}

fn refuses_unknown_and_foreign_keys(backend: Backend) {
    let unknown = match backend.store.generate(KeySpec::EcP256, "exists").expect("generate") {
        KeyRef::Soft { .. } => KeyRef::Soft { label: "missing".into() },
        KeyRef::Pkcs11 { token, .. } => KeyRef::Pkcs11 { token, object: "missing".into() },
    };
    assert!(matches!(backend.store.sign(&unknown, SignatureAlgorithm::Es256, b"m"), Err(Error::UnknownKey(_))));
    assert!(matches!(backend.store.sign_digest(&unknown, SignatureAlgorithm::Es256, &[0; 32]), Err(Error::UnknownKey(_))));
    assert!(matches!(backend.store.public_key(&unknown), Err(Error::UnknownKey(_))));
    let foreign = match unknown {
        KeyRef::Soft { .. } => KeyRef::Pkcs11 { token: "t".into(), object: "exists".into() },
        KeyRef::Pkcs11 { .. } => KeyRef::Soft { label: "exists".into() },
    };
    assert!(matches!(backend.store.sign(&foreign, SignatureAlgorithm::Es256, b"m"), Err(Error::ForeignKey(_))));
    assert!(matches!(backend.store.sign_digest(&foreign, SignatureAlgorithm::Es256, &[0; 32]), Err(Error::ForeignKey(_))));
    assert!(matches!(backend.store.generate(KeySpec::EcP256, "../escape"), Err(Error::InvalidLabel(_))));
}

fn lists_and_destroys_only_when_confirmed(backend: Backend) {
    let a = backend.store.generate(KeySpec::EcP256, "a").expect("generate");
    backend.store.generate(KeySpec::Ed25519, "b").expect("generate");
    let labels: Vec<_> = backend.store.list().expect("list").into_iter().map(|k| (k.key.label().to_owned(), k.spec)).collect();
    assert_eq!(labels, vec![("a".into(), KeySpec::EcP256), ("b".into(), KeySpec::Ed25519)]);
    assert!(matches!(backend.store.destroy(&a, "b"), Err(Error::DestroyNotConfirmed(_))));
    backend.store.sign(&a, SignatureAlgorithm::Es256, b"still here").expect("not destroyed");
    backend.store.destroy(&a, "a").expect("destroy");
    assert!(matches!(backend.store.sign(&a, SignatureAlgorithm::Es256, b"m"), Err(Error::UnknownKey(_))));
    assert!(matches!(backend.store.destroy(&a, "a"), Err(Error::UnknownKey(_))));
    assert_eq!(backend.store.list().expect("list").len(), 1);
}

fn signs_from_many_threads(backend: Backend) {
    let key = backend.store.generate(KeySpec::EcP256, "shared").expect("generate");
    let public = backend.store.public_key(&key).expect("public");
    std::thread::scope(|s| {
        for t in 0..8 {
            let (store, key, public) = (&backend.store, &key, &public);
            s.spawn(move || {
                for i in 0..25 {
                    let msg = format!("{t}/{i}");
                    let sig = store.sign(key, SignatureAlgorithm::Es256, msg.as_bytes()).expect("sign");
                    public.verify(SignatureAlgorithm::Es256, msg.as_bytes(), &sig).expect("verify");
                }
            });
        }
    });
}

fn answers_a_ping_without_touching_keys(backend: Backend) {
    backend.store.ping().expect("ping an empty store");
    let key = backend.store.generate(KeySpec::EcP256, "pinged").expect("generate");
    backend.store.ping().expect("ping");
    let listed: Vec<KeyRef> = backend.store.list().expect("list").into_iter().map(|k| k.key).collect();
    assert_eq!(listed, vec![key], "a ping creates and removes nothing");
}

macro_rules! conformance {
    ($backend:ident) => {
        mod $backend {
            #[test]
            fn answers_a_ping_without_touching_keys() {
                super::answers_a_ping_without_touching_keys(super::$backend());
            }
            #[test]
            fn signs_and_verifies_every_algorithm() {
                super::signs_and_verifies_every_algorithm(super::$backend());
            }
            #[test]
            fn signs_digests_that_verify_over_the_message() {
                super::signs_digests_that_verify_over_the_message(super::$backend());
            }
            #[test]
            fn refuses_eddsa_and_wrong_length_digests() {
                super::refuses_eddsa_and_wrong_length_digests(super::$backend());
            }
            #[test]
            fn signs_jws_that_python_cryptography_verifies() {
                super::signs_jws_that_python_cryptography_verifies(super::$backend());
            }
            #[test]
            fn refuses_algorithm_not_allowed() {
                super::refuses_algorithm_not_allowed(super::$backend());
            }
            #[test]
            fn refuses_duplicate_label_and_keeps_the_first_key() {
                super::refuses_duplicate_label_and_keeps_the_first_key(super::$backend());
            }
            #[test]
            fn refuses_unknown_and_foreign_keys() {
                super::refuses_unknown_and_foreign_keys(super::$backend());
            }
            #[test]
            fn lists_and_destroys_only_when_confirmed() {
                super::lists_and_destroys_only_when_confirmed(super::$backend());
            }
            #[test]
            fn signs_from_many_threads() {
                super::signs_from_many_threads(super::$backend());
            }
        }
    };
}

conformance!(soft);
conformance!(pkcs11);

#[test]
fn a_soft_store_whose_directory_is_gone_fails_its_ping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("keys");
    let store = SoftKeyStore::open_or_create(&path, &secret("correct horse battery staple")).expect("create");
    store.ping().expect("ping");
    std::fs::remove_dir_all(&path).expect("remove the key directory");
    assert!(matches!(store.ping(), Err(Error::Io { .. })), "{:?}", store.ping());
}

#[test]
fn soft_store_refuses_wrong_secret_and_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("keys");
    let key = {
        let store = SoftKeyStore::open_or_create(&path, &secret("the right secret!")).expect("create");
        store.generate(KeySpec::EcP256, "root").expect("generate")
    };
    assert!(matches!(SoftKeyStore::open(&path, &secret("the wrong secret!")), Err(Error::WrongOperatorSecret(_))));
    let store = SoftKeyStore::open(&path, &secret("the right secret!")).expect("reopen");
    let sig = store.sign(&key, SignatureAlgorithm::Es256, b"m").expect("sign after reopen");
    store.public_key(&key).expect("public").verify(SignatureAlgorithm::Es256, b"m", &sig).expect("verify");
    assert!(OperatorSecret::new(b"short".to_vec()).is_err());
}

#[test]
fn soft_store_files_are_private_and_whole() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("keys");
    let store = SoftKeyStore::open_or_create(&path, &secret("the right secret!")).expect("create");
    store.generate(KeySpec::Ed25519, "a").expect("generate");
    assert!(matches!(store.generate(KeySpec::Ed25519, "a"), Err(Error::DuplicateLabel(l)) if l == "a"), "a second key under one label is refused");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&path).expect("read dir") {
        let entry = entry.expect("entry");
        assert_eq!(entry.metadata().expect("meta").permissions().mode() & 0o777, 0o600, "{:?}", entry.file_name());
        names.push(entry.file_name().into_string().expect("utf-8"));
    }
    names.sort();
    assert_eq!(names, ["a.key", "keystore.json"], "no temporary file is left behind");
    assert_eq!(std::fs::metadata(&path).expect("dir").permissions().mode() & 0o777, 0o700);
    let text = std::fs::read_to_string(path.join("a.key")).expect("read");
    assert!(!text.contains("PRIVATE"), "the key is sealed");
}

#[test]
fn soft_store_detects_a_tampered_key_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("keys");
    let key = SoftKeyStore::open_or_create(&path, &secret("the right secret!")).expect("create").generate(KeySpec::EcP256, "a").expect("gen");
    let file = path.join("a.key");
    let text = std::fs::read_to_string(&file).expect("read");
    // Flip one hex digit of the ciphertext.
    let at = text.find("\"ciphertext\": \"").expect("field") + 16;
    let mut bytes = text.into_bytes();
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    std::fs::write(&file, bytes).expect("write");
    let store = SoftKeyStore::open(&path, &secret("the right secret!")).expect("open");
    assert!(matches!(store.sign(&key, SignatureAlgorithm::Es256, b"m"), Err(Error::Corrupt { .. })));
}

#[test]
fn pkcs11_refuses_wrong_pin_and_unknown_token() {
    let (module, token) = fresh_token();
    assert!(matches!(Pkcs11KeyStore::open(&module, &token, &Pin::new("9999".into())), Err(Error::WrongPin(t)) if t == token));
    assert!(matches!(Pkcs11KeyStore::open(&module, "no-such-token", &Pin::new(PIN.into())), Err(Error::TokenNotFound(_))));
    Pkcs11KeyStore::open(&module, &token, &Pin::new(PIN.into())).expect("the right PIN still works");
}
