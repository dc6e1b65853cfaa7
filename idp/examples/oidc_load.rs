//! A load generator for OpenID Connect providers, used by `scripts/bench-idp` against Hawiya
//! and against other providers configured alike. It drives the provider as browsers and a
//! relying party would: it follows redirects, fills the login form (any field named like an
//! identifier or a password) and the consent form, and exchanges the code.
//!
//! ```text
//! oidc_load logins  ISSUER CLIENT SECRET REDIRECT_URI USER PASSWORD CONCURRENCY SECONDS
//! oidc_load refresh ISSUER CLIENT SECRET REDIRECT_URI USER PASSWORD CONCURRENCY SECONDS
//! oidc_load codes   ISSUER CLIENT SECRET REDIRECT_URI USER PASSWORD CONCURRENCY COUNT
//! oidc_load cheap-hash PASSWORD
//! ```
//!
//! - `logins`: full logins (authorize → login → consent → code → token), each in a fresh
//!   browser, for SECONDS.
//! - `refresh`: CONCURRENCY refresh-token chains (each started by one login, not timed),
//!   rotated for SECONDS.
//! - `codes`: CONCURRENCY browsers log in once and collect COUNT codes in all through their
//!   SSO sessions (not timed); then the codes are exchanged as fast as the token endpoint
//!   answers (timed).
//!
//! - `cheap-hash`: prints an Argon2id hash of PASSWORD with the smallest parameters (8 KiB,
//!   one pass), to store for a benchmark citizen.
//!
//! Prints `<operations per second> <operations> <failures> <server CPU ms per operation>`;
//! the last is measured over the timed part only, from `/proc/$SERVER_PID/stat` (`-` without
//! `SERVER_PID`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

mod common;
use common::{Browser, Tally, Timed};

/// The same allocator as the server: the load generator shares its two cores, and every
/// cycle it spends is one the server does not get.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone)]
struct Target {
    issuer: String,
    authorize: String,
    token: String,
    client: String,
    secret: String,
    redirect_uri: String,
    user: String,
    password: String,
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let marker = format!("{name}=\"");
    let start = tag.find(&marker)? + marker.len();
    Some(tag[start..].split('"').next()?.replace("&amp;", "&"))
}

/// The first form of a page: its action and the fields a person would send.
fn fill_form(html: &str, target: &Target) -> Option<(String, Vec<(String, String)>)> {
    let start = html.find("<form")?;
    let end = html[start..].find("</form>").map_or(html.len(), |e| start + e);
    let form = &html[start..end];
    let action = attribute(&form[..form.find('>')?], "action")?;
    let mut fields = Vec::new();
    for tag in form.split('<').filter(|t| t.starts_with("input") || t.starts_with("button")) {
        let Some(name) = attribute(tag, "name") else { continue };
        let value = match name.as_str() {
            "national_id" | "login" | "username" | "email" => target.user.clone(),
            "password" => target.password.clone(),
            "decision" if attribute(tag, "value").as_deref() != Some("allow") => continue,
            _ => attribute(tag, "value").unwrap_or_default(),
        };
        if !fields.iter().any(|(n, _): &(String, String)| *n == name) {
            fields.push((name, value));
        }
    }
    Some((action, fields))
}

fn absolute(issuer: &str, location: &str) -> String {
    if location.starts_with('/') {
        let origin = url::Url::parse(issuer).map(|u| u.origin().ascii_serialization()).unwrap_or_default();
        format!("{origin}{location}")
    } else {
        location.to_owned()
    }
}

/// Goes through authorization in browser `b` (logging in and consenting if asked) until
/// the provider redirects to the client; returns the code and its PKCE verifier.
async fn authorize(http: &reqwest::Client, b: &mut Browser, t: &Target, n: u64) -> Result<(String, String), String> {
    let (verifier, challenge) = pkce(n);
    let mut url = url::Url::parse(&t.authorize).map_err(|e| e.to_string())?;
    url.query_pairs_mut()
        .append_pair("client_id", &t.client)
        .append_pair("redirect_uri", &t.redirect_uri)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid profile")
        .append_pair("state", &format!("s{n}"))
        .append_pair("nonce", &format!("n{n}"))
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let (mut status, mut location, mut body) = b.send(http.get(url.as_str())).await?;
    for _ in 0..12 {
        if let Some(l) = location.clone() {
            if l.starts_with(&t.redirect_uri) {
                let code = url::Url::parse(&l).ok().and_then(|u| u.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned()));
                return Ok((code.ok_or_else(|| format!("no code: {l}"))?, verifier));
            }
            (status, location, body) = b.send(http.get(absolute(&t.issuer, &l))).await?;
            continue;
        }
        let (action, fields) = fill_form(&body, t).ok_or_else(|| format!("HTTP {status} without a form or redirect: {}", &body[..body.len().min(300)]))?;
        (status, location, body) = b.send(http.post(absolute(&t.issuer, &action)).form(&fields)).await?;
    }
    Err("too many steps".into())
}

