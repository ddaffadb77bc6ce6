"""Answers: from question to streamed, cited answer; the model client, pricing and the
ledger of every model call."""
