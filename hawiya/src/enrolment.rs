//! Smart-ID enrolment: the registration authority's side.
//!
//! A registration officer who has proven a citizen in person registers them (`hawiya citizen
//! add`, or `POST /ra/citizens`), enrols them (`hawiya citizen enroll`, or
//! `POST /ra/enrolments` with an officer's token) and hands over a one-time
//! activation code. The citizen's device makes its keys, learns with the code whom it is
//! activated for (`POST /smart-id/activation/identity`), and sends two certificate requests
//! and its own device key (`POST /smart-id/activation`). Both requests are checked before
//! the code is spent, and the code is spent before anything is issued: a wrong, expired or
//! used code, a request for another citizen or a key the profile refuses issue nothing.
//!
//! This lives in the binary because it joins the CA (which issues) and the citizens of the
//! OpenID Connect provider (whom it issues for); neither crate knows the other.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use ca::{Authority, CaError, IssueRequest, Subject};
use idp::throttle::AddressLimit;
use idp::unix_now as now;
use policies::NationalId;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use store::ephemeral::EphemeralStore;
use store::{ActivationRecord, DurableStore, RevocationReason, Serial, SmartIdRecord, StoreError};

use crate::config::RaOfficer;
use crate::registration::{self, NewCitizen, RegisterError};

/// How long an activation code works unless `HAWIYA_ACTIVATION_LIFETIME` (seconds, 1 to 86,400)
/// says otherwise.
const ACTIVATION_LIFETIME: i64 = 15 * 60;

fn activation_lifetime() -> Result<i64, EnrolError> {
    match std::env::var("HAWIYA_ACTIVATION_LIFETIME") {
        Ok(v) => v
            .parse::<i64>()
            .ok()
            .filter(|s| (1..=86_400).contains(s))
            .ok_or_else(|| EnrolError::BadRequest("HAWIYA_ACTIVATION_LIFETIME: 1 to 86400 seconds".into())),
        Err(_) => Ok(ACTIVATION_LIFETIME),
    }
}
/// The largest request body of these endpoints (two CSRs and a JWK fit in 16 KiB).
const MAX_BODY: usize = 64 * 1024;

/// Where a citizen's keys are kept; it decides the certificate profiles and so the level a
/// login with them reaches (methods.toml).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Custody {
    /// A hardware token: a smart card or secure element.
    Hardware,
    /// Software on the citizen's phone or computer.
    Software,
}

impl Custody {
    /// Parses `hardware` or `software`.
    pub fn parse(s: &str) -> Result<Self, EnrolError> {
        match s {
            "hardware" => Ok(Custody::Hardware),
            "software" => Ok(Custody::Software),
            other => Err(EnrolError::BadRequest(format!("{other:?} is neither hardware nor software"))),
        }
    }

    /// Its name as stored.
    pub fn name(self) -> &'static str {
        match self {
            Custody::Hardware => "hardware",
            Custody::Software => "software",
        }
    }

    /// The (authentication, signature) certificate profiles.
    fn profiles(self) -> (&'static str, &'static str) {
        match self {
            Custody::Hardware => ("citizen-authentication", "citizen-signature"),
            Custody::Software => ("citizen-authentication-soft", "citizen-signature-soft"),
        }
    }
}

/// Why an enrolment step was refused.
#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    /// No or a wrong officer token.
    #[error("a registration officer's token is required")]
    Unauthorized,
    /// The national id is not a registered citizen.
    #[error("no citizen with national id {0}")]
    UnknownCitizen(NationalId),
    /// The activation code is unknown, expired or spent.
    #[error("the activation code is wrong, expired or already used")]
    BadCode,
    /// Too many wrong activation codes from this address.
    #[error("too many wrong activation codes from this address; try again in 15 minutes")]
    TooManyAttempts,
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// A citizen with that national id is registered already.
    #[error("a citizen with national id {0} is already registered")]
    AlreadyRegistered(NationalId),
    /// A certificate request was refused.
    #[error("{which} certificate request: {error}")]
    Csr {
        /// `authentication` or `signature`.
        which: &'static str,
        /// Why.
        error: CaError,
    },
    /// The citizen has no smart-ID.
    #[error("citizen {0} has no smart-ID")]
    NoSmartId(NationalId),
    /// The CA refused a status change (say, resuming a revoked certificate).
    #[error("{0}")]
    Status(String),
    /// The store cannot be reached for a moment (a failover): try again.
    #[error("{0}")]
    Unavailable(StoreError),
    /// Anything else.
    #[error("{0}")]
    Internal(String),
}

