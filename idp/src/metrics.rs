//! What the provider counts, for operators, in Prometheus' text format: logins, tokens,
//! detected token reuse, the password checks with the CPU time they took (so that the
//! cost of Argon2id can be told apart from everything else the server does), smart-ID
//! logins and signing sessions by outcome, and the latency of the token endpoint and of the
//! device's smart-ID and signing answers, and the deliveries to relying parties (back-channel
//! logout, signing notifications) with the depth of their queue.
//!
//! Recording is a relaxed atomic addition or two (refresh runs at tens of thousands per
//! second); outcome labels are fixed in code, never taken from a request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use telemetry::{Counter, Exposition, Histogram};

/// Events counted since the process started.
#[derive(Debug, Default)]
pub struct Counters {
    pub(crate) logins: Counter,
    pub(crate) login_failures: Counter,
    pub(crate) logins_shed: Counter,
    pub(crate) code_exchanges: Counter,
    pub(crate) refreshes: Counter,
    pub(crate) token_reuse: Counter,
    /// Token requests by grant type, as [`GrantLabel`] orders them.
    token_latency: [Histogram; 4],
    /// Smart-ID login sessions by outcome, as [`SmartIdOutcome`] orders them.
    smart_id: [Counter; 6],
    smart_id_latency: Histogram,
    /// Signing sessions by outcome, as [`SigningOutcome`] orders them.
    signing: [Counter; 5],
    signing_latency: Histogram,
    /// Tries of deliveries by outcome, as [`DELIVERY_OUTCOMES`] orders them.
    deliveries: [Counter; 3],
    /// The delivery queue as this replica's worker last counted it: due, pending, failed.
    queue: [AtomicU64; 3],
}

/// How a try of a delivery ended: delivered, failed and to be retried, failed and given up.
const DELIVERY_OUTCOMES: [&str; 3] = ["delivered", "retried", "given_up"];

/// The states of the delivery queue's gauge.
const QUEUE_STATES: [&str; 3] = ["due", "pending", "failed"];

/// The grant type of a token request, as a label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GrantLabel {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
    /// Missing or not one the provider knows.
    Other,
}

impl GrantLabel {
    const ALL: [(GrantLabel, &'static str); 4] = [
        (GrantLabel::AuthorizationCode, "authorization_code"),
        (GrantLabel::RefreshToken, "refresh_token"),
        (GrantLabel::ClientCredentials, "client_credentials"),
        (GrantLabel::Other, "other"),
    ];

    /// The label of a request's `grant_type` parameter.
    pub(crate) fn of(grant_type: Option<&str>) -> Self {
        Self::ALL.iter().find(|(_, name)| Some(*name) == grant_type).map_or(GrantLabel::Other, |(g, _)| *g)
    }
}

/// How a smart-ID login session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SmartIdOutcome {
    /// The device's signature, certificate and its status were verified.
    Approved,
    /// The citizen refused on the device.
    Refused,
    /// The citizen said the codes differed.
    WrongCode,
    /// The device's PIN is locked.
    Locked,
    /// The device's answer did not verify (signature, certificate, policy, revocation).
    Invalid,
    /// Nobody answered in time.
    Timeout,
}

impl SmartIdOutcome {
    const NAMES: [&'static str; 6] = ["approved", "refused", "wrong_code", "locked", "invalid", "timeout"];
}

/// How a signing session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SigningOutcome {
    /// The signature was made and the document assembled.
    Signed,
    /// The citizen refused on the device.
    Refused,
    /// The citizen said the codes differed.
    WrongCode,
    /// The device's PIN is locked.
    Locked,
    /// The answer or the assembly failed (revoked certificate, changed document, a bad
    /// signature, no timestamp).
    Failed,
}

impl SigningOutcome {
    const NAMES: [&'static str; 5] = ["signed", "refused", "wrong_code", "locked", "failed"];
}

impl Counters {
    pub(crate) fn count(counter: &Counter) {
        counter.inc();
    }

