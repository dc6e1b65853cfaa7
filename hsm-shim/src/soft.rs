//! The soft key store: keys in files, encrypted at rest.
//!
//! Each key is a PKCS#8 document sealed with AES-256-GCM under a key-encryption key derived
//! from the operator secret with Argon2id (memory-hard). The store's metadata file holds the
//! KDF salt and parameters and a sealed check value, so a wrong secret is told apart from a
//! damaged file. Files are created with mode 0600, written to a temporary name, synced and
//! then linked into place: a crash never leaves a half-written key, and two processes cannot
//! create the same label.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::digest::{self, Digest};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{Error, KeyInfo, KeyRef, KeySpec, KeyStore, PublicKey, SignatureAlgorithm};

const META_FILE: &str = "keystore.json";
const META_FORMAT: &str = "hawiya-soft-keystore";
const CHECK_PLAINTEXT: &[u8] = b"hawiya soft key store";
const KEY_SUFFIX: &str = ".key";

/// The operator secret that unlocks a soft key store.
///
/// Read from an environment variable or a file, never from the command line. Zeroized on
/// drop; `Debug` prints nothing of it.
pub struct OperatorSecret(Zeroizing<Vec<u8>>);

impl OperatorSecret {
    /// The environment variable that may hold the secret itself.
    pub const ENV: &'static str = "HAWIYA_OPERATOR_SECRET";
    /// The environment variable that may name a file holding the secret.
    pub const ENV_FILE: &'static str = "HAWIYA_OPERATOR_SECRET_FILE";

    /// Wraps secret bytes; refuses secrets shorter than 16 bytes.
    pub fn new(bytes: Vec<u8>) -> Result<Self, Error> {
        let bytes = Zeroizing::new(bytes);
        if bytes.len() < 16 {
            return Err(Error::MissingSecret("the operator secret must be at least 16 bytes".into()));
        }
        Ok(OperatorSecret(bytes))
    }

    /// Reads the secret from a file (one trailing newline is ignored).
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let mut bytes = Zeroizing::new(fs::read(path).map_err(Error::io(path))?);
        while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            bytes.pop();
        }
        Self::new(std::mem::take(&mut *bytes))
    }

    /// Reads the secret from `HAWIYA_OPERATOR_SECRET` or the file named by
    /// `HAWIYA_OPERATOR_SECRET_FILE`; `Ok(None)` if neither is set.
    pub fn from_env() -> Result<Option<Self>, Error> {
        if let Some(value) = std::env::var_os(Self::ENV) {
            return Self::new(value.into_encoded_bytes()).map(Some);
        }
        match std::env::var_os(Self::ENV_FILE) {
            Some(path) => Self::from_file(Path::new(&path)).map(Some),
            None => Ok(None),
        }
    }

    /// A fresh random secret (demo mode writes it to the data directory).
    pub fn generate() -> Result<Self, Error> {
        let mut bytes = [0u8; 32];
        SystemRandom::new().fill(&mut bytes).map_err(|_| Error::Crypto("random"))?;
        let hex = Zeroizing::new(hex::encode(bytes));
        bytes.fill(0);
        Self::new(hex.as_bytes().to_vec())
    }

    /// The secret's bytes, to write to a protected file.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for OperatorSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OperatorSecret(<redacted>)")
    }
}

/// Argon2id parameters used when a store is created (memory 64 MiB, 3 passes).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct KdfParams {
    m_kib: u32,
    t: u32,
    p: u32,
}

