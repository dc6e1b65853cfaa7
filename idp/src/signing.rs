//! Citizens' e-signatures with the smart-ID signing key, decoupled like the smart-ID login.
//!
//! Whoever asks (the citizen on the provider's own signing page, `/sign`, or an agency
//! through the signing API) gives a document (an agency may give only its digest: then the
//! signature is a detached CAdES over it) and the signer; the session belongs to whoever
//! asked, and only they can poll it and fetch the signed file. The provider takes the citizen's signing certificate from their
//! smart-ID, has the [`SignatureMaker`] build what is to be signed (the signed attributes
//! over the document's digest), and opens a signing session. The citizen's device is shown
//! the service, the document's name and a 4-digit verification code derived from the hash
//! of what it signs (the page shows the same code), and signs after PIN2. The maker then
//! checks the signature, fetches the timestamp and the revocation evidence and assembles the
//! signed file (PAdES for PDFs, detached CAdES otherwise) at level B-LT; a suspended or
//! revoked certificate gets no signature, even when the device signed; nor does a session
//! whose document (or signing certificate) changed since the device was shown it
//! (`sign.document_changed`).
//!
//! The provider does not link the CA or the signature formats: `hawiya` wires the maker to
//! `esign`, the timestamp authority and the OCSP responder.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;

use crate::IdpError;
use crate::keyspace;
use crate::login::Browser;
use crate::oauth::{ErrorCode, OAuthError};
use crate::provider::Provider;
use crate::smart_id::verification_code;

/// The provider's own signing page's client id (in the signature records).
pub const SIGN_CLIENT: &str = "hawiya-sign";

/// A document to be signed, as the citizen or agency gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    /// Its file name.
    pub name: String,
    /// What the provider gets of it.
    pub content: Content,
}

impl Document {
    /// A document given whole.
    pub fn bytes(name: impl Into<String>, bytes: impl Into<Bytes>) -> Self {
        Document { name: name.into(), content: Content::Bytes(bytes.into()) }
    }
}

/// What the provider gets of a document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// The document itself (shared, not copied, from the upload to the signature).
    Bytes(Bytes),
    /// Only its digest (an agency that keeps the document to itself): the signature is a
    /// detached CAdES `.p7s` whose messageDigest is this digest; a PDF signature needs the
    /// document and cannot be made this way.
    Digest(Digest),
}

/// A document's digest, as an agency sends it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Digest {
    /// The hash function.
    pub algorithm: DigestAlgorithm,
    /// The digest, of [`DigestAlgorithm::output_len`] octets (base64 when serialized).
    #[serde(with = "base64_octets")]
    pub value: Vec<u8>,
}

impl Digest {
    /// The digest as the signature record keeps it: hex for SHA-256 (the record's
    /// `document_sha256`), `sha-384:`/`sha-512:` and hex for the others.
    fn record(&self) -> String {
        match self.algorithm {
            DigestAlgorithm::Sha256 => hex::encode(&self.value),
            other => format!("{}:{}", other.name(), hex::encode(&self.value)),
        }
    }
}

/// The hash functions a document digest may be made with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DigestAlgorithm {
    /// SHA-256.
    #[serde(rename = "sha-256")]
    Sha256,
    /// SHA-384.
    #[serde(rename = "sha-384")]
    Sha384,
    /// SHA-512.
    #[serde(rename = "sha-512")]
    Sha512,
}

impl DigestAlgorithm {
    /// Every one, in the API's order.
    pub const ALL: [DigestAlgorithm; 3] = [DigestAlgorithm::Sha256, DigestAlgorithm::Sha384, DigestAlgorithm::Sha512];

    /// Its name in the API (`sha-256`, the IANA hash function textual name).
    pub fn name(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha256 => "sha-256",
            DigestAlgorithm::Sha384 => "sha-384",
            DigestAlgorithm::Sha512 => "sha-512",
        }
    }

    /// The algorithm called `name` in the API.
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The length of its digests, in octets.
    pub fn output_len(self) -> usize {
        match self {
            DigestAlgorithm::Sha256 => 32,
            DigestAlgorithm::Sha384 => 48,
            DigestAlgorithm::Sha512 => 64,
        }
    }
}

mod base64_octets {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as B64;

    pub fn serialize<S: serde::Serializer>(value: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(value))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        B64.decode(text).map_err(serde::de::Error::custom)
    }
}

