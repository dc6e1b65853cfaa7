//! Smart-ID: the pages that start a login and wait for the device, and the endpoints the
//! device calls.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::login::{LoginForm, logged_in, render_login};
use super::transaction::{FormContext, PageRequest, page_request, request_summary, with_form_headers};
use super::{CSRF_COOKIE, SESSION_COOKIE, Shared, client_address, cookie, error_page, json_response, page, redirect, redirect_to_next};
use policies::{LevelName, NationalId};

use crate::login::{Browser, LoginStep};
use crate::metrics::{SigningOutcome, SmartIdOutcome};
use crate::oauth::{ErrorCode, OAuthError};
use crate::pages::{self, SmartIdWaitingPage, text};
use crate::provider::Provider;
use crate::smart_id::{DeviceRequest, Poll};
use crate::throttle::DEVICE_COOKIE;
use crate::unix_now as now;

/// The page that waits for the citizen's device: the verification code, refreshed every
/// two seconds without JavaScript (the `Refresh` header) and by a visible link.
pub(super) fn smart_id_waiting(p: &Provider, ctx: &FormContext, client: &crate::clients::Client, level: &LevelName, session: &str, code: &str) -> Response {
    let poll = format!("/login/smart-id?tx={}&session={session}&lang={}", ctx.tx, ctx.lang.tag());
    let switch = pages::switch_href(ctx.lang, &format!("/login/smart-id?tx={}&session={session}", ctx.tx));
    let view = SmartIdWaitingPage { lang: ctx.lang, summary: request_summary(p, ctx.lang, client, level), code, poll_href: &poll, switch_href: &switch };
    let mut response = with_form_headers(page(StatusCode::OK, view.render()), ctx);
    if let Ok(v) = HeaderValue::from_str(&format!("2; url={poll}")) {
        response.headers_mut().insert(HeaderName::from_static("refresh"), v);
    }
    response
}

pub(super) async fn smart_id_start(State(p): State<Shared>, request: Request) -> Response {
    let PageRequest { headers, params, address, t, ctx, client } = match page_request(&p, request, true).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let national_id = params.get("national_id").unwrap_or_default().trim().to_owned();
    let Ok(typed) = national_id.parse::<NationalId>() else {
        let form = LoginForm { national_id: &national_id, smart_id_error: Some(text(ctx.lang, "error.national_id")), ..Default::default() };
        return render_login(&p, &ctx, &t, &client, form, StatusCode::BAD_REQUEST);
    };
    let address = client_address(&headers, address, &p.settings.trusted_proxies).map_or_else(|| "unknown".into(), |a| a.to_string());
    let browser = Browser { address: &address, session: cookie(&headers, SESSION_COOKIE), device: cookie(&headers, DEVICE_COOKIE) };
    match p.start_smart_id(&ctx.tx, &typed, &browser, now()).await {
        Ok((session, code)) => smart_id_waiting(&p, &ctx, &client, &t.request.level, &session, &code),
        Err(e) if e.code == ErrorCode::InteractionRequired => {
            let form = LoginForm { national_id: &national_id, smart_id_error: Some(text(ctx.lang, "smart_id.flood")), ..Default::default() };
            render_login(&p, &ctx, &t, &client, form, StatusCode::TOO_MANY_REQUESTS)
        }
        Err(e) => error_page(ctx.lang, StatusCode::BAD_REQUEST, &e.description),
    }
}

pub(super) async fn smart_id_poll(State(p): State<Shared>, request: Request) -> Response {
    let PageRequest { headers, params, t, ctx, client, .. } = match page_request(&p, request, false).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let session = params.get("session").unwrap_or_default().to_owned();
    let polled = p.poll_smart_id(&ctx.tx, &session, cookie(&headers, CSRF_COOKIE), cookie(&headers, SESSION_COOKIE), now()).await;
    match polled {
        Ok(Poll::Waiting { code }) => smart_id_waiting(&p, &ctx, &client, &t.request.level, &session, &code),
        Ok(Poll::Step(LoginStep::Done { session, next, device_cookie })) => logged_in(redirect_to_next(next, ctx.lang), &session, &device_cookie),
        Ok(Poll::Step(LoginStep::Refused(url))) => redirect(&url),
        Ok(Poll::Step(_)) => error_page(ctx.lang, StatusCode::BAD_REQUEST, text(ctx.lang, "error.expired")),
        Ok(Poll::Failed(reason)) => {
            // A failed answer was counted when the device gave it; a session that is gone
            // was never answered.
            if reason == "smart_id.timeout" {
                p.counters.smart_id(SmartIdOutcome::Timeout);
            }
            let hint = t.pending_citizen.clone().unwrap_or_default();
            let form = LoginForm { national_id: &hint, smart_id_error: Some(text(ctx.lang, reason)), ..Default::default() };
            render_login(&p, &ctx, &t, &client, form, StatusCode::UNAUTHORIZED)
        }
        Err(e) => error_page(ctx.lang, StatusCode::FORBIDDEN, &e.description),
    }
}