impl From<RegisterError> for EnrolError {
    fn from(e: RegisterError) -> Self {
        match e {
            RegisterError::Duplicate(id) => EnrolError::AlreadyRegistered(id),
            RegisterError::Credential(idp::IdpError::PasswordLength { .. }) => EnrolError::BadRequest(format!("password: {e}")),
            RegisterError::Store(e) => EnrolError::from(e),
            other => EnrolError::Internal(other.to_string()),
        }
    }
}

impl From<StoreError> for EnrolError {
    fn from(e: StoreError) -> Self {
        if e.is_unreachable() { EnrolError::Unavailable(e) } else { EnrolError::Internal(e.to_string()) }
    }
}

/// What the device learns from its activation code.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Identity {
    /// The national id.
    pub national_id: NationalId,
    /// Given name, Latin script (as in the certificate).
    pub given_name: String,
    /// Surname, Latin script.
    pub surname: String,
    /// The country of the national id (ISO 3166).
    pub country: String,
    /// Where the keys must be kept.
    pub custody: Custody,
}

/// The device's activation request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Activation {
    /// The activation code.
    pub code: String,
    /// PKCS#10 for the authentication key (PIN1), PEM.
    pub authentication_csr: String,
    /// PKCS#10 for the signing key (PIN2), PEM.
    pub signature_csr: String,
    /// The device key's public JWK: it signs the device's requests.
    pub device_key: Value,
}

/// A status change of a citizen's smart-ID.
#[derive(Clone, Copy, Debug)]
pub enum StatusChange {
    /// Both certificates on hold (certificateHold).
    Suspend,
    /// The hold lifted.
    Resume,
    /// Both certificates revoked for good.
    Revoke(RevocationReason),
}

/// The registration authority's service.
pub struct Enrolment {
    authority: Arc<Authority>,
    durable: Arc<dyn DurableStore>,
    officers: Vec<RaOfficer>,
    guard: Option<ActivationGuard>,
}

/// Where wrong activation codes are counted per address ([`AddressLimit::ACTIVATION`]),
/// and which reverse proxies' `X-Forwarded-For` is believed.
pub struct ActivationGuard {
    /// The ephemeral store the counts live in (shared by replicas when it is Redis).
    pub store: Arc<dyn EphemeralStore>,
    /// Trusted reverse proxies.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(idp::provider::sha256(data))
}

/// Letters and digits that cannot be mistaken for one another when read aloud or typed.
const CODE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";

/// An activation code as people type it: upper case, without separators.
fn normalise_code(code: &str) -> String {
    code.chars().filter(|c| !matches!(c, '-' | ' ')).map(|c| c.to_ascii_uppercase()).collect()
}

impl Enrolment {
    /// The service over a CA, the durable store and the officers allowed to use the API.
    pub fn new(authority: Arc<Authority>, durable: Arc<dyn DurableStore>, officers: Vec<RaOfficer>) -> Self {
        Enrolment { authority, durable, officers, guard: None }
    }

    /// Counts wrong activation codes per address: past [`AddressLimit::ACTIVATION`] an
    /// address is refused without its code being looked at. The server always guards; the
    /// CLI, which activates nothing, need not.
    pub fn guarding_activations(mut self, guard: ActivationGuard) -> Self {
        self.guard = Some(guard);
        self
    }

    /// Runs an activation step for a device at `address`, within the address's limit.
    async fn limited<T>(&self, address: &str, step: impl std::future::Future<Output = Result<T, EnrolError>>) -> Result<T, EnrolError> {
        let Some(guard) = &self.guard else { return step.await };
        if !AddressLimit::ACTIVATION.allows(guard.store.as_ref(), address).await? {
            tracing::warn!(target: "audit", event = "smart_id.activation_throttled", "activation refused: too many wrong codes from this address");
            return Err(EnrolError::TooManyAttempts);
        }
        let result = step.await;
        if matches!(result, Err(EnrolError::BadCode)) {
            AddressLimit::ACTIVATION.failed(guard.store.as_ref(), address).await?;
            tracing::warn!(target: "audit", event = "smart_id.activation_bad_code", "a wrong activation code");
        }
        result
    }

