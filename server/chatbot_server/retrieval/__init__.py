"""Retrieval: embedding models and the hybrid (vector + full-text) search over chunks."""
