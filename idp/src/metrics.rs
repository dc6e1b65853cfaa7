//! What the provider counts, for operators, in Prometheus' text format: logins, tokens,
//! detected token reuse, and the password checks with the CPU time they took (so that the
//! cost of Argon2id can be told apart from everything else the server does).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Events counted since the process started.
#[derive(Debug, Default)]
pub struct Counters {
    pub(crate) logins: AtomicU64,
    pub(crate) login_failures: AtomicU64,
    pub(crate) code_exchanges: AtomicU64,
    pub(crate) refreshes: AtomicU64,
    pub(crate) token_reuse: AtomicU64,
}

impl Counters {
    pub(crate) fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The exposition text of `counters` and the password checks (`checks`, CPU nanoseconds).
pub fn render(counters: &Counters, (checks, cpu_nanos): (u64, u64)) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, help: &str, samples: &[(&str, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64;
    metric("hawiya_logins_total", "Citizens' logins that succeeded.", &[("", load(&counters.logins))]);
    metric("hawiya_login_failures_total", "Login attempts refused (wrong credentials, lockout).", &[("", load(&counters.login_failures))]);
    metric(
        "hawiya_tokens_issued_total",
        "Token responses, by grant type.",
        &[(r#"{grant_type="authorization_code"}"#, load(&counters.code_exchanges)), (r#"{grant_type="refresh_token"}"#, load(&counters.refreshes))],
    );
    metric(
        "hawiya_token_reuse_total",
        "Authorization codes or refresh tokens presented again (their grants are revoked).",
        &[("", load(&counters.token_reuse))],
    );
    metric("hawiya_password_checks_total", "Argon2id password checks.", &[("", checks as f64)]);
    metric("hawiya_password_check_cpu_seconds_total", "CPU time spent in Argon2id password checks.", &[("", cpu_nanos as f64 / 1e9)]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_exposition_format() {
        let c = Counters::default();
        Counters::count(&c.refreshes);
        Counters::count(&c.refreshes);
        let text = render(&c, (3, 1_500_000_000));
        assert!(text.contains("# TYPE hawiya_tokens_issued_total counter\n"), "{text}");
        assert!(text.contains("hawiya_tokens_issued_total{grant_type=\"refresh_token\"} 2\n"), "{text}");
        assert!(text.contains("hawiya_password_checks_total 3\n"), "{text}");
        assert!(text.contains("hawiya_password_check_cpu_seconds_total 1.5\n"), "{text}");
    }
}
