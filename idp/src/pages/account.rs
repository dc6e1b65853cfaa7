//! The citizen's account page: the services they allowed to receive their data, each with
//! a button that withdraws the consent.

use super::{claim_name, escape, layout, text};
use crate::citizens::Lang;

/// A consent as the account page lists it.
#[derive(Clone, Debug)]
pub struct AccountConsent<'a> {
    /// The service's name (or that it no longer exists), in the page's language.
    pub service: &'a str,
    /// The client the consent was given to.
    pub client_id: &'a str,
    /// The claims it allowed.
    pub claims: Vec<String>,
}

/// The account page.
pub struct AccountPage<'a> {
    /// The page's language.
    pub lang: Lang,
    /// The anti-CSRF token of its forms.
    pub csrf: &'a str,
    /// The consents, in the order given.
    pub consents: Vec<AccountConsent<'a>>,
    /// A consent was just withdrawn.
    pub withdrawn: bool,
}

impl std::fmt::Debug for AccountPage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountPage").field("lang", &self.lang).field("csrf", &"<redacted>").field("consents", &self.consents).finish()
    }
}

impl AccountPage<'_> {
    /// The whole page.
    pub fn render(&self) -> String {
        let lang = self.lang;
        let mut items = String::new();
        for consent in &self.consents {
            let claims: String = consent.claims.iter().map(|c| format!("<li>{}</li>", escape(&claim_name(lang, c)))).collect();
            items.push_str(&format!(
                r#"<li><h2>{name}</h2><ul>{claims}</ul>
<form method="post" action="/account/withdraw">
<input type="hidden" name="csrf" value="{csrf}">
<input type="hidden" name="lang" value="{tag}">
<input type="hidden" name="client" value="{client}">
<button type="submit" class="secondary">{withdraw}</button>
</form></li>"#,
                name = escape(consent.service),
                csrf = escape(self.csrf),
                client = escape(consent.client_id),
                withdraw = text(lang, "account.withdraw"),
                tag = lang.tag(),
            ));
        }
        let status = if self.withdrawn { format!(r#"<p role="status">{}</p>"#, text(lang, "account.withdrawn")) } else { String::new() };
        let list = if self.consents.is_empty() {
            format!("<p>{}</p>", text(lang, "account.none"))
        } else {
            format!(r#"<p>{}</p><ul class="consents">{items}</ul>"#, text(lang, "account.intro"))
        };
        let body = format!(r#"{status}{list}<p><a href="/logout?ui_locales={tag}">{logout}</a></p>"#, tag = lang.tag(), logout = text(lang, "logout.link"));
        let switch = format!("/account?lang={}", if lang == Lang::Ar { "en" } else { "ar" });
        layout(lang, text(lang, "title.account"), Some(&switch), &body)
    }
}
