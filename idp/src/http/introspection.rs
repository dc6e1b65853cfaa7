//! The introspection endpoint.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::{Shared, authorization, json_response, oauth_error, params};
use crate::unix_now as now;

pub(super) async fn introspect(State(p): State<Shared>, request: Request) -> Response {
    let (headers, params, _) = match params(request).await {
        Ok(x) => x,
        Err(e) => return oauth_error(e, false),
    };
    match p.introspect(params, authorization(&headers), now()).await {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(e) => oauth_error(e, false),
    }
}
