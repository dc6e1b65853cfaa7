/// Everything the CA refuses or fails at. Messages are one line, fit for the CLI and logs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// No profile by that name.
    #[error("unknown profile {0:?}")]
    UnknownProfile(String),
    /// The profile is not issued from requests (CA profiles are issued at ceremonies only).
    #[error("profile {0:?} cannot be issued from a request")]
    NotIssuable(String),
    /// No authority by that name.
    #[error("unknown authority {name:?} (known: {known})")]
    UnknownAuthority {
        /// What was asked for.
        name: String,
        /// What exists.
        known: String,
    },
    /// The request could not be decoded.
    #[error("malformed certificate request: {0}")]
    MalformedCsr(String),
    /// The request's signature does not verify (no proof of possession).
    #[error("the certificate request's signature does not verify")]
    BadCsrSignature,
    /// The requested key is of a kind or size Hawiya does not accept at all.
    #[error("the request's key is not accepted: {0}")]
    UnsupportedKey(String),
    /// The requested key is of a kind or size the profile does not allow.
    #[error("profile {profile:?} does not allow {key} keys (allowed: {allowed})")]
    KeyNotAllowed {
        /// The profile.
        profile: String,
        /// The key offered.
        key: String,
        /// What the profile allows.
        allowed: String,
    },
    /// The request names another citizen than the proven one.
    #[error("the request names {asked}, not the proven identity {proven}")]
    SubjectMismatch {
        /// The serialNumber in the request.
        asked: String,
        /// The proven subject's.
        proven: String,
    },
    /// The subject is incomplete or invalid for the profile.
    #[error("invalid subject: {0}")]
    InvalidSubject(String),
    /// The hierarchy already exists.
    #[error("{0}")]
    CeremonyExists(String),
    /// A CA renewal refused before anything was created.
    #[error("cannot renew: {0}")]
    NotRenewable(String),
    /// No hierarchy yet.
    #[error("no CA hierarchy in this store: run `hawiya ca init` first")]
    NoCeremony,
    /// The ceremony configuration is wrong.
    #[error("ceremony configuration: {0}")]
    Config(String),
    /// The durable store refused or failed.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// A CMS structure (a timestamp token) could not be built.
    #[error(transparent)]
    Cms(#[from] pkix::PkixError),
    /// The key store refused or failed.
    #[error(transparent)]
    Key(#[from] hsm_shim::Error),
    /// Building a certificate, CRL or response failed.
    #[error("encoding: {0}")]
    Encoding(String),
}

impl From<rcgen::Error> for CaError {
    fn from(e: rcgen::Error) -> Self {
        CaError::Encoding(e.to_string())
    }
}

impl From<der::Error> for CaError {
    fn from(e: der::Error) -> Self {
        CaError::Encoding(e.to_string())
    }
}
