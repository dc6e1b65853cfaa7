//! The delivery queue on SQLite: the writer thread runs claims one after another, so a claim
//! reads the due rows and leases them in the same transaction, alone.

use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, db};
use crate::StoreError;
use crate::delivery::{Delivery, DeliveryCounts, DeliveryQueue, NewDelivery};

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[async_trait::async_trait]
impl DeliveryQueue for SqliteStore {
    async fn enqueue_deliveries(&self, deliveries: &[NewDelivery]) -> Result<(), StoreError> {
        let deliveries = deliveries.to_vec();
        self.write(move |conn| {
            let mut insert = conn
                .prepare_cached("INSERT INTO deliveries (kind, client_id, uri, payload, created_at, next_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)")
                .map_err(db)?;
            for d in &deliveries {
                insert.execute(params![d.kind, d.client_id, d.uri, d.payload, d.created_at]).map_err(db)?;
            }
            Ok(())
        })
        .await
    }

    async fn claim_deliveries(&self, now: i64, lease: &str, lease_until: i64, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let (lease, limit) = (lease.to_owned(), i64::try_from(limit).unwrap_or(i64::MAX));
        self.write(move |conn| {
            let mut select = conn
                .prepare_cached(
                    "SELECT id, kind, client_id, uri, payload, created_at, attempts FROM deliveries
                     WHERE state = 'pending' AND next_at <= ?1 ORDER BY next_at, id LIMIT ?2",
                )
                .map_err(db)?;
            let rows = select
                .query_map(params![now, limit], |r| {
                    Ok(Delivery {
                        id: r.get(0)?,
                        kind: r.get(1)?,
                        client_id: r.get(2)?,
                        uri: r.get(3)?,
                        payload: r.get(4)?,
                        created_at: r.get(5)?,
                        attempts: r.get(6)?,
                    })
                })
                .map_err(db)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(db)?;
            let mut claim = conn.prepare_cached("UPDATE deliveries SET next_at = ?2, lease = ?3 WHERE id = ?1").map_err(db)?;
            for d in &rows {
                claim.execute(params![d.id, lease_until, lease]).map_err(db)?;
            }
            Ok(rows)
        })
        .await
    }

    async fn delivered(&self, id: i64, lease: &str) -> Result<bool, StoreError> {
        let lease = lease.to_owned();
        self.write(move |conn| {
            let n = conn
                .prepare_cached("DELETE FROM deliveries WHERE id = ?1 AND lease = ?2 AND state = 'pending'")
                .map_err(db)?
                .execute(params![id, lease])
                .map_err(db)?;
            Ok(n == 1)
        })
        .await
    }

    async fn delivery_failed(&self, id: i64, lease: &str, next: Option<i64>, error: &str) -> Result<bool, StoreError> {
        let (lease, error) = (lease.to_owned(), error.to_owned());
        self.write(move |conn| {
            let n = conn
                .prepare_cached(
                    "UPDATE deliveries SET attempts = attempts + 1, last_error = ?3, lease = NULL,
                         next_at = COALESCE(?4, next_at), state = CASE WHEN ?4 IS NULL THEN 'failed' ELSE 'pending' END
                     WHERE id = ?1 AND lease = ?2 AND state = 'pending'",
                )
                .map_err(db)?
                .execute(params![id, lease, error, next])
                .map_err(db)?;
            Ok(n == 1)
        })
        .await
    }

    async fn delivery_counts(&self, now: i64) -> Result<DeliveryCounts, StoreError> {
        self.read(|conn| {
            let row: Option<(i64, i64, i64)> = conn
                .prepare_cached(
                    "SELECT COALESCE(SUM(state = 'pending' AND next_at <= ?1), 0), COALESCE(SUM(state = 'pending'), 0), COALESCE(SUM(state = 'failed'), 0)
                     FROM deliveries",
                )
                .map_err(db)?
                .query_row([now], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
                .map_err(db)?;
            let (due, pending, failed) = row.unwrap_or_default();
            Ok(DeliveryCounts { due: count(due), pending: count(pending), failed: count(failed) })
        })
    }
}