/// One full login in a fresh browser: authorize, login page, consent page, code, token.
/// Returns the tokens.
/// A whole login in `b` (the password asked again), and the code's exchange.
async fn login(http: &reqwest::Client, b: &mut Browser, t: &Target, n: u64) -> Result<Value, String> {
    let (code, verifier) = authorize(http, b, t, n).await?;
    let r = http
        .post(&t.token)
        .basic_auth(&t.client, Some(&t.secret))
        .form(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", &t.redirect_uri), ("code_verifier", &verifier)])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let s = r.status();
    let tokens: Value = r.json().await.map_err(|e| e.to_string())?;
    if s.is_success() { Ok(tokens) } else { Err(format!("token: {tokens}")) }
}

/// A connection to the token endpoint: HTTP/1.1 with keep-alive, written and read by hand.
/// Token requests are the cheapest a provider answers, so the load generator (on the same
/// cores) must cost as little as possible per request; reqwest spent about a third of the
/// server's CPU time per refresh.
struct TokenConnection {
    stream: tokio::io::BufStream<tokio::net::TcpStream>,
    head: String,
}

impl TokenConnection {
    async fn open(t: &Target) -> Result<Self, String> {
        use base64::Engine;
        let url = url::Url::parse(&t.token).map_err(|e| e.to_string())?;
        let host = url.host_str().ok_or("no host")?.to_owned();
        let port = url.port_or_known_default().ok_or("no port")?;
        if url.scheme() != "http" {
            return Err("the refresh load generator speaks plain HTTP (loopback) only".into());
        }
        let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", form(&t.client), form(&t.secret)));
        let head = format!(
            "POST {} HTTP/1.1\r\nhost: {}\r\nauthorization: Basic {credentials}\r\ncontent-type: application/x-www-form-urlencoded\r\naccept: application/json\r\n",
            url.path(),
            url.authority()
        );
        Ok(TokenConnection { stream: tokio::io::BufStream::new(stream), head })
    }

    /// Posts the form `fields`; returns the status and body.
    async fn post(&mut self, fields: &[(&str, &str)]) -> Result<(u16, String), String> {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
        let body = fields.iter().map(|(k, v)| format!("{k}={}", form(v))).collect::<Vec<_>>().join("&");
        let request = format!("{}content-length: {}\r\n\r\n{body}", self.head, body.len());
        self.stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
        self.stream.flush().await.map_err(|e| e.to_string())?;
        let (mut status, mut length, mut line) = (0u16, None, String::new());
        loop {
            line.clear();
            if self.stream.read_line(&mut line).await.map_err(|e| e.to_string())? == 0 {
                return Err("connection closed".into());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if status == 0 {
                status = l.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| format!("bad status line {l}"))?;
            } else if let Some((name, value)) = l.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse::<usize>().ok();
            }
        }
        let mut body = vec![0; length.ok_or("no content-length in the response")?];
        self.stream.read_exact(&mut body).await.map_err(|e| e.to_string())?;
        Ok((status, String::from_utf8(body).map_err(|e| e.to_string())?))
    }
}

fn form(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The value of a string member of a flat JSON object, without parsing the rest.
fn json_string<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    let marker = format!("\"{name}\":\"");
    let start = body.find(&marker)? + marker.len();
    body[start..].split('"').next()
}

fn pkce(n: u64) -> (String, String) {
    use base64::Engine;
    let verifier = format!("{:0>64}", format!("verifier{n}x{}", std::process::id()));
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(idp::provider::sha256(verifier.as_bytes()));
    (verifier, challenge)
}

