//! PKCS#10 requests: decoding and proof of possession.

use aws_lc_rs::signature as verify;
use der::asn1::ObjectIdentifier;
use der::{Decode, DecodePem, Encode};
use hsm_shim::{KeySpec, PublicKey};
use x509_cert::request::CertReq;

use crate::CaError;

const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const RSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const RSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");

/// Decodes a request given as PEM or DER and checks its self-signature (proof of
/// possession); returns the key. Whether the profile allows that key is the profile's
/// question, asked when the certificate is built.
pub(crate) fn verified_key(input: &[u8]) -> Result<PublicKey, CaError> {
    let malformed = |e: der::Error| CaError::MalformedCsr(e.to_string());
    let req = if input.trim_ascii_start().starts_with(b"-----BEGIN") {
        let text = std::str::from_utf8(input).map_err(|_| CaError::MalformedCsr("PEM is not UTF-8".into()))?;
        CertReq::from_pem(text).map_err(malformed)?
    } else {
        CertReq::from_der(input).map_err(malformed)?
    };
    let spki = req.info.public_key.to_der().map_err(malformed)?;
    let key = PublicKey::from_spki_der(&spki).map_err(|e| match e {
        hsm_shim::Error::UnsupportedKey(what) => CaError::UnsupportedKey(what),
        other => CaError::MalformedCsr(other.to_string()),
    })?;
    let signed = req.info.to_der().map_err(malformed)?;
    let signature = req.signature.as_bytes().ok_or_else(|| CaError::MalformedCsr("signature is not whole octets".into()))?;
    let algorithm: &'static dyn verify::VerificationAlgorithm = match (req.algorithm.oid, key.spec()) {
        (ECDSA_SHA256, KeySpec::EcP256) => &verify::ECDSA_P256_SHA256_ASN1,
        (ECDSA_SHA384, KeySpec::EcP256) => &verify::ECDSA_P256_SHA384_ASN1,
        (ECDSA_SHA256, KeySpec::EcP384) => &verify::ECDSA_P384_SHA256_ASN1,
        (ECDSA_SHA384, KeySpec::EcP384) => &verify::ECDSA_P384_SHA384_ASN1,
        (ED25519, KeySpec::Ed25519) => &verify::ED25519,
        (RSA_SHA256, s) if s.rsa_bits().is_some() => &verify::RSA_PKCS1_2048_8192_SHA256,
        (RSA_SHA384, s) if s.rsa_bits().is_some() => &verify::RSA_PKCS1_2048_8192_SHA384,
        (RSA_SHA512, s) if s.rsa_bits().is_some() => &verify::RSA_PKCS1_2048_8192_SHA512,
        (oid, spec) => return Err(CaError::MalformedCsr(format!("signature algorithm {oid} with a {spec} key is not supported"))),
    };
    verify::UnparsedPublicKey::new(algorithm, key.subject_public_key())
        .verify(&signed, signature)
        .map_err(|_| CaError::BadCsrSignature)?;
    Ok(key)
}
