//! Detached CAdES-BASELINE-B-LT (ETSI EN 319 122-1) around a signature made on a citizen's
//! device, and the CMS that a PAdES signature embeds.
//!
//! The flow, in the order a signing session runs it:
//!
//! 1. [`Prepared::for_document`] (or [`Prepared::for_digest`]) builds the signed attributes
//!    over the document's digest and gives the octets to be signed, their hash (what the
//!    device signs) and the [`verification_code`] the citizen compares on the device.
//! 2. [`Prepared::accept`] takes the device's answer and keeps it only if it is a signature
//!    over exactly that hash, by the signing certificate's key, with the algorithm the key
//!    implies.
//! 3. The caller asks the TSA for a timestamp over [`Signed::signature`] (RFC 3161 appendix A)
//!    and the OCSP responder for the signing certificate's status, after the timestamp.
//! 4. [`Signed::assemble`] checks that evidence ([`check_time_stamp`], [`check_ocsp`]) and
//!    assembles the SignedData: no encapsulated content, the timestamp as an unsigned
//!    attribute, the chain, and the OCSP responses as RFC 5940 revocation information.
//!
//! Each OCSP response gets the project's one OCSP check ([`pkix::ocsp::check`]: about the
//! certificate, signed by its issuer or a responder the issuer authorised, consistent times)
//! before the B-LT rules of [`check_ocsp`]. The TSA's own signature is not verified by
//! [`Signed::assemble`]: the server's own TSA made it, and validating it (and the paths of
//! every certificate) is the validator's. [`check_time_stamp_signature`] is a cheap check of
//! the TSA's signature for callers that want one.

use std::time::{SystemTime, UNIX_EPOCH};

use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use hsm_shim::{KeySpec, PublicKey, SignatureAlgorithm};
use pkix::cms::{Content, SignedAttributes, Signer, oid};
use pkix::ocsp::{OcspError, OcspStatus};
use pkix::path::AlgorithmPolicy;
use pkix::{DigestAlgorithm, PkixError};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::ext::pkix::{CrlReason, KeyUsage};
use x509_ocsp::OcspResponseStatus;
use x509_tsp::TstInfo;

/// id-ce-keyUsage.
const KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");

