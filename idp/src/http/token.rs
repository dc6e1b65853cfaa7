//! The token endpoint.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use super::Shared;
use super::error::{ClientError, OAuthRequest};
use crate::metrics::GrantLabel;
use crate::unix_now as now;

pub(super) async fn token(State(p): State<Shared>, request: OAuthRequest) -> Result<Response, ClientError> {
    let OAuthRequest { headers, params, .. } = request;
    let (start, grant) = (std::time::Instant::now(), GrantLabel::of(params.get("grant_type")));
    let answered = p.token(params, super::authorization(&headers), now()).await;
    p.counters.token_latency(grant, start);
    let body = answered.map_err(ClientError::of(&headers))?;
    let mut r = super::json_response(StatusCode::OK, body);
    r.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(r)
}
