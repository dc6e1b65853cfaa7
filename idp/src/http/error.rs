//! Protocol errors become responses here and nowhere else (RFC 6749 5.2, RFC 6750 3), and
//! are logged here, once, inside the request's span. The OAuth parameters of a request are
//! read here too, by an extractor whose rejection is such an error.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::oauth::{ErrorCode, MAX_REQUEST_BYTES, OAuthError, Params};

fn status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidClient | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// Logs an error once, at the boundary: our failures with their cause, the caller's at a
/// level that does not flood the log.
pub(super) fn log(e: &OAuthError) {
    match &e.cause {
        Some(cause) if e.code == ErrorCode::TemporarilyUnavailable => tracing::warn!(error = %cause, "store unreachable behind a protocol endpoint"),
        Some(cause) => tracing::error!(error = %cause, "internal error behind a protocol endpoint"),
        None if e.code == ErrorCode::ServerError => tracing::error!(description = e.description, "internal error behind a protocol endpoint"),
        None => tracing::info!(error = e.code.as_str(), description = e.description, "request refused"),
    }
}

fn body(e: &OAuthError) -> Response {
    let body = json!({"error": e.code.as_str(), "error_description": e.description}).to_string();
    let mut response = (status(e.code), [(header::CONTENT_TYPE, "application/json")], body).into_response();
    retry_after(&mut response, e);
    response
}

/// `Retry-After` on a `temporarily_unavailable` answer (RFC 9110 10.2.3).
pub(super) fn retry_after(response: &mut Response, e: &OAuthError) {
    if e.code == ErrorCode::TemporarilyUnavailable {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(crate::oauth::RETRY_AFTER_SECONDS));
    }
}

/// A protocol error as a JSON error body, without an authentication challenge.
impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        log(&self);
        body(&self)
    }
}

/// An error of an endpoint that authenticates its client (token, revocation,
/// introspection): an `invalid_client` carries a `WWW-Authenticate: Basic` challenge only
/// when the client used HTTP Basic (RFC 6749 5.2), so that client libraries see the reason
/// in the body instead of a bare challenge.
#[derive(Debug)]
pub(super) struct ClientError {
    error: OAuthError,
    basic: bool,
}

impl ClientError {
    /// Turns errors of a request whose headers are `headers` into client errors.
    pub(super) fn of(headers: &HeaderMap) -> impl Fn(OAuthError) -> ClientError {
        let basic = super::authorization(headers).is_some_and(|a| a.len() > 6 && a[..6].eq_ignore_ascii_case("basic "));
        move |error| ClientError { error, basic }
    }
}

impl IntoResponse for ClientError {
    fn into_response(self) -> Response {
        log(&self.error);
        let mut response = body(&self.error);
        if self.basic && self.error.code == ErrorCode::InvalidClient {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"hawiya\""));
        }
        response
    }
}

/// An error of a resource that takes a bearer token (userinfo): the challenge names the
/// error (RFC 6750 3).
#[derive(Debug)]
pub(super) struct BearerError(pub(super) OAuthError);

impl IntoResponse for BearerError {
    fn into_response(self) -> Response {
        log(&self.0);
        let mut response = body(&self.0);
        bearer_challenge(&mut response, self.0.code.as_str(), &self.0.description);
        response
    }
}

/// An error of the agency signing API: its status, a JSON error body, and for token errors
/// the challenge (RFC 6750 3).
impl IntoResponse for crate::esign_api::ApiError {
    fn into_response(self) -> Response {
        use crate::esign_api::ApiError as E;
        let status = match &self {
            E::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            E::InsufficientScope(_) | E::AccessDenied(_) => StatusCode::FORBIDDEN,
            E::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            E::NotFound(_) => StatusCode::NOT_FOUND,
            E::DocumentTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            E::NotSignable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            E::NoSmartId => StatusCode::CONFLICT,
            E::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            E::Server(e) => status(e.code),
        };
        let description = match &self {
            E::Server(e) => {
                log(e);
                e.description.clone()
            }
            other => {
                tracing::info!(error = other.code(), description = %other, "signing API request refused");
                other.to_string()
            }
        };
        let mut response = api_error(status, self.code(), &description, matches!(self, E::InvalidToken(_) | E::InsufficientScope(_)));
        if let E::Server(e) = &self {
            retry_after(&mut response, e);
        }
        response
    }
}

/// An API's JSON error body (`error`, `error_description`) with its status, and with
/// `challenge` the bearer challenge that names the error (RFC 6750 3).
fn api_error(status: StatusCode, code: &str, description: &str, challenge: bool) -> Response {
    let body = json!({"error": code, "error_description": description}).to_string();
    let mut response = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    if challenge {
        bearer_challenge(&mut response, code, description);
    }
    response
}

