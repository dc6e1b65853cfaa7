//! The signature core shared by CAdES and PAdES validation (EN 319 102-1 §5.2–§5.6): one
//! CMS SignerInfo over some content — format checking, identification of the signing
//! certificate, cryptographic verification, the signature timestamps, X.509 validation at the
//! best signature time with the embedded revocation evidence, and signature acceptance under
//! the validation policy — concluded in a [`SignatureReport`].
//!
//! Validation in the past: a valid signature timestamp (or a later archive timestamp) proves
//! that the signature existed at its time; the certificate path is then validated at that
//! time, with revocation evidence issued after it. So a signature made before its
//! certificate expired or was revoked still passes when the evidence proves it, and one
//! without such proof is INDETERMINATE, never a guess.

use std::time::{Duration, SystemTime};

use aws_lc_rs::digest;
use cms::cert::CertificateChoices;
use cms::signed_data::{SignerIdentifier, SignerInfo};
use der::asn1::{Any, ObjectIdentifier, OctetString};
use der::{Decode, Encode, Tagged};
use pkix::cms::{SignedData, SigningCertificateV2, oid};
use pkix::etsi::SubIndication;
use pkix::evidence::{Evidence, Source, Used};
use pkix::path::{self, AlgorithmPolicy, PathError, PathOptions, TrustAnchors};
use policies::{Algorithm, AlgorithmRefusal, BaselineLevel, Qualification, ValidationPolicy};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;

use crate::source::{Bytes, Ranges};

use super::report::{BlockResult, CertificateInfo, Conclusion, Finding, ProvedTime, RevocationEvidence, SignatureReport, SignerInfo as Signer};

const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const SHA224: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.4");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const RSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
/// id-aa-signingCertificate (RFC 2634, the SHA-1 ESSCertID).
const SIGNING_CERTIFICATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.12");
/// id-kp-timeStamping.
const TIME_STAMPING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.8");
/// id-etsi-qcs-QcCompliance and id-etsi-qcs-QcSSCD (EN 319 412-5).
const QC_COMPLIANCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.1862.1.1");
const QC_SSCD: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.1862.1.4");
const QC_STATEMENTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.3");
const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
const SERIAL_NUMBER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.5");

/// What the validator trusts: the trust anchors (the trust list's roots and CAs), and which
/// CAs issue qualified certificates from when.
pub struct Trust {
    /// The anchors, decoded.
    pub anchors: TrustAnchors,
    /// The anchors' DER, to name the anchor a path ends in.
    pub anchor_der: Vec<Vec<u8>>,
    /// CAs whose certificates with qcStatements are qualified, and when.
    pub qualified: Vec<QualifiedCa>,
}

impl Trust {
    /// What the trust list trusts: its authorities (roots and CAs as anchors, TSAs too, those
    /// with `qualified_since` as qualified CAs), this deployment's own hierarchy when the list
    /// says so (`own`: its anchors, and its CAs that issue qualified certificates with the time
    /// they began), and `extra` anchors given for one validation (never qualified).
    pub fn new(list: &policies::TrustList, own: Option<&OwnHierarchy>, extra: &[Vec<u8>]) -> Result<Trust, PathError> {
        let mut anchor_der: Vec<Vec<u8>> = Vec::new();
        let mut qualified = Vec::new();
        if let (true, Some(own)) = (list.own_hierarchy, own) {
            anchor_der.extend(own.anchors.iter().cloned());
            qualified.extend(own.qualified.iter().map(|(der, since)| QualifiedCa { certificate: der.clone(), since: *since, until: None }));
        }
        for a in &list.authorities {
            anchor_der.push(a.certificate.clone());
            if let Some(since) = a.qualified_since {
                let at = |t: i64| SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(t).unwrap_or(0));
                qualified.push(QualifiedCa { certificate: a.certificate.clone(), since: at(since), until: a.withdrawn.map(at) });
            }
        }
        anchor_der.extend(extra.iter().cloned());
        anchor_der.dedup();
        Ok(Trust { anchors: TrustAnchors::from_der(&anchor_der)?, anchor_der, qualified })
    }
}

/// The deployment's own hierarchy, as the ceremony made it.
pub struct OwnHierarchy {
    /// Its trust anchors (the root), DER.
    pub anchors: Vec<Vec<u8>>,
    /// Its CAs that issue qualified certificates (DER), and since when.
    pub qualified: Vec<(Vec<u8>, SystemTime)>,
}

/// A CA the trust list says issues qualified certificates.
pub struct QualifiedCa {
    /// Its certificate (DER).
    pub certificate: Vec<u8>,
    /// Its certificates issued from this time on are qualified.
    pub since: SystemTime,
    /// Its certificates issued from this time on are not (its qualified status withdrawn).
    pub until: Option<SystemTime>,
}

/// Everything a signature is validated against, besides itself.
pub struct Inputs<'a> {
    /// The policy applied.
    pub policy: &'a ValidationPolicy,
    /// The policy files (the levels of Hawiya's smart-ID signing certificates).
    pub policies: &'a policies::Policies,
    /// The trust anchors and qualified CAs.
    pub trust: &'a Trust,
    /// Certificates found outside the CMS (a PDF's /DSS).
    pub certificates: &'a [Vec<u8>],
    /// OCSP responses found outside the CMS (/DSS).
    pub ocsp: &'a [Vec<u8>],
    /// CRLs found outside the CMS (/DSS).
    pub crls: &'a [Vec<u8>],
    /// The validation time.
    pub now: SystemTime,
    /// A later archive (document) timestamp's time that covers this signature, if valid.
    pub archive_poe: Option<(SystemTime, String)>,
    /// Where to fetch revocation evidence the signature lacks, when going online is allowed.
    pub online: Option<&'a dyn Fetch>,
}

/// Fetches revocation evidence when the validation may go online (`hawiya verify --online`, a
/// policy's `online_revocation`): the validator asks; whoever wires it does the HTTP.
pub trait Fetch: Sync {
    /// The answer to a DER OCSP request POSTed to `url`, if one came.
    fn ocsp(&self, url: &str, request: &[u8]) -> Option<Vec<u8>>;
    /// The CRL at `url`, if it could be fetched.
    fn crl(&self, url: &str) -> Option<Vec<u8>>;
}

