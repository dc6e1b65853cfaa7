//! The consent page: what a service will receive, and the citizen's answer (or, where the
//! law is the legal basis, what it will receive and a button to go on).

use super::{RequestSummary, TransactionFields, claim_name, escape, layout, text};
use crate::citizens::Lang;

/// The consent page of a transaction.
#[derive(Debug)]
pub struct ConsentPage<'a> {
    /// The page's language.
    pub lang: Lang,
    /// Who asks, at which level.
    pub summary: RequestSummary<'a>,
    /// The transaction's hidden fields.
    pub fields: TransactionFields<'a>,
    /// The claims the service would receive.
    pub claims: &'a [String],
    /// Whether the citizen decides (or is only informed).
    pub consent_required: bool,
    /// The same page in the other language.
    pub switch_href: &'a str,
}

impl ConsentPage<'_> {
    /// The whole page.
    pub fn render(&self) -> String {
        let lang = self.lang;
        let claims: String = self.claims.iter().map(|c| format!("<li>{}</li>", escape(&claim_name(lang, c)))).collect();
        let buttons = if self.consent_required {
            format!(
                r#"<button type="submit" name="decision" value="allow">{}</button>
<button type="submit" name="decision" value="deny" class="secondary">{}</button>"#,
                text(lang, "consent.allow"),
                text(lang, "consent.deny")
            )
        } else {
            format!(r#"<button type="submit" name="decision" value="allow">{}</button>"#, text(lang, "consent.continue"))
        };
        let intro = text(lang, if self.consent_required { "consent.intro" } else { "consent.inform" });
        let body = format!(
            r#"{summary}<p>{intro}</p><ul>{claims}</ul>
<form method="post" action="/consent">
{fields}
{buttons}
</form>"#,
            summary = self.summary.render(),
            fields = self.fields.render(),
        );
        layout(lang, text(lang, "title.consent"), Some(self.switch_href), &body)
    }
}
