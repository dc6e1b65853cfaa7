-- Every RFC 3161 token the timestamp authority issued, so that any token can be checked
-- later: its serial number, time, message imprint, policy and who asked.

CREATE TABLE timestamps (
    serial BYTEA PRIMARY KEY,
    gen_time BIGINT NOT NULL,
    hash_algorithm TEXT NOT NULL,
    imprint BYTEA NOT NULL,
    policy TEXT NOT NULL,
    requester TEXT NOT NULL
);
CREATE INDEX timestamps_time ON timestamps (gen_time);