/// The signature format a document gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// PAdES B-LT, an incremental update of the PDF.
    Pades,
    /// PAdES B-LTA: B-LT and a document timestamp over it, in a further update.
    PadesLta,
    /// Detached CAdES B-LT (`.p7s`), for any file.
    Cades,
}

impl Format {
    /// The format and level of what is made (ETSI's names).
    pub fn level(self) -> &'static str {
        match self {
            Format::Pades => "PAdES-BASELINE-LT",
            Format::PadesLta => "PAdES-BASELINE-LTA",
            Format::Cades => "CAdES-BASELINE-LT",
        }
    }

    /// Whether the result is a PDF.
    pub fn is_pdf(self) -> bool {
        matches!(self, Format::Pades | Format::PadesLta)
    }

    /// The signed file's media type.
    pub fn media_type(self) -> &'static str {
        if self.is_pdf() { "application/pdf" } else { "application/pkcs7-signature" }
    }
}

/// What the device signs.
#[derive(Clone, Debug)]
pub struct ToBeSigned {
    /// The octets (DER signed attributes) the signing key signs.
    pub octets: Vec<u8>,
    /// Their hash with the digest the key signs with: the verification code is derived
    /// from it.
    pub hash: Vec<u8>,
    /// The format the signature will have.
    pub format: Format,
    /// The SHA-256 of the document given whole (for the signature record; the maker digests
    /// the document anyway); `None` for a document given by its digest.
    pub document_sha256: Option<[u8; 32]>,
}

/// A signed file.
#[derive(Clone, Debug)]
pub struct SignedFile {
    /// Its bytes: the signed PDF, or the `.p7s`.
    pub bytes: Vec<u8>,
    /// Its format.
    pub format: Format,
}

/// Why a signature was not made.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// The document cannot be signed: the page text key of the reason (`sign.encrypted`,
    /// `sign.damaged`, `sign.certified`).
    #[error("the document cannot be signed ({0})")]
    NotSignable(&'static str),
    /// The signing certificate is suspended.
    #[error("the signing certificate is suspended")]
    Suspended,
    /// The signing certificate is revoked.
    #[error("the signing certificate is revoked")]
    Revoked,
    /// The device's signature is not over what was to be signed, or not by the certificate.
    #[error("the device's signature does not verify: {0}")]
    BadSignature(String),
    /// The document is no longer the one the session was opened for.
    #[error("the document changed after the request")]
    DocumentChanged,
    /// A document digest the signer's key cannot sign (another hash function than the key
    /// signs with, or a digest of the wrong length): what is wrong.
    #[error("the digest cannot be signed: {0}")]
    Digest(String),
    /// The timestamp authority, the responder or a key store failed.
    #[error("{0}")]
    Unavailable(String),
}

/// Builds what is signed and turns a device's signature into a signed file.
#[async_trait::async_trait]
pub trait SignatureMaker: Send + Sync {
    /// What the holder of `certificate` (DER) signs for `document` at `signing_time` (Unix
    /// seconds), and the format it will have (`archive`: B-LTA for a PDF). The same
    /// arguments give the same octets.
    fn prepare(&self, document: &Document, certificate: &[u8], signing_time: i64, archive: bool) -> Result<ToBeSigned, SigningError>;

    /// Prepares again and checks that what is to be signed is `shown` (the octets the device
    /// was given; [`SigningError::DocumentChanged`] otherwise), checks `signature` over them,
    /// gets the timestamp and the revocation evidence, and assembles the signed file in
    /// `format`.
    async fn complete(
        &self,
        document: &Document,
        certificate: &[u8],
        signing_time: i64,
        format: Format,
        shown: &[u8],
        signature: &[u8],
    ) -> Result<SignedFile, SigningError>;
}

/// E-signatures as the provider runs them.
pub struct Signing {
    /// Builds and assembles signatures.
    pub maker: Box<dyn SignatureMaker>,
}

/// Where a signing session stands.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum SigningState {
    /// Waiting for the device.
    Waiting,
    /// Signed: the file is ready.
    Signed,
    /// It ended without a signature.
    Failed {
        /// Why, as a page text key (`sign.refused`, …).
        reason: String,
    },
}

