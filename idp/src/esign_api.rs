//! The agency signing API (`/api/esign/v1`): an agency with an `esign` agency token (the
//! `client_credentials` grant) asks a citizen it names to sign a document with the smart-ID
//! signing key, polls the request (or is told by a signed notification posted to its
//! `callback_uri` when it ends), and fetches the signed file.
//!
//! The agency sends the document, or only its name and digest: then the provider never sees
//! the document and makes a detached CAdES `.p7s` whose messageDigest is that digest (a PDF
//! signature needs the document itself).
//!
//! The agency names the signer by the pairwise `sub` it was given when the citizen logged
//! in to it (resolved within the agency's own sector: another service's `sub` names nobody
//! here), or by the national id when its service policy has that legal basis. The request
//! belongs to the agency: nobody else can poll it or fetch its file, and to them it does not
//! exist. The session itself is the citizen's ordinary signing session, with the agency's
//! name (and its `display_text`) on the device.
//!
//! This module knows nothing of HTTP: `http::esign_api` reads requests and writes
//! [`ApiError`]s as responses.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;

use crate::clients::Client;
use crate::oauth::OAuthError;
use crate::provider::Provider;
use crate::signing::{Content, Digest, DigestAlgorithm, Document, Owner, SigningRequest, SigningState, SigningStatus, StartRefusal};
use crate::token::client_credentials::ESIGN_SCOPE;

/// The longest `display_text`, in characters.
pub const MAX_DISPLAY_TEXT: usize = 200;

/// Why an API request was refused; each has its wire code ([`ApiError::code`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// No bearer token, or one that is unknown, expired or not an agency's.
    #[error("{0}")]
    InvalidToken(String),
    /// A good token without the `esign` scope.
    #[error("{0}")]
    InsufficientScope(String),
    /// The request is malformed.
    #[error("{0}")]
    InvalidRequest(String),
    /// The agency's service policy does not allow what it asked.
    #[error("{0}")]
    AccessDenied(String),
    /// No such signer, signing request or signed file for this agency.
    #[error("{0}")]
    NotFound(String),
    /// The document is larger than the policy's limit (octets).
    #[error("the document is larger than allowed; the largest document accepted is {0} bytes")]
    DocumentTooLarge(usize),
    /// The document cannot be signed (a page text key: `sign.encrypted`, …).
    #[error("the document cannot be signed ({0})")]
    NotSignable(&'static str),
    /// The citizen has no active smart-ID with a signing certificate.
    #[error("the citizen has no smart-ID with a signing certificate")]
    NoSmartId,
    /// Too many signing requests for this citizen.
    #[error("too many signing requests for this citizen; try again later")]
    TooManyRequests,
    /// Something failed on our side.
    #[error(transparent)]
    Server(OAuthError),
}

impl ApiError {
    /// The code on the wire.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidToken(_) => "invalid_token",
            ApiError::InsufficientScope(_) => "insufficient_scope",
            ApiError::InvalidRequest(_) => "invalid_request",
            ApiError::AccessDenied(_) => "access_denied",
            ApiError::NotFound(_) => "not_found",
            ApiError::DocumentTooLarge(_) => "document_too_large",
            ApiError::NotSignable(_) => "document_not_signable",
            ApiError::NoSmartId => "no_smart_id",
            ApiError::TooManyRequests => "too_many_requests",
            ApiError::Server(e) => e.code.as_str(),
        }
    }
}

impl From<OAuthError> for ApiError {
    fn from(e: OAuthError) -> Self {
        ApiError::Server(e)
    }
}

impl From<crate::IdpError> for ApiError {
    fn from(e: crate::IdpError) -> Self {
        ApiError::Server(e.into())
    }
}

impl From<store::StoreError> for ApiError {
    fn from(e: store::StoreError) -> Self {
        ApiError::Server(e.into())
    }
}

/// `POST /api/esign/v1/signing-requests`: the body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSigningRequest {
    /// Who is to sign.
    pub signer: SignerRef,
    /// What.
    pub document: DocumentBody,
    /// What the device shows besides the document's name.
    #[serde(default)]
    pub display_text: Option<String>,
    /// A PDF gets an archive timestamp too (PAdES-BASELINE-LTA); other files ignore it.
    #[serde(default)]
    pub archive_timestamp: bool,
    /// Where to POST the notification when the request ends: an absolute https URL (http
    /// on a loopback host) with the origin of one of the agency's redirect URIs.
    #[serde(default)]
    pub callback_uri: Option<String>,
}

