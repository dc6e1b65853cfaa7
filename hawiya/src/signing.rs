//! The provider's signature maker, wired to `esign`, the CA's timestamp authority and its
//! OCSP responder in this same process (no HTTP round trip, and no network to fail).
//!
//! A PDF gets PAdES-BASELINE-LT: the signature in an incremental update, then a `/DSS`
//! update with the chain, the TSA's chain, the OCSP response and the CAs' CRLs. Any other
//! file gets a detached CAdES-BASELINE-LT `.p7s` with the OCSP response inside (RFC 5940).
//! The timestamp is asked first, then the OCSP response, so that the revocation evidence
//! is produced after the signature time; a suspended or revoked certificate gets nothing.

use std::sync::Arc;

use ca::http::CaState;
use der::asn1::{Int, OctetString};
use der::{Decode, Encode};
use esign::cades::{self, CadesError, DeviceAnswer, Prepared, Profile, Root};
use esign::pdf::{self, PdfError, PrepareOptions, SignatureDetails};
use idp::signing::{Document, Format, SignatureMaker, SignedFile, SigningError, ToBeSigned};
use pkix::DigestAlgorithm;
use pkix::tsp::{PkiStatus, TimeStampResp};
use x509_cert::Certificate;
use x509_ocsp::ext::Nonce;
use x509_ocsp::{CertId, OcspRequest, Request, TbsRequest, Version};
use x509_tsp::{MessageImprint, TimeStampReq, TspVersion};

/// Makes citizens' signatures with this process's CA.
pub struct Maker {
    ca: Arc<CaState>,
}

impl Maker {
    /// A maker on the CA of `ca`.
    pub fn new(ca: Arc<CaState>) -> Self {
        Maker { ca }
    }

    fn certificate(&self, name: &str) -> Result<Vec<u8>, SigningError> {
        self.ca.authority.certificate(name).map(<[u8]>::to_vec).map_err(|e| SigningError::Unavailable(e.to_string()))
    }

    /// A timestamp token over `data` (the signature value) from the TSA.
    async fn timestamp(&self, digest: DigestAlgorithm, data: &[u8]) -> Result<Vec<u8>, SigningError> {
        let unavailable = |e: &dyn std::fmt::Display| SigningError::Unavailable(format!("timestamp: {e}"));
        let mut nonce = [0u8; 8];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| unavailable(&"no randomness"))?;
        nonce[0] = (nonce[0] & 0x7f) | 0x01;
        let request = TimeStampReq {
            version: TspVersion::V1,
            message_imprint: MessageImprint {
                hash_algorithm: digest.identifier(),
                hashed_message: OctetString::new(digest.digest(data)).map_err(|e| unavailable(&e))?,
            },
            req_policy: None,
            nonce: Some(Int::new(&nonce).map_err(|e| unavailable(&e))?),
            cert_req: true,
            extensions: None,
        };
        let reply = self.ca.tsa.respond(&request.to_der().map_err(|e| unavailable(&e))?, "signing").await;
        let reply = TimeStampResp::from_der(&reply).map_err(|e| unavailable(&e))?;
        match (reply.status, reply.token) {
            (PkiStatus::Granted, Some(token)) => token.to_der().map_err(|e| unavailable(&e)),
            (status, _) => Err(unavailable(&format!("the TSA answered {status:?}: {}", reply.text.join(" ")))),
        }
    }

    /// A fresh OCSP response (a nonce makes the responder sign anew, after the timestamp)
    /// for `certificate` issued by `issuer`.
    async fn ocsp(&self, certificate: &Certificate, issuer: &Certificate) -> Result<Vec<u8>, SigningError> {
        let unavailable = |e: &dyn std::fmt::Display| SigningError::Unavailable(format!("OCSP: {e}"));
        let sha256 = DigestAlgorithm::Sha256;
        let id = CertId {
            hash_algorithm: sha256.identifier(),
            issuer_name_hash: OctetString::new(sha256.digest(&issuer.tbs_certificate.subject.to_der().map_err(|e| unavailable(&e))?))
                .map_err(|e| unavailable(&e))?,
            issuer_key_hash: OctetString::new(sha256.digest(issuer.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes()))
                .map_err(|e| unavailable(&e))?,
            serial_number: certificate.tbs_certificate.serial_number.clone(),
        };
        let mut nonce = [0u8; 16];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| unavailable(&"no randomness"))?;
        let nonce = Nonce::new(nonce).map_err(|e| unavailable(&e))?;
        let extension = x509_cert::ext::Extension {
            extn_id: der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2"),
            critical: false,
            extn_value: OctetString::new(nonce.to_der().map_err(|e| unavailable(&e))?).map_err(|e| unavailable(&e))?,
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
        Ok(self.ca.ocsp.respond(&request.to_der().map_err(|e| unavailable(&e))?).await.to_vec())
    }

    /// The CRLs of the CAs above the signer and the TSA, for the `/DSS` or the `.p7s`.
    async fn crls(&self) -> Result<Vec<Vec<u8>>, SigningError> {
        let mut crls = Vec::new();
        for name in [ca::names::CITIZEN_SIGNING, ca::names::SERVICES, ca::names::ROOT] {
            match self.ca.authority.current_crl(name).await {
                Ok(Some(crl)) => crls.push(crl.der),
                Ok(None) => {}
                Err(e) => return Err(SigningError::Unavailable(format!("CRL of {name}: {e}"))),
            }
        }
        Ok(crls)
    }
}