/// Who opened a signing session: only they may poll it and fetch the signed file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Owner {
    /// The citizen on the provider's own signing page (their opaque id).
    Citizen {
        /// The citizen's opaque id.
        citizen_id: String,
    },
    /// An agency through the signing API (its client id).
    Agency {
        /// The agency's client id.
        client_id: String,
    },
}

impl Owner {
    /// The service that asks (in the signature record, and shown on the device).
    pub fn client_id(&self) -> &str {
        match self {
            Owner::Citizen { .. } => SIGN_CLIENT,
            Owner::Agency { client_id } => client_id,
        }
    }
}

/// How long a finished (or timed-out) session can still be polled, and its file fetched.
const AFTERLIFE: i64 = 600;

/// A signing session, kept in the ephemeral store until a while after its timeout (the
/// document and the signed file under keys of their own).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SigningSession {
    /// Who asked: the only one who may poll and download.
    pub owner: Owner,
    /// The signer.
    pub national_id: String,
    /// The service that asked.
    pub client_id: String,
    /// The document's name.
    pub document_name: String,
    /// What the asking service wants the device to show besides the document's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_text: Option<String>,
    /// SHA-256 (hex) of the document, or the digest sent in its place (as
    /// [`store::SignatureRecord`] keeps it).
    pub document_sha256: String,
    /// The digest the agency sent instead of the document (then no document is kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// Where the agency is told that the session ended (signed or failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_uri: Option<String>,
    /// The signature format.
    pub format: Format,
    /// The claimed signing time, Unix seconds (fixed: what is signed depends on it).
    pub signing_time: i64,
    /// What the device signs, base64.
    pub to_be_signed: String,
    /// The verification code derived from its hash.
    pub code: String,
    /// When it times out, Unix seconds.
    pub expires_at: i64,
    /// Where it stands.
    #[serde(flatten)]
    pub state: SigningState,
}

/// What the device is shown for a signing request.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SigningPending {
    /// The session.
    pub session: String,
    /// The service that asks, in Arabic and English.
    pub service: policies::Localized,
    /// The document's name.
    pub document_name: String,
    /// What the service wants the device to show besides the document's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_text: Option<String>,
    /// What to sign, base64: the device hashes it, derives the verification code from the
    /// hash and signs it with the signing key after PIN2.
    pub to_be_signed: String,
    /// When the request times out.
    pub expires_at: i64,
}

/// What the page shows while polling a signing session.
#[derive(Debug)]
pub enum SigningPoll {
    /// Still waiting: show the code again.
    Waiting {
        /// The verification code.
        code: String,
        /// The document's name.
        document_name: String,
    },
    /// Signed: the file can be downloaded.
    Signed {
        /// The signed file's name.
        file_name: String,
        /// Its format and level.
        level: &'static str,
    },
    /// Ended: the page text key of the reason.
    Failed(&'static str),
}

/// Where a signing session stands, for the agency that opened it.
#[derive(Debug)]
pub struct SigningStatus {
    /// Where it stands (a waiting session past its timeout has failed with `sign.timeout`).
    pub state: SigningState,
    /// The format the signature has, or will have.
    pub format: Format,
    /// When it times out (or timed out), Unix seconds.
    pub expires_at: i64,
}

/// A request to open a signing session.
#[derive(Debug)]
pub struct SigningRequest {
    /// The signer: the citizen's opaque id.
    pub citizen_id: String,
    /// Who asks.
    pub owner: Owner,
    /// The document.
    pub document: Document,
    /// What the device shows besides the document's name (checked by the caller).
    pub display_text: Option<String>,
    /// Whether a PDF gets an archive timestamp (PAdES B-LTA); other files ignore it.
    pub archive: bool,
    /// Where the agency is told that the session ended (checked by the caller).
    pub callback_uri: Option<String>,
}

/// The page text keys a failed session may name.
const REASONS: [&str; 9] = [
    "sign.user_refused",
    "sign.wrong_code",
    "sign.locked",
    "sign.suspended",
    "sign.revoked",
    "sign.bad_signature",
    "sign.document_changed",
    "sign.unavailable",
    "sign.timeout",
];

fn static_reason(reason: &str) -> &'static str {
    REASONS.into_iter().find(|k| *k == reason).unwrap_or("sign.unavailable")
}

