-- Tables added to migrations already applied elsewhere: signing_keys to 0002 (commit
-- 09b2d4c, after 0db1685 had applied version 2) and activations to 0004 (commit db476e5,
-- after bd28f24 had applied version 4). A database past that version never ran the added
-- statement. Created here where missing; where present, nothing changes.

CREATE TABLE IF NOT EXISTS signing_keys (
    kid TEXT PRIMARY KEY,
    purpose TEXT NOT NULL,
    key_ref TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    public_jwk TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    active_from INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS activations (
    code_hash TEXT PRIMARY KEY,
    national_id TEXT NOT NULL,
    custody TEXT NOT NULL,
    officer TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
