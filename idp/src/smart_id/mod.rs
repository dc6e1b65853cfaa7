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
//!
//! This module is the flow (sessions, the device's requests and answers, the browser's
//! polls); [`verifier`] decides answers and [`ocsp`] is the revocation source.

use std::time::Duration;

use aws_lc_rs::digest;
use hsm_shim::SignatureAlgorithm;

use policies::NationalId;

use crate::IdpError;
use crate::keyspace;
use crate::login::{Browser, LoginStep};
use crate::oauth::{ErrorCode, OAuthError};
use crate::provider::Provider;
use crate::throttle::{Action, Verdict};

pub mod ocsp;
pub mod verifier;

pub use ocsp::{OcspClient, RevocationSource, Status};
pub use verifier::{Refusal, Verified, Verifier};

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

/// A request waiting on a citizen's device: a login (PIN1, the authentication key) or a
/// signature (PIN2, the signing key). The JSON says which in `kind`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeviceRequest {
    /// A login at a service.
    Login(Pending),
    /// A signature of a document.
    Sign(crate::signing::SigningPending),
    /// Signatures of hashes a signing tool sent through the CSC API (PIN2, the signing key).
    SignHashes(crate::csc::HashSigningPending),
}

impl DeviceRequest {
    /// The session it belongs to.
    pub fn session(&self) -> &str {
        match self {
            DeviceRequest::Login(p) => &p.session,
            DeviceRequest::Sign(p) => &p.session,
            DeviceRequest::SignHashes(p) => &p.session,
        }
    }

    /// The PIN it needs, and so the key: PIN1 unlocks the authentication key, PIN2 the
    /// signing key.
    pub fn pin(&self) -> &'static str {
        match self {
            DeviceRequest::Login(_) => "PIN1",
            DeviceRequest::Sign(_) | DeviceRequest::SignHashes(_) => "PIN2",
        }
    }

    /// The service that asks.
    pub fn service(&self) -> &policies::Localized {
        match self {
            DeviceRequest::Login(p) => &p.service,
            DeviceRequest::Sign(p) => &p.service,
            DeviceRequest::SignHashes(p) => &p.service,
        }
    }
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
pub const DEFAULT_LIMITS: (u64, u64) = (crate::throttle::SMART_ID_CITIZEN, crate::throttle::SMART_ID_ADDRESS);

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
        let bytes = serde_json::to_vec(s).map_err(|source| IdpError::Record { what: "smart-ID session", source })?;
        self.ephemeral.put(&keyspace::smart_id_session(id), &bytes, ttl).await?;
        Ok(())
    }

    async fn smart_id_session(&self, id: &str) -> Result<Option<Session>, IdpError> {
        if id.len() != 43 {
            return Ok(None);
        }
        match self.ephemeral.get(&keyspace::smart_id_session(id)).await? {
            Some(b) => Ok(Some(serde_json::from_slice(&b).map_err(|source| IdpError::Record { what: "smart-ID session", source })?)),
            None => Ok(None),
        }
    }

    /// Opens a smart-ID session for the citizen of a login transaction; returns the session
    /// id and the verification code the page shows. A national id without a smart-ID gets a
    /// session too, which no device will ever answer: the page cannot tell who has one.
    pub async fn start_smart_id(&self, tx: &str, national_id: &NationalId, browser: &Browser<'_>, now: i64) -> Result<(String, String), OAuthError> {
        let national_id = national_id.as_str();
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