fn reason_key(e: &SigningError) -> &'static str {
    match e {
        SigningError::Suspended => "sign.suspended",
        SigningError::Revoked => "sign.revoked",
        SigningError::BadSignature(_) => "sign.bad_signature",
        SigningError::DocumentChanged => "sign.document_changed",
        SigningError::NotSignable(_) | SigningError::Digest(_) | SigningError::Unavailable(_) => "sign.unavailable",
    }
}

/// The name of the signed file: `contract.pdf` → `contract-signed.pdf`; `data.xml` →
/// `data.xml.p7s`.
pub fn signed_file_name(name: &str, format: Format) -> String {
    match format {
        Format::Pades | Format::PadesLta => match name.rsplit_once('.') {
            Some((stem, ext)) if ext.eq_ignore_ascii_case("pdf") => format!("{stem}-signed.pdf"),
            _ => format!("{name}-signed.pdf"),
        },
        Format::Cades => format!("{name}.p7s"),
    }
}

/// Why a signing request was not opened.
#[derive(Debug)]
pub enum StartRefusal {
    /// The document is larger than the policy's limit (octets).
    TooLarge(usize),
    /// The document is empty or has no name.
    Empty,
    /// The citizen has no active smart-ID with a signing certificate.
    NoSmartId,
    /// The document cannot be signed; the page text key of the reason.
    NotSignable(&'static str),
    /// The digest sent for the document cannot be signed by this signer: why.
    Digest(String),
    /// Too many requests for this citizen.
    Flood,
    /// Anything else.
    Error(OAuthError),
}

impl<E: Into<OAuthError>> From<E> for StartRefusal {
    fn from(e: E) -> Self {
        StartRefusal::Error(e.into())
    }
}

impl Provider {
    fn signing_service(&self) -> Result<&Signing, OAuthError> {
        self.signing.as_ref().ok_or_else(|| OAuthError::invalid_request("e-signatures are not enabled on this provider"))
    }

    /// Whether e-signatures are enabled.
    pub fn signs(&self) -> bool {
        self.signing.is_some()
    }

    async fn put_signing_session(&self, id: &str, s: &SigningSession, now: i64) -> Result<(), IdpError> {
        let bytes = serde_json::to_vec(s).map_err(|source| IdpError::Record { what: "signing session", source })?;
        // Kept past the timeout, so that whoever asked hears that it timed out.
        self.ephemeral.put(&keyspace::signing_session(id), &bytes, ttl(s.expires_at + AFTERLIFE, now)).await?;
        Ok(())
    }

    async fn signing_session(&self, id: &str) -> Result<Option<SigningSession>, IdpError> {
        if id.len() != 43 {
            return Ok(None);
        }
        match self.ephemeral.get(&keyspace::signing_session(id)).await? {
            Some(b) => Ok(Some(serde_json::from_slice(&b).map_err(|source| IdpError::Record { what: "signing session", source })?)),
            None => Ok(None),
        }
    }

