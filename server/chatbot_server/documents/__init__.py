"""Documents: upload bookkeeping, the durable ingestion queue, PDF extraction and chunking."""
