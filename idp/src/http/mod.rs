//! The provider's HTTP endpoints and pages. Thin handlers: read the request, call the
//! [`Provider`], render; protocol errors become OAuth error bodies in `http::error` and
//! nowhere else. One module per protocol action, as in the domain crate.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;

use crate::authorize::Next;
use crate::citizens::Lang;
use crate::oauth::{MAX_REQUEST_BYTES, Params};
use crate::pages::{self, text};
use crate::provider::Provider;
use error::OAuthRequest;

mod account;
mod authorize;
mod consent;
mod csc;
mod discovery;
mod error;
mod esign_api;
mod introspection;
mod login;
mod logout;
mod revocation;
mod signing;
mod smart_id;
mod token;
mod transaction;
mod userinfo;
mod validation;

pub use smart_id::DEVICE_PROOF_HEADER;

/// The SSO session cookie.
pub const SESSION_COOKIE: &str = "__Host-hawiya-sso";

/// The anti-CSRF cookie paired with the token in every form.
pub const CSRF_COOKIE: &str = "__Host-hawiya-csrf";

type Shared = Arc<Provider>;

/// The provider's routes: discovery, keys, the protocol endpoints and the login pages.
pub fn router(provider: Arc<Provider>) -> Router {
    // Behind TLS (an https issuer), browsers are told to keep to it.
    let hsts = provider.issuer().starts_with("https://");
    let routes = Router::new()
        .route("/.well-known/openid-configuration", get(discovery::discovery))
        .route("/jwks", get(discovery::jwks))
        .route("/authorize", get(authorize::authorize).post(authorize::authorize))
        .route("/login", get(login::login_page).post(login::login_submit))
        .route("/login/smart-id", get(smart_id::smart_id_poll).post(smart_id::smart_id_start))
        .route("/smart-id/device/pending", get(smart_id::device_pending))
        .route("/smart-id/device/answer", post(smart_id::device_answer))
        .route("/smart-id/device/sign", post(smart_id::device_sign))
        .route("/consent", get(consent::consent_page).post(consent::consent_submit))
        .route("/token", post(token::token))
        .route("/userinfo", get(userinfo::userinfo).post(userinfo::userinfo))
        .route("/revoke", post(revocation::revoke))
        .route("/introspect", post(introspection::introspect))
        .route("/logout", get(logout::logout).post(logout::logout))
        .route("/logout/confirm", post(logout::logout_confirm))
        .route("/account", get(account::account))
        .route("/account/withdraw", post(account::account_withdraw))
        .route("/sign", get(signing::sign_page).post(signing::sign_upload).layer(DefaultBodyLimit::max(signing::upload_limit(&provider))))
        .route("/sign/wait", get(signing::sign_wait))
        .route("/sign/download", get(signing::sign_download))
        .route("/api/esign/v1/signing-requests", post(esign_api::create).layer(DefaultBodyLimit::max(crate::esign_api::body_limit(&provider))))
        .route("/api/esign/v1/signing-requests/{id}", get(esign_api::status))
        .route("/api/esign/v1/signing-requests/{id}/document", get(esign_api::document))
        .route("/csc/v2/info", post(csc::info).layer(DefaultBodyLimit::max(csc::body_limit(&provider))))
        .route("/csc/v2/logo.svg", get(csc::logo))
        .route("/csc/v2/credentials/list", post(csc::list))
        .route("/csc/v2/credentials/info", post(csc::credential_info))
        .route("/csc/v2/credentials/authorize", post(csc::authorize))
        .route("/csc/v2/credentials/authorizeCheck", post(csc::authorize_check))
        .route("/csc/v2/signatures/signHash", post(csc::sign_hash))
        .route("/smart-id/device/sign-hashes", post(smart_id::device_sign_hashes))
        .route("/validation", post(validation::validate).layer(DefaultBodyLimit::max(validation::body_limit(&provider))))
        .route("/verify", get(validation::verify_page).post(validation::verify_upload).layer(DefaultBodyLimit::max(validation::body_limit(&provider))))
        .route("/assets/hawiya.css", get(stylesheet))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .layer(axum::middleware::map_response(move |r| security_headers(r, hsts)))
        .with_state(provider);
    with_request_ids(routes)
}

