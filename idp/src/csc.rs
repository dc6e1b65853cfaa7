//! The Cloud Signature Consortium API v2 (spec 2.0.0.2) for signing tools, at `/csc/v2/…`.
//!
//! A signing tool (pyHanko, a desktop signer) is an ordinary OpenID Connect client: the
//! citizen logs in through it (authorization code + PKCE) at the level the signing policy
//! requires, and the tool gets a citizen access token with the scope `csc`, which its service
//! policy must grant. The citizen's one credential is their smart-ID signing key and
//! certificate; its `credentialID` is the certificate's serial number (opaque, stable for
//! the certificate, never the national id).
//!
//! The key is on the citizen's device, not here, so SCAL2 works this way: `credentials/authorize`
//! sends the hashes to the device (with the tool's service name, its description and a
//! 4-digit verification code derived from the hashes, which the tool shows too) and returns
//! at once; the device signs each digest with the signing key after PIN2; the provider checks
//! every signature against the certificate and the certificate's status, and only then does
//! `credentials/authorizeCheck` hand out a SAD, once. The SAD is bound to the credential, the
//! citizen, the client, the hash algorithm and exactly the authorised hashes; it lives a few
//! minutes and is spent by the one `signatures/signHash` that releases the signatures (each
//! recorded in the signatures table). Nothing is signed at `signHash`: it releases what the
//! citizen signed.
//!
//! This module knows nothing of HTTP: `http::csc` reads requests and writes [`CscError`]s.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use der::{Decode, Encode};
use hsm_shim::{KeySpec, PublicKey, SignatureAlgorithm};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use x509_cert::Certificate;

use crate::keyspace;
use crate::oauth::OAuthError;
use crate::provider::Provider;
use crate::smart_id::verification_code;

/// The scope a signing tool's citizen access token needs.
pub const CSC_SCOPE: &str = "csc";

/// The version of the CSC specification implemented.
pub const SPECS: &str = "2.0.0.2";

/// How long a SAD lives, in seconds.
pub const SAD_TTL: i64 = 300;

/// The longest `description`, in characters.
pub const MAX_DESCRIPTION: usize = 500;

/// The longest `clientData`, in characters.
const MAX_CLIENT_DATA: usize = 1000;

/// The CSC methods served.
pub const METHODS: [&str; 6] = ["credentials/list", "credentials/info", "credentials/authorize", "credentials/authorizeCheck", "signatures/signHash", "info"];

/// Why a CSC request was refused; each has its wire code ([`CscError::code`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CscError {
    /// No bearer token, or one that is unknown or expired.
    #[error("{0}")]
    InvalidToken(String),
    /// A good token without `csc`, or not a citizen's.
    #[error("{0}")]
    InsufficientScope(String),
    /// The citizen's login is below the signing policy's level (RFC 9470).
    #[error("{0}")]
    InsufficientUserAuthentication(String),
    /// The request is malformed or not allowed (CSC's `invalid_request`).
    #[error("{0}")]
    InvalidRequest(String),
    /// The citizen did not authorise: refused, chose another code, PIN2 locked.
    #[error("{0}")]
    AccessDenied(String),
    /// Too many authorisations for this citizen.
    #[error("too many signing requests for this citizen; try again later")]
    TooManyRequests,
    /// Something failed on our side.
    #[error(transparent)]
    Server(OAuthError),
}

impl CscError {
    /// The code on the wire.
    pub fn code(&self) -> &'static str {
        match self {
            CscError::InvalidToken(_) => "invalid_token",
            CscError::InsufficientScope(_) => "insufficient_scope",
            CscError::InsufficientUserAuthentication(_) => "insufficient_user_authentication",
            CscError::InvalidRequest(_) => "invalid_request",
            CscError::AccessDenied(_) => "access_denied",
            CscError::TooManyRequests => "too_many_requests",
            CscError::Server(e) => e.code.as_str(),
        }
    }
}

impl From<OAuthError> for CscError {
    fn from(e: OAuthError) -> Self {
        CscError::Server(e)
    }
}

impl From<crate::IdpError> for CscError {
    fn from(e: crate::IdpError) -> Self {
        CscError::Server(e.into())
    }
}

impl From<store::StoreError> for CscError {
    fn from(e: store::StoreError) -> Self {
        CscError::Server(e.into())
    }
}

fn invalid(why: impl Into<String>) -> CscError {
    CscError::InvalidRequest(why.into())
}

/// A hash algorithm a SAD can be bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HashAlgorithm {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
}

impl HashAlgorithm {
    /// Its OID.
    pub fn oid(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "2.16.840.1.101.3.4.2.1",
            HashAlgorithm::Sha384 => "2.16.840.1.101.3.4.2.2",
        }
    }

    /// Its name, as the device shows it.
    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "SHA-256",
            HashAlgorithm::Sha384 => "SHA-384",
        }
    }

    /// The algorithm of a name the device was given.
    pub fn from_name(name: &str) -> Option<Self> {
        [HashAlgorithm::Sha256, HashAlgorithm::Sha384].into_iter().find(|h| h.name() == name)
    }

    fn from_oid(oid: &str) -> Option<Self> {
        [HashAlgorithm::Sha256, HashAlgorithm::Sha384].into_iter().find(|h| h.oid() == oid)
    }

    /// The length of its output, in bytes.
    pub fn output_len(self) -> usize {
        match self {
            HashAlgorithm::Sha256 => 32,
            HashAlgorithm::Sha384 => 48,
        }
    }

    /// What a signing key of this hash signs with (the device's `sign_digest`).
    pub fn signature_algorithm(self) -> SignatureAlgorithm {
        match self {
            HashAlgorithm::Sha256 => SignatureAlgorithm::Es256,
            HashAlgorithm::Sha384 => SignatureAlgorithm::Es384,
        }
    }
}

