//! Smart-ID login: what the citizen's device signs, and how the provider decides whether a
//! device's answer logs the citizen in.
//!
//! The flow follows Estonia's Smart-ID: the provider opens a session with a fresh random
//! challenge and shows a 4-digit verification code derived from the challenge's hash; the
//! device shows the same code, and after PIN1 signs a to-be-signed text that binds the
//! provider, the session, the relying party, the challenge and the code. The provider
//! accepts only a signature over exactly that text, by a certificate that chains to a
//! configured Citizen Authentication CA, is within its validity, carries the key usage,
//! extended key usage and a certificate policy that a login method of the policy files
//! names, names the citizen being logged in, and whose status the CA's OCSP responder says
//! is good. The provider does not link the CA: it asks any responder over HTTP through
//! [`RevocationSource`].

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::digest;
use der::asn1::{ObjectIdentifier, OctetString};
use der::oid::AssociatedOid;
use der::{Decode, Encode};
use hsm_shim::{PublicKey, SignatureAlgorithm};
use policies::{Method, Policies};
use x509_cert::Certificate;
use x509_cert::ext::pkix::{CertificatePolicies, ExtendedKeyUsage, KeyUsage, KeyUsages};
use x509_ocsp::{BasicOcspResponse, CertId, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus, Request, TbsRequest, Version};

const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const SERIAL_NUMBER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.5");
const CLIENT_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2");
const OCSP_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");
const AIA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.1");
const AD_OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");
/// An OCSP answer older than this is not believed (the responder re-signs every 5 minutes
/// and at once when a status changes).
const OCSP_MAX_AGE: i64 = 15 * 60;
/// Clock skew allowed between the provider and the responder.
const SKEW: i64 = 60;

/// The verification code of a challenge: the last two bytes of its SHA-256, as a number
/// modulo 10,000, four digits.
pub fn verification_code(challenge: &[u8]) -> String {
    let hash = digest::digest(&digest::SHA256, challenge);
    let bytes = hash.as_ref();
    let n = u16::from_be_bytes([bytes[30], bytes[31]]);
    format!("{:04}", n % 10_000)
}

/// What the device signs to log in: every field on its own line, so that no value can be
/// read as another.
pub fn to_be_signed(issuer: &str, session: &str, client_id: &str, challenge: &str, code: &str) -> Vec<u8> {
    format!(
        "hawiya smart-id authentication v1\nissuer: {issuer}\nsession: {session}\nservice: {client_id}\nchallenge: {challenge}\nverification-code: {code}\n"
    )
    .into_bytes()
}

/// Why a device's answer does not log the citizen in, as the page and the relying party are
/// told.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The certificate is not one.
    #[error("the certificate cannot be read")]
    Malformed,
    /// It was not issued by a Citizen Authentication CA.
    #[error("the certificate is not from the Citizen Authentication CA")]
    UntrustedIssuer,
    /// Outside its validity period.
    #[error("the certificate has expired or is not valid yet")]
    Expired,
    /// Not an authentication certificate (key usage, extended key usage or policy).
    #[error("the certificate is not a smart-ID authentication certificate")]
    NotForAuthentication,
    /// It names another citizen.
    #[error("the certificate belongs to another citizen")]
    OtherCitizen,
    /// The signature is not over the session's text with the certificate's key.
    #[error("the signature does not verify")]
    BadSignature,
    /// On hold.
    #[error("the smart-ID is suspended")]
    Suspended,
    /// Revoked.
    #[error("the smart-ID is revoked")]
    Revoked,
    /// The responder does not know it, or could not be asked.
    #[error("the certificate's status cannot be confirmed: {0}")]
    StatusUnavailable(String),
}

/// A certificate's status, as a revocation source states it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Good.
    Good,
    /// On hold (certificateHold).
    Suspended,
    /// Revoked for good.
    Revoked,
}

/// Where the provider learns whether a certificate is revoked.
#[async_trait::async_trait]
pub trait RevocationSource: Send + Sync {
    /// The status of `certificate`, issued by `issuer`.
    async fn status(&self, certificate: &Certificate, issuer: &Certificate, now: i64) -> Result<Status, String>;
}

