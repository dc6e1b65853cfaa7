//! CMS SignedData (RFC 5652) as Hawiya makes it.
//!
//! One signer, identified by issuer and serial number, with the signed attributes every
//! AdES baseline and RFC 3161 token needs — contentType, messageDigest and
//! signingCertificateV2 (RFC 5035, the ESSCertIDv2 of RFC 5816) — an optional signing time,
//! optional unsigned attributes (the signature timestamp of CAdES), the certificates of the
//! chain, and OCSP responses carried as other revocation information (RFC 5940).
//!
//! Signing is the caller's: [`SignedAttributes::to_be_signed`] gives the octets a key signs
//! (in a key store, or on a citizen's device), and [`signed_data`] assembles the result
//! around the signature value that came back.

use cms::cert::IssuerAndSerialNumber;
use cms::content_info::CmsVersion;
pub use cms::content_info::ContentInfo;
use cms::signed_data::{CertificateSet, EncapsulatedContentInfo, SignerIdentifier, SignerInfo, SignerInfos};
use der::asn1::{Any, ObjectIdentifier, OctetString, SetOfVec, UtcTime};
use der::{Decode, Encode, Sequence, Tag};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::serial_number::SerialNumber;

use crate::{DigestAlgorithm, PkixError};

/// The object identifiers of CMS, ESS and RFC 3161 used here.
pub mod oid {
    use der::asn1::ObjectIdentifier;

    /// id-data
    pub const DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
    /// id-signedData
    pub const SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
    /// id-ct-TSTInfo (RFC 3161)
    pub const TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
    /// id-contentType
    pub const CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
    /// id-messageDigest
    pub const MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
    /// id-signingTime
    pub const SIGNING_TIME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");
    /// id-aa-signingCertificateV2 (RFC 5035)
    pub const SIGNING_CERTIFICATE_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
    /// id-aa-signatureTimeStampToken (RFC 3161 appendix A)
    pub const SIGNATURE_TIME_STAMP_TOKEN: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.14");
    /// id-ri-ocsp-response (RFC 5940)
    pub const RI_OCSP_RESPONSE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.16.2");
}

/// ESSCertIDv2 (RFC 5035): a hash of the signer's certificate and its issuer and serial.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct EssCertIdV2 {
    /// The hash algorithm; absent means SHA-256, the default, which DER leaves out.
    #[asn1(optional = "true")]
    pub hash_algorithm: Option<AlgorithmIdentifierOwned>,
    /// The hash of the whole certificate.
    pub cert_hash: OctetString,
    /// The certificate's issuer and serial number.
    #[asn1(optional = "true")]
    pub issuer_serial: Option<IssuerSerial>,
}

/// IssuerSerial (RFC 5035).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct IssuerSerial {
    /// The issuer, as a directory name.
    pub issuer: Vec<GeneralName>,
    /// The serial number.
    pub serial_number: SerialNumber,
}

/// SigningCertificateV2 (RFC 5035): the first ESSCertIDv2 names the signer's certificate.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct SigningCertificateV2 {
    /// The certificates, the signer's first.
    pub certs: Vec<EssCertIdV2>,
    /// Policy information; Hawiya writes none.
    #[asn1(optional = "true")]
    pub policies: Option<Any>,
}

impl SigningCertificateV2 {
    /// The reference to `certificate`, hashed with `digest`.
    pub fn of(certificate: &Certificate, digest: DigestAlgorithm) -> Result<Self, PkixError> {
        let tbs = &certificate.tbs_certificate;
        Ok(SigningCertificateV2 {
            certs: vec![EssCertIdV2 {
                hash_algorithm: (digest != DigestAlgorithm::Sha256).then(|| digest.identifier()),
                cert_hash: OctetString::new(digest.digest(&certificate.to_der()?))?,
                issuer_serial: Some(IssuerSerial { issuer: vec![GeneralName::DirectoryName(tbs.issuer.clone())], serial_number: tbs.serial_number.clone() }),
            }],
            policies: None,
        })
    }
}

