//! The CA's tables on PostgreSQL: certificates and their status, CRL numbers, published CRLs
//! and the ceremony record.

use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Statement};

use super::{PostgresStore, db};
use crate::*;

const RECORD_COLUMNS: &str = "serial, issuer, profile, subject, not_before, not_after, der, issued_at, status, reason, revoked_at";

/// The hot statements of the CA (issuance, OCSP), prepared once per connection.
pub(super) struct Statements {
    insert: Statement,
    find: Statement,
    status: Statement,
}

impl Statements {
    /// Prepares them on `client`.
    pub(super) async fn prepare(client: &Client) -> Result<Self, tokio_postgres::Error> {
        let insert = client
            .prepare(
                "INSERT INTO certificates (serial, issuer, profile, subject, not_before, not_after, der, issued_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (serial) DO NOTHING",
            )
            .await?;
        let find = client.prepare(&format!("SELECT {RECORD_COLUMNS} FROM certificates WHERE serial = $1")).await?;
        let status = client.prepare("SELECT status, reason, revoked_at FROM certificates WHERE serial = $1 AND issuer = $2").await?;
        Ok(Statements { insert, find, status })
    }
}

impl PostgresStore {
    async fn find(&self, serial: &Serial) -> Result<Option<CertificateRecord>, StoreError> {
        let c = self.conn().await?;
        c.client.query_opt(&c.ca.find, &[&serial.as_bytes()]).await.map_err(db)?.map(|r| record(&r)).transpose()
    }

    async fn change_status(&self, sql: &str, params: &[&(dyn ToSql + Sync)], serial: &Serial, releasing: bool) -> Result<CertificateRecord, StoreError> {
        let row = self.conn().await?.client.query_opt(sql, params).await.map_err(db)?;
        match row {
            Some(row) => record(&row),
            None => Err(refusal(serial, self.find(serial).await?.map(|r| r.status), releasing)),
        }
    }
}

fn record(row: &Row) -> Result<CertificateRecord, StoreError> {
    let get = |e: tokio_postgres::Error| StoreError::Corrupt(e.to_string());
    let serial: Vec<u8> = row.try_get(0).map_err(get)?;
    let reason: Option<i16> = row.try_get(9).map_err(get)?;
    let status: String = row.try_get(8).map_err(get)?;
    Ok(CertificateRecord {
        certificate: NewCertificate {
            serial: Serial::new(serial).map_err(StoreError::Corrupt)?,
            issuer: row.try_get(1).map_err(get)?,
            profile: row.try_get(2).map_err(get)?,
            subject: row.try_get(3).map_err(get)?,
            not_before: row.try_get(4).map_err(get)?,
            not_after: row.try_get(5).map_err(get)?,
            der: row.try_get(6).map_err(get)?,
            issued_at: row.try_get(7).map_err(get)?,
        },
        status: status_of(&status, reason.map(|r| r as u8), row.try_get(10).map_err(get)?)?,
    })
}