/// Why a signature could not be prepared, accepted or assembled.
///
/// Messages are meant for the citizen's agency and its developers: they say what is wrong
/// with which input, never a key or a PIN.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CadesError {
    /// The signing certificate (or a chain certificate) is not a DER X.509 certificate.
    #[error("the {which} certificate cannot be read: {reason}")]
    Certificate {
        /// Which certificate: "signing" or "chain".
        which: &'static str,
        /// What the decoder said.
        reason: String,
    },
    /// The certificate's key is not one citizens sign with here (P-256, P-384, RSA).
    #[error("the signing certificate's key cannot make an e-signature here: {0}")]
    UnsupportedKey(String),
    /// The certificate does not allow signatures (keyUsage without nonRepudiation).
    #[error("the certificate is not an e-signature certificate (its key usage lacks nonRepudiation)")]
    NotASigningCertificate,
    /// The document digest was made with another algorithm than the key calls for.
    #[error("a {key} key signs {expected} digests, not {given}")]
    DigestDoesNotFitKey {
        /// The key.
        key: KeySpec,
        /// The algorithm the key calls for.
        expected: DigestAlgorithm,
        /// The algorithm given.
        given: DigestAlgorithm,
    },
    /// The document digest has the wrong length for its algorithm.
    #[error("a {digest} digest has {expected} octets, this one {given}")]
    DigestLength {
        /// The algorithm.
        digest: DigestAlgorithm,
        /// Its output length.
        expected: usize,
        /// The length given.
        given: usize,
    },
    /// The device signed a hash other than the one of this signing (another document, or
    /// an earlier request): the verification codes the citizen would have seen differ.
    #[error("the device signed another request (verification code {signed}), not this one (verification code {expected})")]
    OtherHashSigned {
        /// The code of this signing.
        expected: String,
        /// The code of the hash the device signed.
        signed: String,
    },
    /// The device used a signature algorithm that is not the one the key implies.
    #[error("the device signed with {given}; a {key} key signs with {expected} only")]
    AlgorithmNotForKey {
        /// The key.
        key: KeySpec,
        /// The algorithm the key implies.
        expected: SignatureAlgorithm,
        /// The algorithm the device reported.
        given: SignatureAlgorithm,
    },
    /// The signature is not one by the signing certificate's key over the to-be-signed
    /// octets (another key, or damaged).
    #[error("the signature was not made with the key of the signing certificate")]
    SignatureDoesNotVerify,
    /// The timestamp token is not an RFC 3161 token.
    #[error("the timestamp token cannot be read: {0}")]
    TimeStampUnreadable(String),
    /// The timestamp's message imprint uses a hash Hawiya does not accept.
    #[error("the timestamp's message imprint uses hash algorithm {0}, not SHA-256/384/512")]
    TimeStampDigestUnsupported(ObjectIdentifier),
    /// The timestamp is over something other than this signature value.
    #[error("the timestamp is not over this signature's value")]
    TimeStampNotOverSignature,
    /// The timestamp token does not carry the certificate of the TSA that signed it.
    #[error("the timestamp token does not carry its TSA's certificate")]
    TimeStampSignerUnknown,
    /// The TSA's signature over the token does not verify (or uses an algorithm Hawiya does
    /// not check here).
    #[error("the TSA's signature over the timestamp does not verify: {0}")]
    TimeStampSignatureInvalid(&'static str),
    /// The OCSP response cannot be read.
    #[error("the OCSP response cannot be read: {0}")]
    OcspUnreadable(String),
    /// The responder did not answer with a status (malformedRequest, tryLater, …).
    #[error("the OCSP responder answered {0:?} instead of a certificate status")]
    OcspNotSuccessful(OcspResponseStatus),
    /// The OCSP response is not a basic response.
    #[error("the OCSP response is of type {0}, not a basic OCSP response")]
    OcspNotBasic(ObjectIdentifier),
    /// The OCSP response is about another certificate (or names it with a hash other than
    /// SHA-1/256/384/512).
    #[error("the OCSP response is about another certificate than the signing certificate or its chain")]
    OcspForAnotherCertificate,
    /// The OCSP response cannot be relied on: its signer is neither the certificate's issuer
    /// nor a responder the issuer authorised, its signature does not verify (or uses an
    /// algorithm refused), or its times contradict each other.
    #[error("{0}")]
    OcspUnreliable(OcspError),
    /// The certificate is revoked.
    #[error("the certificate was revoked at {revoked_at} (Unix time), reason {reason:?}")]
    Revoked {
        /// When, Unix seconds.
        revoked_at: u64,
        /// Why, if the responder said.
        reason: Option<CrlReason>,
    },
    /// The certificate is suspended (revoked with reason certificateHold).
    #[error("the certificate is suspended since {since} (Unix time)")]
    Suspended {
        /// Since when, Unix seconds.
        since: u64,
    },
    /// The responder does not know the certificate.
    #[error("the OCSP responder does not know the certificate (status unknown)")]
    StatusUnknown,
    /// The OCSP response was produced before the timestamp: B-LT needs revocation data from
    /// after the signature time.
    #[error("the OCSP response was produced at {produced_at}, before the signature's timestamp at {time_stamp} (Unix time); ask the responder again")]
    OcspBeforeTimeStamp {
        /// The response's producedAt, Unix seconds.
        produced_at: u64,
        /// The timestamp's genTime, Unix seconds.
        time_stamp: u64,
    },
    /// A CRL given for the signature's validation data is not a DER CertificateList.
    #[error("a CRL cannot be read: {0}")]
    CrlUnreadable(String),
    /// No OCSP response about the signing certificate was given.
    #[error("no OCSP response about the signing certificate")]
    NoOcspResponse,
    /// The chain does not hold the certificate that issued the signing certificate.
    #[error("the chain does not hold the issuer of the signing certificate")]
    IssuerNotInChain,
    /// Encoding failed (a bug, or an input at the edge of what DER allows).
    #[error("encoding the signature failed: {0}")]
    Encoding(#[from] PkixError),
}

impl From<der::Error> for CadesError {
    fn from(e: der::Error) -> Self {
        CadesError::Encoding(PkixError::Der(e))
    }
}

/// The 4-digit verification code shown next to a signing request and on the device: the last
/// two octets of SHA-256(`hash`), big-endian, modulo 10,000, zero-padded (as Smart-ID does).
/// `hash` is what is sent to the device ([`Prepared::hash`]). It agrees with the login's
/// `idp::smart_id::verification_code`.
pub fn verification_code(hash: &[u8]) -> String {
    let sha = DigestAlgorithm::Sha256.digest(hash);
    let n = match sha.as_slice() {
        [.., a, b] => u16::from_be_bytes([*a, *b]),
        _ => 0, // a SHA-256 digest has 32 octets
    };
    format!("{:04}", n % 10_000)
}

/// What is signed besides the document: CAdES carries a claimed signing time, PAdES must not
/// (the PDF's /M carries it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// Detached CAdES (`.p7s`), with the signing-time attribute (Unix seconds).
    Cades {
        /// The claimed signing time, Unix seconds.
        signing_time: u64,
    },
    /// The CMS of a PAdES signature: no signing-time.
    Pades,
}