/// The signed attributes of one signature, kept in DER order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedAttributes(SetOfVec<Attribute>);

fn attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute, PkixError> {
    Ok(Attribute { oid, values: SetOfVec::try_from(vec![value])? })
}

fn any_of(value: &impl Encode) -> Result<Any, PkixError> {
    Ok(Any::from_der(&value.to_der()?)?)
}

impl SignedAttributes {
    /// contentType, messageDigest (the digest of the content, made with `digest`) and
    /// signingCertificateV2 naming `signer`: what CAdES and PAdES baseline B-B and RFC 3161
    /// tokens require.
    pub fn new(content_type: ObjectIdentifier, digest: DigestAlgorithm, message_digest: &[u8], signer: &Certificate) -> Result<Self, PkixError> {
        if message_digest.len() != digest.output_len() {
            return Err(PkixError::Invalid(format!("a {digest} digest has {} octets, not {}", digest.output_len(), message_digest.len())));
        }
        let attributes = vec![
            attribute(oid::CONTENT_TYPE, any_of(&content_type)?)?,
            attribute(oid::MESSAGE_DIGEST, any_of(&OctetString::new(message_digest)?)?)?,
            attribute(oid::SIGNING_CERTIFICATE_V2, any_of(&SigningCertificateV2::of(signer, digest)?)?)?,
        ];
        Ok(SignedAttributes(SetOfVec::try_from(attributes)?))
    }

    /// Adds the signing-time attribute (claimed time, Unix seconds), as CAdES allows and PAdES
    /// forbids (the PDF's /M carries it there).
    pub fn with_signing_time(mut self, unix: u64) -> Result<Self, PkixError> {
        let time = UtcTime::from_unix_duration(std::time::Duration::from_secs(unix))?;
        self.0.insert(attribute(oid::SIGNING_TIME, any_of(&time)?)?)?;
        Ok(self)
    }

    /// The octets a signer signs: the DER of the attributes as a SET OF (RFC 5652 §5.4).
    pub fn to_be_signed(&self) -> Result<Vec<u8>, PkixError> {
        Ok(self.0.to_der()?)
    }

    /// The attribute values of type `oid`, if present.
    pub fn get(&self, oid: ObjectIdentifier) -> Option<&Attribute> {
        self.0.iter().find(|a| a.oid == oid)
    }
}

/// The unsigned attribute that carries a CAdES signature timestamp (the DER ContentInfo of
/// an RFC 3161 token over the signature value).
pub fn signature_time_stamp(token: &[u8]) -> Result<Attribute, PkixError> {
    attribute(oid::SIGNATURE_TIME_STAMP_TOKEN, Any::from_der(token)?)
}

/// SignedData (RFC 5652 §5.1) with the revocation information choices kept as DER, because
/// RFC 5940's `[1] IMPLICIT OtherRevocationInfoFormat` is mis-typed in the `cms` crate,
/// which therefore cannot read a CAdES-LT signature.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
#[allow(missing_docs)]
pub struct SignedData {
    pub version: CmsVersion,
    pub digest_algorithms: SetOfVec<AlgorithmIdentifierOwned>,
    pub encap_content_info: EncapsulatedContentInfo,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub certificates: Option<CertificateSet>,
    /// CRLs and other revocation information (`[1]`-tagged OCSP responses), each as DER.
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub crls: Option<SetOfVec<Any>>,
    pub signer_infos: SignerInfos,
}

impl SignedData {
    /// The SignedData inside a DER ContentInfo (a `.p7s`, a PDF's `/Contents`, a timestamp
    /// token).
    pub fn from_content_info(der: &[u8]) -> Result<Self, PkixError> {
        check_set_sizes(der)?;
        let info = ContentInfo::from_der(der)?;
        if info.content_type != oid::SIGNED_DATA {
            return Err(PkixError::Invalid(format!("content type {} is not signedData", info.content_type)));
        }
        Ok(SignedData::from_der(&info.content.to_der()?)?)
    }
}