/// What a credential's key signs with: the signature algorithm OID a tool names in
/// `signAlgo`, the hash it is over, and the algorithm the device uses.
#[derive(Clone, Copy, Debug)]
struct KeyAlgorithm {
    sign_algo: &'static str,
    hash: HashAlgorithm,
    verification: &'static dyn aws_lc_rs::signature::VerificationAlgorithm,
    len: u32,
    curve: Option<&'static str>,
}

fn key_algorithm(spec: KeySpec) -> Option<KeyAlgorithm> {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, ECDSA_P384_SHA384_ASN1};
    match spec {
        KeySpec::EcP256 => Some(KeyAlgorithm {
            sign_algo: "1.2.840.10045.4.3.2",
            hash: HashAlgorithm::Sha256,
            verification: &ECDSA_P256_SHA256_ASN1,
            len: 256,
            curve: Some("1.2.840.10045.3.1.7"),
        }),
        KeySpec::EcP384 => Some(KeyAlgorithm {
            sign_algo: "1.2.840.10045.4.3.3",
            hash: HashAlgorithm::Sha384,
            verification: &ECDSA_P384_SHA384_ASN1,
            len: 384,
            curve: Some("1.3.132.0.34"),
        }),
        // Citizens' smart-ID keys are elliptic-curve keys (the device makes P-256 keys);
        // anything else has no prehash signing here.
        _ => None,
    }
}

/// The verification code of a list of hashes: the code of their concatenation, as the
/// device derives it.
pub fn hashes_verification_code(hashes: &[Vec<u8>]) -> String {
    verification_code(&hashes.concat())
}

/// The citizen behind a CSC request's token.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The citizen's opaque id.
    pub citizen_id: String,
    /// Their national id.
    pub national_id: String,
    /// The signing tool's client id.
    pub client_id: String,
}

/// The citizen's credential: their smart-ID signing certificate.
struct Credential {
    id: String,
    der: Vec<u8>,
    certificate: Certificate,
    status: store::CertificateStatus,
    algorithm: Option<KeyAlgorithm>,
}

/// A credential's certificate status, as CSC names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CertStatus {
    Valid,
    Expired,
    Revoked,
    Suspended,
}

impl CertStatus {
    fn as_str(self) -> &'static str {
        match self {
            CertStatus::Valid => "valid",
            CertStatus::Expired => "expired",
            CertStatus::Revoked => "revoked",
            CertStatus::Suspended => "suspended",
        }
    }
}

impl Credential {
    /// The certificate's status at `now`.
    fn status(&self, now: i64) -> CertStatus {
        match self.status {
            s if s.on_hold() => CertStatus::Suspended,
            store::CertificateStatus::Revoked { .. } => CertStatus::Revoked,
            store::CertificateStatus::Good => {
                let v = &self.certificate.tbs_certificate.validity;
                let (from, to) = (v.not_before.to_unix_duration().as_secs() as i64, v.not_after.to_unix_duration().as_secs() as i64);
                if now < from || now > to { CertStatus::Expired } else { CertStatus::Valid }
            }
        }
    }

    /// The refusal for a certificate that cannot sign at `now`.
    fn usable(&self, now: i64) -> Result<KeyAlgorithm, CscError> {
        match self.status(now) {
            CertStatus::Valid => self.algorithm.ok_or_else(|| invalid("the credential's key cannot sign hashes")),
            status => Err(invalid(format!("the signing certificate is {}", status.as_str()))),
        }
    }

    /// Whether `signature` is the key's signature over `digest`.
    fn verifies(&self, digest: &[u8], signature: &[u8]) -> bool {
        let Some(algorithm) = self.algorithm else { return false };
        let hash = match algorithm.hash {
            HashAlgorithm::Sha256 => &aws_lc_rs::digest::SHA256,
            HashAlgorithm::Sha384 => &aws_lc_rs::digest::SHA384,
        };
        let Ok(digest) = aws_lc_rs::digest::Digest::import_less_safe(digest, hash) else { return false };
        let key = self.certificate.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes();
        aws_lc_rs::signature::UnparsedPublicKey::new(algorithm.verification, key).verify_digest(&digest, signature).is_ok()
    }
}

/// `certificates`: how much of the chain to return.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Certificates {
    /// None.
    None,
    /// The signing certificate (the default).
    #[default]
    Single,
    /// The signing certificate and its CAs up to the root.
    Chain,
}

/// `info`: the body (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfoRequest {
    /// The language of the answer: `ar` (the default) or `en`.
    #[serde(default)]
    pub lang: Option<String>,
}

/// `credentials/list`: the body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ListRequest {
    /// Not used with a citizen's token: refused.
    #[serde(default, rename = "userID")]
    pub user_id: Option<String>,
    /// Whether to return each credential's info too.
    #[serde(default)]
    pub credential_info: bool,
    /// Which certificates to return with the info.
    #[serde(default)]
    pub certificates: Certificates,
    /// Whether to return the certificate's details with the info.
    #[serde(default)]
    pub cert_info: bool,
    /// Whether to return the authorisation mode with the info.
    #[serde(default)]
    pub auth_info: bool,
    /// Whether to list only credentials that can sign now.
    #[serde(default)]
    pub only_valid: bool,
    /// The language of descriptions.
    #[serde(default)]
    pub lang: Option<String>,
    /// Opaque data of the tool (ignored).
    #[serde(default)]
    pub client_data: Option<String>,
}

