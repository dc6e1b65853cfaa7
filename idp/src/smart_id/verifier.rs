//! The certificate verifier of the smart-ID login: whether a device's certificate and
//! signature log a citizen in (chain to a configured Citizen Authentication CA, validity,
//! key usage, extended key usage, the policy that names a login method, the citizen's
//! serialNumber, the signature), the revocation status last.

use std::sync::Arc;

use der::asn1::ObjectIdentifier;
use der::oid::AssociatedOid;
use der::{Decode, Encode};
use hsm_shim::{PublicKey, SignatureAlgorithm};
use policies::{Method, Policies};
use x509_cert::Certificate;
use x509_cert::ext::pkix::{CertificatePolicies, ExtendedKeyUsage, KeyUsage, KeyUsages};

use super::ocsp::{RevocationSource, Status};

const SERIAL_NUMBER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.5");

const CLIENT_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2");

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

/// A trust anchor: a Citizen Authentication CA certificate.
pub(super) struct Anchor {
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
pub(super) fn x509_algorithm(oid: ObjectIdentifier) -> Option<SignatureAlgorithm> {
    const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
    const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
    const RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
    const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
    match oid {
        ECDSA_SHA256 => Some(SignatureAlgorithm::Es256),
        ECDSA_SHA384 => Some(SignatureAlgorithm::Es384),
        RSA_SHA256 => Some(SignatureAlgorithm::Rs256),
        ED25519 => Some(SignatureAlgorithm::EdDsa),
        _ => None,
    }
}

pub(super) fn spki_key(certificate: &Certificate) -> Result<PublicKey, Refusal> {
    let spki = certificate.tbs_certificate.subject_public_key_info.to_der().map_err(|_| Refusal::Malformed)?;
    PublicKey::from_spki_der(&spki).map_err(|_| Refusal::Malformed)
}

/// Whether `issuer_key` signed `certificate`.
pub(super) fn signed_by(certificate: &Certificate, issuer_key: &PublicKey) -> bool {
    let Some(algorithm) = x509_algorithm(certificate.signature_algorithm.oid) else { return false };
    let (Ok(tbs), Some(signature)) = (certificate.tbs_certificate.to_der(), certificate.signature.as_bytes()) else { return false };
    issuer_key.verify(algorithm, &tbs, signature).is_ok()
}

pub(super) fn extension<'c, T: Decode<'c>>(certificate: &'c Certificate, oid: ObjectIdentifier) -> Option<Result<T, der::Error>> {
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
        let named = tbs_cert
            .subject
            .0
            .iter()
            .flat_map(|rdn| rdn.0.iter())
            .find(|atv| atv.oid == SERIAL_NUMBER)
            .and_then(|atv| atv.value.decode_as::<der::asn1::PrintableStringRef<'_>>().map(|s| s.as_str().to_owned()).ok());
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
