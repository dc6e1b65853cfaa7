//! The audit log: every security event, append-only, in one hash chain, with signed
//! checkpoints — so that an auditor can tell whether anything was edited, deleted,
//! reordered, inserted or cut off.
//!
//! Entry `n` (numbered from 1 without gaps) carries the hash of entry `n − 1` (32 zero
//! octets for the first) and its own hash, the SHA-256 of:
//!
//! ```text
//! "hawiya-audit-entry-v1" 0x00
//! prev            32 octets
//! seq             8 octets, unsigned big-endian
//! at              8 octets, signed big-endian (Unix milliseconds)
//! node, event, fields   each as a 4-octet big-endian length and its UTF-8 octets
//! ```
//!
//! `node` names the replica that appended it, `event` the kind (`login.succeeded`, …), and
//! `fields` is a JSON object as text, hashed as stored (never re-serialized). Replicas append
//! concurrently: the store serializes appends (SQLite's writer; a row lock on PostgreSQL), so
//! the chain stays one line.
//!
//! A checkpoint signs the chain up to an entry: the audit key (in the key store, certified by
//! the Services CA) signs [`Checkpoint::message`] — `"hawiya-audit-checkpoint-v1" 0x00`, seq,
//! the entry's hash and the time — so a chain rewritten from some entry on no longer matches
//! the checkpoints after it. Signing is the caller's: this crate stores and checks the chain.
//!
//! [`verify`] walks entries in order against the checkpoints and names the first break;
//! [`Recorder`] appends a process's events, which [`layer`] takes from `tracing`.

pub mod layer;

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// The audit log as the durable store keeps it.
#[async_trait::async_trait]
pub trait AuditStore: Send + Sync + std::fmt::Debug {
    /// Appends `events`, in order, after the log's last entry, all or none; durable when
    /// this returns. The number of the last entry appended (of the last entry when `events`
    /// is empty).
    async fn append_audit(&self, events: std::sync::Arc<[AuditEvent]>) -> Result<u64, StoreError>;

    /// Up to `limit` entries from entry `from` on, in order.
    async fn audit_entries(&self, from: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;

    /// The last entry's number and hash; `None` for an empty log.
    async fn audit_head(&self) -> Result<Option<(u64, [u8; 32])>, StoreError>;

    /// Stores a checkpoint (a second one for the same entry is refused).
    async fn put_audit_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError>;

    /// The checkpoints of entries `from` to `to`, in order.
    async fn audit_checkpoints(&self, from: u64, to: u64) -> Result<Vec<Checkpoint>, StoreError>;
}

/// An event to append: what happened, where and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When, Unix milliseconds.
    pub at: i64,
    /// The replica (process) that saw it.
    pub node: String,
    /// Its kind, dotted (`login.succeeded`, `certificate.issued`, …).
    pub event: String,
    /// Its details: a JSON object as text, never a secret.
    pub fields: String,
}

/// An event in the log, chained.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Its number: 1, 2, 3, … without gaps.
    pub seq: u64,
    /// The event.
    #[serde(flatten)]
    pub event: AuditEvent,
    /// The hash of the entry before it (zeros for the first), hex in JSON.
    #[serde(with = "hex_32")]
    pub prev: [u8; 32],
    /// Its own hash ([`entry_hash`]), hex in JSON.
    #[serde(with = "hex_32")]
    pub hash: [u8; 32],
}

/// A signed statement that the chain up to entry `seq` ends in `hash`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The last entry it covers.
    pub seq: u64,
    /// That entry's hash, hex in JSON.
    #[serde(with = "hex_32")]
    pub hash: [u8; 32],
    /// When it was signed, Unix milliseconds.
    pub at: i64,
    /// The audit key's signature over [`Checkpoint::message`] (DER ECDSA), hex in JSON.
    #[serde(with = "hex_bytes")]
    pub signature: Vec<u8>,
    /// The audit key's certificate (DER), hex in JSON.
    #[serde(with = "hex_bytes")]
    pub certificate: Vec<u8>,
}

const ENTRY_DOMAIN: &[u8] = b"hawiya-audit-entry-v1\0";
const CHECKPOINT_DOMAIN: &[u8] = b"hawiya-audit-checkpoint-v1\0";

