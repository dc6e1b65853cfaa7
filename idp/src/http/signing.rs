//! The citizen's signing page: `/sign` (the form, and the upload), `/sign/wait` (the
//! verification code until the device answers), `/sign/download` (the signed file).
//!
//! The page needs an SSO session at the level of the signing policy; without one the
//! citizen logs in (or steps up) through the ordinary authorization flow of the provider's
//! own signing client, which comes back here.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::OAuthRequest;
use super::{CSRF_COOKIE, PageParams, SESSION_COOKIE, Shared, client_address, cookie, error_page, own_client_login, page, page_lang, redirect, set_cookie};
use crate::citizens::Lang;
use crate::login::Browser;
use crate::oauth::OAuthError;
use crate::pages::{self, SignFormPage, SignWaitingPage, SignedPage, text};
use crate::provider::Provider;
use crate::session::LiveSession;
use crate::signing::{Document, Owner, SIGN_CLIENT, SigningPoll, SigningRequest, StartRefusal};
use crate::throttle::DEVICE_COOKIE;
use crate::unix_now as now;

/// The largest signing upload: the policy's document limit and room for the form's other
/// fields and multipart framing.
pub(super) fn upload_limit(p: &Provider) -> usize {
    p.policies.signing().max_document_bytes + 64 * 1024
}

/// The SSO session, if it reaches the signing policy's level.
async fn signer(p: &Provider, headers: &HeaderMap) -> Result<Option<LiveSession>, OAuthError> {
    let Some(live) = p.session(cookie(headers, SESSION_COOKIE), now()).await? else { return Ok(None) };
    let level = p.level(&live.session.level)?;
    Ok((level.level >= p.policies.signing().min_level).then_some(live))
}

/// Logs in (or steps up) through the provider's own signing client, back to `/sign` in the
/// language it was left in (carried in `state`).
fn login_redirect(p: &Provider, lang: Lang) -> Response {
    own_client_login(p, SIGN_CLIENT, "/sign", lang, Some(lang.tag()))
}

/// The form, with a fresh anti-CSRF token in its cookie.
fn form(p: &Provider, lang: Lang, status: StatusCode, error: Option<&str>) -> Response {
    let csrf = match crate::provider::random_token() {
        Ok(c) => c,
        Err(e) => return OAuthError::server(e).into_response(),
    };
    let switch = format!("/sign?lang={}", if lang == Lang::Ar { "en" } else { "ar" });
    let view = SignFormPage { lang, csrf: &csrf, max_bytes: p.policies.signing().max_document_bytes, error, switch_href: &switch };
    let mut r = page(status, view.render());
    r.headers_mut().append(header::SET_COOKIE, set_cookie(CSRF_COOKIE, &csrf, None));
    r
}

/// `GET /sign`: the form, once the citizen's session reaches the level.
pub(super) async fn sign_page(State(p): State<Shared>, PageParams(OAuthRequest { headers, params, .. }): PageParams) -> Response {
    let lang = page_lang(params.get("lang").or(params.get("state")), &[], &headers);
    if !p.signs() {
        return error_page(lang, StatusCode::NOT_FOUND, text(lang, "sign.unavailable"));
    }
    if let Some(code) = params.get("code") {
        // Back from logging in: the code is of no use to anyone.
        if let Err(e) = p.discard_code(code).await {
            return e.into_response();
        }
    }
    match signer(&p, &headers).await {
        Ok(Some(_)) => form(&p, lang, StatusCode::OK, None),
        Ok(None) if params.get("code").is_some() || params.get("error").is_some() => {
            error_page(lang, StatusCode::UNAUTHORIZED, text(lang, "account.no_session"))
        }
        Ok(None) => login_redirect(&p, lang),
        Err(e) => e.into_response(),
    }
}

/// What the upload form sent.
#[derive(Default)]
struct Upload {
    csrf: String,
    lang: Option<String>,
    document: Option<Document>,
    too_large: bool,
    archive: bool,
}

async fn read_upload(mut multipart: Multipart, limit: usize) -> Result<Upload, String> {
    let mut upload = Upload::default();
    loop {
        let (name, file_name, bytes) = match super::next_part(&mut multipart).await? {
            super::Part::Field { name, file_name, bytes } => (name, file_name, bytes),
            super::Part::End => return Ok(upload),
            super::Part::TooLarge => {
                upload.too_large = true;
                return Ok(upload);
            }
        };
        match name.as_str() {
            "csrf" => upload.csrf = String::from_utf8_lossy(&bytes).into_owned(),
            "lang" => upload.lang = Some(String::from_utf8_lossy(&bytes).into_owned()),
            "archive" => upload.archive = &bytes[..] == b"1",
            "document" => {
                if bytes.len() > limit {
                    upload.too_large = true;
                }
                upload.document = Some(Document::bytes(file_name, bytes));
            }
            _ => {}
        }
    }
}

/// "The document is larger than allowed. Largest document accepted: 10 MB"
fn too_large(lang: Lang, limit: usize) -> String {
    format!("{} {} {}", text(lang, "sign.too_large"), text(lang, "sign.limit"), pages::size(limit))
}

