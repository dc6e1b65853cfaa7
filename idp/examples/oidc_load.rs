//! A load generator for OpenID Connect providers, used by `scripts/bench-idp` against Hawiya
//! and against other providers configured alike. It drives the provider as browsers and a
//! relying party would: it follows redirects, fills the login form (any field named like an
//! identifier or a password) and the consent form, and exchanges the code.
//!
//! ```text
//! oidc_load logins  ISSUER CLIENT SECRET REDIRECT_URI USER PASSWORD CONCURRENCY SECONDS
//! oidc_load refresh ISSUER CLIENT SECRET REDIRECT_URI USER PASSWORD CONCURRENCY SECONDS
//! oidc_load password-cost COUNT THREADS
//! ```
//!
//! `password-cost` prints the CPU milliseconds of one Argon2id check with Hawiya's
//! parameters, THREADS at a time (what every password login costs the server under load).
//!
//! Prints `<operations per second> <operations> <failures>`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

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

struct Browser {
    cookies: HashMap<String, String>,
}

impl Browser {
    async fn send(&mut self, request: reqwest::RequestBuilder) -> Result<(u16, Option<String>, String), String> {
        let jar: String = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        let r = request.header("cookie", jar).send().await.map_err(|e| e.to_string())?;
        for c in r.headers().get_all("set-cookie") {
            if let Some((name, value)) = c.to_str().ok().and_then(|c| c.split(';').next()).and_then(|p| p.split_once('=')) {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = r.status().as_u16();
        let location = r.headers().get("location").and_then(|l| l.to_str().ok()).map(str::to_owned);
        Ok((status, location, r.text().await.map_err(|e| e.to_string())?))
    }
}

fn absolute(issuer: &str, location: &str) -> String {
    if location.starts_with('/') {
        let origin = url::Url::parse(issuer).map(|u| u.origin().ascii_serialization()).unwrap_or_default();
        format!("{origin}{location}")
    } else {
        location.to_owned()
    }
}

/// One full login: authorize, login page, consent page, code, token. Returns the tokens.
async fn login(http: &reqwest::Client, t: &Target, n: u64) -> Result<Value, String> {
    let mut b = Browser { cookies: HashMap::new() };
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
                let code = code.ok_or_else(|| format!("no code: {l}"))?;
                let r = http
                    .post(&t.token)
                    .basic_auth(&t.client, Some(&t.secret))
                    .form(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", &t.redirect_uri), ("code_verifier", &verifier)])
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let s = r.status();
                let tokens: Value = r.json().await.map_err(|e| e.to_string())?;
                return if s.is_success() { Ok(tokens) } else { Err(format!("token: {tokens}")) };
            }
            (status, location, body) = b.send(http.get(absolute(&t.issuer, &l))).await?;
            continue;
        }
        let (action, fields) = fill_form(&body, t).ok_or_else(|| format!("HTTP {status} without a form or redirect: {}", &body[..body.len().min(300)]))?;
        (status, location, body) = b.send(http.post(absolute(&t.issuer, &action)).form(&fields)).await?;
    }
    Err("too many steps".into())
}

/// One refresh chain's connection to the token endpoint: HTTP/1.1 with keep-alive, written
/// and read by hand. Refreshes are the cheapest request a provider answers, so the load
/// generator (on the same cores) must cost as little as possible per request; reqwest
/// spent about as much CPU per refresh as a third of the server's.
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

    /// Exchanges `refresh_token`; returns the status and body.
    async fn refresh(&mut self, refresh_token: &str) -> Result<(u16, String), String> {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
        let body = format!("grant_type=refresh_token&refresh_token={}", form(refresh_token));
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

/// This process's CPU time (user and system) in milliseconds.
fn process_cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let fields: Vec<&str> = stat.rsplit(')').next().expect("stat").split_whitespace().collect();
    // Fields 14 and 15 of stat(5), counted after the command name's closing parenthesis.
    let ticks: f64 = fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    ticks * 1000.0 / 100.0
}

