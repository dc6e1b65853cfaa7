-- Pairwise subject identifiers back to citizens, per sector: a pairwise `sub` is one-way,
-- so the provider keeps the (sector, sub) of the services that may ask citizens to sign
-- (and name them by that `sub`) when it issues them tokens.

CREATE TABLE subjects (
    sector TEXT NOT NULL,
    sub TEXT NOT NULL,
    citizen_id TEXT NOT NULL,
    PRIMARY KEY (sector, sub)
);