/// `credentials/info`: the body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CredentialInfoRequest {
    /// The credential.
    #[serde(rename = "credentialID")]
    pub credential_id: String,
    /// Which certificates to return.
    #[serde(default)]
    pub certificates: Certificates,
    /// Whether to return the certificate's details.
    #[serde(default)]
    pub cert_info: bool,
    /// Whether to return the authorisation mode.
    #[serde(default)]
    pub auth_info: bool,
    /// The language of the description.
    #[serde(default)]
    pub lang: Option<String>,
    /// Opaque data of the tool (ignored).
    #[serde(default)]
    pub client_data: Option<String>,
}

/// `credentials/authorize`: the body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthorizeRequest {
    /// The credential.
    #[serde(rename = "credentialID")]
    pub credential_id: String,
    /// How many signatures: the number of hashes.
    pub num_signatures: u64,
    /// The hashes to sign, base64 (required: SCAL2).
    #[serde(default)]
    pub hashes: Option<Vec<String>>,
    /// The OID of their hash algorithm.
    #[serde(default, rename = "hashAlgorithmOID")]
    pub hash_algorithm_oid: Option<String>,
    /// Explicit authorisation data: not used (the citizen approves on the device).
    #[serde(default)]
    pub auth_data: Option<Value>,
    /// What the device shows the citizen about the signature.
    #[serde(default)]
    pub description: Option<String>,
    /// Opaque data of the tool (ignored).
    #[serde(default)]
    pub client_data: Option<String>,
}

/// `credentials/authorizeCheck`: the body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthorizeCheckRequest {
    /// The credential.
    #[serde(rename = "credentialID")]
    pub credential_id: String,
    /// The authorisation, as `credentials/authorize` named it.
    #[serde(rename = "responseID")]
    pub response_id: String,
    /// Opaque data of the tool (ignored).
    #[serde(default)]
    pub client_data: Option<String>,
}

/// `signatures/signHash`: the body. The v1 names `hash` and `hashAlgo` (which pyHanko
/// sends) are accepted for `hashes` and `hashAlgorithmOID`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SignHashRequest {
    /// The credential.
    #[serde(rename = "credentialID")]
    pub credential_id: String,
    /// The signature activation data from `credentials/authorizeCheck`.
    #[serde(rename = "SAD")]
    pub sad: String,
    /// The hashes, base64: exactly those authorised.
    #[serde(alias = "hash")]
    pub hashes: Vec<String>,
    /// The OID of their hash algorithm (implied by `signAlgo` when absent).
    #[serde(default, rename = "hashAlgorithmOID", alias = "hashAlgo")]
    pub hash_algorithm_oid: Option<String>,
    /// The OID of the signature algorithm.
    pub sign_algo: String,
    /// Its parameters, base64 DER (none for ECDSA).
    #[serde(default)]
    pub sign_algo_params: Option<String>,
    /// `S` (synchronous) only.
    #[serde(default)]
    pub operation_mode: Option<String>,
    /// Asynchronous mode's validity period: not used.
    #[serde(default)]
    pub validity_period: Option<u64>,
    /// Asynchronous mode's callback: not used.
    #[serde(default)]
    pub response_uri: Option<String>,
    /// Opaque data of the tool (ignored).
    #[serde(default)]
    pub client_data: Option<String>,
}

/// Where an authorisation stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum AuthorizationState {
    /// Waiting for the device.
    Waiting,
    /// The device signed; the signatures verified.
    Approved {
        /// The signatures, base64, in the order of the hashes.
        signatures: Vec<String>,
    },
    /// Its SAD has been handed out.
    Released,
    /// It ended without a SAD.
    Failed {
        /// Why: `refused`, `wrong_code`, `locked`, `suspended`, `revoked`, `expired`,
        /// `bad_signature`.
        reason: String,
    },
}

/// An authorisation (`credentials/authorize`), in the ephemeral store until a while after its
/// timeout.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Authorization {
    citizen_id: String,
    national_id: String,
    client_id: String,
    credential_id: String,
    hash_algorithm: HashAlgorithm,
    hashes: Vec<String>,
    description: Option<String>,
    code: String,
    expires_at: i64,
    #[serde(flatten)]
    state: AuthorizationState,
}

/// A SAD's record: what it releases, to whom.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Sad {
    authorization: String,
    citizen_id: String,
    national_id: String,
    client_id: String,
    credential_id: String,
    hash_algorithm: HashAlgorithm,
    hashes: Vec<String>,
    signatures: Vec<String>,
    description: Option<String>,
    expires_at: i64,
}

/// What the device is shown for a hash-signing request.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HashSigningPending {
    /// The authorisation.
    pub session: String,
    /// The signing tool's service, in Arabic and English.
    pub service: policies::Localized,
    /// What the tool says about the signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The hash algorithm (`SHA-256`, `SHA-384`).
    pub hash_algorithm: String,
    /// The hashes, base64: the device derives the verification code from them
    /// ([`hashes_verification_code`]) and signs each with the signing key after PIN2.
    pub hashes: Vec<String>,
    /// When the request times out.
    pub expires_at: i64,
}

/// The device's answer to a hash-signing request.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashAnswer {
    /// The authorisation answered.
    pub session: String,
    /// `approve`, `refuse`, `wrong_code` or `locked` (PIN2 is locked).
    pub outcome: String,
    /// The signatures, base64 (X.509 encoding), in the order of the hashes (approve).
    #[serde(default)]
    pub signatures: Option<Vec<String>>,
}

/// What `credentials/authorizeCheck` finds.
#[derive(Debug)]
pub enum Check {
    /// The citizen has not answered yet.
    Pending {
        /// The verification code.
        code: String,
        /// Seconds left.
        expires_in: i64,
    },
    /// Approved: the SAD, once.
    Ready {
        /// The SAD.
        sad: String,
        /// Seconds it lives.
        expires_in: i64,
    },
}

/// An authorisation just opened.
#[derive(Debug)]
pub struct Opened {
    /// Its id (`responseID`).
    pub id: String,
    /// The verification code the device shows.
    pub code: String,
    /// Seconds the citizen has.
    pub expires_in: i64,
}

