//! X.509 and CMS building blocks shared by the CA, the identity provider and e-signatures.
//!
//! This crate knows no key store, no database and no HTTP: it encodes and decodes. The
//! timestamp authority (`ca`) and the signatures of `esign` build their CMS SignedData
//! ([`cms`]) here, so that both write signed attributes, signing-certificate references and
//! embedded revocation evidence the same way. The certificate path validator of the
//! validation issue belongs here too.

pub mod cms;
mod digest;
pub mod path;
pub mod tsp;

pub use digest::DigestAlgorithm;

/// Why a structure could not be built or read.
#[derive(Debug, thiserror::Error)]
pub enum PkixError {
    /// DER encoding or decoding failed.
    #[error("DER: {0}")]
    Der(#[from] der::Error),
    /// A value is not what the standard allows.
    #[error("{0}")]
    Invalid(String),
}
