//! Signature verification for certificates and CRLs, under an algorithm policy.
//!
//! aws-lc-rs does the arithmetic; this module decides which (key, algorithm) pairs are allowed
//! at all: RSA (PKCS#1 v1.5 and PSS) with SHA-256/384/512, ECDSA on the named curves P-256,
//! P-384 and P-521, Ed25519. SHA-1, DSA, explicit curve parameters, small curves and RSA keys
//! below the policy's minimum are refused before any signature is checked.

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use der::asn1::{ObjectIdentifier, UintRef};
use der::{Decode, Encode, Sequence, Tagged};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const RSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const MGF1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.8");
const SHA1_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.5");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA384_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const SHA512_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const ECDSA_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.1");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ECDSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");

/// Which public keys and signature algorithms a validation accepts.
///
/// The default is the current state of the art: RSA keys of at least 2048 bits whose size is a
/// multiple of 8, ECDSA on P-256, P-384 and P-521, Ed25519, and SHA-2 digests only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlgorithmPolicy {
    /// The smallest RSA modulus accepted, in bits. Values below 2048 are treated as 2048: the
    /// verifier does not check smaller keys.
    pub min_rsa_bits: usize,
    /// Whether P-521 keys are accepted.
    pub allow_p521: bool,
    /// Whether RSA PKCS#1 v1.5 signatures with SHA-1 are accepted (legacy evidence only; never
    /// for anything new). ECDSA with SHA-1 is never accepted.
    pub allow_sha1: bool,
}

impl Default for AlgorithmPolicy {
    fn default() -> Self {
        AlgorithmPolicy { min_rsa_bits: 2048, allow_p521: true, allow_sha1: false }
    }
}

/// Why a key or a signature was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureFailure {
    /// The key or algorithm is known but below the policy (CRYPTO_CONSTRAINTS_FAILURE).
    Weak(String),
    /// The key or algorithm is not one this validator supports (CRYPTO_CONSTRAINTS_FAILURE).
    Unsupported(String),
    /// The signature does not verify (SIG_CRYPTO_FAILURE).
    Invalid,
}

/// The kind of public key a certificate carries, once the policy accepted it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    P256,
    P384,
    P521,
    Ed25519,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

/// RSAPublicKey (RFC 8017 A.1.1).
#[derive(Sequence)]
struct RsaPublicKey<'a> {
    modulus: UintRef<'a>,
    public_exponent: UintRef<'a>,
}

/// RSASSA-PSS-params (RFC 4055 §3.1).
#[derive(Sequence)]
struct PssParams {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    hash: Option<AlgorithmIdentifierOwned>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    mask_gen: Option<AlgorithmIdentifierOwned>,
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
    salt_length: Option<u32>,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    trailer_field: Option<u32>,
}

impl AlgorithmPolicy {
    /// Checks that `spki` is a key this policy accepts (size, curve, encoding).
    pub fn check_key(&self, spki: &SubjectPublicKeyInfoOwned) -> Result<(), SignatureFailure> {
        self.key_kind(spki).map(|_| ())
    }

