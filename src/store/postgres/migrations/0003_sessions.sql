-- Dashboard sessions: a signed-in browser holds a random token in an HttpOnly cookie; the
-- store keeps only its SHA-256, the key it acts as, and when it expires, so a session works on
-- every instance and signing out (deleting the row) ends it everywhere. Revoking the key ends
-- its sessions (the lookup joins active keys).
CREATE TABLE IF NOT EXISTS sessions (
    token_hash BYTEA  PRIMARY KEY,
    key_row_id BIGINT NOT NULL REFERENCES api_keys (row_id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_expiry ON sessions (expires_at);
