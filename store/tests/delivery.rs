//! The delivery queue on every durable backend (SQLite and a real PostgreSQL): a claim is
//! exclusive however many store handles claim at once, a lease that runs out lets another
//! replica claim, back-off and giving up are kept, and whoever no longer holds the lease
//! changes nothing.
// Test code: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod each_backend;
mod replicated;

use std::collections::BTreeSet;

use replicated::{Backend, postgres, sqlite};
use store::delivery::{Delivery, DeliveryCounts, NewDelivery};

const T0: i64 = 1_764_400_000_000;

fn new(n: usize, created_at: i64) -> NewDelivery {
    NewDelivery {
        kind: "logout".into(),
        client_id: format!("client-{n}"),
        uri: format!("https://rp{n}.example.jo/backchannel"),
        payload: format!("{{\"sid\":\"s{n}\",\"note\":\"خروج\"}}"),
        created_at,
    }
}

async fn claim_one(b: &Backend, now: i64, lease: &str) -> Option<Delivery> {
    let mut claimed = b.store.claim_deliveries(now, lease, now + 60_000, 10).await.expect("claim");
    assert!(claimed.len() <= 1, "{claimed:?}");
    claimed.pop()
}

async fn claims_are_exclusive_across_replicas(b: Backend) {
    let other = b.replica().await;
    let batch: Vec<NewDelivery> = (0..60).map(|n| new(n, T0)).collect();
    b.store.enqueue_deliveries(&batch).await.expect("enqueue");
    assert_eq!(b.store.delivery_counts(T0).await.expect("counts"), DeliveryCounts { due: 60, pending: 60, failed: 0 });
    let mut tasks = Vec::new();
    for (r, s) in [("a", b.store.clone()), ("b", other.clone())] {
        for t in 0..4 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let lease = format!("lease-{r}-{t}");
                let mut mine = Vec::new();
                loop {
                    let claimed = s.claim_deliveries(T0 + 1, &lease, T0 + 60_000, 3).await.expect("claim");
                    if claimed.is_empty() {
                        return mine;
                    }
                    mine.extend(claimed.into_iter().map(|d| (d.id, lease.clone())));
                }
            }));
        }
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("join"));
    }
    let ids: BTreeSet<i64> = all.iter().map(|(id, _)| *id).collect();
    assert_eq!((all.len(), ids.len()), (60, 60), "every delivery claimed once, by one claimer");
    assert_eq!(b.store.delivery_counts(T0 + 1).await.expect("counts"), DeliveryCounts { due: 0, pending: 60, failed: 0 }, "leased: none due");
    // Each holder deletes what it delivered, on either handle.
    for (i, (id, lease)) in all.iter().enumerate() {
        let s = if i % 2 == 0 { &b.store } else { &other };
        assert!(s.delivered(*id, lease).await.expect("delivered"));
    }
    assert_eq!(b.store.delivery_counts(T0 + 120_000).await.expect("counts"), DeliveryCounts::default());
}

async fn a_claim_returns_what_was_enqueued_and_waits_for_its_time(b: Backend) {
    b.store.enqueue_deliveries(&[new(1, T0 + 5_000), new(2, T0)]).await.expect("enqueue");
    assert_eq!(b.store.delivery_counts(T0).await.expect("counts"), DeliveryCounts { due: 1, pending: 2, failed: 0 });
    let first = claim_one(&b, T0, "l1").await.expect("the one due");
    let expected = new(2, T0);
    assert_eq!(
        (first.kind.as_str(), first.client_id.as_str(), first.uri.as_str(), first.payload.as_str(), first.created_at, first.attempts),
        (expected.kind.as_str(), expected.client_id.as_str(), expected.uri.as_str(), expected.payload.as_str(), T0, 0)
    );
    assert_eq!(claim_one(&b, T0 + 4_999, "l2").await, None, "the other is not due yet");
    assert_eq!(claim_one(&b, T0 + 5_000, "l2").await.expect("due now").client_id, "client-1");
    // An empty batch is no error and adds nothing.
    b.store.enqueue_deliveries(&[]).await.expect("nothing");
    assert_eq!(b.store.delivery_counts(T0 + 5_000).await.expect("counts").pending, 2);
}

