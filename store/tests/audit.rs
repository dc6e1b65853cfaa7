//! The audit log on every durable backend (SQLite and a real PostgreSQL): one chain however
//! many replicas append at once, checkpoints kept, the append-only rule enforced by the
//! database, and tampering by someone who bypasses it named by the verifier.
// Test code: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod each_backend;
mod replicated;

use replicated::{Backend, postgres, sqlite};
use store::audit::{AuditEvent, Break, Checkpoint, verify};
use store::*;

impl Backend {
    /// Runs `sql` on the database directly, bypassing the store.
    async fn tamper(&self, sql: &str) -> Result<(), String> {
        match &self.config {
            DurableConfig::Sqlite { path } => rusqlite::Connection::open(path).and_then(|c| c.execute_batch(sql)).map_err(|e| e.to_string()),
            DurableConfig::Postgres { url, .. } => {
                let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.map_err(|e| e.to_string())?;
                tokio::spawn(connection);
                client.batch_execute(sql).await.map_err(|e| e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_owned()))
            }
        }
    }
}

fn event(replica: &str, n: usize) -> AuditEvent {
    AuditEvent {
        at: 1_764_400_000_000 + n as i64,
        node: replica.into(),
        event: "login.succeeded".into(),
        // Arabic text, quotes and a backslash: hashed as the octets stored, by both sides.
        fields: format!("{{\"client\":\"gazette\",\"n\":{n},\"note\":\"دخول \\\"ناجح\\\" \\\\ ok\"}}"),
    }
}

/// Every signature good (these tests are about the chain; signatures are checked in hawiya).
fn any_signature(_: &Checkpoint) -> Result<(), String> {
    Ok(())
}

async fn replicas_appending_at_once_keep_one_chain(b: Backend) {
    let other = b.replica().await;
    assert_eq!(b.store.audit_head().await.expect("head"), None, "a new log is empty");
    let mut tasks = Vec::new();
    for (r, s) in [("replica-a", b.store.clone()), ("replica-b", other.clone())] {
        for t in 0..8 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let mut last = 0;
                for i in 0..10 {
                    // Batches of one to three events, all or none.
                    let batch: Vec<AuditEvent> = (0..=(i % 3)).map(|k| event(r, t * 100 + i * 10 + k)).collect();
                    let n = batch.len() as u64;
                    let seq = s.append_audit(batch.into()).await.expect("append");
                    assert!(seq >= last + n, "numbers only grow: {seq} after {last}");
                    last = seq;
                }
            }));
        }
    }
    for t in tasks {
        t.await.expect("join");
    }
    // Two replicas of eight tasks, each 19 events in batches of 1, 2, 3, 1, 2, 3, 1, 2, 3, 1.
    let total = 2 * 8 * 19;
    let entries = b.store.audit_entries(1, 10_000).await.expect("entries");
    assert_eq!(entries.len(), total, "every event is there once");
    assert!(entries.iter().enumerate().all(|(i, e)| e.seq == i as u64 + 1), "numbered 1, 2, 3, … without gaps");
    let head = other.audit_head().await.expect("head").expect("not empty");
    assert_eq!(head, (total as u64, entries[total - 1].hash), "both replicas see one head");
    let verified = verify(entries.clone(), 1, &[], any_signature).expect("the chain verifies");
    assert_eq!((verified.entries, verified.last), (total as u64, total as u64));
    // A range read from the middle.
    let middle = b.store.audit_entries(100, 5).await.expect("entries");
    assert_eq!(middle.iter().map(|e| e.seq).collect::<Vec<_>>(), [100, 101, 102, 103, 104]);
    assert_eq!(b.store.append_audit(Vec::new().into()).await.expect("nothing to append"), total as u64);
}

async fn keeps_checkpoints_once(b: Backend) {
    let s = &b.store;
    let last = s.append_audit((1..=5).map(|n| event("replica-a", n)).collect()).await.expect("append");
    let entries = s.audit_entries(1, 100).await.expect("entries");
    let checkpoint = Checkpoint { seq: 3, hash: entries[2].hash, at: 1_764_400_001_000, signature: vec![0x30, 1], certificate: vec![0x30, 2] };
    s.put_audit_checkpoint(&checkpoint).await.expect("checkpoint");
    assert!(s.put_audit_checkpoint(&Checkpoint { signature: vec![9], ..checkpoint.clone() }).await.is_err(), "one checkpoint per entry");
    assert_eq!(s.audit_checkpoints(1, last).await.expect("checkpoints"), std::slice::from_ref(&checkpoint));
    assert_eq!(s.audit_checkpoints(4, last).await.expect("checkpoints"), []);
    let verified = verify(entries, 1, &[checkpoint], any_signature).expect("verifies");
    assert_eq!((verified.signed_up_to, verified.last), (3, 5));
}

