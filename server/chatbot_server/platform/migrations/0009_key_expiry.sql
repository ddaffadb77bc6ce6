-- Keys that expire, and rotation: a rotated key keeps its previous secret's hash, which
-- works until `previous_secret_expires_at` (the overlap in which callers switch over).
ALTER TABLE api_keys
    ADD COLUMN expires_at timestamptz,
    ADD COLUMN previous_secret_sha256 text
        CHECK (previous_secret_sha256 ~ '^[0-9a-f]{64}$'),
    ADD COLUMN previous_secret_expires_at timestamptz,
    ADD CONSTRAINT api_keys_previous_secret_has_end
        CHECK ((previous_secret_sha256 IS NULL) = (previous_secret_expires_at IS NULL));
CREATE UNIQUE INDEX api_keys_previous_secret_idx ON api_keys (previous_secret_sha256)
    WHERE previous_secret_sha256 IS NOT NULL;