/// Where the content is: outside the CMS (a detached `.p7s`'s document, a PDF's byte
/// ranges) or inside it (enveloping).
pub enum Content<'a> {
    /// Detached: the signed octets, ranges of a file or of bytes in memory, hashed in chunks.
    Detached(Ranges<'a>),
    /// Encapsulated in the SignedData.
    Encapsulated,
}

fn secs(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// RFC 3339 (UTC, whole seconds).
pub fn rfc3339(t: SystemTime) -> String {
    let s = secs(t);
    let days = s.div_euclid(86_400);
    let rem = s.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// A GeneralizedTime's text (`YYYYMMDDHHMMSS[.fff]Z`), fractions dropped: what TSAs write,
/// including the fractional seconds DER decoders of this project refuse.
fn generalized_time(text: &[u8]) -> Option<SystemTime> {
    let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    let whole = text.split('.').next()?;
    if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| whole[r].parse::<i64>().ok();
    let (y, m, d, hh, mm, ss) = (n(0..4)?, n(4..6)?, n(6..8)?, n(8..10)?, n(10..12)?, n(12..14)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let s = days * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(s).ok()?))
}

/// The digest algorithm `oid` names, and that algorithm in policy terms.
fn digest_algorithm(oid: &ObjectIdentifier) -> Option<(&'static digest::Algorithm, Algorithm)> {
    Some(match *oid {
        SHA1 => (&digest::SHA1_FOR_LEGACY_USE_ONLY, Algorithm::Sha1),
        SHA224 => (&digest::SHA224, Algorithm::Sha224),
        SHA256 => (&digest::SHA256, Algorithm::Sha256),
        SHA384 => (&digest::SHA384, Algorithm::Sha384),
        SHA512 => (&digest::SHA512, Algorithm::Sha512),
        _ => return None,
    })
}

/// The digest of `content` (read in chunks) with the algorithm `oid` names, and that
/// algorithm in policy terms; `None` for an algorithm not supported, `Some(Err)` when the
/// content cannot be read.
fn digest_of(oid: &ObjectIdentifier, content: &Ranges<'_>) -> Option<(Result<Vec<u8>, String>, Algorithm)> {
    let (algorithm, named) = digest_algorithm(oid)?;
    let mut context = digest::Context::new(algorithm);
    let read = content.chunks(|chunk| context.update(chunk)).map_err(|e| e.to_string());
    Some((read.map(|()| context.finish().as_ref().to_vec()), named))
}

/// The signature algorithm to verify with (a SignerInfo may say only rsaEncryption or
/// id-ecPublicKey and leave the hash to digestAlgorithm), and the key's algorithm and size
/// in policy terms.
fn signature_algorithm(signer: &SignerInfo, key: &spki::SubjectPublicKeyInfoOwned) -> Option<(AlgorithmIdentifierOwned, Algorithm, Option<u32>)> {
    let hash = signer.digest_alg.oid;
    let full = |rsa: &'static str, ecdsa: &'static str| match key.algorithm.oid {
        RSA => Some(rsa),
        EC_PUBLIC_KEY => Some(ecdsa),
        _ => None,
    };
    let algorithm = match signer.signature_algorithm.oid {
        RSA | EC_PUBLIC_KEY => {
            let name = match hash {
                SHA1 => full("1.2.840.113549.1.1.5", "1.2.840.10045.4.1"),
                SHA224 => full("1.2.840.113549.1.1.14", "1.2.840.10045.4.3.1"),
                SHA256 => full("1.2.840.113549.1.1.11", "1.2.840.10045.4.3.2"),
                SHA384 => full("1.2.840.113549.1.1.12", "1.2.840.10045.4.3.3"),
                SHA512 => full("1.2.840.113549.1.1.13", "1.2.840.10045.4.3.4"),
                _ => None,
            }?;
            let oid = ObjectIdentifier::new(name).ok()?;
            AlgorithmIdentifierOwned { oid, parameters: (key.algorithm.oid == RSA).then(|| der::asn1::Null.into()) }
        }
        _ => signer.signature_algorithm.clone(),
    };
    let (mut named, bits) = key_algorithm(key)?;
    if named == Algorithm::Rsa && algorithm.oid == RSA_PSS {
        named = Algorithm::RsaPss;
    }
    Some((algorithm, named, bits))
}

/// A public key's algorithm in policy terms, and its size for RSA.
fn key_algorithm(key: &spki::SubjectPublicKeyInfoOwned) -> Option<(Algorithm, Option<u32>)> {
    Some(match key.algorithm.oid {
        RSA => (Algorithm::Rsa, rsa_bits(key)),
        RSA_PSS => (Algorithm::RsaPss, rsa_bits(key)),
        EC_PUBLIC_KEY => match key.algorithm.parameters.as_ref().and_then(|p| p.decode_as::<ObjectIdentifier>().ok()) {
            Some(P256) => (Algorithm::EcdsaP256, None),
            Some(P384) => (Algorithm::EcdsaP384, None),
            Some(P521) => (Algorithm::EcdsaP521, None),
            _ => return None,
        },
        ED25519 => (Algorithm::Ed25519, None),
        _ => return None,
    })
}

/// The digest a certificate's signature algorithm uses (RSASSA-PSS counted as SHA-256).
fn certificate_digest(c: &Certificate) -> Option<Algorithm> {
    Some(match c.signature_algorithm.oid.to_string().as_str() {
        "1.2.840.113549.1.1.5" | "1.2.840.10045.4.1" => Algorithm::Sha1,
        "1.2.840.113549.1.1.14" | "1.2.840.10045.4.3.1" => Algorithm::Sha224,
        "1.2.840.113549.1.1.11" | "1.2.840.10045.4.3.2" | "1.2.840.113549.1.1.10" => Algorithm::Sha256,
        "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => Algorithm::Sha384,
        "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => Algorithm::Sha512,
        _ => return None,
    })
}

/// The size of an RSA key's modulus, in bits.
fn rsa_bits(key: &spki::SubjectPublicKeyInfoOwned) -> Option<u32> {
    let parts: Vec<Any> = Vec::from_der(key.subject_public_key.as_bytes()?).ok()?;
    let modulus = parts.first()?.value();
    let modulus = match modulus.iter().position(|b| *b != 0) {
        Some(i) => &modulus[i..],
        None => return Some(0),
    };
    Some(u32::try_from(modulus.len() * 8).ok()? - modulus[0].leading_zeros())
}

fn attribute(attributes: Option<&x509_cert::attr::Attributes>, oid: ObjectIdentifier) -> Option<&Any> {
    attributes?.iter().find(|a| a.oid == oid).and_then(|a| a.values.iter().next())
}

fn certificates(sd: &SignedData) -> Vec<Certificate> {
    sd.certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .filter_map(|c| match c {
            CertificateChoices::Certificate(c) => Some(c.clone()),
            CertificateChoices::Other(_) => None,
        })
        .collect()
}

/// The CMS's own revocation information: CRLs and RFC 5940 OCSP responses (DER).
fn revocation_info(sd: &SignedData) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let (mut ocsp, mut crls) = (Vec::new(), Vec::new());
    for choice in sd.crls.iter().flat_map(|set| set.iter()) {
        match choice.tag() {
            der::Tag::Sequence => {
                if let Ok(der) = choice.to_der() {
                    crls.push(der);
                }
            }
            // [1] IMPLICIT OtherRevocationInfoFormat: { format OID, info ANY }.
            _ => {
                if let Ok(parts) = Vec::<Any>::from_der(&[&[0x30][..], &der_length(choice.value().len()), choice.value()].concat())
                    && let [format, info] = parts.as_slice()
                    && format.decode_as::<ObjectIdentifier>().ok() == Some(oid::RI_OCSP_RESPONSE)
                    && let Ok(der) = info.to_der()
                {
                    ocsp.push(der);
                }
            }
        }
    }
    (ocsp, crls)
}

