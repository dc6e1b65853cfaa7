//! The consent page.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::transaction::{PageRequest, page_request, request_summary, with_form_headers};
use super::{SESSION_COOKIE, Shared, cookie, failure_page, page, redirect_to_next};
use crate::pages::{self, ConsentPage};
use crate::unix_now as now;

pub(super) async fn consent_page(State(p): State<Shared>, request: Request) -> Response {
    let PageRequest { t, ctx, client, .. } = match page_request(&p, request, false).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let claims = p.released_claims(&client, &t.request);
    let switch = pages::switch_href(ctx.lang, &format!("/consent?tx={}", ctx.tx));
    let view = ConsentPage {
        lang: ctx.lang,
        summary: request_summary(&p, ctx.lang, &client, &t.request.level),
        fields: ctx.fields(),
        claims: &claims,
        consent_required: client.service.consent_required,
        switch_href: &switch,
    };
    with_form_headers(page(StatusCode::OK, view.render()), &ctx)
}

pub(super) async fn consent_submit(State(p): State<Shared>, request: Request) -> Response {
    let PageRequest { headers, params, ctx, .. } = match page_request(&p, request, true).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let approve = params.get("decision") == Some("allow");
    match p.consent(&ctx.tx, cookie(&headers, SESSION_COOKIE), approve, now()).await {
        Ok(next) => redirect_to_next(next, ctx.lang),
        Err(e) => failure_page(ctx.lang, e),
    }
}
