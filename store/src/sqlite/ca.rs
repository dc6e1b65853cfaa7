//! The CA's tables on SQLite: certificates and their status, CRL numbers, published CRLs and
//! the ceremony record.

use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, db};
use crate::*;

const RECORD_COLUMNS: &str = "serial, issuer, profile, subject, not_before, not_after, der, issued_at, status, reason, revoked_at";

fn record(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<CertificateRecord, StoreError>> {
    let serial: Vec<u8> = row.get(0)?;
    let status: String = row.get(8)?;
    let reason: Option<u8> = row.get(9)?;
    let revoked_at: Option<i64> = row.get(10)?;
    let certificate = NewCertificate {
        serial: match Serial::new(serial) {
            Ok(s) => s,
            Err(e) => return Ok(Err(StoreError::Corrupt(e))),
        },
        issuer: row.get(1)?,
        profile: row.get(2)?,
        subject: row.get(3)?,
        not_before: row.get(4)?,
        not_after: row.get(5)?,
        der: row.get(6)?,
        issued_at: row.get(7)?,
    };
    Ok(status_of(&status, reason, revoked_at).map(|status| CertificateRecord { certificate, status }))
}

fn find(conn: &Connection, serial: &Serial) -> Result<Option<CertificateRecord>, StoreError> {
    conn.prepare_cached(&format!("SELECT {RECORD_COLUMNS} FROM certificates WHERE serial = ?1"))
        .map_err(db)?
        .query_row([serial.as_bytes()], record)
        .optional()
        .map_err(db)?
        .transpose()
}

#[async_trait::async_trait]
impl CaStore for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        let one = |conn: &rusqlite::Connection| conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)).map(drop).map_err(db);
        self.read(one)?;
        // The writer thread too: a read-only pool can answer while writes are stuck.
        self.write(one).await
    }

    async fn insert_certificate(&self, c: &NewCertificate) -> Result<(), StoreError> {
        let c = c.clone();
        self.write(move |conn| {
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO certificates (serial, issuer, profile, subject, not_before, not_after, der, issued_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (serial) DO NOTHING",
                )
                .map_err(db)?
                .execute(params![c.serial.as_bytes(), c.issuer, c.profile, c.subject, c.not_before, c.not_after, c.der, c.issued_at])
                .map_err(db)?;
            if inserted == 0 { Err(StoreError::DuplicateSerial(c.serial)) } else { Ok(()) }
        })
        .await
    }

    async fn certificate(&self, serial: &Serial) -> Result<Option<CertificateRecord>, StoreError> {
        self.read(|conn| find(conn, serial))
    }

    async fn status(&self, issuer: &str, serial: &Serial) -> Result<Option<CertificateStatus>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT status, reason, revoked_at FROM certificates WHERE serial = ?1 AND issuer = ?2")
                .map_err(db)?
                .query_row(params![serial.as_bytes(), issuer], |r| Ok(status_of(&r.get::<_, String>(0)?, r.get(1)?, r.get(2)?)))
                .optional()
                .map_err(db)?
                .transpose()
        })
    }

    async fn revoke(&self, serial: &Serial, reason: RevocationReason, at: i64) -> Result<CertificateRecord, StoreError> {
        let serial = serial.clone();
        self.write(move |conn| {
            let hold = RevocationReason::CertificateHold.code();
            let changed = conn
                .prepare_cached(
                    "UPDATE certificates SET status = 'revoked', reason = ?2, revoked_at = ?3
                     WHERE serial = ?1 AND (status = 'good' OR (reason = ?4 AND ?2 <> ?4))",
                )
                .map_err(db)?
                .execute(params![serial.as_bytes(), reason.code(), at, hold])
                .map_err(db)?;
            let current = find(conn, &serial)?;
            match current {
                Some(record) if changed == 1 => Ok(record),
                other => Err(refusal(&serial, other.map(|r| r.status), false)),
            }
        })
        .await
    }

    async fn release(&self, serial: &Serial) -> Result<CertificateRecord, StoreError> {
        let serial = serial.clone();
        self.write(move |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE certificates SET status = 'good', reason = NULL, revoked_at = NULL
                     WHERE serial = ?1 AND status = 'revoked' AND reason = ?2",
                )
                .map_err(db)?
                .execute(params![serial.as_bytes(), RevocationReason::CertificateHold.code()])
                .map_err(db)?;
            let current = find(conn, &serial)?;
            match current {
                Some(record) if changed == 1 => Ok(record),
                other => Err(refusal(&serial, other.map(|r| r.status), true)),
            }
        })
        .await
    }

    async fn list(&self, issuer: Option<&str>, limit: usize) -> Result<Vec<CertificateRecord>, StoreError> {
        let issuer = issuer.map(str::to_owned);
        self.scan(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {RECORD_COLUMNS} FROM certificates WHERE ?1 IS NULL OR issuer = ?1
                     ORDER BY issued_at DESC, serial LIMIT ?2"
                ))
                .map_err(db)?;
            let rows = stmt.query_map(params![issuer, limit as i64], record).map_err(db)?;
            rows.map(|r| r.map_err(db)?).collect()
        })
        .await
    }

    async fn revoked(&self, issuer: &str) -> Result<Vec<RevokedEntry>, StoreError> {
        let issuer = issuer.to_owned();
        self.scan(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT serial, reason, revoked_at FROM certificates WHERE issuer = ?1 AND status = 'revoked' ORDER BY serial")
                .map_err(db)?;
            let rows = stmt.query_map([&issuer], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, u8>(1)?, r.get::<_, i64>(2)?))).map_err(db)?;
            rows.map(|row| {
                let (serial, reason, at) = row.map_err(db)?;
                Ok(RevokedEntry {
                    serial: Serial::new(serial).map_err(StoreError::Corrupt)?,
                    reason: RevocationReason::from_code(reason).ok_or_else(|| StoreError::Corrupt(format!("reason code {reason}")))?,
                    at,
                })
            })
            .collect()
        })
        .await
    }

    async fn count(&self) -> Result<u64, StoreError> {
        // Counting walks an index of every certificate.
        self.scan(|conn| conn.query_row("SELECT COUNT(*) FROM certificates", [], |r| r.get::<_, i64>(0)).map(|n| n as u64).map_err(db)).await
    }

    async fn next_crl_number(&self, issuer: &str) -> Result<u64, StoreError> {
        let issuer = issuer.to_owned();
        self.write(move |conn| {
            conn.query_row(
                "INSERT INTO crl_numbers (issuer, last) VALUES (?1, 1)
                 ON CONFLICT (issuer) DO UPDATE SET last = last + 1 RETURNING last",
                [&issuer],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(db)
        })
        .await
    }

    async fn put_crl(&self, crl: &PublishedCrl) -> Result<(), StoreError> {
        let crl = crl.clone();
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO crls (issuer, number, this_update, next_update, der) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (issuer) DO UPDATE SET number = excluded.number, this_update = excluded.this_update,
                   next_update = excluded.next_update, der = excluded.der WHERE excluded.number > crls.number",
                params![crl.issuer, crl.number as i64, crl.this_update, crl.next_update, crl.der],
            )
            .map(|_| ())
            .map_err(db)
        })
        .await
    }

    async fn latest_crl(&self, issuer: &str) -> Result<Option<PublishedCrl>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT number, this_update, next_update, der FROM crls WHERE issuer = ?1")
                .map_err(db)?
                .query_row([issuer], |r| {
                    Ok(PublishedCrl {
                        issuer: issuer.to_owned(),
                        number: r.get::<_, i64>(0)? as u64,
                        this_update: r.get(1)?,
                        next_update: r.get(2)?,
                        der: r.get(3)?,
                    })
                })
                .optional()
                .map_err(db)
        })
    }

    async fn put_ceremony(&self, record: &CeremonyRecord) -> Result<(), StoreError> {
        let json = serde_json::to_string(record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let performed_at = record.performed_at.clone();
        self.write(move |conn| {
            let inserted = conn.execute("INSERT INTO ceremony (id, record) VALUES (1, ?1) ON CONFLICT (id) DO NOTHING", [&json]).map_err(db)?;
            if inserted == 0 {
                let existing: String = conn.query_row("SELECT record FROM ceremony WHERE id = 1", [], |r| r.get(0)).map_err(db)?;
                let when = serde_json::from_str::<CeremonyRecord>(&existing).map(|r| r.performed_at).unwrap_or(performed_at);
                return Err(StoreError::CeremonyExists(when));
            }
            Ok(())
        })
        .await
    }

    async fn ceremony(&self) -> Result<Option<CeremonyRecord>, StoreError> {
        self.read(|conn| {
            let json: Option<String> = conn.query_row("SELECT record FROM ceremony WHERE id = 1", [], |r| r.get(0)).optional().map_err(db)?;
            json.map(|j| serde_json::from_str(&j).map_err(|e| StoreError::Corrupt(format!("ceremony record: {e}")))).transpose()
        })
    }

    async fn update_ceremony(&self, previous: &CeremonyRecord, next: &CeremonyRecord, certificates: &[NewCertificate]) -> Result<(), StoreError> {
        let json = serde_json::to_string(next).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let (previous, certificates) = (previous.clone(), certificates.to_vec());
        // The writer is one connection: nothing changes the record between reading and
        // writing; an error rolls the write's savepoint back, certificates included.
        self.write(move |conn| {
            let existing: Option<String> = conn.query_row("SELECT record FROM ceremony WHERE id = 1", [], |r| r.get(0)).optional().map_err(db)?;
            let existing =
                existing.map(|j| serde_json::from_str::<CeremonyRecord>(&j).map_err(|e| StoreError::Corrupt(format!("ceremony record: {e}")))).transpose()?;
            if existing.as_ref() != Some(&previous) {
                return Err(StoreError::CeremonyChanged);
            }
            conn.execute("UPDATE ceremony SET record = ?1 WHERE id = 1", [&json]).map_err(db)?;
            for c in certificates {
                let inserted = conn
                    .execute(
                        "INSERT INTO certificates (serial, issuer, profile, subject, not_before, not_after, der, issued_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (serial) DO NOTHING",
                        params![c.serial.as_bytes(), c.issuer, c.profile, c.subject, c.not_before, c.not_after, c.der, c.issued_at],
                    )
                    .map_err(db)?;
                if inserted == 0 {
                    return Err(StoreError::DuplicateSerial(c.serial));
                }
            }
            Ok(())
        })
        .await
    }

    async fn record_timestamps(&self, records: &[TimestampRecord]) -> Result<(), StoreError> {
        let records = records.to_vec();
        self.write(move |conn| {
            let mut insert = conn
                .prepare_cached(
                    "INSERT INTO timestamps (serial, gen_time, hash_algorithm, imprint, policy, requester)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (serial) DO NOTHING",
                )
                .map_err(db)?;
            for r in records {
                let inserted = insert.execute(params![r.serial.as_bytes(), r.gen_time, r.hash_algorithm, r.imprint, r.policy, r.requester]).map_err(db)?;
                if inserted == 0 {
                    // The savepoint of this write is rolled back: none of the group stays.
                    return Err(StoreError::DuplicateSerial(r.serial));
                }
            }
            Ok(())
        })
        .await
    }

    async fn timestamp(&self, serial: &Serial) -> Result<Option<TimestampRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT gen_time, hash_algorithm, imprint, policy, requester FROM timestamps WHERE serial = ?1")
                .map_err(db)?
                .query_row([serial.as_bytes()], |r| {
                    Ok(TimestampRecord {
                        serial: serial.clone(),
                        gen_time: r.get(0)?,
                        hash_algorithm: r.get(1)?,
                        imprint: r.get(2)?,
                        policy: r.get(3)?,
                        requester: r.get(4)?,
                    })
                })
                .optional()
                .map_err(db)
        })
    }
}
