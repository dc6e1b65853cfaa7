//! The page that waits for the citizen's device.

use super::{RequestSummary, escape, layout, text};
use crate::citizens::Lang;

/// The verification code and a link to check again (the response's `Refresh` header checks
/// by itself, without JavaScript).
#[derive(Debug)]
pub struct SmartIdWaitingPage<'a> {
    /// The page's language.
    pub lang: Lang,
    /// Who asks, at which level.
    pub summary: RequestSummary<'a>,
    /// The 4-digit verification code the device shows too.
    pub code: &'a str,
    /// Where the page checks the session again.
    pub poll_href: &'a str,
    /// The same page in the other language.
    pub switch_href: &'a str,
}

impl SmartIdWaitingPage<'_> {
    /// The whole page.
    pub fn render(&self) -> String {
        let lang = self.lang;
        let body = format!("{}{}", self.summary.render(), waiting_for_device(lang, text(lang, "smart_id.intro"), self.code, self.poll_href));
        layout(lang, text(lang, "smart_id.heading"), Some(self.switch_href), &body)
    }
}

/// What every page that waits for the device shows: what to do, the verification code, that
/// it is waiting, and a link to check again.
pub(super) fn waiting_for_device(lang: Lang, intro: &str, code: &str, poll_href: &str) -> String {
    format!(
        r#"<p>{intro}</p>
<p class="verification-code" aria-label="{label}"><strong id="verification-code">{code}</strong></p>
<p role="status">{waiting}</p>
<p><a href="{href}">{check}</a></p>"#,
        label = text(lang, "smart_id.code_label"),
        code = escape(code),
        waiting = text(lang, "smart_id.waiting"),
        href = escape(poll_href),
        check = text(lang, "smart_id.check"),
    )
}