    /// Opens a signing session for the request's document and signer, on behalf of its
    /// owner; `browser` is the citizen's own browser when they asked on the signing page
    /// (`None` for an agency: only the citizen's count limits it). Returns the session id
    /// and the verification code.
    pub async fn start_signing(&self, request: SigningRequest, browser: Option<&Browser<'_>>, now: i64) -> Result<(String, String), StartRefusal> {
        let SigningRequest { citizen_id, owner, document, display_text, archive, callback_uri } = request;
        let client_id = owner.client_id().to_owned();
        let service = self.signing_service()?;
        let limit = self.policies.signing().max_document_bytes;
        let digest = match &document.content {
            Content::Bytes(bytes) if bytes.len() > limit => return Err(StartRefusal::TooLarge(limit)),
            Content::Bytes(bytes) if bytes.is_empty() => return Err(StartRefusal::Empty),
            Content::Bytes(_) => None,
            Content::Digest(d) if d.value.len() != d.algorithm.output_len() => {
                return Err(StartRefusal::Digest(format!("a {} digest has {} octets, not {}", d.algorithm.name(), d.algorithm.output_len(), d.value.len())));
            }
            Content::Digest(d) => Some(d.clone()),
        };
        if document.name.trim().is_empty() {
            return Err(StartRefusal::Empty);
        }
        let citizen = self.durable.citizen_by_id(&citizen_id).await?.ok_or_else(|| OAuthError::invalid_request("the citizen no longer exists"))?;
        let national_id = citizen.national_id.clone();
        // The same limit as smart-ID logins: nobody floods a device with requests.
        let verdict = match browser {
            Some(b) => self.throttle.reserve(self.ephemeral.as_ref(), crate::throttle::Action::SmartId, &national_id, b.address, b.device).await?,
            None => self.throttle.reserve_citizen(self.ephemeral.as_ref(), crate::throttle::Action::SmartId, &national_id).await?,
        };
        match verdict {
            crate::throttle::Verdict::Allowed(r) => r.keep(),
            crate::throttle::Verdict::Blocked => return Err(StartRefusal::Flood),
        }
        let certificate = self.signing_certificate(&national_id).await?.ok_or(StartRefusal::NoSmartId)?;
        let tbs = service.maker.prepare(&document, &certificate, now, archive).map_err(|e| match e {
            SigningError::NotSignable(why) => StartRefusal::NotSignable(why),
            SigningError::Digest(why) => StartRefusal::Digest(why),
            other => StartRefusal::Error(OAuthError::server(other.to_string())),
        })?;
        let document_sha256 = match (&digest, tbs.document_sha256) {
            (Some(d), _) => d.record(),
            (None, Some(sha256)) => hex::encode(sha256),
            (None, None) => return Err(StartRefusal::Error(OAuthError::server("the signature maker gave no digest of the document"))),
        };
        let id = crate::provider::random_token()?;
        let timeout = self.policies.signing().timeout;
        let session = SigningSession {
            owner,
            national_id: national_id.clone(),
            client_id: client_id.clone(),
            document_name: document.name.clone(),
            display_text,
            document_sha256,
            digest,
            callback_uri,
            format: tbs.format,
            signing_time: now,
            to_be_signed: B64.encode(&tbs.octets),
            code: verification_code(&tbs.hash),
            expires_at: now + timeout.as_secs() as i64,
            state: SigningState::Waiting,
        };
        // The document is kept for the answer (what is signed is derived from it again); a
        // digest is in the session itself.
        if let Content::Bytes(bytes) = &document.content {
            self.ephemeral.put_shared(&keyspace::signing_document(&id), bytes.clone(), timeout).await?;
        }
        self.put_signing_session(&id, &session, now).await?;
        // The citizen's device sees the newest request only.
        self.ephemeral.put(&keyspace::signing_pending(&national_id), id.as_bytes(), timeout).await?;
        tracing::info!(target: "audit", event = "signing.started", client = client_id.as_str(), format = session.format.level(), "signing session opened");
        Ok((id, session.code))
    }

    /// The signing certificate (DER) of the citizen's smart-ID, if they have one.
    async fn signing_certificate(&self, national_id: &str) -> Result<Option<Vec<u8>>, IdpError> {
        let Some(record) = self.durable.smart_id(national_id).await? else { return Ok(None) };
        let Ok(serial) = record.signature_serial.parse::<store::Serial>() else {
            return Err(IdpError::Corrupt(format!("smart-ID of a citizen: signature serial {:?}", record.signature_serial)));
        };
        Ok(self.durable.certificate(&serial).await?.map(|c| c.certificate.der))
    }

    /// The level of assurance the citizen's smart-ID reaches: the login method its
    /// authentication certificate's policy names (a key on a smart card reaches `high`, a
    /// software key less); `None` without a smart-ID.
    pub(crate) async fn smart_id_level(&self, national_id: &str) -> Result<Option<policies::AssuranceLevel>, IdpError> {
        use der::Decode;
        let Some(record) = self.durable.smart_id(national_id).await? else { return Ok(None) };
        let Ok(serial) = record.authentication_serial.parse::<store::Serial>() else {
            return Err(IdpError::Corrupt(format!("smart-ID of a citizen: authentication serial {:?}", record.authentication_serial)));
        };
        let Some(stored) = self.durable.certificate(&serial).await? else { return Ok(None) };
        let certificate = x509_cert::Certificate::from_der(&stored.certificate.der).map_err(|e| IdpError::Corrupt(format!("a smart-ID certificate: {e}")))?;
        let policies = pkix::path::certificate_policies(&certificate).and_then(Result::ok).unwrap_or_default();
        Ok(self.policies.certificate_method(&policies).map(|m| m.level.clone()))
    }

