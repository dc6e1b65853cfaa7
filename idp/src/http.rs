//! The provider's HTTP endpoints and pages. Thin handlers: read the request, call the
//! [`Provider`], render; protocol errors become OAuth error bodies in [`oauth_error`] and
//! nowhere else.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::citizens::{Lang, SUPPORTED_CLAIMS};
use crate::oauth::{ErrorCode, MAX_REQUEST_BYTES, OAuthError, Params};
use crate::pages::{self, escape, text};
use crate::provider::{LoginFailure, LoginStep, Next, Provider};
use crate::smart_id::Poll;
use crate::unix_now as now;

/// The SSO session cookie.
pub const SESSION_COOKIE: &str = "__Host-hawiya-sso";
/// The anti-CSRF cookie paired with the token in every form.
pub const CSRF_COOKIE: &str = "__Host-hawiya-csrf";

type Shared = Arc<Provider>;

/// The provider's routes: discovery, keys, the protocol endpoints and the login pages.
pub fn router(provider: Arc<Provider>) -> Router {
    // Behind TLS (an https issuer), browsers are told to keep to it.
    let hsts = provider.issuer().starts_with("https://");
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/authorize", get(authorize).post(authorize))
        .route("/login", get(login_page).post(login_submit))
        .route("/login/smart-id", get(smart_id_poll).post(smart_id_start))
        .route("/smart-id/device/pending", get(device_pending))
        .route("/smart-id/device/answer", post(device_answer))
        .route("/consent", get(consent_page).post(consent_submit))
        .route("/token", post(token))
        .route("/userinfo", get(userinfo).post(userinfo))
        .route("/revoke", post(revoke))
        .route("/introspect", post(introspect))
        .route("/logout", get(logout).post(logout))
        .route("/logout/confirm", post(logout_confirm))
        .route("/account", get(account))
        .route("/account/withdraw", post(account_withdraw))
        .route("/assets/hawiya.css", get(stylesheet))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .layer(axum::middleware::map_response(move |r| security_headers(r, hsts)))
        .with_state(provider)
}