#[async_trait::async_trait]
impl CaStore for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        // Every connection (replaced if it broke): requests go round-robin, one dead
        // connection fails one in N.
        for slot in &self.slots {
            self.connection(slot).await?.client.simple_query("SELECT 1").await.map_err(db)?;
        }
        Ok(())
    }

    async fn insert_certificate(&self, c: &NewCertificate) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        let inserted = conn
            .client
            .execute(&conn.ca.insert, &[&c.serial.as_bytes(), &c.issuer, &c.profile, &c.subject, &c.not_before, &c.not_after, &c.der, &c.issued_at])
            .await
            .map_err(db)?;
        if inserted == 0 { Err(StoreError::DuplicateSerial(c.serial.clone())) } else { Ok(()) }
    }

    async fn certificate(&self, serial: &Serial) -> Result<Option<CertificateRecord>, StoreError> {
        self.find(serial).await
    }

    async fn status(&self, issuer: &str, serial: &Serial) -> Result<Option<CertificateStatus>, StoreError> {
        let c = self.conn().await?;
        let row = c.client.query_opt(&c.ca.status, &[&serial.as_bytes(), &issuer]).await.map_err(db)?;
        row.map(|r| {
            let reason: Option<i16> = r.get(1);
            status_of(r.get::<_, &str>(0), reason.map(|x| x as u8), r.get(2))
        })
        .transpose()
    }

    async fn revoke(&self, serial: &Serial, reason: RevocationReason, at: i64) -> Result<CertificateRecord, StoreError> {
        let sql = format!(
            "UPDATE certificates SET status = 'revoked', reason = $2, revoked_at = $3
             WHERE serial = $1 AND (status = 'good' OR (reason = $4 AND $2 <> $4)) RETURNING {RECORD_COLUMNS}"
        );
        let code = i16::from(reason.code());
        let hold = i16::from(RevocationReason::CertificateHold.code());
        self.change_status(&sql, &[&serial.as_bytes(), &code, &at, &hold], serial, false).await
    }

    async fn release(&self, serial: &Serial) -> Result<CertificateRecord, StoreError> {
        let sql = format!(
            "UPDATE certificates SET status = 'good', reason = NULL, revoked_at = NULL
             WHERE serial = $1 AND status = 'revoked' AND reason = $2 RETURNING {RECORD_COLUMNS}"
        );
        let hold = i16::from(RevocationReason::CertificateHold.code());
        self.change_status(&sql, &[&serial.as_bytes(), &hold], serial, true).await
    }

    async fn list(&self, issuer: Option<&str>, limit: usize) -> Result<Vec<CertificateRecord>, StoreError> {
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM certificates WHERE $1::TEXT IS NULL OR issuer = $1
             ORDER BY issued_at DESC, serial LIMIT $2"
        );
        let rows = self.conn().await?.client.query(&sql, &[&issuer, &(limit as i64)]).await.map_err(db)?;
        rows.iter().map(record).collect()
    }

    async fn revoked(&self, issuer: &str) -> Result<Vec<RevokedEntry>, StoreError> {
        let rows = self
            .conn()
            .await?
            .client
            .query("SELECT serial, reason, revoked_at FROM certificates WHERE issuer = $1 AND status = 'revoked' ORDER BY serial", &[&issuer])
            .await
            .map_err(db)?;
        rows.iter()
            .map(|r| {
                let reason: i16 = r.get(1);
                Ok(RevokedEntry {
                    serial: Serial::new(r.get(0)).map_err(StoreError::Corrupt)?,
                    reason: RevocationReason::from_code(reason as u8).ok_or_else(|| StoreError::Corrupt(format!("reason code {reason}")))?,
                    at: r.get(2),
                })
            })
            .collect()
    }

    async fn count(&self) -> Result<u64, StoreError> {
        let n: i64 = self.conn().await?.client.query_one("SELECT COUNT(*) FROM certificates", &[]).await.map_err(db)?.get(0);
        Ok(n as u64)
    }

    async fn next_crl_number(&self, issuer: &str) -> Result<u64, StoreError> {
        let row = self
            .conn()
            .await?
            .client
            .query_one(
                "INSERT INTO crl_numbers (issuer, last) VALUES ($1, 1)
                 ON CONFLICT (issuer) DO UPDATE SET last = crl_numbers.last + 1 RETURNING last",
                &[&issuer],
            )
            .await
            .map_err(db)?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    async fn put_crl(&self, crl: &PublishedCrl) -> Result<(), StoreError> {
        self.conn()
            .await?
            .client
            .execute(
                "INSERT INTO crls (issuer, number, this_update, next_update, der) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (issuer) DO UPDATE SET number = excluded.number, this_update = excluded.this_update,
                   next_update = excluded.next_update, der = excluded.der WHERE excluded.number > crls.number",
                &[&crl.issuer, &(crl.number as i64), &crl.this_update, &crl.next_update, &crl.der],
            )
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn latest_crl(&self, issuer: &str) -> Result<Option<PublishedCrl>, StoreError> {
        let row =
            self.conn().await?.client.query_opt("SELECT number, this_update, next_update, der FROM crls WHERE issuer = $1", &[&issuer]).await.map_err(db)?;
        Ok(row.map(|r| PublishedCrl {
            issuer: issuer.to_owned(),
            number: r.get::<_, i64>(0) as u64,
            this_update: r.get(1),
            next_update: r.get(2),
            der: r.get(3),
        }))
    }

    async fn put_ceremony(&self, record: &CeremonyRecord) -> Result<(), StoreError> {
        let json = serde_json::to_string(record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let inserted =
            self.conn().await?.client.execute("INSERT INTO ceremony (id, record) VALUES (1, $1) ON CONFLICT (id) DO NOTHING", &[&json]).await.map_err(db)?;
        if inserted == 0 {
            let when = self.ceremony().await?.map_or_else(|| record.performed_at.clone(), |r| r.performed_at);
            return Err(StoreError::CeremonyExists(when));
        }
        Ok(())
    }

    async fn ceremony(&self) -> Result<Option<CeremonyRecord>, StoreError> {
        let row = self.conn().await?.client.query_opt("SELECT record FROM ceremony WHERE id = 1", &[]).await.map_err(db)?;
        row.map(|r| serde_json::from_str(r.get::<_, &str>(0)).map_err(|e| StoreError::Corrupt(format!("ceremony record: {e}")))).transpose()
    }

    async fn update_ceremony(&self, previous: &CeremonyRecord, next: &CeremonyRecord, certificates: &[NewCertificate]) -> Result<(), StoreError> {
        let (previous, next) = (serde_json::to_string(previous), serde_json::to_string(next));
        let (previous, next) = (previous.map_err(|e| StoreError::Corrupt(e.to_string()))?, next.map_err(|e| StoreError::Corrupt(e.to_string()))?);
        let column = |f: fn(&NewCertificate) -> String| certificates.iter().map(f).collect::<Vec<_>>();
        let serials: Vec<&[u8]> = certificates.iter().map(|c| c.serial.as_bytes()).collect();
        let ders: Vec<&[u8]> = certificates.iter().map(|c| c.der.as_slice()).collect();
        let times = |f: fn(&NewCertificate) -> i64| certificates.iter().map(f).collect::<Vec<_>>();
        let (issuers, profiles, subjects) = (column(|c| c.issuer.clone()), column(|c| c.profile.clone()), column(|c| c.subject.clone()));
        let (not_before, not_after, issued_at) = (times(|c| c.not_before), times(|c| c.not_after), times(|c| c.issued_at));
        // One statement, so one transaction: the record is replaced only if it is, to the
        // byte, the one read (the same serializer wrote both), and the certificates are
        // stored only with it. The answer counts the record and the certificates stored.
        let result = self
            .conn()
            .await?
            .client
            .query_one(
                "WITH renewed AS (UPDATE ceremony SET record = $2 WHERE id = 1 AND record = $1 RETURNING id),
                 stored AS (INSERT INTO certificates (serial, issuer, profile, subject, not_before, not_after, der, issued_at)
                     SELECT c.* FROM UNNEST($3::bytea[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[], $9::bytea[], $10::bigint[])
                         AS c, renewed
                     RETURNING serial)
                 SELECT (SELECT count(*) FROM renewed), (SELECT count(*) FROM stored)",
                &[&previous, &next, &serials, &issuers, &profiles, &subjects, &not_before, &not_after, &ders, &issued_at],
            )
            .await;
        match result {
            Ok(row) if row.get::<_, i64>(0) == 1 => Ok(()),
            Ok(_) => Err(StoreError::CeremonyChanged),
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                for c in certificates {
                    if self.find(&c.serial).await?.is_some() {
                        return Err(StoreError::DuplicateSerial(c.serial.clone()));
                    }
                }
                Err(db(e))
            }
            Err(e) => Err(db(e)),
        }
    }

    async fn record_timestamps(&self, records: &[TimestampRecord]) -> Result<(), StoreError> {
        // One statement, so one transaction: all of the group or none of it.
        let column = |f: fn(&TimestampRecord) -> String| records.iter().map(f).collect::<Vec<_>>();
        let serials: Vec<&[u8]> = records.iter().map(|r| r.serial.as_bytes()).collect();
        let times: Vec<i64> = records.iter().map(|r| r.gen_time).collect();
        let imprints: Vec<&[u8]> = records.iter().map(|r| r.imprint.as_slice()).collect();
        let (algorithms, policies, requesters) = (column(|r| r.hash_algorithm.clone()), column(|r| r.policy.clone()), column(|r| r.requester.clone()));
        let result = self
            .conn()
            .await?
            .client
            .execute(
                "INSERT INTO timestamps (serial, gen_time, hash_algorithm, imprint, policy, requester)
                 SELECT * FROM UNNEST($1::bytea[], $2::bigint[], $3::text[], $4::bytea[], $5::text[], $6::text[])",
                &[&serials, &times, &algorithms, &imprints, &policies, &requesters],
            )
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                // Name a serial of the group that is already there.
                for r in records {
                    if self.timestamp(&r.serial).await?.is_some() {
                        return Err(StoreError::DuplicateSerial(r.serial.clone()));
                    }
                }
                Err(db(e))
            }
            Err(e) => Err(db(e)),
        }
    }

    async fn timestamp(&self, serial: &Serial) -> Result<Option<TimestampRecord>, StoreError> {
        self.one("SELECT serial, gen_time, hash_algorithm, imprint, policy, requester FROM timestamps WHERE serial = $1", &[&serial.as_bytes()], |r| {
            Ok(TimestampRecord {
                serial: Serial::new(r.get(0)).map_err(StoreError::Corrupt)?,
                gen_time: r.get(1),
                hash_algorithm: r.get(2),
                imprint: r.get(3),
                policy: r.get(4),
                requester: r.get(5),
            })
        })
        .await
    }
}
