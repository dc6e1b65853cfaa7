//! The authorization endpoint (OIDC Core 3.1.2): the request is read (request objects
//! included), checked against the client's registration and service policy, and either goes
//! back to the client with a code or an error, or on to login or consent.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use policies::{AssuranceLevel, LevelName};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::citizens::Lang;
use crate::clients::{self, Client};
use crate::keyspace;
use crate::oauth::{ErrorCode, OAuthError, Params};
use crate::provider::{Provider, random_token};
use crate::session::LiveSession;
use crate::token::authorization_code::CodeGrant;
use crate::token::refresh_token;

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
    pub level: LevelName,
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
    /// The known acr values asked for (`acr_values`, an essential `acr` claim), in order.
    #[serde(default)]
    pub acr_values: Vec<String>,
}

impl AuthorizationRequest {
    /// The languages the pages should use, as [`Lang`]s.
    pub fn ui_langs(&self) -> Vec<Lang> {
        Lang::all_of(&self.ui_locales.join(" "))
    }
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
pub enum PageError {
    /// The request is wrong: what to show.
    #[error("{0}")]
    Refused(String),
    /// The request cannot be checked now (`temporarily_unavailable`: the store cannot be
    /// reached); it may be sent again in a moment.
    #[error(transparent)]
    Unavailable(OAuthError),
}

impl Provider {
    /// Checks an authorization request (OIDC Core 3.1.2.1-2) and decides what happens next.
    pub async fn authorize(&self, mut params: Params, cookie: Option<&str>, now: i64) -> Result<Next, PageError> {
        let page = PageError::Refused;
        let client_id = params.get("client_id").ok_or_else(|| page("The request names no client (client_id is missing).".into()))?;
        let client_id = client_id.parse::<policies::ClientId>().map_err(|e| page(format!("The client_id is malformed: {e}.")))?;
        let client = self.client(&client_id).await.map_err(|e| match OAuthError::from(e) {
            e if e.code == ErrorCode::TemporarilyUnavailable => PageError::Unavailable(e),
            e => page(format!("The client cannot be loaded: {}", e.description)),
        })?;
        let client = client.ok_or_else(|| page(format!("Unknown client {client_id:?}.")))?;
        // A signed request object (OIDC Core 6.1, by value; 6.2, by reference) replaces the
        // parameters it carries, the redirect URI included, so it is read before anything is
        // checked.
        let object = match (params.take("request"), params.take("request_uri")) {
            (Some(_), Some(_)) => Err(OAuthError::invalid_request("request and request_uri cannot both be sent")),
            (Some(object), None) => Ok(Some(object)),
            (None, Some(uri)) => self.fetch_request_object(&client, &uri).await.map(Some),
            (None, None) => Ok(None),
        };
        let object = match object {
            Ok(o) => o,
            Err(e) => {
                let registered = params.get("redirect_uri").filter(|r| client.registration.redirect_uris.iter().any(|u| u == r));
                return match registered {
                    Some(r) => Ok(Next::Redirect(self.error_redirect(r, &e, params.get("state")))),
                    None => Err(page(format!("The request object was refused: {}", e.description))),
                };
            }
        };
        if let Some(object) = object {
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
            tracing::warn!(client_id = client_id.as_str(), redirect_uri, "authorization request with an unregistered redirect URI");
            return Err(page("The redirect_uri is not registered for this client; the provider will not send you there.".into()));
        }
        // From here on errors go back to the client.
        let state = params.get("state").map(str::to_owned);
        let back = |e: OAuthError| Next::Redirect(self.error_redirect(&redirect_uri, &e, state.as_deref()));
        match self.check_request(&client, &redirect_uri, params).await {
            Ok(request) => match self.continue_authorization(&client, request, cookie, now).await {
                Ok(next) => Ok(next),
                Err(e) => Ok(back(e)),
            },
            Err(e) => Ok(back(e)),
        }
    }