/// Now, in Unix milliseconds (the time of entries and checkpoints).
pub fn unix_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The hash of entry `seq` holding `event` after an entry whose hash is `prev`.
pub fn entry_hash(prev: &[u8; 32], seq: u64, event: &AuditEvent) -> [u8; 32] {
    let mut d = digest::Context::new(&digest::SHA256);
    d.update(ENTRY_DOMAIN);
    d.update(prev);
    d.update(&seq.to_be_bytes());
    d.update(&event.at.to_be_bytes());
    for part in [&event.node, &event.event, &event.fields] {
        d.update(&(part.len() as u32).to_be_bytes());
        d.update(part.as_bytes());
    }
    let mut out = [0; 32];
    out.copy_from_slice(d.finish().as_ref());
    out
}

impl Checkpoint {
    /// What the audit key signs for the chain up to `seq`, ending in `hash`, at `at`.
    pub fn message(seq: u64, hash: &[u8; 32], at: i64) -> Vec<u8> {
        [CHECKPOINT_DOMAIN, &seq.to_be_bytes(), hash, &at.to_be_bytes()].concat()
    }
}

/// The first thing wrong with a log, by the entry where it shows.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Break {
    /// The entry's content does not give its hash: it was changed after it was written.
    #[error("entry {seq} was edited: its content does not give its hash")]
    Edited {
        /// The entry.
        seq: u64,
    },
    /// Entries are missing between two that are there.
    #[error("entries {first} to {last} were deleted")]
    Deleted {
        /// The first missing.
        first: u64,
        /// The last missing.
        last: u64,
    },
    /// The entry is intact but was written at another place in the chain: entries were
    /// moved.
    #[error("entry {seq} was reordered: it was written as entry {written_as}")]
    Reordered {
        /// Where it is.
        seq: u64,
        /// Where it was written.
        written_as: u64,
    },
    /// The entry is chained to no entry of the log: it was put in.
    #[error("entry {seq} was inserted: it is chained to no entry of the log")]
    Inserted {
        /// The entry.
        seq: u64,
    },
    /// A checkpoint signed another chain than the log holds up to its entry.
    #[error("the chain up to entry {seq} is not the one checkpoint {seq} signed: entries up to it were rewritten")]
    Rewritten {
        /// The checkpoint's entry.
        seq: u64,
    },
    /// A checkpoint names an entry past the end of the log: the tail was cut off.
    #[error("the log ends at entry {last} but a checkpoint covers entry {checkpoint}: the entries after {last} were deleted")]
    Truncated {
        /// The last entry there.
        last: u64,
        /// The checkpoint's entry.
        checkpoint: u64,
    },
    /// A checkpoint's signature does not verify with its certificate, or its certificate
    /// is not the audit key's.
    #[error("the checkpoint at entry {seq} is not signed by an audit key: {why}")]
    BadCheckpoint {
        /// The checkpoint's entry.
        seq: u64,
        /// Why.
        why: String,
    },
    /// The first entry is not entry 1.
    #[error("the log starts at entry {seq}: entries 1 to {} were deleted", .seq - 1)]
    MissingStart {
        /// The first entry there.
        seq: u64,
    },
}

/// What a log that verified holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Entries walked.
    pub entries: u64,
    /// Checkpoints checked.
    pub checkpoints: usize,
    /// The last entry a checkpoint covers (0: none).
    pub signed_up_to: u64,
    /// The last entry (0: an empty log).
    pub last: u64,
}

