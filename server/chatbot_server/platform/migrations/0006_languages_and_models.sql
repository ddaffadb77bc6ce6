-- Vectors of any embedding model: the column takes any dimension, and each dimension has an
-- HNSW index of its own (search casts to its model's dimension and names it, so the planner
-- can use the matching index). Rows of a model no longer in use stay until reprocessed.
DROP INDEX chunks_embedding_hnsw_idx;
ALTER TABLE chunks ALTER COLUMN embedding TYPE vector;
ALTER TABLE section_embeddings ALTER COLUMN embedding TYPE vector;
CREATE INDEX chunks_embedding_384_hnsw_idx ON chunks
    USING hnsw ((embedding::vector(384)) vector_cosine_ops) WITH (m = 16, ef_construction = 64)
    WHERE vector_dims(embedding) = 384;
CREATE INDEX chunks_embedding_512_hnsw_idx ON chunks
    USING hnsw ((embedding::vector(512)) vector_cosine_ops) WITH (m = 16, ef_construction = 64)
    WHERE vector_dims(embedding) = 512;

-- Full text is indexed from a text prepared per language (accents folded, French elisions
-- split, German compounds with their parts), not from the content as shown: ingestion
-- writes the vector itself. Existing rows keep theirs.
ALTER TABLE chunks ALTER COLUMN content_tsv DROP EXPRESSION;

-- '' while a document's language is still to be detected from its text.
ALTER TABLE documents ALTER COLUMN language SET DEFAULT '';
-- Whether the upload named the language; otherwise processing detects it from the text
-- (again when reprocessed, so documents stored before detection existed get it too).
ALTER TABLE documents ADD COLUMN language_given boolean NOT NULL DEFAULT false;
