//! Logging in: the login transaction a request waits in, the password and one-time-code
//! step, the methods that reach a level, and what a successful login does to the SSO session.

use std::sync::Arc;
use std::time::Duration;

use policies::AssuranceLevel;
use policies::NationalId;
use serde::{Deserialize, Serialize};
use store::CitizenRecord;

use crate::IdpError;
use crate::authorize::{AuthorizationRequest, Next, Prompt};
use crate::credentials::{Password, TotpSecret};
use crate::keyspace;
use crate::metrics::Counters;
use crate::oauth::{ErrorCode, OAuthError};
use crate::provider::{Provider, random_token};
use crate::session::{LiveSession, Session};
use crate::throttle::{Action, Reservation, Verdict};

/// A login transaction: the request being served, bound to the browser that started it.
#[derive(Clone, Serialize, Deserialize)]
pub struct Transaction {
    /// The request.
    pub request: AuthorizationRequest,
    /// The anti-CSRF token every form of this transaction carries.
    pub csrf: String,
    /// The national id whose password is proven (at the password step, or by the session
    /// being stepped up), while the second factor is asked.
    #[serde(default)]
    pub pending_citizen: Option<String>,
    /// Whether the password is proven by a live session (a step-up) rather than in this
    /// transaction: that session must still be alive when the second factor arrives.
    #[serde(default)]
    pub step_up: bool,
    /// Whether this transaction asks for consent (a login transaction cannot be answered on
    /// the consent page).
    #[serde(default)]
    pub consent: bool,
}

/// What the browser brought to a login attempt.
#[derive(Clone, Copy, Default)]
pub struct Browser<'a> {
    /// Its address (for the per-address limit).
    pub address: &'a str,
    /// Its SSO session cookie, if any (a step-up continues that session).
    pub session: Option<&'a str>,
    /// Its device cookie, if any ([`crate::throttle`]).
    pub device: Option<&'a str>,
}

/// Why a login attempt failed, as the page tells the citizen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginFailure {
    /// Wrong national id or password (never which).
    BadCredentials,
    /// The one-time code is wrong or spent.
    BadCode,
    /// Too many failures: try again later.
    Locked,
    /// The server has more password checks waiting than it takes: try again in a minute
    /// (counts against nobody).
    Busy,
}

/// What a login step produced.
pub enum LoginStep {
    /// The password was right; the one-time code is needed for the level.
    NeedCode,
    /// Failed.
    Failed(LoginFailure),
    /// Logged in: the new session, where the request goes next, and the device cookie
    /// that marks this browser as the citizen's own ([`crate::throttle`]).
    Done {
        /// The SSO session.
        session: LiveSession,
        /// Where the request goes next.
        next: Next,
        /// The new device cookie's value.
        device_cookie: String,
    },
    /// The citizen cannot reach the level: back to the client with the error.
    Refused(String),
}

// Cookies and anti-CSRF tokens are secrets: `Debug` output names them without their values.

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("request", &self.request)
            .field("csrf", &"<redacted>")
            .field("pending_citizen", &self.pending_citizen)
            .field("step_up", &self.step_up)
            .field("consent", &self.consent)
            .finish()
    }
}

impl std::fmt::Debug for Browser<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |c: Option<&str>| c.map(|_| "<redacted>");
        f.debug_struct("Browser").field("address", &self.address).field("session", &shown(self.session)).field("device", &shown(self.device)).finish()
    }
}

impl std::fmt::Debug for LoginStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoginStep::NeedCode => f.write_str("NeedCode"),
            LoginStep::Failed(why) => f.debug_tuple("Failed").field(why).finish(),
            LoginStep::Done { session, next, .. } => {
                f.debug_struct("Done").field("session", session).field("next", next).field("device_cookie", &"<redacted>").finish()
            }
            LoginStep::Refused(url) => f.debug_tuple("Refused").field(url).finish(),
        }
    }
}

impl Provider {
    pub(crate) async fn start_transaction_for(
        &self,
        request: AuthorizationRequest,
        pending_citizen: Option<String>,
        consent: bool,
    ) -> Result<String, IdpError> {
        let tx = random_token()?;
        let step_up = pending_citizen.is_some();
        let t = Transaction { request, csrf: random_token()?, pending_citizen, step_up, consent };
        self.put_transaction(&tx, &t).await?;
        Ok(tx)
    }

    pub(crate) async fn put_transaction(&self, tx: &str, t: &Transaction) -> Result<(), IdpError> {
        let bytes = serde_json::to_vec(t).map_err(|source| IdpError::Record { what: "login transaction", source })?;
        self.ephemeral.put(&keyspace::transaction(tx), &bytes, self.settings.login_timeout).await?;
        Ok(())
    }

