use std::fmt;
use std::str::FromStr;

use crate::Error;

/// The type and size of a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeySpec {
    /// ECDSA on NIST P-256.
    EcP256,
    /// ECDSA on NIST P-384.
    EcP384,
    /// Ed25519.
    Ed25519,
    /// RSA with a 2048-bit modulus.
    Rsa2048,
    /// RSA with a 3072-bit modulus.
    Rsa3072,
    /// RSA with a 4096-bit modulus.
    Rsa4096,
}

impl KeySpec {
    /// Every supported key type.
    pub const ALL: [KeySpec; 6] = [KeySpec::EcP256, KeySpec::EcP384, KeySpec::Ed25519, KeySpec::Rsa2048, KeySpec::Rsa3072, KeySpec::Rsa4096];

    /// The name used in configuration and policy files (`ec-p256`, `rsa-3072`, …).
    pub fn name(self) -> &'static str {
        match self {
            KeySpec::EcP256 => "ec-p256",
            KeySpec::EcP384 => "ec-p384",
            KeySpec::Ed25519 => "ed25519",
            KeySpec::Rsa2048 => "rsa-2048",
            KeySpec::Rsa3072 => "rsa-3072",
            KeySpec::Rsa4096 => "rsa-4096",
        }
    }

    /// RSA modulus size in bits, for RSA keys.
    pub fn rsa_bits(self) -> Option<u32> {
        match self {
            KeySpec::Rsa2048 => Some(2048),
            KeySpec::Rsa3072 => Some(3072),
            KeySpec::Rsa4096 => Some(4096),
            _ => None,
        }
    }

    /// The algorithm a key of this type signs with unless told otherwise.
    pub fn default_algorithm(self) -> SignatureAlgorithm {
        match self {
            KeySpec::EcP256 => SignatureAlgorithm::Es256,
            KeySpec::EcP384 => SignatureAlgorithm::Es384,
            KeySpec::Ed25519 => SignatureAlgorithm::EdDsa,
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => SignatureAlgorithm::Rs256,
        }
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeySpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        KeySpec::ALL
            .into_iter()
            .find(|spec| spec.name() == s)
            .ok_or_else(|| Error::UnsupportedKey(format!("{s:?} (expected one of ec-p256, ec-p384, ed25519, rsa-2048, rsa-3072, rsa-4096)")))
    }
}

/// A signature algorithm, named as in JOSE (RFC 7518 / RFC 8037).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignatureAlgorithm {
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// ECDSA P-384 with SHA-384.
    Es384,
    /// Ed25519.
    EdDsa,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt.
    Ps256,
}

impl SignatureAlgorithm {
    /// Every supported algorithm.
    pub const ALL: [SignatureAlgorithm; 5] =
        [SignatureAlgorithm::Es256, SignatureAlgorithm::Es384, SignatureAlgorithm::EdDsa, SignatureAlgorithm::Rs256, SignatureAlgorithm::Ps256];

    /// The JOSE name (`ES256`, …).
    pub fn name(self) -> &'static str {
        match self {
            SignatureAlgorithm::Es256 => "ES256",
            SignatureAlgorithm::Es384 => "ES384",
            SignatureAlgorithm::EdDsa => "EdDSA",
            SignatureAlgorithm::Rs256 => "RS256",
            SignatureAlgorithm::Ps256 => "PS256",
        }
    }

    /// Whether a key of `spec` may sign with this algorithm.
    pub fn fits(self, spec: KeySpec) -> bool {
        match self {
            SignatureAlgorithm::Es256 => spec == KeySpec::EcP256,
            SignatureAlgorithm::Es384 => spec == KeySpec::EcP384,
            SignatureAlgorithm::EdDsa => spec == KeySpec::Ed25519,
            SignatureAlgorithm::Rs256 | SignatureAlgorithm::Ps256 => spec.rsa_bits().is_some(),
        }
    }

    /// `Ok` if a key of `spec` may sign with this algorithm, the precise error otherwise.
    pub fn check_fits(self, spec: KeySpec) -> Result<(), Error> {
        if self.fits(spec) { Ok(()) } else { Err(Error::AlgorithmNotAllowed { spec, algorithm: self }) }
    }

    /// The length in bytes of the digest [`crate::KeyStore::sign_digest`] signs for this
    /// algorithm (32 for SHA-256, 48 for SHA-384), or `None` for EdDSA: PureEdDSA hashes the
    /// message together with the key, so an Ed25519 key cannot sign a digest computed elsewhere.
    pub fn digest_len(self) -> Option<usize> {
        match self {
            SignatureAlgorithm::Es256 | SignatureAlgorithm::Rs256 | SignatureAlgorithm::Ps256 => Some(32),
            SignatureAlgorithm::Es384 => Some(48),
            SignatureAlgorithm::EdDsa => None,
        }
    }

    /// `Ok` if `digest` is a digest this algorithm can sign as it is; the precise error
    /// otherwise ([`Error::PrehashNotSupported`] or [`Error::DigestLength`]).
    pub fn check_digest(self, digest: &[u8]) -> Result<(), Error> {
        let expected = self.digest_len().ok_or(Error::PrehashNotSupported(self))?;
        if digest.len() == expected { Ok(()) } else { Err(Error::DigestLength { algorithm: self, expected, actual: digest.len() }) }
    }

    /// The DER of the X.509 AlgorithmIdentifier for signatures made with this algorithm.
    pub fn x509_algorithm_identifier(self) -> &'static [u8] {
        match self {
            // ecdsa-with-SHA256, no parameters
            SignatureAlgorithm::Es256 => &[0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02],
            // ecdsa-with-SHA384
            SignatureAlgorithm::Es384 => &[0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03],
            // id-Ed25519
            SignatureAlgorithm::EdDsa => &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70],
            // sha256WithRSAEncryption, NULL
            SignatureAlgorithm::Rs256 => &[0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00],
            // RSASSA-PSS with SHA-256, MGF1(SHA-256), salt 32, trailer 1 (RFC 4055)
            SignatureAlgorithm::Ps256 => &[
                0x30, 0x41, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, 0x30, 0x34, 0xa0, 0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48,
                0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08, 0x30,
                0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0xa2, 0x03, 0x02, 0x01, 0x20,
            ],
        }
    }
}

