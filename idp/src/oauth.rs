//! The wire vocabulary shared by every protocol endpoint: request parameters as sent (each
//! at most once) and the OAuth 2.0 / OpenID Connect errors they can end in.

use std::collections::HashMap;

/// Longest request (query string or form body) any protocol endpoint reads.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// An OAuth 2.0 / OpenID Connect error code (RFC 6749 4.1.2.1 and 5.2, OIDC Core 3.1.2.6,
/// RFC 6750 3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Missing, repeated or malformed parameter.
    InvalidRequest,
    /// Client authentication failed.
    InvalidClient,
    /// The code, refresh token or verifier is wrong, expired, used or someone else's.
    InvalidGrant,
    /// The client may not use this grant type.
    UnauthorizedClient,
    /// Grant type not supported.
    UnsupportedGrantType,
    /// Response type not supported.
    UnsupportedResponseType,
    /// A scope that is malformed or not `openid`.
    InvalidScope,
    /// The citizen refused, or cannot reach the level required.
    AccessDenied,
    /// `prompt=none` but the citizen must log in.
    LoginRequired,
    /// `prompt=none` but the citizen must consent.
    ConsentRequired,
    /// `prompt=none` but the citizen must interact (step up).
    InteractionRequired,
    /// The request object is unsigned, badly signed or inconsistent.
    InvalidRequestObject,
    /// The `request_uri` cannot be used (not registered, not reachable, too large).
    InvalidRequestUri,
    /// A bearer token that is missing, expired or revoked.
    InvalidToken,
    /// Something failed on our side.
    ServerError,
    /// The service cannot answer for a moment (its database is failing over): try again
    /// (RFC 6749 4.1.2.1; answered with 503 and `Retry-After` on every endpoint).
    TemporarilyUnavailable,
    /// The requested level cannot be met (OpenID Connect EAP ACR Values 1.0).
    UnmetAuthenticationRequirements,
}

impl ErrorCode {
    /// The code as it goes on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::InteractionRequired => "interaction_required",
            ErrorCode::InvalidRequestObject => "invalid_request_object",
            ErrorCode::InvalidRequestUri => "invalid_request_uri",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::UnmetAuthenticationRequirements => "unmet_authentication_requirements",
        }
    }
}

/// The description of `temporarily_unavailable`.
pub const TRY_AGAIN: &str = "the service is briefly unavailable; try again in a minute";

/// How many seconds a client should wait before retrying a `temporarily_unavailable`
/// request (`Retry-After`): a failover of the database takes seconds.
pub const RETRY_AFTER_SECONDS: u32 = 5;

/// A protocol error: a code and a description for the developer at the relying party.
#[derive(Debug, thiserror::Error)]
#[error("{}: {description}", code.as_str())]
pub struct OAuthError {
    /// The code.
    pub code: ErrorCode,
    /// What was wrong, in English, without secrets.
    pub description: String,
    /// What failed on our side (`server_error`): logged where the error becomes a response,
    /// never sent.
    #[source]
    pub cause: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl OAuthError {
    /// An error with its description.
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        OAuthError { code, description: description.into(), cause: None }
    }

    /// `invalid_request` with a description.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        OAuthError::new(ErrorCode::InvalidRequest, description)
    }

    /// `invalid_grant` with a description.
    pub fn invalid_grant(description: impl Into<String>) -> Self {
        OAuthError::new(ErrorCode::InvalidGrant, description)
    }

    /// `invalid_client` with a description.
    pub fn invalid_client(description: impl Into<String>) -> Self {
        OAuthError::new(ErrorCode::InvalidClient, description)
    }

    /// `server_error`: the cause goes to the log (once, where the error becomes a response),
    /// not to the caller. A cause that is, or comes from, a store that cannot be reached now
    /// is `temporarily_unavailable` instead: the caller may retry in a moment.
    pub fn server(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        let cause = cause.into();
        let mut link: Option<&(dyn std::error::Error + 'static)> = Some(cause.as_ref());
        while let Some(e) = link {
            // `IdpError::Store` is transparent: its source is the store error's source.
            let store = e.downcast_ref::<store::StoreError>().or_else(|| match e.downcast_ref::<crate::IdpError>() {
                Some(crate::IdpError::Store(s)) => Some(s),
                _ => None,
            });
            if store.is_some_and(store::StoreError::is_unreachable) {
                return OAuthError { code: ErrorCode::TemporarilyUnavailable, description: TRY_AGAIN.into(), cause: Some(cause) };
            }
            link = e.source();
        }
        OAuthError { code: ErrorCode::ServerError, description: "internal error".into(), cause: Some(cause) }
    }
}

