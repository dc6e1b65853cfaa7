//! The introspection endpoint.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::Shared;
use super::error::{ClientError, OAuthRequest};
use crate::unix_now as now;

pub(super) async fn introspect(State(p): State<Shared>, request: OAuthRequest) -> Result<Response, ClientError> {
    let OAuthRequest { headers, params, .. } = request;
    Ok(super::json_response(StatusCode::OK, p.introspect(params, super::authorization(&headers), now()).await.map_err(ClientError::of(&headers))?))
}