fn is_pdf(document: &Document) -> bool {
    document.bytes.starts_with(b"%PDF-")
}

fn pdf_refusal(e: PdfError) -> SigningError {
    match e {
        PdfError::Encrypted => SigningError::NotSignable("sign.encrypted"),
        PdfError::CertifiedNoChanges => SigningError::NotSignable("sign.certified"),
        PdfError::NotPdf | PdfError::Damaged(_) => SigningError::NotSignable("sign.damaged"),
        other => SigningError::Unavailable(other.to_string()),
    }
}

fn cades_refusal(e: CadesError) -> SigningError {
    match e {
        CadesError::Suspended { .. } => SigningError::Suspended,
        CadesError::Revoked { .. } => SigningError::Revoked,
        e @ (CadesError::OtherHashSigned { .. } | CadesError::SignatureDoesNotVerify | CadesError::AlgorithmNotForKey { .. }) => {
            SigningError::BadSignature(e.to_string())
        }
        other => SigningError::Unavailable(other.to_string()),
    }
}

/// What is prepared for one document: the CAdES part, and for a PDF the prepared update.
struct Prepare {
    cades: Prepared,
    pdf: Option<pdf::Prepared>,
}

fn prepare(document: &Document, certificate: &[u8], signing_time: i64) -> Result<Prepare, SigningError> {
    if !is_pdf(document) {
        let cades = Prepared::for_document(Profile::Cades { signing_time: signing_time.max(0) as u64 }, certificate, &document.bytes).map_err(cades_refusal)?;
        return Ok(Prepare { cades, pdf: None });
    }
    let parsed = Certificate::from_der(certificate).map_err(|e| SigningError::Unavailable(e.to_string()))?;
    let details = SignatureDetails {
        signing_time: time::OffsetDateTime::from_unix_timestamp(signing_time).map_err(|e| SigningError::Unavailable(e.to_string()))?,
        name: common_name(&parsed),
        reason: None,
        location: None,
    };
    let prepared = pdf::prepare(&document.bytes, &PrepareOptions::signature(details)).map_err(pdf_refusal)?;
    // The document digest fits the key (SHA-256 for P-256, SHA-384 for P-384).
    let spec =
        hsm_shim::PublicKey::from_spki_der(&parsed.tbs_certificate.subject_public_key_info.to_der().map_err(|e| SigningError::Unavailable(e.to_string()))?)
            .map_err(|e| SigningError::Unavailable(e.to_string()))?
            .spec();
    let digest = cades::KeyAlgorithms::of(spec).map_err(cades_refusal)?.digest;
    let cades = Prepared::for_digest(Profile::Pades, certificate, digest, &prepared.digest(digest)).map_err(cades_refusal)?;
    Ok(Prepare { cades, pdf: Some(prepared) })
}

