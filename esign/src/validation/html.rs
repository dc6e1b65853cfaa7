//! The validation report for people: one HTML page in Arabic (right to left, the default)
//! or English, printable, with one plain verdict at the top — the signer, the time and what
//! proves it, the level, qualified or not — and the details below: per signature its
//! building blocks, chain, revocation evidence, changes after signing and findings.
//!
//! Self-contained: no script, no external resource (fonts, images, styles are inline), a
//! Content-Security-Policy that forbids everything else, a print stylesheet. Every value
//! from the document is escaped.

use std::fmt::Write as _;

use super::report::{Conclusion, Indication, Report, SignatureReport};
use super::xml::escape;

/// The language of the page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lang {
    /// Arabic, right to left (the default).
    #[default]
    Ar,
    /// English.
    En,
}

impl Lang {
    fn pick<'a>(self, ar: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Ar => ar,
            Lang::En => en,
        }
    }
}

const STYLE: &str = "body{font-family:'Noto Naskh Arabic','Noto Sans',system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#111;background:#fff;line-height:1.5}\
h1{font-size:1.4rem;margin:0 0 .5rem}h2{font-size:1.2rem;margin:2rem 0 .5rem;border-bottom:1px solid #888}h3{font-size:1rem;margin:1rem 0 .3rem}\
.verdict{border:3px solid;padding:1rem;margin:1rem 0}.passed{border-color:#0a6b2d;background:#e8f5ec}.failed{border-color:#a4161a;background:#fbeaea}.indeterminate{border-color:#8a5a00;background:#fff6e0}\
.verdict p{margin:.3rem 0;font-size:1.05rem}.verdict .word{font-size:1.5rem;font-weight:bold}\
table{border-collapse:collapse;width:100%;margin:.3rem 0 1rem}th,td{border:1px solid #999;padding:.25rem .4rem;text-align:start;vertical-align:top}th{background:#eee}\
code,.ltr{direction:ltr;unicode-bidi:embed;font-family:ui-monospace,monospace;font-size:.9em;overflow-wrap:anywhere}\
.signature{page-break-inside:avoid}\
@media print{body{margin:0;max-width:none;font-size:10pt}.verdict{background:none}h2{page-break-after:avoid}a{color:inherit;text-decoration:none}}";

fn verdict_word(i: Indication, lang: Lang) -> &'static str {
    match (i, lang) {
        (Indication::TotalPassed, Lang::Ar) => "صالح",
        (Indication::TotalFailed, Lang::Ar) => "غير صالح",
        (Indication::Indeterminate, Lang::Ar) => "غير محسوم",
        (Indication::TotalPassed, Lang::En) => "Valid",
        (Indication::TotalFailed, Lang::En) => "Not valid",
        (Indication::Indeterminate, Lang::En) => "Indeterminate",
    }
}

fn class(i: Indication) -> &'static str {
    match i {
        Indication::TotalPassed => "passed",
        Indication::TotalFailed => "failed",
        Indication::Indeterminate => "indeterminate",
    }
}

/// The standard's words for a conclusion, `TOTAL-FAILED / HASH_FAILURE`, left to right.
fn standard(c: &Conclusion) -> String {
    let sub = c.sub_indication.map(|s| format!(" / {}", s.as_str())).unwrap_or_default();
    format!("<span class=\"ltr\">{}{sub}</span>", c.indication.as_str())
}

fn proof(p: &str, lang: Lang) -> String {
    let (ar, en) = match p {
        "signature-timestamp" => ("طابع زمني على التوقيع", "a signature timestamp"),
        "archive-timestamp" => ("طابع زمني أرشيفي", "an archive timestamp"),
        "document-timestamp" => ("طابع زمني على المستند", "a document timestamp"),
        "validation-time" => ("وقت التحقق (لا دليل على وقت أسبق)", "the validation time (nothing earlier is proved)"),
        other => (other, other),
    };
    escape(lang.pick(ar, en))
}

