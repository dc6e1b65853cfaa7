//! Key custody for Hawiya.
//!
//! Every private key Hawiya uses (CA keys, the OCSP responder's, the IdP's token-signing keys,
//! the reference smart-ID device's) lives behind the [`KeyStore`] trait. Callers name keys by
//! URI ([`KeyRef`]: `soft:<label>` or RFC 7512 `pkcs11:token=…;object=…`) and ask the store to
//! sign; nothing in this crate ever returns private key material.
//!
//! Backends: [`soft::SoftKeyStore`] (keys encrypted at rest under a key derived from the
//! operator secret) and [`pkcs11::Pkcs11KeyStore`] (any PKCS#11 module: SoftHSM2 in tests, a
//! production HSM in the field). [`signer`] adapts a stored key to the signing traits of rcgen
//! and RustCrypto so certificate, CRL, OCSP and CMS builders never touch raw keys.
//!
//! This crate knows nothing of OpenID Connect or X.509 profiles.
#![forbid(unsafe_code)]

mod algorithm;
mod error;
pub mod jose;
mod key_ref;
pub mod pkcs11;
mod public_key;
pub mod signer;
pub mod soft;

pub use algorithm::{KeySpec, SignatureAlgorithm};
pub use error::Error;
pub use key_ref::KeyRef;
pub use public_key::PublicKey;

/// What a key store says about one of its keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key's URI.
    pub key: KeyRef,
    /// Its type and size.
    pub spec: KeySpec,
}

/// A store of private keys that signs with them and never hands them out.
///
/// Implementations are shared between threads (`Arc<dyn KeyStore>`); every method may block
/// (a PKCS#11 call, a file read), so async callers with many requests in flight should call
/// it from a blocking-friendly context.
pub trait KeyStore: Send + Sync + std::fmt::Debug {
    /// Generates a new key of `spec` under `label`. Refuses a label that is already taken.
    fn generate(&self, spec: KeySpec, label: &str) -> Result<KeyRef, Error>;

    /// The public half of a key, as SubjectPublicKeyInfo.
    fn public_key(&self, key: &KeyRef) -> Result<PublicKey, Error>;

    /// Signs `message` (the whole message: hashing is part of `algorithm`).
    ///
    /// The signature is in the encoding X.509, OCSP and CMS use: ECDSA signatures are DER
    /// `Ecdsa-Sig-Value`, RSA and Ed25519 signatures are the raw octets.
    fn sign(&self, key: &KeyRef, algorithm: SignatureAlgorithm, message: &[u8]) -> Result<Vec<u8>, Error>;

    /// Signs a digest computed by the caller (CSC `signatures/signHash`): the signature is
    /// the one [`KeyStore::sign`] makes over any message whose hash is `digest`, in the same
    /// encoding, so it verifies with [`PublicKey::verify`] over that message.
    ///
    /// `digest` is the SHA-256 (ES256, RS256, PS256) or SHA-384 (ES384) output, without a
    /// DigestInfo wrapper. Refuses EdDSA ([`Error::PrehashNotSupported`]) and a digest of the
    /// wrong length ([`Error::DigestLength`]). The store cannot know what was hashed: callers
    /// must authorise the digest as they would the document.
    fn sign_digest(&self, key: &KeyRef, algorithm: SignatureAlgorithm, digest: &[u8]) -> Result<Vec<u8>, Error>;

    /// Every key in the store.
    fn list(&self) -> Result<Vec<KeyInfo>, Error>;

    /// Destroys a key for good. Guarded: `confirm_label` must repeat the key's label.
    fn destroy(&self, key: &KeyRef, confirm_label: &str) -> Result<(), Error>;

    /// Answers if the store does, without signing or touching a key (readiness probes): the
    /// key directory can be read; the token answers a logged-in session.
    fn ping(&self) -> Result<(), Error>;
}

/// Checks a label before it names a key or a file: 1 to 64 characters out of
/// `A-Z a-z 0-9 . _ -`, not starting with a dot.
pub(crate) fn check_label(label: &str) -> Result<(), Error> {
    let ok = !label.is_empty()
        && label.len() <= 64
        && !label.starts_with('.')
        && label.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok { Ok(()) } else { Err(Error::InvalidLabel(label.to_owned())) }
}