    /// The citizen's pending signing request, for their device.
    pub async fn device_signing_pending(&self, national_id: &str, now: i64) -> Result<Option<SigningPending>, OAuthError> {
        let Some(id) = self.ephemeral.get(&keyspace::signing_pending(national_id)).await? else { return Ok(None) };
        let id = String::from_utf8_lossy(&id).into_owned();
        let Some(s) = self.signing_session(&id).await? else { return Ok(None) };
        if s.state != SigningState::Waiting || s.national_id != national_id || now >= s.expires_at {
            return Ok(None);
        }
        let service = match self.client(&s.client_id).await? {
            Some(client) => client.service.name.clone(),
            None => policies::Localized { ar: "التوقيع الإلكتروني في هوية".into(), en: "Hawiya e-signature".into() },
        };
        Ok(Some(SigningPending {
            session: id,
            service,
            document_name: s.document_name,
            display_text: s.display_text,
            to_be_signed: s.to_be_signed,
            expires_at: s.expires_at,
        }))
    }

    /// The device's answer to a signing session of its citizen. An approval is checked and,
    /// if good, made into the signed file at once; a session takes one answer.
    pub async fn device_sign(&self, national_id: &str, answer: &crate::smart_id::Answer, now: i64) -> Result<SigningState, OAuthError> {
        let service = self.signing_service()?;
        let mut s = self
            .signing_session(&answer.session)
            .await?
            .filter(|s| s.national_id == national_id && now < s.expires_at)
            .ok_or_else(|| OAuthError::invalid_request("no such signing session of this citizen (or it has timed out)"))?;
        let window = Duration::from_secs(u64::try_from((s.expires_at - now).max(1)).unwrap_or(1));
        if s.state != SigningState::Waiting || !self.ephemeral.put_new(&keyspace::signing_answered(&answer.session), b"1", window).await? {
            tracing::warn!(target: "audit", event = "signing.replay", "a signing session was answered twice");
            return Err(OAuthError::invalid_request("this signing session has been answered already"));
        }
        s.state = match answer.outcome.as_str() {
            "approve" => {
                let signature = answer.signature.as_deref().and_then(|t| B64.decode(t).ok());
                let Some(signature) = signature else { return Err(OAuthError::invalid_request("approve needs the signature, base64")) };
                self.complete_signing(service, &answer.session, &s, &signature, now).await?
            }
            "refuse" => SigningState::Failed { reason: "sign.user_refused".into() },
            "wrong_code" => SigningState::Failed { reason: "sign.wrong_code".into() },
            "locked" => SigningState::Failed { reason: "sign.locked".into() },
            other => return Err(OAuthError::invalid_request(format!("unknown outcome {other:?}: approve, refuse, wrong_code or locked"))),
        };
        self.ephemeral.delete(&keyspace::signing_pending(national_id)).await?;
        self.put_signing_session(&answer.session, &s, now).await?;
        tracing::info!(target: "audit", event = "signing.answered", state = ?s.state, "device answered a signing request");
        if let (Owner::Agency { client_id }, Some(uri)) = (&s.owner, &s.callback_uri) {
            // Enqueued for the delivery worker: the device's answer never waits for the agency.
            self.notify_agency(client_id, uri, &answer.session, &s.state, now).await;
        }
        Ok(s.state)
    }

    async fn complete_signing(&self, service: &Signing, id: &str, s: &SigningSession, signature: &[u8], now: i64) -> Result<SigningState, OAuthError> {
        let content = match &s.digest {
            Some(digest) => Content::Digest(digest.clone()),
            None => match self.ephemeral.get(&keyspace::signing_document(id)).await? {
                Some(bytes) => Content::Bytes(bytes),
                None => return Ok(SigningState::Failed { reason: "sign.timeout".into() }),
            },
        };
        let document = Document { name: s.document_name.clone(), content };
        let failed = |e: SigningError| {
            tracing::warn!(target: "audit", event = "signing.refused", reason = %e, "no signature made");
            SigningState::Failed { reason: reason_key(&e).into() }
        };
        // What is signed now must be what the device was shown: the same document and
        // certificate give the same octets (they include the document's digest).
        let Some(certificate) = self.signing_certificate(&s.national_id).await? else { return Ok(failed(SigningError::Revoked)) };
        let Ok(shown) = B64.decode(&s.to_be_signed) else { return Ok(failed(SigningError::DocumentChanged)) };
        let signed = match service.maker.complete(&document, &certificate, s.signing_time, s.format, &shown, signature).await {
            Ok(signed) => signed,
            Err(e) => return Ok(failed(e)),
        };
        let serial = x509_serial(&certificate).unwrap_or_default();
        self.durable
            .record_signature(&store::SignatureRecord {
                id: hex::encode(crate::provider::sha256(id.as_bytes())),
                national_id: s.national_id.clone(),
                client_id: s.client_id.clone(),
                document_name: s.document_name.clone(),
                document_sha256: s.document_sha256.clone(),
                format: signed.format.level().to_owned(),
                certificate_serial: serial,
                signed_at: now,
            })
            .await?;
        self.ephemeral.put_shared(&keyspace::signing_result(id), signed.bytes.into(), ttl(s.expires_at + 600, now)).await?;
        self.ephemeral.delete(&keyspace::signing_document(id)).await?;
        tracing::info!(target: "audit", event = "signing.signed", client = s.client_id, format = signed.format.level(), "signature made");
        Ok(SigningState::Signed)
    }