    pub(crate) async fn check_request(&self, client: &Client, redirect_uri: &str, params: Params) -> Result<AuthorizationRequest, OAuthError> {
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
            // Machine scopes (esign) are the agency's own, never granted through a citizen.
            let machine = crate::token::client_credentials::MACHINE_SCOPES.contains(&s);
            let allowed = s == "openid" || s == "offline_access" || (!machine && client.service.scopes.iter().any(|a| a == s));
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
        // The values asked for, in order of preference: the id_token's acr is the first of
        // them that the login satisfies (OIDC Core 5.5.1.1).
        let mut acr_values: Vec<String> = Vec::new();
        let mut raise = |values: &[&str]| -> Result<(), OAuthError> {
            for v in values {
                if self.policies.level_for_acr(v).is_some() && !acr_values.iter().any(|a| a == v) {
                    acr_values.push((*v).to_owned());
                }
            }
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
            client_id: client.id.to_string(),
            redirect_uri: redirect_uri.to_owned(),
            scopes,
            state: params.get("state").map(str::to_owned),
            nonce: params.get("nonce").map(str::to_owned),
            code_challenge,
            prompt,
            max_age,
            level: level.to_name(),
            claims,
            ui_locales: params.get("ui_locales").map(|l| l.split(' ').map(str::to_owned).collect()).unwrap_or_default(),
            claims_locales: params.get("claims_locales").map(|l| l.split(' ').map(str::to_owned).collect()).unwrap_or_default(),
            login_hint: params.get("login_hint").map(str::to_owned),
            acr_values,
            hint_sub,
        })
    }

    /// Fetches a request object by reference (OIDC Core 6.2): only from a `request_uris`
    /// entry of the client's registration (a fragment may tell versions apart), at most
    /// 64 KiB, within 5 seconds.
    async fn fetch_request_object(&self, client: &Client, uri: &str) -> Result<String, OAuthError> {
        const LARGEST: usize = 64 * 1024;
        let bad = |why: String| OAuthError::new(ErrorCode::InvalidRequestUri, why);
        let without_fragment = uri.split('#').next().unwrap_or_default();
        if !client.registration.request_uris.iter().any(|r| r == without_fragment) {
            tracing::warn!(client = client.id.as_str(), "request_uri not registered for the client");
            return Err(bad("the request_uri is not registered for this client (request_uris)".into()));
        }
        let fetched = async {
            let response = self.http.get(without_fragment).timeout(std::time::Duration::from_secs(5)).send().await.map_err(|e| e.to_string())?;
            if !response.status().is_success() {
                return Err(format!("HTTP {}", response.status()));
            }
            if response.content_length().is_some_and(|n| n > LARGEST as u64) {
                return Err(format!("larger than {LARGEST} bytes"));
            }
            let mut body = Vec::new();
            let mut response = response;
            while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
                body.extend_from_slice(&chunk);
                if body.len() > LARGEST {
                    return Err(format!("larger than {LARGEST} bytes"));
                }
            }
            String::from_utf8(body).map(|s| s.trim().to_owned()).map_err(|_| "not text".to_owned())
        };
        fetched.await.map_err(|e| {
            tracing::warn!(client = client.id.as_str(), error = e, "cannot fetch a request_uri");
            bad(format!("the request object cannot be fetched from the request_uri: {e}"))
        })
    }

    /// Verifies a request object with the client's registered keys and returns the request's
    /// parameters with the object's in place of the query's (OIDC Core 6.3).
    pub(crate) async fn request_object(&self, client: &Client, object: &str, query: &Params, now: i64) -> Result<Params, OAuthError> {
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
    pub(crate) fn releasable(&self, client: &Client, claim: &str) -> bool {
        if claim == "national_id" {
            return client.service.national_id;
        }
        ["acr", "amr", "auth_time", "sid"].contains(&claim) || client.service.claims.iter().any(|c| c == claim)
    }

    /// After a valid request (or a login, or a consent): log in, consent, or issue the code.
    pub(crate) async fn continue_authorization(
        &self,
        client: &Client,
        request: AuthorizationRequest,
        cookie: Option<&str>,
        now: i64,
    ) -> Result<Next, OAuthError> {
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
        self.consent_or_code(client, request, session, now).await
    }

    pub(crate) async fn consent_or_code(&self, client: &Client, mut request: AuthorizationRequest, session: LiveSession, now: i64) -> Result<Next, OAuthError> {
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

    pub(crate) async fn issue_code(&self, client: &Client, request: AuthorizationRequest, mut session: LiveSession, now: i64) -> Result<Next, OAuthError> {
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
            family: refresh_token::new_family()?,
            request: request.clone(),
        };
        let bytes = serde_json::to_vec(&grant).map_err(OAuthError::server)?;
        self.ephemeral.put(&keyspace::code(&code), &bytes, self.settings.code_ttl).await?;
        if !session.session.clients.iter().any(|c| *c == client.id) {
            session.session.clients.push(client.id.to_string());
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

    pub(crate) fn amr(&self, methods: &[String]) -> Vec<String> {
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
}
