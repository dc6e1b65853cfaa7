//! The validation API (`POST /validation`, documented in `idp/openapi/validation-v1.yaml`)
//! and the verification page (`/verify`): multipart uploads of a signed file, an optional
//! detached document and an optional policy id; no login. The API answers with the JSON
//! report, the page with the report in words. Refusals become responses here.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::error::OAuthRequest;
use super::{CSRF_COOKIE, PageParams, Shared, client_address, cookie, error_page, json_response, page, page_lang, set_cookie};
use crate::citizens::Lang;
use crate::oauth::OAuthError;
use crate::pages::{self, VerifyFormPage, VerifyReportPage, text};
use crate::provider::Provider;
use crate::validation::{ReportView, ValidationRefusal, ValidationRequest};

/// The largest request body: the policy's limit and room for the other fields and the
/// multipart framing.
pub(super) fn body_limit(p: &Provider) -> usize {
    p.max_validation_bytes() + 64 * 1024
}

/// What a multipart upload sent.
#[derive(Default)]
struct Upload {
    request: ValidationRequest,
    csrf: String,
    lang: Option<String>,
    too_large: bool,
}

/// Reads the parts `file`, `detached`, `policy` (and for the page `csrf`, `lang`); others
/// are ignored. An upload over `limit` is marked, not read further.
async fn read_upload(mut multipart: Multipart, limit: usize) -> Result<Upload, String> {
    let mut upload = Upload::default();
    let mut total = 0usize;
    loop {
        let (name, sent_name, bytes) = match super::next_part(&mut multipart).await? {
            super::Part::Field { name, file_name, bytes } => (name, file_name, bytes),
            super::Part::End => return Ok(upload),
            super::Part::TooLarge => {
                upload.too_large = true;
                return Ok(upload);
            }
        };
        let text = || String::from_utf8(bytes.to_vec()).map_err(|_| format!("the part `{name}` is not UTF-8 text"));
        match name.as_str() {
            "csrf" => upload.csrf = text()?,
            "lang" => upload.lang = Some(text()?),
            "policy" => {
                let id = text()?;
                // An empty choice is the default policy.
                upload.request.policy = Some(id.trim().to_owned()).filter(|id| !id.is_empty());
            }
            "file" | "detached" => {
                total = total.saturating_add(bytes.len());
                if total > limit {
                    upload.too_large = true;
                    return Ok(upload);
                }
                if name == "file" {
                    if !upload.request.document.is_empty() {
                        return Err("more than one part `file`".into());
                    }
                    upload.request.name = sent_name;
                    upload.request.document = bytes.to_vec();
                } else if !bytes.is_empty() {
                    // A page's empty file input sends an empty part: no detached document.
                    if upload.request.detached.is_some() {
                        return Err("more than one part `detached`".into());
                    }
                    upload.request.detached = Some(bytes.to_vec());
                }
            }
            _ => {}
        }
    }
}

/// The client's address, for the per-address limit.
fn address(p: &Provider, request: &Request) -> String {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    client_address(request.headers(), peer, &p.settings.trusted_proxies).map_or_else(|| "unknown".into(), |a| a.to_string())
}

/// The code, status and description of an API refusal.
fn api_refusal(e: ValidationRefusal) -> Response {
    let (status, code) = match &e {
        ValidationRefusal::Unavailable => (StatusCode::NOT_FOUND, "not_found"),
        ValidationRefusal::Empty => (StatusCode::BAD_REQUEST, "invalid_request"),
        ValidationRefusal::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "document_too_large"),
        ValidationRefusal::UnknownPolicy { .. } => (StatusCode::BAD_REQUEST, "unknown_policy"),
        ValidationRefusal::Flood => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
        ValidationRefusal::Server(_) => return OAuthError::server(e).into_response(),
    };
    tracing::info!(error = code, description = %e, "validation request refused");
    json_response(status, json!({"error": code, "error_description": e.to_string()}))
}

fn invalid_request(description: String) -> Response {
    tracing::info!(error = "invalid_request", %description, "validation request refused");
    json_response(StatusCode::BAD_REQUEST, json!({"error": "invalid_request", "error_description": description}))
}

