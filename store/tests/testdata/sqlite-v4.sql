-- An SQLite database as the release before the migrations/ directory left it (commit
-- a27607f, schema version 4): made by that commit's SqliteStore::open, filled with one row or
-- more per table through its CaStore and IdpStore methods, then `sqlite3 hawiya.db .dump`.
-- store/tests/migrations.rs loads it into a fresh file.
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);
INSERT INTO schema_migrations VALUES(1,1795964374);
INSERT INTO schema_migrations VALUES(2,1795964374);
INSERT INTO schema_migrations VALUES(3,1795964374);
INSERT INTO schema_migrations VALUES(4,1795964374);
CREATE TABLE certificates (
        serial BLOB PRIMARY KEY,
        issuer TEXT NOT NULL,
        profile TEXT NOT NULL,
        subject TEXT NOT NULL,
        not_before INTEGER NOT NULL,
        not_after INTEGER NOT NULL,
        der BLOB NOT NULL,
        issued_at INTEGER NOT NULL,
        status TEXT NOT NULL DEFAULT 'good' CHECK (status IN ('good', 'revoked')),
        reason INTEGER,
        revoked_at INTEGER
    ) WITHOUT ROWID;
INSERT INTO certificates VALUES(X'0101','citizen-authentication-ca','citizen-authentication','CN=Citizen 1',1700000000,1800000000,X'3001',1700000001,'good',NULL,NULL);
INSERT INTO certificates VALUES(X'0102','citizen-authentication-ca','citizen-authentication','CN=Citizen 2',1700000000,1800000000,X'3002',1700000002,'revoked',1,1750000000);
INSERT INTO certificates VALUES(X'0103','citizen-signing-ca','citizen-authentication','CN=Citizen 3',1700000000,1800000000,X'3003',1700000003,'revoked',6,1750000100);
CREATE TABLE crl_numbers (issuer TEXT PRIMARY KEY, last INTEGER NOT NULL);
INSERT INTO crl_numbers VALUES('citizen-authentication-ca',2);
CREATE TABLE crls (issuer TEXT PRIMARY KEY, number INTEGER NOT NULL, this_update INTEGER NOT NULL,
                       next_update INTEGER NOT NULL, der BLOB NOT NULL);
INSERT INTO crls VALUES('citizen-authentication-ca',2,1750000200,1750086600,X'3003020102');
CREATE TABLE ceremony (id INTEGER PRIMARY KEY CHECK (id = 1), record TEXT NOT NULL);
INSERT INTO ceremony VALUES(1,'{"performed_at":"2026-11-23T00:00:00Z","country":"JO","base_url":"http://pki.hawiya.jo","authorities":[{"name":"root","profile":"root-ca","issuer":"root","key":"soft:root","algorithm":"ES384","certificate":"3000"}]}');
CREATE TABLE citizens (
        id TEXT PRIMARY KEY,
        national_id TEXT NOT NULL UNIQUE,
        profile TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        totp_secret TEXT,
        created_at INTEGER NOT NULL
    ) WITHOUT ROWID;
INSERT INTO citizens VALUES('c1','9861234501','{"given_name":{"ar":"ليلى","en":"Layla"}}','$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA','JBSWY3DPEHPK3PXP',1750000001);
CREATE TABLE clients (client_id TEXT PRIMARY KEY, registration TEXT NOT NULL, created_at INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO clients VALUES('civil-status','{"redirect_uris":["https://cs.example/cb"]}',1750000002);
CREATE TABLE consents (
        citizen_id TEXT NOT NULL,
        client_id TEXT NOT NULL,
        grant_data TEXT NOT NULL,
        granted_at INTEGER NOT NULL,
        PRIMARY KEY (citizen_id, client_id)
    ) WITHOUT ROWID;
INSERT INTO consents VALUES('c1','civil-status','["name"]',1750000003);
CREATE TABLE signing_keys (
        kid TEXT PRIMARY KEY,
        purpose TEXT NOT NULL,
        key_ref TEXT NOT NULL,
        algorithm TEXT NOT NULL,
        public_jwk TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        active_from INTEGER NOT NULL
    ) WITHOUT ROWID;
INSERT INTO signing_keys VALUES('k1','idp-signing','soft:k1','ES256','{"kty":"EC"}',1750000006,1750000066);
CREATE TABLE refresh_families (
        family TEXT PRIMARY KEY,
        client_id TEXT NOT NULL,
        citizen_id TEXT NOT NULL,
        grant_data TEXT NOT NULL,
        generation INTEGER NOT NULL,
        issued_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        ends_at INTEGER NOT NULL,
        revoked INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
INSERT INTO refresh_families VALUES('fam-1','civil-status','c1','{"scope":"openid"}',1,1750000004,4000000001,4100000000,0);
CREATE TABLE smart_ids (
        national_id TEXT PRIMARY KEY,
        custody TEXT NOT NULL,
        device_kid TEXT NOT NULL UNIQUE,
        device_key TEXT NOT NULL,
        authentication_serial TEXT NOT NULL,
        signature_serial TEXT NOT NULL,
        activated_at INTEGER NOT NULL
    );
INSERT INTO smart_ids VALUES('9861234501','hardware','dev-1','{"kid":"dev-1"}','0101','0102',1750000007);
CREATE TABLE activations (
        code_hash TEXT PRIMARY KEY,
        national_id TEXT NOT NULL,
        custody TEXT NOT NULL,
        officer TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    );
INSERT INTO activations VALUES('abababababababababababababababababababababababababababababababab','9861234502','software','ra-1',4000000000);
CREATE INDEX certificates_issued ON certificates (issued_at);
CREATE INDEX certificates_revoked ON certificates (issuer) WHERE status = 'revoked';
CREATE INDEX refresh_families_client ON refresh_families (client_id);
CREATE INDEX refresh_families_citizen ON refresh_families (citizen_id, client_id);
COMMIT;
