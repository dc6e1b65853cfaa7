//! `hawiya demo`'s e-services: three relying parties served by the same process under
//! `/demo/…` — a civil-status certificate service (level low), a land registry (level
//! substantial) and a notary (level high, smart-ID with a hardware key) — each using the provider over HTTP like any agency would: authorization
//! code flow with PKCE and a client secret, id_token checked against the JWKS, RP-initiated
//! and back-channel logout. The notary also acts as an agency of the signing API: it asks a
//! logged-in citizen to sign a power of attorney it generates (client credentials, `esign`).
//! Demo only: their secrets sit in the data directory.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use hsm_shim::jose::UnverifiedJws;
use idp::clients::{AuthMethod, Client, Registration};
use idp::credentials::{TotpSecret, base32};
use idp::http::cookie;
use idp::pages::escape;
use idp::provider::{random_token, sha256};
use idp::unix_now as now;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use store::{ClientRecord, DurableStore};

use crate::CommandResult;
use crate::config::{CeremonyFile, DataDir};
use crate::registration::{self, BilingualName, NewCitizen, RegisterError};

const CLIENTS_FILE: &str = "demo-clients.json";

/// A demo citizen.
struct DemoCitizen {
    national_id: &'static str,
    password: &'static str,
    given: (&'static str, &'static str),
    family: (&'static str, &'static str),
    birthdate: &'static str,
    totp: bool,
}

const CITIZENS: [DemoCitizen; 2] = [
    DemoCitizen {
        national_id: "9861234567",
        password: "demo-password-1",
        given: ("ليلى", "Layla"),
        family: ("حداد", "Haddad"),
        birthdate: "1990-04-01",
        totp: true,
    },
    DemoCitizen {
        national_id: "9861234568",
        password: "demo-password-2",
        given: ("سامي", "Sami"),
        family: ("خليل", "Khalil"),
        birthdate: "1985-11-23",
        totp: false,
    },
];

/// The demo services: client id and scopes.
const SERVICES: [(&str, &str); 3] =
    [("civil-status", "openid profile"), ("land-registry", "openid profile national_id"), ("notary", "openid profile national_id")];

/// The service that asks its citizens to sign through the agency signing API (its policy
/// grants `esign`).
const SIGNING_SERVICE: &str = "notary";

/// The file name of the power of attorney the notary asks the citizen to sign.
const POWER_OF_ATTORNEY: &str = "power-of-attorney.pdf";

#[derive(Serialize, Deserialize)]
struct ClientSecrets(HashMap<String, String>);

/// `hawiya demo`: on first start creates the data directory (the default ceremony, its
/// publication base and issuer the listen address), the demo citizens and e-services; then
/// serves everything with the e-services, and ends its start-up with one summary: what to
/// open, who to log in as, and the smart-ID steps.
pub async fn run(data: &Path, listen: SocketAddr, metrics: Option<SocketAddr>) -> CommandResult {
    if DataDir::exists(data) {
        println!("Reusing {}", data.display());
    } else {
        println!("First start: creating {} (SQLite, soft key store, the default CA hierarchy)…", data.display());
        DataDir::create_demo_secret(data)?;
        let mut ceremony = CeremonyFile::load(None)?;
        ceremony.ceremony.base_url = format!("http://{listen}");
        crate::ca_cmd::init(data, ceremony).await?;
    }
    let dir = DataDir::open(data)?;
    let (durable, policies) = (dir.store().await?, dir.policies()?);
    let publication = durable.ceremony().await?.map(|c| c.base_url).ok_or("the data directory has no CA hierarchy")?;
    let issuer = dir.issuer(None, &publication)?;
    if !seeded(data) {
        seed(data, issuer.as_str(), durable.as_ref(), &policies).await?;
    }
    let opened = crate::server::open(&dir, Some(issuer.clone())).await?;
    let app = opened.app().merge(router(data, issuer.as_str(), policies)?);
    if let Some(address) = metrics {
        crate::server::serve_metrics(&opened, address).await?;
    }
    let listener = crate::server::listen(listen).await?;
    println!("{}", summary(data, issuer.as_str(), durable.as_ref(), listen, metrics).await?);
    crate::server::run(listener, app, &opened.provider).await
}

