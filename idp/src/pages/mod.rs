//! The pages citizens see: server-rendered HTML, Arabic (right to left) by default and
//! English, no JavaScript, labelled fields with their errors tied to them.
//!
//! Each page is a typed view (`LoginPage`, `ConsentPage`, …) whose `render` writes the whole
//! document through [`layout`]; the HTTP handlers decide what a page shows, never how.

mod account;
mod consent;
mod login;
mod logout;
mod signing;
mod smart_id;
mod validation;

pub use account::{AccountConsent, AccountPage};
pub use consent::ConsentPage;
pub use login::{LoginPage, SmartIdForm};
pub use logout::{LoggedOutPage, LogoutConfirmPage, LogoutReturn};
pub use signing::{SignFormPage, SignWaitingPage, SignedPage, size};
pub use smart_id::SmartIdWaitingPage;
pub use validation::{VerifyFormPage, VerifyReportPage};

use crate::citizens::Lang;

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A phrase of the interface, in one language.
pub fn text(lang: Lang, key: &str) -> &'static str {
    let (ar, en) = match key {
        "title.login" => ("تسجيل الدخول", "Log in"),
        "title.code" => ("رمز التحقق", "One-time code"),
        "title.consent" => ("مشاركة البيانات", "Sharing your data"),
        "title.error" => ("تعذّر إكمال الطلب", "The request cannot be completed"),
        "title.logout" => ("تسجيل الخروج", "Log out"),
        "title.logged_out" => ("تم تسجيل الخروج", "You are logged out"),
        "brand" => ("هوية — الهوية الرقمية الوطنية", "Hawiya — national digital identity"),
        "service" => ("الخدمة", "Service"),
        "level" => ("مستوى الضمان المطلوب", "Level of assurance required"),
        "national_id" => ("الرقم الوطني", "National ID number"),
        "password" => ("كلمة المرور", "Password"),
        "code" => ("رمز التحقق من تطبيق المصادقة (6 أرقام)", "Code from your authenticator app (6 digits)"),
        "submit.login" => ("دخول", "Log in"),
        "submit.code" => ("تحقق", "Verify"),
        "smart_id.heading" => ("الدخول بالهوية الذكية", "Log in with smart-ID"),
        "smart_id.submit" => ("أرسل الطلب إلى جهازي", "Send the request to my device"),
        "smart_id.intro" => (
            "افتح الهوية الذكية على جهازك وتأكد أنه يعرض رمز التحقق نفسه، ثم أدخل الرمز السري الأول.",
            "Open your smart-ID device, check that it shows this same verification code, then enter PIN1.",
        ),
        "smart_id.code_label" => ("رمز التحقق", "Verification code"),
        "smart_id.waiting" => ("بانتظار موافقتك على الجهاز…", "Waiting for your approval on the device…"),
        "smart_id.check" => ("تحقّق الآن", "Check now"),
        "smart_id.user_refused" => ("رفضتَ الطلب على جهازك.", "You refused the request on your device."),
        "smart_id.wrong_code" => {
            ("اخترتَ رمز تحقق مختلفًا عن المعروض هنا؛ لم يتم الدخول.", "You chose another verification code than the one shown here; you are not logged in.")
        }
        "smart_id.locked" => ("الرمز السري الأول مقفل على جهازك بعد محاولات خاطئة.", "PIN1 is locked on your device after wrong attempts."),
        "smart_id.flood" => ("طلبات كثيرة للهوية الذكية؛ حاول بعد 15 دقيقة.", "Too many smart-ID requests; try again in 15 minutes."),
        "smart_id.timeout" => ("انتهت مهلة الطلب؛ ابدأ من جديد.", "The request timed out; start again."),
        "smart_id.suspended" => ("هويتك الذكية موقوفة مؤقتًا. راجع مكتب التسجيل.", "Your smart-ID is suspended. Contact a registration office."),
        "smart_id.revoked" => ("هويتك الذكية ملغاة. راجع مكتب التسجيل.", "Your smart-ID is revoked. Contact a registration office."),
        "smart_id.expired" => ("انتهت صلاحية شهادة هويتك الذكية.", "Your smart-ID certificate has expired."),
        "smart_id.invalid" => ("تعذّر التحقق من توقيع جهازك.", "Your device's signature could not be verified."),
        "consent.intro" => ("تطلب هذه الخدمة البيانات التالية عنك:", "This service asks for the following data about you:"),
        "consent.inform" => ("يحق لهذه الخدمة بموجب القانون تلقي البيانات التالية عنك:", "By law, this service receives the following data about you:"),
        "consent.allow" => ("موافقة", "Allow"),
        "consent.deny" => ("رفض", "Deny"),
        "consent.continue" => ("متابعة", "Continue"),
        "error.credentials" => ("الرقم الوطني أو كلمة المرور غير صحيحة.", "The national ID number or the password is wrong."),
        "error.national_id" => ("الرقم الوطني من 5 إلى 20 رقمًا (0-9).", "A national id is 5 to 20 digits (0-9)."),
        "error.code" => ("رمز التحقق غير صحيح أو مستخدم من قبل.", "The code is wrong or has been used already."),
        "error.locked" => (
            "تم إيقاف تسجيل الدخول مؤقتاً بسبب كثرة المحاولات الفاشلة. حاول بعد ١٥ دقيقة.",
            "Logging in is blocked for a while after too many failed attempts. Try again in 15 minutes.",
        ),
        "error.unavailable" => ("الخدمة غير متاحة لحظيًا؛ حاول مرة أخرى بعد دقيقة.", "The service is briefly unavailable; please try again in a minute."),
        "error.internal" => ("حدث خطأ من جهتنا؛ لم يُنفَّذ طلبك.", "Something failed on our side; your request was not carried out."),
        "error.busy" => (
            "الخدمة مزدحمة الآن. لم تُحتسب هذه المحاولة؛ أعد المحاولة بعد دقيقة.",
            "The service is very busy right now. This attempt has not been counted; please try again in a minute.",
        ),
        "error.csrf" => ("انتهت صلاحية النموذج. ابدأ من جديد.", "This form has expired. Please start again."),
        "error.expired" => ("انتهت مهلة تسجيل الدخول. عد إلى الخدمة وابدأ من جديد.", "The login has timed out. Go back to the service and start again."),
        "logout.confirm" => ("هل تريد تسجيل الخروج من جميع الخدمات الحكومية؟", "Do you want to log out of every government service?"),
        "logout.submit" => ("تسجيل الخروج", "Log out"),
        "logout.done" => ("أُنهيت جلستك في جميع الخدمات.", "Your session has ended in every service."),
        "title.account" => ("حسابي: مشاركة بياناتي", "My account: sharing my data"),
        "account.intro" => (
            "وافقتَ على أن تتلقى هذه الخدمات البيانات التالية عنك. يمكنك سحب أي موافقة، فتطلبها الخدمة منك من جديد عند استخدامها القادم.",
            "You have allowed these services to receive the following data about you. You can withdraw any consent; the service will then ask you again next time.",
        ),
        "account.none" => ("لم توافق على مشاركة بياناتك مع أي خدمة.", "You have not allowed any service to receive your data."),
        "account.withdraw" => ("سحب الموافقة", "Withdraw consent"),
        "account.withdrawn" => ("سُحبت الموافقة.", "The consent is withdrawn."),
        "account.gone" => ("خدمة لم تعد مسجلة", "A service no longer registered"),
        "account.no_session" => (
            "تعذّر العثور على جلستك. تأكد من تفعيل ملفات تعريف الارتباط ثم حاول من جديد.",
            "Your session cannot be found. Make sure cookies are enabled and try again.",
        ),
        "logout.link" => ("تسجيل الخروج من جميع الخدمات", "Log out of every service"),
        "switch" => ("English", "العربية"),
        "sign.heading" => ("توقيع مستند", "Sign a document"),
        "sign.intro" => (
            "اختر المستند الذي تريد توقيعه: ملف PDF يُوقَّع داخل الملف نفسه، وأي ملف آخر يُوقَّع بملف توقيع منفصل (.p7s). يُطلب منك بعدها الرمز السري الثاني على جهازك.",
            "Choose the document to sign: a PDF is signed inside the file itself, any other file gets a separate signature file (.p7s). Your device then asks for PIN2.",
        ),
        "sign.document" => ("المستند", "Document"),
        "sign.document_name" => ("المستند", "Document"),
        "sign.limit" => ("الحد الأقصى لحجم المستند:", "Largest document accepted:"),
        "sign.submit" => ("وقّع بالهوية الذكية", "Sign with my smart-ID"),
        "sign.archive" => (
            "أضف طابعًا زمنيًا للأرشفة (PAdES-BASELINE-LTA) لمستند يُحفظ سنوات طويلة — لملفات PDF فقط",
            "Add an archive timestamp (PAdES-BASELINE-LTA) for a document kept for many years — PDFs only",
        ),
        "sign.waiting_intro" => (
            "افتح الهوية الذكية على جهازك وتأكد أنه يعرض اسم المستند ورمز التحقق نفسه، ثم أدخل الرمز السري الثاني.",
            "Open your smart-ID device, check that it shows this document and this same verification code, then enter PIN2.",
        ),
        "sign.done" => ("تم توقيع المستند.", "The document is signed."),
        "sign.signed_file" => ("الملف الموقّع", "Signed file"),
        "sign.format" => ("صيغة التوقيع", "Signature format"),
        "sign.download" => ("تنزيل الملف الموقّع", "Download the signed file"),
        "sign.again" => ("توقيع مستند آخر", "Sign another document"),
        "sign.user_refused" => ("رفضتَ الطلب على جهازك؛ لم يُوقَّع شيء.", "You refused the request on your device; nothing was signed."),
        "sign.wrong_code" => (
            "اخترتَ على جهازك رمز تحقق غير المعروض هنا؛ لم يُوقَّع شيء.",
            "You chose another verification code on your device than the one shown here; nothing was signed.",
        ),
        "sign.locked" => (
            "الرمز السري الثاني مقفل على جهازك بعد ثلاث محاولات خاطئة. راجع مكتب التسجيل.",
            "PIN2 is locked on your device after three wrong attempts. Contact a registration office.",
        ),
        "sign.suspended" => ("شهادة التوقيع في هويتك الذكية موقوفة مؤقتًا؛ لم يُوقَّع شيء.", "Your signing certificate is suspended; nothing was signed."),
        "sign.revoked" => ("شهادة التوقيع في هويتك الذكية ملغاة؛ لم يُوقَّع شيء.", "Your signing certificate is revoked; nothing was signed."),
        "sign.bad_signature" => ("توقيع الجهاز لا يطابق المستند؛ لم يُوقَّع شيء.", "The device's signature does not match the document; nothing was signed."),
        "sign.document_changed" => ("تغيّر المستند بعد الطلب؛ لم يُوقَّع شيء.", "The document changed after the request; nothing was signed."),
        "sign.unavailable" => ("تعذّر إتمام التوقيع الآن؛ حاول لاحقًا.", "The signature cannot be completed now; try again later."),
        "sign.timeout" => ("انتهت مهلة الطلب؛ ابدأ من جديد.", "The request timed out; start again."),
        "sign.too_large" => ("المستند أكبر من الحد المسموح.", "The document is larger than allowed."),
        "sign.empty" => ("اختر ملفًا غير فارغ لتوقيعه.", "Choose a file that is not empty."),
        "sign.no_smart_id" => (
            "ليس لديك هوية ذكية مفعّلة فيها شهادة توقيع. راجع مكتب التسجيل.",
            "You have no active smart-ID with a signing certificate. Contact a registration office.",
        ),
        "sign.flood" => ("طلبات كثيرة لجهازك؛ حاول بعد 15 دقيقة.", "Too many requests to your device; try again in 15 minutes."),
        "sign.encrypted" => ("ملف PDF هذا مشفّر؛ لا يمكن توقيعه.", "This PDF is encrypted; it cannot be signed."),
        "sign.damaged" => ("ملف PDF هذا تالف؛ لا يمكن توقيعه.", "This PDF is damaged; it cannot be signed."),
        "sign.certified" => (
            "صدّق مُعِدّ ملف PDF هذا عليه ومنع أي تغيير فيه؛ لا يمكن توقيعه مرة أخرى.",
            "The author of this PDF certified it against any change; it cannot be signed again.",
        ),
        "verify.heading" => ("التحقق من مستند موقّع", "Verify a signed document"),
        "verify.report_heading" => ("نتيجة التحقق", "Verification result"),
        "verify.intro" => (
            "اختر ملفًا موقّعًا: ملف PDF موقّع، أو ملف توقيع منفصل (.p7s) مع المستند الذي وُقّع، أو طابعًا زمنيًا (.tsr) مع مستنده. يُتحقق منه وفق المعيار الأوروبي EN 319 102-1.",
            "Choose a signed file: a signed PDF, a separate signature file (.p7s) with the document it signs, or a timestamp token (.tsr) with its document. It is validated as ETSI EN 319 102-1 says.",
        ),
        "verify.file" => ("الملف الموقّع", "Signed file"),
        "verify.detached" => ("المستند الموقَّع (لتوقيع منفصل فقط)", "The signed document (for a separate signature only)"),
        "verify.detached_hint" => ("اتركه فارغًا لملف PDF موقّع.", "Leave it empty for a signed PDF."),
        "verify.policy" => ("سياسة التحقق", "Validation policy"),
        "verify.limit" => ("الحد الأقصى لحجم الملفات معًا:", "Largest upload accepted (both files together):"),
        "verify.submit" => ("تحقّق", "Verify"),
        "verify.passed" => ("التوقيع صالح.", "The signature is valid."),
        "verify.failed" => ("التوقيع غير صالح.", "The signature is not valid."),
        "verify.indeterminate" => ("تعذّر الحكم على صلاحية التوقيع.", "Whether the signature is valid cannot be determined."),
        "verify.signer" => ("الموقّع", "Signer"),
        "verify.unknown_signer" => ("غير معروف", "Unknown"),
        "verify.time" => ("وقّع قبل", "Signed no later than"),
        "verify.claimed" => ("وقت التوقيع الذي يذكره الموقّع", "Signing time the signer claims"),
        "verify.level" => ("الصيغة والمستوى", "Format and level"),
        "verify.qualification" => ("التأهيل", "Qualification"),
        "verify.qualified" => ("توقيع إلكتروني مؤهل", "Qualified electronic signature"),
        "verify.adesig_qc" => ("توقيع إلكتروني متقدم بشهادة مؤهلة", "Advanced electronic signature with a qualified certificate"),
        "verify.adesig" => ("توقيع إلكتروني متقدم (غير مؤهل)", "Advanced electronic signature (not qualified)"),
        "verify.not_determined" => ("لا ينطبق أو غير محدد", "Not applicable or not determined"),
        "verify.proof.signature_timestamp" => ("يثبته طابع زمني على التوقيع", "proved by a timestamp on the signature"),
        "verify.proof.archive_timestamp" => ("يثبته طابع زمني للأرشفة", "proved by an archive timestamp"),
        "verify.proof.document_timestamp" => ("يثبته طابع زمني على المستند", "proved by a document timestamp"),
        "verify.proof.validation_time" => ("لا يثبت شيء وقتًا أسبق من وقت التحقق", "nothing proves an earlier time than the validation"),
        "verify.count" => ("عدد التواقيع والطوابع الزمنية:", "Signatures and timestamps:"),
        "verify.document" => ("المستند", "Document"),
        "verify.validated_at" => ("وقت التحقق", "Validated at"),
        "verify.details" => ("التفاصيل", "Details"),
        "verify.chain" => ("سلسلة الشهادات", "Certificate chain"),
        "verify.subject" => ("الشهادة", "Certificate"),
        "verify.serial" => ("الرقم التسلسلي", "Serial number"),
        "verify.validity" => ("الصلاحية", "Validity"),
        "verify.anchor" => ("مرجع الثقة", "Trust anchor"),
        "verify.revocation" => ("أدلة الإلغاء المستخدمة", "Revocation evidence used"),
        "verify.none" => ("لا شيء", "None"),
        "verify.changes" => ("تغييرات لاحقة على المستند", "Later changes to the document"),
        "verify.allowed" => ("مسموح", "allowed"),
        "verify.not_allowed" => ("غير مسموح", "not allowed"),
        "verify.errors" => ("الأخطاء", "Errors"),
        "verify.warnings" => ("التنبيهات", "Warnings"),
        "verify.again" => ("التحقق من مستند آخر", "Verify another document"),
        "verify.unavailable" => ("لا يتحقق هذا الخادم من المستندات.", "This server does not validate documents."),
        "verify.too_large" => ("الملفات أكبر من الحد المسموح.", "The files are larger than allowed."),
        "verify.empty" => ("اختر ملفًا موقّعًا غير فارغ.", "Choose a signed file that is not empty."),
        "verify.unknown_policy" => ("سياسة التحقق هذه غير معروفة.", "This validation policy is unknown."),
        "verify.flood" => ("طلبات تحقق كثيرة من عنوانك؛ حاول بعد 15 دقيقة.", "Too many validations from your address; try again in 15 minutes."),
        _ => ("", ""),
    };
    match lang {
        Lang::Ar => ar,
        Lang::En => en,
    }
}

