//! The OpenID Connect provider's protocol logic, without HTTP: authorization requests,
//! login, consent, codes, tokens, userinfo, revocation, introspection and logout.
//!
//! Short-lived state lives in the ephemeral store, so that every replica sharing it is the
//! same provider: `sso:` sessions, `tx:` login transactions, `code:` authorization codes,
//! `at:` access tokens, `jti:` spent client assertions, `fail:` login-failure counters.
//! Everything durable (citizens, clients, consents, refresh tokens) is in the durable store.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use policies::{AssuranceLevel, Policies};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use store::ephemeral::EphemeralStore;
use store::{CitizenRecord, ConsentRecord, DurableStore, RefreshFamily, Rotation};

use crate::cache::ShortCache;
use crate::citizens::{self, Lang, Profile};
use crate::clients::{self, Client};
use crate::credentials::{Password, PasswordHasher, TotpSecret};
use crate::keys::SigningKeys;
use crate::metrics::Counters;
use crate::oauth::{ErrorCode, OAuthError, Params};
use crate::refresh::{self, RefreshTokens};
use crate::{IdpError, Settings};

/// A random token: 256 bits, base64url.
pub fn random_token() -> Result<String, IdpError> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| IdpError::Crypto("random"))?;
    Ok(B64.encode(bytes))
}

/// The key under which a secret token is stored: its SHA-256, so that a read of the store
/// does not yield usable tokens.
pub(crate) fn hashed(prefix: &str, token: &str) -> String {
    format!("{prefix}:{}", B64.encode(sha256(token.as_bytes())))
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref().to_vec()
}

/// `at_hash` (OIDC Core 3.1.3.6): the left half of the access token's hash, with the hash
/// of the id_token's algorithm (SHA-512 for Ed25519, as the OpenID errata settle it).
fn at_hash(algorithm: hsm_shim::SignatureAlgorithm, access_token: &str) -> String {
    use aws_lc_rs::digest;
    let hash = match algorithm {
        hsm_shim::SignatureAlgorithm::Es384 => &digest::SHA384,
        hsm_shim::SignatureAlgorithm::EdDsa => &digest::SHA512,
        _ => &digest::SHA256,
    };
    let d = digest::digest(hash, access_token.as_bytes());
    B64.encode(&d.as_ref()[..d.as_ref().len() / 2])
}

/// What `prompt` asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    /// `none`: no page may be shown.
    pub none: bool,
    /// `login`: authenticate again.
    pub login: bool,
    /// `consent`: ask consent again.
    pub consent: bool,
}

/// Claims asked for by name with the `claims` parameter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimsRequest {
    /// Claims for the userinfo response.
    pub userinfo: Vec<String>,
    /// Claims for the id_token.
    pub id_token: Vec<String>,
}

/// A validated authorization request, kept while the citizen logs in and consents.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    /// The client.
    pub client_id: String,
    /// Its registered redirect URI, as sent.
    pub redirect_uri: String,
    /// Scopes granted (those asked for that the policy allows).
    pub scopes: Vec<String>,
    /// `state`, returned as sent.
    pub state: Option<String>,
    /// `nonce`, put in the id_token.
    pub nonce: Option<String>,
    /// PKCE S256 challenge.
    pub code_challenge: Option<String>,
    /// `prompt`.
    pub prompt: Prompt,
    /// `max_age` in seconds.
    pub max_age: Option<i64>,
    /// The level the login must reach (name).
    pub level: String,
    /// The `claims` parameter's named claims.
    pub claims: ClaimsRequest,
    /// Page languages, in order of preference (`ui_locales`).
    pub ui_locales: Vec<String>,
    /// Claim languages (`claims_locales`).
    pub claims_locales: Vec<String>,
    /// `login_hint`: the national id to pre-fill.
    pub login_hint: Option<String>,
    /// The `sub` of a valid `id_token_hint`.
    pub hint_sub: Option<String>,
}

impl AuthorizationRequest {
    /// The languages the pages should use, as [`Lang`]s.
    pub fn ui_langs(&self) -> Vec<Lang> {
        Lang::all_of(&self.ui_locales.join(" "))
    }
}

/// An SSO session, as kept in the ephemeral store (compact: one per citizen logged in).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The citizen's opaque id.
    #[serde(rename = "c")]
    pub citizen_id: String,
    /// Level reached.
    #[serde(rename = "l")]
    pub level: String,
    /// Methods used (ids from the policy files).
    #[serde(rename = "m")]
    pub methods: Vec<String>,
    /// When the citizen last authenticated (Unix seconds).
    #[serde(rename = "t")]
    pub auth_time: i64,
    /// When the session began.
    #[serde(rename = "s")]
    pub started: i64,
    /// Clients that received tokens in this session.
    #[serde(rename = "r", default)]
    pub clients: Vec<String>,
    /// The `sid` claim: stable for the session's life, while the cookie that names the
    /// session changes at every login and step-up.
    #[serde(rename = "i")]
    pub sid: String,
}

/// A session and the secret that names it (the cookie value).
#[derive(Clone, Debug)]
pub struct LiveSession {
    /// The cookie value.
    pub id: String,
    /// The session.
    pub session: Session,
}

impl LiveSession {
    /// The `sid` claim (never the cookie itself).
    pub fn sid(&self) -> String {
        self.session.sid.clone()
    }
}

/// A login transaction: the request being served, bound to the browser that started it.
#[derive(Clone, Debug, Serialize, Deserialize)]
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

/// What an authorization request leads to.
#[derive(Debug)]
pub enum Next {
    /// Back to the client (a code, or an error it must hear about).
    Redirect(String),
    /// The citizen must log in (or step up) first.
    Login {
        /// The transaction id.
        tx: String,
    },
    /// The citizen must consent (or be informed).
    Consent {
        /// The transaction id.
        tx: String,
    },
}

/// An authorization request that cannot go back to the client: the provider shows it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PageError(pub String);

/// Why a login attempt failed, as the page tells the citizen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginFailure {
    /// Wrong national id or password (never which).
    BadCredentials,
    /// The one-time code is wrong or spent.
    BadCode,
    /// Too many failures: try again later.
    Locked,
}

/// What a login step produced.
#[derive(Debug)]
pub enum LoginStep {
    /// The password was right; the one-time code is needed for the level.
    NeedCode,
    /// Failed.
    Failed(LoginFailure),
    /// Logged in: the new session, and where the request goes next.
    Done(LiveSession, Next),
    /// The citizen cannot reach the level: back to the client with the error.
    Refused(String),
}

/// A code, as stored until it is exchanged.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct CodeGrant {
    request: AuthorizationRequest,
    citizen_id: String,
    level: String,
    amr: Vec<String>,
    auth_time: i64,
    sid: String,
    /// Tokens issued from this code share this family (refresh tokens, access tokens).
    family: String,
}

/// What a refresh token or access token grants (stored as the token's document).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Grant {
    scopes: Vec<String>,
    claims: ClaimsRequest,
    claims_locales: Vec<String>,
    level: String,
    amr: Vec<String>,
    auth_time: i64,
    sid: String,
    nonce: Option<String>,
}

/// An access token's record.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct AccessGrant {
    client_id: String,
    citizen_id: String,
    family: String,
    expires_at: i64,
    grant: Grant,
}

/// The OpenID Connect provider.
pub struct Provider {
    pub(crate) settings: Settings,
    pub(crate) policies: Arc<Policies>,
    pub(crate) durable: Arc<dyn DurableStore>,
    pub(crate) ephemeral: Arc<dyn EphemeralStore>,
    pub(crate) keys: SigningKeys,
    hasher: Arc<PasswordHasher>,
    refresh_tokens: RefreshTokens,
    hashing: tokio::sync::Semaphore,
    counters: Counters,
    clients: ShortCache<Client>,
    citizens: ShortCache<CitizenRecord>,
    account: Option<Arc<Client>>,
    http: reqwest::Client,
    pub(crate) smart_id: Option<crate::smart_id::SmartId>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider").field("issuer", &self.settings.issuer).finish_non_exhaustive()
    }
}