async fn a_lease_that_runs_out_lets_another_replica_claim_and_the_first_changes_nothing(b: Backend) {
    b.store.enqueue_deliveries(&[new(1, T0)]).await.expect("enqueue");
    // The first replica claims, then dies (it never reports back).
    let claimed = b.store.claim_deliveries(T0, "dead", T0 + 30_000, 10).await.expect("claim");
    assert_eq!(claimed.len(), 1);
    let id = claimed[0].id;
    assert!(b.store.claim_deliveries(T0 + 29_999, "alive", T0 + 90_000, 10).await.expect("claim").is_empty(), "leased until it runs out");
    let again = claim_one(&b, T0 + 30_000, "alive").await.expect("claimed again once the lease ran out");
    assert_eq!((again.id, again.attempts), (id, 0), "the same delivery, no attempt counted");
    // The dead replica's lease is worth nothing now: neither report changes anything.
    assert!(!b.store.delivered(id, "dead").await.expect("delivered"));
    assert!(!b.store.delivery_failed(id, "dead", None, "late").await.expect("failed"));
    assert_eq!(b.store.delivery_counts(T0 + 30_000).await.expect("counts"), DeliveryCounts { due: 0, pending: 1, failed: 0 });
    assert!(b.store.delivered(id, "alive").await.expect("delivered"));
    assert!(!b.store.delivered(id, "alive").await.expect("delivered twice"), "gone");
    assert_eq!(b.store.delivery_counts(T0 + 999_999).await.expect("counts"), DeliveryCounts::default());
}

async fn a_failed_try_waits_for_its_back_off_and_counts(b: Backend) {
    b.store.enqueue_deliveries(&[new(1, T0)]).await.expect("enqueue");
    let d = claim_one(&b, T0, "l1").await.expect("due");
    assert!(b.store.delivery_failed(d.id, "l1", Some(T0 + 2_000), "HTTP 503 Service Unavailable").await.expect("failed"));
    assert!(!b.store.delivery_failed(d.id, "l1", Some(T0 + 2_000), "again").await.expect("failed"), "the lease went with the report");
    assert_eq!(b.store.delivery_counts(T0 + 1_999).await.expect("counts"), DeliveryCounts { due: 0, pending: 1, failed: 0 });
    assert_eq!(claim_one(&b, T0 + 1_999, "l2").await, None, "waiting for its next try");
    let d = claim_one(&b, T0 + 2_000, "l2").await.expect("due again");
    assert_eq!(d.attempts, 1);
    assert!(b.store.delivery_failed(d.id, "l2", Some(T0 + 6_000), "connection refused").await.expect("failed"));
    assert_eq!(claim_one(&b, T0 + 6_000, "l3").await.expect("due again").attempts, 2);
}

async fn a_given_up_delivery_is_kept_as_failed_and_never_claimed(b: Backend) {
    b.store.enqueue_deliveries(&[new(1, T0), new(2, T0)]).await.expect("enqueue");
    let claimed = b.store.claim_deliveries(T0, "l1", T0 + 60_000, 10).await.expect("claim");
    assert_eq!(claimed.len(), 2);
    assert!(b.store.delivery_failed(claimed[0].id, "l1", None, "HTTP 404 Not Found").await.expect("give up"));
    assert!(!b.store.delivered(claimed[0].id, "l1").await.expect("delivered"), "a given-up delivery is not deleted");
    assert!(!b.store.delivery_failed(claimed[0].id, "l1", Some(T0), "x").await.expect("failed"), "nor revived");
    assert!(b.store.delivered(claimed[1].id, "l1").await.expect("delivered"));
    assert_eq!(b.store.delivery_counts(T0 + 10_000_000).await.expect("counts"), DeliveryCounts { due: 0, pending: 0, failed: 1 });
    assert!(b.store.claim_deliveries(T0 + 10_000_000, "l2", T0 + 20_000_000, 10).await.expect("claim").is_empty());
}

async fn a_report_under_another_lease_changes_nothing(b: Backend) {
    b.store.enqueue_deliveries(&[new(1, T0)]).await.expect("enqueue");
    let d = claim_one(&b, T0, "mine").await.expect("due");
    assert!(!b.store.delivered(d.id, "theirs").await.expect("delivered"));
    assert!(!b.store.delivery_failed(d.id, "theirs", None, "x").await.expect("failed"));
    assert!(!b.store.delivered(d.id + 1000, "mine").await.expect("no such delivery"));
    assert_eq!(b.store.delivery_counts(T0).await.expect("counts"), DeliveryCounts { due: 0, pending: 1, failed: 0 });
    // Still leased to "mine", unchanged: claimed again after the lease, with no attempt counted.
    assert_eq!(claim_one(&b, T0 + 60_000, "next").await.map(|d| (d.id, d.attempts)), Some((d.id, 0)));
}

each_backend! {
    backends: [sqlite, postgres],
    tests: [
        claims_are_exclusive_across_replicas,
        a_claim_returns_what_was_enqueued_and_waits_for_its_time,
        a_lease_that_runs_out_lets_another_replica_claim_and_the_first_changes_nothing,
        a_failed_try_waits_for_its_back_off_and_counts,
        a_given_up_delivery_is_kept_as_failed_and_never_claimed,
        a_report_under_another_lease_changes_nothing,
    ],
}