    /// A login transaction, if it has not expired.
    pub async fn transaction(&self, tx: &str) -> Result<Option<Transaction>, IdpError> {
        if tx.len() != 43 {
            return Ok(None);
        }
        match self.ephemeral.get(&keyspace::transaction(tx)).await? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes).map_err(|source| IdpError::Record { what: "login transaction", source })?)),
            None => Ok(None),
        }
    }

    /// The methods (by id) that reach `level` and that the citizen can use, weakest first.
    pub(crate) fn methods_reaching(&self, level: &AssuranceLevel, has_totp: bool) -> Vec<&policies::Method> {
        self.policies
            .methods()
            .iter()
            .filter(|m| m.level >= *level)
            .filter(|m| match m.id.as_str() {
                "password" => true,
                "password-totp" => has_totp,
                _ => false,
            })
            .collect()
    }

    /// Whether a password method (with or without the one-time code) reaches the level the
    /// request needs.
    pub fn password_reaches(&self, request: &AuthorizationRequest) -> bool {
        let Some(level) = self.policies.level_named(&request.level) else { return false };
        self.policies.methods().iter().any(|m| matches!(m.id.as_str(), "password" | "password-totp") && m.level >= level.level)
    }

    /// Whether the page should ask for the one-time code together with the password: the
    /// level needs it and the password alone would not do.
    pub fn level_needs_code(&self, request: &AuthorizationRequest) -> bool {
        let Some(level) = self.policies.level_named(&request.level) else { return false };
        !self.policies.methods().iter().any(|m| m.id == "password" && m.level >= level.level)
    }

    /// A login attempt on a transaction: the password (and, when the level needs it, the
    /// one-time code). The attempt is counted before it is checked ([`crate::throttle`]);
    /// past the limits it is refused unchecked.
    pub async fn login(
        &self,
        tx: &str,
        national_id: &NationalId,
        password: &str,
        code: Option<&str>,
        browser: &Browser<'_>,
        now: i64,
    ) -> Result<LoginStep, OAuthError> {
        let national_id = national_id.as_str();
        let Some(mut t) = self.transaction(tx).await? else { return Err(OAuthError::invalid_request("the login has expired; start again")) };
        // The second step of a login whose password step passed in this transaction (which
        // is bound to this browser) asks for the code only.
        let password_done = t.pending_citizen.as_deref() == Some(national_id) && password.is_empty();
        // A place for the password check, before the attempt is counted: a login refused
        // for the server's load is not the citizen's failure.
        let admitted = match password_done {
            true => None,
            false => match self.hashing.enter().await {
                Some(admitted) => Some(admitted),
                None => {
                    Counters::count(&self.counters.logins_shed);
                    tracing::warn!(national_id, "login refused unchecked: the password checks queue is full");
                    return Ok(LoginStep::Failed(LoginFailure::Busy));
                }
            },
        };
        let reservation = match self.throttle.reserve(self.ephemeral.as_ref(), Action::Password, national_id, browser.address, browser.device).await? {
            Verdict::Allowed(r) => r,
            Verdict::Blocked => {
                Counters::count(&self.counters.login_failures);
                tracing::warn!(target: "audit", event = "login.blocked", national_id, client = t.request.client_id.as_str(), "login refused: locked out");
                return Ok(LoginStep::Failed(LoginFailure::Locked));
            }
        };
        let client_id = t.request.client_id.clone();
        let client = client_id.as_str();
        let fail = |why: LoginFailure, reservation: Reservation| async move {
            let n = reservation.count();
            let locked = reservation.failed(self.ephemeral.as_ref()).await?;
            Counters::count(&self.counters.login_failures);
            tracing::warn!(target: "audit", event = "login.failure", national_id, client, reason = ?why, attempts = n, locked, "login failed");
            // Progressive delay: each attempt on the citizen slows the next answer.
            tokio::time::sleep(Duration::from_millis(200 * n.min(10))).await;
            Ok::<LoginStep, OAuthError>(LoginStep::Failed(if locked { LoginFailure::Locked } else { why }))
        };
        let citizen = self.durable.citizen(national_id).await?;
        if password_done && t.step_up {
            let live = self.session(browser.session, now).await?;
            if live.is_none_or(|s| citizen.as_ref().is_none_or(|c| c.id != s.session.citizen_id)) {
                return Err(OAuthError::new(ErrorCode::LoginRequired, "the session being stepped up has ended; start again"));
            }
        }
        if !password_done {
            let password = match Password::new(password.to_owned()) {
                Ok(p) => p,
                Err(_) => return fail(LoginFailure::BadCredentials, reservation).await,
            };
            let stored = citizen.as_ref().map(|c| c.password_hash.clone());
            // Argon2id takes tens of milliseconds and 19 MiB: off the async workers, and no
            // more at once than there are cores (`admitted`, crate::admission).
            let hasher = Arc::clone(&self.hasher);
            let matches = tokio::task::spawn_blocking(move || hasher.verify(&password, stored.as_deref()));
            let matches = matches.await.map_err(OAuthError::server)??;
            drop(admitted);
            if !matches {
                return fail(LoginFailure::BadCredentials, reservation).await;
            }
        }
        let Some(citizen) = citizen else { return fail(LoginFailure::BadCredentials, reservation).await };

        let required = self.level(&t.request.level)?.level.clone();
        let totp = match &citizen.totp_secret {
            Some(hex_secret) => Some(TotpSecret::from_bytes(hex::decode(hex_secret).map_err(|_| IdpError::Corrupt("TOTP secret".into()))?)?),
            None => None,
        };
        let methods = self.methods_reaching(&required, totp.is_some());
        let Some(method) = methods.first() else {
            tracing::warn!(target: "audit", event = "login.insufficient", citizen = citizen.id, level = %required, "no method of this citizen reaches the level");
            self.ephemeral.delete(&keyspace::transaction(tx)).await?;
            let e = OAuthError::new(
                ErrorCode::UnmetAuthenticationRequirements,
                format!("the citizen has no login method that reaches the level {required} this request requires"),
            );
            return Ok(LoginStep::Refused(self.error_redirect(&t.request.redirect_uri, &e, t.request.state.as_deref())));
        };
        if method.id == "password-totp" {
            let (Some(totp), Some(code)) = (&totp, code) else {
                // The password was right, but the count starts again only after the code:
                // knowing the password must not buy more guesses at the code.
                reservation.keep();
                t.pending_citizen = Some(national_id.to_owned());
                self.put_transaction(tx, &t).await?;
                return Ok(LoginStep::NeedCode);
            };
            if !totp.verify_once(self.ephemeral.as_ref(), &citizen.id, code.trim(), now as u64).await? {
                return fail(LoginFailure::BadCode, reservation).await;
            }
        }
        reservation.succeeded(self.ephemeral.as_ref()).await?;
        let method = (*method).clone();
        self.complete_login(tx, t, &citizen, &method, browser.session, now).await
    }

    /// A successful login with `method`: the SSO session (a new cookie; a step-up of the
    /// same citizen keeps the session's sid, start and clients, so that logout still reaches
    /// them all), the transaction spent, and where the request goes next.
    pub(crate) async fn complete_login(
        &self,
        tx: &str,
        t: Transaction,
        citizen: &CitizenRecord,
        method: &policies::Method,
        cookie: Option<&str>,
        now: i64,
    ) -> Result<LoginStep, OAuthError> {
        Counters::count(&self.counters.logins);
        let previous = self.session(cookie, now).await?.filter(|s| s.session.citizen_id == citizen.id);
        let client = t.request.client_id.as_str();
        match previous.as_ref().filter(|_| t.step_up) {
            Some(p) => {
                tracing::info!(target: "audit", event = "login.step_up", citizen = citizen.id, client, method = method.id, from = %p.session.level, level = %method.level, "citizen stepped up")
            }
            None => {
                tracing::info!(target: "audit", event = "login.success", citizen = citizen.id, client, method = method.id, level = %method.level, "citizen logged in")
            }
        }
        let (sid, started, clients) = match &previous {
            Some(p) => {
                self.ephemeral.delete(&keyspace::session(&p.id)).await?;
                (p.session.sid.clone(), p.session.started, p.session.clients.clone())
            }
            None => (random_token()?[..22].to_owned(), now, Vec::new()),
        };
        let session = LiveSession {
            id: random_token()?,
            session: Session {
                citizen_id: citizen.id.clone(),
                level: method.level.to_name(),
                methods: vec![method.id.clone()],
                auth_time: now,
                started,
                clients,
                sid,
            },
        };
        self.save_session(&session, now).await?;
        self.ephemeral.delete(&keyspace::transaction(tx)).await?;
        let client = self.client(&t.request.client_id).await?.ok_or_else(|| OAuthError::invalid_request("the client has gone"))?;
        let mut request = t.request;
        request.prompt = Prompt { none: false, login: false, consent: request.prompt.consent };
        request.max_age = None;
        let next = match self.consent_or_code(&client, request.clone(), session.clone(), now).await {
            Ok(next) => next,
            Err(e) => Next::Redirect(self.error_redirect(&request.redirect_uri, &e, request.state.as_deref())),
        };
        let device_cookie = self.throttle.device_cookie(&citizen.national_id)?;
        Ok(LoginStep::Done { session, next, device_cookie })
    }
}
