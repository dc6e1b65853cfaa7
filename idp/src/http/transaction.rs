//! What every form of a login or consent transaction carries: its anti-CSRF token (checked
//! against the cookie and the transaction), its language, and the page headers that allow it
//! to post back.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

use super::error::OAuthRequest;
use super::{CSRF_COOKIE, PageParams, csrf_ok, error_page, failure_page, page_lang, set_cookie};
use policies::LevelName;

use crate::citizens::Lang;
use crate::login::Transaction;
use crate::oauth::{OAuthError, Params};
use crate::pages::{self, RequestSummary, TransactionFields, text};
use crate::provider::Provider;

/// What a form on a transaction page carries.
pub(super) struct FormContext {
    pub(super) tx: String,
    pub(super) csrf: String,
    pub(super) lang: Lang,
    pub(super) form_action: String,
}

/// A request to a login or consent page: its parameters, the transaction it belongs to and
/// that transaction's client. A form post (`csrf`) must carry the transaction's anti-CSRF
/// token in the form and in the cookie.
pub(super) struct PageRequest {
    pub(super) headers: HeaderMap,
    pub(super) params: Params,
    pub(super) address: Option<SocketAddr>,
    pub(super) t: Transaction,
    pub(super) ctx: FormContext,
    pub(super) client: Arc<crate::clients::Client>,
}

pub(super) async fn page_request(p: &Provider, request: Request, csrf: bool) -> Result<PageRequest, Response> {
    let PageParams(OAuthRequest { headers, params, peer: address, .. }) = PageParams::from_request(request, &()).await?;
    let lang_switch = params.get("lang");
    let fallback = page_lang(lang_switch, &[], &headers);
    let tx = params.get("tx").unwrap_or_default().to_owned();
    let t = match p.transaction(&tx).await {
        Ok(Some(t)) => t,
        Ok(None) => return Err(error_page(fallback, StatusCode::BAD_REQUEST, text(fallback, "error.expired"))),
        Err(e) => return Err(failure_page(fallback, OAuthError::server(e))),
    };
    let lang = page_lang(lang_switch, &t.request.ui_langs(), &headers);
    let Ok(Some(client)) = p.client(&t.request.client_id).await else {
        return Err(error_page(lang, StatusCode::BAD_REQUEST, text(lang, "error.expired")));
    };
    // The form's answer redirects to the client: the policy must allow that origin.
    let form_action = url::Url::parse(&t.request.redirect_uri).map(|u| u.origin().ascii_serialization()).unwrap_or_default();
    let ctx = FormContext { tx, csrf: t.csrf.clone(), lang, form_action };
    if csrf && !csrf_ok(&headers, &params, &t.csrf) {
        tracing::warn!(target: "audit", event = "csrf.refused", "form post without a valid anti-CSRF token");
        return Err(error_page(ctx.lang, StatusCode::FORBIDDEN, text(ctx.lang, "error.csrf")));
    }
    Ok(PageRequest { headers, params, address, t, ctx, client })
}

pub(super) fn with_form_headers(mut response: Response, ctx: &FormContext) -> Response {
    let csp = format!("default-src 'none'; style-src 'self'; form-action 'self' {}; frame-ancestors 'none'; base-uri 'none'", ctx.form_action);
    if let Ok(v) = HeaderValue::from_str(&csp) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    response.headers_mut().append(header::SET_COOKIE, set_cookie(CSRF_COOKIE, &ctx.csrf, None));
    response
}

/// The service asking and the level it needs, named as the policy files name them.
pub(super) fn request_summary<'a>(p: &'a Provider, lang: Lang, client: &'a crate::clients::Client, level: &'a LevelName) -> RequestSummary<'a> {
    let level = p.policies().level_named(level).map_or(level.as_str(), |l| pages::localized(lang, &l.title));
    RequestSummary { lang, service: pages::localized(lang, &client.service.name), level }
}

impl FormContext {
    /// The hidden fields of the transaction's forms.
    pub(super) fn fields(&self) -> TransactionFields<'_> {
        TransactionFields { tx: &self.tx, csrf: &self.csrf, lang: self.lang }
    }
}