    /// The page's poll of a signing session the citizen of `citizen_id` started.
    pub async fn poll_signing(&self, citizen_id: &str, id: &str, now: i64) -> Result<SigningPoll, OAuthError> {
        let Some(mut s) = self.signing_session(id).await? else { return Ok(SigningPoll::Failed("sign.timeout")) };
        if !matches!(&s.owner, Owner::Citizen { citizen_id: owner } if owner == citizen_id) {
            tracing::warn!(target: "audit", event = "signing.foreign_session", "a signing session was polled by another citizen");
            return Err(OAuthError::new(ErrorCode::AccessDenied, "this signing session belongs to another citizen"));
        }
        s.state = current_state(&s, now);
        Ok(match s.state {
            SigningState::Waiting => SigningPoll::Waiting { code: s.code, document_name: s.document_name },
            SigningState::Signed => SigningPoll::Signed { file_name: signed_file_name(&s.document_name, s.format), level: s.format.level() },
            SigningState::Failed { reason } => SigningPoll::Failed(static_reason(&reason)),
        })
    }

    /// Where a session that `owner` opened stands; `None` for a session of anyone else (or
    /// one long gone): whoever asks cannot tell the two apart.
    pub async fn signing_status(&self, owner: &Owner, id: &str, now: i64) -> Result<Option<SigningStatus>, OAuthError> {
        let Some(s) = self.signing_session(id).await?.filter(|s| s.owner == *owner) else { return Ok(None) };
        Ok(Some(SigningStatus { state: current_state(&s, now), format: s.format, expires_at: s.expires_at }))
    }

    /// The signed file of a session that `owner` opened: its name, media type and bytes.
    pub async fn signed_file(&self, owner: &Owner, id: &str) -> Result<Option<(String, &'static str, Bytes)>, OAuthError> {
        let Some(s) = self.signing_session(id).await?.filter(|s| s.owner == *owner && s.state == SigningState::Signed) else { return Ok(None) };
        let Some(bytes) = self.ephemeral.get(&keyspace::signing_result(id)).await? else { return Ok(None) };
        Ok(Some((signed_file_name(&s.document_name, s.format), s.format.media_type(), bytes)))
    }
}

/// A session's state at `now`: still waiting past its timeout is a timeout.
fn current_state(s: &SigningSession, now: i64) -> SigningState {
    match &s.state {
        SigningState::Waiting if now >= s.expires_at => SigningState::Failed { reason: "sign.timeout".into() },
        state => state.clone(),
    }
}

fn ttl(until: i64, now: i64) -> Duration {
    Duration::from_secs(u64::try_from((until - now).max(1)).unwrap_or(1))
}

/// The serial number (hex) of a DER certificate.
fn x509_serial(der: &[u8]) -> Option<String> {
    use der::Decode;
    let certificate = x509_cert::Certificate::from_der(der).ok()?;
    Some(hex::encode(certificate.tbs_certificate.serial_number.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_files_are_named_after_the_document() {
        assert_eq!(signed_file_name("عقد.pdf", Format::Pades), "عقد-signed.pdf");
        assert_eq!(signed_file_name("Contract.PDF", Format::Pades), "Contract-signed.pdf");
        assert_eq!(signed_file_name("data.xml", Format::Cades), "data.xml.p7s");
        assert_eq!(static_reason("sign.locked"), "sign.locked");
        assert_eq!(static_reason("anything else"), "sign.unavailable");
    }
}
