//! PKCS#10 requests: decoding and proof of possession.

use aws_lc_rs::signature as verify;
use der::asn1::ObjectIdentifier;
use der::{Decode, DecodePem, Encode, Tagged};
use hsm_shim::{KeySpec, PublicKey};
use x509_cert::request::CertReq;

use crate::CaError;

const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const RSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const RSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");

const SERIAL_NUMBER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.5");

/// A checked request: its key, and the subject serialNumber it asks for, if any.
#[derive(Debug)]
pub struct Verified {
    /// The key, whose possession the request's signature proves.
    pub key: PublicKey,
    /// The subject serialNumber it names (for a citizen, `PNO<CC>-<national id>`).
    pub serial_number: Option<String>,
}

fn decode(input: &[u8]) -> Result<CertReq, CaError> {
    let malformed = |e: der::Error| CaError::MalformedCsr(e.to_string());
    if input.trim_ascii_start().starts_with(b"-----BEGIN") {
        let text = std::str::from_utf8(input).map_err(|_| CaError::MalformedCsr("PEM is not UTF-8".into()))?;
        CertReq::from_pem(text).map_err(malformed)
    } else {
        CertReq::from_der(input).map_err(malformed)
    }
}

/// The subject serialNumber a request names, if any.
fn serial_number(req: &CertReq) -> Result<Option<String>, CaError> {
    let Some(atv) = req.info.subject.0.iter().flat_map(|rdn| rdn.0.iter()).find(|atv| atv.oid == SERIAL_NUMBER) else { return Ok(None) };
    let text = match atv.value.tag() {
        der::Tag::PrintableString => atv.value.decode_as::<der::asn1::PrintableStringRef<'_>>().map(|s| s.as_str().to_owned()),
        der::Tag::Utf8String => atv.value.decode_as::<der::asn1::Utf8StringRef<'_>>().map(|s| s.as_str().to_owned()),
        other => return Err(CaError::MalformedCsr(format!("subject serialNumber is a {other}, not a string"))),
    };
    text.map(Some).map_err(|e| CaError::MalformedCsr(e.to_string()))
}

/// Makes a PKCS#10 request (PEM) for `subject`, signed by the key it asks a certificate
/// for: what a citizen's device sends at activation.
pub fn request(subject: &crate::Subject, key: &hsm_shim::signer::StoredKeySigner) -> Result<String, CaError> {
    subject.validate()?;
    key.check_rcgen()?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = crate::profile::distinguished_name(subject)?;
    Ok(params.serialize_request(key)?.pem()?)
}

/// Decodes a request given as PEM or DER and checks its self-signature (proof of
/// possession); returns the key and the serialNumber it names. Whether the profile allows
/// that key is the profile's question, asked when the certificate is built.
pub(crate) fn verified(input: &[u8]) -> Result<Verified, CaError> {
    let malformed = |e: der::Error| CaError::MalformedCsr(e.to_string());
    let req = decode(input)?;
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
    verify::UnparsedPublicKey::new(algorithm, key.subject_public_key()).verify(&signed, signature).map_err(|_| CaError::BadCsrSignature)?;
    Ok(Verified { key, serial_number: serial_number(&req)? })
}
