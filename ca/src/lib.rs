//! The national certificate authority.
//!
//! A key ceremony ([`ceremony`]) builds the hierarchy — National Root CA, Citizen
//! Authentication CA, Citizen Signing CA, Services CA, a delegated OCSP responder per
//! issuing CA and the timestamp authority — with keys in the key store and certificate
//! contents from the profiles in `policies/`; [`ceremony::renew`] later gives an issuing CA a
//! new generation (key, certificate, responder) while the old one keeps answering for what it
//! issued. The [`Authority`] then issues certificates from
//! PKCS#10 requests for identities that an upper layer has already proven (it never knows
//! how the caller logged in), revokes and suspends them, signs CRLs, and answers OCSP
//! ([`ocsp`]). The timestamp authority ([`tsa`]) issues RFC 3161 tokens. [`http`] serves CA
//! certificates, CRLs and OCSP at the URLs written into the certificates, and the TSA.
//!
//! Every certificate is committed to the durable store before it is handed out. Private keys
//! never leave the key store.

pub mod authority;
pub mod ceremony;
pub mod csr;
mod error;
pub mod http;
pub mod metrics;
pub mod ocsp;
mod profile;
pub mod tsa;

pub use authority::{Authority, IssueRequest, Issued, Subject};
pub use error::CaError;

/// The authority names of the default hierarchy, as used in URLs and on the command line.
pub mod names {
    /// The National Root CA.
    pub const ROOT: &str = "root";
    /// The Citizen Authentication CA.
    pub const CITIZEN_AUTHENTICATION: &str = "citizen-authentication-ca";
    /// The Citizen Signing CA.
    pub const CITIZEN_SIGNING: &str = "citizen-signing-ca";
    /// The Services CA.
    pub const SERVICES: &str = "services-ca";
    /// The timestamp authority.
    pub const TSA: &str = "tsa";
    /// The signature validation service: its key signs validation reports.
    pub const VALIDATION_SERVICE: &str = "validation-service";
    /// The audit log: its key signs the checkpoints of the audit chain.
    pub const AUDIT_LOG: &str = "audit-log";
    /// The issuing CAs, in ceremony order.
    pub const ISSUING: [&str; 3] = [CITIZEN_AUTHENTICATION, CITIZEN_SIGNING, SERVICES];

    /// The name of generation `n` (1, 2, …) of issuing CA `ca`: the ceremony's is `ca`
    /// itself, each renewal's `ca-n` (`citizen-authentication-ca-2`); the name is the file
    /// name of its certificate and CRL (`/ca/citizen-authentication-ca-2.crt`,
    /// `/crl/citizen-authentication-ca-2.crl`), so generations never share a URL.
    pub fn generation(ca: &str, n: usize) -> String {
        if n <= 1 { ca.to_owned() } else { format!("{ca}-{n}") }
    }

    /// The name of the delegated OCSP responder of issuing CA `ca`.
    pub fn ocsp_responder(ca: &str) -> String {
        format!("{ca}-ocsp")
    }
}

/// Unix seconds now.
pub(crate) fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
