//! Smart-ID end to end: a registration officer enrols citizens (CLI and RA API), reference
//! devices activate on the soft key store and on SoftHSM2, the certificates they get are
//! checked by OpenSSL and pkilint, and suspension shows in OCSP.
// Test code: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use hawiya_e2e::metrics::parse_exposition;
use hawiya_e2e::smart_id::{
    LAYLA, PIN1, PIN2, SAMI, activate, browser, deployment, deployment_with, deployment_with_services, device, enroll, server, smart_card, sqlite_count,
    start_login, stderr, url_encode,
};
use hawiya_e2e::{Deployment, openssl, pkilint, softhsm_module};
use serde_json::{Value, json};

async fn post(url: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut request = idp::backchannel::http_client().expect("client").post(url).json(body);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `openssl verify` of a device certificate against the device's own copy of the chain.
fn verify(dir: &Path, cert: &str, ca: &str) {
    let p = |f: &str| dir.join(f).display().to_string();
    let o = openssl(dir, &["verify", "-CAfile", &p("root.pem"), "-untrusted", &p(ca), &p(cert)]);
    assert!(o.status.success(), "openssl verify {cert}: {}", String::from_utf8_lossy(&o.stdout));
}

/// The OCSP status of the device's authentication certificate, as `openssl ocsp` reads it.
fn ocsp_status(d: &Deployment, dir: &Path) -> String {
    let p = |f: &str| dir.join(f).display().to_string();
    let url = format!("{}/ocsp", server(d));
    let o = openssl(dir, &["ocsp", "-issuer", &p("authentication-ca.pem"), "-cert", &p("authentication.pem"), "-CAfile", &p("root.pem"), "-url", &url]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(text.contains("Response verify OK"), "openssl ocsp: {text}");
    text.lines().filter(|l| l.contains("authentication.pem:") || l.contains("Reason:")).map(str::trim).collect::<Vec<_>>().join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolment_activates_devices_on_both_key_stores() {
    let (d, token) = deployment();
    let base = server(&d);

    // Software keys: the soft key store, sealed under the device secret and the PINs.
    let soft = d.path("phone");
    let code = enroll(&d, LAYLA, "software");
    let o = activate(&d, &soft, &code, &[], &[]);
    assert!(o.status.success(), "activate: {}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("Activated the smart-ID of Layla Haddad"));
    verify(&soft, "authentication.pem", "authentication-ca.pem");
    verify(&soft, "signature.pem", "signing-ca.pem");
    let state: Value = serde_json::from_slice(&std::fs::read(soft.join("device.json")).expect("device.json")).expect("json");
    assert_eq!(state["custody"], "software");
    assert!(!std::fs::read_to_string(soft.join("device.json")).unwrap().contains(PIN1), "no PIN is kept in the clear");

    // Hardware keys: a smart card (two SoftHSM2 tokens whose user PINs are PIN1 and PIN2).
    let card_env = smart_card(d.dir.path());
    let env: Vec<(&str, &str)> = card_env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let card = d.path("card-device");
    let code = enroll(&d, SAMI, "hardware");
    let o = activate(&d, &card, &code, &[], &env);
    assert_eq!(stderr(&o), "error: this enrolment is for a hardware token: activate with --pkcs11-module (the smart card)");
    let module = softhsm_module().display().to_string();
    let o = activate(&d, &card, &code, &["--pkcs11-module", &module], &env);
    assert!(o.status.success(), "activate on the card: {}", stderr(&o));
    verify(&card, "authentication.pem", "authentication-ca.pem");
    verify(&card, "signature.pem", "signing-ca.pem");

    // Profiles by custody: hardware keys get NCP+ and QCP-n-qscd with the national hardware
    // policy, software keys NCP and QCP-n.
    for (dir, etsi_auth, etsi_sign, auth_policy, sign_policy) in [
        (&card, "NCP-NATURAL-PERSON-CERTIFICATE", "QCP-N-QSCD-NON-EIDAS-FINAL-CERTIFICATE", "2.16.400.1.1.1.1", "0.4.0.194112.1.2"),
        // pkilint knows no QCP-n (without QSCD) type; NCP is the requirements it builds on.
        (&soft, "NCP-NATURAL-PERSON-CERTIFICATE", "NCP-NATURAL-PERSON-CERTIFICATE", "2.16.400.1.1.1.3", "0.4.0.194112.1.0"),
    ] {
        for (cert, etsi_type) in [("authentication.pem", etsi_auth), ("signature.pem", etsi_sign)] {
            let findings = pkilint("lint_etsi_cert", &["-t", etsi_type], &dir.join(cert));
            assert!(findings.is_empty(), "pkilint ETSI {etsi_type} {cert}: {findings:#?}");
            let findings = pkilint("lint_pkix_cert", &[], &dir.join(cert));
            assert!(findings.is_empty(), "pkilint PKIX {cert}: {findings:#?}");
        }
        let text =
            |cert: &str| String::from_utf8_lossy(&openssl(dir, &["x509", "-noout", "-text", "-in", &dir.join(cert).display().to_string()]).stdout).into_owned();
        assert!(text("authentication.pem").contains(auth_policy), "{}", text("authentication.pem"));
        assert!(text("signature.pem").contains(sign_policy), "{}", text("signature.pem"));
    }

    // What a login will ask of a device's answer, against the live OCSP responder.
    let verifier = verifier(&d, &soft);
    let now = idp::unix_now();
    let challenge = "Y2hhbGxlbmdl";
    let code = idp::smart_id::verification_code(challenge.as_bytes());
    let tbs = idp::smart_id::to_be_signed("https://id.example.jo", "session-1", "notary", challenge, &code);
    let phone_key = soft_key(&soft, PIN1);
    let signature = phone_key(&tbs);
    let phone_cert = der(&soft.join("authentication.pem"));
    let verified = verifier.verify(&phone_cert, &tbs, &signature, LAYLA, "JO", now).await.expect("a good answer");
    assert_eq!((verified.method.id.as_str(), verified.method.level.name()), ("smart-id-soft", "substantial"), "software keys reach substantial");
    let refused = |r: Result<idp::smart_id::Verified, idp::smart_id::Refusal>| r.expect_err("must be refused");
    let card_cert = der(&card.join("authentication.pem"));
    assert_eq!(
        refused(verifier.verify(&card_cert, &tbs, &signature, SAMI, "JO", now).await),
        idp::smart_id::Refusal::BadSignature,
        "the card's certificate passes every check but the signature"
    );
    assert_eq!(refused(verifier.verify(&phone_cert, &tbs, &signature, LAYLA, "JO", now + 4 * 366 * 86_400).await), idp::smart_id::Refusal::Expired);
    d.ok(&["citizen", "suspend", "--national-id", LAYLA]);
    assert_eq!(refused(verifier.verify(&phone_cert, &tbs, &signature, LAYLA, "JO", now).await), idp::smart_id::Refusal::Suspended);
    d.ok(&["citizen", "resume", "--national-id", LAYLA]);
    verifier.verify(&phone_cert, &tbs, &signature, LAYLA, "JO", now).await.expect("good again after release");

    // Suspension, release and revocation reach OCSP at once.
    assert_eq!(ocsp_status(&d, &card), format!("{}: good", card.join("authentication.pem").display()));
    d.ok(&["citizen", "suspend", "--national-id", SAMI]);
    assert!(ocsp_status(&d, &card).ends_with("revoked Reason: certificateHold"), "{}", ocsp_status(&d, &card));
    d.ok(&["citizen", "resume", "--national-id", SAMI]);
    assert!(ocsp_status(&d, &card).ends_with(": good"));
    assert_eq!(d.fails(&["citizen", "resume", "--national-id", SAMI]).split(" is not on hold").count(), 2, "resuming twice is refused");
    assert_eq!(d.fails(&["citizen", "suspend", "--national-id", "1111111111"]), "error: citizen 1111111111 has no smart-ID");

    // The RA API: officers only.
    let enrol = format!("{base}/ra/enrolments");
    let body = json!({"national_id": LAYLA, "custody": "software"});
    let (status, e) = post(&enrol, None, &body).await;
    assert_eq!((status, e["error"].as_str()), (401, Some("unauthorized")));
    let (status, _) = post(&enrol, Some("not-a-token"), &body).await;
    assert_eq!(status, 401);
    let (status, e) = post(&enrol, Some(&token), &json!({"national_id": "1111111111", "custody": "software"})).await;
    assert_eq!((status, e["error"].as_str()), (404, Some("not_found")));
    let (status, e) = post(&enrol, Some(&token), &json!({"national_id": LAYLA, "custody": "soft"})).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_request")), "{e}");
    let (status, enrolled) = post(&enrol, Some(&token), &body).await;
    assert_eq!(status, 201, "{enrolled}");
    let code = enrolled["activation_code"].as_str().expect("code").to_owned();

    // Activation requests that must issue nothing and leave the code usable.
    let before = d.snapshot();
    let (status, e) = post(&format!("{base}/smart-id/activation/identity"), None, &json!({"code": "AAAAA-BBBBB-CCCCC-DDDDD"})).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_code")));
    let other = csr_naming(d.dir.path(), "other", "PNOJO-1111111111");
    let mine = csr_naming(d.dir.path(), "mine", &format!("PNOJO-{LAYLA}"));
    let device_key =
        json!({"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
    let activation = |auth: &str, sign: &str| json!({"code": code, "authentication_csr": auth, "signature_csr": sign, "device_key": device_key});
    let (status, e) = post(&format!("{base}/smart-id/activation"), None, &activation(&other, &mine)).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_csr")), "{e}");
    assert!(e["error_description"].as_str().unwrap().contains("names PNOJO-1111111111, not the proven identity"), "{e}");
    let (status, e) = post(&format!("{base}/smart-id/activation"), None, &activation(&mine, &mine)).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_request")), "one key for both: {e}");
    assert_eq!(d.snapshot(), before, "refused activations issue nothing");
    // The code still works, once.
    let mine2 = csr_naming(d.dir.path(), "mine2", &format!("PNOJO-{LAYLA}"));
    let (status, done) = post(&format!("{base}/smart-id/activation"), None, &activation(&mine, &mine2)).await;
    assert_eq!(status, 201, "{done}");
    let (status, e) = post(&format!("{base}/smart-id/activation"), None, &activation(&mine, &mine2)).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_code")));
    // The new activation replaced Layla's phone: its certificates are revoked as superseded.
    let status = ocsp_status(&d, &soft);
    assert!(status.ends_with("revoked Reason: superseded"), "{status}");
}

/// A login verifier trusting the device's copy of the Citizen Authentication CA and asking
/// the deployment's OCSP responder (the certificates name a host that does not resolve here).
fn verifier(d: &Deployment, device: &Path) -> idp::smart_id::Verifier {
    let ocsp = idp::smart_id::OcspClient::new(idp::backchannel::http_client().expect("http"), Some(format!("{}/ocsp", server(d))));
    let policies = std::sync::Arc::new(policies::Policies::shipped().expect("policies"));
    idp::smart_id::Verifier::new(&[der(&device.join("authentication-ca.pem"))], std::sync::Arc::new(ocsp), policies).expect("verifier")
}

/// A certificate file's DER.
fn der(pem: &Path) -> Vec<u8> {
    use base64::Engine;
    let text = std::fs::read_to_string(pem).expect("pem");
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).expect("base64")
}

/// Signs with a soft device's authentication key, unlocked as the device does.
fn soft_key(device: &Path, pin: &str) -> impl Fn(&[u8]) -> Vec<u8> {
    use hsm_shim::KeyStore;
    let secret = std::fs::read_to_string(device.join("device-secret")).expect("device secret");
    let secret = hsm_shim::soft::OperatorSecret::new(format!("{secret}:{pin}").into_bytes()).expect("secret");
    let store = hsm_shim::soft::SoftKeyStore::open(&device.join("authentication"), &secret).expect("the PIN opens the key");
    let key = store.list().expect("keys").remove(0).key;
    move |message: &[u8]| store.sign(&key, hsm_shim::SignatureAlgorithm::Es256, message).expect("sign")
}

/// A device's signed proof for one request, made as `hawiya device` makes it.
fn device_proof(device: &Path, d: &Deployment, method: &str, path: &str) -> String {
    use hsm_shim::KeyStore;
    let secret = std::fs::read_to_string(device.join("device-secret")).expect("device secret");
    let store = hsm_shim::soft::SoftKeyStore::open(&device.join("device-key"), &hsm_shim::soft::OperatorSecret::new(secret.into_bytes()).expect("secret"))
        .expect("store");
    let key = store.list().expect("keys").remove(0).key;
    let state: Value = serde_json::from_slice(&std::fs::read(device.join("device.json")).expect("device.json")).expect("json");
    let signer = hsm_shim::signer::StoredKeySigner::new(std::sync::Arc::new(store), key, hsm_shim::SignatureAlgorithm::Es256).expect("signer");
    let jti = format!("{:032x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_nanos());
    let claims = json!({"htm": method, "htu": format!("{}{path}", d.base), "iat": idp::unix_now(), "jti": jti});
    let mut header = serde_json::Map::new();
    header.insert("typ".into(), "hawiya-device+jwt".into());
    hsm_shim::jose::sign_compact(&signer, state["device_kid"].as_str().expect("kid"), header, claims.to_string().as_bytes()).expect("proof")
}

/// A P-256 request whose subject names `serial_number`, made by OpenSSL; its PEM.
fn csr_naming(dir: &Path, name: &str, serial_number: &str) -> String {
    let (key, csr): (PathBuf, PathBuf) = (dir.join(format!("{name}.key")), dir.join(format!("{name}.csr")));
    let subject = format!("/C=JO/serialNumber={serial_number}/CN=Layla Haddad");
    let o = openssl(
        dir,
        &[
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-subj",
            &subject,
            "-keyout",
            &key.display().to_string(),
            "-out",
            &csr.display().to_string(),
        ],
    );
    assert!(o.status.success(), "openssl req: {}", stderr(&o));
    std::fs::read_to_string(csr).expect("csr")
}

const CB: &str = "https://notary.example.jo/cb";

fn authorize(d: &Deployment, extra: &str) -> String {
    format!(
        "{}/authorize?client_id=notary&redirect_uri={}&response_type=code&scope=openid%20profile%20national_id&state=st&nonce=n-1{extra}",
        d.base,
        url_encode(CB)
    )
}

/// Exchanges a code for tokens; the id_token's claims.
async fn id_token_claims(d: &Deployment, secret: &str, code: &str) -> Value {
    use base64::Engine;
    let b = browser(d);
    let r = b
        .http
        .post(format!("{}/token", d.base))
        .basic_auth("notary", Some(secret))
        .form(&[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", CB)])
        .send()
        .await
        .expect("token");
    let tokens: Value = r.json().await.expect("json");
    let id_token = tokens["id_token"].as_str().unwrap_or_else(|| panic!("no id_token: {tokens}"));
    let payload = id_token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("claims")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smart_id_logs_in_at_level_high_and_refuses_what_it_must() {
    let (d, _) = deployment();
    let secret = notary(&d);
    let card_env = smart_card(d.dir.path());
    let env: Vec<(&str, &str)> = card_env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let card = d.path("card");
    let module = softhsm_module().display().to_string();
    let o = activate(&d, &card, &enroll(&d, SAMI, "hardware"), &["--pkcs11-module", &module], &env);
    assert!(o.status.success(), "{}", stderr(&o));
    let phone = d.path("phone");
    let o = activate(&d, &phone, &enroll(&d, LAYLA, "software"), &[], &[]);
    assert!(o.status.success(), "{}", stderr(&o));

    // Nothing pending yet.
    let o = device(&card, &["pending"], None, &env);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "No pending request.", "{}", stderr(&o));

    // The journey: the page shows a code, the device shows the same, PIN1 approves.
    let mut b = browser(&d);
    let (poll, code) = start_login(&mut b, &authorize(&d, "&ui_locales=en"), SAMI).await;
    let r = b.get(&poll).await;
    assert!(r.body.contains("Waiting for your approval"), "{}", r.body);
    let o = device(&card, &["pending"], None, &env);
    let shown = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(shown.contains(&format!("Verification code: {code}")) && shown.contains("Notary public"), "{shown} {}", stderr(&o));
    let o = device(&card, &["approve", "--pin-stdin", "--code", &code], Some(PIN1), &env);
    assert!(o.status.success(), "approve: {}", stderr(&o));
    let r = b.get(&poll).await;
    let out = b.through_consent(r).await;
    let code_param = hawiya_e2e::web::param(&out, "code").expect("a code for the notary");
    let claims = id_token_claims(&d, &secret, &code_param).await;
    assert_eq!(claims["acr"], "high", "{claims}");
    let amr: Vec<&str> = claims["amr"].as_array().expect("amr").iter().filter_map(Value::as_str).collect();
    assert_eq!(amr, ["hwk", "sc", "pin", "mfa"], "{claims}");
    assert!(claims["auth_time"].as_i64().is_some() && claims["sid"].is_string(), "{claims}");
    // The session is spent: polling it again does not log in twice.
    let r = b.get(&poll).await;
    assert!(r.status >= 400, "a finished session is not reusable: {} {}", r.status, r.body);

    // A soft key reaches only substantial: a high service refuses it.
    let mut b = browser(&d);
    let (poll, code) = start_login(&mut b, &authorize(&d, ""), LAYLA).await;
    let o = device(&phone, &["approve", "--pin-stdin", "--code", &code], Some(PIN1), &[]);
    assert!(o.status.success(), "approve: {}", stderr(&o));
    let r = b.get(&poll).await;
    let to = r.location.clone().unwrap_or_default();
    assert_eq!(hawiya_e2e::web::param(&to, "error").as_deref(), Some("unmet_authentication_requirements"), "{} {}", r.status, r.body);

    // Three wrong PIN1s lock the key: the third answer tells the page.
    let mut b = browser(&d);
    let (poll, code) = start_login(&mut b, &authorize(&d, "&ui_locales=en"), LAYLA).await;
    for left in [2, 1] {
        let o = device(&phone, &["approve", "--pin-stdin", "--code", &code], Some("0000"), &[]);
        assert_eq!(stderr(&o), format!("error: wrong PIN1 ({left} attempts left)"));
    }
    let o = device(&phone, &["approve", "--pin-stdin", "--code", &code], Some("0000"), &[]);
    assert_eq!(stderr(&o), "error: wrong PIN1; PIN1 is now locked");
    let r = b.get(&poll).await;
    assert!(r.body.contains("PIN1 is locked on your device"), "{}", r.body);
    let mut b = browser(&d);
    let (_, code) = start_login(&mut b, &authorize(&d, "&ui_locales=en"), LAYLA).await;
    let o = device(&phone, &["approve", "--pin-stdin", "--code", &code], Some(PIN1), &[]);
    assert!(stderr(&o).contains("PIN1 is locked after 3 wrong attempts"), "even the right PIN: {}", stderr(&o));
    // Deleting the counter does not unlock the key.
    std::fs::remove_file(phone.join("pin1-failures")).expect("counter file");
    let (_, code) = start_login(&mut browser(&d), &authorize(&d, "&ui_locales=en"), LAYLA).await;
    let o = device(&phone, &["approve", "--pin-stdin", "--code", &code], Some(PIN1), &[]);
    assert!(stderr(&o).contains("PIN1 is locked after 3 wrong attempts"), "after deleting the counter: {}", stderr(&o));

    // Wrong verification code chosen, refusal, wrong PIN: each ends the login with its message.
    let mut b = browser(&d);
    let (poll, _) = start_login(&mut b, &authorize(&d, "&ui_locales=en"), SAMI).await;
    let o = device(&card, &["approve", "--pin-stdin", "--code", "0000"], Some(PIN1), &env);
    assert!(!o.status.success() && stderr(&o).contains("is not this request's"), "{}", stderr(&o));
    let r = b.get(&poll).await;
    assert!(r.body.contains("You chose another verification code"), "{}", r.body);
    let mut b = browser(&d);
    let (poll, _) = start_login(&mut b, &authorize(&d, "&ui_locales=en"), SAMI).await;
    let o = device(&card, &["refuse"], None, &env);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = b.get(&poll).await;
    assert!(r.body.contains("You refused the request on your device"), "{}", r.body);
    let mut b = browser(&d);
    let (poll, code) = start_login(&mut b, &authorize(&d, "&ui_locales=en"), SAMI).await;
    let o = device(&card, &["approve", "--pin-stdin", "--code", &code], Some("9999"), &env);
    assert_eq!(stderr(&o), "error: wrong PIN1 (2 attempts left)");

    // Suspended: the device's approval is refused with the suspension; resumed: in again.
    d.ok(&["citizen", "suspend", "--national-id", SAMI]);
    let o = device(&card, &["approve", "--pin-stdin", "--code", &code], Some(PIN1), &env);
    assert!(stderr(&o).contains("smart_id.suspended"), "{}", stderr(&o));
    let r = b.get(&poll).await;
    assert!(r.body.contains("Your smart-ID is suspended"), "{}", r.body);
    d.ok(&["citizen", "resume", "--national-id", SAMI]);
    let mut b = browser(&d);
    let (poll, code) = start_login(&mut b, &authorize(&d, "&ui_locales=en"), SAMI).await;
    let o = device(&card, &["approve", "--pin-stdin", "--code", &code], Some(PIN1), &env);
    assert!(o.status.success(), "after resume: {}", stderr(&o));
    let r = b.get(&poll).await;
    let out = b.through_consent(r).await;
    assert!(hawiya_e2e::web::param(&out, "code").is_some(), "{out}");

    // Requests pushed to one national id are limited (10 in 15 minutes), known or not.
    let mut b = browser(&d);
    let r = b.get(&authorize(&d, "&ui_locales=en")).await;
    let (page, _) = b.follow(r).await;
    let (tx, csrf) = (hawiya_e2e::web::hidden(&page.body, "tx"), hawiya_e2e::web::hidden(&page.body, "csrf"));
    let start = [("tx", tx.as_str()), ("csrf", csrf.as_str()), ("lang", "en"), ("national_id", "1111111111")];
    for _ in 0..10 {
        // A national id without a smart-ID gets the same waiting page as one with a smart-ID
        // (which then times out): the form does not tell who has one.
        let r = b.post("/login/smart-id", &start).await;
        assert!(r.status == 200 && r.body.contains(r#"id="verification-code""#), "{} {}", r.status, r.body);
    }
    let r = b.post("/login/smart-id", &start).await;
    assert!(r.status == 429 && r.body.contains("Too many smart-ID requests"), "{} {}", r.status, r.body);

    // Step-up: a citizen logged in with a password (low) who opens the notary is asked for
    // smart-ID only, and the same session (same sid) becomes high.
    let low_cb = "https://civil.example.jo/cb";
    let low_secret =
        d.ok(&["client", "add", "--id", "civil-status", "--redirect-uri", low_cb, "--auth-method", "client_secret_basic", "--id-token-alg", "ES256"]);
    let low_secret = low_secret.lines().find_map(|l| l.strip_prefix("client_secret: ")).expect("secret").to_owned();
    let mut b = browser(&d);
    let low = format!("{}/authorize?client_id=civil-status&redirect_uri={}&response_type=code&scope=openid&state=s&nonce=n", d.base, url_encode(low_cb));
    let out = b.login(&low, SAMI, "a good long password 2026").await;
    let low_code = hawiya_e2e::web::param(&out, "code").expect("code");
    let r = b
        .http
        .post(format!("{}/token", d.base))
        .basic_auth("civil-status", Some(&low_secret))
        .form(&[("grant_type", "authorization_code"), ("code", low_code.as_str()), ("redirect_uri", low_cb)])
        .send()
        .await
        .expect("token");
    let low_tokens: Value = r.json().await.expect("json");
    let low_claims: Value = {
        use base64::Engine;
        let payload = low_tokens["id_token"].as_str().expect("id_token").split('.').nth(1).expect("payload").to_owned();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("claims")
    };
    assert_eq!(low_claims["acr"], "low");
    let r = b.get(&authorize(&d, "&ui_locales=en")).await;
    let (page, _) = b.follow(r).await;
    assert!(page.body.contains(&format!(r#"name="national_id" value="{SAMI}""#)), "the step-up names the citizen: {}", page.body);
    let (poll, code) = start_login(&mut b, &authorize(&d, "&ui_locales=en"), SAMI).await;
    let o = device(&card, &["approve", "--pin-stdin", "--code", &code], Some(PIN1), &env);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = b.get(&poll).await;
    let out = b.through_consent(r).await;
    let claims = id_token_claims(&d, &secret, &hawiya_e2e::web::param(&out, "code").expect("code")).await;
    assert_eq!(claims["acr"], "high", "{claims}");
    assert_eq!(claims["sid"], low_claims["sid"], "the stepped-up session is the same session");
    assert!(claims["auth_time"].as_i64() >= low_claims["auth_time"].as_i64());
}

/// Registers the notary (a high service, client_secret_basic); its secret.
fn notary(d: &Deployment) -> String {
    let out = d.ok(&["client", "add", "--id", "notary", "--redirect-uri", CB, "--auth-method", "client_secret_basic", "--id-token-alg", "ES256"]);
    out.lines().find_map(|l| l.strip_prefix("client_secret: ")).expect("secret").to_owned()
}

/// Enrols `national_id` on a fresh smart card (SoftHSM2 tokens under `name`) and activates
/// it; the card's device directory and environment.
fn activated_card(d: &Deployment, name: &str, national_id: &str) -> (PathBuf, Vec<(String, String)>) {
    std::fs::create_dir_all(d.path(name)).expect("dir");
    let env = smart_card(&d.path(name));
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let card = d.path(&format!("{name}-device"));
    let module = softhsm_module().display().to_string();
    let o = activate(d, &card, &enroll(d, national_id, "hardware"), &["--pkcs11-module", &module], &pairs);
    assert!(o.status.success(), "{}", stderr(&o));
    (card, env)
}

/// A login to the notary approved on `card` with PIN1; the id_token's claims.
async fn card_login(d: &Deployment, card: &Path, env: &[(String, String)], national_id: &str, secret: &str) -> Value {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut b = browser(d);
    let (poll, code) = start_login(&mut b, &authorize(d, "&ui_locales=en"), national_id).await;
    let o = device(card, &["approve", "--pin-stdin", "--code", &code], Some(PIN1), &env);
    assert!(o.status.success(), "approve: {}", stderr(&o));
    let r = b.get(&poll).await;
    let out = b.through_consent(r).await;
    id_token_claims(d, secret, &hawiya_e2e::web::param(&out, "code").expect("a code for the notary")).await
}

/// After `hawiya keys renew-ca --ca citizen-authentication-ca`, a smart card whose
/// certificate the old generation issued still logs in at level high (the server trusts every
/// generation and the old one still answers OCSP), and a citizen enrolled afterwards gets a
/// certificate of the new generation and logs in with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_smart_id_of_the_renewed_ca_s_old_generation_still_logs_in() {
    let (mut d, _) = deployment();
    let secret = notary(&d);
    let (sami, sami_env) = activated_card(&d, "sami", SAMI);
    let old = d.ok(&["ca", "list", "--issuer", "citizen-authentication-ca"]);
    assert!(old.contains("citizen-authentication "), "Sami's certificate is of the first generation: {old}");

    d.ok(&["keys", "renew-ca", "--ca", "citizen-authentication-ca"]);
    d.restart();
    assert_eq!(card_login(&d, &sami, &sami_env, SAMI, &secret).await["acr"], "high");

    let (layla, layla_env) = activated_card(&d, "layla", LAYLA);
    let new = d.ok(&["ca", "list", "--issuer", "citizen-authentication-ca-2"]);
    assert!(new.contains("citizen-authentication "), "Layla's certificate is of the new generation: {new}");
    assert_eq!(card_login(&d, &layla, &layla_env, LAYLA, &secret).await["acr"], "high");
}

/// After `hawiya keys renew-ca --ca citizen-signing-ca`, a citizen whose signing certificate
/// the old generation issued and one enrolled afterwards (the new generation) both sign a PDF
/// that `hawiya verify` finds qualified and pyHanko trusts under the national root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_generations_of_a_renewed_signing_ca_sign_qualified_documents() {
    let (mut d, _) = deployment_with(&[("HAWIYA_SMART_ID_LIMITS", "50,500")]);
    let (sami, sami_env) = activated_card(&d, "sami", SAMI);
    d.ok(&["keys", "renew-ca", "--ca", "citizen-signing-ca"]);
    d.restart();
    d.ok(&["ca", "certs", "--out", d.path("certs").to_str().expect("utf-8")]);
    let (layla, layla_env) = activated_card(&d, "layla", LAYLA);
    let new = d.ok(&["ca", "list", "--issuer", "citizen-signing-ca-2"]);
    assert!(new.contains("citizen-signature ") && new.contains("Layla"), "Layla's signing certificate is of the new generation: {new}");
    for (card, env, national_id, generation) in [(&sami, &sami_env, SAMI, "citizen-signing-ca"), (&layla, &layla_env, LAYLA, "citizen-signing-ca-2")] {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (mut b, form) = on_the_signing_page_as(&d, card, &env, national_id).await;
        let (wait, code) = upload(&mut b, &form.body, "contract.pdf", &hawiya_e2e::sample_pdf()).await;
        let o = device(card, &["approve", "--pin-stdin", "--code", &code], Some(PIN2), &env);
        assert!(o.status.success(), "sign approve ({generation}): {}", stderr(&o));
        let done = b.get(&wait).await;
        assert!(done.body.contains("The document is signed."), "{generation}: {}", done.body);
        let (status, _, signed) = b.download(&download_link(&done.body)).await;
        assert_eq!(status, 200);
        let path = d.path(&format!("signed-{generation}.pdf"));
        std::fs::write(&path, &signed).expect("write");
        let (code, report) = hawiya_e2e::hawiya_verify(&d, &path, None, &["--policy", "qualified"]);
        assert_eq!((code, hawiya_e2e::verdicts(&report).as_str()), (0, "TOTAL-PASSED - PAdES-BASELINE-LT QESig\n"), "{generation}: {report:#}");
        pyhanko_accepts(&d, &path);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_smart_id_request_times_out() {
    let (d, _) = deployment_with(&[("HAWIYA_SMART_ID_TIMEOUT", "10")]);
    d.ok(&["client", "add", "--id", "notary", "--redirect-uri", CB, "--auth-method", "client_secret_basic", "--id-token-alg", "ES256"]);
    let phone = d.path("phone");
    let o = activate(&d, &phone, &enroll(&d, LAYLA, "software"), &[], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut b = browser(&d);
    let (poll, code) = start_login(&mut b, &authorize(&d, "&ui_locales=en"), LAYLA).await;
    let o = device(&phone, &["pending"], None, &[]);
    assert!(String::from_utf8_lossy(&o.stdout).contains(&code), "{}", stderr(&o));
    // The request times out after 10 s: the device stops seeing it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let o = loop {
        let o = device(&phone, &["pending"], None, &[]);
        if !String::from_utf8_lossy(&o.stdout).contains(&code) || std::time::Instant::now() > deadline {
            break o;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "No pending request.", "the device no longer sees it");
    let o = device(&phone, &["approve", "--pin-stdin", "--code", &code], Some(PIN1), &[]);
    assert_eq!(stderr(&o), "error: no pending request");
    let r = b.get(&poll).await;
    assert!(r.body.contains("The request timed out"), "{}", r.body);
}

/// A served deployment (with the notary registered) where Layla's phone is activated; what
/// each attack test starts from.
fn phone_fixture() -> (Deployment, PathBuf) {
    let (d, _) = deployment();
    d.ok(&["client", "add", "--id", "notary", "--redirect-uri", CB, "--auth-method", "client_secret_basic", "--id-token-alg", "ES256"]);
    let phone = d.path("phone");
    let o = activate(&d, &phone, &enroll(&d, LAYLA, "software"), &[], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    (d, phone)
}

/// A to-be-signed text for `challenge` and the phone's signature over it.
fn signed(phone: &Path, challenge: &str) -> (Vec<u8>, Vec<u8>) {
    let code = idp::smart_id::verification_code(challenge.as_bytes());
    let tbs = idp::smart_id::to_be_signed("https://id.example.jo", "session-1", "notary", challenge, &code);
    let signature = soft_key(phone, PIN1)(&tbs);
    (tbs, signature)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_signature_over_another_challenge_is_refused() {
    let (d, phone) = phone_fixture();
    let (_, signature) = signed(&phone, "Y2hhbGxlbmdl");
    let (other_tbs, _) = signed(&phone, "b3RoZXI");
    let refused = verifier(&d, &phone).verify(&der(&phone.join("authentication.pem")), &other_tbs, &signature, LAYLA, "JO", idp::unix_now()).await;
    assert_eq!(refused.expect_err("refused"), idp::smart_id::Refusal::BadSignature);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_certificate_of_another_citizen_is_refused() {
    let (d, phone) = phone_fixture();
    let (tbs, signature) = signed(&phone, "Y2hhbGxlbmdl");
    // Layla's good certificate and signature, presented for Sami's login.
    let refused = verifier(&d, &phone).verify(&der(&phone.join("authentication.pem")), &tbs, &signature, SAMI, "JO", idp::unix_now()).await;
    assert_eq!(refused.expect_err("refused"), idp::smart_id::Refusal::OtherCitizen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_certificate_from_another_ca_is_refused() {
    let (d, phone) = phone_fixture();
    let (tbs, signature) = signed(&phone, "Y2hhbGxlbmdl");
    // A certificate with Layla's name, the authentication policy and usages, from a CA of the
    // attacker's own (OpenSSL, self-signed), and the national root's own certificate.
    let dir = d.dir.path();
    let conf = dir.join("forged.cnf");
    std::fs::write(&conf, "[req]\ndistinguished_name = dn\n[dn]\n[ext]\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = clientAuth\ncertificatePolicies = 0.4.0.2042.1.1, 2.16.400.1.1.1.3\n").expect("conf");
    let (key, cert) = (dir.join("forged.key"), dir.join("forged.pem"));
    let o = openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-subj",
            &format!("/C=JO/serialNumber=PNOJO-{LAYLA}/CN=Layla Haddad"),
            "-keyout",
            &key.display().to_string(),
            "-out",
            &cert.display().to_string(),
            "-days",
            "30",
            "-config",
            &conf.display().to_string(),
            "-extensions",
            "ext",
        ],
    );
    assert!(o.status.success(), "openssl: {}", stderr(&o));
    let v = verifier(&d, &phone);
    for forged in [der(&cert), der(&phone.join("root.pem"))] {
        let refused = v.verify(&forged, &tbs, &signature, LAYLA, "JO", idp::unix_now()).await;
        assert_eq!(refused.expect_err("refused"), idp::smart_id::Refusal::UntrustedIssuer);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_signing_certificate_used_for_login_is_refused() {
    let (d, phone) = phone_fixture();
    let (tbs, signature) = signed(&phone, "Y2hhbGxlbmdl");
    let refused = verifier(&d, &phone).verify(&der(&phone.join("signature.pem")), &tbs, &signature, LAYLA, "JO", idp::unix_now()).await;
    assert_eq!(refused.expect_err("refused"), idp::smart_id::Refusal::UntrustedIssuer, "issued by the Citizen Signing CA");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_revoked_certificate_is_refused() {
    let (d, phone) = phone_fixture();
    let (tbs, signature) = signed(&phone, "Y2hhbGxlbmdl");
    let v = verifier(&d, &phone);
    let cert = der(&phone.join("authentication.pem"));
    v.verify(&cert, &tbs, &signature, LAYLA, "JO", idp::unix_now()).await.expect("good before");
    d.ok(&["citizen", "revoke", "--national-id", LAYLA, "--reason", "keyCompromise"]);
    assert_eq!(v.verify(&cert, &tbs, &signature, LAYLA, "JO", idp::unix_now()).await.expect_err("refused"), idp::smart_id::Refusal::Revoked);
    // And through the login itself: the device's approval is refused with the reason.
    let mut b = browser(&d);
    let (poll, code) = start_login(&mut b, &authorize(&d, "&ui_locales=en"), LAYLA).await;
    let o = device(&phone, &["approve", "--pin-stdin", "--code", &code], Some(PIN1), &[]);
    assert!(stderr(&o).contains("smart_id.revoked"), "{}", stderr(&o));
    assert!(b.get(&poll).await.body.contains("Your smart-ID is revoked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_replayed_approval_is_refused() {
    let (d, phone) = phone_fixture();
    let mut b = browser(&d);
    let (poll, _) = start_login(&mut b, &authorize(&d, "&ui_locales=en"), LAYLA).await;
    let http = idp::backchannel::http_client().expect("http");
    let pending_url = format!("{}/smart-id/device/pending", server(&d));
    let answer_url = format!("{}/smart-id/device/answer", server(&d));
    // A device proof is good for one request.
    let proof = device_proof(&phone, &d, "GET", "/smart-id/device/pending");
    let r = http.get(&pending_url).header("hawiya-device-proof", &proof).send().await.expect("pending");
    assert_eq!(r.status(), 200);
    let pending: Value = r.json().await.expect("json");
    let r = http.get(&pending_url).header("hawiya-device-proof", &proof).send().await.expect("pending again");
    let e: Value = r.json().await.expect("json");
    assert_eq!(e["error_description"], "device proof: replayed", "{e}");
    let r = http.get(&pending_url).send().await.expect("no proof");
    assert_eq!(r.status(), 401, "no anonymous device requests");
    // A signed approval is good for one session, once.
    let (challenge, client) = (pending["challenge"].as_str().expect("challenge"), pending["client_id"].as_str().expect("client"));
    let code = idp::smart_id::verification_code(&base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, challenge).expect("b64"));
    let tbs = idp::smart_id::to_be_signed(&d.base, pending["session"].as_str().expect("session"), client, challenge, &code);
    let b64 = |bytes: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes);
    let approval = json!({
        "session": pending["session"], "outcome": "approve",
        "certificate": b64(&der(&phone.join("authentication.pem"))), "signature": b64(&soft_key(&phone, PIN1)(&tbs)),
    });
    let answer = |body: Value| {
        let (http, url, proof) = (http.clone(), answer_url.clone(), device_proof(&phone, &d, "POST", "/smart-id/device/answer"));
        async move { http.post(url).header("hawiya-device-proof", proof).json(&body).send().await.expect("answer") }
    };
    let r = answer(approval.clone()).await;
    let state: Value = r.json().await.expect("json");
    assert_eq!(state["state"], "approved", "{state}");
    let r = answer(approval.clone()).await;
    let e: Value = r.json().await.expect("json");
    assert_eq!(e["error_description"], "this smart-ID session has been answered already", "{e}");
    // The same approval for a new session of the same citizen: signed over the old session's
    // text, so it does not verify.
    let mut b2 = browser(&d);
    let (poll2, _) = start_login(&mut b2, &authorize(&d, "&ui_locales=en"), LAYLA).await;
    let session2 = poll2.split("session=").nth(1).and_then(|s| s.split('&').next()).expect("session").to_owned();
    let mut replayed = approval.clone();
    replayed["session"] = session2.into();
    let state: Value = answer(replayed).await.json().await.expect("json");
    assert_eq!(state, json!({"state": "failed", "reason": "smart_id.invalid"}));
    assert!(b2.get(&poll2).await.body.contains("signature could not be verified"));
    // Another citizen's device cannot answer this citizen's session.
    let _ = b.get(&poll).await;
    let o = activate(&d, &d.path("sami-phone"), &enroll(&d, SAMI, "software"), &[], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (poll_sami, _) = start_login(&mut browser(&d), &authorize(&d, ""), SAMI).await;
    let session_sami = poll_sami.split("session=").nth(1).and_then(|s| s.split('&').next()).expect("session").to_owned();
    let r = answer(json!({"session": session_sami, "outcome": "refuse"})).await;
    assert_eq!(r.status(), 400, "Layla's device answering Sami's session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_reused_activation_code_is_refused() {
    let (d, _) = deployment();
    let code = enroll(&d, LAYLA, "software");
    let o = activate(&d, &d.path("first"), &code, &[], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let before = d.snapshot();
    let o = activate(&d, &d.path("second"), &code, &[], &[]);
    assert!(!o.status.success());
    assert_eq!(stderr(&o), "error: the server refused: the activation code is wrong, expired or already used");
    assert!(!d.path("second").exists(), "a refused activation leaves no device directory");
    assert_eq!(d.snapshot(), before, "a spent code issues nothing");
}

#[test]
fn an_expired_activation_code_is_refused() {
    let (d, _) = deployment();
    let out = hawiya_e2e::run(d.command(&["citizen", "enroll", "--national-id", LAYLA, "--custody", "software"]).env("HAWIYA_ACTIVATION_LIFETIME", "1"));
    assert!(out.status.success(), "{}", stderr(&out));
    let code = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Activation code for "))
        .and_then(|l| l.split_whitespace().last())
        .expect("code")
        .to_owned();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let before = d.snapshot();
    let o = activate(&d, &d.path("late"), &code, &[], &[]);
    assert_eq!(stderr(&o), "error: the server refused: the activation code is wrong, expired or already used");
    assert_eq!(d.snapshot(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_session_finished_from_another_browser_is_refused() {
    let (d, phone) = phone_fixture();
    let mut b = browser(&d);
    let (poll, code) = start_login(&mut b, &authorize(&d, "&ui_locales=en"), LAYLA).await;
    let o = device(&phone, &["approve", "--pin-stdin", "--code", &code], Some(PIN1), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The approved session, polled with its URL from a browser without the transaction's
    // cookie: refused, and the session is still there for its own browser.
    let mut other = browser(&d);
    let r = other.get(&poll).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("belongs to another browser"), "{}", r.body);
    let r = b.get(&poll).await;
    assert_eq!(r.status, 303, "its own browser goes on: {} {}", r.status, r.body);
}

/// Opens the login page of `authorize` and asks for a smart-ID login of `national_id`.
async fn request_smart_id(b: &mut hawiya_e2e::web::Browser, authorize: &str, national_id: &str) -> hawiya_e2e::web::Response {
    let r = b.get(authorize).await;
    let (page, _) = b.follow(r).await;
    let (tx, csrf) = (hawiya_e2e::web::hidden(&page.body, "tx"), hawiya_e2e::web::hidden(&page.body, "csrf"));
    b.post("/login/smart-id", &[("tx", &tx), ("csrf", &csrf), ("lang", "en"), ("national_id", national_id)]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_smart_id_requests_do_not_block_the_citizens_own_browser() {
    // Three requests per citizen from untrusted browsers: her first login (before her
    // browser was known) and two of a stranger's.
    let (d, _) = deployment_with(&[("HAWIYA_SMART_ID_LIMITS", "3,100")]);
    let low_cb = "https://civil.example.jo/cb";
    d.ok(&["client", "add", "--id", "civil-status", "--redirect-uri", low_cb, "--auth-method", "client_secret_basic"]);
    let low = format!("{}/authorize?client_id=civil-status&redirect_uri={}&response_type=code&scope=openid&state=s&nonce=n", d.base, url_encode(low_cb));
    let phone = d.path("phone");
    let o = activate(&d, &phone, &enroll(&d, LAYLA, "software"), &[], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Layla logs in with her smart-ID once in her own browser, which keeps a device cookie.
    let mut own = browser(&d);
    let r = request_smart_id(&mut own, &low, LAYLA).await;
    let code = r.body.split(r#"id="verification-code">"#).nth(1).and_then(|s| s.split('<').next()).expect("code shown").to_owned();
    let poll = r.body.split(r#"<p><a href="/login/smart-id?"#).nth(1).and_then(|s| s.split('"').next()).expect("poll link").replace("&amp;", "&");
    let o = device(&phone, &["approve", "--pin-stdin", "--code", &code], Some(PIN1), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = own.get(&format!("/login/smart-id?{poll}")).await;
    let out = own.through_consent(r).await;
    assert!(hawiya_e2e::web::param(&out, "code").is_some(), "{out}");
    assert!(own.cookies.contains_key("__Host-hawiya-device"));
    // Strangers use up the requests anyone may push to her device…
    let mut stranger = browser(&d);
    for _ in 0..2 {
        assert_eq!(request_smart_id(&mut stranger, &low, LAYLA).await.status, 200);
    }
    let r = request_smart_id(&mut stranger, &low, LAYLA).await;
    assert!(r.status == 429 && r.body.contains("Too many smart-ID requests"), "{} {}", r.status, r.body);
    // …but not those of her own browser.
    let r = request_smart_id(&mut own, &format!("{low}&prompt=login"), LAYLA).await;
    assert!(r.status == 200 && r.body.contains(r#"id="verification-code""#), "{} {}", r.status, r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_activation_codes_are_limited_per_address() {
    let (d, _) = deployment();
    let code = enroll(&d, LAYLA, "software");
    let from = |address: &str| {
        idp::backchannel::client_builder().expect("builder").local_address(address.parse::<std::net::IpAddr>().expect("ip")).build().expect("client")
    };
    let identity = |http: reqwest::Client, code: String| {
        let url = format!("{}/smart-id/activation/identity", server(&d));
        async move { http.post(url).json(&serde_json::json!({ "code": code })).send().await.expect("post").status().as_u16() }
    };
    let guesser = from("127.0.0.1");
    for i in 0..20 {
        assert_eq!(identity(guesser.clone(), format!("AAAAA-BBBBB-CCCCC-{i:05}")).await, 400, "guess {i}");
    }
    // Past 20 wrong codes the address is refused without its code being looked at, even the
    // right one (which stays unspent).
    assert_eq!(identity(guesser.clone(), "AAAAA-BBBBB-CCCCC-DDDDD".into()).await, 429);
    assert_eq!(identity(guesser, code.clone()).await, 429);
    // Another address is not affected.
    assert_eq!(identity(from("127.0.0.2"), code).await, 200);
}

// ---- E-signatures with PIN2 ----

/// The verification code on a signing page.
fn shown_code(body: &str) -> String {
    body.split(r#"id="verification-code">"#).nth(1).and_then(|s| s.split('<').next()).unwrap_or_else(|| panic!("no code on the page: {body}")).to_owned()
}

/// Uploads `bytes` as `name` on the signing form `form` (its HTML); returns the waiting
/// page's URL and the code it shows.
async fn upload(b: &mut hawiya_e2e::web::Browser, form: &str, name: &str, bytes: &[u8]) -> (String, String) {
    let csrf = hawiya_e2e::web::hidden(form, "csrf");
    let r = b.post_file("/sign", &[("csrf", &csrf), ("lang", "en")], ("document", name, bytes)).await;
    assert_eq!(r.status, 303, "the upload opens a signing session: {}", r.body);
    let wait = r.location.expect("to the waiting page");
    let page = b.get(&wait).await;
    assert!(page.body.contains(name) && page.body.contains("then enter PIN2"), "{}", page.body);
    (wait, shown_code(&page.body))
}

/// Sami's smart card (a SoftHSM2 token), enrolled and activated: its directory and the
/// environment that names its token.
fn sami_card(d: &Deployment) -> (PathBuf, Vec<(String, String)>) {
    let card_env = smart_card(d.dir.path());
    let env: Vec<(&str, &str)> = card_env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let card = d.path("card");
    let o = activate(d, &card, &enroll(d, SAMI, "hardware"), &["--pkcs11-module", &softhsm_module().display().to_string()], &env);
    assert!(o.status.success(), "{}", stderr(&o));
    (card, card_env)
}

/// Opens the signing page without a session at high: it logs in first (the smart card,
/// PIN1), then comes back; the browser and the signing form.
async fn on_the_signing_page(d: &Deployment, card: &Path, env: &[(&str, &str)]) -> (hawiya_e2e::web::Browser, hawiya_e2e::web::Response) {
    on_the_signing_page_as(d, card, env, SAMI).await
}

/// [`on_the_signing_page`] for the citizen `national_id`.
async fn on_the_signing_page_as(d: &Deployment, card: &Path, env: &[(&str, &str)], national_id: &str) -> (hawiya_e2e::web::Browser, hawiya_e2e::web::Response) {
    let mut b = browser(d);
    let (poll, code) = start_login(&mut b, &format!("{}/sign?lang=en", d.base), national_id).await;
    let o = device(card, &["approve", "--pin-stdin", "--code", &code], Some(PIN1), env);
    assert!(o.status.success(), "login approve: {}", stderr(&o));
    let r = b.get(&poll).await;
    let (form, out) = b.follow(r).await;
    assert!(out.is_none() && form.body.contains(r#"action="/sign""#), "back on the signing page: {} {}", form.status, form.body);
    (b, form)
}

/// The signed page's download link.
fn download_link(page: &str) -> String {
    page.split(r#"id="download" href=""#).nth(1).and_then(|s| s.split('"').next()).expect("download link").replace("&amp;", "&")
}

/// pyHanko finds the signed PDF at `path` intact and trusted, its timestamp too, with the
/// national root as the only anchor (the token carries the TSA's certificate; its issuer is
/// offered for path building).
fn pyhanko_accepts(d: &Deployment, path: &Path) {
    let certs = d.path("certs");
    let pyhanko = hawiya_e2e::run(
        Command::new("pyhanko")
            .args(["sign", "validate", "--trust"])
            .arg(certs.join("root.pem"))
            .args(["--trust-replace", "--other-certs"])
            .arg(certs.join("services-ca.pem"))
            .arg("--no-revocation-check")
            .arg(path),
    );
    let verdict = hawiya_e2e::output_text(&pyhanko);
    assert!(verdict.contains(":INTACT:TRUSTED,TIMESTAMP_TOKEN<INTACT:TRUSTED>"), "pyHanko: {verdict}");
}

/// The waiting page of a session that ended without a signature: the form again, with
/// `reason`, no download, and still `recorded` signatures in the store.
async fn refused(b: &mut hawiya_e2e::web::Browser, d: &Deployment, wait: &str, reason: &str, recorded: i64) {
    let page = b.get(wait).await;
    assert!(page.body.contains(reason) && page.body.contains(r#"action="/sign""#), "expected {reason:?}: {}", page.body);
    assert!(!page.body.contains(r#"id="download""#), "no signature was assembled");
    assert_eq!(sqlite_count(d, "SELECT count(*) FROM signatures"), recorded, "nothing recorded after {reason:?}");
}

/// The citizen's journey on `/sign`: logging in at high with the smart card (PIN1) from the
/// page itself, a PDF and a text file signed with PIN2 after the device showed the same
/// document and code, the results accepted by pyHanko, pdfsig, qpdf and OpenSSL with the
/// national root as the only anchor; then every refusal, each ending without a signature
/// and without a record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_citizen_signs_documents_with_pin2_and_validators_accept_them() {
    // More device requests than a citizen may make in 15 minutes (the limit has its own test).
    let (d, _) = deployment_with(&[("HAWIYA_SMART_ID_LIMITS", "50,500")]);
    let (card, card_env) = sami_card(&d);
    let env: Vec<(&str, &str)> = card_env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();

    // Without a session at high, the page logs in first (the smart card, PIN1), then comes back.
    let (mut b, form) = on_the_signing_page(&d, &card, &env).await;
    assert!(form.body.contains("Largest document accepted: 10 MB"), "{}", form.body);

    // A PDF: the device shows the document and the page's code, PIN2 signs.
    let pdf = hawiya_e2e::sample_pdf();
    let (wait, code) = upload(&mut b, &form.body, "عقد إيجار.pdf", &pdf).await;
    let o = device(&card, &["pending"], None, &env);
    let shown = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(shown.contains("asks you to sign \"عقد إيجار.pdf\" (PIN2, signing key)") && shown.contains(&format!("Verification code: {code}")), "{shown}");
    let o = device(&card, &["approve", "--pin-stdin", "--code", &code], Some(PIN2), &env);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("Signed \"عقد إيجار.pdf\""), "sign approve: {}", stderr(&o));
    let done = b.get(&wait).await;
    assert!(done.body.contains("The document is signed.") && done.body.contains("PAdES-BASELINE-LT"), "{}", done.body);
    let href = download_link(&done.body);
    let (status, disposition, signed) = b.download(&href).await;
    assert_eq!(status, 200);
    assert!(disposition.contains("filename*=UTF-8''%D8%B9%D9%82%D8%AF%20%D8%A5%D9%8A%D8%AC%D8%A7%D8%B1-signed.pdf"), "{disposition}");
    assert!(signed.starts_with(&pdf), "the original bytes are only appended to");
    let path = d.path("signed.pdf");
    std::fs::write(&path, &signed).expect("write");
    let qpdf = hawiya_e2e::run(Command::new("qpdf").arg("--check").arg(&path));
    assert!(qpdf.status.success(), "qpdf --check: {}", hawiya_e2e::output_text(&qpdf));
    // It renders as the original does (poppler, 50 dpi, the same pixels).
    std::fs::write(d.path("original.pdf"), &pdf).expect("write");
    for name in ["original", "signed"] {
        let o = hawiya_e2e::run(Command::new("pdftoppm").current_dir(d.dir.path()).args(["-r", "50", "-png", "-singlefile", &format!("{name}.pdf"), name]));
        assert!(o.status.success(), "pdftoppm {name}: {}", hawiya_e2e::output_text(&o));
    }
    assert_eq!(
        std::fs::read(d.path("original.png")).expect("png"),
        std::fs::read(d.path("signed.png")).expect("png"),
        "the signed PDF renders as the original"
    );
    pyhanko_accepts(&d, &path);
    let report = hawiya_e2e::pdfsig(&d, &path);
    // "Not total document signed": the /DSS update follows the signature, as B-LT wants.
    assert!(report.contains("Signature is Valid.") && report.contains("Certificate is Trusted."), "pdfsig: {report}");
    assert!(report.contains("Signer Certificate Common Name: Sami Khalil"), "pdfsig: {report}");
    assert_eq!(hawiya_e2e::dss(&d, &path, None), "TOTAL_PASSED - PAdES-BASELINE-LT\n", "DSS on the signed PDF");
    let (code, report) = hawiya_e2e::hawiya_verify(&d, &path, None, &["--policy", "qualified"]);
    assert_eq!((code, hawiya_e2e::verdicts(&report).as_str()), (0, "TOTAL-PASSED - PAdES-BASELINE-LT QESig\n"), "hawiya verify: {report:#}");

    // Any other file: a detached CAdES .p7s that OpenSSL verifies against the root.
    let text = "بيان رسمي — an official statement\n".as_bytes();
    let form = b.get("/sign?lang=en").await;
    let (wait, code) = upload(&mut b, &form.body, "statement.txt", text).await;
    let o = device(&card, &["approve", "--pin-stdin", "--code", &code], Some(PIN2), &env);
    assert!(o.status.success(), "sign approve: {}", stderr(&o));
    let done = b.get(&wait).await;
    assert!(done.body.contains("statement.txt.p7s") && done.body.contains("CAdES-BASELINE-LT"), "{}", done.body);
    let href = download_link(&done.body);
    let (_, _, p7s) = b.download(&href).await;
    std::fs::write(d.path("statement.txt"), text).expect("write");
    std::fs::write(d.path("statement.p7s"), &p7s).expect("write");
    let root = d.path("certs/root.pem").display().to_string();
    let o = openssl(
        d.dir.path(),
        &["cms", "-verify", "-cades", "-binary", "-inform", "DER", "-in", "statement.p7s", "-content", "statement.txt", "-CAfile", &root, "-out", "/dev/null"],
    );
    assert!(o.status.success(), "openssl cms -verify -cades: {}", hawiya_e2e::output_text(&o));
    let verdict = hawiya_e2e::dss(&d, &d.path("statement.p7s"), Some(&d.path("statement.txt")));
    assert_eq!(verdict, "TOTAL_PASSED - CAdES-BASELINE-LT\n", "DSS on the .p7s");
    let (code, report) = hawiya_e2e::hawiya_verify(&d, &d.path("statement.p7s"), Some(&d.path("statement.txt")), &["--policy", "qualified"]);
    assert_eq!((code, hawiya_e2e::verdicts(&report).as_str()), (0, "TOTAL-PASSED - CAdES-BASELINE-LT QESig\n"), "hawiya verify: {report:#}");
    // B-LTA on request: the archive timestamp goes over the B-LT PDF.
    let form = b.get("/sign?lang=en").await;
    let csrf = hawiya_e2e::web::hidden(&form.body, "csrf");
    let r = b.post_file("/sign", &[("csrf", &csrf), ("lang", "en"), ("archive", "1")], ("document", "archive.pdf", &pdf)).await;
    let wait = r.location.unwrap_or_else(|| panic!("to the waiting page: {}", r.body));
    let code = shown_code(&b.get(&wait).await.body);
    let o = device(&card, &["approve", "--pin-stdin", "--code", &code], Some(PIN2), &env);
    assert!(o.status.success(), "sign approve: {}", stderr(&o));
    let done = b.get(&wait).await;
    assert!(done.body.contains("PAdES-BASELINE-LTA"), "{}", done.body);
    let href = download_link(&done.body);
    let (_, _, archived) = b.download(&href).await;
    let lta = d.path("archive-signed.pdf");
    std::fs::write(&lta, &archived).expect("write");
    assert_eq!(hawiya_e2e::dss(&d, &lta, None), "TOTAL_PASSED - PAdES-BASELINE-LTA\n", "DSS on the B-LTA PDF");
    let (code, report) = hawiya_e2e::hawiya_verify(&d, &lta, None, &[]);
    assert_eq!(
        (code, hawiya_e2e::verdicts(&report).as_str()),
        (0, "TOTAL-PASSED - PAdES-BASELINE-LTA QESig\nTOTAL-PASSED - RFC3161 n/a\n"),
        "hawiya verify: {report:#}"
    );
    assert_eq!(sqlite_count(&d, &format!("SELECT count(*) FROM signatures WHERE national_id = '{SAMI}'")), 3, "all three signatures are recorded");

    // Refusals: each ends on the form with its reason, nothing signed, nothing recorded.
    let form = b.get("/sign?lang=en").await;
    let (wait, _) = upload(&mut b, &form.body, "letter.pdf", &pdf).await;
    let o = device(&card, &["refuse"], None, &env);
    assert!(o.status.success(), "{}", stderr(&o));
    refused(&mut b, &d, &wait, "You refused the request on your device; nothing was signed.", 3).await;

    let form = b.get("/sign?lang=en").await;
    let (wait, code) = upload(&mut b, &form.body, "letter.pdf", &pdf).await;
    let other = if code == "0000" { "0001" } else { "0000" };
    let o = device(&card, &["approve", "--pin-stdin", "--code", other], Some(PIN2), &env);
    assert!(stderr(&o).contains("is not this request's"), "{}", stderr(&o));
    refused(&mut b, &d, &wait, "You chose another verification code on your device than the one shown here", 3).await;

    // Too large: refused with the limit named, before anything is stored.
    let form = b.get("/sign?lang=en").await;
    let csrf = hawiya_e2e::web::hidden(&form.body, "csrf");
    let r = b.post_file("/sign", &[("csrf", &csrf), ("lang", "en")], ("document", "huge.pdf", &vec![b'%'; 10 * 1024 * 1024 + 1])).await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.body.contains("The document is larger than allowed. Largest document accepted: 10 MB"), "{}", r.body);
    // An encrypted PDF cannot be signed, and says so (the refusal is a fresh form).
    let csrf = hawiya_e2e::web::hidden(&r.body, "csrf");
    let r = b.post_file("/sign", &[("csrf", &csrf), ("lang", "en")], ("document", "locked.pdf", &encrypted_pdf(&d))).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("This PDF is encrypted; it cannot be signed."), "{}", r.body);

    // Attacks on the device endpoint. A signature over another request's hash: session one is
    // opened, session two signed by the device; session two's signature (from its .p7s) is
    // then offered for session one.
    let form = b.get("/sign?lang=en").await;
    let (first, _) = upload(&mut b, &form.body, "one.txt", b"first document").await;
    let form = b.get("/sign?lang=en").await;
    let (second, code) = upload(&mut b, &form.body, "two.txt", b"second document").await;
    let o = device(&card, &["approve", "--pin-stdin", "--code", &code], Some(PIN2), &env);
    assert!(o.status.success(), "{}", stderr(&o));
    let done = b.get(&second).await;
    let href = download_link(&done.body);
    let (_, _, p7s) = b.download(&href).await;
    let signed = pkix::cms::SignedData::from_content_info(&p7s).expect("SignedData");
    let signature = signed.signer_infos.0.get(0).expect("signer").signature.as_bytes().to_vec();
    let session_of = |wait: &str| wait.split("session=").nth(1).and_then(|s| s.split('&').next()).expect("session").to_owned();
    let http = idp::backchannel::http_client().expect("http");
    let sign_url = format!("{}/smart-id/device/sign", server(&d));
    let answer = |device_dir: PathBuf, body: Value| {
        let (http, url, proof) = (http.clone(), sign_url.clone(), device_proof(&device_dir, &d, "POST", "/smart-id/device/sign"));
        async move {
            let r = http.post(url).header("hawiya-device-proof", proof).json(&body).send().await.expect("answer");
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let b64 = |bytes: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes);
    let approval = json!({"session": session_of(&first), "outcome": "approve", "signature": b64(&signature)});
    let (status, state) = answer(card.clone(), approval.clone()).await;
    assert_eq!((status, state), (200, json!({"state": "failed", "reason": "sign.bad_signature"})));
    refused(&mut b, &d, &first, "The device&#39;s signature does not match the document; nothing was signed.", 4).await;
    // A replayed answer: each session takes one.
    let (status, e) = answer(card.clone(), approval).await;
    assert_eq!((status, e["error_description"].as_str()), (400, Some("this signing session has been answered already")));
    let (status, _) = answer(card.clone(), json!({"session": session_of(&second), "outcome": "approve", "signature": b64(&signature)})).await;
    assert_eq!(status, 400, "the signed session cannot be answered again");
    // Another citizen's device cannot answer this citizen's session, which keeps waiting.
    let phone = d.path("phone");
    let o = activate(&d, &phone, &enroll(&d, LAYLA, "software"), &[], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let form = b.get("/sign?lang=en").await;
    let (third, _) = upload(&mut b, &form.body, "three.txt", b"third document").await;
    let (status, _) = answer(phone, json!({"session": session_of(&third), "outcome": "refuse"})).await;
    assert_eq!(status, 400, "Layla's device answering Sami's signing session");
    assert!(b.get(&third).await.body.contains("then enter PIN2"), "still waiting for Sami's device");
    let o = device(&card, &["refuse"], None, &env);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(sqlite_count(&d, "SELECT count(*) FROM signatures"), 4, "only session two was signed");

    // A suspended signing certificate: the device signs, no signature is assembled.
    let serial =
        String::from_utf8_lossy(&openssl(&card, &["x509", "-in", "signature.pem", "-noout", "-serial"]).stdout).trim().trim_start_matches("serial=").to_owned();
    d.ok(&["ca", "revoke", "--serial", &serial, "--reason", "certificateHold"]);
    let form = b.get("/sign?lang=en").await;
    let (wait, code) = upload(&mut b, &form.body, "letter.pdf", &pdf).await;
    let o = device(&card, &["approve", "--pin-stdin", "--code", &code], Some(PIN2), &env);
    assert!(!o.status.success() && stderr(&o).contains("sign.suspended"), "the device hears it: {}", stderr(&o));
    refused(&mut b, &d, &wait, "Your signing certificate is suspended; nothing was signed.", 4).await;
    d.ok(&["ca", "release", "--serial", &serial]);

    // Three wrong PIN2s lock the signing key; PIN1 and logins are untouched.
    let form = b.get("/sign?lang=en").await;
    let (wait, code) = upload(&mut b, &form.body, "letter.pdf", &pdf).await;
    for left in [2, 1] {
        let o = device(&card, &["approve", "--pin-stdin", "--code", &code], Some("00000"), &env);
        assert_eq!(stderr(&o), format!("error: wrong PIN2 ({left} attempts left)"));
    }
    let o = device(&card, &["approve", "--pin-stdin", "--code", &code], Some("00000"), &env);
    assert_eq!(stderr(&o), "error: wrong PIN2; PIN2 is now locked");
    let page = b.get(&wait).await;
    assert!(page.body.contains("PIN2 is locked on your device after three wrong attempts"), "{}", page.body);
    let mut login = browser(&d);
    let (poll, code) = start_login(&mut login, &format!("{}/sign?lang=en", d.base), SAMI).await;
    let o = device(&card, &["approve", "--pin-stdin", "--code", &code], Some(PIN1), &env);
    assert!(o.status.success(), "PIN1 still works after PIN2 locked: {}", stderr(&o));
    let r = login.get(&poll).await;
    let (page, _) = login.follow(r).await;
    assert!(page.body.contains(r#"action="/sign""#), "logged in with PIN1: {}", page.body);
    let form = b.get("/sign?lang=en").await;
    let (_, code) = upload(&mut b, &form.body, "letter.pdf", &pdf).await;
    let o = device(&card, &["approve", "--pin-stdin", "--code", &code], Some(PIN2), &env);
    assert!(stderr(&o).contains("PIN2 is locked after 3 wrong attempts"), "even the right PIN2: {}", stderr(&o));
    assert_eq!(sqlite_count(&d, "SELECT count(*) FROM signatures"), 4);
}

/// The sample PDF encrypted by qpdf (AES-256, user password "u").
fn encrypted_pdf(d: &Deployment) -> Vec<u8> {
    std::fs::write(d.path("plain.pdf"), hawiya_e2e::sample_pdf()).expect("write");
    let o = hawiya_e2e::run(Command::new("qpdf").current_dir(d.dir.path()).args(["--encrypt", "u", "o", "256", "--", "plain.pdf", "encrypted.pdf"]));
    assert!(o.status.success(), "qpdf --encrypt: {}", hawiya_e2e::output_text(&o));
    std::fs::read(d.path("encrypted.pdf")).expect("read")
}

/// An official gazette that may ask for signatures (`esign`) but has no legal basis for the
/// national id.
const GAZETTE: &str = "version = 1\nclient_id = \"gazette\"\nname = { ar = \"الجريدة الرسمية\", en = \"Official gazette\" }\n\
min_level = \"low\"\nscopes = [\"openid\", \"profile\", \"esign\"]\nclaims = [\"sub\", \"name\"]\n";

/// Calls of the signing API and of the token endpoint, with every response recorded for
/// the check against `idp/openapi/esign-v1.yaml`.
struct Api {
    http: reqwest::Client,
    base: String,
    recorded: Vec<Value>,
}

/// A response: status, `WWW-Authenticate`, content type, body.
struct Answer {
    status: u16,
    challenge: String,
    content_type: String,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("not JSON ({}): {}", self.status, String::from_utf8_lossy(&self.body)))
    }

    /// The error code and description of an error body.
    fn error(&self) -> (u16, String, String) {
        let e = self.json();
        (self.status, e["error"].as_str().unwrap_or_default().to_owned(), e["error_description"].as_str().unwrap_or_default().to_owned())
    }
}

impl Api {
    async fn send(&mut self, template: &str, request: reqwest::RequestBuilder) -> Answer {
        let built = request.build().expect("request");
        let method = built.method().as_str().to_lowercase();
        let r = self.http.execute(built).await.expect("request");
        let header = |name: reqwest::header::HeaderName| r.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let (status, challenge, content_type) = (r.status().as_u16(), header(reqwest::header::WWW_AUTHENTICATE), header(reqwest::header::CONTENT_TYPE));
        let body = r.bytes().await.expect("body").to_vec();
        let json = if content_type.starts_with("application/json") { serde_json::from_slice(&body).unwrap_or(Value::Null) } else { Value::Null };
        self.recorded.push(json!({"method": method, "path": template, "status": status, "content_type": content_type, "body": json}));
        Answer { status, challenge, content_type, body }
    }

    /// The token endpoint with `form` (client authentication included by the caller).
    async fn token(&mut self, request: reqwest::RequestBuilder) -> Answer {
        self.send("/token", request).await
    }

    fn token_request(&self, form: &[(&str, &str)]) -> reqwest::RequestBuilder {
        self.http.post(format!("{}/token", self.base)).form(form)
    }

    async fn create(&mut self, token: Option<&str>, body: &Value) -> Answer {
        let mut r = self.http.post(format!("{}/api/esign/v1/signing-requests", self.base)).json(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        self.send("/api/esign/v1/signing-requests", r).await
    }

    /// A multipart signing request of `parts`: (name, file name if a file, content).
    async fn create_multipart(&mut self, token: &str, parts: &[(&str, Option<&str>, &[u8])]) -> Answer {
        const BOUNDARY: &str = "api-test-boundary-41b7";
        let mut body = Vec::new();
        for (name, file_name, content) in parts {
            let file = file_name.map(|f| format!("; filename=\"{f}\"")).unwrap_or_default();
            body.extend_from_slice(format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"{file}\r\n\r\n").as_bytes());
            body.extend_from_slice(content);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        let r = self
            .http
            .post(format!("{}/api/esign/v1/signing-requests", self.base))
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}"))
            .body(body);
        self.send("/api/esign/v1/signing-requests", r).await
    }

    async fn status(&mut self, token: &str, id: &str) -> Answer {
        let r = self.http.get(format!("{}/api/esign/v1/signing-requests/{id}", self.base)).bearer_auth(token);
        self.send("/api/esign/v1/signing-requests/{id}", r).await
    }

    async fn document(&mut self, token: &str, id: &str) -> Answer {
        let r = self.http.get(format!("{}/api/esign/v1/signing-requests/{id}/document", self.base)).bearer_auth(token);
        self.send("/api/esign/v1/signing-requests/{id}/document", r).await
    }

    /// Records `value` to be checked against the OpenAPI document's component schema `name`
    /// (what is no response: a notification's claims).
    fn record_schema(&mut self, name: &str, value: &Value) {
        self.recorded.push(json!({"schema": name, "body": value}));
    }

    /// Every recorded response against the OpenAPI document (jsonschema, from scripts/env.sh).
    fn check_against_openapi(&self, dir: &Path) {
        hawiya_e2e::check_against_openapi("idp/openapi/esign-v1.yaml", &self.recorded, dir);
    }
}

/// The id_token claims of a token response.
fn id_token_payload(tokens: &Value) -> Value {
    use base64::Engine;
    let payload = tokens["id_token"].as_str().unwrap_or_else(|| panic!("no id_token: {tokens}")).split('.').nth(1).expect("payload").to_owned();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("claims")
}

/// The agency signing API: the notary (private_key_jwt) gets an `esign` token by client
/// credentials, names the citizen by the pairwise `sub` it got when the citizen logged in,
/// and asks for a PDF's signature; the device shows the notary, the document and the
/// display text, PIN2 signs, the notary polls and fetches a PDF that pyHanko validates.
/// Every refusal is checked on its own, with nothing recorded; every response is held to
/// the OpenAPI document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agency_asks_a_citizen_to_sign_through_the_api() {
    let (d, _) = deployment_with_services(&[("HAWIYA_SMART_ID_LIMITS", "50,500")], &[("gazette.toml", GAZETTE)]);
    let card_env = smart_card(d.dir.path());
    let env: Vec<(&str, &str)> = card_env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let card = d.path("card");
    let o = activate(&d, &card, &enroll(&d, SAMI, "hardware"), &["--pkcs11-module", &softhsm_module().display().to_string()], &env);
    assert!(o.status.success(), "{}", stderr(&o));
    let notary_key = hawiya_e2e::ClientKey::generate("notary-1");
    std::fs::write(d.path("notary-jwks.json"), notary_key.jwks().to_string()).expect("jwks");
    let jwks = d.path("notary-jwks.json").display().to_string();
    d.ok(&["client", "add", "--id", "notary", "--redirect-uri", CB, "--auth-method", "private_key_jwt", "--jwks", &jwks]);
    let secret_of = |out: String| out.lines().find_map(|l| l.strip_prefix("client_secret: ")).expect("secret").to_owned();
    let gazette =
        secret_of(d.ok(&["client", "add", "--id", "gazette", "--redirect-uri", "https://gazette.example.jo/cb", "--auth-method", "client_secret_basic"]));
    let civil =
        secret_of(d.ok(&["client", "add", "--id", "civil-status", "--redirect-uri", "https://civil.example.jo/cb", "--auth-method", "client_secret_basic"]));
    d.ok(&["client", "add", "--id", "kiosk", "--redirect-uri", "https://kiosk.example.jo/cb", "--auth-method", "none"]);
    let mut api = Api { http: browser(&d).http, base: d.base.clone(), recorded: Vec::new() };
    let token_url = format!("{}/token", d.base);
    let assertion_form = |assertion: &str, extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, String)> {
        let mut form =
            vec![("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned()), ("client_assertion", assertion.to_owned())];
        form.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        form
    };
    let as_pairs = |form: &[(&'static str, String)]| form.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>();
    let signatures = || sqlite_count(&d, "SELECT count(*) FROM signatures");

    // The notary learns the citizen's pairwise sub: Sami logs in to it once (smart card, PIN1).
    let mut b = browser(&d);
    // Asking for esign through a citizen's authorization gets it ignored.
    let with_esign = authorize(&d, "&ui_locales=en").replace("scope=openid%20profile%20national_id", "scope=openid%20profile%20national_id%20esign");
    let (poll, code) = start_login(&mut b, &with_esign, SAMI).await;
    let o = device(&card, &["approve", "--pin-stdin", "--code", &code], Some(PIN1), &env);
    assert!(o.status.success(), "login approve: {}", stderr(&o));
    let r = b.get(&poll).await;
    let out = b.through_consent(r).await;
    let code = hawiya_e2e::web::param(&out, "code").expect("a code for the notary");
    let form = assertion_form(&notary_key.assertion("notary", &token_url, "code-1"), &[("grant_type", "authorization_code"), ("redirect_uri", CB)]);
    let mut form = as_pairs(&form);
    form.push(("code", code));
    let r = api.http.post(&token_url).form(&form).send().await.expect("token");
    assert_eq!(r.status(), 200);
    let citizen_tokens: Value = r.json().await.expect("json");
    assert!(!citizen_tokens["scope"].as_str().unwrap_or_default().contains("esign"), "esign is never granted through a citizen: {citizen_tokens}");
    let sub = id_token_payload(&citizen_tokens)["sub"].as_str().expect("sub").to_owned();
    assert_ne!(sub, SAMI);

    // Client credentials: the notary gets an esign token; nothing for a citizen in it.
    let form = assertion_form(&notary_key.assertion("notary", &token_url, "cc-1"), &[("grant_type", "client_credentials"), ("scope", "esign")]);
    let r = api.token(api.token_request(&[]).form(&as_pairs(&form))).await;
    let t = r.json();
    assert_eq!((r.status, t["token_type"].as_str(), t["scope"].as_str()), (200, Some("Bearer"), Some("esign")), "{t}");
    assert!(t.get("refresh_token").is_none() && t.get("id_token").is_none(), "{t}");
    let notary = t["access_token"].as_str().expect("token").to_owned();
    // openid needs a citizen.
    let form = assertion_form(&notary_key.assertion("notary", &token_url, "cc-2"), &[("grant_type", "client_credentials"), ("scope", "openid esign")]);
    let r = api.token(api.token_request(&[]).form(&as_pairs(&form))).await;
    let (status, error, why) = r.error();
    assert_eq!((status, error.as_str()), (400, "invalid_scope"), "{why}");
    // A service whose policy does not grant esign.
    let r = api.token(api.token_request(&[("grant_type", "client_credentials"), ("scope", "esign")]).basic_auth("civil-status", Some(&civil))).await;
    let (status, error, why) = r.error();
    assert_eq!((status, error.as_str()), (400, "invalid_scope"), "{why}");
    assert!(why.contains("does not grant the scope esign"), "{why}");
    // A public client has no credentials.
    let r = api.token(api.token_request(&[("grant_type", "client_credentials"), ("scope", "esign"), ("client_id", "kiosk")])).await;
    let (status, error, _) = r.error();
    assert_eq!((status, error.as_str()), (400, "unauthorized_client"));
    let r = api.token(api.token_request(&[("grant_type", "client_credentials"), ("scope", "esign")]).basic_auth("gazette", Some(&gazette))).await;
    assert_eq!(r.status, 200);
    let gazette_token = r.json()["access_token"].as_str().expect("token").to_owned();

    // Refusals, each on its own, nothing signed or recorded.
    let pdf = hawiya_e2e::sample_pdf();
    let b64 = |bytes: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes);
    let request = |signer: Value| json!({"signer": signer, "document": {"name": "power-of-attorney.pdf", "content": b64(&pdf)}, "display_text": "Power of attorney no. 2026/117 for the sale of parcel 42"});
    let r = api.create(None, &request(json!({"sub": sub}))).await;
    assert_eq!(r.error().1, "invalid_token");
    assert_eq!((r.status, r.challenge.starts_with("Bearer error=\"invalid_token\"")), (401, true), "{}", r.challenge);
    let r = api.create(Some("not-a-token"), &request(json!({"sub": sub}))).await;
    assert_eq!((r.status, r.error().1.as_str(), r.challenge.starts_with("Bearer error=\"invalid_token\"")), (401, "invalid_token", true));
    // A citizen's access token of the same agency: a good token, without esign.
    let r = api.create(citizen_tokens["access_token"].as_str(), &request(json!({"sub": sub}))).await;
    assert_eq!((r.status, r.error().1.as_str()), (403, "insufficient_scope"), "{}", r.error().2);
    assert!(r.challenge.starts_with("Bearer error=\"insufficient_scope\""), "{}", r.challenge);
    // The gazette has no legal basis for the national id.
    let r = api.create(Some(&gazette_token), &request(json!({"national_id": SAMI}))).await;
    let (status, error, why) = r.error();
    assert_eq!((status, error.as_str()), (403, "access_denied"), "{why}");
    assert!(why.contains("service policy of gazette does not allow naming a signer by national id"), "{why}");
    // The notary's sub names nobody in the gazette's sector.
    let r = api.create(Some(&gazette_token), &request(json!({"sub": sub}))).await;
    assert_eq!(r.error(), (404, "not_found".to_owned(), "no such citizen for this service".to_owned()));
    // Too large: the limit is named.
    let huge = json!({"signer": {"sub": sub}, "document": {"name": "huge.pdf", "content": b64(&vec![b'%'; 10 * 1024 * 1024 + 1])}});
    let r = api.create(Some(&notary), &huge).await;
    let (status, error, why) = r.error();
    assert_eq!((status, error.as_str()), (413, "document_too_large"), "{why}");
    assert!(why.contains("10485760 bytes"), "{why}");
    let r = api.create(Some(&notary), &json!({"signer": {"sub": sub, "national_id": SAMI}, "document": {"name": "a.pdf", "content": b64(&pdf)}})).await;
    assert_eq!((r.status, r.error().1.as_str()), (400, "invalid_request"));
    let r =
        api.create(Some(&notary), &json!({"signer": {"sub": sub}, "document": {"name": "a.pdf", "content": b64(&pdf)}, "display_text": "x".repeat(201)})).await;
    assert_eq!((r.status, r.error().1.as_str()), (400, "invalid_request"));
    // The same request as multipart (the JSON, then the file's bytes): each malformed body
    // refused precisely.
    let json_part = |v: Value| v.to_string().into_bytes();
    let meta = json_part(json!({"signer": {"sub": sub}, "document": {}}));
    for (parts, status, error, why) in [
        (vec![("document", Some("a.pdf"), &pdf[..])], 400, "invalid_request", "no part `request` (the signing request, JSON)"),
        (vec![("request", None, &meta[..]), ("request", None, &meta[..])], 400, "invalid_request", "more than one part `request`"),
        (
            vec![("request", None, &meta[..]), ("document", Some("a.pdf"), &pdf[..]), ("document", Some("b.pdf"), &pdf[..])],
            400,
            "invalid_request",
            "more than one part `document`",
        ),
        (
            vec![("request", None, &meta[..]), ("attachment", Some("x"), b"x")],
            400,
            "invalid_request",
            "unknown part `attachment`: the parts are `request` (the JSON) and `document` (the file)",
        ),
        (vec![("request", None, &b"{not json"[..]), ("document", Some("a.pdf"), &pdf[..])], 400, "invalid_request", "the body is not a signing request"),
        (vec![("request", None, &meta[..])], 400, "invalid_request", "document must have exactly one of content and digest"),
    ] {
        let r = api.create_multipart(&notary, &parts).await;
        let (s, e, w) = r.error();
        assert_eq!((s, e.as_str()), (status, error), "{w}");
        assert!(w.starts_with(why), "{w}");
    }
    let with_content = json_part(json!({"signer": {"sub": sub}, "document": {"name": "a.pdf", "content": b64(&pdf)}}));
    let r = api.create_multipart(&notary, &[("request", None, &with_content), ("document", Some("a.pdf"), &pdf)]).await;
    assert_eq!(
        r.error(),
        (400, "invalid_request".to_owned(), "with a document part, the request's document.content and document.digest must be absent".to_owned())
    );
    let huge = vec![b'%'; 10 * 1024 * 1024 + 1];
    let r = api.create_multipart(&notary, &[("request", None, &meta), ("document", Some("huge.pdf"), &huge)]).await;
    let (status, error, why) = r.error();
    assert_eq!((status, error.as_str(), why.contains("10485760 bytes")), (413, "document_too_large", true), "{why}");
    // Layla's smart-ID keeps its key in software: the notary's validation policy (qualified)
    // would never accept her signature, so she is not asked.
    let phone = d.path("layla-phone");
    let o = activate(&d, &phone, &enroll(&d, LAYLA, "software"), &[], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = api.create(Some(&notary), &request(json!({"national_id": LAYLA}))).await;
    let (status, error, why) = r.error();
    assert_eq!((status, error.as_str()), (403, "access_denied"), "{why}");
    assert!(why.contains("reaches substantial") && why.contains("validation policy qualified") && why.contains("from high"), "{why}");
    let o = device(&phone, &["pending"], None, &[]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "No pending request.", "Layla's device was not asked");
    assert_eq!(signatures(), 0, "no refusal signs or records anything");
    let o = device(&card, &["pending"], None, &env);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "No pending request.", "no refusal reached the device");

    // The request, as multipart with the PDF's bytes (its name from the file part): the
    // device shows the notary, the document, the display text and the code.
    let meta = json_part(json!({"signer": {"sub": sub}, "document": {}, "display_text": "Power of attorney no. 2026/117 for the sale of parcel 42"}));
    let r = api.create_multipart(&notary, &[("request", None, &meta), ("document", Some("power-of-attorney.pdf"), &pdf)]).await;
    let opened = r.json();
    assert_eq!((r.status, opened["status"].as_str()), (201, Some("waiting")), "{opened}");
    let id = opened["id"].as_str().expect("id").to_owned();
    let code = opened["verification_code"].as_str().expect("code").to_owned();
    let o = device(&card, &["pending"], None, &env);
    let shown = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(shown.contains("Notary public asks you to sign \"power-of-attorney.pdf\" (PIN2, signing key)"), "{shown}");
    assert!(shown.contains("Power of attorney no. 2026/117 for the sale of parcel 42") && shown.contains(&format!("Verification code: {code}")), "{shown}");
    let r = api.status(&notary, &id).await;
    assert_eq!((r.status, r.json()["status"].as_str(), r.json()["format"].as_str()), (200, Some("waiting"), Some("PAdES-BASELINE-LT")));
    let r = api.document(&notary, &id).await;
    assert_eq!((r.status, r.error().1.as_str()), (404, "not_found"), "nothing to fetch before the signature");
    // Another agency: the request does not exist for it.
    let r = api.status(&gazette_token, &id).await;
    assert_eq!(r.error(), (404, "not_found".to_owned(), "no such signing request of this agency".to_owned()));
    assert_eq!(api.document(&gazette_token, &id).await.status, 404);

    let o = device(&card, &["approve", "--pin-stdin", "--code", &code], Some(PIN2), &env);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("Signed \"power-of-attorney.pdf\" for Notary public"), "{}", stderr(&o));
    let r = api.status(&notary, &id).await;
    assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("signed")));
    let r = api.document(&notary, &id).await;
    assert_eq!((r.status, r.content_type.as_str()), (200, "application/pdf"));
    assert!(r.body.starts_with(&pdf), "the original bytes are only appended to");
    let path = d.path("api-signed.pdf");
    std::fs::write(&path, &r.body).expect("write");
    pyhanko_accepts(&d, &path);
    assert_eq!(sqlite_count(&d, &format!("SELECT count(*) FROM signatures WHERE client_id = 'notary' AND national_id = '{SAMI}'")), 1);

    // By national id (the notary's policy allows it), a text file; the citizen refuses.
    let r = api.create(Some(&notary), &json!({"signer": {"national_id": SAMI}, "document": {"name": "declaration.txt", "content": b64(b"I declare.")}})).await;
    assert_eq!(r.status, 201, "{}", r.json());
    let id = r.json()["id"].as_str().expect("id").to_owned();
    let o = device(&card, &["refuse"], None, &env);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = api.status(&notary, &id).await;
    assert_eq!((r.json()["status"].as_str(), r.json()["format"].as_str()), (Some("refused"), Some("CAdES-BASELINE-LT")));
    assert_eq!(api.document(&notary, &id).await.status, 404);
    assert_eq!(signatures(), 1);

    api.check_against_openapi(d.dir.path());
}

const COURTS: &str = "version = 1\nclient_id = \"courts\"\nname = { ar = \"المحاكم\", en = \"Courts\" }\n\
min_level = \"low\"\nscopes = [\"openid\", \"profile\", \"national_id\", \"esign\"]\nclaims = [\"sub\", \"name\", \"national_id\"]\nnational_id = true\n";

/// What an agency's callback endpoint received: the path, the content type and the body.
type Received = (String, String, Vec<u8>);

/// An agency's callback endpoint, a tokio listener on loopback: answers 503 to the first
/// `failures` posts and 200 after, and hands every post to the test.
async fn callback_endpoint(failures: usize) -> (u16, tokio::sync::mpsc::UnboundedReceiver<Received>) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        for n in 0.. {
            let Ok((stream, _)) = listener.accept().await else { return };
            let mut reader = BufReader::new(stream);
            let mut request_line = String::new();
            let (mut length, mut content_type) = (0, String::new());
            reader.read_line(&mut request_line).await.expect("request line");
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).await.unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if let Some(v) = lower.strip_prefix("content-type:") {
                    content_type = v.trim().to_owned();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).await.expect("body");
            let status = if n < failures { "503 Service Unavailable" } else { "200 OK" };
            let _ = reader.get_mut().write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes()).await;
            let path = request_line.split_whitespace().nth(1).unwrap_or_default().to_owned();
            if tx.send((path, content_type, body)).is_err() {
                return;
            }
        }
    });
    (port, rx)
}

/// The next notification the endpoint receives (within 20 s): its token, checked against
/// the provider's JWKS, and its claims.
async fn notification(d: &Deployment, received: &mut tokio::sync::mpsc::UnboundedReceiver<Received>, path: &str) -> (String, Value) {
    use hsm_shim::jose::{UnverifiedJws, public_key_from_jwk};
    let (at, content_type, body) =
        tokio::time::timeout(std::time::Duration::from_secs(20), received.recv()).await.expect("a notification within 20 s").expect("the endpoint runs");
    assert_eq!((at.as_str(), content_type.as_str()), (path, "application/x-www-form-urlencoded"));
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let [(field, token)] = fields.as_slice() else { panic!("one field: {fields:?}") };
    assert_eq!(field, "notification_token");
    let jws = UnverifiedJws::parse(token).expect("a JWS");
    assert_eq!(jws.header.get("typ").and_then(Value::as_str), Some("esign-notification+jwt"));
    let http = idp::backchannel::http_client().expect("client");
    let jwks: Value = http.get(format!("{}/jwks", server(d))).send().await.expect("jwks").json().await.expect("json");
    let jwk = jwks["keys"].as_array().expect("keys").iter().find(|k| k["kid"].as_str() == jws.kid()).expect("its kid is published");
    let (key, alg) = public_key_from_jwk(jwk).expect("jwk");
    jws.verify(&key, alg).expect("the notification verifies against the provider's JWKS");
    (token.clone(), serde_json::from_slice(&jws.payload).expect("claims"))
}

/// A deployment with the courts' service (esign, national id) registered with a redirect URI
/// on the loopback callback endpoint, and Sami's smart card: the deployment, the card, its
/// environment, and an `esign` token of the courts.
async fn courts(env: &[(&str, &str)], port: u16) -> (Deployment, PathBuf, Vec<(String, String)>, String) {
    let (d, _) = deployment_with_services(env, &[("courts.toml", COURTS)]);
    let card_env = smart_card(d.dir.path());
    let envs: Vec<(&str, &str)> = card_env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let card = d.path("card");
    let o = activate(&d, &card, &enroll(&d, SAMI, "hardware"), &["--pkcs11-module", &softhsm_module().display().to_string()], &envs);
    assert!(o.status.success(), "{}", stderr(&o));
    let redirect = format!("http://127.0.0.1:{port}/cb");
    let out = d.ok(&["client", "add", "--id", "courts", "--redirect-uri", &redirect, "--auth-method", "client_secret_basic"]);
    let secret = out.lines().find_map(|l| l.strip_prefix("client_secret: ")).expect("secret").to_owned();
    let r = browser(&d)
        .http
        .post(format!("{}/token", d.base))
        .basic_auth("courts", Some(&secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "esign")])
        .send()
        .await
        .expect("token");
    let body: Value = r.json().await.expect("json");
    let token = body["access_token"].as_str().unwrap_or_else(|| panic!("an esign token: {body}")).to_owned();
    (d, card, card_env, token)
}

/// An agency signs a file by its hash: the provider never sees the file, the device shows
/// its name, and the `.p7s` is a detached CAdES-BASELINE-LT over that digest that OpenSSL
/// and DSS accept with the file. The agency gave a callback URI: when the request ends
/// (signed, then refused) it receives a notification token signed with the provider's key
/// (retried after a 503), with the request and its status and nothing else. Every refusal
/// of a malformed digest or callback URI is precise and leaves nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agency_signs_a_document_hash_and_hears_back_at_its_callback() {
    let (port, mut received) = callback_endpoint(1).await;
    let (d, card, card_env, token) = courts(&[("HAWIYA_SMART_ID_LIMITS", "50,500")], port).await;
    let env: Vec<(&str, &str)> = card_env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut api = Api { http: browser(&d).http, base: d.base.clone(), recorded: Vec::new() };
    let signatures = || sqlite_count(&d, "SELECT count(*) FROM signatures");
    let b64 = |bytes: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes);
    let file = "حكم — a judgment the courts keep to themselves\n".as_bytes();
    let sha256 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, file).as_ref().to_vec();
    let callback = format!("http://127.0.0.1:{port}/esign/notify");
    let request = |document: Value, callback: &str| json!({"signer": {"national_id": SAMI}, "document": document, "callback_uri": callback, "display_text": "Judgment 2026/88, for your signature as witness"});
    let by_digest = |algorithm: &str, value: &[u8]| json!({"name": "judgment.txt", "digest": {"algorithm": algorithm, "value": b64(value)}});

    // Refusals, each precise, nothing stored, nothing on the device.
    let refusals = [
        (
            json!({"name": "judgment.txt", "content": b64(file), "digest": {"algorithm": "sha-256", "value": b64(&sha256)}}),
            callback.clone(),
            "document must have exactly one of content and digest, or come as the multipart part `document`",
        ),
        (json!({"name": "judgment.txt"}), callback.clone(), "document must have exactly one of content and digest, or come as the multipart part `document`"),
        (by_digest("md5", &sha256[..16]), callback.clone(), "document.digest.algorithm \"md5\" is not one of sha-256, sha-384, sha-512"),
        (by_digest("sha-256", &sha256[..31]), callback.clone(), "document.digest.value has 31 octets; a sha-256 digest has 32"),
        (by_digest("sha-512", &sha256), callback.clone(), "document.digest.value has 32 octets; a sha-512 digest has 64"),
        // The citizen's P-256 signing key signs SHA-256 digests only.
        (by_digest("sha-384", &[7; 48]), callback.clone(), "document.digest: the signer's signing key signs sha-256 digests, not sha-384"),
        (
            by_digest("sha-256", &sha256),
            "https://courts.example.jo/cb".into(),
            "callback_uri must have the origin (scheme, host and port) of one of the agency's registered redirect URIs",
        ),
        (
            by_digest("sha-256", &sha256),
            format!("http://127.0.0.1:{}/cb", port.wrapping_add(1)),
            "callback_uri must have the origin (scheme, host and port) of one of the agency's registered redirect URIs",
        ),
        (by_digest("sha-256", &sha256), "http://courts.example.jo/cb".into(), "callback_uri must be https (http only on a loopback host)"),
        (by_digest("sha-256", &sha256), "/esign/notify".into(), "callback_uri must be an absolute URL"),
        (by_digest("sha-256", &sha256), format!("http://user:pw@127.0.0.1:{port}/cb"), "callback_uri must not carry credentials or a fragment"),
    ];
    for (document, callback, why) in refusals {
        let r = api.create(Some(&token), &request(document, &callback)).await;
        assert_eq!(r.error(), (400, "invalid_request".to_owned(), why.to_owned()));
    }
    let mut archive = request(by_digest("sha-256", &sha256), &callback);
    archive["archive_timestamp"] = json!(true);
    let r = api.create(Some(&token), &archive).await;
    assert_eq!((r.status, r.error().2.as_str()), (400, "archive_timestamp is for PDF signatures, which need the document's content, not its digest"));
    let o = device(&card, &["pending"], None, &env);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "No pending request.", "no refusal reached the device");
    assert_eq!(signatures(), 0);

    // The digest: the device shows the file's name, PIN2 signs.
    let r = api.create(Some(&token), &request(by_digest("sha-256", &sha256), &callback)).await;
    assert_eq!(r.status, 201, "{}", r.json());
    let id = r.json()["id"].as_str().expect("id").to_owned();
    let code = r.json()["verification_code"].as_str().expect("code").to_owned();
    let r = api.status(&token, &id).await;
    assert_eq!((r.json()["status"].as_str(), r.json()["format"].as_str()), (Some("waiting"), Some("CAdES-BASELINE-LT")));
    let o = device(&card, &["pending"], None, &env);
    let shown = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(shown.contains("Courts asks you to sign \"judgment.txt\" (PIN2, signing key)") && shown.contains(&format!("Verification code: {code}")), "{shown}");
    assert!(shown.contains("Judgment 2026/88, for your signature as witness"), "the display text as usual: {shown}");
    let o = device(&card, &["approve", "--pin-stdin", "--code", &code], Some(PIN2), &env);
    assert!(o.status.success(), "{}", stderr(&o));
    // The first delivery meets a 503; the retry brings the same notification (its jti),
    // signed afresh when it is posted.
    let (_, claims) = notification(&d, &mut received, "/esign/notify").await;
    let (_, again) = notification(&d, &mut received, "/esign/notify").await;
    assert_eq!(
        (&again["jti"], &again["signing_request"], &again["status"]),
        (&claims["jti"], &claims["signing_request"], &claims["status"]),
        "the retry is the same notification"
    );
    assert_eq!((claims["iss"].as_str(), claims["aud"].as_str()), (Some(d.base.as_str()), Some("courts")), "{claims}");
    assert_eq!((claims["signing_request"].as_str(), claims["status"].as_str()), (Some(id.as_str()), Some("signed")), "{claims}");
    let mut names: Vec<&str> = claims.as_object().expect("claims").keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["aud", "exp", "iat", "iss", "jti", "signing_request", "status"], "nothing of the document or the signature");
    api.record_schema("SigningNotification", &claims);
    // The agency fetches the result with its token.
    let r = api.document(&token, &id).await;
    assert_eq!((r.status, r.content_type.as_str()), (200, "application/pkcs7-signature"));
    std::fs::write(d.path("judgment.txt"), file).expect("write");
    std::fs::write(d.path("judgment.txt.p7s"), &r.body).expect("write");
    let root = d.path("certs/root.pem").display().to_string();
    let o = openssl(
        d.dir.path(),
        &[
            "cms",
            "-verify",
            "-cades",
            "-binary",
            "-inform",
            "DER",
            "-in",
            "judgment.txt.p7s",
            "-content",
            "judgment.txt",
            "-CAfile",
            &root,
            "-out",
            "/dev/null",
        ],
    );
    assert!(o.status.success(), "openssl cms -verify -cades: {}", hawiya_e2e::output_text(&o));
    std::fs::write(d.path("other.txt"), b"another judgment").expect("write");
    let o = openssl(
        d.dir.path(),
        &["cms", "-verify", "-cades", "-binary", "-inform", "DER", "-in", "judgment.txt.p7s", "-content", "other.txt", "-CAfile", &root, "-out", "/dev/null"],
    );
    assert!(!o.status.success(), "the signature covers that file's digest only");
    let verdict = hawiya_e2e::dss(&d, &d.path("judgment.txt.p7s"), Some(&d.path("judgment.txt")));
    assert_eq!(verdict, "TOTAL_PASSED - CAdES-BASELINE-LT\n", "DSS on the .p7s with the detached original");
    let (code, report) = hawiya_e2e::hawiya_verify(&d, &d.path("judgment.txt.p7s"), Some(&d.path("judgment.txt")), &[]);
    assert_eq!(code, 0, "hawiya verify: {report:#}");
    assert!(hawiya_e2e::verdicts(&report).starts_with("TOTAL-PASSED - CAdES-BASELINE-LT "), "hawiya verify: {report:#}");
    let recorded: String = sha256.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(sqlite_count(&d, &format!("SELECT count(*) FROM signatures WHERE client_id = 'courts' AND document_sha256 = '{recorded}'")), 1);

    // A request that ends without a signature is notified too.
    let r = api.create(Some(&token), &request(by_digest("sha-256", &sha256), &callback)).await;
    let id = r.json()["id"].as_str().expect("id").to_owned();
    let o = device(&card, &["refuse"], None, &env);
    assert!(o.status.success(), "{}", stderr(&o));
    let (_, claims) = notification(&d, &mut received, "/esign/notify").await;
    assert_eq!((claims["signing_request"].as_str(), claims["status"].as_str()), (Some(id.as_str()), Some("refused")), "{claims}");
    api.record_schema("SigningNotification", &claims);
    assert_eq!(signatures(), 1);
    api.check_against_openapi(d.dir.path());
}

/// A document changed between the request and the approval: the courts' request is opened,
/// then the document the provider keeps for it (in Redis, the ephemeral store replicas
/// share) is replaced; the device signs what it was shown, the provider derives what it
/// would sign from the document it now holds, sees that they differ and refuses: no
/// signature assembled or recorded, the API says `document_changed`, and so does the
/// notification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_changed_between_the_request_and_the_approval_is_refused() {
    let (port, mut received) = callback_endpoint(0).await;
    let (redis, prefix) = (hawiya_e2e::redis_url(), hawiya_e2e::unique_prefix());
    let (d, card, card_env, token) = courts(&[("HAWIYA_REDIS_URL", &redis), ("HAWIYA_REDIS_PREFIX", &prefix)], port).await;
    let env: Vec<(&str, &str)> = card_env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut api = Api { http: browser(&d).http, base: d.base.clone(), recorded: Vec::new() };
    let b64 = |bytes: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes);
    let callback = format!("http://127.0.0.1:{port}/cb");
    let body = json!({"signer": {"national_id": SAMI}, "document": {"name": "lease.txt", "content": b64(b"rent: 300 JOD a month")}, "callback_uri": callback});
    let r = api.create(Some(&token), &body).await;
    assert_eq!(r.status, 201, "{}", r.json());
    let id = r.json()["id"].as_str().expect("id").to_owned();
    let code = r.json()["verification_code"].as_str().expect("code").to_owned();

    use store::ephemeral::EphemeralStore;
    let store = store::ephemeral::RedisStore::connect(&redis, &prefix).await.expect("redis");
    let key = format!("signing-document:{id}");
    assert_eq!(store.get(&key).await.expect("get").as_deref(), Some(&b"rent: 300 JOD a month"[..]), "the provider keeps the document there");
    store.put(&key, b"rent: 900 JOD a month", std::time::Duration::from_secs(120)).await.expect("put");

    let o = device(&card, &["approve", "--pin-stdin", "--code", &code], Some(PIN2), &env);
    assert!(!o.status.success() && stderr(&o).contains("sign.document_changed"), "{}", stderr(&o));
    let r = api.status(&token, &id).await;
    assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("document_changed")));
    let r = api.document(&token, &id).await;
    assert_eq!((r.status, r.error().2.as_str()), (404, "the document is not signed (the request is document_changed)"));
    assert_eq!(sqlite_count(&d, "SELECT count(*) FROM signatures"), 0, "nothing recorded");
    assert!(store.get(&format!("signing-result:{id}")).await.expect("get").is_none(), "no signature assembled");
    let (_, claims) = notification(&d, &mut received, "/cb").await;
    assert_eq!((claims["signing_request"].as_str(), claims["status"].as_str()), (Some(id.as_str()), Some("document_changed")), "{claims}");
    api.record_schema("SigningNotification", &claims);
    api.check_against_openapi(d.dir.path());
}

#[test]
fn the_exposition_parser_refuses_what_breaks_the_format() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"q\\\"\\\\\"} 3\n# HELP h_seconds H.\n# TYPE h_seconds histogram\nh_seconds_bucket{le=\"0.1\"} 1\nh_seconds_bucket{le=\"+Inf\"} 2\nh_seconds_sum 0.3\nh_seconds_count 2\n";
    let f = parse_exposition(good);
    assert_eq!((f["a_total"].total(), f["a_total"].with(("x", "q\"\\")), f["h_seconds"].total()), (3.0, 3.0, 2.0));
    for bad in [
        "a_total 1\n",                                                   // no HELP/TYPE
        "# HELP a_total A.\n# TYPE a_total counter\na_total -1\n",       // negative counter
        "# HELP a_total A.\n# TYPE a_total counter\nb_total 1\n",        // outside its family
        "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1} 1\n", // unterminated value
        "# HELP h_seconds H.\n# TYPE h_seconds histogram\nh_seconds_bucket{le=\"0.1\"} 2\nh_seconds_bucket{le=\"+Inf\"} 1\nh_seconds_sum 0\nh_seconds_count 1\n",
        "# HELP h_seconds H.\n# TYPE h_seconds histogram\nh_seconds_bucket{le=\"0.1\"} 1\nh_seconds_bucket{le=\"+Inf\"} 2\nh_seconds_sum 0\nh_seconds_count 3\n",
    ] {
        assert!(std::panic::catch_unwind(|| parse_exposition(bad)).is_err(), "accepted: {bad}");
    }
}

/// What operators watch, on `/metrics` of a running server after each thing was done once:
/// certificates issued, suspended, released and revoked, a CRL re-signed, OCSP answers of
/// every status and a malformed request, timestamp tokens and refusals, smart-ID logins
/// approved and refused, a signature, token requests; every family of the right type, each
/// new one moved, the whole text in the exposition format.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_family_moves_on_the_operators_metrics() {
    let metrics = format!("127.0.0.1:{}", hawiya_e2e::free_port());
    let (d, officer) = deployment_with(&[("HAWIYA_METRICS_LISTEN", &metrics)]);
    let (card, card_env) = sami_card(&d);
    let env: Vec<(&str, &str)> = card_env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();

    // A smart-ID login (PIN1) on the signing page, then a signature (PIN2).
    let (mut b, form) = on_the_signing_page(&d, &card, &env).await;
    let (wait, code) = upload(&mut b, &form.body, "statement.txt", b"an official statement\n").await;
    let o = device(&card, &["approve", "--pin-stdin", "--code", &code], Some(PIN2), &env);
    assert!(o.status.success(), "sign approve: {}", stderr(&o));
    assert!(b.get(&wait).await.body.contains("CAdES-BASELINE-LT"), "signed");
    // A login the citizen refuses on the device.
    let (_, _) = start_login(&mut browser(&d), &format!("{}/sign?lang=en", d.base), SAMI).await;
    let o = device(&card, &["refuse"], None, &env);
    assert!(o.status.success(), "refuse: {}", stderr(&o));
    // The token endpoint, refusing an unknown client.
    let r = b.http.post(format!("{}/token", d.base)).form(&[("grant_type", "refresh_token"), ("refresh_token", "x"), ("client_id", "nobody")]);
    assert_eq!(r.send().await.expect("token").status(), 401);

    // OCSP: good, unknown, malformed.
    assert!(ocsp_status(&d, &card).contains(": good"), "good");
    let p = |f: &str| card.join(f).display().to_string();
    let o = openssl(&card, &["ocsp", "-issuer", &p("authentication-ca.pem"), "-serial", "0x1234", "-url", &format!("{}/ocsp", server(&d)), "-noverify"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("unknown"), "unknown: {}", String::from_utf8_lossy(&o.stdout));
    std::fs::write(d.path("junk.der"), b"not an OCSP request").expect("write");
    assert_eq!(d.post(&format!("{}/ocsp", d.base), "application/ocsp-request", "junk.der").0, 200);
    // The TSA: a token, a SHA-1 request (badAlg), another media type (badRequest).
    std::fs::write(d.path("doc.txt"), b"a document").expect("write");
    for (digest, file) in [("-sha256", "q256.tsq"), ("-sha1", "q1.tsq")] {
        let o = openssl(d.dir.path(), &["ts", "-query", "-data", "doc.txt", digest, "-cert", "-out", file]);
        assert!(o.status.success(), "openssl ts -query");
    }
    let tsa = format!("{}/tsa", d.base);
    for (content_type, file) in [("application/timestamp-query", "q256.tsq"), ("application/timestamp-query", "q1.tsq"), ("text/plain", "q256.tsq")] {
        assert_eq!(d.post(&tsa, content_type, file).0, 200, "a TimeStampResp for every request");
    }
    // Suspend (OCSP says revoked, the CRL is re-signed), resume, then revoke for good.
    let ra = |action: &str| format!("{}/ra/smart-ids/{SAMI}/{action}", server(&d));
    assert_eq!(post(&ra("suspend"), Some(&officer), &json!({})).await.0, 204);
    assert!(ocsp_status(&d, &card).contains("revoked"), "on hold");
    assert_eq!(d.fetch(&format!("{}/crl/citizen-authentication-ca.crl", d.base)).0, 200);
    assert_eq!(post(&ra("resume"), Some(&officer), &json!({})).await.0, 204);
    assert_eq!(post(&ra("revoke"), Some(&officer), &json!({"reason": "keyCompromise"})).await.0, 204);

    let text = idp::backchannel::http_client().expect("client").get(format!("http://{metrics}/metrics")).send().await.expect("metrics");
    assert_eq!(text.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    let families = parse_exposition(&text.text().await.expect("text"));
    let moved = [
        ("hawiya_ca_certificates_issued_total", "counter"),
        ("hawiya_ca_certificates_suspended_total", "counter"),
        ("hawiya_ca_certificates_released_total", "counter"),
        ("hawiya_ca_certificates_revoked_total", "counter"),
        ("hawiya_ca_crls_published_total", "counter"),
        ("hawiya_ocsp_responses_total", "counter"),
        ("hawiya_ocsp_refusals_total", "counter"),
        ("hawiya_ocsp_request_duration_seconds", "histogram"),
        ("hawiya_tsa_tokens_issued_total", "counter"),
        ("hawiya_tsa_refusals_total", "counter"),
        ("hawiya_tsa_request_duration_seconds", "histogram"),
        ("hawiya_token_request_duration_seconds", "histogram"),
        ("hawiya_smart_id_logins_total", "counter"),
        ("hawiya_smart_id_answer_duration_seconds", "histogram"),
        ("hawiya_signing_sessions_total", "counter"),
        ("hawiya_signing_answer_duration_seconds", "histogram"),
        ("hawiya_logins_total", "counter"),
    ];
    for (name, kind) in moved {
        let family = families.get(name).unwrap_or_else(|| panic!("no {name} on /metrics"));
        assert_eq!(family.kind, kind, "{name}");
        assert!(family.total() > 0.0, "{name} moved");
    }
    for (name, kind) in [
        ("hawiya_login_failures_total", "counter"),
        ("hawiya_tokens_issued_total", "counter"),
        ("hawiya_token_reuse_total", "counter"),
        ("hawiya_password_checks_total", "counter"),
        ("hawiya_password_check_cpu_seconds_total", "counter"),
        // Moved in tests/tests/oidc.rs (a relying party down at logout, then up).
        ("hawiya_backchannel_deliveries_total", "counter"),
        ("hawiya_backchannel_queue", "gauge"),
    ] {
        assert_eq!(families.get(name).map(|f| f.kind.as_str()), Some(kind), "{name}");
    }
    let f = |name: &str| &families[name];
    // Two certificates at enrolment; the suspension and the revocation cover both.
    assert_eq!(f("hawiya_ca_certificates_issued_total").total(), 2.0);
    assert_eq!(f("hawiya_ca_certificates_suspended_total").total(), 2.0);
    assert_eq!(f("hawiya_ca_certificates_released_total").total(), 2.0);
    assert_eq!(f("hawiya_ca_certificates_revoked_total").total(), 2.0);
    for status in ["good", "revoked", "unknown"] {
        assert!(f("hawiya_ocsp_responses_total").with(("status", status)) >= 1.0, "OCSP {status}");
    }
    assert_eq!(f("hawiya_ocsp_refusals_total").with(("status", "malformedRequest")), 1.0);
    assert!(f("hawiya_tsa_tokens_issued_total").total() >= 2.0, "ours and the signature's");
    assert_eq!(f("hawiya_tsa_refusals_total").with(("failure", "badAlg")), 1.0);
    assert_eq!(f("hawiya_tsa_refusals_total").with(("failure", "badRequest")), 1.0);
    assert_eq!(f("hawiya_smart_id_logins_total").with(("outcome", "approved")), 1.0);
    assert_eq!(f("hawiya_smart_id_logins_total").with(("outcome", "refused")), 1.0);
    assert_eq!(f("hawiya_signing_sessions_total").with(("outcome", "signed")), 1.0);
    assert_eq!(f("hawiya_smart_id_answer_duration_seconds").total(), 2.0);
    assert_eq!(f("hawiya_signing_answer_duration_seconds").total(), 1.0);
    let refreshes = f("hawiya_token_request_duration_seconds").samples.iter().find(|(name, labels, _)| {
        name == "hawiya_token_request_duration_seconds_count" && labels.get("grant_type").map(String::as_str) == Some("refresh_token")
    });
    assert_eq!(refreshes.map(|s| s.2), Some(1.0), "the refused refresh was timed");
}
