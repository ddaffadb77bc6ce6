-- Rows made by `chatbot-server seed`, so that `seed --clear` removes them and nothing else.
ALTER TABLE documents ADD COLUMN seeded boolean NOT NULL DEFAULT false;
ALTER TABLE conversations ADD COLUMN seeded boolean NOT NULL DEFAULT false;
