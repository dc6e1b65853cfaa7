//! A citizen's signature from document to B-LT file: what the device signs, and what its
//! answer becomes once a timestamp and the revocation evidence are added.
//!
//! A PDF (a file that starts with `%PDF-`) gets PAdES-BASELINE-LT: the signature in an
//! incremental update, then a `/DSS` update with the chain, the other certificates and CRLs
//! the caller names and the OCSP response. Any other file, or a document that only its digest
//! stands for ([`Signing::prepare_digest`]), gets a detached CAdES-BASELINE-LT `.p7s` with the
//! OCSP response inside (RFC 5940). The timestamp is
//! asked first and the OCSP response after it (with a nonce, so the responder signs anew):
//! the revocation evidence is produced after the signature time, and a suspended or revoked
//! certificate gets no signature.
//!
//! The timestamp authority and the OCSP responder are reached through [`Evidence`], which
//! carries DER requests and answers: in-process in `hawiya`, over HTTP elsewhere.

use der::asn1::{Int, ObjectIdentifier, OctetString};
use der::{Decode, Encode};
pub use pkix::DigestAlgorithm;
use pkix::tsp::{PkiStatus, TimeStampResp};
use x509_cert::Certificate;
use x509_ocsp::ext::Nonce;
use x509_ocsp::{CertId, OcspRequest, Request, TbsRequest, Version};
use x509_tsp::{MessageImprint, TimeStampReq, TspVersion};

use crate::cades::{CadesError, DeviceAnswer, KeyAlgorithms, Prepared, Profile, Root};
use crate::pdf::{self, PdfError, PrepareOptions, SignatureDetails};

/// The timestamp authority and the OCSP responder, as DER in and DER out.
#[async_trait::async_trait]
pub trait Evidence: Send + Sync {
    /// Answers a DER TimeStampReq with a DER TimeStampResp.
    async fn timestamp(&self, request: Vec<u8>) -> Result<Vec<u8>, String>;
    /// Answers a DER OCSPRequest with a DER OCSPResponse.
    async fn ocsp(&self, request: Vec<u8>) -> Result<Vec<u8>, String>;
}

/// What a B-LT signature carries besides the signer's certificate.
#[derive(Clone, Debug, Default)]
pub struct Chain {
    /// The signing certificate's issuer (DER).
    pub issuer: Vec<u8>,
    /// Further certificates for a PDF's `/DSS`: the root, the TSA's chain, the OCSP
    /// responder's certificate (DER).
    pub others: Vec<Vec<u8>>,
    /// CRLs for a PDF's `/DSS` (the CAs' own revocation status), DER.
    pub crls: Vec<Vec<u8>>,
}

/// The signature format a document gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// PAdES-BASELINE-LT, an incremental update of the PDF.
    Pades,
    /// CAdES-BASELINE-LT, a detached `.p7s`.
    Cades,
}

/// Why no signature was made.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The PDF cannot be signed (encrypted, damaged, certified) or updated.
    #[error(transparent)]
    Pdf(#[from] PdfError),
    /// The signature or its evidence was refused (another hash, a suspended or revoked
    /// certificate, …).
    #[error(transparent)]
    Cades(#[from] CadesError),
    /// The timestamp authority or the OCSP responder did not answer as it must.
    #[error("{0}")]
    Evidence(String),
}

/// One document (or one document digest) being signed by one certificate at one time. Preparing it again with the
/// same arguments gives the same octets to sign.
#[derive(Debug)]
pub struct Signing<'a> {
    cades: Prepared,
    pdf: Option<pdf::Prepared<'a>>,
    document_sha256: Option<[u8; 32]>,
}

impl<'a> Signing<'a> {
    /// Prepares `document` for the holder of `certificate` (DER) at `signing_time` (Unix
    /// seconds).
    pub fn prepare(document: &'a [u8], certificate: &[u8], signing_time: i64) -> Result<Self, SignError> {
        let parsed = Certificate::from_der(certificate).map_err(|e| CadesError::Certificate { which: "signing", reason: e.to_string() })?;
        // The document digest fits the key (SHA-256 for P-256, SHA-384 for P-384).
        let digest = key_digest(&parsed)?;
        if !document.starts_with(b"%PDF-") {
            // A detached signature covers the document's digest only: the same path as a
            // digest the caller sends.
            let value = digest.digest(document);
            let sha256 = if digest == DigestAlgorithm::Sha256 { value.as_slice().try_into().ok() } else { None };
            let sha256 = sha256.unwrap_or_else(|| DigestAlgorithm::Sha256.digest(document).try_into().unwrap_or_default());
            let signing = Self::prepare_digest(digest, &value, certificate, signing_time)?;
            return Ok(Signing { document_sha256: Some(sha256), ..signing });
        }
        let details = SignatureDetails {
            signing_time: time::OffsetDateTime::from_unix_timestamp(signing_time).map_err(|e| SignError::Evidence(e.to_string()))?,
            name: common_name(&parsed),
            reason: None,
            location: None,
        };
        let prepared = pdf::prepare(document, &PrepareOptions::signature(details))?;
        let (signed_digest, sha256) = prepared.digests(digest);
        let cades = Prepared::for_digest(Profile::Pades, certificate, digest, &signed_digest)?;
        Ok(Signing { cades, pdf: Some(prepared), document_sha256: Some(sha256) })
    }

