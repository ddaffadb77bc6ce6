-- Uploads in progress, for callers that send a file in unary pieces (browsers). The pieces
-- live here, not in one server's memory, so any replica can take the next one.
CREATE TABLE uploads (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Who began it: only the same identity may append to it, read it or commit it.
    owner text NOT NULL,
    -- The UploadMetadata message as given, serialized.
    metadata bytea NOT NULL,
    size_bytes bigint NOT NULL,
    sha256 text NOT NULL,
    received_bytes bigint NOT NULL DEFAULT 0,
    -- Set at commit, when the pieces go and the row stays until it expires, so that a
    -- commit sent again returns the same document.
    document_id uuid REFERENCES documents (id) ON DELETE SET NULL,
    deduplicated boolean NOT NULL DEFAULT false,
    committed boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX uploads_expires_at_idx ON uploads (expires_at);
CREATE INDEX uploads_owner_idx ON uploads (owner);

CREATE TABLE upload_pieces (
    upload_id uuid NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    "offset" bigint NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (upload_id, "offset")
);
