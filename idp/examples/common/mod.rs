//! What the load generators share: a browser without JavaScript, the tally of the timed part,
//! and the measurement of the server's CPU time over it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// A browser: cookies kept, redirects returned to the caller.
#[derive(Default)]
pub struct Browser {
    cookies: HashMap<String, String>,
}

impl Browser {
    /// The same browser after its SSO session has ended: what a citizen's own browser keeps
    /// between logins (Hawiya's device cookie, which gives it its own count of attempts).
    #[allow(dead_code, reason = "each load generator compiles this module; only oidc_load logs in again")]
    pub fn returning(&self) -> Browser {
        let cookies = self.cookies.iter().filter(|(k, _)| k.as_str() == "__Host-hawiya-device").map(|(k, v)| (k.clone(), v.clone())).collect();
        Browser { cookies }
    }

    /// Sends with the cookies; keeps the ones set; returns status, location and body.
    pub async fn send(&mut self, request: reqwest::RequestBuilder) -> Result<(u16, Option<String>, String), String> {
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

/// Successes and failures of the timed part; the first failure is printed.
#[derive(Default)]
pub struct Tally {
    done: AtomicU64,
    failed: AtomicU64,
}

impl Tally {
    pub fn record(&self, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => {
                self.done.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                if self.failed.fetch_add(1, Ordering::Relaxed) == 0 {
                    eprintln!("first failure: {e}");
                }
            }
        }
    }
}

/// The timed part: when it started and the server's CPU time then (`SERVER_PID`).
pub struct Timed {
    pub started: Instant,
    server: Option<String>,
    cpu_before: Option<f64>,
}

impl Timed {
    pub fn start() -> Self {
        let server = std::env::var("SERVER_PID").ok();
        let cpu_before = server.as_deref().and_then(cpu_ms);
        Timed { started: Instant::now(), server, cpu_before }
    }

    /// Prints `<operations per second> <operations> <failures> <server CPU ms per operation>`.
    pub fn report(&self, tally: &Tally) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let ok = tally.done.load(Ordering::Relaxed);
        let cpu = match (self.cpu_before, self.server.as_deref().and_then(cpu_ms)) {
            (Some(a), Some(b)) if ok > 0 => format!("{:.3}", (b - a) / ok as f64),
            _ => "-".into(),
        };
        println!("{:.0} {ok} {} {cpu}", ok as f64 / elapsed, tally.failed.load(Ordering::Relaxed));
    }
}

/// The CPU time (user and system) of process `pid`, in milliseconds.
fn cpu_ms(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    // Fields 14 and 15 of stat(5), counted after the command name's closing parenthesis.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks * 1000.0 / 100.0)
}
