//! The delivery queue on PostgreSQL. A claim is one statement: it locks the due rows it
//! takes, skipping those another replica's claim has locked (`FOR UPDATE SKIP LOCKED`), and
//! leases them in the same statement, so replicas claiming at once never share a row.

use tokio_postgres::Row;

use super::{PostgresStore, column, db};
use crate::StoreError;
use crate::delivery::{Delivery, DeliveryCounts, DeliveryQueue, NewDelivery};

const CLAIM: &str = "UPDATE deliveries d SET next_at = $2, lease = $3
     FROM (SELECT id FROM deliveries WHERE state = 'pending' AND next_at <= $1 ORDER BY next_at, id LIMIT $4 FOR UPDATE SKIP LOCKED) due
     WHERE d.id = due.id
     RETURNING d.id, d.kind, d.client_id, d.uri, d.payload, d.created_at, d.attempts";

fn delivery(row: &Row) -> Result<Delivery, StoreError> {
    let attempts: i32 = column(row, 6)?;
    Ok(Delivery {
        id: column(row, 0)?,
        kind: column(row, 1)?,
        client_id: column(row, 2)?,
        uri: column(row, 3)?,
        payload: column(row, 4)?,
        created_at: column(row, 5)?,
        attempts: u32::try_from(attempts).map_err(|_| StoreError::Corrupt(format!("a delivery with {attempts} attempts")))?,
    })
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[async_trait::async_trait]
impl DeliveryQueue for PostgresStore {
    async fn enqueue_deliveries(&self, deliveries: &[NewDelivery]) -> Result<(), StoreError> {
        if deliveries.is_empty() {
            return Ok(());
        }
        // One statement: all or none.
        let column = |f: fn(&NewDelivery) -> &str| deliveries.iter().map(f).collect::<Vec<&str>>();
        let (kind, client, uri, payload) = (column(|d| &d.kind), column(|d| &d.client_id), column(|d| &d.uri), column(|d| &d.payload));
        let created: Vec<i64> = deliveries.iter().map(|d| d.created_at).collect();
        self.execute(
            "INSERT INTO deliveries (kind, client_id, uri, payload, created_at, next_at)
             SELECT kind, client_id, uri, payload, created_at, created_at
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[]) AS d(kind, client_id, uri, payload, created_at)",
            &[&kind, &client, &uri, &payload, &created],
        )
        .await
        .map(drop)
    }

    async fn claim_deliveries(&self, now: i64, lease: &str, lease_until: i64, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.conn().await?.client.query(CLAIM, &[&now, &lease_until, &lease, &limit]).await.map_err(db)?;
        let mut claimed = rows.iter().map(delivery).collect::<Result<Vec<_>, _>>()?;
        claimed.sort_by_key(|d| d.id);
        Ok(claimed)
    }

    async fn delivered(&self, id: i64, lease: &str) -> Result<bool, StoreError> {
        Ok(self.execute("DELETE FROM deliveries WHERE id = $1 AND lease = $2 AND state = 'pending'", &[&id, &lease]).await? == 1)
    }

    async fn delivery_failed(&self, id: i64, lease: &str, next: Option<i64>, error: &str) -> Result<bool, StoreError> {
        let n = self
            .execute(
                "UPDATE deliveries SET attempts = attempts + 1, last_error = $3, lease = NULL,
                     next_at = COALESCE($4, next_at), state = CASE WHEN $4::bigint IS NULL THEN 'failed' ELSE 'pending' END
                 WHERE id = $1 AND lease = $2 AND state = 'pending'",
                &[&id, &lease, &error, &next],
            )
            .await?;
        Ok(n == 1)
    }

    async fn delivery_counts(&self, now: i64) -> Result<DeliveryCounts, StoreError> {
        let row = self
            .conn().await?
            .client
            .query_one(
                "SELECT count(*) FILTER (WHERE state = 'pending' AND next_at <= $1), count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'failed')
                 FROM deliveries",
                &[&now],
            )
            .await
            .map_err(db)?;
        Ok(DeliveryCounts { due: count(column(&row, 0)?), pending: count(column(&row, 1)?), failed: count(column(&row, 2)?) })
    }
}
