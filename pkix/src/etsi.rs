//! The vocabulary of ETSI EN 319 102-1 (§5.1.3): the main status indications and their
//! sub-indications, shared by the path validator (which maps its refusals to them) and the
//! signature validator (which reports them).

/// The main status indication (EN 319 102-1 §5.1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Indication {
    /// TOTAL-PASSED: the signature is valid under the policy.
    TotalPassed,
    /// TOTAL-FAILED: the signature is not valid, whatever evidence may come.
    TotalFailed,
    /// INDETERMINATE: the available information does not allow a decision.
    Indeterminate,
}

impl Indication {
    /// The standard's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Indication::TotalPassed => "TOTAL-PASSED",
            Indication::TotalFailed => "TOTAL-FAILED",
            Indication::Indeterminate => "INDETERMINATE",
        }
    }
}

/// The sub-indications of EN 319 102-1 §5.1.3 (table 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SubIndication {
    /// The signature is not conformant to one of the base standards.
    FormatFailure,
    /// The hash of a signed data object does not match the one in the signature.
    HashFailure,
    /// The signature value does not verify with the signing certificate's key.
    SigCryptoFailure,
    /// The signing certificate was revoked before the signature was proved to exist.
    Revoked,
    /// The signing certificate had expired before the signature was proved to exist.
    Expired,
    /// The signing certificate was not yet valid when the signature was proved to exist.
    NotYetValid,
    /// A signature constraint of the policy is not met.
    SigConstraintsFailure,
    /// A constraint on the certificate chain is not met.
    ChainConstraintsFailure,
    /// The chain cannot be validated for another reason.
    CertificateChainGeneralFailure,
    /// An algorithm or key size is not reliable at the time it must be trusted.
    CryptoConstraintsFailure,
    /// The policy cannot be processed.
    PolicyProcessingError,
    /// The signature policy the signature names is not available.
    SignaturePolicyNotAvailable,
    /// Timestamps are in the wrong order.
    TimestampOrderFailure,
    /// The signing certificate cannot be identified.
    NoSigningCertificateFound,
    /// No chain to a trust anchor.
    NoCertificateChainFound,
    /// The signing certificate is revoked and no proof of existence before the revocation.
    RevokedNoPoe,
    /// A CA certificate of the chain is revoked and no proof of existence before it.
    RevokedCaNoPoe,
    /// The signing certificate expired or was not yet valid, and no proof of existence in
    /// its validity period.
    OutOfBoundsNoPoe,
    /// As [`SubIndication::OutOfBoundsNoPoe`], but the certificate is not revoked.
    OutOfBoundsNotRevoked,
    /// The revocation information is outside the certificate's validity and no proof of
    /// existence helps.
    RevocationOutOfBoundsNoPoe,
    /// An algorithm became unreliable and no proof of existence before that.
    CryptoConstraintsFailureNoPoe,
    /// No proof of existence of a signed object where one is needed.
    NoPoe,
    /// Revocation information is not fresh enough yet: try later.
    TryLater,
    /// The signed data cannot be found.
    SignedDataNotFound,
}

impl SubIndication {
    /// The standard's name (`HASH_FAILURE`, …).
    pub fn as_str(self) -> &'static str {
        use SubIndication::*;
        match self {
            FormatFailure => "FORMAT_FAILURE",
            HashFailure => "HASH_FAILURE",
            SigCryptoFailure => "SIG_CRYPTO_FAILURE",
            Revoked => "REVOKED",
            Expired => "EXPIRED",
            NotYetValid => "NOT_YET_VALID",
            SigConstraintsFailure => "SIG_CONSTRAINTS_FAILURE",
            ChainConstraintsFailure => "CHAIN_CONSTRAINTS_FAILURE",
            CertificateChainGeneralFailure => "CERTIFICATE_CHAIN_GENERAL_FAILURE",
            CryptoConstraintsFailure => "CRYPTO_CONSTRAINTS_FAILURE",
            PolicyProcessingError => "POLICY_PROCESSING_ERROR",
            SignaturePolicyNotAvailable => "SIGNATURE_POLICY_NOT_AVAILABLE",
            TimestampOrderFailure => "TIMESTAMP_ORDER_FAILURE",
            NoSigningCertificateFound => "NO_SIGNING_CERTIFICATE_FOUND",
            NoCertificateChainFound => "NO_CERTIFICATE_CHAIN_FOUND",
            RevokedNoPoe => "REVOKED_NO_POE",
            RevokedCaNoPoe => "REVOKED_CA_NO_POE",
            OutOfBoundsNoPoe => "OUT_OF_BOUNDS_NO_POE",
            OutOfBoundsNotRevoked => "OUT_OF_BOUNDS_NOT_REVOKED",
            RevocationOutOfBoundsNoPoe => "REVOCATION_OUT_OF_BOUNDS_NO_POE",
            CryptoConstraintsFailureNoPoe => "CRYPTO_CONSTRAINTS_FAILURE_NO_POE",
            NoPoe => "NO_POE",
            TryLater => "TRY_LATER",
            SignedDataNotFound => "SIGNED_DATA_NOT_FOUND",
        }
    }

    /// Every sub-indication, in the standard's order.
    pub const ALL: [SubIndication; 24] = {
        use SubIndication::*;
        [
            FormatFailure,
            HashFailure,
            SigCryptoFailure,
            Revoked,
            Expired,
            NotYetValid,
            SigConstraintsFailure,
            ChainConstraintsFailure,
            CertificateChainGeneralFailure,
            CryptoConstraintsFailure,
            PolicyProcessingError,
            SignaturePolicyNotAvailable,
            TimestampOrderFailure,
            NoSigningCertificateFound,
            NoCertificateChainFound,
            RevokedNoPoe,
            RevokedCaNoPoe,
            OutOfBoundsNoPoe,
            OutOfBoundsNotRevoked,
            RevocationOutOfBoundsNoPoe,
            CryptoConstraintsFailureNoPoe,
            NoPoe,
            TryLater,
            SignedDataNotFound,
        ]
    };

    /// The sub-indication the standard calls `name` (`HASH_FAILURE`, …).
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether the standard lets this sub-indication go with `indication` (table 5: the
    /// first six go with TOTAL-FAILED; EXPIRED and NOT_YET_VALID, and all others, with
    /// INDETERMINATE).
    pub fn goes_with(self, indication: Indication) -> bool {
        use SubIndication::*;
        match indication {
            Indication::TotalPassed => false,
            Indication::TotalFailed => matches!(self, FormatFailure | HashFailure | SigCryptoFailure | Revoked | Expired | NotYetValid),
            Indication::Indeterminate => !matches!(self, FormatFailure | HashFailure | SigCryptoFailure | Revoked),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_indications_are_read_by_their_standard_names() {
        assert_eq!(SubIndication::named("CRYPTO_CONSTRAINTS_FAILURE_NO_POE"), Some(SubIndication::CryptoConstraintsFailureNoPoe));
        assert_eq!(SubIndication::named(SubIndication::RevokedNoPoe.as_str()), Some(SubIndication::RevokedNoPoe));
        assert_eq!(SubIndication::named("REVOKED-NO-POE"), None);
    }
}
