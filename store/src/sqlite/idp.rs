//! The OpenID Connect provider's tables on SQLite: citizens, clients, consents, refresh-token
//! families, signing keys, smart-IDs and pending activations.

use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, db};
use crate::*;

const CITIZEN_COLUMNS: &str = "id, national_id, profile, password_hash, totp_secret, created_at";
const KEY_COLUMNS: &str = "kid, purpose, key_ref, algorithm, public_jwk, created_at, active_from";

fn citizen(row: &rusqlite::Row<'_>) -> rusqlite::Result<CitizenRecord> {
    Ok(CitizenRecord {
        id: row.get(0)?,
        national_id: row.get(1)?,
        profile: row.get(2)?,
        password_hash: row.get(3)?,
        totp_secret: row.get(4)?,
        created_at: row.get(5)?,
    })
}

fn client(row: &rusqlite::Row<'_>) -> rusqlite::Result<ClientRecord> {
    Ok(ClientRecord { client_id: row.get(0)?, registration: row.get(1)?, created_at: row.get(2)? })
}

const FAMILY_COLUMNS: &str = "family, client_id, citizen_id, grant_data, generation, issued_at, expires_at, ends_at, revoked";

fn family(row: &rusqlite::Row<'_>) -> rusqlite::Result<RefreshFamily> {
    Ok(RefreshFamily {
        family: row.get(0)?,
        client_id: row.get(1)?,
        citizen_id: row.get(2)?,
        grant: row.get(3)?,
        generation: row.get(4)?,
        issued_at: row.get(5)?,
        expires_at: row.get(6)?,
        ends_at: row.get(7)?,
        revoked: row.get(8)?,
    })
}

fn signing_key(row: &rusqlite::Row<'_>) -> rusqlite::Result<SigningKeyRecord> {
    Ok(SigningKeyRecord {
        kid: row.get(0)?,
        purpose: row.get(1)?,
        key: row.get(2)?,
        algorithm: row.get(3)?,
        public_jwk: row.get(4)?,
        created_at: row.get(5)?,
        active_from: row.get(6)?,
    })
}

const ACTIVATION_COLUMNS: &str = "code_hash, national_id, custody, officer, expires_at";

fn activation(row: &rusqlite::Row<'_>) -> rusqlite::Result<ActivationRecord> {
    Ok(ActivationRecord { code_hash: row.get(0)?, national_id: row.get(1)?, custody: row.get(2)?, officer: row.get(3)?, expires_at: row.get(4)? })
}

const SMART_ID_COLUMNS: &str = "national_id, custody, device_kid, device_key, authentication_serial, signature_serial, activated_at";

fn smart_id(row: &rusqlite::Row<'_>) -> rusqlite::Result<SmartIdRecord> {
    Ok(SmartIdRecord {
        national_id: row.get(0)?,
        custody: row.get(1)?,
        device_kid: row.get(2)?,
        device_key: row.get(3)?,
        authentication_serial: row.get(4)?,
        signature_serial: row.get(5)?,
        activated_at: row.get(6)?,
    })
}

fn find_family(conn: &Connection, id: &str) -> Result<Option<RefreshFamily>, StoreError> {
    conn.prepare_cached(&format!("SELECT {FAMILY_COLUMNS} FROM refresh_families WHERE family = ?1")).map_err(db)?.query_row([id], family).optional().map_err(db)
}

fn revoke_family(conn: &Connection, id: &str) -> Result<bool, StoreError> {
    let n = conn.prepare_cached("UPDATE refresh_families SET revoked = 1 WHERE family = ?1 AND revoked = 0").map_err(db)?.execute([id]).map_err(db)?;
    Ok(n > 0)
}

#[async_trait::async_trait]
impl IdpStore for SqliteStore {
    async fn insert_citizen(&self, c: &CitizenRecord) -> Result<(), StoreError> {
        let c = c.clone();
        self.write(move |conn| {
            let inserted = conn
                .prepare_cached(&format!("INSERT INTO citizens ({CITIZEN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING"))
                .map_err(db)?
                .execute(params![c.id, c.national_id, c.profile, c.password_hash, c.totp_secret, c.created_at])
                .map_err(db)?;
            if inserted == 0 { Err(StoreError::DuplicateCitizen(c.national_id)) } else { Ok(()) }
        })
        .await
    }