const KDF_DEFAULT: KdfParams = KdfParams { m_kib: 64 * 1024, t: 3, p: 1 };

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Meta {
    format: String,
    version: u32,
    kdf: KdfParams,
    salt: String,
    check: Sealed,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sealed {
    nonce: String,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    version: u32,
    label: String,
    spec: String,
    sealed: Sealed,
}

enum LoadedKey {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rsa(rsa::KeyPair),
}

struct Loaded {
    key: LoadedKey,
    public: PublicKey,
}

/// Keys in files under one directory, sealed under the operator secret.
pub struct SoftKeyStore {
    dir: PathBuf,
    kek: LessSafeKey,
    rng: SystemRandom,
    cache: RwLock<HashMap<String, Arc<Loaded>>>,
}

impl fmt::Debug for SoftKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoftKeyStore").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl SoftKeyStore {
    /// Opens the store in `dir`, creating it (and its metadata) if it does not exist yet.
    pub fn open_or_create(dir: &Path, secret: &OperatorSecret) -> Result<Self, Error> {
        if dir.join(META_FILE).exists() {
            return Self::open(dir, secret);
        }
        fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(Error::io(dir))?;
        let rng = SystemRandom::new();
        let mut salt = [0u8; 16];
        rng.fill(&mut salt).map_err(|_| Error::Crypto("random"))?;
        let kek = derive_kek(secret, &salt, KDF_DEFAULT)?;
        let check = seal(&kek, &rng, b"check", CHECK_PLAINTEXT)?;
        let meta = Meta { format: META_FORMAT.into(), version: 1, kdf: KDF_DEFAULT, salt: hex::encode(salt), check };
        let json = serde_json::to_vec_pretty(&meta).map_err(|e| Error::Crypto(serialising_failed(e)))?;
        match write_new_file(dir, META_FILE, &json) {
            // Another process created the store meanwhile: use theirs.
            Err(Error::DuplicateLabel(_)) => Self::open(dir, secret),
            Err(e) => Err(e),
            Ok(()) => Ok(SoftKeyStore { dir: dir.to_owned(), kek, rng, cache: RwLock::default() }),
        }
    }

    /// Opens an existing store; fails clearly on a wrong secret or a damaged metadata file.
    pub fn open(dir: &Path, secret: &OperatorSecret) -> Result<Self, Error> {
        let path = dir.join(META_FILE);
        let bytes = fs::read(&path).map_err(Error::io(&path))?;
        let corrupt = |reason: String| Error::Corrupt { path: path.clone(), reason };
        let meta: Meta = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if meta.format != META_FORMAT || meta.version != 1 {
            return Err(corrupt(format!("unsupported format {:?} version {}", meta.format, meta.version)));
        }
        let salt = hex::decode(&meta.salt).map_err(|e| corrupt(format!("salt: {e}")))?;
        let kek = derive_kek(secret, &salt, meta.kdf)?;
        match open_sealed(&kek, b"check", &meta.check) {
            Ok(plain) if plain.as_slice() == CHECK_PLAINTEXT => {}
            Ok(_) => return Err(corrupt("check value mismatch".into())),
            Err(OpenError::Malformed(reason)) => return Err(corrupt(reason)),
            Err(OpenError::Authentication) => return Err(Error::WrongOperatorSecret(dir.to_owned())),
        }
        Ok(SoftKeyStore { dir: dir.to_owned(), kek, rng: SystemRandom::new(), cache: RwLock::default() })
    }

    fn label_of<'k>(&self, key: &'k KeyRef) -> Result<&'k str, Error> {
        match key {
            KeyRef::Soft { label } => Ok(label),
            KeyRef::Pkcs11 { .. } => Err(Error::ForeignKey(key.clone())),
        }
    }

    fn key_path(&self, label: &str) -> PathBuf {
        self.dir.join(format!("{label}{KEY_SUFFIX}"))
    }

    fn load(&self, key: &KeyRef) -> Result<Arc<Loaded>, Error> {
        let label = self.label_of(key)?;
        if let Some(loaded) = self.cache.read().map_err(|_| Error::Crypto("key cache poisoned"))?.get(label) {
            return Ok(Arc::clone(loaded));
        }
        let path = self.key_path(label);
        let bytes = match fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::UnknownKey(key.clone())),
            other => other.map_err(Error::io(&path))?,
        };
        let corrupt = |reason: String| Error::Corrupt { path: path.clone(), reason };
        let file: KeyFile = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if file.version != 1 || file.label != label {
            return Err(corrupt("the file does not hold this label's key".into()));
        }
        let spec: KeySpec = file.spec.parse().map_err(|e: Error| corrupt(e.to_string()))?;
        let pkcs8 = match open_sealed(&self.kek, key_aad(label, spec).as_bytes(), &file.sealed) {
            Ok(plain) => plain,
            Err(OpenError::Malformed(reason)) => return Err(corrupt(reason)),
            Err(OpenError::Authentication) => return Err(corrupt("authentication failed (file altered or sealed under another secret)".into())),
        };
        let (key_pair, public_der) = match spec {
            KeySpec::EcP256 | KeySpec::EcP384 => {
                let alg = if spec == KeySpec::EcP256 { &signature::ECDSA_P256_SHA256_ASN1_SIGNING } else { &signature::ECDSA_P384_SHA384_ASN1_SIGNING };
                let kp = EcdsaKeyPair::from_pkcs8(alg, &pkcs8).map_err(|e| corrupt(e.to_string()))?;
                let der = kp.public_key().as_der().map_err(|_| Error::Crypto("public key encoding"))?;
                let der = der.as_ref().to_vec();
                (LoadedKey::Ecdsa(kp), der)
            }
            KeySpec::Ed25519 => {
                let kp = Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|e| corrupt(e.to_string()))?;
                let der = kp.public_key().as_der().map_err(|_| Error::Crypto("public key encoding"))?;
                let der = der.as_ref().to_vec();
                (LoadedKey::Ed25519(kp), der)
            }
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
                let kp = rsa::KeyPair::from_pkcs8(&pkcs8).map_err(|e| corrupt(e.to_string()))?;
                let der = kp.public_key().as_der().map_err(|_| Error::Crypto("public key encoding"))?;
                let der = der.as_ref().to_vec();
                (LoadedKey::Rsa(kp), der)
            }
        };
        let public = PublicKey::from_spki_der(&public_der)?;
        if public.spec() != spec {
            return Err(corrupt(format!("file says {spec}, key is {}", public.spec())));
        }
        let loaded = Arc::new(Loaded { key: key_pair, public });
        self.cache.write().map_err(|_| Error::Crypto("key cache poisoned"))?.insert(label.to_owned(), Arc::clone(&loaded));
        Ok(loaded)
    }
}

