//! The citizen's account page: consents given, and their withdrawal.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::OAuthRequest;
use super::{CSRF_COOKIE, PageParams, SESSION_COOKIE, Shared, cookie, error_page, own_client_login, page, page_lang, redirect, session_form, set_cookie};
use crate::oauth::OAuthError;
use crate::pages::{self, AccountConsent, AccountPage, text};
use crate::unix_now as now;

/// The citizen's account page: the consents they have given, each of which they can
/// withdraw. Without an SSO session the citizen logs in first, through the ordinary
/// authorization flow of the provider's own client, which comes back here.
pub(super) async fn account(State(p): State<Shared>, PageParams(OAuthRequest { headers, params, .. }): PageParams) -> Response {
    let lang = page_lang(params.get("lang").or(params.get("ui_locales")), &[], &headers);
    if let Some(code) = params.get("code") {
        // Back from logging in: the code is of no use to anyone.
        if let Err(e) = p.discard_code(code).await {
            return e.into_response();
        }
    }
    let consents = match p.account_consents(cookie(&headers, SESSION_COOKIE), now()).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let Some(consents) = consents else {
        if params.get("code").is_some() || params.get("error").is_some() {
            return error_page(lang, StatusCode::UNAUTHORIZED, text(lang, "account.no_session"));
        }
        return own_client_login(&p, crate::provider::ACCOUNT_CLIENT, "/account", lang, None);
    };
    let csrf = match crate::provider::random_token() {
        Ok(c) => c,
        Err(e) => return OAuthError::server(e).into_response(),
    };
    let claims: Vec<Vec<String>> = consents.iter().map(|(consent, _)| serde_json::from_str(&consent.grant).unwrap_or_default()).collect();
    let listed = consents
        .iter()
        .zip(claims)
        .map(|((consent, client), claims)| AccountConsent {
            service: client.as_ref().map_or(text(lang, "account.gone"), |c| pages::localized(lang, &c.service.name)),
            client_id: &consent.client_id,
            claims,
        })
        .collect();
    let view = AccountPage { lang, csrf: &csrf, consents: listed, withdrawn: params.get("withdrawn").is_some() };
    let mut r = page(StatusCode::OK, view.render());
    r.headers_mut().append(header::SET_COOKIE, set_cookie(CSRF_COOKIE, &csrf, None));
    r
}

/// Withdraws one consent from the account page (a form post with its anti-CSRF token).
pub(super) async fn account_withdraw(State(p): State<Shared>, request: Request) -> Response {
    let (headers, params, lang) = match session_form(request).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(client) = params.get("client") else { return error_page(lang, StatusCode::BAD_REQUEST, "missing parameter client") };
    match p.withdraw_consent(cookie(&headers, SESSION_COOKIE), client, now()).await {
        Ok(_) => {
            let mut r = redirect(&format!("/account?lang={}&withdrawn=1", lang.tag()));
            *r.status_mut() = StatusCode::SEE_OTHER;
            r
        }
        Err(e) => e.into_response(),
    }
}
