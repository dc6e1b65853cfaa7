//! The CA's public endpoints: CA certificates (caIssuers), CRLs (distribution points) and
//! the OCSP responder, at the URLs written into certificates, and the timestamp authority
//! (RFC 3161 over HTTP, §3.4) at `/tsa`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;

use crate::CaError;
use crate::authority::Authority;
use crate::ocsp::OcspResponder;
use crate::tsa::{self, TimestampAuthority};

/// What the CA endpoints need.
#[derive(Debug)]
pub struct CaState {
    /// The authority (certificates, CRLs).
    pub authority: Arc<Authority>,
    /// The OCSP responder.
    pub ocsp: OcspResponder,
    /// The timestamp authority.
    pub tsa: TimestampAuthority,
}

/// The largest OCSP request accepted (a request for 16 certificates is well under 4 KiB).
const MAX_OCSP_REQUEST: usize = 16 * 1024;

/// The CA's routes.
pub fn router(state: Arc<CaState>) -> Router {
    Router::new()
        .route("/ca/{file}", get(ca_certificate))
        .route("/crl/{file}", get(crl))
        .route("/ocsp", post(ocsp_post))
        .route("/ocsp/{*request}", get(ocsp_get))
        .route("/tsa", post(timestamp))
        .layer(DefaultBodyLimit::max(MAX_OCSP_REQUEST))
        .with_state(state)
}

/// Turns a CA error into a response, in one place: names of unknown things are the caller's
/// to know; an unreachable store is a 503 with `Retry-After`; anything else is logged and
/// answered with a bare 500.
fn error_response(e: CaError) -> Response {
    match e {
        CaError::UnknownAuthority { .. } => (StatusCode::NOT_FOUND, "no such certificate authority\n").into_response(),
        CaError::Store(e) if e.is_unreachable() => {
            tracing::warn!(error = %e, "CA endpoint refused: the store is unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "5"), (header::CACHE_CONTROL, "no-store")],
                "the store is briefly unavailable; try again in a minute\n",
            )
                .into_response()
        }
        other => {
            tracing::error!(error = %other, "CA endpoint failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
        }
    }
}

fn der(content_type: &'static str, body: impl Into<Bytes>, max_age: i64) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={}", max_age.max(0))) {
        headers.insert(header::CACHE_CONTROL, v);
    }
    (headers, body.into()).into_response()
}

async fn ca_certificate(State(state): State<Arc<CaState>>, Path(file): Path<String>) -> Response {
    let Some(name) = file.strip_suffix(".crt") else {
        return (StatusCode::NOT_FOUND, "CA certificates are served as <name>.crt\n").into_response();
    };
    if !state.authority.ca_names().contains(&name) {
        return error_response(CaError::UnknownAuthority { name: name.into(), known: String::new() });
    }
    match state.authority.certificate(name) {
        Ok(cert) => der("application/pkix-cert", cert.to_vec(), 86_400),
        Err(e) => error_response(e),
    }
}

async fn crl(State(state): State<Arc<CaState>>, Path(file): Path<String>) -> Response {
    let Some(name) = file.strip_suffix(".crl") else {
        return (StatusCode::NOT_FOUND, "CRLs are served as <name>.crl\n").into_response();
    };
    if !state.authority.ca_names().contains(&name) {
        return error_response(CaError::UnknownAuthority { name: name.into(), known: String::new() });
    }
    match state.authority.current_crl(name).await {
        Ok(Some(crl)) => der("application/pkix-crl", crl.der, (crl.next_update - crate::now()).min(3600)),
        Ok(None) => (StatusCode::NOT_FOUND, "no CRL has been published for this CA yet\n").into_response(),
        Err(e) => error_response(e),
    }
}

async fn ocsp_post(State(state): State<Arc<CaState>>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.eq_ignore_ascii_case("application/ocsp-request") {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "OCSP requests are POSTed as application/ocsp-request\n").into_response();
    }
    ocsp_answer(&state, &body, 0).await
}

/// The answer to an OCSP request, cacheable for `max_age` seconds when it is signed. While
/// the store cannot be reached it is `tryLater` (RFC 6960 4.2.1) with 503 and `Retry-After`,
/// which no cache keeps.
async fn ocsp_answer(state: &CaState, request: &[u8], max_age: i64) -> Response {
    const TYPE: &str = "application/ocsp-response";
    match state.ocsp.answer(request).await {
        (body, None) => der(TYPE, body, max_age),
        (body, Some(crate::metrics::OcspRefusal::TryLater)) => {
            (StatusCode::SERVICE_UNAVAILABLE, [(header::CONTENT_TYPE, TYPE), (header::RETRY_AFTER, "5"), (header::CACHE_CONTROL, "no-store")], body)
                .into_response()
        }
        (body, Some(_)) => der(TYPE, body, 0),
    }
}

async fn ocsp_get(State(state): State<Arc<CaState>>, Path(encoded): Path<String>) -> Response {
    // RFC 6960 A.1: the URL-encoding of the base64 of the DER request (axum has already
    // percent-decoded the path).
    let request = match base64::engine::general_purpose::STANDARD.decode(encoded.trim_start_matches('/')) {
        Ok(r) if r.len() <= MAX_OCSP_REQUEST => r,
        _ => return ocsp_answer(&state, &[], 0).await,
    };
    ocsp_answer(&state, &request, 60).await
}

/// RFC 3161 §3.4. Every request gets a TimeStampResp, refusals included: a body of another
/// type or over the route's limit is refused as `badRequest` without being read.
async fn timestamp(State(state): State<Arc<CaState>>, extensions: Extensions, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    const REPLY: &str = "application/timestamp-reply";
    let requester = extensions.get::<ConnectInfo<SocketAddr>>().map_or_else(|| "unknown".to_owned(), |ConnectInfo(address)| address.ip().to_string());
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.eq_ignore_ascii_case("application/timestamp-query") {
        return der(REPLY, state.tsa.bad_request("timestamp requests are POSTed as application/timestamp-query"), 0);
    }
    match body {
        Ok(body) => der(REPLY, state.tsa.respond(&body, &requester).await, 0),
        Err(_) => der(REPLY, state.tsa.bad_request(&format!("the request is larger than {} octets", tsa::MAX_REQUEST)), 0),
    }
}