    async fn citizen(&self, national_id: &str) -> Result<Option<CitizenRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!("SELECT {CITIZEN_COLUMNS} FROM citizens WHERE national_id = ?1"))
                .map_err(db)?
                .query_row([national_id], citizen)
                .optional()
                .map_err(db)
        })
    }

    async fn citizen_by_id(&self, id: &str) -> Result<Option<CitizenRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!("SELECT {CITIZEN_COLUMNS} FROM citizens WHERE id = ?1")).map_err(db)?.query_row([id], citizen).optional().map_err(db)
        })
    }

    async fn set_totp(&self, national_id: &str, secret: Option<&str>) -> Result<(), StoreError> {
        let (national_id, secret) = (national_id.to_owned(), secret.map(str::to_owned));
        self.write(move |conn| {
            let changed = conn
                .prepare_cached("UPDATE citizens SET totp_secret = ?2 WHERE national_id = ?1")
                .map_err(db)?
                .execute(params![national_id, secret])
                .map_err(db)?;
            if changed == 0 { Err(StoreError::UnknownCitizen(national_id)) } else { Ok(()) }
        })
        .await
    }

    async fn insert_client(&self, c: &ClientRecord) -> Result<(), StoreError> {
        let c = c.clone();
        self.write(move |conn| {
            let inserted = conn
                .prepare_cached("INSERT INTO clients (client_id, registration, created_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING")
                .map_err(db)?
                .execute(params![c.client_id, c.registration, c.created_at])
                .map_err(db)?;
            if inserted == 0 { Err(StoreError::DuplicateClient(c.client_id)) } else { Ok(()) }
        })
        .await
    }

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT client_id, registration, created_at FROM clients WHERE client_id = ?1")
                .map_err(db)?
                .query_row([client_id], client)
                .optional()
                .map_err(db)
        })
    }

    async fn clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT client_id, registration, created_at FROM clients ORDER BY client_id")
                .map_err(db)?
                .query_map([], client)
                .map_err(db)?
                .collect::<rusqlite::Result<_>>()
                .map_err(db)
        })
    }

    async fn remove_client(&self, client_id: &str) -> Result<bool, StoreError> {
        let client_id = client_id.to_owned();
        self.write(move |conn| {
            let removed = conn.execute("DELETE FROM clients WHERE client_id = ?1", [&client_id]).map_err(db)?;
            if removed > 0 {
                conn.execute("DELETE FROM consents WHERE client_id = ?1", [&client_id]).map_err(db)?;
                conn.execute("DELETE FROM refresh_families WHERE client_id = ?1", [&client_id]).map_err(db)?;
            }
            Ok(removed > 0)
        })
        .await
    }

    async fn put_consent(&self, c: &ConsentRecord) -> Result<(), StoreError> {
        let c = c.clone();
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO consents (citizen_id, client_id, grant_data, granted_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (citizen_id, client_id) DO UPDATE SET grant_data = excluded.grant_data, granted_at = excluded.granted_at",
            )
            .map_err(db)?
            .execute(params![c.citizen_id, c.client_id, c.grant, c.granted_at])
            .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn consent(&self, citizen_id: &str, client_id: &str) -> Result<Option<ConsentRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT citizen_id, client_id, grant_data, granted_at FROM consents WHERE citizen_id = ?1 AND client_id = ?2")
                .map_err(db)?
                .query_row([citizen_id, client_id], |r| {
                    Ok(ConsentRecord { citizen_id: r.get(0)?, client_id: r.get(1)?, grant: r.get(2)?, granted_at: r.get(3)? })
                })
                .optional()
                .map_err(db)
        })
    }

    async fn consents_of(&self, citizen_id: &str) -> Result<Vec<ConsentRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT citizen_id, client_id, grant_data, granted_at FROM consents WHERE citizen_id = ?1 ORDER BY client_id")
                .map_err(db)?
                .query_map([citizen_id], |r| Ok(ConsentRecord { citizen_id: r.get(0)?, client_id: r.get(1)?, grant: r.get(2)?, granted_at: r.get(3)? }))
                .map_err(db)?
                .collect::<rusqlite::Result<_>>()
                .map_err(db)
        })
    }

    async fn revoke_consent(&self, citizen_id: &str, client_id: &str) -> Result<bool, StoreError> {
        let (citizen_id, client_id) = (citizen_id.to_owned(), client_id.to_owned());
        self.write(move |conn| {
            let n = conn.execute("DELETE FROM consents WHERE citizen_id = ?1 AND client_id = ?2", [&citizen_id, &client_id]).map_err(db)?;
            conn.execute("UPDATE refresh_families SET revoked = 1 WHERE citizen_id = ?1 AND client_id = ?2", [&citizen_id, &client_id]).map_err(db)?;
            Ok(n > 0)
        })
        .await
    }

    async fn insert_refresh_family(&self, f: &RefreshFamily) -> Result<(), StoreError> {
        let f = f.clone();
        self.write(move |conn| {
            let inserted = conn
                .prepare_cached(&format!("INSERT INTO refresh_families ({FAMILY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING"))
                .map_err(db)?
                .execute(params![f.family, f.client_id, f.citizen_id, f.grant, f.generation, f.issued_at, f.expires_at, f.ends_at, f.revoked])
                .map_err(db)?;
            if inserted == 0 { Err(StoreError::DuplicateToken) } else { Ok(()) }
        })
        .await
    }

    async fn refresh_family(&self, id: &str) -> Result<Option<RefreshFamily>, StoreError> {
        self.read(|conn| find_family(conn, id))
    }

    async fn rotate_refresh_family(&self, id: &str, generation: i64, client_id: &str, expires_at: i64, now: i64) -> Result<Rotation, StoreError> {
        let (id, client_id) = (id.to_owned(), client_id.to_owned());
        self.write(move |conn| {
            let rotated = conn
                .prepare_cached(&format!(
                    "UPDATE refresh_families SET generation = generation + 1, expires_at = MIN(?4, ends_at)
                     WHERE family = ?1 AND generation = ?2 AND client_id = ?3 AND revoked = 0 AND expires_at > ?5
                     RETURNING {FAMILY_COLUMNS}"
                ))
                .map_err(db)?
                .query_row(params![id, generation, client_id, expires_at, now], family)
                .optional()
                .map_err(db)?;
            if let Some(f) = rotated {
                return Ok(Rotation::Rotated(f));
            }
            // Not the live generation: an earlier one of a live family is a reuse.
            let reused = conn
                .prepare_cached(
                    "UPDATE refresh_families SET revoked = 1
                     WHERE family = ?1 AND generation > ?2 AND client_id = ?3 AND revoked = 0 AND expires_at > ?4",
                )
                .map_err(db)?
                .execute(params![id, generation, client_id, now])
                .map_err(db)?;
            match reused {
                1 => Ok(Rotation::Reused { family: id }),
                _ => Ok(Rotation::Invalid),
            }
        })
        .await
    }

    async fn revoke_refresh_family(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |conn| revoke_family(conn, &id)).await
    }

    async fn purge_refresh_families(&self, now: i64) -> Result<u64, StoreError> {
        // Expiry has no index (every rotation would update it): walk the table by key, a few
        // thousand rows per write transaction.
        const STEP: i64 = 2_000;
        let (mut after, mut purged) = (String::new(), 0);
        loop {
            let from = after.clone();
            let (deleted, last) = self
                .write(move |conn| {
                    let last: Option<String> = conn
                        .prepare_cached("SELECT MAX(family) FROM (SELECT family FROM refresh_families WHERE family > ?1 ORDER BY family LIMIT ?2)")
                        .map_err(db)?
                        .query_row(params![from, STEP], |r| r.get(0))
                        .map_err(db)?;
                    let Some(last) = last else { return Ok((0, None)) };
                    let deleted = conn
                        .prepare_cached("DELETE FROM refresh_families WHERE family > ?1 AND family <= ?2 AND expires_at < ?3")
                        .map_err(db)?
                        .execute(params![from, last, now])
                        .map_err(db)?;
                    Ok((deleted as u64, Some(last)))
                })
                .await?;
            purged += deleted;
            match last {
                Some(last) => after = last,
                None => return Ok(purged),
            }
        }
    }

    async fn insert_signing_key(&self, k: &SigningKeyRecord) -> Result<(), StoreError> {
        let k = k.clone();
        self.write(move |conn| {
            let inserted = conn
                .prepare_cached(&format!("INSERT INTO signing_keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING"))
                .map_err(db)?
                .execute(params![k.kid, k.purpose, k.key, k.algorithm, k.public_jwk, k.created_at, k.active_from])
                .map_err(db)?;
            if inserted == 0 { Err(StoreError::DuplicateSigningKey(k.kid)) } else { Ok(()) }
        })
        .await
    }

    async fn insert_activation(&self, a: &ActivationRecord) -> Result<(), StoreError> {
        let a = a.clone();
        self.write(move |conn| {
            let inserted = conn
                .prepare_cached(&format!("INSERT INTO activations ({ACTIVATION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING"))
                .map_err(db)?
                .execute(params![a.code_hash, a.national_id, a.custody, a.officer, a.expires_at])
                .map_err(db)?;
            if inserted == 0 { Err(StoreError::DuplicateToken) } else { Ok(()) }
        })
        .await
    }

    async fn activation(&self, code_hash: &str, now: i64) -> Result<Option<ActivationRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!("SELECT {ACTIVATION_COLUMNS} FROM activations WHERE code_hash = ?1 AND expires_at > ?2"))
                .map_err(db)?
                .query_row(params![code_hash, now], activation)
                .optional()
                .map_err(db)
        })
    }

    async fn take_activation(&self, code_hash: &str, now: i64) -> Result<Option<ActivationRecord>, StoreError> {
        let code_hash = code_hash.to_owned();
        self.write(move |conn| {
            conn.prepare_cached(&format!("DELETE FROM activations WHERE code_hash = ?1 AND expires_at > ?2 RETURNING {ACTIVATION_COLUMNS}"))
                .map_err(db)?
                .query_row(params![code_hash, now], activation)
                .optional()
                .map_err(db)
        })
        .await
    }

    async fn put_smart_id(&self, r: &SmartIdRecord) -> Result<Option<SmartIdRecord>, StoreError> {
        let r = r.clone();
        self.write(move |conn| {
            let old = conn
                .prepare_cached(&format!("SELECT {SMART_ID_COLUMNS} FROM smart_ids WHERE national_id = ?1"))
                .map_err(db)?
                .query_row([&r.national_id], smart_id)
                .optional()
                .map_err(db)?;
            // An upsert on the citizen only: a device key of another citizen is a conflict
            // that fails the write (INSERT OR REPLACE would delete the other citizen's row).
            conn.prepare_cached(&format!(
                "INSERT INTO smart_ids ({SMART_ID_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (national_id) DO UPDATE SET custody = ?2, device_kid = ?3, device_key = ?4,
                     authentication_serial = ?5, signature_serial = ?6, activated_at = ?7"
            ))
            .map_err(db)?
            .execute(params![r.national_id, r.custody, r.device_kid, r.device_key, r.authentication_serial, r.signature_serial, r.activated_at])
            .map_err(|e| match e.sqlite_error() {
                // The only unique key the upsert leaves to the database is the device key.
                Some(f) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE => StoreError::DuplicateDevice(r.device_kid.clone()),
                _ => db(e),
            })?;
            Ok(old)
        })
        .await
    }

    async fn smart_id(&self, national_id: &str) -> Result<Option<SmartIdRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!("SELECT {SMART_ID_COLUMNS} FROM smart_ids WHERE national_id = ?1"))
                .map_err(db)?
                .query_row([national_id], smart_id)
                .optional()
                .map_err(db)
        })
    }

    async fn smart_id_by_device(&self, device_kid: &str) -> Result<Option<SmartIdRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!("SELECT {SMART_ID_COLUMNS} FROM smart_ids WHERE device_kid = ?1"))
                .map_err(db)?
                .query_row([device_kid], smart_id)
                .optional()
                .map_err(db)
        })
    }

    async fn signing_keys(&self, purpose: &str) -> Result<Vec<SigningKeyRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM signing_keys WHERE purpose = ?1 ORDER BY created_at, kid"))
                .map_err(db)?
                .query_map([purpose], signing_key)
                .map_err(db)?
                .collect::<rusqlite::Result<_>>()
                .map_err(db)
        })
    }

    async fn record_signature(&self, r: &SignatureRecord) -> Result<(), StoreError> {
        let r = r.clone();
        self.write(move |conn| {
            let inserted = conn
                .prepare_cached(&format!("INSERT INTO signatures ({SIGNATURE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING"))
                .map_err(db)?
                .execute(params![r.id, r.national_id, r.client_id, r.document_name, r.document_sha256, r.format, r.certificate_serial, r.signed_at])
                .map_err(db)?;
            if inserted == 0 { Err(StoreError::DuplicateToken) } else { Ok(()) }
        })
        .await
    }

    async fn signatures_of(&self, national_id: &str) -> Result<Vec<SignatureRecord>, StoreError> {
        self.read(|conn| {
            let mut statement =
                conn.prepare_cached(&format!("SELECT {SIGNATURE_COLUMNS} FROM signatures WHERE national_id = ?1 ORDER BY signed_at DESC, id")).map_err(db)?;
            let rows = statement.query_map([national_id], signature).map_err(db)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db)
        })
    }

    async fn put_subject(&self, sector: &str, sub: &str, citizen_id: &str) -> Result<(), StoreError> {
        let (sector, sub, citizen_id) = (sector.to_owned(), sub.to_owned(), citizen_id.to_owned());
        self.write(move |conn| {
            conn.prepare_cached("INSERT INTO subjects (sector, sub, citizen_id) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING")
                .map_err(db)?
                .execute(params![sector, sub, citizen_id])
                .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn subject_citizen(&self, sector: &str, sub: &str) -> Result<Option<String>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT citizen_id FROM subjects WHERE sector = ?1 AND sub = ?2")
                .map_err(db)?
                .query_row([sector, sub], |r| r.get(0))
                .optional()
                .map_err(db)
        })
    }
}

const SIGNATURE_COLUMNS: &str = "id, national_id, client_id, document_name, document_sha256, format, certificate_serial, signed_at";

fn signature(r: &rusqlite::Row<'_>) -> rusqlite::Result<SignatureRecord> {
    Ok(SignatureRecord {
        id: r.get(0)?,
        national_id: r.get(1)?,
        client_id: r.get(2)?,
        document_name: r.get(3)?,
        document_sha256: r.get(4)?,
        format: r.get(5)?,
        certificate_serial: r.get(6)?,
        signed_at: r.get(7)?,
    })
}
