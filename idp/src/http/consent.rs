//! The consent page.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::transaction::{PageRequest, page_request, request_summary, with_form_headers};
use super::{SESSION_COOKIE, Shared, cookie, error_page, page, redirect_to_next};
use crate::citizens::Lang;
use crate::pages::{self, escape, text};
use crate::unix_now as now;

pub(super) async fn consent_page(State(p): State<Shared>, request: Request) -> Response {
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

pub(super) async fn consent_submit(State(p): State<Shared>, request: Request) -> Response {
    let PageRequest { headers, params, ctx, .. } = match page_request(&p, request, true).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let approve = params.get("decision") == Some("allow");
    match p.consent(&ctx.tx, cookie(&headers, SESSION_COOKIE), approve, now()).await {
        Ok(next) => redirect_to_next(next, ctx.lang),
        Err(e) => error_page(ctx.lang, StatusCode::BAD_REQUEST, &e.description),
    }
}
