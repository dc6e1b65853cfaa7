//! The OpenID Connect provider's tables on PostgreSQL: citizens, clients, consents,
//! refresh-token families, signing keys, smart-IDs and pending activations.

use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::{PostgresStore, column, db};
use crate::*;

const CITIZEN_COLUMNS: &str = "id, national_id, profile, password_hash, totp_secret, created_at";
const KEY_COLUMNS: &str = "kid, purpose, key_ref, algorithm, public_jwk, created_at, active_from";
const FAMILY_COLUMNS: &str = "family, client_id, citizen_id, grant_data, generation, issued_at, expires_at, ends_at, revoked";
fn citizen(row: &Row) -> Result<CitizenRecord, StoreError> {
    Ok(CitizenRecord {
        id: column(row, 0)?,
        national_id: column(row, 1)?,
        profile: column(row, 2)?,
        password_hash: column(row, 3)?,
        totp_secret: column(row, 4)?,
        created_at: column(row, 5)?,
    })
}

fn client(row: &Row) -> Result<ClientRecord, StoreError> {
    Ok(ClientRecord { client_id: column(row, 0)?, registration: column(row, 1)?, created_at: column(row, 2)? })
}

fn family(row: &Row) -> Result<RefreshFamily, StoreError> {
    Ok(RefreshFamily {
        family: column(row, 0)?,
        client_id: column(row, 1)?,
        citizen_id: column(row, 2)?,
        grant: column(row, 3)?,
        generation: column(row, 4)?,
        issued_at: column(row, 5)?,
        expires_at: column(row, 6)?,
        ends_at: column(row, 7)?,
        revoked: column(row, 8)?,
    })
}

const ACTIVATION_COLUMNS: &str = "code_hash, national_id, custody, officer, expires_at";

fn activation(row: &Row) -> Result<ActivationRecord, StoreError> {
    Ok(ActivationRecord {
        code_hash: column(row, 0)?,
        national_id: column(row, 1)?,
        custody: column(row, 2)?,
        officer: column(row, 3)?,
        expires_at: column(row, 4)?,
    })
}

const SMART_ID_COLUMNS: &str = "national_id, custody, device_kid, device_key, authentication_serial, signature_serial, activated_at";

fn smart_id(row: &Row) -> Result<SmartIdRecord, StoreError> {
    Ok(SmartIdRecord {
        national_id: column(row, 0)?,
        custody: column(row, 1)?,
        device_kid: column(row, 2)?,
        device_key: column(row, 3)?,
        authentication_serial: column(row, 4)?,
        signature_serial: column(row, 5)?,
        activated_at: column(row, 6)?,
    })
}

fn signing_key(row: &Row) -> Result<SigningKeyRecord, StoreError> {
    Ok(SigningKeyRecord {
        kid: column(row, 0)?,
        purpose: column(row, 1)?,
        key: column(row, 2)?,
        algorithm: column(row, 3)?,
        public_jwk: column(row, 4)?,
        created_at: column(row, 5)?,
        active_from: column(row, 6)?,
    })
}

#[async_trait::async_trait]
impl IdpStore for PostgresStore {
    async fn insert_citizen(&self, c: &CitizenRecord) -> Result<(), StoreError> {
        let sql = format!("INSERT INTO citizens ({CITIZEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING");
        let n = self.execute(&sql, &[&c.id, &c.national_id, &c.profile, &c.password_hash, &c.totp_secret, &c.created_at]).await?;
        if n == 0 { Err(StoreError::DuplicateCitizen(c.national_id.clone())) } else { Ok(()) }
    }

    async fn citizen(&self, national_id: &str) -> Result<Option<CitizenRecord>, StoreError> {
        self.one(&format!("SELECT {CITIZEN_COLUMNS} FROM citizens WHERE national_id = $1"), &[&national_id], citizen).await
    }

    async fn citizen_by_id(&self, id: &str) -> Result<Option<CitizenRecord>, StoreError> {
        self.one(&format!("SELECT {CITIZEN_COLUMNS} FROM citizens WHERE id = $1"), &[&id], citizen).await
    }

