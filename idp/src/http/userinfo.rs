//! The userinfo endpoint: the access token in the `Authorization` header, or in a form
//! body (RFC 6750 2.1, 2.2); never in the query, where logs and referrers keep it (2.3).

use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::Shared;
use super::error::{BearerError, OAuthRequest};
use crate::oauth::{ErrorCode, OAuthError};
use crate::unix_now as now;

pub(super) async fn userinfo(State(p): State<Shared>, request: Request) -> Result<Response, BearerError> {
    let OAuthRequest { headers, mut params, access_token_in_query, .. } = OAuthRequest::from_request(request, &()).await.map_err(BearerError)?;
    if access_token_in_query {
        return Err(BearerError(OAuthError::invalid_request(
            "the access token must not be sent in the query string (RFC 6750 2.3); send it in the Authorization header",
        )));
    }
    let header_token = super::authorization(&headers).filter(|h| h.len() > 7 && h[..7].eq_ignore_ascii_case("bearer ")).map(|h| h[7..].trim().to_owned());
    let token = match (header_token, params.take("access_token")) {
        (Some(t), None) | (None, Some(t)) => t,
        (Some(_), Some(_)) => return Err(BearerError(OAuthError::invalid_request("the access token is sent twice"))),
        (None, None) => return Err(BearerError(OAuthError::new(ErrorCode::InvalidToken, "no access token"))),
    };
    Ok(super::json_response(StatusCode::OK, p.userinfo(&token, now()).await.map_err(BearerError)?))
}