impl From<crate::IdpError> for OAuthError {
    fn from(e: crate::IdpError) -> Self {
        OAuthError::server(e)
    }
}

impl From<store::StoreError> for OAuthError {
    fn from(e: store::StoreError) -> Self {
        OAuthError::server(e)
    }
}

/// Request parameters, each present at most once (RFC 6749 3.1: "Request and response
/// parameters MUST NOT be included more than once"); empty values count as absent.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Params(HashMap<String, String>);

/// The names only: values are codes, tokens, passwords and client secrets.
impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.0.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("Params").field("names", &names).finish_non_exhaustive()
    }
}

impl Params {
    /// Parses an `application/x-www-form-urlencoded` string (a query or a form body).
    pub fn parse(encoded: &[u8]) -> Result<Self, OAuthError> {
        if encoded.len() > MAX_REQUEST_BYTES {
            return Err(OAuthError::invalid_request(format!("request larger than {MAX_REQUEST_BYTES} bytes")));
        }
        let mut map = HashMap::new();
        for (k, v) in url::form_urlencoded::parse(encoded) {
            if v.is_empty() {
                continue;
            }
            if map.insert(k.to_string(), v.into_owned()).is_some() {
                return Err(OAuthError::invalid_request(format!("parameter {k} is repeated")));
            }
        }
        Ok(Params(map))
    }

    /// Joins the parameters of the query and of the body (POST to the authorization
    /// endpoint); a parameter in both is repeated.
    pub fn merge(mut self, other: Params) -> Result<Self, OAuthError> {
        for (k, v) in other.0 {
            if self.0.contains_key(&k) {
                return Err(OAuthError::invalid_request(format!("parameter {k} is repeated")));
            }
            self.0.insert(k, v);
        }
        Ok(self)
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The value of `name`, or `invalid_request` naming it.
    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name).ok_or_else(|| OAuthError::invalid_request(format!("missing parameter {name}")))
    }

    /// Removes and returns `name`.
    pub fn take(&mut self, name: &str) -> Option<String> {
        self.0.remove(name)
    }

    /// Sets a parameter, replacing what was there (a request object's values win).
    pub fn replace(&mut self, name: &str, value: String) {
        self.0.insert(name.to_owned(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_store_is_temporarily_unavailable_and_other_failures_server_errors() {
        let unreachable = || store::StoreError::Unreachable { backend: "PostgreSQL", source: "connection closed".into() };
        for e in [
            OAuthError::from(unreachable()),
            OAuthError::from(crate::IdpError::Store(unreachable())),
            OAuthError::server(crate::IdpError::Store(unreachable())),
        ] {
            assert_eq!((e.code, e.description.as_str()), (ErrorCode::TemporarilyUnavailable, TRY_AGAIN));
            assert_eq!(e.code.as_str(), "temporarily_unavailable");
            assert!(e.cause.is_some(), "the cause is kept for the log");
        }
        for e in [OAuthError::from(store::StoreError::Corrupt("x".into())), OAuthError::from(crate::IdpError::Corrupt("x".into())), OAuthError::server("x")] {
            assert_eq!((e.code, e.description.as_str()), (ErrorCode::ServerError, "internal error"));
        }
    }

    #[test]
    fn parameters_are_single_and_bounded() {
        let p = Params::parse(b"a=1&b=%D9%84%D9%8A&c=").expect("parse");
        assert_eq!((p.get("a"), p.get("b"), p.get("c")), (Some("1"), Some("لي"), None));
        assert_eq!(Params::parse(b"a=1&a=2").unwrap_err().description, "parameter a is repeated");
        let too_large = Params::parse(&vec![b'a'; MAX_REQUEST_BYTES + 1]).unwrap_err();
        assert_eq!((too_large.code, too_large.description.as_str()), (ErrorCode::InvalidRequest, "request larger than 65536 bytes"));
        let merged = Params::parse(b"a=1").and_then(|p| p.merge(Params::parse(b"a=2")?));
        assert_eq!(merged.unwrap_err().description, "parameter a is repeated");
        assert_eq!(p.require("zz").unwrap_err().code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn debug_shows_the_names_of_parameters_not_their_values() {
        let p = Params::parse(b"password=hunter2-2026&code=Zq81xcodevalue&client_secret=s3cr3t-value").expect("parse");
        let shown = format!("{p:?}");
        assert_eq!(shown, r#"Params { names: ["client_secret", "code", "password"], .. }"#);
    }
}
