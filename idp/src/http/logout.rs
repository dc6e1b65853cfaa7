//! Logout: RP-initiated logout and the citizen's confirmation.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{CSRF_COOKIE, SESSION_COOKIE, Shared, cookie, error_page, page, page_lang, params, redirect, session_form, set_cookie};
use crate::citizens::Lang;
use crate::oauth::OAuthError;
use crate::pages::{self, text};
use crate::unix_now as now;

pub(super) fn with_state(uri: &str, state: Option<&str>) -> String {
    match (url::Url::parse(uri), state) {
        (Ok(mut u), Some(s)) => {
            u.query_pairs_mut().append_pair("state", s);
            u.into()
        }
        _ => uri.to_owned(),
    }
}

pub(super) fn clear_session() -> HeaderValue {
    set_cookie(SESSION_COOKIE, "", Some(0))
}

pub(super) fn logged_out(lang: Lang) -> Response {
    let body = format!(r#"<p role="status">{}</p>"#, text(lang, "logout.done"));
    let mut r = page(StatusCode::OK, pages::layout(lang, text(lang, "title.logged_out"), None, &body));
    r.headers_mut().append(header::SET_COOKIE, clear_session());
    r
}

/// RP-initiated logout 1.0: with a valid `id_token_hint` the session ends at once and the
/// citizen goes back to a registered `post_logout_redirect_uri`; without one, the citizen
/// is asked to confirm. A URI that is not registered exactly is never redirected to.
pub(super) async fn logout(State(p): State<Shared>, request: Request) -> Response {
    let (headers, params, _) = match params(request).await {
        Ok(x) => x,
        Err(e) => return error_page(Lang::Ar, StatusCode::BAD_REQUEST, &e.description),
    };
    let lang = page_lang(params.get("ui_locales"), &[], &headers);
    let state = params.get("state");
    let session_cookie = cookie(&headers, SESSION_COOKIE);
    let Some(hint) = params.get("id_token_hint") else {
        // No proof of which client asks: confirm with the citizen first.
        let csrf = match crate::provider::random_token() {
            Ok(c) => c,
            Err(e) => return OAuthError::server(e).into_response(),
        };
        let body = format!(
            r#"<p>{}</p>
<form method="post" action="/logout/confirm">
<input type="hidden" name="csrf" value="{csrf}">
<input type="hidden" name="lang" value="{tag}">
<button type="submit">{}</button>
</form>"#,
            text(lang, "logout.confirm"),
            text(lang, "logout.submit"),
            tag = lang.tag(),
        );
        let mut r = page(StatusCode::OK, pages::layout(lang, text(lang, "title.logout"), None, &body));
        r.headers_mut().append(header::SET_COOKIE, set_cookie(CSRF_COOKIE, &csrf, None));
        return r;
    };
    let client = match p.logout_hint_client(hint).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(target: "audit", event = "logout.bad_hint", "logout with an id_token_hint not issued here");
            return error_page(lang, StatusCode::BAD_REQUEST, &e.description);
        }
    };
    let target = match params.get("post_logout_redirect_uri") {
        Some(uri) if client.registration.post_logout_redirect_uris.iter().any(|r| r == uri) => Some(uri),
        Some(uri) => {
            tracing::warn!(client = client.id, uri, "logout with an unregistered post_logout_redirect_uri");
            return error_page(lang, StatusCode::BAD_REQUEST, "post_logout_redirect_uri is not registered for this client");
        }
        None => None,
    };
    if let Err(e) = p.end_session(session_cookie, now()).await {
        return e.into_response();
    }
    match target {
        Some(uri) => {
            let mut r = redirect(&with_state(uri, state));
            r.headers_mut().append(header::SET_COOKIE, clear_session());
            r
        }
        None => logged_out(lang),
    }
}

pub(super) async fn logout_confirm(State(p): State<Shared>, request: Request) -> Response {
    let (headers, _, lang) = match session_form(request).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match p.end_session(cookie(&headers, SESSION_COOKIE), now()).await {
        Ok(_) => logged_out(lang),
        Err(e) => e.into_response(),
    }
}