    fn key_kind(&self, spki: &SubjectPublicKeyInfoOwned) -> Result<KeyKind, SignatureFailure> {
        let oid = spki.algorithm.oid;
        let key = spki.subject_public_key.as_bytes().ok_or_else(|| SignatureFailure::Unsupported("public key is not a whole number of octets".into()))?;
        if oid == RSA_ENCRYPTION {
            if !params_null_or_absent(&spki.algorithm) {
                return Err(SignatureFailure::Unsupported("rsaEncryption key with parameters other than NULL".into()));
            }
            let rsa = RsaPublicKey::from_der(key).map_err(|_| SignatureFailure::Unsupported("malformed RSA public key".into()))?;
            let modulus = rsa.modulus.as_bytes();
            let bits = match modulus.first() {
                Some(first) => modulus.len() * 8 - first.leading_zeros() as usize,
                None => 0,
            };
            let min = self.min_rsa_bits.max(2048);
            if bits < min {
                return Err(SignatureFailure::Weak(format!("RSA key of {bits} bits, below the {min} bits required")));
            }
            if bits % 8 != 0 {
                return Err(SignatureFailure::Weak(format!("RSA key of {bits} bits, not a multiple of 8")));
            }
            if bits > 8192 {
                return Err(SignatureFailure::Unsupported(format!("RSA key of {bits} bits, above 8192")));
            }
            let exponent = rsa.public_exponent.as_bytes();
            if exponent.len() > 4 || exponent.last().is_none_or(|b| b % 2 == 0) || exponent == [1] {
                return Err(SignatureFailure::Weak("RSA public exponent is not an odd number above 1".into()));
            }
            return Ok(KeyKind::Rsa);
        }
        if oid == EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                .ok_or_else(|| SignatureFailure::Unsupported("EC key without a named curve (explicit parameters are refused)".into()))?;
            let (kind, len) = if curve == P256 {
                (KeyKind::P256, 65)
            } else if curve == P384 {
                (KeyKind::P384, 97)
            } else if curve == P521 && self.allow_p521 {
                (KeyKind::P521, 133)
            } else {
                return Err(SignatureFailure::Unsupported(format!("EC key on curve {curve}, not P-256, P-384 or P-521")));
            };
            if key.len() != len || key[0] != 4 {
                return Err(SignatureFailure::Unsupported("EC public key is not an uncompressed point of its curve".into()));
            }
            return Ok(kind);
        }
        if oid == ED25519 {
            if spki.algorithm.parameters.is_some() || key.len() != 32 {
                return Err(SignatureFailure::Unsupported("malformed Ed25519 public key".into()));
            }
            return Ok(KeyKind::Ed25519);
        }
        Err(SignatureFailure::Unsupported(format!("public key algorithm {oid}")))
    }

    /// Verifies `signature` over `message` made with `algorithm` by the key in `spki`.
    pub fn verify(
        &self,
        spki: &SubjectPublicKeyInfoOwned,
        algorithm: &AlgorithmIdentifierOwned,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureFailure> {
        let kind = self.key_kind(spki)?;
        let verifier = self.verification_algorithm(kind, algorithm)?;
        let key = spki.subject_public_key.as_bytes().ok_or(SignatureFailure::Invalid)?;
        UnparsedPublicKey::new(verifier, key).verify(message, signature).map_err(|_| SignatureFailure::Invalid)
    }

    fn verification_algorithm(&self, kind: KeyKind, algorithm: &AlgorithmIdentifierOwned) -> Result<&'static dyn VerificationAlgorithm, SignatureFailure> {
        let oid = algorithm.oid;
        let mismatch = || SignatureFailure::Unsupported(format!("signature algorithm {oid} does not fit the issuer's {kind:?} key"));
        let rsa_pkcs1 = [(SHA1_WITH_RSA, Hash::Sha1), (SHA256_WITH_RSA, Hash::Sha256), (SHA384_WITH_RSA, Hash::Sha384), (SHA512_WITH_RSA, Hash::Sha512)];
        if let Some((_, hash)) = rsa_pkcs1.iter().find(|(o, _)| *o == oid) {
            if kind != KeyKind::Rsa {
                return Err(mismatch());
            }
            if !params_null_or_absent(algorithm) {
                return Err(SignatureFailure::Unsupported("RSA PKCS#1 v1.5 signature algorithm with parameters other than NULL".into()));
            }
            return match hash {
                Hash::Sha1 if self.allow_sha1 => Ok(&signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY),
                Hash::Sha1 => Err(SignatureFailure::Weak("SHA-1 signature".into())),
                Hash::Sha256 => Ok(&signature::RSA_PKCS1_2048_8192_SHA256),
                Hash::Sha384 => Ok(&signature::RSA_PKCS1_2048_8192_SHA384),
                Hash::Sha512 => Ok(&signature::RSA_PKCS1_2048_8192_SHA512),
            };
        }
        if oid == RSA_PSS {
            if kind != KeyKind::Rsa {
                return Err(mismatch());
            }
            return match pss_hash(algorithm)? {
                Hash::Sha256 => Ok(&signature::RSA_PSS_2048_8192_SHA256),
                Hash::Sha384 => Ok(&signature::RSA_PSS_2048_8192_SHA384),
                Hash::Sha512 => Ok(&signature::RSA_PSS_2048_8192_SHA512),
                Hash::Sha1 => Err(SignatureFailure::Weak("SHA-1 signature".into())),
            };
        }
        let ecdsa = [(ECDSA_SHA1, Hash::Sha1), (ECDSA_SHA256, Hash::Sha256), (ECDSA_SHA384, Hash::Sha384), (ECDSA_SHA512, Hash::Sha512)];
        if let Some((_, hash)) = ecdsa.iter().find(|(o, _)| *o == oid) {
            if algorithm.parameters.is_some() {
                return Err(SignatureFailure::Unsupported("ECDSA signature algorithm with parameters".into()));
            }
            return match (kind, hash) {
                (_, Hash::Sha1) => Err(SignatureFailure::Weak("SHA-1 signature".into())),
                (KeyKind::P256, Hash::Sha256) => Ok(&signature::ECDSA_P256_SHA256_ASN1),
                (KeyKind::P256, Hash::Sha384) => Ok(&signature::ECDSA_P256_SHA384_ASN1),
                (KeyKind::P256, Hash::Sha512) => Ok(&signature::ECDSA_P256_SHA512_ASN1),
                (KeyKind::P384, Hash::Sha256) => Ok(&signature::ECDSA_P384_SHA256_ASN1),
                (KeyKind::P384, Hash::Sha384) => Ok(&signature::ECDSA_P384_SHA384_ASN1),
                (KeyKind::P384, Hash::Sha512) => Ok(&signature::ECDSA_P384_SHA512_ASN1),
                (KeyKind::P521, Hash::Sha256) => Ok(&signature::ECDSA_P521_SHA256_ASN1),
                (KeyKind::P521, Hash::Sha384) => Ok(&signature::ECDSA_P521_SHA384_ASN1),
                (KeyKind::P521, Hash::Sha512) => Ok(&signature::ECDSA_P521_SHA512_ASN1),
                _ => Err(mismatch()),
            };
        }
        if oid == ED25519 {
            if kind != KeyKind::Ed25519 {
                return Err(mismatch());
            }
            if algorithm.parameters.is_some() {
                return Err(SignatureFailure::Unsupported("Ed25519 signature algorithm with parameters".into()));
            }
            return Ok(&signature::ED25519);
        }
        Err(SignatureFailure::Unsupported(format!("signature algorithm {oid}")))
    }
}