/// Text of the policy files in the page's language.
pub fn localized(lang: Lang, text: &policies::Localized) -> &str {
    match lang {
        Lang::Ar => &text.ar,
        Lang::En => &text.en,
    }
}

/// The name of a claim on the consent page.
pub fn claim_name(lang: Lang, claim: &str) -> String {
    let (ar, en) = match claim {
        "name" => ("الاسم الكامل", "Full name"),
        "given_name" => ("الاسم الأول", "Given name"),
        "family_name" => ("اسم العائلة", "Family name"),
        "birthdate" => ("تاريخ الميلاد", "Date of birth"),
        "email" => ("البريد الإلكتروني", "E-mail address"),
        "email_verified" => ("تأكيد البريد الإلكتروني", "Whether the e-mail address is verified"),
        "phone_number" => ("رقم الهاتف", "Phone number"),
        "phone_number_verified" => ("تأكيد رقم الهاتف", "Whether the phone number is verified"),
        "address" => ("العنوان", "Address"),
        "national_id" => ("الرقم الوطني", "National ID number"),
        other => (other, other),
    };
    match lang {
        Lang::Ar => ar.to_owned(),
        Lang::En => en.to_owned(),
    }
}

/// A whole page: `lang` and `dir` on the root, the stylesheet, the language switch.
pub fn layout(lang: Lang, title: &str, switch_href: Option<&str>, body: &str) -> String {
    let dir = if lang == Lang::Ar { "rtl" } else { "ltr" };
    let switch = match switch_href {
        Some(href) => {
            let other = if lang == Lang::Ar { "en" } else { "ar" };
            format!(r#"<a class="switch" href="{}" hreflang="{other}" lang="{other}">{}</a>"#, escape(href), text(lang, "switch"))
        }
        None => String::new(),
    };
    format!(
        r#"<!DOCTYPE html>
<html lang="{tag}" dir="{dir}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} — {brand}</title>
<link rel="stylesheet" href="/assets/hawiya.css">
</head>
<body>
<header><span class="brand">{brand}</span>{switch}</header>
<main>
<h1>{title}</h1>
{body}
</main>
</body>
</html>
"#,
        tag = lang.tag(),
        title = escape(title),
        brand = text(lang, "brand"),
    )
}

/// The link that shows the same page in the other language: `href` with `lang=<other>`
/// appended.
pub fn switch_href(lang: Lang, href: &str) -> String {
    let other = if lang == Lang::Ar { "en" } else { "ar" };
    format!("{href}&lang={other}")
}

/// The service asking and the level it needs, named as the policy files name them.
#[derive(Clone, Copy, Debug)]
pub struct RequestSummary<'a> {
    /// The page's language.
    pub lang: Lang,
    /// The service's name, in that language.
    pub service: &'a str,
    /// The level's title, in that language.
    pub level: &'a str,
}

