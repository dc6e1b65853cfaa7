//! From `tracing` to the audit log: what an event at the target `audit` becomes. Its own test
//! binary, because the recorder is one per process.
// Test code: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use store::DurableConfig;
use store::audit::layer::{self, AuditLayer};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{Layer, filter};

#[tokio::test]
async fn an_audit_event_becomes_an_entry_with_its_fields_and_request_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store::open(&DurableConfig::Sqlite { path: dir.path().join("hawiya.db") }).await.expect("open");
    let subscriber = tracing_subscriber::registry().with(AuditLayer.with_filter(filter::filter_fn(layer::filter)));
    tracing::subscriber::set_global_default(subscriber).expect("subscriber");
    // Logged before the recorder starts: nowhere to go (a command that opens no store).
    tracing::info!(target: "audit", event = "too.early", "not recorded");
    layer::start(store.clone(), "replica-a".into());

    let text = "دخول \"ناجح\" \\ tab\t newline\n bell\u{7}";
    {
        let _request = tracing::info_span!("request", id = %"0a1b2c3d00000001", method = "POST", path = "/token").entered();
        tracing::info!(target: "audit", event = "token.issued", client = "civil-status", text, n = -5i64, count = 7u64, ok = true, ratio = 0.5, nan = f64::NAN, state = ?Some(3), "tokens issued");
    }
    tracing::warn!(target: "audit", "an event without a name");
    // Not audit events: other targets, and other spans' fields.
    tracing::warn!(target: "hawiya::ca", event = "not.audit", "ignored");
    layer::flush().await.expect("flush");

    let entries = store.audit_entries(1, 10).await.expect("entries");
    let got: Vec<(&str, Value)> = entries.iter().map(|e| (e.event.event.as_str(), serde_json::from_str(&e.event.fields).expect("JSON"))).collect();
    assert_eq!(
        got,
        [
            (
                "token.issued",
                json!({"message": "tokens issued", "client": "civil-status", "text": text, "n": -5, "count": 7, "ok": true, "ratio": 0.5, "nan": null,
                       "state": "Some(3)", "request_id": "0a1b2c3d00000001"})
            ),
            ("unnamed", json!({"message": "an event without a name"})),
        ]
    );
    assert!(entries.iter().all(|e| e.event.node == "replica-a"));

    // The log cannot be written: the event waits in the recorder and is appended once the
    // database takes it.
    let db = rusqlite::Connection::open(dir.path().join("hawiya.db")).expect("open");
    db.execute_batch("CREATE TRIGGER outage BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'the database is down'); END").expect("block");
    tracing::info!(target: "audit", event = "token.issued", client = "gazette", "tokens issued");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(store.audit_head().await.expect("head").map(|(n, _)| n), Some(2), "not appended while refused");
    db.execute_batch("DROP TRIGGER outage").expect("unblock");
    layer::flush().await.expect("flush");
    assert_eq!(store.audit_head().await.expect("head").map(|(n, _)| n), Some(3), "appended when the database came back");
}