/// `POST /sign`: opens a signing session for the uploaded document and shows its code.
pub(super) async fn sign_upload(State(p): State<Shared>, request: Request) -> Response {
    let headers = request.headers().clone();
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let lang = page_lang(None, &[], &headers);
    let limit = p.policies.signing().max_document_bytes;
    let upload = match Multipart::from_request(request, &()).await {
        Ok(multipart) => read_upload(multipart, limit).await,
        Err(e) => Err(e.body_text()),
    };
    let upload = match upload {
        Ok(u) => u,
        Err(why) => return error_page(lang, StatusCode::BAD_REQUEST, &format!("{}: {why}", text(lang, "sign.unavailable"))),
    };
    let lang = page_lang(upload.lang.as_deref(), &[], &headers);
    let expected = cookie(&headers, CSRF_COOKIE).unwrap_or_default();
    let eq = |a: &str, b: &str| aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok();
    if upload.too_large {
        // Said before the token is checked: the token may be in the part that was not read.
        return form(&p, lang, StatusCode::PAYLOAD_TOO_LARGE, Some(&too_large(lang, limit)));
    }
    if expected.len() != 43 || !eq(&upload.csrf, expected) {
        tracing::warn!(target: "audit", event = "csrf.refused", "signing upload without a valid anti-CSRF token");
        return error_page(lang, StatusCode::FORBIDDEN, text(lang, "error.csrf"));
    }
    let live = match signer(&p, &headers).await {
        Ok(Some(live)) => live,
        Ok(None) => return login_redirect(&p, lang),
        Err(e) => return e.into_response(),
    };
    let Some(document) = upload.document else { return form(&p, lang, StatusCode::BAD_REQUEST, Some(text(lang, "sign.empty"))) };
    let address = client_address(&headers, peer, &p.settings.trusted_proxies).map_or_else(|| "unknown".into(), |a| a.to_string());
    let browser = Browser { address: &address, session: Some(&live.id), device: cookie(&headers, DEVICE_COOKIE) };
    let citizen_id = live.session.citizen_id.clone();
    let request = SigningRequest {
        citizen_id: citizen_id.clone(),
        owner: Owner::Citizen { citizen_id },
        document,
        display_text: None,
        archive: upload.archive,
        callback_uri: None,
    };
    match p.start_signing(request, Some(&browser), now()).await {
        Ok((session, _code)) => {
            let mut r = redirect(&format!("/sign/wait?session={session}&lang={}", lang.tag()));
            *r.status_mut() = StatusCode::SEE_OTHER;
            r
        }
        Err(StartRefusal::TooLarge(limit)) => form(&p, lang, StatusCode::PAYLOAD_TOO_LARGE, Some(&too_large(lang, limit))),
        Err(StartRefusal::Empty) => form(&p, lang, StatusCode::BAD_REQUEST, Some(text(lang, "sign.empty"))),
        Err(StartRefusal::NoSmartId) => form(&p, lang, StatusCode::CONFLICT, Some(text(lang, "sign.no_smart_id"))),
        Err(StartRefusal::NotSignable(key)) => form(&p, lang, StatusCode::UNPROCESSABLE_ENTITY, Some(text(lang, key))),
        Err(StartRefusal::Flood) => form(&p, lang, StatusCode::TOO_MANY_REQUESTS, Some(text(lang, "sign.flood"))),
        // The page always sends the document itself.
        Err(StartRefusal::Digest(why)) => error_page(lang, StatusCode::BAD_REQUEST, &why),
        Err(StartRefusal::Error(e)) => error_page(lang, StatusCode::INTERNAL_SERVER_ERROR, &e.description),
    }
}

/// `GET /sign/wait`: the code until the device answers, then the download or the reason.
pub(super) async fn sign_wait(State(p): State<Shared>, PageParams(OAuthRequest { headers, params, .. }): PageParams) -> Response {
    let lang = page_lang(params.get("lang"), &[], &headers);
    let session = params.get("session").unwrap_or_default().to_owned();
    let live = match signer(&p, &headers).await {
        Ok(Some(live)) => live,
        Ok(None) => return login_redirect(&p, lang),
        Err(e) => return e.into_response(),
    };
    let here = format!("/sign/wait?session={session}");
    let switch = pages::switch_href(lang, &here);
    match p.poll_signing(&live.session.citizen_id, &session, now()).await {
        Ok(SigningPoll::Waiting { code, document_name }) => {
            let poll = format!("{here}&lang={}", lang.tag());
            let view = SignWaitingPage { lang, document_name: &document_name, code: &code, poll_href: &poll, switch_href: &switch };
            let mut r = page(StatusCode::OK, view.render());
            if let Ok(v) = HeaderValue::from_str(&format!("2; url={poll}")) {
                r.headers_mut().insert(HeaderName::from_static("refresh"), v);
            }
            r
        }
        Ok(SigningPoll::Signed { file_name, level }) => {
            let download = format!("/sign/download?session={session}");
            page(StatusCode::OK, SignedPage { lang, file_name: &file_name, level, download_href: &download, switch_href: &switch }.render())
        }
        Ok(SigningPoll::Failed(reason)) => form(&p, lang, StatusCode::OK, Some(text(lang, reason))),
        Err(e) => error_page(lang, StatusCode::FORBIDDEN, &e.description),
    }
}

/// `GET /sign/download`: the signed file, to the citizen who signed it.
pub(super) async fn sign_download(State(p): State<Shared>, PageParams(OAuthRequest { headers, params, .. }): PageParams) -> Response {
    let lang = page_lang(params.get("lang"), &[], &headers);
    let live = match signer(&p, &headers).await {
        Ok(Some(live)) => live,
        Ok(None) => return error_page(lang, StatusCode::UNAUTHORIZED, text(lang, "account.no_session")),
        Err(e) => return e.into_response(),
    };
    let owner = Owner::Citizen { citizen_id: live.session.citizen_id.clone() };
    match p.signed_file(&owner, params.get("session").unwrap_or_default()).await {
        Ok(Some((name, media, bytes))) => {
            let mut r = (StatusCode::OK, bytes).into_response();
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
            h.insert(header::CONTENT_DISPOSITION, super::attachment(&name));
            r
        }
        Ok(None) => error_page(lang, StatusCode::NOT_FOUND, text(lang, "sign.timeout")),
        Err(e) => e.into_response(),
    }
}
