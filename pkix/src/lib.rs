//! X.509 and CMS building blocks shared by the CA, the identity provider and e-signatures.
//!
//! This crate knows no key store, no database and no HTTP: it encodes, decodes and validates,
//! and never fetches anything (intermediates, trust anchors and revocation evidence are handed
//! to it). The
//! timestamp authority (`ca`) and the signatures of `esign` build their CMS SignedData
//! ([`cms`]) here, so that both write signed attributes, signing-certificate references and
//! embedded revocation evidence the same way. [`path`] is the one certificate path validator
//! of the project (RFC 5280 path building and validation, revocation through a trait the
//! caller implements): the smart-ID login and the signature validator of `esign` check their
//! certificates with it. [`ocsp`] is the one OCSP request and the one check of an OCSP
//! response, used by the smart-ID login's OCSP client, the B-LT assembly of `esign` and
//! [`evidence`], which turns a signature's embedded OCSP responses and CRLs into the
//! validator's revocation source. Its peer test suite is x509-limbo (`pkix/tests/limbo.rs`).

pub mod cms;
mod digest;
pub mod etsi;
pub mod evidence;
pub mod ocsp;
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
