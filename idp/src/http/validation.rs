//! The validation API (`POST /validation`, documented in `idp/openapi/validation-v1.yaml`)
//! and the verification page (`/verify`): multipart uploads of a signed file, an optional
//! detached document and an optional policy id; no login. The API answers with the JSON
//! report, the page with the report in words. Refusals become responses here.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::error::OAuthRequest;
use super::{CSRF_COOKIE, PageParams, Shared, client_address, cookie, error_page, json_response, page, page_lang, set_cookie};
use crate::citizens::Lang;
use crate::oauth::OAuthError;
use crate::pages::{self, VerifyFormPage, VerifyReportPage, text};
use crate::provider::Provider;
use crate::validation::{ReportView, ValidationRefusal, ValidationRequest};

/// The largest request body: the policy's limit and room for the other fields and the
/// multipart framing.
pub(super) fn body_limit(p: &Provider) -> usize {
    p.max_validation_bytes() + 64 * 1024
}

/// What a multipart upload sent.
#[derive(Default)]
struct Upload {
    request: ValidationRequest,
    csrf: String,
    lang: Option<String>,
    too_large: bool,
}

/// Only the last path segment of a name a client sent, without control characters.
fn file_name(name: Option<&str>) -> String {
    let name = name.unwrap_or_default();
    name.rsplit(['/', '\\']).next().unwrap_or_default().chars().filter(|c| !c.is_control()).take(200).collect()
}

/// Reads the parts `file`, `detached`, `policy` (and for the page `csrf`, `lang`); others
/// are ignored. An upload over `limit` is marked, not read further.
async fn read_upload(mut multipart: Multipart, limit: usize) -> Result<Upload, String> {
    let mut upload = Upload::default();
    let mut total = 0usize;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => return Ok(upload),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                upload.too_large = true;
                return Ok(upload);
            }
            Err(e) => return Err(e.body_text()),
        };
        let name = field.name().unwrap_or_default().to_owned();
        let sent_name = field.file_name().map(str::to_owned);
        let bytes = match field.bytes().await {
            Ok(b) => b,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                upload.too_large = true;
                return Ok(upload);
            }
            Err(e) => return Err(e.body_text()),
        };
        let text = || String::from_utf8(bytes.to_vec()).map_err(|_| format!("the part `{name}` is not UTF-8 text"));
        match name.as_str() {
            "csrf" => upload.csrf = text()?,
            "lang" => upload.lang = Some(text()?),
            "policy" => {
                let id = text()?;
                // An empty choice is the default policy.
                upload.request.policy = Some(id.trim().to_owned()).filter(|id| !id.is_empty());
            }
            "file" | "detached" => {
                total = total.saturating_add(bytes.len());
                if total > limit {
                    upload.too_large = true;
                    return Ok(upload);
                }
                if name == "file" {
                    if !upload.request.document.is_empty() {
                        return Err("more than one part `file`".into());
                    }
                    upload.request.name = file_name(sent_name.as_deref());
                    upload.request.document = bytes.to_vec();
                } else if !bytes.is_empty() {
                    // A page's empty file input sends an empty part: no detached document.
                    if upload.request.detached.is_some() {
                        return Err("more than one part `detached`".into());
                    }
                    upload.request.detached = Some(bytes.to_vec());
                }
            }
            _ => {}
        }
    }
}

/// The client's address, for the per-address limit.
fn address(p: &Provider, request: &Request) -> String {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    client_address(request.headers(), peer, &p.settings.trusted_proxies).map_or_else(|| "unknown".into(), |a| a.to_string())
}

/// The code, status and description of an API refusal.
fn api_refusal(e: ValidationRefusal) -> Response {
    let (status, code) = match &e {
        ValidationRefusal::Unavailable => (StatusCode::NOT_FOUND, "not_found"),
        ValidationRefusal::Empty => (StatusCode::BAD_REQUEST, "invalid_request"),
        ValidationRefusal::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "document_too_large"),
        ValidationRefusal::UnknownPolicy { .. } => (StatusCode::BAD_REQUEST, "unknown_policy"),
        ValidationRefusal::Flood => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
        ValidationRefusal::Server(_) => return OAuthError::server(e).into_response(),
    };
    tracing::info!(error = code, description = %e, "validation request refused");
    json_response(status, json!({"error": code, "error_description": e.to_string()}))
}

fn invalid_request(description: String) -> Response {
    tracing::info!(error = "invalid_request", %description, "validation request refused");
    json_response(StatusCode::BAD_REQUEST, json!({"error": "invalid_request", "error_description": description}))
}

