//! The verification page (`/verify`): upload a signed document, read the verdict in plain
//! words at the top and the EN 319 102-1 details below. Printable; no JavaScript.

use super::{escape, layout, size, text};
use crate::citizens::Lang;
use crate::validation::{FindingView, ReportView, SignatureView};

/// The upload form.
#[derive(Debug)]
pub struct VerifyFormPage<'a> {
    /// The page's language.
    pub lang: Lang,
    /// The anti-CSRF token (also in its cookie).
    pub csrf: &'a str,
    /// The largest upload accepted, in octets.
    pub max_bytes: usize,
    /// The validation policies: id, name in the page's language, whether it is the default.
    pub policies: Vec<(&'a str, &'a str, bool)>,
    /// Why the last upload was not validated, if it was not.
    pub error: Option<&'a str>,
    /// The same page in the other language.
    pub switch_href: &'a str,
}

impl VerifyFormPage<'_> {
    /// The whole page.
    pub fn render(&self) -> String {
        let lang = self.lang;
        let error = self.error.map(|e| format!(r#"<p class="error" role="alert" id="verify-error">{}</p>"#, escape(e))).unwrap_or_default();
        let described = if self.error.is_some() { r#" aria-describedby="verify-limit verify-error""# } else { r#" aria-describedby="verify-limit""# };
        let options: String = self
            .policies
            .iter()
            .map(|(id, name, default)| format!(r#"<option value="{}"{}>{}</option>"#, escape(id), if *default { " selected" } else { "" }, escape(name)))
            .collect();
        let body = format!(
            r#"<p>{intro}</p>{error}
<form method="post" action="/verify" enctype="multipart/form-data">
<input type="hidden" name="csrf" value="{csrf}">
<input type="hidden" name="lang" value="{tag}">
<label for="file">{file_label}</label>
<input type="file" id="file" name="file" required{described}>
<label for="detached">{detached_label}</label>
<input type="file" id="detached" name="detached" aria-describedby="detached-hint">
<p id="detached-hint">{detached_hint}</p>
<label for="policy">{policy_label}</label>
<select id="policy" name="policy">{options}</select>
<p id="verify-limit">{limit_text} {limit}</p>
<button type="submit">{submit}</button>
</form>"#,
            intro = text(lang, "verify.intro"),
            csrf = escape(self.csrf),
            tag = lang.tag(),
            file_label = text(lang, "verify.file"),
            detached_label = text(lang, "verify.detached"),
            detached_hint = text(lang, "verify.detached_hint"),
            policy_label = text(lang, "verify.policy"),
            limit_text = text(lang, "verify.limit"),
            limit = size(self.max_bytes),
            submit = text(lang, "verify.submit"),
        );
        layout(lang, text(lang, "verify.heading"), Some(self.switch_href), &body)
    }
}

/// The report on an uploaded document.
#[derive(Debug)]
pub struct VerifyReportPage<'a> {
    /// The page's language.
    pub lang: Lang,
    /// The report.
    pub report: &'a ReportView,
    /// The form page in the other language.
    pub switch_href: &'a str,
}

/// An indication in plain words, with its code.
fn verdict(lang: Lang, indication: &str) -> (&'static str, &'static str) {
    let key = match indication {
        "TOTAL-PASSED" => "verify.passed",
        "TOTAL-FAILED" => "verify.failed",
        _ => "verify.indeterminate",
    };
    let class = match indication {
        "TOTAL-PASSED" => "passed",
        "TOTAL-FAILED" => "failed",
        _ => "indeterminate",
    };
    (text(lang, key), class)
}

/// What proves a time, in plain words.
fn proof(lang: Lang, proof: &str) -> &'static str {
    match proof {
        "signature-timestamp" => text(lang, "verify.proof.signature_timestamp"),
        "archive-timestamp" => text(lang, "verify.proof.archive_timestamp"),
        "document-timestamp" => text(lang, "verify.proof.document_timestamp"),
        _ => text(lang, "verify.proof.validation_time"),
    }
}

/// A qualification in plain words.
fn qualification(lang: Lang, q: &str) -> &'static str {
    match q {
        "QESig" => text(lang, "verify.qualified"),
        "AdESig-QC" => text(lang, "verify.adesig_qc"),
        "AdESig" => text(lang, "verify.adesig"),
        _ => text(lang, "verify.not_determined"),
    }
}

/// Latin text (codes, times, names of formats) inside a page of either direction.
fn latin(text: &str) -> String {
    format!(r#"<span dir="ltr" lang="en">{}</span>"#, escape(text))
}

fn code(indication: &str, sub: Option<&str>) -> String {
    latin(&match sub {
        Some(s) => format!("{indication} / {s}"),
        None => indication.to_owned(),
    })
}

fn signer_name(lang: Lang, s: &SignatureView) -> String {
    let Some(signer) = &s.signer else { return escape(text(lang, "verify.unknown_signer")) };
    let name = match lang {
        Lang::Ar => signer.name_ar.as_deref().or(signer.name_latin.as_deref()),
        Lang::En => signer.name_latin.as_deref().or(signer.name_ar.as_deref()),
    };
    let mut out = format!("<bdi>{}</bdi>", escape(name.unwrap_or("-")));
    if let Some(id) = &signer.national_id {
        out.push_str(&format!(" ({} {})", text(lang, "national_id"), latin(id)));
    }
    out
}

fn findings(lang: Lang, class: &str, label: &str, list: &[FindingView]) -> String {
    if list.is_empty() {
        return String::new();
    }
    let items: String = list
        .iter()
        .map(|f| {
            let words = match lang {
                Lang::Ar if !f.ar.is_empty() => &f.ar,
                _ => &f.en,
            };
            format!("<li>{} — {}</li>", latin(&f.code), escape(words))
        })
        .collect();
    format!(r#"<h4>{label}</h4><ul class="{class}">{items}</ul>"#)
}

impl VerifyReportPage<'_> {
    /// The verdict on the document: the first signature's signer, time, level and
    /// qualification in plain words.
    fn summary(&self) -> String {
        let (lang, r) = (self.lang, self.report);
        let (words, class) = verdict(lang, &r.indication);
        let mut out = format!(
            r#"<section class="verdict {class}" role="status" id="verdict"><p class="verdict-words">{words}</p><p>{}</p>"#,
            code(&r.indication, r.sub_indication.as_deref())
        );
        let first = r.signatures.iter().find(|s| s.kind == "signature").or(r.signatures.first());
        if let Some(s) = first {
            let t = &s.best_signature_time;
            out.push_str(&format!(
                r#"<dl class="request"><dt>{}</dt><dd id="signer">{}</dd><dt>{}</dt><dd>{} — {}</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{} ({})</dd></dl>"#,
                text(lang, "verify.signer"),
                signer_name(lang, s),
                text(lang, "verify.time"),
                latin(&t.time),
                proof(lang, &t.proof),
                text(lang, "verify.level"),
                latin(&s.format),
                text(lang, "verify.qualification"),
                qualification(lang, &s.qualification),
                latin(&s.qualification),
            ));
        }
        if r.signatures.len() > 1 {
            out.push_str(&format!("<p>{} {}</p>", text(lang, "verify.count"), r.signatures.len()));
        }
        out.push_str("</section>");
        out
    }

    fn signature(&self, s: &SignatureView) -> String {
        let lang = self.lang;
        let (words, class) = verdict(lang, &s.indication);
        let t = &s.best_signature_time;
        let mut out = format!(
            r#"<section class="signature {class}"><h3>{id}</h3><p>{words} {code}</p><dl><dt>{signer_l}</dt><dd>{signer}</dd><dt>{level_l}</dt><dd>{level}</dd><dt>{qual_l}</dt><dd>{qual} ({qual_code})</dd>"#,
            id = latin(&s.id),
            code = code(&s.indication, s.sub_indication.as_deref()),
            signer_l = text(lang, "verify.signer"),
            signer = signer_name(lang, s),
            level_l = text(lang, "verify.level"),
            level = latin(&s.format),
            qual_l = text(lang, "verify.qualification"),
            qual = qualification(lang, &s.qualification),
            qual_code = latin(&s.qualification),
        );
        if let Some(claimed) = &s.claimed_signing_time {
            out.push_str(&format!("<dt>{}</dt><dd>{}</dd>", text(lang, "verify.claimed"), latin(claimed)));
        }
        let serial = t.timestamp_serial.as_deref().map(|s| format!(" · {}", latin(s))).unwrap_or_default();
        out.push_str(&format!("<dt>{}</dt><dd>{} — {}{serial}</dd></dl>", text(lang, "verify.time"), latin(&t.time), proof(lang, &t.proof)));
        if !s.chain.is_empty() {
            let rows: String = s
                .chain
                .iter()
                .map(|c| {
                    let anchor = if c.trust_anchor { text(lang, "verify.anchor") } else { "" };
                    format!(
                        "<tr><td>{}</td><td>{}</td><td>{} — {}</td><td>{anchor}</td></tr>",
                        latin(&c.subject),
                        latin(&c.serial),
                        latin(&c.not_before),
                        latin(&c.not_after)
                    )
                })
                .collect();
            out.push_str(&format!(
                "<h4>{}</h4><table><thead><tr><th>{}</th><th>{}</th><th>{}</th><th></th></tr></thead><tbody>{rows}</tbody></table>",
                text(lang, "verify.chain"),
                text(lang, "verify.subject"),
                text(lang, "verify.serial"),
                text(lang, "verify.validity"),
            ));
        }
        let revocation: String = s
            .revocation
            .iter()
            .map(|e| latin(&format!("{}: {} {} ({}) — {}", e.certificate, e.kind, e.status, e.source, e.produced_at)))
            .map(|line| format!("<li>{line}</li>"))
            .collect();
        out.push_str(&format!(
            "<h4>{}</h4>{}",
            text(lang, "verify.revocation"),
            if revocation.is_empty() { format!("<p>{}</p>", text(lang, "verify.none")) } else { format!("<ul>{revocation}</ul>") }
        ));
        if !s.covers.later_changes.is_empty() {
            let changes: String = s
                .covers
                .later_changes
                .iter()
                .map(|c| {
                    let allowed = if c.allowed { text(lang, "verify.allowed") } else { text(lang, "verify.not_allowed") };
                    format!("<li>{} {} — {allowed}</li>", latin(&c.kind), c.object.as_deref().map(latin).unwrap_or_default())
                })
                .collect();
            out.push_str(&format!("<h4>{}</h4><ul>{changes}</ul>", text(lang, "verify.changes")));
        }
        out.push_str(&findings(lang, "errors", text(lang, "verify.errors"), &s.errors));
        out.push_str(&findings(lang, "warnings", text(lang, "verify.warnings"), &s.warnings));
        out.push_str("</section>");
        out
    }

    /// The whole page.
    pub fn render(&self) -> String {
        let (lang, r) = (self.lang, self.report);
        let policy_name = match lang {
            Lang::Ar => &r.policy.name.ar,
            Lang::En => &r.policy.name.en,
        };
        let details: String = r.signatures.iter().map(|s| self.signature(s)).collect();
        let body = format!(
            r#"{summary}
<dl class="request"><dt>{doc_l}</dt><dd><bdi>{doc}</bdi> ({format}, {size} B)</dd><dt>{policy_l}</dt><dd>{policy_name} ({policy} r{revision})</dd><dt>{when_l}</dt><dd>{when}</dd></dl>
<h2>{details_l}</h2>
{details}
<p class="no-print"><a href="/verify?lang={tag}">{again}</a></p>"#,
            summary = self.summary(),
            doc_l = text(lang, "verify.document"),
            doc = escape(&r.document.name),
            format = latin(&r.document.format),
            size = r.document.size,
            policy_l = text(lang, "verify.policy"),
            policy_name = escape(policy_name),
            policy = latin(&r.policy.id),
            revision = r.policy.revision,
            when_l = text(lang, "verify.validated_at"),
            when = latin(&r.validation_time),
            details_l = text(lang, "verify.details"),
            tag = lang.tag(),
            again = text(lang, "verify.again"),
        );
        layout(lang, text(lang, "verify.report_heading"), Some(self.switch_href), &body)
    }
}
