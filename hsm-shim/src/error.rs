use std::path::PathBuf;

use crate::{KeyRef, KeySpec, SignatureAlgorithm};

/// Everything that can go wrong in key custody.
///
/// Messages are fit for an operator: they name the key, file or token, never secret material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No key with that reference exists in the store.
    #[error("unknown key {0}")]
    UnknownKey(KeyRef),
    /// A key with that label already exists.
    #[error("a key labelled {0:?} already exists")]
    DuplicateLabel(String),
    /// The label is not usable as a key name.
    #[error("invalid key label {0:?}: use 1-64 characters out of A-Z a-z 0-9 . _ - (not starting with a dot)")]
    InvalidLabel(String),
    /// The key reference is not a URI this crate understands.
    #[error("invalid key reference {uri:?}: {reason}")]
    InvalidKeyRef {
        /// What was given.
        uri: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The key reference names another backend or token.
    #[error("key {0} does not belong to this key store")]
    ForeignKey(KeyRef),
    /// The algorithm cannot be used with that key.
    #[error("algorithm {algorithm} is not allowed for a {spec} key")]
    AlgorithmNotAllowed {
        /// The key's type.
        spec: KeySpec,
        /// The algorithm asked for.
        algorithm: SignatureAlgorithm,
    },
    /// The algorithm cannot sign a digest computed elsewhere (EdDSA signs the whole message).
    #[error("{0} cannot sign a precomputed digest: Ed25519 (PureEdDSA) hashes the message itself, so send the message")]
    PrehashNotSupported(SignatureAlgorithm),
    /// A digest to sign is not as long as the algorithm's hash output.
    #[error("a digest for {algorithm} must be {expected} bytes, got {actual}")]
    DigestLength {
        /// The algorithm asked for.
        algorithm: SignatureAlgorithm,
        /// The hash output length the algorithm needs (32 for SHA-256, 48 for SHA-384).
        expected: usize,
        /// The length given.
        actual: usize,
    },
    /// The key type is not one Hawiya supports.
    #[error("unsupported key: {0}")]
    UnsupportedKey(String),
    /// A signature did not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// The operator secret does not open this soft key store.
    #[error("wrong operator secret for the key store at {0}")]
    WrongOperatorSecret(PathBuf),
    /// No operator secret was provided.
    #[error("no operator secret: {0}")]
    MissingSecret(String),
    /// The token refused the PIN.
    #[error("wrong PIN for token {0:?}")]
    WrongPin(String),
    /// The token is locked after too many wrong PINs.
    #[error("token {0:?} is locked (too many wrong PINs)")]
    TokenLocked(String),
    /// No token with that label in the PKCS#11 module.
    #[error("no PKCS#11 token labelled {0:?}")]
    TokenNotFound(String),
    /// The PKCS#11 module failed.
    #[error("PKCS#11: {0}")]
    Pkcs11(String),
    /// A destroy call without the right confirmation.
    #[error("refusing to destroy {0}: the confirmation does not repeat its label")]
    DestroyNotConfirmed(KeyRef),
    /// A key file or the store's metadata is damaged.
    #[error("damaged key store file {path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The cryptographic library failed (should not happen with valid keys).
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}