    pub(crate) fn token_latency(&self, grant: GrantLabel, start: Instant) {
        self.token_latency[grant as usize].observe_since(start);
    }

    pub(crate) fn smart_id(&self, outcome: SmartIdOutcome) {
        self.smart_id[outcome as usize].inc();
    }

    pub(crate) fn smart_id_latency(&self, start: Instant) {
        self.smart_id_latency.observe_since(start);
    }

    pub(crate) fn signing(&self, outcome: SigningOutcome) {
        self.signing[outcome as usize].inc();
    }

    pub(crate) fn signing_latency(&self, start: Instant) {
        self.signing_latency.observe_since(start);
    }

    pub(crate) fn delivered(&self) {
        self.deliveries[0].inc();
    }

    pub(crate) fn retried(&self) {
        self.deliveries[1].inc();
    }

    pub(crate) fn given_up(&self) {
        self.deliveries[2].inc();
    }

    pub(crate) fn queue(&self, counts: store::delivery::DeliveryCounts) {
        for (gauge, n) in self.queue.iter().zip([counts.due, counts.pending, counts.failed]) {
            gauge.store(n, Ordering::Relaxed);
        }
    }
}

/// Writes the provider's metric families: `counters` and the password checks (`checks`,
/// CPU nanoseconds).
pub fn render(counters: &Counters, (checks, cpu_nanos): (u64, u64), e: &mut Exposition) {
    e.counter("hawiya_logins_total", "Citizens' logins that succeeded.", &[(&[], counters.logins.get())]);
    e.counter("hawiya_login_failures_total", "Login attempts refused (wrong credentials, lockout).", &[(&[], counters.login_failures.get())]);
    e.counter("hawiya_logins_shed_total", "Password logins refused unchecked, the checks' queue being full (503).", &[(&[], counters.logins_shed.get())]);
    e.counter(
        "hawiya_tokens_issued_total",
        "Token responses, by grant type.",
        &[(&[("grant_type", "authorization_code")], counters.code_exchanges.get()), (&[("grant_type", "refresh_token")], counters.refreshes.get())],
    );
    e.counter(
        "hawiya_token_reuse_total",
        "Authorization codes or refresh tokens presented again (their grants are revoked).",
        &[(&[], counters.token_reuse.get())],
    );
    e.counter("hawiya_password_checks_total", "Argon2id password checks.", &[(&[], checks)]);
    e.counter_seconds("hawiya_password_check_cpu_seconds_total", "CPU time spent in Argon2id password checks.", cpu_nanos as f64 / 1e9);
    let grants: Vec<([(&str, &str); 1], &Histogram)> =
        GrantLabel::ALL.iter().map(|(g, name)| ([("grant_type", *name)], &counters.token_latency[*g as usize])).collect();
    let samples: Vec<(telemetry::Labels<'_>, &Histogram)> = grants.iter().map(|(l, h)| (&l[..], *h)).collect();
    e.histogram("hawiya_token_request_duration_seconds", "Time to answer a token request, by grant type (refused requests included).", &samples);
    let outcomes: Vec<([(&str, &str); 1], u64)> = SmartIdOutcome::NAMES.iter().zip(&counters.smart_id).map(|(n, c)| ([("outcome", *n)], c.get())).collect();
    let samples: Vec<(telemetry::Labels<'_>, u64)> = outcomes.iter().map(|(l, n)| (&l[..], *n)).collect();
    e.counter("hawiya_smart_id_logins_total", "Smart-ID login sessions, by how they ended.", &samples);
    e.histogram(
        "hawiya_smart_id_answer_duration_seconds",
        "Time to check a device's answer to a smart-ID login (signature, chain, policy, OCSP).",
        &[(&[], &counters.smart_id_latency)],
    );
    let outcomes: Vec<([(&str, &str); 1], u64)> = SigningOutcome::NAMES.iter().zip(&counters.signing).map(|(n, c)| ([("outcome", *n)], c.get())).collect();
    let samples: Vec<(telemetry::Labels<'_>, u64)> = outcomes.iter().map(|(l, n)| (&l[..], *n)).collect();
    e.counter("hawiya_signing_sessions_total", "Signing sessions answered by the device, by how they ended.", &samples);
    e.histogram(
        "hawiya_signing_answer_duration_seconds",
        "Time to turn a device's signing answer into a signed document (B-LT: timestamp and OCSP included).",
        &[(&[], &counters.signing_latency)],
    );
    let outcomes: Vec<([(&str, &str); 1], u64)> = DELIVERY_OUTCOMES.iter().zip(&counters.deliveries).map(|(n, c)| ([("outcome", *n)], c.get())).collect();
    let samples: Vec<(telemetry::Labels<'_>, u64)> = outcomes.iter().map(|(l, n)| (&l[..], *n)).collect();
    e.counter(
        "hawiya_backchannel_deliveries_total",
        "Tries of deliveries to relying parties (back-channel logout, signing notifications) by this replica, by outcome.",
        &samples,
    );
    let states: Vec<([(&str, &str); 1], f64)> =
        QUEUE_STATES.iter().zip(&counters.queue).map(|(n, g)| ([("state", *n)], g.load(Ordering::Relaxed) as f64)).collect();
    let samples: Vec<(telemetry::Labels<'_>, f64)> = states.iter().map(|(l, n)| (&l[..], *n)).collect();
    e.gauge(
        "hawiya_backchannel_queue",
        "Deliveries waiting in the shared queue: due now, pending (not given up, due included), failed (given up, kept for operators).",
        &samples,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_exposition_format() {
        let c = Counters::default();
        Counters::count(&c.refreshes);
        Counters::count(&c.refreshes);
        c.smart_id(SmartIdOutcome::WrongCode);
        c.signing(SigningOutcome::Signed);
        c.delivered();
        c.given_up();
        c.given_up();
        c.queue(store::delivery::DeliveryCounts { due: 3, pending: 5, failed: 2 });
        c.token_latency(GrantLabel::of(Some("refresh_token")), Instant::now());
        c.token_latency(GrantLabel::of(Some("password")), Instant::now());
        let mut e = Exposition::new();
        render(&c, (3, 1_500_000_000), &mut e);
        let text = e.finish();
        assert!(text.contains("# TYPE hawiya_tokens_issued_total counter\n"), "{text}");
        assert!(text.contains("hawiya_tokens_issued_total{grant_type=\"refresh_token\"} 2\n"), "{text}");
        assert!(text.contains("hawiya_password_checks_total 3\n"), "{text}");
        assert!(text.contains("hawiya_password_check_cpu_seconds_total 1.5\n"), "{text}");
        assert!(text.contains("hawiya_smart_id_logins_total{outcome=\"wrong_code\"} 1\n"), "{text}");
        assert!(text.contains("hawiya_smart_id_logins_total{outcome=\"approved\"} 0\n"), "{text}");
        assert!(text.contains("hawiya_signing_sessions_total{outcome=\"signed\"} 1\n"), "{text}");
        assert!(text.contains("hawiya_token_request_duration_seconds_count{grant_type=\"refresh_token\"} 1\n"), "{text}");
        assert!(text.contains("hawiya_token_request_duration_seconds_count{grant_type=\"other\"} 1\n"), "{text}");
        assert!(text.contains("hawiya_token_request_duration_seconds_count{grant_type=\"authorization_code\"} 0\n"), "{text}");
        assert!(text.contains("hawiya_backchannel_deliveries_total{outcome=\"delivered\"} 1\n"), "{text}");
        assert!(text.contains("hawiya_backchannel_deliveries_total{outcome=\"retried\"} 0\n"), "{text}");
        assert!(text.contains("hawiya_backchannel_deliveries_total{outcome=\"given_up\"} 2\n"), "{text}");
        assert!(text.contains("# TYPE hawiya_backchannel_queue gauge\n"), "{text}");
        assert!(text.contains("hawiya_backchannel_queue{state=\"due\"} 3\n"), "{text}");
        assert!(text.contains("hawiya_backchannel_queue{state=\"failed\"} 2\n"), "{text}");
    }
}