/// The header that carries a device's signed proof.
pub const DEVICE_PROOF_HEADER: &str = "hawiya-device-proof";

pub(super) async fn device_pending(State(p): State<Shared>, headers: HeaderMap) -> Response {
    let proof = headers.get(DEVICE_PROOF_HEADER).and_then(|v| v.to_str().ok());
    let national_id = match p.device(proof, "GET", "/smart-id/device/pending", now()).await {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    // A signing request first: the citizen started it on purpose, moments ago.
    let request = match p.device_signing_pending(&national_id, now()).await {
        Ok(Some(sign)) => Ok(Some(DeviceRequest::Sign(sign))),
        Ok(None) => match p.device_hash_pending(&national_id, now()).await {
            Ok(Some(hashes)) => Ok(Some(DeviceRequest::SignHashes(hashes))),
            Ok(None) => p.device_pending(&national_id).await.map(|login| login.map(DeviceRequest::Login)),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    match request {
        Ok(Some(request)) => json_response(StatusCode::OK, serde_json::to_value(request).unwrap_or_default()),
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

/// The device's answer to a signing request (PIN2).
pub(super) async fn device_sign(State(p): State<Shared>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let proof = headers.get(DEVICE_PROOF_HEADER).and_then(|v| v.to_str().ok());
    let national_id = match p.device(proof, "POST", "/smart-id/device/sign", now()).await {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    let answer: crate::smart_id::Answer = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => return OAuthError::invalid_request(format!("the answer is not the expected JSON: {e}")).into_response(),
    };
    let start = std::time::Instant::now();
    let answered = p.device_sign(&national_id, &answer, now()).await;
    p.counters.signing_latency(start);
    match answered {
        Ok(state) => {
            p.counters.signing(signing_outcome(&state));
            json_response(StatusCode::OK, serde_json::to_value(state).unwrap_or_default())
        }
        Err(e) => e.into_response(),
    }
}

/// How a signing session the device answered ended, for the metrics.
fn signing_outcome(state: &crate::signing::SigningState) -> SigningOutcome {
    use crate::signing::SigningState as S;
    match state {
        S::Signed => SigningOutcome::Signed,
        S::Failed { reason } if reason == "sign.user_refused" => SigningOutcome::Refused,
        S::Failed { reason } if reason == "sign.wrong_code" => SigningOutcome::WrongCode,
        S::Failed { reason } if reason == "sign.locked" => SigningOutcome::Locked,
        S::Failed { .. } | S::Waiting => SigningOutcome::Failed,
    }
}

/// How a smart-ID login the device answered ended, for the metrics.
fn smart_id_outcome(state: &crate::smart_id::SessionState) -> SmartIdOutcome {
    use crate::smart_id::SessionState as S;
    match state {
        S::Approved { .. } => SmartIdOutcome::Approved,
        S::Failed { reason } if reason == "smart_id.user_refused" => SmartIdOutcome::Refused,
        S::Failed { reason } if reason == "smart_id.wrong_code" => SmartIdOutcome::WrongCode,
        S::Failed { reason } if reason == "smart_id.locked" => SmartIdOutcome::Locked,
        S::Failed { .. } | S::Waiting => SmartIdOutcome::Invalid,
    }
}

/// The device's answer to a hash-signing request of a signing tool (CSC, PIN2).
pub(super) async fn device_sign_hashes(State(p): State<Shared>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let proof = headers.get(DEVICE_PROOF_HEADER).and_then(|v| v.to_str().ok());
    let national_id = match p.device(proof, "POST", "/smart-id/device/sign-hashes", now()).await {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    let answer: crate::csc::HashAnswer = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => return OAuthError::invalid_request(format!("the answer is not the expected JSON: {e}")).into_response(),
    };
    match p.device_sign_hashes(&national_id, &answer, now()).await {
        Ok(state) => json_response(StatusCode::OK, serde_json::to_value(state).unwrap_or_default()),
        Err(e) => e.into_response(),
    }
}

pub(super) async fn device_answer(State(p): State<Shared>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let proof = headers.get(DEVICE_PROOF_HEADER).and_then(|v| v.to_str().ok());
    let national_id = match p.device(proof, "POST", "/smart-id/device/answer", now()).await {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    let answer: crate::smart_id::Answer = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => return OAuthError::invalid_request(format!("the answer is not the expected JSON: {e}")).into_response(),
    };
    let start = std::time::Instant::now();
    let answered = p.device_answer(&national_id, &answer, now()).await;
    p.counters.smart_id_latency(start);
    match answered {
        Ok(state) => {
            p.counters.smart_id(smart_id_outcome(&state));
            json_response(StatusCode::OK, serde_json::to_value(state).unwrap_or_default())
        }
        Err(e) => e.into_response(),
    }
}