/// Which certificates go into the SignedData besides the signer's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Root {
    /// Self-signed certificates of the chain are left out (the relying party has its roots).
    Omit,
    /// The whole chain goes in, the root too.
    Include,
}

/// The signing key's type, and what it signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyAlgorithms {
    /// The key.
    pub key: KeySpec,
    /// The digest of the document and of the signed attributes.
    pub digest: DigestAlgorithm,
    /// The signature algorithm the device must use.
    pub signature: SignatureAlgorithm,
}

impl KeyAlgorithms {
    /// P-256 → SHA-256/ES256, P-384 → SHA-384/ES384, RSA → SHA-256/RS256; nothing else.
    pub fn of(key: KeySpec) -> Result<Self, CadesError> {
        let (digest, signature) = match key {
            KeySpec::EcP256 => (DigestAlgorithm::Sha256, SignatureAlgorithm::Es256),
            KeySpec::EcP384 => (DigestAlgorithm::Sha384, SignatureAlgorithm::Es384),
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => (DigestAlgorithm::Sha256, SignatureAlgorithm::Rs256),
            other => return Err(CadesError::UnsupportedKey(format!("{other} keys do not make CAdES signatures here"))),
        };
        Ok(KeyAlgorithms { key, digest, signature })
    }
}

fn certificate(which: &'static str, der: &[u8]) -> Result<Certificate, CadesError> {
    Certificate::from_der(der).map_err(|e| CadesError::Certificate { which, reason: e.to_string() })
}

/// A signing certificate and the algorithms its key implies.
fn signing_certificate(der: &[u8]) -> Result<(Certificate, KeyAlgorithms), CadesError> {
    let certificate = certificate("signing", der)?;
    let spki = certificate.tbs_certificate.subject_public_key_info.to_der()?;
    let key = PublicKey::from_spki_der(&spki).map_err(|e| CadesError::UnsupportedKey(e.to_string()))?;
    let algorithms = KeyAlgorithms::of(key.spec())?;
    let usage = certificate.tbs_certificate.extensions.iter().flatten().find(|e| e.extn_id == KEY_USAGE);
    let non_repudiation = match usage {
        Some(ext) => KeyUsage::from_der(ext.extn_value.as_bytes())?.non_repudiation(),
        None => false,
    };
    if !non_repudiation {
        return Err(CadesError::NotASigningCertificate);
    }
    Ok((certificate, algorithms))
}

/// Signed attributes built and waiting for the device's signature.
#[derive(Clone, Debug)]
pub struct Prepared {
    certificate: Certificate,
    algorithms: KeyAlgorithms,
    signed_attributes: SignedAttributes,
    to_be_signed: Vec<u8>,
    hash: Vec<u8>,
}

impl Prepared {
    /// Prepares a signature over `document`, hashed with the algorithm the key of
    /// `certificate` (DER) calls for.
    pub fn for_document(profile: Profile, certificate: &[u8], document: &[u8]) -> Result<Self, CadesError> {
        let (certificate, algorithms) = signing_certificate(certificate)?;
        let digest = algorithms.digest.digest(document);
        Self::build(profile, certificate, algorithms, &digest)
    }

    /// Prepares a signature over a document the caller hashed with `digest`, which must be the
    /// algorithm the key of `certificate` (DER) calls for ([`KeyAlgorithms::of`]).
    pub fn for_digest(profile: Profile, certificate: &[u8], digest: DigestAlgorithm, document_digest: &[u8]) -> Result<Self, CadesError> {
        let (certificate, algorithms) = signing_certificate(certificate)?;
        if digest != algorithms.digest {
            return Err(CadesError::DigestDoesNotFitKey { key: algorithms.key, expected: algorithms.digest, given: digest });
        }
        if document_digest.len() != digest.output_len() {
            return Err(CadesError::DigestLength { digest, expected: digest.output_len(), given: document_digest.len() });
        }
        Self::build(profile, certificate, algorithms, document_digest)
    }