/// The subject's commonName, for the PDF's /Name.
fn common_name(certificate: &Certificate) -> Option<String> {
    let cn = der::asn1::ObjectIdentifier::new_unwrap("2.5.4.3");
    certificate.tbs_certificate.subject.0.iter().flat_map(|rdn| rdn.0.iter()).find(|a| a.oid == cn).and_then(|a| {
        der::asn1::Utf8StringRef::try_from(&a.value)
            .map(|s| s.as_str().to_owned())
            .ok()
            .or_else(|| der::asn1::PrintableStringRef::try_from(&a.value).map(|s| s.as_str().to_owned()).ok())
    })
}

#[async_trait::async_trait]
impl SignatureMaker for Maker {
    fn prepare(&self, document: &Document, certificate: &[u8], signing_time: i64) -> Result<ToBeSigned, SigningError> {
        let prepared = prepare(document, certificate, signing_time)?;
        let format = if prepared.pdf.is_some() { Format::Pades } else { Format::Cades };
        Ok(ToBeSigned { octets: prepared.cades.to_be_signed().to_vec(), hash: prepared.cades.hash().to_vec(), format })
    }

    async fn complete(&self, document: &Document, certificate: &[u8], signing_time: i64, signature: &[u8]) -> Result<SignedFile, SigningError> {
        let prepared = prepare(document, certificate, signing_time)?;
        let algorithms = prepared.cades.algorithms();
        let answer = DeviceAnswer { signed_hash: prepared.cades.hash(), algorithm: algorithms.signature, signature };
        let signed = prepared.cades.accept(&answer).map_err(cades_refusal)?;
        let token = self.timestamp(algorithms.digest, signed.signature()).await?;
        let issuer_der = self.certificate(ca::names::CITIZEN_SIGNING)?;
        let issuer = Certificate::from_der(&issuer_der).map_err(|e| SigningError::Unavailable(e.to_string()))?;
        let ocsp = self.ocsp(signed.certificate(), &issuer).await?;
        match prepared.pdf {
            None => {
                // The TSA's CA and the CRLs too: a .p7s carries the evidence for every path
                // (a validator trusting only the root, fetching nothing, needs all of it).
                let chain = vec![issuer_der, self.certificate(ca::names::SERVICES)?];
                let crls = self.crls().await?;
                let p7s = signed.assemble(&token, std::slice::from_ref(&ocsp), &crls, &chain, Root::Omit).map_err(cades_refusal)?;
                Ok(SignedFile { bytes: p7s, format: Format::Cades })
            }
            Some(pdf) => {
                let chain = vec![issuer_der.clone()];
                let cms = signed.assemble_for_pdf(&token, std::slice::from_ref(&ocsp), &chain, Root::Omit).map_err(cades_refusal)?;
                let signed_pdf = pdf.finish(&cms).map_err(pdf_refusal)?;
                let mut certificates = vec![certificate.to_vec(), issuer_der, self.certificate(ca::names::ROOT)?];
                for name in [ca::names::TSA, ca::names::SERVICES, &ca::names::ocsp_responder(ca::names::CITIZEN_SIGNING)] {
                    certificates.push(self.certificate(name)?);
                }
                let with_dss = pdf::add_dss(&signed_pdf, &certificates, &[ocsp], &self.crls().await?).map_err(pdf_refusal)?;
                Ok(SignedFile { bytes: with_dss, format: Format::Pades })
            }
        }
    }
}
