//! The outgoing delivery queue: messages the provider owes a relying party (back-channel
//! logout tokens, signing notifications), kept durably until delivered, so that any replica
//! delivers them, a restart loses none, and a relying party that is down receives them when
//! it comes back.
//!
//! Delivery is at least once. A replica *claims* due deliveries: each claimed row is leased
//! to it (its `next_at` moves a lease's length ahead and it carries the claim's random
//! lease token), so no other replica claims it until the lease runs out; on PostgreSQL the
//! claim skips rows another replica is claiming at that moment (`FOR UPDATE SKIP LOCKED`).
//! The holder of the lease then deletes the row (delivered) or records the failure (one
//! more attempt, the next try later, or given up: kept as `failed` for operators). A replica
//! that dies holding a lease changes nothing: the row is due again when the lease runs out,
//! and another replica delivers it.
//!
//! The queue keeps what is to be delivered as the provider hands it over (`payload`: the
//! claims of a token, which the provider signs when it delivers); it does not know what a
//! token is.

use std::time::Duration;

use crate::StoreError;

/// What to deliver, as enqueued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDelivery {
    /// What it is (`logout`, `signing-notification`): the provider's name for it.
    pub kind: String,
    /// The client it is for.
    pub client_id: String,
    /// Where it is posted.
    pub uri: String,
    /// What is delivered: a document the provider defines (the claims of the token it signs
    /// at delivery). Never a secret.
    pub payload: String,
    /// When it was enqueued, Unix milliseconds; the first try is due then.
    pub created_at: i64,
}

/// A delivery claimed for trying.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Its number in the queue.
    pub id: i64,
    /// What it is.
    pub kind: String,
    /// The client it is for.
    pub client_id: String,
    /// Where it is posted.
    pub uri: String,
    /// What is delivered.
    pub payload: String,
    /// When it was enqueued, Unix milliseconds.
    pub created_at: i64,
    /// How many tries have failed before this one.
    pub attempts: u32,
}

/// How many deliveries wait, for the metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    /// Due now and not leased to a replica.
    pub due: u64,
    /// Not given up: due, waiting for their next try, or being tried.
    pub pending: u64,
    /// Given up, kept for operators.
    pub failed: u64,
}

/// What happens after a failed try: when the next one is, and when to give up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Tries in all, the first included.
    pub attempts: u32,
    /// The wait after the first failure; it doubles after each one.
    pub first_delay: Duration,
    /// The longest wait between two tries.
    pub max_delay: Duration,
    /// How long after it was enqueued a delivery is given up, however few its tries.
    pub max_age: Duration,
}

impl Default for Backoff {
    /// Twelve tries over about an hour (2 s, 4 s, … 34 min apart, less the jitter), for at
    /// most a day.
    fn default() -> Self {
        Backoff { attempts: 12, first_delay: Duration::from_secs(2), max_delay: Duration::from_secs(3600), max_age: Duration::from_secs(86_400) }
    }
}

impl Backoff {
    /// When the next try of `delivery`, whose try has just failed at `now` (Unix
    /// milliseconds), is due; `None` to give up. `jitter` (0 to 1, random) spreads the
    /// retries of deliveries that failed together: the wait is between half and all of the
    /// doubled delay.
    pub fn next_try(&self, delivery: &Delivery, now: i64, jitter: f64) -> Option<i64> {
        let failed = delivery.attempts.saturating_add(1);
        let age = now.saturating_sub(delivery.created_at);
        if failed >= self.attempts || age >= millis(self.max_age) {
            return None;
        }
        let doubled = self.first_delay.saturating_mul(1 << (failed - 1).min(30)).min(self.max_delay);
        let wait = millis(doubled) as f64 * (0.5 + 0.5 * jitter.clamp(0.0, 1.0));
        Some(now.saturating_add(wait as i64))
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The delivery queue as the durable store keeps it. Times are Unix milliseconds.
#[async_trait::async_trait]
pub trait DeliveryQueue: Send + Sync + std::fmt::Debug {
    /// Enqueues `deliveries`, all or none; durable when this returns.
    async fn enqueue_deliveries(&self, deliveries: &[NewDelivery]) -> Result<(), StoreError>;

    /// Claims up to `limit` deliveries due at `now`, oldest due first, leasing each to
    /// `lease` until `lease_until`: none of them is claimed again before then. Of replicas
    /// claiming at once, each gets different deliveries.
    async fn claim_deliveries(&self, now: i64, lease: &str, lease_until: i64, limit: usize) -> Result<Vec<Delivery>, StoreError>;

    /// Removes a delivered delivery; `false`, changing nothing, unless it is still leased
    /// under `lease` (it was given up, or claimed again after the lease ran out).
    async fn delivered(&self, id: i64, lease: &str) -> Result<bool, StoreError>;

    /// Records a failed try: one more attempt and its `error`, the next try due at `next`,
    /// or (`None`) given up and kept as failed. `false`, changing nothing, unless it is still
    /// leased under `lease`.
    async fn delivery_failed(&self, id: i64, lease: &str, next: Option<i64>, error: &str) -> Result<bool, StoreError>;

    /// How many deliveries wait at `now`.
    async fn delivery_counts(&self, now: i64) -> Result<DeliveryCounts, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(attempts: u32, created_at: i64) -> Delivery {
        Delivery { id: 1, kind: "logout".into(), client_id: "c".into(), uri: "https://rp/bc".into(), payload: "{}".into(), created_at, attempts }
    }

    #[test]
    fn the_wait_doubles_with_jitter_and_gives_up_after_the_attempts_or_the_age() {
        let b = Backoff { attempts: 4, first_delay: Duration::from_secs(1), max_delay: Duration::from_secs(3), max_age: Duration::from_secs(60) };
        // Without jitter the wait is half the doubled delay; with the most, all of it.
        assert_eq!(b.next_try(&delivery(0, 0), 10_000, 0.0), Some(10_500));
        assert_eq!(b.next_try(&delivery(0, 0), 10_000, 1.0), Some(11_000));
        assert_eq!(b.next_try(&delivery(1, 0), 10_000, 1.0), Some(12_000));
        // Capped at max_delay.
        assert_eq!(b.next_try(&delivery(2, 0), 10_000, 1.0), Some(13_000));
        // The fourth failure is the last try.
        assert_eq!(b.next_try(&delivery(3, 0), 10_000, 0.5), None);
        // Too old, however few the tries.
        assert_eq!(b.next_try(&delivery(0, 0), 60_000, 0.5), None);
        assert_eq!(b.next_try(&delivery(0, 1), 60_000, 0.5), Some(60_750));
    }
}
