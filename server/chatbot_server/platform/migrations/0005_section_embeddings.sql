-- The meaning of each section title, one row per title of a document. Vector search ranks a
-- chunk by its own similarity to the question plus a share of its section title's: a
-- question asked in everyday words often matches what a section is about better than any
-- one passage in it. Written with the document's chunks, in the same transaction.
CREATE TABLE section_embeddings (
    document_id     uuid NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    title           text NOT NULL,
    embedding_model text NOT NULL,
    embedding       vector(384) NOT NULL,
    PRIMARY KEY (document_id, title)
);
