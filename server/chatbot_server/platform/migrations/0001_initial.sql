-- The whole schema of the service. Run by the schema owner; the app role gets
-- row privileges from the migration runner.

CREATE TABLE documents (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    title           text NOT NULL CHECK (length(title) BETWEEN 1 AND 300),
    filename        text NOT NULL DEFAULT '',
    sha256          text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size_bytes      bigint NOT NULL CHECK (size_bytes >= 0),
    language        text NOT NULL DEFAULT 'en',
    document_type   text NOT NULL DEFAULT '',
    tags            text[] NOT NULL DEFAULT '{}',
    status          text NOT NULL DEFAULT 'PENDING'
                    CHECK (status IN ('PENDING', 'PROCESSING', 'READY', 'FAILED')),
    error           text NOT NULL DEFAULT '',
    warnings        text[] NOT NULL DEFAULT '{}',
    page_count      integer NOT NULL DEFAULT 0,
    chunk_count     integer NOT NULL DEFAULT 0,
    embedding_model text NOT NULL DEFAULT '',
    embedding_dimensions integer NOT NULL DEFAULT 0,
    -- Progress while PROCESSING, for WatchDocument.
    chunks_done     integer NOT NULL DEFAULT 0,
    chunks_total    integer NOT NULL DEFAULT 0,
    -- Queue bookkeeping: a worker leases a PENDING row; an expired lease is taken over.
    attempts        integer NOT NULL DEFAULT 0,
    lease_expires_at timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    processed_at    timestamptz
);
CREATE UNIQUE INDEX documents_sha256_idx ON documents (sha256);
CREATE INDEX documents_queue_idx ON documents (created_at) WHERE status IN ('PENDING', 'PROCESSING');
CREATE INDEX documents_created_idx ON documents (created_at DESC, id DESC);
CREATE INDEX documents_tags_idx ON documents USING gin (tags);

-- The uploaded bytes, kept apart so listing documents never reads them.
CREATE TABLE document_contents (
    document_id uuid PRIMARY KEY REFERENCES documents (id) ON DELETE CASCADE,
    content     bytea NOT NULL
);

CREATE TABLE chunks (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    document_id     uuid NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    ordinal         integer NOT NULL CHECK (ordinal >= 0),
    page_number     integer NOT NULL CHECK (page_number >= 1),
    section_title   text NOT NULL DEFAULT '',
    content         text NOT NULL,
    token_count     integer NOT NULL DEFAULT 0,
    text_search_config regconfig NOT NULL DEFAULT 'english',
    content_tsv     tsvector GENERATED ALWAYS AS (to_tsvector(text_search_config, content)) STORED,
    embedding_model text NOT NULL,
    embedding       vector(384) NOT NULL,
    UNIQUE (document_id, ordinal)
);
CREATE INDEX chunks_embedding_hnsw_idx ON chunks
    USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64);
CREATE INDEX chunks_content_tsv_idx ON chunks USING gin (content_tsv);

CREATE TABLE conversations (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner       text NOT NULL,
    session_id  text NOT NULL DEFAULT '',
    title       text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversations_owner_idx ON conversations (owner, session_id, created_at DESC, id DESC);

CREATE TABLE messages (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role            text NOT NULL CHECK (role IN ('user', 'assistant')),
    content         text NOT NULL,
    citations       jsonb NOT NULL DEFAULT '[]',
    status          text NOT NULL DEFAULT 'complete'
                    CHECK (status IN ('complete', 'failed', 'cancelled')),
    model           text NOT NULL DEFAULT '',
    request_id      text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_conversation_idx ON messages (conversation_id, created_at, id);

CREATE TABLE feedback (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    message_id  uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    owner       text NOT NULL,
    rating      text NOT NULL CHECK (rating IN ('positive', 'negative')),
    comment     text NOT NULL DEFAULT '' CHECK (length(comment) <= 2000),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (message_id, owner)
);

CREATE TABLE experiments (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    description text NOT NULL DEFAULT '',
    -- [{name, weight, llm_model, top_k, temperature, system_prompt}, ...]
    variants    jsonb NOT NULL,
    active      boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- At most one experiment assigns answers at a time.
CREATE UNIQUE INDEX experiments_one_active_idx ON experiments (active) WHERE active;

-- One row per model call made for a question: completed, failed or cancelled.
CREATE TABLE answer_logs (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    request_id          text NOT NULL,
    method              text NOT NULL,
    identity            text NOT NULL,
    conversation_id     uuid REFERENCES conversations (id) ON DELETE SET NULL,
    message_id          uuid REFERENCES messages (id) ON DELETE SET NULL,
    question            text NOT NULL DEFAULT '',
    llm_model           text NOT NULL DEFAULT '',
    embedding_model     text NOT NULL DEFAULT '',
    prompt_tokens       integer NOT NULL DEFAULT 0,
    completion_tokens   integer NOT NULL DEFAULT 0,
    total_tokens        integer NOT NULL DEFAULT 0,
    -- Money is summed as integer micro-USD so totals never drift.
    cost_micro_usd      bigint NOT NULL DEFAULT 0,
    cost_source         text NOT NULL DEFAULT 'free'
                        CHECK (cost_source IN ('provider', 'pricing_table', 'free')),
    total_ms            integer NOT NULL DEFAULT 0,
    retrieval_ms        integer NOT NULL DEFAULT 0,
    generation_ms       integer NOT NULL DEFAULT 0,
    first_token_ms      integer NOT NULL DEFAULT 0,
    chunks_retrieved    integer NOT NULL DEFAULT 0,
    citation_count      integer NOT NULL DEFAULT 0,
    top_similarity      double precision NOT NULL DEFAULT 0,
    experiment_id       uuid REFERENCES experiments (id) ON DELETE SET NULL,
    experiment_variant  text NOT NULL DEFAULT '',
    finish_reason       text NOT NULL DEFAULT 'stop'
                        CHECK (finish_reason IN ('stop', 'length', 'cancelled', 'error', 'content_filter')),
    error_type          text NOT NULL DEFAULT '',
    error_message       text NOT NULL DEFAULT '',
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX answer_logs_created_idx ON answer_logs (created_at DESC, id DESC);
CREATE INDEX answer_logs_conversation_idx ON answer_logs (conversation_id);
CREATE INDEX answer_logs_experiment_idx ON answer_logs (experiment_id) WHERE experiment_id IS NOT NULL;

CREATE TABLE api_keys (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    role        text NOT NULL CHECK (role IN ('client', 'admin')),
    -- First characters of the secret, to recognise a key in lists and logs.
    prefix      text NOT NULL,
    -- SHA-256 of the secret; the secret itself is never stored.
    secret_sha256 text NOT NULL UNIQUE CHECK (secret_sha256 ~ '^[0-9a-f]{64}$'),
    revoked_at  timestamptz,
    last_used_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