/// Names the error in a `WWW-Authenticate: Bearer` challenge (RFC 6750 3).
fn bearer_challenge(response: &mut Response, code: &str, description: &str) {
    let value = format!("Bearer error=\"{code}\", error_description=\"{}\"", description.replace(['"', '\\'], "'"));
    if let Ok(v) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
}

/// An error of the CSC API: its status, a CSC error body (`error`, `error_description`),
/// and for token errors the challenge (RFC 6750 3, RFC 9470).
impl IntoResponse for crate::csc::CscError {
    fn into_response(self) -> Response {
        use crate::csc::CscError as E;
        let status = match &self {
            E::InvalidToken(_) | E::InsufficientUserAuthentication(_) => StatusCode::UNAUTHORIZED,
            E::InsufficientScope(_) => StatusCode::FORBIDDEN,
            E::InvalidRequest(_) | E::AccessDenied(_) => StatusCode::BAD_REQUEST,
            E::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            E::Server(e) => status(e.code),
        };
        let description = match &self {
            E::Server(e) => {
                log(e);
                e.description.clone()
            }
            other => {
                tracing::info!(error = other.code(), description = %other, "CSC request refused");
                other.to_string()
            }
        };
        let mut response =
            api_error(status, self.code(), &description, matches!(self, E::InvalidToken(_) | E::InsufficientScope(_) | E::InsufficientUserAuthentication(_)));
        if let E::Server(e) = &self {
            retry_after(&mut response, e);
        }
        response
    }
}

/// The parameters of a protocol request: the query and, for a POST, the form body (a
/// parameter in both is repeated). Anything else in a POST body is refused.
pub(super) struct OAuthRequest {
    /// The request's headers.
    pub(super) headers: HeaderMap,
    /// Its parameters.
    pub(super) params: Params,
    /// The connection's peer.
    pub(super) peer: Option<SocketAddr>,
    /// Whether the query string carried an `access_token` (RFC 6750 2.3 says it must not).
    pub(super) access_token_in_query: bool,
}

/// Without the headers (the Authorization header and the cookies are credentials) and with
/// the parameters' names only.
impl std::fmt::Debug for OAuthRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthRequest").field("params", &self.params).field("peer", &self.peer).finish_non_exhaustive()
    }
}

impl<S: Send + Sync> FromRequest<S> for OAuthRequest {
    type Rejection = OAuthError;

    async fn from_request(request: Request, _: &S) -> Result<Self, OAuthError> {
        let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
        let (parts, body) = request.into_parts();
        let query = Params::parse(parts.uri.query().unwrap_or_default().as_bytes())?;
        let access_token_in_query = query.get("access_token").is_some();
        let params = if parts.method == Method::POST {
            let is_form = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded")));
            let body = axum::body::to_bytes(body, MAX_REQUEST_BYTES)
                .await
                .map_err(|_| OAuthError::invalid_request(format!("request larger than {MAX_REQUEST_BYTES} bytes")))?;
            if !is_form && !body.is_empty() {
                return Err(OAuthError::invalid_request("a POST body must be application/x-www-form-urlencoded"));
            }
            query.merge(Params::parse(&body)?)?
        } else {
            query
        };
        Ok(OAuthRequest { headers: parts.headers, params, peer, access_token_in_query })
    }
}

/// Request ids: a random prefix per process (replicas differ) and a counter, 16 hex digits.
#[derive(Debug)]
pub(super) struct RequestIds {
    prefix: u32,
    next: std::sync::atomic::AtomicU32,
}

impl RequestIds {
    pub(super) fn new() -> Self {
        let mut prefix = [0u8; 4];
        // Without randomness the ids of replicas may repeat; they stay unique per process.
        let _ = aws_lc_rs::rand::fill(&mut prefix);
        RequestIds { prefix: u32::from_be_bytes(prefix), next: std::sync::atomic::AtomicU32::new(0) }
    }

    fn next(&self) -> String {
        format!("{:08x}{:08x}", self.prefix, self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }
}

/// Runs every request inside a span with a request id (sent back as `x-request-id`), so
/// that what is logged while serving it can be found together. Only the path is recorded:
/// queries carry codes and tokens.
pub(super) async fn request_span(ids: std::sync::Arc<RequestIds>, request: Request, next: axum::middleware::Next) -> Response {
    use tracing::Instrument;
    let id = ids.next();
    let span = tracing::info_span!("request", id = %id, method = %request.method(), path = request.uri().path());
    let mut response = next.run(request).instrument(span).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}