    /// Prepares a detached CAdES signature (`.p7s`) over a document that only its `digest`
    /// (made with `algorithm`) stands for: the signer never needs the document itself. The
    /// algorithm must be the one the key of `certificate` signs with
    /// ([`CadesError::DigestDoesNotFitKey`]; [`CadesError::DigestLength`] for a digest of
    /// the wrong size). A PDF signature needs the document: there is no PAdES by digest.
    pub fn prepare_digest(algorithm: DigestAlgorithm, digest: &[u8], certificate: &[u8], signing_time: i64) -> Result<Self, SignError> {
        let cades = Prepared::for_digest(Profile::Cades { signing_time: signing_time.max(0) as u64 }, certificate, algorithm, digest)?;
        Ok(Signing { cades, pdf: None, document_sha256: None })
    }

    /// The SHA-256 of the document (what a signature record keeps), made in the same pass as
    /// the signed digest; `None` when only a digest was given.
    pub fn document_sha256(&self) -> Option<[u8; 32]> {
        self.document_sha256
    }

    /// The format the signature will have.
    pub fn format(&self) -> Format {
        if self.pdf.is_some() { Format::Pades } else { Format::Cades }
    }

    /// The octets the device signs.
    pub fn to_be_signed(&self) -> &[u8] {
        self.cades.to_be_signed()
    }

    /// Their hash with the key's digest; the verification code comes from it.
    pub fn hash(&self) -> &[u8] {
        self.cades.hash()
    }

    /// Checks the device's `signature`, asks the timestamp and the OCSP response, and
    /// assembles the signed file (the signed PDF, or the `.p7s`). With `archive`, a PDF also
    /// gets a document timestamp over all of that, in a further update (PAdES B-LTA).
    pub async fn complete(self, signature: &[u8], evidence: &dyn Evidence, chain: &Chain, archive: bool) -> Result<Vec<u8>, SignError> {
        let algorithms = self.cades.algorithms();
        let signed = self.cades.accept(&DeviceAnswer { signed_hash: self.cades.hash(), algorithm: algorithms.signature, signature })?;
        let token = timestamp(evidence, algorithms.digest, signed.signature()).await?;
        let issuer = Certificate::from_der(&chain.issuer).map_err(|e| CadesError::Certificate { which: "chain", reason: e.to_string() })?;
        let ocsp = evidence.ocsp(ocsp_request(signed.certificate(), &issuer)?).await.map_err(|e| SignError::Evidence(format!("OCSP: {e}")))?;
        let ocsp = std::slice::from_ref(&ocsp);
        let issuers = std::slice::from_ref(&chain.issuer);
        match self.pdf {
            // A .p7s carries the evidence for every path a validator builds (the signer's and
            // the TSA's), as a PDF's /DSS does: a validator trusting only the root and
            // fetching nothing needs all of it. The root itself stays out.
            None => {
                let certificates: Vec<Vec<u8>> = std::iter::once(chain.issuer.clone()).chain(chain.others.iter().cloned()).collect();
                Ok(signed.assemble(&token, ocsp, &chain.crls, &certificates, Root::Omit)?)
            }
            Some(pdf) => {
                let signed_pdf = pdf.finish(&signed.assemble_for_pdf(&token, ocsp, issuers, Root::Omit)?)?;
                let signer = signed.certificate().to_der().map_err(CadesError::from)?;
                let certificates: Vec<Vec<u8>> = [signer, chain.issuer.clone()].into_iter().chain(chain.others.iter().cloned()).collect();
                let lt = pdf::add_dss(signed_pdf, &certificates, ocsp, &chain.crls)?;
                if !archive {
                    return Ok(lt);
                }
                let stamp = pdf::prepare(&lt, &PrepareOptions::document_timestamp())?;
                let token = imprint_timestamp(evidence, DigestAlgorithm::Sha256, stamp.digest(DigestAlgorithm::Sha256)).await?;
                Ok(stamp.finish(&token)?)
            }
        }
    }
}

/// The digest the key of `certificate` signs with.
fn key_digest(certificate: &Certificate) -> Result<DigestAlgorithm, SignError> {
    let spki = certificate.tbs_certificate.subject_public_key_info.to_der().map_err(CadesError::from)?;
    let key = hsm_shim::PublicKey::from_spki_der(&spki).map_err(|e| CadesError::UnsupportedKey(e.to_string()))?;
    Ok(KeyAlgorithms::of(key.spec())?.digest)
}

/// A timestamp token (DER ContentInfo) over `data` (the signature value).
async fn timestamp(evidence: &dyn Evidence, digest: DigestAlgorithm, data: &[u8]) -> Result<Vec<u8>, SignError> {
    imprint_timestamp(evidence, digest, digest.digest(data)).await
}