fn der_length(n: usize) -> Vec<u8> {
    match n {
        0..=0x7f => vec![n as u8],
        0x80..=0xff => vec![0x81, n as u8],
        0x100..=0xffff => vec![0x82, (n >> 8) as u8, n as u8],
        _ => vec![0x83, (n >> 16) as u8, (n >> 8) as u8, n as u8],
    }
}

fn finding(code: &'static str, ar: impl Into<String>, en: impl Into<String>) -> Finding {
    Finding { code, ar: ar.into(), en: en.into() }
}

/// A failed building block: its conclusion and why.
struct Failure {
    block: &'static str,
    conclusion: Conclusion,
    finding: Finding,
}

fn fail(block: &'static str, conclusion: Conclusion, finding: Finding) -> Failure {
    Failure { block, conclusion, finding }
}

/// A SignerInfo whose certificate was identified and whose signature verifies.
struct Verified {
    certificate: Certificate,
    certificate_der: Vec<u8>,
    digest: Algorithm,
    signature: (Algorithm, Option<u32>),
    claimed_time: Option<SystemTime>,
}

/// Identification of the signing certificate and cryptographic verification of `signer`
/// over `content` (the eContent when encapsulated).
fn verify_signer(sd: &SignedData, signer: &SignerInfo, content: &Ranges<'_>, pool: &[Certificate]) -> Result<Verified, Failure> {
    let format = |en: &str, ar: &str| fail("format-checking", Conclusion::failed(SubIndication::FormatFailure), finding("FORMAT", ar, en));
    let Some(attributes) = signer.signed_attrs.as_ref() else {
        return Err(format("the signature has no signed attributes (CAdES needs them)", "لا يحتوي التوقيع على سمات موقّعة"));
    };
    let content_type = attribute(Some(attributes), oid::CONTENT_TYPE).and_then(|a| a.decode_as::<ObjectIdentifier>().ok());
    if content_type != Some(sd.encap_content_info.econtent_type) {
        return Err(format("the content-type attribute is missing or not the signed content's type", "سمة نوع المحتوى مفقودة أو لا تطابق المحتوى الموقّع"));
    }
    let Some(message_digest) = attribute(Some(attributes), oid::MESSAGE_DIGEST).and_then(|a| a.decode_as::<OctetString>().ok()) else {
        return Err(format("the message-digest attribute is missing", "سمة بصمة الرسالة مفقودة"));
    };

    // Identification of the signing certificate.
    let isc = |en: String, ar: &str| {
        fail(
            "identification-of-the-signing-certificate",
            Conclusion::indeterminate(SubIndication::NoSigningCertificateFound),
            finding("SIGNING_CERTIFICATE_NOT_FOUND", ar, en),
        )
    };
    let certificate = pool
        .iter()
        .find(|c| match &signer.sid {
            SignerIdentifier::IssuerAndSerialNumber(id) => id.issuer == c.tbs_certificate.issuer && id.serial_number == c.tbs_certificate.serial_number,
            SignerIdentifier::SubjectKeyIdentifier(ski) => {
                let key = c.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes();
                ski.0.as_bytes() == digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, key).as_ref()
            }
        })
        .cloned()
        .ok_or_else(|| isc("the signing certificate is not in the signature (nor in the document's validation data)".into(), "شهادة التوقيع غير موجودة"))?;
    let certificate_der = certificate.to_der().map_err(|e| isc(e.to_string(), "شهادة التوقيع غير مقروءة"))?;
    let reference = signing_certificate_reference(attributes, &certificate_der, &certificate);
    if reference == Some(false) {
        return Err(isc(
            "the signing-certificate attribute names another certificate than the one that signed".into(),
            "سمة شهادة التوقيع تشير إلى شهادة أخرى",
        ));
    }

    // Cryptographic verification.
    let Some((computed, digest)) = digest_of(&signer.digest_alg.oid, content) else {
        return Err(fail(
            "cryptographic-verification",
            Conclusion::indeterminate(SubIndication::CryptoConstraintsFailure),
            finding("DIGEST_UNSUPPORTED", "خوارزمية البصمة غير مدعومة", format!("digest algorithm {} is not supported", signer.digest_alg.oid)),
        ));
    };
    let computed = computed.map_err(|e| {
        fail(
            "cryptographic-verification",
            Conclusion::indeterminate(SubIndication::SignedDataNotFound),
            finding("CONTENT_UNREADABLE", "تعذّرت قراءة المحتوى الموقّع", format!("the signed content cannot be read: {e}")),
        )
    })?;
    if computed != message_digest.as_bytes() {
        return Err(fail(
            "cryptographic-verification",
            Conclusion::failed(SubIndication::HashFailure),
            finding(
                "HASH_MISMATCH",
                "بصمة المحتوى لا تطابق البصمة الموقّعة: تغيّر المحتوى بعد التوقيع",
                "the content's digest is not the signed one: the content changed after signing",
            ),
        ));
    }
    let key = &certificate.tbs_certificate.subject_public_key_info;
    let Some((algorithm, named, bits)) = signature_algorithm(signer, key) else {
        return Err(fail(
            "cryptographic-verification",
            Conclusion::indeterminate(SubIndication::CryptoConstraintsFailure),
            finding(
                "SIGNATURE_ALGORITHM_UNSUPPORTED",
                "خوارزمية التوقيع غير مدعومة",
                format!("signature algorithm {} is not supported", signer.signature_algorithm.oid),
            ),
        ));
    };
    let signed = attributes.to_der().map_err(|e| format(&e.to_string(), "السمات الموقّعة غير مقروءة"))?;
    let lax = AlgorithmPolicy { allow_sha1: true, ..AlgorithmPolicy::default() };
    if let Err(e) = lax.verify(key, &algorithm, &signed, signer.signature.as_bytes()) {
        return Err(match e {
            pkix::path::SignatureFailure::Invalid => fail(
                "cryptographic-verification",
                Conclusion::failed(SubIndication::SigCryptoFailure),
                finding(
                    "SIGNATURE_VALUE_INVALID",
                    "قيمة التوقيع لا تتحقق بمفتاح شهادة التوقيع",
                    "the signature value does not verify with the signing certificate's key",
                ),
            ),
            other => fail(
                "cryptographic-verification",
                Conclusion::indeterminate(SubIndication::CryptoConstraintsFailure),
                finding("SIGNATURE_ALGORITHM_REFUSED", "خوارزمية التوقيع أو طول المفتاح غير مقبول", format!("{other:?}")),
            ),
        });
    }
    let claimed_time = attribute(Some(attributes), oid::SIGNING_TIME).and_then(generalized_or_utc);
    Ok(Verified { certificate, certificate_der, digest, signature: (named, bits), claimed_time })
}