/// The most elements one SET OF in a CMS may have (certificates, CRLs, signers, attributes).
/// The `der` crate checks the order of a SET OF it decodes with an insertion sort that
/// re-encodes both elements at every comparison: a set written in reverse order costs n²
/// encodings (10,000 certificates: hours of CPU). No CMS made in good faith comes near.
pub const MAX_SET_ELEMENTS: usize = 256;

/// Why a CMS with a larger SET OF is refused (the words a validation report shows).
pub const TOO_MANY_SET_ELEMENTS: &str = "a CMS with more than 256 elements in one SET (MAX_SET_ELEMENTS)";

/// Refuses DER in which a SET (tag 0x31) or a constructed context-specific tag (the
/// IMPLICIT `[0]` certificates and `[1]` crls sets) has more than [`MAX_SET_ELEMENTS`]
/// elements, before the `der` crate decodes it. One pass over the headers, without recursion;
/// anything malformed is left for the decoder to refuse.
fn check_set_sizes(der: &[u8]) -> Result<(), PkixError> {
    /// The next TLV of `data` at `at`: whether it is constructed and a set, its content range.
    fn header(data: &[u8], at: usize) -> Option<(u8, std::ops::Range<usize>)> {
        let tag = *data.get(at)?;
        let mut pos = at + 1;
        if tag & 0x1f == 0x1f {
            // High tag number form: continuation bytes have the top bit set.
            while data.get(pos)? & 0x80 != 0 {
                pos += 1;
            }
            pos += 1;
        }
        let first = *data.get(pos)?;
        pos += 1;
        let len = match first {
            0..=0x7f => usize::from(first),
            0x81..=0x88 => {
                let n = usize::from(first & 0x7f);
                let bytes = data.get(pos..pos.checked_add(n)?)?;
                pos += n;
                bytes.iter().try_fold(0usize, |acc, b| acc.checked_mul(256)?.checked_add(usize::from(*b)))?
            }
            // Indefinite or reserved lengths are not DER: the decoder refuses them.
            _ => return None,
        };
        let end = pos.checked_add(len).filter(|end| *end <= data.len())?;
        Some((tag, pos..end))
    }
    let mut pending = Vec::new();
    pending.push(0..der.len());
    while let Some(range) = pending.pop() {
        let mut at = range.start;
        while at < range.end {
            let Some((tag, content)) = header(&der[..range.end], at) else { break };
            at = content.end;
            if tag & 0x20 == 0 {
                continue;
            }
            if tag == 0x31 || tag & 0xc0 == 0x80 {
                let mut count = 0usize;
                let mut inner = content.start;
                while let Some((_, element)) = (inner < content.end).then(|| header(&der[..content.end], inner)).flatten() {
                    inner = element.end;
                    count += 1;
                    if count > MAX_SET_ELEMENTS {
                        return Err(PkixError::Invalid(TOO_MANY_SET_ELEMENTS.into()));
                    }
                }
            }
            pending.push(content);
        }
    }
    Ok(())
}

/// OtherRevocationInfoFormat (RFC 5652 §10.2.1) under its `[1] IMPLICIT` choice tag.
#[derive(Sequence)]
struct OtherRevocationInfo {
    format: ObjectIdentifier,
    info: Any,
}

/// One signature, ready to be assembled.
#[derive(Debug)]
pub struct Signer<'a> {
    /// The signer's certificate.
    pub certificate: &'a Certificate,
    /// The digest algorithm of the message digest and of the signed attributes.
    pub digest: DigestAlgorithm,
    /// The signed attributes that were signed.
    pub signed_attributes: SignedAttributes,
    /// The signature algorithm, as in X.509.
    pub signature_algorithm: AlgorithmIdentifierOwned,
    /// The signature over [`SignedAttributes::to_be_signed`].
    pub signature: Vec<u8>,
    /// Unsigned attributes (a signature timestamp), possibly none.
    pub unsigned_attributes: Vec<Attribute>,
}