async fn the_database_refuses_changes_and_the_verifier_names_what_bypassed_it(b: Backend) {
    let s = &b.store;
    s.append_audit((1..=6).map(|n| event("replica-a", n)).collect()).await.expect("append");
    let entries = s.audit_entries(1, 100).await.expect("entries");
    s.put_audit_checkpoint(&Checkpoint { seq: 6, hash: entries[5].hash, at: 0, signature: vec![1], certificate: vec![2] }).await.expect("checkpoint");
    for sql in ["UPDATE audit_log SET fields = '{}' WHERE seq = 2", "DELETE FROM audit_log WHERE seq = 6", "DELETE FROM audit_checkpoints"] {
        let refused = b.tamper(sql).await.expect_err(sql);
        assert!(refused.contains("append-only"), "{sql}: {refused}");
    }
    if matches!(b.config, DurableConfig::Postgres { .. }) {
        let refused = b.tamper("TRUNCATE audit_log").await.expect_err("truncate");
        assert!(refused.contains("append-only"), "{refused}");
    }
    assert_eq!(s.audit_entries(1, 100).await.expect("entries"), entries, "nothing changed");

    // Someone with the database's password drops the rule and edits, then deletes.
    let drop_rules = match b.config {
        DurableConfig::Sqlite { .. } => "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;",
        DurableConfig::Postgres { .. } => "DROP TRIGGER audit_log_append_only ON audit_log;",
    };
    b.tamper(drop_rules).await.expect("drop the rule");
    let checkpoints = s.audit_checkpoints(1, 100).await.expect("checkpoints");
    b.tamper("UPDATE audit_log SET fields = '{\"client\":\"someone else\"}' WHERE seq = 4").await.expect("edit");
    let edited = s.audit_entries(1, 100).await.expect("entries");
    assert_eq!(verify(edited, 1, &checkpoints, any_signature), Err(Break::Edited { seq: 4 }));
    b.tamper("DELETE FROM audit_log WHERE seq >= 4").await.expect("delete the tail");
    let cut = s.audit_entries(1, 100).await.expect("entries");
    assert_eq!(verify(cut, 1, &checkpoints, any_signature), Err(Break::Truncated { last: 3, checkpoint: 6 }));
    b.tamper("DELETE FROM audit_log WHERE seq = 2").await.expect("delete one");
    let gap = s.audit_entries(1, 100).await.expect("entries");
    assert_eq!(verify(gap, 1, &checkpoints, any_signature), Err(Break::Deleted { first: 2, last: 2 }));
}

async fn a_recorder_commits_many_events_together_and_tells_each_its_number(b: Backend) {
    let recorder = store::audit::Recorder::start(b.store.clone(), "replica-a".into());
    let mut waiting = Vec::new();
    for n in 0..300 {
        let recorder = recorder.clone();
        let event = recorder.event("token.issued".into(), format!("{{\"n\":{n}}}"));
        waiting.push(tokio::spawn(async move { (n, recorder.record(event).await.expect("recorded")) }));
    }
    recorder.submit(recorder.event("logout".into(), "{}".into()));
    let mut numbers = Vec::new();
    for w in waiting {
        numbers.push(w.await.expect("join"));
    }
    let entries = b.store.audit_entries(1, 1000).await.expect("entries");
    for (n, seq) in &numbers {
        let entry = &entries[*seq as usize - 1];
        assert_eq!((entry.seq, entry.event.fields.as_str(), entry.event.node.as_str()), (*seq, format!("{{\"n\":{n}}}").as_str(), "replica-a"));
    }
    let mut seqs: Vec<u64> = numbers.iter().map(|(_, s)| *s).collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 300, "every event has a number of its own");
    // The submitted event lands too, soon after.
    for _ in 0..100 {
        if b.store.audit_head().await.expect("head").is_some_and(|(n, _)| n == 301) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let entries = b.store.audit_entries(1, 1000).await.expect("entries");
    assert_eq!(entries.iter().filter(|e| e.event.event == "logout").count(), 1);
    verify(entries, 1, &[], any_signature).expect("one chain");
}

async fn a_recorder_keeps_what_the_database_refused_and_appends_it_once_it_can(b: Backend) {
    let (block, unblock) = match b.config {
        DurableConfig::Sqlite { .. } => {
            ("CREATE TRIGGER outage BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'the database is down'); END", "DROP TRIGGER outage")
        }
        DurableConfig::Postgres { .. } => {
            ("ALTER TABLE audit_log ADD CONSTRAINT outage CHECK (false) NOT VALID", "ALTER TABLE audit_log DROP CONSTRAINT outage")
        }
    };
    b.tamper(block).await.expect("block");
    let recorder = store::audit::Recorder::start(b.store.clone(), "replica-a".into());
    for n in 1..=3 {
        recorder.submit(recorder.event("token.issued".into(), format!("{{\"n\":{n}}}")));
    }
    let flushed = tokio::spawn({
        let recorder = recorder.clone();
        async move { recorder.flush().await }
    });
    // The recorder tries, fails, waits and tries again: nothing is appended meanwhile, and
    // the flush waits.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(b.store.audit_head().await.expect("head"), None);
    assert!(!flushed.is_finished(), "a flush returns once the events are in the log, not before");
    recorder.submit(recorder.event("logout".into(), "{}".into()));
    b.tamper(unblock).await.expect("unblock");
    tokio::time::timeout(std::time::Duration::from_secs(10), flushed).await.expect("appended once the database takes them").expect("join").expect("flush");
    recorder.flush().await.expect("flush");
    let entries = b.store.audit_entries(1, 100).await.expect("entries");
    let got: Vec<(&str, &str)> = entries.iter().map(|e| (e.event.event.as_str(), e.event.fields.as_str())).collect();
    assert_eq!(
        got,
        [("token.issued", r#"{"n":1}"#), ("token.issued", r#"{"n":2}"#), ("token.issued", r#"{"n":3}"#), ("logout", "{}")],
        "all of them, once, in order"
    );
    verify(entries, 1, &[], any_signature).expect("one chain");
}

each_backend! {
    backends: [sqlite, postgres],
    tests: [
        replicas_appending_at_once_keep_one_chain,
        keeps_checkpoints_once,
        a_recorder_commits_many_events_together_and_tells_each_its_number,
        a_recorder_keeps_what_the_database_refused_and_appends_it_once_it_can,
        the_database_refuses_changes_and_the_verifier_names_what_bypassed_it,
    ],
}
