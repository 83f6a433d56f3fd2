-- Dashboard sessions (issue 16): a signed-in browser holds a random token in an HttpOnly
-- cookie; the store keeps only its SHA-256, the key it acts as, and when it expires. Signing
-- out deletes the row; revoking the key ends its sessions (the lookup joins active keys).
CREATE TABLE sessions (
    token_hash BLOB    PRIMARY KEY,
    key_row_id INTEGER NOT NULL REFERENCES api_keys (row_id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
