//! The certificate verifier of the smart-ID login: whether a device's certificate and
//! signature log a citizen in. The chain to a configured Citizen Authentication CA, validity,
//! key usage (digitalSignature), extended key usage (clientAuth) and a certificate policy that
//! names a login method are checked by the project's one path validator, [`pkix::path`];
//! what only a login asks is checked here: the method (and so the level) that policy names,
//! the citizen's serialNumber, the signature over the session's text, and the revocation
//! status last.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use der::asn1::ObjectIdentifier;
use der::oid::AssociatedOid;
use der::{Decode, Encode};
use hsm_shim::{PublicKey, SignatureAlgorithm};
use pkix::path::{CLIENT_AUTH, PathError, PathOptions, PolicyOptions, TrustAnchors};
use policies::{Method, Policies};
use x509_cert::Certificate;
use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage, KeyUsages};

use super::ocsp::{RevocationSource, Status};

const SERIAL_NUMBER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.5");

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

/// Decides whether a device's answer logs a citizen in.
pub struct Verifier {
    /// The Citizen Authentication CA certificates.
    anchors: TrustAnchors,
    /// The certificate policies that name a login method: a path must be valid for one.
    method_policies: Vec<ObjectIdentifier>,
    revocation: Arc<dyn RevocationSource>,
    policies: Arc<Policies>,
}

/// What a verified answer proves.
#[derive(Clone, Debug)]
pub struct Verified {
    /// The login method the certificate's policy names (and so the level reached).
    pub method: Method,
}

/// The refusal a path validation error stands for: the certificate's own defects (validity,
/// key usage, extended key usage, policy) as they were always told, anything about the chain
/// as an untrusted issuer.
fn refusal(error: &PathError, leaf: &str) -> Refusal {
    let about_leaf = error.subject() == Some(leaf);
    match error {
        PathError::Malformed { .. } => Refusal::Malformed,
        PathError::Expired { .. } | PathError::NotYetValid { .. } => Refusal::Expired,
        PathError::Constraint { .. } if about_leaf => Refusal::NotForAuthentication,
        PathError::Crypto { detail, .. } if about_leaf && detail.starts_with("public key refused") => Refusal::NotForAuthentication,
        _ => Refusal::UntrustedIssuer,
    }
}

impl Verifier {
    /// A verifier trusting the given Citizen Authentication CA certificates (DER).
    pub fn new(anchors: &[Vec<u8>], revocation: Arc<dyn RevocationSource>, policies: Arc<Policies>) -> Result<Self, String> {
        let anchors = TrustAnchors::from_der(anchors).map_err(|e| e.to_string())?;
        let method_policies = policies.methods().iter().filter_map(|m| m.certificate_policy).collect();
        Ok(Verifier { anchors, method_policies, revocation, policies })
    }

