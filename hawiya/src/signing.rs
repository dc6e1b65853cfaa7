//! The provider's signature maker: `esign` around this process's CA, whose timestamp
//! authority and OCSP responder answer in-process (no HTTP round trip, no network to fail).

use std::sync::Arc;

use ca::http::CaState;
use esign::cades::CadesError;
use esign::pdf::PdfError;
use esign::signature::{Chain, Evidence, SignError, Signing};
use idp::signing::{Content, DigestAlgorithm, Document, Format, SignatureMaker, SignedFile, SigningError, ToBeSigned};

/// Makes citizens' signatures with this process's CA.
pub struct Maker {
    ca: Arc<CaState>,
}

impl Maker {
    /// A maker on the CA of `ca`.
    pub fn new(ca: Arc<CaState>) -> Self {
        Maker { ca }
    }

    /// The generation of the signing CA that issued `signer` (DER), and for a PDF's `/DSS`
    /// the root, the TSA's chain, the responder's certificate and the CAs' CRLs.
    async fn chain(&self, signer: &[u8]) -> Result<Chain, SigningError> {
        let authority = &self.ca.authority;
        let unavailable = |e: ca::CaError| SigningError::Unavailable(e.to_string());
        let certificate = |name: &str| authority.certificate(name).map(<[u8]>::to_vec).map_err(unavailable);
        let issuer = authority.issuer_of(signer).map_err(unavailable)?;
        let mut others = Vec::new();
        for name in [ca::names::ROOT, ca::names::TSA, ca::names::SERVICES, &ca::names::ocsp_responder(issuer)] {
            others.push(certificate(name)?);
        }
        let mut crls = Vec::new();
        for name in [issuer, ca::names::SERVICES, ca::names::ROOT] {
            if let Some(crl) = authority.current_crl(name).await.map_err(unavailable)? {
                crls.push(crl.der);
            }
        }
        Ok(Chain { issuer: certificate(issuer)?, others, crls })
    }
}

/// The CA's own TSA and responder, asked in-process.
#[async_trait::async_trait]
impl Evidence for Maker {
    async fn timestamp(&self, request: Vec<u8>) -> Result<Vec<u8>, String> {
        Ok(self.ca.tsa.respond(&request, "signing").await)
    }

    async fn ocsp(&self, request: Vec<u8>) -> Result<Vec<u8>, String> {
        Ok(self.ca.ocsp.respond(&request).await.to_vec())
    }
}

fn refusal(e: SignError) -> SigningError {
    match e {
        SignError::Pdf(PdfError::Encrypted) => SigningError::NotSignable("sign.encrypted"),
        SignError::Pdf(PdfError::CertifiedNoChanges) => SigningError::NotSignable("sign.certified"),
        SignError::Pdf(PdfError::NotPdf | PdfError::Damaged(_)) => SigningError::NotSignable("sign.damaged"),
        SignError::Cades(CadesError::Suspended { .. }) => SigningError::Suspended,
        SignError::Cades(CadesError::Revoked { .. }) => SigningError::Revoked,
        SignError::Cades(CadesError::DigestDoesNotFitKey { expected, given, .. }) => {
            SigningError::Digest(format!("the signer's signing key signs {} digests, not {}", api_name(expected), api_name(given)))
        }
        SignError::Cades(e @ CadesError::DigestLength { .. }) => SigningError::Digest(e.to_string()),
        SignError::Cades(e @ (CadesError::OtherHashSigned { .. } | CadesError::SignatureDoesNotVerify | CadesError::AlgorithmNotForKey { .. })) => {
            SigningError::BadSignature(e.to_string())
        }
        other => SigningError::Unavailable(other.to_string()),
    }
}

fn format(signing: &Signing, archive: bool) -> Format {
    match signing.format() {
        esign::signature::Format::Pades if archive => Format::PadesLta,
        esign::signature::Format::Pades => Format::Pades,
        esign::signature::Format::Cades => Format::Cades,
    }
}

/// A digest algorithm by the signing API's name (`sha-256`).
fn api_name(algorithm: esign::signature::DigestAlgorithm) -> &'static str {
    match algorithm {
        esign::signature::DigestAlgorithm::Sha256 => DigestAlgorithm::Sha256.name(),
        esign::signature::DigestAlgorithm::Sha384 => DigestAlgorithm::Sha384.name(),
        esign::signature::DigestAlgorithm::Sha512 => DigestAlgorithm::Sha512.name(),
    }
}

/// A document, or the digest that stands for it, prepared for the holder of `certificate`.
fn prepare<'a>(document: &'a Document, certificate: &[u8], signing_time: i64) -> Result<Signing<'a>, SigningError> {
    match &document.content {
        Content::Bytes(bytes) => Signing::prepare(bytes, certificate, signing_time),
        Content::Digest(digest) => {
            let algorithm = match digest.algorithm {
                DigestAlgorithm::Sha256 => esign::signature::DigestAlgorithm::Sha256,
                DigestAlgorithm::Sha384 => esign::signature::DigestAlgorithm::Sha384,
                DigestAlgorithm::Sha512 => esign::signature::DigestAlgorithm::Sha512,
            };
            Signing::prepare_digest(algorithm, &digest.value, certificate, signing_time)
        }
    }
    .map_err(refusal)
}

#[async_trait::async_trait]
impl SignatureMaker for Maker {
    fn prepare(&self, document: &Document, certificate: &[u8], signing_time: i64, archive: bool) -> Result<ToBeSigned, SigningError> {
        let signing = prepare(document, certificate, signing_time)?;
        Ok(ToBeSigned {
            octets: signing.to_be_signed().to_vec(),
            hash: signing.hash().to_vec(),
            format: format(&signing, archive),
            document_sha256: signing.document_sha256(),
        })
    }

    async fn complete(
        &self,
        document: &Document,
        certificate: &[u8],
        signing_time: i64,
        format: Format,
        shown: &[u8],
        signature: &[u8],
    ) -> Result<SignedFile, SigningError> {
        let signing = prepare(document, certificate, signing_time)?;
        if signing.to_be_signed() != shown {
            return Err(SigningError::DocumentChanged);
        }
        let chain = self.chain(certificate).await?;
        let bytes = signing.complete(signature, self, &chain, format == Format::PadesLta).await.map_err(refusal)?;
        Ok(SignedFile { bytes, format })
    }
}