/// The citizens, registered through the same types as `hawiya citizen add`.
fn citizen(c: &DemoCitizen) -> Result<NewCitizen, Box<dyn std::error::Error>> {
    Ok(NewCitizen {
        national_id: c.national_id.parse()?,
        given_name: BilingualName { ar: c.given.0.parse()?, en: c.given.1.parse()? },
        family_name: BilingualName { ar: c.family.0.parse()?, en: c.family.1.parse()? },
        birthdate: Some(c.birthdate.parse()?),
        email: None,
        phone_number: None,
        address: None,
    })
}

/// First start: registers the demo citizens and services.
pub async fn seed(data: &Path, base: &str, durable: &dyn DurableStore, policies: &policies::Policies) -> Result<(), Box<dyn std::error::Error>> {
    for c in &CITIZENS {
        let totp = if c.totp { Some(TotpSecret::generate()?) } else { None };
        let registered = registration::register(durable, &citizen(c)?, registration::hash_password(c.password.into())?, totp.as_ref(), "demo").await;
        // A start that stopped half-way seeded some already: keep what is there.
        match registered {
            Ok(()) | Err(RegisterError::Duplicate(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let now = now();
    let mut secrets = HashMap::new();
    for (id, _) in SERVICES {
        let (secret, hash) = idp::clients::new_secret()?;
        let registration = Registration {
            redirect_uris: vec![format!("{base}/demo/{id}/callback")],
            post_logout_redirect_uris: vec![format!("{base}/demo/{id}/")],
            backchannel_logout_uri: Some(format!("{base}/demo/{id}/backchannel")),
            token_endpoint_auth_method: AuthMethod::ClientSecretBasic,
            client_secret_sha256: Some(hash),
            jwks: None,
            jwks_uri: None,
            sector_identifier_uri: None,
            request_uris: Vec::new(),
            id_token_signed_response_alg: "ES256".into(),
            name: None,
        };
        Client::new(id, registration.clone(), policies)?;
        // The demo's own services: a half-done earlier start may have left one without its
        // secret on disk, so it is registered anew.
        durable.remove_client(id).await?;
        durable.insert_client(&ClientRecord { client_id: id.into(), registration: serde_json::to_string(&registration)?, created_at: now }).await?;
        secrets.insert(id.to_owned(), secret);
    }
    write_private(&data.join(CLIENTS_FILE), &serde_json::to_vec(&ClientSecrets(secrets))?)
}

/// How this binary was started, as a command to copy: relative to the working directory when
/// it is below it (`target/release/hawiya` after `cargo run --release`).
fn program() -> String {
    let started = std::env::args_os().next().unwrap_or_else(|| "hawiya".into());
    let cwd = std::env::current_dir().unwrap_or_default();
    let started = Path::new(&started);
    started.strip_prefix(&cwd).unwrap_or(started).display().to_string()
}

/// The end of the demo's start-up: what to open, who to log in as (their one-time codes read
/// from the store, so a restart shows them too), and the smart-ID steps.
async fn summary(
    data: &Path,
    issuer: &str,
    durable: &dyn DurableStore,
    listen: SocketAddr,
    metrics: Option<SocketAddr>,
) -> Result<String, Box<dyn std::error::Error>> {
    let hawiya = program();
    let d = data.display();
    let mut text = format!("\nHawiya demo — open {issuer}/demo/ and log in to one service, open another, log out of both.\n\nDemo citizens:\n");
    for c in &CITIZENS {
        text.push_str(&format!("  {:<14} national id {}   password {}\n", format!("{} {}", c.given.1, c.family.1), c.national_id, c.password));
        let totp = durable.citizen(c.national_id).await?.and_then(|r| r.totp_secret).map(|hex| hex::decode(hex).map(TotpSecret::from_bytes));
        match totp {
            Some(secret) => {
                let secret = secret.map_err(|e| format!("{}'s stored one-time-code secret: {e}", c.national_id))??;
                text.push_str(&format!(
                    "    one-time codes (the land registry asks): oathtool --totp -b {}\n      or scan {}\n",
                    base32(secret.expose()),
                    secret.otpauth_uri("Hawiya demo", c.national_id)
                ));
            }
            None => text.push_str("    no one-time codes: beyond level low, log in with a smart-ID (below)\n"),
        }
    }
    text.push_str(&format!(
        "
Smart-ID for the notary (level high needs the keys on a smart card; SoftHSM2 stands in for one):
  1. softhsm2-util --init-token --free --label smart-id-pin1 --so-pin 87654321 --pin 1234
     softhsm2-util --init-token --free --label smart-id-pin2 --so-pin 87654321 --pin 12345
  2. {hawiya} citizen enroll --data {d} --national-id 9861234568 --custody hardware   # prints the activation code
  3. {hawiya} device activate --dir demo-device --server {issuer} --code <code> --pkcs11-module /usr/lib/softhsm/libsofthsm2.so   # PIN1 1234, PIN2 12345
  4. open {issuer}/demo/notary/, choose smart-ID, national id 9861234568, then:
     {hawiya} device approve --dir demo-device --code <the code the page shows>
  5. on the notary's page, \"Sign the power of attorney\": the notary asks for your signature through the
     signing API; {hawiya} device approve --dir demo-device --code <the code the page shows>   # PIN2 12345
  (--custody software without --pkcs11-module makes a phone-style device: it reaches substantial, enough for the land registry.)

CA certificates, CRLs, OCSP and OpenID Connect discovery: {issuer}/
"
    ));
    if let Some(address) = metrics {
        text.push_str(&format!("Metrics (Prometheus): http://{address}/metrics\n"));
    }
    text.push_str(&format!("Hawiya is serving on http://{listen}; logs show warnings only (RUST_LOG=info for more). Ctrl-C stops the demo.\n"));
    Ok(text)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    std::io::Write::write_all(&mut f, bytes)?;
    Ok(())
}

/// Whether `data` holds the demo services.
pub fn seeded(data: &Path) -> bool {
    data.join(CLIENTS_FILE).exists()
}

struct Pending {
    nonce: String,
    verifier: String,
}

struct RpSession {
    claims: Value,
    id_token: String,
    /// The pairwise subject of the id_token: how the service names the citizen to the
    /// signing API.
    sub: String,
    /// The signing request the service opened for this citizen, if any.
    signing: Option<SigningRequest>,
}

/// A signing request opened through the agency signing API.
#[derive(Clone)]
struct SigningRequest {
    /// Its id at the provider.
    id: String,
    /// The code the citizen's device shows too.
    verification_code: String,
}

/// One demo service's state.
struct Rp {
    id: String,
    scope: String,
    secret: String,
    pending: Mutex<HashMap<String, Pending>>,
    sessions: Mutex<HashMap<String, RpSession>>,
}

struct Demo {
    issuer: String,
    http: reqwest::Client,
    rps: HashMap<String, Rp>,
    policies: Arc<policies::Policies>,
}

/// The demo services' routes.
pub fn router(data: &Path, issuer: &str, policies: Arc<policies::Policies>) -> Result<Router, Box<dyn std::error::Error>> {
    let file = data.join(CLIENTS_FILE);
    let secrets: ClientSecrets = serde_json::from_slice(&std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?)?;
    let mut rps = HashMap::new();
    for (id, scope) in SERVICES {
        let secret = secrets.0.get(id).ok_or_else(|| format!("{}: no secret for {id}", file.display()))?.clone();
        let rp = Rp { id: id.into(), scope: scope.into(), secret, pending: Mutex::default(), sessions: Mutex::default() };
        rps.insert(id.to_owned(), rp);
    }
    let demo = Arc::new(Demo { issuer: issuer.to_owned(), http: idp::backchannel::http_client()?, rps, policies });
    Ok(Router::new()
        .route("/demo/", get(index))
        .route("/demo/{service}/", get(home))
        .route("/demo/{service}/login", get(login))
        .route("/demo/{service}/callback", get(callback))
        .route("/demo/{service}/logout", post(logout))
        .route("/demo/{service}/backchannel", post(backchannel))
        .route("/demo/{service}/sign", post(sign_start).get(sign_status))
        .route("/demo/{service}/sign/document", get(sign_document))
        .with_state(demo))
}

fn cookie_name(rp: &Rp) -> String {
    format!("__Host-demo-{}", rp.id)
}

fn page(title: &str, body: &str) -> Response {
    let html = format!(
        r#"<!DOCTYPE html>
<html lang="ar" dir="rtl">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><link rel="stylesheet" href="/assets/hawiya.css"></head>
<body><header><span class="brand">خدمة تجريبية — Demo e-service</span><a href="/demo/">الخدمات · Services</a></header>
<main>{body}</main></body></html>
"#,
        title = escape(title)
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], html).into_response()
}

fn redirect(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(l) => (StatusCode::SEE_OTHER, [(header::LOCATION, l)]).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn service_name(demo: &Demo, id: &str) -> (String, String) {
    demo.policies.service(id).map(|s| (s.name.ar.clone(), s.name.en.clone())).unwrap_or_else(|| (id.to_owned(), id.to_owned()))
}

async fn index(State(demo): State<Arc<Demo>>) -> Response {
    let mut items = String::new();
    for (id, _) in SERVICES {
        let (ar, en) = service_name(&demo, id);
        items.push_str(&format!(r#"<li><a href="/demo/{id}/">{} · <span lang="en" dir="ltr">{}</span></a></li>"#, escape(&ar), escape(&en)));
    }
    page("الخدمات · Services", &format!("<h1>الخدمات الحكومية · <span lang=\"en\" dir=\"ltr\">Government services</span></h1><ul>{items}</ul>"))
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no such demo service\n").into_response()
}

async fn home(State(demo): State<Arc<Demo>>, UrlPath(service): UrlPath<String>, headers: HeaderMap) -> Response {
    let Some(rp) = demo.rps.get(&service) else { return not_found() };
    let (ar, en) = service_name(&demo, &rp.id);
    let title = format!("{ar} · {en}");
    let session = cookie(&headers, &cookie_name(rp)).and_then(|c| rp.sessions.lock().ok()?.get(c).map(|s| s.claims.clone()));
    let Some(claims) = session else {
        let body = format!(
            r#"<h1>{t}</h1><p>سجّل الدخول بهويتك الرقمية للمتابعة · <span lang="en" dir="ltr">Log in with your digital identity to continue.</span></p>
<p><a class="login" href="/demo/{id}/login">الدخول عبر هوية · <span lang="en" dir="ltr">Log in with Hawiya</span></a></p>"#,
            t = escape(&title),
            id = rp.id
        );
        return page(&title, &body);
    };
    let mut rows = String::new();
    if let Value::Object(map) = &claims {
        for (k, v) in map {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            rows.push_str(&format!("<dt>{}</dt><dd>{}</dd>", escape(k), escape(&v)));
        }
    }
    let name = claims.get("name#ar").or_else(|| claims.get("name")).and_then(Value::as_str).unwrap_or_default();
    let sign = if rp.id == SIGNING_SERVICE {
        format!(
            r#"<form method="post" action="/demo/{id}/sign"><button type="submit" id="sign-power-of-attorney">توقيع الوكالة · <span lang="en" dir="ltr">Sign the power of attorney</span></button></form>"#,
            id = rp.id
        )
    } else {
        String::new()
    };
    let body = format!(
        r#"<h1>{t}</h1><p class="welcome">مرحباً {name} · <span lang="en" dir="ltr">Welcome, {name_en}</span></p>
<dl class="request">{rows}</dl>
{sign}
<p><a href="{issuer}/account">بياناتي المشاركة مع الخدمات · <span lang="en" dir="ltr">The data I share with services</span></a></p>
<form method="post" action="/demo/{id}/logout"><button type="submit">تسجيل الخروج من جميع الخدمات · <span lang="en" dir="ltr">Log out everywhere</span></button></form>"#,
        issuer = escape(&demo.issuer),
        t = escape(&title),
        name = escape(name),
        name_en = escape(claims.get("name#en").and_then(Value::as_str).unwrap_or_default()),
        id = rp.id
    );
    page(&title, &body)
}

async fn login(State(demo): State<Arc<Demo>>, UrlPath(service): UrlPath<String>, headers: HeaderMap) -> Response {
    let Some(rp) = demo.rps.get(&service) else { return not_found() };
    let (Ok(state), Ok(nonce), Ok(verifier)) = (random_token(), random_token(), random_token()) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let challenge = B64.encode(sha256(verifier.as_bytes()));
    if let Ok(mut p) = rp.pending.lock() {
        p.insert(state.clone(), Pending { nonce: nonce.clone(), verifier });
    }
    // The browser's language goes on to the provider.
    let lang = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).and_then(idp::citizens::Lang::first_of).unwrap_or(idp::citizens::Lang::Ar);
    let mut url = format!("{}/authorize", demo.issuer);
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &rp.id)
        .append_pair("redirect_uri", &format!("{}/demo/{}/callback", demo.issuer, rp.id))
        .append_pair("response_type", "code")
        .append_pair("scope", &rp.scope)
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("ui_locales", lang.tag())
        .append_pair("claims_locales", "ar en")
        .finish();
    url.push('?');
    url.push_str(&query);
    let mut r = redirect(&url);
    // The state is bound to this browser too.
    if let Ok(v) = HeaderValue::from_str(&format!("__Host-demo-{}-state={state}; Path=/; Secure; HttpOnly; SameSite=Lax", rp.id)) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

#[derive(Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn callback(State(demo): State<Arc<Demo>>, UrlPath(service): UrlPath<String>, headers: HeaderMap, Query(q): Query<Callback>) -> Response {
    let Some(rp) = demo.rps.get(&service) else { return not_found() };
    if let Some(e) = q.error {
        let body = format!(
            "<h1>تعذّر تسجيل الدخول · Login failed</h1><p class=\"error\">{}: {}</p><p><a href=\"/demo/{}/\">←</a></p>",
            escape(&e),
            escape(&q.error_description.unwrap_or_default()),
            rp.id
        );
        return page("Login failed", &body);
    }
    let state = q.state.unwrap_or_default();
    let bound = cookie(&headers, &format!("__Host-demo-{}-state", rp.id)) == Some(state.as_str());
    let pending = rp.pending.lock().ok().and_then(|mut p| p.remove(&state));
    let (Some(pending), true, Some(code)) = (pending, bound, q.code) else {
        return page("Login failed", "<p class=\"error\">unknown or replayed state</p>");
    };
    match finish_login(&demo, rp, &code, &pending).await {
        Ok(session) => {
            let Ok(id) = random_token() else { return StatusCode::INTERNAL_SERVER_ERROR.into_response() };
            if let Ok(mut s) = rp.sessions.lock() {
                s.insert(id.clone(), session);
            }
            let mut r = redirect(&format!("/demo/{}/", rp.id));
            if let Ok(v) = HeaderValue::from_str(&format!("{}={id}; Path=/; Secure; HttpOnly; SameSite=Lax", cookie_name(rp))) {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
            r
        }
        Err(e) => {
            tracing::warn!(service = rp.id, error = %e, "demo login failed");
            page("Login failed", &format!("<p class=\"error\">{}</p>", escape(&e)))
        }
    }
}

/// The relying party's side of the code flow: exchange, verify the id_token, read userinfo.
async fn finish_login(demo: &Demo, rp: &Rp, code: &str, pending: &Pending) -> Result<RpSession, String> {
    let redirect_uri = format!("{}/demo/{}/callback", demo.issuer, rp.id);
    let tokens: Value = demo
        .http
        .post(format!("{}/token", demo.issuer))
        .basic_auth(&rp.id, Some(&rp.secret))
        .form(&[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", &redirect_uri), ("code_verifier", &pending.verifier)])
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let id_token = tokens.get("id_token").and_then(Value::as_str).ok_or_else(|| format!("no id_token: {tokens}"))?.to_owned();
    let claims = verify(demo, &id_token).await?;
    if claims.get("aud").and_then(Value::as_str) != Some(&rp.id) || claims.get("nonce").and_then(Value::as_str) != Some(&pending.nonce) {
        return Err("id_token for another client or another request".into());
    }
    let access = tokens.get("access_token").and_then(Value::as_str).unwrap_or_default();
    let mut info: Value = demo
        .http
        .get(format!("{}/userinfo", demo.issuer))
        .bearer_auth(access)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    for k in ["acr", "amr", "sid", "auth_time"] {
        if let (Value::Object(map), Some(v)) = (&mut info, claims.get(k)) {
            map.insert(k.into(), v.clone());
        }
    }
    let sub = claims.get("sub").and_then(Value::as_str).ok_or("the id_token has no sub")?.to_owned();
    Ok(RpSession { claims: info, id_token, sub, signing: None })
}

/// Verifies a JWT of the provider against its JWKS (fetched over HTTP), with its issuer and
/// expiry.
async fn verify(demo: &Demo, jwt: &str) -> Result<Value, String> {
    let jws = UnverifiedJws::parse(jwt).map_err(|e| e.to_string())?;
    let jwks: Value = demo.http.get(format!("{}/jwks", demo.issuer)).send().await.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())?;
    let keys = jwks.get("keys").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    if !idp::clients::verifies_with(&jws, keys) {
        return Err("the signature does not verify with the provider's JWKS".into());
    }
    let claims: Value = serde_json::from_slice(&jws.payload).map_err(|e| e.to_string())?;
    if claims.get("iss").and_then(Value::as_str) != Some(&demo.issuer) || claims.get("exp").and_then(Value::as_i64).is_none_or(|e| e < now()) {
        return Err("wrong issuer or expired".into());
    }
    Ok(claims)
}

async fn logout(State(demo): State<Arc<Demo>>, UrlPath(service): UrlPath<String>, headers: HeaderMap) -> Response {
    let Some(rp) = demo.rps.get(&service) else { return not_found() };
    let session = cookie(&headers, &cookie_name(rp)).and_then(|c| rp.sessions.lock().ok()?.remove(c));
    let Some(session) = session else { return redirect(&format!("/demo/{}/", rp.id)) };
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("id_token_hint", &session.id_token)
        .append_pair("post_logout_redirect_uri", &format!("{}/demo/{}/", demo.issuer, rp.id))
        .append_pair("state", "logged-out")
        .finish();
    redirect(&format!("{}/logout?{query}", demo.issuer))
}

#[derive(Deserialize)]
struct LogoutToken {
    logout_token: String,
}

/// Back-channel logout: the provider says a session ended; every local session of it goes.
async fn backchannel(State(demo): State<Arc<Demo>>, UrlPath(service): UrlPath<String>, axum::Form(form): axum::Form<LogoutToken>) -> Response {
    let Some(rp) = demo.rps.get(&service) else { return not_found() };
    let claims = match verify(&demo, &form.logout_token).await {
        Ok(c) if c.get("aud").and_then(Value::as_str) == Some(&rp.id) && c.get("events").is_some() => c,
        _ => return (StatusCode::BAD_REQUEST, "invalid logout token\n").into_response(),
    };
    let sid = claims.get("sid").cloned();
    if let Ok(mut sessions) = rp.sessions.lock() {
        sessions.retain(|_, s| s.claims.get("sid") != sid.as_ref());
    }
    tracing::info!(service = rp.id, "demo service ended its sessions on back-channel logout");
    StatusCode::OK.into_response()
}

/// The power of attorney the notary asks `name` to sign: a one-page PDF, written by hand.
/// Helvetica has no Arabic glyphs, so the text is Latin; what is not printable ASCII becomes
/// `?`.
fn power_of_attorney_pdf(name: &str) -> Vec<u8> {
    let latin: String = name.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect();
    let escaped = latin.replace('\\', "\\\\").replace('(', "\\(").replace(')', "\\)");
    let content = format!(
        "BT /F1 18 Tf 50 760 Td (Power of attorney) Tj ET\n\
         BT /F1 12 Tf 50 720 Td (I, {escaped}, appoint the bearer to act for me before the land registry) Tj ET\n\
         BT /F1 12 Tf 50 700 Td (in the sale of parcel 42, for one year from the date of my signature.) Tj ET\n\
         BT /F1 10 Tf 50 660 Td (Notary public - Hawiya demo. Signed electronically with smart-ID.) Tj ET"
    );
    let objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>".to_vec(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec(),
        [format!("<< /Length {} >>\nstream\n", content.len()).as_bytes(), content.as_bytes(), b"\nendstream"].concat(),
    ];
    esign::pdf::write_document(&objects)
}

/// An access token of `rp` for the signing API: client credentials, scope `esign`.
async fn agency_token(demo: &Demo, rp: &Rp) -> Result<String, String> {
    let r = demo
        .http
        .post(format!("{}/token", demo.issuer))
        .basic_auth(&rp.id, Some(&rp.secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "esign")])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body: Value = r.json().await.map_err(|e| e.to_string())?;
    body.get("access_token").and_then(Value::as_str).map(str::to_owned).ok_or_else(|| format!("no agency token: {body}"))
}

/// The session of this browser at `rp`: its cookie and a copy of what the service needs.
fn rp_session(rp: &Rp, headers: &HeaderMap) -> Option<(String, Value, String, Option<SigningRequest>)> {
    let id = cookie(headers, &cookie_name(rp))?.to_owned();
    let sessions = rp.sessions.lock().ok()?;
    let s = sessions.get(&id)?;
    Some((id, s.claims.clone(), s.sub.clone(), s.signing.clone()))
}

fn signing_service<'a>(demo: &'a Demo, service: &str) -> Option<&'a Rp> {
    demo.rps.get(service).filter(|rp| rp.id == SIGNING_SERVICE)
}

fn signing_failed(rp: &Rp, why: &str) -> Response {
    let body = format!(
        r#"<h1>تعذّر التوقيع · <span lang="en" dir="ltr">Signing failed</span></h1><p class="error" id="signing-error">{}</p><p><a href="/demo/{}/">←</a></p>"#,
        escape(why),
        rp.id
    );
    page("Signing failed", &body)
}

/// `POST /demo/notary/sign`: the notary writes the power of attorney for the logged-in
/// citizen and asks the provider's signing API for the citizen's signature, by the
/// id_token's pairwise sub.
async fn sign_start(State(demo): State<Arc<Demo>>, UrlPath(service): UrlPath<String>, headers: HeaderMap) -> Response {
    let Some(rp) = signing_service(&demo, &service) else { return not_found() };
    let Some((session, claims, sub, _)) = rp_session(rp, &headers) else { return redirect(&format!("/demo/{}/", rp.id)) };
    let name = claims.get("name#en").or_else(|| claims.get("name")).and_then(Value::as_str).unwrap_or_default().to_owned();
    let pdf = power_of_attorney_pdf(&name);
    let request = serde_json::json!({
        "signer": {"sub": sub},
        "document": {"name": POWER_OF_ATTORNEY, "content": STANDARD.encode(&pdf)},
        "display_text": "Power of attorney for the sale of parcel 42",
    });
    let opened = async {
        let token = agency_token(&demo, rp).await?;
        let r = demo
            .http
            .post(format!("{}/api/esign/v1/signing-requests", demo.issuer))
            .bearer_auth(token)
            .json(&request)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status();
        let body: Value = r.json().await.map_err(|e| e.to_string())?;
        if status != StatusCode::CREATED {
            return Err(format!("{status}: {}", body.get("error_description").and_then(Value::as_str).unwrap_or_default()));
        }
        let field = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned).ok_or_else(|| format!("no {k} in {body}"));
        Ok::<_, String>(SigningRequest { id: field("id")?, verification_code: field("verification_code")? })
    }
    .await;
    match opened {
        Ok(signing) => {
            if let Ok(mut s) = rp.sessions.lock()
                && let Some(s) = s.get_mut(&session)
            {
                s.signing = Some(signing);
            }
            redirect(&format!("/demo/{}/sign", rp.id))
        }
        Err(e) => {
            tracing::warn!(service = rp.id, error = %e, "demo signing request refused");
            signing_failed(rp, &e)
        }
    }
}

/// `GET /demo/notary/sign`: where the request stands. Waiting: the verification code, and
/// the page refreshes itself; signed: the download link.
async fn sign_status(State(demo): State<Arc<Demo>>, UrlPath(service): UrlPath<String>, headers: HeaderMap) -> Response {
    let Some(rp) = signing_service(&demo, &service) else { return not_found() };
    let Some((_, _, _, Some(signing))) = rp_session(rp, &headers) else { return redirect(&format!("/demo/{}/", rp.id)) };
    let status = async {
        let token = agency_token(&demo, rp).await?;
        let r = demo
            .http
            .get(format!("{}/api/esign/v1/signing-requests/{}", demo.issuer, signing.id))
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body: Value = r.json().await.map_err(|e| e.to_string())?;
        body.get("status").and_then(Value::as_str).map(str::to_owned).ok_or_else(|| format!("no status: {body}"))
    }
    .await;
    let title = "توقيع الوكالة · Power of attorney";
    match status.as_deref() {
        Ok("waiting") => {
            let body = format!(
                r#"<h1>توقيع الوكالة · <span lang="en" dir="ltr">Sign the power of attorney</span></h1>
<p>افتح تطبيق هوية على جهازك ووقّع الوكالة بالرقم السري الثاني إذا ظهر الرمز نفسه · <span lang="en" dir="ltr">Open Hawiya on your device and sign the power of attorney with PIN2 if it shows the same code.</span></p>
<p class="code" id="verification-code" dir="ltr">{}</p>
<p>بانتظار توقيعك… · <span lang="en" dir="ltr">Waiting for your signature…</span></p>"#,
                escape(&signing.verification_code)
            );
            let mut r = page(title, &body);
            r.headers_mut().insert(HeaderName::from_static("refresh"), HeaderValue::from_static("2"));
            r
        }
        Ok("signed") => {
            let body = format!(
                r#"<h1>تم توقيع الوكالة · <span lang="en" dir="ltr">The power of attorney is signed</span></h1>
<p><a id="download" href="/demo/{id}/sign/document" download="{POWER_OF_ATTORNEY}">تنزيل الوكالة الموقّعة · <span lang="en" dir="ltr">Download the signed power of attorney</span></a></p>
<p><a href="/demo/{id}/">←</a></p>"#,
                id = rp.id
            );
            page(title, &body)
        }
        Ok(other) => signing_failed(rp, &format!("لم يتم التوقيع · not signed: {other}")),
        Err(e) => {
            tracing::warn!(service = rp.id, error = %e, "demo signing status");
            signing_failed(rp, e)
        }
    }
}

/// `GET /demo/notary/sign/document`: the signed power of attorney, fetched from the provider.
async fn sign_document(State(demo): State<Arc<Demo>>, UrlPath(service): UrlPath<String>, headers: HeaderMap) -> Response {
    let Some(rp) = signing_service(&demo, &service) else { return not_found() };
    let Some((_, _, _, Some(signing))) = rp_session(rp, &headers) else { return redirect(&format!("/demo/{}/", rp.id)) };
    let document = async {
        let token = agency_token(&demo, rp).await?;
        let r = demo
            .http
            .get(format!("{}/api/esign/v1/signing-requests/{}/document", demo.issuer, signing.id))
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if r.status() != StatusCode::OK {
            return Err(format!("the provider answered {}", r.status()));
        }
        r.bytes().await.map_err(|e| e.to_string())
    }
    .await;
    match document {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("application/pdf")),
                (header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"power-of-attorney.pdf\"")),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(service = rp.id, error = %e, "demo signed document");
            signing_failed(rp, &e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_power_of_attorney_is_a_one_page_pdf_with_the_name_in_latin() {
        let pdf = power_of_attorney_pdf("Sami (Khalil) سامي");
        let text = String::from_utf8_lossy(&pdf);
        assert!(pdf.starts_with(b"%PDF-1.7\n") && pdf.ends_with(b"%%EOF\n"));
        assert!(text.contains("(I, Sami \\(Khalil\\) ????, appoint the bearer"), "{text}");
        assert!(text.contains("/Count 1"));
        // The cross-reference table points at each object (offsets in bytes: the header's
        // binary comment is not UTF-8).
        let xref: usize = text.rsplit("startxref\n").next().and_then(|t| t.lines().next()).and_then(|n| n.parse().ok()).expect("startxref");
        let table = std::str::from_utf8(&pdf[xref..]).expect("the table is ASCII");
        assert!(table.starts_with("xref\n0 6\n"), "{table}");
        for (i, line) in table.lines().skip(3).take(5).enumerate() {
            let offset: usize = line[..10].parse().expect("offset");
            assert!(pdf[offset..].starts_with(format!("{} 0 obj\n", i + 1).as_bytes()), "object {}", i + 1);
        }
    }
}
