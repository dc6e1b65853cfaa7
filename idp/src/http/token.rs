//! The token endpoint.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use super::{Shared, authorization, json_response, oauth_error, params};
use crate::unix_now as now;

pub(super) async fn token(State(p): State<Shared>, request: Request) -> Response {
    let (headers, params, _) = match params(request).await {
        Ok(x) => x,
        Err(e) => return oauth_error(e, false),
    };
    match p.token(params, authorization(&headers), now()).await {
        Ok(body) => {
            let mut r = json_response(StatusCode::OK, body);
            r.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            r
        }
        Err(e) => oauth_error(e, false),
    }
}
