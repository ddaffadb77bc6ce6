-- How many chunks hold each lexeme, so full-text search can weigh a question's words by
-- rarity (inverse document frequency). Kept exact by statement triggers on chunks: one
-- aggregate per INSERT or DELETE statement (TRUNCATE empties them), rows touched in lexeme order so concurrent
-- ingestions cannot deadlock. Rows that fall to zero stay; they match nothing.
CREATE TABLE lexeme_stats (
    lexeme  text PRIMARY KEY,
    chunks  bigint NOT NULL
);

CREATE TABLE chunk_totals (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    chunks    bigint NOT NULL
);
INSERT INTO chunk_totals (chunks) SELECT count(*) FROM chunks;

INSERT INTO lexeme_stats (lexeme, chunks)
SELECT lexeme, count(*) FROM chunks, unnest(tsvector_to_array(content_tsv)) AS lexeme
GROUP BY lexeme;

CREATE FUNCTION count_chunk_lexemes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO lexeme_stats (lexeme, chunks)
        SELECT lexeme, count(*) FROM new_chunks, unnest(tsvector_to_array(content_tsv)) AS lexeme
        GROUP BY lexeme ORDER BY lexeme
        ON CONFLICT (lexeme) DO UPDATE SET chunks = lexeme_stats.chunks + excluded.chunks;
        UPDATE chunk_totals SET chunks = chunks + (SELECT count(*) FROM new_chunks);
    ELSE
        INSERT INTO lexeme_stats (lexeme, chunks)
        SELECT lexeme, -count(*) FROM old_chunks, unnest(tsvector_to_array(content_tsv)) AS lexeme
        GROUP BY lexeme ORDER BY lexeme
        ON CONFLICT (lexeme) DO UPDATE SET chunks = lexeme_stats.chunks + excluded.chunks;
        UPDATE chunk_totals SET chunks = chunks - (SELECT count(*) FROM old_chunks);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER chunks_count_inserted_lexemes AFTER INSERT ON chunks
    REFERENCING NEW TABLE AS new_chunks
    FOR EACH STATEMENT EXECUTE FUNCTION count_chunk_lexemes();
CREATE TRIGGER chunks_count_deleted_lexemes AFTER DELETE ON chunks
    REFERENCING OLD TABLE AS old_chunks
    FOR EACH STATEMENT EXECUTE FUNCTION count_chunk_lexemes();

CREATE FUNCTION clear_chunk_lexemes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM lexeme_stats;
    UPDATE chunk_totals SET chunks = 0;
    RETURN NULL;
END
$$;
CREATE TRIGGER chunks_clear_lexemes AFTER TRUNCATE ON chunks
    FOR EACH STATEMENT EXECUTE FUNCTION clear_chunk_lexemes();

-- Whether the documents answered the question (AnswerDone.grounding).
ALTER TABLE answer_logs ADD COLUMN grounding text NOT NULL DEFAULT 'unspecified'
    CHECK (grounding IN ('unspecified', 'answered', 'not_found'));

-- True while the title is only the upload's file name: ingestion then takes the PDF's
-- metadata title when it has one.
ALTER TABLE documents ADD COLUMN title_is_filename boolean NOT NULL DEFAULT false;