/// Allowed failures per account, and per address, within [`FAILURE_WINDOW`].
const ACCOUNT_FAILURES: u64 = 5;
const ADDRESS_FAILURES: u64 = 50;
const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The provider's own client: the citizen's account page (`/account`), which logs in
/// through the ordinary authorization flow and then uses the SSO session itself.
pub const ACCOUNT_CLIENT: &str = "hawiya-account";

fn account_client(issuer: &str, policies: &Policies) -> Option<Client> {
    let registration = clients::Registration {
        redirect_uris: vec![format!("{issuer}/account")],
        post_logout_redirect_uris: Vec::new(),
        backchannel_logout_uri: None,
        token_endpoint_auth_method: clients::AuthMethod::None,
        client_secret_sha256: None,
        jwks: None,
        jwks_uri: None,
        sector_identifier_uri: None,
        id_token_signed_response_alg: "ES256".into(),
        name: None,
    };
    // Its one redirect URI is the issuer's own page: no registration checks to pass.
    let service = policies::Service {
        client_id: ACCOUNT_CLIENT.into(),
        name: policies::Localized { ar: "حسابي في هوية".into(), en: "My Hawiya account".into() },
        min_level: policies.levels().first()?.level.clone(),
        scopes: vec!["openid".into()],
        claims: vec!["sub".into()],
        national_id: false,
        consent_required: false,
        public_subject: false,
        require_pkce: true,
        registration: None,
    };
    let sector = url::Url::parse(issuer).ok()?.host_str()?.to_owned();
    Some(Client { id: ACCOUNT_CLIENT.into(), registration, service, id_token_alg: hsm_shim::SignatureAlgorithm::Es256, sector })
}

/// How long a client's registration, or a citizen's record on the token and userinfo
/// endpoints, is used as read before it is read again.
pub const RECORD_CACHE: Duration = Duration::from_secs(5);

