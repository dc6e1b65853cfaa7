//! A load generator for smart-ID logins and signatures, used by `scripts/bench-smart-id` and
//! `scripts/bench-signing`. Each worker is one citizen's device and whoever asks at once.
//! Logins: it opens the service's login, starts a smart-ID login on the page, fetches the
//! request as the device (a request signed with the device key), signs the challenge with the
//! authentication key, answers, lets the page finish the login (consenting the first time),
//! and exchanges the code for tokens. Signatures (`sign`): an agency with an `esign` token
//! asks the citizen (by national id) to sign DOCUMENT through the signing API, the device
//! fetches the request, signs what it is given with the signing key and answers (the server
//! checks the signature, gets a timestamp and an OCSP response and assembles the B-LT file),
//! and the agency reads the request's status and downloads the signed file.
//!
//! ```text
//! smart_id_load ISSUER CLIENT SECRET REDIRECT_URI DEVICES_DIR PIN1 SECONDS
//! smart_id_load sign ISSUER CLIENT SECRET DEVICES_DIR PIN2 DOCUMENT SECONDS
//! smart_id_load verify-cost
//! smart_id_load ocsp ISSUER DEVICE_DIR SECONDS
//! ```
//!
//! DEVICES_DIR holds devices made by `hawiya device activate` (one worker each), with soft
//! keys or on PKCS#11 tokens; their key stores are opened once with the device secret and the
//! PIN, as the device does. Prints `<operations per second> <operations> <failures> <server
//! CPU ms per operation>` (server CPU from `/proc/$SERVER_PID/stat` over the timed part). `verify-cost` prints the CPU cost
//! of one ECDSA P-256 and one P-384 signature verification on this machine, in microseconds;
//! `ocsp` asks the provider's OCSP responder about a device's certificate as the provider
//! does at each login (8 at a time), and prints the same four numbers per OCSP answer.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use hsm_shim::pkcs11::{Pin, Pkcs11KeyStore};
use hsm_shim::signer::StoredKeySigner;
use hsm_shim::soft::{OperatorSecret, SoftKeyStore};
use hsm_shim::{KeyRef, KeyStore, SignatureAlgorithm};
use serde_json::{Value, json};

mod common;
use common::{Browser, Tally, Timed};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Which of the citizen's two keys a worker uses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    /// The authentication key (PIN1): logins.
    Authentication,
    /// The signing key (PIN2): signatures.
    Signature,
}

/// One simulated citizen: their device's proof key, the citizen key the worker uses (unlocked
/// with its PIN) and that key's certificate.
struct Device {
    national_id: String,
    kid: String,
    proof_key: StoredKeySigner,
    store: Arc<dyn KeyStore>,
    key: KeyRef,
    certificate_b64: String,
}

fn open_device(dir: &Path, which: Which, pin: &str) -> Device {
    let state: Value = serde_json::from_slice(&std::fs::read(dir.join("device.json")).expect("device.json")).expect("json");
    let secret = std::fs::read_to_string(dir.join("device-secret")).expect("secret");
    let device_store =
        SoftKeyStore::open(&dir.join("device-key"), &OperatorSecret::new(secret.clone().into_bytes()).expect("secret")).expect("device key store");
    let device_key = device_store.list().expect("keys").remove(0).key;
    let proof_key = StoredKeySigner::new(Arc::new(device_store), device_key, SignatureAlgorithm::Es256).expect("signer");
    let (name, token) = match which {
        Which::Authentication => ("authentication", "authentication_token"),
        Which::Signature => ("signature", "signature_token"),
    };
    let keys = &state["keys"];
    let store: Arc<dyn KeyStore> = match keys["kind"].as_str() {
        Some("pkcs11") => Arc::new(
            Pkcs11KeyStore::open(Path::new(keys["module"].as_str().expect("module")), keys[token].as_str().expect("token"), &Pin::new(pin.to_owned()))
                .expect("PKCS#11 token"),
        ),
        _ => Arc::new(SoftKeyStore::open(&dir.join(name), &OperatorSecret::new(format!("{secret}:{pin}").into_bytes()).expect("secret")).expect("PIN")),
    };
    let key = store.list().expect("keys").into_iter().find(|k| k.key.label() == format!("smart-id-{name}")).expect("the citizen key").key;
    let pem = std::fs::read_to_string(dir.join(format!("{name}.pem"))).expect("certificate");
    let certificate_b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    Device {
        national_id: state["national_id"].as_str().expect("national id").to_owned(),
        kid: state["device_kid"].as_str().expect("kid").to_owned(),
        proof_key,
        store,
        key,
        certificate_b64,
    }
}

