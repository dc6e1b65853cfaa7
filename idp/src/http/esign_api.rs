//! The agency signing API (`/api/esign/v1`, documented in `idp/openapi/esign-v1.yaml`):
//! thin handlers that read the bearer token and the JSON body, call the provider's
//! [`crate::esign_api`], and render; errors become responses in `http::error`.

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{Shared, json_response};
use crate::esign_api::{ApiError, NewSigningRequest, status_name};
use crate::unix_now as now;

/// The bearer token of a request (RFC 6750 2.1); the API takes it in the header only.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    super::authorization(headers).filter(|h| h.len() > 7 && h[..7].eq_ignore_ascii_case("bearer ")).map(|h| h[7..].trim())
}

/// `POST /api/esign/v1/signing-requests`.
pub(super) async fn create(State(p): State<Shared>, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    // The token first: nobody else makes the provider read a large body.
    let agency = p.esign_agency(bearer(&headers), now()).await?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")));
    if !is_json {
        return Err(ApiError::InvalidRequest("the body must be application/json".into()));
    }
    let body =
        axum::body::to_bytes(body, crate::esign_api::body_limit(&p)).await.map_err(|_| ApiError::DocumentTooLarge(p.policies.signing().max_document_bytes))?;
    let request: NewSigningRequest = serde_json::from_slice(&body).map_err(|e| ApiError::InvalidRequest(format!("the body is not a signing request: {e}")))?;
    let opened = p.esign_request(&agency, request, now()).await?;
    let location = format!("/api/esign/v1/signing-requests/{}", opened.id);
    let mut r = json_response(
        StatusCode::CREATED,
        json!({"id": opened.id, "status": "waiting", "verification_code": opened.verification_code, "expires_at": opened.expires_at}),
    );
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

/// `GET /api/esign/v1/signing-requests/{id}`.
pub(super) async fn status(State(p): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, ApiError> {
    let agency = p.esign_agency(bearer(&headers), now()).await?;
    let s = p.esign_status(&agency, &id, now()).await?;
    Ok(json_response(StatusCode::OK, json!({"id": id, "status": status_name(&s.state), "format": s.format.level(), "expires_at": s.expires_at})))
}

/// `GET /api/esign/v1/signing-requests/{id}/document`.
pub(super) async fn document(State(p): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, ApiError> {
    let agency = p.esign_agency(bearer(&headers), now()).await?;
    let (name, media, bytes) = p.esign_document(&agency, &id, now()).await?;
    let mut r = (StatusCode::OK, bytes).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    h.insert(header::CONTENT_DISPOSITION, super::attachment(&name));
    Ok(r)
}