fn qualification(q: &str, lang: Lang) -> String {
    let (ar, en) = match q {
        "QESig" => ("توقيع إلكتروني مؤهل", "qualified electronic signature"),
        "AdESig-QC" => ("توقيع إلكتروني متقدم بشهادة مؤهلة (غير مؤهل)", "advanced electronic signature with a qualified certificate (not qualified)"),
        "AdESig" => ("توقيع إلكتروني متقدم (غير مؤهل)", "advanced electronic signature (not qualified)"),
        _ => ("لا ينطبق", "not applicable"),
    };
    format!("{} (<span class=\"ltr\">{}</span>)", escape(lang.pick(ar, en)), escape(q))
}

fn kind(k: &str, lang: Lang) -> &str {
    match k {
        "signature" => lang.pick("توقيع", "signature"),
        "document-timestamp" => lang.pick("طابع زمني على المستند", "document timestamp"),
        "timestamp" => lang.pick("طابع زمني", "timestamp"),
        other => other,
    }
}

fn block(b: &str, lang: Lang) -> &str {
    let (ar, en) = match b {
        "format-checking" => ("فحص الصيغة", "format checking"),
        "identification-of-the-signing-certificate" => ("تحديد شهادة التوقيع", "identification of the signing certificate"),
        "validation-context-initialization" => ("تهيئة سياق التحقق", "validation context initialisation"),
        "revocation-freshness-checker" => ("حداثة بيانات الإلغاء", "revocation freshness"),
        "x509-certificate-validation" => ("التحقق من سلسلة الشهادات", "X.509 certificate validation"),
        "cryptographic-verification" => ("التحقق التشفيري", "cryptographic verification"),
        "signature-acceptance-validation" => ("قبول التوقيع", "signature acceptance validation"),
        "timestamp-validation" => ("التحقق من الطابع الزمني", "timestamp validation"),
        "past-signature-validation" => ("التحقق من التوقيع في الماضي", "past signature validation"),
        other => (other, other),
    };
    lang.pick(ar, en)
}

fn signer_name(s: &SignatureReport, lang: Lang) -> String {
    let Some(signer) = &s.signer else {
        return escape(lang.pick("غير معروف (لم تُحدَّد شهادة التوقيع)", "unknown (the signing certificate was not identified)"));
    };
    let name = match lang {
        Lang::Ar => signer.name_ar.as_deref().or(signer.name_latin.as_deref()),
        Lang::En => signer.name_latin.as_deref().or(signer.name_ar.as_deref()),
    };
    let mut out = escape(name.or_else(|| s.chain.first().map(|c| c.subject.as_str())).unwrap_or("-"));
    if let Some(id) = &signer.national_id {
        let _ = write!(out, " — {} <span class=\"ltr\">{}</span>", lang.pick("الرقم الوطني", "national id"), escape(id));
    }
    out
}

/// The plain verdict: the document's, then per signature who, when (and what proves it),
/// which level, qualified or not.
fn verdict(out: &mut String, report: &Report, lang: Lang) {
    let c = &report.conclusion;
    let _ = write!(
        out,
        "<section class=\"verdict {}\" aria-labelledby=\"verdict\"><p class=\"word\" id=\"verdict\">{} {}</p>",
        class(c.indication),
        escape(verdict_word(c.indication, lang)),
        standard(c)
    );
    let _ = write!(out, "<p>{} <span class=\"ltr\">{}</span></p>", lang.pick("المستند:", "Document:"), escape(&report.document.name));
    if report.signatures.is_empty() {
        let _ = write!(out, "<p>{}</p>", lang.pick("لا يحتوي المستند على أي توقيع.", "The document has no signature."));
    }
    for s in &report.signatures {
        let _ = write!(
            out,
            "<p><strong>{}</strong> ({}): {} {}</p>",
            escape(&s.id),
            kind(s.kind, lang),
            escape(verdict_word(s.conclusion.indication, lang)),
            standard(&s.conclusion)
        );
        let _ = write!(out, "<p>{} {}</p>", lang.pick("الموقّع:", "Signed by:"), signer_name(s, lang));
        let t = &s.best_signature_time;
        let _ = write!(
            out,
            "<p>{} <span class=\"ltr\">{}</span> — {} {}</p>",
            lang.pick("وُقّع قبل:", "Signed no later than:"),
            escape(&t.time),
            lang.pick("يثبته", "proved by"),
            proof(t.proof, lang)
        );
        let _ = write!(
            out,
            "<p>{} <span class=\"ltr\">{}</span> · {}</p>",
            lang.pick("المستوى:", "Level:"),
            escape(&s.format),
            qualification(s.qualification, lang)
        );
    }
    out.push_str("</section>");
}