    fn build(profile: Profile, certificate: Certificate, algorithms: KeyAlgorithms, document_digest: &[u8]) -> Result<Self, CadesError> {
        let mut signed_attributes = SignedAttributes::new(oid::DATA, algorithms.digest, document_digest, &certificate)?;
        if let Profile::Cades { signing_time } = profile {
            signed_attributes = signed_attributes.with_signing_time(signing_time)?;
        }
        let to_be_signed = signed_attributes.to_be_signed()?;
        let hash = algorithms.digest.digest(&to_be_signed);
        Ok(Prepared { certificate, algorithms, signed_attributes, to_be_signed, hash })
    }

    /// The octets the key signs: the DER SET OF the signed attributes.
    pub fn to_be_signed(&self) -> &[u8] {
        &self.to_be_signed
    }

    /// The hash of [`Self::to_be_signed`] with [`KeyAlgorithms::digest`]: what is sent to the
    /// device and signed there.
    pub fn hash(&self) -> &[u8] {
        &self.hash
    }

    /// The code the citizen compares with the device's before entering PIN2.
    pub fn verification_code(&self) -> String {
        verification_code(&self.hash)
    }

    /// The key's type and the algorithms it implies.
    pub fn algorithms(&self) -> KeyAlgorithms {
        self.algorithms
    }

    /// The signed attributes.
    pub fn signed_attributes(&self) -> &SignedAttributes {
        &self.signed_attributes
    }

    /// Keeps the device's signature if it is over this signing's hash, with the algorithm the
    /// key implies, by the signing certificate's key. A refused answer leaves this request
    /// waiting (a stale answer may precede the right one).
    pub fn accept(&self, answer: &DeviceAnswer<'_>) -> Result<Signed, CadesError> {
        if answer.signed_hash != self.hash.as_slice() {
            return Err(CadesError::OtherHashSigned { expected: self.verification_code(), signed: verification_code(answer.signed_hash) });
        }
        if answer.algorithm != self.algorithms.signature {
            return Err(CadesError::AlgorithmNotForKey { key: self.algorithms.key, expected: self.algorithms.signature, given: answer.algorithm });
        }
        let algorithm = AlgorithmIdentifierOwned::from_der(self.algorithms.signature.x509_algorithm_identifier())?;
        AlgorithmPolicy::default()
            .verify(&self.certificate.tbs_certificate.subject_public_key_info, &algorithm, &self.to_be_signed, answer.signature)
            .map_err(|_| CadesError::SignatureDoesNotVerify)?;
        Ok(Signed { prepared: self.clone(), signature: answer.signature.to_vec() })
    }
}

/// What a citizen's device answered to a signing request.
#[derive(Clone, Copy, Debug)]
pub struct DeviceAnswer<'a> {
    /// The hash the device signed, as it received it. A signature alone cannot say which
    /// hash it is over; the device's echo lets a stale or crossed answer be told apart from a
    /// forged one.
    pub signed_hash: &'a [u8],
    /// The signature algorithm the device reports.
    pub algorithm: SignatureAlgorithm,
    /// The signature value: DER `ECDSA-Sig-Value` for EC keys, PKCS #1 v1.5 for RSA.
    pub signature: &'a [u8],
}

/// A device signature that verifies, waiting for its timestamp and revocation evidence.
#[derive(Clone, Debug)]
pub struct Signed {
    prepared: Prepared,
    signature: Vec<u8>,
}

/// What a timestamp token says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeStamp {
    /// genTime, Unix seconds.
    pub gen_time: u64,
    /// The hash of the message imprint.
    pub digest: DigestAlgorithm,
}

/// What an OCSP response says about a good certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OcspGood {
    /// producedAt, Unix seconds.
    pub produced_at: u64,
    /// thisUpdate of the single response, Unix seconds.
    pub this_update: u64,
}