/// Runs every request of `router` inside a span named `request` with a request id (sent
/// back as `x-request-id`), so that what is logged while serving it can be found together.
/// The provider's routes have it; the binary gives it to the other crates' routes too.
pub fn with_request_ids(router: Router) -> Router {
    let ids = Arc::new(error::RequestIds::new());
    router.layer(axum::middleware::from_fn(move |request, next| error::request_span(Arc::clone(&ids), request, next)))
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

/// The page language: an explicit switch, else the request's `ui_locales`, else the
/// browser's `Accept-Language`, else Arabic.
fn page_lang(switch: Option<&str>, ui_locales: &[Lang], headers: &HeaderMap) -> Lang {
    switch
        .and_then(Lang::first_of)
        .or_else(|| ui_locales.first().copied())
        .or_else(|| headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).and_then(Lang::first_of))
        .unwrap_or(Lang::Ar)
}

/// Sends the browser through the ordinary authorization flow of one of the provider's own
/// clients (the account page, the signing page), back to `page` on the issuer. PKCE is
/// required of them; nobody ever exchanges the code, which the page discards.
fn own_client_login(p: &Provider, client_id: &str, page: &str, lang: Lang, state: Option<&str>) -> Response {
    let mut verifier = [0u8; 32];
    if aws_lc_rs::rand::fill(&mut verifier).is_err() {
        return crate::oauth::OAuthError::server("random").into_response();
    }
    let challenge = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, crate::provider::sha256(&verifier));
    let Ok(mut url) = url::Url::parse(&format!("{}/authorize", p.issuer())) else {
        return error_page(lang, StatusCode::INTERNAL_SERVER_ERROR, "the issuer is not a URL");
    };
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", &format!("{}{page}", p.issuer()))
        .append_pair("response_type", "code")
        .append_pair("scope", "openid")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("ui_locales", lang.tag());
    if let Some(state) = state {
        url.query_pairs_mut().append_pair("state", state);
    }
    redirect(url.as_str())
}

fn page(status: StatusCode, html: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

fn error_page(lang: Lang, status: StatusCode, message: &str) -> Response {
    page(status, pages::ErrorPage { lang, message }.render())
}

/// The page for a protocol error met while serving a page, logged here: the store
/// cannot be reached now (503 with `Retry-After`, "try again in a minute"), something failed
/// on our side (500, the cause never shown), or the request was wrong (400, its
/// description).
fn failure_page(lang: Lang, e: crate::oauth::OAuthError) -> Response {
    use crate::oauth::ErrorCode;
    error::log(&e);
    let (status, message) = match e.code {
        ErrorCode::TemporarilyUnavailable => (StatusCode::SERVICE_UNAVAILABLE, pages::text(lang, "error.unavailable")),
        ErrorCode::ServerError => (StatusCode::INTERNAL_SERVER_ERROR, pages::text(lang, "error.internal")),
        _ => (StatusCode::BAD_REQUEST, e.description.as_str()),
    };
    let mut response = error_page(lang, status, message);
    error::retry_after(&mut response, &e);
    response
}

/// The parameters of a request for a page. An unreadable request gets an error page, never a
/// redirect: nothing in it can be trusted with one.
struct PageParams(OAuthRequest);

impl<S: Send + Sync> FromRequest<S> for PageParams {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        OAuthRequest::from_request(request, state).await.map(PageParams).map_err(|e| error_page(Lang::Ar, StatusCode::BAD_REQUEST, &e.description))
    }
}

/// The citizen's address, for the per-address login limit: the connection's peer or, when
/// that peer is a trusted reverse proxy, the address the proxies say they forwarded for (the
/// rightmost `X-Forwarded-For` entry that is not a trusted proxy itself; what lies left of
/// it was written by the client and proves nothing).
pub fn client_address(headers: &HeaderMap, peer: Option<SocketAddr>, trusted: &[std::net::IpAddr]) -> Option<std::net::IpAddr> {
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

/// A `Content-Disposition` that downloads `name` (RFC 6266: an ASCII fallback and the UTF-8
/// name; Arabic names are common).
fn attachment(name: &str) -> HeaderValue {
    let ascii: String = name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' { c } else { '_' }).collect();
    let encoded: String =
        name.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect();
    HeaderValue::from_str(&format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")).unwrap_or(HeaderValue::from_static("attachment"))
}

/// One part of a multipart upload (the signing page, the validation API and page).
enum Part {
    /// A part: its name, the file name the client sent (only its last path segment, without
    /// control characters, at most 200 characters; empty if none) and its content.
    Field { name: String, file_name: String, bytes: axum::body::Bytes },
    /// No more parts.
    End,
    /// The body is over its limit: the rest is not read.
    TooLarge,
}

/// The next part of `multipart`; what is malformed, as the error.
async fn next_part(multipart: &mut axum::extract::Multipart) -> Result<Part, String> {
    let field = match multipart.next_field().await {
        Ok(Some(field)) => field,
        Ok(None) => return Ok(Part::End),
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Ok(Part::TooLarge),
        Err(e) => return Err(e.body_text()),
    };
    let name = field.name().unwrap_or_default().to_owned();
    let sent = field.file_name().unwrap_or_default();
    let file_name = sent.rsplit(['/', '\\']).next().unwrap_or_default().chars().filter(|c| !c.is_control()).take(200).collect();
    match field.bytes().await {
        Ok(bytes) => Ok(Part::Field { name, file_name, bytes }),
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Ok(Part::TooLarge),
        Err(e) => Err(e.body_text()),
    }
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
}

async fn stylesheet() -> Response {
    let mut r = ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], pages::STYLESHEET).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    r
}

