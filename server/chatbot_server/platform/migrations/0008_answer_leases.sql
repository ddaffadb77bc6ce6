-- Answers being made, each leased by the server making it and renewed while it lives. When
-- a server dies, another finds its leases run out and records those answers as failed with
-- reason ANSWER_LOST, from what the lease last held: the question, the text streamed so
-- far and the ledger row as it would be written then. Recording an answer deletes its
-- lease in the ledger row's transaction, so an answer is recorded once, by one server.
CREATE TABLE answer_leases (
    answer_id uuid PRIMARY KEY,
    holder text NOT NULL,
    expires_at timestamptz NOT NULL,
    if_lost jsonb NOT NULL
);
CREATE INDEX answer_leases_expires_at_idx ON answer_leases (expires_at);