impl RequestSummary<'_> {
    /// The summary as a description list.
    pub fn render(&self) -> String {
        format!(
            r#"<dl class="request"><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd></dl>"#,
            text(self.lang, "service"),
            escape(self.service),
            text(self.lang, "level"),
            escape(self.level),
        )
    }
}

/// The hidden fields of every form of a login or consent transaction.
#[derive(Clone, Copy)]
pub struct TransactionFields<'a> {
    /// The transaction.
    pub tx: &'a str,
    /// Its anti-CSRF token.
    pub csrf: &'a str,
    /// The page's language.
    pub lang: Lang,
}

impl std::fmt::Debug for TransactionFields<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionFields").field("tx", &self.tx).field("csrf", &"<redacted>").field("lang", &self.lang).finish()
    }
}

impl TransactionFields<'_> {
    /// The hidden inputs.
    pub fn render(&self) -> String {
        format!(
            r#"<input type="hidden" name="tx" value="{}">
<input type="hidden" name="csrf" value="{}">
<input type="hidden" name="lang" value="{}">"#,
            escape(self.tx),
            escape(self.csrf),
            self.lang.tag()
        )
    }
}

/// A page that says why a request cannot go on.
#[derive(Clone, Copy, Debug)]
pub struct ErrorPage<'a> {
    /// The page's language.
    pub lang: Lang,
    /// What went wrong, for the citizen.
    pub message: &'a str,
}

