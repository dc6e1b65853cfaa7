//! The audit log's tables on PostgreSQL. An append is one statement: it locks the one row
//! of `audit_head` (replicas appending at once wait for each other there, each chaining after
//! the other's commit), chains the events after the head with PostgreSQL's own `sha256` —
//! the same octets as [`crate::audit::entry_hash`], which the conformance suite checks with
//! the Rust verifier — inserts them and moves the head, all in that statement's transaction.

use super::{PostgresStore, db};
use crate::StoreError;
use crate::audit::{AuditEntry, AuditEvent, AuditStore, Checkpoint};

/// The entry hash of `audit.rs` in SQL, over the columns `prev`, `seq`, `at`, `node`,
/// `event` and `fields` of the row it is computed in.
macro_rules! entry_hash {
    ($prev:literal, $seq:literal) => {
        concat!(
            "sha256('\\x6861776979612d61756469742d656e7472792d763100'::bytea || ",
            $prev,
            " || int8send(",
            $seq,
            ") || int8send(e.at)",
            " || int4send(octet_length(convert_to(e.node, 'UTF8'))) || convert_to(e.node, 'UTF8')",
            " || int4send(octet_length(convert_to(e.event, 'UTF8'))) || convert_to(e.event, 'UTF8')",
            " || int4send(octet_length(convert_to(e.fields, 'UTF8'))) || convert_to(e.fields, 'UTF8'))"
        )
    };
}

/// Appends the events given as arrays ($1 at, $2 node, $3 event, $4 fields), chained after
/// the head; returns the new head's number.
const APPEND: &str = concat!(
    "WITH RECURSIVE head AS (SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE),
     e AS (SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS e(at, node, event, fields, n)),
     chained AS (
         SELECT e.n, head.seq + 1 AS seq, e.at, e.node, e.event, e.fields, head.hash AS prev, ",
    entry_hash!("head.hash", "head.seq + 1"),
    " AS hash FROM head JOIN e ON e.n = 1
         UNION ALL
         SELECT e.n, c.seq + 1, e.at, e.node, e.event, e.fields, c.hash, ",
    entry_hash!("c.hash", "c.seq + 1"),
    " FROM chained c JOIN e ON e.n = c.n + 1
     ),
     inserted AS (
         INSERT INTO audit_log (seq, at, node, event, fields, prev, hash)
         SELECT seq, at, node, event, fields, prev, hash FROM chained
         RETURNING seq, hash
     ),
     last AS (SELECT seq, hash FROM inserted ORDER BY seq DESC LIMIT 1)
     UPDATE audit_head SET seq = last.seq, hash = last.hash FROM last WHERE audit_head.id = 1
     RETURNING audit_head.seq"
);

fn hash(bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    bytes.try_into().map_err(|_| StoreError::Corrupt("an audit hash is not 32 octets".into()))
}

fn seq(n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("audit entry number {n}")))
}

fn number(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait::async_trait]
impl AuditStore for PostgresStore {
    async fn append_audit(&self, events: std::sync::Arc<[AuditEvent]>) -> Result<u64, StoreError> {
        if events.is_empty() {
            return Ok(self.audit_head().await?.map_or(0, |(n, _)| n));
        }
        let at: Vec<i64> = events.iter().map(|e| e.at).collect();
        let column = |f: fn(&AuditEvent) -> &str| events.iter().map(f).collect::<Vec<&str>>();
        let (node, event, fields) = (column(|e| &e.node), column(|e| &e.event), column(|e| &e.fields));
        let row = self.conn().await?.client.query_one(APPEND, &[&at, &node, &event, &fields]).await.map_err(db)?;
        seq(row.get(0))
    }

    async fn audit_entries(&self, from: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .conn()
            .await?
            .client
            .query("SELECT seq, at, node, event, fields, prev, hash FROM audit_log WHERE seq >= $1 ORDER BY seq LIMIT $2", &[&number(from), &limit])
            .await
            .map_err(db)?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    seq: seq(r.get(0))?,
                    event: AuditEvent { at: r.get(1), node: r.get(2), event: r.get(3), fields: r.get(4) },
                    prev: hash(r.get(5))?,
                    hash: hash(r.get(6))?,
                })
            })
            .collect()
    }

    async fn audit_head(&self) -> Result<Option<(u64, [u8; 32])>, StoreError> {
        let row = self.conn().await?.client.query_one("SELECT seq, hash FROM audit_head WHERE id = 1", &[]).await.map_err(db)?;
        let n = seq(row.get(0))?;
        if n == 0 { Ok(None) } else { Ok(Some((n, hash(row.get(1))?))) }
    }

    async fn put_audit_checkpoint(&self, c: &Checkpoint) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO audit_checkpoints (seq, hash, at, signature, certificate) VALUES ($1, $2, $3, $4, $5)",
            &[&number(c.seq), &&c.hash[..], &c.at, &c.signature, &c.certificate],
        )
        .await
        .map(drop)
    }

    async fn audit_checkpoints(&self, from: u64, to: u64) -> Result<Vec<Checkpoint>, StoreError> {
        let rows = self
            .conn()
            .await?
            .client
            .query(
                "SELECT seq, hash, at, signature, certificate FROM audit_checkpoints WHERE seq BETWEEN $1 AND $2 ORDER BY seq",
                &[&number(from), &number(to)],
            )
            .await
            .map_err(db)?;
        rows.iter().map(|r| Ok(Checkpoint { seq: seq(r.get(0))?, hash: hash(r.get(1))?, at: r.get(2), signature: r.get(3), certificate: r.get(4) })).collect()
    }
}