    /// The address a device's request came from (behind trusted proxies, the one they name).
    fn address(&self, request: &Request) -> String {
        let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
        let trusted = self.guard.as_ref().map_or(&[][..], |g| &g.trusted_proxies[..]);
        idp::http::client_address(request.headers(), peer, trusted).map_or_else(|| "unknown".into(), |a| a.to_string())
    }

    /// The officer a bearer token belongs to (compared in constant time).
    fn officer(&self, headers: &HeaderMap) -> Result<String, EnrolError> {
        let token = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).ok_or(EnrolError::Unauthorized)?;
        self.officers.iter().find(|o| o.token_sha256.matches(token.trim())).map(|o| o.name.to_string()).ok_or(EnrolError::Unauthorized)
    }

    /// Enrols a proven citizen: returns a fresh activation code (20 characters, 100 bits) and
    /// when it expires.
    pub async fn enrol(&self, national_id: &NationalId, custody: Custody, officer: &str, now: i64) -> Result<(String, i64), EnrolError> {
        if self.durable.citizen(national_id.as_str()).await?.is_none() {
            return Err(EnrolError::UnknownCitizen(national_id.clone()));
        }
        let mut random = [0u8; 20];
        aws_lc_rs::rand::fill(&mut random).map_err(|_| EnrolError::Internal("no randomness".into()))?;
        let code: String = random.iter().map(|b| CODE_ALPHABET[usize::from(b & 31)] as char).collect();
        let expires_at = now + activation_lifetime()?;
        self.durable
            .insert_activation(&ActivationRecord {
                code_hash: sha256_hex(code.as_bytes()),
                national_id: national_id.to_string(),
                custody: custody.name().to_owned(),
                officer: officer.to_owned(),
                expires_at,
            })
            .await?;
        tracing::info!(target: "audit", event = "smart_id.enrolled", %national_id, custody = custody.name(), officer, "citizen enrolled for a smart-ID");
        let grouped: Vec<String> = code.as_bytes().chunks(5).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
        Ok((grouped.join("-"), expires_at))
    }

    async fn pending(&self, code: &str, now: i64) -> Result<(ActivationRecord, Identity), EnrolError> {
        let record = self.durable.activation(&sha256_hex(normalise_code(code).as_bytes()), now).await?.ok_or(EnrolError::BadCode)?;
        let national_id: NationalId =
            record.national_id.parse().map_err(|e| EnrolError::Internal(format!("an activation record's national id {:?}: {e}", record.national_id)))?;
        let citizen = self.durable.citizen(national_id.as_str()).await?.ok_or_else(|| EnrolError::UnknownCitizen(national_id.clone()))?;
        let profile = idp::citizens::Profile::from_json(&citizen.profile).map_err(|e| EnrolError::Internal(e.to_string()))?;
        let identity = Identity {
            national_id,
            given_name: profile.given_name.en,
            surname: profile.family_name.en,
            country: self.authority.ceremony().country.clone(),
            custody: Custody::parse(&record.custody)?,
        };
        Ok((record, identity))
    }

    /// Whom an activation code enrols (the code is not spent).
    pub async fn identity(&self, code: &str, now: i64) -> Result<Identity, EnrolError> {
        Ok(self.pending(code, now).await?.1)
    }

    /// Activates a device: checks both requests, spends the code, issues both certificates
    /// and records the smart-ID (an earlier one of the citizen is revoked as superseded).
    pub async fn activate(&self, a: &Activation, now: i64) -> Result<Value, EnrolError> {
        let (record, identity) = self.pending(&a.code, now).await?;
        let device_jwk = &a.device_key;
        let device_key = hsm_shim::jose::public_key_from_jwk(device_jwk).map_err(|e| EnrolError::BadRequest(format!("device_key: {e}")))?.0;
        let device_kid = hsm_shim::jose::thumbprint(device_jwk).map_err(|e| EnrolError::BadRequest(format!("device_key: {e}")))?;
        let subject = Subject::NaturalPerson {
            given_name: identity.given_name.clone(),
            surname: identity.surname.clone(),
            national_id: identity.national_id.clone(),
            country: identity.country.clone(),
        };
        let (auth_profile, sign_profile) = identity.custody.profiles();
        let requests = [
            ("authentication", IssueRequest { profile: auth_profile.into(), csr: a.authentication_csr.as_bytes().to_vec(), subject: subject.clone() }),
            ("signature", IssueRequest { profile: sign_profile.into(), csr: a.signature_csr.as_bytes().to_vec(), subject }),
        ];
        let expected = format!("PNO{}-{}", identity.country, identity.national_id);
        let mut keys = vec![device_key.spki_der().to_vec()];
        for (which, request) in &requests {
            let checked = self.authority.check(request).map_err(|error| EnrolError::Csr { which, error })?;
            if checked.serial_number.is_none() {
                return Err(EnrolError::Csr { which, error: CaError::InvalidSubject(format!("the request must name {expected} as its subject serialNumber")) });
            }
            let spki = checked.key.spki_der().to_vec();
            if keys.contains(&spki) {
                return Err(EnrolError::BadRequest("the authentication key, the signing key and the device key must be three different keys".into()));
            }
            keys.push(spki);
        }
        // Spent before anything is issued: of two devices racing with one code, one wins.
        self.durable.take_activation(&record.code_hash, now).await?.ok_or(EnrolError::BadCode)?;
        let mut issued = Vec::new();
        for (which, request) in &requests {
            issued.push(self.authority.issue(request).await.map_err(|error| EnrolError::Csr { which, error })?);
        }
        let smart_id = SmartIdRecord {
            national_id: identity.national_id.to_string(),
            custody: identity.custody.name().into(),
            device_kid: device_kid.clone(),
            device_key: device_jwk.to_string(),
            authentication_serial: issued[0].serial.to_string(),
            signature_serial: issued[1].serial.to_string(),
            activated_at: now,
        };
        if let Some(old) = self.durable.put_smart_id(&smart_id).await? {
            for serial in [&old.authentication_serial, &old.signature_serial] {
                let serial = serial.parse::<Serial>().map_err(EnrolError::Internal)?;
                if let Err(e) = self.authority.revoke(&serial, RevocationReason::Superseded).await {
                    tracing::warn!(error = %e, %serial, "the replaced smart-ID's certificate could not be revoked");
                }
            }
        }
        tracing::info!(target: "audit", event = "smart_id.activated", national_id = %identity.national_id, device = device_kid, officer = record.officer, "smart-ID activated");
        let chain = |name: &str| self.authority.certificate(name).map(|der| ca::authority::pem("CERTIFICATE", der)).unwrap_or_default();
        Ok(json!({
            "national_id": identity.national_id,
            "custody": identity.custody,
            "device_kid": device_kid,
            "authentication_certificate": issued[0].pem(),
            "signature_certificate": issued[1].pem(),
            // The generations that issued them (after a renewal, the new ones).
            "authentication_ca": chain(&issued[0].issuer),
            "signing_ca": chain(&issued[1].issuer),
            "root": chain(ca::names::ROOT),
        }))
    }

    /// Suspends, resumes or revokes both certificates of a citizen's smart-ID.
    pub async fn change_status(&self, national_id: &NationalId, change: StatusChange, officer: &str) -> Result<(), EnrolError> {
        let smart_id = self.durable.smart_id(national_id.as_str()).await?.ok_or_else(|| EnrolError::NoSmartId(national_id.clone()))?;
        for serial in [&smart_id.authentication_serial, &smart_id.signature_serial] {
            let serial = serial.parse::<Serial>().map_err(EnrolError::Internal)?;
            let done = match change {
                StatusChange::Suspend => self.authority.revoke(&serial, RevocationReason::CertificateHold).await,
                StatusChange::Resume => self.authority.release(&serial).await,
                StatusChange::Revoke(reason) => self.authority.revoke(&serial, reason).await,
            };
            done.map_err(|e| EnrolError::Status(e.to_string()))?;
        }
        tracing::info!(target: "audit", event = "smart_id.status", %national_id, change = ?change, officer, "smart-ID status changed");
        Ok(())
    }
}