fn generalized_or_utc(any: &Any) -> Option<SystemTime> {
    match any.tag() {
        der::Tag::GeneralizedTime => generalized_time(any.value()),
        der::Tag::UtcTime => {
            let text = std::str::from_utf8(any.value()).ok()?;
            let year: u32 = text.get(..2)?.parse().ok()?;
            let century = if year >= 50 { "19" } else { "20" };
            generalized_time(format!("{century}{text}").as_bytes())
        }
        _ => None,
    }
}

/// Whether the signing-certificate(-v2) attribute names `certificate`: `None` when absent.
fn signing_certificate_reference(attributes: &x509_cert::attr::Attributes, der: &[u8], certificate: &Certificate) -> Option<bool> {
    if let Some(v2) = attribute(Some(attributes), oid::SIGNING_CERTIFICATE_V2) {
        let Ok(v2) = v2.decode_as::<SigningCertificateV2>() else { return Some(false) };
        let Some(first) = v2.certs.first() else { return Some(false) };
        let algorithm = first.hash_algorithm.as_ref().map_or(SHA256, |a| a.oid);
        let Some((hash, _)) = digest_algorithm(&algorithm) else { return Some(false) };
        let hash = digest::digest(hash, der);
        let serial_ok = first.issuer_serial.as_ref().is_none_or(|s| s.serial_number == certificate.tbs_certificate.serial_number);
        return Some(hash.as_ref() == first.cert_hash.as_bytes() && serial_ok);
    }
    // SigningCertificate ::= SEQUENCE { certs SEQUENCE OF ESSCertID, … };
    // ESSCertID ::= SEQUENCE { certHash OCTET STRING (SHA-1), issuerSerial OPTIONAL }.
    let v1 = attribute(Some(attributes), SIGNING_CERTIFICATE)?;
    let hash = (|| {
        let outer: Vec<Any> = v1.decode_as().ok()?;
        let certs: Vec<Any> = outer.first()?.decode_as().ok()?;
        let first: Vec<Any> = certs.first()?.decode_as().ok()?;
        first.first()?.decode_as::<OctetString>().ok()
    })();
    Some(hash.is_some_and(|h| h.as_bytes() == digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, der).as_ref()))
}

/// Why a certificate path was refused, as a finding; stale revocation evidence also sets the
/// report's `retry_after`.
fn path_finding(e: &PathError, report: &mut SignatureReport) -> Finding {
    match e {
        PathError::RevocationNotFresh { subject, newest, retry_after } => {
            report.retry_after = Some(rfc3339(*retry_after));
            not_fresh(subject, *newest, *retry_after)
        }
        e => finding("CERTIFICATE_PATH", "تعذّر التحقق من سلسلة شهادة التوقيع", e.to_string()),
    }
}

/// The finding for revocation evidence that is there but not fresh enough.
fn not_fresh(subject: &str, newest: SystemTime, retry_after: SystemTime) -> Finding {
    let (newest, retry_after) = (rfc3339(newest), rfc3339(retry_after));
    finding(
        "REVOCATION_NOT_FRESH",
        format!("أدلة الإلغاء للشهادة «{subject}» موجودة لكنها غير حديثة بما يكفي (أحدثها صدر في {newest})؛ أعد التحقق بعد {retry_after}"),
        format!(
            "the revocation evidence about certificate «{subject}» is there but not fresh enough (the newest was issued at {newest}); validate again after {retry_after}"
        ),
    )
}

/// A timestamp token's TSTInfo: what the validator needs of it.
struct TstInfo {
    imprint_algorithm: ObjectIdentifier,
    imprint: Vec<u8>,
    serial: String,
    gen_time: SystemTime,
}

