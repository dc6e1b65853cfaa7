//! The token endpoint.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use super::Shared;
use super::error::{ClientError, OAuthRequest};
use crate::unix_now as now;

pub(super) async fn token(State(p): State<Shared>, request: OAuthRequest) -> Result<Response, ClientError> {
    let OAuthRequest { headers, params, .. } = request;
    let body = p.token(params, super::authorization(&headers), now()).await.map_err(ClientError::of(&headers))?;
    let mut r = super::json_response(StatusCode::OK, body);
    r.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(r)
}
