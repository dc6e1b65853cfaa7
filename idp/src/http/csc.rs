//! The CSC API v2 (`/csc/v2/…`, documented in `idp/openapi/csc-v2.yaml`): thin handlers
//! that read the bearer token and the JSON body, call the provider's [`crate::csc`], and
//! render; errors become CSC error bodies in `http::error`.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::{Shared, json_response};
use crate::csc::{AuthorizeCheckRequest, AuthorizeRequest, Caller, Check, CredentialInfoRequest, CscError, InfoRequest, ListRequest, SignHashRequest};
use crate::provider::Provider;
use crate::unix_now as now;

/// The largest request body: the policy's most hashes (base64 SHA-384 is 64 characters) and
/// room for the rest.
pub(super) fn body_limit(p: &Provider) -> usize {
    p.policies.signing().max_hashes_per_authorization * 128 + 8 * 1024
}

/// The bearer token of a request (RFC 6750 2.1), in the header only.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    super::authorization(headers).filter(|h| h.len() > 7 && h[..7].eq_ignore_ascii_case("bearer ")).map(|h| h[7..].trim())
}

/// The caller, then the JSON body (`empty_ok`: an empty body is `{}`).
async fn read<T: DeserializeOwned>(p: &Provider, request: Request, empty_ok: bool) -> Result<(Caller, T), CscError> {
    let (parts, body) = request.into_parts();
    // The token first: nobody else makes the provider read a body.
    let caller = p.csc_caller(bearer(&parts.headers), now()).await?;
    Ok((caller, body_json(p, &parts.headers, body, empty_ok).await?))
}

async fn body_json<T: DeserializeOwned>(p: &Provider, headers: &HeaderMap, body: axum::body::Body, empty_ok: bool) -> Result<T, CscError> {
    let limit = body_limit(p);
    let body = axum::body::to_bytes(body, limit).await.map_err(|_| CscError::InvalidRequest(format!("the request body is larger than {limit} bytes")))?;
    if body.is_empty() {
        if !empty_ok {
            return Err(CscError::InvalidRequest("the body is required (application/json)".into()));
        }
        return serde_json::from_slice(b"{}").map_err(|e| CscError::InvalidRequest(e.to_string()));
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")));
    if !is_json {
        return Err(CscError::InvalidRequest("the body must be application/json".into()));
    }
    serde_json::from_slice(&body).map_err(|e| CscError::InvalidRequest(format!("the body is not the expected JSON: {e}")))
}

/// `POST /csc/v2/info` (no authentication).
pub(super) async fn info(State(p): State<Shared>, request: Request) -> Result<Response, CscError> {
    let (parts, body) = request.into_parts();
    let asked: InfoRequest = body_json(&p, &parts.headers, body, true).await?;
    Ok(json_response(StatusCode::OK, p.csc_info(&asked)?))
}

/// `POST /csc/v2/credentials/list`.
pub(super) async fn list(State(p): State<Shared>, request: Request) -> Result<Response, CscError> {
    let (caller, asked) = read::<ListRequest>(&p, request, true).await?;
    Ok(json_response(StatusCode::OK, p.csc_list(&caller, &asked, now()).await?))
}

/// `POST /csc/v2/credentials/info`.
pub(super) async fn credential_info(State(p): State<Shared>, request: Request) -> Result<Response, CscError> {
    let (caller, asked) = read::<CredentialInfoRequest>(&p, request, false).await?;
    Ok(json_response(StatusCode::OK, p.csc_credential_info(&caller, &asked, now()).await?))
}

/// `POST /csc/v2/credentials/authorize`: no SAD yet; the tool shows the verification code
/// and polls `credentials/authorizeCheck`.
pub(super) async fn authorize(State(p): State<Shared>, request: Request) -> Result<Response, CscError> {
    let (caller, asked) = read::<AuthorizeRequest>(&p, request, false).await?;
    let opened = p.csc_authorize(&caller, &asked, now()).await?;
    Ok(json_response(StatusCode::OK, json!({"responseID": opened.id, "verificationCode": opened.code, "expiresIn": opened.expires_in})))
}

/// `POST /csc/v2/credentials/authorizeCheck`: 202 while the citizen has not answered, the
/// SAD once approved.
pub(super) async fn authorize_check(State(p): State<Shared>, request: Request) -> Result<Response, CscError> {
    let (caller, asked) = read::<AuthorizeCheckRequest>(&p, request, false).await?;
    Ok(match p.csc_authorize_check(&caller, &asked, now()).await? {
        Check::Pending { code, expires_in } => {
            json_response(StatusCode::ACCEPTED, json!({"status": "pending", "verificationCode": code, "expiresIn": expires_in}))
        }
        Check::Ready { sad, expires_in } => json_response(StatusCode::OK, json!({"SAD": sad, "expiresIn": expires_in})),
    })
}

/// `POST /csc/v2/signatures/signHash`.
pub(super) async fn sign_hash(State(p): State<Shared>, request: Request) -> Result<Response, CscError> {
    let (caller, asked) = read::<SignHashRequest>(&p, request, false).await?;
    let signatures = p.csc_sign_hash(&caller, &asked, now()).await?;
    Ok(json_response(StatusCode::OK, json!({"signatures": signatures})))
}

/// The logo `info` names.
pub(super) async fn logo() -> Response {
    const LOGO: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><rect width="64" height="64" rx="12" fill="#0b5d3b"/><text x="32" y="42" font-size="28" text-anchor="middle" fill="#fff" font-family="sans-serif">هوية</text></svg>"##;
    ([(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "public, max-age=86400")], LOGO).into_response()
}