struct Target {
    issuer: String,
    origin: String,
    client: String,
    secret: String,
    redirect_uri: String,
}

impl Device {
    /// A request of the device to the provider (GET without a body, POST with one), with its
    /// signed proof; the JSON answer.
    async fn call(&self, http: &reqwest::Client, issuer: &str, origin: &str, path: &str, n: u64, body: Option<&Value>) -> Result<Value, String> {
        let (method, request) = match body {
            None => ("GET", http.get(format!("{origin}{path}"))),
            Some(body) => ("POST", http.post(format!("{origin}{path}")).json(body)),
        };
        let response = request.header(idp::http::DEVICE_PROOF_HEADER, self.proof(issuer, method, path, n)).send().await.map_err(|e| e.to_string())?;
        response.json().await.map_err(|e| format!("{path}: {e}"))
    }

    fn proof(&self, issuer: &str, method: &str, path: &str, n: u64) -> String {
        let claims = json!({"htm": method, "htu": format!("{issuer}{path}"), "iat": idp::unix_now(), "jti": format!("{n:016x}{:08x}", std::process::id())});
        let mut header = serde_json::Map::new();
        header.insert("typ".into(), idp::smart_id::DEVICE_PROOF_TYPE.into());
        hsm_shim::jose::sign_compact(&self.proof_key, &self.kid, header, claims.to_string().as_bytes()).expect("proof")
    }
}

fn between<'a>(text: &'a str, before: &str, after: &str) -> Option<&'a str> {
    let start = text.find(before)? + before.len();
    text[start..].split(after).next()
}

