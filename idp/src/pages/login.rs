//! The login page: the password form (with the one-time code when the level needs it, or
//! the code alone at the second step) and the smart-ID form.

use super::{RequestSummary, TransactionFields, escape, layout, text};
use crate::citizens::Lang;

/// The smart-ID form of the login page, and the error of its last attempt.
#[derive(Clone, Copy, Debug, Default)]
pub struct SmartIdForm<'a> {
    /// Why the last smart-ID attempt failed, for the citizen.
    pub error: Option<&'a str>,
}

/// The login page of a transaction.
#[derive(Debug)]
pub struct LoginPage<'a> {
    /// The page's language.
    pub lang: Lang,
    /// Who asks, at which level.
    pub summary: RequestSummary<'a>,
    /// The transaction's hidden fields.
    pub fields: TransactionFields<'a>,
    /// The national id to show (a hint, or what was typed).
    pub national_id: &'a str,
    /// Why the last password attempt failed.
    pub error: Option<&'a str>,
    /// The second step: the one-time code alone.
    pub code_step: bool,
    /// The level needs the one-time code with the password.
    pub code_with_password: bool,
    /// A password method reaches the level: the password form is shown.
    pub password_form: bool,
    /// Smart-ID is offered.
    pub smart_id: Option<SmartIdForm<'a>>,
    /// The same page in the other language.
    pub switch_href: &'a str,
}

impl LoginPage<'_> {
    /// The whole page.
    pub fn render(&self) -> String {
        let lang = self.lang;
        let error_id = "login-error";
        let (error_html, described) = match self.error {
            Some(e) => (
                format!(r#"<p class="error" id="{error_id}" role="alert">{}</p>"#, escape(e)),
                format!(r#" aria-describedby="{error_id}" aria-invalid="true""#),
            ),
            None => (String::new(), String::new()),
        };
        let fields = if self.code_step {
            format!(
                r#"<input type="hidden" name="national_id" value="{nid}">
<label for="code">{code}</label>
<input type="text" id="code" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{{6}}" maxlength="6" required autofocus{described}>"#,
                nid = escape(self.national_id),
                code = text(lang, "code"),
            )
        } else {
            let code_field = if self.code_with_password {
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
                nid = escape(self.national_id),
                pw_label = text(lang, "password"),
                autofocus_nid = if self.national_id.is_empty() { " autofocus" } else { "" },
                autofocus_pw = if self.national_id.is_empty() { "" } else { " autofocus" },
            )
        };
        let title = text(lang, if self.code_step { "title.code" } else { "title.login" });
        let hidden = self.fields.render();
        let password_form = if self.password_form || self.code_step {
            format!(
                r#"<form method="post" action="/login">
{hidden}
{fields}
<button type="submit">{submit}</button>
</form>"#,
                submit = text(lang, if self.code_step { "submit.code" } else { "submit.login" }),
            )
        } else {
            String::new()
        };
        let smart_id_form = match self.smart_id {
            Some(form) if !self.code_step => {
                let (error_html, described) = match form.error {
                    Some(e) => (
                        format!(r#"<p class="error" id="smart-id-error" role="alert">{}</p>"#, escape(e)),
                        r#" aria-describedby="smart-id-error" aria-invalid="true""#,
                    ),
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
                    nid = escape(self.national_id),
                    submit = text(lang, "smart_id.submit"),
                )
            }
            _ => String::new(),
        };
        let body = format!("{summary}{error_html}\n{password_form}\n{smart_id_form}", summary = self.summary.render());
        layout(lang, title, Some(self.switch_href), &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(lang: Lang, error: Option<&str>, code_step: bool) -> String {
        let summary = RequestSummary { lang, service: "السجل <العقاري>", level: "substantial" };
        let fields = TransactionFields { tx: "tx-1", csrf: "csrf-1", lang };
        LoginPage {
            lang,
            summary,
            fields,
            national_id: r#""><script>alert(1)</script>"#,
            error,
            code_step,
            code_with_password: false,
            password_form: true,
            smart_id: Some(SmartIdForm::default()),
            switch_href: "/login?tx=tx-1&lang=en",
        }
        .render()
    }

    #[test]
    fn what_the_citizen_typed_and_the_service_name_are_escaped() {
        let html = page(Lang::Ar, Some("<b>wrong</b>"), false);
        assert!(!html.contains("<script>") && html.contains("&quot;&gt;&lt;script&gt;"), "{html}");
        assert!(html.contains("السجل &lt;العقاري&gt;") && html.contains("&lt;b&gt;wrong&lt;/b&gt;"), "{html}");
        assert!(html.contains(r#"<html lang="ar" dir="rtl">"#) && html.contains(r#"aria-describedby="login-error""#), "{html}");
    }

    #[test]
    fn the_code_step_asks_for_the_code_alone() {
        let html = page(Lang::En, None, true);
        assert!(html.contains(r#"name="code""#) && !html.contains(r#"name="password""#) && !html.contains("/login/smart-id"), "{html}");
        assert!(html.contains(r#"<html lang="en" dir="ltr">"#));
    }
}