/// The token's TSTInfo: ContentInfo → SignedData → eContent.
fn tst_info(token: &[u8]) -> Result<TstInfo, CadesError> {
    let unreadable = |e: der::Error| CadesError::TimeStampUnreadable(e.to_string());
    let content_info = cms::content_info::ContentInfo::from_der(token).map_err(unreadable)?;
    if content_info.content_type != oid::SIGNED_DATA {
        return Err(CadesError::TimeStampUnreadable(format!("content type {} is not signedData", content_info.content_type)));
    }
    let signed_data: cms::signed_data::SignedData = content_info.content.decode_as().map_err(unreadable)?;
    let encapsulated = signed_data.encap_content_info;
    if encapsulated.econtent_type != oid::TST_INFO {
        return Err(CadesError::TimeStampUnreadable(format!("encapsulated content type {} is not TSTInfo", encapsulated.econtent_type)));
    }
    let econtent = encapsulated.econtent.ok_or_else(|| CadesError::TimeStampUnreadable("the token has no TSTInfo".into()))?;
    let octets: OctetString = econtent.decode_as().map_err(unreadable)?;
    TstInfo::from_der(octets.as_bytes()).map_err(unreadable)
}

/// Checks that `token` (a DER RFC 3161 TimeStampToken) is over `signature` (its message
/// imprint is the hash of the signature value, RFC 3161 appendix A) and returns its time.
pub fn check_time_stamp(token: &[u8], signature: &[u8]) -> Result<TimeStamp, CadesError> {
    let info = tst_info(token)?;
    let imprint = &info.message_imprint;
    let digest = DigestAlgorithm::from_oid(&imprint.hash_algorithm.oid).ok_or(CadesError::TimeStampDigestUnsupported(imprint.hash_algorithm.oid))?;
    if digest.digest(signature) != imprint.hashed_message.as_bytes() {
        return Err(CadesError::TimeStampNotOverSignature);
    }
    Ok(TimeStamp { gen_time: info.gen_time.to_unix_duration().as_secs(), digest })
}

/// The signature algorithm of a SignerInfo: its signatureAlgorithm, or rsaEncryption with
/// its digest algorithm.
fn signer_algorithm(signature: &ObjectIdentifier, digest: &ObjectIdentifier) -> Option<SignatureAlgorithm> {
    const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
    const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
    const RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
    const RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
    let digest = DigestAlgorithm::from_oid(digest)?;
    match (*signature, digest) {
        (ECDSA_SHA256, DigestAlgorithm::Sha256) => Some(SignatureAlgorithm::Es256),
        (ECDSA_SHA384, DigestAlgorithm::Sha384) => Some(SignatureAlgorithm::Es384),
        (RSA | RSA_SHA256, DigestAlgorithm::Sha256) => Some(SignatureAlgorithm::Rs256),
        _ => None,
    }
}