/// A response language.
fn lang(asked: Option<&str>) -> Result<&'static str, CscError> {
    match asked {
        None | Some("ar") => Ok("ar"),
        Some("en") => Ok("en"),
        Some(other) => Err(invalid(format!("lang {other:?}: ar or en"))),
    }
}

fn check_text(name: &str, value: Option<&str>, max: usize) -> Result<(), CscError> {
    match value {
        Some(v) if v.chars().count() > max || v.chars().any(char::is_control) => {
            Err(invalid(format!("{name} must be at most {max} characters, without control characters")))
        }
        _ => Ok(()),
    }
}

/// GeneralizedTime as CSC writes validity: `YYYYMMDDHHMMSSZ`.
fn generalized(t: &x509_cert::time::Time) -> String {
    let dt = t.to_date_time();
    format!("{:04}{:02}{:02}{:02}{:02}{:02}Z", dt.year(), dt.month(), dt.day(), dt.hour(), dt.minutes(), dt.seconds())
}

fn ttl(until: i64, now: i64) -> Duration {
    Duration::from_secs(u64::try_from((until - now).max(1)).unwrap_or(1))
}

/// How long a finished authorisation can still be checked.
const AFTERLIFE: i64 = 600;

impl Provider {
    /// The citizen and the signing tool behind a CSC request's bearer token.
    pub async fn csc_caller(&self, token: Option<&str>, now: i64) -> Result<Caller, CscError> {
        let token = token.ok_or_else(|| CscError::InvalidToken("no access token".into()))?;
        let Some(grant) = self.access_grant(token, now).await? else {
            if self.agency_grant(token, now).await?.is_some() {
                return Err(CscError::InsufficientScope(
                    "an agency token does not grant csc: the CSC API takes a citizen's access token (authorization code, scope csc)".into(),
                ));
            }
            return Err(CscError::InvalidToken("the access token is unknown or expired".into()));
        };
        if !grant.grant.scopes.iter().any(|s| s == CSC_SCOPE) {
            return Err(CscError::InsufficientScope(
                "the token does not grant csc (the service policy of the client must grant it, and the login ask for it)".into(),
            ));
        }
        let required = &self.policies.signing().min_level;
        if self.level(&grant.grant.level)?.level < *required {
            return Err(CscError::InsufficientUserAuthentication(format!(
                "signing needs a login at level {} or above; this token's login reached {}",
                required.name(),
                grant.grant.level
            )));
        }
        let citizen = self.durable.citizen_by_id(&grant.citizen_id).await?.ok_or_else(|| CscError::InvalidToken("the citizen no longer exists".into()))?;
        Ok(Caller { citizen_id: grant.citizen_id, national_id: citizen.national_id, client_id: grant.client_id })
    }

    /// The citizen's credential, if they have a smart-ID.
    async fn csc_credential(&self, national_id: &str) -> Result<Option<Credential>, CscError> {
        let Some(record) = self.durable.smart_id(national_id).await? else { return Ok(None) };
        let Ok(serial) = record.signature_serial.parse::<store::Serial>() else {
            return Err(crate::IdpError::Corrupt(format!("smart-ID of a citizen: signature serial {:?}", record.signature_serial)).into());
        };
        let Some(stored) = self.durable.certificate(&serial).await? else { return Ok(None) };
        let der = stored.certificate.der;
        let certificate = Certificate::from_der(&der).map_err(|e| crate::IdpError::Corrupt(format!("a signing certificate: {e}")))?;
        let spki = certificate.tbs_certificate.subject_public_key_info.to_der().map_err(|e| crate::IdpError::Corrupt(e.to_string()))?;
        let algorithm = PublicKey::from_spki_der(&spki).ok().and_then(|k| key_algorithm(k.spec()));
        Ok(Some(Credential { id: hex::encode(certificate.tbs_certificate.serial_number.as_bytes()), der, certificate, status: stored.status, algorithm }))
    }

    /// The caller's credential named `id`: any other id names nothing for this caller.
    async fn csc_own_credential(&self, caller: &Caller, id: &str) -> Result<Credential, CscError> {
        match self.csc_credential(&caller.national_id).await? {
            Some(c) if aws_lc_rs::constant_time::verify_slices_are_equal(c.id.as_bytes(), id.as_bytes()).is_ok() => Ok(c),
            _ => Err(invalid("invalid parameter credentialID: no such credential of this citizen")),
        }
    }

    /// The CA certificates above `certificate`, from the ceremony record, up to the root.
    async fn csc_chain(&self, certificate: &Certificate) -> Result<Vec<Vec<u8>>, CscError> {
        let Some(ceremony) = self.durable.ceremony().await? else { return Ok(Vec::new()) };
        let authorities: Vec<(Vec<u8>, Certificate)> = ceremony
            .authorities
            .iter()
            .filter_map(|a| hex::decode(&a.certificate).ok())
            .filter_map(|der| Certificate::from_der(&der).ok().map(|c| (der, c)))
            .collect();
        let mut chain = Vec::new();
        let mut issuer = certificate.tbs_certificate.issuer.clone();
        while let Some((der, ca)) = authorities.iter().find(|(_, c)| c.tbs_certificate.subject == issuer) {
            if chain.contains(der) || chain.len() > 8 {
                break;
            }
            chain.push(der.clone());
            if ca.tbs_certificate.issuer == ca.tbs_certificate.subject {
                break;
            }
            issuer = ca.tbs_certificate.issuer.clone();
        }
        Ok(chain)
    }