/// A timestamp token over a digest already made (`imprint`, with `digest`).
async fn imprint_timestamp(evidence: &dyn Evidence, digest: DigestAlgorithm, imprint: Vec<u8>) -> Result<Vec<u8>, SignError> {
    let failed = |e: &dyn std::fmt::Display| SignError::Evidence(format!("timestamp: {e}"));
    let mut nonce = [0u8; 8];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| failed(&"no randomness"))?;
    nonce[0] = (nonce[0] & 0x7f) | 0x01;
    let request = TimeStampReq {
        version: TspVersion::V1,
        message_imprint: MessageImprint { hash_algorithm: digest.identifier(), hashed_message: OctetString::new(imprint).map_err(|e| failed(&e))? },
        req_policy: None,
        nonce: Some(Int::new(&nonce).map_err(|e| failed(&e))?),
        cert_req: true,
        extensions: None,
    };
    let reply = evidence.timestamp(request.to_der().map_err(|e| failed(&e))?).await.map_err(|e| failed(&e))?;
    let reply = TimeStampResp::from_der(&reply).map_err(|e| failed(&e))?;
    match (reply.status, reply.token) {
        (PkiStatus::Granted, Some(token)) => token.to_der().map_err(|e| failed(&e)),
        (status, _) => Err(failed(&format!("the TSA answered {status:?}: {}", reply.text.join(" ")))),
    }
}

/// An OCSP request for `certificate` issued by `issuer`, with a nonce (RFC 8954) so that
/// the answer is signed now, after the timestamp.
fn ocsp_request(certificate: &Certificate, issuer: &Certificate) -> Result<Vec<u8>, SignError> {
    let failed = |e: &dyn std::fmt::Display| SignError::Evidence(format!("OCSP request: {e}"));
    let sha256 = DigestAlgorithm::Sha256;
    let id = CertId {
        hash_algorithm: sha256.identifier(),
        issuer_name_hash: OctetString::new(sha256.digest(&issuer.tbs_certificate.subject.to_der().map_err(|e| failed(&e))?)).map_err(|e| failed(&e))?,
        issuer_key_hash: OctetString::new(sha256.digest(issuer.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes()))
            .map_err(|e| failed(&e))?,
        serial_number: certificate.tbs_certificate.serial_number.clone(),
    };
    let mut nonce = [0u8; 16];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| failed(&"no randomness"))?;
    let nonce = Nonce::new(nonce).map_err(|e| failed(&e))?;
    let extension = x509_cert::ext::Extension {
        extn_id: ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2"),
        critical: false,
        extn_value: OctetString::new(nonce.to_der().map_err(|e| failed(&e))?).map_err(|e| failed(&e))?,
    };
    let request = OcspRequest {
        tbs_request: TbsRequest {
            version: Version::V1,
            requestor_name: None,
            request_list: vec![Request { req_cert: id, single_request_extensions: None }],
            request_extensions: Some(vec![extension]),
        },
        optional_signature: None,
    };
    request.to_der().map_err(|e| failed(&e))
}

/// The subject's commonName, for the PDF's /Name.
fn common_name(certificate: &Certificate) -> Option<String> {
    let cn = ObjectIdentifier::new_unwrap("2.5.4.3");
    certificate.tbs_certificate.subject.0.iter().flat_map(|rdn| rdn.0.iter()).find(|a| a.oid == cn).and_then(|a| {
        der::asn1::Utf8StringRef::try_from(&a.value)
            .map(|s| s.as_str().to_owned())
            .ok()
            .or_else(|| der::asn1::PrintableStringRef::try_from(&a.value).map(|s| s.as_str().to_owned()).ok())
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const CITIZEN: &[u8] = include_bytes!("../testdata/citizen-p256.der");

    #[test]
    fn a_digest_is_signed_as_its_document_would_be() {
        let document = b"any file, not a PDF";
        let by_document = Signing::prepare(document, CITIZEN, 1_767_225_600).unwrap();
        let by_digest = Signing::prepare_digest(DigestAlgorithm::Sha256, &DigestAlgorithm::Sha256.digest(document), CITIZEN, 1_767_225_600).unwrap();
        assert_eq!((by_document.format(), by_digest.format()), (Format::Cades, Format::Cades));
        assert_eq!(by_digest.to_be_signed(), by_document.to_be_signed(), "one path: the same signed attributes");
        let other = Signing::prepare_digest(DigestAlgorithm::Sha256, &DigestAlgorithm::Sha256.digest(b"another file"), CITIZEN, 1_767_225_600).unwrap();
        assert_ne!(other.to_be_signed(), by_document.to_be_signed());
        let e = Signing::prepare_digest(DigestAlgorithm::Sha512, &[7; 64], CITIZEN, 0).unwrap_err();
        assert!(
            matches!(e, SignError::Cades(CadesError::DigestDoesNotFitKey { expected: DigestAlgorithm::Sha256, given: DigestAlgorithm::Sha512, .. })),
            "{e}"
        );
        let e = Signing::prepare_digest(DigestAlgorithm::Sha256, &[7; 20], CITIZEN, 0).unwrap_err();
        assert!(matches!(e, SignError::Cades(CadesError::DigestLength { expected: 32, given: 20, .. })), "{e}");
    }
}
