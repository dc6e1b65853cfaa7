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

use crate::IdpError;
use crate::keyspace;
use crate::login::{Browser, LoginStep};
use crate::oauth::{ErrorCode, OAuthError};
use crate::provider::Provider;
use crate::throttle::{Action, Verdict};

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

/// Smart-ID logins as the provider runs them: the verifier, the country of national ids, and
/// how long a session waits for the device.
pub struct SmartId {
    /// Decides device answers.
    pub verifier: Verifier,
    /// ISO 3166 country of the national ids in certificates (`PNO<CC>-…`).
    pub country: String,
    /// How long the citizen has to answer on the device (default 2 minutes).
    pub timeout: Duration,
    /// Requests per national id, and per address, in 15 minutes (default 10 and 100).
    pub limits: (u64, u64),
}

/// Where a smart-ID session stands.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum SessionState {
    /// Waiting for the device.
    Waiting,
    /// The device's answer logged the citizen in with this method.
    Approved {
        /// The login method (by id).
        method: String,
    },
    /// It ended without a login.
    Failed {
        /// Why, as a page text key (`smart_id.refused`, …).
        reason: String,
    },
}

/// A smart-ID session, kept in the ephemeral store for the timeout.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Session {
    /// The login transaction (and so the browser) it belongs to.
    pub tx: String,
    /// The citizen being logged in.
    pub national_id: String,
    /// The relying party.
    pub client_id: String,
    /// The random challenge, base64url.
    pub challenge: String,
    /// The verification code derived from it.
    pub code: String,
    /// When it times out, Unix seconds.
    pub expires_at: i64,
    /// Where it stands.
    #[serde(flatten)]
    pub state: SessionState,
}

/// What the device is shown.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Pending {
    /// The session.
    pub session: String,
    /// The provider (part of what is signed).
    pub issuer: String,
    /// The relying party's client id (part of what is signed).
    pub client_id: String,
    /// Its name in Arabic and English.
    pub service: policies::Localized,
    /// The challenge, base64url; the device derives the verification code from it.
    pub challenge: String,
    /// When the request times out.
    pub expires_at: i64,
}

/// The device's answer.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    /// The session answered.
    pub session: String,
    /// `approve`, `refuse`, `wrong_code` (the citizen chose another code than the page
    /// showed) or `locked` (PIN1 is locked).
    pub outcome: String,
    /// The authentication certificate, base64 DER (approve).
    #[serde(default)]
    pub certificate: Option<String>,
    /// The signature over the to-be-signed text, base64 (approve).
    #[serde(default)]
    pub signature: Option<String>,
}

/// What the page shows while polling a smart-ID session.
#[derive(Debug)]
pub enum Poll {
    /// Still waiting: show the code again.
    Waiting {
        /// The verification code.
        code: String,
    },
    /// Logged in (or refused back to the client).
    Step(LoginStep),
    /// Ended: the page text key of the reason.
    Failed(&'static str),
}

const DEVICE_PROOF_AGE: i64 = 60;
/// Smart-ID requests per national id, and per address, in 15 minutes, unless configured.
pub const DEFAULT_LIMITS: (u64, u64) = (10, 100);
/// The `typ` of a device's request proof.
pub const DEVICE_PROOF_TYPE: &str = "hawiya-device+jwt";

/// The page text key of a stored reason.
fn static_reason(reason: &str) -> &'static str {
    const KEYS: [&str; 7] =
        ["smart_id.suspended", "smart_id.revoked", "smart_id.expired", "smart_id.user_refused", "smart_id.wrong_code", "smart_id.locked", "smart_id.timeout"];
    KEYS.into_iter().find(|k| *k == reason).unwrap_or("smart_id.invalid")
}

/// Turns a refusal into the page text key that explains it.
fn reason_key(r: &Refusal) -> &'static str {
    match r {
        Refusal::Suspended => "smart_id.suspended",
        Refusal::Revoked => "smart_id.revoked",
        Refusal::Expired => "smart_id.expired",
        _ => "smart_id.invalid",
    }
}