impl KeyStore for SoftKeyStore {
    fn generate(&self, spec: KeySpec, label: &str) -> Result<KeyRef, Error> {
        crate::check_label(label)?;
        if self.key_path(label).exists() {
            return Err(Error::DuplicateLabel(label.to_owned()));
        }
        let pkcs8: Zeroizing<Vec<u8>> = Zeroizing::new(match spec {
            KeySpec::EcP256 | KeySpec::EcP384 => {
                let alg = if spec == KeySpec::EcP256 { &signature::ECDSA_P256_SHA256_ASN1_SIGNING } else { &signature::ECDSA_P384_SHA384_ASN1_SIGNING };
                let kp = EcdsaKeyPair::generate(alg).map_err(|_| Error::Crypto("EC key generation"))?;
                kp.to_pkcs8v1().map_err(|_| Error::Crypto("PKCS#8 encoding"))?.as_ref().to_vec()
            }
            KeySpec::Ed25519 => {
                let kp = Ed25519KeyPair::generate().map_err(|_| Error::Crypto("Ed25519 key generation"))?;
                kp.to_pkcs8v1().map_err(|_| Error::Crypto("PKCS#8 encoding"))?.as_ref().to_vec()
            }
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
                let size = match spec {
                    KeySpec::Rsa2048 => rsa::KeySize::Rsa2048,
                    KeySpec::Rsa3072 => rsa::KeySize::Rsa3072,
                    _ => rsa::KeySize::Rsa4096,
                };
                let kp = rsa::KeyPair::generate(size).map_err(|_| Error::Crypto("RSA key generation"))?;
                let der: Pkcs8V1Der<'_> = kp.as_der().map_err(|_| Error::Crypto("PKCS#8 encoding"))?;
                der.as_ref().to_vec()
            }
        });
        let sealed = seal(&self.kek, &self.rng, key_aad(label, spec).as_bytes(), &pkcs8)?;
        let file = KeyFile { version: 1, label: label.to_owned(), spec: spec.name().to_owned(), sealed };
        let json = serde_json::to_vec_pretty(&file).map_err(|e| Error::Crypto(serialising_failed(e)))?;
        write_new_file(&self.dir, &format!("{label}{KEY_SUFFIX}"), &json)?;
        tracing::info!(key = %format!("soft:{label}"), %spec, "generated key");
        Ok(KeyRef::Soft { label: label.to_owned() })
    }

    fn public_key(&self, key: &KeyRef) -> Result<PublicKey, Error> {
        Ok(self.load(key)?.public.clone())
    }

    fn ping(&self) -> Result<(), Error> {
        match fs::read_dir(&self.dir).map_err(Error::io(&self.dir))?.next() {
            Some(Err(e)) => Err(Error::io(&self.dir)(e)),
            _ => Ok(()),
        }
    }

    fn sign(&self, key: &KeyRef, algorithm: SignatureAlgorithm, message: &[u8]) -> Result<Vec<u8>, Error> {
        let loaded = self.load(key)?;
        algorithm.check_fits(loaded.public.spec())?;
        match &loaded.key {
            LoadedKey::Ecdsa(kp) => Ok(kp.sign(&self.rng, message).map_err(|_| Error::Crypto("ECDSA signing"))?.as_ref().to_vec()),
            LoadedKey::Ed25519(kp) => Ok(kp.sign(message).as_ref().to_vec()),
            LoadedKey::Rsa(kp) => {
                let padding: &'static dyn signature::RsaEncoding = match algorithm {
                    SignatureAlgorithm::Ps256 => &signature::RSA_PSS_SHA256,
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                let mut out = vec![0u8; kp.public_modulus_len()];
                kp.sign(padding, &self.rng, message, &mut out).map_err(|_| Error::Crypto("RSA signing"))?;
                Ok(out)
            }
        }
    }

    fn sign_digest(&self, key: &KeyRef, algorithm: SignatureAlgorithm, digest: &[u8]) -> Result<Vec<u8>, Error> {
        algorithm.check_digest(digest)?;
        let loaded = self.load(key)?;
        algorithm.check_fits(loaded.public.spec())?;
        let hash = if algorithm == SignatureAlgorithm::Es384 { &digest::SHA384 } else { &digest::SHA256 };
        // The length was checked above, the only reason the import fails.
        let digest = Digest::import_less_safe(digest, hash).map_err(|_| Error::DigestLength { algorithm, expected: hash.output_len, actual: digest.len() })?;
        match &loaded.key {
            LoadedKey::Ecdsa(kp) => Ok(kp.sign_digest(&digest).map_err(|_| Error::Crypto("ECDSA signing"))?.as_ref().to_vec()),
            LoadedKey::Ed25519(_) => Err(Error::PrehashNotSupported(algorithm)),
            LoadedKey::Rsa(kp) => {
                let padding: &'static dyn signature::RsaEncoding = match algorithm {
                    SignatureAlgorithm::Ps256 => &signature::RSA_PSS_SHA256,
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                let mut out = vec![0u8; kp.public_modulus_len()];
                kp.sign_digest(padding, &digest, &mut out).map_err(|_| Error::Crypto("RSA signing"))?;
                Ok(out)
            }
        }
    }

    fn list(&self) -> Result<Vec<KeyInfo>, Error> {
        let mut keys = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(Error::io(&self.dir))? {
            let entry = entry.map_err(Error::io(&self.dir))?;
            let name = entry.file_name();
            let Some(label) = name.to_str().and_then(|n| n.strip_suffix(KEY_SUFFIX)) else { continue };
            if label.starts_with('.') {
                continue;
            }
            let path = entry.path();
            let bytes = fs::read(&path).map_err(Error::io(&path))?;
            let file: KeyFile = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt { path: path.clone(), reason: e.to_string() })?;
            let spec = file.spec.parse().map_err(|e: Error| Error::Corrupt { path: path.clone(), reason: e.to_string() })?;
            keys.push(KeyInfo { key: KeyRef::Soft { label: label.to_owned() }, spec });
        }
        keys.sort_by(|a, b| a.key.label().cmp(b.key.label()));
        Ok(keys)
    }

    fn destroy(&self, key: &KeyRef, confirm_label: &str) -> Result<(), Error> {
        let label = self.label_of(key)?;
        if label != confirm_label {
            return Err(Error::DestroyNotConfirmed(key.clone()));
        }
        let path = self.key_path(label);
        match fs::remove_file(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::UnknownKey(key.clone())),
            other => other.map_err(Error::io(&path))?,
        }
        self.cache.write().map_err(|_| Error::Crypto("key cache poisoned"))?.remove(label);
        tracing::warn!(key = %key, "destroyed key");
        Ok(())
    }
}