/// A trust anchor: a Citizen Authentication CA certificate.
struct Anchor {
    certificate: Certificate,
    key: PublicKey,
}

/// Decides whether a device's certificate and signature log a citizen in.
pub struct Verifier {
    anchors: Vec<Anchor>,
    revocation: Arc<dyn RevocationSource>,
    policies: Arc<Policies>,
}

/// What a verified answer proves.
#[derive(Clone, Debug)]
pub struct Verified {
    /// The login method the certificate's policy names (and so the level reached).
    pub method: Method,
}

/// The signature algorithm of an X.509 `AlgorithmIdentifier`.
fn x509_algorithm(oid: ObjectIdentifier) -> Option<SignatureAlgorithm> {
    match oid.to_string().as_str() {
        "1.2.840.10045.4.3.2" => Some(SignatureAlgorithm::Es256),
        "1.2.840.10045.4.3.3" => Some(SignatureAlgorithm::Es384),
        "1.2.840.113549.1.1.11" => Some(SignatureAlgorithm::Rs256),
        "1.3.101.112" => Some(SignatureAlgorithm::EdDsa),
        _ => None,
    }
}

fn spki_key(certificate: &Certificate) -> Result<PublicKey, Refusal> {
    let spki = certificate.tbs_certificate.subject_public_key_info.to_der().map_err(|_| Refusal::Malformed)?;
    PublicKey::from_spki_der(&spki).map_err(|_| Refusal::Malformed)
}

/// Whether `issuer_key` signed `certificate`.
fn signed_by(certificate: &Certificate, issuer_key: &PublicKey) -> bool {
    let Some(algorithm) = x509_algorithm(certificate.signature_algorithm.oid) else { return false };
    let (Ok(tbs), Some(signature)) = (certificate.tbs_certificate.to_der(), certificate.signature.as_bytes()) else { return false };
    issuer_key.verify(algorithm, &tbs, signature).is_ok()
}

fn extension<'c, T: Decode<'c>>(certificate: &'c Certificate, oid: ObjectIdentifier) -> Option<Result<T, der::Error>> {
    let extensions = certificate.tbs_certificate.extensions.as_ref()?;
    extensions.iter().find(|e| e.extn_id == oid).map(|e| T::from_der(e.extn_value.as_bytes()))
}

impl Verifier {
    /// A verifier trusting the given Citizen Authentication CA certificates (DER).
    pub fn new(anchors: &[Vec<u8>], revocation: Arc<dyn RevocationSource>, policies: Arc<Policies>) -> Result<Self, String> {
        let anchors = anchors
            .iter()
            .map(|der| {
                let certificate = Certificate::from_der(der).map_err(|e| format!("trust anchor: {e}"))?;
                let key = spki_key(&certificate).map_err(|e| format!("trust anchor: {e}"))?;
                Ok(Anchor { certificate, key })
            })
            .collect::<Result<_, String>>()?;
        Ok(Verifier { anchors, revocation, policies })
    }