/// What the signature is over.
#[derive(Debug)]
pub struct Content<'a> {
    /// The eContentType, also in the contentType signed attribute.
    pub content_type: ObjectIdentifier,
    /// The content itself when it travels inside (a TSTInfo, enveloping CAdES); `None` for
    /// detached signatures (`.p7s`, PAdES).
    pub encapsulated: Option<&'a [u8]>,
}

/// Assembles a DER ContentInfo holding SignedData: the signature of `signer` over `content`,
/// the `certificates` (chain, without the root if the caller leaves it out), the
/// `ocsp_responses` (DER OCSPResponse) as RFC 5940 revocation information and the `crls`
/// (DER CertificateList) as RevocationInfoChoice `crl`.
pub fn signed_data(
    content: Content<'_>,
    signer: Signer<'_>,
    certificates: &[Certificate],
    ocsp_responses: &[Vec<u8>],
    crls: &[Vec<u8>],
) -> Result<Vec<u8>, PkixError> {
    Ok(signed_data_info(content, signer, certificates, ocsp_responses, crls)?.to_der()?)
}

/// [`signed_data`], as a ContentInfo value rather than its DER (an RFC 3161 response embeds it).
pub fn signed_data_info(
    content: Content<'_>,
    signer: Signer<'_>,
    certificates: &[Certificate],
    ocsp_responses: &[Vec<u8>],
    crls: &[Vec<u8>],
) -> Result<ContentInfo, PkixError> {
    let tbs = &signer.certificate.tbs_certificate;
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber { issuer: tbs.issuer.clone(), serial_number: tbs.serial_number.clone() }),
        digest_alg: signer.digest.identifier(),
        signed_attrs: Some(signer.signed_attributes.0),
        signature_algorithm: signer.signature_algorithm,
        signature: OctetString::new(signer.signature)?,
        unsigned_attrs: match signer.unsigned_attributes.is_empty() {
            true => None,
            false => Some(SetOfVec::try_from(signer.unsigned_attributes)?),
        },
    };
    let mut set = SetOfVec::new();
    for certificate in certificates {
        set.insert(cms::cert::CertificateChoices::Certificate(certificate.clone()))?;
    }
    let crl_list = crls;
    let mut crls = SetOfVec::new();
    for crl in crl_list {
        // RevocationInfoChoice `crl`: the CertificateList itself, untagged.
        crls.insert(Any::from_der(crl)?)?;
    }
    for response in ocsp_responses {
        let other = OtherRevocationInfo { format: oid::RI_OCSP_RESPONSE, info: Any::from_der(response)? };
        // `[1] IMPLICIT` replaces the SEQUENCE tag and keeps the length and contents.
        let mut der = other.to_der()?;
        der[0] = 0xa1;
        crls.insert(Any::from_der(&der)?)?;
    }
    // RFC 5652 §5.1: other revocation formats need version 5; a content type other than
    // id-data needs version 3; otherwise 1.
    let version = if !ocsp_responses.is_empty() {
        CmsVersion::V5
    } else if content.content_type != oid::DATA {
        CmsVersion::V3
    } else {
        CmsVersion::V1
    };
    let signed = SignedData {
        version,
        digest_algorithms: SetOfVec::try_from(vec![signer.digest.identifier()])?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: content.content_type,
            econtent: content.encapsulated.map(|c| Any::new(Tag::OctetString, c)).transpose()?,
        },
        certificates: (!set.is_empty()).then_some(CertificateSet(set)),
        crls: (!crls.is_empty()).then_some(crls),
        signer_infos: SignerInfos(SetOfVec::try_from(vec![signer_info])?),
    };
    Ok(ContentInfo { content_type: oid::SIGNED_DATA, content: any_of(&signed)? })
}