impl Provider {
    /// A provider on its stores and keys.
    pub fn new(
        settings: Settings,
        policies: Arc<Policies>,
        durable: Arc<dyn DurableStore>,
        ephemeral: Arc<dyn EphemeralStore>,
        keys: SigningKeys,
    ) -> Result<Self, IdpError> {
        let http = crate::backchannel::http_client()?;
        let refresh_tokens = RefreshTokens::new(&settings.secret);
        let account = account_client(&settings.issuer, &policies).map(Arc::new);
        Ok(Provider {
            settings,
            policies,
            durable,
            ephemeral,
            keys,
            hasher: Arc::new(PasswordHasher::new()?),
            refresh_tokens,
            hashing: tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, usize::from)),
            counters: Counters::default(),
            clients: ShortCache::new(RECORD_CACHE, 10_000),
            citizens: ShortCache::new(RECORD_CACHE, 100_000),
            account,
            http,
            smart_id: None,
        })
    }

    /// Enables smart-ID logins.
    pub fn with_smart_id(mut self, smart_id: crate::smart_id::SmartId) -> Self {
        self.smart_id = Some(smart_id);
        self
    }

    /// The issuer identifier.
    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }

    /// The policies the provider applies.
    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    /// The password hasher (for registering citizens).
    pub fn hasher(&self) -> &PasswordHasher {
        &self.hasher
    }

    /// The consents the citizen of an SSO session has given, with the clients they were
    /// given to (`None` for a client removed since); `None` without a live session.
    pub async fn account_consents(&self, cookie: Option<&str>, now: i64) -> Result<Option<Vec<(ConsentRecord, Option<Arc<Client>>)>>, OAuthError> {
        let Some(live) = self.session(cookie, now).await? else { return Ok(None) };
        let mut out = Vec::new();
        for consent in self.durable.consents_of(&live.session.citizen_id).await? {
            let client = self.client(&consent.client_id).await.ok().flatten();
            out.push((consent, client));
        }
        Ok(Some(out))
    }

    /// The citizen of an SSO session withdraws a consent: the client must ask again, and
    /// the refresh tokens it holds for the citizen stop working. `false` without a live
    /// session or without such a consent.
    pub async fn withdraw_consent(&self, cookie: Option<&str>, client_id: &str, now: i64) -> Result<bool, OAuthError> {
        let Some(live) = self.session(cookie, now).await? else { return Ok(false) };
        let withdrawn = self.durable.revoke_consent(&live.session.citizen_id, client_id).await?;
        if withdrawn {
            tracing::info!(target: "audit", event = "consent.withdrawn", citizen = live.session.citizen_id, client = client_id, "the citizen withdrew a consent");
        }
        Ok(withdrawn)
    }

    /// Spends a code nobody will exchange (the account page's own login).
    pub async fn discard_code(&self, code: &str) -> Result<(), OAuthError> {
        self.ephemeral.delete(&hashed("code", code)).await?;
        Ok(())
    }

    /// Deletes the refresh-token families that have expired (run now and then by the
    /// server); returns how many.
    pub async fn purge_expired(&self, now: i64) -> Result<u64, IdpError> {
        Ok(self.durable.purge_refresh_families(now).await?)
    }

    /// The provider's counters in Prometheus' text format.
    pub fn metrics(&self) -> String {
        crate::metrics::render(&self.counters, self.hasher.checks())
    }

    /// The signing keys.
    pub fn keys(&self) -> &SigningKeys {
        &self.keys
    }

    /// The client with that id, if any: declared in its service policy file, or registered
    /// with `hawiya client add`. Registrations are read and checked once per
    /// [`RECORD_CACHE`]: a client removed or changed by another process takes effect within
    /// that time.
    pub async fn client(&self, id: &str) -> Result<Option<Arc<Client>>, IdpError> {
        if id == ACCOUNT_CLIENT {
            return Ok(self.account.clone());
        }
        self.clients
            .get_or_read(id, || async {
                if let Some(declared) = self.policies.service(id).and_then(|s| Client::declared(s, &self.policies)) {
                    return declared.map(Some);
                }
                self.durable.client(id).await?.map(|r| Client::from_record(&r, &self.policies)).transpose()
            })
            .await
    }

    /// The citizen a token was issued for, read at most once per [`RECORD_CACHE`].
    async fn token_citizen(&self, id: &str) -> Result<Option<Arc<CitizenRecord>>, IdpError> {
        self.citizens.get_or_read(id, || async { Ok(self.durable.citizen_by_id(id).await?) }).await
    }

    pub(crate) fn level(&self, name: &str) -> Result<&policies::Level, IdpError> {
        self.policies.level(name).ok_or_else(|| IdpError::Corrupt(format!("unknown level {name}")))
    }

    /// The SSO session a cookie names, if it is still alive (idle and absolute limits of its
    /// level); refreshes its idle timer.
    pub async fn session(&self, cookie: Option<&str>, now: i64) -> Result<Option<LiveSession>, IdpError> {
        let Some(id) = cookie.filter(|c| c.len() == 43) else { return Ok(None) };
        let key = hashed("sso", id);
        let Some(bytes) = self.ephemeral.get(&key).await? else { return Ok(None) };
        let session: Session = serde_json::from_slice(&bytes).map_err(|e| IdpError::Corrupt(format!("session: {e}")))?;
        let level = self.level(&session.level)?;
        if now >= session.started + level.session_max.as_secs() as i64 {
            self.ephemeral.delete(&key).await?;
            return Ok(None);
        }
        self.ephemeral.touch(&key, self.session_ttl(&session, now)?).await?;
        Ok(Some(LiveSession { id: id.to_owned(), session }))
    }

    fn session_ttl(&self, session: &Session, now: i64) -> Result<Duration, IdpError> {
        let level = self.level(&session.level)?;
        let left = (session.started + level.session_max.as_secs() as i64 - now).max(1) as u64;
        Ok(level.session_idle.min(Duration::from_secs(left)))
    }

    async fn save_session(&self, live: &LiveSession, now: i64) -> Result<(), IdpError> {
        let bytes = serde_json::to_vec(&live.session).map_err(|e| IdpError::Corrupt(e.to_string()))?;
        self.ephemeral.put(&hashed("sso", &live.id), &bytes, self.session_ttl(&live.session, now)?).await?;
        Ok(())
    }

    /// Checks an authorization request (OIDC Core 3.1.2.1-2) and decides what happens next.
    pub async fn authorize(&self, mut params: Params, cookie: Option<&str>, now: i64) -> Result<Next, PageError> {
        let page = |e: String| PageError(e);
        let client_id = params.get("client_id").ok_or_else(|| page("The request names no client (client_id is missing).".into()))?.to_owned();
        let client = self.client(&client_id).await.map_err(|e| page(format!("The client cannot be loaded: {e}")))?;
        let client = client.ok_or_else(|| page(format!("Unknown client {client_id:?}.")))?;
        // A signed request object (OIDC Core 6.1) replaces the parameters it carries, the
        // redirect URI included, so it is read before anything is checked.
        if let Some(object) = params.take("request") {
            match self.request_object(&client, &object, &params, now).await {
                Ok(merged) => params = merged,
                Err(e) => {
                    let registered = params.get("redirect_uri").filter(|r| client.registration.redirect_uris.iter().any(|u| u == r));
                    return match registered {
                        Some(r) => Ok(Next::Redirect(self.error_redirect(r, &e, params.get("state")))),
                        None => Err(page(format!("The request object was refused: {}", e.description))),
                    };
                }
            }
        }
        let redirect_uri = params.take("redirect_uri").ok_or_else(|| page("The request has no redirect_uri.".into()))?;
        if !client.registration.redirect_uris.contains(&redirect_uri) {
            tracing::warn!(client_id, redirect_uri, "authorization request with an unregistered redirect URI");
            return Err(page("The redirect_uri is not registered for this client; the provider will not send you there.".into()));
        }
        // From here on errors go back to the client.
        let state = params.get("state").map(str::to_owned);
        let back = |e: OAuthError| Next::Redirect(self.error_redirect(&redirect_uri, &e, state.as_deref()));
        match self.check_request(&client, &redirect_uri, params).await {
            Ok(request) => match self.proceed(&client, request, cookie, now).await {
                Ok(next) => Ok(next),
                Err(e) => Ok(back(e)),
            },
            Err(e) => Ok(back(e)),
        }
    }

    async fn check_request(&self, client: &Client, redirect_uri: &str, params: Params) -> Result<AuthorizationRequest, OAuthError> {
        if params.get("request_uri").is_some() {
            return Err(OAuthError::new(ErrorCode::RequestUriNotSupported, "request_uri is not supported; send the request object by value (request)"));
        }
        match params.get("response_type") {
            None => return Err(OAuthError::invalid_request("missing parameter response_type")),
            Some("code") => {}
            Some(other) => return Err(OAuthError::new(ErrorCode::UnsupportedResponseType, format!("response_type {other} (only code)"))),
        }
        if params.get("response_mode").is_some_and(|m| m != "query") {
            return Err(OAuthError::invalid_request("only response_mode=query is supported"));
        }
        let asked: Vec<&str> = params.require("scope")?.split(' ').filter(|s| !s.is_empty()).collect();
        if !asked.contains(&"openid") {
            return Err(OAuthError::new(ErrorCode::InvalidScope, "the scope must include openid"));
        }
        // Scopes outside the service's policy are not granted (RFC 6749 3.3).
        let mut scopes: Vec<String> = Vec::new();
        for s in asked {
            let allowed = s == "openid" || s == "offline_access" || client.service.scopes.iter().any(|a| a == s);
            if allowed && !scopes.iter().any(|x| x == s) {
                scopes.push(s.to_owned());
            }
        }
        let code_challenge = match (params.get("code_challenge"), params.get("code_challenge_method")) {
            (Some(c), Some("S256")) => {
                if c.len() != 43 || B64.decode(c).is_err() {
                    return Err(OAuthError::invalid_request("code_challenge must be a base64url SHA-256 (43 characters)"));
                }
                Some(c.to_owned())
            }
            (Some(_), None) | (Some(_), Some("plain")) => return Err(OAuthError::invalid_request("PKCE method plain is not allowed; use S256")),
            (Some(_), Some(m)) => return Err(OAuthError::invalid_request(format!("unknown code_challenge_method {m}"))),
            (None, Some(_)) => return Err(OAuthError::invalid_request("code_challenge_method without code_challenge")),
            (None, None) if client.requires_pkce() => return Err(OAuthError::invalid_request("this client must use PKCE (S256)")),
            (None, None) => None,
        };
        let mut prompt = Prompt::default();
        for p in params.get("prompt").unwrap_or_default().split(' ').filter(|s| !s.is_empty()) {
            match p {
                "none" => prompt.none = true,
                "login" => prompt.login = true,
                "consent" => prompt.consent = true,
                "select_account" => {}
                other => return Err(OAuthError::invalid_request(format!("unknown prompt value {other}"))),
            }
        }
        if prompt.none && (prompt.login || prompt.consent) {
            return Err(OAuthError::invalid_request("prompt=none cannot be combined with other values"));
        }
        let max_age = match params.get("max_age") {
            None => None,
            Some(m) => Some(m.parse::<u32>().map_err(|_| OAuthError::invalid_request("max_age must be a non-negative integer"))? as i64),
        };
        if let Some(d) = params.get("display")
            && !["page", "popup", "touch", "wap"].contains(&d)
        {
            return Err(OAuthError::invalid_request(format!("unknown display value {d}")));
        }
        // The level: the service's minimum, raised by acr_values or an essential acr claim.
        let mut level = client.min_level().clone();
        let mut raise = |values: &[&str]| -> Result<(), OAuthError> {
            let known: Vec<&AssuranceLevel> = values.iter().filter_map(|v| self.policies.level_for_acr(v)).map(|l| &l.level).collect();
            // Any of the listed values satisfies the client: the lowest is required.
            match known.into_iter().min() {
                Some(l) if *l > level => level = l.clone(),
                Some(_) => {}
                None if values.is_empty() => {}
                None => return Err(OAuthError::invalid_request(format!("no known acr value among {}", values.join(" ")))),
            }
            Ok(())
        };
        if let Some(acr) = params.get("acr_values") {
            raise(&acr.split(' ').filter(|s| !s.is_empty()).collect::<Vec<_>>())?;
        }
        let mut claims = ClaimsRequest::default();
        if let Some(c) = params.get("claims") {
            let parsed: Value = serde_json::from_str(c).map_err(|_| OAuthError::invalid_request("claims is not valid JSON"))?;
            let parsed = parsed.as_object().ok_or_else(|| OAuthError::invalid_request("claims must be a JSON object"))?;
            for (target, list) in [("userinfo", &mut claims.userinfo), ("id_token", &mut claims.id_token)] {
                let Some(members) = parsed.get(target) else { continue };
                let members = members.as_object().ok_or_else(|| OAuthError::invalid_request(format!("claims.{target} must be an object")))?;
                for (name, spec) in members {
                    if name == "acr" {
                        let essential = spec.get("essential").and_then(Value::as_bool).unwrap_or(false);
                        let values: Vec<&str> = match (spec.get("value"), spec.get("values")) {
                            (Some(Value::String(v)), _) => vec![v.as_str()],
                            (_, Some(Value::Array(vs))) => vs.iter().filter_map(Value::as_str).collect(),
                            _ => vec![],
                        };
                        if essential {
                            raise(&values)?;
                        }
                    }
                    if self.releasable(client, name) && !list.contains(name) {
                        list.push(name.clone());
                    }
                }
            }
        }
        let hint_sub = match params.get("id_token_hint") {
            None => None,
            Some(hint) => {
                let claims = self.keys.verify_own(hint).await.map_err(|_| OAuthError::invalid_request("id_token_hint was not issued by this provider"))?;
                if claims.get("iss").and_then(Value::as_str) != Some(self.issuer()) {
                    return Err(OAuthError::invalid_request("id_token_hint was not issued by this provider"));
                }
                claims.get("sub").and_then(Value::as_str).map(str::to_owned)
            }
        };
        Ok(AuthorizationRequest {
            client_id: client.id.clone(),
            redirect_uri: redirect_uri.to_owned(),
            scopes,
            state: params.get("state").map(str::to_owned),
            nonce: params.get("nonce").map(str::to_owned),
            code_challenge,
            prompt,
            max_age,
            level: level.name().to_owned(),
            claims,
            ui_locales: params.get("ui_locales").map(|l| l.split(' ').map(str::to_owned).collect()).unwrap_or_default(),
            claims_locales: params.get("claims_locales").map(|l| l.split(' ').map(str::to_owned).collect()).unwrap_or_default(),
            login_hint: params.get("login_hint").map(str::to_owned),
            hint_sub,
        })
    }

    /// Verifies a request object with the client's registered keys and returns the request's
    /// parameters with the object's in place of the query's (OIDC Core 6.3).
    async fn request_object(&self, client: &Client, object: &str, query: &Params, now: i64) -> Result<Params, OAuthError> {
        let bad = |what: &str| OAuthError::new(ErrorCode::InvalidRequestObject, what.to_owned());
        if client.registration.jwks.is_none() && client.registration.jwks_uri.is_none() {
            return Err(bad("this client has no registered keys to sign request objects with"));
        }
        let jws = hsm_shim::jose::UnverifiedJws::parse(object).map_err(|_| bad("the request object is not a signed JWT (unsigned ones are refused)"))?;
        let keys = self.client_keys_verifying(client, |keys| clients::verifies_with(&jws, keys)).await?;
        if !clients::verifies_with(&jws, &keys) {
            return Err(bad("the request object's signature does not verify with the client's keys"));
        }
        let claims: Map<String, Value> = serde_json::from_slice(&jws.payload).map_err(|_| bad("the request object is not a JSON object"))?;
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        if text("iss").is_some_and(|i| i != client.id)
            || claims
                .get("aud")
                .is_some_and(|a| a.as_str() != Some(self.issuer()) && !a.as_array().is_some_and(|l| l.iter().any(|v| v.as_str() == Some(self.issuer()))))
        {
            return Err(bad("the request object's iss must be the client and its aud this issuer"));
        }
        if claims.get("exp").and_then(Value::as_i64).is_some_and(|exp| exp <= now) {
            return Err(bad("the request object has expired"));
        }
        for name in ["client_id", "response_type"] {
            if let (Some(inside), Some(outside)) = (text(name), query.get(name))
                && inside != outside
            {
                return Err(bad(&format!("{name} differs between the request object and the request")));
            }
        }
        let mut merged = query.clone();
        for (name, value) in &claims {
            if ["iss", "aud", "exp", "iat", "nbf", "jti", "request", "request_uri"].contains(&name.as_str()) {
                continue;
            }
            let value = match value {
                Value::String(s) => s.clone(),
                Value::Null => continue,
                other => other.to_string(),
            };
            merged.replace(name, value);
        }
        Ok(merged)
    }

    /// Whether the client's policy lets it receive `claim`.
    fn releasable(&self, client: &Client, claim: &str) -> bool {
        if claim == "national_id" {
            return client.service.national_id;
        }
        ["acr", "amr", "auth_time", "sid"].contains(&claim) || client.service.claims.iter().any(|c| c == claim)
    }

    /// After a valid request (or a login, or a consent): log in, consent, or issue the code.
    async fn proceed(&self, client: &Client, request: AuthorizationRequest, cookie: Option<&str>, now: i64) -> Result<Next, OAuthError> {
        let session = self.session(cookie, now).await?;
        let required = self.level(&request.level)?.level.clone();
        let needs_login = match &session {
            None => true,
            Some(s) => {
                let reached = self.level(&s.session.level)?.level.clone();
                let too_old = request.max_age.is_some_and(|m| now - s.session.auth_time > m);
                let other_subject = request.hint_sub.as_ref().is_some_and(|h| *h != self.subject(client, &s.session.citizen_id));
                request.prompt.login || too_old || reached < required || other_subject
            }
        };
        if needs_login {
            if request.prompt.none {
                let code = match &session {
                    Some(_) => ErrorCode::InteractionRequired,
                    None => ErrorCode::LoginRequired,
                };
                return Err(OAuthError::new(code, "the citizen must log in (or step up), and prompt=none forbids asking"));
            }
            // A live session of the same citizen below the level: step up, asking only for
            // what the stronger method adds.
            let step_up = match &session {
                Some(s) if !request.prompt.login && request.max_age.is_none_or(|m| now - s.session.auth_time <= m) => {
                    self.durable.citizen_by_id(&s.session.citizen_id).await?.map(|c| c.national_id)
                }
                _ => None,
            };
            let other_subject = match (&session, &request.hint_sub) {
                (Some(s), Some(h)) => *h != self.subject(client, &s.session.citizen_id),
                _ => false,
            };
            let pending = if other_subject { None } else { step_up };
            return Ok(Next::Login { tx: self.start_transaction_for(request, pending, false).await? });
        }
        let Some(session) = session else { return Err(OAuthError::server("session vanished")) };
        self.after_login(client, request, session, now).await
    }

    async fn after_login(&self, client: &Client, mut request: AuthorizationRequest, session: LiveSession, now: i64) -> Result<Next, OAuthError> {
        if client.service.consent_required || request.prompt.consent {
            let consented = self.consented(client, &request, &session.session.citizen_id).await?;
            if !consented || request.prompt.consent {
                if request.prompt.none {
                    return Err(OAuthError::new(ErrorCode::ConsentRequired, "the citizen must consent, and prompt=none forbids asking"));
                }
                // Asked once: a prompt=consent is answered by the page it leads to.
                request.prompt.login = false;
                return Ok(Next::Consent { tx: self.start_transaction_for(request, None, true).await? });
            }
        }
        self.issue_code(client, request, session, now).await
    }

    /// The claims a request would release (for the consent page and the record of it).
    pub fn released_claims(&self, client: &Client, request: &AuthorizationRequest) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let from_scopes = request.scopes.iter().flat_map(|s| citizens::scope_claims(s).iter().map(|c| c.to_string()));
        for claim in from_scopes.chain(request.claims.userinfo.iter().cloned()).chain(request.claims.id_token.iter().cloned()) {
            if citizens::SUPPORTED_CLAIMS.contains(&claim.as_str())
                && !["acr", "amr", "auth_time", "sid", "sub"].contains(&claim.as_str())
                && self.releasable(client, &claim)
                && !out.contains(&claim)
            {
                out.push(claim);
            }
        }
        out.sort();
        out
    }

    async fn consented(&self, client: &Client, request: &AuthorizationRequest, citizen_id: &str) -> Result<bool, OAuthError> {
        let Some(record) = self.durable.consent(citizen_id, &client.id).await? else { return Ok(false) };
        let granted: Vec<String> = serde_json::from_str(&record.grant).unwrap_or_default();
        Ok(self.released_claims(client, request).iter().all(|c| granted.contains(c)))
    }

    async fn start_transaction_for(&self, request: AuthorizationRequest, pending_citizen: Option<String>, consent: bool) -> Result<String, IdpError> {
        let tx = random_token()?;
        let step_up = pending_citizen.is_some();
        let t = Transaction { request, csrf: random_token()?, pending_citizen, step_up, consent };
        self.put_transaction(&tx, &t).await?;
        Ok(tx)
    }

    async fn put_transaction(&self, tx: &str, t: &Transaction) -> Result<(), IdpError> {
        let bytes = serde_json::to_vec(t).map_err(|e| IdpError::Corrupt(e.to_string()))?;
        self.ephemeral.put(&format!("tx:{tx}"), &bytes, self.settings.login_timeout).await?;
        Ok(())
    }

    /// A login transaction, if it has not expired.
    pub async fn transaction(&self, tx: &str) -> Result<Option<Transaction>, IdpError> {
        if tx.len() != 43 {
            return Ok(None);
        }
        match self.ephemeral.get(&format!("tx:{tx}")).await? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes).map_err(|e| IdpError::Corrupt(format!("transaction: {e}")))?)),
            None => Ok(None),
        }
    }

    /// The methods (by id) that reach `level` and that the citizen can use, weakest first.
    fn methods_reaching(&self, level: &AssuranceLevel, has_totp: bool) -> Vec<&policies::Method> {
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
        let Some(level) = self.policies.level(&request.level) else { return false };
        self.policies.methods().iter().any(|m| matches!(m.id.as_str(), "password" | "password-totp") && m.level >= level.level)
    }

    /// Whether the page should ask for the one-time code together with the password: the
    /// level needs it and the password alone would not do.
    pub fn level_needs_code(&self, request: &AuthorizationRequest) -> bool {
        let Some(level) = self.policies.level(&request.level) else { return false };
        !self.policies.methods().iter().any(|m| m.id == "password" && m.level >= level.level)
    }

    /// A login attempt on a transaction: the password (and, when the level needs it, the
    /// one-time code). Failures are counted per account and per address; past the limits the
    /// account or address is locked for the rest of the window.
    #[allow(clippy::too_many_arguments)]
    pub async fn login(
        &self,
        tx: &str,
        national_id: &str,
        password: &str,
        code: Option<&str>,
        address: &str,
        cookie: Option<&str>,
        now: i64,
    ) -> Result<LoginStep, OAuthError> {
        let Some(mut t) = self.transaction(tx).await? else { return Err(OAuthError::invalid_request("the login has expired; start again")) };
        let account_key = hashed("fail-account", national_id);
        let address_key = hashed("fail-address", address);
        let failures = |key: String| async move {
            Ok::<u64, OAuthError>(self.ephemeral.get(&key).await?.and_then(|b| String::from_utf8(b).ok()).and_then(|s| s.parse().ok()).unwrap_or(0))
        };
        if failures(account_key.clone()).await? >= ACCOUNT_FAILURES || failures(address_key.clone()).await? >= ADDRESS_FAILURES {
            Counters::count(&self.counters.login_failures);
            tracing::warn!(target: "audit", event = "login.locked", "login refused: too many failures");
            return Ok(LoginStep::Failed(LoginFailure::Locked));
        }
        let fail = |why: LoginFailure| {
            let (account_key, address_key) = (account_key.clone(), address_key.clone());
            async move {
                let n = self.ephemeral.increment(&account_key, FAILURE_WINDOW).await?;
                self.ephemeral.increment(&address_key, FAILURE_WINDOW).await?;
                Counters::count(&self.counters.login_failures);
                tracing::warn!(target: "audit", event = "login.failure", reason = ?why, failures = n, "login failed");
                // Progressive delay: each failure of the account slows the next answer.
                tokio::time::sleep(Duration::from_millis(200 * n.min(10))).await;
                Ok::<LoginStep, OAuthError>(LoginStep::Failed(if n >= ACCOUNT_FAILURES { LoginFailure::Locked } else { why }))
            }
        };
        let citizen = self.durable.citizen(national_id).await?;
        // The second step of a login whose password step passed in this transaction (which
        // is bound to this browser) asks for the code only.
        let password_done = t.pending_citizen.as_deref() == Some(national_id) && password.is_empty();
        if password_done && t.step_up {
            let live = self.session(cookie, now).await?;
            if live.is_none_or(|s| citizen.as_ref().is_none_or(|c| c.id != s.session.citizen_id)) {
                return Err(OAuthError::new(ErrorCode::LoginRequired, "the session being stepped up has ended; start again"));
            }
        }
        if !password_done {
            let password = match Password::new(password.to_owned()) {
                Ok(p) => p,
                Err(_) => return fail(LoginFailure::BadCredentials).await,
            };
            let stored = citizen.as_ref().map(|c| c.password_hash.clone());
            // Argon2id takes tens of milliseconds and 19 MiB: off the async workers, and no
            // more at once than there are cores (a flood of logins queues, it does not
            // exhaust memory).
            let _permit = self.hashing.acquire().await.map_err(OAuthError::server)?;
            let hasher = Arc::clone(&self.hasher);
            let matches = tokio::task::spawn_blocking(move || hasher.verify(&password, stored.as_deref()));
            let matches = matches.await.map_err(OAuthError::server)??;
            if !matches {
                return fail(LoginFailure::BadCredentials).await;
            }
        }
        let Some(citizen) = citizen else { return fail(LoginFailure::BadCredentials).await };

        let required = self.level(&t.request.level)?.level.clone();
        let totp = match &citizen.totp_secret {
            Some(hex_secret) => Some(TotpSecret::from_bytes(hex::decode(hex_secret).map_err(|_| IdpError::Corrupt("TOTP secret".into()))?)?),
            None => None,
        };
        let methods = self.methods_reaching(&required, totp.is_some());
        let Some(method) = methods.first() else {
            tracing::warn!(target: "audit", event = "login.insufficient", citizen = citizen.id, level = %required, "no method of this citizen reaches the level");
            self.ephemeral.delete(&format!("tx:{tx}")).await?;
            let e = OAuthError::new(
                ErrorCode::UnmetAuthenticationRequirements,
                format!("the citizen has no login method that reaches the level {required} this request requires"),
            );
            return Ok(LoginStep::Refused(self.error_redirect(&t.request.redirect_uri, &e, t.request.state.as_deref())));
        };
        if method.id == "password-totp" {
            let (Some(totp), Some(code)) = (&totp, code) else {
                t.pending_citizen = Some(national_id.to_owned());
                self.put_transaction(tx, &t).await?;
                return Ok(LoginStep::NeedCode);
            };
            if !totp.verify_once(self.ephemeral.as_ref(), &citizen.id, code.trim(), now as u64).await? {
                return fail(LoginFailure::BadCode).await;
            }
        }
        self.ephemeral.delete(&account_key).await?;
        let method = (*method).clone();
        self.complete_login(tx, t, &citizen, &method, cookie, now).await
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
        tracing::info!(target: "audit", event = "login.success", citizen = citizen.id, method = method.id, level = %method.level, "citizen logged in");
        let previous = self.session(cookie, now).await?.filter(|s| s.session.citizen_id == citizen.id);
        let (sid, started, clients) = match &previous {
            Some(p) => {
                self.ephemeral.delete(&hashed("sso", &p.id)).await?;
                (p.session.sid.clone(), p.session.started, p.session.clients.clone())
            }
            None => (random_token()?[..22].to_owned(), now, Vec::new()),
        };
        let session = LiveSession {
            id: random_token()?,
            session: Session {
                citizen_id: citizen.id.clone(),
                level: method.level.name().to_owned(),
                methods: vec![method.id.clone()],
                auth_time: now,
                started,
                clients,
                sid,
            },
        };
        self.save_session(&session, now).await?;
        self.ephemeral.delete(&format!("tx:{tx}")).await?;
        let client = self.client(&t.request.client_id).await?.ok_or_else(|| OAuthError::invalid_request("the client has gone"))?;
        let mut request = t.request;
        request.prompt = Prompt { none: false, login: false, consent: request.prompt.consent };
        request.max_age = None;
        let next = match self.after_login(&client, request.clone(), session.clone(), now).await {
            Ok(next) => next,
            Err(e) => Next::Redirect(self.error_redirect(&request.redirect_uri, &e, request.state.as_deref())),
        };
        Ok(LoginStep::Done(session, next))
    }

    /// The citizen's answer on the consent page.
    pub async fn consent(&self, tx: &str, cookie: Option<&str>, approve: bool, now: i64) -> Result<Next, OAuthError> {
        let Some(t) = self.transaction(tx).await? else { return Err(OAuthError::invalid_request("the request has expired; start again")) };
        if !t.consent {
            tracing::warn!(target: "audit", event = "consent.misused", "a login transaction was answered on the consent page");
            return Err(OAuthError::invalid_request("this request is waiting for a login, not for consent"));
        }
        self.ephemeral.delete(&format!("tx:{tx}")).await?;
        let request = t.request;
        let back = |e: OAuthError| Next::Redirect(self.error_redirect(&request.redirect_uri, &e, request.state.as_deref()));
        let Some(session) = self.session(cookie, now).await? else {
            return Ok(back(OAuthError::new(ErrorCode::LoginRequired, "the session ended before consent")));
        };
        let client = self.client(&request.client_id).await?.ok_or_else(|| OAuthError::invalid_request("the client has gone"))?;
        if !approve {
            tracing::info!(target: "audit", event = "consent.refused", client = client.id, "citizen refused consent");
            return Ok(back(OAuthError::new(ErrorCode::AccessDenied, "the citizen did not consent")));
        }
        if client.service.consent_required {
            let claims = self.released_claims(&client, &request);
            let grant = serde_json::to_string(&claims).unwrap_or_default();
            self.durable
                .put_consent(&ConsentRecord { citizen_id: session.session.citizen_id.clone(), client_id: client.id.clone(), grant, granted_at: now })
                .await?;
            tracing::info!(target: "audit", event = "consent.given", client = client.id, "citizen consented");
        }
        match self.issue_code(&client, request.clone(), session, now).await {
            Ok(next) => Ok(next),
            Err(e) => Ok(back(e)),
        }
    }

    async fn issue_code(&self, client: &Client, request: AuthorizationRequest, mut session: LiveSession, now: i64) -> Result<Next, OAuthError> {
        // Whatever path led here, no code for a session below the level the request needs.
        if self.level(&session.session.level)?.level < self.level(&request.level)?.level {
            return Err(OAuthError::new(ErrorCode::InteractionRequired, format!("the session has not reached the level {}", request.level)));
        }
        let code = random_token()?;
        let amr = self.amr(&session.session.methods);
        let grant = CodeGrant {
            citizen_id: session.session.citizen_id.clone(),
            level: session.session.level.clone(),
            amr,
            auth_time: session.session.auth_time,
            sid: session.sid(),
            family: refresh::new_family()?,
            request: request.clone(),
        };
        let bytes = serde_json::to_vec(&grant).map_err(OAuthError::server)?;
        self.ephemeral.put(&hashed("code", &code), &bytes, self.settings.code_ttl).await?;
        if !session.session.clients.contains(&client.id) {
            session.session.clients.push(client.id.clone());
            self.save_session(&session, now).await?;
        }
        let mut url = url::Url::parse(&request.redirect_uri).map_err(OAuthError::server)?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("code", &code);
            if let Some(s) = &request.state {
                q.append_pair("state", s);
            }
            q.append_pair("iss", self.issuer());
        }
        Ok(Next::Redirect(url.into()))
    }

    fn amr(&self, methods: &[String]) -> Vec<String> {
        let mut amr: Vec<String> = Vec::new();
        for m in self.policies.methods().iter().filter(|m| methods.contains(&m.id)) {
            for a in &m.amr {
                if !amr.contains(a) {
                    amr.push(a.clone());
                }
            }
        }
        amr
    }

    /// The redirect that carries an error back to the client (RFC 6749 4.1.2.1, RFC 9207).
    pub fn error_redirect(&self, redirect_uri: &str, e: &OAuthError, state: Option<&str>) -> String {
        let Ok(mut url) = url::Url::parse(redirect_uri) else { return redirect_uri.to_owned() };
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("error", e.code.as_str());
            q.append_pair("error_description", &e.description);
            if let Some(s) = state {
                q.append_pair("state", s);
            }
            q.append_pair("iss", self.issuer());
        }
        url.into()
    }

    /// The subject identifier a client sees: pairwise per sector unless its policy allows
    /// the public one.
    pub fn subject(&self, client: &Client, citizen_id: &str) -> String {
        if client.service.public_subject {
            return citizen_id.to_owned();
        }
        let mut input = Vec::new();
        for part in [client.sector.as_bytes(), citizen_id.as_bytes(), self.settings.secret.as_slice()] {
            input.extend_from_slice(&(part.len() as u32).to_be_bytes());
            input.extend_from_slice(part);
        }
        B64.encode(sha256(&input))
    }

    /// A client's public keys: registered inline, or fetched from its `jwks_uri` and cached
    /// for five minutes (`fresh` skips the cache: a signature by a key the cache lacks may
    /// follow a rollover).
    async fn client_keys(&self, client: &Client, fresh: bool) -> Result<Vec<Value>, OAuthError> {
        let keys_of = |jwks: &Value| jwks.get("keys").and_then(Value::as_array).cloned().unwrap_or_default();
        if let Some(jwks) = &client.registration.jwks {
            return Ok(keys_of(jwks));
        }
        let Some(uri) = &client.registration.jwks_uri else { return Ok(Vec::new()) };
        let cache = format!("jwks-uri:{}", client.id);
        if !fresh && let Some(bytes) = self.ephemeral.get(&cache).await? {
            return Ok(serde_json::from_slice::<Value>(&bytes).map(|j| keys_of(&j)).unwrap_or_default());
        }
        const LARGEST: usize = 64 * 1024;
        let fetched = async {
            let r = self.http.get(uri).send().await.map_err(|e| e.to_string())?;
            if !r.status().is_success() {
                return Err(format!("HTTP {}", r.status()));
            }
            let body = r.bytes().await.map_err(|e| e.to_string())?;
            if body.len() > LARGEST {
                return Err(format!("larger than {LARGEST} bytes"));
            }
            serde_json::from_slice::<Value>(&body).map_err(|e| e.to_string())
        }
        .await;
        match fetched {
            Ok(jwks) => {
                self.ephemeral.put(&cache, jwks.to_string().as_bytes(), Duration::from_secs(300)).await?;
                Ok(keys_of(&jwks))
            }
            Err(e) => {
                tracing::warn!(client = client.id, uri, error = e, "cannot fetch a client's jwks_uri");
                Ok(Vec::new())
            }
        }
    }

    /// The client's keys; those from its `jwks_uri` are fetched anew when the cached ones
    /// do not satisfy `verifies` (the client may have rolled its key over).
    async fn client_keys_verifying(&self, client: &Client, verifies: impl Fn(&[Value]) -> bool) -> Result<Vec<Value>, OAuthError> {
        let keys = self.client_keys(client, false).await?;
        if client.registration.jwks_uri.is_none() || verifies(&keys) {
            return Ok(keys);
        }
        self.client_keys(client, true).await
    }

    /// Authenticates the caller of the token, revocation or introspection endpoint.
    async fn authenticate(&self, presented: &clients::Presented, client: &Client, endpoint: &str, now: i64) -> Result<(), OAuthError> {
        // Keys matter only for a client assertion: secrets never cause a JWKS fetch.
        let keys = if presented.is_assertion() { self.client_keys_verifying(client, |keys| presented.assertion_verifies(keys)).await? } else { Vec::new() };
        presented.authenticate(client, &keys, &[self.issuer(), endpoint], self.ephemeral.as_ref(), now).await
    }

    /// The token endpoint (OIDC Core 3.1.3, RFC 6749 6).
    pub async fn token(&self, mut params: Params, authorization: Option<&str>, now: i64) -> Result<Value, OAuthError> {
        let presented = clients::presented(authorization, &mut params)?;
        let client = self.client(presented.client_id()).await?.ok_or_else(|| OAuthError::invalid_client("unknown client"))?;
        let endpoint = format!("{}/token", self.issuer());
        self.authenticate(&presented, &client, &endpoint, now).await?;
        match params.require("grant_type")? {
            "authorization_code" => {
                let tokens = self.exchange_code(&client, &params, now).await?;
                Counters::count(&self.counters.code_exchanges);
                Ok(tokens)
            }
            "refresh_token" => {
                let tokens = self.refresh(&client, &params, now).await?;
                Counters::count(&self.counters.refreshes);
                Ok(tokens)
            }
            other => Err(OAuthError::new(ErrorCode::UnsupportedGrantType, format!("grant_type {other}"))),
        }
    }

    async fn exchange_code(&self, client: &Client, params: &Params, now: i64) -> Result<Value, OAuthError> {
        let code = params.require("code")?;
        let key = hashed("code", code);
        let Some(bytes) = self.ephemeral.take(&key).await? else {
            // A code used before: revoke what its first use issued (RFC 6749 4.1.2).
            if let Some(family) = self.ephemeral.get(&hashed("code-used", code)).await? {
                let family = String::from_utf8_lossy(&family).into_owned();
                self.revoke_family(&family).await?;
                Counters::count(&self.counters.token_reuse);
                tracing::warn!(target: "audit", event = "code.reused", client = client.id, "authorization code reused; its tokens are revoked");
            }
            return Err(OAuthError::invalid_grant("the code is unknown, expired or used"));
        };
        let grant: CodeGrant = serde_json::from_slice(&bytes).map_err(OAuthError::server)?;
        // Remember the spent code as long as tokens from it may live.
        self.ephemeral.put(&hashed("code-used", code), grant.family.as_bytes(), self.settings.refresh_ttl.min(Duration::from_secs(86_400))).await?;
        if grant.request.client_id != client.id {
            return Err(OAuthError::invalid_grant("the code was issued to another client"));
        }
        if params.get("redirect_uri") != Some(grant.request.redirect_uri.as_str()) {
            return Err(OAuthError::invalid_grant("redirect_uri differs from the authorization request"));
        }
        match (&grant.request.code_challenge, params.get("code_verifier")) {
            (Some(challenge), Some(verifier)) => {
                let valid = (43..=128).contains(&verifier.len()) && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
                let computed = B64.encode(sha256(verifier.as_bytes()));
                if !valid || aws_lc_rs::constant_time::verify_slices_are_equal(computed.as_bytes(), challenge.as_bytes()).is_err() {
                    return Err(OAuthError::invalid_grant("the PKCE code_verifier does not match the code_challenge"));
                }
            }
            (Some(_), None) => return Err(OAuthError::invalid_grant("code_verifier is missing")),
            (None, Some(_)) => return Err(OAuthError::invalid_grant("code_verifier without a code_challenge")),
            (None, None) => {}
        }
        let g = Grant {
            scopes: grant.request.scopes.clone(),
            claims: grant.request.claims.clone(),
            claims_locales: grant.request.claims_locales.clone(),
            level: grant.level.clone(),
            amr: grant.amr.clone(),
            auth_time: grant.auth_time,
            sid: grant.sid.clone(),
            nonce: grant.request.nonce.clone(),
        };
        let refresh = self.new_refresh(client, &grant.citizen_id, &grant.family, &g, now).await?;
        self.tokens(client, &grant.citizen_id, &grant.family, g, refresh, now).await
    }

    /// Starts the refresh-token family of a code's grant; returns its first token.
    async fn new_refresh(&self, client: &Client, citizen_id: &str, family: &str, grant: &Grant, now: i64) -> Result<String, OAuthError> {
        self.durable
            .insert_refresh_family(&RefreshFamily {
                family: family.to_owned(),
                client_id: client.id.clone(),
                citizen_id: citizen_id.to_owned(),
                grant: serde_json::to_string(grant).map_err(OAuthError::server)?,
                generation: 0,
                issued_at: now,
                expires_at: now + self.settings.refresh_ttl.as_secs() as i64,
                ends_at: now + self.settings.refresh_lifetime.as_secs() as i64,
                revoked: false,
            })
            .await?;
        Ok(self.refresh_tokens.token(family, 0))
    }

    async fn refresh(&self, client: &Client, params: &Params, now: i64) -> Result<Value, OAuthError> {
        let invalid = || OAuthError::invalid_grant("the refresh token is unknown, expired, revoked or another client's");
        let (family, generation) = self.refresh_tokens.read(params.require("refresh_token")?).ok_or_else(invalid)?;
        let expires_at = now + self.settings.refresh_ttl.as_secs() as i64;
        match self.durable.rotate_refresh_family(family, generation, &client.id, expires_at, now).await? {
            Rotation::Rotated(f) => {
                let mut grant: Grant = serde_json::from_str(&f.grant).map_err(OAuthError::server)?;
                // A refreshed id_token carries no nonce (OIDC Core 12.2).
                grant.nonce = None;
                let next = self.refresh_tokens.token(&f.family, f.generation);
                self.tokens(client, &f.citizen_id, &f.family, grant, next, now).await
            }
            Rotation::Reused { family } => {
                self.revoke_family(&family).await?;
                Counters::count(&self.counters.token_reuse);
                tracing::warn!(target: "audit", event = "refresh.reused", client = client.id, "refresh token reused; its family is revoked");
                Err(OAuthError::invalid_grant("the refresh token was already used; every token of this grant is revoked"))
            }
            Rotation::Invalid => Err(invalid()),
        }
    }

    /// Revokes refresh tokens and access tokens of a family.
    async fn revoke_family(&self, family: &str) -> Result<(), OAuthError> {
        self.durable.revoke_refresh_family(family).await?;
        self.ephemeral.put(&format!("revoked:{family}"), b"1", self.settings.access_ttl).await?;
        Ok(())
    }

    async fn tokens(&self, client: &Client, citizen_id: &str, family: &str, grant: Grant, refresh: String, now: i64) -> Result<Value, OAuthError> {
        let citizen = self.token_citizen(citizen_id).await?.ok_or_else(|| OAuthError::invalid_grant("the citizen no longer exists"))?;
        let access = random_token()?;
        let expires_at = now + self.settings.access_ttl.as_secs() as i64;
        let record =
            AccessGrant { client_id: client.id.clone(), citizen_id: citizen_id.to_owned(), family: family.to_owned(), expires_at, grant: grant.clone() };
        self.ephemeral.put(&hashed("at", &access), &serde_json::to_vec(&record).map_err(OAuthError::server)?, self.settings.access_ttl).await?;
        let sub = self.subject(client, citizen_id);
        let mut claims = Map::new();
        for (k, v) in [
            ("iss", Value::from(self.issuer())),
            ("sub", sub.into()),
            ("aud", client.id.clone().into()),
            ("iat", now.into()),
            ("exp", (now + self.settings.id_token_ttl.as_secs() as i64).into()),
            ("auth_time", grant.auth_time.into()),
            ("acr", self.level(&grant.level)?.acr.first().cloned().unwrap_or_default().into()),
            ("amr", grant.amr.clone().into()),
            ("sid", grant.sid.clone().into()),
            ("at_hash", at_hash(client.id_token_alg, &access).into()),
        ] {
            claims.insert(k.into(), v);
        }
        if let Some(n) = &grant.nonce {
            claims.insert("nonce".into(), n.clone().into());
        }
        let profile = Profile::from_json(&citizen.profile)?;
        let langs = Lang::all_of(&grant.claims_locales.join(" "));
        for claim in &grant.claims.id_token {
            citizens::add_claim(&mut claims, claim, &profile, &citizen.national_id, &langs);
        }
        let id_token = self.keys.sign(client.id_token_alg, &Value::Object(claims), None, now).await?;
        let body = json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.settings.access_ttl.as_secs(),
            "scope": grant.scopes.join(" "),
            "refresh_token": refresh,
            "id_token": id_token,
        });
        tracing::info!(target: "audit", event = "token.issued", client = client.id, "tokens issued");
        Ok(body)
    }

    async fn access_grant(&self, token: &str, now: i64) -> Result<Option<AccessGrant>, OAuthError> {
        let Some(bytes) = self.ephemeral.get(&hashed("at", token)).await? else { return Ok(None) };
        let grant: AccessGrant = serde_json::from_slice(&bytes).map_err(OAuthError::server)?;
        if grant.expires_at <= now || self.ephemeral.get(&format!("revoked:{}", grant.family)).await?.is_some() {
            return Ok(None);
        }
        Ok(Some(grant))
    }

    /// The userinfo endpoint (OIDC Core 5.3): the claims the access token's scopes and
    /// `claims` request allow, as the client's policy permits.
    pub async fn userinfo(&self, access_token: &str, now: i64) -> Result<Value, OAuthError> {
        let grant = self
            .access_grant(access_token, now)
            .await?
            .ok_or_else(|| OAuthError::new(ErrorCode::InvalidToken, "the access token is unknown, expired or revoked"))?;
        let client = self.client(&grant.client_id).await?.ok_or_else(|| OAuthError::new(ErrorCode::InvalidToken, "the client has gone"))?;
        let citizen = self.token_citizen(&grant.citizen_id).await?.ok_or_else(|| OAuthError::new(ErrorCode::InvalidToken, "the citizen has gone"))?;
        let profile = Profile::from_json(&citizen.profile)?;
        let langs = Lang::all_of(&grant.grant.claims_locales.join(" "));
        let mut out = Map::new();
        out.insert("sub".into(), self.subject(&client, &citizen.id).into());
        let wanted =
            grant.grant.scopes.iter().flat_map(|s| citizens::scope_claims(s).iter().map(|c| c.to_string())).chain(grant.grant.claims.userinfo.iter().cloned());
        for claim in wanted {
            if self.releasable(&client, &claim) {
                citizens::add_claim(&mut out, &claim, &profile, &citizen.national_id, &langs);
            }
        }
        Ok(Value::Object(out))
    }

    /// Token revocation (RFC 7009): a refresh token revokes its whole grant, an access token
    /// itself. Unknown tokens are not an error.
    pub async fn revoke(&self, mut params: Params, authorization: Option<&str>, now: i64) -> Result<(), OAuthError> {
        let presented = clients::presented(authorization, &mut params)?;
        let client = self.client(presented.client_id()).await?.ok_or_else(|| OAuthError::invalid_client("unknown client"))?;
        let endpoint = format!("{}/revoke", self.issuer());
        self.authenticate(&presented, &client, &endpoint, now).await?;
        let token = params.require("token")?;
        if let Some((family, _)) = self.refresh_tokens.read(token) {
            if self.durable.refresh_family(family).await?.is_some_and(|f| f.client_id == client.id) {
                self.revoke_family(family).await?;
                tracing::info!(target: "audit", event = "token.revoked", client = client.id, "refresh token revoked");
            }
            return Ok(());
        }
        if let Some(a) = self.access_grant(token, now).await?
            && a.client_id == client.id
        {
            self.ephemeral.delete(&hashed("at", token)).await?;
            tracing::info!(target: "audit", event = "token.revoked", client = client.id, "access token revoked");
        }
        Ok(())
    }

    /// Token introspection (RFC 7662) for agencies' resource servers.
    pub async fn introspect(&self, mut params: Params, authorization: Option<&str>, now: i64) -> Result<Value, OAuthError> {
        let presented = clients::presented(authorization, &mut params)?;
        let caller = self.client(presented.client_id()).await?.ok_or_else(|| OAuthError::invalid_client("unknown client"))?;
        let endpoint = format!("{}/introspect", self.issuer());
        self.authenticate(&presented, &caller, &endpoint, now).await?;
        let token = params.require("token")?;
        let inactive = json!({"active": false});
        // A refresh token is active while it is its family's live generation.
        if let Some((family, generation)) = self.refresh_tokens.read(token) {
            let Some(f) = self.durable.refresh_family(family).await? else { return Ok(inactive) };
            let Some(client) = self.client(&f.client_id).await? else { return Ok(inactive) };
            if f.revoked || f.generation != generation || f.expires_at <= now {
                return Ok(inactive);
            }
            let grant: Grant = serde_json::from_str(&f.grant).map_err(OAuthError::server)?;
            return self.introspection(&client, &f.citizen_id, &grant, f.expires_at, "refresh_token");
        }
        let Some(grant) = self.access_grant(token, now).await? else { return Ok(inactive) };
        let Some(client) = self.client(&grant.client_id).await? else { return Ok(inactive) };
        self.introspection(&client, &grant.citizen_id, &grant.grant, grant.expires_at, "Bearer")
    }

    fn introspection(&self, client: &Client, citizen_id: &str, grant: &Grant, expires_at: i64, token_type: &str) -> Result<Value, OAuthError> {
        Ok(json!({
            "active": true,
            "client_id": client.id,
            "scope": grant.scopes.join(" "),
            "sub": self.subject(client, citizen_id),
            "exp": expires_at,
            "iss": self.issuer(),
            "token_type": token_type,
            "acr": self.level(&grant.level)?.acr.first(),
            "auth_time": grant.auth_time,
        }))
    }

    /// Ends an SSO session (RP-initiated logout, or the citizen on the logout page) and
    /// sends a logout token to every client of the session that has a back-channel logout
    /// URI (in the background, with retries); returns the clients that took part.
    pub async fn end_session(&self, cookie: Option<&str>, now: i64) -> Result<Vec<String>, OAuthError> {
        let Some(session) = self.session(cookie, now).await? else { return Ok(Vec::new()) };
        self.ephemeral.delete(&hashed("sso", &session.id)).await?;
        tracing::info!(target: "audit", event = "logout", citizen = session.session.citizen_id, "SSO session ended");
        for client_id in &session.session.clients {
            let Some(client) = self.client(client_id).await? else { continue };
            let Some(uri) = client.registration.backchannel_logout_uri.clone() else { continue };
            let sub = self.subject(&client, &session.session.citizen_id);
            let claims = crate::backchannel::logout_claims(self.issuer(), &client.id, &sub, &session.session.sid, &random_token()?, now);
            let token = self.keys.sign(client.id_token_alg, &claims, Some("logout+jwt"), now).await?;
            tokio::spawn(crate::backchannel::deliver(self.http.clone(), uri, client.id.clone(), token, self.settings.backchannel_retry));
        }
        Ok(session.session.clients)
    }

    /// Checks an `id_token_hint` for logout: issued here (expired is fine) to a client that
    /// still exists; returns that client.
    pub async fn logout_hint_client(&self, hint: &str) -> Result<Arc<Client>, OAuthError> {
        let claims = self.keys.verify_own(hint).await.map_err(|_| OAuthError::invalid_request("id_token_hint was not issued by this provider"))?;
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer()) {
            return Err(OAuthError::invalid_request("id_token_hint was not issued by this provider"));
        }
        let aud = match claims.get("aud") {
            Some(Value::String(a)) => a.clone(),
            Some(Value::Array(a)) => a.first().and_then(Value::as_str).unwrap_or_default().to_owned(),
            _ => String::new(),
        };
        self.client(&aud).await?.ok_or_else(|| OAuthError::invalid_request("id_token_hint names an unknown client"))
    }
}
