-- The CA's tables: certificates and their status, CRL numbers, the latest CRL of each
-- issuer, the key ceremony record.

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
CREATE INDEX certificates_issued ON certificates (issued_at);
CREATE INDEX certificates_revoked ON certificates (issuer) WHERE status = 'revoked';
CREATE TABLE crl_numbers (issuer TEXT PRIMARY KEY, last INTEGER NOT NULL);
CREATE TABLE crls (issuer TEXT PRIMARY KEY, number INTEGER NOT NULL, this_update INTEGER NOT NULL,
                   next_update INTEGER NOT NULL, der BLOB NOT NULL);
CREATE TABLE ceremony (id INTEGER PRIMARY KEY CHECK (id = 1), record TEXT NOT NULL);