fn params_null_or_absent(algorithm: &AlgorithmIdentifierOwned) -> bool {
    match &algorithm.parameters {
        None => true,
        Some(p) => p.tag() == der::Tag::Null && p.value().is_empty(),
    }
}

fn hash_of(oid: ObjectIdentifier) -> Option<Hash> {
    [(SHA1, Hash::Sha1), (SHA256, Hash::Sha256), (SHA384, Hash::Sha384), (SHA512, Hash::Sha512)].into_iter().find(|(o, _)| *o == oid).map(|(_, h)| h)
}

/// The hash of RSASSA-PSS parameters, when they are the only form aws-lc-rs checks: MGF1 with
/// the same hash, a salt as long as the digest, trailer field 1.
fn pss_hash(algorithm: &AlgorithmIdentifierOwned) -> Result<Hash, SignatureFailure> {
    let bad = |why: &str| SignatureFailure::Unsupported(format!("RSASSA-PSS parameters: {why}"));
    let params = algorithm.parameters.as_ref().ok_or_else(|| bad("absent"))?;
    let params: PssParams = params.decode_as().map_err(|_| bad("malformed"))?;
    let hash = params.hash.as_ref().map(|h| h.oid).unwrap_or(SHA1);
    let hash = hash_of(hash).ok_or_else(|| bad("unknown hash"))?;
    let mgf = params.mask_gen.ok_or_else(|| bad("MGF1 is SHA-1 by default"))?;
    if mgf.oid != MGF1 {
        return Err(bad("mask generation function is not MGF1"));
    }
    let mgf_hash: AlgorithmIdentifierOwned =
        mgf.parameters.as_ref().ok_or_else(|| bad("MGF1 without its hash"))?.decode_as().map_err(|_| bad("malformed MGF1 hash"))?;
    if hash_of(mgf_hash.oid) != Some(hash) {
        return Err(bad("MGF1 hash differs from the message hash"));
    }
    let expected_salt = match hash {
        Hash::Sha1 => 20,
        Hash::Sha256 => 32,
        Hash::Sha384 => 48,
        Hash::Sha512 => 64,
    };
    if params.salt_length.unwrap_or(20) != expected_salt {
        return Err(bad("salt length differs from the digest length"));
    }
    if params.trailer_field.unwrap_or(1) != 1 {
        return Err(bad("trailer field is not 1"));
    }
    Ok(hash)
}

/// The DER of an algorithm identifier, for comparing the two copies a certificate carries.
pub(crate) fn algorithm_der(algorithm: &AlgorithmIdentifierOwned) -> Vec<u8> {
    algorithm.to_der().unwrap_or_default()
}