/// A token response that carries the tokens a provider gives with `openid` scope: a new
/// refresh token (returned) and an id_token.
fn token_response(outcome: Result<(u16, String), String>) -> Result<String, String> {
    match outcome? {
        (200, body) => match json_string(&body, "refresh_token") {
            Some(next) if body.contains("\"id_token\":\"") => Ok(next.to_owned()),
            _ => Err(format!("no refresh token or id_token in {body}")),
        },
        (status, body) => Err(format!("HTTP {status}: {body}")),
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, mode, password] = &args[..]
        && mode == "cheap-hash"
    {
        // A PHC string with Argon2id's smallest parameters, for a benchmark citizen whose
        // logins measure everything but the password hash (a check uses the parameters of
        // the stored hash).
        use argon2::password_hash::{PasswordHasher, SaltString};
        let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, argon2::Params::new(8, 1, 1, None).expect("params"));
        let salt = SaltString::encode_b64(&[7; 16]).expect("salt");
        println!("{}", argon.hash_password(password.as_bytes(), &salt).expect("hash"));
        return;
    }
    let [_, mode, issuer, client, secret, redirect_uri, user, password, concurrency, amount] = &args[..] else {
        eprintln!("usage: oidc_load logins|refresh|codes ISSUER CLIENT SECRET REDIRECT_URI USER PASSWORD CONCURRENCY SECONDS|COUNT");
        std::process::exit(2);
    };
    let concurrency: usize = concurrency.parse().expect("concurrency");
    let amount: u64 = amount.parse().expect("seconds or count");
    let http = idp::backchannel::client_builder()
        .expect("client builder")
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");
    let issuer = issuer.trim_end_matches('/').to_owned();
    let discovery: Value =
        http.get(format!("{issuer}/.well-known/openid-configuration")).send().await.expect("discovery").json().await.expect("discovery JSON");
    let endpoint = |name: &str| discovery[name].as_str().unwrap_or_else(|| panic!("no {name} in discovery")).to_owned();
    let t = Arc::new(Target {
        authorize: endpoint("authorization_endpoint"),
        token: endpoint("token_endpoint"),
        issuer,
        client: client.clone(),
        secret: secret.clone(),
        redirect_uri: redirect_uri.clone(),
        user: user.clone(),
        password: password.clone(),
    });
    let tally = Arc::new(Tally::default());

    // What is not timed: the logins that start refresh chains, the codes to exchange.
    let mut chains = Vec::new();
    let mut codes: Vec<Vec<(String, String)>> = vec![Vec::new(); concurrency];
    // For logins: each worker's browser, logged in once (one after the other) so that it is
    // the citizen's own browser from then on, as a citizen who logs in again is.
    let mut devices = Vec::new();
    match mode.as_str() {
        "logins" => {
            for w in 0..concurrency {
                let mut b = Browser::default();
                login(&http, &mut b, &t, w as u64).await.expect("a first login in each browser");
                devices.push(b);
            }
        }
        "refresh" => {
            for i in 0..concurrency {
                // A provider may lose a grant while the others are set up (an LRU store):
                // such a chain counts as one failure and does not run.
                match login(&http, &mut Browser::default(), &t, i as u64).await.map(|tokens| tokens["refresh_token"].as_str().map(str::to_owned)) {
                    Ok(Some(rt)) => chains.push(rt),
                    outcome => tally.record(Err(format!("setup login {i}: {outcome:?}"))),
                }
            }
        }
        "codes" => {
            let mut collectors = Vec::new();
            for (w, mut mine) in std::mem::take(&mut codes).into_iter().enumerate() {
                let (http, t) = (http.clone(), t.clone());
                let count = amount / concurrency as u64;
                // Each collector's browser logs in first, one after the other (a citizen's
                // browsers do not all log in at the same instant), then gathers codes
                // through its SSO session alongside the others.
                let mut b = Browser::default();
                authorize(&http, &mut b, &t, w as u64).await.expect("a login for the SSO session");
                collectors.push(tokio::spawn(async move {
                    for n in 0..count {
                        mine.push(authorize(&http, &mut b, &t, (w as u64 + 1) * 1_000_000 + n).await.expect("a code through the SSO session"));
                    }
                    mine
                }));
            }
            for c in collectors {
                codes.push(c.await.expect("collector"));
            }
        }
        other => panic!("unknown mode {other}"),
    }

    let timed = Timed::start();
    let started = timed.started;
    let duration = Duration::from_secs(amount);
    let mut workers = Vec::new();
    for (w, mine) in codes.into_iter().enumerate() {
        let (http, t, tally) = (http.clone(), t.clone(), tally.clone());
        let worker = match mode.as_str() {
            "logins" => {
                let Some(device) = devices.get(w).map(Browser::returning) else { continue };
                tokio::spawn(async move {
                    let mut n = (w as u64 + 1) * 1_000_000;
                    while started.elapsed() < duration {
                        n += 1;
                        // Each login in the worker's own browser, its SSO session ended: the
                        // password is checked every time.
                        tally.record(login(&http, &mut device.returning(), &t, n).await.map(drop));
                    }
                })
            }
            "refresh" => {
                let Some(mut rt) = chains.get(w).cloned() else { continue };
                tokio::spawn(async move {
                    let mut connection = None;
                    while started.elapsed() < duration {
                        if connection.is_none() {
                            connection = TokenConnection::open(&t).await.ok();
                        }
                        let Some(c) = connection.as_mut() else {
                            tally.record(Err("cannot connect".into()));
                            continue;
                        };
                        let outcome = c.post(&[("grant_type", "refresh_token"), ("refresh_token", &rt)]).await;
                        if outcome.is_err() {
                            connection = None;
                        }
                        tally.record(token_response(outcome).map(|next| rt = next));
                    }
                })
            }
            _ => tokio::spawn(async move {
                let mut c = TokenConnection::open(&t).await.expect("connect");
                for (code, verifier) in mine {
                    let fields = [("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", &t.redirect_uri), ("code_verifier", &verifier)];
                    tally.record(token_response(c.post(&fields).await).map(drop));
                }
            }),
        };
        workers.push(worker);
    }
    for w in workers {
        w.await.expect("worker");
    }
    timed.report(&tally);
}
