//! The CSC API v2 end to end, over real sockets: a signing tool (a public OpenID Connect
//! client with PKCE, whose service policy grants `csc`) gets a citizen's access token after
//! a smart-ID login at level high; pyHanko's own CSC signer signs a PDF through the API while
//! `hawiya device approve` approves the hash with PIN2 on a smart card (a signature timestamp
//! from the provider's TSA makes it PAdES B-T); pyHanko validates the result, and its
//! timestamp, with the national root as the only trust anchor. Every response of a second,
//! hand-driven flow (and of its refusals) is held to `idp/openapi/csc-v2.yaml`.
// Test code: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD};
use hawiya_e2e::Deployment;
use hawiya_e2e::smart_id::{
    PIN1, PIN2, SAMI, activate, browser, deployment_with_services, device, enroll, server, smart_card, sqlite_count, start_login, stderr, url_encode,
};
use serde_json::{Value, json};

/// A signing tool: may ask citizens for the `csc` scope; only a login at high signs.
const TOOL_POLICY: &str = "version = 1\nclient_id = \"signing-tool\"\nname = { ar = \"أداة التوقيع\", en = \"Desktop signing tool\" }\n\
min_level = \"high\"\nscopes = [\"openid\", \"csc\"]\nclaims = [\"sub\"]\n";

const TOOL_CB: &str = "https://tool.example.jo/cb";

const SHA256: &str = "2.16.840.1.101.3.4.2.1";
const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";