    /// Checks a device's answer: `certificate` (DER) must be a good smart-ID authentication
    /// certificate of `national_id` (of country `country`), and `signature` (X.509 encoding)
    /// its signature over `tbs`.
    pub async fn verify(&self, certificate: &[u8], tbs: &[u8], signature: &[u8], national_id: &str, country: &str, now: i64) -> Result<Verified, Refusal> {
        let cert = Certificate::from_der(certificate).map_err(|_| Refusal::Malformed)?;
        let tbs_cert = &cert.tbs_certificate;
        let anchor = self
            .anchors
            .iter()
            .find(|a| a.certificate.tbs_certificate.subject == tbs_cert.issuer && signed_by(&cert, &a.key))
            .ok_or(Refusal::UntrustedIssuer)?;
        let validity = &tbs_cert.validity;
        let (not_before, not_after) = (validity.not_before.to_unix_duration().as_secs() as i64, validity.not_after.to_unix_duration().as_secs() as i64);
        if now < not_before || now > not_after {
            return Err(Refusal::Expired);
        }
        let usage: KeyUsage = extension(&cert, KeyUsage::OID).ok_or(Refusal::NotForAuthentication)?.map_err(|_| Refusal::Malformed)?;
        let eku: ExtendedKeyUsage = extension(&cert, ExtendedKeyUsage::OID).ok_or(Refusal::NotForAuthentication)?.map_err(|_| Refusal::Malformed)?;
        if !usage.0.contains(KeyUsages::DigitalSignature) || !eku.0.contains(&CLIENT_AUTH) {
            return Err(Refusal::NotForAuthentication);
        }
        let policies: CertificatePolicies = extension(&cert, CertificatePolicies::OID).ok_or(Refusal::NotForAuthentication)?.map_err(|_| Refusal::Malformed)?;
        let oids: Vec<ObjectIdentifier> = policies.0.iter().map(|p| p.policy_identifier).collect();
        let method = self.policies.certificate_method(&oids).ok_or(Refusal::NotForAuthentication)?.clone();
        let expected = format!("PNO{country}-{national_id}");
        let named = tbs_cert.subject.0.iter().flat_map(|rdn| rdn.0.iter()).find(|atv| atv.oid == SERIAL_NUMBER).and_then(|atv| {
            atv.value.decode_as::<der::asn1::PrintableStringRef<'_>>().map(|s| s.as_str().to_owned()).ok()
        });
        if named.as_deref() != Some(expected.as_str()) {
            return Err(Refusal::OtherCitizen);
        }
        let key = spki_key(&cert)?;
        let algorithm = match key.spec() {
            hsm_shim::KeySpec::EcP256 => SignatureAlgorithm::Es256,
            hsm_shim::KeySpec::EcP384 => SignatureAlgorithm::Es384,
            hsm_shim::KeySpec::Ed25519 => SignatureAlgorithm::EdDsa,
            _ => SignatureAlgorithm::Rs256,
        };
        key.verify(algorithm, tbs, signature).map_err(|_| Refusal::BadSignature)?;
        // Last, because it is the one network call.
        match self.revocation.status(&cert, &anchor.certificate, now).await.map_err(Refusal::StatusUnavailable)? {
            Status::Good => Ok(Verified { method }),
            Status::Suspended => Err(Refusal::Suspended),
            Status::Revoked => Err(Refusal::Revoked),
        }
    }
}

/// Asks the OCSP responder named in the certificate (or a configured one) over HTTP, and
/// believes only answers signed by the issuer or by a responder it delegated, about this
/// certificate, and fresh.
pub struct OcspClient {
    http: reqwest::Client,
    url: Option<String>,
}

impl OcspClient {
    /// A client that asks `url`, or when `None` the responder in each certificate's AIA.
    pub fn new(http: reqwest::Client, url: Option<String>) -> Self {
        OcspClient { http, url }
    }

    fn responder_url(&self, certificate: &Certificate) -> Result<String, String> {
        if let Some(url) = &self.url {
            return Ok(url.clone());
        }
        let aia: x509_cert::ext::pkix::AuthorityInfoAccessSyntax =
            extension(certificate, AIA).ok_or("the certificate names no OCSP responder")?.map_err(|e| e.to_string())?;
        aia.0
            .iter()
            .filter(|d| d.access_method == AD_OCSP)
            .find_map(|d| match &d.access_location {
                x509_cert::ext::pkix::name::GeneralName::UniformResourceIdentifier(uri) => Some(uri.as_str().to_owned()),
                _ => None,
            })
            .ok_or_else(|| "the certificate names no OCSP responder".to_owned())
    }
}

fn sha1(data: &[u8]) -> Result<OctetString, String> {
    OctetString::new(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, data).as_ref().to_vec()).map_err(|e| e.to_string())
}