/// Verifies the TSA's signature over `token` with the certificate the token carries: the
/// messageDigest attribute is the digest of the TSTInfo and the signature over the signed
/// attributes verifies (ECDSA P-256/SHA-256, P-384/SHA-384, RSA PKCS #1 v1.5/SHA-256). It
/// returns the TSA's certificate; whether that certificate is a trusted TSA (path, EKU,
/// revocation) is the validator's question, not answered here.
pub fn check_time_stamp_signature(token: &[u8]) -> Result<Certificate, CadesError> {
    use cms::cert::CertificateChoices;
    use cms::signed_data::SignerIdentifier;
    let unreadable = |e: der::Error| CadesError::TimeStampUnreadable(e.to_string());
    let invalid = CadesError::TimeStampSignatureInvalid;
    let signed_data: cms::signed_data::SignedData =
        cms::content_info::ContentInfo::from_der(token).map_err(unreadable)?.content.decode_as().map_err(unreadable)?;
    tst_info(token)?;
    let mut signers = signed_data.signer_infos.0.iter();
    let (Some(signer), None) = (signers.next(), signers.next()) else {
        return Err(invalid("a timestamp token has exactly one signer"));
    };
    let certificates = signed_data.certificates.iter().flat_map(|set| set.0.iter()).filter_map(|c| match c {
        CertificateChoices::Certificate(c) => Some(c),
        CertificateChoices::Other(_) => None,
    });
    let mut tsa = None;
    for certificate in certificates {
        let tbs = &certificate.tbs_certificate;
        let named = match &signer.sid {
            SignerIdentifier::IssuerAndSerialNumber(id) => id.issuer == tbs.issuer && id.serial_number == tbs.serial_number,
            SignerIdentifier::SubjectKeyIdentifier(ski) => {
                let key = tbs.subject_public_key_info.subject_public_key.raw_bytes();
                ski.0.as_bytes() == aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, key).as_ref()
            }
        };
        if named {
            tsa = Some(certificate.clone());
            break;
        }
    }
    let tsa = tsa.ok_or(CadesError::TimeStampSignerUnknown)?;
    let attributes = signer.signed_attrs.as_ref().ok_or(invalid("the token has no signed attributes"))?;
    let digest = DigestAlgorithm::from_oid(&signer.digest_alg.oid).ok_or(invalid("a digest algorithm other than SHA-256/384/512"))?;
    let econtent = signed_data.encap_content_info.econtent.ok_or(invalid("the token has no TSTInfo"))?;
    let tst_info: OctetString = econtent.decode_as().map_err(unreadable)?;
    let message_digest = attributes
        .iter()
        .find(|a| a.oid == oid::MESSAGE_DIGEST)
        .and_then(|a| a.values.get(0))
        .and_then(|v| v.decode_as::<OctetString>().ok())
        .ok_or(invalid("the token has no messageDigest attribute"))?;
    if message_digest.as_bytes() != digest.digest(tst_info.as_bytes()) {
        return Err(invalid("the messageDigest attribute is not the digest of the TSTInfo"));
    }
    let algorithm = signer_algorithm(&signer.signature_algorithm.oid, &signer.digest_alg.oid).ok_or(invalid("a signature algorithm not checked here"))?;
    let key = PublicKey::from_spki_der(&tsa.tbs_certificate.subject_public_key_info.to_der()?).map_err(|_| invalid("the TSA's key is not one checked here"))?;
    key.verify(algorithm, &attributes.to_der()?, signer.signature.as_bytes()).map_err(|_| invalid("not made with the key of the TSA's certificate"))?;
    Ok(tsa)
}

/// Seconds since 1970.
fn unix(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Checks that `response` (a DER OCSPResponse) passes the one OCSP check
/// ([`pkix::ocsp::check`]) and says that `certificate` (issued by `issuer`) is good, produced
/// no earlier than `not_before` (Unix seconds; the signature's timestamp). Times compare to
/// the second, the precision of OCSP.
pub fn check_ocsp(response: &[u8], certificate: &Certificate, issuer: &Certificate, not_before: u64) -> Result<OcspGood, CadesError> {
    let answer = pkix::ocsp::check(response, certificate, issuer, &AlgorithmPolicy::default()).map_err(|e| match e {
        OcspError::Unreadable(reason) => CadesError::OcspUnreadable(reason),
        OcspError::NotSuccessful(status) => CadesError::OcspNotSuccessful(status),
        OcspError::NotBasic(kind) => CadesError::OcspNotBasic(kind),
        OcspError::OtherCertificate => CadesError::OcspForAnotherCertificate,
        other => CadesError::OcspUnreliable(other),
    })?;
    match answer.status {
        OcspStatus::Good => {}
        OcspStatus::Revoked { at, reason: Some(CrlReason::CertificateHold) } => return Err(CadesError::Suspended { since: unix(at) }),
        OcspStatus::Revoked { at, reason } => return Err(CadesError::Revoked { revoked_at: unix(at), reason }),
        OcspStatus::Unknown => return Err(CadesError::StatusUnknown),
    }
    let produced_at = unix(answer.produced_at);
    if produced_at < not_before {
        return Err(CadesError::OcspBeforeTimeStamp { produced_at, time_stamp: not_before });
    }
    Ok(OcspGood { produced_at, this_update: unix(answer.this_update) })
}

/// Where the checked OCSP responses go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Revocation<'a> {
    /// Into the SignedData, as RFC 5940 revocation information, with these CRLs (detached
    /// CAdES).
    InCms {
        /// DER CertificateLists.
        crls: &'a [Vec<u8>],
    },
    /// Elsewhere: the PDF's /DSS (PAdES).
    InDss,
}

fn self_issued(certificate: &Certificate) -> bool {
    certificate.tbs_certificate.subject == certificate.tbs_certificate.issuer
}

