//! The OpenID Connect provider end to end: the real `hawiya serve` over HTTP, driven like a
//! browser and a relying party would. Tests are named after the OpenID Foundation's
//! certification modules (`../shared/oidc-conformance.md`) they cover.
// Test code: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hawiya_e2e::web::{Browser, hidden, param};
use hawiya_e2e::{Db, Deployment, HOST, Keys, free_port, redis_tls_url, redis_url, unique_prefix};
use hsm_shim::jose::{UnverifiedJws, public_key_from_jwk};
use serde_json::{Value, json};

const CITIZEN: &str = "9861234567";
/// A citizen without a one-time-code authenticator.
const CITIZEN_NO_TOTP: &str = "9861234568";
const PASSWORD: &str = "correct horse battery 2026";
const CB: &str = "https://rp.example.jo/cb";
const BYE: &str = "https://rp.example.jo/bye";

/// A running provider with one citizen and three relying parties: `civil-status`
/// (client_secret_basic, level low), `post-rp` (client_secret_post) and `jwt-rp`
/// (private_key_jwt, ES256 id_tokens).
struct Provider {
    d: Deployment,
    issuer: String,
    secrets: HashMap<&'static str, String>,
    rp_key: hawiya_e2e::ClientKey,
    /// The first citizen's TOTP secret.
    totp: idp::credentials::TotpSecret,
}

fn secret_of(out: &str) -> String {
    out.lines().find_map(|l| l.strip_prefix("client_secret: ")).expect("secret printed").to_owned()
}

impl Provider {
    fn start() -> Self {
        Self::start_with(|d| d.serve())
    }

    /// Like [`Provider::start`], with `serve` deciding how the deployment is served.
    fn start_with(serve: impl FnOnce(&mut Deployment)) -> Self {
        Self::start_on(Keys::Soft, Db::Sqlite, serve)
    }

    /// Like [`Provider::start_with`], on the given key store and durable store.
    fn start_on(keys: Keys, db: Db, serve: impl FnOnce(&mut Deployment)) -> Self {
        let mut d = Deployment::new(keys, db);
        d.ok_with_input(
            &[
                "citizen",
                "add",
                "--national-id",
                CITIZEN,
                "--given-name-ar",
                "ليلى",
                "--family-name-ar",
                "حداد",
                "--given-name-en",
                "Layla",
                "--family-name-en",
                "Haddad",
                "--birthdate",
                "1990-04-01",
                "--email",
                "layla@example.jo",
                "--phone",
                "+962790000001",
                "--address",
                "شارع الملكة رانيا، عمّان",
            ],
            &format!("{PASSWORD}\n"),
        );
        d.add_password_citizen(CITIZEN_NO_TOTP, PASSWORD);
        let out = d.ok(&["citizen", "totp-enroll", "--national-id", CITIZEN]);
        let uri = out.lines().next().expect("the otpauth URI first");
        assert!(out.contains('▀') || out.contains('▄'), "a QR code to scan follows: {out}");
        let secret = param(uri, "secret").expect("otpauth secret");
        let totp = idp::credentials::TotpSecret::from_bytes(base32_decode(&secret)).expect("secret");
        let mut secrets = HashMap::new();
        let out =
            d.ok(&["client", "add", "--id", "civil-status", "--redirect-uri", CB, "--post-logout-redirect-uri", BYE, "--auth-method", "client_secret_basic"]);
        secrets.insert("civil-status", secret_of(&out));
        let out = d.ok(&["client", "add", "--id", "post-rp", "--redirect-uri", "https://post.example.jo/cb", "--auth-method", "client_secret_post"]);
        secrets.insert("post-rp", secret_of(&out));
        let rp_key = hawiya_e2e::ClientKey::generate("rp-1");
        std::fs::write(d.path("rp-jwks.json"), rp_key.jwks().to_string()).expect("jwks");
        d.ok(&[
            "client",
            "add",
            "--id",
            "jwt-rp",
            "--redirect-uri",
            "https://jwt.example.jo/cb",
            "--auth-method",
            "private_key_jwt",
            "--jwks",
            d.path("rp-jwks.json").to_str().expect("utf-8"),
            "--id-token-alg",
            "ES256",
        ]);
        for (id, uri) in [("land-registry", "https://land.example.jo/cb"), ("same-sector", "https://rp.example.jo/other")] {
            let out = d.ok(&["client", "add", "--id", id, "--redirect-uri", uri, "--auth-method", "client_secret_basic"]);
            secrets.insert(id, secret_of(&out));
        }
        serve(&mut d);
        let issuer = d.base.clone();
        Provider { d, issuer, secrets, rp_key, totp }
    }

    /// Like [`Provider::start`], with the operators' metrics on an address of their own; the
    /// provider and that address.
    fn start_with_metrics() -> (Self, String) {
        let metrics = format!("127.0.0.1:{}", free_port());
        let p = Self::start_with(|d| {
            d.set_env("HAWIYA_METRICS_LISTEN", &metrics);
            d.serve();
        });
        (p, metrics)
    }

    fn http(&self) -> reqwest::Client {
        self.http_to(self.d.port)
    }

    /// A client that reaches the issuer's host name at `port` (one replica).
    fn http_to(&self, port: u16) -> reqwest::Client {
        hawiya_e2e::client_to(port)
    }

    fn browser(&self) -> Browser {
        Browser::new(self.http(), &self.issuer)
    }

    fn authorize_url(&self, client_id: &str, redirect_uri: &str, extra: &[(&str, &str)]) -> String {
        let mut url = url::Url::parse(&format!("{}/authorize", self.issuer)).expect("url");
        url.query_pairs_mut()
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("response_type", "code")
            .append_pair("scope", "openid profile email phone")
            .append_pair("state", "st-1")
            .append_pair("nonce", "n-1");
        for (k, v) in extra {
            url.query_pairs_mut().append_pair(k, v);
        }
        url.into()
    }

    /// Posts to the token endpoint as `civil-status` (Basic).
    async fn token(&self, form: &[(&str, &str)]) -> (u16, Value) {
        self.token_as("civil-status", &self.secrets["civil-status"], form).await
    }

