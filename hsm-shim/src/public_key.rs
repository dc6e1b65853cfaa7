use aws_lc_rs::signature as verify;
use der::asn1::{ObjectIdentifier, UintRef};
use der::{Decode, Sequence};
use spki::SubjectPublicKeyInfoRef;

use crate::{Error, KeySpec, SignatureAlgorithm};

const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const ID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// A public key: its type and its DER SubjectPublicKeyInfo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    spec: KeySpec,
    spki_der: Vec<u8>,
    /// Offset of the subjectPublicKey octets inside `spki_der`.
    key_offset: usize,
}

#[derive(Sequence)]
struct RsaPublicKey<'a> {
    modulus: UintRef<'a>,
    public_exponent: UintRef<'a>,
}

impl PublicKey {
    /// Parses a DER SubjectPublicKeyInfo and works out the key type, refusing keys Hawiya
    /// does not support (other curves, RSA sizes other than 2048/3072/4096).
    pub fn from_spki_der(spki_der: &[u8]) -> Result<Self, Error> {
        let unsupported = |what: &str| Error::UnsupportedKey(what.to_owned());
        let spki = SubjectPublicKeyInfoRef::from_der(spki_der).map_err(|e| unsupported(&format!("malformed SubjectPublicKeyInfo: {e}")))?;
        let key = spki.subject_public_key.as_bytes().ok_or_else(|| unsupported("public key is not whole octets"))?;
        let spec = match spki.algorithm.oid {
            ID_EC_PUBLIC_KEY => {
                let curve = spki
                    .algorithm
                    .parameters
                    .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                    .ok_or_else(|| unsupported("EC key without a named curve"))?;
                let (spec, len) = match curve {
                    SECP256R1 => (KeySpec::EcP256, 65),
                    SECP384R1 => (KeySpec::EcP384, 97),
                    other => return Err(unsupported(&format!("EC curve {other}"))),
                };
                if key.len() != len || key[0] != 4 {
                    return Err(unsupported("EC public key is not an uncompressed point of its curve"));
                }
                spec
            }
            ID_ED25519 if key.len() == 32 && spki.algorithm.parameters.is_none() => KeySpec::Ed25519,
            ID_ED25519 => return Err(unsupported("malformed Ed25519 key")),
            RSA_ENCRYPTION => {
                let rsa = RsaPublicKey::from_der(key).map_err(|e| unsupported(&format!("malformed RSA key: {e}")))?;
                let n = rsa.modulus.as_bytes();
                let bits = n.len() * 8 - n.first().map_or(0, |b| b.leading_zeros() as usize);
                match bits {
                    2048 => KeySpec::Rsa2048,
                    3072 => KeySpec::Rsa3072,
                    4096 => KeySpec::Rsa4096,
                    other => return Err(unsupported(&format!("RSA-{other} (only 2048, 3072 and 4096 bits)"))),
                }
            }
            other => return Err(unsupported(&format!("key algorithm {other}"))),
        };
        let key_offset = spki_der.len() - key.len();
        Ok(PublicKey { spec, spki_der: spki_der.to_vec(), key_offset })
    }

    /// Builds the SubjectPublicKeyInfo from a key type and its subjectPublicKey octets (the EC
    /// point, the 32 Ed25519 octets, or the DER RSAPublicKey).
    pub fn from_parts(spec: KeySpec, subject_public_key: &[u8]) -> Result<Self, Error> {
        let algorithm: &[u8] = match spec {
            KeySpec::EcP256 => &[0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
            KeySpec::EcP384 => &[0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22],
            KeySpec::Ed25519 => &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70],
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
                &[0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00]
            }
        };
        let mut bit_string = Vec::with_capacity(subject_public_key.len() + 1);
        bit_string.push(0); // no unused bits
        bit_string.extend_from_slice(subject_public_key);
        let mut body = algorithm.to_vec();
        body.extend(der_tlv(0x03, &bit_string));
        let spki = der_tlv(0x30, &body);
        let key = PublicKey::from_spki_der(&spki)?;
        if key.spec != spec {
            return Err(Error::UnsupportedKey(format!("expected a {spec} key, the token holds a {}", key.spec)));
        }
        Ok(key)
    }

    /// The key type.
    pub fn spec(&self) -> KeySpec {
        self.spec
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The subjectPublicKey octets (what key identifiers are hashed from).
    pub fn subject_public_key(&self) -> &[u8] {
        &self.spki_der[self.key_offset..]
    }

    /// Verifies `signature` (in the X.509 encoding, as [`crate::KeyStore::sign`] returns it)
    /// over `message`.
    pub fn verify(&self, algorithm: SignatureAlgorithm, message: &[u8], signature: &[u8]) -> Result<(), Error> {
        algorithm.check_fits(self.spec)?;
        let params: &'static dyn verify::VerificationAlgorithm = match algorithm {
            SignatureAlgorithm::Es256 => &verify::ECDSA_P256_SHA256_ASN1,
            SignatureAlgorithm::Es384 => &verify::ECDSA_P384_SHA384_ASN1,
            SignatureAlgorithm::EdDsa => &verify::ED25519,
            SignatureAlgorithm::Rs256 => &verify::RSA_PKCS1_2048_8192_SHA256,
            SignatureAlgorithm::Ps256 => &verify::RSA_PSS_2048_8192_SHA256,
        };
        verify::UnparsedPublicKey::new(params, self.subject_public_key()).verify(message, signature).map_err(|_| Error::BadSignature)
    }
}

/// Encodes one DER tag-length-value.
pub(crate) fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// Reads the content of a DER OCTET STRING (PKCS#11 wraps EC points in one).
pub(crate) fn der_octet_string(der: &[u8]) -> Option<&[u8]> {
    der::asn1::OctetStringRef::from_der(der).ok().map(|o| o.as_bytes())
}