/// The citizen's access token for the signing tool: authorization code with PKCE, smart-ID
/// login approved with PIN1 on the card.
async fn citizen_token(d: &Deployment, card: &Path, env: &[(&str, &str)], scope: &str) -> Value {
    let verifier = "a-code-verifier-that-is-long-enough-for-rfc-7636-0123456789";
    let challenge = URL_SAFE_NO_PAD.encode(idp::provider::sha256(verifier.as_bytes()));
    let authorize = format!(
        "{}/authorize?client_id=signing-tool&redirect_uri={}&response_type=code&scope={}&state=st&nonce=n-1&code_challenge={challenge}&code_challenge_method=S256&ui_locales=en",
        d.base,
        url_encode(TOOL_CB),
        url_encode(scope)
    );
    let mut b = browser(d);
    let (poll, code) = start_login(&mut b, &authorize, SAMI).await;
    let o = device(card, &["approve", "--pin-stdin", "--code", &code], Some(PIN1), env);
    assert!(o.status.success(), "login approve: {}", stderr(&o));
    let r = b.get(&poll).await;
    let out = b.through_consent(r).await;
    let code = hawiya_e2e::web::param(&out, "code").expect("a code for the tool");
    let r = b
        .http
        .post(format!("{}/token", d.base))
        .form(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", TOOL_CB), ("client_id", "signing-tool"), ("code_verifier", verifier)])
        .send()
        .await
        .expect("token");
    assert_eq!(r.status(), 200);
    r.json().await.expect("json")
}

/// Calls of the CSC API, every response recorded for the check against the OpenAPI file.
struct Csc {
    http: reqwest::Client,
    base: String,
    recorded: Vec<Value>,
}

impl Csc {
    /// POSTs `body` to `/csc/v2/{method}`: status, `WWW-Authenticate`, JSON body.
    async fn call(&mut self, method: &str, token: Option<&str>, body: &Value) -> (u16, String, Value) {
        let mut request = self.http.post(format!("{}/csc/v2/{method}", self.base)).json(body);
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        let r = request.send().await.expect("request");
        let status = r.status().as_u16();
        let header = |name: reqwest::header::HeaderName| r.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let (challenge, content_type) = (header(reqwest::header::WWW_AUTHENTICATE), header(reqwest::header::CONTENT_TYPE));
        let body: Value = r.json().await.unwrap_or(Value::Null);
        self.recorded.push(json!({"method": "post", "path": format!("/csc/v2/{method}"), "status": status, "content_type": content_type, "body": body}));
        (status, challenge, body)
    }

    fn check_against_openapi(&self, dir: &Path) {
        hawiya_e2e::check_against_openapi("idp/openapi/csc-v2.yaml", &self.recorded, dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyhanko_signs_a_pdf_through_the_csc_api_with_pin2_on_the_device() {
    let (d, _) = deployment_with_services(&[("HAWIYA_SMART_ID_LIMITS", "50,500")], &[("signing-tool.toml", TOOL_POLICY)]);
    let card_env = smart_card(d.dir.path());
    let env: Vec<(&str, &str)> = card_env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let card = d.path("card");
    let o = activate(&d, &card, &enroll(&d, SAMI, "hardware"), &["--pkcs11-module", &hawiya_e2e::softhsm_module().display().to_string()], &env);
    assert!(o.status.success(), "{}", stderr(&o));
    d.ok(&["client", "add", "--id", "signing-tool", "--redirect-uri", TOOL_CB, "--auth-method", "none"]);
    let tokens = citizen_token(&d, &card, &env, "openid csc").await;
    assert_eq!(tokens["scope"].as_str(), Some("openid csc"), "{tokens}");
    let token = tokens["access_token"].as_str().expect("access token").to_owned();
    let signatures = || sqlite_count(&d, &format!("SELECT count(*) FROM signatures WHERE client_id = 'signing-tool' AND national_id = '{SAMI}'"));

    // pyHanko's CSC signer: the code it prints is the one the device derives.
    let pdf = d.path("contract.pdf");
    std::fs::write(&pdf, hawiya_e2e::sample_pdf()).expect("pdf");
    let signed = d.path("contract-csc.pdf");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pyhanko_csc.py");
    let mut python = Command::new("python3")
        .arg(&script)
        .args([&server(&d), &token])
        .arg(&pdf)
        .arg(&signed)
        .arg(format!("{}/tsa", server(&d)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut lines = BufReader::new(python.stdout.take().expect("stdout")).lines();
    let mut code = None;
    for line in lines.by_ref() {
        if let Some(c) = line.expect("line").strip_prefix("verification-code: ") {
            code = Some(c.to_owned());
            break;
        }
    }
    let Some(code) = code else {
        panic!("pyHanko ended before authorising: {}", hawiya_e2e::output_text(&python.wait_with_output().expect("wait")));
    };
    let o = device(&card, &["pending"], None, &env);
    let shown = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(shown.contains("Desktop signing tool asks you to sign 1 SHA-256 hash(es) (PIN2, signing key)"), "{shown}");
    assert!(shown.contains("pyHanko CSC test document") && shown.contains(&format!("Verification code: {code}")), "{shown}");
    assert_eq!(signatures(), 0, "nothing recorded before the signature is released");
    let o = device(&card, &["approve", "--pin-stdin", "--code", &code], Some(PIN2), &env);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("Signed 1 hash(es) for Desktop signing tool"), "{}", stderr(&o));
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let out = python.wait_with_output().expect("wait");
    assert!(out.status.success() && rest.iter().any(|l| l == "signed"), "pyHanko: {rest:?} {}", String::from_utf8_lossy(&out.stderr));
    let certs = d.path("certs");
    let verdict = hawiya_e2e::run(
        Command::new("pyhanko")
            .args(["sign", "validate", "--trust"])
            .arg(certs.join("root.pem"))
            .args(["--trust-replace", "--other-certs"])
            .arg(certs.join("services-ca.pem"))
            .arg("--no-revocation-check")
            .arg(&signed),
    );
    let verdict = hawiya_e2e::output_text(&verdict);
    assert!(verdict.contains(":INTACT:TRUSTED,TIMESTAMP_TOKEN<INTACT:TRUSTED>"), "pyHanko: {verdict}");
    assert_eq!(signatures(), 1, "the released signature is recorded");

    // The same flow by hand, every response held to the OpenAPI file, with refusals.
    let mut csc = Csc { http: browser(&d).http, base: server(&d), recorded: Vec::new() };
    let (status, _, info) = csc.call("info", None, &json!({"lang": "en"})).await;
    assert_eq!((status, info["specs"].as_str(), info["oauth2"].as_str()), (200, Some("2.0.0.2"), Some(d.base.as_str())), "{info}");
    let (status, challenge, body) = csc.call("credentials/list", None, &json!({})).await;
    assert_eq!((status, body["error"].as_str(), challenge.starts_with("Bearer error=\"invalid_token\"")), (401, Some("invalid_token"), true), "{body}");
    let without = citizen_token(&d, &card, &env, "openid").await;
    let (status, _, body) = csc.call("credentials/list", without["access_token"].as_str(), &json!({})).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("insufficient_scope")), "{body}");
    let (status, _, list) =
        csc.call("credentials/list", Some(&token), &json!({"credentialInfo": true, "certificates": "chain", "certInfo": true, "authInfo": true})).await;
    assert_eq!(status, 200, "{list}");
    let credential = list["credentialIDs"][0].as_str().expect("credential").to_owned();
    assert_eq!(list["credentialInfos"][0]["cert"]["certificates"].as_array().map(Vec::len), Some(3), "certificate, signing CA, root: {list}");
    let (status, _, info) = csc.call("credentials/info", Some(&token), &json!({"credentialID": credential, "certInfo": true, "authInfo": true})).await;
    assert_eq!((status, info["cert"]["status"].as_str(), info["SCAL"].as_str()), (200, Some("valid"), Some("2")), "{info}");
    assert!(info["cert"]["subjectDN"].as_str().unwrap_or_default().contains(&format!("PNOJO-{SAMI}")), "{info}");
    let hash = B64.encode(idp::provider::sha256(b"a document the tool hashed"));
    let (status, _, body) = csc
        .call("credentials/authorize", Some(&token), &json!({"credentialID": credential, "numSignatures": 2, "hashes": [hash], "hashAlgorithmOID": SHA256}))
        .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");
    // The citizen refuses on the device; then chooses another code than the tool shows.
    let authorize = json!({"credentialID": credential, "numSignatures": 1, "hashes": [hash], "hashAlgorithmOID": SHA256});
    for (refuse, why) in [(true, "the citizen refused"), (false, "another verification code")] {
        let (status, _, opened) = csc.call("credentials/authorize", Some(&token), &authorize).await;
        assert_eq!(status, 200, "{opened}");
        let wrong = if opened["verificationCode"] == "0000" { "0001" } else { "0000" };
        let answer = if refuse { vec!["refuse"] } else { vec!["approve", "--pin-stdin", "--code", wrong] };
        let o = device(&card, &answer, Some(PIN2), &env);
        assert_eq!(o.status.success(), refuse, "{}", stderr(&o));
        let check = json!({"credentialID": credential, "responseID": opened["responseID"]});
        let (status, _, body) = csc.call("credentials/authorizeCheck", Some(&token), &check).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("access_denied")), "{body}");
        assert!(body["error_description"].as_str().unwrap_or_default().contains(why), "{body}");
    }
    let (status, _, opened) = csc
        .call(
            "credentials/authorize",
            Some(&token),
            &json!({"credentialID": credential, "numSignatures": 1, "hashes": [hash], "hashAlgorithmOID": SHA256, "description": "By hand"}),
        )
        .await;
    assert_eq!(status, 200, "{opened}");
    let check = json!({"credentialID": credential, "responseID": opened["responseID"]});
    let (status, _, pending) = csc.call("credentials/authorizeCheck", Some(&token), &check).await;
    assert_eq!((status, pending["status"].as_str()), (202, Some("pending")), "{pending}");
    let o = device(&card, &["approve", "--pin-stdin", "--code", opened["verificationCode"].as_str().expect("code")], Some(PIN2), &env);
    assert!(o.status.success(), "{}", stderr(&o));
    let (status, _, sad) = csc.call("credentials/authorizeCheck", Some(&token), &check).await;
    assert_eq!(status, 200, "{sad}");
    let (status, _, body) = csc.call("credentials/authorizeCheck", Some(&token), &check).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "one SAD per authorisation: {body}");
    let other = B64.encode(idp::provider::sha256(b"another document"));
    let sign =
        |hashes: Vec<&str>| json!({"credentialID": credential, "SAD": sad["SAD"], "hashes": hashes, "hashAlgorithmOID": SHA256, "signAlgo": ECDSA_SHA256});
    let (status, _, body) = csc.call("signatures/signHash", Some(&token), &sign(vec![&other])).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");
    assert_eq!(signatures(), 1, "a refused signHash releases nothing");
    let (status, _, body) = csc.call("signatures/signHash", Some(&token), &sign(vec![&hash])).await;
    assert_eq!((status, body["signatures"].as_array().map(Vec::len)), (200, Some(1)), "{body}");
    assert_eq!(signatures(), 2);
    let (status, _, body) = csc.call("signatures/signHash", Some(&token), &sign(vec![&hash])).await;
    assert!(status == 400 && body["error_description"].as_str().unwrap_or_default().contains("used"), "a SAD is spent once: {body}");
    csc.check_against_openapi(d.dir.path());
}