    async fn token_as(&self, client: &str, secret: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let r = self.http().post(format!("{}/token", self.issuer)).basic_auth(client, Some(secret)).form(form).send().await.expect("token");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// Introspection as the civil-status service.
    async fn introspect(&self, token: &str) -> Value {
        self.introspect_as("civil-status", token).await
    }

    /// Introspection as `client` (Basic).
    async fn introspect_as(&self, client: &str, token: &str) -> Value {
        let r = self.http().post(format!("{}/introspect", self.issuer)).basic_auth(client, Some(&self.secrets[client])).form(&[("token", token)]);
        r.send().await.expect("introspect").json().await.expect("json")
    }

    async fn jwks(&self) -> Value {
        self.http().get(format!("{}/jwks", self.issuer)).send().await.expect("jwks").json().await.expect("json")
    }

    /// Verifies an id_token against the published JWKS and returns its claims.
    async fn verify_id_token(&self, id_token: &str) -> Value {
        let jws = UnverifiedJws::parse(id_token).expect("a JWS");
        let jwks = self.jwks().await;
        let jwk = jwks["keys"].as_array().expect("keys").iter().find(|k| k["kid"].as_str() == jws.kid()).expect("kid published");
        let (key, alg) = public_key_from_jwk(jwk).expect("jwk");
        jws.verify(&key, alg).expect("id_token signature verifies against the JWKS");
        serde_json::from_slice(&jws.payload).expect("claims")
    }

    /// A client assertion (RFC 7523) signed with the `jwt-rp` key.
    fn assertion(&self, aud: &str, jti: &str) -> String {
        self.rp_key.assertion("jwt-rp", aud, jti)
    }

    /// A JWT signed with the `jwt-rp` key (ES256).
    fn signed(&self, claims: &Value) -> String {
        self.rp_key.signed(claims)
    }

    async fn code_flow(&self, browser: &mut Browser, extra: &[(&str, &str)]) -> Value {
        let location = browser.login(&self.authorize_url("civil-status", CB, extra), CITIZEN, PASSWORD).await;
        self.exchange("civil-status", CB, &location).await
    }

    /// Exchanges the code a redirect carries, as `client` (Basic), and returns the tokens.
    async fn exchange(&self, client: &str, redirect_uri: &str, location: &str) -> Value {
        let code = param(location, "code").unwrap_or_else(|| panic!("no code in {location}"));
        let (status, body) =
            self.token_as(client, &self.secrets[client], &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", redirect_uri)]).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn userinfo(&self, tokens: &Value) -> Value {
        let r = self.http().get(format!("{}/userinfo", self.issuer)).bearer_auth(tokens["access_token"].as_str().expect("at")).send().await.expect("get");
        assert_eq!(r.status(), 200);
        r.json().await.expect("json")
    }

    /// The current one-time code of the first citizen, `steps` time steps ahead.
    fn totp_code(&self, steps: u64) -> String {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs();
        self.totp.code_at(now + 30 * steps, 6)
    }
}

/// Sends a GET with a raw socket (for requests no HTTP client library would send) and
/// returns the response head, or what the server said before closing.
fn raw_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
    // The server may answer and close before the whole request is written.
    let _ = s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n").as_bytes());
    let mut response = Vec::new();
    let _ = s.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    text.split("\r\n\r\n").next().unwrap_or_default().to_owned()
}

fn base32_decode(s: &str) -> Vec<u8> {
    let (mut out, mut buffer, mut bits) = (Vec::new(), 0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32: {s}"),
        };
        buffer = (buffer << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

fn sha256_b64(s: &str) -> String {
    B64.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_discovery_endpoint_verification() {
    let p = Provider::start();
    let r = p.http().get(format!("{}/.well-known/openid-configuration", p.issuer)).send().await.expect("get");
    assert_eq!(r.status(), 200);
    let c: Value = r.json().await.expect("json");
    assert_eq!(c["issuer"], p.issuer.as_str(), "issuer equals the URL prefix exactly");
    for endpoint in
        ["authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri", "end_session_endpoint", "revocation_endpoint", "introspection_endpoint"]
    {
        assert!(c[endpoint].as_str().expect(endpoint).starts_with(&p.issuer), "{endpoint}");
    }
    let has = |k: &str, v: &str| c[k].as_array().expect(k).iter().any(|x| x == v);
    assert!(has("response_types_supported", "code") && has("subject_types_supported", "pairwise"));
    assert!(has("id_token_signing_alg_values_supported", "RS256"));
    assert!(has("code_challenge_methods_supported", "S256") && !has("code_challenge_methods_supported", "plain"));
    assert!(has("token_endpoint_auth_methods_supported", "private_key_jwt"));
    assert!(has("acr_values_supported", "http://eidas.europa.eu/LoA/substantial"));
    assert!(has("scopes_supported", "openid") && has("claims_supported", "sub"));
    // oidcc-backchannel-logout-discovery-endpoint-verification
    assert_eq!((c["backchannel_logout_supported"].as_bool(), c["backchannel_logout_session_supported"].as_bool()), (Some(true), Some(true)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_server_idtoken_signature_and_userinfo() {
    let p = Provider::start();
    let mut b = p.browser();
    let tokens = p.code_flow(&mut b, &[]).await;
    // oidcc-idtoken-signature, oidcc-idtoken-unsigned: signed, verifiable, never alg none.
    let id_token = tokens["id_token"].as_str().expect("id_token");
    assert!(!id_token.ends_with('.'), "an unsigned id_token");
    let claims = p.verify_id_token(id_token).await;
    assert_eq!((claims["iss"].as_str(), claims["aud"].as_str(), claims["nonce"].as_str()), (Some(p.issuer.as_str()), Some("civil-status"), Some("n-1")));
    assert_eq!(claims["acr"], "low");
    assert_eq!(claims["amr"], json!(["pwd"]));
    for c in ["auth_time", "sid", "exp", "iat", "at_hash", "sub"] {
        assert!(claims.get(c).is_some(), "id_token without {c}: {claims}");
    }
    assert_eq!(tokens["token_type"], "Bearer");
    let access = tokens["access_token"].as_str().expect("access token");
    let url = format!("{}/userinfo", p.issuer);
    // oidcc-userinfo-get
    let info: Value = p.http().get(&url).bearer_auth(access).send().await.expect("get").json().await.expect("json");
    assert_eq!(info["sub"], claims["sub"], "userinfo and id_token name the same subject");
    assert_eq!(info["name"], "ليلى حداد", "Arabic by default");
    assert_eq!(info["birthdate"], "1990-04-01");
    assert!(info.get("email").is_none(), "civil-status's policy does not release e-mail: {info}");
    assert!(info.get("national_id").is_none(), "{info}");
    // oidcc-userinfo-post-header
    let r = p.http().post(&url).bearer_auth(access).send().await.expect("post");
    assert_eq!(r.status(), 200);
    // oidcc-userinfo-post-body
    let r = p.http().post(&url).form(&[("access_token", access)]).send().await.expect("post");
    assert_eq!(r.status(), 200);
    let r = p.http().get(&url).bearer_auth("not-a-token").send().await.expect("get");
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"].to_str().expect("ascii").contains("invalid_token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_claims_locales_and_prompt_none() {
    let p = Provider::start();
    let mut b = p.browser();
    // oidcc-prompt-none-not-logged-in: back to the client, no page.
    let r = b.get(&p.authorize_url("civil-status", CB, &[("prompt", "none")])).await;
    let l = r.location.expect("redirect");
    assert!(l.starts_with(CB), "{l}");
    assert_eq!((param(&l, "error").as_deref(), param(&l, "state").as_deref()), (Some("login_required"), Some("st-1")));
    // oidcc-claims-locales, oidcc-ui-locales
    let r = b.get(&p.authorize_url("civil-status", CB, &[("ui_locales", "en")])).await;
    let (page, _) = b.follow(r).await;
    assert!(page.body.contains(r#"<html lang="en" dir="ltr">"#) && page.body.contains("Civil-status certificates"), "{}", page.body);
    let tokens = p.code_flow(&mut b, &[("claims_locales", "en ar")]).await;
    let info: Value = p
        .http()
        .get(format!("{}/userinfo", p.issuer))
        .bearer_auth(tokens["access_token"].as_str().expect("at"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!((info["name"].as_str(), info["name#ar"].as_str(), info["name#en"].as_str()), (Some("Layla Haddad"), Some("ليلى حداد"), Some("Layla Haddad")));
    // oidcc-prompt-none-logged-in: a code without any page.
    let r = b.get(&p.authorize_url("civil-status", CB, &[("prompt", "none")])).await;
    let l = r.location.expect("redirect");
    assert!(param(&l, "code").is_some(), "{l}");
    // oidcc-prompt-login: a new login even with a session.
    let r = b.get(&p.authorize_url("civil-status", CB, &[("prompt", "login")])).await;
    assert!(r.location.expect("redirect").starts_with("/login"));
    // oidcc-max-age-1: an authentication older than max_age means logging in again.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let r = b.get(&p.authorize_url("civil-status", CB, &[("max_age", "1")])).await;
    assert!(r.location.expect("redirect").starts_with("/login"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_response_type_missing_and_registered_redirect_uri() {
    let p = Provider::start();
    let mut b = p.browser();
    let url = p.authorize_url("civil-status", CB, &[]).replace("response_type=code&", "");
    let r = b.get(&url).await;
    let l = r.location.expect("redirect to the client");
    assert!(l.starts_with(CB));
    assert_eq!(param(&l, "error").as_deref(), Some("invalid_request"));
    // oidcc-ensure-registered-redirect-uri: a page, never a redirect there.
    let r = b.get(&p.authorize_url("civil-status", "https://evil.example/cb", &[])).await;
    assert_eq!((r.status, r.location), (400, None));
    let r = b.get(&p.authorize_url("civil-status", &format!("{CB}?x=1"), &[])).await;
    assert_eq!((r.status, r.location), (400, None), "only exact matches");
    let r = b.get(&p.authorize_url("nobody", CB, &[])).await;
    assert_eq!((r.status, r.location), (400, None));
    // oidcc-request-uri-unsigned-supported-correctly-or-rejected-as-unsupported: request_uri
    // is supported for registered URIs (oidcc_request_uri_signed_rs256); any other is not
    // fetched.
    let r = b.get(&p.authorize_url("civil-status", CB, &[("request_uri", "https://rp.example.jo/req")])).await;
    assert_eq!(param(&r.location.expect("redirect"), "error").as_deref(), Some("invalid_request_uri"));
    // oidcc-unsigned-request-object-supported-correctly-or-rejected-as-unsupported: signed
    // request objects are supported, unsigned ones refused.
    let r = b.get(&p.authorize_url("civil-status", CB, &[("request", "eyJhbGciOiJub25lIn0.e30.")])).await;
    assert_eq!(param(&r.location.expect("redirect"), "error").as_deref(), Some("invalid_request_object"));
    // PKCE plain is refused.
    let r = b.get(&p.authorize_url("civil-status", CB, &[("code_challenge", "abc"), ("code_challenge_method", "plain")])).await;
    assert_eq!(param(&r.location.expect("redirect"), "error").as_deref(), Some("invalid_request"));
    // Duplicated parameters and a huge query: a request the provider cannot read is shown
    // as an error page, never redirected anywhere.
    let r = b.get(&format!("{}&state=again", p.authorize_url("civil-status", CB, &[]))).await;
    assert_eq!((r.status, r.location), (400, None));
    assert!(r.body.contains("parameter state is repeated"), "{}", r.body);
    let r = b.get(&p.authorize_url("civil-status", CB, &[]).replace("scope=openid+profile+email+phone", "")).await;
    assert_eq!(param(&r.location.expect("redirect"), "error_description").as_deref(), Some("missing parameter scope"));
    // A 1 MB query (too long for most clients to even send): refused, never redirected.
    let path = format!(
        "/authorize?client_id=civil-status&redirect_uri={}&x={}",
        url::form_urlencoded::byte_serialize(CB.as_bytes()).collect::<String>(),
        "a".repeat(1 << 20)
    );
    let head = raw_get(p.d.port, &path);
    assert!(head.starts_with("HTTP/1.1 4"), "{}", &head[..head.len().min(200)]);
    assert!(!head.to_ascii_lowercase().contains("location:"), "{}", &head[..head.len().min(200)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_codereuse_and_refresh_token() {
    let (p, metrics) = Provider::start_with_metrics();
    let mut b = p.browser();
    let location = b.login(&p.authorize_url("civil-status", CB, &[]), CITIZEN, PASSWORD).await;
    let code = param(&location, "code").expect("code");
    assert_eq!(param(&location, "iss").as_deref(), Some(p.issuer.as_str()), "RFC 9207 iss");
    let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", CB)];
    // Wrong secret first: refused, and the code survives.
    let (status, body) = p.token_as("civil-status", "wrong", &form).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    let (status, first) = p.token(&form).await;
    assert_eq!(status, 200, "{first}");
    // oidcc-codereuse: the second use fails and revokes what the first issued.
    let (status, body) = p.token(&form).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    let r = p.http().get(format!("{}/userinfo", p.issuer)).bearer_auth(first["access_token"].as_str().expect("at")).send().await.expect("get");
    assert_eq!(r.status(), 401, "the access token of a reused code is revoked");
    let (status, body) = p.token(&[("grant_type", "refresh_token"), ("refresh_token", first["refresh_token"].as_str().expect("rt"))]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "the refresh token of a reused code is revoked");

    // oidcc-refresh-token: rotation, client binding, reuse detection.
    let tokens = p.code_flow(&mut b, &[]).await;
    let rt1 = tokens["refresh_token"].as_str().expect("rt").to_owned();
    let (status, body) = p.token_as("post-rp", &p.secrets["post-rp"], &[("grant_type", "refresh_token"), ("refresh_token", &rt1)]).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "post-rp must use client_secret_post");
    let r = p
        .http()
        .post(format!("{}/token", p.issuer))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", rt1.as_str()), ("client_id", "post-rp"), ("client_secret", &p.secrets["post-rp"])])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 400, "another client's refresh token is invalid_grant");
    let (status, second) = p.token(&[("grant_type", "refresh_token"), ("refresh_token", &rt1)]).await;
    assert_eq!(status, 200, "{second}");
    let rt2 = second["refresh_token"].as_str().expect("rotated");
    assert_ne!(rt1, rt2);
    let refreshed = p.verify_id_token(second["id_token"].as_str().expect("id_token")).await;
    assert!(refreshed.get("nonce").is_none(), "no nonce in a refreshed id_token");
    // Forged tokens (a later generation, a damaged MAC, junk) are refused and change nothing.
    let (family, rest) = rt2.split_once('.').expect("family.generation.mac");
    let mac = rest.split_once('.').expect("generation.mac").1;
    for forged in [format!("{family}.2.{mac}"), format!("{family}.0.{mac}"), format!("{}x", &rt2[..rt2.len() - 1]), "x".repeat(75)] {
        let (status, body) = p.token(&[("grant_type", "refresh_token"), ("refresh_token", &forged)]).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{forged}");
    }
    // Introspection: the live token is active, the rotated one is not.
    let live = p.introspect(rt2).await;
    assert_eq!(
        (live["active"].as_bool(), live["token_type"].as_str(), live["client_id"].as_str()),
        (Some(true), Some("refresh_token"), Some("civil-status")),
        "{live}"
    );
    assert_eq!(p.introspect(&rt1).await["active"], false);
    let (status, third) = p.token(&[("grant_type", "refresh_token"), ("refresh_token", rt2)]).await;
    assert_eq!(status, 200, "forgeries left the live token working: {third}");
    let rt2 = third["refresh_token"].as_str().expect("rotated");
    let (status, _) = p.token(&[("grant_type", "refresh_token"), ("refresh_token", &rt1)]).await;
    assert_eq!(status, 400, "a used refresh token is refused");
    let (status, _) = p.token(&[("grant_type", "refresh_token"), ("refresh_token", rt2)]).await;
    assert_eq!(status, 400, "reuse revoked the whole family");

    // The operators' metrics count what happened, on their own address only.
    let text = p.http().get(format!("http://{metrics}/metrics")).send().await.expect("metrics").text().await.expect("text");
    for line in [
        "hawiya_logins_total 1",
        "hawiya_tokens_issued_total{grant_type=\"authorization_code\"} 2",
        "hawiya_tokens_issued_total{grant_type=\"refresh_token\"} 2",
        "hawiya_token_reuse_total 2",
        "hawiya_password_checks_total 1",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
    }
    let r = p.http().get(format!("{}/metrics", p.issuer)).send().await.expect("get");
    assert_eq!(r.status(), 404, "metrics are not on the public listener");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_ensure_request_with_valid_pkce_succeeds() {
    let p = Provider::start();
    let mut b = p.browser();
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = sha256_b64(verifier);
    let extra = [("code_challenge", challenge.as_str()), ("code_challenge_method", "S256")];
    let location = b.login(&p.authorize_url("civil-status", CB, &extra), CITIZEN, PASSWORD).await;
    let code = param(&location, "code").expect("code");
    let bad = "x".repeat(43);
    let (status, body) = p.token(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CB), ("code_verifier", &bad)]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    // A failed exchange spent the code (single use).
    let (status, _) = p.token(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CB), ("code_verifier", verifier)]).await;
    assert_eq!(status, 400);
    let r = b.get(&p.authorize_url("civil-status", CB, &extra)).await;
    let code = param(&r.location.expect("silent: the session exists and consent is remembered"), "code").expect("code");
    let (status, body) = p.token(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CB), ("code_verifier", verifier)]).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_ensure_client_assertion_with_iss_aud_succeeds() {
    let p = Provider::start();
    let mut b = p.browser();
    let token_endpoint = format!("{}/token", p.issuer);
    for (i, aud) in [p.issuer.clone(), token_endpoint.clone()].into_iter().enumerate() {
        let location = b.login(&p.authorize_url("jwt-rp", "https://jwt.example.jo/cb", &[]), CITIZEN, PASSWORD).await;
        let code = param(&location, "code").expect("code");
        let assertion = p.assertion(&aud, &format!("jti-{i}"));
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "https://jwt.example.jo/cb"),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", assertion.as_str()),
        ];
        let r = p.http().post(&token_endpoint).form(&form).send().await.expect("post");
        assert_eq!(r.status(), 200, "aud = {aud}");
        let body: Value = r.json().await.expect("json");
        let id_token = body["id_token"].as_str().expect("id_token");
        assert_eq!(UnverifiedJws::parse(id_token).expect("jws").algorithm, hsm_shim::SignatureAlgorithm::Es256, "the client's registered algorithm");
        p.verify_id_token(id_token).await;
        // The same assertion again: a replay.
        let refresh = body["refresh_token"].as_str().expect("rt");
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", assertion.as_str()),
        ];
        let r = p.http().post(&token_endpoint).form(&form).send().await.expect("post");
        assert_eq!(r.status(), 401, "a replayed client assertion");
        let e: Value = r.json().await.expect("json");
        assert_eq!(e["error"], "invalid_client");
    }
    // Another audience is refused.
    let assertion = p.assertion("https://elsewhere.example", "jti-x");
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", "x"),
        ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
        ("client_assertion", assertion.as_str()),
    ];
    let r = p.http().post(&token_endpoint).form(&form).send().await.expect("post");
    assert_eq!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_rp_initiated_logout() {
    let p = Provider::start();
    let mut b = p.browser();
    let tokens = p.code_flow(&mut b, &[]).await;
    let hint = tokens["id_token"].as_str().expect("id_token");
    let logout = |extra: &[(&str, &str)]| {
        let mut url = url::Url::parse(&format!("{}/logout", p.issuer)).expect("url");
        for (k, v) in extra {
            url.query_pairs_mut().append_pair(k, v);
        }
        String::from(url)
    };
    // oidcc-rp-initiated-logout-bad-post-logout-redirect-uri, -query-added-to-post-logout-redirect-uri
    for uri in ["https://evil.example/bye", &format!("{BYE}?x=1")] {
        let r = b.get(&logout(&[("id_token_hint", hint), ("post_logout_redirect_uri", uri)])).await;
        assert_eq!((r.status, r.location), (400, None), "{uri}");
    }
    // oidcc-rp-initiated-logout-modified-id-token-hint
    let mut parts: Vec<String> = hint.split('.').map(str::to_owned).collect();
    let mut claims: Value = serde_json::from_slice(&B64.decode(&parts[1]).expect("b64")).expect("json");
    claims["sub"] = "someone-else".into();
    parts[1] = B64.encode(claims.to_string());
    let r = b.get(&logout(&[("id_token_hint", &parts.join(".")), ("post_logout_redirect_uri", BYE)])).await;
    assert_eq!((r.status, r.location), (400, None));
    // The session is still there: a silent login works.
    let r = b.get(&p.authorize_url("civil-status", CB, &[("prompt", "none")])).await;
    assert!(param(&r.location.expect("redirect"), "code").is_some());
    // oidcc-rp-initiated-logout: ends the session and returns with state.
    let r = b.get(&logout(&[("id_token_hint", hint), ("post_logout_redirect_uri", BYE), ("state", "bye-1")])).await;
    let l = r.location.expect("redirect");
    assert!(l.starts_with(BYE) && param(&l, "state").as_deref() == Some("bye-1"), "{l}");
    let r = b.get(&p.authorize_url("civil-status", CB, &[("prompt", "none")])).await;
    assert_eq!(param(&r.location.expect("redirect"), "error").as_deref(), Some("login_required"));
    // oidcc-rp-initiated-logout-no-id-token-hint: the citizen confirms; a CSRF-less confirm is refused.
    p.code_flow(&mut b, &[]).await;
    let r = b.get(&logout(&[])).await;
    assert_eq!(r.status, 200);
    let csrf = hidden(&r.body, "csrf");
    let r = b.post("/logout/confirm", &[("csrf", "forged")]).await;
    assert_eq!(r.status, 403);
    let r = b.get(&p.authorize_url("civil-status", CB, &[("prompt", "none")])).await;
    assert!(param(&r.location.expect("redirect"), "code").is_some(), "a refused logout changes nothing");
    let r = b.post("/logout/confirm", &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 200);
    let r = b.get(&p.authorize_url("civil-status", CB, &[("prompt", "none")])).await;
    assert_eq!(param(&r.location.expect("redirect"), "error").as_deref(), Some("login_required"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_refuses_csrf_less_posts_bad_passwords_and_locks_out() {
    let p = Provider::start();
    let mut b = p.browser();
    let r = b.get(&p.authorize_url("civil-status", CB, &[])).await;
    let (page, _) = b.follow(r).await;
    assert!(page.body.contains(r#"<html lang="ar" dir="rtl">"#), "Arabic, right to left, by default");
    let tx = hidden(&page.body, "tx");
    let r = b.post("/login", &[("tx", &tx), ("csrf", "forged"), ("national_id", CITIZEN), ("password", PASSWORD)]).await;
    assert_eq!(r.status, 403, "a login form without the anti-CSRF token");
    let r = b.submit_login(&page.body, CITIZEN, "wrong password!", None).await;
    assert_eq!(r.status, 401);
    assert!(r.body.contains(r#"aria-describedby="login-error""#) && r.body.contains(r#"role="alert""#), "{}", r.body);
    let r = b.submit_login(&page.body, "0000000000", PASSWORD, None).await;
    assert_eq!(r.status, 401, "an unknown account fails the same way");
    for _ in 0..4 {
        b.submit_login(&page.body, CITIZEN, "wrong password!", None).await;
    }
    let r = b.submit_login(&page.body, CITIZEN, PASSWORD, None).await;
    assert_eq!(r.status, 401, "locked after five failures, even with the right password");
    assert!(r.body.contains("١٥ دقيقة"), "the page says for how long: {}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_ensure_request_with_acr_values_succeeds_and_steps_up() {
    let p = Provider::start();
    let mut b = p.browser();
    // Logged in at low for civil-status.
    let tokens = p.code_flow(&mut b, &[]).await;
    let low = p.verify_id_token(tokens["id_token"].as_str().expect("id_token")).await;
    assert_eq!(low["acr"], "low");
    // land-registry needs substantial: the page asks for the one-time code only.
    let land = "https://land.example.jo/cb";
    let url = p.authorize_url("land-registry", land, &[("scope", "openid profile national_id")]).replace("scope=openid+profile+email+phone&", "");
    let r = b.get(&url).await;
    let (page, _) = b.follow(r).await;
    assert!(page.body.contains(r#"name="code""#) && !page.body.contains(r#"name="password""#), "a step-up asks only for the code: {}", page.body);
    // The step-up cannot be skipped by answering its transaction on the consent page.
    let (tx, csrf) = (hidden(&page.body, "tx"), hidden(&page.body, "csrf"));
    let r = b.post("/consent", &[("tx", &tx), ("csrf", &csrf), ("decision", "allow")]).await;
    assert_eq!((r.status, r.location.clone()), (400, None), "a login transaction answered as consent: {}", r.body);
    let r = b.submit_login(&page.body, CITIZEN, "", Some("000000")).await;
    assert_eq!(r.status, 401, "a wrong code");
    let r = b.submit_login(&page.body, CITIZEN, "", Some(&p.totp_code(0))).await;
    let location = b.through_consent(r).await;
    let tokens = p.exchange("land-registry", land, &location).await;
    let high = p.verify_id_token(tokens["id_token"].as_str().expect("id_token")).await;
    assert_eq!(high["acr"], "substantial");
    assert_eq!(high["amr"], json!(["pwd", "otp", "mfa"]));
    assert_eq!(high["sid"], low["sid"], "a step-up keeps the session");
    let stepped = audit_entry(&p, "login.step_up").await;
    assert_eq!(
        (&stepped["client"], &stepped["from"], &stepped["level"], &stepped["method"]),
        (&json!("land-registry"), &json!("low"), &json!("substantial"), &json!("password-totp"))
    );
    assert!(high["auth_time"].as_i64().expect("auth_time") >= low["auth_time"].as_i64().expect("auth_time"));
    // The national id, for the service whose policy allows it only.
    let info = p.userinfo(&tokens).await;
    assert_eq!(info["national_id"], CITIZEN);
    // acr_values on a low service: the session is substantial already, no page.
    let r = b.get(&p.authorize_url("civil-status", CB, &[("acr_values", "http://eidas.europa.eu/LoA/substantial")])).await;
    let tokens = p.exchange("civil-status", CB, &r.location.expect("silent")).await;
    let acr = &p.verify_id_token(tokens["id_token"].as_str().expect("id_token")).await["acr"];
    assert_eq!(acr, "http://eidas.europa.eu/LoA/substantial", "the acr in the form it was asked for (OIDC Core 5.5.1.1)");
    // oidcc-claims-essential: an essential acr with values, and the national id asked of
    // a service whose policy does not allow it.
    let claims = r#"{"id_token":{"acr":{"essential":true,"values":["high"]},"national_id":null}}"#;
    let mut fresh = p.browser();
    let r = fresh.get(&p.authorize_url("civil-status", CB, &[("claims", claims)])).await;
    let (page, _) = fresh.follow(r).await;
    let r = fresh.submit_login(&page.body, CITIZEN, PASSWORD, Some(&p.totp_code(1))).await;
    let l = r.location.expect("back to the client");
    assert_eq!(param(&l, "error").as_deref(), Some("unmet_authentication_requirements"), "nobody reaches high with a password: {l}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmet_level_goes_back_to_the_client() {
    let p = Provider::start();
    let mut b = p.browser();
    let land = "https://land.example.jo/cb";
    let r = b.get(&p.authorize_url("land-registry", land, &[])).await;
    let (page, _) = b.follow(r).await;
    assert!(page.body.contains(r#"name="code""#), "substantial: the code field is on the page");
    let r = b.submit_login(&page.body, CITIZEN_NO_TOTP, PASSWORD, None).await;
    let l = r.location.expect("back to the client");
    assert!(l.starts_with(land), "{l}");
    assert_eq!(param(&l, "error").as_deref(), Some("unmet_authentication_requirements"));
    assert!(param(&l, "error_description").expect("description").contains("substantial"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_registration_sector_uri() {
    let mut p = Provider::start();
    let mut b = p.browser();
    let tokens = p.code_flow(&mut b, &[]).await;
    let sub_cs = p.verify_id_token(tokens["id_token"].as_str().expect("id_token")).await["sub"].clone();
    let r = b.get(&p.authorize_url("same-sector", "https://rp.example.jo/other", &[])).await;
    let location = b.through_consent(r).await;
    let same = p.exchange("same-sector", "https://rp.example.jo/other", &location).await;
    let sub_same = p.verify_id_token(same["id_token"].as_str().expect("id_token")).await["sub"].clone();
    assert_eq!(sub_cs, sub_same, "one sector, one pairwise subject");
    let r = b.get(&p.authorize_url("post-rp", "https://post.example.jo/cb", &[])).await;
    let location = b.through_consent(r).await;
    let code = param(&location, "code").expect("code");
    let r = p
        .http()
        .post(format!("{}/token", p.issuer))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "https://post.example.jo/cb"),
            ("client_id", "post-rp"),
            ("client_secret", &p.secrets["post-rp"]),
        ])
        .send()
        .await
        .expect("post");
    // oidcc-server-client-secret-post
    assert_eq!(r.status(), 200);
    let other: Value = r.json().await.expect("json");
    let sub_other = p.verify_id_token(other["id_token"].as_str().expect("id_token")).await["sub"].clone();
    assert_ne!(sub_cs, sub_other, "another sector, another subject");
    assert!(!sub_cs.as_str().expect("sub").contains(CITIZEN));
    // A sector identifier (a JSON list of the sector's redirect URIs, fetched at
    // registration) lets redirect URIs span hosts, and its clients share the subject.
    let (_server, port) = sector_server();
    let sector = format!("http://127.0.0.1:{port}/sector.json");
    let out = p.d.ok(&add("agency-a", &["https://a.example.jo/cb", "https://b.example.jo/cb"], &sector));
    p.secrets.insert("agency-a", secret_of(&out));
    let out = p.d.ok(&add("agency-b", &["https://b.example.jo/cb"], &sector));
    p.secrets.insert("agency-b", secret_of(&out));
    let mut subs = Vec::new();
    for (client, cb) in [("agency-a", "https://a.example.jo/cb"), ("agency-b", "https://b.example.jo/cb")] {
        let r = b.get(&p.authorize_url(client, cb, &[])).await;
        let location = b.through_consent(r).await;
        let tokens = p.exchange(client, cb, &location).await;
        subs.push(p.verify_id_token(tokens["id_token"].as_str().expect("id_token")).await["sub"].clone());
    }
    assert_eq!(subs[0], subs[1], "one sector identifier, one pairwise subject");
    assert_ne!(subs[0], sub_cs, "the sector is the sector identifier's host");
}

/// Serves a sector identifier document (`/sector.json`, listing https://a.example.jo/cb and
/// https://b.example.jo/cb) from a python3 HTTP server; its port.
fn sector_server() -> ((Killed, tempfile::TempDir), u16) {
    let served = tempfile::tempdir().expect("tempdir");
    std::fs::write(served.path().join("sector.json"), json!(["https://a.example.jo/cb", "https://b.example.jo/cb"]).to_string()).expect("write");
    let port = free_port();
    let server = Killed(
        std::process::Command::new("python3")
            .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory"])
            .arg(served.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 http.server"),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "the sector server did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    ((server, served), port)
}

/// `client add` arguments for a client with a sector identifier.
fn add<'a>(id: &'a str, uris: &[&'a str], sector: &'a str) -> Vec<&'a str> {
    let mut args = vec!["client", "add", "--id", id, "--auth-method", "client_secret_basic", "--sector-identifier-uri", sector];
    for u in uris {
        args.extend(["--redirect-uri", *u]);
    }
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_registration_sector_bad() {
    let p = Provider::start();
    // A client whose redirect URIs span two sectors is refused, and nothing is stored.
    let before = p.d.ok(&["client", "list"]);
    let e = p.d.fails(&[
        "client",
        "add",
        "--id",
        "two-sectors",
        "--redirect-uri",
        "https://a.example.jo/cb",
        "--redirect-uri",
        "https://b.example.jo/cb",
        "--auth-method",
        "client_secret_basic",
    ]);
    assert!(e.contains("several hosts"), "{e}");
    assert_eq!(p.d.ok(&["client", "list"]), before);
    // A sector identifier that leaves out a redirect URI, or cannot be fetched: refused,
    // nothing stored.
    let (_server, port) = sector_server();
    let sector = format!("http://127.0.0.1:{port}/sector.json");
    let e = p.d.fails(&add("agency-c", &["https://c.example.jo/cb"], &sector));
    assert!(e.contains("does not list the redirect URI https://c.example.jo/cb"), "{e}");
    let missing = format!("http://127.0.0.1:{port}/missing.json");
    let e = p.d.fails(&add("agency-c", &["https://a.example.jo/cb"], &missing));
    assert!(e.contains("HTTP 404"), "{e}");
    assert_eq!(p.d.ok(&["client", "list"]), before);
}

/// A child process killed when dropped.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_server_rotate_keys() {
    let p = Provider::start();
    let mut b = p.browser();
    let before = p.jwks().await["keys"].as_array().expect("keys").len();
    let tokens = p.code_flow(&mut b, &[]).await;
    let old_kid = UnverifiedJws::parse(tokens["id_token"].as_str().expect("id_token")).expect("jws").kid().expect("kid").to_owned();
    let out = p.d.ok(&["keys", "rotate", "--purpose", "idp-signing", "--publish-delay", "0"]);
    assert!(out.contains("New idp-signing keys"), "{out}");
    // The server re-reads its keys every few seconds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let jwks = loop {
        let jwks = p.jwks().await;
        if jwks["keys"].as_array().expect("keys").len() > before || std::time::Instant::now() > deadline {
            break jwks;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let kids: Vec<&str> = jwks["keys"].as_array().expect("keys").iter().filter_map(|k| k["kid"].as_str()).collect();
    assert_eq!(kids.len(), before * 2, "new keys published, old ones kept while their tokens live: {kids:?}");
    assert!(kids.contains(&old_kid.as_str()));
    let tokens = p.code_flow(&mut b, &[("prompt", "login")]).await;
    let new_kid = UnverifiedJws::parse(tokens["id_token"].as_str().expect("id_token")).expect("jws").kid().expect("kid").to_owned();
    assert_ne!(new_kid, old_kid, "new id_tokens carry the new kid");
    p.verify_id_token(tokens["id_token"].as_str().expect("id_token")).await;
    let e = p.d.fails(&["keys", "rotate", "--purpose", "ca"]);
    assert_eq!(e, "error: --purpose: a key purpose is one of: idp-signing");
}

/// A relying party's back-channel logout endpoint: answers 503 to the first `failures`
/// deliveries and 200 after, and hands every logout token it receives to the test.
fn backchannel_endpoint(failures: usize) -> (u16, std::sync::mpsc::Receiver<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    (port, backchannel_endpoint_on(listener, failures))
}

/// [`backchannel_endpoint`] on a listener of the caller's (a relying party that comes up late).
fn backchannel_endpoint_on(listener: std::net::TcpListener, failures: usize) -> std::sync::mpsc::Receiver<String> {
    use std::io::{BufRead, BufReader, Read, Write};
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let token = url::form_urlencoded::parse(&body).find(|(k, _)| k == "logout_token").map(|(_, v)| v.into_owned()).unwrap_or_default();
            let status = if n < failures { "503 Service Unavailable" } else { "200 OK" };
            let _ = stream.write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes());
            if tx.send(token).is_err() {
                return;
            }
        }
    });
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_backchannel_rp_initiated_logout() {
    let (port, tokens_received) = backchannel_endpoint(1);
    let mut p = Provider::start();
    let cb = "https://bc.example.jo/cb";
    let out = p.d.ok(&[
        "client",
        "add",
        "--id",
        "bc-rp",
        "--redirect-uri",
        cb,
        "--auth-method",
        "client_secret_basic",
        "--backchannel-logout-uri",
        &format!("http://127.0.0.1:{port}/backchannel"),
        "--id-token-alg",
        "EdDSA",
    ]);
    p.secrets.insert("bc-rp", secret_of(&out));
    let mut b = p.browser();
    let location = b.login(&p.authorize_url("bc-rp", cb, &[]), CITIZEN, PASSWORD).await;
    let tokens = p.exchange("bc-rp", cb, &location).await;
    let id_token = p.verify_id_token(tokens["id_token"].as_str().expect("id_token")).await;
    // An EdDSA (Ed25519) id_token hashes the access token with SHA-512 for at_hash.
    let sha512 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA512, tokens["access_token"].as_str().expect("at").as_bytes());
    assert_eq!(id_token["at_hash"], B64.encode(&sha512.as_ref()[..32]));
    // The citizen also uses civil-status (no back-channel URI) in the same session.
    let r = b.get(&p.authorize_url("civil-status", CB, &[])).await;
    b.through_consent(r).await;
    let r = b.get(&format!("{}/logout?id_token_hint={}", p.issuer, tokens["id_token"].as_str().expect("id_token"))).await;
    assert_eq!(r.status, 200, "logged out without a redirect URI: the provider's page");
    // The first delivery meets a 503; the retry gets through: the same logout token (its
    // jti), signed afresh when it is posted.
    let wait = std::time::Duration::from_secs(20);
    let first = tokens_received.recv_timeout(wait).expect("a first delivery");
    let second = tokens_received.recv_timeout(wait).expect("a retry after the failure");
    let first_claims = p.verify_id_token(&first).await;
    let jws = UnverifiedJws::parse(&second).expect("a JWS");
    assert_eq!(jws.header.get("typ").and_then(Value::as_str), Some("logout+jwt"));
    let claims = p.verify_id_token(&second).await;
    assert_eq!((claims["iss"].as_str(), claims["aud"].as_str()), (Some(p.issuer.as_str()), Some("bc-rp")));
    assert_eq!((&claims["sid"], &claims["sub"]), (&id_token["sid"], &id_token["sub"]));
    assert!(claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
    assert!(claims.get("jti").is_some() && claims.get("iat").is_some() && claims.get("nonce").is_none(), "{claims}");
    assert_eq!((&first_claims["jti"], &first_claims["sid"]), (&claims["jti"], &claims["sid"]), "the retry is the same logout");
    assert!(tokens_received.recv_timeout(std::time::Duration::from_secs(3)).is_err(), "delivered once it succeeded, not again");
}

impl Provider {
    /// Registers `id` (client_secret_basic) with a back-channel logout URI on `port`.
    fn add_backchannel_client(&mut self, id: &'static str, port: u16) {
        let out = self.d.ok(&[
            "client",
            "add",
            "--id",
            id,
            "--redirect-uri",
            "https://bc.example.jo/cb",
            "--auth-method",
            "client_secret_basic",
            "--backchannel-logout-uri",
            &format!("http://127.0.0.1:{port}/backchannel"),
        ]);
        self.secrets.insert(id, secret_of(&out));
    }

    /// Logs the citizen in to `client` in a browser of its own on the replica at `port`, then
    /// out with the id_token as hint on the same replica; the session's `sid`.
    async fn login_and_logout(&self, client: &str, port: u16) -> String {
        let cb = "https://bc.example.jo/cb";
        let mut b = Browser::new(self.http_to(port), &self.issuer);
        let location = b.login(&self.authorize_url(client, cb, &[]), CITIZEN, PASSWORD).await;
        let tokens = self.exchange(client, cb, &location).await;
        let id_token = tokens["id_token"].as_str().expect("id_token");
        let sid = self.verify_id_token(id_token).await["sid"].as_str().expect("sid").to_owned();
        let r = b.get(&format!("{}/logout?id_token_hint={id_token}", self.issuer)).await;
        assert_eq!(r.status, 200, "logged out");
        sid
    }

    /// The `sid` of a logout token, checked against the JWKS, for `client`.
    async fn logout_sid(&self, token: &str, client: &str) -> String {
        let claims = self.verify_id_token(token).await;
        assert_eq!((claims["aud"].as_str(), claims["iss"].as_str()), (Some(client), Some(self.issuer.as_str())), "{claims}");
        assert!(claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object(), "{claims}");
        claims["sid"].as_str().expect("sid").to_owned()
    }
}

impl Provider {
    /// A provider whose deliveries are retried as `retry` says (`HAWIYA_BACKCHANNEL_RETRY`),
    /// with its metrics, and `client` registered with a back-channel logout URI on a port
    /// where nothing listens yet; the provider, that port and the metrics' address.
    fn with_a_relying_party_down(client: &'static str, retry: &str) -> (Self, u16, String) {
        let (rp, metrics) = (free_port(), format!("127.0.0.1:{}", free_port()));
        let mut p = Provider::start_with(|d| {
            d.set_env("HAWIYA_BACKCHANNEL_RETRY", retry);
            d.set_env("HAWIYA_METRICS_LISTEN", &metrics);
            d.serve();
        });
        p.add_backchannel_client(client, rp);
        (p, rp, metrics)
    }
}

/// The metric families on `metrics` once `ready` holds of them (within 20 s).
async fn metrics_when(
    metrics: &str,
    ready: impl Fn(&std::collections::BTreeMap<String, hawiya_e2e::metrics::Family>) -> bool,
) -> std::collections::BTreeMap<String, hawiya_e2e::metrics::Family> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let http = idp::backchannel::http_client().expect("client");
    loop {
        let text = http.get(format!("http://{metrics}/metrics")).send().await.expect("metrics").text().await.expect("text");
        let families = hawiya_e2e::metrics::parse_exposition(&text);
        if ready(&families) {
            return families;
        }
        assert!(std::time::Instant::now() < deadline, "the metrics never got there:\n{text}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn deliveries(m: &std::collections::BTreeMap<String, hawiya_e2e::metrics::Family>, outcome: &str) -> f64 {
    m["hawiya_backchannel_deliveries_total"].with(("outcome", outcome))
}

fn queue(m: &std::collections::BTreeMap<String, hawiya_e2e::metrics::Family>, state: &str) -> f64 {
    m["hawiya_backchannel_queue"].with(("state", state))
}

/// A relying party that is down when the citizen logs out gets its logout token once it is
/// back: the tries in between fail and are retried with back-off, as the metrics show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backchannel_logout_reaches_a_relying_party_that_was_down_once_it_is_up() {
    let (p, rp, metrics) = Provider::with_a_relying_party_down("bc-down", "200,30");
    let sid = p.login_and_logout("bc-down", p.d.port).await;
    // Nobody listens on the relying party's port: tries fail, and the delivery waits.
    let m = metrics_when(&metrics, |m| deliveries(m, "retried") >= 2.0).await;
    assert_eq!((deliveries(&m, "delivered"), deliveries(&m, "given_up"), queue(&m, "pending")), (0.0, 0.0, 1.0));
    let tokens = backchannel_endpoint_on(std::net::TcpListener::bind(("127.0.0.1", rp)).expect("the relying party comes up"), 0);
    let token = tokens.recv_timeout(std::time::Duration::from_secs(20)).expect("the logout token, once the relying party is up");
    assert_eq!(p.logout_sid(&token, "bc-down").await, sid);
    let m = metrics_when(&metrics, |m| deliveries(m, "delivered") == 1.0).await;
    assert_eq!((queue(&m, "pending"), queue(&m, "due"), queue(&m, "failed")), (0.0, 0.0, 0.0), "nothing left in the queue");
    assert!(tokens.recv_timeout(std::time::Duration::from_secs(2)).is_err(), "delivered once");
}

/// A delivery still owed when the server is killed (-9) is made by the server started again
/// on the same data: the queue is durable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_delivery_owed_when_the_server_is_killed_is_made_after_the_restart() {
    let (mut p, rp, metrics) = Provider::with_a_relying_party_down("bc-crash", "300,30");
    let sid = p.login_and_logout("bc-crash", p.d.port).await;
    metrics_when(&metrics, |m| deliveries(m, "retried") >= 1.0 && queue(m, "pending") == 1.0).await;
    p.d.kill_servers();
    let tokens = backchannel_endpoint_on(std::net::TcpListener::bind(("127.0.0.1", rp)).expect("the relying party comes up"), 0);
    p.d.serve();
    let token = tokens.recv_timeout(std::time::Duration::from_secs(20)).expect("the logout token, from the restarted server");
    assert_eq!(p.logout_sid(&token, "bc-crash").await, sid);
    let m = metrics_when(&metrics, |m| deliveries(m, "delivered") == 1.0).await;
    assert_eq!(queue(&m, "pending"), 0.0);
}

/// A relying party that refuses every try is given up after the configured tries: the
/// delivery stays in the queue as failed, with its last error, for operators, and giving
/// up is logged as an audit event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_refused_at_every_try_is_given_up_and_kept_as_failed() {
    let (rp, tokens) = backchannel_endpoint(usize::MAX);
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut p = Provider::start_with(|d| {
        d.set_env("HAWIYA_BACKCHANNEL_RETRY", "50,3");
        d.set_env("HAWIYA_METRICS_LISTEN", &metrics);
        let log = d.path("serve.log");
        d.serve_logging_to(&log);
    });
    p.add_backchannel_client("bc-refuses", rp);
    let sid = p.login_and_logout("bc-refuses", p.d.port).await;
    for _ in 0..3 {
        let token = tokens.recv_timeout(std::time::Duration::from_secs(20)).expect("a try");
        assert_eq!(p.logout_sid(&token, "bc-refuses").await, sid);
    }
    let m = metrics_when(&metrics, |m| deliveries(m, "given_up") == 1.0).await;
    assert_eq!((deliveries(&m, "retried"), deliveries(&m, "delivered")), (2.0, 0.0));
    assert_eq!((queue(&m, "failed"), queue(&m, "pending"), queue(&m, "due")), (1.0, 0.0, 0.0));
    assert!(tokens.recv_timeout(std::time::Duration::from_secs(1)).is_err(), "three tries in all");
    let failed = hawiya_e2e::smart_id::sqlite_count(
        &p.d,
        "SELECT count(*) FROM deliveries WHERE state = 'failed' AND kind = 'logout' AND client_id = 'bc-refuses' AND attempts = 3 AND last_error = 'HTTP 503 Service Unavailable'",
    );
    assert_eq!(failed, 1, "kept for operators, with its last error");
    let log = std::fs::read_to_string(p.d.path("serve.log")).expect("log");
    let gave_up: Vec<&str> = log.lines().filter(|l| l.contains("gave up delivering a logout token")).collect();
    assert_eq!(gave_up.len(), 1, "{log}");
    assert!(gave_up[0].contains("logout.backchannel.failed") && gave_up[0].contains("bc-refuses"), "{}", gave_up[0]);
}

/// A logout whose deliveries cannot be enqueued (the database refuses the write) fails and
/// leaves the session as it was, so that no relying party is left logged in unknowingly; once
/// the database takes writes again, the same logout ends the session and is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_whose_deliveries_cannot_be_enqueued_leaves_the_session() {
    let (rp, tokens) = backchannel_endpoint(0);
    let mut p = Provider::start_with(|d| {
        d.set_env("HAWIYA_BACKCHANNEL_RETRY", "100,30");
        d.serve();
    });
    p.add_backchannel_client("bc-refused", rp);
    let cb = "https://bc.example.jo/cb";
    let mut b = p.browser();
    let location = b.login(&p.authorize_url("bc-refused", cb, &[]), CITIZEN, PASSWORD).await;
    let id_token = p.exchange("bc-refused", cb, &location).await["id_token"].as_str().expect("id_token").to_owned();
    let db = p.d.data.join("hawiya.db");
    let sql = |statement: &str| {
        let out = hawiya_e2e::run(
            std::process::Command::new("python3")
                .args(["-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2]); c.commit()"])
                .arg(&db)
                .arg(statement),
        );
        assert!(out.status.success(), "{}", hawiya_e2e::output_text(&out));
    };
    sql("CREATE TRIGGER refuse_deliveries BEFORE INSERT ON deliveries BEGIN SELECT RAISE(ABORT, 'refused by the test'); END");
    let r = b.get(&format!("{}/logout?id_token_hint={id_token}", p.issuer)).await;
    assert!(r.status >= 500, "the logout fails: {} {}", r.status, r.body);
    assert_eq!(hawiya_e2e::smart_id::sqlite_count(&p.d, "SELECT count(*) FROM deliveries"), 0);
    // The session is still there: a code without any page.
    let r = b.get(&p.authorize_url("bc-refused", cb, &[("prompt", "none")])).await;
    assert!(param(&r.location.clone().expect("redirect"), "code").is_some(), "still logged in: {:?}", r.location);
    assert!(tokens.recv_timeout(std::time::Duration::from_millis(500)).is_err(), "nothing delivered");
    sql("DROP TRIGGER refuse_deliveries");
    let r = b.get(&format!("{}/logout?id_token_hint={id_token}", p.issuer)).await;
    assert_eq!(r.status, 200, "logged out once the database takes writes");
    let token = tokens.recv_timeout(std::time::Duration::from_secs(20)).expect("the logout token");
    let sid = p.verify_id_token(&id_token).await["sid"].as_str().expect("sid").to_owned();
    assert_eq!(p.logout_sid(&token, "bc-refused").await, sid);
    let r = b.get(&p.authorize_url("bc-refused", cb, &[("prompt", "none")])).await;
    assert_eq!(param(&r.location.expect("redirect"), "error").as_deref(), Some("login_required"));
}

/// Two replicas on one PostgreSQL (and Redis) both poll the queue: each logout, whichever
/// replica ended the session, reaches the relying party once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_postgres_deliver_each_logout_once() {
    let (rp, tokens) = backchannel_endpoint(0);
    let second = free_port();
    let mut p = Provider::start_on(Keys::Soft, Db::Postgres, |d| {
        d.set_env("HAWIYA_REDIS_URL", &redis_url());
        d.set_env("HAWIYA_REDIS_PREFIX", &unique_prefix());
        d.set_env("HAWIYA_BACKCHANNEL_RETRY", "100,30");
        d.serve();
        d.replica(second);
    });
    p.add_backchannel_client("bc-twice", rp);
    let mut sids = Vec::new();
    for port in [p.d.port, second, p.d.port, second] {
        sids.push(p.login_and_logout("bc-twice", port).await);
    }
    let mut received = Vec::new();
    for _ in &sids {
        let token = tokens.recv_timeout(std::time::Duration::from_secs(20)).expect("a logout token");
        received.push(p.logout_sid(&token, "bc-twice").await);
    }
    // Both replicas poll every 100 ms meanwhile: nothing is delivered twice.
    assert!(tokens.recv_timeout(std::time::Duration::from_secs(2)).is_err(), "each logout delivered once");
    sids.sort();
    received.sort();
    assert_eq!(received, sids, "every session's logout, once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_sharing_redis_act_as_one_provider() {
    let second = free_port();
    let p = Provider::start_with(|d| {
        d.set_env("HAWIYA_REDIS_URL", &redis_url());
        d.set_env("HAWIYA_REDIS_PREFIX", &unique_prefix());
        d.serve();
        d.replica(second);
    });
    let mut a = p.browser();
    // Logged in on the first replica…
    let location = a.login(&p.authorize_url("civil-status", CB, &[]), CITIZEN, PASSWORD).await;
    assert!(param(&location, "code").is_some());
    // …an SSO session on the second: a code without any page.
    let mut b = Browser { cookies: a.cookies.clone(), ..Browser::new(p.http_to(second), &p.issuer) };
    let r = b.get(&p.authorize_url("civil-status", CB, &[("prompt", "none")])).await;
    let location = r.location.expect("redirect");
    let code = param(&location, "code").unwrap_or_else(|| panic!("no SSO on the second replica: {location}"));
    // A code issued by one replica is redeemed once, on either.
    let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", CB)];
    let on = |port: u16| p.http_to(port).post(format!("{}/token", p.issuer)).basic_auth("civil-status", Some(&p.secrets["civil-status"])).form(&form).send();
    assert_eq!(on(p.d.port).await.expect("token").status(), 200);
    assert_eq!(on(second).await.expect("token").status(), 400, "the code is spent on every replica");
    // Logging out on the second ends the session on the first.
    let r = b.get(&format!("{}/logout", p.issuer)).await;
    let csrf = hidden(&r.body, "csrf");
    let r = b.post("/logout/confirm", &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 200);
    let r = a.get(&p.authorize_url("civil-status", CB, &[("prompt", "none")])).await;
    assert_eq!(param(&r.location.expect("redirect"), "error").as_deref(), Some("login_required"));
}

/// The `openidconnect` crate (an independent, certified-client-style library) as the
/// relying party: discovery, code flow with PKCE, `private_key_jwt`, id_token verified by
/// the library against the JWKS, refresh, and userinfo with language-tagged claims.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openidconnect_crate_runs_the_code_flow() {
    use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreUserInfoClaims};
    use openidconnect::{
        AccessTokenHash, AuthType, AuthorizationCode, ClientId, CsrfToken, IssuerUrl, LanguageTag, Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl,
        Scope, TokenResponse,
    };
    let p = Provider::start();
    let http = p.http();
    let metadata = CoreProviderMetadata::discover_async(IssuerUrl::new(p.issuer.clone()).expect("issuer"), &http).await.expect("discovery");
    let client = CoreClient::from_provider_metadata(metadata, ClientId::new("jwt-rp".into()), None)
        .set_redirect_uri(RedirectUrl::new("https://jwt.example.jo/cb".into()).expect("redirect"))
        .set_auth_type(AuthType::RequestBody);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, nonce) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("profile".into()))
        .add_extra_param("claims_locales", "ar en")
        .set_pkce_challenge(challenge)
        .url();
    let mut b = p.browser();
    let location = b.login(url.as_str(), CITIZEN, PASSWORD).await;
    assert_eq!(param(&location, "state").as_deref(), Some(csrf.secret().as_str()));
    let code = param(&location, "code").expect("code");
    let assertion_type = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
    let token_url = format!("{}/token", p.issuer);
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .expect("token endpoint")
        .set_pkce_verifier(verifier)
        .add_extra_param("client_assertion_type", assertion_type)
        .add_extra_param("client_assertion", p.assertion(&token_url, "oidc-crate-1"))
        .request_async(&http)
        .await
        .expect("code exchange");
    // The library verifies the id_token itself: signature (ES256, as registered), issuer,
    // audience, expiry, nonce, and the access token hash.
    let id_token = tokens.id_token().expect("id_token");
    let verifier = client.id_token_verifier().set_allowed_algs(vec![CoreJwsSigningAlgorithm::EcdsaP256Sha256]);
    let claims = id_token.claims(&verifier, &nonce).expect("the library accepts the id_token");
    let at_hash =
        AccessTokenHash::from_token(tokens.access_token(), id_token.signing_alg().expect("alg"), id_token.signing_key(&verifier).expect("key")).expect("hash");
    assert_eq!(claims.access_token_hash(), Some(&at_hash));
    assert_eq!(claims.auth_context_ref().map(|a| a.as_str()), Some("low"));
    let sub = claims.subject().clone();

    let refreshed = client
        .exchange_refresh_token(tokens.refresh_token().expect("refresh token"))
        .expect("token endpoint")
        .add_extra_param("client_assertion_type", assertion_type)
        .add_extra_param("client_assertion", p.assertion(&token_url, "oidc-crate-2"))
        .request_async(&http)
        .await
        .expect("refresh");
    assert_ne!(refreshed.refresh_token().expect("rotated").secret(), tokens.refresh_token().expect("first").secret());

    let info: CoreUserInfoClaims =
        client.user_info(refreshed.access_token().clone(), Some(sub.clone())).expect("userinfo endpoint").request_async(&http).await.expect("userinfo");
    assert_eq!(info.subject(), &sub);
    let name = info.name().expect("name");
    assert_eq!(name.get(Some(&LanguageTag::new("ar".into()))).map(|n| n.as_str()), Some("ليلى حداد"));
    assert_eq!(name.get(Some(&LanguageTag::new("en".into()))).map(|n| n.as_str()), Some("Layla Haddad"));
}

/// The rest of the basic plan, module by module, on one provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_basic_plan_sweep() {
    let p = Provider::start();
    let rp = "https://rp.example.jo/other";
    let mut b = p.browser();
    // oidcc-ensure-request-without-nonce-succeeds-for-code-flow,
    // oidcc-ensure-request-with-unknown-parameter-succeeds, oidcc-display-page
    let url = p.authorize_url("same-sector", rp, &[("display", "page"), ("x-unknown", "ignored")]).replace("&nonce=n-1", "");
    let location = b.login(&url, CITIZEN, PASSWORD).await;
    let tokens = p.exchange("same-sector", rp, &location).await;
    let claims = p.verify_id_token(tokens["id_token"].as_str().expect("id_token")).await;
    assert!(claims.get("nonce").is_none());
    // oidcc-scope-profile, -email, -phone, -address, -all
    for (scope, expect, absent) in [
        ("openid profile", &["name", "given_name", "family_name", "birthdate"][..], &["email", "phone_number", "address"][..]),
        ("openid email", &["email", "email_verified"][..], &["name", "phone_number"][..]),
        ("openid phone", &["phone_number", "phone_number_verified"][..], &["email", "address"][..]),
        ("openid address", &["address"][..], &["email", "name"][..]),
        ("openid profile email address phone", &["name", "email", "phone_number", "address"][..], &["national_id"][..]),
    ] {
        let url = p
            .authorize_url("same-sector", rp, &[("display", "popup")])
            .replace("scope=openid+profile+email+phone", &format!("scope={}", scope.replace(' ', "+")));
        let r = b.get(&url).await;
        let location = b.through_consent(r).await;
        let tokens = p.exchange("same-sector", rp, &location).await;
        assert_eq!(tokens["scope"], scope, "the granted scope");
        let info = p.userinfo(&tokens).await;
        for c in expect {
            assert!(info.get(*c).is_some(), "{scope}: no {c} in {info}");
        }
        for c in absent {
            assert!(info.get(*c).is_none(), "{scope}: {c} in {info}");
        }
    }
    // Consent is remembered per client and set of claims, and revocable.
    let r = b.get(&p.authorize_url("same-sector", rp, &[]).replace("scope=openid+profile+email+phone", "scope=openid+profile")).await;
    assert!(param(&r.location.expect("silent: consented before"), "code").is_some());
    let e = p.d.fails(&["citizen", "revoke-consent", "--national-id", CITIZEN, "--client", "nobody"]);
    assert!(e.contains("no consent"), "{e}");
    let rt = tokens["refresh_token"].as_str().expect("refresh token of the consented grant");
    p.d.ok(&["citizen", "revoke-consent", "--national-id", CITIZEN, "--client", "same-sector"]);
    let (status, body) = p.token_as("same-sector", &p.secrets["same-sector"], &[("grant_type", "refresh_token"), ("refresh_token", rt)]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "withdrawn consent revokes the refresh tokens it allowed");
    let r = b.get(&p.authorize_url("same-sector", rp, &[("prompt", "none")])).await;
    assert_eq!(param(&r.location.expect("redirect"), "error").as_deref(), Some("consent_required"), "asked again after revocation");
    let r = b.get(&p.authorize_url("same-sector", rp, &[])).await;
    b.through_consent(r).await;
    // oidcc-ensure-post-request-succeeds, oidcc-alternate-happy-flow
    let r = b
        .post("/authorize", &[("client_id", "same-sector"), ("redirect_uri", rp), ("response_type", "code"), ("scope", "openid profile"), ("state", "post-1")])
        .await;
    let l = r.location.expect("redirect");
    assert_eq!(param(&l, "state").as_deref(), Some("post-1"));
    assert!(param(&l, "code").is_some(), "{l}");
    // oidcc-max-age-10000: the session is young enough; auth_time is in the id_token.
    let r = b.get(&p.authorize_url("same-sector", rp, &[("max_age", "10000")])).await;
    let tokens = p.exchange("same-sector", rp, &r.location.expect("silent")).await;
    assert!(p.verify_id_token(tokens["id_token"].as_str().expect("id_token")).await.get("auth_time").is_some());
    // oidcc-id-token-hint: with prompt=none, a hint of this citizen is accepted.
    let hint = tokens["id_token"].as_str().expect("id_token").to_owned();
    let r = b.get(&p.authorize_url("same-sector", rp, &[("prompt", "none"), ("id_token_hint", &hint)])).await;
    assert!(param(&r.location.expect("redirect"), "code").is_some());
    let r = b.get(&p.authorize_url("same-sector", rp, &[("prompt", "none"), ("id_token_hint", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln")])).await;
    assert_eq!(param(&r.location.expect("redirect"), "error").as_deref(), Some("invalid_request"), "a forged hint");
    // oidcc-login-hint: the identifier is pre-filled.
    let mut fresh = p.browser();
    let r = fresh.get(&p.authorize_url("same-sector", rp, &[("login_hint", CITIZEN)])).await;
    let (page, _) = fresh.follow(r).await;
    assert!(page.body.contains(&format!(r#"id="national_id" name="national_id" value="{CITIZEN}""#)), "{}", page.body);
    // oidcc-codereuse-30seconds: the module waits 30 s before the second use; a spent code
    // is refused whenever it comes back (its record outlives the tokens it gave).
    let location = fresh.login(&p.authorize_url("same-sector", rp, &[]), CITIZEN, PASSWORD).await;
    let code = param(&location, "code").expect("code");
    let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", rp)];
    let (status, _) = p.token_as("same-sector", &p.secrets["same-sector"], &form).await;
    assert_eq!(status, 200);
    let (status, body) = p.token_as("same-sector", &p.secrets["same-sector"], &form).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    // Missing and unsupported grant parameters.
    let (status, body) = p.token_as("same-sector", &p.secrets["same-sector"], &[("code", "x")]).await;
    assert_eq!((status, body["error_description"].as_str()), (400, Some("missing parameter grant_type")));
    let (status, body) = p.token_as("same-sector", &p.secrets["same-sector"], &[("grant_type", "password")]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("unsupported_grant_type")));
    // Introspection for a resource server, and revocation.
    let at = tokens["access_token"].as_str().expect("at");
    let i = p.introspect_as("same-sector", at).await;
    assert_eq!((i["active"].as_bool(), i["client_id"].as_str()), (Some(true), Some("same-sector")));
    assert_eq!(p.introspect(at).await, json!({"active": false}), "another service learns nothing about the token");
    let r = p
        .http()
        .post(format!("{}/revoke", p.issuer))
        .basic_auth("same-sector", Some(&p.secrets["same-sector"]))
        .form(&[("token", at)])
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.status(), 200);
    assert_eq!(p.introspect_as("same-sector", at).await["active"], false);
    // oidcc-rp-initiated-logout-no-params, -no-state, -only-state,
    // -no-post-logout-redirect-uri: each handled without a redirect to anywhere unknown.
    for query in ["", "?state=only", &format!("?id_token_hint={hint}")] {
        let r = b.get(&format!("{}/logout{query}", p.issuer)).await;
        assert_eq!((r.status, r.location.clone()), (200, None), "logout{query}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_request_object_signed() {
    let p = Provider::start();
    let jwt_cb = "https://jwt.example.jo/cb";
    let object = |redirect_uri: &str| {
        p.signed(&json!({
            "iss": "jwt-rp", "aud": p.issuer, "client_id": "jwt-rp", "response_type": "code", "redirect_uri": redirect_uri,
            "scope": "openid profile", "state": "ro-1", "nonce": "ro-n", "max_age": 3600,
        }))
    };
    let authorize = |request: &str, extra: &str| format!("{}/authorize?client_id=jwt-rp&response_type=code&scope=openid&request={request}{extra}", p.issuer);
    // The parameters come from the signed object, the redirect URI included.
    let mut b = p.browser();
    let location = b.login(&authorize(&object(jwt_cb), ""), CITIZEN, PASSWORD).await;
    assert!(location.starts_with(jwt_cb) && param(&location, "state").as_deref() == Some("ro-1"), "{location}");
    let code = param(&location, "code").expect("code");
    let token_url = format!("{}/token", p.issuer);
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", jwt_cb),
        ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
        ("client_assertion", &p.assertion(&token_url, "ro-jti")),
    ];
    let tokens: Value = p.http().post(&token_url).form(&form).send().await.expect("token").json().await.expect("json");
    let claims = p.verify_id_token(tokens["id_token"].as_str().expect("id_token")).await;
    assert_eq!(claims["nonce"], "ro-n", "the nonce of the request object");
    // A redirect URI inside the object is checked like any other: never followed if foreign.
    let r = b.get(&authorize(&object("https://evil.example/cb"), "")).await;
    assert_eq!((r.status, r.location), (400, None));
    // A tampered object is refused back to the registered redirect URI of the query.
    let good = object(jwt_cb);
    let mut parts: Vec<&str> = good.split('.').collect();
    let forged = B64.encode(json!({"iss": "jwt-rp", "aud": p.issuer, "redirect_uri": jwt_cb, "scope": "openid national_id"}).to_string());
    parts[1] = &forged;
    let r = b.get(&authorize(&parts.join("."), &format!("&redirect_uri={jwt_cb}"))).await;
    assert_eq!(param(&r.location.expect("redirect"), "error").as_deref(), Some("invalid_request_object"));
    // A client without registered keys cannot sign request objects.
    let r = b.get(&format!("{}&request={good}", p.authorize_url("civil-status", CB, &[]))).await;
    assert_eq!(param(&r.location.expect("redirect"), "error").as_deref(), Some("invalid_request_object"));
}

/// Serves whatever `jwks` holds at any path, like a relying party publishing its keys.
fn jwks_endpoint(jwks: std::sync::Arc<std::sync::Mutex<String>>) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 2 {
                line.clear();
            }
            let body = jwks.lock().expect("lock").clone();
            let _ = stream.write_all(
                format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()).as_bytes(),
            );
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_key_jwt_with_a_jwks_uri_follows_key_rollover() {
    use aws_lc_rs::signature::KeyPair;
    let jwk_of = |key: &aws_lc_rs::signature::EcdsaKeyPair, kid: &str| {
        let public = hsm_shim::PublicKey::from_parts(hsm_shim::KeySpec::EcP256, key.public_key().as_ref()).expect("public");
        hsm_shim::jose::jwk(&public, kid, hsm_shim::SignatureAlgorithm::Es256).expect("jwk")
    };
    let assertion = |key: &aws_lc_rs::signature::EcdsaKeyPair, kid: &str, aud: &str, jti: &str| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs();
        let header = B64.encode(json!({"alg": "ES256", "kid": kid}).to_string());
        let claims = json!({"iss": "uri-rp", "sub": "uri-rp", "aud": aud, "jti": jti, "exp": now + 60});
        let input = format!("{header}.{}", B64.encode(claims.to_string()));
        let sig = key.sign(&aws_lc_rs::rand::SystemRandom::new(), input.as_bytes()).expect("sign");
        format!("{input}.{}", B64.encode(sig.as_ref()))
    };
    let generate = || aws_lc_rs::signature::EcdsaKeyPair::generate(&aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING).expect("key");
    let (first, second) = (generate(), generate());
    let published = std::sync::Arc::new(std::sync::Mutex::new(json!({"keys": [jwk_of(&first, "k1")]}).to_string()));
    let port = jwks_endpoint(published.clone());
    let p = Provider::start();
    let cb = "https://uri.example.jo/cb";
    p.d.ok(&[
        "client",
        "add",
        "--id",
        "uri-rp",
        "--redirect-uri",
        cb,
        "--auth-method",
        "private_key_jwt",
        "--jwks-uri",
        &format!("http://127.0.0.1:{port}/jwks"),
    ]);
    let token_url = format!("{}/token", p.issuer);
    let mut b = p.browser();
    for (round, (key, kid)) in [(&first, "k1"), (&second, "k2")].into_iter().enumerate() {
        if round == 1 {
            // The relying party rolls its key over; the provider's cached copy lacks it.
            *published.lock().expect("lock") = json!({"keys": [jwk_of(&second, "k2")]}).to_string();
        }
        let location = b.login(&p.authorize_url("uri-rp", cb, &[]), CITIZEN, PASSWORD).await;
        let code = param(&location, "code").expect("code");
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", cb),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", &assertion(key, kid, &token_url, &format!("u{round}"))),
        ];
        let r = p.http().post(&token_url).form(&form).send().await.expect("token");
        assert_eq!(r.status(), 200, "round {round}: {}", r.text().await.unwrap_or_default());
    }
    // The retired key no longer authenticates.
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", "x"),
        ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
        ("client_assertion", &assertion(&first, "k1", &token_url, "u-old")),
    ];
    let r = p.http().post(&token_url).form(&form).send().await.expect("token");
    assert_eq!(r.status(), 401);
    // A client with both a JWK Set and a jwks_uri, or neither, is refused at registration.
    let e = p.d.fails(&["client", "add", "--id", "no-keys", "--redirect-uri", cb, "--auth-method", "private_key_jwt"]);
    assert!(e.contains("JWK Set or a jwks_uri"), "{e}");
}

/// Relying parties declared in `policies/services/*.toml` (with a `[registration]` table)
/// exist without `hawiya client add`, are checked by `hawiya policy check`, and cannot be
/// added over or removed from the command line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_declared_in_policy_files() {
    let secret = "a-secret-the-tax-office-was-given-out-of-band-2026";
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let declare = |dir: &std::path::Path, registration: &str| {
        let out = std::process::Command::new("cp").arg("-r").arg(repo.join(".")).arg(dir).output().expect("cp");
        assert!(out.status.success());
        let service = format!(
            "version = 1\nclient_id = \"tax-office\"\nname = {{ ar = \"دائرة الضريبة\", en = \"Tax office\" }}\nmin_level = \"low\"\n\
             scopes = [\"openid\", \"profile\"]\nclaims = [\"sub\", \"name\"]\nresource_servers = [\"same-sector\"]\n\n[registration]\n{registration}"
        );
        std::fs::write(dir.join("services/tax-office.toml"), service).expect("write");
    };
    let policies = tempfile::tempdir().expect("tempdir");
    let hash: String = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes()).as_ref().iter().map(|b| format!("{b:02x}")).collect();
    declare(
        policies.path(),
        &format!(
            "redirect_uris = [\"https://tax.example.jo/cb\"]\ntoken_endpoint_auth_method = \"client_secret_basic\"\n\
             client_secret_sha256 = \"{hash}\"\nid_token_signed_response_alg = \"PS256\"\n"
        ),
    );
    let broken = tempfile::tempdir().expect("tempdir");
    declare(broken.path(), "redirect_uris = []\ntoken_endpoint_auth_method = \"client_secret_basic\"\n");

    let dir = policies.path().to_owned();
    let mut p = Provider::start_with(|d| {
        let config = d.data.join("hawiya.toml");
        let text = std::fs::read_to_string(&config).expect("config");
        let text = text.replacen("version = 1\n", &format!("version = 1\npolicies = {:?}\n", dir.display().to_string()), 1);
        std::fs::write(&config, text).expect("config");
        d.serve();
    });
    p.secrets.insert("tax-office", secret.to_owned());
    let checked = p.d.ok(&["policy", "check", policies.path().to_str().expect("utf-8")]);
    assert!(checked.starts_with("ok:"), "{checked}");
    let e = p.d.fails(&["policy", "check", broken.path().to_str().expect("utf-8")]);
    assert!(e.contains("client tax-office: at least one redirect URI is needed"), "{e}");

    let cb = "https://tax.example.jo/cb";
    let listed = p.d.ok(&["client", "list"]);
    assert!(listed.lines().any(|l| l.starts_with("tax-office\tclient_secret_basic\tlevel low\tpolicy file\t")), "{listed}");
    let e = p.d.fails(&["client", "add", "--id", "tax-office", "--redirect-uri", cb]);
    assert!(e.contains("declared in its policy file"), "{e}");
    let e = p.d.fails(&["client", "remove", "--id", "tax-office"]);
    assert!(e.contains("declared in its policy file"), "{e}");
    // The provider's own clients are not anyone's to register.
    for (own, page) in [("hawiya-account", "account page"), ("hawiya-sign", "signing page")] {
        let e = p.d.fails(&["client", "add", "--id", own, "--redirect-uri", cb]);
        assert!(e.contains(&format!("is the provider's own client (the citizens' {page})")), "{e}");
    }

    let mut b = p.browser();
    let location = b.login(&p.authorize_url("tax-office", cb, &[]), CITIZEN, PASSWORD).await;
    let tokens = p.exchange("tax-office", cb, &location).await;
    let id_token = tokens["id_token"].as_str().expect("id_token");
    assert_eq!(UnverifiedJws::parse(id_token).expect("jws").algorithm, hsm_shim::SignatureAlgorithm::Ps256, "the declared algorithm");
    assert_eq!(p.verify_id_token(id_token).await["aud"], "tax-office");
    // The tax office's policy trusts same-sector as its resource server, and no one else.
    let at = tokens["access_token"].as_str().expect("at");
    let seen = p.introspect_as("same-sector", at).await;
    assert_eq!((seen["active"].as_bool(), seen["client_id"].as_str()), (Some(true), Some("tax-office")), "{seen}");
    assert_eq!(p.introspect_as("civil-status", at).await, json!({"active": false}));
    let (status, body) =
        p.token_as("tax-office", "wrong", &[("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().expect("rt"))]).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
}

/// The citizen's account page: log in through the provider's own client, see the consents
/// given, withdraw one (which also ends the refresh tokens it allowed); CSRF-less posts and
/// posts without a session change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn citizens_see_and_withdraw_their_consents() {
    let p = Provider::start();
    let tokens = p.code_flow(&mut p.browser(), &[]).await;
    let rt = tokens["refresh_token"].as_str().expect("refresh token");

    let mut b = p.browser();
    let r = b.get("/account").await;
    let location = r.location.clone().expect("to the login first");
    assert!(location.contains("client_id=hawiya-account") && location.contains("code_challenge_method=S256"), "{location}");
    let (page, out) = b.follow(r).await;
    assert_eq!((page.status, out), (200, None), "{}", page.body);
    let r = b.submit_login(&page.body, CITIZEN, PASSWORD, None).await;
    let back = r.location.clone().expect("back to the account page");
    assert!(back.starts_with(&format!("{}/account?code=", p.issuer)), "{back}");
    let (page, out) = b.follow(r).await;
    assert_eq!((page.status, out), (200, None), "{}", page.body);
    assert!(page.body.contains("شهادات الأحوال المدنية") && page.body.contains(r#"name="client" value="civil-status""#), "{}", page.body);
    assert!(page.body.contains(r#"dir="rtl""#) && page.body.contains(r#"href="/account?lang=en""#));
    // The code that brought the citizen back was spent there.
    let code = param(&back, "code").expect("code");
    let r = p
        .http()
        .post(format!("{}/token", p.issuer))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", &format!("{}/account", p.issuer)),
            ("client_id", "hawiya-account"),
            ("code_verifier", &"v".repeat(43)),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 400);

    // Without the anti-CSRF token, or without a session: nothing changes.
    let r = b.post("/account/withdraw", &[("client", "civil-status"), ("csrf", &"x".repeat(43))]).await;
    assert_eq!(r.status, 403);
    let csrf = hidden(&page.body, "csrf");
    let mut stranger = p.browser();
    stranger.cookies.insert("__Host-hawiya-csrf".into(), csrf.clone());
    let r = stranger.post("/account/withdraw", &[("client", "civil-status"), ("csrf", &csrf)]).await;
    assert_eq!(r.status, 303, "answered like any withdrawal, but without a session it withdraws nothing");
    let (status, next) = p.token(&[("grant_type", "refresh_token"), ("refresh_token", rt)]).await;
    assert_eq!(status, 200, "the consent still stands: {next}");

    let r = b.post("/account/withdraw", &[("client", "civil-status"), ("csrf", &csrf), ("lang", "en")]).await;
    assert_eq!((r.status, r.location.as_deref()), (303, Some("/account?lang=en&withdrawn=1")));
    let page = b.get("/account?lang=en&withdrawn=1").await;
    assert!(page.body.contains("The consent is withdrawn.") && !page.body.contains(r#"value="civil-status""#), "{}", page.body);
    assert!(page.body.contains("You have not allowed any service to receive your data."), "{}", page.body);
    let (status, body) = p.token(&[("grant_type", "refresh_token"), ("refresh_token", next["refresh_token"].as_str().expect("rt"))]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "withdrawing the consent ended its refresh tokens");
    let r = b.get(&p.authorize_url("civil-status", CB, &[("prompt", "none")])).await;
    assert_eq!(param(&r.location.expect("redirect"), "error").as_deref(), Some("consent_required"));
}

/// Reads a counter from the operators' metrics listener.
async fn metric(p: &Provider, metrics: &str, name: &str) -> u64 {
    let text = p.http().get(format!("http://{metrics}/metrics")).send().await.expect("metrics").text().await.expect("text");
    let line = text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("no {name} in {text}"));
    line[name.len() + 1..].parse::<f64>().expect("number") as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_guesses_at_once_cannot_outrun_the_lockout() {
    let (p, metrics) = Provider::start_with_metrics();
    let mut b = p.browser();
    let r = b.get(&p.authorize_url("civil-status", CB, &[])).await;
    let (page, _) = b.follow(r).await;
    let (tx, csrf) = (hidden(&page.body, "tx"), hidden(&page.body, "csrf"));
    let before = metric(&p, &metrics, "hawiya_password_checks_total").await;
    let mut guesses = Vec::new();
    for i in 0..30 {
        let request = p.http().post(format!("{}/login", p.issuer)).header("cookie", b.cookie_header()).form(&[
            ("tx", tx.as_str()),
            ("csrf", csrf.as_str()),
            ("national_id", CITIZEN),
            ("password", &format!("wrong guess number {i}")),
        ]);
        guesses.push(tokio::spawn(async move { request.send().await.expect("post").status().as_u16() }));
    }
    for g in guesses {
        assert_eq!(g.await.expect("task"), 401);
    }
    let checked = metric(&p, &metrics, "hawiya_password_checks_total").await - before;
    assert!((1..=5).contains(&checked), "{checked} of 30 concurrent guesses were checked against a limit of 5");
    let r = b.submit_login(&page.body, CITIZEN, PASSWORD, None).await;
    assert_eq!(r.status, 401, "the right password is refused too while the citizen is locked");
    assert_eq!(metric(&p, &metrics, "hawiya_password_checks_total").await - before, checked, "and is not even checked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_surge_past_the_password_checks_queue_is_turned_away_at_once_and_counts_against_nobody() {
    // No queue: a login that finds every core checking a password is refused at once.
    let metrics = format!("127.0.0.1:{}", free_port());
    let p = Provider::start_with(|d| {
        d.set_env("HAWIYA_METRICS_LISTEN", &metrics);
        d.set_env("HAWIYA_LOGIN_QUEUE", "0");
        d.serve();
    });
    let mut b = p.browser();
    let r = b.get(&p.authorize_url("civil-status", CB, &[("ui_locales", "en")])).await;
    let (page, _) = b.follow(r).await;
    let (tx, csrf) = (hidden(&page.body, "tx"), hidden(&page.body, "csrf"));
    // One client for all, so that the thirty arrive together.
    let (http, mut surge) = (p.http(), Vec::new());
    for i in 0..30 {
        let request = http.post(format!("{}/login", p.issuer)).header("cookie", b.cookie_header()).form(&[
            ("tx", tx.as_str()),
            ("csrf", csrf.as_str()),
            ("national_id", CITIZEN),
            ("password", &format!("a guess in the surge {i}")),
        ]);
        surge.push(tokio::spawn(async move {
            let r = request.send().await.expect("post");
            let retry_after = r.headers().get("retry-after").map(|v| v.to_str().expect("ascii").to_owned());
            (r.status().as_u16(), retry_after, r.text().await.expect("body"))
        }));
    }
    let (mut checked, mut shed) = (0, 0);
    for answer in surge {
        match answer.await.expect("task") {
            (401, None, _) => checked += 1,
            (503, Some(after), body) if after == "60" && body.contains("please try again in a minute") && body.contains(r#"name="password""#) => shed += 1,
            other => panic!("neither checked nor turned away: {other:?}"),
        }
    }
    assert!(shed >= 20 && checked >= 1, "{checked} checked, {shed} turned away");
    assert_eq!(metric(&p, &metrics, "hawiya_logins_shed_total").await, shed);
    // The citizen's attempts: only the checked guesses counted (five would lock), so the
    // right password still logs in.
    assert!(checked < 5, "{checked} guesses were checked; the test needs fewer than the lockout's five");
    let r = b.submit_login(&page.body, CITIZEN, PASSWORD, None).await;
    assert_eq!(r.status, 303, "the turned-away attempts counted against nobody: {}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_failures_do_not_lock_the_citizen_out_of_their_own_browser() {
    let p = Provider::start();
    // The citizen logs in once in their own browser, which keeps a device cookie.
    let mut own = p.browser();
    own.login(&p.authorize_url("civil-status", CB, &[]), CITIZEN, PASSWORD).await;
    assert!(own.cookies.contains_key("__Host-hawiya-device"), "{:?}", own.cookies.keys());
    // A stranger exhausts the citizen's attempts.
    let mut stranger = p.browser();
    let r = stranger.get(&p.authorize_url("civil-status", CB, &[])).await;
    let (page, _) = stranger.follow(r).await;
    for _ in 0..5 {
        assert_eq!(stranger.submit_login(&page.body, CITIZEN, "a stranger's guess", None).await.status, 401);
    }
    let r = stranger.submit_login(&page.body, CITIZEN, PASSWORD, None).await;
    assert!(r.status == 401 && r.body.contains("١٥ دقيقة"), "strangers are locked out: {}", r.body);
    // A device cookie copied from another citizen's browser, or forged, is a stranger's.
    stranger.cookies.insert("__Host-hawiya-device".into(), format!("{}X", own.cookies["__Host-hawiya-device"]));
    assert_eq!(stranger.submit_login(&page.body, CITIZEN, PASSWORD, None).await.status, 401);
    // The citizen's own browser still logs in (prompt=login asks for the password again).
    let location = own.login(&p.authorize_url("civil-status", CB, &[("prompt", "login")]), CITIZEN, PASSWORD).await;
    assert!(param(&location, "code").is_some(), "{location}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_with_another_sessions_hint_asks_the_citizen_first() {
    let p = Provider::start();
    let mut victim = p.browser();
    p.code_flow(&mut victim, &[]).await;
    // Any id_token of this provider, here one from another browser's session, sent to the
    // victim's browser by a page it visits.
    let mut other = p.browser();
    let tokens = p.code_flow(&mut other, &[]).await;
    let hint = tokens["id_token"].as_str().expect("id_token");
    let mut url = url::Url::parse(&format!("{}/logout", p.issuer)).expect("url");
    url.query_pairs_mut().append_pair("id_token_hint", hint).append_pair("post_logout_redirect_uri", BYE).append_pair("state", "s-9");
    let r = victim.get(url.as_str()).await;
    assert_eq!((r.status, r.location.as_deref()), (200, None), "a confirmation page, not a logout");
    assert!(r.body.contains(r#"action="/logout/confirm""#), "{}", r.body);
    let r = victim.get(&p.authorize_url("civil-status", CB, &[("prompt", "none")])).await;
    assert!(param(&r.location.expect("redirect"), "code").is_some(), "the victim's session is still alive");
    // The citizen confirms: the session ends and they go back to the client, with its state.
    let page = victim.get(url.as_str()).await;
    let form: Vec<(String, String)> =
        ["csrf", "client_id", "post_logout_redirect_uri", "state"].iter().map(|n| (n.to_string(), hidden(&page.body, n))).collect();
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = victim.post("/logout/confirm", &form).await;
    let l = r.location.expect("back to the client");
    assert!(l.starts_with(BYE) && param(&l, "state").as_deref() == Some("s-9"), "{l}");
    let r = victim.get(&p.authorize_url("civil-status", CB, &[("prompt", "none")])).await;
    assert_eq!(param(&r.location.expect("redirect"), "error").as_deref(), Some("login_required"));
    // The other browser's own hint ends its own session at once.
    let r = other.get(url.as_str()).await;
    assert!(r.location.expect("redirect").starts_with(BYE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_endpoints_refuse_what_they_must() {
    let p = Provider::start();
    let mut b = p.browser();
    let tokens = p.code_flow(&mut b, &[]).await;
    let at = tokens["access_token"].as_str().expect("at");
    let endpoint = |path: &str| format!("{}{path}", p.issuer);
    // Introspection: a public client (no authentication) learns nothing.
    let r = p.http().post(endpoint("/introspect")).form(&[("client_id", "hawiya-account"), ("token", at)]).send().await.expect("post");
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"], "invalid_client", "{body}");
    // invalid_client carries a Basic challenge only when the client used Basic (RFC 6749 5.2).
    let r = p.http().post(endpoint("/token")).form(&[("client_id", "post-rp"), ("client_secret", "wrong"), ("grant_type", "refresh_token")]).send().await;
    let r = r.expect("post");
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("www-authenticate").is_none(), "{:?}", r.headers());
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"], "invalid_client");
    let r = p.http().post(endpoint("/token")).basic_auth("civil-status", Some("wrong")).form(&[("grant_type", "refresh_token")]).send().await;
    let r = r.expect("post");
    assert_eq!(
        (r.status(), r.headers().get("www-authenticate").map(|v| v.to_str().expect("ascii"))),
        (401.try_into().expect("status"), Some("Basic realm=\"hawiya\""))
    );
    // Revocation of another client's token is refused, and the token stays active.
    let r = p.http().post(endpoint("/revoke")).basic_auth("same-sector", Some(&p.secrets["same-sector"])).form(&[("token", at)]).send().await.expect("post");
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"], "unauthorized_client", "{body}");
    assert_eq!(p.introspect(at).await["active"], true);
    let rt = tokens["refresh_token"].as_str().expect("rt");
    let r = p.http().post(endpoint("/revoke")).basic_auth("same-sector", Some(&p.secrets["same-sector"])).form(&[("token", rt)]).send().await.expect("post");
    assert_eq!(r.status(), 400);
    assert_eq!(p.introspect(rt).await["active"], true);
    // userinfo: the access token in the query string is refused (RFC 6750 2.3).
    let r = p.http().get(format!("{}?access_token={at}", endpoint("/userinfo"))).send().await.expect("get");
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("www-authenticate").is_some_and(|v| v.to_str().expect("ascii").contains("invalid_request")));
    assert_eq!(p.userinfo(&tokens).await["sub"].as_str().map(str::len), Some(43), "the header still works");
    // Every response names its request for the logs.
    assert_eq!(r.headers().get("x-request-id").map(|v| v.len()), Some(16));
    // A malformed client id is refused where it enters, by the rule the CLI applies.
    let r = p.http().post(endpoint("/token")).basic_auth("a client/id", Some("x")).form(&[("grant_type", "refresh_token")]).send().await.expect("post");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"], "invalid_client");
    assert!(body["error_description"].as_str().expect("description").starts_with("a client id is 1 to 64 characters"), "{body}");
    let r = b.get(&format!("{}/authorize?client_id=%3Cscript%3E&response_type=code&scope=openid&redirect_uri={CB}", p.issuer)).await;
    assert_eq!((r.status, r.location.as_deref()), (400, None));
    assert!(r.body.contains("The client_id is malformed") && !r.body.contains("<script>"), "{}", r.body);
}

/// A copy of the shipped policies with `services/<file>` added, in a directory that lives
/// as long as the returned value; and the provider serving with it.
fn provider_with_service(file: &str, service: &str) -> (Provider, tempfile::TempDir) {
    let policies = tempfile::tempdir().expect("tempdir");
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let out = std::process::Command::new("cp").arg("-r").arg(repo.join(".")).arg(policies.path()).output().expect("cp");
    assert!(out.status.success());
    std::fs::write(policies.path().join("services").join(file), service).expect("write");
    let dir = policies.path().to_owned();
    let p = Provider::start_with(|d| {
        let config = d.data.join("hawiya.toml");
        let text = std::fs::read_to_string(&config).expect("config");
        let text = text.replacen("version = 1\n", &format!("version = 1\npolicies = {:?}\n", dir.display().to_string()), 1);
        std::fs::write(&config, text).expect("config");
        d.serve();
    });
    (p, policies)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_request_uri_signed_rs256() {
    // The notices service signs its request objects with an RSA key and publishes them at a
    // registered request_uri.
    let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("rsa");
    let public = {
        use aws_lc_rs::signature::KeyPair;
        hsm_shim::PublicKey::from_parts(hsm_shim::KeySpec::Rsa2048, key.public_key().as_ref()).expect("public")
    };
    let jwk = hsm_shim::jose::jwk(&public, "notices-1", hsm_shim::SignatureAlgorithm::Rs256).expect("jwk");
    let jwk_toml: Vec<String> = jwk.as_object().expect("object").iter().map(|(k, v)| format!("{k} = {v}")).collect();
    let published = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let port = jwks_endpoint(published.clone());
    let request_uri = format!("http://127.0.0.1:{port}/request.jwt");
    let secret = "the-notices-service-secret-handed-over-out-of-band";
    let hash: String = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes()).as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let cb = "https://notices.example.jo/cb";
    let service = format!(
        "version = 1\nclient_id = \"notices\"\nname = {{ ar = \"التبليغات\", en = \"Notices\" }}\nmin_level = \"low\"\nscopes = [\"openid\", \"profile\"]\n\
         claims = [\"sub\", \"name\"]\nconsent_required = false\n\n[registration]\nredirect_uris = [\"{cb}\"]\ntoken_endpoint_auth_method = \"client_secret_basic\"\n\
         client_secret_sha256 = \"{hash}\"\nrequest_uris = [\"{request_uri}\"]\njwks = {{ keys = [{{ {} }}] }}\n",
        jwk_toml.join(", ")
    );
    let (mut p, _policies) = provider_with_service("notices.toml", &service);
    p.secrets.insert("notices", secret.to_owned());
    assert_eq!(
        p.http().get(format!("{}/.well-known/openid-configuration", p.issuer)).send().await.expect("get").json::<Value>().await.expect("json")["request_uri_parameter_supported"],
        true
    );
    let claims = json!({
        "iss": "notices", "aud": p.issuer, "client_id": "notices", "response_type": "code", "redirect_uri": cb,
        "scope": "openid profile", "state": "ru-1", "nonce": "ru-n",
    });
    let input = format!("{}.{}", B64.encode(br#"{"alg":"RS256","kid":"notices-1"}"#), B64.encode(claims.to_string()));
    let mut signature = vec![0; key.public_modulus_len()];
    key.sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &aws_lc_rs::rand::SystemRandom::new(), input.as_bytes(), &mut signature).expect("sign");
    *published.lock().expect("lock") = format!("{input}.{}", B64.encode(signature));
    let authorize = |uri: &str| {
        let mut url = url::Url::parse(&format!("{}/authorize", p.issuer)).expect("url");
        url.query_pairs_mut()
            .append_pair("client_id", "notices")
            .append_pair("response_type", "code")
            .append_pair("scope", "openid")
            .append_pair("request_uri", uri);
        String::from(url)
    };
    // The parameters come from the fetched object: its redirect URI, state and nonce.
    let mut b = p.browser();
    let location = b.login(&authorize(&format!("{request_uri}#v1")), CITIZEN, PASSWORD).await;
    assert!(location.starts_with(cb) && param(&location, "state").as_deref() == Some("ru-1"), "{location}");
    let tokens = p.exchange("notices", cb, &location).await;
    assert_eq!(p.verify_id_token(tokens["id_token"].as_str().expect("id_token")).await["nonce"], "ru-n");
    // An unregistered request_uri is not fetched; a tampered object is refused.
    let with_redirect = |uri: &str| format!("{}&redirect_uri={cb}&state=x", authorize(uri));
    let r = b.get(&with_redirect(&format!("http://127.0.0.1:{port}/other.jwt"))).await;
    assert_eq!(param(&r.location.expect("redirect"), "error").as_deref(), Some("invalid_request_uri"));
    let good = published.lock().expect("lock").clone();
    let mut parts: Vec<&str> = good.split('.').collect();
    let forged = B64.encode(json!({"iss": "notices", "aud": p.issuer, "redirect_uri": cb, "scope": "openid national_id"}).to_string());
    parts[1] = &forged;
    *published.lock().expect("lock") = parts.join(".");
    let r = b.get(&with_redirect(&request_uri)).await;
    assert_eq!(param(&r.location.expect("redirect"), "error").as_deref(), Some("invalid_request_object"));
    // Too large: refused without reading it all.
    *published.lock().expect("lock") = "a".repeat(100 * 1024);
    let r = b.get(&with_redirect(&request_uri)).await;
    let l = r.location.expect("redirect");
    assert_eq!(param(&l, "error").as_deref(), Some("invalid_request_uri"), "{l}");
    // Both request and request_uri: refused.
    let r = b.get(&format!("{}&request={good}", with_redirect(&request_uri))).await;
    assert_eq!(param(&r.location.expect("redirect"), "error").as_deref(), Some("invalid_request"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_ensure_request_object_with_redirect_uri() {
    let p = Provider::start();
    let jwt_cb = "https://jwt.example.jo/cb";
    let object = |redirect_uri: &str| {
        p.signed(&json!({"iss": "jwt-rp", "aud": p.issuer, "client_id": "jwt-rp", "response_type": "code", "redirect_uri": redirect_uri, "scope": "openid"}))
    };
    let authorize = |request: &str, query_redirect: &str| {
        format!("{}/authorize?client_id=jwt-rp&response_type=code&scope=openid&redirect_uri={query_redirect}&request={request}", p.issuer)
    };
    let mut b = p.browser();
    // A foreign redirect URI inside the object is not followed, even with a registered one
    // in the query: the object's value is the one checked.
    let r = b.get(&authorize(&object("https://evil.example/cb"), jwt_cb)).await;
    assert_eq!((r.status, r.location), (400, None));
    // The object's registered redirect URI wins over the query's.
    let r = b.get(&authorize(&object(jwt_cb), "https://evil.example/cb")).await;
    let (page, out) = b.follow(r).await;
    assert!(out.is_none() && page.body.contains(r#"name="password""#), "the login page: {out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_display_popup() {
    let p = Provider::start();
    let mut b = p.browser();
    let location = b.login(&p.authorize_url("civil-status", CB, &[("display", "popup")]), CITIZEN, PASSWORD).await;
    assert!(param(&location, "code").is_some(), "{location}");
    let r = b.get(&p.authorize_url("civil-status", CB, &[("display", "fullscreen")])).await;
    assert_eq!(param(&r.location.expect("redirect"), "error").as_deref(), Some("invalid_request"), "an unknown display value");
}

/// The logout URL with `extra` parameters.
fn logout_url(p: &Provider, extra: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&format!("{}/logout", p.issuer)).expect("url");
    for (k, v) in extra {
        url.query_pairs_mut().append_pair(k, v);
    }
    url.into()
}

/// Whether the browser's SSO session is alive (a silent login returns a code).
async fn logged_in(p: &Provider, b: &mut Browser) -> bool {
    let r = b.get(&p.authorize_url("civil-status", CB, &[("prompt", "none")])).await;
    param(&r.location.expect("redirect"), "code").is_some()
}

/// A provider and a browser logged in to civil-status; the id_token it received.
async fn logged_in_browser() -> (Provider, Browser, String) {
    let p = Provider::start();
    let mut b = p.browser();
    let tokens = p.code_flow(&mut b, &[]).await;
    let id_token = tokens["id_token"].as_str().expect("id_token").to_owned();
    (p, b, id_token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_rp_initiated_logout_bad_id_token_hint() {
    let (p, mut b, _) = logged_in_browser().await;
    // A well-formed id_token signed by someone else's key.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs();
    let forged = p.signed(&json!({"iss": p.issuer, "aud": "civil-status", "sub": "x", "iat": now, "exp": now + 600}));
    let r = b.get(&logout_url(&p, &[("id_token_hint", &forged), ("post_logout_redirect_uri", BYE)])).await;
    assert_eq!((r.status, r.location), (400, None));
    assert!(logged_in(&p, &mut b).await, "a refused logout changes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_rp_initiated_logout_no_post_logout_redirect_uri() {
    let (p, mut b, hint) = logged_in_browser().await;
    let r = b.get(&logout_url(&p, &[("id_token_hint", &hint)])).await;
    assert_eq!((r.status, r.location), (200, None), "the provider's own logged-out page");
    assert!(!logged_in(&p, &mut b).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_rp_initiated_logout_no_state() {
    let (p, mut b, hint) = logged_in_browser().await;
    let r = b.get(&logout_url(&p, &[("id_token_hint", &hint), ("post_logout_redirect_uri", BYE)])).await;
    assert_eq!(r.location.as_deref(), Some(BYE), "exactly the registered URI, no state added");
    assert!(!logged_in(&p, &mut b).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_rp_initiated_logout_only_state() {
    let (p, mut b, _) = logged_in_browser().await;
    let r = b.get(&logout_url(&p, &[("state", "only")])).await;
    assert_eq!((r.status, r.location), (200, None), "no hint: the citizen is asked, nobody is redirected");
    assert!(r.body.contains(r#"action="/logout/confirm""#), "{}", r.body);
    assert!(logged_in(&p, &mut b).await, "nothing ends before the citizen confirms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_rp_initiated_logout_query_added_to_post_logout_redirect_uri() {
    let (p, mut b, hint) = logged_in_browser().await;
    let r = b.get(&logout_url(&p, &[("id_token_hint", &hint), ("post_logout_redirect_uri", &format!("{BYE}?x=1"))])).await;
    assert_eq!((r.status, r.location), (400, None));
    assert!(logged_in(&p, &mut b).await);
}

/// Logs in to `same-sector` (whose default policy allows every standard scope) with
/// `scope`, and returns the userinfo claims.
async fn userinfo_for_scope(scope: &str) -> Value {
    let p = Provider::start();
    let mut b = p.browser();
    let cb = "https://rp.example.jo/other";
    let url = p.authorize_url("same-sector", cb, &[]).replace("scope=openid+profile+email+phone", &format!("scope={}", scope.replace(' ', "+")));
    let location = b.login(&url, CITIZEN, PASSWORD).await;
    let tokens = p.exchange("same-sector", cb, &location).await;
    assert_eq!(tokens["scope"], scope);
    p.userinfo(&tokens).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_scope_email() {
    let info = userinfo_for_scope("openid email").await;
    assert_eq!((info["email"].as_str(), info["email_verified"].is_boolean()), (Some("layla@example.jo"), true), "{info}");
    assert!(info.get("phone_number").is_none() && info.get("name").is_none(), "{info}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_scope_phone() {
    let info = userinfo_for_scope("openid phone").await;
    assert_eq!((info["phone_number"].as_str(), info["phone_number_verified"].is_boolean()), (Some("+962790000001"), true), "{info}");
    assert!(info.get("email").is_none(), "{info}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_scope_address() {
    let info = userinfo_for_scope("openid address").await;
    assert_eq!(info["address"]["formatted"], "شارع الملكة رانيا، عمّان", "{info}");
    assert!(info.get("email").is_none(), "{info}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_scope_all() {
    let info = userinfo_for_scope("openid profile email address phone").await;
    for claim in ["name", "given_name", "family_name", "birthdate", "email", "phone_number", "address"] {
        assert!(info.get(claim).is_some(), "{claim} missing: {info}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_page_refuses_a_malformed_national_id_with_the_clis_rule() {
    let p = Provider::start();
    let mut b = p.browser();
    let r = b.get(&p.authorize_url("civil-status", CB, &[("ui_locales", "en")])).await;
    let (page, _) = b.follow(r).await;
    for bad in ["98-61", "1234", "٩٨٦١٢٣٤٥٦٧", &"9".repeat(21), "<script>"] {
        let r = b.submit_login(&page.body, bad, PASSWORD, None).await;
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.body.contains("A national id is 5 to 20 digits (0-9).") && !r.body.contains("<script>"), "{bad}: {}", r.body);
    }
    // Refused where it entered: no attempt was counted, the citizen logs in at once.
    let r = b.submit_login(&page.body, CITIZEN, PASSWORD, None).await;
    let location = b.through_consent(r).await;
    assert!(param(&location, "code").is_some(), "{location}");
    // The CLI says the same.
    let e = p.d.fails(&["citizen", "totp-enroll", "--national-id", "98-61"]);
    assert!(e.contains("a national id is 5 to 20 digits (0-9)"), "{e}");
}

/// Two replicas of one deployment on `keys` and `db`, sharing the Redis at `redis`, each
/// checked ready: the durable store, Redis and the key store each answered `/readyz`'s
/// check. The provider and the second replica's port.
async fn two_replicas_ready(keys: Keys, db: Db, redis: &str) -> (Provider, u16) {
    let second = free_port();
    let p = Provider::start_on(keys, db, |d| {
        d.set_env("HAWIYA_REDIS_URL", redis);
        d.set_env("HAWIYA_REDIS_PREFIX", &unique_prefix());
        d.serve();
        d.replica(second);
    });
    for port in [p.d.port, second] {
        let r = p.http_to(port).get(format!("{}/readyz", p.issuer)).send().await.expect("readyz");
        assert_eq!(r.status(), 200);
        let ready: Value = r.json().await.expect("json");
        for component in ["durable_store", "ephemeral_store", "key_store"] {
            assert_eq!(ready["checks"][component]["status"], "ok", "{ready}");
        }
    }
    (p, second)
}

/// The provider on the production stack: its signing keys in a PKCS#11 token (SoftHSM2), the
/// durable store on PostgreSQL, and sessions, codes, replay caches and login limits in Redis,
/// shared by two replicas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_on_pkcs11_postgresql_and_redis() {
    let (p, second) = two_replicas_ready(Keys::Pkcs11, Db::Postgres, &redis_url()).await;
    let mut b = p.browser();
    let tokens = p.code_flow(&mut b, &[]).await;
    let claims = p.verify_id_token(tokens["id_token"].as_str().expect("id_token")).await;
    assert_eq!((claims["aud"].as_str(), claims["acr"].as_str()), (Some("civil-status"), Some("low")), "{claims}");
    // Refresh tokens rotate in PostgreSQL; a reused one revokes the family.
    let first = tokens["refresh_token"].as_str().expect("rt");
    let (status, rotated) = p.token(&[("grant_type", "refresh_token"), ("refresh_token", first)]).await;
    assert_eq!(status, 200, "{rotated}");
    let (status, body) = p.token(&[("grant_type", "refresh_token"), ("refresh_token", first)]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    let (status, _) = p.token(&[("grant_type", "refresh_token"), ("refresh_token", rotated["refresh_token"].as_str().expect("rt"))]).await;
    assert_eq!(status, 400, "the reuse revoked the rotated token too");
    // The login limit is one count for every replica.
    let mut stranger = p.browser();
    let mut other = Browser::new(p.http_to(second), &p.issuer);
    for (i, browser) in [&mut stranger, &mut other].into_iter().enumerate() {
        let r = browser.get(&p.authorize_url("civil-status", CB, &[])).await;
        let (page, _) = browser.follow(r).await;
        for _ in 0..(2 + i) {
            assert_eq!(browser.submit_login(&page.body, CITIZEN_NO_TOTP, "a wrong password", None).await.status, 401);
        }
    }
    let r = stranger.get(&p.authorize_url("civil-status", CB, &[])).await;
    let (page, _) = stranger.follow(r).await;
    let r = stranger.submit_login(&page.body, CITIZEN_NO_TOTP, PASSWORD, None).await;
    assert!(r.status == 401 && r.body.contains("١٥ دقيقة"), "locked after five failures on two replicas: {}", r.body);
}

/// The provider on PostgreSQL and Redis that speak TLS only: two replicas connect with the
/// servers verified against the test CA (`sslmode=verify-full sslrootcert=…`,
/// `rediss://…?cacert=…`), answer `/readyz` with every store ready, and serve a login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_on_tls_postgresql_and_redis() {
    let (p, _) = two_replicas_ready(Keys::Soft, Db::PostgresTls, &redis_tls_url()).await;
    let mut b = p.browser();
    let tokens = p.code_flow(&mut b, &[]).await;
    let (status, rotated) = p.token(&[("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().expect("rt"))]).await;
    assert_eq!(status, 200, "{rotated}");
}

/// `hawiya serve` refuses, in one error line and before it listens, a connection string that says
/// nothing about TLS and names no CA (the default is verify-full), another CA's certificate,
/// and plaintext Redis to a host that is not loopback.
#[test]
fn serve_refuses_unverified_database_connections() {
    let d = Deployment::new(Keys::Soft, Db::PostgresTls);
    let url = d.env("HAWIYA_DATABASE_URL").expect("the deployment's database");
    let listen = format!("127.0.0.1:{}", free_port());
    let serve = |(name, value): (&str, &str)| {
        let out = hawiya_e2e::run(d.command(&["serve", "--listen", &listen]).env(name, value));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        // What it logged before (the configuration it loaded) aside, one error line.
        let errors: Vec<_> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
        assert!(!out.status.success() && errors.len() == 1, "must fail with one error line: {stderr}");
        errors[0].to_owned()
    };
    let no_tls_setting: String = url.split(' ').filter(|p| !p.starts_with("sslmode=") && !p.starts_with("sslrootcert=")).collect::<Vec<_>>().join(" ");
    let e = serve(("HAWIYA_DATABASE_URL", &no_tls_setting));
    assert!(e.starts_with("error: cannot open PostgreSQL: sslmode=verify-full needs sslrootcert=<CA file>"), "{e}");
    let e = serve(("HAWIYA_DATABASE_URL", &hawiya_e2e::other_ca(&url)));
    assert!(e.contains("invalid peer certificate: UnknownIssuer"), "{e}");
    let e = serve(("HAWIYA_REDIS_URL", "redis://192.0.2.7:6379/"));
    assert!(e.starts_with("error: cannot open Redis: redis:// to 192.0.2.7 would send the password and every session in plaintext"), "{e}");
}

/// Operators' JSON logs (`HAWIYA_LOG_FORMAT=json`, every level of every target): a password
/// + one-time-code login, consent, a code exchange, a refresh and refused requests through
/// the real HTTP stack leave one JSON object per line, each line logged while a request was
/// served carrying that request's id, and not one of the secrets used: the password (right
/// and wrong), the one-time code, the authorization code, the access, refresh and id
/// tokens, the client secret (right and wrong) and the session and anti-CSRF cookies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_request_id_and_never_a_secret() {
    let p = Provider::start_with(|d| {
        d.set_env("HAWIYA_LOG_FORMAT", "json");
        d.set_env("RUST_LOG", "trace");
        // A checkpoint every second the chain grows.
        d.set_env("HAWIYA_AUDIT_CHECKPOINT", "1,1");
        let log = d.path("server.log");
        d.serve_logging_to(&log);
    });
    let mut b = p.browser();
    let land = "https://land.example.jo/cb";
    let url = p.authorize_url("land-registry", land, &[]);
    let r = b.get(&url).await;
    let (page, _) = b.follow(r).await;
    assert!(page.body.contains(r#"name="code""#), "substantial asks for the one-time code: {}", page.body);
    // A wrong password first (refused), then the right one with the code.
    let wrong_password = "not the password 7391";
    let r = b.submit_login(&page.body, CITIZEN, wrong_password, Some("000000")).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = b.get(&url).await;
    let (page, _) = b.follow(r).await;
    let otp = p.totp_code(0);
    let r = b.submit_login(&page.body, CITIZEN, PASSWORD, Some(&otp)).await;
    let location = b.through_consent(r).await;
    let code = param(&location, "code").expect("code");
    let session_cookie = b.cookies.get(idp::http::SESSION_COOKIE).expect("session cookie").clone();
    let csrf_cookie = b.cookies.get(idp::http::CSRF_COOKIE).expect("anti-CSRF cookie").clone();
    // A wrong client secret (refused, with the request id sent back), then the exchange.
    let wrong_secret = "a-wrong-client-secret-5512";
    let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", land)];
    let refused = p.http().post(format!("{}/token", p.issuer)).basic_auth("land-registry", Some(wrong_secret)).form(&form).send().await.expect("token");
    assert_eq!(refused.status(), 401);
    let refused_id = refused.headers()["x-request-id"].to_str().expect("ascii").to_owned();
    let tokens = p.exchange("land-registry", land, &location).await;
    let (access, refresh, id_token) =
        (tokens["access_token"].as_str().expect("at"), tokens["refresh_token"].as_str().expect("rt"), tokens["id_token"].as_str().expect("id_token"));
    let secret = &p.secrets["land-registry"];
    let (status, refreshed) = p.token_as("land-registry", secret, &[("grant_type", "refresh_token"), ("refresh_token", refresh)]).await;
    assert_eq!(status, 200, "{refreshed}");
    // The code again: refused as reuse (its tokens are revoked).
    let (status, _) = p.token_as("land-registry", secret, &form).await;
    assert_eq!(status, 400);
    let r = p.http().get(format!("{}/userinfo", p.issuer)).bearer_auth(access).send().await.expect("userinfo");
    assert_eq!(r.status(), 401, "the access token of a reused code is revoked");
    let second_refresh = refreshed["refresh_token"].as_str().expect("rotated");
    let second_access = refreshed["access_token"].as_str().expect("at");

    // The server writes each line as it logs it: wait for the last request's line.
    let log_path = p.d.path("server.log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let log = loop {
        let log = std::fs::read_to_string(&log_path).expect("log");
        if log.contains("\"path\":\"/userinfo\"") || std::time::Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    // What happened is there: the failed and the good login, the refusals.
    for event in ["\"event\":\"login.failure\"", "\"event\":\"login.success\"", "\"message\":\"request refused\""] {
        assert!(log.contains(event), "{event} in the log:\n{log}");
    }
    let secrets: [(&str, &str); 13] = [
        ("the password", PASSWORD),
        ("a wrong password", wrong_password),
        ("the one-time code", &otp),
        ("the authorization code", &code),
        ("the access token", access),
        ("the refresh token", refresh),
        ("the rotated refresh token", second_refresh),
        ("the second access token", second_access),
        ("the id_token", id_token),
        ("the client secret", secret),
        ("a wrong client secret", wrong_secret),
        ("the session cookie", &session_cookie),
        ("the anti-CSRF cookie", &csrf_cookie),
    ];
    for (what, value) in secrets {
        assert!(value.len() >= 6, "{what} is long enough to be found");
        let found: Vec<&str> = log.lines().filter(|l| appears(l, value)).collect();
        assert!(found.is_empty(), "{what} is in the log:\n{}", found.join("\n"));
    }
    // One JSON object per line, with the request's id inside its span.
    let mut in_requests = 0;
    let mut ids = std::collections::HashSet::new();
    for line in log.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        for key in ["timestamp", "level", "target", "message"] {
            assert!(v[key].is_string(), "{key} in {line}");
        }
        assert!(v["fields"].is_object(), "fields in {line}");
        let request = v["spans"].as_array().and_then(|s| s.iter().find(|s| s["name"] == "request")).cloned();
        if let Some(span) = request {
            assert_eq!(v["request_id"], span["id"], "the request id of the span: {line}");
            in_requests += 1;
            ids.insert(v["request_id"].as_str().expect("id").to_owned());
        } else {
            assert!(v.get("request_id").is_none(), "{line}");
        }
    }
    assert!(ids.contains(&refused_id), "the refused token request's x-request-id {refused_id} is in the log");
    assert!(in_requests >= 5 && ids.len() >= 3, "lines logged inside requests: {in_requests}, requests: {}", ids.len());
    let refused_line = log.lines().find(|l| l.contains(&refused_id) && l.contains("\"message\":\"request refused\"")).expect("the refusal is logged");
    assert!(refused_line.contains("invalid_client"), "{refused_line}");

    // The same security events are entries of the audit log, one chain, without a secret.
    let data = p.d.data.display().to_string();
    let export = p.d.path("audit.jsonl");
    let exported = loop {
        p.d.ok(&["audit", "export", "--data", &data, "--out", &export.display().to_string()]);
        let text = std::fs::read_to_string(&export).expect("export");
        if (text.contains("\"event\":\"code.reused\"") && text.contains("\"checkpoint\"")) || std::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    for event in ["server.configured", "key.generated", "login.failure", "login.success", "consent.given", "token.issued", "code.reused"] {
        assert!(exported.contains(&format!("\"event\":\"{event}\"")), "{event} in the audit log:\n{exported}");
    }
    for (what, value) in secrets {
        let found: Vec<&str> = exported.lines().filter(|l| appears(l, value)).collect();
        assert!(found.is_empty(), "{what} is in the audit log:\n{}", found.join("\n"));
    }
    let login = exported.lines().find(|l| l.contains("\"event\":\"login.success\"")).expect("the login");
    assert!(login.contains("request_id"), "an entry names its request: {login}");
    let verified = p.d.ok(&["audit", "verify", "--data", &data]);
    assert!(verified.starts_with("The audit log is intact: ") && verified.contains("checkpoints sign"), "{verified}");
    let independent = hawiya_e2e::run(std::process::Command::new("python3").arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/verify_audit.py")).arg(&export));
    assert!(independent.status.success() && String::from_utf8_lossy(&independent.stdout).starts_with("intact "), "{independent:?}");
    // On its own, with the Services CA: the export verifies; under another CA, or with a
    // checkpoint's signature changed, it does not.
    let certs = p.d.path("audit-certs");
    p.d.ok(&["ca", "certs", "--out", &certs.display().to_string()]);
    let file = export.display().to_string();
    let services = certs.join("services-ca.pem").display().to_string();
    let alone = p.d.ok(&["audit", "verify", "--file", &file, "--trust", &services]);
    assert!(alone.starts_with("The audit log is intact: ") && alone.contains("checkpoints sign"), "{alone}");
    let root = certs.join("root.pem").display().to_string();
    let refused = p.d.fails(&["audit", "verify", "--file", &file, "--trust", &root]);
    assert!(refused.starts_with("error: the checkpoint at entry ") && refused.contains("is not signed by an audit key: its certificate"), "{refused}");
    let forged_path = p.d.path("forged.jsonl");
    let forged: String = exported
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).expect("json");
            if let Some(c) = v.get_mut("checkpoint") {
                c["at"] = json!(c["at"].as_i64().expect("at") + 1);
            }
            format!("{v}\n")
        })
        .collect();
    std::fs::write(&forged_path, forged).expect("write");
    let refused = p.d.fails(&["audit", "verify", "--file", &forged_path.display().to_string(), "--trust", &services]);
    assert!(refused.ends_with("is not signed by an audit key: its signature does not verify"), "{refused}");
    // Someone with the database file drops the append-only rule and edits entry 2.
    let db = p.d.data.join("hawiya.db");
    let tamper = "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.executescript(\"DROP TRIGGER audit_log_no_update; UPDATE audit_log SET fields = '{}' WHERE seq = 2;\"); c.commit()";
    let out = hawiya_e2e::run(std::process::Command::new("python3").args(["-c", tamper]).arg(&db));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(p.d.fails(&["audit", "verify", "--data", &data]), "error: entry 2 was edited: its content does not give its hash");
    p.d.ok(&["audit", "export", "--data", &data, "--out", &export.display().to_string()]);
    assert_eq!(p.d.fails(&["audit", "verify", "--file", &file, "--trust", &services]), "error: entry 2 was edited: its content does not give its hash");
    let independent = hawiya_e2e::run(std::process::Command::new("python3").arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/verify_audit.py")).arg(&export));
    assert_eq!(String::from_utf8_lossy(&independent.stdout).trim(), "break: entry 2 does not hash to its hash");
}

/// Whether `value` appears in `line`; a short one (a six-digit code, which also occurs by
/// chance inside nanoseconds and ids) only as a value of its own, not inside a longer run of
/// letters and digits.
fn appears(line: &str, value: &str) -> bool {
    if value.len() > 12 {
        return line.contains(value);
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    line.match_indices(value).any(|(i, _)| !(alnum(line[..i].chars().next_back()) || alnum(line[i + value.len()..].chars().next())))
}

/// The fields of the first entry of the audit log for `event`, once the server has appended
/// it (within milliseconds of the answer).
async fn audit_entry(p: &Provider, event: &str) -> Value {
    let (data, out) = (p.d.data.display().to_string(), p.d.path("audit-entry.jsonl").display().to_string());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        p.d.ok(&["audit", "export", "--data", &data, "--out", &out]);
        let text = std::fs::read_to_string(&out).expect("export");
        let entry = text.lines().map(|l| serde_json::from_str::<Value>(l).expect("a JSON line")).find(|e| e["entry"]["event"] == event);
        if let Some(entry) = entry {
            return serde_json::from_str(entry["entry"]["fields"].as_str().expect("fields")).expect("a JSON object");
        }
        assert!(std::time::Instant::now() < deadline, "no {event} in the audit log:\n{text}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