/// Reads a TSTInfo element by element, so that a genTime with fractional seconds is read too.
fn tst_info(econtent: &[u8]) -> Option<TstInfo> {
    let items: Vec<Any> = Vec::from_der(econtent).ok()?;
    let [_version, _policy, imprint, serial, gen_time, ..] = items.as_slice() else { return None };
    let imprint: x509_tsp::MessageImprint = imprint.decode_as().ok()?;
    if serial.tag() != der::Tag::Integer || gen_time.tag() != der::Tag::GeneralizedTime {
        return None;
    }
    Some(TstInfo {
        imprint_algorithm: imprint.hash_algorithm.oid,
        imprint: imprint.hashed_message.as_bytes().to_vec(),
        serial: hex::encode(serial.value()),
        gen_time: generalized_time(gen_time.value())?,
    })
}

/// A validated timestamp: when, which, and how it ended.
pub(crate) struct Timestamp {
    pub gen_time: Option<SystemTime>,
    pub serial: Option<String>,
    pub conclusion: Conclusion,
    pub findings: Vec<Finding>,
}

/// Validates an RFC 3161 token over `over`: its format, its imprint, the TSA's signature, and
/// the TSA's certificate (id-kp-timeStamping, a path to the trust list at the token's time,
/// not revoked by the evidence at hand; with `require_revocation`, evidence must say so — a
/// token validated on its own needs it, one that gives a signature its proof of existence is
/// judged as DSS does, on the evidence there is).
pub(crate) fn validate_timestamp(
    token: &[u8],
    over: &Ranges<'_>,
    inputs: &Inputs<'_>,
    evidence: &Evidence,
    extra: &[Certificate],
    require_revocation: bool,
) -> Timestamp {
    let broken = |sub: SubIndication, f: Finding, info: Option<&TstInfo>| Timestamp {
        gen_time: info.map(|i| i.gen_time),
        serial: info.map(|i| i.serial.clone()),
        conclusion: Conclusion::failed(sub),
        findings: vec![f],
    };
    let Ok(sd) = SignedData::from_content_info(token) else {
        return broken(SubIndication::FormatFailure, finding("TIMESTAMP_UNREADABLE", "الختم الزمني غير مقروء", "the timestamp token cannot be read"), None);
    };
    let econtent = sd.encap_content_info.econtent.as_ref().map(|e| e.value().to_vec());
    let info = econtent.as_deref().filter(|_| sd.encap_content_info.econtent_type == oid::TST_INFO).and_then(tst_info);
    let Some(info) = info else {
        return broken(
            SubIndication::FormatFailure,
            finding("TIMESTAMP_UNREADABLE", "محتوى الختم الزمني غير مقروء", "the timestamp token's TSTInfo cannot be read"),
            None,
        );
    };
    match digest_of(&info.imprint_algorithm, over) {
        Some((Ok(d), _)) if d == info.imprint => {}
        _ => {
            return broken(
                SubIndication::HashFailure,
                finding("TIMESTAMP_IMPRINT_MISMATCH", "الختم الزمني ليس على هذه البيانات", "the timestamp is not over this data (message imprint mismatch)"),
                Some(&info),
            );
        }
    }
    let mut pool = certificates(&sd);
    pool.extend(extra.iter().cloned());
    let mut signers = sd.signer_infos.0.iter();
    let (Some(signer), None) = (signers.next(), signers.next()) else {
        return broken(
            SubIndication::FormatFailure,
            finding("TIMESTAMP_SIGNERS", "للختم الزمني أكثر من موقّع", "a timestamp token has exactly one signer"),
            Some(&info),
        );
    };
    let content = econtent.unwrap_or_default();
    let verified = match verify_signer(&sd, signer, &Ranges::whole(Bytes::new(&content)), &pool) {
        Ok(v) => v,
        Err(f) => return Timestamp { gen_time: Some(info.gen_time), serial: Some(info.serial), conclusion: f.conclusion, findings: vec![f.finding] },
    };
    let mut options = PathOptions::at(info.gen_time);
    options.required_eku = Some(TIME_STAMPING);
    options.require_revocation_status = require_revocation;
    let intermediates: Vec<Vec<u8>> = pool.iter().filter_map(|c| c.to_der().ok()).chain(inputs.certificates.iter().cloned()).collect();
    match path::validate(&verified.certificate_der, &intermediates, &inputs.trust.anchors, &options, Some(evidence)) {
        Ok(_) => Timestamp { gen_time: Some(info.gen_time), serial: Some(info.serial), conclusion: Conclusion::PASSED, findings: Vec::new() },
        Err(e) => Timestamp {
            gen_time: Some(info.gen_time),
            serial: Some(info.serial),
            // As for a signer: no evidence CERTIFICATE_CHAIN_GENERAL_FAILURE, stale evidence
            // TRY_LATER (PathError::sub_indication).
            conclusion: Conclusion::indeterminate(e.sub_indication()),
            findings: vec![match &e {
                PathError::RevocationNotFresh { subject, newest, retry_after } => not_fresh(subject, *newest, *retry_after),
                e => finding("TIMESTAMP_AUTHORITY_NOT_TRUSTED", "سلطة الختم الزمني غير موثوقة", e.to_string()),
            }],
        },
    }
}

fn certificate_info(c: &Certificate, anchor: bool) -> CertificateInfo {
    let validity = &c.tbs_certificate.validity;
    CertificateInfo {
        subject: c.tbs_certificate.subject.to_string(),
        issuer: c.tbs_certificate.issuer.to_string(),
        serial: hex::encode(c.tbs_certificate.serial_number.as_bytes()),
        not_before: rfc3339(validity.not_before.to_system_time()),
        not_after: rfc3339(validity.not_after.to_system_time()),
        sha256: c.to_der().map(|d| hex::encode(digest::digest(&digest::SHA256, &d))).unwrap_or_default(),
        trust_anchor: anchor,
    }
}

fn name_attribute(c: &Certificate, oid: ObjectIdentifier) -> Option<String> {
    c.tbs_certificate
        .subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|a| a.oid == oid)
        .and_then(|a| std::str::from_utf8(a.value.value()).ok().map(str::to_owned))
}

fn signer_info(c: &Certificate) -> Signer {
    let name = name_attribute(c, COMMON_NAME);
    let arabic = name.as_deref().is_some_and(|n| n.chars().any(|ch| ('\u{0600}'..='\u{06ff}').contains(&ch)));
    // EN 319 412-1 semantics identifiers: PNOJO-…, IDCJO-…; the number after the dash.
    let national_id = name_attribute(c, SERIAL_NUMBER).map(|s| s.split_once('-').map_or(s.clone(), |(_, n)| n.to_owned()));
    Signer { name_ar: name.clone().filter(|_| arabic), name_latin: name.filter(|_| !arabic), national_id }
}

