//! The agency signing API (`/api/esign/v1`, documented in `idp/openapi/esign-v1.yaml`):
//! thin handlers that read the bearer token and the JSON body, call the provider's
//! [`crate::esign_api`], and render; errors become responses in `http::error`.

use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{Shared, json_response};
use crate::esign_api::{ApiError, NewSigningRequest, Upload, status_name};
use crate::unix_now as now;

/// The bearer token of a request (RFC 6750 2.1); the API takes it in the header only.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    super::authorization(headers).filter(|h| h.len() > 7 && h[..7].eq_ignore_ascii_case("bearer ")).map(|h| h[7..].trim())
}

/// `POST /api/esign/v1/signing-requests`: the request as JSON (the document in base64, or
/// its digest), or as `multipart/form-data` with the JSON in the part `request` and the
/// document's bytes in the part `document` (no base64: a third less to send and to decode).
pub(super) async fn create(State(p): State<Shared>, request: Request) -> Result<Response, ApiError> {
    // The token first: nobody else makes the provider read a large body.
    let agency = p.esign_agency(bearer(request.headers()), now()).await?;
    let media = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).and_then(|v| v.split(';').next()).unwrap_or_default();
    let too_large = || ApiError::DocumentTooLarge(p.policies.signing().max_document_bytes);
    let (request, upload) = if media.trim().eq_ignore_ascii_case("application/json") {
        let body = axum::body::to_bytes(request.into_body(), crate::esign_api::body_limit(&p)).await.map_err(|_| too_large())?;
        (parse_request(&body)?, None)
    } else if media.trim().eq_ignore_ascii_case("multipart/form-data") {
        let multipart = Multipart::from_request(request, &()).await.map_err(|e| ApiError::InvalidRequest(e.body_text()))?;
        read_multipart(multipart).await?.ok_or_else(too_large)?
    } else {
        return Err(ApiError::InvalidRequest("the body must be application/json or multipart/form-data".into()));
    };
    let opened = p.esign_request(&agency, request, upload, now()).await?;
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

fn parse_request(json: &[u8]) -> Result<NewSigningRequest, ApiError> {
    serde_json::from_slice(json).map_err(|e| ApiError::InvalidRequest(format!("the body is not a signing request: {e}")))
}

/// The parts `request` (the JSON) and `document` (the file) of a multipart request, each
/// exactly once; `None` when the body is over its limit.
async fn read_multipart(mut multipart: Multipart) -> Result<Option<(NewSigningRequest, Option<Upload>)>, ApiError> {
    let (mut request, mut upload) = (None, None);
    loop {
        let (name, file_name, bytes) = match super::next_part(&mut multipart).await.map_err(ApiError::InvalidRequest)? {
            super::Part::Field { name, file_name, bytes } => (name, file_name, bytes),
            super::Part::End => break,
            super::Part::TooLarge => return Ok(None),
        };
        let duplicate = || ApiError::InvalidRequest(format!("more than one part `{name}`"));
        match name.as_str() {
            "request" if request.is_none() => request = Some(parse_request(&bytes)?),
            "document" if upload.is_none() => upload = Some(Upload { file_name, bytes }),
            "request" | "document" => return Err(duplicate()),
            other => return Err(ApiError::InvalidRequest(format!("unknown part `{other}`: the parts are `request` (the JSON) and `document` (the file)"))),
        }
    }
    let request = request.ok_or_else(|| ApiError::InvalidRequest("no part `request` (the signing request, JSON)".into()))?;
    Ok(Some((request, upload)))
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
