//! The digest algorithms documents, signed attributes and timestamp imprints may use.

use aws_lc_rs::digest;
use der::asn1::ObjectIdentifier;
use spki::AlgorithmIdentifierOwned;

/// A SHA-2 digest algorithm. SHA-1 is deliberately absent: nothing new is made with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl DigestAlgorithm {
    /// Every supported algorithm.
    pub const ALL: [DigestAlgorithm; 3] = [DigestAlgorithm::Sha256, DigestAlgorithm::Sha384, DigestAlgorithm::Sha512];

    /// The algorithm's object identifier (NIST, 2.16.840.1.101.3.4.2.x).
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            DigestAlgorithm::Sha256 => ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1"),
            DigestAlgorithm::Sha384 => ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2"),
            DigestAlgorithm::Sha512 => ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3"),
        }
    }

    /// The algorithm named by `oid`, if it is one of ours.
    pub fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.oid() == *oid)
    }

    /// The configuration name (`sha256`, …).
    pub fn name(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha256 => "sha256",
            DigestAlgorithm::Sha384 => "sha384",
            DigestAlgorithm::Sha512 => "sha512",
        }
    }

    /// The algorithm called `name` in configuration (`sha256`, `sha384`, `sha512`).
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The length of a digest in octets.
    pub fn output_len(self) -> usize {
        self.ring().output_len()
    }

    /// The AlgorithmIdentifier, with absent parameters (RFC 5754 §2).
    pub fn identifier(self) -> AlgorithmIdentifierOwned {
        AlgorithmIdentifierOwned { oid: self.oid(), parameters: None }
    }

    /// The digest of `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        digest::digest(self.ring(), data).as_ref().to_vec()
    }

    /// A running digest, for data that arrives in pieces (PDF byte ranges).
    pub fn context(self) -> digest::Context {
        digest::Context::new(self.ring())
    }

    fn ring(self) -> &'static digest::Algorithm {
        match self {
            DigestAlgorithm::Sha256 => &digest::SHA256,
            DigestAlgorithm::Sha384 => &digest::SHA384,
            DigestAlgorithm::Sha512 => &digest::SHA512,
        }
    }
}

impl std::fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