/// Walks `entries` (in seq order, from entry `from`) against `checkpoints`, checking each
/// checkpoint's signature with `signed` (which also checks its certificate), and returns
/// the first break. A walk from `from > 1` trusts `prev` of its first entry (an export of a
/// range); entries after the last checkpoint are chained but not yet signed (see
/// [`Verified::signed_up_to`]).
pub fn verify(
    entries: impl IntoIterator<Item = AuditEntry>,
    from: u64,
    checkpoints: &[Checkpoint],
    signed: impl Fn(&Checkpoint) -> Result<(), String>,
) -> Result<Verified, Break> {
    let mut checkpoints: Vec<&Checkpoint> = checkpoints.iter().collect();
    checkpoints.sort_by_key(|c| c.seq);
    for c in &checkpoints {
        signed(c).map_err(|why| Break::BadCheckpoint { seq: c.seq, why })?;
    }
    let mut pending = checkpoints.iter().filter(|c| c.seq >= from).peekable();
    // Every entry's hash and where it stands, to tell a moved entry from a forged one.
    let entries: Vec<AuditEntry> = entries.into_iter().collect();
    let mut last: Option<&AuditEntry> = None;
    for entry in &entries {
        let expected = last.map_or(from, |l| l.seq + 1);
        if last.is_none() && from == 1 && entry.seq != 1 {
            return Err(Break::MissingStart { seq: entry.seq });
        }
        if entry.seq > expected {
            return Err(Break::Deleted { first: expected, last: entry.seq - 1 });
        }
        if entry_hash(&entry.prev, entry.seq, &entry.event) != entry.hash {
            // Moved (renumbered) rather than changed: it is intact at another number.
            let last_seq = entries.last().map_or(0, |e| e.seq) + 1;
            return Err(match (1..=last_seq).find(|m| *m != entry.seq && entry_hash(&entry.prev, *m, &entry.event) == entry.hash) {
                Some(written_as) => Break::Reordered { seq: entry.seq, written_as },
                None => Break::Edited { seq: entry.seq },
            });
        }
        let linked = match last {
            Some(l) => entry.prev == l.hash,
            None => from > 1 || entry.prev == [0; 32],
        };
        if !linked {
            return Err(match entries.iter().find(|other| other.hash == entry.prev) {
                Some(other) => Break::Reordered { seq: entry.seq, written_as: other.seq + 1 },
                None => Break::Inserted { seq: entry.seq },
            });
        }
        while let Some(c) = pending.peek() {
            if c.seq > entry.seq {
                break;
            }
            if c.seq == entry.seq && c.hash != entry.hash {
                return Err(Break::Rewritten { seq: c.seq });
            }
            pending.next();
        }
        last = Some(entry);
    }
    let last_seq = last.map_or(from.saturating_sub(1), |l| l.seq);
    if let Some(c) = pending.next() {
        return Err(Break::Truncated { last: last_seq, checkpoint: c.seq });
    }
    let signed_up_to = checkpoints.iter().map(|c| c.seq).filter(|s| *s <= last_seq).max().unwrap_or(0);
    Ok(Verified { entries: entries.len() as u64, checkpoints: checkpoints.len(), signed_up_to, last: last_seq })
}

/// Appends a process's events with group commit: events submitted while an append is under
/// way, or within [`LINGER`] of the first, go in one append, so a busy server pays one
/// transaction for many events. An append that fails (the database is down, failing over)
/// is tried again, with the events after it waiting their turn, until it succeeds: an outage
/// delays the log but leaves no hole in it while the process lives.
#[derive(Clone, Debug)]
pub struct Recorder {
    node: String,
    queue: tokio::sync::mpsc::UnboundedSender<Pending>,
}

/// An event waiting for its append and who waits for it (`None`: nobody), or someone
/// waiting for everything before to be appended (a `None` event).
type Pending = (Option<AuditEvent>, Option<tokio::sync::oneshot::Sender<u64>>);

/// The most events one append takes.
const MAX_BATCH: usize = 512;

/// How long submitted events wait for others before their append: what a replica killed
/// outright can lose of the events it has not written yet. A flush does not wait.
const LINGER: std::time::Duration = std::time::Duration::from_millis(5);

/// The first wait before an append is tried again, doubling up to [`RETRY_MAX`].
const RETRY_FIRST: std::time::Duration = std::time::Duration::from_millis(100);
const RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(5);

