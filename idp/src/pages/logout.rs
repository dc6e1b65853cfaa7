//! The logout pages: the citizen's confirmation, and that they are logged out.

use super::{escape, layout, text};
use crate::citizens::Lang;

/// Where the confirmed logout goes back to: a registered `post_logout_redirect_uri` of the
/// client that asked, with its `state`.
#[derive(Clone, Copy, Debug)]
pub struct LogoutReturn<'a> {
    /// The client.
    pub client_id: &'a str,
    /// Its registered URI.
    pub uri: &'a str,
    /// Its `state`.
    pub state: Option<&'a str>,
}

/// Asks the citizen to confirm a logout nobody proved the citizen wants.
pub struct LogoutConfirmPage<'a> {
    /// The page's language.
    pub lang: Lang,
    /// The anti-CSRF token of its form.
    pub csrf: &'a str,
    /// Where to go afterwards.
    pub back: Option<LogoutReturn<'a>>,
}

impl std::fmt::Debug for LogoutConfirmPage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogoutConfirmPage").field("lang", &self.lang).field("csrf", &"<redacted>").field("back", &self.back).finish()
    }
}

impl LogoutConfirmPage<'_> {
    /// The whole page.
    pub fn render(&self) -> String {
        let lang = self.lang;
        let hidden = |name: &str, value: &str| format!(r#"<input type="hidden" name="{name}" value="{}">"#, escape(value));
        let mut fields = hidden("csrf", self.csrf) + &hidden("lang", lang.tag());
        if let Some(b) = self.back {
            fields += &(hidden("client_id", b.client_id) + &hidden("post_logout_redirect_uri", b.uri));
            if let Some(s) = b.state {
                fields += &hidden("state", s);
            }
        }
        let body = format!(
            r#"<p>{}</p>
<form method="post" action="/logout/confirm">
{fields}
<button type="submit">{}</button>
</form>"#,
            text(lang, "logout.confirm"),
            text(lang, "logout.submit"),
        );
        layout(lang, text(lang, "title.logout"), None, &body)
    }
}

/// Tells the citizen they are logged out.
#[derive(Clone, Copy, Debug)]
pub struct LoggedOutPage {
    /// The page's language.
    pub lang: Lang,
}

impl LoggedOutPage {
    /// The whole page.
    pub fn render(&self) -> String {
        let body = format!(r#"<p role="status">{}</p>"#, text(self.lang, "logout.done"));
        layout(self.lang, text(self.lang, "title.logged_out"), None, &body)
    }
}