#[async_trait::async_trait]
impl RevocationSource for OcspClient {
    async fn status(&self, certificate: &Certificate, issuer: &Certificate, now: i64) -> Result<Status, String> {
        let cert_id = CertId {
            hash_algorithm: spki::AlgorithmIdentifierOwned { oid: SHA1, parameters: Some(der::asn1::Null.into()) },
            issuer_name_hash: sha1(&issuer.tbs_certificate.subject.to_der().map_err(|e| e.to_string())?)?,
            issuer_key_hash: sha1(issuer.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes())?,
            serial_number: certificate.tbs_certificate.serial_number.clone(),
        };
        let request = OcspRequest {
            tbs_request: TbsRequest {
                version: Version::V1,
                requestor_name: None,
                request_list: vec![Request { req_cert: cert_id.clone(), single_request_extensions: None }],
                request_extensions: None,
            },
            optional_signature: None,
        };
        let url = self.responder_url(certificate)?;
        let response = self
            .http
            .post(&url)
            .header("content-type", "application/ocsp-request")
            .body(request.to_der().map_err(|e| e.to_string())?)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| format!("OCSP responder {url}: {e}"))?;
        let body = response.bytes().await.map_err(|e| format!("OCSP responder {url}: {e}"))?;
        let response = OcspResponse::from_der(&body).map_err(|e| format!("OCSP answer: {e}"))?;
        if response.response_status != OcspResponseStatus::Successful {
            return Err(format!("OCSP responder said {:?}", response.response_status));
        }
        let bytes = response.response_bytes.ok_or("OCSP answer without a response")?;
        let basic = BasicOcspResponse::from_der(bytes.response.as_bytes()).map_err(|e| format!("OCSP answer: {e}"))?;
        // The signer: the issuer itself, or a responder certificate the issuer signed for
        // OCSP signing.
        let issuer_key = spki_key(issuer).map_err(|e| e.to_string())?;
        let delegated = basic.certs.iter().flatten().find(|c| {
            c.tbs_certificate.issuer == issuer.tbs_certificate.subject
                && signed_by(c, &issuer_key)
                && extension::<ExtendedKeyUsage>(c, ExtendedKeyUsage::OID).and_then(Result::ok).is_some_and(|eku| eku.0.contains(&OCSP_SIGNING))
        });
        let signer_key = match delegated {
            Some(c) => spki_key(c).map_err(|e| e.to_string())?,
            None => issuer_key,
        };
        let algorithm = x509_algorithm(basic.signature_algorithm.oid).ok_or("OCSP answer signed with an unknown algorithm")?;
        let tbs = basic.tbs_response_data.to_der().map_err(|e| e.to_string())?;
        let signature = basic.signature.as_bytes().ok_or("OCSP signature is not whole octets")?;
        signer_key.verify(algorithm, &tbs, signature).map_err(|_| "the OCSP answer's signature does not verify".to_owned())?;
        let single = basic.tbs_response_data.responses.iter().find(|r| r.cert_id == cert_id).ok_or("the OCSP answer is about another certificate")?;
        let this_update = single.this_update.0.to_unix_duration().as_secs() as i64;
        let next_update = single.next_update.map(|t| t.0.to_unix_duration().as_secs() as i64);
        if this_update > now + SKEW || now - this_update > OCSP_MAX_AGE || next_update.is_some_and(|n| n + SKEW < now) {
            return Err("the OCSP answer is not fresh".into());
        }
        match &single.cert_status {
            CertStatus::Good(_) => Ok(Status::Good),
            CertStatus::Revoked(info) if info.revocation_reason == Some(x509_cert::ext::pkix::CrlReason::CertificateHold) => Ok(Status::Suspended),
            CertStatus::Revoked(_) => Ok(Status::Revoked),
            CertStatus::Unknown(_) => Err("the OCSP responder does not know the certificate".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_code_is_four_digits_from_the_hash() {
        // SHA-256("abc") ends in …f2 00 15 ad: 0x15ad = 5549.
        assert_eq!(verification_code(b"abc"), "5549");
        assert_eq!(verification_code(b"abc").len(), 4);
        let tbs = String::from_utf8(to_be_signed("https://id.jo", "s1", "notary", "Y2g", "0042")).unwrap_or_default();
        assert!(tbs.starts_with("hawiya smart-id authentication v1\nissuer: https://id.jo\nsession: s1\n"), "{tbs}");
        assert!(tbs.ends_with("verification-code: 0042\n"), "{tbs}");
    }
}