fn extension_value(c: &Certificate, oid: ObjectIdentifier) -> Option<&[u8]> {
    c.tbs_certificate.extensions.iter().flatten().find(|e| e.extn_id == oid).map(|e| e.extn_value.as_bytes())
}

/// The qcStatement ids a certificate carries.
fn qc_statements(c: &Certificate) -> Vec<ObjectIdentifier> {
    let Some(value) = extension_value(c, QC_STATEMENTS) else { return Vec::new() };
    let Ok(statements) = Vec::<Any>::from_der(value) else { return Vec::new() };
    statements.iter().filter_map(|s| s.decode_as::<Vec<Any>>().ok()).filter_map(|s| s.first().and_then(|id| id.decode_as::<ObjectIdentifier>().ok())).collect()
}

/// QESig when the certificate is qualified (QcCompliance, from a CA the trust list says
/// issues qualified certificates since before the certificate) and its key on a QSCD
/// (QcSSCD); AdESig-QC when only qualified; AdESig otherwise.
fn qualification(chain: &[Certificate], trust: &Trust) -> Qualification {
    let (Some(leaf), Some(issuer)) = (chain.first(), chain.get(1)) else { return Qualification::Advanced };
    let statements = qc_statements(leaf);
    let issued = leaf.tbs_certificate.validity.not_before.to_system_time();
    let issuer_der = issuer.to_der().unwrap_or_default();
    let qualified_ca = trust.qualified.iter().any(|q| q.certificate == issuer_der && q.since <= issued && q.until.is_none_or(|u| issued < u));
    match (qualified_ca && statements.contains(&QC_COMPLIANCE), statements.contains(&QC_SSCD)) {
        (true, true) => Qualification::Qualified,
        (true, false) => Qualification::AdvancedQc,
        _ => Qualification::Advanced,
    }
}

/// How many OCSP responses or CRLs came from each source, in the order the evidence holds them.
#[derive(Clone, Copy)]
struct Sources {
    signature: usize,
    document: usize,
}

impl Sources {
    fn of(self, i: usize) -> &'static str {
        if i < self.signature {
            "signature"
        } else if i < self.signature + self.document {
            "dss"
        } else {
            "online"
        }
    }
}

fn revocation_report(used: &[Used], ocsp: Sources, crls: Sources) -> Vec<RevocationEvidence> {
    used.iter()
        .map(|u| {
            let (kind, source) = match u.source {
                Source::Ocsp(i) => ("ocsp", ocsp.of(i)),
                Source::Crl(i) => ("crl", crls.of(i)),
            };
            RevocationEvidence {
                certificate: u.certificate.clone(),
                kind,
                source,
                status: match (u.revoked, u.fresh) {
                    (Some(_), _) => "revoked",
                    (None, true) => "good",
                    (None, false) => "not-fresh",
                },
                produced_at: rfc3339(u.issued),
                this_update: rfc3339(u.this_update),
                next_update: u.next_update.map(rfc3339),
                revoked_at: u.revoked.map(|(at, _)| rfc3339(at)),
            }
        })
        .collect()
}

/// Validates every signer of the CMS `cms` over `content`; one report each (`id` given by
/// the caller after). The reports' `format` is the level reached (`B-B`, `B-T`, `B-LT`),
/// which the caller prefixes (`CAdES-BASELINE-`, `PAdES-BASELINE-`).
pub fn validate(cms: &[u8], content: Content<'_>, inputs: &Inputs<'_>) -> Vec<SignatureReport> {
    let empty = |conclusion: Conclusion, f: Finding| SignatureReport::unusable("signature-1", "signature", conclusion, f, rfc3339(inputs.now));
    let Ok(sd) = SignedData::from_content_info(cms) else {
        let f = finding("CMS_UNREADABLE", "التوقيع ليس رسالة CMS مقروءة", "the signature is not a readable CMS SignedData");
        return vec![empty(Conclusion::failed(SubIndication::FormatFailure), f)];
    };
    let encapsulated = sd.encap_content_info.econtent.as_ref().map(|e| e.value());
    let parts: Ranges<'_> = match (content, &encapsulated) {
        (Content::Detached(parts), None) => parts,
        (Content::Encapsulated, Some(e)) => Ranges::whole(Bytes::new(e)),
        (Content::Detached(_), Some(_)) | (Content::Encapsulated, None) => {
            let f = finding(
                "CONTENT_MISMATCH",
                "المحتوى الموقّع غير موجود حيث يجب",
                "the signed content is not where it must be (a detached signature with content inside, or no content at all)",
            );
            return vec![empty(Conclusion::indeterminate(SubIndication::SignedDataNotFound), f)];
        }
    };
    let (mut ocsp, mut crls) = revocation_info(&sd);
    let ocsp_sources = Sources { signature: ocsp.len(), document: inputs.ocsp.len() };
    let crl_sources = Sources { signature: crls.len(), document: inputs.crls.len() };
    ocsp.extend(inputs.ocsp.iter().cloned());
    crls.extend(inputs.crls.iter().cloned());
    // Embedded evidence only: what is fetched online does not raise the signature's level.
    let has_evidence = !ocsp.is_empty() || !crls.is_empty();
    let mut pool = certificates(&sd);
    pool.extend(inputs.certificates.iter().filter_map(|d| Certificate::from_der(d).ok()));
    if let Some(fetch) = inputs.online {
        let (more_ocsp, more_crls) = fetch_evidence(fetch, &pool, inputs.trust);
        ocsp.extend(more_ocsp);
        crls.extend(more_crls);
    }
    let freshness = Duration::from_secs(inputs.policy.revocation_freshness);
    let lax = AlgorithmPolicy { allow_sha1: true, ..AlgorithmPolicy::default() };
    sd.signer_infos
        .0
        .iter()
        .enumerate()
        .map(|(i, signer)| {
            let evidence = Evidence::new(ocsp.clone(), &crls, lax.clone(), freshness);
            let mut report = validate_signer(&sd, signer, &parts, &pool, inputs, &evidence, has_evidence);
            report.id = format!("signature-{}", i + 1);
            report.revocation = revocation_report(&evidence.used(), ocsp_sources, crl_sources);
            report
        })
        .collect()
}