impl ErrorPage<'_> {
    /// The whole page.
    pub fn render(&self) -> String {
        let body = format!(r#"<p class="error" role="alert">{}</p>"#, escape(self.message));
        layout(self.lang, text(self.lang, "title.error"), None, &body)
    }
}

/// The stylesheet: high contrast, a visible focus ring, logical properties so that both
/// directions lay out alike.
pub const STYLESHEET: &str = r#"
body { font-family: "Noto Sans Arabic", "Noto Sans", system-ui, sans-serif; margin: 0; color: #111; background: #fff; line-height: 1.5; }
header { display: flex; justify-content: space-between; align-items: center; padding: 0.75rem 1.5rem; background: #0b3d2e; color: #fff; }
header a { color: #fff; }
main { max-width: 32rem; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.5rem; }
label { display: block; margin-block-start: 1rem; font-weight: 600; }
label.inline { display: inline; font-weight: normal; }
input[type=text], input[type=password], input[type=file] { display: block; inline-size: 100%; box-sizing: border-box; padding: 0.6rem; font-size: 1rem; border: 2px solid #444; border-radius: 4px; }
button { margin-block-start: 1.25rem; padding: 0.6rem 1.5rem; font-size: 1rem; border: 2px solid #0b3d2e; border-radius: 4px; background: #0b3d2e; color: #fff; cursor: pointer; }
button.secondary { background: #fff; color: #0b3d2e; }
:focus-visible { outline: 3px solid #b35c00; outline-offset: 2px; }
.error { color: #a00000; font-weight: 600; }
dl.request { background: #f2f2f2; padding: 0.75rem 1rem; border-radius: 4px; }
dt { font-weight: 600; }
dd { margin: 0 0 0.5rem 0; }
main:has(.verdict), main:has(form[action="/verify"]) { max-width: 56rem; }
select { display: block; inline-size: 100%; padding: 0.5rem; font-size: 1rem; border: 2px solid #444; border-radius: 4px; }
.verdict { border: 3px solid #444; border-radius: 4px; padding: 0.75rem 1rem; margin-block-end: 1.5rem; }
.verdict.passed { border-color: #0b6b2e; } .verdict.failed { border-color: #a00000; } .verdict.indeterminate { border-color: #8a5a00; }
.verdict-words { font-size: 1.4rem; font-weight: 700; margin: 0; }
.signature { border-block-start: 1px solid #888; margin-block-start: 1rem; }
table { border-collapse: collapse; inline-size: 100%; font-size: 0.9rem; } th, td { border: 1px solid #888; padding: 0.25rem 0.5rem; text-align: start; overflow-wrap: anywhere; }
@media print { header, .no-print { display: none; } main { max-width: none; margin: 0; } }
.verification-code { font-size: 2.5rem; letter-spacing: 0.25em; margin-block: 1rem; direction: ltr; text-align: center; }
"#;