    /// `info`.
    pub fn csc_info(&self, request: &InfoRequest) -> Result<Value, CscError> {
        let lang = lang(request.lang.as_deref())?;
        let (name, description) = if lang == "ar" {
            ("هوية", "توقيع إلكتروني بمفتاح التوقيع في الهوية الذكية للمواطن، بعد موافقته ورمز PIN2 على جهازه")
        } else {
            ("Hawiya", "Electronic signatures with the citizen's smart-ID signing key, approved with PIN2 on their device")
        };
        let region = self.smart_id.as_ref().map_or("", |s| s.country.as_str());
        Ok(json!({
            "specs": SPECS,
            "name": name,
            "logo": format!("{}/csc/v2/logo.svg", self.issuer()),
            "region": region,
            "lang": lang,
            "description": description,
            "authType": ["oauth2code"],
            "oauth2": self.issuer(),
            "oauth2Issuer": self.issuer(),
            "asynchronousOperationMode": false,
            "methods": METHODS,
            "validationInfo": false,
        }))
    }

    /// `credentials/list`.
    pub async fn csc_list(&self, caller: &Caller, request: &ListRequest, now: i64) -> Result<Value, CscError> {
        if request.user_id.is_some() {
            return Err(invalid("userID is not used: the access token names the citizen"));
        }
        let lang = lang(request.lang.as_deref())?;
        check_text("clientData", request.client_data.as_deref(), MAX_CLIENT_DATA)?;
        let credential = self.csc_credential(&caller.national_id).await?.filter(|c| !request.only_valid || c.usable(now).is_ok());
        let mut body = json!({"credentialIDs": credential.iter().map(|c| c.id.clone()).collect::<Vec<_>>(), "onlyValid": request.only_valid});
        if request.credential_info {
            let mut infos = Vec::new();
            if let Some(c) = &credential {
                let mut info = self.csc_describe(c, request.certificates, request.cert_info, request.auth_info, lang, now).await?;
                info["credentialID"] = c.id.clone().into();
                infos.push(info);
            }
            body["credentialInfos"] = infos.into();
        }
        Ok(body)
    }

    /// `credentials/info`.
    pub async fn csc_credential_info(&self, caller: &Caller, request: &CredentialInfoRequest, now: i64) -> Result<Value, CscError> {
        let lang = lang(request.lang.as_deref())?;
        check_text("clientData", request.client_data.as_deref(), MAX_CLIENT_DATA)?;
        let credential = self.csc_own_credential(caller, &request.credential_id).await?;
        self.csc_describe(&credential, request.certificates, request.cert_info, request.auth_info, lang, now).await
    }

    async fn csc_describe(
        &self,
        c: &Credential,
        certificates: Certificates,
        cert_info: bool,
        auth_info: bool,
        lang: &str,
        now: i64,
    ) -> Result<Value, CscError> {
        let status = c.status(now);
        let description = if lang == "ar" { "مفتاح التوقيع في الهوية الذكية (PIN2)" } else { "Smart-ID signing key (PIN2)" };
        let mut key = json!({
            "status": if status == CertStatus::Valid && c.algorithm.is_some() { "enabled" } else { "disabled" },
            "algo": c.algorithm.iter().map(|a| a.sign_algo).collect::<Vec<_>>(),
            "len": c.algorithm.map_or(0, |a| a.len),
        });
        if let Some(curve) = c.algorithm.and_then(|a| a.curve) {
            key["curve"] = curve.into();
        }
        let mut cert = json!({"status": status.as_str()});
        let list = match certificates {
            Certificates::None => Vec::new(),
            Certificates::Single => vec![c.der.clone()],
            Certificates::Chain => std::iter::once(c.der.clone()).chain(self.csc_chain(&c.certificate).await?).collect(),
        };
        if certificates != Certificates::None {
            cert["certificates"] = list.iter().map(|d| B64.encode(d)).collect::<Vec<_>>().into();
        }
        if cert_info {
            let tbs = &c.certificate.tbs_certificate;
            cert["issuerDN"] = tbs.issuer.to_string().into();
            cert["serialNumber"] = c.id.clone().into();
            cert["subjectDN"] = tbs.subject.to_string().into();
            cert["validFrom"] = generalized(&tbs.validity.not_before).into();
            cert["validTo"] = generalized(&tbs.validity.not_after).into();
        }
        let mut body = json!({
            "description": description,
            "signatureQualifier": "eu_eidas_qes",
            "key": key,
            "cert": cert,
            "SCAL": "2",
            "multisign": self.policies.signing().max_hashes_per_authorization,
            "lang": lang,
        });
        if auth_info {
            body["auth"] = json!({"mode": "implicit", "description": if lang == "ar" {
                "يوافق المواطن على جهازه بعد مطابقة رمز التحقق وإدخال PIN2"
            } else {
                "The citizen approves on their device, after matching the verification code, with PIN2"
            }});
        }
        Ok(body)
    }

