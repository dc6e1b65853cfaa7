//! The audit log's tables on SQLite: the writer thread appends, so appends are serial and
//! the chain is computed here, from the last entry read in the same transaction.

use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, db};
use crate::StoreError;
use crate::audit::{AuditEntry, AuditEvent, AuditStore, Checkpoint, entry_hash};

fn hash(bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    bytes.try_into().map_err(|_| StoreError::Corrupt("an audit hash is not 32 octets".into()))
}

fn seq(n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("audit entry number {n}")))
}

pub(super) fn head(conn: &rusqlite::Connection) -> Result<Option<(u64, [u8; 32])>, StoreError> {
    let row: Option<(i64, Vec<u8>)> =
        conn.query_row("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?))).optional().map_err(db)?;
    row.map(|(n, h)| Ok((seq(n)?, hash(h)?))).transpose()
}

#[async_trait::async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, events: std::sync::Arc<[AuditEvent]>) -> Result<u64, StoreError> {
        self.write(move |conn| {
            let (mut seq, mut prev) = head(conn)?.unwrap_or((0, [0; 32]));
            let mut insert =
                conn.prepare_cached("INSERT INTO audit_log (seq, at, node, event, fields, prev, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)").map_err(db)?;
            for e in events.iter() {
                seq += 1;
                let hash = entry_hash(&prev, seq, e);
                let n = i64::try_from(seq).map_err(|_| StoreError::Corrupt("the audit log is full".into()))?;
                insert.execute(params![n, e.at, e.node, e.event, e.fields, &prev[..], &hash[..]]).map_err(db)?;
                prev = hash;
            }
            Ok(seq)
        })
        .await
    }

    async fn audit_entries(&self, from: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let (from, limit) = (i64::try_from(from).unwrap_or(i64::MAX), i64::try_from(limit).unwrap_or(i64::MAX));
        self.scan(move |conn| {
            let mut select =
                conn.prepare_cached("SELECT seq, at, node, event, fields, prev, hash FROM audit_log WHERE seq >= ?1 ORDER BY seq LIMIT ?2").map_err(db)?;
            let rows = select
                .query_map([from, limit], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get::<_, Vec<u8>>(5)?, r.get::<_, Vec<u8>>(6)?))
                })
                .map_err(db)?;
            let mut out = Vec::new();
            for row in rows {
                let (n, at, node, event, fields, prev, h) = row.map_err(db)?;
                out.push(AuditEntry { seq: seq(n)?, event: AuditEvent { at, node, event, fields }, prev: hash(prev)?, hash: hash(h)? });
            }
            Ok(out)
        })
        .await
    }

    async fn audit_head(&self) -> Result<Option<(u64, [u8; 32])>, StoreError> {
        self.read(head)
    }

    async fn put_audit_checkpoint(&self, c: &Checkpoint) -> Result<(), StoreError> {
        let c = c.clone();
        self.write(move |conn| {
            let n = i64::try_from(c.seq).map_err(|_| StoreError::Corrupt("checkpoint past the end of the log".into()))?;
            conn.execute(
                "INSERT INTO audit_checkpoints (seq, hash, at, signature, certificate) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![n, &c.hash[..], c.at, c.signature, c.certificate],
            )
            .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn audit_checkpoints(&self, from: u64, to: u64) -> Result<Vec<Checkpoint>, StoreError> {
        let (from, to) = (i64::try_from(from).unwrap_or(i64::MAX), i64::try_from(to).unwrap_or(i64::MAX));
        self.scan(move |conn| {
            let mut select = conn
                .prepare_cached("SELECT seq, hash, at, signature, certificate FROM audit_checkpoints WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq")
                .map_err(db)?;
            let rows = select.query_map([from, to], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?, r.get(2)?, r.get(3)?, r.get(4)?))).map_err(db)?;
            let mut out = Vec::new();
            for row in rows {
                let (n, h, at, signature, certificate) = row.map_err(db)?;
                out.push(Checkpoint { seq: seq(n)?, hash: hash(h)?, at, signature, certificate });
            }
            Ok(out)
        })
        .await
    }
}