/// The signer, named one way.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignerRef {
    /// The pairwise subject the agency was given.
    #[serde(default)]
    pub sub: Option<String>,
    /// The national id (only with the legal basis: `national_id = true`).
    #[serde(default)]
    pub national_id: Option<String>,
}

/// The document as sent: its name, and its bytes or its digest (exactly one; neither when
/// the bytes come as a multipart part of their own).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentBody {
    /// Its file name (in a multipart request, the file part's name when absent).
    #[serde(default)]
    pub name: Option<String>,
    /// Its bytes, base64.
    #[serde(default)]
    pub content: Option<String>,
    /// Its digest, instead of its bytes.
    #[serde(default)]
    pub digest: Option<DigestBody>,
}

/// A document's digest as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestBody {
    /// `sha-256`, `sha-384` or `sha-512`.
    pub algorithm: String,
    /// The digest, base64.
    pub value: String,
}

/// The `typ` of a signing notification token (RFC 8725 3.11: not to be taken for another
/// kind of token).
pub const NOTIFICATION_TYP: &str = "esign-notification+jwt";

/// The claims of a signing notification: who it is for, which request, its status by the
/// API's names; never a document or a signature (the agency fetches those with its token).
pub fn notification_claims(issuer: &str, client_id: &str, request: &str, status: &str, jti: &str, now: i64) -> serde_json::Value {
    serde_json::json!({
        "iss": issuer,
        "aud": client_id,
        "iat": now,
        "exp": now + 300,
        "jti": jti,
        "signing_request": request,
        "status": status,
    })
}