fn key_aad(label: &str, spec: KeySpec) -> String {
    format!("hawiya-key:v1:{label}:{spec}")
}

fn derive_kek(secret: &OperatorSecret, salt: &[u8], kdf: KdfParams) -> Result<LessSafeKey, Error> {
    let params = argon2::Params::new(kdf.m_kib, kdf.t, kdf.p, Some(32)).map_err(|_| Error::Crypto("Argon2 parameters"))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = Zeroizing::new([0u8; 32]);
    argon.hash_password_into(secret.expose(), salt, key.as_mut()).map_err(|_| Error::Crypto("Argon2id"))?;
    let unbound = UnboundKey::new(&AES_256_GCM, key.as_ref()).map_err(|_| Error::Crypto("AES key"))?;
    Ok(LessSafeKey::new(unbound))
}

fn seal(kek: &LessSafeKey, rng: &SystemRandom, aad: &[u8], plaintext: &[u8]) -> Result<Sealed, Error> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce).map_err(|_| Error::Crypto("random"))?;
    let mut buf = Zeroizing::new(plaintext.to_vec());
    kek.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut *buf).map_err(|_| Error::Crypto("AES-GCM seal"))?;
    Ok(Sealed { nonce: hex::encode(nonce), ciphertext: hex::encode(&*buf) })
}

