"""Money: what model calls cost, the ledger of every call, and the daily budget's tables.
Below answers, governance and retrieval, which all need it."""
