-- The outgoing delivery queue (store/src/delivery.rs): back-channel logout tokens and signing
-- notifications owed to relying parties. A row is due when next_at (Unix milliseconds) has
-- passed; a claim moves next_at a lease's length ahead and sets lease, so a replica that dies
-- holding it lets it fall due again. Delivered rows are deleted; given-up ones stay as
-- 'failed' for operators.

CREATE TABLE deliveries (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    client_id TEXT NOT NULL,
    uri TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL,
    lease TEXT,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'failed')),
    last_error TEXT
);

CREATE INDEX deliveries_due ON deliveries (next_at) WHERE state = 'pending';
