//! The authorization endpoint, and where its answer sends the browser.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::error::OAuthRequest;
use super::{PageParams, SESSION_COOKIE, Shared, cookie, error_page, failure_page, page_lang, redirect_to_next};
use crate::unix_now as now;

pub(super) async fn authorize(State(p): State<Shared>, PageParams(OAuthRequest { headers, params, .. }): PageParams) -> Response {
    let lang = page_lang(params.get("ui_locales"), &[], &headers);
    match p.authorize(params, cookie(&headers, SESSION_COOKIE), now()).await {
        Ok(next) => redirect_to_next(next, lang),
        Err(crate::authorize::PageError::Refused(message)) => error_page(lang, StatusCode::BAD_REQUEST, &message),
        Err(crate::authorize::PageError::Unavailable(e)) => failure_page(lang, e),
    }
}
