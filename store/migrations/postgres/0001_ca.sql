-- The CA's tables: certificates and their status, CRL numbers, the latest CRL of each
-- issuer, the key ceremony record.

CREATE TABLE certificates (
    serial BYTEA PRIMARY KEY,
    issuer TEXT NOT NULL,
    profile TEXT NOT NULL,
    subject TEXT NOT NULL,
    not_before BIGINT NOT NULL,
    not_after BIGINT NOT NULL,
    der BYTEA NOT NULL,
    issued_at BIGINT NOT NULL,
    status TEXT NOT NULL DEFAULT 'good' CHECK (status IN ('good', 'revoked')),
    reason SMALLINT,
    revoked_at BIGINT
);
CREATE INDEX certificates_issued ON certificates (issued_at);
CREATE INDEX certificates_revoked ON certificates (issuer) WHERE status = 'revoked';
CREATE TABLE crl_numbers (issuer TEXT PRIMARY KEY, last BIGINT NOT NULL);
CREATE TABLE crls (issuer TEXT PRIMARY KEY, number BIGINT NOT NULL, this_update BIGINT NOT NULL,
                   next_update BIGINT NOT NULL, der BYTEA NOT NULL);
CREATE TABLE ceremony (id INTEGER PRIMARY KEY CHECK (id = 1), record TEXT NOT NULL);
