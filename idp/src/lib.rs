//! The OpenID Connect provider (issue 3, in progress).
//!
//! So far: the credentials citizens log in with — passwords hashed with Argon2id and
//! one-time codes (TOTP, RFC 6238) — as domain logic, with no HTTP and no storage
//! decisions beyond the ephemeral store that refuses a replayed code. The protocol,
//! sessions and login pages come next.
//!
//! This crate must never depend on the CA (`ca`): smart-ID certificates will be checked
//! through a small trait the binary wires to the local CA.
#![forbid(unsafe_code)]

pub mod credentials;

/// Everything the IdP refuses or fails at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdpError {
    /// A password that does not meet the policy.
    #[error("the password must be {min} to {max} characters long")]
    PasswordLength {
        /// Fewest characters.
        min: usize,
        /// Most characters.
        max: usize,
    },
    /// A stored password hash cannot be read.
    #[error("stored password hash is damaged: {0}")]
    CorruptHash(String),
    /// A TOTP secret that cannot be used.
    #[error("invalid one-time-code secret: {0}")]
    InvalidTotpSecret(String),
    /// The ephemeral store failed.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The cryptographic library failed.
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
}
