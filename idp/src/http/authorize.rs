//! The authorization endpoint, and where its answer sends the browser.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::{SESSION_COOKIE, Shared, cookie, error_page, page_lang, params, redirect_to_next};
use crate::citizens::Lang;
use crate::unix_now as now;

pub(super) async fn authorize(State(p): State<Shared>, request: Request) -> Response {
    let (headers, params, _) = match params(request).await {
        Ok(x) => x,
        // Unreadable requests cannot be trusted with a redirect: the provider shows them.
        Err(e) => return error_page(Lang::Ar, StatusCode::BAD_REQUEST, &e.description),
    };
    let lang = page_lang(params.get("ui_locales"), &[], &headers);
    match p.authorize(params, cookie(&headers, SESSION_COOKIE), now()).await {
        Ok(next) => redirect_to_next(next, lang),
        Err(e) => error_page(lang, StatusCode::BAD_REQUEST, &e.0),
    }
}