impl fmt::Display for SignatureAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SignatureAlgorithm {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        SignatureAlgorithm::ALL
            .into_iter()
            .find(|alg| alg.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::UnsupportedKey(format!("signature algorithm {s:?} (expected ES256, ES384, EdDSA, RS256 or PS256)")))
    }
}

/// Converts an ECDSA signature from the fixed `r || s` form (PKCS#11, JOSE) to DER.
pub(crate) fn ecdsa_fixed_to_der(fixed: &[u8]) -> Result<Vec<u8>, Error> {
    if fixed.is_empty() || !fixed.len().is_multiple_of(2) {
        return Err(Error::Crypto("ECDSA signature of odd length"));
    }
    let (r, s) = fixed.split_at(fixed.len() / 2);
    let mut body = Vec::with_capacity(fixed.len() + 8);
    for int in [r, s] {
        let first = int.iter().position(|&b| b != 0).unwrap_or(int.len() - 1);
        let int = &int[first..];
        let pad = int[0] & 0x80 != 0;
        body.push(0x02);
        body.push((int.len() + usize::from(pad)) as u8);
        if pad {
            body.push(0);
        }
        body.extend_from_slice(int);
    }
    let mut out = Vec::with_capacity(body.len() + 3);
    out.push(0x30);
    if body.len() < 0x80 {
        out.push(body.len() as u8);
    } else {
        out.push(0x81);
        out.push(body.len() as u8);
    }
    out.extend_from_slice(&body);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for spec in KeySpec::ALL {
            assert_eq!(spec.name().parse::<KeySpec>().ok(), Some(spec));
        }
        for alg in SignatureAlgorithm::ALL {
            assert_eq!(alg.name().parse::<SignatureAlgorithm>().ok(), Some(alg));
        }
        assert!("rsa-1024".parse::<KeySpec>().is_err());
    }

    #[test]
    fn algorithm_fits_only_its_keys() {
        assert!(SignatureAlgorithm::Es256.fits(KeySpec::EcP256));
        assert!(!SignatureAlgorithm::Es256.fits(KeySpec::EcP384));
        assert!(!SignatureAlgorithm::Rs256.fits(KeySpec::Ed25519));
        assert!(SignatureAlgorithm::Ps256.fits(KeySpec::Rsa4096));
    }

    #[test]
    fn digest_lengths_follow_the_hash() {
        assert!(SignatureAlgorithm::Es256.check_digest(&[0; 32]).is_ok());
        assert!(SignatureAlgorithm::Es384.check_digest(&[0; 48]).is_ok());
        assert!(SignatureAlgorithm::Ps256.check_digest(&[0; 32]).is_ok());
        assert!(matches!(
            SignatureAlgorithm::Es384.check_digest(&[0; 32]),
            Err(Error::DigestLength { algorithm: SignatureAlgorithm::Es384, expected: 48, actual: 32 })
        ));
        assert!(matches!(
            SignatureAlgorithm::Rs256.check_digest(&[]),
            Err(Error::DigestLength { algorithm: SignatureAlgorithm::Rs256, expected: 32, actual: 0 })
        ));
        assert!(matches!(SignatureAlgorithm::EdDsa.check_digest(&[0; 64]), Err(Error::PrehashNotSupported(SignatureAlgorithm::EdDsa))));
    }

    #[test]
    fn fixed_to_der_pads_and_trims() {
        let mut fixed = vec![0u8; 64];
        fixed[0] = 0x80; // r needs a leading zero
        fixed[63] = 0x01; // s is the single byte 1
        let der = ecdsa_fixed_to_der(&fixed).expect("valid");
        assert_eq!(&der[..4], &[0x30, 2 + 33 + 3, 0x02, 33]);
        assert_eq!(&der[der.len() - 3..], &[0x02, 0x01, 0x01]);
    }
}