/// Checks a `callback_uri` against the agency's registration: an absolute https URL (http
/// on a loopback host), without credentials or fragment, whose origin is the origin of one of
/// its redirect URIs.
fn callback_uri(agency: &Client, uri: &str) -> Result<String, ApiError> {
    let invalid = |why: &str| ApiError::InvalidRequest(format!("callback_uri {why}"));
    let parsed = url::Url::parse(uri).map_err(|_| invalid("must be an absolute URL"))?;
    if !crate::clients::https_or_loopback(&parsed) {
        return Err(invalid("must be https (http only on a loopback host)"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() || parsed.fragment().is_some() {
        return Err(invalid("must not carry credentials or a fragment"));
    }
    let origin = parsed.origin();
    let registered = agency.registration.redirect_uris.iter().filter_map(|r| url::Url::parse(r).ok()).any(|r| r.origin() == origin);
    if !registered {
        return Err(invalid("must have the origin (scheme, host and port) of one of the agency's registered redirect URIs"));
    }
    Ok(parsed.to_string())
}

/// A document sent as a binary part of its own.
#[derive(Debug)]
pub struct Upload {
    /// The file name the part carried (empty if none).
    pub file_name: String,
    /// The document.
    pub bytes: bytes::Bytes,
}

/// A signing request just opened.
#[derive(Debug)]
pub struct Opened {
    /// Its id (the signing session).
    pub id: String,
    /// The verification code the device shows: the agency shows it to the citizen.
    pub verification_code: String,
    /// When it times out, Unix seconds.
    pub expires_at: i64,
}

/// Where a request stands, by the API's names.
pub fn status_name(state: &SigningState) -> &'static str {
    match state {
        SigningState::Waiting => "waiting",
        SigningState::Signed => "signed",
        SigningState::Failed { reason } => match reason.as_str() {
            "sign.user_refused" => "refused",
            "sign.wrong_code" => "wrong_code",
            "sign.locked" => "pin2_locked",
            "sign.suspended" => "suspended",
            "sign.revoked" => "revoked",
            "sign.bad_signature" => "bad_signature",
            "sign.document_changed" => "document_changed",
            "sign.timeout" => "timeout",
            _ => "failed",
        },
    }
}

/// The largest request body: the document's limit in base64, and room for the rest.
pub fn body_limit(p: &Provider) -> usize {
    p.policies.signing().max_document_bytes.div_ceil(3) * 4 + 64 * 1024
}

fn agency_owner(agency: &Client) -> Owner {
    Owner::Agency { client_id: agency.id.to_string() }
}

impl Provider {
    /// The agency a bearer token with `esign` was issued to.
    pub async fn esign_agency(&self, token: Option<&str>, now: i64) -> Result<Arc<Client>, ApiError> {
        let token = token.ok_or_else(|| ApiError::InvalidToken("no access token".into()))?;
        match self.agency_grant(token, now).await? {
            Some(grant) if grant.grants(ESIGN_SCOPE) => {
                self.client(&grant.client_id).await?.ok_or_else(|| ApiError::InvalidToken("the client of this token no longer exists".into()))
            }
            Some(_) => Err(ApiError::InsufficientScope("the token does not grant esign".into())),
            None if self.is_citizen_token(token, now).await? => Err(ApiError::InsufficientScope(
                "a citizen's access token does not grant esign: the signing API takes an agency token (grant_type=client_credentials, scope=esign)".into(),
            )),
            None => Err(ApiError::InvalidToken("the access token is unknown or expired".into())),
        }
    }

    /// Opens a signing request of `agency`; `upload` is the document when it came as a
    /// binary part of its own (a multipart request) rather than in `request`.
    pub async fn esign_request(&self, agency: &Client, request: NewSigningRequest, upload: Option<Upload>, now: i64) -> Result<Opened, ApiError> {
        let mut uploaded_name = None;
        let content = match (&request.document.content, &request.document.digest, upload) {
            (Some(content), None, None) => Content::Bytes(self.esign_content(content)?.into()),
            (None, Some(digest), None) => Content::Digest(esign_digest(digest)?),
            (None, None, Some(upload)) => {
                let limit = self.policies.signing().max_document_bytes;
                if upload.bytes.len() > limit {
                    return Err(ApiError::DocumentTooLarge(limit));
                }
                uploaded_name = Some(upload.file_name);
                Content::Bytes(upload.bytes)
            }
            (_, _, Some(_)) => {
                return Err(ApiError::InvalidRequest("with a document part, the request's document.content and document.digest must be absent".into()));
            }
            _ => return Err(ApiError::InvalidRequest("document must have exactly one of content and digest, or come as the multipart part `document`".into())),
        };
        if matches!(content, Content::Digest(_)) && request.archive_timestamp {
            return Err(ApiError::InvalidRequest("archive_timestamp is for PDF signatures, which need the document's content, not its digest".into()));
        }
        let callback_uri = request.callback_uri.as_deref().map(|uri| callback_uri(agency, uri)).transpose()?;
        let name = request.document.name.as_deref().or(uploaded_name.as_deref()).unwrap_or_default().trim();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(|c| c.is_control() || c == '/' || c == '\\') {
            return Err(ApiError::InvalidRequest("document.name must be a file name of 1 to 200 characters, without a path or control characters".into()));
        }
        if let Some(text) = &request.display_text
            && (text.trim().is_empty() || text.chars().count() > MAX_DISPLAY_TEXT || text.chars().any(char::is_control))
        {
            return Err(ApiError::InvalidRequest(format!("display_text must be 1 to {MAX_DISPLAY_TEXT} characters, without control characters")));
        }
        let citizen_id = self.esign_signer(agency, &request.signer).await?;
        self.esign_signer_level(agency, &citizen_id).await?;
        let signing = SigningRequest {
            citizen_id,
            owner: agency_owner(agency),
            document: Document { name: name.to_owned(), content },
            display_text: request.display_text.map(|t| t.trim().to_owned()),
            archive: request.archive_timestamp,
            callback_uri,
        };
        let (id, code) = self.start_signing(signing, None, now).await.map_err(|e| match e {
            StartRefusal::TooLarge(limit) => ApiError::DocumentTooLarge(limit),
            StartRefusal::Empty => ApiError::InvalidRequest("the document is empty".into()),
            StartRefusal::NoSmartId => ApiError::NoSmartId,
            StartRefusal::NotSignable(key) => ApiError::NotSignable(key),
            StartRefusal::Digest(why) => ApiError::InvalidRequest(format!("document.digest: {why}")),
            StartRefusal::Flood => ApiError::TooManyRequests,
            StartRefusal::Error(e) => ApiError::Server(e),
        })?;
        Ok(Opened { id, verification_code: code, expires_at: now + self.policies.signing().timeout.as_secs() as i64 })
    }

    /// A document's bytes from their base64, within the policy's limit.
    fn esign_content(&self, content: &str) -> Result<Vec<u8>, ApiError> {
        let limit = self.policies.signing().max_document_bytes;
        if content.len() > limit.div_ceil(3) * 4 + 4 {
            return Err(ApiError::DocumentTooLarge(limit));
        }
        let bytes = B64.decode(content.trim()).map_err(|_| ApiError::InvalidRequest("document.content is not base64".into()))?;
        if bytes.len() > limit {
            return Err(ApiError::DocumentTooLarge(limit));
        }
        Ok(bytes)
    }

    /// Tells the agency that its request `id` ended in `state`, at its `callback_uri`: a
    /// notification token signed with the provider's key, enqueued for the delivery worker
    /// (see [`crate::backchannel`]; signed when it is posted). Never fails: whatever goes
    /// wrong is logged (the agency can still poll).
    pub(crate) async fn notify_agency(&self, client_id: &str, uri: &str, id: &str, state: &SigningState, now: i64) {
        let enqueued = async {
            let claims = notification_claims(self.issuer(), client_id, id, status_name(state), &crate::provider::random_token()?, now);
            self.enqueue(crate::backchannel::Kind::SigningNotification, vec![(client_id.to_owned(), uri.to_owned(), claims)]).await
        };
        if let Err(e) = enqueued.await {
            tracing::error!(target: "audit", event = "signing.notification.failed", client = client_id, error = %e, "no signing notification enqueued");
        }
    }

    /// The citizen the agency names (their opaque id).
    async fn esign_signer(&self, agency: &Client, signer: &SignerRef) -> Result<String, ApiError> {
        match (&signer.sub, &signer.national_id) {
            (Some(sub), None) => {
                let found = if agency.service.public_subject {
                    self.durable.citizen_by_id(sub).await?.map(|c| c.id)
                } else {
                    self.durable.subject_citizen(&agency.sector, sub).await?
                };
                found.ok_or_else(|| ApiError::NotFound("no such citizen for this service".into()))
            }
            (None, Some(national_id)) => {
                if !agency.service.national_id {
                    return Err(ApiError::AccessDenied(format!(
                        "the service policy of {} does not allow naming a signer by national id; name them by their sub",
                        agency.id
                    )));
                }
                let typed: policies::NationalId = national_id.parse().map_err(|e: policies::InvalidNationalId| ApiError::InvalidRequest(e.to_string()))?;
                let citizen = self.durable.citizen(typed.as_str()).await?;
                citizen.map(|c| c.id).ok_or_else(|| ApiError::NotFound("no such citizen".into()))
            }
            _ => Err(ApiError::InvalidRequest("signer must name the citizen by exactly one of sub and national_id".into())),
        }
    }

    /// Refuses a signer whose smart-ID cannot make a signature the agency's own validation
    /// policy accepts (its `signer_min_level`: a qualified signature needs the key on a smart
    /// card), before the citizen is asked for anything.
    async fn esign_signer_level(&self, agency: &Client, citizen_id: &str) -> Result<(), ApiError> {
        let policy = agency.service.validation_policy.as_deref().and_then(|id| self.policies.validation_policy(id));
        let policy = policy.unwrap_or_else(|| self.policies.default_validation_policy());
        let Some(required) = &policy.signer_min_level else { return Ok(()) };
        let citizen = self.durable.citizen_by_id(citizen_id).await?.ok_or_else(|| ApiError::NotFound("no such citizen".into()))?;
        match self.smart_id_level(&citizen.national_id).await? {
            None => Err(ApiError::NoSmartId),
            Some(level) if level >= *required => Ok(()),
            Some(level) => Err(ApiError::AccessDenied(format!(
                "the citizen's smart-ID reaches {} (a software key); {}'s validation policy {} accepts signatures from {} (a key on a smart card)",
                level.name(),
                agency.id,
                policy.id,
                required.name()
            ))),
        }
    }

    /// Where a signing request of `agency` stands.
    pub async fn esign_status(&self, agency: &Client, id: &str, now: i64) -> Result<SigningStatus, ApiError> {
        self.signing_status(&agency_owner(agency), id, now).await?.ok_or_else(|| ApiError::NotFound("no such signing request of this agency".into()))
    }

    /// The signed file of a signing request of `agency`: its name, media type and bytes.
    pub async fn esign_document(&self, agency: &Client, id: &str, now: i64) -> Result<(String, &'static str, bytes::Bytes), ApiError> {
        let status = self.esign_status(agency, id, now).await?;
        if status.state != SigningState::Signed {
            return Err(ApiError::NotFound(format!("the document is not signed (the request is {})", status_name(&status.state))));
        }
        self.signed_file(&agency_owner(agency), id).await?.ok_or_else(|| ApiError::NotFound("the signed document is no longer kept".into()))
    }
}

/// A digest as sent, checked: a known algorithm and a value of its length.
fn esign_digest(body: &DigestBody) -> Result<Digest, ApiError> {
    let names = DigestAlgorithm::ALL.map(DigestAlgorithm::name).join(", ");
    let algorithm = DigestAlgorithm::named(&body.algorithm)
        .ok_or_else(|| ApiError::InvalidRequest(format!("document.digest.algorithm {:?} is not one of {names}", body.algorithm)))?;
    let value = B64.decode(body.value.trim()).map_err(|_| ApiError::InvalidRequest("document.digest.value is not base64".into()))?;
    if value.len() != algorithm.output_len() {
        return Err(ApiError::InvalidRequest(format!(
            "document.digest.value has {} octets; a {} digest has {}",
            value.len(),
            algorithm.name(),
            algorithm.output_len()
        )));
    }
    Ok(Digest { algorithm, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_have_api_names() {
        let failed = |r: &str| SigningState::Failed { reason: r.into() };
        assert_eq!(status_name(&SigningState::Waiting), "waiting");
        assert_eq!(status_name(&SigningState::Signed), "signed");
        for (key, name) in [
            ("sign.user_refused", "refused"),
            ("sign.wrong_code", "wrong_code"),
            ("sign.locked", "pin2_locked"),
            ("sign.suspended", "suspended"),
            ("sign.revoked", "revoked"),
            ("sign.bad_signature", "bad_signature"),
            ("sign.timeout", "timeout"),
            ("sign.document_changed", "document_changed"),
            ("sign.unavailable", "failed"),
        ] {
            assert_eq!(status_name(&failed(key)), name, "{key}");
        }
    }

    #[test]
    fn callback_uris_share_a_redirect_uris_origin() {
        let policies = policies::Policies::shipped().unwrap_or_else(|e| panic!("{e}"));
        let registration = serde_json::from_value(serde_json::json!({
            "redirect_uris": ["https://notary.example.jo/cb", "https://notary.example.jo/other"],
            "token_endpoint_auth_method": "none",
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let agency = Client::new("notary", registration, &policies).unwrap_or_else(|e| panic!("{e}"));
        let checked = |uri: &str| match callback_uri(&agency, uri) {
            Ok(uri) => uri,
            Err(ApiError::InvalidRequest(why)) => why,
            Err(other) => panic!("{other:?}"),
        };
        assert_eq!(checked("https://notary.example.jo/esign/done?x=1"), "https://notary.example.jo/esign/done?x=1");
        assert_eq!(checked("https://notary.example.jo:443/done"), "https://notary.example.jo/done", "the default port is the same origin");
        let origin = "callback_uri must have the origin (scheme, host and port) of one of the agency's registered redirect URIs";
        for uri in ["https://notary.example.jo:8443/done", "https://evil.example.jo/done", "https://example.jo/done", "https://notary.example.jo.evil.jo/done"]
        {
            assert_eq!(checked(uri), origin, "{uri}");
        }
        assert_eq!(checked("http://notary.example.jo/done"), "callback_uri must be https (http only on a loopback host)");
        assert_eq!(checked("ftp://notary.example.jo/done"), "callback_uri must be https (http only on a loopback host)");
        assert_eq!(checked("http://127.0.0.1:9000/done"), origin, "loopback, but not the agency's origin");
        assert_eq!(checked("//notary.example.jo/done"), "callback_uri must be an absolute URL");
        assert_eq!(checked("https://a:b@notary.example.jo/done"), "callback_uri must not carry credentials or a fragment");
        assert_eq!(checked("https://notary.example.jo/done#x"), "callback_uri must not carry credentials or a fragment");
    }

    #[test]
    fn digests_are_checked_precisely() {
        let body = |algorithm: &str, value: &[u8]| DigestBody { algorithm: algorithm.into(), value: B64.encode(value) };
        let d = esign_digest(&body("sha-384", &[1; 48])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((d.algorithm, d.value.len()), (DigestAlgorithm::Sha384, 48));
        let why = |e: Result<Digest, ApiError>| match e {
            Err(ApiError::InvalidRequest(why)) => why,
            other => panic!("{other:?}"),
        };
        assert_eq!(why(esign_digest(&body("md5", &[1; 16]))), "document.digest.algorithm \"md5\" is not one of sha-256, sha-384, sha-512");
        assert_eq!(why(esign_digest(&body("sha-256", &[1; 48]))), "document.digest.value has 48 octets; a sha-256 digest has 32");
        assert_eq!(why(esign_digest(&DigestBody { algorithm: "sha-512".into(), value: "not base64!".into() })), "document.digest.value is not base64");
    }
}