    async fn set_totp(&self, national_id: &str, secret: Option<&str>) -> Result<(), StoreError> {
        let n = self.execute("UPDATE citizens SET totp_secret = $2 WHERE national_id = $1", &[&national_id, &secret]).await?;
        if n == 0 { Err(StoreError::UnknownCitizen(national_id.to_owned())) } else { Ok(()) }
    }

    async fn insert_client(&self, c: &ClientRecord) -> Result<(), StoreError> {
        let sql = "INSERT INTO clients (client_id, registration, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
        let n = self.execute(sql, &[&c.client_id, &c.registration, &c.created_at]).await?;
        if n == 0 { Err(StoreError::DuplicateClient(c.client_id.clone())) } else { Ok(()) }
    }

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        self.one("SELECT client_id, registration, created_at FROM clients WHERE client_id = $1", &[&client_id], client).await
    }

    async fn clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        let rows = self.conn().await?.client.query("SELECT client_id, registration, created_at FROM clients ORDER BY client_id", &[]).await.map_err(db)?;
        rows.iter().map(client).collect()
    }

    async fn remove_client(&self, client_id: &str) -> Result<bool, StoreError> {
        // One statement, so that the client and what hangs on it go together.
        let sql = "WITH gone AS (DELETE FROM clients WHERE client_id = $1 RETURNING client_id),
                        c AS (DELETE FROM consents WHERE client_id IN (SELECT client_id FROM gone)),
                        r AS (DELETE FROM refresh_families WHERE client_id IN (SELECT client_id FROM gone))
                   SELECT count(*) FROM gone";
        let n: i64 = self.conn().await?.client.query_one(sql, &[&client_id]).await.map_err(db)?.get(0);
        Ok(n > 0)
    }

    async fn put_consent(&self, c: &ConsentRecord) -> Result<(), StoreError> {
        let sql = "INSERT INTO consents (citizen_id, client_id, grant_data, granted_at) VALUES ($1, $2, $3, $4)
                   ON CONFLICT (citizen_id, client_id) DO UPDATE SET grant_data = excluded.grant_data, granted_at = excluded.granted_at";
        self.execute(sql, &[&c.citizen_id, &c.client_id, &c.grant, &c.granted_at]).await.map(drop)
    }

    async fn consent(&self, citizen_id: &str, client_id: &str) -> Result<Option<ConsentRecord>, StoreError> {
        let sql = "SELECT citizen_id, client_id, grant_data, granted_at FROM consents WHERE citizen_id = $1 AND client_id = $2";
        self.one(sql, &[&citizen_id, &client_id], |r| {
            Ok(ConsentRecord { citizen_id: column(r, 0)?, client_id: column(r, 1)?, grant: column(r, 2)?, granted_at: column(r, 3)? })
        })
        .await
    }

    async fn consents_of(&self, citizen_id: &str) -> Result<Vec<ConsentRecord>, StoreError> {
        let sql = "SELECT citizen_id, client_id, grant_data, granted_at FROM consents WHERE citizen_id = $1 ORDER BY client_id";
        let rows = self.conn().await?.client.query(sql, &[&citizen_id]).await.map_err(db)?;
        rows.iter()
            .map(|r| Ok(ConsentRecord { citizen_id: column(r, 0)?, client_id: column(r, 1)?, grant: column(r, 2)?, granted_at: column(r, 3)? }))
            .collect()
    }

    async fn revoke_consent(&self, citizen_id: &str, client_id: &str) -> Result<bool, StoreError> {
        // One statement, so that the consent and the tokens it allowed go together.
        let sql = "WITH gone AS (DELETE FROM consents WHERE citizen_id = $1 AND client_id = $2 RETURNING 1),
                        r AS (UPDATE refresh_families SET revoked = true WHERE citizen_id = $1 AND client_id = $2)
                   SELECT count(*) FROM gone";
        let n: i64 = self.conn().await?.client.query_one(sql, &[&citizen_id, &client_id]).await.map_err(db)?.get(0);
        Ok(n > 0)
    }

    async fn insert_refresh_family(&self, f: &RefreshFamily) -> Result<(), StoreError> {
        let sql = format!("INSERT INTO refresh_families ({FAMILY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING");
        let params: [&(dyn ToSql + Sync); 9] =
            [&f.family, &f.client_id, &f.citizen_id, &f.grant, &f.generation, &f.issued_at, &f.expires_at, &f.ends_at, &f.revoked];
        if self.execute(&sql, &params).await? == 0 { Err(StoreError::DuplicateToken) } else { Ok(()) }
    }

    async fn refresh_family(&self, id: &str) -> Result<Option<RefreshFamily>, StoreError> {
        self.one(&format!("SELECT {FAMILY_COLUMNS} FROM refresh_families WHERE family = $1"), &[&id], family).await
    }

    async fn rotate_refresh_family(&self, id: &str, generation: i64, client_id: &str, expires_at: i64, now: i64) -> Result<Rotation, StoreError> {
        // The row lock makes one of two concurrent rotations from a generation win; the
        // other then finds the generation moved on, which is a reuse.
        let sql = format!(
            "UPDATE refresh_families SET generation = generation + 1, expires_at = LEAST($4, ends_at)
             WHERE family = $1 AND generation = $2 AND client_id = $3 AND NOT revoked AND expires_at > $5
             RETURNING {FAMILY_COLUMNS}"
        );
        if let Some(f) = self.one(&sql, &[&id, &generation, &client_id, &expires_at, &now], family).await? {
            return Ok(Rotation::Rotated(f));
        }
        let reuse = "UPDATE refresh_families SET revoked = true
                     WHERE family = $1 AND generation > $2 AND client_id = $3 AND NOT revoked AND expires_at > $4";
        match self.execute(reuse, &[&id, &generation, &client_id, &now]).await? {
            1 => Ok(Rotation::Reused { family: id.to_owned() }),
            _ => Ok(Rotation::Invalid),
        }
    }

    async fn revoke_refresh_family(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.execute("UPDATE refresh_families SET revoked = true WHERE family = $1 AND NOT revoked", &[&id]).await? > 0)
    }

    async fn purge_refresh_families(&self, now: i64) -> Result<u64, StoreError> {
        // Row locks only: rotations of live families go on meanwhile.
        self.execute("DELETE FROM refresh_families WHERE expires_at < $1", &[&now]).await
    }

    async fn insert_signing_key(&self, k: &SigningKeyRecord) -> Result<(), StoreError> {
        let sql = format!("INSERT INTO signing_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING");
        let n = self.execute(&sql, &[&k.kid, &k.purpose, &k.key, &k.algorithm, &k.public_jwk, &k.created_at, &k.active_from]).await?;
        if n == 0 { Err(StoreError::DuplicateSigningKey(k.kid.clone())) } else { Ok(()) }
    }

    async fn insert_activation(&self, a: &ActivationRecord) -> Result<(), StoreError> {
        let sql = format!("INSERT INTO activations ({ACTIVATION_COLUMNS}) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING");
        let params: [&(dyn ToSql + Sync); 5] = [&a.code_hash, &a.national_id, &a.custody, &a.officer, &a.expires_at];
        if self.execute(&sql, &params).await? == 0 { Err(StoreError::DuplicateToken) } else { Ok(()) }
    }

    async fn activation(&self, code_hash: &str, now: i64) -> Result<Option<ActivationRecord>, StoreError> {
        let sql = format!("SELECT {ACTIVATION_COLUMNS} FROM activations WHERE code_hash = $1 AND expires_at > $2");
        self.one(&sql, &[&code_hash, &now], activation).await
    }

    async fn take_activation(&self, code_hash: &str, now: i64) -> Result<Option<ActivationRecord>, StoreError> {
        let sql = format!("DELETE FROM activations WHERE code_hash = $1 AND expires_at > $2 RETURNING {ACTIVATION_COLUMNS}");
        self.one(&sql, &[&code_hash, &now], activation).await
    }

    async fn put_smart_id(&self, r: &SmartIdRecord) -> Result<Option<SmartIdRecord>, StoreError> {
        // One statement: the row as it was (locked) and the new one.
        let sql = format!(
            "WITH old AS (SELECT {SMART_ID_COLUMNS} FROM smart_ids WHERE national_id = $1 FOR UPDATE),
                  put AS (INSERT INTO smart_ids ({SMART_ID_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
                          ON CONFLICT (national_id) DO UPDATE SET custody = $2, device_kid = $3, device_key = $4,
                              authentication_serial = $5, signature_serial = $6, activated_at = $7)
             SELECT {SMART_ID_COLUMNS} FROM old"
        );
        let params: [&(dyn ToSql + Sync); 7] =
            [&r.national_id, &r.custody, &r.device_kid, &r.device_key, &r.authentication_serial, &r.signature_serial, &r.activated_at];
        match self.conn().await?.client.query_opt(&sql, &params).await {
            Ok(old) => old.map(|row| smart_id(&row)).transpose(),
            // The only unique key the upsert leaves to the database is the device key.
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Err(StoreError::DuplicateDevice(r.device_kid.clone())),
            Err(e) => Err(db(e)),
        }
    }

    async fn smart_id(&self, national_id: &str) -> Result<Option<SmartIdRecord>, StoreError> {
        self.one(&format!("SELECT {SMART_ID_COLUMNS} FROM smart_ids WHERE national_id = $1"), &[&national_id], smart_id).await
    }

    async fn smart_id_by_device(&self, device_kid: &str) -> Result<Option<SmartIdRecord>, StoreError> {
        self.one(&format!("SELECT {SMART_ID_COLUMNS} FROM smart_ids WHERE device_kid = $1"), &[&device_kid], smart_id).await
    }

    async fn signing_keys(&self, purpose: &str) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM signing_keys WHERE purpose = $1 ORDER BY created_at, kid");
        let rows = self.conn().await?.client.query(&sql, &[&purpose]).await.map_err(db)?;
        rows.iter().map(signing_key).collect()
    }

    async fn record_signature(&self, r: &SignatureRecord) -> Result<(), StoreError> {
        let sql = format!("INSERT INTO signatures ({SIGNATURE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING");
        let params: [&(dyn ToSql + Sync); 8] =
            [&r.id, &r.national_id, &r.client_id, &r.document_name, &r.document_sha256, &r.format, &r.certificate_serial, &r.signed_at];
        if self.execute(&sql, &params).await? == 0 { Err(StoreError::DuplicateToken) } else { Ok(()) }
    }

    async fn signatures_of(&self, national_id: &str) -> Result<Vec<SignatureRecord>, StoreError> {
        let sql = format!("SELECT {SIGNATURE_COLUMNS} FROM signatures WHERE national_id = $1 ORDER BY signed_at DESC, id");
        let rows = self.conn().await?.client.query(&sql, &[&national_id]).await.map_err(db)?;
        Ok(rows.iter().map(signature).collect())
    }

    async fn put_subject(&self, sector: &str, sub: &str, citizen_id: &str) -> Result<(), StoreError> {
        self.execute("INSERT INTO subjects (sector, sub, citizen_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", &[&sector, &sub, &citizen_id]).await?;
        Ok(())
    }

    async fn subject_citizen(&self, sector: &str, sub: &str) -> Result<Option<String>, StoreError> {
        self.one("SELECT citizen_id FROM subjects WHERE sector = $1 AND sub = $2", &[&sector, &sub], |r| column(r, 0)).await
    }
}

const SIGNATURE_COLUMNS: &str = "id, national_id, client_id, document_name, document_sha256, format, certificate_serial, signed_at";

fn signature(r: &Row) -> SignatureRecord {
    SignatureRecord {
        id: r.get(0),
        national_id: r.get(1),
        client_id: r.get(2),
        document_name: r.get(3),
        document_sha256: r.get(4),
        format: r.get(5),
        certificate_serial: r.get(6),
        signed_at: r.get(7),
    }
}