/// Asks, for every certificate the signature carries whose issuer is known (in the signature
/// or a trust anchor), its OCSP responders and CRL distribution points; a responder that
/// answers makes the CRLs unnecessary. At most 16 certificates are asked about.
fn fetch_evidence(fetch: &dyn Fetch, pool: &[Certificate], trust: &Trust) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let anchors: Vec<Certificate> = trust.anchor_der.iter().filter_map(|d| Certificate::from_der(d).ok()).collect();
    let (mut ocsp, mut crls) = (Vec::new(), Vec::new());
    for certificate in pool.iter().take(16) {
        let tbs = &certificate.tbs_certificate;
        if tbs.subject == tbs.issuer {
            continue;
        }
        let Some(issuer) = pool.iter().chain(&anchors).find(|i| i.tbs_certificate.subject == tbs.issuer) else { continue };
        let (responders, distribution_points) = pkix::evidence::locations(certificate);
        let answered = pkix::ocsp::request(certificate, issuer)
            .ok()
            .and_then(|request| responders.iter().find_map(|url| fetch.ocsp(url, &request)))
            .map(|answer| ocsp.push(answer))
            .is_some();
        if !answered && let Some(crl) = distribution_points.iter().find_map(|url| fetch.crl(url)) {
            crls.push(crl);
        }
    }
    (ocsp, crls)
}

/// The baseline level a signer's structure reaches, `has_evidence` saying whether any
/// revocation evidence is embedded (in the CMS or the document).
fn structural_level(signer: &SignerInfo, has_evidence: bool) -> Option<BaselineLevel> {
    let signed = signer.signed_attrs.as_ref();
    let reference = attribute(signed, oid::SIGNING_CERTIFICATE_V2).is_some() || attribute(signed, SIGNING_CERTIFICATE).is_some();
    let timestamped = signer.unsigned_attrs.iter().flat_map(|a| a.iter()).any(|a| a.oid == oid::SIGNATURE_TIME_STAMP_TOKEN);
    match (reference, timestamped, has_evidence) {
        (false, _, _) => None,
        (true, false, _) => Some(BaselineLevel::B),
        (true, true, false) => Some(BaselineLevel::T),
        (true, true, true) => Some(BaselineLevel::Lt),
    }
}