impl Recorder {
    /// Starts appending to `store` on the current tokio runtime, as replica `node`.
    pub fn start(store: std::sync::Arc<dyn AuditStore>, node: String) -> Self {
        let (queue, mut pending) = tokio::sync::mpsc::unbounded_channel::<Pending>();
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while pending.recv_many(&mut batch, MAX_BATCH).await > 0 {
                // Nobody waits for these: let those that follow join them, so that a busy
                // server appends in a few large transactions rather than one per request.
                if batch.iter().all(|(_, reply)| reply.is_none()) {
                    tokio::time::sleep(LINGER).await;
                    while batch.len() < MAX_BATCH
                        && let Ok(next) = pending.try_recv()
                    {
                        batch.push(next);
                    }
                }
                let mut replies = Vec::new();
                let mut events = Vec::with_capacity(batch.len());
                for (event, reply) in batch.drain(..) {
                    // A reply waits for the events before it and its own, if any.
                    replies.extend(reply.map(|r| (events.len() + usize::from(event.is_some()), r)));
                    events.extend(event);
                }
                let (count, events) = (events.len() as u64, std::sync::Arc::<[AuditEvent]>::from(events));
                let mut wait = RETRY_FIRST;
                let last = loop {
                    match store.append_audit(events.clone()).await {
                        Ok(last) => break last,
                        Err(e) => {
                            // Not at the target `audit`: that would be recorded, and fail, again.
                            tracing::error!(target: "hawiya::audit", error = %e, events = count, retry_in_ms = wait.as_millis() as u64, "audit events not appended yet");
                            tokio::time::sleep(wait).await;
                            wait = (wait * 2).min(RETRY_MAX);
                        }
                    }
                };
                // The i-th event of the batch (from 1) is entry last - count + i.
                for (i, reply) in replies {
                    let _ = reply.send(last + i as u64 - count);
                }
            }
        });
        Recorder { node, queue }
    }

    /// The replica's name in its entries.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The event `event` with `fields` (the text of a JSON object, never a secret), now.
    pub fn event(&self, event: String, fields: String) -> AuditEvent {
        AuditEvent { at: unix_millis(), node: self.node.clone(), event, fields }
    }

    /// Appends `event` and returns its number once it is durable.
    pub async fn record(&self, event: AuditEvent) -> Result<u64, StoreError> {
        let (reply, done) = tokio::sync::oneshot::channel();
        self.queue.send((Some(event), Some(reply))).map_err(|_| StoreError::Unavailable("the audit recorder has stopped"))?;
        done.await.map_err(|_| StoreError::Unavailable("the audit recorder has stopped"))
    }

    /// Appends `event` without waiting (from a log layer, which cannot).
    pub fn submit(&self, event: AuditEvent) {
        let _ = self.queue.send((Some(event), None));
    }

    /// Returns once every event submitted before is durable (however long the database takes
    /// to come back: callers that cannot wait put a timeout around it).
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (reply, done) = tokio::sync::oneshot::channel();
        self.queue.send((None, Some(reply))).map_err(|_| StoreError::Unavailable("the audit recorder has stopped"))?;
        done.await.map(drop).map_err(|_| StoreError::Unavailable("the audit recorder has stopped"))
    }
}

