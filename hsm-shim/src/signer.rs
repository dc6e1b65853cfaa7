//! Adapters that let certificate, CRL, OCSP and CMS builders sign with a stored key.
//!
//! [`StoredKeySigner`] is one key in one store plus the algorithm it signs with. It implements
//! rcgen's [`rcgen::SigningKey`] (certificates and CRLs) and RustCrypto's
//! [`signature::Signer`] with [`spki::DynSignatureAlgorithmIdentifier`] (the `x509-ocsp` and
//! `cms` builders). The private key stays in the store: each signature is one store call.

use std::sync::Arc;

use der::Decode;
use spki::{AlgorithmIdentifierOwned, DynSignatureAlgorithmIdentifier, SignatureBitStringEncoding};

use crate::{Error, KeyRef, KeyStore, PublicKey, SignatureAlgorithm};

/// A stored key, ready to sign with one algorithm.
#[derive(Clone, Debug)]
pub struct StoredKeySigner {
    store: Arc<dyn KeyStore>,
    key: KeyRef,
    algorithm: SignatureAlgorithm,
    public: PublicKey,
}

impl StoredKeySigner {
    /// Binds `key` in `store` to `algorithm`, checking that the key exists and fits it.
    pub fn new(store: Arc<dyn KeyStore>, key: KeyRef, algorithm: SignatureAlgorithm) -> Result<Self, Error> {
        let public = store.public_key(&key)?;
        algorithm.check_fits(public.spec())?;
        Ok(StoredKeySigner { store, key, algorithm, public })
    }

    /// The key's reference.
    pub fn key(&self) -> &KeyRef {
        &self.key
    }

    /// The algorithm it signs with.
    pub fn algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }

    /// The key's public half.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Signs `message` through the store.
    pub fn sign_bytes(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        self.store.sign(&self.key, self.algorithm, message)
    }

    /// The rcgen algorithm for this signer; rcgen has no RSASSA-PSS.
    fn rcgen_algorithm(&self) -> Option<&'static rcgen::SignatureAlgorithm> {
        match self.algorithm {
            SignatureAlgorithm::Es256 => Some(&rcgen::PKCS_ECDSA_P256_SHA256),
            SignatureAlgorithm::Es384 => Some(&rcgen::PKCS_ECDSA_P384_SHA384),
            SignatureAlgorithm::EdDsa => Some(&rcgen::PKCS_ED25519),
            SignatureAlgorithm::Rs256 => Some(&rcgen::PKCS_RSA_SHA256),
            SignatureAlgorithm::Ps256 => None,
        }
    }

    /// Checks that rcgen can sign with this signer (it cannot produce RSASSA-PSS).
    pub fn check_rcgen(&self) -> Result<(), Error> {
        match self.rcgen_algorithm() {
            Some(_) => Ok(()),
            None => Err(Error::UnsupportedKey("certificates and CRLs cannot be signed with PS256; use RS256 for RSA CA keys".into())),
        }
    }
}

impl rcgen::PublicKeyData for StoredKeySigner {
    fn der_bytes(&self) -> &[u8] {
        self.public.subject_public_key()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        // `check_rcgen` is called before a signer is handed to rcgen; PS256 falls back to the
        // PKCS#1 identifier only so this never panics, and `sign` below refuses it.
        self.rcgen_algorithm().unwrap_or(&rcgen::PKCS_RSA_SHA256)
    }
}

impl rcgen::SigningKey for StoredKeySigner {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        if self.rcgen_algorithm().is_none() {
            return Err(rcgen::Error::UnsupportedSignatureAlgorithm);
        }
        self.sign_bytes(msg).map_err(|e| {
            tracing::error!(key = %self.key, error = %e, "signing failed");
            rcgen::Error::RemoteKeyError
        })
    }
}

/// A signature made by a stored key, in its X.509 encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredKeySignature(Vec<u8>);

impl StoredKeySignature {
    /// The signature octets.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl TryFrom<&[u8]> for StoredKeySignature {
    type Error = signature::Error;

    fn try_from(bytes: &[u8]) -> Result<Self, signature::Error> {
        Ok(StoredKeySignature(bytes.to_vec()))
    }
}

impl From<StoredKeySignature> for Box<[u8]> {
    fn from(sig: StoredKeySignature) -> Box<[u8]> {
        sig.0.into_boxed_slice()
    }
}

impl signature::SignatureEncoding for StoredKeySignature {
    type Repr = Box<[u8]>;
}

impl SignatureBitStringEncoding for StoredKeySignature {
    fn to_bitstring(&self) -> der::Result<der::asn1::BitString> {
        der::asn1::BitString::from_bytes(&self.0)
    }
}

impl signature::Signer<StoredKeySignature> for StoredKeySigner {
    fn try_sign(&self, msg: &[u8]) -> Result<StoredKeySignature, signature::Error> {
        self.sign_bytes(msg).map(StoredKeySignature).map_err(signature::Error::from_source)
    }
}

impl DynSignatureAlgorithmIdentifier for StoredKeySigner {
    fn signature_algorithm_identifier(&self) -> spki::Result<AlgorithmIdentifierOwned> {
        Ok(AlgorithmIdentifierOwned::from_der(self.algorithm.x509_algorithm_identifier())?)
    }
}