    /// `credentials/authorize`: opens an authorisation whose hashes go to the citizen's
    /// device; returns at once, without a SAD.
    pub async fn csc_authorize(&self, caller: &Caller, request: &AuthorizeRequest, now: i64) -> Result<Opened, CscError> {
        check_text("clientData", request.client_data.as_deref(), MAX_CLIENT_DATA)?;
        if request.auth_data.is_some() {
            return Err(invalid("authData is not used: the authorisation mode is implicit (the citizen approves on the device)"));
        }
        let description = match request.description.as_deref().map(str::trim) {
            Some("") => return Err(invalid("description must not be empty")),
            other => other.map(str::to_owned),
        };
        check_text("description", description.as_deref(), MAX_DESCRIPTION)?;
        let credential = self.csc_own_credential(caller, &request.credential_id).await?;
        let max = self.policies.signing().max_hashes_per_authorization;
        let hashes = request.hashes.as_ref().ok_or_else(|| invalid("hashes are required: the credential's SCAL is 2"))?;
        if hashes.is_empty() || hashes.len() > max {
            return Err(invalid(format!("hashes must list 1 to {max} hashes (the credential's multisign)")));
        }
        if u64::try_from(hashes.len()).ok() != Some(request.num_signatures) {
            return Err(invalid(format!("numSignatures is {}, but {} hashes are given", request.num_signatures, hashes.len())));
        }
        let oid = request.hash_algorithm_oid.as_deref().ok_or_else(|| invalid("hashAlgorithmOID is required"))?;
        let hash_algorithm = HashAlgorithm::from_oid(oid).ok_or_else(|| invalid(format!("hashAlgorithmOID {oid}: SHA-256 or SHA-384")))?;
        let key = credential.usable(now)?;
        if key.hash != hash_algorithm {
            return Err(invalid(format!("hashAlgorithmOID {oid}: this credential's key signs {} hashes", key.hash.name())));
        }
        let raw = decode_hashes(hashes, hash_algorithm)?;
        for (i, h) in raw.iter().enumerate() {
            if raw[..i].contains(h) {
                return Err(invalid(format!("hash {} is given twice", i + 1)));
            }
        }
        match self.throttle.reserve_citizen(self.ephemeral.as_ref(), crate::throttle::Action::SmartId, &caller.national_id).await? {
            crate::throttle::Verdict::Allowed(r) => r.keep(),
            crate::throttle::Verdict::Blocked => return Err(CscError::TooManyRequests),
        }
        let id = crate::provider::random_token()?;
        let timeout = self.policies.signing().timeout;
        let a = Authorization {
            citizen_id: caller.citizen_id.clone(),
            national_id: caller.national_id.clone(),
            client_id: caller.client_id.clone(),
            credential_id: credential.id,
            hash_algorithm,
            hashes: raw.iter().map(|h| B64.encode(h)).collect(),
            description,
            code: hashes_verification_code(&raw),
            expires_at: now + timeout.as_secs() as i64,
            state: AuthorizationState::Waiting,
        };
        self.put_authorization(&id, &a, now).await?;
        // The citizen's device sees the newest request only.
        self.ephemeral.put(&keyspace::csc_pending(&caller.national_id), id.as_bytes(), timeout).await?;
        tracing::info!(target: "audit", event = "csc.authorize", client = caller.client_id.as_str(), hashes = a.hashes.len(), "CSC authorisation opened");
        Ok(Opened { id, code: a.code, expires_in: timeout.as_secs() as i64 })
    }

    async fn put_authorization(&self, id: &str, a: &Authorization, now: i64) -> Result<(), CscError> {
        let bytes = serde_json::to_vec(a).map_err(|source| crate::IdpError::Record { what: "CSC authorisation", source })?;
        self.ephemeral.put(&keyspace::csc_authorization(id), &bytes, ttl(a.expires_at + AFTERLIFE, now)).await?;
        Ok(())
    }

    async fn authorization(&self, id: &str) -> Result<Option<Authorization>, CscError> {
        if id.len() != 43 {
            return Ok(None);
        }
        match self.ephemeral.get(&keyspace::csc_authorization(id)).await? {
            Some(b) => Ok(Some(serde_json::from_slice(&b).map_err(|source| crate::IdpError::Record { what: "CSC authorisation", source })?)),
            None => Ok(None),
        }
    }

    /// `credentials/authorizeCheck`: pending, the SAD (once), or why there is none.
    pub async fn csc_authorize_check(&self, caller: &Caller, request: &AuthorizeCheckRequest, now: i64) -> Result<Check, CscError> {
        check_text("clientData", request.client_data.as_deref(), MAX_CLIENT_DATA)?;
        let a = self
            .authorization(&request.response_id)
            .await?
            .filter(|a| a.client_id == caller.client_id && a.citizen_id == caller.citizen_id && a.credential_id == request.credential_id)
            .ok_or_else(|| invalid("invalid parameter responseID: no such authorisation of this client, citizen and credential"))?;
        match &a.state {
            AuthorizationState::Waiting if now >= a.expires_at => Err(invalid("the authorisation timed out: the citizen did not answer on the device")),
            AuthorizationState::Waiting => Ok(Check::Pending { code: a.code.clone(), expires_in: a.expires_at - now }),
            AuthorizationState::Released => Err(invalid("the SAD of this authorisation has been issued already")),
            AuthorizationState::Failed { reason } => Err(failure(reason)),
            AuthorizationState::Approved { signatures } => {
                // The certificate's status now: a suspended or revoked one gets no SAD.
                let credential = self.csc_own_credential(caller, &a.credential_id).await?;
                if let Err(e) = credential.usable(now) {
                    tracing::warn!(target: "audit", event = "csc.refused", reason = %e, "no SAD for an approved authorisation");
                    return Err(e);
                }
                // One SAD per authorisation, even when two checks race.
                if !self.ephemeral.put_new(&keyspace::csc_released(&request.response_id), b"1", ttl(a.expires_at + AFTERLIFE, now)).await? {
                    return Err(invalid("the SAD of this authorisation has been issued already"));
                }
                let sad = crate::provider::random_token()?;
                let record = Sad {
                    authorization: request.response_id.clone(),
                    citizen_id: a.citizen_id.clone(),
                    national_id: a.national_id.clone(),
                    client_id: a.client_id.clone(),
                    credential_id: a.credential_id.clone(),
                    hash_algorithm: a.hash_algorithm,
                    hashes: a.hashes.clone(),
                    signatures: signatures.clone(),
                    description: a.description.clone(),
                    expires_at: now + SAD_TTL,
                };
                let bytes = serde_json::to_vec(&record).map_err(|source| crate::IdpError::Record { what: "CSC SAD", source })?;
                self.ephemeral.put(&keyspace::csc_sad(&sad), &bytes, ttl(record.expires_at, now)).await?;
                let mut released = a.clone();
                released.state = AuthorizationState::Released;
                self.put_authorization(&request.response_id, &released, now).await?;
                tracing::info!(target: "audit", event = "csc.sad", client = caller.client_id.as_str(), "SAD issued");
                Ok(Check::Ready { sad, expires_in: SAD_TTL })
            }
        }
    }