fn row(out: &mut String, cells: &[String]) {
    out.push_str("<tr>");
    for c in cells {
        let _ = write!(out, "<td>{c}</td>");
    }
    out.push_str("</tr>");
}

fn header(out: &mut String, cells: &[&str]) {
    out.push_str("<tr>");
    for c in cells {
        let _ = write!(out, "<th scope=\"col\">{}</th>", escape(c));
    }
    out.push_str("</tr>");
}

fn ltr(text: &str) -> String {
    format!("<span class=\"ltr\">{}</span>", escape(text))
}

fn details(out: &mut String, s: &SignatureReport, lang: Lang) {
    let _ = write!(out, "<section class=\"signature\"><h2>{} — {}</h2>", escape(&s.id), kind(s.kind, lang));
    let _ = write!(out, "<p>{} {}</p>", lang.pick("النتيجة:", "Result:"), standard(&s.conclusion));
    if let Some(t) = &s.claimed_signing_time {
        let _ = write!(out, "<p>{} {}</p>", lang.pick("وقت التوقيع الذي يدّعيه الموقّع:", "Signing time the signer claims:"), ltr(t));
    }
    if let Some(serial) = &s.best_signature_time.timestamp_serial {
        let _ = write!(out, "<p>{} {}</p>", lang.pick("الرقم التسلسلي للطابع الزمني:", "Serial of the timestamp:"), ltr(serial));
    }
    if let Some(after) = &s.retry_after {
        let _ = write!(
            out,
            "<p class=\"retry\">{} {}</p>",
            lang.pick("أدلة الإلغاء غير حديثة بما يكفي؛ أعد التحقق بعد:", "The revocation evidence is not fresh enough; validate again after:"),
            ltr(after)
        );
    }
    // Findings first: they are why it did not pass.
    for (title, list) in [(lang.pick("أخطاء", "Errors"), &s.errors), (lang.pick("تنبيهات", "Warnings"), &s.warnings)] {
        if list.is_empty() {
            continue;
        }
        let _ = write!(out, "<h3>{}</h3><ul>", escape(title));
        for f in list {
            let _ = write!(out, "<li>{} ({})</li>", escape(lang.pick(&f.ar, &f.en)), ltr(f.code));
        }
        out.push_str("</ul>");
    }
    let _ = write!(out, "<h3>{}</h3><table>", lang.pick("مراحل التحقق", "Validation steps"));
    header(out, &[lang.pick("المرحلة", "Step"), lang.pick("النتيجة", "Result"), lang.pick("السبب", "Why")]);
    for b in &s.blocks {
        let why: Vec<String> = b.findings.iter().map(|f| format!("{} ({})", escape(lang.pick(&f.ar, &f.en)), ltr(f.code))).collect();
        row(out, &[escape(block(b.block, lang)), standard(&b.conclusion), why.join("<br>")]);
    }
    out.push_str("</table>");
    if !s.chain.is_empty() {
        let _ = write!(out, "<h3>{}</h3><table>", lang.pick("سلسلة الشهادات", "Certificate chain"));
        header(
            out,
            &[
                lang.pick("الموضوع", "Subject"),
                lang.pick("المُصدِر", "Issuer"),
                lang.pick("الرقم التسلسلي", "Serial"),
                lang.pick("الصلاحية", "Validity"),
                "SHA-256",
            ],
        );
        for c in &s.chain {
            let anchor = if c.trust_anchor { format!("<br>{}", lang.pick("(مرساة الثقة)", "(trust anchor)")) } else { String::new() };
            row(
                out,
                &[
                    format!("{}{anchor}", ltr(&c.subject)),
                    ltr(&c.issuer),
                    ltr(&c.serial),
                    format!("{} → {}", ltr(&c.not_before), ltr(&c.not_after)),
                    format!("<code>{}</code>", escape(&c.sha256)),
                ],
            );
        }
        out.push_str("</table>");
    }
    let _ = write!(out, "<h3>{}</h3>", lang.pick("أدلة الإلغاء", "Revocation evidence"));
    if s.revocation.is_empty() {
        let _ = write!(out, "<p>{}</p>", lang.pick("لم تُستخدم أي أدلة إلغاء.", "No revocation evidence was used."));
    } else {
        out.push_str("<table>");
        header(
            out,
            &[
                lang.pick("الشهادة", "Certificate"),
                lang.pick("النوع", "Kind"),
                lang.pick("المصدر", "Source"),
                lang.pick("الحالة", "Status"),
                lang.pick("صدر في", "Produced at"),
                lang.pick("التحديث التالي", "Next update"),
            ],
        );
        for r in &s.revocation {
            let status = match (r.status, lang) {
                ("good", Lang::Ar) => "سارية".to_owned(),
                ("revoked", Lang::Ar) => "ملغاة".to_owned(),
                ("unknown", Lang::Ar) => "غير معروفة".to_owned(),
                ("not-fresh", Lang::Ar) => "غير حديثة بما يكفي".to_owned(),
                ("not-fresh", Lang::En) => "not fresh enough".to_owned(),
                (other, _) => other.to_owned(),
            };
            let revoked = r.revoked_at.as_deref().map(|t| format!(" ({} {})", lang.pick("منذ", "since"), ltr(t))).unwrap_or_default();
            row(
                out,
                &[
                    ltr(&r.certificate),
                    ltr(&r.kind.to_uppercase()),
                    ltr(r.source),
                    format!("{}{revoked}", escape(&status)),
                    ltr(&r.produced_at),
                    r.next_update.as_deref().map(ltr).unwrap_or_else(|| "-".into()),
                ],
            );
        }
        out.push_str("</table>");
    }
    let _ = write!(out, "<h3>{}</h3>", lang.pick("ما يغطيه التوقيع", "What the signature covers"));
    if let Some([a, b, c, d]) = s.covers.byte_range {
        let _ = write!(out, "<p>{} <span class=\"ltr\">[{a} {b} {c} {d}]</span></p>", lang.pick("النطاق الموقّع:", "Signed byte range:"));
    }
    let _ = write!(
        out,
        "<p>{}</p>",
        if s.covers.whole_document {
            lang.pick("يغطي المستند كاملاً كما هو.", "It covers the whole document as it is.")
        } else {
            lang.pick("عُدِّل المستند بعد هذا التوقيع:", "The document was changed after this signature:")
        }
    );
    if !s.covers.later_changes.is_empty() {
        out.push_str("<table>");
        header(out, &[lang.pick("التغيير", "Change"), lang.pick("الكائن", "Object"), lang.pick("مسموح؟", "Allowed?")]);
        for c in &s.covers.later_changes {
            let allowed = if c.allowed { lang.pick("مسموح", "allowed") } else { lang.pick("غير مسموح", "not allowed") };
            row(out, &[ltr(c.kind), c.object.as_deref().map(ltr).unwrap_or_else(|| "-".into()), escape(allowed)]);
        }
        out.push_str("</table>");
    }
    out.push_str("</section>");
}