    /// Checks a device's answer: `certificate` (DER) must be a good smart-ID authentication
    /// certificate of `national_id` (of country `country`), and `signature` (X.509 encoding)
    /// its signature over `tbs`.
    pub async fn verify(&self, certificate: &[u8], tbs: &[u8], signature: &[u8], national_id: &str, country: &str, now: i64) -> Result<Verified, Refusal> {
        let cert = Certificate::from_der(certificate).map_err(|_| Refusal::Malformed)?;
        // The chain, the time, the purpose and the policy: the project's one path validator,
        // anchored at the Citizen Authentication CA. The certificate must carry keyUsage,
        // extendedKeyUsage and certificatePolicies; their values are the validator's to check.
        let mut options = PathOptions::at(UNIX_EPOCH + Duration::from_secs(u64::try_from(now).unwrap_or(0)));
        options.required_eku = Some(CLIENT_AUTH);
        options.required_key_usage = vec![KeyUsages::DigitalSignature];
        options.max_intermediates = 0;
        options.policy = PolicyOptions { initial_policy_set: self.method_policies.clone(), initial_explicit_policy: true, ..PolicyOptions::default() };
        let no_intermediates: [&[u8]; 0] = [];
        let path = pkix::path::validate(certificate, &no_intermediates, &self.anchors, &options, None).map_err(|e| {
            tracing::debug!(error = %e, "smart-ID certificate path refused");
            refusal(&e, &pkix::path::subject_text(&cert))
        })?;
        let issuer = path.certificates.get(1).ok_or(Refusal::UntrustedIssuer)?;
        let present = |oid| cert.tbs_certificate.extensions.iter().flatten().any(|e| e.extn_id == oid);
        if !present(KeyUsage::OID) || !present(ExtendedKeyUsage::OID) {
            return Err(Refusal::NotForAuthentication);
        }
        // The method: named by a policy the certificate asserts and the path is valid for.
        let asserted = pkix::path::certificate_policies(&cert).ok_or(Refusal::NotForAuthentication)?.map_err(|_| Refusal::Malformed)?;
        let oids: Vec<ObjectIdentifier> = asserted.into_iter().filter(|p| path.policies.contains(p)).collect();
        let method = self.policies.certificate_method(&oids).ok_or(Refusal::NotForAuthentication)?.clone();
        let tbs_cert = &cert.tbs_certificate;
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
        let spki = tbs_cert.subject_public_key_info.to_der().map_err(|_| Refusal::Malformed)?;
        let key = PublicKey::from_spki_der(&spki).map_err(|_| Refusal::Malformed)?;
        let algorithm = match key.spec() {
            hsm_shim::KeySpec::EcP256 => SignatureAlgorithm::Es256,
            hsm_shim::KeySpec::EcP384 => SignatureAlgorithm::Es384,
            hsm_shim::KeySpec::Ed25519 => SignatureAlgorithm::EdDsa,
            _ => SignatureAlgorithm::Rs256,
        };
        key.verify(algorithm, tbs, signature).map_err(|_| Refusal::BadSignature)?;
        // Last, because it is the one network call.
        match self.revocation.status(&cert, issuer, now).await.map_err(Refusal::StatusUnavailable)? {
            Status::Good => Ok(Verified { method }),
            Status::Suspended => Err(Refusal::Suspended),
            Status::Revoked => Err(Refusal::Revoked),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEAF: &str = "CN=Layla Haddad,serialNumber=PNOJO-9000000001,C=JO";
    const CA: &str = "CN=Citizen Authentication CA,O=Hawiya,C=JO";

    #[test]
    fn path_errors_about_the_certificate_itself_keep_their_refusals_and_the_chain_is_an_untrusted_issuer() {
        let constraint = |subject: &str| PathError::Constraint { subject: subject.into(), rule: "extendedKeyUsage does not allow 1.3.6.1.5.5.7.3.2".into() };
        assert_eq!(refusal(&constraint(LEAF), LEAF), Refusal::NotForAuthentication);
        assert_eq!(refusal(&constraint(CA), LEAF), Refusal::UntrustedIssuer, "a CA's broken constraint is the chain's fault");
        let expired = PathError::Expired { subject: CA.into(), not_after: 1, at: 2 };
        assert_eq!(refusal(&expired, LEAF), Refusal::Expired);
        let early = PathError::NotYetValid { subject: LEAF.into(), not_before: 2, at: 1 };
        assert_eq!(refusal(&early, LEAF), Refusal::Expired);
        let weak_key = PathError::Crypto { subject: LEAF.into(), detail: "public key refused: RSA key of 1024 bits, below the 2048 bits required".into() };
        assert_eq!(refusal(&weak_key, LEAF), Refusal::NotForAuthentication);
        let weak_signature = PathError::Crypto { subject: LEAF.into(), detail: format!("signed by «{CA}»: SHA-1 signature") };
        assert_eq!(refusal(&weak_signature, LEAF), Refusal::UntrustedIssuer);
        let no_path = PathError::NoPath { subject: LEAF.into(), reason: "no certificate of «CN=Attacker»".into() };
        assert_eq!(refusal(&no_path, LEAF), Refusal::UntrustedIssuer, "NoPath names the end-entity, and is still the issuer's fault");
        let forged = PathError::BadSignature { subject: LEAF.into(), issuer: CA.into() };
        assert_eq!(refusal(&forged, LEAF), Refusal::UntrustedIssuer);
        assert_eq!(refusal(&PathError::Malformed { what: "end-entity".into(), reason: "truncated".into() }, LEAF), Refusal::Malformed);
    }
}