impl Signed {
    /// The signature value: what the TSA timestamps (its hash is the message imprint).
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// The signing certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.prepared.certificate
    }

    /// Checks the evidence and assembles the DER ContentInfo (SignedData, detached, content
    /// type id-data) at level B-LT: `time_stamp_token` (DER, over [`Self::signature`]) as the
    /// signature-time-stamp, the signer's certificate and the `chain` (DER, issuing CA first,
    /// then any other certificate a validator needs, such as the CA above the TSA;
    /// self-signed roots only with [`Root::Include`]), the `ocsp_responses` (DER; the first
    /// about the signing certificate, any further ones about chain certificates), each good
    /// and produced no earlier than the timestamp, and the `crls` (DER) that cover the other
    /// certificates of the signer's and the TSA's paths (the root's ARL, the TSA's CA's CRL).
    /// B-LT (ETSI EN 319 122-1) wants all of it inside: a validator that trusts only the root
    /// and fetches nothing (DSS) reaches no conclusion otherwise. After
    /// [`CadesError::OcspBeforeTimeStamp`] ask the responder again and call this again.
    pub fn assemble(
        &self,
        time_stamp_token: &[u8],
        ocsp_responses: &[Vec<u8>],
        crls: &[Vec<u8>],
        chain: &[Vec<u8>],
        root: Root,
    ) -> Result<Vec<u8>, CadesError> {
        for crl in crls {
            x509_cert::crl::CertificateList::from_der(crl).map_err(|e| CadesError::CrlUnreadable(e.to_string()))?;
        }
        self.assemble_with(time_stamp_token, ocsp_responses, chain, root, Revocation::InCms { crls })
    }

    /// Like [`Self::assemble`], with the same checks of the evidence, for the CMS of a PAdES
    /// signature: the OCSP responses are left out of the SignedData (it stays version 1),
    /// because PAdES B-LT carries them in the PDF's /DSS (`pdf::add_dss`), and validators
    /// built on NSS (poppler's pdfsig) cannot parse RFC 5940 revocation information.
    pub fn assemble_for_pdf(&self, time_stamp_token: &[u8], ocsp_responses: &[Vec<u8>], chain: &[Vec<u8>], root: Root) -> Result<Vec<u8>, CadesError> {
        self.assemble_with(time_stamp_token, ocsp_responses, chain, root, Revocation::InDss)
    }

    fn assemble_with(
        &self,
        time_stamp_token: &[u8],
        ocsp_responses: &[Vec<u8>],
        chain: &[Vec<u8>],
        root: Root,
        revocation: Revocation<'_>,
    ) -> Result<Vec<u8>, CadesError> {
        let time_stamp = check_time_stamp(time_stamp_token, &self.signature)?;
        let chain = chain.iter().map(|der| certificate("chain", der)).collect::<Result<Vec<_>, _>>()?;
        let signer = &self.prepared.certificate;
        let issuer_of = |c: &Certificate| chain.iter().find(|i| i.tbs_certificate.subject == c.tbs_certificate.issuer);
        let issuer = issuer_of(signer).ok_or(CadesError::IssuerNotInChain)?;
        let (first, further) = ocsp_responses.split_first().ok_or(CadesError::NoOcspResponse)?;
        check_ocsp(first, signer, issuer, time_stamp.gen_time)?;
        for response in further {
            // About some certificate of the chain; the first that the response names decides.
            let mut outcome = Err(CadesError::OcspForAnotherCertificate);
            for certificate in chain.iter().filter(|c| !self_issued(c)) {
                let Some(issuer) = issuer_of(certificate) else { continue };
                match check_ocsp(response, certificate, issuer, time_stamp.gen_time) {
                    Err(CadesError::OcspForAnotherCertificate) => continue,
                    other => {
                        outcome = other;
                        break;
                    }
                }
            }
            outcome?;
        }
        let mut certificates = vec![signer.clone()];
        certificates.extend(chain.iter().filter(|c| root == Root::Include || !self_issued(c)).cloned());
        let algorithm = AlgorithmIdentifierOwned::from_der(self.prepared.algorithms.signature.x509_algorithm_identifier())?;
        let der = pkix::cms::signed_data(
            Content { content_type: oid::DATA, encapsulated: None },
            Signer {
                certificate: signer,
                digest: self.prepared.algorithms.digest,
                signed_attributes: self.prepared.signed_attributes.clone(),
                signature_algorithm: algorithm,
                signature: self.signature.clone(),
                unsigned_attributes: vec![pkix::cms::signature_time_stamp(time_stamp_token)?],
            },
            &certificates,
            match revocation {
                Revocation::InCms { .. } => ocsp_responses,
                Revocation::InDss => &[],
            },
            match revocation {
                Revocation::InCms { crls } => crls,
                Revocation::InDss => &[],
            },
        )?;
        Ok(der)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn verification_code_matches_the_login_and_smart_id() {
        // SHA-256("abc") ends in …15 ad: 0x15ad = 5549, the login's vector too.
        assert_eq!(verification_code(b"abc"), "5549");
        // SHA-256("") ends in …b8 55: 0xb855 = 47189 → 7189.
        assert_eq!(verification_code(b""), "7189");
        // Zero padding: find an input whose code is below 1000 and check it has 4 digits.
        let small = (0u32..).map(|i| i.to_be_bytes()).find(|b| verification_code(b).starts_with('0')).unwrap();
        let code = verification_code(&small);
        let sha = DigestAlgorithm::Sha256.digest(&small);
        assert_eq!(code, format!("{:04}", u16::from_be_bytes([sha[30], sha[31]]) % 10_000));
        assert_eq!(code.len(), 4);
    }

    const CITIZEN: &[u8] = include_bytes!("../testdata/citizen-p256.der");

    #[test]
    fn cades_signs_a_signing_time_and_pades_does_not() {
        let document = b"a contract";
        let cades = Prepared::for_document(Profile::Cades { signing_time: 1_767_225_600 }, CITIZEN, document).unwrap();
        let pades = Prepared::for_document(Profile::Pades, CITIZEN, document).unwrap();
        for prepared in [&cades, &pades] {
            let attributes = prepared.signed_attributes();
            let content_type = attributes.get(oid::CONTENT_TYPE).unwrap().values.get(0).unwrap().decode_as::<ObjectIdentifier>().unwrap();
            assert_eq!(content_type, oid::DATA);
            let digest = attributes.get(oid::MESSAGE_DIGEST).unwrap().values.get(0).unwrap().decode_as::<OctetString>().unwrap();
            assert_eq!(digest.as_bytes(), DigestAlgorithm::Sha256.digest(document));
            assert!(attributes.get(oid::SIGNING_CERTIFICATE_V2).is_some());
            assert_eq!(prepared.hash(), DigestAlgorithm::Sha256.digest(prepared.to_be_signed()));
            assert_eq!(prepared.verification_code(), verification_code(prepared.hash()));
            assert_eq!(prepared.algorithms().signature, SignatureAlgorithm::Es256);
        }
        let time = cades.signed_attributes().get(oid::SIGNING_TIME).unwrap().values.get(0).unwrap().decode_as::<der::asn1::UtcTime>().unwrap();
        assert_eq!(time.to_unix_duration().as_secs(), 1_767_225_600);
        assert!(pades.signed_attributes().get(oid::SIGNING_TIME).is_none());
        assert_ne!(cades.hash(), pades.hash());
    }

    #[test]
    fn a_digest_must_fit_the_key() {
        let e = Prepared::for_digest(Profile::Pades, CITIZEN, DigestAlgorithm::Sha384, &[0; 48]).unwrap_err();
        assert!(
            matches!(e, CadesError::DigestDoesNotFitKey { key: KeySpec::EcP256, expected: DigestAlgorithm::Sha256, given: DigestAlgorithm::Sha384 }),
            "{e}"
        );
        let e = Prepared::for_digest(Profile::Pades, CITIZEN, DigestAlgorithm::Sha256, &[0; 31]).unwrap_err();
        assert!(matches!(e, CadesError::DigestLength { expected: 32, given: 31, .. }), "{e}");
        let by_digest = Prepared::for_digest(Profile::Pades, CITIZEN, DigestAlgorithm::Sha256, &DigestAlgorithm::Sha256.digest(b"x")).unwrap();
        assert_eq!(by_digest.to_be_signed(), Prepared::for_document(Profile::Pades, CITIZEN, b"x").unwrap().to_be_signed());
    }

    #[test]
    fn an_unreadable_certificate_is_refused() {
        let e = Prepared::for_document(Profile::Pades, b"not a certificate", b"x").unwrap_err();
        assert!(matches!(e, CadesError::Certificate { which: "signing", .. }), "{e}");
    }
}