enum OpenError {
    Malformed(String),
    Authentication,
}

fn open_sealed(kek: &LessSafeKey, aad: &[u8], sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    let nonce: [u8; NONCE_LEN] = hex::decode(&sealed.nonce).ok().and_then(|n| n.try_into().ok()).ok_or_else(|| OpenError::Malformed("bad nonce".into()))?;
    let mut buf = Zeroizing::new(hex::decode(&sealed.ciphertext).map_err(|e| OpenError::Malformed(format!("ciphertext: {e}")))?);
    let len = kek.open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut buf).map_err(|_| OpenError::Authentication)?.len();
    buf.truncate(len);
    Ok(buf)
}

/// Writes `name` in `dir` with mode 0600 so that it either appears whole or not at all, and
/// never replaces an existing file (that is reported as [`Error::DuplicateLabel`]).
fn write_new_file(dir: &Path, name: &str, contents: &[u8]) -> Result<(), Error> {
    let mut nonce = [0u8; 8];
    SystemRandom::new().fill(&mut nonce).map_err(|_| Error::Crypto("random"))?;
    let tmp = dir.join(format!(".{name}.{}.tmp", hex::encode(nonce)));
    let result = (|| {
        let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(Error::io(&tmp))?;
        file.write_all(contents).map_err(Error::io(&tmp))?;
        file.sync_all().map_err(Error::io(&tmp))?;
        let target = dir.join(name);
        match fs::hard_link(&tmp, &target) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::DuplicateLabel(name.trim_end_matches(KEY_SUFFIX).to_owned())),
            other => other.map_err(Error::io(&target)),
        }?;
        fs::File::open(dir).and_then(|d| d.sync_all()).map_err(Error::io(dir))
    })();
    let _ = fs::remove_file(&tmp);
    result
}

fn serialising_failed(e: serde_json::Error) -> &'static str {
    tracing::error!(error = %e, "serialising key store file");
    "serialising key store file"
}
