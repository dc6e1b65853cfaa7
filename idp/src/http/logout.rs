//! Logout: RP-initiated logout and the citizen's confirmation.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::OAuthRequest;
use super::{CSRF_COOKIE, PageParams, SESSION_COOKIE, Shared, cookie, error_page, page, page_lang, redirect, session_form, set_cookie};
use crate::citizens::Lang;
use crate::oauth::OAuthError;
use crate::pages::{LoggedOutPage, LogoutConfirmPage, LogoutReturn};
use crate::provider::Provider;
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
    let mut r = page(StatusCode::OK, LoggedOutPage { lang }.render());
    r.headers_mut().append(header::SET_COOKIE, clear_session());
    r
}

/// The page that asks the citizen to confirm a logout nobody proved the citizen wants; its
/// form carries where to go afterwards.
fn confirm_page(lang: Lang, back: Option<LogoutReturn<'_>>) -> Response {
    let csrf = match crate::provider::random_token() {
        Ok(c) => c,
        Err(e) => return OAuthError::server(e).into_response(),
    };
    let mut r = page(StatusCode::OK, LogoutConfirmPage { lang, csrf: &csrf, back }.render());
    r.headers_mut().append(header::SET_COOKIE, set_cookie(CSRF_COOKIE, &csrf, None));
    r
}

/// Ends the browser's session and sends the citizen back to the client, or shows that they
/// are logged out.
async fn end_and_return(p: &Provider, session_cookie: Option<&str>, lang: Lang, back: Option<LogoutReturn<'_>>) -> Response {
    if let Err(e) = p.end_session(session_cookie, now()).await {
        return e.into_response();
    }
    match back {
        Some(b) => {
            let mut r = redirect(&with_state(b.uri, b.state));
            r.headers_mut().append(header::SET_COOKIE, clear_session());
            r
        }
        None => logged_out(lang),
    }
}

/// RP-initiated logout 1.0: the session ends at once only when a valid `id_token_hint`
/// names this browser's session (its `sid`), and the citizen then goes back to a registered
/// `post_logout_redirect_uri`; otherwise (no hint, or a hint about another session, which
/// any page could send) the citizen is asked to confirm first. A URI that is not registered
/// exactly is never redirected to.
pub(super) async fn logout(State(p): State<Shared>, PageParams(OAuthRequest { headers, params, .. }): PageParams) -> Response {
    let lang = page_lang(params.get("ui_locales"), &[], &headers);
    let state = params.get("state");
    let session_cookie = cookie(&headers, SESSION_COOKIE);
    let Some(hint) = params.get("id_token_hint") else {
        // No proof of which client asks: confirm with the citizen first.
        return confirm_page(lang, None);
    };
    let hint = match p.logout_hint(hint).await {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(target: "audit", event = "logout.bad_hint", "logout with an id_token_hint not issued here");
            return error_page(lang, StatusCode::BAD_REQUEST, &e.description);
        }
    };
    let back = match params.get("post_logout_redirect_uri") {
        Some(uri) if hint.client.registration.post_logout_redirect_uris.iter().any(|r| r == uri) => {
            Some(LogoutReturn { client_id: &hint.client.id, uri, state })
        }
        Some(uri) => {
            tracing::warn!(client = hint.client.id.as_str(), uri, "logout with an unregistered post_logout_redirect_uri");
            return error_page(lang, StatusCode::BAD_REQUEST, "post_logout_redirect_uri is not registered for this client");
        }
        None => None,
    };
    let live = match p.session(session_cookie, now()).await {
        Ok(l) => l,
        Err(e) => return OAuthError::from(e).into_response(),
    };
    if let Some(live) = live
        && hint.sid.as_deref() != Some(live.session.sid.as_str())
    {
        tracing::warn!(target: "audit", event = "logout.other_session", client = hint.client.id.as_str(), "logout hint names another session: the citizen is asked");
        return confirm_page(lang, back);
    }
    end_and_return(&p, session_cookie, lang, back).await
}

/// The citizen confirmed a logout: the session ends, and the citizen goes back to the
/// client that asked when its `post_logout_redirect_uri` is registered.
pub(super) async fn logout_confirm(State(p): State<Shared>, request: Request) -> Response {
    let (headers, params, lang) = match session_form(request).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let client = match params.get("client_id") {
        Some(id) => match p.client(id).await {
            Ok(c) => c,
            Err(e) => return OAuthError::from(e).into_response(),
        },
        None => None,
    };
    let back = match (&client, params.get("post_logout_redirect_uri")) {
        (Some(c), Some(uri)) if c.registration.post_logout_redirect_uris.iter().any(|r| r == uri) => {
            Some(LogoutReturn { client_id: &c.id, uri, state: params.get("state") })
        }
        (_, Some(_)) => return error_page(lang, StatusCode::BAD_REQUEST, "post_logout_redirect_uri is not registered for this client"),
        _ => None,
    };
    end_and_return(&p, cookie(&headers, SESSION_COOKIE), lang, back).await
}