/// Headers on every response: no framing, no sniffing, no referrer, nothing cached, and
/// HSTS when the issuer is https.
async fn security_headers(mut response: Response, hsts: bool) -> Response {
    let h = response.headers_mut();
    if hsts {
        h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000; includeSubDomains"));
    }
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static("default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

/// The value of cookie `name` in a request's headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn set_cookie(name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
    let age = max_age.map(|a| format!("; Max-Age={a}")).unwrap_or_default();
    // Only ever base64url tokens: always a valid header value.
    HeaderValue::from_str(&format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Lax{age}")).unwrap_or(HeaderValue::from_static(""))
}

fn redirect(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(l) => (StatusCode::SEE_OTHER, [(header::LOCATION, l)]).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// A protocol error as the endpoint's caller must see it (RFC 6749 5.2, RFC 6750 3).
fn oauth_error(e: OAuthError, bearer: bool) -> Response {
    let status = match e.code {
        ErrorCode::InvalidClient | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    let mut response = json_response(status, json!({"error": e.code.as_str(), "error_description": e.description}));
    if status == StatusCode::UNAUTHORIZED {
        let challenge = if bearer {
            format!("Bearer error=\"{}\", error_description=\"{}\"", e.code.as_str(), e.description.replace('"', "'"))
        } else {
            "Basic realm=\"hawiya\"".to_owned()
        };
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
    }
    response
}

/// The page language: an explicit switch, else the request's `ui_locales`, else the
/// browser's `Accept-Language`, else Arabic.
fn page_lang(switch: Option<&str>, ui_locales: &[Lang], headers: &HeaderMap) -> Lang {
    switch
        .and_then(Lang::first_of)
        .or_else(|| ui_locales.first().copied())
        .or_else(|| headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).and_then(Lang::first_of))
        .unwrap_or(Lang::Ar)
}

fn page(status: StatusCode, html: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

fn error_page(lang: Lang, status: StatusCode, message: &str) -> Response {
    let body = format!(r#"<p class="error" role="alert">{}</p>"#, escape(message));
    page(status, pages::layout(lang, text(lang, "title.error"), None, &body))
}

/// Reads the parameters of a GET (query) or POST (form body, plus the query).
async fn params(request: Request) -> Result<(HeaderMap, Params, Option<SocketAddr>), OAuthError> {
    let address = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let (parts, body) = request.into_parts();
    let query = Params::parse(parts.uri.query().unwrap_or_default().as_bytes())?;
    let params = if parts.method == Method::POST {
        let is_form = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded")));
        let body = axum::body::to_bytes(body, MAX_REQUEST_BYTES)
            .await
            .map_err(|_| OAuthError::invalid_request(format!("request larger than {MAX_REQUEST_BYTES} bytes")))?;
        if !is_form && !body.is_empty() {
            return Err(OAuthError::invalid_request("a POST body must be application/x-www-form-urlencoded"));
        }
        query.merge(Params::parse(&body)?)?
    } else {
        query
    };
    Ok((parts.headers, params, address))
}

/// The citizen's address, for the per-address login limit: the connection's peer or, when
/// that peer is a trusted reverse proxy, the address the proxies say they forwarded for (the
/// rightmost `X-Forwarded-For` entry that is not a trusted proxy itself; what lies left of
/// it was written by the client and proves nothing).
fn client_address(headers: &HeaderMap, peer: Option<SocketAddr>, trusted: &[std::net::IpAddr]) -> Option<std::net::IpAddr> {
    let mut address = peer?.ip();
    if !trusted.contains(&address) {
        return Some(address);
    }
    let forwarded: Vec<&str> = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).collect();
    for entry in forwarded.iter().rev() {
        match entry.trim().parse() {
            Ok(hop) if trusted.contains(&hop) => address = hop,
            Ok(hop) => return Some(hop),
            Err(_) => break,
        }
    }
    Some(address)
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
}

async fn discovery(State(p): State<Shared>) -> Response {
    let issuer = p.issuer();
    let acr: Vec<&String> = p.policies().levels().iter().flat_map(|l| &l.acr).collect();
    let algs: Vec<&str> = crate::keys::ALGORITHMS.iter().map(|a| a.name()).collect();
    let client_algs = ["RS256", "PS256", "ES256", "ES384", "EdDSA"];
    json_response(
        StatusCode::OK,
        json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "userinfo_endpoint": format!("{issuer}/userinfo"),
            "jwks_uri": format!("{issuer}/jwks"),
            "revocation_endpoint": format!("{issuer}/revoke"),
            "introspection_endpoint": format!("{issuer}/introspect"),
            "end_session_endpoint": format!("{issuer}/logout"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["pairwise", "public"],
            "id_token_signing_alg_values_supported": algs,
            "scopes_supported": ["openid", "profile", "email", "phone", "address", "national_id", "offline_access"],
            "claims_supported": SUPPORTED_CLAIMS,
            "claims_parameter_supported": true,
            "request_parameter_supported": true,
            "request_object_signing_alg_values_supported": client_algs,
            "request_uri_parameter_supported": false,
            "acr_values_supported": acr,
            "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic", "client_secret_post", "none"],
            "token_endpoint_auth_signing_alg_values_supported": client_algs,
            "revocation_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic", "client_secret_post", "none"],
            "introspection_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "ui_locales_supported": ["ar", "en"],
            "claims_locales_supported": ["ar", "en"],
            "display_values_supported": ["page", "popup", "touch", "wap"],
            "prompt_values_supported": ["none", "login", "consent"],
            "authorization_response_iss_parameter_supported": true,
            "backchannel_logout_supported": true,
            "backchannel_logout_session_supported": true,
        }),
    )
}

async fn jwks(State(p): State<Shared>) -> Response {
    match p.keys().jwks(now()).await {
        Ok(keys) => {
            let mut r = json_response(StatusCode::OK, keys);
            // Short, so that a rotation reaches relying parties before the new key signs.
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=60"));
            r
        }
        Err(e) => oauth_error(OAuthError::server(e), false),
    }
}

async fn authorize(State(p): State<Shared>, request: Request) -> Response {
    let (headers, params, _) = match params(request).await {
        Ok(x) => x,
        // Unreadable requests cannot be trusted with a redirect: the provider shows them.
        Err(e) => return error_page(Lang::Ar, StatusCode::BAD_REQUEST, &e.description),
    };
    let lang = page_lang(params.get("ui_locales"), &[], &headers);
    match p.authorize(params, cookie(&headers, SESSION_COOKIE), now()).await {
        Ok(next) => follow(next, lang),
        Err(e) => error_page(lang, StatusCode::BAD_REQUEST, &e.0),
    }
}

fn follow(next: Next, lang: Lang) -> Response {
    match next {
        Next::Redirect(url) => redirect(&url),
        Next::Login { tx } => redirect(&format!("/login?tx={tx}&lang={}", lang.tag())),
        Next::Consent { tx } => redirect(&format!("/consent?tx={tx}&lang={}", lang.tag())),
    }
}

/// What a form on a transaction page carries.
struct FormContext {
    tx: String,
    csrf: String,
    lang: Lang,
    form_action: String,
}

/// A request to a login or consent page: its parameters, the transaction it belongs to and
/// that transaction's client. A form post (`csrf`) must carry the transaction's anti-CSRF
/// token in the form and in the cookie.
struct PageRequest {
    headers: HeaderMap,
    params: Params,
    address: Option<SocketAddr>,
    t: crate::provider::Transaction,
    ctx: FormContext,
    client: Arc<crate::clients::Client>,
}

async fn page_request(p: &Provider, request: Request, csrf: bool) -> Result<PageRequest, Response> {
    let (headers, params, address) = params(request).await.map_err(|e| error_page(Lang::Ar, StatusCode::BAD_REQUEST, &e.description))?;
    let lang_switch = params.get("lang");
    let fallback = page_lang(lang_switch, &[], &headers);
    let tx = params.get("tx").unwrap_or_default().to_owned();
    let t = match p.transaction(&tx).await {
        Ok(Some(t)) => t,
        Ok(None) => return Err(error_page(fallback, StatusCode::BAD_REQUEST, text(fallback, "error.expired"))),
        Err(e) => return Err(oauth_error(OAuthError::server(e), false)),
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

fn with_form_headers(mut response: Response, ctx: &FormContext) -> Response {
    let csp = format!("default-src 'none'; style-src 'self'; form-action 'self' {}; frame-ancestors 'none'; base-uri 'none'", ctx.form_action);
    if let Ok(v) = HeaderValue::from_str(&csp) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    response.headers_mut().append(header::SET_COOKIE, set_cookie(CSRF_COOKIE, &ctx.csrf, None));
    response
}

/// The service asking and the level it needs, named as the policy files name them.
fn request_summary(p: &Provider, lang: Lang, client: &crate::clients::Client, level: &str) -> String {
    let level = p.policies().level(level).map_or(level, |l| pages::localized(lang, &l.title));
    format!(
        r#"<dl class="request"><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd></dl>"#,
        text(lang, "service"),
        escape(pages::localized(lang, &client.service.name)),
        text(lang, "level"),
        escape(level),
    )
}

#[derive(Default)]
struct LoginForm<'a> {
    national_id: &'a str,
    error: Option<&'a str>,
    code_step: bool,
    smart_id_error: Option<&'a str>,
}

fn render_login(
    p: &Provider,
    ctx: &FormContext,
    t: &crate::provider::Transaction,
    client: &crate::clients::Client,
    form: LoginForm<'_>,
    status: StatusCode,
) -> Response {
    let lang = ctx.lang;
    let error_id = "login-error";
    let (error_html, described) = match form.error {
        Some(e) => {
            (format!(r#"<p class="error" id="{error_id}" role="alert">{}</p>"#, escape(e)), format!(r#" aria-describedby="{error_id}" aria-invalid="true""#))
        }
        None => (String::new(), String::new()),
    };
    let fields = if form.code_step {
        format!(
            r#"<input type="hidden" name="national_id" value="{nid}">
<label for="code">{code}</label>
<input type="text" id="code" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{{6}}" maxlength="6" required autofocus{described}>"#,
            nid = escape(form.national_id),
            code = text(lang, "code"),
        )
    } else {
        let code_field = if p.level_needs_code(&t.request) {
            format!(
                r#"<label for="code">{}</label>
<input type="text" id="code" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{{6}}" maxlength="6">"#,
                text(lang, "code")
            )
        } else {
            String::new()
        };
        format!(
            r#"<label for="national_id">{nid_label}</label>
<input type="text" id="national_id" name="national_id" value="{nid}" autocomplete="username" inputmode="numeric" required{autofocus_nid}{described}>
<label for="password">{pw_label}</label>
<input type="password" id="password" name="password" autocomplete="current-password" required{autofocus_pw}{described}>
{code_field}"#,
            nid_label = text(lang, "national_id"),
            nid = escape(form.national_id),
            pw_label = text(lang, "password"),
            autofocus_nid = if form.national_id.is_empty() { " autofocus" } else { "" },
            autofocus_pw = if form.national_id.is_empty() { "" } else { " autofocus" },
        )
    };
    let title = text(lang, if form.code_step { "title.code" } else { "title.login" });
    let hidden = format!(
        r#"<input type="hidden" name="tx" value="{}">
<input type="hidden" name="csrf" value="{}">
<input type="hidden" name="lang" value="{}">"#,
        escape(&ctx.tx),
        escape(&ctx.csrf),
        lang.tag()
    );
    // The password form when a password method reaches the level; the smart-ID form when
    // smart-ID is enabled (and always for a level only smart-ID reaches).
    let password_form = if p.password_reaches(&t.request) || form.code_step {
        format!(
            r#"<form method="post" action="/login">
{hidden}
{fields}
<button type="submit">{submit}</button>
</form>"#,
            submit = text(lang, if form.code_step { "submit.code" } else { "submit.login" }),
        )
    } else {
        String::new()
    };
    let smart_id_form = if p.smart_id.is_some() && !form.code_step {
        let (error_html, described) = match form.smart_id_error {
            Some(e) => {
                (format!(r#"<p class="error" id="smart-id-error" role="alert">{}</p>"#, escape(e)), r#" aria-describedby="smart-id-error" aria-invalid="true""#)
            }
            None => (String::new(), ""),
        };
        format!(
            r#"<h2>{heading}</h2>{error_html}
<form method="post" action="/login/smart-id">
{hidden}
<label for="smart_id_national_id">{nid_label}</label>
<input type="text" id="smart_id_national_id" name="national_id" value="{nid}" autocomplete="username" inputmode="numeric" required{described}>
<button type="submit">{submit}</button>
</form>"#,
            heading = text(lang, "smart_id.heading"),
            nid_label = text(lang, "national_id"),
            nid = escape(form.national_id),
            submit = text(lang, "smart_id.submit"),
        )
    } else {
        String::new()
    };
    let body = format!("{summary}{error_html}\n{password_form}\n{smart_id_form}", summary = request_summary(p, lang, client, &t.request.level));
    let other = if lang == Lang::Ar { "en" } else { "ar" };
    let switch = format!("/login?tx={}&lang={other}", ctx.tx);
    with_form_headers(page(status, pages::layout(lang, title, Some(&switch), &body)), ctx)
}

async fn login_page(State(p): State<Shared>, request: Request) -> Response {
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

/// Checks the anti-CSRF token of a form: the one in the form, the cookie, and the one
/// the transaction was started with must all be equal.
fn csrf_ok(headers: &HeaderMap, params: &Params, expected: &str) -> bool {
    let form = params.get("csrf").unwrap_or_default();
    let cookie = cookie(headers, CSRF_COOKIE).unwrap_or_default();
    let eq = |a: &str, b: &str| aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok();
    !expected.is_empty() && eq(form, expected) && eq(cookie, expected)
}

async fn login_submit(State(p): State<Shared>, request: Request) -> Response {
    let PageRequest { headers, params, address, t, ctx, client } = match page_request(&p, request, true).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let national_id = params.get("national_id").unwrap_or_default().trim();
    let address = client_address(&headers, address, &p.settings.trusted_proxies).map_or_else(|| "unknown".into(), |a| a.to_string());
    let step =
        p.login(&ctx.tx, national_id, params.get("password").unwrap_or_default(), params.get("code"), &address, cookie(&headers, SESSION_COOKIE), now()).await;
    let lang = ctx.lang;
    match step {
        Ok(LoginStep::Done(session, next)) => {
            let mut r = follow(next, lang);
            r.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, &session.id, None));
            r
        }
        Ok(LoginStep::Refused(url)) => redirect(&url),
        Ok(LoginStep::NeedCode) => {
            let form = LoginForm { national_id, error: None, code_step: true, smart_id_error: None };
            render_login(&p, &ctx, &t, &client, form, StatusCode::OK)
        }
        Ok(LoginStep::Failed(why)) => {
            let (message, code_step) = match why {
                LoginFailure::BadCredentials => (text(lang, "error.credentials"), false),
                LoginFailure::BadCode => (text(lang, "error.code"), t.pending_citizen.is_some()),
                LoginFailure::Locked => (text(lang, "error.locked"), t.pending_citizen.is_some()),
            };
            let form = LoginForm { national_id, error: Some(message), code_step, smart_id_error: None };
            render_login(&p, &ctx, &t, &client, form, StatusCode::UNAUTHORIZED)
        }
        Err(e) => error_page(lang, StatusCode::BAD_REQUEST, &e.description),
    }
}

/// The page that waits for the citizen's device: the verification code, refreshed every
/// two seconds without JavaScript (the `Refresh` header) and by a visible link.
fn smart_id_waiting(p: &Provider, ctx: &FormContext, client: &crate::clients::Client, level: &str, session: &str, code: &str) -> Response {
    let lang = ctx.lang;
    let poll = format!("/login/smart-id?tx={}&session={session}&lang={}", ctx.tx, lang.tag());
    let body = format!(
        r#"{summary}<p>{intro}</p>
<p class="verification-code" aria-label="{label}"><strong id="verification-code">{code}</strong></p>
<p role="status">{waiting}</p>
<p><a href="{href}">{check}</a></p>"#,
        summary = request_summary(p, lang, client, level),
        intro = text(lang, "smart_id.intro"),
        label = text(lang, "smart_id.code_label"),
        code = escape(code),
        waiting = text(lang, "smart_id.waiting"),
        href = escape(&poll),
        check = text(lang, "smart_id.check"),
    );
    let other = if lang == Lang::Ar { "en" } else { "ar" };
    let switch = format!("/login/smart-id?tx={}&session={session}&lang={other}", ctx.tx);
    let mut response = with_form_headers(page(StatusCode::OK, pages::layout(lang, text(lang, "smart_id.heading"), Some(&switch), &body)), ctx);
    if let Ok(v) = HeaderValue::from_str(&format!("2; url={poll}")) {
        response.headers_mut().insert(HeaderName::from_static("refresh"), v);
    }
    response
}

async fn smart_id_start(State(p): State<Shared>, request: Request) -> Response {
    let PageRequest { headers, params, address, t, ctx, client } = match page_request(&p, request, true).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let national_id = params.get("national_id").unwrap_or_default().trim().to_owned();
    let address = client_address(&headers, address, &p.settings.trusted_proxies).map_or_else(|| "unknown".into(), |a| a.to_string());
    match p.start_smart_id(&ctx.tx, &national_id, &address, now()).await {
        Ok((session, code)) => smart_id_waiting(&p, &ctx, &client, &t.request.level, &session, &code),
        Err(e) if matches!(e.code, ErrorCode::AccessDenied | ErrorCode::InteractionRequired) => {
            let (key, status) = match e.code {
                ErrorCode::AccessDenied => ("smart_id.none", StatusCode::UNAUTHORIZED),
                _ => ("smart_id.flood", StatusCode::TOO_MANY_REQUESTS),
            };
            let form = LoginForm { national_id: &national_id, smart_id_error: Some(text(ctx.lang, key)), ..Default::default() };
            render_login(&p, &ctx, &t, &client, form, status)
        }
        Err(e) => error_page(ctx.lang, StatusCode::BAD_REQUEST, &e.description),
    }
}

async fn smart_id_poll(State(p): State<Shared>, request: Request) -> Response {
    let PageRequest { headers, params, t, ctx, client, .. } = match page_request(&p, request, false).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let session = params.get("session").unwrap_or_default().to_owned();
    let polled = p.poll_smart_id(&ctx.tx, &session, cookie(&headers, CSRF_COOKIE), cookie(&headers, SESSION_COOKIE), now()).await;
    match polled {
        Ok(Poll::Waiting { code }) => smart_id_waiting(&p, &ctx, &client, &t.request.level, &session, &code),
        Ok(Poll::Step(LoginStep::Done(session, next))) => {
            let mut r = follow(next, ctx.lang);
            r.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, &session.id, None));
            r
        }
        Ok(Poll::Step(LoginStep::Refused(url))) => redirect(&url),
        Ok(Poll::Step(_)) => error_page(ctx.lang, StatusCode::BAD_REQUEST, text(ctx.lang, "error.expired")),
        Ok(Poll::Failed(reason)) => {
            let hint = t.pending_citizen.clone().unwrap_or_default();
            let form = LoginForm { national_id: &hint, smart_id_error: Some(text(ctx.lang, reason)), ..Default::default() };
            render_login(&p, &ctx, &t, &client, form, StatusCode::UNAUTHORIZED)
        }
        Err(e) => error_page(ctx.lang, StatusCode::FORBIDDEN, &e.description),
    }
}

/// The header that carries a device's signed proof.
pub const DEVICE_PROOF_HEADER: &str = "hawiya-device-proof";

async fn device_pending(State(p): State<Shared>, headers: HeaderMap) -> Response {
    let proof = headers.get(DEVICE_PROOF_HEADER).and_then(|v| v.to_str().ok());
    let national_id = match p.device(proof, "GET", "/smart-id/device/pending", now()).await {
        Ok(n) => n,
        Err(e) => return oauth_error(e, false),
    };
    match p.device_pending(&national_id).await {
        Ok(Some(pending)) => json_response(StatusCode::OK, serde_json::to_value(pending).unwrap_or_default()),
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => oauth_error(e, false),
    }
}

async fn device_answer(State(p): State<Shared>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let proof = headers.get(DEVICE_PROOF_HEADER).and_then(|v| v.to_str().ok());
    let national_id = match p.device(proof, "POST", "/smart-id/device/answer", now()).await {
        Ok(n) => n,
        Err(e) => return oauth_error(e, false),
    };
    let answer: crate::smart_id::Answer = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => return oauth_error(OAuthError::invalid_request(format!("the answer is not the expected JSON: {e}")), false),
    };
    match p.device_answer(&national_id, &answer, now()).await {
        Ok(state) => json_response(StatusCode::OK, serde_json::to_value(state).unwrap_or_default()),
        Err(e) => oauth_error(e, false),
    }
}

async fn consent_page(State(p): State<Shared>, request: Request) -> Response {
    let PageRequest { t, ctx, client, .. } = match page_request(&p, request, false).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let lang = ctx.lang;
    let claims: String = p.released_claims(&client, &t.request).iter().map(|c| format!("<li>{}</li>", escape(&pages::claim_name(lang, c)))).collect();
    let buttons = if client.service.consent_required {
        format!(
            r#"<button type="submit" name="decision" value="allow">{}</button>
<button type="submit" name="decision" value="deny" class="secondary">{}</button>"#,
            text(lang, "consent.allow"),
            text(lang, "consent.deny")
        )
    } else {
        format!(r#"<button type="submit" name="decision" value="allow">{}</button>"#, text(lang, "consent.continue"))
    };
    let intro = text(lang, if client.service.consent_required { "consent.intro" } else { "consent.inform" });
    let body = format!(
        r#"{summary}<p>{intro}</p><ul>{claims}</ul>
<form method="post" action="/consent">
<input type="hidden" name="tx" value="{tx}">
<input type="hidden" name="csrf" value="{csrf}">
<input type="hidden" name="lang" value="{tag}">
{buttons}
</form>"#,
        summary = request_summary(&p, lang, &client, &t.request.level),
        tx = escape(&ctx.tx),
        csrf = escape(&ctx.csrf),
        tag = lang.tag(),
    );
    let other = if lang == Lang::Ar { "en" } else { "ar" };
    let switch = format!("/consent?tx={}&lang={other}", ctx.tx);
    with_form_headers(page(StatusCode::OK, pages::layout(lang, text(lang, "title.consent"), Some(&switch), &body)), &ctx)
}

async fn consent_submit(State(p): State<Shared>, request: Request) -> Response {
    let PageRequest { headers, params, ctx, .. } = match page_request(&p, request, true).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let approve = params.get("decision") == Some("allow");
    match p.consent(&ctx.tx, cookie(&headers, SESSION_COOKIE), approve, now()).await {
        Ok(next) => follow(next, ctx.lang),
        Err(e) => error_page(ctx.lang, StatusCode::BAD_REQUEST, &e.description),
    }
}

async fn token(State(p): State<Shared>, request: Request) -> Response {
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

async fn userinfo(State(p): State<Shared>, request: Request) -> Response {
    let (headers, mut params, _) = match params(request).await {
        Ok(x) => x,
        Err(e) => return oauth_error(e, true),
    };
    let header_token = authorization(&headers).filter(|h| h.len() > 7 && h[..7].eq_ignore_ascii_case("bearer ")).map(|h| h[7..].trim().to_owned());
    let body_token = params.take("access_token");
    let token = match (header_token, body_token) {
        (Some(t), None) | (None, Some(t)) => t,
        (Some(_), Some(_)) => return oauth_error(OAuthError::invalid_request("the access token is sent twice"), true),
        (None, None) => return oauth_error(OAuthError::new(ErrorCode::InvalidToken, "no access token"), true),
    };
    match p.userinfo(&token, now()).await {
        Ok(claims) => json_response(StatusCode::OK, claims),
        Err(e) => oauth_error(e, true),
    }
}

async fn revoke(State(p): State<Shared>, request: Request) -> Response {
    let (headers, params, _) = match params(request).await {
        Ok(x) => x,
        Err(e) => return oauth_error(e, false),
    };
    match p.revoke(params, authorization(&headers), now()).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => oauth_error(e, false),
    }
}

async fn introspect(State(p): State<Shared>, request: Request) -> Response {
    let (headers, params, _) = match params(request).await {
        Ok(x) => x,
        Err(e) => return oauth_error(e, false),
    };
    match p.introspect(params, authorization(&headers), now()).await {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(e) => oauth_error(e, false),
    }
}

fn with_state(uri: &str, state: Option<&str>) -> String {
    match (url::Url::parse(uri), state) {
        (Ok(mut u), Some(s)) => {
            u.query_pairs_mut().append_pair("state", s);
            u.into()
        }
        _ => uri.to_owned(),
    }
}

fn clear_session() -> HeaderValue {
    set_cookie(SESSION_COOKIE, "", Some(0))
}

fn logged_out(lang: Lang) -> Response {
    let body = format!(r#"<p role="status">{}</p>"#, text(lang, "logout.done"));
    let mut r = page(StatusCode::OK, pages::layout(lang, text(lang, "title.logged_out"), None, &body));
    r.headers_mut().append(header::SET_COOKIE, clear_session());
    r
}

/// RP-initiated logout 1.0: with a valid `id_token_hint` the session ends at once and the
/// citizen goes back to a registered `post_logout_redirect_uri`; without one, the citizen
/// is asked to confirm. A URI that is not registered exactly is never redirected to.
async fn logout(State(p): State<Shared>, request: Request) -> Response {
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
            Err(e) => return oauth_error(OAuthError::server(e), false),
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
        return oauth_error(e, false);
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

/// A form post of the session's own pages (logout, account), outside any login
/// transaction: its parameters and language, once its anti-CSRF token matches the cookie.
async fn session_form(request: Request) -> Result<(HeaderMap, Params, Lang), Response> {
    let (headers, params, _) = params(request).await.map_err(|e| error_page(Lang::Ar, StatusCode::BAD_REQUEST, &e.description))?;
    let lang = page_lang(params.get("lang"), &[], &headers);
    let expected = cookie(&headers, CSRF_COOKIE).unwrap_or_default().to_owned();
    if expected.len() != 43 || !csrf_ok(&headers, &params, &expected) {
        tracing::warn!(target: "audit", event = "csrf.refused", "form post without a valid anti-CSRF token");
        return Err(error_page(lang, StatusCode::FORBIDDEN, text(lang, "error.csrf")));
    }
    Ok((headers, params, lang))
}

async fn logout_confirm(State(p): State<Shared>, request: Request) -> Response {
    let (headers, _, lang) = match session_form(request).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match p.end_session(cookie(&headers, SESSION_COOKIE), now()).await {
        Ok(_) => logged_out(lang),
        Err(e) => oauth_error(e, false),
    }
}

/// The citizen's account page: the consents they have given, each of which they can
/// withdraw. Without an SSO session the citizen logs in first, through the ordinary
/// authorization flow of the provider's own client, which comes back here.
async fn account(State(p): State<Shared>, request: Request) -> Response {
    let (headers, params, _) = match params(request).await {
        Ok(x) => x,
        Err(e) => return error_page(Lang::Ar, StatusCode::BAD_REQUEST, &e.description),
    };
    let lang = page_lang(params.get("lang").or(params.get("ui_locales")), &[], &headers);
    if let Some(code) = params.get("code") {
        // Back from logging in: the code is of no use to anyone.
        if let Err(e) = p.discard_code(code).await {
            return oauth_error(e, false);
        }
    }
    let consents = match p.account_consents(cookie(&headers, SESSION_COOKIE), now()).await {
        Ok(c) => c,
        Err(e) => return oauth_error(e, false),
    };
    let Some(consents) = consents else {
        if params.get("code").is_some() || params.get("error").is_some() {
            return error_page(lang, StatusCode::UNAUTHORIZED, text(lang, "account.no_session"));
        }
        // PKCE is required of the account client; nobody ever exchanges its code.
        let (mut verifier, url) = ([0u8; 32], format!("{}/authorize", p.issuer()));
        if aws_lc_rs::rand::fill(&mut verifier).is_err() {
            return oauth_error(OAuthError::server("random"), false);
        }
        let challenge = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, crate::provider::sha256(&verifier));
        let Ok(mut url) = url::Url::parse(&url) else { return error_page(lang, StatusCode::INTERNAL_SERVER_ERROR, "the issuer is not a URL") };
        url.query_pairs_mut()
            .append_pair("client_id", crate::provider::ACCOUNT_CLIENT)
            .append_pair("redirect_uri", &format!("{}/account", p.issuer()))
            .append_pair("response_type", "code")
            .append_pair("scope", "openid")
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("ui_locales", lang.tag());
        return redirect(url.as_str());
    };
    let csrf = match crate::provider::random_token() {
        Ok(c) => c,
        Err(e) => return oauth_error(OAuthError::server(e), false),
    };
    let mut items = String::new();
    for (consent, client) in &consents {
        let claims: Vec<String> = serde_json::from_str(&consent.grant).unwrap_or_default();
        let claims: String = claims.iter().map(|c| format!("<li>{}</li>", escape(&pages::claim_name(lang, c)))).collect();
        let name = client.as_ref().map_or(text(lang, "account.gone"), |c| pages::localized(lang, &c.service.name));
        items.push_str(&format!(
            r#"<li><h2>{name}</h2><ul>{claims}</ul>
<form method="post" action="/account/withdraw">
<input type="hidden" name="csrf" value="{csrf}">
<input type="hidden" name="lang" value="{tag}">
<input type="hidden" name="client" value="{client}">
<button type="submit" class="secondary">{withdraw}</button>
</form></li>"#,
            name = escape(name),
            client = escape(&consent.client_id),
            withdraw = text(lang, "account.withdraw"),
            tag = lang.tag(),
        ));
    }
    let status = if params.get("withdrawn").is_some() { format!(r#"<p role="status">{}</p>"#, text(lang, "account.withdrawn")) } else { String::new() };
    let list = if consents.is_empty() {
        format!("<p>{}</p>", text(lang, "account.none"))
    } else {
        format!(r#"<p>{}</p><ul class="consents">{items}</ul>"#, text(lang, "account.intro"))
    };
    let body = format!(r#"{status}{list}<p><a href="/logout?ui_locales={tag}">{logout}</a></p>"#, tag = lang.tag(), logout = text(lang, "logout.link"));
    let switch = format!("/account?lang={}", if lang == Lang::Ar { "en" } else { "ar" });
    let mut r = page(StatusCode::OK, pages::layout(lang, text(lang, "title.account"), Some(&switch), &body));
    r.headers_mut().append(header::SET_COOKIE, set_cookie(CSRF_COOKIE, &csrf, None));
    r
}

/// Withdraws one consent from the account page (a form post with its anti-CSRF token).
async fn account_withdraw(State(p): State<Shared>, request: Request) -> Response {
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
        Err(e) => oauth_error(e, false),
    }
}

async fn stylesheet() -> Response {
    let mut r = ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], pages::STYLESHEET).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use hsm_shim::KeyStore;
    use hsm_shim::soft::{OperatorSecret, SoftKeyStore};
    use tower::ServiceExt;

    #[test]
    fn the_citizens_address_is_believed_only_from_trusted_proxies() {
        let peer: SocketAddr = "10.0.0.5:4000".parse().expect("addr");
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", HeaderValue::from_static("203.0.113.9, 198.51.100.7"));
        headers.append("x-forwarded-for", HeaderValue::from_static("10.0.0.6"));
        let ip = |s: &str| s.parse::<std::net::IpAddr>().expect("ip");
        // Not a trusted proxy: the header is anyone's to write.
        assert_eq!(client_address(&headers, Some(peer), &[]), Some(ip("10.0.0.5")));
        // Two trusted proxies in a row: the first address they did not write.
        assert_eq!(client_address(&headers, Some(peer), &[ip("10.0.0.5"), ip("10.0.0.6")]), Some(ip("198.51.100.7")));
        // Junk where the client's address should be: the last trusted hop.
        let mut junk = HeaderMap::new();
        junk.append("x-forwarded-for", HeaderValue::from_static("203.0.113.9, not-an-address"));
        assert_eq!(client_address(&junk, Some(peer), &[ip("10.0.0.5")]), Some(ip("10.0.0.5")));
        assert_eq!(client_address(&HeaderMap::new(), Some(peer), &[ip("10.0.0.5")]), Some(ip("10.0.0.5")));
        assert_eq!(client_address(&headers, None, &[]), None);
    }

    async fn app(issuer: &str, dir: &std::path::Path) -> Router {
        let secret = OperatorSecret::new(b"unit test secret, not for production".to_vec()).expect("secret");
        let keys: Arc<dyn KeyStore> = Arc::new(SoftKeyStore::open_or_create(&dir.join("keys"), &secret).expect("key store"));
        let durable: Arc<dyn store::DurableStore> = Arc::new(store::SqliteStore::open(&dir.join("db")).expect("db"));
        let signing = crate::keys::SigningKeys::open(keys, durable.clone(), std::time::Duration::from_secs(900), 1).await.expect("keys");
        let policies = Arc::new(policies::Policies::shipped().expect("policies"));
        let provider = Provider::new(crate::Settings::new(issuer, vec![7; 32]), policies, durable, Arc::new(store::ephemeral::MemoryStore::new()), signing)
            .expect("provider");
        router(Arc::new(provider))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_response_carries_the_security_headers_and_hsts_on_tls() {
        for (issuer, hsts) in [("https://id.example.jo", true), ("http://127.0.0.1:8080", false)] {
            let dir = tempfile::tempdir().expect("tempdir");
            let app = app(issuer, dir.path()).await;
            for uri in ["/.well-known/openid-configuration", "/authorize?client_id=nobody", "/login?tx=x"] {
                let response = app.clone().oneshot(Request::get(uri).body(axum::body::Body::empty()).expect("request")).await.expect("response");
                let h = response.headers();
                assert!(h[header::CONTENT_SECURITY_POLICY].to_str().expect("ascii").contains("frame-ancestors 'none'"), "{uri}");
                assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
                assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
                assert_eq!(h.contains_key(header::STRICT_TRANSPORT_SECURITY), hsts, "{issuer} {uri}");
            }
        }
    }
}