fn pkce(n: u64) -> (String, String) {
    use base64::Engine;
    let verifier = format!("{:0>64}", format!("verifier{n}x{}", std::process::id()));
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(idp::provider::sha256(verifier.as_bytes()));
    (verifier, challenge)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, mode, count, threads] = &args[..]
        && mode == "password-cost"
    {
        // CPU time (user and system, page faults of the 19 MiB blocks included) per check,
        // with as many checks at once as the server runs under load.
        let (count, threads): (u32, u32) = (count.parse().expect("count"), threads.parse().expect("threads"));
        let hasher = Arc::new(idp::credentials::PasswordHasher::new().expect("hasher"));
        let password = idp::credentials::Password::new("benchmark password 2026".into()).expect("password");
        let hash = Arc::new(hasher.hash(&password).expect("hash"));
        let before = process_cpu_ms();
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (hasher, hash) = (hasher.clone(), hash.clone());
                std::thread::spawn(move || {
                    let password = idp::credentials::Password::new("benchmark password 2026".into()).expect("password");
                    for _ in 0..count / threads {
                        assert!(hasher.verify(&password, Some(&hash)).expect("verify"));
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("thread");
        }
        println!("{:.2}", (process_cpu_ms() - before) / f64::from(count / threads * threads));
        return;
    }
    let [_, mode, issuer, client, secret, redirect_uri, user, password, concurrency, seconds] = &args[..] else {
        eprintln!("usage: oidc_load logins|refresh ISSUER CLIENT SECRET REDIRECT_URI USER PASSWORD CONCURRENCY SECONDS");
        std::process::exit(2);
    };
    let http = idp::backchannel::client_builder().expect("client builder").timeout(Duration::from_secs(60)).build().expect("client");
    let issuer = issuer.trim_end_matches('/').to_owned();
    let discovery: Value = http.get(format!("{issuer}/.well-known/openid-configuration")).send().await.expect("discovery").json().await.expect("discovery JSON");
    let endpoint = |name: &str| discovery[name].as_str().unwrap_or_else(|| panic!("no {name} in discovery")).to_owned();
    let t = Target {
        authorize: endpoint("authorization_endpoint"),
        token: endpoint("token_endpoint"),
        issuer,
        client: client.clone(),
        secret: secret.clone(),
        redirect_uri: redirect_uri.clone(),
        user: user.clone(),
        password: password.clone(),
    };
    let concurrency: usize = concurrency.parse().expect("concurrency");
    let duration = Duration::from_secs(seconds.parse().expect("seconds"));
    let http = idp::backchannel::client_builder().expect("client builder").timeout(Duration::from_secs(60)).pool_max_idle_per_host(concurrency).build().expect("client");
    let (done, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let refresh_mode = mode == "refresh";
    // Refresh chains start from one login each (not timed).
    let mut starts = Vec::new();
    if refresh_mode {
        for i in 0..concurrency {
            // A provider may lose a grant while the others are set up (an LRU store): such a
            // chain counts as one failure and does not run.
            match login(&http, &t, i as u64).await.map(|tokens| tokens["refresh_token"].as_str().map(str::to_owned)) {
                Ok(Some(rt)) => starts.push(Some(rt)),
                outcome => {
                    eprintln!("setup login {i}: {outcome:?}");
                    failed.fetch_add(1, Ordering::Relaxed);
                    starts.push(None);
                }
            }
        }
    }
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let (http, t, done, failed) = (http.clone(), t.clone(), done.clone(), failed.clone());
        let mut refresh = starts.get(w).cloned().flatten().map(|rt| (rt, None));
        if refresh_mode && refresh.is_none() {
            continue;
        }
        workers.push(tokio::spawn(async move {
            let mut n = (w as u64 + 1) * 1_000_000;
            while started.elapsed() < duration {
                n += 1;
                let outcome = match &mut refresh {
                    None => login(&http, &t, n).await.map(drop),
                    Some((rt, connection)) => {
                        if connection.is_none() {
                            *connection = TokenConnection::open(&t).await.ok();
                        }
                        match connection.as_mut() {
                            None => Err("cannot connect".to_owned()),
                            Some(c) => match c.refresh(rt).await {
                                Ok((200, body)) => match json_string(&body, "refresh_token") {
                                    Some(next) if body.contains("\"id_token\":\"") => {
                                        *rt = next.to_owned();
                                        Ok(())
                                    }
                                    _ => Err(format!("no refresh token or id_token in {body}")),
                                },
                                Ok((status, body)) => Err(format!("HTTP {status}: {body}")),
                                Err(e) => {
                                    // A new connection for the next request.
                                    *connection = None;
                                    Err(e)
                                }
                            },
                        }
                    }
                };
                match outcome {
                    Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("first failure: {e}");
                        }
                        0
                    }
                };
            }
        }));
    }
    for w in workers {
        w.await.expect("worker");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let ok = done.load(Ordering::Relaxed);
    println!("{:.0} {ok} {}", ok as f64 / elapsed, failed.load(Ordering::Relaxed));
}