impl IntoResponse for EnrolError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            EnrolError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            EnrolError::UnknownCitizen(_) | EnrolError::NoSmartId(_) => (StatusCode::NOT_FOUND, "not_found"),
            EnrolError::BadCode => (StatusCode::BAD_REQUEST, "invalid_code"),
            EnrolError::TooManyAttempts => (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
            EnrolError::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            EnrolError::AlreadyRegistered(_) => (StatusCode::CONFLICT, "already_registered"),
            EnrolError::Unavailable(_) | EnrolError::Csr { error: CaError::Store(StoreError::Unreachable { .. }), .. } => {
                tracing::warn!(error = %self, "enrolment refused: the store is unreachable");
                let mut response =
                    json_response(StatusCode::SERVICE_UNAVAILABLE, &json!({"error": "temporarily_unavailable", "error_description": idp::oauth::TRY_AGAIN}));
                response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(idp::oauth::RETRY_AFTER_SECONDS));
                return response;
            }
            EnrolError::Csr { error: CaError::Store(_) | CaError::Key(_) | CaError::Encoding(_), .. } | EnrolError::Internal(_) => {
                tracing::error!(error = %self, "enrolment failed");
                return json_response(StatusCode::INTERNAL_SERVER_ERROR, &json!({"error": "server_error"}));
            }
            EnrolError::Csr { .. } => (StatusCode::BAD_REQUEST, "invalid_csr"),
            EnrolError::Status(_) => (StatusCode::CONFLICT, "status_conflict"),
        };
        let mut response = json_response(status, &json!({"error": code, "error_description": self.to_string()}));
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer realm=\"hawiya-ra\""));
        }
        response
    }
}

