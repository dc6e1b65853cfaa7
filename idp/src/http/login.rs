//! The login pages: the password and one-time-code forms, and the context every form of a
//! login or consent transaction carries (its anti-CSRF token, language and form target).

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;

use super::transaction::{FormContext, PageRequest, page_request, request_summary, with_form_headers};
use super::{SESSION_COOKIE, Shared, client_address, cookie, failure_page, page, redirect, redirect_to_next, set_cookie};
use policies::NationalId;

use crate::login::{Browser, LoginFailure, LoginStep, Transaction};
use crate::pages::{self, LoginPage, SmartIdForm, text};
use crate::provider::Provider;
use crate::session::LiveSession;
use crate::throttle::{DEVICE_COOKIE, DEVICE_COOKIE_LIFETIME};
use crate::unix_now as now;

#[derive(Default)]
pub(super) struct LoginForm<'a> {
    pub(super) national_id: &'a str,
    pub(super) error: Option<&'a str>,
    pub(super) code_step: bool,
    pub(super) smart_id_error: Option<&'a str>,
}

pub(super) fn render_login(
    p: &Provider,
    ctx: &FormContext,
    t: &Transaction,
    client: &crate::clients::Client,
    form: LoginForm<'_>,
    status: StatusCode,
) -> Response {
    let switch = pages::switch_href(ctx.lang, &format!("/login?tx={}", ctx.tx));
    let view = LoginPage {
        lang: ctx.lang,
        summary: request_summary(p, ctx.lang, client, &t.request.level),
        fields: ctx.fields(),
        national_id: form.national_id,
        error: form.error,
        code_step: form.code_step,
        code_with_password: p.level_needs_code(&t.request),
        // The password form when a password method reaches the level; the smart-ID form
        // when smart-ID is enabled (and always for a level only smart-ID reaches).
        password_form: p.password_reaches(&t.request),
        smart_id: p.smart_id.is_some().then_some(SmartIdForm { error: form.smart_id_error }),
        switch_href: &switch,
    };
    with_form_headers(page(status, view.render()), ctx)
}

pub(super) async fn login_page(State(p): State<Shared>, request: Request) -> Response {
    let PageRequest { t, ctx, client, .. } = match page_request(&p, request, false).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let hint = t.pending_citizen.clone().or_else(|| t.request.login_hint.clone()).unwrap_or_default();
    // A step-up to a level only smart-ID reaches asks for smart-ID, not for the code.
    let code_step = t.pending_citizen.is_some() && p.password_reaches(&t.request);
    let form = LoginForm { national_id: &hint, error: None, code_step, smart_id_error: None };
    render_login(&p, &ctx, &t, &client, form, StatusCode::OK)
}

pub(super) async fn login_submit(State(p): State<Shared>, request: Request) -> Response {
    let PageRequest { headers, params, address, t, ctx, client } = match page_request(&p, request, true).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let national_id = params.get("national_id").unwrap_or_default().trim();
    let lang = ctx.lang;
    // One rule for national ids (policies::NationalId): a malformed one is refused here, with
    // the message the CLI and the RA API give, and counts against nobody.
    let Ok(typed) = national_id.parse::<NationalId>() else {
        let form = LoginForm { national_id, error: Some(text(lang, "error.national_id")), code_step: t.pending_citizen.is_some(), smart_id_error: None };
        return render_login(&p, &ctx, &t, &client, form, StatusCode::BAD_REQUEST);
    };
    let address = client_address(&headers, address, &p.settings.trusted_proxies).map_or_else(|| "unknown".into(), |a| a.to_string());
    let browser = Browser { address: &address, session: cookie(&headers, SESSION_COOKIE), device: cookie(&headers, DEVICE_COOKIE) };
    let step = p.login(&ctx.tx, &typed, params.get("password").unwrap_or_default(), params.get("code"), &browser, now()).await;
    match step {
        Ok(LoginStep::Done { session, next, device_cookie }) => logged_in(redirect_to_next(next, lang), &session, &device_cookie),
        Ok(LoginStep::Refused(url)) => redirect(&url),
        Ok(LoginStep::NeedCode) => {
            let form = LoginForm { national_id, error: None, code_step: true, smart_id_error: None };
            render_login(&p, &ctx, &t, &client, form, StatusCode::OK)
        }
        Ok(LoginStep::Failed(why)) => {
            let pending = t.pending_citizen.is_some();
            let (message, code_step, status) = match why {
                LoginFailure::BadCredentials => ("error.credentials", false, StatusCode::UNAUTHORIZED),
                LoginFailure::BadCode => ("error.code", pending, StatusCode::UNAUTHORIZED),
                LoginFailure::Locked => ("error.locked", pending, StatusCode::UNAUTHORIZED),
                LoginFailure::Busy => ("error.busy", pending, StatusCode::SERVICE_UNAVAILABLE),
            };
            let form = LoginForm { national_id, error: Some(text(lang, message)), code_step, smart_id_error: None };
            let mut page = render_login(&p, &ctx, &t, &client, form, status);
            if why == LoginFailure::Busy {
                // The same form, to send again in a minute (RFC 9110 10.2.3).
                page.headers_mut().insert(header::RETRY_AFTER, axum::http::HeaderValue::from_static("60"));
            }
            page
        }
        Err(e) => failure_page(lang, e),
    }
}

/// A response that logs the browser in: the new SSO session cookie, and the device cookie
/// that marks the browser as the citizen's own.
pub(super) fn logged_in(mut response: Response, session: &LiveSession, device_cookie: &str) -> Response {
    response.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, &session.id, None));
    response.headers_mut().append(header::SET_COOKIE, set_cookie(DEVICE_COOKIE, device_cookie, Some(DEVICE_COOKIE_LIFETIME.as_secs() as i64)));
    response
}