/// Whether the client asked for the XML report (`Accept: application/xml`), not JSON.
fn wants_xml(headers: &HeaderMap) -> bool {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let xml = accept.split(',').any(|t| t.trim().starts_with("application/xml") || t.trim().starts_with("text/xml"));
    let json = accept.split(',').any(|t| t.trim().starts_with("application/json"));
    xml && !json
}

/// `POST /validation`: the report on the uploaded document, JSON or (by `Accept`) the ETSI
/// TS 119 102-2 XML.
pub(super) async fn validate(State(p): State<Shared>, request: Request) -> Response {
    let xml = wants_xml(request.headers());
    if !p.validates() {
        return api_refusal(ValidationRefusal::Unavailable);
    }
    let address = address(&p, &request);
    let limit = p.max_validation_bytes();
    let upload = match Multipart::from_request(request, &()).await {
        Ok(multipart) => read_upload(multipart, limit).await,
        Err(e) => Err(format!("the body must be multipart/form-data: {}", e.body_text())),
    };
    let upload = match upload {
        Ok(u) => u,
        Err(why) => return invalid_request(why),
    };
    if upload.too_large {
        return api_refusal(ValidationRefusal::TooLarge(limit));
    }
    match p.validate_document(upload.request, &address).await {
        Ok(reports) if xml => {
            let mut r = (StatusCode::OK, reports.xml).into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/xml; charset=utf-8"));
            r
        }
        Ok(reports) => json_response(StatusCode::OK, reports.json),
        Err(e) => api_refusal(e),
    }
}

/// The form, with a fresh anti-CSRF token in its cookie.
fn form(p: &Provider, lang: Lang, status: StatusCode, error: Option<&str>) -> Response {
    let csrf = match crate::provider::random_token() {
        Ok(c) => c,
        Err(e) => return OAuthError::server(e).into_response(),
    };
    let switch = format!("/verify?lang={}", if lang == Lang::Ar { "en" } else { "ar" });
    let policies = p
        .policies
        .validation_policies()
        .iter()
        .map(|v| (v.id.as_str(), pages::localized(lang, &v.name), v.id == p.policies.default_validation_policy().id))
        .collect();
    let view = VerifyFormPage { lang, csrf: &csrf, max_bytes: p.max_validation_bytes(), policies, error, switch_href: &switch };
    let mut r = page(status, view.render());
    r.headers_mut().append(header::SET_COOKIE, set_cookie(CSRF_COOKIE, &csrf, None));
    r
}

/// `GET /verify`: the upload form.
pub(super) async fn verify_page(State(p): State<Shared>, PageParams(OAuthRequest { headers, params, .. }): PageParams) -> Response {
    let ui_locales: Vec<Lang> = params.get("ui_locales").map(|v| v.split(' ').filter_map(Lang::first_of).collect()).unwrap_or_default();
    let lang = page_lang(params.get("lang"), &ui_locales, &headers);
    if !p.validates() {
        return error_page(lang, StatusCode::NOT_FOUND, text(lang, "verify.unavailable"));
    }
    form(&p, lang, StatusCode::OK, None)
}