/// `POST /validation`: the JSON report on the uploaded document.
pub(super) async fn validate(State(p): State<Shared>, request: Request) -> Response {
    if !p.validates() {
        return api_refusal(ValidationRefusal::Unavailable);
    }
    let address = address(&p, &request);
    let limit = p.max_validation_bytes();
    let upload = match Multipart::from_request(request, &()).await {
        Ok(multipart) => read_upload(multipart, limit).await,
        Err(e) => Err(format!("the body must be multipart/form-data: {}", e.body_text())),
    };
    let upload = match upload {
        Ok(u) => u,
        Err(why) => return invalid_request(why),
    };
    if upload.too_large {
        return api_refusal(ValidationRefusal::TooLarge(limit));
    }
    match p.validate_document(upload.request, &address).await {
        Ok(report) => json_response(StatusCode::OK, report),
        Err(e) => api_refusal(e),
    }
}

/// The form, with a fresh anti-CSRF token in its cookie.
fn form(p: &Provider, lang: Lang, status: StatusCode, error: Option<&str>) -> Response {
    let csrf = match crate::provider::random_token() {
        Ok(c) => c,
        Err(e) => return OAuthError::server(e).into_response(),
    };
    let switch = format!("/verify?lang={}", if lang == Lang::Ar { "en" } else { "ar" });
    let policies = p
        .policies
        .validation_policies()
        .iter()
        .map(|v| (v.id.as_str(), pages::localized(lang, &v.name), v.id == p.policies.default_validation_policy().id))
        .collect();
    let view = VerifyFormPage { lang, csrf: &csrf, max_bytes: p.max_validation_bytes(), policies, error, switch_href: &switch };
    let mut r = page(status, view.render());
    r.headers_mut().append(header::SET_COOKIE, set_cookie(CSRF_COOKIE, &csrf, None));
    r
}

/// `GET /verify`: the upload form.
pub(super) async fn verify_page(State(p): State<Shared>, PageParams(OAuthRequest { headers, params, .. }): PageParams) -> Response {
    let ui_locales: Vec<Lang> = params.get("ui_locales").map(|v| v.split(' ').filter_map(Lang::first_of).collect()).unwrap_or_default();
    let lang = page_lang(params.get("lang"), &ui_locales, &headers);
    if !p.validates() {
        return error_page(lang, StatusCode::NOT_FOUND, text(lang, "verify.unavailable"));
    }
    form(&p, lang, StatusCode::OK, None)
}

/// `POST /verify`: the report on the uploaded document, in words.
pub(super) async fn verify_upload(State(p): State<Shared>, request: Request) -> Response {
    let headers: HeaderMap = request.headers().clone();
    let lang = page_lang(None, &[], &headers);
    if !p.validates() {
        return error_page(lang, StatusCode::NOT_FOUND, text(lang, "verify.unavailable"));
    }
    let address = address(&p, &request);
    let limit = p.max_validation_bytes();
    let upload = match Multipart::from_request(request, &()).await {
        Ok(multipart) => read_upload(multipart, limit).await,
        Err(e) => Err(e.body_text()),
    };
    let upload = match upload {
        Ok(u) => u,
        Err(why) => return error_page(lang, StatusCode::BAD_REQUEST, &why),
    };
    let lang = page_lang(upload.lang.as_deref(), &[], &headers);
    let too_large = || format!("{} {} {}", text(lang, "verify.too_large"), text(lang, "verify.limit"), pages::size(limit));
    if upload.too_large {
        // Said before the token is checked: the token may be in the part that was not read.
        return form(&p, lang, StatusCode::PAYLOAD_TOO_LARGE, Some(&too_large()));
    }
    let expected = cookie(&headers, CSRF_COOKIE).unwrap_or_default();
    let eq = |a: &str, b: &str| aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok();
    if expected.len() != 43 || !eq(&upload.csrf, expected) {
        tracing::warn!(target: "audit", event = "csrf.refused", "verification upload without a valid anti-CSRF token");
        return error_page(lang, StatusCode::FORBIDDEN, text(lang, "error.csrf"));
    }
    match p.validate_document(upload.request, &address).await {
        Ok(report) => match serde_json::from_value::<ReportView>(report) {
            Ok(report) => {
                let switch = format!("/verify?lang={}", if lang == Lang::Ar { "en" } else { "ar" });
                page(StatusCode::OK, VerifyReportPage { lang, report: &report, switch_href: &switch }.render())
            }
            Err(e) => OAuthError::server(e).into_response(),
        },
        Err(ValidationRefusal::TooLarge(_)) => form(&p, lang, StatusCode::PAYLOAD_TOO_LARGE, Some(&too_large())),
        Err(ValidationRefusal::Empty) => form(&p, lang, StatusCode::BAD_REQUEST, Some(text(lang, "verify.empty"))),
        Err(ValidationRefusal::UnknownPolicy { .. }) => form(&p, lang, StatusCode::BAD_REQUEST, Some(text(lang, "verify.unknown_policy"))),
        Err(ValidationRefusal::Flood) => form(&p, lang, StatusCode::TOO_MANY_REQUESTS, Some(text(lang, "verify.flood"))),
        Err(e) => OAuthError::server(e).into_response(),
    }
}
