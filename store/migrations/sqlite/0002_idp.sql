-- The OpenID Connect provider's tables: citizens, relying parties, consents, refresh tokens
-- (one row per token; replaced by refresh_families in 0003) and signing keys.
--
-- signing_keys joined migration 2 in commit 09b2d4c; databases that commit 0db1685 had
-- brought to version 2 never got it. 0005 makes it where it is missing.

CREATE TABLE citizens (
    id TEXT PRIMARY KEY,
    national_id TEXT NOT NULL UNIQUE,
    profile TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    totp_secret TEXT,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE clients (client_id TEXT PRIMARY KEY, registration TEXT NOT NULL, created_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE consents (
    citizen_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    grant_data TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (citizen_id, client_id)
) WITHOUT ROWID;
CREATE TABLE refresh_tokens (
    hash BLOB PRIMARY KEY,
    family TEXT NOT NULL,
    client_id TEXT NOT NULL,
    citizen_id TEXT NOT NULL,
    grant_data TEXT NOT NULL,
    issued_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used INTEGER NOT NULL DEFAULT 0,
    revoked INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
CREATE INDEX refresh_tokens_client ON refresh_tokens (client_id);
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    purpose TEXT NOT NULL,
    key_ref TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    public_jwk TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    active_from INTEGER NOT NULL
) WITHOUT ROWID;
