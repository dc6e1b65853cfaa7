//! The revocation endpoint.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{Shared, authorization, oauth_error, params};
use crate::unix_now as now;

pub(super) async fn revoke(State(p): State<Shared>, request: Request) -> Response {
    let (headers, params, _) = match params(request).await {
        Ok(x) => x,
        Err(e) => return oauth_error(e, false),
    };
    match p.revoke(params, authorization(&headers), now()).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => oauth_error(e, false),
    }
}
