-- One row per refresh-token family instead of one per token: a rotation rewrites one row in
-- place. Tokens issued before this cannot be presented any more.

DROP TABLE refresh_tokens;
CREATE TABLE refresh_families (
    family TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    citizen_id TEXT NOT NULL,
    grant_data TEXT NOT NULL,
    generation BIGINT NOT NULL,
    issued_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL,
    revoked BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX refresh_families_client ON refresh_families (client_id);
CREATE INDEX refresh_families_citizen ON refresh_families (citizen_id, client_id);
