//! The userinfo endpoint.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::{Shared, authorization, json_response, oauth_error, params};
use crate::oauth::{ErrorCode, OAuthError};
use crate::unix_now as now;

pub(super) async fn userinfo(State(p): State<Shared>, request: Request) -> Response {
    let (headers, mut params, _) = match params(request).await {
        Ok(x) => x,
        Err(e) => return oauth_error(e, true),
    };
    let header_token = authorization(&headers).filter(|h| h.len() > 7 && h[..7].eq_ignore_ascii_case("bearer ")).map(|h| h[7..].trim().to_owned());
    let body_token = params.take("access_token");
    let token = match (header_token, body_token) {
        (Some(t), None) | (None, Some(t)) => t,
        (Some(_), Some(_)) => return oauth_error(OAuthError::invalid_request("the access token is sent twice"), true),
        (None, None) => return oauth_error(OAuthError::new(ErrorCode::InvalidToken, "no access token"), true),
    };
    match p.userinfo(&token, now()).await {
        Ok(claims) => json_response(StatusCode::OK, claims),
        Err(e) => oauth_error(e, true),
    }
}
