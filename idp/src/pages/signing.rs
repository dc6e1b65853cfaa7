//! The signing page: choose a document, see the verification code while the device asks
//! for PIN2, download the signed file.

use super::smart_id::waiting_for_device;
use super::{escape, layout, text};
use crate::citizens::Lang;

/// The form that takes the document (a multipart upload that works without JavaScript).
#[derive(Debug)]
pub struct SignFormPage<'a> {
    /// The page's language.
    pub lang: Lang,
    /// The anti-CSRF token (also in its cookie).
    pub csrf: &'a str,
    /// The largest document accepted, in octets.
    pub max_bytes: usize,
    /// Why the last attempt ended without a signature, if it did.
    pub error: Option<&'a str>,
    /// The same page in the other language.
    pub switch_href: &'a str,
}

/// A size in octets for people: `10 MB`, `512 KB` (in the page's digits, which are Latin in
/// both languages here).
pub fn size(bytes: usize) -> String {
    if bytes >= 1024 * 1024 { format!("{:.0} MB", bytes as f64 / (1024.0 * 1024.0)) } else { format!("{} KB", bytes.div_ceil(1024)) }
}

impl SignFormPage<'_> {
    /// The whole page.
    pub fn render(&self) -> String {
        let lang = self.lang;
        let error = self.error.map(|e| format!(r#"<p class="error" role="alert" id="sign-error">{}</p>"#, escape(e))).unwrap_or_default();
        let described = if self.error.is_some() { r#" aria-describedby="sign-limit sign-error""# } else { r#" aria-describedby="sign-limit""# };
        let body = format!(
            r#"<p>{intro}</p>{error}
<form method="post" action="/sign" enctype="multipart/form-data">
<input type="hidden" name="csrf" value="{csrf}">
<input type="hidden" name="lang" value="{tag}">
<label for="document">{label}</label>
<input type="file" id="document" name="document" required{described}>
<p id="sign-limit">{limit_text} {limit}</p>
<p><label class="inline"><input type="checkbox" name="archive" value="1"> {archive}</label></p>
<button type="submit">{submit}</button>
</form>"#,
            intro = text(lang, "sign.intro"),
            csrf = escape(self.csrf),
            tag = lang.tag(),
            label = text(lang, "sign.document"),
            limit_text = text(lang, "sign.limit"),
            limit = size(self.max_bytes),
            submit = text(lang, "sign.submit"),
            archive = text(lang, "sign.archive"),
        );
        layout(lang, text(lang, "sign.heading"), Some(self.switch_href), &body)
    }
}

/// The verification code while the device asks for PIN2; the response's `Refresh` header
/// checks again without JavaScript.
#[derive(Debug)]
pub struct SignWaitingPage<'a> {
    /// The page's language.
    pub lang: Lang,
    /// The document being signed.
    pub document_name: &'a str,
    /// The 4-digit verification code the device shows too.
    pub code: &'a str,
    /// Where the page checks the session again.
    pub poll_href: &'a str,
    /// The same page in the other language.
    pub switch_href: &'a str,
}

impl SignWaitingPage<'_> {
    /// The whole page.
    pub fn render(&self) -> String {
        let lang = self.lang;
        let body = format!(
            r#"<dl class="request"><dt>{}</dt><dd><bdi>{}</bdi></dd></dl>
{}"#,
            text(lang, "sign.document_name"),
            escape(self.document_name),
            waiting_for_device(lang, text(lang, "sign.waiting_intro"), self.code, self.poll_href),
        );
        layout(lang, text(lang, "sign.heading"), Some(self.switch_href), &body)
    }
}

/// The signed file, ready.
#[derive(Debug)]
pub struct SignedPage<'a> {
    /// The page's language.
    pub lang: Lang,
    /// The signed file's name.
    pub file_name: &'a str,
    /// Its format and level (`PAdES-BASELINE-LT`).
    pub level: &'a str,
    /// Where it is downloaded.
    pub download_href: &'a str,
    /// The same page in the other language.
    pub switch_href: &'a str,
}

impl SignedPage<'_> {
    /// The whole page.
    pub fn render(&self) -> String {
        let lang = self.lang;
        let body = format!(
            r#"<p role="status">{done}</p>
<dl class="request"><dt>{file_label}</dt><dd><bdi>{file}</bdi></dd><dt>{format_label}</dt><dd lang="en" dir="ltr">{level}</dd></dl>
<p><a id="download" href="{href}" download="{file}">{download}</a></p>
<p><a href="/sign?lang={tag}">{again}</a></p>"#,
            done = text(lang, "sign.done"),
            file_label = text(lang, "sign.signed_file"),
            file = escape(self.file_name),
            format_label = text(lang, "sign.format"),
            level = escape(self.level),
            href = escape(self.download_href),
            download = text(lang, "sign.download"),
            tag = lang.tag(),
            again = text(lang, "sign.again"),
        );
        layout(lang, text(lang, "sign.heading"), Some(self.switch_href), &body)
    }
}