/// The report as one self-contained HTML page in `lang`.
pub fn to_html(report: &Report, lang: Lang) -> String {
    let (code, dir) = match lang {
        Lang::Ar => ("ar", "rtl"),
        Lang::En => ("en", "ltr"),
    };
    let title = lang.pick("تقرير التحقق من التوقيع", "Signature validation report");
    let mut out = String::with_capacity(8192);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"{code}\" dir=\"{dir}\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{} — {}</title><style>{STYLE}</style></head><body><main><h1>{}</h1>",
        escape(title),
        escape(&report.document.name),
        escape(title)
    );
    verdict(&mut out, report, lang);
    let policy = lang.pick(&report.policy.name.ar, &report.policy.name.en);
    let _ = write!(
        out,
        "<h2>{}</h2><table><tr><th scope=\"row\">{}</th><td>{} ({} <span class=\"ltr\">{}</span>, {} {})</td></tr>",
        lang.pick("التحقق", "Validation"),
        lang.pick("السياسة", "Policy"),
        escape(policy),
        lang.pick("المعرّف", "id"),
        escape(&report.policy.id),
        lang.pick("الإصدار", "revision"),
        report.policy.revision
    );
    let _ = write!(out, "<tr><th scope=\"row\">{}</th><td>{}</td></tr>", lang.pick("وقت التحقق", "Validation time"), ltr(&report.validation_time));
    let _ = write!(
        out,
        "<tr><th scope=\"row\">{}</th><td>{} · {} {} · SHA-256 <code>{}</code></td></tr>",
        lang.pick("المستند", "Document"),
        ltr(&report.document.name),
        report.document.size,
        lang.pick("بايت", "bytes"),
        escape(&report.document.sha256)
    );
    let c = &report.counts;
    let _ = write!(
        out,
        "<tr><th scope=\"row\">{}</th><td>{} {} · {} {} · {} {} · {} {}</td></tr></table>",
        lang.pick("التواقيع", "Signatures"),
        c.signatures,
        lang.pick("المجموع", "in all"),
        c.passed,
        lang.pick("صالحة", "valid"),
        c.failed,
        lang.pick("غير صالحة", "not valid"),
        c.indeterminate,
        lang.pick("غير محسومة", "indeterminate")
    );
    for s in &report.signatures {
        details(&mut out, s, lang);
    }
    out.push_str("</main></body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::xml::tests::sample;

    #[test]
    fn arabic_is_the_default_right_to_left_with_the_verdict_first() {
        assert_eq!(Lang::default(), Lang::Ar);
        let html = to_html(&sample(), Lang::default());
        assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"ar\" dir=\"rtl\">"), "{html}");
        let verdict = html.find("class=\"verdict failed\"").expect("the verdict");
        let details = html.find("class=\"signature\"").expect("the details");
        assert!(verdict < details, "the verdict comes before the details");
        let top = &html[verdict..details];
        // Signer, time and its proof, level, qualified or not; in Arabic.
        for part in ["غير صالح", "ليلى الأحمد", "9861234567", "2026-11-29T20:00:00Z", "طابع زمني على التوقيع", "PAdES-BASELINE-LT", "توقيع إلكتروني مؤهل"]
        {
            assert!(top.contains(part), "{part} in the verdict: {top}");
        }
        // Findings in the chosen language, escaped.
        assert!(html.contains("الشهادة ملغاة &lt;قبل&gt; التوقيع"), "{html}");
        assert!(!html.contains("was revoked"), "no English finding in the Arabic report");
        assert!(html.contains("التحقق من سلسلة الشهادات"));
    }

    #[test]
    fn english_says_the_same_in_english() {
        let html = to_html(&sample(), Lang::En);
        assert!(html.contains("<html lang=\"en\" dir=\"ltr\">"));
        for part in [
            "Not valid",
            "Layla Al-Ahmad",
            "a signature timestamp",
            "qualified electronic signature",
            "TOTAL-FAILED / REVOKED",
            "X.509 certificate validation",
            "allowed",
        ] {
            assert!(html.contains(part), "{part}: {html}");
        }
        assert!(html.contains("the certificate was revoked &lt;before&gt; the signature &amp; &quot;its&quot; timestamp"));
        assert!(!html.contains("الشهادة ملغاة"), "no Arabic finding in the English report");
        assert!(html.contains("Sig&lt;2&gt;&amp;&quot;"));
    }

    #[test]
    fn printable_and_self_contained() {
        for lang in [Lang::Ar, Lang::En] {
            let html = to_html(&sample(), lang);
            assert!(html.contains("@media print"));
            assert!(html.contains("default-src 'none'"));
            for forbidden in ["<script", "<link", "<img", "src=", "href=", "url(", "@import", "http://", "https://"] {
                assert!(!html.contains(forbidden), "{forbidden} in {html}");
            }
        }
    }
}
