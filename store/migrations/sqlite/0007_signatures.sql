-- Every e-signature made with a citizen's smart-ID: who signed what, when, with which
-- certificate, for which service.

CREATE TABLE signatures (
    id TEXT PRIMARY KEY,
    national_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    document_name TEXT NOT NULL,
    document_sha256 TEXT NOT NULL,
    format TEXT NOT NULL,
    certificate_serial TEXT NOT NULL,
    signed_at INTEGER NOT NULL
);
CREATE INDEX signatures_of ON signatures (national_id, signed_at);