/// One smart-ID login, end to end; `n` makes state, nonce and proof ids unique.
async fn login(http: &reqwest::Client, t: &Target, d: &Device, n: u64) -> Result<(), String> {
    let mut b = Browser::default();
    let mut url = url::Url::parse(&format!("{}/authorize", t.issuer)).map_err(|e| e.to_string())?;
    url.query_pairs_mut()
        .append_pair("client_id", &t.client)
        .append_pair("redirect_uri", &t.redirect_uri)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid profile")
        .append_pair("state", &format!("s{n}"))
        .append_pair("nonce", &format!("n{n}"));
    let (_, location, _) = b.send(http.get(url.as_str())).await?;
    let login_page = format!("{}{}", t.origin, location.ok_or("no redirect to the login page")?);
    let (_, _, page) = b.send(http.get(&login_page)).await?;
    let tx = between(&page, r#"name="tx" value=""#, "\"").ok_or("no tx")?.to_owned();
    let csrf = between(&page, r#"name="csrf" value=""#, "\"").ok_or("no csrf")?.to_owned();
    let form = [("tx", tx.as_str()), ("csrf", csrf.as_str()), ("lang", "en"), ("national_id", d.national_id.as_str())];
    let (status, _, waiting) = b.send(http.post(format!("{}/login/smart-id", t.origin)).form(&form)).await?;
    let poll = between(&waiting, r#"<p><a href=""#, "\"")
        .ok_or_else(|| format!("no waiting page ({status}): {}", &waiting[..waiting.len().min(300)]))?
        .replace("&amp;", "&");

    // The device.
    let pending = d.call(http, &t.issuer, &t.origin, "/smart-id/device/pending", 2 * n, None).await?;
    let (session, challenge, client) = (
        pending["session"].as_str().ok_or("no session")?,
        pending["challenge"].as_str().ok_or("no challenge")?,
        pending["client_id"].as_str().ok_or("no client")?,
    );
    let code = idp::smart_id::verification_code(&B64.decode(challenge).map_err(|e| e.to_string())?);
    let tbs = idp::smart_id::to_be_signed(&t.issuer, session, client, challenge, &code);
    let signature = d.store.sign(&d.key, SignatureAlgorithm::Es256, &tbs).map_err(|e| e.to_string())?;
    let answer = json!({"session": session, "outcome": "approve", "certificate": d.certificate_b64, "signature": STANDARD.encode(signature)});
    let answered = d.call(http, &t.issuer, &t.origin, "/smart-id/device/answer", 2 * n + 1, Some(&answer)).await?;
    if answered["state"] != "approved" {
        return Err(format!("answer: {answered}"));
    }

    // The page finishes the login (consent the first time), then the client's token call.
    let (mut status, mut location, mut body) = b.send(http.get(format!("{}{poll}", t.origin))).await?;
    let code = loop {
        if let Some(l) = location.clone() {
            if l.starts_with(&t.redirect_uri) {
                break url::Url::parse(&l)
                    .ok()
                    .and_then(|u| u.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned()))
                    .ok_or_else(|| format!("no code: {l}"))?;
            }
            (status, location, body) = b.send(http.get(if l.starts_with('/') { format!("{}{l}", t.origin) } else { l })).await?;
        } else if body.contains(r#"action="/consent""#) {
            let tx = between(&body, r#"name="tx" value=""#, "\"").ok_or("no consent tx")?.to_owned();
            let csrf = between(&body, r#"name="csrf" value=""#, "\"").ok_or("no consent csrf")?.to_owned();
            (status, location, body) =
                b.send(http.post(format!("{}/consent", t.origin)).form(&[("tx", tx.as_str()), ("csrf", csrf.as_str()), ("decision", "allow")])).await?;
        } else {
            return Err(format!("HTTP {status} after the device answered: {}", &body[..body.len().min(300)]));
        }
    };
    let r = http
        .post(format!("{}/token", t.origin))
        .basic_auth(&t.client, Some(&t.secret))
        .form(&[("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", t.redirect_uri.as_str())])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let tokens: Value = r.json().await.map_err(|e| e.to_string())?;
    if tokens["id_token"].is_string() { Ok(()) } else { Err(format!("token: {tokens}")) }
}

/// The agency asking for signatures: its `esign` token, and the document it has signed
/// (sent as the API's multipart request: the JSON, then the file's bytes).
struct Agency {
    issuer: String,
    origin: String,
    token: String,
    request: Value,
    document: Vec<u8>,
}

const BOUNDARY: &str = "hawiya-load-boundary-7f3a9c";

/// The multipart body of a signing request: the part `request` (JSON) and the part
/// `document` (the file).
fn multipart_request(request: &Value, document: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"request\"\r\nContent-Type: application/json\r\n\r\n{request}\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"document\"; filename=\"document\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.reserve(document.len() + BOUNDARY.len() + 8);
    body.extend_from_slice(document);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// An agency's `esign` token (client credentials, client_secret_basic).
async fn agency_token(http: &reqwest::Client, origin: &str, client: &str, secret: &str) -> String {
    let r = http
        .post(format!("{origin}/token"))
        .basic_auth(client, Some(secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "esign")])
        .send()
        .await
        .expect("token request");
    let tokens: Value = r.json().await.expect("token response");
    tokens["access_token"].as_str().unwrap_or_else(|| panic!("no esign token: {tokens}")).to_owned()
}

/// One signature through the signing API, end to end; `n` makes proof ids unique.
async fn sign(http: &reqwest::Client, a: &Agency, d: &Device, n: u64) -> Result<(), String> {
    let mut request = a.request.clone();
    request["signer"] = json!({"national_id": d.national_id});
    let r = http
        .post(format!("{}/api/esign/v1/signing-requests", a.origin))
        .bearer_auth(&a.token)
        .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(multipart_request(&request, &a.document))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let opened: Value = r.json().await.map_err(|e| e.to_string())?;
    let id = opened["id"].as_str().ok_or_else(|| format!("signing request ({status}): {opened}"))?;

    // The device: what to sign, the same code as the agency was given, PIN2's key.
    let pending = d.call(http, &a.issuer, &a.origin, "/smart-id/device/pending", 2 * n, None).await?;
    let tbs = STANDARD.decode(pending["to_be_signed"].as_str().ok_or_else(|| format!("not a signing request: {pending}"))?).map_err(|e| e.to_string())?;
    let code = idp::smart_id::verification_code(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &tbs).as_ref());
    if Some(code.as_str()) != opened["verification_code"].as_str() {
        return Err(format!("the device's code {code} is not the agency's {}", opened["verification_code"]));
    }
    let signature = d.store.sign(&d.key, SignatureAlgorithm::Es256, &tbs).map_err(|e| e.to_string())?;
    let answer = json!({"session": pending["session"], "outcome": "approve", "signature": STANDARD.encode(signature)});
    let answered = d.call(http, &a.issuer, &a.origin, "/smart-id/device/sign", 2 * n + 1, Some(&answer)).await?;
    if answered["state"] != "signed" {
        return Err(format!("answer: {answered}"));
    }

    // The agency: the status, then the signed file.
    let url = format!("{}/api/esign/v1/signing-requests/{id}", a.origin);
    let status: Value = http.get(&url).bearer_auth(&a.token).send().await.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())?;
    if status["status"] != "signed" {
        return Err(format!("status: {status}"));
    }
    let r = http.get(format!("{url}/document")).bearer_auth(&a.token).send().await.map_err(|e| e.to_string())?;
    let ok = r.status().is_success();
    let file = r.bytes().await.map_err(|e| e.to_string())?;
    if ok && file.len() > 1000 { Ok(()) } else { Err(format!("signed file: {} bytes", file.len())) }
}

/// Runs `op` on every device, one worker each, until `seconds` have passed, and prints the
/// report; `op` gets the device and a number unique to the operation.
async fn timed<F, Fut>(devices: &[Arc<Device>], seconds: u64, op: F)
where
    F: Fn(Arc<Device>, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let op = Arc::new(op);
    let tally = Arc::new(Tally::default());
    let timed = Timed::start();
    let deadline = timed.started + Duration::from_secs(seconds);
    let mut workers = Vec::new();
    for (i, d) in devices.iter().enumerate() {
        let (op, d, tally) = (Arc::clone(&op), Arc::clone(d), Arc::clone(&tally));
        workers.push(tokio::spawn(async move {
            let mut n = 1_000_000 * (i as u64 + 1);
            while Instant::now() < deadline {
                n += 1;
                tally.record(op(Arc::clone(&d), n).await);
            }
        }));
    }
    for w in workers {
        w.await.expect("worker");
    }
    timed.report(&tally);
}

/// Microseconds of CPU per signature verification and signature, P-256 and P-384 (what the
/// provider does
/// per login: it verifies the device's proofs, the certificate's and the OCSP answer's
/// signatures and the signature over the challenge, and signs the id_token).
fn verify_cost() {
    use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair};
    for (name, signing, verifying) in [
        ("P-256", &signature::ECDSA_P256_SHA256_ASN1_SIGNING, &signature::ECDSA_P256_SHA256_ASN1),
        ("P-384", &signature::ECDSA_P384_SHA384_ASN1_SIGNING, &signature::ECDSA_P384_SHA384_ASN1),
    ] {
        let key = EcdsaKeyPair::generate(signing).expect("key");
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let sig = key.sign(&rng, b"message").expect("sign");
        let public = signature::UnparsedPublicKey::new(verifying, key.public_key().as_ref().to_vec());
        let n = 20_000;
        let start = Instant::now();
        for _ in 0..n {
            public.verify(b"message", sig.as_ref()).expect("verify");
        }
        let verify = start.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        let start = Instant::now();
        for _ in 0..n {
            key.sign(&rng, b"message").expect("sign");
        }
        println!("{name}: verify {verify:.1} µs, sign {:.1} µs", start.elapsed().as_secs_f64() * 1e6 / f64::from(n));
    }
}

fn pem_certificate(path: &Path) -> x509_cert::Certificate {
    use der::Decode;
    let pem = std::fs::read_to_string(path).expect("certificate");
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    x509_cert::Certificate::from_der(&STANDARD.decode(b64).expect("base64")).expect("certificate")
}

/// OCSP answers per second for one device's certificate, and the server's CPU per answer.
async fn ocsp(issuer: &str, device: &Path, seconds: u64) {
    use idp::smart_id::RevocationSource;
    let certificate = Arc::new(pem_certificate(&device.join("authentication.pem")));
    let ca = Arc::new(pem_certificate(&device.join("authentication-ca.pem")));
    let http = idp::backchannel::http_client().expect("client");
    let client = Arc::new(idp::smart_id::OcspClient::new(http, Some(format!("{}/ocsp", issuer.trim_end_matches('/')))));
    let tally = Arc::new(Tally::default());
    let timed = Timed::start();
    let deadline = timed.started + Duration::from_secs(seconds);
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (client, certificate, ca, tally) = (Arc::clone(&client), Arc::clone(&certificate), Arc::clone(&ca), Arc::clone(&tally));
        workers.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                tally.record(match client.status(&certificate, &ca, idp::unix_now()).await {
                    Ok(idp::smart_id::Status::Good) => Ok(()),
                    other => Err(format!("{other:?}")),
                });
            }
        }));
    }
    for w in workers {
        w.await.expect("worker");
    }
    timed.report(&tally);
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("verify-cost") {
        verify_cost();
        return;
    }
    if let [_, mode, issuer, device, seconds] = &args[..]
        && mode == "ocsp"
    {
        ocsp(issuer, Path::new(device), seconds.parse().expect("seconds")).await;
        return;
    }
    if let [_, mode, issuer, client, secret, devices, pin, document, seconds] = &args[..]
        && mode == "sign"
    {
        let devices = open_devices(devices, Which::Signature, pin);
        let http = http_client(devices.len());
        let issuer = issuer.trim_end_matches('/').to_owned();
        let origin = url::Url::parse(&issuer).expect("issuer").origin().ascii_serialization();
        let name = Path::new(document).file_name().expect("document name").to_string_lossy().into_owned();
        let document = std::fs::read(document).expect("document");
        let request = json!({"document": {"name": name}, "display_text": "Load test"});
        let token = agency_token(&http, &origin, client, secret).await;
        let agency = Arc::new(Agency { issuer, origin, token, request, document });
        // Each citizen signs once untimed (caches, connections).
        for (i, d) in devices.iter().enumerate() {
            sign(&http, &agency, d, i as u64).await.unwrap_or_else(|e| panic!("warm-up signature of {}: {e}", d.national_id));
        }
        timed(&devices, seconds.parse().expect("seconds"), move |d, n| {
            let (http, agency) = (http.clone(), Arc::clone(&agency));
            async move { sign(&http, &agency, &d, n).await }
        })
        .await;
        return;
    }
    let [_, issuer, client, secret, redirect_uri, devices, pin, seconds] = &args[..] else {
        eprintln!(
            "usage: smart_id_load ISSUER CLIENT SECRET REDIRECT_URI DEVICES_DIR PIN1 SECONDS | sign ISSUER CLIENT SECRET DEVICES_DIR PIN2 DOCUMENT SECONDS | verify-cost | ocsp ISSUER DEVICE_DIR SECONDS"
        );
        std::process::exit(2);
    };
    let devices = open_devices(devices, Which::Authentication, pin);
    let http = http_client(devices.len());
    let issuer = issuer.trim_end_matches('/').to_owned();
    let origin = url::Url::parse(&issuer).expect("issuer").origin().ascii_serialization();
    let target = Arc::new(Target { issuer, origin, client: client.clone(), secret: secret.clone(), redirect_uri: redirect_uri.clone() });
    // Each citizen logs in once untimed (consent, caches).
    for (i, d) in devices.iter().enumerate() {
        login(&http, &target, d, i as u64).await.unwrap_or_else(|e| panic!("warm-up login of {}: {e}", d.national_id));
    }
    timed(&devices, seconds.parse().expect("seconds"), move |d, n| {
        let (http, t) = (http.clone(), Arc::clone(&target));
        async move { login(&http, &t, &d, n).await }
    })
    .await;
}

/// The devices of DEVICES_DIR, in name order, each with the key `which` unlocked by `pin`.
fn open_devices(dir: &str, which: Which, pin: &str) -> Vec<Arc<Device>> {
    let mut dirs: Vec<_> = std::fs::read_dir(dir).expect("devices").map(|e| e.expect("entry").path()).collect();
    dirs.sort();
    dirs.iter().map(|d| Arc::new(open_device(d, which, pin))).collect()
}

fn http_client(workers: usize) -> reqwest::Client {
    idp::backchannel::client_builder().expect("client").timeout(Duration::from_secs(30)).pool_max_idle_per_host(2 * workers).build().expect("client")
}