/// `POST /verify`: the report on the uploaded document, in words.
pub(super) async fn verify_upload(State(p): State<Shared>, request: Request) -> Response {
    let headers: HeaderMap = request.headers().clone();
    let lang = page_lang(None, &[], &headers);
    if !p.validates() {
        return error_page(lang, StatusCode::NOT_FOUND, text(lang, "verify.unavailable"));
    }
    let address = address(&p, &request);
    let limit = p.max_validation_bytes();
    let upload = match Multipart::from_request(request, &()).await {
        Ok(multipart) => read_upload(multipart, limit).await,
        Err(e) => Err(e.body_text()),
    };
    let upload = match upload {
        Ok(u) => u,
        Err(why) => return error_page(lang, StatusCode::BAD_REQUEST, &why),
    };
    let lang = page_lang(upload.lang.as_deref(), &[], &headers);
    let too_large = || format!("{} {} {}", text(lang, "verify.too_large"), text(lang, "verify.limit"), pages::size(limit));
    if upload.too_large {
        // Said before the token is checked: the token may be in the part that was not read.
        return form(&p, lang, StatusCode::PAYLOAD_TOO_LARGE, Some(&too_large()));
    }
    let expected = cookie(&headers, CSRF_COOKIE).unwrap_or_default();
    let eq = |a: &str, b: &str| aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok();
    if expected.len() != 43 || !eq(&upload.csrf, expected) {
        tracing::warn!(target: "audit", event = "csrf.refused", "verification upload without a valid anti-CSRF token");
        return error_page(lang, StatusCode::FORBIDDEN, text(lang, "error.csrf"));
    }
    match p.validate_document(upload.request, &address).await {
        Ok(reports) => match serde_json::from_value::<ReportView>(reports.json) {
            Ok(report) => {
                let switch = format!("/verify?lang={}", if lang == Lang::Ar { "en" } else { "ar" });
                page(StatusCode::OK, VerifyReportPage { lang, report: &report, switch_href: &switch }.render())
            }
            Err(e) => OAuthError::server(e).into_response(),
        },
        Err(ValidationRefusal::TooLarge(_)) => form(&p, lang, StatusCode::PAYLOAD_TOO_LARGE, Some(&too_large())),
        Err(ValidationRefusal::Empty) => form(&p, lang, StatusCode::BAD_REQUEST, Some(text(lang, "verify.empty"))),
        Err(ValidationRefusal::UnknownPolicy { .. }) => form(&p, lang, StatusCode::BAD_REQUEST, Some(text(lang, "verify.unknown_policy"))),
        Err(ValidationRefusal::Flood) => form(&p, lang, StatusCode::TOO_MANY_REQUESTS, Some(text(lang, "verify.flood"))),
        Err(e) => OAuthError::server(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use hsm_shim::KeyStore;
    use hsm_shim::soft::{OperatorSecret, SoftKeyStore};
    use serde_json::{Value, json};
    use store::ephemeral::{EphemeralStore, MemoryStore};
    use tower::ServiceExt;

    use crate::provider::Provider;
    use crate::validation::Validator;

    /// Answers every document with a fixed report naming the policy it was given, and counts
    /// the validations: the refusals under test must never reach it. (The real validator is
    /// `hawiya`'s, on `esign`, which this crate must not depend on; it is tested end to end.)
    #[derive(Default)]
    struct Counting {
        calls: AtomicUsize,
    }

    impl Validator for Counting {
        fn validate(&self, document: &[u8], name: &str, detached: Option<&[u8]>, policy: &policies::ValidationPolicy) -> crate::validation::Reports {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let xml = format!("<ValidationReport policy=\"{}\"/>", policy.id);
            let json = json!({
                "policy": {"id": policy.id, "revision": policy.revision, "name": {"ar": policy.name.ar, "en": policy.name.en}},
                "validation_time": "2026-11-29T12:00:00Z",
                "document": {"name": name, "size": document.len(), "format": "PDF", "detached": detached.map(<[u8]>::len)},
                "indication": "TOTAL-PASSED",
                "signatures": [{
                    "id": "Signature1", "kind": "signature", "indication": "TOTAL-PASSED", "format": "PAdES-BASELINE-LT",
                    "qualification": "QESig", "signer": {"name_ar": "ليلى حداد", "name_latin": "Layla Haddad", "national_id": "9861234567"},
                    "best_signature_time": {"time": "2026-11-29T11:59:00Z", "proof": "signature-timestamp", "timestamp_serial": "0a"},
                    "revocation": [{"certificate": "CN=Layla Haddad", "kind": "ocsp", "source": "dss", "status": "good", "produced_at": "2026-11-29T11:59:01Z"}],
                    "chain": [{"subject": "CN=Layla Haddad", "serial": "01", "not_before": "2026-01-01T00:00:00Z", "not_after": "2028-01-01T00:00:00Z", "trust_anchor": false}],
                    "covers": {"whole_document": false, "later_changes": [{"kind": "dss", "allowed": true}]},
                    "errors": [], "warnings": [{"code": "W1", "ar": "تنبيه <b>", "en": "a warning <b>"}]
                }]
            });
            crate::validation::Reports { json, xml }
        }
    }

    struct Fixture {
        app: axum::Router,
        validator: Arc<Counting>,
        ephemeral: Arc<MemoryStore>,
        _dir: tempfile::TempDir,
    }

    async fn fixture(validates: bool) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = OperatorSecret::new(b"unit test secret, not for production".to_vec()).expect("secret");
        let keys: Arc<dyn KeyStore> = Arc::new(SoftKeyStore::open_or_create(&dir.path().join("keys"), &secret).expect("key store"));
        let durable: Arc<dyn store::DurableStore> = Arc::new(store::SqliteStore::open(&dir.path().join("db")).expect("db"));
        let signing = crate::keys::SigningKeys::open(keys, durable.clone(), std::time::Duration::from_secs(900), 1).await.expect("keys");
        let policies = Arc::new(policies::Policies::shipped().expect("policies"));
        let ephemeral = Arc::new(MemoryStore::new());
        let mut provider =
            Provider::new(crate::Settings::new("https://id.example.jo", vec![7; 32]), policies, durable, ephemeral.clone(), signing).expect("provider");
        let validator = Arc::new(Counting::default());
        if validates {
            provider = provider.with_validation(validator.clone());
        }
        Fixture { app: super::super::router(Arc::new(provider)), validator, ephemeral, _dir: dir }
    }

    const BOUNDARY: &str = "hawiya-test-boundary";

    /// A multipart body of `parts`: (name, file name if a file, content).
    fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (name, file, content) in parts {
            body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
            match file {
                Some(f) => body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
                ),
                None => body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
            }
            body.extend_from_slice(content);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        body
    }

    fn post(uri: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> Request<Body> {
        let mut r = Request::post(uri).header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}"));
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.body(Body::from(body)).expect("request")
    }

    async fn send(app: &axum::Router, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
        let response = app.clone().oneshot(request).await.expect("response");
        let (status, headers) = (response.status(), response.headers().clone());
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    async fn api(app: &axum::Router, body: Vec<u8>) -> (StatusCode, Value) {
        let (status, headers, body) = send(app, post("/validation", body, &[])).await;
        assert_eq!(headers[header::CONTENT_TYPE], "application/json", "{body}");
        (status, serde_json::from_str(&body).expect("JSON"))
    }

    /// The per-address count the limit keeps (oneshot requests have no peer: "unknown").
    async fn counted(f: &Fixture) -> Option<axum::body::Bytes> {
        f.ephemeral.get(&crate::keyspace::attempts("validation-address", "unknown")).await.expect("store")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn malformed_requests_unknown_policies_and_oversized_uploads_are_refused_before_any_validation() {
        let f = fixture(true).await;
        // Not multipart at all.
        let request = Request::post("/validation").header(header::CONTENT_TYPE, "application/json").body(Body::from("{}")).expect("request");
        let (status, _, body) = send(&f.app, request).await;
        let body: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "{body}");
        assert!(body["error_description"].as_str().expect("description").contains("multipart/form-data"), "{body}");
        // No `file`, or an empty one.
        for parts in [vec![("detached", Some("doc.bin"), &b"content"[..])], vec![("file", Some("empty.pdf"), &b""[..])]] {
            let (status, body) = api(&f.app, multipart(&parts)).await;
            assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "{body}");
            assert!(body["error_description"].as_str().expect("description").contains("`file`"), "{body}");
        }
        // Two files.
        let (status, body) = api(&f.app, multipart(&[("file", Some("a.pdf"), b"a"), ("file", Some("b.pdf"), b"b")])).await;
        assert_eq!((status, body["error_description"].as_str()), (StatusCode::BAD_REQUEST, Some("more than one part `file`")), "{body}");
        // A policy nobody wrote: the known ones are named.
        let (status, body) = api(&f.app, multipart(&[("file", Some("a.pdf"), b"%PDF"), ("policy", None, b"lenient")])).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unknown_policy")), "{body}");
        let description = body["error_description"].as_str().expect("description");
        assert!(description.contains("\"lenient\"") && description.contains("qualified") && description.contains("advanced"), "{body}");
        // Over max_validation_bytes, the file and its detached document together; the limit named.
        let limit = policies::Policies::shipped().expect("policies").signing().max_validation_bytes;
        let half = vec![b'x'; limit / 2 + 1];
        let (status, body) = api(&f.app, multipart(&[("file", Some("a.p7s"), &half), ("detached", Some("doc"), &half)])).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("document_too_large")), "{body}");
        assert!(body["error_description"].as_str().expect("description").contains(&limit.to_string()), "{body}");
        // A body beyond the transport limit too.
        let huge = vec![b'x'; limit + 128 * 1024];
        let (status, body) = api(&f.app, multipart(&[("file", Some("a.pdf"), &huge)])).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("document_too_large")), "{body}");
        // Nothing was validated, nothing counted against the address.
        assert_eq!(f.validator.calls.load(Ordering::SeqCst), 0);
        assert_eq!(counted(&f).await, None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_document_gets_the_validators_report_under_the_policy_asked_for_or_the_default() {
        let f = fixture(true).await;
        let (status, report) = api(&f.app, multipart(&[("file", Some("dir/signed.pdf"), b"%PDF-1.7"), ("policy", None, b"qualified")])).await;
        assert_eq!(status, StatusCode::OK, "{report}");
        assert_eq!((report["policy"]["id"].as_str(), report["document"]["name"].as_str()), (Some("qualified"), Some("signed.pdf")), "{report}");
        assert_eq!(report["document"]["size"], 8);
        // No policy, or an empty choice: the default; the detached document is passed on.
        let default = policies::Policies::shipped().expect("policies").default_validation_policy().id.clone();
        for policy in [None, Some(&b""[..])] {
            let mut parts = vec![("file", Some("sig.p7s"), &b"cms"[..]), ("detached", Some("doc.txt"), &b"content"[..])];
            if let Some(p) = policy {
                parts.push(("policy", None, p));
            }
            let (status, report) = api(&f.app, multipart(&parts)).await;
            assert_eq!((status, report["policy"]["id"].as_str()), (StatusCode::OK, Some(default.as_str())), "{report}");
            assert_eq!(report["document"]["detached"], 7, "{report}");
        }
        assert_eq!(f.validator.calls.load(Ordering::SeqCst), 3);
        // Accept: application/xml gets the ETSI XML report; JSON stays the default.
        let body = multipart(&[("file", Some("a.pdf"), b"%PDF"), ("policy", None, b"qualified")]);
        let (status, headers, xml) = send(&f.app, post("/validation", body.clone(), &[("accept", "application/xml")])).await;
        assert_eq!(
            (status, headers[header::CONTENT_TYPE].to_str().ok(), xml.as_str()),
            (StatusCode::OK, Some("application/xml; charset=utf-8"), "<ValidationReport policy=\"qualified\"/>")
        );
        let (_, headers, _) = send(&f.app, post("/validation", body, &[("accept", "application/json, application/xml")])).await;
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_address_gets_100_validations_in_15_minutes() {
        let f = fixture(true).await;
        let body = multipart(&[("file", Some("a.pdf"), b"%PDF")]);
        for i in 0..100 {
            let (status, report) = api(&f.app, body.clone()).await;
            assert_eq!(status, StatusCode::OK, "validation {i}: {report}");
        }
        let (status, body) = api(&f.app, body).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("too_many_requests")), "{body}");
        assert_eq!(f.validator.calls.load(Ordering::SeqCst), 100, "the refused one was not validated");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_server_without_a_validator_says_so() {
        let f = fixture(false).await;
        let (status, body) = api(&f.app, multipart(&[("file", Some("a.pdf"), b"%PDF")])).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{body}");
        let (status, _, page) = send(&f.app, Request::get("/verify").body(Body::empty()).expect("request")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(page.contains("لا يتحقق هذا الخادم من المستندات"), "{page}");
    }

    fn csrf_of(headers: &axum::http::HeaderMap) -> String {
        let cookie = headers[header::SET_COOKIE].to_str().expect("ascii");
        let value = cookie.strip_prefix(&format!("{}=", super::CSRF_COOKIE)).expect("the anti-CSRF cookie");
        value.split(';').next().expect("value").to_owned()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_page_speaks_arabic_by_default_and_english_when_asked_and_needs_its_csrf_token() {
        let f = fixture(true).await;
        let get = |uri: &str, accept: Option<&str>| {
            let mut r = Request::get(uri);
            if let Some(a) = accept {
                r = r.header(header::ACCEPT_LANGUAGE, a);
            }
            r.body(Body::empty()).expect("request")
        };
        let (status, headers, page) = send(&f.app, get("/verify", None)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains(r#"<html lang="ar" dir="rtl">"#) && page.contains("التحقق من مستند موقّع"), "{page}");
        assert!(page.contains(r#"enctype="multipart/form-data""#) && page.contains(r#"<option value="qualified""#), "{page}");
        assert!(!page.contains("<script"), "no JavaScript");
        assert!(headers[header::CONTENT_SECURITY_POLICY].to_str().expect("ascii").contains("frame-ancestors 'none'"));
        let csrf = csrf_of(&headers);
        assert!(page.contains(&format!(r#"name="csrf" value="{csrf}""#)), "{page}");
        for (uri, accept) in [("/verify", Some("en-GB,en;q=0.9")), ("/verify?ui_locales=en", None), ("/verify?lang=en", Some("ar"))] {
            let (_, _, page) = send(&f.app, get(uri, accept)).await;
            assert!(page.contains(r#"<html lang="en" dir="ltr">"#) && page.contains("Verify a signed document"), "{uri}: {page}");
        }

        // Without the token in the form and the cookie: refused, nothing validated.
        let form = |token: &str| multipart(&[("csrf", None, token.as_bytes()), ("lang", None, b"en"), ("file", Some("signed.pdf"), b"%PDF")]);
        let cookie = format!("{}={csrf}", super::CSRF_COOKIE);
        for (body, cookie) in [(form(&csrf), None), (form("forged-token-forged-token-forged-token-00000"), Some(cookie.as_str()))] {
            let headers: Vec<(&str, &str)> = cookie.map(|c| vec![("cookie", c)]).unwrap_or_default();
            let (status, _, page) = send(&f.app, post("/verify", body, &headers)).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
        }
        assert_eq!(f.validator.calls.load(Ordering::SeqCst), 0);
        assert_eq!(counted(&f).await, None);

        // With it: the verdict in words at the top, the details below, findings escaped.
        let (status, _, page) = send(&f.app, post("/verify", form(&csrf), &[("cookie", &cookie)])).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let verdict = page.find(r#"id="verdict""#).expect("the verdict");
        let details = page.find("<h2>Details</h2>").expect("the details");
        assert!(verdict < details);
        for expected in [
            "The signature is valid.",
            "TOTAL-PASSED",
            "Layla Haddad",
            "9861234567",
            "proved by a timestamp on the signature",
            "PAdES-BASELINE-LT",
            "Qualified electronic signature",
            "Revocation evidence used",
            "Later changes to the document",
            "a warning &lt;b&gt;",
        ] {
            assert!(page.contains(expected), "{expected:?} missing: {page}");
        }
        assert_eq!(f.validator.calls.load(Ordering::SeqCst), 1);

        // An unknown policy on the page: the form again, with the reason, in the page's language.
        let body = multipart(&[("csrf", None, csrf.as_bytes()), ("file", Some("signed.pdf"), b"%PDF"), ("policy", None, b"lenient")]);
        let (status, _, page) = send(&f.app, post("/verify", body, &[("cookie", &cookie)])).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(page.contains("سياسة التحقق هذه غير معروفة") && page.contains(r#"action="/verify""#), "{page}");
        assert_eq!(f.validator.calls.load(Ordering::SeqCst), 1);
    }
}