    /// `signatures/signHash`: releases the signatures the citizen made for exactly the
    /// hashes the SAD authorised, once, and records each.
    pub async fn csc_sign_hash(&self, caller: &Caller, request: &SignHashRequest, now: i64) -> Result<Vec<String>, CscError> {
        check_text("clientData", request.client_data.as_deref(), MAX_CLIENT_DATA)?;
        if request.operation_mode.as_deref().is_some_and(|m| m != "S") {
            return Err(invalid("operationMode must be S: only synchronous signing is offered"));
        }
        if request.validity_period.is_some() || request.response_uri.is_some() {
            return Err(invalid("validity_period and response_uri belong to the asynchronous mode, which is not offered"));
        }
        if request.sad.len() != 43 {
            return Err(invalid("invalid parameter SAD: unknown, expired or used"));
        }
        let key = keyspace::csc_sad(&request.sad);
        let record: Sad = match self.ephemeral.get(&key).await? {
            Some(b) => serde_json::from_slice(&b).map_err(|source| crate::IdpError::Record { what: "CSC SAD", source })?,
            None => return Err(invalid("invalid parameter SAD: unknown, expired or used")),
        };
        if now >= record.expires_at {
            return Err(invalid("invalid parameter SAD: unknown, expired or used"));
        }
        if record.client_id != caller.client_id {
            tracing::warn!(target: "audit", event = "csc.foreign_sad", "a SAD was presented by another client");
            return Err(invalid("invalid parameter SAD: it was issued to another client"));
        }
        if record.citizen_id != caller.citizen_id {
            tracing::warn!(target: "audit", event = "csc.foreign_sad", "a SAD was presented with another citizen's token");
            return Err(invalid("invalid parameter SAD: it was issued for another citizen"));
        }
        if record.credential_id != request.credential_id {
            return Err(invalid("invalid parameter credentialID: the SAD was issued for another credential"));
        }
        let credential = self.csc_own_credential(caller, &request.credential_id).await?;
        let algorithm = credential.usable(now)?;
        if request.sign_algo != algorithm.sign_algo {
            return Err(invalid(format!("invalid parameter signAlgo: this credential signs with {}", algorithm.sign_algo)));
        }
        if request.sign_algo_params.as_deref().is_some_and(|p| !p.is_empty()) {
            return Err(invalid("signAlgoParams: ECDSA takes no parameters"));
        }
        if let Some(oid) = request.hash_algorithm_oid.as_deref()
            && oid != record.hash_algorithm.oid()
        {
            return Err(invalid(format!(
                "invalid parameter hashAlgorithmOID: the SAD was issued for {} ({})",
                record.hash_algorithm.name(),
                record.hash_algorithm.oid()
            )));
        }
        let raw = decode_hashes(&request.hashes, record.hash_algorithm)?;
        let authorised: Vec<Vec<u8>> = record.hashes.iter().filter_map(|h| B64.decode(h).ok()).collect();
        let mut signatures = Vec::with_capacity(raw.len());
        for (i, h) in raw.iter().enumerate() {
            let Some(at) = authorised.iter().position(|a| a == h) else {
                return Err(invalid(format!("invalid parameter hashes: hash {} was not authorised by this SAD", i + 1)));
            };
            if raw[..i].contains(h) {
                return Err(invalid(format!("invalid parameter hashes: hash {} is given twice", i + 1)));
            }
            signatures.push(record.signatures.get(at).cloned().ok_or_else(|| crate::IdpError::Corrupt("a SAD without its signatures".into()))?);
        }
        if raw.len() != authorised.len() {
            return Err(invalid(format!("invalid parameter hashes: the SAD authorised {} hashes, and all of them are signed at once", authorised.len())));
        }
        // Spent once: of two requests with one SAD, one gets the signatures.
        if self.ephemeral.take(&key).await?.is_none() {
            return Err(invalid("invalid parameter SAD: unknown, expired or used"));
        }
        for (i, h) in raw.iter().enumerate() {
            self.durable
                .record_signature(&store::SignatureRecord {
                    id: hex::encode(crate::provider::sha256(format!("csc:{}:{i}", record.authorization).as_bytes())),
                    national_id: record.national_id.clone(),
                    client_id: record.client_id.clone(),
                    document_name: record.description.clone().unwrap_or_else(|| "CSC signHash".into()),
                    document_sha256: match record.hash_algorithm {
                        HashAlgorithm::Sha256 => hex::encode(h),
                        HashAlgorithm::Sha384 => format!("sha-384:{}", hex::encode(h)),
                    },
                    format: format!("CSC-signHash ({})", record.hash_algorithm.name()),
                    certificate_serial: credential.id.clone(),
                    signed_at: now,
                })
                .await?;
        }
        tracing::info!(target: "audit", event = "csc.signed", client = caller.client_id.as_str(), signatures = signatures.len(), "CSC signatures released");
        Ok(signatures)
    }