mod hex_bytes {
    pub fn serialize<S: serde::Serializer>(value: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(value))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(<String as serde::Deserialize>::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

mod hex_32 {
    pub fn serialize<S: serde::Serializer>(value: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(value))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let bytes = super::hex_bytes::deserialize(d)?;
        bytes.try_into().map_err(|_| serde::de::Error::custom("a hash is 32 octets"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chains `events` after the entry `head` (`None`: the log is empty).
    fn chain(head: Option<(u64, [u8; 32])>, events: Vec<AuditEvent>) -> Vec<AuditEntry> {
        let (mut seq, mut prev) = head.unwrap_or((0, [0; 32]));
        events
            .into_iter()
            .map(|event| {
                seq += 1;
                let hash = entry_hash(&prev, seq, &event);
                let entry = AuditEntry { seq, event, prev, hash };
                prev = hash;
                entry
            })
            .collect()
    }

    fn event(n: u32) -> AuditEvent {
        AuditEvent { at: 1_764_400_000_000 + i64::from(n), node: "replica-a".into(), event: "login.succeeded".into(), fields: format!("{{\"n\":{n}}}") }
    }

    fn log(n: u32) -> Vec<AuditEntry> {
        chain(None, (1..=n).map(event).collect())
    }

    fn checkpoint(entry: &AuditEntry) -> Checkpoint {
        Checkpoint { seq: entry.seq, hash: entry.hash, at: entry.event.at, signature: vec![1], certificate: vec![] }
    }

    fn check(entries: Vec<AuditEntry>, checkpoints: &[Checkpoint]) -> Result<Verified, Break> {
        verify(entries, 1, checkpoints, |c| if c.signature == [1] { Ok(()) } else { Err("bad signature".into()) })
    }

    #[test]
    fn the_hash_is_the_documented_one() {
        // The layout in the module doc, written out by hand: an independent verifier hashes the same.
        let e = event(7);
        let mut bytes = b"hawiya-audit-entry-v1\0".to_vec();
        bytes.extend_from_slice(&[0; 32]);
        bytes.extend_from_slice(&1u64.to_be_bytes());
        bytes.extend_from_slice(&e.at.to_be_bytes());
        for part in ["replica-a", "login.succeeded", "{\"n\":7}"] {
            bytes.extend_from_slice(&(part.len() as u32).to_be_bytes());
            bytes.extend_from_slice(part.as_bytes());
        }
        assert_eq!(entry_hash(&[0; 32], 1, &e).as_slice(), digest::digest(&digest::SHA256, &bytes).as_ref());
        let chained = chain(Some((41, [9; 32])), vec![e.clone(), event(8)]);
        assert_eq!((chained[0].seq, chained[0].prev, chained[1].prev), (42, [9; 32], chained[0].hash));
    }

    #[test]
    fn an_intact_log_verifies_and_says_how_far_it_is_signed() {
        let entries = log(5);
        let signed = [checkpoint(&entries[2])];
        assert_eq!(check(entries.clone(), &signed), Ok(Verified { entries: 5, checkpoints: 1, signed_up_to: 3, last: 5 }));
        assert_eq!(check(Vec::new(), &[]), Ok(Verified { entries: 0, checkpoints: 0, signed_up_to: 0, last: 0 }));
        // A range exported from entry 3 on trusts its first entry's link.
        assert_eq!(verify(entries[2..].to_vec(), 3, &signed, |_| Ok(())).map(|v| v.entries), Ok(3));
    }

    #[test]
    fn every_kind_of_tampering_is_named_at_its_first_entry() {
        let entries = log(6);
        let signed = [checkpoint(&entries[3])];

        let mut edited = entries.clone();
        edited[2].event.fields = "{\"n\":99}".into();
        assert_eq!(check(edited, &signed), Err(Break::Edited { seq: 3 }));

        let mut deleted = entries.clone();
        deleted.remove(2);
        assert_eq!(check(deleted, &signed), Err(Break::Deleted { first: 3, last: 3 }));

        // Two entries swap places: their numbers change, nothing else.
        let mut reordered = entries.clone();
        reordered.swap(1, 2);
        reordered[1].seq = 2;
        reordered[2].seq = 3;
        assert_eq!(check(reordered, &signed), Err(Break::Reordered { seq: 2, written_as: 3 }));

        // A forged entry, self-consistent, chained to nothing in the log.
        let mut inserted = entries.clone();
        inserted[4].prev = [7; 32];
        inserted[4].hash = entry_hash(&inserted[4].prev, 5, &inserted[4].event);
        assert_eq!(check(inserted, &signed), Err(Break::Inserted { seq: 5 }));

        // The whole chain recomputed from entry 2 on: consistent, but not what was signed.
        let mut events: Vec<AuditEvent> = entries.iter().map(|e| e.event.clone()).collect();
        events[1].fields = "{\"n\":-1}".into();
        assert_eq!(check(chain(None, events), &signed), Err(Break::Rewritten { seq: 4 }));

        assert_eq!(check(entries[..3].to_vec(), &signed), Err(Break::Truncated { last: 3, checkpoint: 4 }));
        assert_eq!(check(entries[1..].to_vec(), &signed), Err(Break::MissingStart { seq: 2 }));

        let mut forged = checkpoint(&entries[3]);
        forged.signature = vec![2];
        assert_eq!(check(entries.clone(), &[forged]), Err(Break::BadCheckpoint { seq: 4, why: "bad signature".into() }));
    }

    #[test]
    fn entries_and_checkpoints_are_json_lines_with_hex_hashes() {
        let entries = log(1);
        let json = serde_json::to_value(&entries[0]).unwrap_or_default();
        assert_eq!(json["seq"], 1);
        assert_eq!(json["event"], "login.succeeded");
        assert_eq!(json["fields"], "{\"n\":1}", "fields stay the text that was hashed");
        assert_eq!(json["prev"], "0".repeat(64));
        assert_eq!(serde_json::from_value::<AuditEntry>(json).ok(), Some(entries[0].clone()));
    }
}