impl Provider {
    fn smart_id_service(&self) -> Result<&SmartId, OAuthError> {
        self.smart_id.as_ref().ok_or_else(|| OAuthError::invalid_request("smart-ID is not enabled on this provider"))
    }

    async fn put_smart_id_session(&self, id: &str, s: &Session, now: i64) -> Result<(), IdpError> {
        let ttl = Duration::from_secs(u64::try_from((s.expires_at - now).max(1)).unwrap_or(1));
        let bytes = serde_json::to_vec(s).map_err(|e| IdpError::Corrupt(e.to_string()))?;
        self.ephemeral.put(&keyspace::smart_id_session(id), &bytes, ttl).await?;
        Ok(())
    }

    async fn smart_id_session(&self, id: &str) -> Result<Option<Session>, IdpError> {
        if id.len() != 43 {
            return Ok(None);
        }
        match self.ephemeral.get(&keyspace::smart_id_session(id)).await? {
            Some(b) => Ok(Some(serde_json::from_slice(&b).map_err(|e| IdpError::Corrupt(format!("smart-ID session: {e}")))?)),
            None => Ok(None),
        }
    }

    /// Opens a smart-ID session for the citizen of a login transaction; returns the session
    /// id and the verification code the page shows. A national id without a smart-ID gets a
    /// session too, which no device will ever answer: the page cannot tell who has one.
    pub async fn start_smart_id(&self, tx: &str, national_id: &str, browser: &Browser<'_>, now: i64) -> Result<(String, String), OAuthError> {
        let service = self.smart_id_service()?;
        let t = self.transaction(tx).await?.ok_or_else(|| OAuthError::invalid_request("the login has expired; start again"))?;
        if t.pending_citizen.as_deref().is_some_and(|p| p != national_id) {
            return Err(OAuthError::invalid_request("a step-up continues the citizen already logged in"));
        }
        // Requests pushed to one citizen's device, and from one address, are limited: nobody
        // may flood a device with requests in the hope that one gets approved.
        match self.throttle.reserve(self.ephemeral.as_ref(), Action::SmartId, national_id, browser.address, browser.device).await? {
            Verdict::Allowed(r) => r.keep(),
            Verdict::Blocked => {
                return Err(OAuthError::new(
                    ErrorCode::InteractionRequired,
                    "too many smart-ID requests for this citizen or from this address; try again in 15 minutes",
                ));
            }
        }
        let registered = self.durable.smart_id(national_id).await?.is_some();
        let mut challenge = [0u8; 32];
        aws_lc_rs::rand::fill(&mut challenge).map_err(|_| OAuthError::server("no randomness"))?;
        let session = crate::provider::random_token()?;
        let s = Session {
            tx: tx.to_owned(),
            national_id: national_id.to_owned(),
            client_id: t.request.client_id.clone(),
            challenge: base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, challenge),
            code: verification_code(&challenge),
            expires_at: now + service.timeout.as_secs() as i64,
            state: SessionState::Waiting,
        };
        self.put_smart_id_session(&session, &s, now).await?;
        if registered {
            // The citizen's device sees the newest request only.
            self.ephemeral.put(&keyspace::smart_id_pending(national_id), session.as_bytes(), service.timeout).await?;
            tracing::info!(target: "audit", event = "smart_id.started", client = s.client_id, "smart-ID session opened");
        } else {
            tracing::info!(target: "audit", event = "smart_id.unknown", client = s.client_id, "smart-ID login for a national id without a smart-ID");
        }
        Ok((session, s.code))
    }

    /// Authenticates a device request: a compact JWS by the device key (`typ`
    /// [`DEVICE_PROOF_TYPE`]) over `{htm, htu, iat, jti}`, fresh and not replayed. Returns
    /// the citizen's national id.
    pub async fn device(&self, proof: Option<&str>, method: &str, path: &str, now: i64) -> Result<String, OAuthError> {
        let unauthorized = |why: &str| OAuthError::new(ErrorCode::InvalidClient, format!("device proof: {why}"));
        let jws = hsm_shim::jose::UnverifiedJws::parse(proof.ok_or_else(|| unauthorized("missing"))?).map_err(|_| unauthorized("malformed"))?;
        let kid = jws.kid().ok_or_else(|| unauthorized("no kid"))?.to_owned();
        let record = self.durable.smart_id_by_device(&kid).await?.ok_or_else(|| unauthorized("unknown device"))?;
        let jwk: serde_json::Value = serde_json::from_str(&record.device_key).map_err(|e| OAuthError::server(e.to_string()))?;
        let (key, _) = hsm_shim::jose::public_key_from_jwk(&jwk).map_err(|e| OAuthError::server(e.to_string()))?;
        jws.verify(&key, Some(SignatureAlgorithm::Es256)).map_err(|_| unauthorized("bad signature"))?;
        if jws.header.get("typ").and_then(serde_json::Value::as_str) != Some(DEVICE_PROOF_TYPE) {
            return Err(unauthorized("wrong typ"));
        }
        let claims: serde_json::Value = serde_json::from_slice(&jws.payload).map_err(|_| unauthorized("payload is not JSON"))?;
        let htu = format!("{}{path}", self.issuer());
        if claims["htm"].as_str() != Some(method) || claims["htu"].as_str() != Some(htu.as_str()) {
            return Err(unauthorized("made for another request"));
        }
        if claims["iat"].as_i64().is_none_or(|iat| (now - iat).abs() > DEVICE_PROOF_AGE) {
            return Err(unauthorized("not fresh"));
        }
        let jti = claims["jti"].as_str().filter(|j| (16..=64).contains(&j.len())).ok_or_else(|| unauthorized("jti"))?;
        let fresh = self.ephemeral.put_new(&keyspace::device_proof(&kid, jti), b"1", Duration::from_secs(2 * DEVICE_PROOF_AGE as u64)).await?;
        if !fresh {
            tracing::warn!(target: "audit", event = "smart_id.replay", "a device proof was replayed");
            return Err(unauthorized("replayed"));
        }
        Ok(record.national_id)
    }

    /// The citizen's pending smart-ID request, for their device.
    pub async fn device_pending(&self, national_id: &str) -> Result<Option<Pending>, OAuthError> {
        let Some(id) = self.ephemeral.get(&keyspace::smart_id_pending(national_id)).await? else { return Ok(None) };
        let id = String::from_utf8_lossy(&id).into_owned();
        let Some(s) = self.smart_id_session(&id).await? else { return Ok(None) };
        if s.state != SessionState::Waiting || s.national_id != national_id {
            return Ok(None);
        }
        let client = self.client(&s.client_id).await?.ok_or_else(|| OAuthError::invalid_request("the client has gone"))?;
        Ok(Some(Pending {
            session: id,
            issuer: self.issuer().to_owned(),
            client_id: s.client_id,
            service: client.service.name.clone(),
            challenge: s.challenge,
            expires_at: s.expires_at,
        }))
    }

    /// The device's answer to a session of its citizen: verified at once; the browser's next
    /// poll completes or ends the login. A session takes one answer.
    pub async fn device_answer(&self, national_id: &str, answer: &Answer, now: i64) -> Result<SessionState, OAuthError> {
        let service = self.smart_id_service()?;
        let mut s = self
            .smart_id_session(&answer.session)
            .await?
            .filter(|s| s.national_id == national_id)
            .ok_or_else(|| OAuthError::invalid_request("no such smart-ID session of this citizen (or it has timed out)"))?;
        if s.state != SessionState::Waiting || !self.ephemeral.put_new(&keyspace::smart_id_answered(&answer.session), b"1", service.timeout).await? {
            tracing::warn!(target: "audit", event = "smart_id.replay", "a smart-ID session was answered twice");
            return Err(OAuthError::invalid_request("this smart-ID session has been answered already"));
        }
        let b64 = |v: &Option<String>| v.as_deref().and_then(|t| base64::Engine::decode(&base64::engine::general_purpose::STANDARD, t).ok());
        s.state = match answer.outcome.as_str() {
            "approve" => {
                let (Some(certificate), Some(signature)) = (b64(&answer.certificate), b64(&answer.signature)) else {
                    return Err(OAuthError::invalid_request("approve needs certificate and signature, base64"));
                };
                let tbs = to_be_signed(self.issuer(), &answer.session, &s.client_id, &s.challenge, &s.code);
                match service.verifier.verify(&certificate, &tbs, &signature, national_id, &service.country, now).await {
                    Ok(v) => SessionState::Approved { method: v.method.id },
                    Err(r) => {
                        tracing::warn!(target: "audit", event = "smart_id.refused", reason = %r, "smart-ID answer refused");
                        SessionState::Failed { reason: reason_key(&r).into() }
                    }
                }
            }
            "refuse" => SessionState::Failed { reason: "smart_id.user_refused".into() },
            "wrong_code" => SessionState::Failed { reason: "smart_id.wrong_code".into() },
            "locked" => SessionState::Failed { reason: "smart_id.locked".into() },
            other => return Err(OAuthError::invalid_request(format!("unknown outcome {other:?}: approve, refuse, wrong_code or locked"))),
        };
        self.ephemeral.delete(&keyspace::smart_id_pending(national_id)).await?;
        self.put_smart_id_session(&answer.session, &s, now).await?;
        tracing::info!(target: "audit", event = "smart_id.answered", state = ?s.state, "device answered");
        Ok(s.state)
    }

    /// The browser's poll of a session it started (`csrf` is its transaction cookie: a
    /// session started in one browser cannot be finished from another). An approved session
    /// logs the citizen in, once.
    pub async fn poll_smart_id(&self, tx: &str, session: &str, csrf: Option<&str>, cookie: Option<&str>, now: i64) -> Result<Poll, OAuthError> {
        let Some(t) = self.transaction(tx).await? else { return Err(OAuthError::invalid_request("the login has expired; start again")) };
        let bound = csrf.is_some_and(|c| aws_lc_rs::constant_time::verify_slices_are_equal(c.as_bytes(), t.csrf.as_bytes()).is_ok());
        let Some(s) = self.smart_id_session(session).await?.filter(|s| s.tx == tx) else { return Ok(Poll::Failed("smart_id.timeout")) };
        if !bound {
            tracing::warn!(target: "audit", event = "smart_id.foreign_browser", "a smart-ID session was polled from another browser");
            return Err(OAuthError::new(ErrorCode::AccessDenied, "this smart-ID session belongs to another browser"));
        }
        match &s.state {
            SessionState::Waiting => Ok(Poll::Waiting { code: s.code }),
            SessionState::Failed { reason } => {
                self.ephemeral.delete(&keyspace::smart_id_session(session)).await?;
                Ok(Poll::Failed(static_reason(reason)))
            }
            SessionState::Approved { method } => {
                // Single use: of two polls, one logs in.
                if self.ephemeral.take(&keyspace::smart_id_session(session)).await?.is_none() {
                    return Ok(Poll::Failed("smart_id.timeout"));
                }
                let method = self.policies.methods().iter().find(|m| m.id == *method).cloned().ok_or_else(|| OAuthError::server("unknown method"))?;
                let citizen = self.durable.citizen(&s.national_id).await?.ok_or_else(|| OAuthError::invalid_request("the citizen no longer exists"))?;
                if t.step_up && self.session(cookie, now).await?.is_none_or(|l| l.session.citizen_id != citizen.id) {
                    return Err(OAuthError::new(ErrorCode::LoginRequired, "the session being stepped up has ended; start again"));
                }
                let required = self.level(&t.request.level)?.level.clone();
                if method.level < required {
                    tracing::warn!(target: "audit", event = "login.insufficient", citizen = citizen.id, level = %required, "the smart-ID does not reach the level");
                    self.ephemeral.delete(&keyspace::transaction(tx)).await?;
                    let e = OAuthError::new(
                        ErrorCode::UnmetAuthenticationRequirements,
                        format!("the citizen's smart-ID reaches {}, the request requires {required}", method.level),
                    );
                    return Ok(Poll::Step(LoginStep::Refused(self.error_redirect(&t.request.redirect_uri, &e, t.request.state.as_deref()))));
                }
                Ok(Poll::Step(self.complete_login(tx, t, &citizen, &method, cookie, now).await?))
            }
        }
    }
}
