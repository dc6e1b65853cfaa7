//! The revocation endpoint.

use axum::extract::State;
use axum::http::StatusCode;

use super::Shared;
use super::error::{ClientError, OAuthRequest};
use crate::unix_now as now;

pub(super) async fn revoke(State(p): State<Shared>, request: OAuthRequest) -> Result<StatusCode, ClientError> {
    let OAuthRequest { headers, params, .. } = request;
    p.revoke(params, super::authorization(&headers), now()).await.map_err(ClientError::of(&headers))?;
    Ok(StatusCode::OK)
}
