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
            CscError::Server(_) => "server_error",
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

impl Credential {
    /// `valid`, `expired`, `revoked` or `suspended` at `now`.
    fn status(&self, now: i64) -> &'static str {
        match self.status {
            s if s.on_hold() => "suspended",
            store::CertificateStatus::Revoked { .. } => "revoked",
            _ => {
                let v = &self.certificate.tbs_certificate.validity;
                let (from, to) = (v.not_before.to_unix_duration().as_secs() as i64, v.not_after.to_unix_duration().as_secs() as i64);
                if now < from || now > to { "expired" } else { "valid" }
            }
        }
    }

    /// The refusal for a certificate that cannot sign at `now`.
    fn usable(&self, now: i64) -> Result<KeyAlgorithm, CscError> {
        match self.status(now) {
            "valid" => self.algorithm.ok_or_else(|| invalid("the credential's key cannot sign hashes")),
            status => Err(invalid(format!("the signing certificate is {status}"))),
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
            "status": if status == "valid" && c.algorithm.is_some() { "enabled" } else { "disabled" },
            "algo": c.algorithm.iter().map(|a| a.sign_algo).collect::<Vec<_>>(),
            "len": c.algorithm.map_or(0, |a| a.len),
        });
        if let Some(curve) = c.algorithm.and_then(|a| a.curve) {
            key["curve"] = curve.into();
        }
        let mut cert = json!({"status": status});
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
                    document_sha256: hex::encode(h),
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
            "valid" => {}
            status => return Ok(failed(status)),
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use hsm_shim::KeyStore;
    use hsm_shim::soft::{OperatorSecret, SoftKeyStore};
    use tower::ServiceExt;

    use super::*;
    use crate::token::{AccessGrant, Grant};

    const LAYLA: &str = "9861234567";
    const SAMI: &str = "9861234568";
    const TOOL: &str = "signing-tool";
    const SERIAL: &str = "1a2b3c4d5e6f708192a3b4c5d6e7f801";
    const SHA256: &str = "2.16.840.1.101.3.4.2.1";
    const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";

    /// A provider whose policies add a signing tool granted `csc`, Layla with a smart-ID
    /// (the signing key in a soft key store standing in for her device) and Sami without.
    struct Fixture {
        _dir: tempfile::TempDir,
        p: Arc<Provider>,
        device: Arc<dyn KeyStore>,
        key: hsm_shim::KeyRef,
    }

    impl Fixture {
        async fn new() -> Fixture {
            let dir = tempfile::tempdir().expect("tempdir");
            let policies = dir.path().join("policies");
            let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
            for sub in ["", "profiles", "services"] {
                std::fs::create_dir_all(policies.join(sub)).expect("mkdir");
                for entry in std::fs::read_dir(shipped.join(sub)).expect("policies").flatten() {
                    if entry.path().extension().is_some_and(|x| x == "toml") {
                        std::fs::copy(entry.path(), policies.join(sub).join(entry.file_name())).expect("copy");
                    }
                }
            }
            std::fs::write(
                policies.join("services/signing-tool.toml"),
                "version = 1\nclient_id = \"signing-tool\"\nname = { ar = \"أداة التوقيع\", en = \"Signing tool\" }\nmin_level = \"high\"\nscopes = [\"openid\", \"csc\"]\nclaims = [\"sub\"]\n",
            )
            .expect("service");
            let policies = Arc::new(policies::Policies::load(&policies).expect("policies"));
            let secret = OperatorSecret::new(b"unit test secret, not for production".to_vec()).expect("secret");
            let keys: Arc<dyn KeyStore> = Arc::new(SoftKeyStore::open_or_create(&dir.path().join("keys"), &secret).expect("key store"));
            let durable: Arc<dyn store::DurableStore> = Arc::new(store::SqliteStore::open(&dir.path().join("db")).expect("db"));
            let signing = crate::keys::SigningKeys::open(keys, durable.clone(), Duration::from_secs(900), 1).await.expect("keys");
            let p = Provider::new(
                crate::Settings::new("https://id.example.jo", vec![7; 32]),
                policies,
                durable.clone(),
                Arc::new(store::ephemeral::MemoryStore::new()),
                signing,
            )
            .expect("provider");
            for (id, national_id) in [("c-layla", LAYLA), ("c-sami", SAMI)] {
                let citizen = store::CitizenRecord {
                    id: id.into(),
                    national_id: national_id.into(),
                    profile: "{}".into(),
                    password_hash: String::new(),
                    totp_secret: None,
                    created_at: 0,
                };
                durable.insert_citizen(&citizen).await.expect("citizen");
            }
            // Layla's device: the signing key, and her certificate in the store.
            let device: Arc<dyn KeyStore> = Arc::new(SoftKeyStore::open_or_create(&dir.path().join("device"), &secret).expect("device"));
            let key = device.generate(KeySpec::EcP256, "smart-id-signature").expect("key");
            let signer = hsm_shim::signer::StoredKeySigner::new(Arc::clone(&device), key.clone(), SignatureAlgorithm::Es256).expect("signer");
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
            params.distinguished_name.push(rcgen::DnType::CommonName, "Layla Haddad");
            params.serial_number = Some(rcgen::SerialNumber::from_slice(&hex::decode(SERIAL).expect("hex")));
            let der = params.self_signed(&signer).expect("certificate").der().to_vec();
            let serial: store::Serial = SERIAL.parse().expect("serial");
            durable
                .insert_certificate(&store::NewCertificate {
                    serial: serial.clone(),
                    issuer: "citizen-signing-ca".into(),
                    profile: "citizen-signature".into(),
                    subject: "CN=Layla Haddad".into(),
                    not_before: 0,
                    not_after: i64::MAX / 2,
                    der,
                    issued_at: 0,
                })
                .await
                .expect("certificate");
            durable
                .put_smart_id(&store::SmartIdRecord {
                    national_id: LAYLA.into(),
                    custody: "software".into(),
                    device_kid: "kid".into(),
                    device_key: "{}".into(),
                    authentication_serial: "01".into(),
                    signature_serial: serial.to_string(),
                    activated_at: 0,
                })
                .await
                .expect("smart-ID");
            Fixture { _dir: dir, p: Arc::new(p), device, key }
        }

        /// A citizen access token of `client` for `citizen`, with `scopes`, at `level`.
        async fn token(&self, client: &str, citizen: &str, scopes: &[&str], level: &str) -> String {
            let level = self.p.policies.levels().iter().find(|l| l.level.name() == level).expect("level").level.to_name();
            let grant = Grant {
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                claims: Default::default(),
                claims_locales: Vec::new(),
                level,
                amr: vec!["smart-id".into()],
                auth_time: crate::unix_now(),
                sid: "sid".into(),
                nonce: None,
                acr: None,
            };
            let token = crate::provider::random_token().expect("token");
            let record = AccessGrant { client_id: client.into(), citizen_id: citizen.into(), family: "f".into(), expires_at: crate::unix_now() + 300, grant };
            self.p.ephemeral.put(&keyspace::access_token(&token), &serde_json::to_vec(&record).expect("json"), Duration::from_secs(300)).await.expect("put");
            token
        }

        async fn layla(&self) -> String {
            self.token(TOOL, "c-layla", &["openid", "csc"], "high").await
        }

        /// POSTs `body` to `/csc/v2/{method}` with `token`: status, `WWW-Authenticate`, JSON.
        async fn call(&self, method: &str, token: Option<&str>, body: &Value) -> (StatusCode, String, Value) {
            self.raw(method, token, body.to_string().into_bytes()).await
        }

        async fn raw(&self, method: &str, token: Option<&str>, body: Vec<u8>) -> (StatusCode, String, Value) {
            let mut request = Request::post(format!("/csc/v2/{method}")).header("content-type", "application/json");
            if let Some(t) = token {
                request = request.header("authorization", format!("Bearer {t}"));
            }
            let response = crate::http::router(Arc::clone(&self.p)).oneshot(request.body(Body::from(body)).expect("request")).await.expect("response");
            let status = response.status();
            let challenge = response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
            (status, challenge, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
        }

        async fn credential(&self, token: &str) -> String {
            let (status, _, body) = self.call("credentials/list", Some(token), &json!({})).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["credentialIDs"][0].as_str().expect("a credential").to_owned()
        }

        /// Opens an authorisation of `hashes` (raw); its responseID and code.
        async fn authorize(&self, token: &str, hashes: &[Vec<u8>]) -> (String, String) {
            let credential = self.credential(token).await;
            let body = json!({"credentialID": credential, "numSignatures": hashes.len(), "hashes": b64s(hashes), "hashAlgorithmOID": SHA256, "description": "Contract no. 7"});
            let (status, _, body) = self.call("credentials/authorize", Some(token), &body).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert!(body.get("SAD").is_none(), "authorize returns without a SAD: {body}");
            (body["responseID"].as_str().expect("responseID").to_owned(), body["verificationCode"].as_str().expect("code").to_owned())
        }

        /// The device signs every pending digest (or `override_signatures`) and approves.
        async fn approve(&self, override_signatures: Option<Vec<String>>) -> Result<AuthorizationState, OAuthError> {
            let pending = self.p.device_hash_pending(LAYLA, crate::unix_now()).await.expect("pending").expect("a pending request");
            let signatures = override_signatures.unwrap_or_else(|| {
                pending
                    .hashes
                    .iter()
                    .map(|h| B64.encode(self.device.sign_digest(&self.key, SignatureAlgorithm::Es256, &B64.decode(h).expect("b64")).expect("sign")))
                    .collect()
            });
            self.p
                .device_sign_hashes(LAYLA, &HashAnswer { session: pending.session, outcome: "approve".into(), signatures: Some(signatures) }, crate::unix_now())
                .await
        }

        async fn answer(&self, outcome: &str) {
            let pending = self.p.device_hash_pending(LAYLA, crate::unix_now()).await.expect("pending").expect("a pending request");
            self.p
                .device_sign_hashes(LAYLA, &HashAnswer { session: pending.session, outcome: outcome.into(), signatures: None }, crate::unix_now())
                .await
                .expect("answer");
        }

        async fn check(&self, token: &str, id: &str) -> (StatusCode, Value) {
            let credential = self.credential(token).await;
            let (status, _, body) = self.call("credentials/authorizeCheck", Some(token), &json!({"credentialID": credential, "responseID": id})).await;
            (status, body)
        }

        /// Authorises `hashes`, approves on the device, and gets the SAD.
        async fn sad(&self, token: &str, hashes: &[Vec<u8>]) -> String {
            let (id, _) = self.authorize(token, hashes).await;
            assert!(matches!(self.approve(None).await, Ok(AuthorizationState::Approved { .. })));
            let (status, body) = self.check(token, &id).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["SAD"].as_str().expect("SAD").to_owned()
        }

        async fn signatures(&self) -> usize {
            self.p.durable.signatures_of(LAYLA).await.expect("signatures").len()
        }

        async fn sign_hash(&self, token: &str, body: Value) -> (StatusCode, Value) {
            let (status, _, body) = self.call("signatures/signHash", Some(token), &body).await;
            (status, body)
        }
    }

    fn b64s(hashes: &[Vec<u8>]) -> Vec<String> {
        hashes.iter().map(|h| B64.encode(h)).collect()
    }

    fn hashes(n: u8) -> Vec<Vec<u8>> {
        (0..n).map(|i| crate::provider::sha256(&[i, 42])).collect()
    }

    fn refused(status: StatusCode, body: &Value, code: &str, why: &str) {
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some(code)), "{body}");
        assert!(body["error_description"].as_str().unwrap_or_default().contains(why), "expected {why:?}: {body}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn info_needs_no_token_and_names_the_provider_as_issuer() {
        let f = Fixture::new().await;
        let (status, _, body) = f.raw("info", None, Vec::new()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!((body["specs"].as_str(), body["lang"].as_str(), body["name"].as_str()), (Some("2.0.0.2"), Some("ar"), Some("هوية")));
        assert_eq!((body["oauth2"].as_str(), body["oauth2Issuer"].as_str()), (Some("https://id.example.jo"), Some("https://id.example.jo")));
        assert_eq!(body["authType"], json!(["oauth2code"]));
        assert!(body["methods"].as_array().expect("methods").contains(&json!("signatures/signHash")));
        let (_, _, body) = f.call("info", None, &json!({"lang": "en"})).await;
        assert_eq!(body["name"].as_str(), Some("Hawiya"));
        let (status, _, body) = f.call("info", None, &json!({"lang": "fr"})).await;
        refused(status, &body, "invalid_request", "lang \"fr\"");
        let (status, _, body) = f.call("info", None, &json!({"lang": "en", "colour": "green"})).await;
        refused(status, &body, "invalid_request", "unknown field `colour`");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tokens_that_are_absent_unknown_or_expired_get_401_invalid_token() {
        let f = Fixture::new().await;
        for token in [None, Some("not-a-token")] {
            let (status, challenge, body) = f.call("credentials/list", token, &json!({})).await;
            assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_token")), "{body}");
            assert!(challenge.starts_with("Bearer error=\"invalid_token\""), "{challenge}");
        }
        let token = f.layla().await;
        let caller = f.p.csc_caller(Some(&token), crate::unix_now() + 301).await;
        assert!(matches!(caller, Err(CscError::InvalidToken(_))), "expired: {caller:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_token_without_csc_gets_403_insufficient_scope() {
        let f = Fixture::new().await;
        let token = f.token(TOOL, "c-layla", &["openid"], "high").await;
        let (status, challenge, body) = f.call("credentials/list", Some(&token), &json!({})).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::FORBIDDEN, Some("insufficient_scope")), "{body}");
        assert!(challenge.starts_with("Bearer error=\"insufficient_scope\""), "{challenge}");
        // An agency's token is not a citizen's.
        let agency = crate::provider::random_token().expect("token");
        let grant =
            crate::token::client_credentials::AgencyGrant { client_id: "notary".into(), scopes: vec!["esign".into()], expires_at: crate::unix_now() + 300 };
        f.p.ephemeral.put(&keyspace::agency_token(&agency), &serde_json::to_vec(&grant).expect("json"), Duration::from_secs(300)).await.expect("put");
        let (status, _, body) = f.call("credentials/list", Some(&agency), &json!({})).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::FORBIDDEN, Some("insufficient_scope")), "{body}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_login_below_the_signing_level_is_refused() {
        let f = Fixture::new().await;
        let token = f.token(TOOL, "c-layla", &["openid", "csc"], "substantial").await;
        let (status, challenge, body) = f.call("credentials/list", Some(&token), &json!({})).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("insufficient_user_authentication")), "{body}");
        assert!(body["error_description"].as_str().unwrap_or_default().contains("level high"), "{body}");
        assert!(challenge.starts_with("Bearer error=\"insufficient_user_authentication\""), "{challenge}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tool_lists_the_citizens_credential_and_reads_its_info() {
        let f = Fixture::new().await;
        let token = f.layla().await;
        let (status, _, body) = f.call("credentials/list", Some(&token), &json!({"credentialInfo": true, "certInfo": true, "certificates": "single"})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["credentialIDs"], json!([SERIAL]), "the certificate's serial, not the national id");
        assert_eq!(body["credentialInfos"][0]["credentialID"].as_str(), Some(SERIAL));
        let (status, _, info) = f
            .call("credentials/info", Some(&token), &json!({"credentialID": SERIAL, "certificates": "chain", "certInfo": true, "authInfo": true, "lang": "en"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{info}");
        assert_eq!(info["key"], json!({"status": "enabled", "algo": [ECDSA_SHA256], "len": 256, "curve": "1.2.840.10045.3.1.7"}));
        assert_eq!((info["cert"]["status"].as_str(), info["cert"]["serialNumber"].as_str()), (Some("valid"), Some(SERIAL)));
        assert_eq!(info["cert"]["subjectDN"].as_str(), Some("CN=Layla Haddad"));
        assert_eq!(info["cert"]["validFrom"].as_str().map(str::len), Some(15), "{info}");
        assert_eq!((info["auth"]["mode"].as_str(), info["SCAL"].as_str(), info["multisign"].as_u64()), (Some("implicit"), Some("2"), Some(10)));
        let certificate = B64.decode(info["cert"]["certificates"][0].as_str().expect("certificate")).expect("b64");
        assert_eq!(Certificate::from_der(&certificate).expect("der").tbs_certificate.serial_number.as_bytes(), hex::decode(SERIAL).expect("hex"));
        // Sami has none; another credential id names nothing for Layla.
        let sami = f.token(TOOL, "c-sami", &["openid", "csc"], "high").await;
        let (_, _, body) = f.call("credentials/list", Some(&sami), &json!({})).await;
        assert_eq!(body["credentialIDs"], json!([]));
        let (status, _, body) = f.call("credentials/info", Some(&sami), &json!({"credentialID": SERIAL})).await;
        refused(status, &body, "invalid_request", "no such credential of this citizen");
        let (status, _, body) = f.call("credentials/list", Some(&token), &json!({"userID": LAYLA})).await;
        refused(status, &body, "invalid_request", "userID is not used");
        let (status, _, body) = f.call("credentials/info", Some(&token), &json!({"credentialID": SERIAL, "certificates": "all"})).await;
        refused(status, &body, "invalid_request", "unknown variant `all`");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashes_approved_on_the_device_are_released_once_by_sign_hash() {
        let f = Fixture::new().await;
        let token = f.layla().await;
        let hashes = hashes(2);
        let (id, code) = f.authorize(&token, &hashes).await;
        assert_eq!(code, hashes_verification_code(&hashes));
        let (status, body) = f.check(&token, &id).await;
        assert_eq!(
            (status, body["status"].as_str(), body["verificationCode"].as_str()),
            (StatusCode::ACCEPTED, Some("pending"), Some(code.as_str())),
            "{body}"
        );
        let pending = f.p.device_hash_pending(LAYLA, crate::unix_now()).await.expect("pending").expect("one");
        assert_eq!((pending.hashes, pending.service.en.as_str(), pending.description.as_deref()), (b64s(&hashes), "Signing tool", Some("Contract no. 7")));
        assert_eq!(f.signatures().await, 0, "nothing is recorded before it is released");
        assert!(matches!(f.approve(None).await, Ok(AuthorizationState::Approved { .. })));
        // The device answered: nothing pending; a second answer is refused.
        assert!(f.p.device_hash_pending(LAYLA, crate::unix_now()).await.expect("pending").is_none());
        let replay = HashAnswer { session: id.clone(), outcome: "approve".into(), signatures: Some(vec![]) };
        assert!(f.p.device_sign_hashes(LAYLA, &replay, crate::unix_now()).await.expect_err("replayed").description.contains("answered already"));
        let (status, body) = f.check(&token, &id).await;
        assert_eq!((status, body["expiresIn"].as_i64()), (StatusCode::OK, Some(SAD_TTL)), "{body}");
        let sad = body["SAD"].as_str().expect("SAD").to_owned();
        let (status, body) = f.check(&token, &id).await;
        refused(status, &body, "invalid_request", "issued already");
        // pyHanko's v1 names, the hashes in another order: the signatures follow the request.
        let asked = vec![hashes[1].clone(), hashes[0].clone()];
        let request = json!({"credentialID": SERIAL, "SAD": sad, "hash": b64s(&asked), "hashAlgo": SHA256, "signAlgo": ECDSA_SHA256});
        let (status, body) = f.sign_hash(&token, request.clone()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let signatures = body["signatures"].as_array().expect("signatures");
        assert_eq!(signatures.len(), 2);
        let spki = f.device.public_key(&f.key).expect("spki");
        for (hash, signature) in asked.iter().zip(signatures) {
            let signature = B64.decode(signature.as_str().expect("b64")).expect("b64");
            let point = aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1, spki.subject_public_key());
            let digest = aws_lc_rs::digest::Digest::import_less_safe(hash, &aws_lc_rs::digest::SHA256).expect("digest");
            assert!(point.verify_digest(&digest, &signature).is_ok(), "each signature is over its own hash");
        }
        assert_eq!(f.signatures().await, 2, "every released signature is recorded");
        let (status, body) = f.sign_hash(&token, request).await;
        refused(status, &body, "invalid_request", "unknown, expired or used");
        assert_eq!(f.signatures().await, 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sign_hash_refuses_a_hash_that_was_not_authorised() {
        let f = Fixture::new().await;
        let token = f.layla().await;
        let sad = f.sad(&token, &hashes(2)).await;
        let mut other = hashes(2);
        other[1] = crate::provider::sha256(b"another document");
        let (status, body) = f
            .sign_hash(&token, json!({"credentialID": SERIAL, "SAD": sad, "hashes": b64s(&other), "hashAlgorithmOID": SHA256, "signAlgo": ECDSA_SHA256}))
            .await;
        refused(status, &body, "invalid_request", "hash 2 was not authorised by this SAD");
        let (status, body) = f.sign_hash(&token, json!({"credentialID": SERIAL, "SAD": sad, "hashes": b64s(&hashes(1)), "signAlgo": ECDSA_SHA256})).await;
        refused(status, &body, "invalid_request", "the SAD authorised 2 hashes");
        assert_eq!(f.signatures().await, 0, "nothing released");
        // The SAD is unspent: the authorised hashes still get their signatures.
        let (status, body) = f.sign_hash(&token, json!({"credentialID": SERIAL, "SAD": sad, "hashes": b64s(&hashes(2)), "signAlgo": ECDSA_SHA256})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sign_hash_refuses_another_credential() {
        let f = Fixture::new().await;
        let token = f.layla().await;
        let sad = f.sad(&token, &hashes(1)).await;
        let (status, body) = f.sign_hash(&token, json!({"credentialID": "00ff", "SAD": sad, "hashes": b64s(&hashes(1)), "signAlgo": ECDSA_SHA256})).await;
        refused(status, &body, "invalid_request", "the SAD was issued for another credential");
        assert_eq!(f.signatures().await, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sign_hash_refuses_another_clients_token() {
        let f = Fixture::new().await;
        let token = f.layla().await;
        let sad = f.sad(&token, &hashes(1)).await;
        let other = f.token("other-tool", "c-layla", &["openid", "csc"], "high").await;
        let (status, body) = f.sign_hash(&other, json!({"credentialID": SERIAL, "SAD": sad, "hashes": b64s(&hashes(1)), "signAlgo": ECDSA_SHA256})).await;
        refused(status, &body, "invalid_request", "issued to another client");
        assert_eq!(f.signatures().await, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sign_hash_refuses_another_citizens_token() {
        let f = Fixture::new().await;
        let token = f.layla().await;
        let sad = f.sad(&token, &hashes(1)).await;
        let sami = f.token(TOOL, "c-sami", &["openid", "csc"], "high").await;
        let (status, body) = f.sign_hash(&sami, json!({"credentialID": SERIAL, "SAD": sad, "hashes": b64s(&hashes(1)), "signAlgo": ECDSA_SHA256})).await;
        refused(status, &body, "invalid_request", "issued for another citizen");
        assert_eq!(f.signatures().await, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sign_hash_refuses_another_hash_algorithm_or_signature_algorithm() {
        let f = Fixture::new().await;
        let token = f.layla().await;
        let sad = f.sad(&token, &hashes(1)).await;
        let request =
            |hash: &str, sign: &str| json!({"credentialID": SERIAL, "SAD": sad, "hashes": b64s(&hashes(1)), "hashAlgorithmOID": hash, "signAlgo": sign});
        let (status, body) = f.sign_hash(&token, request("2.16.840.1.101.3.4.2.2", ECDSA_SHA256)).await;
        refused(status, &body, "invalid_request", "the SAD was issued for SHA-256");
        let (status, body) = f.sign_hash(&token, request(SHA256, "1.2.840.113549.1.1.11")).await;
        refused(status, &body, "invalid_request", "invalid parameter signAlgo");
        assert_eq!(f.signatures().await, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_expired_sad_is_refused() {
        let f = Fixture::new().await;
        let token = f.layla().await;
        let sad = f.sad(&token, &hashes(1)).await;
        let caller = f.p.csc_caller(Some(&token), crate::unix_now()).await.expect("caller");
        let request: SignHashRequest =
            serde_json::from_value(json!({"credentialID": SERIAL, "SAD": sad, "hashes": b64s(&hashes(1)), "signAlgo": ECDSA_SHA256})).expect("request");
        let e = f.p.csc_sign_hash(&caller, &request, crate::unix_now() + SAD_TTL).await.expect_err("expired");
        assert!(matches!(&e, CscError::InvalidRequest(why) if why.contains("unknown, expired or used")), "{e:?}");
        assert_eq!(f.signatures().await, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn authorize_refuses_malformed_requests_and_nothing_reaches_the_device() {
        let f = Fixture::new().await;
        let token = f.layla().await;
        let one = b64s(&hashes(1));
        for (body, why) in [
            (json!({"credentialID": SERIAL, "numSignatures": 11, "hashes": b64s(&hashes(11)), "hashAlgorithmOID": SHA256}), "1 to 10 hashes"),
            (json!({"credentialID": SERIAL, "numSignatures": 2, "hashes": one, "hashAlgorithmOID": SHA256}), "numSignatures is 2, but 1 hashes"),
            (json!({"credentialID": SERIAL, "numSignatures": 1, "hashAlgorithmOID": SHA256}), "hashes are required"),
            (json!({"credentialID": SERIAL, "numSignatures": 1, "hashes": one}), "hashAlgorithmOID is required"),
            (json!({"credentialID": SERIAL, "numSignatures": 1, "hashes": one, "hashAlgorithmOID": "1.3.14.3.2.26"}), "SHA-256 or SHA-384"),
            (
                json!({"credentialID": SERIAL, "numSignatures": 1, "hashes": [B64.encode([0u8; 48])], "hashAlgorithmOID": "2.16.840.1.101.3.4.2.2"}),
                "signs SHA-256 hashes",
            ),
            (json!({"credentialID": SERIAL, "numSignatures": 1, "hashes": [B64.encode([0u8; 20])], "hashAlgorithmOID": SHA256}), "hash 1 has 20 bytes"),
            (json!({"credentialID": SERIAL, "numSignatures": 1, "hashes": ["%%%"], "hashAlgorithmOID": SHA256}), "hash 1 is not base64"),
            (json!({"credentialID": SERIAL, "numSignatures": 2, "hashes": [one[0], one[0]], "hashAlgorithmOID": SHA256}), "hash 2 is given twice"),
            (json!({"credentialID": SERIAL, "numSignatures": 1, "hashes": one, "hashAlgorithmOID": SHA256, "PIN": "54321"}), "unknown field `PIN`"),
            (json!({"credentialID": SERIAL, "numSignatures": 1, "hashes": one, "hashAlgorithmOID": SHA256, "authData": []}), "authData is not used"),
            (json!({"credentialID": SERIAL, "numSignatures": 1, "hashes": one, "hashAlgorithmOID": SHA256, "description": "x".repeat(501)}), "at most 500"),
            (json!({"credentialID": "0102", "numSignatures": 1, "hashes": one, "hashAlgorithmOID": SHA256}), "no such credential"),
            (json!({"credentialID": SERIAL, "numSignatures": "one", "hashes": one, "hashAlgorithmOID": SHA256}), "invalid type"),
        ] {
            let (status, _, answer) = f.call("credentials/authorize", Some(&token), &body).await;
            refused(status, &answer, "invalid_request", why);
        }
        let (status, _, answer) = f.raw("credentials/authorize", Some(&token), vec![b' '; 10 * 128 + 8 * 1024 + 1]).await;
        refused(status, &answer, "invalid_request", "larger than");
        let (status, _, answer) = f.raw("credentials/authorize", Some(&token), b"{not json".to_vec()).await;
        refused(status, &answer, "invalid_request", "not the expected JSON");
        assert!(f.p.device_hash_pending(LAYLA, crate::unix_now()).await.expect("pending").is_none(), "no refusal reached the device");
    }

    /// The device's `outcome` ends the authorisation with `why`, without a SAD or a record.
    async fn ends_without_a_sad(outcome: &str, code: &str, why: &str) {
        let f = Fixture::new().await;
        let token = f.layla().await;
        let (id, _) = f.authorize(&token, &hashes(1)).await;
        f.answer(outcome).await;
        let (status, body) = f.check(&token, &id).await;
        refused(status, &body, code, why);
        assert_eq!(f.signatures().await, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refusal_on_the_device_gets_no_sad() {
        ends_without_a_sad("refuse", "access_denied", "the citizen refused").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wrong_code_on_the_device_gets_no_sad() {
        ends_without_a_sad("wrong_code", "access_denied", "another verification code").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_locked_pin2_gets_no_sad() {
        ends_without_a_sad("locked", "access_denied", "PIN2 is locked").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_signature_over_another_hash_gets_no_sad() {
        let f = Fixture::new().await;
        let token = f.layla().await;
        let (id, _) = f.authorize(&token, &hashes(1)).await;
        let other = f.device.sign_digest(&f.key, SignatureAlgorithm::Es256, &crate::provider::sha256(b"something else")).expect("sign");
        assert_eq!(f.approve(Some(vec![B64.encode(other)])).await.expect("answered"), AuthorizationState::Failed { reason: "bad_signature".into() });
        let (status, body) = f.check(&token, &id).await;
        refused(status, &body, "invalid_request", "do not verify with the signing certificate");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_certificate_suspended_after_the_device_signed_gets_no_sad() {
        let f = Fixture::new().await;
        let token = f.layla().await;
        let (id, _) = f.authorize(&token, &hashes(1)).await;
        assert!(matches!(f.approve(None).await, Ok(AuthorizationState::Approved { .. })));
        let serial: store::Serial = SERIAL.parse().expect("serial");
        f.p.durable.revoke(&serial, store::RevocationReason::CertificateHold, crate::unix_now()).await.expect("hold");
        let (status, body) = f.check(&token, &id).await;
        refused(status, &body, "invalid_request", "the signing certificate is suspended");
        // Released again, the approval still stands: the refusal changed nothing.
        f.p.durable.release(&serial).await.expect("release");
        let (status, body) = f.check(&token, &id).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_certificate_revoked_before_the_answer_gets_no_sad() {
        let f = Fixture::new().await;
        let token = f.layla().await;
        let (id, _) = f.authorize(&token, &hashes(1)).await;
        let serial: store::Serial = SERIAL.parse().expect("serial");
        f.p.durable.revoke(&serial, store::RevocationReason::KeyCompromise, crate::unix_now()).await.expect("revoke");
        assert_eq!(f.approve(None).await.expect("answered"), AuthorizationState::Failed { reason: "revoked".into() });
        let (status, body) = f.check(&token, &id).await;
        refused(status, &body, "invalid_request", "the signing certificate is revoked");
        let (status, _, body) = f.call("credentials/info", Some(&token), &json!({"credentialID": SERIAL})).await;
        assert_eq!((status, body["cert"]["status"].as_str(), body["key"]["status"].as_str()), (StatusCode::OK, Some("revoked"), Some("disabled")));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unanswered_authorisation_times_out() {
        let f = Fixture::new().await;
        let token = f.layla().await;
        let (id, _) = f.authorize(&token, &hashes(1)).await;
        let caller = f.p.csc_caller(Some(&token), crate::unix_now()).await.expect("caller");
        let request = AuthorizeCheckRequest { credential_id: SERIAL.into(), response_id: id, client_data: None };
        let e = f.p.csc_authorize_check(&caller, &request, crate::unix_now() + 120).await.expect_err("timed out");
        assert!(matches!(&e, CscError::InvalidRequest(why) if why.contains("timed out")), "{e:?}");
        assert!(f.p.device_hash_pending(LAYLA, crate::unix_now() + 120).await.expect("pending").is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn another_tool_cannot_check_an_authorisation() {
        let f = Fixture::new().await;
        let token = f.layla().await;
        let (id, _) = f.authorize(&token, &hashes(1)).await;
        let other = f.token("other-tool", "c-layla", &["openid", "csc"], "high").await;
        let (status, body) = f.check(&other, &id).await;
        refused(status, &body, "invalid_request", "no such authorisation of this client");
    }
}
