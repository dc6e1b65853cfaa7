-- Smart-IDs (one per citizen, the device key unique) and pending activations.
--
-- activations joined migration 4 in commit db476e5; databases that commit bd28f24 had
-- brought to version 4 never got it. 0005 makes it where it is missing.

CREATE TABLE smart_ids (
    national_id TEXT PRIMARY KEY,
    custody TEXT NOT NULL,
    device_kid TEXT NOT NULL UNIQUE,
    device_key TEXT NOT NULL,
    authentication_serial TEXT NOT NULL,
    signature_serial TEXT NOT NULL,
    activated_at BIGINT NOT NULL
);
CREATE TABLE activations (
    code_hash TEXT PRIMARY KEY,
    national_id TEXT NOT NULL,
    custody TEXT NOT NULL,
    officer TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