fn validate_signer(
    sd: &SignedData,
    signer: &SignerInfo,
    parts: &Ranges<'_>,
    pool: &[Certificate],
    inputs: &Inputs<'_>,
    evidence: &Evidence,
    has_evidence: bool,
) -> SignatureReport {
    let mut report = SignatureReport::blank("", "signature", rfc3339(inputs.now));
    let conclude = |report: &mut SignatureReport, f: Failure| {
        report.blocks.push(BlockResult { block: f.block, conclusion: f.conclusion, findings: vec![f.finding.clone()] });
        report.errors.push(f.finding);
        report.conclusion = f.conclusion;
    };
    let passed =
        |report: &mut SignatureReport, block: &'static str| report.blocks.push(BlockResult { block, conclusion: Conclusion::PASSED, findings: Vec::new() });
    // The level the signature's structure reaches, whatever its validity (as DSS reports it):
    // B-B with a signing-certificate reference, B-T with a signature timestamp, B-LT with
    // revocation evidence embedded (in the CMS or the document).
    let level = structural_level(signer, has_evidence);
    report.format = level.map_or("NOT-ETSI".to_owned(), |l| format!("BASELINE-{}", l.suffix()));
    let verified = match verify_signer(sd, signer, parts, pool) {
        Ok(v) => v,
        Err(f) => {
            conclude(&mut report, f);
            return report;
        }
    };
    for block in ["format-checking", "identification-of-the-signing-certificate", "cryptographic-verification"] {
        passed(&mut report, block);
    }
    report.signer = Some(signer_info(&verified.certificate));
    report.claimed_signing_time = verified.claimed_time.map(rfc3339);

    // Signature timestamps: each valid one proves the signature value existed at its time.
    let mut best: (SystemTime, &'static str, Option<String>) = (inputs.now, "validation-time", None);
    let tokens = signer.unsigned_attrs.iter().flat_map(|a| a.iter()).filter(|a| a.oid == oid::SIGNATURE_TIME_STAMP_TOKEN).flat_map(|a| a.values.iter());
    for token in tokens {
        let Ok(token) = token.to_der() else { continue };
        let value = signer.signature.as_bytes();
        let ts = validate_timestamp(&token, &Ranges::whole(Bytes::new(&value)), inputs, evidence, pool, false);
        let ok = ts.conclusion.passed();
        report.blocks.push(BlockResult { block: "timestamp-validation", conclusion: ts.conclusion, findings: ts.findings.clone() });
        match (ok, ts.gen_time) {
            (true, Some(t)) if t < best.0 => best = (t, "signature-timestamp", ts.serial),
            (true, _) => {}
            (false, _) => report.warnings.extend(ts.findings),
        }
    }
    if let Some((t, serial)) = &inputs.archive_poe
        && *t < best.0
    {
        best = (*t, "archive-timestamp", Some(serial.clone()));
    }
    let proved = best.1 != "validation-time";
    if let Some(claimed) = verified.claimed_time
        && proved
        && claimed > best.0 + Duration::from_secs(300)
    {
        let f = finding("TIMESTAMP_BEFORE_SIGNING_TIME", "الختم الزمني أقدم من وقت التوقيع المعلن", "the timestamp is earlier than the claimed signing time");
        conclude(&mut report, fail("timestamp-validation", Conclusion::indeterminate(SubIndication::TimestampOrderFailure), f));
        return report;
    }
    report.best_signature_time = ProvedTime { time: rfc3339(best.0), proof: best.1, timestamp_serial: best.2 };

    // X.509 validation at the best signature time, with revocation evidence that speaks for it.
    let intermediates: Vec<Vec<u8>> = pool.iter().filter_map(|c| c.to_der().ok()).collect();
    let mut options = PathOptions::at(best.0);
    options.algorithms = AlgorithmPolicy { allow_sha1: true, ..AlgorithmPolicy::default() };
    options.require_revocation_status = true;
    let path = match path::validate(&verified.certificate_der, &intermediates, &inputs.trust.anchors, &options, Some(evidence)) {
        Ok(path) => path,
        Err(e) => {
            let sub = match &e {
                // Revoked before the time the signature is proved to have existed: a signature
                // timestamp only bounds the signing time from above, so the signature may have
                // been made before the revocation, or after: no proof either way.
                PathError::Revoked { end_entity: true, .. } => SubIndication::RevokedNoPoe,
                PathError::Expired { .. } | PathError::NotYetValid { .. } => SubIndication::OutOfBoundsNoPoe,
                // No revocation evidence that can be relied on (nothing embedded, nothing
                // fetched): INDETERMINATE / CERTIFICATE_CHAIN_GENERAL_FAILURE, as EN 319 102-1
                // §5.2.6 and DSS (RevocationDataAvailable, AcceptableRevocationDataAvailable)
                // say, and pyHanko too.
                PathError::RevocationUnknown { .. } => SubIndication::CertificateChainGeneralFailure,
                // Evidence there is, but not fresh enough for the best signature time: the
                // revocation freshness checker (§5.2.5) fails, and §5.2.6 concludes
                // INDETERMINATE / TRY_LATER with when to try again, as DSS does.
                PathError::RevocationNotFresh { .. } => SubIndication::TryLater,
                _ => e.sub_indication(),
            };
            let conclusion = Conclusion::indeterminate(sub);
            let f = path_finding(&e, &mut report);
            conclude(&mut report, fail("x509-certificate-validation", conclusion, f));
            return report;
        }
    };
    passed(&mut report, "x509-certificate-validation");
    report.chain = path.certificates.iter().enumerate().map(|(i, c)| certificate_info(c, i + 1 == path.certificates.len())).collect();

    // The level reached: B-B (signing-certificate reference), B-T (a valid signature
    // timestamp), B-LT (every certificate of the path and its revocation evidence embedded).
    let qualification = qualification(&path.certificates, inputs.trust);
    report.qualification = qualification.report_name();

    // Signature acceptance under the policy.
    let policy = inputs.policy;
    let constraint = |f: Finding| fail("signature-acceptance-validation", Conclusion::indeterminate(SubIndication::SigConstraintsFailure), f);
    let at = secs(best.0);
    // The signature's own algorithms, and those of the certificates it relies on (not the
    // anchor's self-signature: trust in an anchor does not rest on it).
    let mut algorithms = vec![(verified.digest, None, "digest".to_owned()), (verified.signature.0, verified.signature.1, "signature".to_owned())];
    for c in path.certificates.iter().take(path.certificates.len().saturating_sub(1)) {
        let who = format!("certificate «{}»'s", c.tbs_certificate.subject);
        if let Some(d) = certificate_digest(c) {
            algorithms.push((d, None, format!("{who} signature digest")));
        }
        if let Some((k, bits)) = key_algorithm(&c.tbs_certificate.subject_public_key_info) {
            algorithms.push((k, bits, format!("{who} key")));
        }
    }
    for (algorithm, bits, what) in algorithms {
        if let Err(refusal) = policy.accepts(algorithm, bits, at) {
            let en = match refusal {
                AlgorithmRefusal::NotAccepted => format!("the {what} algorithm {algorithm:?} is not accepted by policy {}", policy.id),
                AlgorithmRefusal::KeyTooSmall { bits, min_bits } => format!("the {bits}-bit key is below policy {}'s {min_bits} bits", policy.id),
                AlgorithmRefusal::Expired { until } => format!(
                    "the {what} algorithm {algorithm:?} is no longer reliable since {} and no proof the signature existed before",
                    rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(until.max(0) as u64))
                ),
            };
            // An algorithm past its end date at the best signature time: no proof the signature
            // existed while it was reliable.
            let sub = if matches!(refusal, AlgorithmRefusal::Expired { .. }) {
                SubIndication::CryptoConstraintsFailureNoPoe
            } else {
                SubIndication::CryptoConstraintsFailure
            };
            conclude(
                &mut report,
                fail(
                    "signature-acceptance-validation",
                    Conclusion::indeterminate(sub),
                    finding("ALGORITHM_NOT_ACCEPTED", "الخوارزمية أو طول المفتاح غير مقبول في سياسة التحقق", en),
                ),
            );
            return report;
        }
    }
    if policy.timestamp_required && !proved {
        conclude(
            &mut report,
            constraint(finding(
                "TIMESTAMP_REQUIRED",
                "تتطلب سياسة التحقق ختمًا زمنيًا صالحًا",
                format!("policy {} requires a valid signature timestamp", policy.id),
            )),
        );
        return report;
    }
    if level.is_none_or(|l| l < policy.min_baseline) {
        let en = format!("the signature reaches {}; policy {} requires B-{} or higher", report.format, policy.id, policy.min_baseline.suffix());
        conclude(&mut report, constraint(finding("LEVEL_TOO_LOW", "مستوى التوقيع أدنى مما تتطلبه سياسة التحقق", en)));
        return report;
    }
    if qualification < policy.min_qualification {
        let en = format!("the signature is {}; policy {} requires {}", qualification.report_name(), policy.id, policy.min_qualification.report_name());
        conclude(&mut report, constraint(finding("QUALIFICATION_TOO_LOW", "تأهيل التوقيع أدنى مما تتطلبه سياسة التحقق", en)));
        return report;
    }
    if let Some(required) = &policy.signer_min_level
        && let Some(method) = inputs.policies.signature_method(&path::certificate_policies(&verified.certificate).and_then(Result::ok).unwrap_or_default())
        && method.level < *required
    {
        let en = format!("the signing key reaches {} ({}); policy {} requires {}", method.level.name(), method.name.en, policy.id, required.name());
        conclude(&mut report, constraint(finding("SIGNER_LEVEL_TOO_LOW", "مستوى ضمان مفتاح التوقيع أدنى مما تتطلبه سياسة التحقق", en)));
        return report;
    }
    passed(&mut report, "signature-acceptance-validation");
    report
}