    /// The citizen's pending hash-signing request, for their device.
    pub async fn device_hash_pending(&self, national_id: &str, now: i64) -> Result<Option<HashSigningPending>, OAuthError> {
        let Some(id) = self.ephemeral.get(&keyspace::csc_pending(national_id)).await? else { return Ok(None) };
        let id = String::from_utf8_lossy(&id).into_owned();
        let a = match self.authorization(&id).await {
            Ok(Some(a)) => a,
            Ok(None) => return Ok(None),
            Err(CscError::Server(e)) => return Err(e),
            Err(e) => return Err(OAuthError::server(e.to_string())),
        };
        if a.state != AuthorizationState::Waiting || a.national_id != national_id || now >= a.expires_at {
            return Ok(None);
        }
        let service = self
            .client(&a.client_id)
            .await?
            .map(|c| c.service.name.clone())
            .or_else(|| self.policies.service(&a.client_id).map(|s| s.name.clone()))
            .unwrap_or(policies::Localized { ar: a.client_id.clone(), en: a.client_id.clone() });
        Ok(Some(HashSigningPending {
            session: id,
            service,
            description: a.description,
            hash_algorithm: a.hash_algorithm.name().to_owned(),
            hashes: a.hashes,
            expires_at: a.expires_at,
        }))
    }

    /// The device's answer to a hash-signing request of its citizen: the signatures are
    /// checked against the certificate at once. An authorisation takes one answer.
    pub async fn device_sign_hashes(&self, national_id: &str, answer: &HashAnswer, now: i64) -> Result<AuthorizationState, OAuthError> {
        let no_such = || OAuthError::invalid_request("no such hash-signing request of this citizen (or it has timed out)");
        let mut a = match self.authorization(&answer.session).await {
            Ok(a) => a.filter(|a| a.national_id == national_id && now < a.expires_at).ok_or_else(no_such)?,
            Err(CscError::Server(e)) => return Err(e),
            Err(e) => return Err(OAuthError::server(e.to_string())),
        };
        let window = ttl(a.expires_at, now);
        if a.state != AuthorizationState::Waiting || !self.ephemeral.put_new(&keyspace::csc_answered(&answer.session), b"1", window).await? {
            tracing::warn!(target: "audit", event = "csc.replay", "a hash-signing request was answered twice");
            return Err(OAuthError::invalid_request("this hash-signing request has been answered already"));
        }
        let failed = |reason: &str| AuthorizationState::Failed { reason: reason.into() };
        a.state = match answer.outcome.as_str() {
            "approve" => {
                let signatures = answer.signatures.as_ref().ok_or_else(|| OAuthError::invalid_request("approve needs the signatures, base64"))?;
                self.check_device_signatures(&a, signatures, now).await.map_err(|e| match e {
                    CscError::Server(e) => e,
                    other => OAuthError::server(other.to_string()),
                })?
            }
            "refuse" => failed("refused"),
            "wrong_code" => failed("wrong_code"),
            "locked" => failed("locked"),
            other => return Err(OAuthError::invalid_request(format!("unknown outcome {other:?}: approve, refuse, wrong_code or locked"))),
        };
        self.ephemeral.delete(&keyspace::csc_pending(national_id)).await?;
        self.put_authorization(&answer.session, &a, now).await.map_err(|e| OAuthError::server(e.to_string()))?;
        tracing::info!(target: "audit", event = "csc.answered", state = ?a.state, "device answered a hash-signing request");
        Ok(a.state)
    }

    /// The state an approval leads to: every signature must verify over its hash with the
    /// credential's key, and the certificate must be valid now.
    async fn check_device_signatures(&self, a: &Authorization, signatures: &[String], now: i64) -> Result<AuthorizationState, CscError> {
        let failed = |reason: &str| {
            tracing::warn!(target: "audit", event = "csc.refused", reason, "a device's hash signatures were not accepted");
            AuthorizationState::Failed { reason: reason.into() }
        };
        let Some(credential) = self.csc_credential(&a.national_id).await?.filter(|c| c.id == a.credential_id) else { return Ok(failed("revoked")) };
        match credential.status(now) {
            CertStatus::Valid => {}
            status => return Ok(failed(status.as_str())),
        }
        if signatures.len() != a.hashes.len() {
            return Ok(failed("bad_signature"));
        }
        for (hash, signature) in a.hashes.iter().zip(signatures) {
            let (Ok(hash), Ok(signature)) = (B64.decode(hash), B64.decode(signature)) else { return Ok(failed("bad_signature")) };
            if !credential.verifies(&hash, &signature) {
                return Ok(failed("bad_signature"));
            }
        }
        Ok(AuthorizationState::Approved { signatures: signatures.to_vec() })
    }
}

/// The refusal a failed authorisation gets at `credentials/authorizeCheck`.
fn failure(reason: &str) -> CscError {
    match reason {
        "refused" => CscError::AccessDenied("the citizen refused the signature on the device".into()),
        "wrong_code" => CscError::AccessDenied("the citizen chose another verification code on the device than the one shown: the request was refused".into()),
        "locked" => CscError::AccessDenied("PIN2 is locked on the citizen's device: no signature can be made".into()),
        "suspended" => invalid("the signing certificate is suspended: no SAD is issued"),
        "revoked" => invalid("the signing certificate is revoked: no SAD is issued"),
        "expired" => invalid("the signing certificate has expired: no SAD is issued"),
        _ => invalid("the device's signatures do not verify with the signing certificate: no SAD is issued"),
    }
}

/// Decodes base64 hashes (standard or URL-safe alphabet) of `algorithm`'s length.
fn decode_hashes(hashes: &[String], algorithm: HashAlgorithm) -> Result<Vec<Vec<u8>>, CscError> {
    hashes
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let raw = B64.decode(h).or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h.trim_end_matches('=')));
            match raw {
                Ok(raw) if raw.len() == algorithm.output_len() => Ok(raw),
                Ok(raw) => Err(invalid(format!("hash {} has {} bytes; a {} hash has {}", i + 1, raw.len(), algorithm.name(), algorithm.output_len()))),
                Err(_) => Err(invalid(format!("hash {} is not base64", i + 1))),
            }
        })
        .collect()
}