/// A JSON response (never cached: codes and certificates are one person's).
fn json_response(status: StatusCode, value: &Value) -> Response {
    let headers = [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")];
    (status, headers, value.to_string()).into_response()
}

/// A JSON body, or the precise reason it is not one: a value a field's type refuses is named
/// by its path (`citizen.birthdate: 1990-02-30 is not a day of the calendar`).
fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, EnrolError> {
    let not_json = |e: serde_json::Error| EnrolError::BadRequest(format!("the body is not JSON: {e}"));
    let mut json = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let path = e.path().to_string();
        let e = e.into_inner();
        if e.classify() != serde_json::error::Category::Data {
            return not_json(e);
        }
        let message = e.to_string();
        let message = message.strip_suffix(&format!(" at line {} column {}", e.line(), e.column())).unwrap_or(&message);
        EnrolError::BadRequest(if path == "." { message.to_owned() } else { format!("{path}: {message}") })
    })?;
    json.end().map_err(not_json)?;
    Ok(value)
}

/// `POST /ra/citizens`: a citizen, checked by the same types as `hawiya citizen add`, and
/// their first password.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CitizenBody {
    citizen: NewCitizen,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrolBody {
    national_id: NationalId,
    custody: Custody,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeBody {
    code: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    #[serde(default)]
    reason: Option<String>,
}

async fn enrol(State(e): State<Arc<Enrolment>>, headers: HeaderMap, bytes: axum::body::Bytes) -> Result<Response, EnrolError> {
    let officer = e.officer(&headers)?;
    let b: EnrolBody = body(&bytes)?;
    let (code, expires_at) = e.enrol(&b.national_id, b.custody, &officer, now()).await?;
    Ok(json_response(StatusCode::CREATED, &json!({"national_id": b.national_id, "custody": b.custody, "activation_code": code, "expires_at": expires_at})))
}

async fn register(State(e): State<Arc<Enrolment>>, headers: HeaderMap, bytes: axum::body::Bytes) -> Result<Response, EnrolError> {
    let officer = e.officer(&headers)?;
    let CitizenBody { citizen, password } = body(&bytes)?;
    // Argon2id takes tens of milliseconds of CPU: off the async threads.
    let hash = tokio::task::spawn_blocking(move || registration::hash_password(password)).await.map_err(|e| EnrolError::Internal(e.to_string()))??;
    registration::register(e.durable.as_ref(), &citizen, hash, None, &officer).await?;
    Ok(json_response(StatusCode::CREATED, &json!({"national_id": citizen.national_id})))
}

async fn status(
    State(e): State<Arc<Enrolment>>,
    Path((national_id, action)): Path<(String, String)>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Response, EnrolError> {
    let officer = e.officer(&headers)?;
    let national_id: NationalId = national_id.parse().map_err(|e| EnrolError::BadRequest(format!("national id in the path: {e}")))?;
    let b: StatusBody = if bytes.is_empty() { StatusBody { reason: None } } else { body(&bytes)? };
    let change = match action.as_str() {
        "suspend" => StatusChange::Suspend,
        "resume" => StatusChange::Resume,
        "revoke" => StatusChange::Revoke(revocation_reason(b.reason.as_deref())?),
        other => return Err(EnrolError::BadRequest(format!("unknown action {other:?}: suspend, resume or revoke"))),
    };
    e.change_status(&national_id, change, &officer).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A revocation reason by its RFC 5280 name; `unspecified` when none is given. Holds go
/// through suspend and resume.
pub fn revocation_reason(name: Option<&str>) -> Result<RevocationReason, EnrolError> {
    let reason: RevocationReason = name.unwrap_or("unspecified").parse().map_err(EnrolError::BadRequest)?;
    if reason == RevocationReason::CertificateHold {
        return Err(EnrolError::BadRequest("certificateHold is a suspension: use suspend".into()));
    }
    Ok(reason)
}

/// A device's request: the address it came from, and its body.
async fn device_request(e: &Enrolment, request: Request) -> Result<(String, axum::body::Bytes), EnrolError> {
    let address = e.address(&request);
    let bytes =
        axum::body::to_bytes(request.into_body(), MAX_BODY).await.map_err(|_| EnrolError::BadRequest(format!("the body is larger than {MAX_BODY} bytes")))?;
    Ok((address, bytes))
}

async fn identity(State(e): State<Arc<Enrolment>>, request: Request) -> Result<Response, EnrolError> {
    let (address, bytes) = device_request(&e, request).await?;
    let b: CodeBody = body(&bytes)?;
    let identity = e.limited(&address, e.identity(&b.code, now())).await?;
    Ok(json_response(StatusCode::OK, &serde_json::to_value(identity).map_err(|e| EnrolError::Internal(e.to_string()))?))
}

async fn activate(State(e): State<Arc<Enrolment>>, request: Request) -> Result<Response, EnrolError> {
    let (address, bytes) = device_request(&e, request).await?;
    let a: Activation = body(&bytes)?;
    Ok(json_response(StatusCode::CREATED, &e.limited(&address, e.activate(&a, now())).await?))
}

/// The RA API (officers only) and the devices' activation endpoints.
pub fn router(enrolment: Arc<Enrolment>) -> Router {
    Router::new()
        .route("/ra/citizens", post(register))
        .route("/ra/enrolments", post(enrol))
        .route("/ra/smart-ids/{national_id}/{action}", post(status))
        .route("/smart-id/activation/identity", post(identity))
        .route("/smart-id/activation", post(activate))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(enrolment)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal<T: serde::de::DeserializeOwned>(json: &str) -> String {
        match body::<T>(json.as_bytes()) {
            Ok(_) => panic!("{json} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_refused_field_is_named_by_its_path() {
        let citizen = |field: &str| {
            format!(
                r#"{{"citizen":{{"national_id":"9861234567","given_name":{{"ar":"ليلى","en":"Layla"}},"family_name":{{"ar":"حداد","en":"Haddad"}}{field}}},"password":"a good long password"}}"#
            )
        };
        assert!(body::<CitizenBody>(citizen("").as_bytes()).is_ok());
        assert_eq!(refusal::<CitizenBody>(&citizen(r#","birthdate":"1990-02-30""#)), "citizen.birthdate: 1990-02-30 is not a day of the calendar");
        assert_eq!(
            refusal::<CitizenBody>(&citizen(r#","phone_number":"call me""#)),
            "citizen.phone_number: \"call me\" is not a phone number: + and 7 to 15 digits, such as +962790000000"
        );
        assert_eq!(refusal::<EnrolBody>(r#"{"national_id":"98-61","custody":"software"}"#), "national_id: a national id is 5 to 20 digits (0-9)");
        assert!(refusal::<EnrolBody>(r#"{"national_id":"9861234567","custody":"software","x":1}"#).contains("unknown field `x`"));
        assert!(refusal::<EnrolBody>(r#"{"national_id":"9861234567","custody":"software"} trailing"#).starts_with("the body is not JSON: trailing characters"));
        assert!(refusal::<EnrolBody>("{").starts_with("the body is not JSON: EOF"));
    }
}