/// Sends the browser where an authorization request goes next: back to the client, to the
/// login page or to the consent page.
fn redirect_to_next(next: Next, lang: Lang) -> Response {
    match next {
        Next::Redirect(url) => redirect(&url),
        Next::Login { tx } => redirect(&format!("/login?tx={tx}&lang={}", lang.tag())),
        Next::Consent { tx } => redirect(&format!("/consent?tx={tx}&lang={}", lang.tag())),
    }
}

/// Checks the anti-CSRF token of a form: the one in the form, the cookie, and the one
/// the transaction was started with must all be equal.
fn csrf_ok(headers: &HeaderMap, params: &Params, expected: &str) -> bool {
    let form = params.get("csrf").unwrap_or_default();
    let cookie = cookie(headers, CSRF_COOKIE).unwrap_or_default();
    let eq = |a: &str, b: &str| aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok();
    !expected.is_empty() && eq(form, expected) && eq(cookie, expected)
}

/// A form post of the session's own pages (logout, account), outside any login
/// transaction: its parameters and language, once its anti-CSRF token matches the cookie.
async fn session_form(request: Request) -> Result<(HeaderMap, Params, Lang), Response> {
    let PageParams(OAuthRequest { headers, params, .. }) = PageParams::from_request(request, &()).await?;
    let lang = page_lang(params.get("lang"), &[], &headers);
    let expected = cookie(&headers, CSRF_COOKIE).unwrap_or_default().to_owned();
    if expected.len() != 43 || !csrf_ok(&headers, &params, &expected) {
        tracing::warn!(target: "audit", event = "csrf.refused", "form post without a valid anti-CSRF token");
        return Err(error_page(lang, StatusCode::FORBIDDEN, text(lang, "error.csrf")));
    }
    Ok((headers, params, lang))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hsm_shim::KeyStore;
    use hsm_shim::soft::{OperatorSecret, SoftKeyStore};
    use tower::ServiceExt;

    #[tokio::test]
    async fn an_unreachable_store_is_a_503_with_retry_after_in_json_and_on_a_localized_page() {
        let unreachable = || crate::oauth::OAuthError::from(store::StoreError::Unreachable { backend: "PostgreSQL", source: "connection closed".into() });
        let r = unreachable().into_response();
        assert_eq!((r.status(), r.headers().get(header::RETRY_AFTER).map(|v| v.as_bytes())), (StatusCode::SERVICE_UNAVAILABLE, Some(&b"5"[..])));
        let body: Value = serde_json::from_slice(&axum::body::to_bytes(r.into_body(), 1 << 16).await.expect("body")).expect("json");
        assert_eq!(body["error"], "temporarily_unavailable");
        assert!(!body.to_string().contains("connection closed"), "the cause is not sent: {body}");
        for (lang, phrase) in [(Lang::Ar, "حاول مرة أخرى بعد دقيقة"), (Lang::En, "please try again in a minute")] {
            let r = failure_page(lang, unreachable());
            assert_eq!((r.status(), r.headers().get(header::RETRY_AFTER).map(|v| v.as_bytes())), (StatusCode::SERVICE_UNAVAILABLE, Some(&b"5"[..])));
            let html = String::from_utf8(axum::body::to_bytes(r.into_body(), 1 << 16).await.expect("body").to_vec()).expect("utf-8");
            assert!(html.contains(phrase) && !html.contains("connection closed"), "{html}");
        }
        // Our other failures: a 500 page that shows no internal detail, no Retry-After.
        let r = failure_page(Lang::En, crate::oauth::OAuthError::server("disk on fire"));
        assert_eq!((r.status(), r.headers().contains_key(header::RETRY_AFTER)), (StatusCode::INTERNAL_SERVER_ERROR, false));
        let html = String::from_utf8(axum::body::to_bytes(r.into_body(), 1 << 16).await.expect("body").to_vec()).expect("utf-8");
        assert!(html.contains("Something failed on our side") && !html.contains("disk on fire"), "{html}");
    }

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
