-- The audit log (store/src/audit.rs): one hash chain of security events, and the signed
-- checkpoints over it. Appends lock the one row of audit_head, so replicas append one
-- after another and the chain stays one line. Append-only: the triggers refuse every
-- change and deletion, so that no bug of ours can rewrite history (someone who drops them
-- is caught by the chain).

CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    node TEXT NOT NULL,
    event TEXT NOT NULL,
    fields TEXT NOT NULL,
    prev BYTEA NOT NULL,
    hash BYTEA NOT NULL
);

CREATE TABLE audit_head (
    id SMALLINT PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash BYTEA NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '\x0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE audit_checkpoints (
    seq BIGINT PRIMARY KEY,
    hash BYTEA NOT NULL,
    at BIGINT NOT NULL,
    signature BYTEA NOT NULL,
    certificate BYTEA NOT NULL
);

CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
